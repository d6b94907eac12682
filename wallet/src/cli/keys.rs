//! Commands on the wallet file: `create`, `restore`, `address`, `accounts`,
//! `new-account`, `import-dev-key`.
//!
//! What they guarantee:
//! - The recovery phrase is printed once, by `create`, and by nothing else; `restore`
//!   reads it without echo (or from stdin) and never repeats it.
//! - A wallet file is only ever created (never over an existing file) or replaced
//!   whole and atomically with mode 0600, by the keystore; every check (existing file,
//!   label, recovery phrase, passphrase) happens before anything is written, so a
//!   refused command leaves the disk as it was.
//! - Only `new-account` and `import-dev-key` into an existing wallet rewrite it, with
//!   its own passphrase and argon2id costs.

use std::io::IsTerminal;

use ember_core::Network;
use ember_wallet::keystore::{Keystore, WriteMode};
use ember_wallet::mnemonic::{Mnemonic, WORD_COUNT};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::error::CliError;
use super::output::Outcome;
use super::session::{read_stdin, Ask, Session, Wallet};

/// Label of the first account of a new or restored wallet.
const FIRST_LABEL: &str = "main";

/// `create`: a new wallet from a fresh 24-word phrase, shown once.
pub fn create(s: &Session, label: &str) -> Result<Outcome, CliError> {
    s.refuse_existing_wallet()?;
    let network = s.new_wallet_network()?;
    let kdf = s.kdf_for_new_wallet()?;
    let mnemonic = Mnemonic::generate();
    let mut keystore = Keystore::from_mnemonic(network.name(), &mnemonic, "")?;
    let index = keystore.add_account(label)?;
    let passphrase = s.passphrase(Ask::Twice)?;
    s.ensure_wallet_dir()?;
    let path = s.wallet_path()?;
    keystore.save(path, &passphrase, kdf, WriteMode::CreateNew)?;

    let address = account_address(&keystore, network, index)?;
    const WARNING: &str = "Write these 24 words down, in this order, and keep them offline.\n\
        They are the only way to restore this wallet if its file or passphrase is lost,\n\
        and anyone who sees them can spend its coins. They will not be shown again.";
    let mut text = format!(
        "Created {network} wallet {}\nAccount {index} ({label}): {address}\n\n\
         RECOVERY PHRASE\n{WARNING}\n\n",
        path.display()
    );
    // Numbered down the columns, four columns of six, as on a paper backup card.
    let words: Vec<&str> = mnemonic.words().collect();
    let rows = WORD_COUNT / 4;
    for row in 0..rows {
        let line: Vec<String> = (0..4)
            .map(|col| col * rows + row)
            .map(|n| format!("{:>4}. {:<10}", n + 1, words[n]))
            .collect();
        text.push_str(line.concat().trim_end());
        text.push('\n');
    }
    let json = json!({
        "wallet": path.display().to_string(),
        "network": network.name(),
        "accounts": [{ "index": index, "label": label, "address": address }],
        "mnemonic": mnemonic.phrase().as_str(),
        "warning": WARNING.replace('\n', " "),
    });
    let mut outcome = Outcome::new(text, json);
    outcome.if_cut_off = Some(format!(
        "the wallet {} was created, but its recovery phrase was not shown in full; delete \
         that file and run `ember-wallet create` again where you can read the whole output",
        path.display()
    ));
    Ok(outcome)
}

/// `restore`: a wallet from a recovery phrase typed (without echo) or piped in.
pub fn restore(s: &Session, accounts: u32) -> Result<Outcome, CliError> {
    s.refuse_existing_wallet()?;
    let network = s.new_wallet_network()?;
    let kdf = s.kdf_for_new_wallet()?;
    let phrase = if std::io::stdin().is_terminal() {
        Zeroizing::new(
            rpassword::prompt_password(format!(
                "Recovery phrase ({WORD_COUNT} words, not shown): "
            ))
            .map_err(|e| CliError::Io(format!("cannot read the recovery phrase: {e}")))?,
        )
    } else {
        read_stdin()?
    };
    let mnemonic = Mnemonic::parse(&phrase)?;
    drop(phrase);
    let mut keystore = Keystore::from_mnemonic(network.name(), &mnemonic, "")?;
    for i in 0..accounts {
        let label = if i == 0 { FIRST_LABEL.to_owned() } else { format!("account {i}") };
        keystore.add_account(&label)?;
    }
    let passphrase = s.passphrase(Ask::Twice)?;
    s.ensure_wallet_dir()?;
    let path = s.wallet_path()?;
    keystore.save(path, &passphrase, kdf, WriteMode::CreateNew)?;

    let (text, list) = describe_accounts(&keystore, network)?;
    let text = format!("Restored {network} wallet {}\n{text}", path.display());
    Ok(Outcome::new(
        text,
        json!({ "wallet": path.display().to_string(), "network": network.name(), "accounts": list }),
    ))
}

/// `address`: one account's address, without the passphrase (see [`Session::watch_wallet`]).
pub fn address(s: &Session, account: Option<u32>) -> Result<Outcome, CliError> {
    let watched = s.watch_wallet()?;
    let account = watched.account(account)?;
    let address = account.address.to_bech32(watched.network.hrp());
    let json = json!({
        "network": watched.network.name(),
        "account": account.index,
        "label": account.label,
        "address": address,
    });
    Ok(Outcome::new(address, json))
}

/// `accounts`: every account with its label and address, without the passphrase (from the
/// keystore's clear account list).
pub fn accounts(s: &Session) -> Result<Outcome, CliError> {
    let watched = s.watch_wallet()?;
    let hrp = watched.network.hrp();
    let mut text = String::new();
    let mut list = Vec::new();
    for account in &watched.accounts {
        let address = account.address.to_bech32(hrp);
        let label = account.label.as_deref().unwrap_or("-");
        text.push_str(&format!("{:>4}  {label:<20}  {address}\n", account.index));
        list.push(json!({ "index": account.index, "label": account.label, "address": address }));
    }
    let json = json!({ "wallet": watched.path.display().to_string(), "network": watched.network.name(), "accounts": list });
    Ok(Outcome::new(text, json))
}

/// `new-account`: adds the next account and saves the wallet.
pub fn new_account(s: &Session, label: Option<String>) -> Result<Outcome, CliError> {
    let mut wallet = s.open_wallet()?;
    let next = wallet.keystore.accounts().iter().map(|a| a.index() + 1).max().unwrap_or(0);
    let label = label.unwrap_or_else(|| format!("account {next}"));
    let index = wallet.keystore.add_account(&label)?;
    save_back(&wallet)?;
    let address = wallet.address_text(index)?;
    let json = json!({
        "network": wallet.network.name(),
        "account": index,
        "label": label,
        "address": address,
    });
    Ok(Outcome::new(format!("Account {index} ({label}): {address}"), json))
}

/// `import-dev-key`: a prefunded devnet account of the public dev mnemonic.
pub fn import_dev_key(s: &Session, index: u32) -> Result<Outcome, CliError> {
    const WARNING: &str = "dev keys are public (anyone can spend them): devnet only";
    let label = format!("dev {index}");
    let path = s.wallet_path()?;
    let devnet_only =
        |what: String| CliError::WrongNetwork(format!("{what}; dev keys exist only on devnet"));
    if let Some(network) = s.network_flag() {
        if network != Network::Devnet {
            return Err(devnet_only(format!("--network {network} was given")));
        }
    }

    let (keystore, added) = if path.symlink_metadata().is_ok() {
        let network = s.wallet_network()?;
        if network != Network::Devnet {
            return Err(devnet_only(format!("the wallet {} is for {network}", path.display())));
        }
        let mut wallet = s.open_wallet()?;
        if wallet.keystore.seed() != &ember_wallet::dev_seed() {
            return Err(CliError::Invalid(format!(
                "the wallet {} has its own recovery phrase, and a wallet holds keys of one \
                 phrase only; put the dev keys in a separate file, e.g. --wallet dev.json",
                path.display()
            )));
        }
        let added = wallet.keystore.account(index).is_none();
        if added {
            wallet.keystore.add_account_at(index, &label)?;
            save_back(&wallet)?;
        }
        (wallet.keystore, added)
    } else {
        let kdf = s.kdf_for_new_wallet()?;
        let mut keystore = Keystore::new(Network::Devnet.name(), ember_wallet::dev_seed())?;
        keystore.add_account_at(index, &label)?;
        let passphrase = s.passphrase(Ask::Twice)?;
        s.ensure_wallet_dir()?;
        keystore.save(path, &passphrase, kdf, WriteMode::CreateNew)?;
        (keystore, true)
    };

    let address = account_address(&keystore, Network::Devnet, index)?;
    let label = keystore.account(index).map(|a| a.label().to_owned()).unwrap_or(label);
    let verb = if added { "Imported" } else { "Already had" };
    // The devnet genesis (built in, and the one `ember-testnet up` writes) prefunds only
    // the first few dev accounts: a higher index is a valid key with no coins.
    let funded = ember_core::ChainParams::devnet().allocations().len() as u32;
    let mut text = format!(
        "{verb} dev account {index} ({label}) in {}: {address}\nnote: {WARNING}",
        path.display()
    );
    if index >= funded {
        text.push_str(&format!(
            "\nnote: only dev accounts 0-{} are funded by the devnet genesis; account {index} \
             starts with 0 coins (use --index 0 to {} for a funded one)",
            funded - 1,
            funded - 1
        ));
    }
    let json = json!({
        "wallet": path.display().to_string(),
        "network": Network::Devnet.name(),
        "account": index,
        "label": label,
        "address": address,
        "added": added,
        "funded": index < funded,
        "warning": WARNING,
    });
    Ok(Outcome::new(text, json))
}

/// Writes an opened wallet back, atomically, with its passphrase and argon2id costs.
fn save_back(wallet: &Wallet) -> Result<(), CliError> {
    let kdf = wallet.keystore.kdf_params();
    wallet.keystore.save(&wallet.path, &wallet.passphrase, kdf, WriteMode::Replace)?;
    Ok(())
}

fn account_address(keystore: &Keystore, network: Network, index: u32) -> Result<String, CliError> {
    let key = keystore.account_key(index)?;
    Ok(ember_core::Address::from_bytes(key.verifying_key()).to_bech32(network.hrp()))
}

fn describe_accounts(keystore: &Keystore, network: Network) -> Result<(String, Value), CliError> {
    let mut text = String::new();
    let mut list = Vec::new();
    for account in keystore.accounts() {
        let address = account_address(keystore, network, account.index())?;
        text.push_str(&format!("{:>4}  {:<20}  {address}\n", account.index(), account.label()));
        list.push(
            json!({ "index": account.index(), "label": account.label(), "address": address }),
        );
    }
    Ok((text, Value::Array(list)))
}
