//! The keystore file: the wallet's seed and its list of accounts, encrypted under the
//! user's passphrase, on disk.
//!
//! # File format (version 2)
//!
//! A JSON object, written by Ember in one exact form (pretty-printed, fields in this
//! order, lowercase hex, trailing newline):
//!
//! ```json
//! {
//!   "version": 2,
//!   "network": "testnet",
//!   "accounts": [
//!     {
//!       "index": 0,
//!       "address": "etest1..."
//!     }
//!   ],
//!   "kdf": {
//!     "algorithm": "argon2id",
//!     "m_cost": 65536,
//!     "t_cost": 3,
//!     "p_cost": 1,
//!     "salt": "<16 bytes, hex>"
//!   },
//!   "cipher": {
//!     "algorithm": "xchacha20poly1305",
//!     "nonce": "<24 bytes, hex>"
//!   },
//!   "ciphertext": "<hex: encrypted plaintext, then the 16-byte tag>"
//! }
//! ```
//!
//! - The key is argon2id(passphrase, salt) with the stored costs (`m_cost` in KiB).
//! - The plaintext is the 64-byte BIP39 seed followed by the account list as JSON
//!   (`[{"index":0,"label":"main"}]`). The seed rather than the mnemonic entropy is
//!   stored because the design shows the mnemonic once, at creation, and never again,
//!   and because the seed already includes any BIP39 passphrase, which the user then
//!   need not type on every use.
//! - `accounts` repeats, in the clear, each account's index, label and address (bech32m
//!   with the network's prefix), so that commands which only *watch* an account (its
//!   address, balance, history, the account list) can run without the passphrase
//!   ([`Keystore::peek_accounts`]). The addresses are public by nature; what the clear
//!   list gives away is that they belong together, to this file's owner, and the names
//!   the owner gave them (as Bitcoin Core keeps its labels unencrypted).
//! - The ciphertext is XChaCha20-Poly1305 with a random 24-byte nonce; its associated
//!   data binds every header field (version, network, the clear account list, KDF
//!   algorithm and costs, salt, cipher algorithm, nonce), so changing any of them makes
//!   decryption fail.
//!
//! ## The clear account list is not authenticated until the next unlock
//!
//! Reading it needs no key, so nothing can check it when it is read: someone who can
//! write the file could put their own address in it, and a watch-only `address` would
//! show it. The edit is caught at the next unlock (sending, signing, adding an account):
//! the list is part of the associated data, so opening fails as
//! [`KeystoreError::WrongPassphrase`] ("wrong passphrase or the keystore file was
//! modified"), and after decryption the list must also equal the addresses derived
//! from the seed. This is the same trust as any watch-only wallet file; the file is
//! written 0600 in a 0700 directory, and who can write it can also delete it.
//!
//! ## Version 1
//!
//! The same file without `accounts` (and with `"version": 1` in the associated data).
//! It is still read by [`Keystore::open`]; [`Keystore::needs_upgrade`] then says so, and
//! saving always writes version 2 (the CLI does so at the first unlock). Its accounts
//! cannot be watched without the passphrase: [`Keystore::peek_accounts`] gives `None`.
//!
//! # What is guaranteed
//!
//! - Opening accepts only a file byte-for-byte in the form Ember writes, whose header
//!   and ciphertext authenticate: any single changed byte is refused with an error,
//!   never accepted with a different secret. (A file that parses but is not in that
//!   exact form — edited whitespace, an escaped character, uppercase hex — is refused
//!   as [`KeystoreError::Corrupt`] before the passphrase is even tried.)
//! - The KDF costs are capped before the KDF runs, since they are authenticated only
//!   after it has run: a tampered file cannot make opening allocate more than
//!   [`MAX_M_COST_KIB`] KiB.
//! - Saving is atomic: the file appears complete, mode 0600, or not at all; an existing
//!   file is replaced only with [`WriteMode::Replace`]. Opening never writes (upgrading a
//!   version-1 file is an explicit [`Keystore::save`] by the caller).
//! - The seed is wiped from memory when dropped, and no `Debug` output shows it.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Version};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use ember_core::{Address, Network};

use crate::derive::{derive_account, ExtendedKey, HARDENED_OFFSET};
use crate::mnemonic::{Mnemonic, Seed, SEED_LEN};

/// The keystore format version this code writes (it also reads [`LEGACY_VERSION`]).
pub const KEYSTORE_VERSION: u32 = 2;
/// The previous format, without the clear account list: read, never written.
pub const LEGACY_VERSION: u32 = 1;

/// Largest `m_cost` (KiB) accepted, 2 GiB: bounds the memory a tampered file can make
/// `open` allocate before the passphrase check can fail.
pub const MAX_M_COST_KIB: u32 = 2 * 1024 * 1024;
/// Largest `t_cost` (passes) accepted, for the same reason as [`MAX_M_COST_KIB`].
pub const MAX_T_COST: u32 = 32;
/// Largest `p_cost` (lanes) accepted, for the same reason as [`MAX_M_COST_KIB`].
pub const MAX_P_COST: u32 = 16;

/// Longest account label, in characters.
pub const MAX_LABEL_CHARS: usize = 64;

const KDF_ALGORITHM: &str = "argon2id";
const CIPHER_ALGORITHM: &str = "xchacha20poly1305";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
const MAX_NETWORK_LEN: usize = 32;
/// A keystore with a thousand long-labelled accounts is well under this; anything
/// bigger is not a keystore, and is refused before it is read into memory.
const MAX_FILE_LEN: u64 = 1024 * 1024;
/// Domain separation for the associated data, so these bytes mean nothing elsewhere.
const AAD_DOMAIN: &[u8] = b"ember-keystore";

/// Why a keystore could not be created, saved or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// Decryption failed: the passphrase is wrong, or the file (header or ciphertext)
    /// was changed. The two cannot be told apart, by design of authenticated
    /// encryption.
    #[error("wrong passphrase or the keystore file was modified")]
    WrongPassphrase,
    /// The file is not a well-formed version-1 or version-2 keystore (not JSON, truncated, missing
    /// or extra fields, bad hex, not in the exact form Ember writes, …).
    #[error("the keystore file is damaged or is not an Ember keystore: {0}")]
    Corrupt(String),
    /// The file says it is a keystore format version this Ember does not know.
    #[error(
        "the keystore file has format version {0}, but this Ember reads only versions \
         {LEGACY_VERSION} and {KEYSTORE_VERSION}; use the Ember release that wrote it"
    )]
    UnsupportedVersion(u32),
    /// Reading or writing a file or directory failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "read", "create", "sync directory".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Saving with [`WriteMode::CreateNew`] found a file already at the path.
    #[error("{} already exists; not overwriting it", .0.display())]
    AlreadyExists(PathBuf),
    /// The caller asked for argon2id costs that argon2 or Ember does not accept.
    #[error("invalid key-derivation (argon2id) parameters: {0}")]
    InvalidKdfParams(String),
    /// The network name is empty, too long, or not lowercase letters, digits and '-'.
    #[error(
        "invalid network name {0:?}: use 1 to {MAX_NETWORK_LEN} lowercase letters, digits or '-'"
    )]
    InvalidNetworkName(String),
    /// An account label is empty, too long, or contains control characters.
    #[error(
        "invalid account label {0:?}: use 1 to {MAX_LABEL_CHARS} characters without control characters"
    )]
    InvalidLabel(String),
    /// No account with this index is in the keystore.
    #[error("the keystore has no account {0}")]
    UnknownAccount(u32),
    /// [`Keystore::add_account_at`] was given an index the keystore already has.
    #[error("the keystore already has account {0}")]
    DuplicateAccount(u32),
    /// [`Keystore::add_account_at`] was given an index of 2^31 or more.
    #[error("account index {0} is too large: indices must be below 2147483648 (2^31)")]
    AccountIndexTooLarge(u32),
    /// Saving needs the network's address prefix, and this network name is not one
    /// Ember knows.
    #[error("the network {0:?} is not one this Ember knows (devnet, testnet): cannot write its addresses")]
    UnknownNetwork(String),
    /// Every account index below 2^31 is taken (not reachable in practice).
    #[error("the keystore has no free account index left")]
    TooManyAccounts,
}

/// argon2id costs. Fields are private so every value went through [`KdfParams::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
}

impl KdfParams {
    /// The default: 64 MiB, 3 passes, 1 lane. Paid once per open by the user, and once
    /// per passphrase guess by anyone who has copied the file: memory-hard, so
    /// guessing on GPUs gains little.
    pub const RECOMMENDED: KdfParams = KdfParams { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 1 };

    /// Costs of the caller's choosing: weaker ones for tests, stronger ones for the
    /// cautious. Checked against argon2's minimums and Ember's caps.
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<KdfParams, KeystoreError> {
        // Ember's caps first: they also keep argon2's own `8 * p_cost` from overflowing.
        if m_cost_kib > MAX_M_COST_KIB {
            return Err(KeystoreError::InvalidKdfParams(format!(
                "m_cost {m_cost_kib} KiB is above the maximum {MAX_M_COST_KIB} KiB"
            )));
        }
        if t_cost > MAX_T_COST {
            return Err(KeystoreError::InvalidKdfParams(format!(
                "t_cost {t_cost} is above the maximum {MAX_T_COST}"
            )));
        }
        if p_cost > MAX_P_COST {
            return Err(KeystoreError::InvalidKdfParams(format!(
                "p_cost {p_cost} is above the maximum {MAX_P_COST}"
            )));
        }
        let params = KdfParams { m_cost_kib, t_cost, p_cost };
        params.to_argon2()?;
        Ok(params)
    }

    /// Memory cost in KiB.
    pub fn m_cost_kib(&self) -> u32 {
        self.m_cost_kib
    }

    /// Number of passes.
    pub fn t_cost(&self) -> u32 {
        self.t_cost
    }

    /// Degree of parallelism (lanes).
    pub fn p_cost(&self) -> u32 {
        self.p_cost
    }

    fn to_argon2(self) -> Result<argon2::Params, KeystoreError> {
        argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(KEY_LEN)).map_err(|e| {
            KeystoreError::InvalidKdfParams(format!(
                "m_cost={} KiB, t_cost={}, p_cost={}: {e}",
                self.m_cost_kib, self.t_cost, self.p_cost
            ))
        })
    }
}

impl Default for KdfParams {
    fn default() -> KdfParams {
        KdfParams::RECOMMENDED
    }
}

/// Whether [`Keystore::save`] may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Fail with [`KeystoreError::AlreadyExists`] if the path exists (wallet creation:
    /// silently replacing a keystore could destroy the only copy of a seed).
    CreateNew,
    /// Atomically replace whatever is there (re-saving an opened keystore, e.g. after
    /// adding an account or changing the passphrase).
    Replace,
}

/// One account: a derivation index (`m/44'/7337'/index'/0'/0'`) and a label for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    index: u32,
    label: String,
}

impl Account {
    /// The account index used in derivation.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The user's name for the account.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// An account as the clear list of a version-2 file has it: index, label and address,
/// readable without the passphrase and **not authenticated** until the next unlock (see
/// the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchAccount {
    index: u32,
    label: String,
    address: String,
}

impl WatchAccount {
    /// The account index used in derivation.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The account's label, for people.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The account's address, bech32m with the network's prefix.
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// The decrypted contents of a keystore: network, seed and accounts.
pub struct Keystore {
    network: String,
    seed: Seed,
    accounts: Vec<Account>,
    /// The argon2id costs of the file this was opened from, so that re-saving (a new
    /// account) keeps the strength the user chose rather than silently changing it.
    kdf: KdfParams,
    /// The format version of the file this was opened from ([`KEYSTORE_VERSION`] for a
    /// new one).
    file_version: u32,
}

impl Keystore {
    /// A keystore for `network` (e.g. "mainnet", "testnet") holding `seed`, with no
    /// accounts yet.
    pub fn new(network: &str, seed: Seed) -> Result<Keystore, KeystoreError> {
        if !is_valid_network(network) {
            return Err(KeystoreError::InvalidNetworkName(network.into()));
        }
        Ok(Keystore {
            network: network.to_owned(),
            seed,
            accounts: Vec::new(),
            kdf: KdfParams::RECOMMENDED,
            file_version: KEYSTORE_VERSION,
        })
    }

    /// A keystore for the seed of `mnemonic` with the BIP39 passphrase (usually "").
    pub fn from_mnemonic(
        network: &str,
        mnemonic: &Mnemonic,
        bip39_passphrase: &str,
    ) -> Result<Keystore, KeystoreError> {
        Keystore::new(network, mnemonic.seed_with_passphrase(bip39_passphrase))
    }

    /// The network this keystore belongs to (authenticated with the file).
    pub fn network(&self) -> &str {
        &self.network
    }

    /// The seed all account keys derive from.
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    /// The argon2id costs this keystore was opened with ([`KdfParams::RECOMMENDED`] for
    /// one made with [`Keystore::new`]): what to pass to [`Keystore::save`] when
    /// writing it back.
    pub fn kdf_params(&self) -> KdfParams {
        self.kdf
    }

    /// The format version of the file this keystore was opened from.
    pub fn file_version(&self) -> u32 {
        self.file_version
    }

    /// Whether the file this was opened from is of an older format, which
    /// [`Keystore::save`] would rewrite as the current one.
    pub fn needs_upgrade(&self) -> bool {
        self.file_version != KEYSTORE_VERSION
    }

    /// Each account's index and address, derived from the seed: what a saved file lists
    /// in the clear.
    pub fn watch_accounts(&self) -> Result<Vec<WatchAccount>, KeystoreError> {
        let network: Network = self
            .network
            .parse()
            .map_err(|_| KeystoreError::UnknownNetwork(self.network.clone()))?;
        self.accounts
            .iter()
            .map(|a| {
                let key = self.account_key(a.index)?;
                let address = Address::from_bytes(key.verifying_key()).to_bech32(network.hrp());
                Ok(WatchAccount { index: a.index, label: a.label.clone(), address })
            })
            .collect()
    }

    /// The accounts, in the order they were added.
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    /// The account with this index, if the keystore has it.
    pub fn account(&self, index: u32) -> Option<&Account> {
        self.accounts.iter().find(|a| a.index == index)
    }

    /// Adds an account with the next unused index and returns that index. (In memory
    /// only: call [`Keystore::save`] to keep it.)
    pub fn add_account(&mut self, label: &str) -> Result<u32, KeystoreError> {
        if !is_valid_label(label) {
            return Err(KeystoreError::InvalidLabel(label.into()));
        }
        let index = match self.accounts.iter().map(|a| a.index).max() {
            None => 0,
            Some(max) => max
                .checked_add(1)
                .filter(|&i| i < HARDENED_OFFSET)
                .ok_or(KeystoreError::TooManyAccounts)?,
        };
        self.accounts.push(Account { index, label: label.to_owned() });
        Ok(index)
    }

    /// Adds an account with a chosen index (e.g. a devnet account of the public dev
    /// mnemonic, whose index is given by the network). (In memory only: call
    /// [`Keystore::save`] to keep it.)
    pub fn add_account_at(&mut self, index: u32, label: &str) -> Result<(), KeystoreError> {
        if !is_valid_label(label) {
            return Err(KeystoreError::InvalidLabel(label.into()));
        }
        if index >= HARDENED_OFFSET {
            return Err(KeystoreError::AccountIndexTooLarge(index));
        }
        if self.account(index).is_some() {
            return Err(KeystoreError::DuplicateAccount(index));
        }
        self.accounts.push(Account { index, label: label.to_owned() });
        Ok(())
    }

    /// The network named in the header of the keystore file at `path`, read without
    /// the passphrase and so **not authenticated**: only for refusing early (e.g. an
    /// address of another network before asking for the passphrase). The file is
    /// checked exactly as by [`Keystore::open`] up to the key derivation.
    pub fn peek_network(path: &Path) -> Result<String, KeystoreError> {
        let bytes = read_limited(path)?;
        let (header, _) = KeystoreFile::decode(&bytes)?.check()?;
        Ok(header.network)
    }

    /// The clear account list of the keystore file at `path`, read without the
    /// passphrase and so **not authenticated** until the next [`Keystore::open`] (see
    /// the module documentation); `None` for a version-1 file, which has none. The
    /// file is checked exactly as by [`Keystore::open`] up to the key derivation, and
    /// each address is a valid address of the file's network.
    pub fn peek_accounts(path: &Path) -> Result<Option<Vec<WatchAccount>>, KeystoreError> {
        let bytes = read_limited(path)?;
        let (header, _) = KeystoreFile::decode(&bytes)?.check()?;
        Ok(header.accounts)
    }

    /// The signing key of one of the keystore's accounts.
    pub fn account_key(&self, index: u32) -> Result<ExtendedKey, KeystoreError> {
        if self.account(index).is_none() {
            return Err(KeystoreError::UnknownAccount(index));
        }
        Ok(derive_account(&self.seed, index)
            .expect("account indices are kept below 2^31 by add_account and open"))
    }

    /// Encrypts the keystore under `passphrase` and writes it to `path` atomically,
    /// with mode 0600. Fresh salt and nonce every time.
    pub fn save(
        &self,
        path: &Path,
        passphrase: &[u8],
        params: KdfParams,
        mode: WriteMode,
    ) -> Result<(), KeystoreError> {
        // Fail before the slow KDF when the answer is already known; the no-clobber
        // link in `write_atomically` is what actually guarantees it.
        if mode == WriteMode::CreateNew && path.symlink_metadata().is_ok() {
            return Err(KeystoreError::AlreadyExists(path.to_owned()));
        }
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut salt);
        OsRng.fill_bytes(&mut nonce);

        let accounts = self.watch_accounts()?;
        let header = Header {
            version: KEYSTORE_VERSION,
            network: self.network.clone(),
            accounts: Some(accounts),
            params,
            salt: salt.to_vec(),
            nonce,
        };
        let key = derive_key(passphrase, &header)?;

        let accounts_json =
            serde_json::to_vec(&self.accounts).expect("a list of accounts always serialises");
        // Sized up front so encryption appends the tag without reallocating, which
        // would leave an unwiped copy of the seed in the old allocation.
        let mut buffer =
            Zeroizing::new(Vec::with_capacity(SEED_LEN + accounts_json.len() + TAG_LEN));
        buffer.extend_from_slice(self.seed.as_bytes());
        buffer.extend_from_slice(&accounts_json);
        XChaCha20Poly1305::new(Key::from_slice(key.as_slice()))
            .encrypt_in_place(
                XNonce::from_slice(&header.nonce),
                &header.associated_data(),
                &mut *buffer,
            )
            .expect("XChaCha20-Poly1305 encrypts any message under 256 GiB");

        let file = KeystoreFile {
            version: KEYSTORE_VERSION,
            network: header.network,
            accounts: header.accounts,
            kdf: KdfSection {
                algorithm: KDF_ALGORITHM.to_owned(),
                m_cost: params.m_cost_kib,
                t_cost: params.t_cost,
                p_cost: params.p_cost,
                salt: hex::encode(salt),
            },
            cipher: CipherSection {
                algorithm: CIPHER_ALGORITHM.to_owned(),
                nonce: hex::encode(nonce),
            },
            ciphertext: hex::encode(&*buffer),
        };
        write_atomically(path, file.encode().as_bytes(), mode)
    }

    /// Checks the bytes of a keystore file as [`Keystore::open`] does before any expensive
    /// work (exact canonical form, version, every header field), without deriving the key.
    /// Returns the network the file is for.
    pub fn check_file(bytes: &[u8]) -> Result<String, KeystoreError> {
        let (header, _) = KeystoreFile::decode(bytes)?.check()?;
        Ok(header.network)
    }

    /// Reads and decrypts the keystore at `path`. Never writes anything.
    pub fn open(path: &Path, passphrase: &[u8]) -> Result<Keystore, KeystoreError> {
        let bytes = read_limited(path)?;
        let file = KeystoreFile::decode(&bytes)?;
        let (header, ciphertext) = file.check()?;
        let key = derive_key(passphrase, &header)?;

        let mut buffer = Zeroizing::new(ciphertext);
        XChaCha20Poly1305::new(Key::from_slice(key.as_slice()))
            .decrypt_in_place(
                XNonce::from_slice(&header.nonce),
                &header.associated_data(),
                &mut *buffer,
            )
            .map_err(|_| KeystoreError::WrongPassphrase)?;

        // From here the bytes are authentic: a failure means a writer that is not
        // this code, so it is reported as corruption, not as a wrong passphrase.
        let seed = buffer
            .get(..SEED_LEN)
            .and_then(Seed::from_slice)
            .ok_or_else(|| KeystoreError::Corrupt("the encrypted seed is too short".into()))?;
        let accounts: Vec<Account> = serde_json::from_slice(&buffer[SEED_LEN..])
            .map_err(|e| KeystoreError::Corrupt(format!("account list: {e}")))?;
        check_accounts(&accounts)?;

        let keystore = Keystore {
            network: header.network,
            seed,
            accounts,
            kdf: header.params,
            file_version: header.version,
        };
        // Authenticated already (associated data); this catches a writer that listed
        // addresses other than the seed's, which no associated data can.
        if let Some(listed) = &header.accounts {
            if *listed != keystore.watch_accounts()? {
                return Err(KeystoreError::Corrupt(
                    "the clear account list does not match the encrypted accounts".into(),
                ));
            }
        }
        Ok(keystore)
    }
}

impl fmt::Debug for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystore")
            .field("network", &self.network)
            .field("accounts", &self.accounts)
            .field("file_version", &self.file_version)
            .field("seed", &"<redacted>")
            .finish()
    }
}

/// The file as it is on disk. Field order here is the order in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeystoreFile {
    version: u32,
    network: String,
    /// Version 2 only: the clear account list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accounts: Option<Vec<WatchAccount>>,
    kdf: KdfSection,
    cipher: CipherSection,
    ciphertext: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfSection {
    algorithm: String,
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CipherSection {
    algorithm: String,
    nonce: String,
}

/// Just the version, read first so that a future format with other fields is
/// reported as "unsupported version" rather than as damage.
#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

impl KeystoreFile {
    /// The one form Ember writes.
    fn encode(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(self).expect("a keystore file always serialises");
        text.push('\n');
        text
    }

    fn decode(bytes: &[u8]) -> Result<KeystoreFile, KeystoreError> {
        let probe: VersionProbe = serde_json::from_slice(bytes)
            .map_err(|e| KeystoreError::Corrupt(format!("not a keystore JSON object: {e}")))?;
        if probe.version != KEYSTORE_VERSION && probe.version != LEGACY_VERSION {
            return Err(KeystoreError::UnsupportedVersion(probe.version));
        }
        let file: KeystoreFile = serde_json::from_slice(bytes)
            .map_err(|e| KeystoreError::Corrupt(format!("unexpected content: {e}")))?;
        // One accepted encoding per content: with it, every changed byte either
        // changes an authenticated value or breaks this comparison.
        if file.encode().as_bytes() != bytes {
            return Err(KeystoreError::Corrupt(
                "the file is not in the exact form Ember writes (was it edited by hand?)".into(),
            ));
        }
        Ok(file)
    }

    /// Checks every header field and decodes it, before any expensive work.
    fn check(self) -> Result<(Header, Vec<u8>), KeystoreError> {
        if !is_valid_network(&self.network) {
            return Err(KeystoreError::Corrupt(format!("invalid network name {:?}", self.network)));
        }
        let accounts = match (self.version, self.accounts) {
            (LEGACY_VERSION, None) => None,
            (LEGACY_VERSION, Some(_)) => {
                return Err(KeystoreError::Corrupt(
                    "a version-1 file has no clear account list".into(),
                ))
            }
            (_, None) => {
                return Err(KeystoreError::Corrupt("the clear account list is missing".into()))
            }
            (_, Some(list)) => Some(check_watch_accounts(&self.network, list)?),
        };
        if self.kdf.algorithm != KDF_ALGORITHM {
            return Err(KeystoreError::Corrupt(format!(
                "unknown key-derivation algorithm {:?}",
                self.kdf.algorithm
            )));
        }
        if self.cipher.algorithm != CIPHER_ALGORITHM {
            return Err(KeystoreError::Corrupt(format!(
                "unknown cipher {:?}",
                self.cipher.algorithm
            )));
        }
        let params = KdfParams::new(self.kdf.m_cost, self.kdf.t_cost, self.kdf.p_cost)
            .map_err(|e| KeystoreError::Corrupt(e.to_string()))?;
        let salt = decode_hex("kdf salt", &self.kdf.salt)?;
        if salt.len() != SALT_LEN {
            return Err(KeystoreError::Corrupt(format!(
                "kdf salt is {} bytes, expected {SALT_LEN}",
                salt.len()
            )));
        }
        let nonce: [u8; NONCE_LEN] =
            decode_hex("cipher nonce", &self.cipher.nonce)?.try_into().map_err(|v: Vec<u8>| {
                KeystoreError::Corrupt(format!(
                    "cipher nonce is {} bytes, expected {NONCE_LEN}",
                    v.len()
                ))
            })?;
        let ciphertext = decode_hex("ciphertext", &self.ciphertext)?;
        if ciphertext.len() < SEED_LEN + TAG_LEN {
            return Err(KeystoreError::Corrupt("the ciphertext is too short".into()));
        }
        let header =
            Header { version: self.version, network: self.network, accounts, params, salt, nonce };
        Ok((header, ciphertext))
    }
}

/// The decoded header: everything the key and the associated data depend on.
struct Header {
    /// [`LEGACY_VERSION`] or [`KEYSTORE_VERSION`].
    version: u32,
    network: String,
    /// The clear account list (version 2), `None` in version 1.
    accounts: Option<Vec<WatchAccount>>,
    params: KdfParams,
    salt: Vec<u8>,
    nonce: [u8; NONCE_LEN],
}

impl Header {
    /// The AEAD associated data: every header field, each length-prefixed so that no
    /// two different headers give the same bytes.
    fn associated_data(&self) -> Vec<u8> {
        fn field(aad: &mut Vec<u8>, bytes: &[u8]) {
            let len = u32::try_from(bytes.len()).expect("header fields are short");
            aad.extend_from_slice(&len.to_be_bytes());
            aad.extend_from_slice(bytes);
        }
        let mut aad = Vec::with_capacity(128);
        field(&mut aad, AAD_DOMAIN);
        field(&mut aad, &self.version.to_be_bytes());
        field(&mut aad, self.network.as_bytes());
        field(&mut aad, KDF_ALGORITHM.as_bytes());
        field(&mut aad, &self.params.m_cost_kib.to_be_bytes());
        field(&mut aad, &self.params.t_cost.to_be_bytes());
        field(&mut aad, &self.params.p_cost.to_be_bytes());
        field(&mut aad, &self.salt);
        field(&mut aad, CIPHER_ALGORITHM.as_bytes());
        field(&mut aad, &self.nonce);
        // Appended last, and only in version 2, so that version-1 files keep the
        // associated data they were written with. The count first, so that no two lists
        // give the same bytes.
        if let Some(accounts) = &self.accounts {
            let count = u32::try_from(accounts.len()).expect("a keystore file is under 1 MiB");
            field(&mut aad, &count.to_be_bytes());
            for account in accounts {
                field(&mut aad, &account.index.to_be_bytes());
                field(&mut aad, account.label.as_bytes());
                field(&mut aad, account.address.as_bytes());
            }
        }
        aad
    }
}

/// argon2id(passphrase, salt) → 32-byte XChaCha20-Poly1305 key.
fn derive_key(
    passphrase: &[u8],
    header: &Header,
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeystoreError> {
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, header.params.to_argon2()?);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    argon2
        .hash_password_into(passphrase, &header.salt, key.as_mut_slice())
        .map_err(|e| KeystoreError::InvalidKdfParams(e.to_string()))?;
    Ok(key)
}

/// Strict lowercase hex: the `hex` crate also takes uppercase, which would give one
/// value two encodings and let a flipped case bit through unnoticed.
fn decode_hex(what: &str, text: &str) -> Result<Vec<u8>, KeystoreError> {
    if !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(KeystoreError::Corrupt(format!("{what} is not lowercase hex")));
    }
    hex::decode(text).map_err(|e| KeystoreError::Corrupt(format!("{what}: {e}")))
}

fn is_valid_network(network: &str) -> bool {
    // A tame alphabet: the name is shown to users and may end up in file names.
    !network.is_empty()
        && network.len() <= MAX_NETWORK_LEN
        && network.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_valid_label(label: &str) -> bool {
    // Labels are printed to terminals: control characters could rewrite the screen.
    (1..=MAX_LABEL_CHARS).contains(&label.chars().count()) && !label.chars().any(char::is_control)
}

fn check_accounts(accounts: &[Account]) -> Result<(), KeystoreError> {
    let mut seen = std::collections::HashSet::new();
    for account in accounts {
        if account.index >= HARDENED_OFFSET || !seen.insert(account.index) {
            return Err(KeystoreError::Corrupt(format!(
                "account index {} is out of range or repeated",
                account.index
            )));
        }
        if !is_valid_label(&account.label) {
            return Err(KeystoreError::Corrupt(format!(
                "invalid account label {:?}",
                account.label
            )));
        }
    }
    Ok(())
}

/// The clear account list: indices below 2^31 and not repeated, labels as `add_account`
/// takes them, each address a valid
/// address of `network` in its one lowercase form. (Whether they are *this seed's*
/// addresses is known only after decryption.)
fn check_watch_accounts(
    network: &str,
    accounts: Vec<WatchAccount>,
) -> Result<Vec<WatchAccount>, KeystoreError> {
    let network: Network = network
        .parse()
        .map_err(|_| KeystoreError::Corrupt(format!("unknown network {network:?}")))?;
    let mut seen = std::collections::HashSet::new();
    for account in &accounts {
        if account.index >= HARDENED_OFFSET || !seen.insert(account.index) {
            return Err(KeystoreError::Corrupt(format!(
                "clear account list: index {} is out of range or repeated",
                account.index
            )));
        }
        if !is_valid_label(&account.label) {
            return Err(KeystoreError::Corrupt(format!(
                "clear account list: invalid label {:?}",
                account.label
            )));
        }
        let canonical = Address::parse(&account.address, network.hrp())
            .map(|a| a.to_bech32(network.hrp()))
            .map_err(|e| KeystoreError::Corrupt(format!("clear account list: {e}")))?;
        if canonical != account.address {
            return Err(KeystoreError::Corrupt(format!(
                "clear account list: {:?} is not in lowercase form",
                account.address
            )));
        }
    }
    Ok(accounts)
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> KeystoreError {
    let path = path.to_owned();
    move |source| KeystoreError::Io { action, path, source }
}

/// Reads the whole file, refusing anything larger than a keystore can be.
fn read_limited(path: &Path) -> Result<Vec<u8>, KeystoreError> {
    let file = File::open(path).map_err(io_error("open", path))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1).read_to_end(&mut bytes).map_err(io_error("read", path))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(KeystoreError::Corrupt(format!(
            "the file is larger than {MAX_FILE_LEN} bytes"
        )));
    }
    Ok(bytes)
}

/// Removes the temporary file unless the write went through.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            // Best effort: the error being returned matters more than this one.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `contents` so that `path` holds either the old state or the complete new
/// file, even across a crash: temp file (0600) in the same directory, fsync, then
/// link or rename into place, then fsync the directory so the new name is durable.
fn write_atomically(path: &Path, contents: &[u8], mode: WriteMode) -> Result<(), KeystoreError> {
    let file_name = path.file_name().ok_or_else(|| KeystoreError::Io {
        action: "write",
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
    })?;
    // Same directory as the target, so the final rename never crosses filesystems.
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".{}.{:016x}.tmp", std::process::id(), OsRng.next_u64()));
    let mut temp = TempFile { path: dir.join(temp_name), keep: false };

    {
        // 0600 at creation, so the file is never readable by others, not even for a
        // moment; `create_new` so we never write through someone else's file.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp.path)
            .map_err(io_error("create", &temp.path))?;
        file.write_all(contents).map_err(io_error("write", &temp.path))?;
        file.sync_all().map_err(io_error("sync", &temp.path))?;
    }

    match mode {
        WriteMode::Replace => {
            fs::rename(&temp.path, path).map_err(io_error("move the new keystore onto", path))?;
            temp.keep = true;
        }
        WriteMode::CreateNew => {
            // A hard link fails if the target exists, atomically, where a rename would
            // silently replace it. The temp name is then removed by the guard.
            match fs::hard_link(&temp.path, path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(KeystoreError::AlreadyExists(path.to_owned()));
                }
                // Filesystems without hard links: check, then rename. Only a file
                // created in the instant between the two could be replaced.
                Err(_) => {
                    if path.symlink_metadata().is_ok() {
                        return Err(KeystoreError::AlreadyExists(path.to_owned()));
                    }
                    fs::rename(&temp.path, path)
                        .map_err(io_error("move the new keystore onto", path))?;
                    temp.keep = true;
                }
            }
        }
    }
    drop(temp);

    File::open(&dir).and_then(|d| d.sync_all()).map_err(io_error("sync directory", &dir))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const PASSPHRASE: &[u8] = b"correct horse battery staple";

    /// Weak costs so the tests run fast (see the brief: m=1024 KiB, t=1).
    fn test_params() -> KdfParams {
        KdfParams::new(1024, 1, 1).unwrap()
    }

    fn sample() -> (Mnemonic, Keystore) {
        let mnemonic = Mnemonic::generate();
        let mut keystore = Keystore::from_mnemonic("testnet", &mnemonic, "").unwrap();
        keystore.add_account("main").unwrap();
        keystore.add_account("savings ✓").unwrap();
        (mnemonic, keystore)
    }

    fn saved() -> (tempfile::TempDir, PathBuf, Mnemonic, Keystore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.json");
        let (mnemonic, keystore) = sample();
        keystore.save(&path, PASSPHRASE, test_params(), WriteMode::CreateNew).unwrap();
        (dir, path, mnemonic, keystore)
    }

    fn dir_listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn round_trip() {
        let (dir, path, mnemonic, keystore) = saved();
        let opened = Keystore::open(&path, PASSPHRASE).unwrap();
        assert_eq!(opened.network(), "testnet");
        assert_eq!(opened.seed(), &mnemonic.seed());
        assert_eq!(opened.accounts(), keystore.accounts());
        assert_eq!(opened.accounts()[1].label(), "savings ✓");
        assert_eq!(
            opened.account_key(1).unwrap().secret(),
            keystore.account_key(1).unwrap().secret()
        );
        assert!(matches!(opened.account_key(2), Err(KeystoreError::UnknownAccount(2))));
        // No temporary file is left behind.
        assert_eq!(dir_listing(dir.path()), vec!["wallet.json"]);
    }

    #[test]
    fn file_has_the_documented_shape() {
        let (_dir, path, _, _) = saved();
        let text = fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["version"], 2);
        assert_eq!(value["network"], "testnet");
        let listed = value["accounts"].as_array().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1]["index"], 1);
        assert!(listed[1]["address"].as_str().unwrap().starts_with("etest1"));
        assert_eq!(listed[1].as_object().unwrap().len(), 3, "index, label and address only");
        assert_eq!(listed[1]["label"], "savings ✓");
        assert_eq!(value["kdf"]["algorithm"], "argon2id");
        assert_eq!(value["kdf"]["m_cost"], 1024);
        assert_eq!(value["kdf"]["t_cost"], 1);
        assert_eq!(value["kdf"]["p_cost"], 1);
        assert_eq!(value["kdf"]["salt"].as_str().unwrap().len(), 2 * SALT_LEN);
        assert_eq!(value["cipher"]["algorithm"], "xchacha20poly1305");
        assert_eq!(value["cipher"]["nonce"].as_str().unwrap().len(), 2 * NONCE_LEN);
    }

    #[test]
    fn file_mode_is_0600() {
        let (_dir, path, _, _) = saved();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }

    #[test]
    fn wrong_passphrase_is_refused_and_nothing_changes() {
        let (dir, path, _, _) = saved();
        let before = fs::read(&path).unwrap();
        let err = Keystore::open(&path, b"wrong").unwrap_err();
        assert!(matches!(err, KeystoreError::WrongPassphrase), "{err:?}");
        assert_eq!(err.to_string(), "wrong passphrase or the keystore file was modified");
        assert_eq!(fs::read(&path).unwrap(), before);
        assert_eq!(dir_listing(dir.path()), vec!["wallet.json"]);
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let (_dir, path, _, _) = saved();
        let original = fs::read(&path).unwrap();
        let (mut tried, mut caught_by_aead) = (0, 0);
        for position in (0..original.len()).step_by(7) {
            // Low bit (digit → digit), case bit (hex a → A), top bit (not UTF-8).
            for mask in [0x01u8, 0x20, 0x80] {
                let mut bytes = original.clone();
                bytes[position] ^= mask;
                fs::write(&path, &bytes).unwrap();
                match Keystore::open(&path, PASSPHRASE) {
                    Ok(_) => panic!(
                        "byte {position} ^ {mask:#04x} ({:?} → {:?}) was accepted",
                        original[position] as char, bytes[position] as char
                    ),
                    // Reached the cipher: the change was well-formed and only
                    // authentication caught it.
                    Err(KeystoreError::WrongPassphrase) => caught_by_aead += 1,
                    Err(_) => {}
                }
                tried += 1;
            }
        }
        assert!(tried > 100, "only {tried} variants tried");
        assert!(caught_by_aead > 10, "only {caught_by_aead} flips reached the cipher");
        fs::write(&path, &original).unwrap();
        assert!(Keystore::open(&path, PASSPHRASE).is_ok());
    }

    /// Rewrites one header value in canonical form, so that only the associated data
    /// can catch it.
    fn tamper(path: &Path, change: impl FnOnce(&mut KeystoreFile)) -> KeystoreError {
        let original = fs::read(path).unwrap();
        let mut file = KeystoreFile::decode(&original).unwrap();
        change(&mut file);
        fs::write(path, file.encode()).unwrap();
        let err = Keystore::open(path, PASSPHRASE).unwrap_err();
        fs::write(path, original).unwrap();
        err
    }

    #[test]
    fn header_fields_are_bound_to_the_ciphertext() {
        let (_dir, path, _, _) = saved();
        type Change = fn(&mut KeystoreFile);
        let changes: [(&str, Change); 10] = [
            ("accounts: addresses swapped", |f| {
                let list = f.accounts.as_mut().unwrap();
                let first = list[0].address.clone();
                list[0].address = std::mem::replace(&mut list[1].address, first);
            }),
            ("accounts: one dropped", |f| {
                f.accounts.as_mut().unwrap().pop();
            }),
            ("accounts: index changed", |f| f.accounts.as_mut().unwrap()[1].index = 7),
            ("accounts: another valid address", |f| {
                f.accounts.as_mut().unwrap()[0].address =
                    Address::from_bytes([9u8; 32]).to_bech32(Network::Testnet.hrp())
            }),
            ("network (with its addresses' prefix)", |f| {
                f.network = "devnet".into();
                for a in f.accounts.as_mut().unwrap() {
                    let bytes = *Address::parse(&a.address, "etest").unwrap().as_bytes();
                    a.address = Address::from_bytes(bytes).to_bech32("edev");
                }
            }),
            ("m_cost", |f| f.kdf.m_cost = 2048),
            ("t_cost", |f| f.kdf.t_cost = 2),
            ("p_cost", |f| f.kdf.p_cost = 2),
            ("salt", |f| f.kdf.salt = "00".repeat(SALT_LEN)),
            ("nonce", |f| f.cipher.nonce = "00".repeat(NONCE_LEN)),
        ];
        for (what, change) in changes {
            let err = tamper(&path, change);
            assert!(matches!(err, KeystoreError::WrongPassphrase), "{what}: {err:?}");
        }
        // In version 2 the addresses name the network too: caught before the KDF.
        let err = tamper(&path, |f| f.network = "devnet".into());
        assert!(matches!(err, KeystoreError::Corrupt(_)), "{err:?}");
        let err = tamper(&path, |f| f.kdf.algorithm = "argon2i".into());
        assert!(matches!(err, KeystoreError::Corrupt(_)), "{err:?}");
        let err = tamper(&path, |f| f.cipher.algorithm = "aes-gcm".into());
        assert!(matches!(err, KeystoreError::Corrupt(_)), "{err:?}");
        let err = tamper(&path, |f| f.kdf.m_cost = MAX_M_COST_KIB + 1);
        assert!(matches!(err, KeystoreError::Corrupt(_)), "{err:?}");
    }

    #[test]
    fn truncated_file_is_refused() {
        let (_dir, path, _, _) = saved();
        let original = fs::read(&path).unwrap();
        for len in [0, 1, original.len() / 2, original.len() - 2, original.len() - 1] {
            fs::write(&path, &original[..len]).unwrap();
            let err = Keystore::open(&path, PASSPHRASE).unwrap_err();
            assert!(matches!(err, KeystoreError::Corrupt(_)), "len {len}: {err:?}");
        }
    }

    #[test]
    fn hand_edited_file_is_refused() {
        let (_dir, path, _, _) = saved();
        let text = fs::read_to_string(&path).unwrap();
        // Same values, other hex case: passes the form check, caught by strict hex.
        let mut upper = KeystoreFile::decode(text.as_bytes()).unwrap();
        upper.ciphertext = upper.ciphertext.to_uppercase();
        for edited in [
            text.replace("  ", "    "),
            text.trim_end().to_owned(),
            format!("{text}\n"),
            upper.encode(),
        ] {
            fs::write(&path, edited).unwrap();
            let err = Keystore::open(&path, PASSPHRASE).unwrap_err();
            assert!(matches!(err, KeystoreError::Corrupt(_)), "{err:?}");
        }
    }

    #[test]
    fn unknown_version_is_refused() {
        let (_dir, path, _, _) = saved();
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("\"version\": 2,", "\"version\": 3,")).unwrap();
        let err = Keystore::open(&path, PASSPHRASE).unwrap_err();
        assert!(matches!(err, KeystoreError::UnsupportedVersion(3)), "{err:?}");
        // A future format may look entirely different; the version still decides.
        fs::write(&path, r#"{"version": 7, "whatever": []}"#).unwrap();
        let err = Keystore::open(&path, PASSPHRASE).unwrap_err();
        assert!(matches!(err, KeystoreError::UnsupportedVersion(7)), "{err:?}");
    }

    #[test]
    fn existing_file_is_not_overwritten_unless_asked() {
        let (dir, path, _, _) = saved();
        let before = fs::read(&path).unwrap();
        let (_, other) = sample();
        let err = other.save(&path, b"other", test_params(), WriteMode::CreateNew).unwrap_err();
        assert!(matches!(err, KeystoreError::AlreadyExists(ref p) if p == &path));
        assert_eq!(fs::read(&path).unwrap(), before);

        other.save(&path, b"other", test_params(), WriteMode::Replace).unwrap();
        let opened = Keystore::open(&path, b"other").unwrap();
        assert_eq!(opened.seed(), other.seed());
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(dir_listing(dir.path()), vec!["wallet.json"]);
    }

    #[test]
    fn io_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.json");
        let err = Keystore::open(&path, PASSPHRASE).unwrap_err();
        assert!(matches!(err, KeystoreError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("missing.json"), "{err}");

        let (_, keystore) = sample();
        let nowhere = dir.path().join("no-such-dir").join("wallet.json");
        let err =
            keystore.save(&nowhere, PASSPHRASE, test_params(), WriteMode::CreateNew).unwrap_err();
        assert!(err.to_string().contains("no-such-dir"), "{err}");
    }

    #[test]
    fn kdf_params_are_checked() {
        assert_eq!(KdfParams::default().m_cost_kib(), 65536);
        assert_eq!(KdfParams::default().t_cost(), 3);
        assert_eq!(KdfParams::default().p_cost(), 1);
        assert!(KdfParams::new(1024, 0, 1).is_err());
        assert!(KdfParams::new(1024, 1, 0).is_err());
        assert!(KdfParams::new(4, 1, 1).is_err());
        assert!(KdfParams::new(MAX_M_COST_KIB + 1, 1, 1).is_err());
        assert!(KdfParams::new(1024, 1, u32::MAX).is_err());
        assert!(KdfParams::new(1024, 1, 1).is_ok());
    }

    #[test]
    fn reopened_keystore_keeps_its_kdf_costs_and_peek_reads_the_network() {
        let (_dir, path, _, keystore) = saved();
        assert_eq!(keystore.kdf_params(), KdfParams::RECOMMENDED);
        let before = fs::read(&path).unwrap();
        assert_eq!(Keystore::peek_network(&path).unwrap(), "testnet");
        let opened = Keystore::open(&path, PASSPHRASE).unwrap();
        assert_eq!(opened.kdf_params(), test_params());
        assert_eq!(fs::read(&path).unwrap(), before, "peek and open never write");
        fs::write(&path, &before[..before.len() / 2]).unwrap();
        assert!(matches!(Keystore::peek_network(&path), Err(KeystoreError::Corrupt(_))));
    }

    /// A version-1 file as Ember wrote it before version 2 (devnet, the public dev seed,
    /// dev accounts 0 and 3, test KDF costs, passphrase "v1-pass").
    const V1_FILE: &str = include_str!("../testdata/keystore_v1.json");
    const V1_PASSPHRASE: &[u8] = b"v1-pass";
    const DEV_0: &str = "edev156tr60nxqza80tsj4dwzrlm2jf9l9608fak35d50kw68wvdzgfpqgdfu7d";
    const DEV_3: &str = "edev1d50ea68qn83s2p5z8mkydlkr96t0rdn0y74vtl07jse4spzuepjs6yc2wf";

    #[test]
    fn clear_account_list_is_read_without_the_passphrase() {
        let (_dir, path, _, keystore) = saved();
        let listed = Keystore::peek_accounts(&path).unwrap().expect("a version-2 file");
        assert_eq!(listed, keystore.watch_accounts().unwrap());
        assert_eq!(listed.iter().map(|a| a.index()).collect::<Vec<_>>(), vec![0, 1]);
        let expected = Address::from_bytes(keystore.account_key(1).unwrap().verifying_key());
        assert_eq!(listed[1].address(), expected.to_bech32("etest"));
        let opened = Keystore::open(&path, PASSPHRASE).unwrap();
        assert_eq!(opened.file_version(), KEYSTORE_VERSION);
        assert!(!opened.needs_upgrade());
    }

    #[test]
    fn version_1_files_open_and_are_rewritten_as_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.json");
        fs::write(&path, V1_FILE).unwrap();
        assert_eq!(Keystore::check_file(V1_FILE.as_bytes()).unwrap(), "devnet");
        assert_eq!(Keystore::peek_accounts(&path).unwrap(), None, "no clear list in version 1");
        let opened = Keystore::open(&path, V1_PASSPHRASE).unwrap();
        assert_eq!(opened.file_version(), LEGACY_VERSION);
        assert!(opened.needs_upgrade());
        assert_eq!(opened.seed(), &crate::dev_seed());
        assert_eq!(opened.account(3).unwrap().label(), "dev 3");
        assert_eq!(fs::read_to_string(&path).unwrap(), V1_FILE, "opening never writes");
        assert!(matches!(Keystore::open(&path, b"wrong"), Err(KeystoreError::WrongPassphrase)));

        opened.save(&path, V1_PASSPHRASE, opened.kdf_params(), WriteMode::Replace).unwrap();
        let listed = Keystore::peek_accounts(&path).unwrap().expect("now version 2");
        let addresses: Vec<&str> = listed.iter().map(|a| a.address()).collect();
        assert_eq!(addresses, vec![DEV_0, DEV_3]);
        let reopened = Keystore::open(&path, V1_PASSPHRASE).unwrap();
        assert!(!reopened.needs_upgrade());
        assert_eq!(reopened.accounts(), opened.accounts());
        assert_eq!(reopened.kdf_params(), opened.kdf_params());
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(dir_listing(dir.path()), vec!["old.json"]);
    }

    #[test]
    fn clear_list_must_fit_the_version() {
        // Version 1 with a list, version 2 without one: both refused before any KDF.
        let mut v1 = KeystoreFile::decode(V1_FILE.as_bytes()).unwrap();
        v1.accounts =
            Some(vec![WatchAccount { index: 0, label: "main".into(), address: DEV_0.into() }]);
        let err = Keystore::check_file(v1.encode().as_bytes()).unwrap_err();
        assert!(matches!(err, KeystoreError::Corrupt(_)), "{err:?}");
        let (_dir, path, _, _) = saved();
        let mut v2 = KeystoreFile::decode(&fs::read(&path).unwrap()).unwrap();
        v2.accounts = None;
        let err = Keystore::check_file(v2.encode().as_bytes()).unwrap_err();
        assert!(matches!(err, KeystoreError::Corrupt(_)), "{err:?}");
        // Not an address of the file's network, or repeated: refused when peeking too.
        for bad in [DEV_0.to_owned(), "etest1nonsense".to_owned()] {
            let mut v2 = KeystoreFile::decode(&fs::read(&path).unwrap()).unwrap();
            v2.accounts.as_mut().unwrap()[0].address = bad.clone();
            fs::write(&path, v2.encode()).unwrap();
            let err = Keystore::peek_accounts(&path).unwrap_err();
            assert!(matches!(err, KeystoreError::Corrupt(_)), "{bad}: {err:?}");
        }
    }

    #[test]
    fn an_authentic_but_wrong_clear_list_is_refused_after_decryption() {
        // A writer that is not this code (same key, list in the associated data) listing
        // an address that is not the seed's: only the check after decryption sees it.
        let (_dir, path, _, keystore) = saved();
        let mut file = KeystoreFile::decode(&fs::read(&path).unwrap()).unwrap();
        let mut accounts = keystore.watch_accounts().unwrap();
        accounts[0].address = Address::from_bytes([9u8; 32]).to_bech32("etest");
        file.accounts = Some(accounts);
        let (header, _) = file.clone().check().unwrap();
        let key = derive_key(PASSPHRASE, &header).unwrap();
        let mut buffer = keystore.seed().as_bytes().to_vec();
        buffer.extend_from_slice(&serde_json::to_vec(keystore.accounts()).unwrap());
        XChaCha20Poly1305::new(Key::from_slice(key.as_slice()))
            .encrypt_in_place(
                XNonce::from_slice(&header.nonce),
                &header.associated_data(),
                &mut buffer,
            )
            .unwrap();
        file.ciphertext = hex::encode(&buffer);
        fs::write(&path, file.encode()).unwrap();
        let err = Keystore::open(&path, PASSPHRASE).unwrap_err();
        assert!(
            matches!(err, KeystoreError::Corrupt(ref m) if m.contains("clear account list")),
            "{err:?}"
        );
    }

    #[test]
    fn accounts_can_be_added_at_a_chosen_index() {
        let mut keystore = Keystore::new("devnet", Seed::from_bytes([5u8; 64])).unwrap();
        keystore.add_account_at(3, "dev 3").unwrap();
        assert!(matches!(
            keystore.add_account_at(3, "again"),
            Err(KeystoreError::DuplicateAccount(3))
        ));
        assert!(matches!(
            keystore.add_account_at(HARDENED_OFFSET, "big"),
            Err(KeystoreError::AccountIndexTooLarge(_))
        ));
        assert_eq!(keystore.add_account("next").unwrap(), 4);
        assert_eq!(
            keystore.account_key(3).unwrap().secret(),
            derive_account(keystore.seed(), 3).unwrap().secret()
        );
    }

    #[test]
    fn names_and_labels_are_checked() {
        let seed = Seed::from_bytes([1u8; 64]);
        assert!(Keystore::new("", seed.clone()).is_err());
        assert!(Keystore::new("Main Net", seed.clone()).is_err());
        let mut keystore = Keystore::new("devnet-2", seed).unwrap();
        assert!(matches!(keystore.add_account(""), Err(KeystoreError::InvalidLabel(_))));
        assert!(keystore.add_account("evil\x1b[2J").is_err());
        assert!(keystore.add_account(&"x".repeat(MAX_LABEL_CHARS + 1)).is_err());
        assert_eq!(keystore.add_account("a").unwrap(), 0);
        assert_eq!(keystore.add_account("b").unwrap(), 1);
    }

    #[test]
    fn debug_is_redacted() {
        let (mnemonic, keystore) = sample();
        let shown = format!("{keystore:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains(&hex::encode(keystore.seed().as_bytes())));
        assert!(!shown.contains(&hex::encode(&keystore.seed().as_bytes()[..16])));
        assert!(!shown.contains(&hex::encode(*mnemonic.entropy())));
        assert!(!shown.contains(mnemonic.phrase().as_str()));
        let err = format!("{:?}", KeystoreError::WrongPassphrase);
        assert!(!err.contains(&hex::encode(keystore.seed().as_bytes())));
    }
}
