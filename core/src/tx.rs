//! Transactions: a signed payment from one account to another.
//!
//! The body names the network (its genesis id), both accounts, the amount, the fee and the
//! sender's nonce. `txid = sha256(encode(body))`. The signature covers a domain-separated
//! digest `sha256("ember/tx/v1" || encode(body))`, so a signature made for another purpose
//! (or another network, through `chain`) is valid nowhere here.

use crate::address::Address;
use crate::amount::Amount;
use crate::encoding;
use crate::hash::{sha256, BlockId, Txid};
use crate::keys::{self, Keypair, Signature, SignatureError};
use bincode::{Decode, Encode};

/// Domain tag of transaction signatures.
pub const TX_SIGNING_DOMAIN: &[u8] = b"ember/tx/v1";

/// Size in bytes of every encoded transaction body: all fields are fixed width.
pub const TX_BODY_ENCODED_LEN: usize = 32 + 32 + 32 + 8 + 8 + 8;

/// Size in bytes of every encoded transaction: the body, then the 64-byte signature.
pub const TX_ENCODED_LEN: usize = TX_BODY_ENCODED_LEN + 64;

/// What a transaction says; the signed part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct TxBody {
    /// Genesis id of the network this payment is for.
    pub chain: BlockId,
    pub from: Address,
    pub to: Address,
    pub amount: Amount,
    /// Paid to the miner of the block that includes the transaction.
    pub fee: Amount,
    /// Must equal the sender's account nonce; incremented when applied (replay protection).
    pub nonce: u64,
}

impl TxBody {
    /// `sha256(encode(body))`. A [`Transaction`] computes it once, when it is made or
    /// decoded, and keeps it ([`Transaction::txid`]).
    pub fn txid(&self) -> Txid {
        Txid::from_hash(sha256(&[&self.encode_fixed()]))
    }

    /// The canonical encoding into a stack buffer: every field is fixed width.
    fn encode_fixed(&self) -> [u8; TX_BODY_ENCODED_LEN] {
        let mut out = [0u8; TX_BODY_ENCODED_LEN];
        let n = encoding::encode_into(self, &mut out).expect("a body always fits its fixed length");
        debug_assert_eq!(n, TX_BODY_ENCODED_LEN);
        out
    }

    /// The 32-byte digest that is signed.
    pub fn signing_digest(&self) -> [u8; 32] {
        sha256(&[TX_SIGNING_DOMAIN, &self.encode_fixed()]).to_bytes()
    }

    /// `amount + fee`, or `None` when that overflows.
    pub fn total_cost(&self) -> Option<Amount> {
        self.amount.checked_add(self.fee)
    }

    /// Signs the body. The caller's key must own `from`; otherwise the result won't verify.
    pub fn sign(self, key: &Keypair) -> Transaction {
        let signature = key.sign(&self.signing_digest());
        Transaction::from_parts(self, signature)
    }
}

/// A signed transaction. Immutable: its txid is computed once, when it is made or decoded,
/// and every later use reads it (as Core's `CTransaction` caches its hash); a block's
/// payments are hashed once per node, not once per step of their path.
///
/// Encoded as the body then the signature ([`TX_ENCODED_LEN`] bytes); the txid is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transaction {
    body: TxBody,
    signature: Signature,
    /// `body.txid()`, kept.
    txid: Txid,
}

impl Encode for Transaction {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.body.encode(encoder)?;
        self.signature.encode(encoder)
    }
}

impl<C> Decode<C> for Transaction {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let body = TxBody::decode(decoder)?;
        let signature = Signature::decode(decoder)?;
        Ok(Transaction::from_parts(body, signature))
    }
}
bincode::impl_borrow_decode!(Transaction);

impl Transaction {
    /// Assembles a transaction from parts (e.g. a body signed offline); nothing is checked
    /// but the txid is computed.
    pub fn from_parts(body: TxBody, signature: Signature) -> Self {
        Transaction { txid: body.txid(), body, signature }
    }
    pub fn body(&self) -> &TxBody {
        &self.body
    }
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
    /// The txid, computed when the transaction was made or decoded.
    pub fn txid(&self) -> Txid {
        self.txid
    }
    /// The consensus signature check (strict ed25519 by `from`).
    pub fn verify_signature(&self) -> Result<(), SignatureError> {
        keys::verify(&self.body.from, &self.body.signing_digest(), &self.signature)
    }
    /// [`Transaction::verify_signature`] with the sender's key already decompressed (see
    /// [`keys::PublicKey`]); `Err(BadKey)` when `key` is not the sender's.
    pub fn verify_signature_with(&self, key: &keys::PublicKey) -> Result<(), SignatureError> {
        if key.address() != self.body.from {
            return Err(SignatureError::BadKey);
        }
        keys::verify_with(key, &self.body.signing_digest(), &self.signature)
    }
    pub fn encode(&self) -> Vec<u8> {
        encoding::encode(self)
    }
    /// Decodes exactly one transaction.
    pub fn decode(bytes: &[u8]) -> Result<Self, encoding::DecodeError> {
        encoding::decode(bytes, TX_ENCODED_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(nonce: u64) -> (Keypair, Transaction) {
        let k = Keypair::from_secret_bytes([3; 32]);
        let body = TxBody {
            chain: BlockId::from_bytes([1; 32]),
            from: k.address(),
            to: Keypair::from_secret_bytes([4; 32]).address(),
            amount: Amount::from_units(1000),
            fee: Amount::from_units(10),
            nonce,
        };
        (k.clone(), body.sign(&k))
    }

    #[test]
    fn encoded_length_is_fixed() {
        let (_, tx) = sample(0);
        assert_eq!(tx.encode().len(), TX_ENCODED_LEN);
        assert_eq!(Transaction::decode(&tx.encode()).unwrap(), tx);
    }

    #[test]
    fn signature_verifies_and_binds_body() {
        let (k, tx) = sample(0);
        assert!(tx.verify_signature().is_ok());
        let mut body = *tx.body();
        body.nonce = 1;
        let forged = Transaction::from_parts(body, *tx.signature());
        assert_eq!(forged.verify_signature(), Err(SignatureError::Invalid));
        // Signing the raw body without the domain tag gives a signature that is refused.
        let raw = k.sign(&sha256(&[&encoding::encode(tx.body())]).to_bytes());
        let unbound = Transaction::from_parts(*tx.body(), raw);
        assert_eq!(unbound.verify_signature(), Err(SignatureError::Invalid));
    }

    /// A key decompressed once judges every signature as a fresh decompression does, and
    /// is refused for another sender's payment.
    #[test]
    fn a_kept_key_verifies_as_a_fresh_one_and_only_for_its_sender() {
        let (k, tx) = sample(0);
        let key = keys::PublicKey::from_address(&k.address()).unwrap();
        assert_eq!(key.address(), k.address());
        assert_eq!(tx.verify_signature_with(&key), Ok(()));
        let mut body = *tx.body();
        body.amount = Amount::from_units(999);
        let forged = Transaction::from_parts(body, *tx.signature());
        assert_eq!(forged.verify_signature_with(&key), forged.verify_signature());
        let other = keys::PublicKey::from_address(&body.to).unwrap();
        assert_eq!(tx.verify_signature_with(&other), Err(SignatureError::BadKey));
        // An address that is no point's encoding has no key (y = 2 is not on the curve).
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(
            keys::PublicKey::from_address(&Address::from_bytes(off_curve)),
            Err(SignatureError::BadKey)
        );
    }

    #[test]
    fn txid_ignores_signature() {
        let (_, tx) = sample(0);
        let other = Transaction::from_parts(*tx.body(), Signature([0; 64]));
        assert_eq!(tx.txid(), other.txid());
    }
}
