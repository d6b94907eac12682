//! Devnet controls as anvil users know them (issue 17): automine confirms a `send --wait`
//! at once and batches what was admitted together, interval mining switched at run time,
//! `mining_getMode`, the controls refused off devnet, and `chain_getTips` after a reorg.

use crate::support::{dev_key, devnet, payment_hex, DevNode};
use ember_core::Keypair;
use ember_testnet::process::wait_for;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// `ember-wallet` with a dev wallet in `dir`, against `node`.
fn wallet(dir: &std::path::Path, node: &DevNode, args: &[&str]) -> std::process::Output {
    let bin = ember_testnet::process::binary("ember-wallet").unwrap();
    Command::new(bin)
        .arg("--wallet")
        .arg(dir.join("dev.json"))
        .args(["--node", node.node.rpc_url()])
        .args(args)
        .env("EMBER_WALLET_PASSPHRASE", "devnet controls")
        .env("EMBER_WALLET_KDF", "test")
        .output()
        .unwrap()
}

#[test]
fn automine_confirms_a_payment_at_once_and_batches_what_came_together() {
    let n = DevNode::start(&["--automine"]);
    let mode = n.call("mining_getMode", json!([]));
    assert_eq!(mode, json!({"automine": true, "interval_secs": null, "mining": false}));
    assert_eq!(n.call("node_info", json!([]))["automine"], true);

    // The wallet's `send --wait --timeout 1` returns confirmed: the payment made its own
    // block within the second.
    let dir = tempfile::tempdir().unwrap();
    let out = wallet(dir.path(), &n, &["import-dev-key"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let to = Keypair::generate().address().to_bech32("edev");
    let out = wallet(
        dir.path(),
        &n,
        &["--json", "send", "--to", &to, "--amount", "3", "--wait", "--timeout", "1"],
    );
    assert!(out.status.success(), "send --wait: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(n.height(), 1, "exactly one block, for the one payment");
    assert_eq!(n.call("account_get", json!([to]))["balance"], "3");

    // Two payments in one batch request: one block takes both.
    let params = devnet();
    let bob = Keypair::generate();
    let batch: Vec<Value> = (0..2)
        .map(|i| {
            let tx = payment_hex(&params, &dev_key(1), bob.address(), 10 + i, 1, i);
            json!({"jsonrpc": "2.0", "id": i, "method": "tx_submit", "params": [tx]})
        })
        .collect();
    let answers: Value = ureq::post(n.node.rpc_url())
        .set("Content-Type", "application/json")
        .send_string(&Value::Array(batch).to_string())
        .map(|r| serde_json::from_str(&r.into_string().unwrap()).unwrap())
        .unwrap_or_else(|e| panic!("batch: {e}"));
    assert!(answers.as_array().unwrap().iter().all(|a| a["result"].is_string()), "{answers}");
    wait_for(T, "both payments confirmed", || {
        (n.call("mempool_info", json!([]))["count"] == 0).then_some(())
    })
    .unwrap();
    let height = n.height();
    let mut txs = 0;
    for h in 2..=height {
        txs += n.call("chain_getBlock", json!([h]))["txs"].as_array().unwrap().len();
    }
    assert_eq!(txs, 2);
    assert!(height <= 3, "at most a block per admission: height {height}");

    // Switched off, a payment stays pending.
    let mode = n.call("mining_setAutomine", json!([false]));
    assert_eq!(mode["automine"], false);
    let tx = payment_hex(&params, &dev_key(1), bob.address(), 5, 1, 2);
    n.call("tx_submit", json!([tx]));
    // A block mined on demand takes it: the miner is idle, not gone.
    n.call("mining_generate", json!([1]));
    assert_eq!(n.call("mempool_info", json!([]))["count"], 0);
    assert_eq!(n.height(), height + 1);
}

#[test]
fn interval_mining_is_switched_at_run_time_and_refused_off_devnet() {
    let n = DevNode::start(&[]);
    assert_eq!(n.call("mining_getMode", json!([]))["mining"], false);
    let mode = n.call("mining_setInterval", json!([0.05]));
    assert_eq!(
        (mode["mining"].as_bool(), mode["interval_secs"].as_f64()),
        (Some(true), Some(0.05))
    );
    wait_for(T, "interval blocks", || (n.height() >= 5).then_some(())).unwrap();
    let mode = n.call("mining_setInterval", json!([0]));
    assert_eq!(mode, json!({"automine": false, "interval_secs": null, "mining": false}));
    let client = n.node.client();
    for bad in [json!([-1]), json!([3601]), json!(["fast"]), json!([])] {
        let e = client.call("mining_setInterval", bad.clone()).unwrap_err();
        assert!(e.to_string().contains("seconds"), "{bad}: {e}");
    }
    let e = client.call("mining_setAutomine", json!(["yes"])).unwrap_err();
    assert!(e.to_string().contains("true or false"), "{e}");

    let t = DevNode::start_with(&["--network", "testnet"]);
    for (method, params) in
        [("mining_setAutomine", json!([true])), ("mining_setInterval", json!([1]))]
    {
        let e = t.node.client().call(method, params).unwrap_err();
        assert!(e.to_string().contains("devnet only"), "{method}: {e}");
    }
    assert_eq!(t.call("mining_getMode", json!([]))["automine"], false);
}

#[test]
fn chain_tips_show_the_active_chain_and_the_branch_a_reorg_left() {
    let a = DevNode::start(&[]);
    let b = DevNode::start(&[]);
    let miner = |i: u32| dev_key(i).address().to_bech32("edev");
    a.call("mining_generate", json!([3, miner(1)]));
    b.call("mining_generate", json!([5, miner(2)]));
    let a_tip = a.call("node_info", json!([]))["tip"].clone();
    a.call("net_addPeer", json!([b.node.p2p_addr()]));
    let b_tip = b.call("node_info", json!([]))["tip"].clone();
    wait_for(T, "a on b's longer chain", || {
        (a.call("node_info", json!([]))["tip"] == b_tip).then_some(())
    })
    .unwrap();
    let tips = a.call("chain_getTips", json!([]));
    let tips = tips.as_array().unwrap();
    assert_eq!(tips.len(), 2, "{tips:?}");
    assert_eq!(
        (&tips[0]["id"], tips[0]["height"].as_u64(), tips[0]["branch_len"].as_u64()),
        (&b_tip, Some(5), Some(0))
    );
    assert_eq!(tips[0]["status"], "active");
    assert_eq!((&tips[1]["id"], tips[1]["height"].as_u64()), (&a_tip, Some(3)));
    assert_eq!(
        (tips[1]["branch_len"].as_u64(), &tips[1]["status"]),
        (Some(3), &json!("valid-fork"))
    );
}

#[test]
fn invalidating_a_block_rewinds_returns_its_payments_and_reconsidering_restores_it() {
    let n = DevNode::start(&[]);
    let params = devnet();
    n.call("mining_generate", json!([3]));
    let tx = payment_hex(&params, &dev_key(1), Keypair::generate().address(), 7, 1, 0);
    let txid = n.call("tx_submit", json!([tx]));
    n.call("mining_generate", json!([2]));
    let (tip5, digest5) = (n.call("node_info", json!([]))["tip"].clone(), n.digest());
    assert_eq!(n.call("chain_getTransaction", json!([txid]))["height"], 4);

    // Off the main chain from height 4: back to 3, the payment pending again.
    let r = n.call("chain_invalidateBlock", json!([4]));
    assert_eq!(r["height"], 3);
    assert_eq!(n.height(), 3);
    assert_eq!(n.call("chain_getTransaction", json!([txid]))["status"], "pending");
    let tips = n.call("chain_getTips", json!([]));
    let invalid: Vec<&Value> =
        tips.as_array().unwrap().iter().filter(|t| t["status"] == "invalid").collect();
    assert_eq!(invalid.len(), 1, "{tips}");
    assert_eq!((&invalid[0]["id"], invalid[0]["branch_len"].as_u64()), (&tip5, Some(2)));

    // Reconsidered: the same chain and state again.
    let r = n.call("chain_reconsiderBlock", json!([invalid[0]["id"]]));
    assert_eq!(r["tip"], tip5);
    assert_eq!(n.digest(), digest5);
    assert_eq!(n.call("mempool_info", json!([]))["count"], 0);

    // Refusals: unknown block, genesis, no token.
    let c = n.node.client();
    let e = c.call("chain_invalidateBlock", json!(["00".repeat(32)])).unwrap_err();
    assert!(e.to_string().contains("not known"), "{e}");
    let e = c.call("chain_invalidateBlock", json!([0])).unwrap_err();
    assert!(e.to_string().contains("genesis"), "{e}");
    let open = ember_wallet::rpc::RpcClient::new(n.node.rpc_url());
    let e = open.call("chain_invalidateBlock", json!([1])).unwrap_err();
    assert!(e.to_string().contains("admin token"), "{e}");
    assert_eq!(n.digest(), digest5, "refusals change nothing");
}

#[test]
fn revert_to_a_snapshot_restores_the_state_digest_and_the_pending_payments() {
    // With automine on, as anvil is usually run.
    let n = DevNode::start(&["--automine"]);
    let params = devnet();
    n.call("mining_generate", json!([2]));
    let snap = n.call("dev_snapshot", json!([]));
    let (digest, tip) = (n.digest(), n.call("node_info", json!([]))["tip"].clone());
    assert_eq!(snap["tip"], tip);

    let bob = Keypair::generate();
    for nonce in 0..3 {
        let tx = payment_hex(&params, &dev_key(2), bob.address(), 100, 1, nonce);
        n.call("tx_submit", json!([tx]));
        wait_for(T, "the payment automined", || (n.height() == 3 + nonce).then_some(())).unwrap();
    }
    let later = n.call("dev_snapshot", json!([]));
    assert_ne!(n.digest(), digest);

    let r = n.call("dev_revert", json!([snap["id"]]));
    assert_eq!((r["height"].as_u64(), &r["tip"]), (Some(2), &tip));
    assert_eq!(n.digest(), digest, "the snapshot's state again");
    assert_eq!(n.call("mempool_info", json!([]))["count"], 3, "the payments are pending again");
    assert_eq!(n.call("account_get", json!([bob.address().to_bech32("edev")]))["balance"], "0");

    // Consumed, with every later snapshot; mining goes on from the snapshot's tip.
    for id in [&snap["id"], &later["id"]] {
        let e = n.node.client().call("dev_revert", json!([id])).unwrap_err();
        assert!(e.to_string().contains("no snapshot"), "{e}");
    }
    // Automine did not re-mine what the revert gave back; the next payment takes them all
    // into one block.
    let tx = payment_hex(&params, &dev_key(3), bob.address(), 100, 1, 0);
    n.call("tx_submit", json!([tx]));
    // Both: a block's payments leave the mempool just before its tip is published.
    wait_for(T, "the next block", || {
        (n.call("mempool_info", json!([]))["count"] == 0 && n.height() >= 3).then_some(())
    })
    .unwrap();
    assert_eq!(n.height(), 3, "one block for the four payments");
    assert_eq!(n.call("chain_getBlock", json!([3]))["txs"].as_array().unwrap().len(), 4);
    assert_eq!(
        n.call("account_get", json!([bob.address().to_bech32("edev")]))["balance"],
        "0.000004",
        "400 base units"
    );
}

#[test]
fn a_peer_on_a_branch_invalidated_by_hand_is_not_punished_even_after_a_restart() {
    let a = DevNode::start(&[]);
    let mut b = DevNode::start(&["--peer", &a.node.p2p_addr()]);
    a.call("mining_generate", json!([3]));
    wait_for(T, "b at a's height", || (b.height() == 3).then_some(())).unwrap();
    b.call("chain_invalidateBlock", json!([2]));
    assert_eq!(b.height(), 1);
    b.node.restart().unwrap();
    assert_eq!(b.height(), 1, "the mark survives a restart");
    // a keeps building on the branch b refuses, and sends it.
    a.call("mining_generate", json!([2]));
    wait_for(T, "b to hear of a's new blocks", || {
        let peers = b.call("net_peers", json!([]));
        (peers[0]["height"].as_u64() >= Some(5)).then_some(())
    })
    .unwrap();
    assert_eq!(b.height(), 1);
    assert_eq!(b.call("net_bans", json!([])), json!([]), "a did nothing wrong");
    assert_eq!(a.call("net_bans", json!([])), json!([]));
    // Reconsidered, b follows a again.
    b.call("chain_reconsiderBlock", json!([a.call("chain_getBlock", json!([2]))["id"]]));
    wait_for(T, "b back on a's chain", || (b.height() == 5).then_some(())).unwrap();
}

#[test]
fn concurrent_generate_calls_each_extend_the_main_chain() {
    let n = DevNode::start(&[]);
    n.call("mining_setInterval", json!([0.001]));
    let ids: Vec<Value> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..10)
                        .map(|_| n.call("mining_generate", json!([1]))[0].clone())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    n.call("mining_setInterval", json!([0]));
    for id in &ids {
        assert_eq!(n.call("chain_getHeader", json!([id]))["main_chain"], true, "{id} forked off");
    }
}
