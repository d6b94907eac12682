//! 32-byte hashes and the id newtypes built on them.
//!
//! `Hash` is a plain SHA-256 output. `BlockId` (sha256d of an encoded header) and `Txid`
//! (sha256 of an encoded transaction body) wrap it so the two can never be mixed up. All
//! print and parse as 64 lowercase hex digits, in byte order (no Bitcoin-style reversal).

use bincode::{Decode, Encode};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Why a hex hash string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    /// Not 64 hex digits.
    #[error("expected 64 hex digits, got {0} characters")]
    Length(usize),
    /// A character that is not a hex digit.
    #[error("invalid hex: {0}")]
    Hex(String),
}

/// A 32-byte SHA-256 output.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Encode, Decode)]
pub struct Hash([u8; 32]);

impl Hash {
    /// The all-zero hash: the `prev` of the genesis block and the root of an empty tree.
    pub const ZERO: Hash = Hash([0; 32]);

    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Hash(bytes)
    }
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    pub const fn to_bytes(self) -> [u8; 32] {
        self.0
    }
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Hash(h.finalize().into())
}

/// SHA-256 applied twice, as for block ids (no length-extension on the id).
pub fn sha256d(data: &[u8]) -> Hash {
    let first: [u8; 32] = Sha256::digest(data).into();
    Hash(Sha256::digest(first).into())
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}
impl FromStr for Hash {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 {
            return Err(HashParseError::Length(s.len()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| HashParseError::Hex(e.to_string()))?;
        Ok(Hash(out))
    }
}

/// Declares a `Copy` newtype over [`Hash`] with hex `Display`/`FromStr` and serde as a hex string.
macro_rules! hash_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Encode, Decode)]
        pub struct $name(Hash);

        impl $name {
            pub const ZERO: $name = $name(Hash::ZERO);
            pub const fn from_hash(h: Hash) -> Self { $name(h) }
            pub const fn from_bytes(b: [u8; 32]) -> Self { $name(Hash::from_bytes(b)) }
            pub const fn hash(&self) -> Hash { self.0 }
            pub const fn as_bytes(&self) -> &[u8; 32] { self.0.as_bytes() }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { fmt::Display::fmt(&self.0, f) }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
        impl FromStr for $name {
            type Err = HashParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> { Ok($name(s.parse()?)) }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hash_newtype!(
    /// A block's id: sha256d of its canonically encoded header. Also the chain id when it
    /// is the genesis block's.
    BlockId
);
hash_newtype!(
    /// A transaction's id: sha256 of its canonically encoded body (without the signature).
    Txid
);
hash_newtype!(
    /// A general-purpose 32-byte digest printed as hex (merkle roots, state digests).
    Digest32
);

impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            sha256(&[b"abc"]).to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Parts are concatenated.
        assert_eq!(sha256(&[b"a", b"bc"]), sha256(&[b"abc"]));
    }

    #[test]
    fn sha256d_known_vector() {
        // sha256d("") from Bitcoin's test suite.
        assert_eq!(
            sha256d(b"").to_string(),
            "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
        );
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let id = BlockId::from_bytes([0xab; 32]);
        assert_eq!(id.to_string().parse::<BlockId>().unwrap(), id);
        assert_eq!("abc".parse::<Txid>(), Err(HashParseError::Length(3)));
        assert!(matches!("zz".repeat(32).parse::<Txid>(), Err(HashParseError::Hex(_))));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<BlockId>(&json).unwrap(), id);
    }
}
