//! Addresses: an account is named by its 32-byte ed25519 verifying key.
//!
//! The text form is bech32m with a per-network human-readable prefix (`edev1...` on devnet,
//! `etest1...` on testnet). The checksum catches typos; the prefix makes a wallet refuse an
//! address of another network before it signs anything. Parsing also refuses 32-byte strings
//! that are not usable ed25519 keys (not a curve point, or a small-order point), because
//! coins sent there could never be spent.

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};
use bincode::{Decode, Encode};
use ed25519_dalek::VerifyingKey;
use std::fmt;

/// An account address: the raw ed25519 verifying key bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Encode, Decode)]
pub struct Address([u8; 32]);

/// Why an address string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not bech32m at all, or the checksum does not match (most often a typo).
    #[error("invalid address {addr:?}: {reason}")]
    Invalid { addr: String, reason: String },
    /// A well-formed address of another network.
    #[error("address {addr:?} belongs to network prefix {found:?}, but this is {expected:?}")]
    WrongNetwork { addr: String, expected: String, found: String },
    /// The payload is not 32 bytes.
    #[error("invalid address {addr:?}: payload is {len} bytes, expected 32")]
    WrongLength { addr: String, len: usize },
    /// The payload is not a usable ed25519 public key.
    #[error("invalid address {addr:?}: not a usable ed25519 public key")]
    NotAKey { addr: String },
}

impl Address {
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Address(bytes)
    }
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    pub fn from_verifying_key(key: &VerifyingKey) -> Self {
        Address(key.to_bytes())
    }

    /// bech32m text with the given human-readable prefix.
    pub fn to_bech32(&self, hrp: &str) -> String {
        let hrp = Hrp::parse(hrp).expect("network prefixes are valid bech32 prefixes");
        bech32::encode::<Bech32m>(hrp, &self.0).expect("32 bytes always fit a bech32m string")
    }

    /// Parses bech32m text, requiring the prefix `expected_hrp`.
    pub fn parse(s: &str, expected_hrp: &str) -> Result<Self, AddressError> {
        let checked = CheckedHrpstring::new::<Bech32m>(s)
            .map_err(|e| AddressError::Invalid { addr: s.to_string(), reason: e.to_string() })?;
        let found = checked.hrp().to_lowercase();
        if found != expected_hrp {
            return Err(AddressError::WrongNetwork {
                addr: s.to_string(),
                expected: expected_hrp.to_string(),
                found,
            });
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| AddressError::WrongLength { addr: s.to_string(), len: bytes.len() })?;
        // bech32 leaves a few padding bits in the last character; only the canonical
        // string (padding zero) is accepted, so each address has exactly one text form.
        if Address(arr).to_bech32(expected_hrp) != s.to_lowercase() {
            return Err(AddressError::Invalid {
                addr: s.to_string(),
                reason: "non-zero padding bits".into(),
            });
        }
        let usable = VerifyingKey::from_bytes(&arr).is_ok_and(|k| !k.is_weak());
        if !usable {
            return Err(AddressError::NotAKey { addr: s.to_string() });
        }
        Ok(Address(arr))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;

    fn addr() -> Address {
        Keypair::from_secret_bytes([7; 32]).address()
    }

    #[test]
    fn round_trip() {
        let a = addr();
        let s = a.to_bech32("edev");
        assert!(s.starts_with("edev1"));
        assert_eq!(Address::parse(&s, "edev").unwrap(), a);
        // Upper case is the same address (bech32 allows it for QR codes).
        assert_eq!(Address::parse(&s.to_uppercase(), "edev").unwrap(), a);
    }

    #[test]
    fn typo_is_caught_by_checksum() {
        let s = addr().to_bech32("edev");
        let mut chars: Vec<char> = s.chars().collect();
        let i = chars.len() - 10;
        chars[i] = if chars[i] == 'q' { 'p' } else { 'q' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(Address::parse(&typo, "edev"), Err(AddressError::Invalid { .. })));
    }

    #[test]
    fn other_network_is_refused() {
        let s = addr().to_bech32("etest");
        let err = Address::parse(&s, "edev").unwrap_err();
        assert!(matches!(err, AddressError::WrongNetwork { .. }));
        assert!(err.to_string().contains("etest"));
    }

    #[test]
    fn non_zero_padding_is_refused() {
        // 32 bytes = 256 bits in 52 five-bit groups: the last group carries 4 padding bits.
        let s = addr().to_bech32("edev");
        let data_end = s.len() - 6;
        let last = s.as_bytes()[data_end - 1] as char;
        const CHARSET: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
        let v = CHARSET.find(last).unwrap();
        let padded = CHARSET.as_bytes()[v | 1] as char;
        assert_ne!(padded, last, "padding bits of a canonical address are zero");
        let hrp = Hrp::parse("edev").unwrap();
        // Rebuild the checksum over the altered data so only the padding differs.
        let mut fes: Vec<bech32::Fe32> =
            s[5..data_end].chars().map(|c| bech32::Fe32::from_char(c).unwrap()).collect();
        *fes.last_mut().unwrap() = bech32::Fe32::from_char(padded).unwrap();
        let text: String =
            bech32::primitives::iter::Fe32IterExt::with_checksum::<Bech32m>(fes.into_iter(), &hrp)
                .chars()
                .collect();
        assert!(
            matches!(Address::parse(&text, "edev"), Err(AddressError::Invalid { .. })),
            "{text}"
        );
    }

    #[test]
    fn bech32_non_m_is_refused() {
        let hrp = Hrp::parse("edev").unwrap();
        let s = bech32::encode::<bech32::Bech32>(hrp, addr().as_bytes()).unwrap();
        assert!(matches!(Address::parse(&s, "edev"), Err(AddressError::Invalid { .. })));
    }

    #[test]
    fn wrong_length_and_non_keys_are_refused() {
        let hrp = Hrp::parse("edev").unwrap();
        let short = bech32::encode::<Bech32m>(hrp, &[1u8; 20]).unwrap();
        assert!(matches!(
            Address::parse(&short, "edev"),
            Err(AddressError::WrongLength { len: 20, .. })
        ));
        // The identity point (small order) is a valid encoding but an unusable key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let s = Address::from_bytes(identity).to_bech32("edev");
        assert!(matches!(Address::parse(&s, "edev"), Err(AddressError::NotAKey { .. })));
    }
}
