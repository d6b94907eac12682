//! SLIP-0010 key derivation for ed25519: from the BIP39 seed to the signing key of each
//! Ember account.
//!
//! Every Ember account key sits at the path `m/44'/7337'/account'/0'/0'`:
//! - `44'` is the BIP44 "purpose", so the tree has the familiar BIP44 shape;
//! - `7337'` is Ember's coin type. Its job is separation: a user who (unwisely) reuses
//!   a mnemonic across coins still gets Ember keys that no other coin's wallet derives;
//! - `account'` is the account index stored in the keystore (0, 1, 2, …);
//! - `0'/0'` are the BIP44 change and address levels, fixed at zero because an Ember
//!   account is one key (accounts have nonces, not UTXOs, so there is nothing to gain
//!   from a fresh address per payment).
//!
//! Every level is hardened, because SLIP-0010 defines only hardened derivation for
//! ed25519 (there is no public-key-only derivation on this curve). Callers therefore
//! give plain indices below 2^31 and this module adds the hardened flag; an index that
//! already has the top bit set is refused rather than silently meaning something else.
//!
//! The algorithm is written out here (HMAC-SHA512, about forty lines) instead of taken
//! from a crate, because the SLIP-0010 crates are thinly maintained and this is the
//! code that decides which keys hold the user's money. The official SLIP-0010 ed25519
//! test vectors below pin it down.

use std::fmt;

use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac};
use sha2::Sha512;
use zeroize::{Zeroize, Zeroizing};

use crate::mnemonic::Seed;

/// The BIP44 purpose level, `44'`.
pub const PURPOSE: u32 = 44;

/// Ember's coin type, `7337'`: the level that keeps Ember keys apart from keys other
/// coins derive from the same mnemonic.
pub const COIN_TYPE: u32 = 7337;

/// Added to an index to mark it hardened (BIP32 / SLIP-0010 convention).
pub const HARDENED_OFFSET: u32 = 1 << 31;

/// The HMAC key for the master key, which SLIP-0010 fixes per curve so that one seed
/// gives unrelated master keys on different curves.
const ED25519_CURVE_KEY: &[u8] = b"ed25519 seed";

/// Why a derivation path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeriveError {
    /// The index already has the hardened bit set (or is otherwise ≥ 2^31). Ember
    /// adds the hardened flag itself, so the caller must pass the plain index.
    #[error(
        "derivation index {0} is too large: indices must be below 2147483648 (2^31); \
         Ember marks every level hardened itself"
    )]
    IndexTooLarge(u32),
}

/// A derivation path of hardened levels, stored as plain indices (each below 2^31).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivationPath(Vec<u32>);

impl DerivationPath {
    /// A path of the given plain indices, each to be used hardened.
    pub fn new(indices: &[u32]) -> Result<DerivationPath, DeriveError> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= HARDENED_OFFSET) {
            return Err(DeriveError::IndexTooLarge(bad));
        }
        Ok(DerivationPath(indices.to_vec()))
    }

    /// The path of an Ember account's key: `m/44'/7337'/account'/0'/0'`.
    pub fn for_account(account: u32) -> Result<DerivationPath, DeriveError> {
        DerivationPath::new(&[PURPOSE, COIN_TYPE, account, 0, 0])
    }

    /// The plain (unhardened) indices, from the master key down.
    pub fn indices(&self) -> &[u32] {
        &self.0
    }
}

impl fmt::Display for DerivationPath {
    /// Writes the usual notation, e.g. `m/44'/7337'/0'/0'/0'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("m")?;
        for index in &self.0 {
            write!(f, "/{index}'")?;
        }
        Ok(())
    }
}

/// A SLIP-0010 ed25519 extended private key: the 32-byte secret (an ed25519 secret
/// key "seed" in RFC 8032 terms) and the chain code needed to derive its children.
///
/// Both halves are secret, so `Debug` is redacted and both are wiped on drop.
#[derive(Clone)]
pub struct ExtendedKey {
    secret: Zeroizing<[u8; 32]>,
    chain_code: Zeroizing<[u8; 32]>,
}

impl ExtendedKey {
    /// The master key of a seed: `I = HMAC-SHA512(key = "ed25519 seed", data = seed)`.
    ///
    /// For ed25519 every 32-byte string is a valid secret, so unlike secp256k1 there
    /// is no "invalid key, retry" case.
    pub fn master(seed: &[u8]) -> ExtendedKey {
        ExtendedKey::from_hmac(ED25519_CURVE_KEY, &[seed])
    }

    /// The hardened child `index'`:
    /// `I = HMAC-SHA512(key = chain code, data = 0x00 || secret || ser32(index + 2^31))`.
    pub fn derive_child(&self, index: u32) -> Result<ExtendedKey, DeriveError> {
        if index >= HARDENED_OFFSET {
            return Err(DeriveError::IndexTooLarge(index));
        }
        let hardened = (index | HARDENED_OFFSET).to_be_bytes();
        Ok(ExtendedKey::from_hmac(
            self.chain_code.as_slice(),
            &[&[0u8], self.secret.as_slice(), &hardened],
        ))
    }

    /// The key at `path` below this one.
    pub fn derive_path(&self, path: &DerivationPath) -> ExtendedKey {
        let mut key = self.clone();
        for &index in path.indices() {
            key = key
                .derive_child(index)
                .expect("DerivationPath::new checked every index is below 2^31");
        }
        key
    }

    /// The 32-byte ed25519 secret key.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The chain code (secret too: with a child's secret it reveals siblings).
    pub fn chain_code(&self) -> &[u8; 32] {
        &self.chain_code
    }

    /// The key for signing. `SigningKey` wipes itself on drop and its `Debug` shows
    /// only the public half.
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_bytes(&self.secret)
    }

    /// The 32-byte ed25519 public key. (SLIP-0010 writes it with a leading `0x00` to
    /// make it 33 bytes like a secp256k1 key; Ember uses the plain 32 bytes.)
    pub fn verifying_key(&self) -> [u8; 32] {
        self.signing_key().verifying_key().to_bytes()
    }

    /// Splits `HMAC-SHA512(key, data[0] || data[1] || …)` into secret and chain code.
    fn from_hmac(key: &[u8], data: &[&[u8]]) -> ExtendedKey {
        let mut mac =
            Hmac::<Sha512>::new_from_slice(key).expect("HMAC accepts a key of any length");
        for part in data {
            mac.update(part);
        }
        let mut output = mac.finalize().into_bytes();
        let mut secret = Zeroizing::new([0u8; 32]);
        let mut chain_code = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&output[..32]);
        chain_code.copy_from_slice(&output[32..]);
        // The HMAC output is the child key itself; wipe the stack copy.
        output.as_mut_slice().zeroize();
        ExtendedKey { secret, chain_code }
    }
}

impl fmt::Debug for ExtendedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtendedKey")
            .field("verifying_key", &hex::encode(self.verifying_key()))
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The key of Ember account `account`, at `m/44'/7337'/account'/0'/0'`.
pub fn derive_account(seed: &Seed, account: u32) -> Result<ExtendedKey, DeriveError> {
    let path = DerivationPath::for_account(account)?;
    Ok(ExtendedKey::master(seed.as_bytes()).derive_path(&path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, Verifier};

    /// One row of a SLIP-0010 test vector: path (plain indices, all hardened), then
    /// chain code, private key and public key (33 bytes, leading 00) in hex.
    type Row = (&'static [u32], &'static str, &'static str, &'static str);

    // SLIP-0010 "Test vector 1 for ed25519", seed 000102030405060708090a0b0c0d0e0f,
    // copied from satoshilabs/slips slip-0010.md.
    const VECTOR_1_SEED: &str = "000102030405060708090a0b0c0d0e0f";
    const VECTOR_1: &[Row] = &[
        (
            &[],
            "90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
            "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
            "00a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed",
        ),
        (
            &[0],
            "8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
            "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
            "008c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c",
        ),
        (
            &[0, 1],
            "a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14",
            "b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2",
            "001932a5270f335bed617d5b935c80aedb1a35bd9fc1e31acafd5372c30f5c1187",
        ),
        (
            &[0, 1, 2],
            "2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c",
            "92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9",
            "00ae98736566d30ed0e9d2f4486a64bc95740d89c7db33f52121f8ea8f76ff0fc1",
        ),
        (
            &[0, 1, 2, 2],
            "8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc",
            "30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662",
            "008abae2d66361c879b900d204ad2cc4984fa2aa344dd7ddc46007329ac76c429c",
        ),
        (
            &[0, 1, 2, 2, 1_000_000_000],
            "68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230",
            "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
            "003c24da049451555d51a7014a37337aa4e12d41e485abccfa46b47dfb2af54b7a",
        ),
    ];

    // SLIP-0010 "Test vector 2 for ed25519", same source.
    const VECTOR_2_SEED: &str = "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542";
    const VECTOR_2: &[Row] = &[
        (
            &[],
            "ef70a74db9c3a5af931b5fe73ed8e1a53464133654fd55e7a66f8570b8e33c3b",
            "171cb88b1b3c1db25add599712e36245d75bc65a1a5c9e18d76f9f2b1eab4012",
            "008fe9693f8fa62a4305a140b9764c5ee01e455963744fe18204b4fb948249308a",
        ),
        (
            &[0],
            "0b78a3226f915c082bf118f83618a618ab6dec793752624cbeb622acb562862d",
            "1559eb2bbec5790b0c65d8693e4d0875b1747f4970ae8b650486ed7470845635",
            "0086fab68dcb57aa196c77c5f264f215a112c22a912c10d123b0d03c3c28ef1037",
        ),
        (
            &[0, 2_147_483_647],
            "138f0b2551bcafeca6ff2aa88ba8ed0ed8de070841f0c4ef0165df8181eaad7f",
            "ea4f5bfe8694d8bb74b7b59404632fd5968b774ed545e810de9c32a4fb4192f4",
            "005ba3b9ac6e90e83effcd25ac4e58a1365a9e35a3d3ae5eb07b9e4d90bcf7506d",
        ),
        (
            &[0, 2_147_483_647, 1],
            "73bd9fff1cfbde33a1b846c27085f711c0fe2d66fd32e139d3ebc28e5a4a6b90",
            "3757c7577170179c7868353ada796c839135b3d30554bbb74a4b1e4a5a58505c",
            "002e66aa57069c86cc18249aecf5cb5a9cebbfd6fadeab056254763874a9352b45",
        ),
        (
            &[0, 2_147_483_647, 1, 2_147_483_646],
            "0902fe8a29f9140480a00ef244bd183e8a13288e4412d8389d140aac1794825a",
            "5837736c89570de861ebc173b1086da4f505d4adb387c6a1b1342d5e4ac9ec72",
            "00e33c0f7d81d843c572275f287498e8d408654fdf0d1e065b84e2e6f157aab09b",
        ),
        (
            &[0, 2_147_483_647, 1, 2_147_483_646, 2],
            "5d70af781f3a37b829f0d060924d5e960bdc02e85423494afc0b1a41bbe196d4",
            "551d333177df541ad876a60ea71f00447931c0a9da16f227c11ea080d7391b8d",
            "0047150c75db263559a70d5778bf36abbab30fb061ad69f69ece61a72b0cfa4fc0",
        ),
    ];

    fn check_vector(seed_hex: &str, rows: &[Row]) {
        let seed = hex::decode(seed_hex).unwrap();
        let master = ExtendedKey::master(&seed);
        for &(indices, chain_code, private, public) in rows {
            let path = DerivationPath::new(indices).unwrap();
            let key = master.derive_path(&path);
            assert_eq!(hex::encode(key.chain_code()), chain_code, "chain code {path}");
            assert_eq!(hex::encode(key.secret()), private, "private key {path}");
            let public =
                public.strip_prefix("00").expect("SLIP-0010 ed25519 public keys start with 00");
            assert_eq!(hex::encode(key.verifying_key()), public, "public key {path}");
        }
    }

    #[test]
    fn slip10_ed25519_test_vector_1() {
        check_vector(VECTOR_1_SEED, VECTOR_1);
    }

    #[test]
    fn slip10_ed25519_test_vector_2() {
        check_vector(VECTOR_2_SEED, VECTOR_2);
    }

    #[test]
    fn step_by_step_matches_whole_path() {
        let master = ExtendedKey::master(&hex::decode(VECTOR_1_SEED).unwrap());
        let stepwise = master
            .derive_child(0)
            .and_then(|k| k.derive_child(1))
            .and_then(|k| k.derive_child(2))
            .unwrap();
        let whole = master.derive_path(&DerivationPath::new(&[0, 1, 2]).unwrap());
        assert_eq!(stepwise.secret(), whole.secret());
        assert_eq!(stepwise.chain_code(), whole.chain_code());
    }

    #[test]
    fn index_with_hardened_bit_is_refused() {
        let master = ExtendedKey::master(&[7u8; 64]);
        assert_eq!(
            master.derive_child(HARDENED_OFFSET).unwrap_err(),
            DeriveError::IndexTooLarge(HARDENED_OFFSET)
        );
        assert_eq!(
            DerivationPath::new(&[44, u32::MAX]).unwrap_err(),
            DeriveError::IndexTooLarge(u32::MAX)
        );
        let seed = Seed::from_bytes([7u8; 64]);
        assert!(derive_account(&seed, HARDENED_OFFSET).is_err());
        assert!(derive_account(&seed, HARDENED_OFFSET - 1).is_ok());
    }

    #[test]
    fn account_path_is_bip44_shaped() {
        assert_eq!(DerivationPath::for_account(3).unwrap().to_string(), "m/44'/7337'/3'/0'/0'");
    }

    #[test]
    fn accounts_get_distinct_working_keys() {
        let seed = Seed::from_bytes([42u8; 64]);
        let a0 = derive_account(&seed, 0).unwrap();
        let a1 = derive_account(&seed, 1).unwrap();
        assert_ne!(a0.verifying_key(), a1.verifying_key());
        // Deterministic: the same seed and account always give the same key.
        assert_eq!(derive_account(&seed, 0).unwrap().secret(), a0.secret());
        let expected = ExtendedKey::master(seed.as_bytes())
            .derive_path(&DerivationPath::new(&[44, 7337, 0, 0, 0]).unwrap());
        assert_eq!(expected.secret(), a0.secret());

        let signing = a0.signing_key();
        assert_eq!(signing.verifying_key().to_bytes(), a0.verifying_key());
        let signature = signing.sign(b"ember");
        assert!(signing.verifying_key().verify(b"ember", &signature).is_ok());
    }

    #[test]
    fn debug_is_redacted() {
        let key = derive_account(&Seed::from_bytes([9u8; 64]), 0).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains(&hex::encode(key.secret())), "{shown}");
        assert!(!shown.contains(&hex::encode(key.chain_code())), "{shown}");
        let shown = format!("{:?}", key.signing_key());
        assert!(!shown.contains(&hex::encode(key.secret())), "{shown}");
    }
}
