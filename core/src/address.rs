//! Addresses: an account is named by its 32-byte ed25519 verifying key.
//!
//! The text form is bech32m with a per-network human-readable prefix (`edev1...` on devnet,
//! `etest1...` on testnet). The checksum catches typos; the prefix makes a wallet refuse an
//! address of another network before it signs anything. Parsing also refuses 32-byte strings
//! that are not usable ed25519 keys (not a curve point, or a small-order point), because
//! coins sent there could never be spent.

use bech32::primitives::decode::{CheckedHrpstring, CheckedHrpstringError};
use bech32::{Bech32, Bech32m, Hrp};
use bincode::{Decode, Encode};
use ed25519_dalek::VerifyingKey;
use std::fmt;

/// An account address: the raw ed25519 verifying key bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Encode, Decode)]
pub struct Address([u8; 32]);

/// Why an address string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not bech32m at all, or the checksum does not match (most often a typo); `reason`
    /// says which, in words (a character that is not bech32, mixed case, a missing or
    /// extra character, bech32 instead of bech32m, a hex address).
    #[error("invalid address {addr:?}: {reason}")]
    Invalid { addr: String, reason: String },
    /// A well-formed address of another network.
    #[error(
        "address {addr:?} has the prefix {found:?} of another network; addresses here start \
         with \"{expected}1\""
    )]
    WrongNetwork { addr: String, expected: String, found: String },
    /// The payload is not 32 bytes.
    #[error(
        "invalid address {addr:?}: it holds {len} bytes, but an address holds 32 (is it cut \
         short, or two addresses run together?)"
    )]
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
        let checked = CheckedHrpstring::new::<Bech32m>(s).map_err(|e| AddressError::Invalid {
            addr: s.to_string(),
            reason: why_not_bech32m(s, expected_hrp, &e),
        })?;
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

/// Characters of an address of prefix `hrp`: the prefix, '1', 52 data characters for 32
/// bytes, and 6 of checksum.
fn address_len(hrp: &str) -> usize {
    hrp.len() + 1 + 52 + 6
}

/// Why `s` is not a bech32m string, in words a person who typed or pasted it can act on
/// (the library's own messages, like "parse failed", say neither what nor where).
fn why_not_bech32m(s: &str, hrp: &str, e: &CheckedHrpstringError) -> String {
    use bech32::primitives::decode::{CharError, ChecksumError, UncheckedHrpstringError};
    let shape = format!("an address looks like {hrp}1 followed by 58 characters");
    if s.is_empty() {
        return format!("it is empty; {shape}");
    }
    if s.starts_with("0x") || s.starts_with("0X") {
        return format!(
            "it looks like a hex (0x...) address, but Ember addresses are bech32m: {shape}"
        );
    }
    if CheckedHrpstring::new::<Bech32>(s).is_ok() {
        return "it has a bech32 checksum, but Ember addresses use bech32m (it was made by \
                another program)"
            .into();
    }
    match e {
        CheckedHrpstringError::Parse(UncheckedHrpstringError::Char(c)) => match c {
            CharError::MissingSeparator => {
                format!("it has no '1' between the network prefix and the rest; {shape}")
            }
            CharError::NothingAfterSeparator => format!("nothing follows the last '1'; {shape}"),
            CharError::InvalidChar(c) => format!(
                "{c:?} is not a bech32 character (after \"{hrp}1\" only the digits 0 and 2-9 \
                 and the letters a-z except b, i and o appear): a typo?"
            ),
            CharError::MixedCase => "it mixes upper and lower case letters; an address is all \
                                     lower case (or all upper case)"
                .into(),
            _ => format!("it is not bech32m text; {shape}"),
        },
        CheckedHrpstringError::Parse(UncheckedHrpstringError::Hrp(h)) => match h {
            bech32::primitives::hrp::Error::MixedCase => "its prefix mixes upper and lower case \
                                                          letters; an address is all lower case"
                .into(),
            _ => format!("its prefix (before the last '1') is not valid; {shape}"),
        },
        CheckedHrpstringError::Checksum(ChecksumError::InvalidResidue) => {
            let want = address_len(hrp);
            match s.chars().count() {
                n if n < want => format!(
                    "the checksum does not match: it has {n} characters where an address has \
                     {want}, so some are missing"
                ),
                n if n > want => format!(
                    "the checksum does not match: it has {n} characters where an address has \
                     {want}, so some are extra"
                ),
                _ => "the checksum does not match: a character is mistyped (or two are swapped)"
                    .into(),
            }
        }
        CheckedHrpstringError::Checksum(ChecksumError::CodeLength(_)) => format!(
            "it is too long ({} characters; an address has {})",
            s.chars().count(),
            address_len(hrp)
        ),
        CheckedHrpstringError::Checksum(_) => format!(
            "it is too short to be an address ({} characters; an address has {})",
            s.chars().count(),
            address_len(hrp)
        ),
        _ => format!("it is not bech32m text; {shape}"),
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

    /// Each way an address can be wrong is said in words, not as the library's "parse
    /// failed" or "invalid checksum".
    #[test]
    fn each_kind_of_bad_address_is_named() {
        let good = addr().to_bech32("edev");
        let reason = |s: &str| match Address::parse(s, "edev") {
            Err(AddressError::Invalid { reason, .. }) => reason,
            other => panic!("{s}: {other:?}"),
        };
        let bad_char = format!("{}b{}", &good[..10], &good[11..]);
        assert!(
            reason(&bad_char).contains("'b' is not a bech32 character"),
            "{}",
            reason(&bad_char)
        );
        let letter = good[5..].find(|c: char| c.is_ascii_lowercase()).unwrap() + 5;
        let mut mixed = good.clone();
        mixed.replace_range(letter..letter + 1, &good[letter..letter + 1].to_uppercase());
        assert!(reason(&mixed).contains("mixes upper and lower case"), "{}", reason(&mixed));
        assert!(reason("0x1234").contains("hex (0x...) address"));
        assert!(reason(&good[..good.len() - 1]).contains("some are missing"));
        assert!(reason(&format!("{good}q")).contains("some are extra"));
        assert!(reason("edevqqqq").contains("no '1'"));
        assert!(reason("").contains("empty"));
        let hrp = Hrp::parse("edev").unwrap();
        let non_m = bech32::encode::<bech32::Bech32>(hrp, addr().as_bytes()).unwrap();
        assert!(reason(&non_m).contains("bech32m"));
        let short = bech32::encode::<Bech32m>(hrp, &[1u8; 20]).unwrap();
        let err = Address::parse(&short, "edev").unwrap_err().to_string();
        assert!(err.contains("holds 20 bytes, but an address holds 32"), "{err}");
        let other = addr().to_bech32("etest");
        let err = Address::parse(&other, "edev").unwrap_err().to_string();
        assert!(err.contains("another network") && err.contains("edev1"), "{err}");
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
