//! Watching a wallet without its passphrase (keystore format version 2), from real
//! `ember-wallet` processes against a real node: `address`, `accounts`, `balance` and
//! `history` run with no passphrase anywhere (no EMBER_WALLET_PASSPHRASE, stdin closed,
//! no terminal), `send` then fails asking for one, an edited clear address list is
//! refused at the next unlock, and a version-1 wallet still opens and is rewritten as
//! version 2.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::DevNode;

/// A version-1 wallet written by the ember-wallet before version 2 (shared with the
/// keystore unit tests): devnet, the public dev seed, dev accounts 0 and 3, test KDF
/// costs, passphrase "v1-pass".
const V1_FILE: &str = include_str!("../../wallet/testdata/keystore_v1.json");
const DEV_0: &str = "edev156tr60nxqza80tsj4dwzrlm2jf9l9608fak35d50kw68wvdzgfpqgdfu7d";
const DEV_3: &str = "edev1d50ea68qn83s2p5z8mkydlkr96t0rdn0y74vtl07jse4spzuepjs6yc2wf";

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs ember-wallet with `passphrase` in the environment, or with none available at
/// all: the variable removed, stdin closed, and (via setsid) no controlling terminal,
/// so a prompt cannot be answered even when the tests run in one.
fn wallet(node: &DevNode, file: &Path, passphrase: Option<&str>, args: &[&str]) -> Run {
    let bin = ember_testnet::binary("ember-wallet").expect("ember-wallet is built");
    let mut cmd = Command::new("setsid");
    cmd.arg("--wait").arg(bin);
    cmd.arg("--wallet").arg(file).args(["--node", node.node.rpc_url()]).args(args);
    cmd.env("EMBER_WALLET_KDF", "test")
        .env_remove("EMBER_NODE")
        .env_remove("EMBER_WALLET_PASSPHRASE")
        .stdin(Stdio::null());
    if let Some(p) = passphrase {
        cmd.env("EMBER_WALLET_PASSPHRASE", p);
    }
    let out = cmd.output().expect("setsid and ember-wallet run");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(run: Run, what: &str) -> Run {
    assert!(run.ok, "{what} failed:\n{}\n{}", run.stdout, run.stderr);
    run
}

#[test]
fn watching_needs_no_passphrase_but_sending_does() {
    let n = DevNode::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.json");
    ok(wallet(&n, &file, Some("pass"), &["import-dev-key", "--index", "0"]), "import");
    ok(wallet(&n, &file, Some("pass"), &["import-dev-key", "--index", "3"]), "import 3");

    let address = ok(wallet(&n, &file, None, &["address"]), "address");
    assert_eq!(address.stdout.trim(), DEV_0);
    let other = ok(wallet(&n, &file, None, &["address", "--account", "3"]), "address 3");
    assert_eq!(other.stdout.trim(), DEV_3);
    let accounts = ok(wallet(&n, &file, None, &["--json", "accounts"]), "accounts");
    let v: serde_json::Value = serde_json::from_str(&accounts.stdout).unwrap();
    assert_eq!(v["accounts"][1]["address"], DEV_3, "{}", accounts.stdout);
    let balance = ok(wallet(&n, &file, None, &["--json", "balance"]), "balance");
    let v: serde_json::Value = serde_json::from_str(&balance.stdout).unwrap();
    assert_eq!(v["address"], DEV_0);
    assert!(v["balance"].as_str().unwrap().parse::<f64>().unwrap() > 0.0, "{}", balance.stdout);
    let history = ok(wallet(&n, &file, None, &["history"]), "history");
    assert!(history.stdout.contains(DEV_0), "{}", history.stdout);

    let send = wallet(&n, &file, None, &["send", "--to", DEV_3, "--amount", "1"]);
    assert!(!send.ok, "send signed without a passphrase:\n{}", send.stdout);
    assert!(send.stderr.contains("passphrase"), "{}", send.stderr);
    assert!(send.stderr.contains("EMBER_WALLET_PASSPHRASE"), "{}", send.stderr);
    // With it, the same send works.
    ok(wallet(&n, &file, Some("pass"), &["send", "--to", DEV_3, "--amount", "1"]), "send");
}

#[test]
fn an_edited_clear_address_list_is_refused_at_the_next_unlock() {
    let n = DevNode::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.json");
    ok(wallet(&n, &file, Some("pass"), &["import-dev-key", "--index", "0"]), "import");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(DEV_0), "the address is in the clear:\n{text}");
    // Someone who can write the file lists their own (valid) address instead.
    std::fs::write(&file, text.replace(DEV_0, DEV_3)).unwrap();

    // Unauthenticated until unlocked (documented): watching shows the edited list...
    let shown = ok(wallet(&n, &file, None, &["address"]), "address");
    assert_eq!(shown.stdout.trim(), DEV_3);
    // ...and the next unlock refuses the file.
    for args in [&["send", "--to", DEV_3, "--amount", "1"][..], &["new-account"]] {
        let run = wallet(&n, &file, Some("pass"), args);
        assert!(!run.ok, "{args:?} accepted an edited file:\n{}", run.stdout);
        assert!(run.stderr.contains("the keystore file was modified"), "{}", run.stderr);
    }
}

#[test]
fn a_version_1_wallet_still_works_and_is_upgraded() {
    let n = DevNode::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.json");
    std::fs::write(&file, V1_FILE).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Version 1 keeps its addresses encrypted: watching it needs the passphrase once.
    let locked = wallet(&n, &file, None, &["address"]);
    assert!(!locked.ok && locked.stderr.contains("passphrase"), "{}", locked.stderr);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), V1_FILE, "a failed command wrote");

    let first = ok(wallet(&n, &file, Some("v1-pass"), &["accounts"]), "accounts (v1)");
    assert!(first.stdout.contains("dev 3") && first.stdout.contains(DEV_3), "{}", first.stdout);
    assert!(first.stderr.contains("upgraded"), "{}", first.stderr);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"version\": 2") && text.contains(DEV_0), "{text}");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let names: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec!["old.json"], "no temporary file left");

    // From now on: no passphrase to watch, the same one to sign.
    let address = ok(wallet(&n, &file, None, &["address", "--account", "3"]), "address");
    assert_eq!(address.stdout.trim(), DEV_3);
    ok(wallet(&n, &file, Some("v1-pass"), &["send", "--to", DEV_3, "--amount", "1"]), "send");
    let again = ok(wallet(&n, &file, Some("v1-pass"), &["accounts"]), "accounts (v2)");
    assert!(!again.stderr.contains("upgraded"), "upgraded twice: {}", again.stderr);
}
