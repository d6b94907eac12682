//! The receiver's wallet shows a payment to it while it is still pending: in `balance`
//! (an "incoming" line) and in `history` (a "received" line under "Pending"), from real
//! `ember-wallet` processes against a real node.

use crate::support::DevNode;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn wallet(node: &DevNode, file: &Path, args: &[&str]) -> Output {
    let out = Command::new(ember_testnet::binary("ember-wallet").expect("ember-wallet is built"))
        .arg("--wallet")
        .arg(file)
        .args(["--node", node.node.rpc_url()])
        .args(args)
        .env("EMBER_WALLET_KDF", "test")
        .env("EMBER_WALLET_PASSPHRASE", "pass")
        .env_remove("EMBER_NODE")
        .stdin(Stdio::null())
        .output()
        .expect("ember-wallet runs");
    assert!(
        out.status.success(),
        "ember-wallet {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn the_receivers_balance_and_history_show_an_incoming_pending_payment() {
    let n = DevNode::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let (payer, payee) = (dir.path().join("payer.json"), dir.path().join("payee.json"));
    wallet(&n, &payer, &["import-dev-key", "--index", "0"]);
    wallet(&n, &payee, &["import-dev-key", "--index", "8"]);
    let to = String::from_utf8(wallet(&n, &payee, &["address"]).stdout).unwrap();
    wallet(&n, &payer, &["send", "--to", to.trim(), "--amount", "3.25"]);

    let history = String::from_utf8(wallet(&n, &payee, &["history"]).stdout).unwrap();
    let pending = history.split("Pending").nth(1).unwrap_or_else(|| panic!("{history}"));
    assert!(pending.contains("received") && pending.contains("3.25"), "{history}");
    let balance = String::from_utf8(wallet(&n, &payee, &["balance"]).stdout).unwrap();
    assert!(balance.contains("incoming   +3.25"), "{balance}");
    let json = String::from_utf8(wallet(&n, &payee, &["--json", "balance"]).stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["pending_received"], "3.25", "{json}");
}
