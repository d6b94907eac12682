//! The mempool survives a clean restart (`mempool.dat`), every saved payment is admitted
//! again through the normal checks (a bad signature is dropped and counted), and a corrupt
//! file is set aside without stopping the node.

use crate::support::{dev_key, devnet, payment_hex, DevNode};
use ember_core::Transaction;
use ember_node::mempool_file;
use ember_testnet::wait_for;
use serde_json::{json, Value};
use std::time::Duration;

fn pending_txids(n: &DevNode) -> Vec<String> {
    let mut ids: Vec<String> = n
        .call("mempool_list", json!([]))
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn log(n: &DevNode) -> String {
    std::fs::read_to_string(n.node.data_dir().join("node.log")).unwrap_or_default()
}

#[test]
fn pending_payments_survive_a_clean_restart_and_a_corrupt_file_is_set_aside() {
    let mut n = DevNode::start(&[]);
    let params = devnet();
    let to = dev_key(5).address();
    let mut sent = Vec::new();
    for (from, nonce) in [(0, 0), (0, 1), (2, 0)] {
        let tx = payment_hex(&params, &dev_key(from), to, 1_000 + nonce, 10_000, nonce);
        sent.push(n.call("tx_submit", json!([tx])).as_str().unwrap().to_string());
    }
    sent.sort();
    assert_eq!(pending_txids(&n), sent);

    // node_stop: the node writes mempool.dat on its way out.
    n.call("node_stop", json!([]));
    wait_for(Duration::from_secs(30), "the node to exit", || (!n.node.is_running()).then_some(()))
        .unwrap();
    let dat = n.node.data_dir().join(mempool_file::FILE_NAME);
    assert!(dat.is_file(), "no mempool.dat after node_stop; log:\n{}", n.node.log_tail());
    n.node.restart().unwrap();
    assert_eq!(pending_txids(&n), sent, "log:\n{}", n.node.log_tail());
    for txid in &sent {
        assert_eq!(n.call("chain_getTransaction", json!([txid]))["status"], "pending");
    }
    let addr = dev_key(0).address().to_bech32(params.hrp());
    assert_eq!(n.call("account_get", json!([addr]))["next_nonce"], 2);
    assert!(log(&n).contains("mempool restored"), "{}", n.node.log_tail());

    // Saved payments are candidates, not trusted: a payment with a broken signature (the
    // file's checksum is fine) is refused and counted, the others come back.
    n.node.stop().unwrap();
    let good = ember_core::testkit::pay(&params, &dev_key(3), to, 7, 10_000, 0);
    let mut forged = ember_core::testkit::pay(&params, &dev_key(4), to, 7, 10_000, 0).encode();
    let last = forged.len() - 1;
    forged[last] ^= 1; // the signature is the last field
    let forged = Transaction::decode(&forged).unwrap();
    let now = ember_node::node::now_ms();
    let bytes = mempool_file::encode(params.genesis_id(), &[(good, now), (forged, now)]);
    std::fs::write(&dat, bytes).unwrap();
    n.node.restart().unwrap();
    assert_eq!(pending_txids(&n), vec![good.txid().to_string()], "log:\n{}", n.node.log_tail());
    let text = log(&n);
    let line = text.lines().rfind(|l| l.contains("mempool restored")).expect("a restore line");
    assert!(line.contains("restored=1") && line.contains("refused=1"), "{line}");
    assert!(line.contains("bad_signature"), "{line}");

    // A damaged file: the node starts anyway, with an empty pool, and keeps the file aside.
    n.node.stop().unwrap();
    std::fs::write(&dat, b"EMBMPOOL but then nonsense").unwrap();
    n.node.restart().unwrap();
    assert_eq!(pending_txids(&n), Vec::<String>::new());
    let aside = n.node.data_dir().join(mempool_file::CORRUPT_NAME);
    assert_eq!(std::fs::read(&aside).unwrap(), b"EMBMPOOL but then nonsense");
    assert!(log(&n).contains("cannot be read"), "{}", n.node.log_tail());
    // And it still works: a new payment is admitted and mined.
    let tx = payment_hex(&params, &dev_key(6), to, 1, 10_000, 0);
    let txid: Value = n.call("tx_submit", json!([tx]));
    n.call("mining_generate", json!([1]));
    assert_eq!(n.call("chain_getTransaction", json!([txid]))["status"], "confirmed");
}

/// Restored payments reach the network: the restarted node announces its pool to the peers
/// it dials (they fetch what they lack), so a payment saved in mempool.dat while the node
/// had no peer is not stuck on it.
#[test]
fn restored_payments_are_announced_to_the_peers_the_node_dials() {
    let mut a = DevNode::start(&[]);
    let params = devnet();
    let tx = payment_hex(&params, &dev_key(1), dev_key(6).address(), 77, 10_000, 0);
    let txid = a.call("tx_submit", json!([tx]));
    a.node.stop().unwrap();
    let b = DevNode::start(&[]);
    a.node.add_args(&["--peer", &b.node.p2p_addr()]);
    a.node.restart().unwrap();
    wait_for(Duration::from_secs(30), "b to hold the restored payment", || {
        let v = b.node.client().call("chain_getTransaction", json!([txid])).ok()?;
        (v["status"] == "pending").then_some(())
    })
    .unwrap();
}
