//! The `ember-wallet` command line: its arguments (clap), with help and examples for every
//! command, and the dispatch to the commands.
//!
//! | module | what it does |
//! |---|---|
//! | [`session`] | global options: wallet path, node, network, passphrase, KDF strength |
//! | [`keys`] | commands on the wallet file: create, restore, address, accounts, new-account, import-dev-key |
//! | [`pay`] | commands that talk to the node: balance, send, history, tx, sign, broadcast |
//! | [`output`] | one result per command, printed as text or as JSON (`--json`) |
//! | [`error`] | the errors a user sees, with a kind for scripts and an exit code |
//!
//! Exit codes: 0 success; 1 the command failed (message on stderr); 2 the command line
//! is wrong (clap); 3 `--wait` timed out while the transaction was still pending.

pub mod error;
pub mod keys;
pub mod output;
pub mod pay;
pub mod session;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ember_core::Network;

use self::error::CliError;
use self::output::Outcome;
use self::session::Session;

/// The node the wallet talks to unless told otherwise: a local devnet node.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:8545";

const MAIN_EXAMPLES: &str = "\
Examples:
  ember-wallet create                                # new wallet; shows its 24 words ONCE
  ember-wallet import-dev-key --wallet dev.json      # devnet: a wallet holding dev account 0
  ember-wallet balance
  ember-wallet send --to edev1... --amount 12.5 --wait
  ember-wallet history
  EMBER_WALLET_PASSPHRASE=... ember-wallet --json balance   # scripts

Passphrase: from --passphrase-file, else EMBER_WALLET_PASSPHRASE, else a prompt.
Exit codes: 0 ok, 1 failed, 2 bad command line, 3 --wait timed out (still pending).";

/// Send and receive Ember coins: keys stay encrypted on this computer, payments are
/// signed here and sent to a node.
#[derive(Debug, Parser)]
#[command(name = "ember-wallet", version, after_help = MAIN_EXAMPLES)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The wallet file [default: <user data dir>/ember/wallet.json, e.g.
    /// ~/.local/share/ember/wallet.json]
    #[arg(long, global = true, value_name = "FILE")]
    pub wallet: Option<PathBuf>,

    /// The node's JSON-RPC URL, http://HOST:PORT (HOST:PORT alone means http://HOST:PORT).
    #[arg(long, global = true, value_name = "URL", env = "EMBER_NODE", default_value = DEFAULT_NODE_URL)]
    pub node: String,

    /// The network [default: a new wallet takes the node's network (devnet when no node
    /// answers); an existing wallet keeps the one it was made for].
    #[arg(long, global = true, value_enum, value_name = "NETWORK")]
    pub network: Option<NetworkArg>,

    /// Print results as JSON (errors as JSON on stderr) for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    /// Read the wallet passphrase from the first line of FILE instead of prompting
    /// (takes precedence over EMBER_WALLET_PASSPHRASE).
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// `--network` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    /// Local development network.
    Devnet,
    /// Public test network.
    Testnet,
}

impl From<NetworkArg> for Network {
    fn from(n: NetworkArg) -> Network {
        match n {
            NetworkArg::Devnet => Network::Devnet,
            NetworkArg::Testnet => Network::Testnet,
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new wallet: shows its 24-word recovery phrase once.
    #[command(after_help = "\
The 24 words are the only backup of the wallet: write them down, in order, and keep
them offline. They are shown this once and never again; anyone who sees them can spend
the wallet's coins. The wallet file is encrypted with a passphrase (asked twice).

Examples:
  ember-wallet create
  ember-wallet create --wallet ~/ember/savings.json --network testnet
  EMBER_WALLET_PASSPHRASE=... ember-wallet --json create    # scripts: words in \"mnemonic\"")]
    Create {
        /// Label of the first account.
        #[arg(long, default_value = "main")]
        label: String,
    },

    /// Restore a wallet from its 24-word recovery phrase (prompted, or read from stdin).
    #[command(after_help = "\
The phrase is read without echo from the terminal, or from standard input when that is
not a terminal. Accounts 0..N-1 are restored with --accounts N.

Examples:
  ember-wallet restore --wallet restored.json
  ember-wallet restore --wallet restored.json < phrase.txt")]
    Restore {
        /// How many accounts (0, 1, ...) to restore.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        accounts: u32,
    },

    /// Show an account's address, to receive coins.
    #[command(after_help = "\
Examples:
  ember-wallet address
  ember-wallet address --account 1")]
    Address {
        #[command(flatten)]
        account: AccountArg,
    },

    /// List the wallet's accounts and their addresses.
    #[command(after_help = "\
Examples:
  ember-wallet accounts
  ember-wallet --json accounts")]
    Accounts,

    /// Add an account to the wallet (derived from the same recovery phrase).
    #[command(after_help = "\
Examples:
  ember-wallet new-account
  ember-wallet new-account --label savings")]
    NewAccount {
        /// A name for the account [default: \"account N\"].
        #[arg(long)]
        label: Option<String>,
    },

    /// Show an account's balance: confirmed, pending, and available to spend.
    #[command(after_help = "\
'confirmed' is the balance in the node's best chain; 'pending' is what this account's
payments still waiting in the node's mempool will spend; 'available' is what a new
payment can use.

The chain height shown is the node's height now, up to which 'confirmed' counts; `tx
TXID` says which block a payment is in.

Examples:
  ember-wallet balance
  ember-wallet balance --account 1 --node http://127.0.0.1:8546   # node 1 of ember-testnet up")]
    Balance {
        #[command(flatten)]
        account: AccountArg,
    },

    /// Send coins: asks the node for the nonce, signs here, submits.
    #[command(after_help = "\
Checked before anything is signed: the address is of this wallet's network, the amounts
have at most 8 decimals, the fee is at least the node's minimum, and amount + fee fit
in the available balance.

Examples:
  ember-wallet send --to edev1... --amount 12.5
  ember-wallet send --to edev1... --amount 0.001 --fee 0.0001 --account 1
  ember-wallet send --to edev1... --amount 3 --wait --timeout 60")]
    Send {
        #[command(flatten)]
        payment: PaymentArgs,
        #[command(flatten)]
        wait: WaitArgs,
    },

    /// Show an account's payments: pending ones, then confirmed ones, newest first.
    #[command(after_help = "\
Examples:
  ember-wallet history
  ember-wallet history --account 1 --page 2 --limit 50")]
    History {
        #[command(flatten)]
        account: AccountArg,
        /// Page of confirmed payments to show, from 1 (newest).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        page: u64,
        /// Payments per page.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=500))]
        limit: u64,
    },

    /// Show a transaction's status: pending or confirmed (with its confirmations).
    #[command(after_help = "\
Examples:
  ember-wallet tx 3f1c...e9a0")]
    Tx {
        /// The transaction id (64 hex digits).
        txid: String,
    },

    /// Sign a payment without submitting it; prints the signed transaction as hex.
    #[command(after_help = "\
With --nonce the command works offline: it contacts no node, uses the built-in genesis
of the wallet's network as the chain id (or --chain: a network started by `ember-testnet
up` has its own genesis, its nodes' node_info.genesis), the default fee unless --fee,
and cannot check the balance. Without --nonce it asks the node for the nonce, chain id and
minimum fee, and checks the balance, like send. Submit the hex later with broadcast.

Examples:
  ember-wallet sign --to edev1... --amount 5 --nonce 0 > payment.hex
  ember-wallet sign --to edev1... --amount 5 --nonce 0 --chain 3f1c...e9a0
  ember-wallet sign --to edev1... --amount 5            # nonce and checks from the node
  ember-wallet broadcast $(cat payment.hex) --wait")]
    Sign {
        #[command(flatten)]
        payment: PaymentArgs,
        /// The sender account's next nonce; makes the command work offline.
        #[arg(long)]
        nonce: Option<u64>,
        /// The chain id (genesis block id, hex) to sign for, when offline [default: the
        /// built-in genesis of the wallet's network].
        #[arg(long, value_name = "GENESIS_ID", requires = "nonce")]
        chain: Option<String>,
    },

    /// Submit a signed transaction (hex from sign) to the node.
    #[command(after_help = "\
The transaction is decoded and its signature and chain checked before it is sent. No
wallet or passphrase is needed.

Examples:
  ember-wallet broadcast 0a1b...ff
  ember-wallet broadcast - --wait < payment.hex")]
    Broadcast {
        /// The signed transaction as hex, or '-' to read it from stdin.
        hex: String,
        #[command(flatten)]
        wait: WaitArgs,
    },

    /// Devnet only: put a prefunded dev account (public dev mnemonic) in a wallet.
    #[command(after_help = "\
The built-in devnet prefunds accounts 0-9 of the public dev mnemonic ('test test ...
junk'); a higher --index is a valid key with no coins. Mined blocks pay dev account 0
unless the miner was given another address, so its balance grows past 1,000,000. Their
keys are public: anyone can spend them, so they are for local devnets only. The wallet file holds the dev mnemonic's seed, encrypted like any wallet; it is
created if missing, and a wallet of another seed is refused (use --wallet to pick a
separate file).

Examples:
  ember-wallet import-dev-key --wallet dev.json
  ember-wallet import-dev-key --wallet dev.json --index 3")]
    ImportDevKey {
        /// Which dev account (only 0-9 are prefunded by the devnet genesis).
        #[arg(long, default_value_t = 0)]
        index: u32,
    },
}

/// `--account N`.
#[derive(Debug, Args)]
pub struct AccountArg {
    /// Which account [default: the wallet's first account].
    #[arg(long, value_name = "N")]
    pub account: Option<u32>,
}

/// What to pay (send, sign).
#[derive(Debug, Args)]
pub struct PaymentArgs {
    /// Recipient address.
    #[arg(long, value_name = "ADDRESS")]
    pub to: String,
    /// Amount in coins, up to 8 decimals (e.g. 12.5).
    #[arg(long, value_name = "COINS")]
    pub amount: String,
    /// Fee in coins [default: 0.00001, or the node's minimum if higher].
    #[arg(long, value_name = "COINS")]
    pub fee: Option<String>,
    /// The account paying [default: the wallet's first account].
    #[arg(long, value_name = "N")]
    pub account: Option<u32>,
}

/// `--wait` and its `--timeout`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until the transaction is in a block (a spinner shows progress).
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds (exit code 3; the transaction may still
    /// confirm later).
    #[arg(long, value_name = "SECS", default_value_t = 120, requires = "wait")]
    pub timeout: u64,
}

/// Runs the command; what to print on success.
pub fn run(cli: Cli) -> Result<Outcome, CliError> {
    let session = Session::new(cli.global)?;
    match cli.command {
        Command::Create { label } => keys::create(&session, &label),
        Command::Restore { accounts } => keys::restore(&session, accounts),
        Command::Address { account } => keys::address(&session, account.account),
        Command::Accounts => keys::accounts(&session),
        Command::NewAccount { label } => keys::new_account(&session, label),
        Command::ImportDevKey { index } => keys::import_dev_key(&session, index),
        Command::Balance { account } => pay::balance(&session, account.account),
        Command::Send { payment, wait } => pay::send(&session, &payment, &wait),
        Command::History { account, page, limit } => {
            pay::history(&session, account.account, page, limit)
        }
        Command::Tx { txid } => pay::tx(&session, &txid),
        Command::Sign { payment, nonce, chain } => {
            pay::sign(&session, &payment, nonce, chain.as_deref())
        }
        Command::Broadcast { hex, wait } => pay::broadcast(&session, &hex, &wait),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_examples() {
        let mut cmd = Cli::command();
        for sub in cmd.get_subcommands_mut() {
            let help = sub.render_long_help().to_string();
            assert!(help.contains("Examples:"), "{} --help has no examples", sub.get_name());
        }
        assert!(Cli::command().render_long_help().to_string().contains("Examples:"));
    }
}
