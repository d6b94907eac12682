//! What every command shares: the global options resolved once — which wallet file,
//! which node, which network, where the passphrase comes from, how strong a new
//! wallet's key derivation is — and the opened wallet.
//!
//! Rules kept here:
//! - The network is never guessed for an existing wallet: it is the one stored in the
//!   wallet file; `--network` may only confirm it, and a node of another network is
//!   refused. A new wallet takes `--network`, else the node's network, else devnet
//!   (with a note on stderr saying so).
//! - The passphrase comes from `--passphrase-file` (its first line), else the
//!   `EMBER_WALLET_PASSPHRASE` environment variable, else a prompt on the terminal
//!   (twice for a new wallet). It lives in wiped-on-drop memory and is never printed.
//!   It is read from the environment by hand rather than through clap's `env`, because
//!   clap prints the values of such variables in `--help`.
//! - Only commands that sign or show secrets unlock the wallet ([`Session::open_wallet`]).
//!   Watching an account (`address`, `accounts`, `balance`, `history`) reads the clear
//!   account list of the file ([`Session::watch_wallet`]) and never asks for the
//!   passphrase, except once for a version-1 file, which has no such list: that unlock
//!   rewrites it as version 2. The clear list is unauthenticated until the next unlock,
//!   which refuses an edited one (see `keystore`).
//! - At the terminal prompt a wrong passphrase may be retyped: [`PROMPT_TRIES`] tries
//!   in all. A passphrase from a file or the environment is tried once.
//! - `EMBER_WALLET_KDF=test` makes *new* wallets use tiny argon2id costs (1 MiB, one
//!   pass), for tests only: a wallet written so can be brute-forced quickly. Opening a
//!   wallet always uses the costs stored in its file.

use std::fs::DirBuilder;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use ember_core::{Address, Network};
use ember_wallet::keystore::{Account, KdfParams, Keystore, KeystoreError, WriteMode};
use ember_wallet::node_client::{NodeClient, NodeError, NodeInfo};
use ember_wallet::ExtendedKey;
use zeroize::Zeroizing;

use super::error::CliError;
use super::output::note;
use super::GlobalArgs;

/// Environment variable holding the wallet passphrase, for scripts.
pub const PASSPHRASE_ENV: &str = "EMBER_WALLET_PASSPHRASE";
/// Environment variable choosing the key-derivation strength of new wallets; only
/// `test` is recognised (tests only).
pub const KDF_ENV: &str = "EMBER_WALLET_KDF";
/// Longest passphrase file or stdin input read, so a wrong path (a device, a huge
/// file) cannot exhaust memory.
const MAX_INPUT_BYTES: u64 = 64 * 1024;
/// How many passphrases the terminal prompt takes before giving up (as sudo does).
pub const PROMPT_TRIES: u32 = 3;

/// How many times to ask for a passphrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Opening an existing wallet: once.
    Once,
    /// Choosing the passphrase of a new wallet: twice, and they must match.
    Twice,
}

/// The resolved global options.
pub struct Session {
    wallet_path: Option<PathBuf>,
    /// The node, or why `--node` is not a usable URL (an error only for commands that
    /// talk to the node: `address` works whatever EMBER_NODE holds).
    node: Result<NodeClient, String>,
    network: Option<Network>,
    json: bool,
    passphrase_file: Option<PathBuf>,
}

impl Session {
    /// Resolves the global options.
    pub fn new(global: GlobalArgs) -> Result<Session, CliError> {
        let wallet_path =
            global.wallet.or_else(|| dirs::data_dir().map(|d| d.join("ember").join("wallet.json")));
        Ok(Session {
            wallet_path,
            node: node_url(&global.node).map(|url| NodeClient::new(&url)),
            network: global.network.map(Network::from),
            json: global.json,
            passphrase_file: global.passphrase_file,
        })
    }

    /// Whether results are printed as JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// The `--network` flag, if given.
    pub fn network_flag(&self) -> Option<Network> {
        self.network
    }

    /// The node; an error when `--node` (or EMBER_NODE) is not a usable URL.
    pub fn node(&self) -> Result<&NodeClient, CliError> {
        self.node.as_ref().map_err(|e| CliError::Invalid(e.clone()))
    }

    /// The wallet file.
    pub fn wallet_path(&self) -> Result<&Path, CliError> {
        self.wallet_path.as_deref().ok_or_else(|| {
            CliError::Invalid(
                "cannot find the user data directory for the default wallet file; \
                 name one with --wallet FILE"
                    .into(),
            )
        })
    }

    /// The network of the existing wallet file, read from its header without the
    /// passphrase (so that wrong-network input is refused before the passphrase is
    /// asked), and checked against `--network`.
    pub fn wallet_network(&self) -> Result<Network, CliError> {
        let path = self.existing_wallet()?;
        let name = Keystore::peek_network(path)?;
        let network = parse_network(&name, path)?;
        if let Some(flag) = self.network {
            if flag != network {
                return Err(CliError::WrongNetwork(format!(
                    "the wallet {} is for {network}, but --network {flag} was given",
                    path.display()
                )));
            }
        }
        Ok(network)
    }

    /// The network for a new wallet: `--network`, else the node's, else devnet.
    pub fn new_wallet_network(&self) -> Result<Network, CliError> {
        if let Some(network) = self.network {
            return Ok(network);
        }
        match self.node()?.info() {
            Ok(info) => Ok(info.network),
            Err(NodeError::Unreachable { url, .. }) => {
                note(&format!(
                    "no node answered at {url}, so this is a devnet wallet \
                     (use --network testnet for a testnet one)"
                ));
                Ok(Network::Devnet)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `node_info`, refused unless the node runs `network` (when one is required).
    pub fn node_info(&self, network: Option<Network>) -> Result<NodeInfo, CliError> {
        let node = self.node()?;
        let info = node.info()?;
        let expected = network.or(self.network);
        if let Some(expected) = expected {
            if info.network != expected {
                return Err(CliError::WrongNetwork(format!(
                    "the node at {} runs {}, but this wallet is for {expected}; \
                     choose a {expected} node with --node URL",
                    node.url(),
                    info.network
                )));
            }
        }
        Ok(info)
    }

    /// Refuses early (before a passphrase is typed) to create a wallet over an existing
    /// file. (Saving refuses it again, atomically.)
    pub fn refuse_existing_wallet(&self) -> Result<(), CliError> {
        let path = self.wallet_path()?;
        if path.symlink_metadata().is_ok() {
            return Err(CliError::Keystore(ember_wallet::KeystoreError::AlreadyExists(
                path.to_owned(),
            )));
        }
        Ok(())
    }

    /// Creates the wallet file's directory (mode 0700) if it is missing.
    pub fn ensure_wallet_dir(&self) -> Result<(), CliError> {
        let path = self.wallet_path()?;
        match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| CliError::Io(format!("cannot create {}: {e}", dir.display()))),
            _ => Ok(()),
        }
    }

    /// The passphrase, from the file, the environment or the terminal.
    pub fn passphrase(&self, ask: Ask) -> Result<Zeroizing<Vec<u8>>, CliError> {
        let passphrase = match self.given_passphrase()? {
            Some(given) => given,
            None => self.prompt_passphrase(ask)?,
        };
        if ask == Ask::Twice && passphrase.is_empty() {
            return Err(CliError::Passphrase(
                "the passphrase is empty; choose one, since it is all that protects the \
                 wallet file"
                    .into(),
            ));
        }
        Ok(passphrase)
    }

    /// The passphrase from `--passphrase-file` or the environment, if either gives one.
    fn given_passphrase(&self) -> Result<Option<Zeroizing<Vec<u8>>>, CliError> {
        if let Some(file) = &self.passphrase_file {
            return read_passphrase_file(file).map(Some);
        }
        Ok(std::env::var_os(PASSPHRASE_ENV).map(|value| Zeroizing::new(value.into_vec())))
    }

    fn prompt_passphrase(&self, ask: Ask) -> Result<Zeroizing<Vec<u8>>, CliError> {
        let path = self.wallet_path()?;
        let no_terminal = |e: std::io::Error| {
            CliError::Passphrase(format!(
                "no passphrase: cannot prompt for one ({e}); set {PASSPHRASE_ENV} or use \
                 --passphrase-file FILE"
            ))
        };
        let prompt = match ask {
            Ask::Once => format!("Passphrase for {}: ", path.display()),
            Ask::Twice => format!("New passphrase for {}: ", path.display()),
        };
        let first = Zeroizing::new(rpassword::prompt_password(prompt).map_err(no_terminal)?);
        if ask == Ask::Twice {
            let again = Zeroizing::new(
                rpassword::prompt_password("Repeat the passphrase: ").map_err(no_terminal)?,
            );
            if *first != *again {
                return Err(CliError::Passphrase(
                    "the two passphrases differ; nothing was written".into(),
                ));
            }
        }
        Ok(Zeroizing::new(first.as_bytes().to_vec()))
    }

    /// The argon2id costs for a new wallet.
    pub fn kdf_for_new_wallet(&self) -> Result<KdfParams, CliError> {
        match std::env::var(KDF_ENV).as_deref() {
            Err(_) => Ok(KdfParams::RECOMMENDED),
            Ok("test") => {
                note(&format!(
                    "{KDF_ENV}=test: weak key derivation, for tests only; never use it for \
                     a wallet that holds real coins"
                ));
                Ok(KdfParams::new(1024, 1, 1).expect("1 MiB, 1 pass, 1 lane are valid costs"))
            }
            Ok(other) => Err(CliError::Invalid(format!(
                "{KDF_ENV}={other:?} is not known; unset it (the only other value, \"test\", \
                 is for tests)"
            ))),
        }
    }

    fn existing_wallet(&self) -> Result<&Path, CliError> {
        let path = self.wallet_path()?;
        if path.symlink_metadata().is_err() {
            return Err(CliError::NoWallet(path.to_owned()));
        }
        Ok(path)
    }

    /// Asks for the passphrase (up to [`PROMPT_TRIES`] times at the terminal) and opens
    /// the wallet. Writes only to upgrade a version-1 file to the current format.
    pub fn open_wallet(&self) -> Result<Wallet, CliError> {
        let expected = self.wallet_network()?;
        let path = self.existing_wallet()?;
        let (keystore, passphrase) = match self.given_passphrase()? {
            Some(given) => (Keystore::open(path, &given)?, given),
            None => retry_passphrase(
                PROMPT_TRIES,
                || self.prompt_passphrase(Ask::Once),
                |passphrase| Keystore::open(path, passphrase),
                |left| {
                    note(&format!(
                        "wrong passphrase (or the wallet file was modified); {left} {} left",
                        if left == 1 { "try" } else { "tries" }
                    ))
                },
            )?,
        };
        // The header read before is authenticated only now; a file swapped in between
        // would be caught here.
        let network = parse_network(keystore.network(), path)?;
        if network != expected {
            return Err(CliError::WrongNetwork(format!(
                "the wallet {} changed while it was being opened",
                path.display()
            )));
        }
        if keystore.needs_upgrade() {
            // Same passphrase and costs; atomic, 0600. From now on the accounts can be
            // watched without the passphrase.
            keystore.save(path, &passphrase, keystore.kdf_params(), WriteMode::Replace)?;
            note(&format!(
                "upgraded the wallet file {} to keystore format version {}: its accounts' \
                 addresses can now be shown without the passphrase",
                path.display(),
                ember_wallet::keystore::KEYSTORE_VERSION
            ));
        }
        Ok(Wallet { keystore, network, path: path.to_owned(), passphrase })
    }

    /// The wallet's accounts for commands that only watch them (address, balance,
    /// history): from the file's clear account list, without the passphrase. Those
    /// addresses and labels are not authenticated until the next unlock (see `keystore`).
    /// A version-1 file has no clear list: it is opened
    /// (asking for the passphrase) and upgraded, once.
    pub fn watch_wallet(&self) -> Result<WatchedWallet, CliError> {
        let network = self.wallet_network()?;
        let path = self.existing_wallet()?;
        let accounts = match Keystore::peek_accounts(path)? {
            Some(listed) => listed
                .iter()
                .map(|a| {
                    // Checked against the file's own network by the keystore; this one
                    // is the network checked against --network and the node.
                    let address = Address::parse(a.address(), network.hrp()).map_err(|e| {
                        CliError::Keystore(KeystoreError::Corrupt(format!(
                            "clear account list: {e}"
                        )))
                    })?;
                    Ok(WatchedAccount {
                        index: a.index(),
                        label: Some(a.label().to_owned()),
                        address,
                    })
                })
                .collect::<Result<Vec<_>, CliError>>()?,
            None => {
                let wallet = self.open_wallet()?;
                wallet
                    .keystore
                    .accounts()
                    .iter()
                    .map(|a| {
                        Ok(WatchedAccount {
                            index: a.index(),
                            label: Some(a.label().to_owned()),
                            address: wallet.address(a.index())?,
                        })
                    })
                    .collect::<Result<Vec<_>, CliError>>()?
            }
        };
        Ok(WatchedWallet { network, path: path.to_owned(), accounts })
    }
}

/// Asks for a passphrase and tries it, up to `tries` times while the answer is "wrong
/// passphrase"; `wrong` is told how many tries are left after each miss. Any other
/// error (no terminal, damaged file) ends at once. Returns what `unlock` gave and the
/// passphrase that worked.
pub fn retry_passphrase<T>(
    tries: u32,
    mut ask: impl FnMut() -> Result<Zeroizing<Vec<u8>>, CliError>,
    mut unlock: impl FnMut(&[u8]) -> Result<T, KeystoreError>,
    mut wrong: impl FnMut(u32),
) -> Result<(T, Zeroizing<Vec<u8>>), CliError> {
    let mut left = tries.max(1);
    loop {
        let passphrase = ask()?;
        left -= 1;
        match unlock(&passphrase) {
            Ok(value) => return Ok((value, passphrase)),
            Err(KeystoreError::WrongPassphrase) if left > 0 => wrong(left),
            Err(e) => return Err(e.into()),
        }
    }
}

/// One account of a [`WatchedWallet`].
#[derive(Debug, Clone)]
pub struct WatchedAccount {
    /// The account index.
    pub index: u32,
    /// Its label, known only when the wallet was unlocked (labels are encrypted).
    pub label: Option<String>,
    /// Its address.
    pub address: Address,
}

impl WatchedAccount {
    /// "Account N (label)", or "Account N" when the label is not known.
    pub fn heading(&self) -> String {
        match &self.label {
            Some(label) => format!("Account {} ({label})", self.index),
            None => format!("Account {}", self.index),
        }
    }
}

/// A wallet's accounts as watch-only commands see them.
pub struct WatchedWallet {
    /// The wallet's network.
    pub network: Network,
    /// Its file.
    pub path: PathBuf,
    /// Its accounts, in the file's order.
    pub accounts: Vec<WatchedAccount>,
}

impl WatchedWallet {
    /// The account asked for, or the wallet's first account.
    pub fn account(&self, requested: Option<u32>) -> Result<&WatchedAccount, CliError> {
        let found = match requested {
            Some(index) => self.accounts.iter().find(|a| a.index == index),
            None => self.accounts.first(),
        };
        found.ok_or_else(|| no_account(requested, self.accounts.iter().map(|a| a.index)))
    }
}

/// The error for an account that is not in the wallet.
fn no_account(requested: Option<u32>, indices: impl Iterator<Item = u32>) -> CliError {
    match requested {
        Some(index) => {
            let list: Vec<String> = indices.map(|i| i.to_string()).collect();
            CliError::Invalid(format!(
                "the wallet has no account {index}; its accounts are {} (see `ember-wallet \
                 accounts`, add one with `ember-wallet new-account`)",
                list.join(", ")
            ))
        }
        None => CliError::Invalid(
            "the wallet has no accounts; add one with `ember-wallet new-account`".into(),
        ),
    }
}

/// The node's URL from `--node`: `HOST:PORT` alone means `http://HOST:PORT` (what a node
/// prints as its RPC address); any scheme but http and https, or a malformed host or port,
/// is refused with the form that works.
pub fn node_url(text: &str) -> Result<String, String> {
    const FORM: &str =
        "give the node's JSON-RPC URL as http://HOST:PORT, e.g. http://127.0.0.1:8545";
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("--node is empty; {FORM}"));
    }
    let url = match text.split_once("://") {
        Some((scheme, _))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            text.to_owned()
        }
        Some((scheme, _)) => {
            return Err(format!("--node {text:?}: the scheme {scheme:?} is not supported; {FORM}"))
        }
        None if text.to_ascii_lowercase().starts_with("http:")
            || text.to_ascii_lowercase().starts_with("https:") =>
        {
            return Err(format!(
                "--node {text:?} is not a URL (\"//\" missing after the scheme); {FORM}"
            ))
        }
        None => format!("http://{text}"),
    };
    let rest = &url[url.find("://").expect("the URL has a scheme") + 3..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let port = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((_, after)) => after.strip_prefix(':'),
            None => return Err(format!("--node {text:?}: the IPv6 address lacks its ']'; {FORM}")),
        }
    } else {
        authority.rsplit_once(':').map(|(_, port)| port)
    };
    let host = authority
        .strip_suffix(port.map(|p| format!(":{p}")).as_deref().unwrap_or(""))
        .unwrap_or(authority);
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '@') {
        return Err(format!("--node {text:?} has no usable host; {FORM}"));
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!(
                "--node {text:?}: the port {port:?} is not a number from 1 to 65535; {FORM}"
            ));
        }
    }
    Ok(url)
}

fn parse_network(name: &str, path: &Path) -> Result<Network, CliError> {
    name.parse().map_err(|_| {
        CliError::WrongNetwork(format!(
            "the wallet {} is for network {name:?}, which this ember-wallet does not know",
            path.display()
        ))
    })
}

fn read_passphrase_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let file = std::fs::File::open(path).map_err(|e| {
        CliError::Passphrase(format!("cannot read the passphrase file {}: {e}", path.display()))
    })?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(256));
    file.take(MAX_INPUT_BYTES).read_to_end(&mut bytes).map_err(|e| {
        CliError::Passphrase(format!("cannot read the passphrase file {}: {e}", path.display()))
    })?;
    // The first line, without its line ending.
    let end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
    let end = if end > 0 && bytes[end - 1] == b'\r' { end - 1 } else { end };
    bytes.truncate(end);
    Ok(bytes)
}

/// Reads all of stdin (bounded), into wiped-on-drop memory.
pub fn read_stdin() -> Result<Zeroizing<String>, CliError> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(4096));
    std::io::stdin()
        .take(MAX_INPUT_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::Io(format!("cannot read standard input: {e}")))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CliError::Invalid("standard input is not UTF-8 text".into()))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// An opened wallet: its keys, its network, and the passphrase it was opened with
/// (kept to save it back after adding an account).
pub struct Wallet {
    /// The decrypted keystore.
    pub keystore: Keystore,
    /// Its network.
    pub network: Network,
    /// Its file.
    pub path: PathBuf,
    /// The passphrase it was opened with.
    pub passphrase: Zeroizing<Vec<u8>>,
}

impl Wallet {
    /// The account asked for, or the wallet's first account.
    pub fn account(&self, requested: Option<u32>) -> Result<Account, CliError> {
        let found = match requested {
            Some(index) => self.keystore.account(index),
            None => self.keystore.accounts().first(),
        };
        found.cloned().ok_or_else(|| {
            no_account(requested, self.keystore.accounts().iter().map(|a| a.index()))
        })
    }

    /// An account's signing key.
    pub fn key(&self, index: u32) -> Result<ExtendedKey, CliError> {
        Ok(self.keystore.account_key(index)?)
    }

    /// An account's address.
    pub fn address(&self, index: u32) -> Result<Address, CliError> {
        Ok(Address::from_bytes(self.key(index)?.verifying_key()))
    }

    /// An account's address as text (bech32m with the network's prefix).
    pub fn address_text(&self, index: u32) -> Result<String, CliError> {
        Ok(self.address(index)?.to_bech32(self.network.hrp()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls_without_a_scheme_get_http_and_bad_ones_say_the_form() {
        assert_eq!(node_url("127.0.0.1:8545").unwrap(), "http://127.0.0.1:8545");
        assert_eq!(node_url("localhost:8546").unwrap(), "http://localhost:8546");
        assert_eq!(node_url(" http://127.0.0.1:8545 ").unwrap(), "http://127.0.0.1:8545");
        assert_eq!(node_url("https://node.example/rpc").unwrap(), "https://node.example/rpc");
        assert_eq!(node_url("[::1]:8545").unwrap(), "http://[::1]:8545");
        for (bad, why) in [
            ("ftp://127.0.0.1:8545", "scheme \"ftp\" is not supported"),
            ("http:/127.0.0.1:8545", "is not a URL"),
            ("127.0.0.1:85450", "is not a number from 1 to 65535"),
            ("http://:8545", "no usable host"),
            ("", "is empty"),
        ] {
            let err = node_url(bad).unwrap_err();
            assert!(err.contains(why) && err.contains("http://127.0.0.1:8545"), "{bad}: {err}");
        }
    }

    /// Runs [`retry_passphrase`] with typed answers; the right passphrase is "right".
    fn typed(answers: &[&str]) -> (Result<Vec<u8>, CliError>, usize, Vec<u32>) {
        let mut answers = answers.iter();
        let mut asked = 0;
        let mut told = Vec::new();
        let result = retry_passphrase(
            PROMPT_TRIES,
            || {
                asked += 1;
                match answers.next() {
                    Some(a) => Ok(Zeroizing::new(a.as_bytes().to_vec())),
                    None => Err(CliError::Passphrase("no terminal".into())),
                }
            },
            |p| match p {
                b"right" => Ok(()),
                b"damaged" => Err(KeystoreError::Corrupt("test".into())),
                _ => Err(KeystoreError::WrongPassphrase),
            },
            |left| told.push(left),
        );
        (result.map(|((), p)| p.to_vec()), asked, told)
    }

    #[test]
    fn the_prompt_takes_three_tries() {
        let (ok, asked, told) = typed(&["right"]);
        assert_eq!((ok.unwrap(), asked, told), (b"right".to_vec(), 1, vec![]));
        let (ok, asked, told) = typed(&["typo", "tpyo", "right"]);
        assert_eq!((ok.unwrap(), asked, told), (b"right".to_vec(), 3, vec![2, 1]));
        let (err, asked, told) = typed(&["a", "b", "c", "right"]);
        assert!(matches!(err, Err(CliError::Keystore(KeystoreError::WrongPassphrase))));
        assert_eq!((asked, told), (3, vec![2, 1]), "a fourth passphrase is never asked");
        // Other errors end at once: a damaged file, no terminal.
        let (err, asked, _) = typed(&["damaged", "right"]);
        assert!(matches!(err, Err(CliError::Keystore(KeystoreError::Corrupt(_)))));
        assert_eq!(asked, 1);
        let (err, asked, _) = typed(&["typo"]);
        assert!(matches!(err, Err(CliError::Passphrase(_))));
        assert_eq!(asked, 2);
    }

    #[test]
    fn passphrase_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        for (content, expected) in [
            (&b"secret\n"[..], &b"secret"[..]),
            (b"secret\r\nsecond line\n", b"secret"),
            (b"no newline", b"no newline"),
            (b"  spaces kept  \n", b"  spaces kept  "),
            (b"", b""),
        ] {
            let path = dir.path().join("pass");
            std::fs::write(&path, content).unwrap();
            assert_eq!(read_passphrase_file(&path).unwrap().as_slice(), expected);
        }
        let err = read_passphrase_file(&dir.path().join("missing")).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
