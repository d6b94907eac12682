//! A payment before it is signed: every check the wallet makes so that a mistake is
//! refused before anything is signed or sent.
//!
//! The checks come in the order a user's input allows them:
//! 1. without the keys or the node: the recipient is a valid address *of this wallet's
//!    network* ([`parse_recipient`]), amounts are decimal coins with at most 8 decimals
//!    ([`parse_amount`]), the amount is not zero and `amount + fee` does not overflow
//!    ([`Payment::new`]);
//! 2. with the node's answers: the fee is at least the node's minimum
//!    ([`Payment::check_fee`]) and `amount + fee` fits in what the sender can still spend,
//!    its confirmed balance minus its pending payments ([`Payment::check_funds`]).
//!
//! Only then is the body built ([`Payment::body`]) and signed ([`sign`]). Nothing here
//! does I/O.

use ember_core::amount::AmountParseError;
use ember_core::{Address, AddressError, Amount, BlockId, Keypair, Network, Transaction, TxBody};
use zeroize::Zeroizing;

use crate::derive::ExtendedKey;
use crate::node_client::AccountInfo;

/// The fee used when the user gives none: 0.00001 coin, raised to the node's minimum
/// when that is higher. Small, but far above the devnet's 1-unit floor, so that a
/// replacement with a higher fee stays possible.
pub const DEFAULT_FEE: Amount = Amount::from_units(1_000);

/// An amount with its unit, in the singular for exactly one coin: "1 coin", "0.5 coins",
/// "12.5 coins".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coins(pub Amount);

impl std::fmt::Display for Coins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit =
            if self.0.units() == ember_core::amount::UNITS_PER_COIN { "coin" } else { "coins" };
        write!(f, "{} {unit}", self.0)
    }
}

/// Why a payment was refused before signing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The recipient is a valid address, but of another network.
    #[error(
        "the recipient address {address} is a {found} address (prefix {found_hrp}), but this \
         wallet is for {expected} (prefix {expected_hrp}); nothing was signed"
    )]
    WrongNetwork {
        /// The address as given.
        address: String,
        /// The network the address's prefix belongs to, or "another network".
        found: String,
        /// The prefix found.
        found_hrp: String,
        /// The wallet's network.
        expected: Network,
        /// The wallet network's prefix.
        expected_hrp: &'static str,
    },
    /// The recipient is not an address at all (typo, truncated, not a usable key).
    #[error("the recipient (--to) is not a valid address: {0}")]
    BadRecipient(AddressError),
    /// An amount or fee is not decimal coins with at most 8 decimals.
    #[error("invalid {what}: {source}")]
    BadAmount {
        /// "amount" or "fee".
        what: &'static str,
        /// Why the text was refused.
        source: AmountParseError,
    },
    /// A payment of nothing would only cost its fee.
    #[error("the amount must be more than 0")]
    ZeroAmount,
    /// `amount + fee` does not fit in a u64 of base units.
    #[error("amount plus fee is larger than the largest possible amount")]
    CostOverflow,
    /// The fee is below what the node admits to its mempool.
    #[error(
        "the fee of {} is below the node's minimum fee of {}; pay a fee of at least \
         {min_fee} (--fee {min_fee})",
        Coins(*fee),
        Coins(*min_fee)
    )]
    FeeTooLow {
        /// The fee asked for.
        fee: Amount,
        /// The node's minimum.
        min_fee: Amount,
    },
    /// The sender cannot pay `amount + fee`.
    #[error(
        "insufficient funds: this payment needs {} ({amount} + {fee} fee), but the \
         available balance is {}{}",
        Coins(*needed),
        Coins(*available),
        pending_note(*balance, *pending_spend)
    )]
    InsufficientFunds {
        /// `amount + fee`.
        needed: Amount,
        /// The amount asked for.
        amount: Amount,
        /// The fee asked for.
        fee: Amount,
        /// What can still be spent: `balance - pending_spend`.
        available: Amount,
        /// The confirmed balance.
        balance: Amount,
        /// What the sender's pending payments already spend.
        pending_spend: Amount,
    },
}

fn pending_note(balance: Amount, pending_spend: Amount) -> String {
    if pending_spend == Amount::ZERO {
        String::new()
    } else {
        format!(" (confirmed balance {balance} minus {pending_spend} spent by pending payments)")
    }
}

/// Parses a recipient address, refusing one of another network with a message that
/// names both networks.
pub fn parse_recipient(text: &str, network: Network) -> Result<Address, PaymentError> {
    Address::parse(text.trim(), network.hrp()).map_err(|e| match e {
        AddressError::WrongNetwork { found, .. } => {
            let known = [Network::Devnet, Network::Testnet].into_iter().find(|n| n.hrp() == found);
            PaymentError::WrongNetwork {
                address: text.trim().to_owned(),
                found: known.map_or_else(|| "another network's".to_owned(), |n| n.to_string()),
                found_hrp: found,
                expected: network,
                expected_hrp: network.hrp(),
            }
        }
        other => PaymentError::BadRecipient(other),
    })
}

/// Parses decimal coins ("12.5"); `what` names the value in the error ("amount", "fee").
pub fn parse_amount(what: &'static str, text: &str) -> Result<Amount, PaymentError> {
    text.trim().parse().map_err(|source| PaymentError::BadAmount { what, source })
}

/// The fee to pay when the user names none: [`DEFAULT_FEE`], or the node's minimum if
/// that is higher.
pub fn default_fee(min_fee: Amount) -> Amount {
    DEFAULT_FEE.max(min_fee)
}

/// What the user asked to pay, checked as far as possible without the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payment {
    to: Address,
    amount: Amount,
    fee: Amount,
}

impl Payment {
    /// A payment of `amount` plus `fee` to `to`: refuses a zero amount and a total that
    /// overflows.
    pub fn new(to: Address, amount: Amount, fee: Amount) -> Result<Payment, PaymentError> {
        if amount == Amount::ZERO {
            return Err(PaymentError::ZeroAmount);
        }
        amount.checked_add(fee).ok_or(PaymentError::CostOverflow)?;
        Ok(Payment { to, amount, fee })
    }

    /// The recipient.
    pub fn to(&self) -> Address {
        self.to
    }

    /// The amount paid to the recipient.
    pub fn amount(&self) -> Amount {
        self.amount
    }

    /// The fee paid to the miner.
    pub fn fee(&self) -> Amount {
        self.fee
    }

    /// `amount + fee`: what leaves the sender's account.
    pub fn total(&self) -> Amount {
        self.amount.checked_add(self.fee).expect("Payment::new checked amount + fee fits")
    }

    /// Refuses a fee below the node's minimum (the node would refuse it anyway, with a
    /// less helpful message).
    pub fn check_fee(&self, min_fee: Amount) -> Result<(), PaymentError> {
        if self.fee < min_fee {
            return Err(PaymentError::FeeTooLow { fee: self.fee, min_fee });
        }
        Ok(())
    }

    /// Refuses a payment the sender cannot afford, counting its pending payments.
    pub fn check_funds(&self, account: &AccountInfo) -> Result<(), PaymentError> {
        check_funds(self.amount, self.fee, account)
    }

    /// The transaction body: from `from`, on the chain whose genesis id is `chain`,
    /// with the sender's next `nonce`.
    pub fn body(&self, chain: BlockId, from: Address, nonce: u64) -> TxBody {
        TxBody { chain, from, to: self.to, amount: self.amount, fee: self.fee, nonce }
    }
}

/// Refuses `amount + fee` when it is more than `account` can still spend (its confirmed
/// balance minus its pending payments). Also for transactions signed elsewhere.
pub fn check_funds(amount: Amount, fee: Amount, account: &AccountInfo) -> Result<(), PaymentError> {
    let needed = amount.checked_add(fee).ok_or(PaymentError::CostOverflow)?;
    if needed > account.available {
        return Err(PaymentError::InsufficientFunds {
            needed,
            amount,
            fee,
            available: account.available,
            balance: account.balance,
            pending_spend: account.pending_spend,
        });
    }
    Ok(())
}

/// Signs `body` with an account key. The key's address must be `body.from`, which is
/// checked, since a mismatch would give a transaction every node refuses.
pub fn sign(body: TxBody, key: &ExtendedKey) -> Transaction {
    // A wiped copy for the one by-value hand-over `Keypair` needs; the `Keypair` wipes
    // its own copy on drop.
    let secret = Zeroizing::new(*key.secret());
    let keypair = Keypair::from_secret_bytes(*secret);
    assert_eq!(keypair.address(), body.from, "the signing key must own the sender account");
    body.sign(&keypair)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::derive_account;
    use crate::mnemonic::Seed;

    fn key() -> ExtendedKey {
        derive_account(&Seed::from_bytes([8u8; 64]), 0).unwrap()
    }

    fn address(key: &ExtendedKey) -> Address {
        Address::from_bytes(key.verifying_key())
    }

    fn account(balance: u64, pending: u64) -> AccountInfo {
        AccountInfo {
            balance: Amount::from_units(balance),
            nonce: 0,
            next_nonce: 0,
            pending_count: u64::from(pending > 0),
            pending_spend: Amount::from_units(pending),
            available: Amount::from_units(balance - pending),
            pending_received_count: 0,
            pending_received: Amount::ZERO,
        }
    }

    #[test]
    fn recipient_of_another_network_is_refused_by_name() {
        let to = address(&key());
        assert_eq!(parse_recipient(&to.to_bech32("edev"), Network::Devnet).unwrap(), to);
        let testnet = to.to_bech32("etest");
        let err = parse_recipient(&testnet, Network::Devnet).unwrap_err();
        assert!(matches!(err, PaymentError::WrongNetwork { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("testnet") && msg.contains("devnet"), "{msg}");
        assert!(msg.contains(&testnet), "{msg}");
        // A typo is caught by the checksum instead.
        let mut typo = to.to_bech32("edev");
        typo.replace_range(10..11, if &typo[10..11] == "q" { "p" } else { "q" });
        assert!(matches!(
            parse_recipient(&typo, Network::Devnet),
            Err(PaymentError::BadRecipient(_))
        ));
    }

    #[test]
    fn one_coin_is_singular() {
        assert_eq!(Coins(Amount::from_units(100_000_000)).to_string(), "1 coin");
        assert_eq!(Coins(Amount::from_units(150_000_000)).to_string(), "1.5 coins");
        assert_eq!(Coins(Amount::ZERO).to_string(), "0 coins");
        assert_eq!(Coins(Amount::from_units(1)).to_string(), "0.00000001 coins");
    }

    #[test]
    fn amounts_are_parsed_strictly() {
        assert_eq!(parse_amount("amount", "12.5").unwrap(), Amount::from_units(1_250_000_000));
        let err = parse_amount("amount", "1.123456789").unwrap_err();
        assert!(err.to_string().contains("more than 8 decimal places"), "{err}");
        assert!(err.to_string().starts_with("invalid amount"), "{err}");
        assert!(parse_amount("fee", "-1").is_err());
        assert!(parse_amount("fee", "1e3").is_err());
    }

    #[test]
    fn zero_and_overflowing_payments_are_refused() {
        let to = address(&key());
        assert_eq!(Payment::new(to, Amount::ZERO, DEFAULT_FEE), Err(PaymentError::ZeroAmount));
        assert_eq!(
            Payment::new(to, Amount::MAX, Amount::from_units(1)),
            Err(PaymentError::CostOverflow)
        );
    }

    #[test]
    fn fee_and_funds_are_checked() {
        let to = address(&key());
        let p = Payment::new(to, Amount::from_units(900), Amount::from_units(100)).unwrap();
        assert_eq!(p.total(), Amount::from_units(1000));
        assert!(p.check_fee(Amount::from_units(100)).is_ok());
        let err = p.check_fee(Amount::from_units(101)).unwrap_err();
        assert!(err.to_string().contains("below the node's minimum fee"), "{err}");
        assert!(p.check_funds(&account(1000, 0)).is_ok());
        let err = p.check_funds(&account(1000, 1)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("available balance is 0.00000999 coins"), "{msg}");
        assert!(msg.contains("spent by pending payments"), "{msg}");
        assert_eq!(default_fee(Amount::from_units(1)), DEFAULT_FEE);
        assert_eq!(default_fee(Amount::from_units(5_000)), Amount::from_units(5_000));
    }

    #[test]
    fn signed_payment_verifies() {
        let key = key();
        let p = Payment::new(address(&key), Amount::from_units(5), DEFAULT_FEE).unwrap();
        let tx = sign(p.body(BlockId::from_bytes([1; 32]), address(&key), 3), &key);
        assert!(tx.verify_signature().is_ok());
        assert_eq!(tx.body().nonce, 3);
    }
}
