//! Two and three real nodes on loopback: relay of blocks and payments, sync of a node that
//! starts behind, and a hostile peer sending garbage.

use crate::support::{dev_key, devnet, http_get, payment_hex, DevNode};
use ember_core::Keypair;
use ember_testnet::wait_for;
use serde_json::json;
use std::io::Write;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn tip(n: &DevNode) -> (u64, String) {
    let info = n.call("node_info", json!([]));
    (info["height"].as_u64().unwrap(), info["tip"].as_str().unwrap().to_string())
}

fn peers(n: &DevNode) -> u64 {
    n.call("node_info", json!([]))["peers"].as_u64().unwrap()
}

#[test]
fn blocks_and_payments_relay_between_peers() {
    let a = DevNode::start(&[]);
    let peer_arg = a.node.p2p_addr();
    let b = DevNode::start(&["--peer", &peer_arg]);
    wait_for(T, "the peers to connect", || (peers(&a) == 1 && peers(&b) == 1).then_some(()))
        .unwrap();

    a.call("mining_generate", json!([3]));
    let want = tip(&a);
    wait_for(T, "b to follow a's tip", || (tip(&b) == want).then_some(())).unwrap();
    // The miner sees its peer's height move although that peer never sends it a block:
    // b fetched the blocks from a.
    wait_for(T, "a to see b at height 3", || {
        (a.call("net_peers", json!([]))[0]["height"] == 3).then_some(())
    })
    .unwrap();

    // A payment submitted to b reaches a's mempool, is mined by a, and is confirmed on b.
    let params = devnet();
    let to = Keypair::generate();
    let txid =
        b.call("tx_submit", json!([payment_hex(&params, &dev_key(3), to.address(), 5_000, 10, 0)]));
    wait_for(T, "the payment to reach a", || {
        a.node.client().call("chain_getTransaction", json!([txid])).ok().map(|_| ())
    })
    .unwrap();
    a.call("mining_generate", json!([1]));
    wait_for(T, "b to confirm the payment", || {
        let t = b.call("chain_getTransaction", json!([txid]));
        (t["status"] == "confirmed").then_some(())
    })
    .unwrap();
    assert_eq!(a.digest(), b.digest());
}

#[test]
fn a_node_that_starts_behind_syncs() {
    let a = DevNode::start(&[]);
    // Payments in the chain, whose signatures the syncing node must check.
    let params = devnet();
    let to = Keypair::generate();
    let mut paid = 0;
    for (key, nonces) in [(1, 4), (2, 3), (3, 5)] {
        for nonce in 0..nonces {
            let tx = payment_hex(&params, &dev_key(key), to.address(), 1_000, 10, nonce);
            a.call("tx_submit", json!([tx]));
            paid += 1;
        }
        a.call("mining_generate", json!([1]));
    }
    a.call("mining_generate", json!([117]));
    let peer_arg = a.node.p2p_addr();
    let b = DevNode::start(&["--peer", &peer_arg]);
    let want = tip(&a);
    wait_for(T, "b to sync 120 blocks", || (tip(&b) == want).then_some(())).unwrap();
    assert_eq!(a.digest(), b.digest());
    // Every payment of the sync had its signature checked ahead, on every core, while the
    // blocks before it were being connected (not one at a time under the chain lock).
    let metrics = http_get(&format!("{}/metrics", b.node.rpc_url()));
    let checked = format!("ember_payments_checked_ahead_total {paid}\n");
    assert!(metrics.contains(&checked), "want {checked} in {metrics}");
    // A third node syncs from b alone.
    let b_addr = b.node.p2p_addr();
    let c = DevNode::start(&["--peer", &b_addr]);
    wait_for(T, "c to sync through b", || (tip(&c) == want).then_some(())).unwrap();
}

#[test]
fn garbage_peer_is_banned_and_the_node_keeps_working() {
    let a = DevNode::start(&[]);
    let addr = a.node.p2p_addr();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    wait_for(T, "the garbage peer to be banned", || {
        let bans = a.call("net_bans", json!([]));
        bans.as_array()
            .unwrap()
            .iter()
            .any(|b| b["reason"].as_str().unwrap_or("").contains("magic"))
            .then_some(())
    })
    .unwrap();
    // An oversized frame header with the right magic is refused before allocation.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let mut frame = b"EMBd".to_vec();
    frame.extend_from_slice(&u32::MAX.to_le_bytes());
    s.write_all(&frame).unwrap();
    wait_for(T, "the oversized frame to be refused", || {
        let bans = a.call("net_bans", json!([]));
        bans.as_array()
            .unwrap()
            .iter()
            .any(|b| b["reason"].as_str().unwrap_or("").contains("cap"))
            .then_some(())
    })
    .unwrap();
    a.call("mining_generate", json!([1]));
    assert_eq!(tip(&a).0, 1);
}

fn peer_listen_addrs(n: &DevNode) -> Vec<String> {
    let peers = n.call("net_peers", json!([]));
    peers
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["listen_address"].as_str().map(str::to_string))
        .collect()
}

/// Three processes in a line (a <- b <- c): a payment and a block reach everyone; c learns
/// a's address from b and dials it; c, SIGKILLed and restarted with no --peer at all, finds
/// the network again from its persisted address book and catches up.
#[test]
fn three_nodes_relay_discover_and_a_killed_node_rejoins_from_its_address_book() {
    let a = DevNode::start(&[]);
    let a_addr = a.node.p2p_addr();
    let b = DevNode::start(&["--peer", &a_addr]);
    let b_addr = b.node.p2p_addr();
    let mut c = DevNode::start(&["--peer", &b_addr]);
    wait_for(T, "c to learn a's address from b and dial it", || {
        let seen = peer_listen_addrs(&c);
        (seen.contains(&a_addr) && seen.contains(&b_addr)).then_some(())
    })
    .unwrap();

    // A payment submitted at c is mined by a; the block reaches c.
    let params = devnet();
    let to = Keypair::generate();
    let txid =
        c.call("tx_submit", json!([payment_hex(&params, &dev_key(4), to.address(), 7_000, 10, 0)]));
    wait_for(T, "the payment to reach a", || {
        a.node.client().call("chain_getTransaction", json!([txid])).ok().map(|_| ())
    })
    .unwrap();
    a.call("mining_generate", json!([1]));
    for n in [&b, &c] {
        wait_for(T, "the block to confirm the payment everywhere", || {
            let t = n.call("chain_getTransaction", json!([txid]));
            (t["status"] == "confirmed").then_some(())
        })
        .unwrap();
    }

    // Crash c, mine while it is down, restart it with no --peer.
    c.node.kill().unwrap();
    a.call("mining_generate", json!([5]));
    let data_dir = c.node.data_dir().to_path_buf();
    c.node = ember_testnet::NodeProcess::start(&data_dir, &["--network".into(), "devnet".into()])
        .expect("c restarts");
    let info = c.call("node_info", json!([]));
    assert!(info["known_addresses"].as_u64().unwrap() >= 2, "address book persisted: {info}");
    let want = tip(&a);
    wait_for(T, "c to reconnect from its address book and catch up", || {
        (tip(&c) == want).then_some(())
    })
    .unwrap();
    assert_eq!(c.digest(), a.digest());
}
