//! ember-wallet: the wallet's key material — where keys come from, how they are
//! derived, and how they are kept on disk — plus the payments made with them and the
//! node they are sent to. The CLI (`src/main.rs`, `src/cli/`) is built on this library.
//!
//! The modules, in the order a key passes through them:
//!
//! - [`mnemonic`]: 24 BIP39 English words, generated from OS randomness and shown to
//!   the user once; parsing with clear errors (word count, unknown word, checksum);
//!   the 64-byte BIP39 seed, with an optional BIP39 passphrase.
//! - [`derive`](mod@derive): SLIP-0010 ed25519 derivation from the seed, hardened-only, along
//!   `m/44'/7337'/account'/0'/0'` (7337 = Ember's coin type), giving an
//!   `ed25519_dalek::SigningKey` and its 32-byte public key per account.
//! - [`keystore`]: the encrypted keystore file — seed plus account list, under
//!   argon2id + XChaCha20-Poly1305 with the header bound as associated data, written
//!   atomically with mode 0600.
//! - [`payment`]: a payment before it is signed — recipient of the right network, strict
//!   decimal amounts, fee at least the node's minimum, enough available balance — then
//!   the body and its signature. No I/O.
//! - [`node_client`]: typed answers of the node's JSON-RPC methods a wallet uses, and one
//!   error per thing a user can act on (unreachable, refused with a reason, not found).
//! - [`rpc`]: the plain blocking JSON-RPC 2.0 client under it (also used by the testnet
//!   tool and the tests).
//!
//! Secret-handling rules kept throughout (DESIGN.md §6): secrets live in
//! `zeroize::Zeroizing` buffers and are wiped on drop; no type holding a secret has
//! `Display`, and its `Debug` prints `<redacted>`; error messages never quote secrets
//! (not even a mistyped mnemonic word).

/// `eprintln!` that ignores a failed write instead of panicking: with stderr closed (e.g.
/// `2>&1 | head -1` after `head` exits) a diagnostic nobody can read is not worth a crash.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that ignores a failed write (see [`errln!`]).
#[macro_export]
macro_rules! errout {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
        let _ = std::io::stderr().flush();
    }};
}

pub mod derive;
pub mod keystore;
pub mod mnemonic;
pub mod node_client;
pub mod payment;
pub mod rpc;

pub use derive::{derive_account, DerivationPath, DeriveError, ExtendedKey, COIN_TYPE};
pub use keystore::{Account, KdfParams, Keystore, KeystoreError, WriteMode};
pub use mnemonic::{Mnemonic, MnemonicError, Seed};

/// The seed of the public dev mnemonic ([`ember_core::params::DEV_MNEMONIC`], 12 words),
/// whose first ten accounts the built-in devnet prefunds. Anyone can spend them: for
/// local devnets only. (12 words, so it does not go through [`Mnemonic::parse`], which
/// accepts only Ember's own 24-word phrases.)
pub fn dev_seed() -> Seed {
    let phrase = bip39::Mnemonic::parse_in_normalized(
        bip39::Language::English,
        ember_core::params::DEV_MNEMONIC,
    )
    .expect("the dev mnemonic is a valid BIP39 phrase");
    Seed::from_bytes(phrase.to_seed_normalized(""))
}

/// The key of dev account `index` of the public dev mnemonic (see [`dev_seed`]).
pub fn dev_keypair(index: u32) -> ember_core::Keypair {
    let key = derive_account(&dev_seed(), index).expect("dev account indices are below 2^31");
    ember_core::Keypair::from_secret_bytes(*key.secret())
}
