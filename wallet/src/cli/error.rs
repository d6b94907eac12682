//! The errors a wallet user sees: one message that says what happened and what to do,
//! a short `kind` for scripts (`--json` prints `{"error": {"kind", "message"}}` on
//! stderr), and the process exit code.
//!
//! No variant carries a secret: passphrases, recovery phrases and keys are never part of
//! an error, and the library errors wrapped here promise the same.

use std::path::PathBuf;

use ember_wallet::keystore::KeystoreError;
use ember_wallet::mnemonic::MnemonicError;
use ember_wallet::node_client::NodeError;
use ember_wallet::payment::PaymentError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An argument is wrong in a way clap cannot see (a txid that is not hex, ...).
    #[error("{0}")]
    Invalid(String),
    /// The wallet file does not exist.
    #[error(
        "no wallet at {}: create one with `ember-wallet create`, or choose a file with --wallet",
        .0.display()
    )]
    NoWallet(PathBuf),
    /// Opening, creating or saving the wallet file failed.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The recovery phrase given to `restore` is not valid.
    #[error("{0}; nothing was written")]
    Mnemonic(#[from] MnemonicError),
    /// No passphrase could be had, or the two typed ones differ.
    #[error("{0}")]
    Passphrase(String),
    /// The wallet, the node and the flags do not agree on the network.
    #[error("{0}")]
    WrongNetwork(String),
    /// A payment was refused before it was signed.
    #[error(transparent)]
    Payment(#[from] PaymentError),
    /// The node could not be reached, refused, or did not know the answer.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// `--wait` ran out of time; the transaction is still pending, or the node could not
    /// say (its index catching up).
    #[error(
        "transaction {txid} was submitted but is not seen confirmed after {secs} s; {why}; \
         check with `ember-wallet tx {txid}`"
    )]
    WaitTimeout {
        /// The transaction waited for.
        txid: String,
        /// How long we waited.
        secs: u64,
        /// What the node last said of it, and why no block took it when the node tells.
        why: String,
    },
    /// While waiting, the node stopped knowing the transaction.
    #[error(
        "transaction {0} was submitted, but the node no longer knows it (dropped from its \
         mempool, e.g. replaced or expired); it is not confirmed"
    )]
    Dropped(String),
    /// Reading input (stdin, passphrase file) or creating a directory failed.
    #[error("{0}")]
    Io(String),
}

impl CliError {
    /// A short, stable name of the failure, for scripts.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Invalid(_) => "invalid_argument",
            CliError::NoWallet(_) => "no_wallet",
            CliError::Keystore(KeystoreError::WrongPassphrase) => "wrong_passphrase",
            CliError::Keystore(KeystoreError::AlreadyExists(_)) => "wallet_exists",
            CliError::Keystore(_) => "wallet",
            CliError::Mnemonic(_) => "invalid_mnemonic",
            CliError::Passphrase(_) => "passphrase",
            CliError::WrongNetwork(_) => "wrong_network",
            CliError::Payment(PaymentError::WrongNetwork { .. }) => "wrong_network",
            CliError::Payment(PaymentError::InsufficientFunds { .. }) => "insufficient_funds",
            CliError::Payment(PaymentError::FeeTooLow { .. }) => "fee_too_low",
            CliError::Payment(_) => "invalid_argument",
            CliError::Node(NodeError::Unreachable { .. }) => "node_unreachable",
            CliError::Node(NodeError::Refused { .. }) => "refused",
            CliError::Node(NodeError::NotFound(_)) => "not_found",
            CliError::Node(NodeError::IndexCatchingUp { .. }) => "index_catching_up",
            CliError::Node(_) => "node_error",
            CliError::WaitTimeout { .. } => "timeout",
            CliError::Dropped(_) => "dropped",
            CliError::Io(_) => "io",
        }
    }

    /// The process exit code: 3 for a `--wait` timeout (the payment may still go
    /// through), 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::WaitTimeout { .. } => 3,
            _ => 1,
        }
    }
}
