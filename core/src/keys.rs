//! Keys and signatures over ed25519-dalek, and the consensus verification rule.
//!
//! Consensus verification is `verify_strict`: it refuses small-order public keys, small-order
//! `R` and non-canonical `S`, so that every node agrees on validity and signatures are not
//! malleable. dalek's batch verification accepts a different set of signatures, so it is
//! never used to decide validity.

use crate::address::Address;
use bincode::{Decode, Encode};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use std::fmt;

/// A 64-byte ed25519 signature as carried in transactions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// A signing key with its address. The secret never appears in `Debug`.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        Keypair { signing: SigningKey::generate(&mut rand::rngs::OsRng) }
    }
    /// The key with the given 32-byte secret seed.
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        Keypair { signing: SigningKey::from_bytes(&secret) }
    }
    pub fn address(&self) -> Address {
        Address::from_verifying_key(&self.signing.verifying_key())
    }
    /// Signs a 32-byte message digest.
    pub fn sign(&self, digest: &[u8; 32]) -> Signature {
        Signature(self.signing.sign(digest).to_bytes())
    }
    /// The secret seed; callers that keep it must zeroize it.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair {{ address: {:?}, secret: <redacted> }}", self.address())
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("public key is not a valid ed25519 point")]
    BadKey,
    #[error("signature does not verify (strict ed25519)")]
    Invalid,
}

/// An address decompressed into its ed25519 point, once: what [`verify_with`] takes.
///
/// Decompressing a key is a field exponentiation, about a seventh of a `verify_strict`
/// (the point `R` of each signature is decompressed too, and cannot be kept). A caller that
/// sees the same sender again and again (a node's key cache, `ember-node`'s
/// `chain/sigcache.rs`) keeps these instead of decompressing each time. The result of a
/// check is the same either way: decompression is a pure function of the 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The point of `address`; `Err(BadKey)` when the 32 bytes are not a point's encoding.
    pub fn from_address(address: &Address) -> Result<Self, SignatureError> {
        VerifyingKey::from_bytes(address.as_bytes())
            .map(PublicKey)
            .map_err(|_| SignatureError::BadKey)
    }

    /// The address this key was decompressed from.
    pub fn address(&self) -> Address {
        Address::from_verifying_key(&self.0)
    }
}

/// The consensus signature check: strict ed25519 over the 32-byte digest.
pub fn verify(address: &Address, digest: &[u8; 32], sig: &Signature) -> Result<(), SignatureError> {
    verify_with(&PublicKey::from_address(address)?, digest, sig)
}

/// [`verify`] with the key already decompressed, over a message of any length (a payment's
/// is its 32-byte signing digest).
pub fn verify_with(key: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), SignatureError> {
    let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
    key.0.verify_strict(msg, &sig).map_err(|_| SignatureError::Invalid)
}

/// Verifies a raw message (any length) the same way, through [`PublicKey`] and
/// [`verify_with`]; used by the edge-case vectors, which sign messages that are not
/// 32-byte digests.
pub fn verify_message(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> Result<(), SignatureError> {
    verify_with(&PublicKey::from_address(&Address::from_bytes(*key))?, msg, &Signature(*sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let k = Keypair::from_secret_bytes([1; 32]);
        let d = [9u8; 32];
        let sig = k.sign(&d);
        assert_eq!(verify(&k.address(), &d, &sig), Ok(()));
        assert_eq!(verify(&k.address(), &[8u8; 32], &sig), Err(SignatureError::Invalid));
        let other = Keypair::from_secret_bytes([2; 32]);
        assert_eq!(verify(&other.address(), &d, &sig), Err(SignatureError::Invalid));
    }

    #[test]
    fn debug_hides_secret() {
        let k = Keypair::from_secret_bytes([0xab; 32]);
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&hex::encode([0xab; 32])));
        assert!(dbg.contains("redacted"));
    }
}
