//! Compact block relay between real nodes, and against a peer that speaks it wrongly.
//!
//! | what | the node must |
//! |---|---|
//! | a block whose payments every mempool of a 3-node line holds | rebuild it from its mempool on every hop (counted in `node_info.compact`), no round trip, no whole block |
//! | a compact block of payments the node lacks | ask for exactly the missing indexes once (`GetBlockTxn`), take the block from the answer |
//! | an answer with the wrong number of payments, a prefilled index out of order, a `GetBlockTxn` past the block | ban the sender |
//! | a compact block whose short ids collide | ask for the whole block instead, no ban |
//! | a block with valid proof of work but an invalid payment, relayed by an honest node in high-bandwidth mode | refuse it, and not ban the honest relayer (BIP152) |

use crate::support::{dev_key, devnet, payment_hex, DevNode};
use ember_core::testkit::{child_block, pay};
use ember_core::{Block, BlockId, Keypair, Transaction};
use ember_node::net::compact::CompactBlock;
use ember_node::net::wire::{Inv, Message};
use ember_testnet::hostile::{HostileOptions, HostilePeer};
use ember_testnet::wait_for;
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn p2p(n: &DevNode) -> SocketAddr {
    n.node.p2p_addr().parse().expect("p2p address")
}

fn compact(n: &DevNode) -> Value {
    n.call("node_info", json!([]))["compact"].clone()
}

fn bans(n: &DevNode) -> Vec<Value> {
    n.call("net_bans", json!([])).as_array().cloned().unwrap_or_default()
}

/// A port nothing listens on: what a hostile peer claims, so its ban keys on it.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn hostile(n: &DevNode) -> HostilePeer {
    let opts = HostileOptions { listen_port: free_port(), ..Default::default() };
    HostilePeer::connect(p2p(n), &devnet(), &opts)
        .unwrap_or_else(|e| panic!("hostile handshake: {e}\n{}", n.node.log_tail()))
}

/// The node's tip block, fetched by the peer.
fn tip_block(n: &DevNode, h: &mut HostilePeer) -> Block {
    let tip: BlockId = n.call("node_info", json!([]))["tip"].as_str().unwrap().parse().unwrap();
    h.fetch_block(tip, T).expect("the tip block")
}

/// `count` payments from dev accounts `first..` (nonce 0 each), which no mempool holds.
fn fresh_payments(first: u32, count: u32) -> Vec<Transaction> {
    let params = devnet();
    let to = Keypair::generate().address();
    (first..first + count).map(|i| pay(&params, &dev_key(i), to, 1_000, 10, 0)).collect()
}

/// Waits for the node's `GetBlockTxn` of `block`; returns its indexes.
fn asked_indexes(h: &mut HostilePeer, block: BlockId) -> Vec<u32> {
    h.recv_until(T, "getblocktxn", |m| match m {
        Message::GetBlockTxn { block: b, indexes } if *b == block => Some(indexes.clone()),
        _ => None,
    })
    .expect("the node asks for the missing payments")
}

/// Node b, and node c peered to it, once b has mined a block and c has it.
fn relay_pair() -> (DevNode, DevNode) {
    let b = DevNode::start(&[]);
    let c = DevNode::start(&["--peer", &b.node.p2p_addr()]);
    b.call("mining_generate", json!([1]));
    wait_for(T, "c at height 1", || (c.height() == 1).then_some(())).unwrap();
    (b, c)
}

/// A hostile peer sends `b` a compact block on its tip of two payments no mempool holds, and
/// `b` asks for both: the peer, the block and its payments.
fn compact_lacking_two(b: &DevNode) -> (HostilePeer, Block, Vec<Transaction>) {
    let params = devnet();
    let mut h = hostile(b);
    let parent = tip_block(b, &mut h).header;
    let txs = fresh_payments(0, 2);
    let block = child_block(&params, &parent, txs.clone(), Keypair::generate().address(), 0);
    h.send(&Message::CmpctBlock(CompactBlock::build(&block, 21, &[]))).unwrap();
    assert_eq!(asked_indexes(&mut h, block.id()), vec![0, 1]);
    (h, block, txs)
}

/// `tx` with one bit of its signature flipped: the same txid, an invalid signature.
fn tampered(tx: &Transaction) -> Transaction {
    let mut sig = *tx.signature();
    sig.0[0] ^= 1;
    Transaction::from_parts(*tx.body(), sig)
}

/// Asks for payments 0 and 1 of `block`: what the node answers (`None`: `NotFound`).
fn ask_payments(asker: &mut HostilePeer, block: BlockId) -> Option<Vec<Transaction>> {
    asker.send(&Message::GetBlockTxn { block, indexes: vec![0, 1] }).unwrap();
    asker
        .recv_until(T, "the node's answer", |m| match m {
            Message::BlockTxn { block: id, txs } if *id == block => Some(Some(txs.clone())),
            Message::NotFound(items) if items.contains(&Inv::Block(block)) => Some(None),
            _ => None,
        })
        .unwrap()
}

#[test]
fn a_line_rebuilds_each_block_from_its_mempool_without_a_round_trip() {
    let a = DevNode::start(&[]);
    let b = DevNode::start(&["--peer", &a.node.p2p_addr()]);
    let c = DevNode::start(&["--peer", &b.node.p2p_addr()]);
    a.call("mining_generate", json!([1]));
    wait_for(T, "the line at height 1", || (c.height() == 1).then_some(())).unwrap();
    let params = devnet();
    let to = Keypair::generate().address();
    for i in 0..10u32 {
        for nonce in 0..5 {
            a.call("tx_submit", json!([payment_hex(&params, &dev_key(i), to, 1_000, 10, nonce)]));
        }
    }
    wait_for(T, "every mempool to hold the 50 payments", || {
        [&a, &b, &c].iter().all(|n| n.call("mempool_info", json!([]))["count"] == 50).then_some(())
    })
    .unwrap();
    let before = [compact(&b), compact(&c)];
    a.call("mining_generate", json!([1]));
    wait_for(T, "the far node at height 2", || (c.height() == 2).then_some(())).unwrap();
    assert_eq!(c.call("chain_getBlock", json!([2]))["txs"].as_array().map(Vec::len), Some(50));
    assert_eq!(a.digest(), c.digest());
    for (n, (node, before)) in [&b, &c].iter().zip(before).enumerate() {
        let after = compact(node);
        let grew = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
        assert_eq!(grew("rebuilt_from_mempool"), 1, "node {}: {after}", n + 1);
        assert_eq!(grew("round_trips"), 0, "node {}: {after}", n + 1);
        assert_eq!(grew("fallbacks"), 0, "node {}: {after}", n + 1);
    }
    assert!(compact(&a)["sent"].as_u64() >= Some(1), "a sent its block compact");
}

#[test]
fn missing_payments_cost_one_round_trip_and_wrong_answers_are_banned() {
    let a = DevNode::start(&[]);
    a.call("mining_generate", json!([1]));
    let params = devnet();
    let miner = Keypair::generate().address();

    // Three payments a has never seen: it asks for exactly those, once.
    let mut h = hostile(&a);
    let parent = tip_block(&a, &mut h).header;
    let txs = fresh_payments(0, 3);
    let block = child_block(&params, &parent, txs.clone(), miner, 0);
    h.send(&Message::CmpctBlock(CompactBlock::build(&block, 11, &[]))).unwrap();
    assert_eq!(asked_indexes(&mut h, block.id()), vec![0, 1, 2]);
    h.send(&Message::BlockTxn { block: block.id(), txs }).unwrap();
    let id = block.id().to_string();
    wait_for(T, "the block rebuilt from the answer", || {
        (a.call("node_info", json!([]))["tip"] == id.as_str()).then_some(())
    })
    .unwrap();
    let st = compact(&a);
    assert_eq!((st["rebuilt"].as_u64(), st["round_trips"].as_u64()), (Some(1), Some(1)), "{st}");
    assert!(bans(&a).is_empty());

    // Two missing, one sent back: banned, and the block is not taken.
    let txs = fresh_payments(3, 2);
    let block = child_block(&params, &block.header, txs.clone(), miner, 0);
    h.send(&Message::CmpctBlock(CompactBlock::build(&block, 12, &[1]))).unwrap();
    assert_eq!(asked_indexes(&mut h, block.id()), vec![0]);
    h.send(&Message::BlockTxn { block: block.id(), txs: vec![txs[0], txs[1]] }).unwrap();
    wait_for(T, "a ban for a wrong answer", || (bans(&a).len() == 1).then_some(())).unwrap();
    assert_eq!(a.height(), 2);

    // A prefilled index out of order: banned.
    let mut h = hostile(&a);
    let mut cb = CompactBlock::build(&block, 13, &[0, 1]);
    cb.prefilled.swap(0, 1);
    h.send(&Message::CmpctBlock(cb)).unwrap();
    wait_for(T, "a ban for a malformed compact block", || (bans(&a).len() == 2).then_some(()))
        .unwrap();

    // A GetBlockTxn past the block's payments: banned.
    let mut h = hostile(&a);
    let tip: BlockId = id.parse().unwrap();
    h.send(&Message::GetBlockTxn { block: tip, indexes: vec![1, 3] }).unwrap();
    wait_for(T, "a ban for asking past the block", || (bans(&a).len() == 3).then_some(())).unwrap();

    // Two payments of one block with the same short id: the whole block is asked for, and
    // nobody is banned for it.
    let mut h = hostile(&a);
    let mut cb = CompactBlock::build(&block, 14, &[]);
    cb.short_ids[1] = cb.short_ids[0];
    h.send(&Message::CmpctBlock(cb)).unwrap();
    h.recv_until(T, "a getdata of the whole block", |m| match m {
        Message::GetData(items) => {
            items.contains(&ember_node::net::wire::Inv::Block(block.id())).then_some(())
        }
        _ => None,
    })
    .expect("the fallback to the whole block");
    h.send(&Message::Block(block.clone())).unwrap();
    let id = block.id().to_string();
    wait_for(T, "the whole block taken", || {
        (a.call("node_info", json!([]))["tip"] == id.as_str()).then_some(())
    })
    .unwrap();
    assert_eq!(bans(&a).len(), 3, "a collision is nobody's fault");
    assert_eq!(compact(&a)["fallbacks"].as_u64(), Some(1));
}

/// With blocks forwarded before validation, a child can arrive before its parent is
/// rebuilt: both wait for their payments at once (several partial blocks per peer), the
/// child, completed first, waits in the orphan pool, and the parent's arrival connects
/// both. (With one partial block per peer, or an orphan compact block dropped, the node
/// stayed at height 1 and, on a line, so did every node after it.)
#[test]
fn a_child_that_overtakes_its_parent_is_kept_until_the_parent_is_rebuilt() {
    let a = DevNode::start(&[]);
    a.call("mining_generate", json!([1]));
    let params = devnet();
    let miner = Keypair::generate().address();
    let mut h = hostile(&a);
    let tip = tip_block(&a, &mut h).header;
    let (txs1, txs2) = (fresh_payments(0, 2), fresh_payments(2, 2));
    let parent = child_block(&params, &tip, txs1.clone(), miner, 0);
    let child = child_block(&params, &parent.header, txs2.clone(), miner, 0);
    h.send(&Message::CmpctBlock(CompactBlock::build(&parent, 31, &[]))).unwrap();
    assert_eq!(asked_indexes(&mut h, parent.id()), vec![0, 1]);
    h.send(&Message::CmpctBlock(CompactBlock::build(&child, 32, &[]))).unwrap();
    assert_eq!(asked_indexes(&mut h, child.id()), vec![0, 1]);
    // The child's payments first: complete, but its parent is not there yet.
    h.send(&Message::BlockTxn { block: child.id(), txs: txs2 }).unwrap();
    h.round_trip(T).expect("a handled the child");
    assert_eq!(a.height(), 1);
    h.send(&Message::BlockTxn { block: parent.id(), txs: txs1 }).unwrap();
    let id = child.id().to_string();
    wait_for(T, "both blocks connected", || {
        (a.call("node_info", json!([]))["tip"] == id.as_str()).then_some(())
    })
    .unwrap();
    assert_eq!((a.height(), compact(&a)["rebuilt"].as_u64()), (3, Some(2)));
    assert!(bans(&a).is_empty());
}

/// A relayer forwards a compact block before it has it whole: b forwards a block to c as
/// it came from its sender, although neither has its payments; c's `GetBlockTxn` to b waits
/// until b has them (from the sender, one round trip later), then c rebuilds the block.
/// (Had b answered `NotFound` at once and kept c marked as having the block, c would have
/// stayed a block behind; b's unmarking c on `NotFound`, so that it pushes the block once
/// connected, is the second line and passes this test on its own.)
#[test]
fn a_block_forwarded_before_the_relayer_has_it_is_served_once_it_does() {
    let (b, c) = relay_pair();
    let before = compact(&c);
    let grew = |k: &str| compact(&c)[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    let (mut h, block, txs) = compact_lacking_two(&b);
    // b has forwarded it by now (before asking): c asks b, and waits.
    wait_for(T, "c's round trip to b", || (grew("round_trips") == 1).then_some(())).unwrap();
    assert_eq!(c.height(), 1, "c cannot have the block yet");
    h.send(&Message::BlockTxn { block: block.id(), txs }).unwrap();
    let id = block.id().to_string();
    wait_for(T, "c rebuilt the block through b", || {
        (c.call("node_info", json!([]))["tip"] == id.as_str()).then_some(())
    })
    .unwrap();
    assert_eq!((grew("rebuilt"), grew("fallbacks")), (1, 0), "{}", compact(&c));
    assert!(bans(&b).is_empty() && bans(&c).is_empty());
}

/// A sender answers the `GetBlockTxn` of its compact block with a payment whose signature
/// was tampered with (same txid, so the rebuilt block matches its header's root): b refuses
/// its copy as a bad copy, and must neither serve that copy to the peers it forwarded the
/// block to nor keep serving it once the valid block is stored. (b kept its rebuilt copy and
/// answered every `GetBlockTxn` with the tampered payment, even after storing the honest
/// block: c, which b had forwarded the block to, refused it and stayed a block behind.)
#[test]
fn a_tampered_answer_is_never_served_and_the_valid_block_still_spreads() {
    let (b, c) = relay_pair();
    let (mut h, block, txs) = compact_lacking_two(&b);
    let tampered = tampered(&txs[1]);
    h.send(&Message::BlockTxn { block: block.id(), txs: vec![txs[0], tampered] }).unwrap();
    // Asked now (after b judged its copy, since b handles h's messages in order), b has
    // no valid body of the block to give.
    h.round_trip(T).expect("b handled the answer");
    let mut asker = hostile(&b);
    assert_eq!(ask_payments(&mut asker, block.id()), None, "b served its refused copy");
    // The valid block, whole: b stores it, serves its payments, and c gets it through b.
    h.send(&Message::Block(block.clone())).unwrap();
    let id = block.id().to_string();
    for n in [&b, &c] {
        wait_for(T, "the valid block on b and c", || {
            (n.call("node_info", json!([]))["tip"] == id.as_str()).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", n.node.log_tail()));
    }
    assert_eq!(ask_payments(&mut asker, block.id()), Some(txs), "b serves the stored payments");
    assert!(bans(&c).is_empty(), "c banned the honest relayer: {:?}", bans(&c));
}

/// Payments of a rebuilt block that was not validated are not served either: a block
/// behind the best header (stored headers of another branch lead) and a block whose parent
/// is unknown (an orphan) are rebuilt but not judged, and `GetBlockTxn` for them gets
/// `NotFound`. (A copy kept before validation was served for both, tampered signature
/// included, found by an attacker helper.)
#[test]
fn payments_of_a_rebuilt_block_not_yet_validated_are_never_served() {
    let b = DevNode::start(&[]);
    b.call("mining_generate", json!([1]));
    let params = devnet();
    let mut h = hostile(&b);
    let tip = tip_block(&b, &mut h).header;
    // Two headers of another branch on the tip: the best header is now two blocks ahead.
    let ahead = ember_testnet::hostile::side_branch(&params, &tip, 2, tip.time + 1, 7).unwrap();
    h.send(&Message::Headers(ahead)).unwrap();
    h.round_trip(T).expect("b stored the headers");
    let mut asker = hostile(&b);
    let mut ask = |block: BlockId| ask_payments(&mut asker, block);
    // A block at the tip's next height, behind that branch, answered with a tampered
    // payment; then an orphan (its parent never sent), answered honestly.
    let txs = fresh_payments(0, 2);
    let behind = child_block(&params, &tip, txs.clone(), Keypair::generate().address(), 0);
    let parent = child_block(&params, &tip, vec![], Keypair::generate().address(), 5);
    let orphan_txs = fresh_payments(2, 2);
    let orphan = child_block(&params, &parent.header, orphan_txs.clone(), tip.miner, 0);
    let tampered = tampered(&txs[1]);
    for (block, answer) in [(&behind, vec![txs[0], tampered]), (&orphan, orphan_txs)] {
        h.send(&Message::CmpctBlock(CompactBlock::build(block, 21, &[]))).unwrap();
        assert_eq!(asked_indexes(&mut h, block.id()), vec![0, 1]);
        h.send(&Message::BlockTxn { block: block.id(), txs: answer }).unwrap();
        h.round_trip(T).expect("b handled the answer");
        assert_eq!(ask(block.id()), None, "b served a copy it has not validated");
    }
    assert_eq!(b.height(), 1);
}

#[test]
fn an_invalid_block_relayed_before_validation_gets_no_honest_node_banned() {
    let (b, c) = relay_pair();
    let c_id = c.call("node_info", json!([]))["node_id"].as_str().unwrap().to_string();
    // c asked b for high-bandwidth relay at connect (b is its only peer).
    let params = devnet();
    let mut h = hostile(&b);
    let parent = tip_block(&b, &mut h).header;
    // Valid proof of work and signatures, but the payment spends more than the account
    // holds: only full validation finds it.
    let holds = params.allocations()[5].1.units();
    let bad = pay(&params, &dev_key(5), Keypair::generate().address(), holds + 1, 10, 0);
    let block = child_block(&params, &parent, vec![bad], Keypair::generate().address(), 0);
    h.send(&Message::CmpctBlock(CompactBlock::build(&block, 21, &[0]))).unwrap();
    // c rebuilds it from b's forward (sent before b validated it), and refuses it.
    wait_for(T, "c to rebuild the forwarded block", || {
        (compact(&c)["rebuilt"].as_u64() >= Some(1)).then_some(())
    })
    .unwrap();
    // b mines on: c handles b's messages in order, so once it has the next block it has
    // judged the invalid one.
    b.call("mining_generate", json!([1]));
    wait_for(T, "c at height 2", || (c.height() == 2).then_some(())).unwrap();
    let tip = b.call("node_info", json!([]))["tip"].clone();
    assert_ne!(tip.as_str(), Some(block.id().to_string().as_str()), "b took the invalid block");
    assert_eq!(c.call("node_info", json!([]))["tip"], tip, "c follows b, not the invalid block");
    assert!(bans(&c).is_empty(), "c banned the honest relayer: {:?}", bans(&c));
    let peers = b.call("net_peers", json!([]));
    let linked = peers.as_array().unwrap().iter().any(|p| p["node_id"] == c_id.as_str());
    assert!(linked, "b and c are no longer linked: {peers}");
    // Nor is the block's first sender punished: a high-bandwidth peer may relay what it has
    // not validated yet.
    h.round_trip(T).expect("the sender is still connected");
    assert!(bans(&b).is_empty(), "b banned the sender: {:?}", bans(&b));
}

/// `GET url/ready`'s status.
fn ready_status(n: &DevNode) -> u16 {
    match ureq::get(&format!("{}/ready", n.node.rpc_url())).call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("/ready: {e}"),
    }
}

/// A block's proof of work is all a block shows before validation, and it is free on
/// devnet: a block at a made-up height (an unknown parent, or a height its parent does not
/// allow) is shown in `net_peers` (at most 2^53 - 1) but never makes `GET /ready` wait for
/// that height, on the node it was sent to nor on the node it was forwarded to before
/// validation. (With the height counted on receipt, both answered 503 "a peer has
/// 4611686018427387904" for as long as the links stayed up.)
#[test]
fn made_up_heights_in_blocks_never_hold_ready_back() {
    let a = DevNode::start(&[]);
    let c = DevNode::start(&["--peer", &a.node.p2p_addr()]);
    a.call("mining_generate", json!([3]));
    wait_for(T, "c at height 3", || (c.height() == 3).then_some(())).unwrap();
    assert_eq!((ready_status(&a), ready_status(&c)), (200, 200));
    let params = devnet();
    let miner = Keypair::generate().address();
    let mut h = hostile(&a);
    let tip = tip_block(&a, &mut h).header;
    // An unknown parent at height 2^62 - 1, then a child of the tip claiming height 8.
    let mut far = tip;
    far.height = (1 << 62) - 1;
    far.prev = BlockId::from_bytes([7; 32]);
    let orphan = child_block(&params, &far, vec![], miner, 0);
    h.send(&Message::CmpctBlock(CompactBlock::build(&orphan, 1, &[]))).unwrap();
    h.send(&Message::Block(orphan)).unwrap();
    let mut wrong = child_block(&params, &tip, vec![], miner, 0);
    wrong.header.height = tip.height + 5;
    assert!(ember_core::validate::solve_pow(&mut wrong.header, u64::MAX));
    h.send(&Message::CmpctBlock(CompactBlock::build(&wrong, 2, &[]))).unwrap();
    h.round_trip(T).expect("a handled all three");
    // c has judged the forwarded block once it has a's next one (a peer's messages are
    // handled in order).
    a.call("mining_generate", json!([1]));
    wait_for(T, "c at height 4", || (c.height() == 4).then_some(())).unwrap();
    assert_eq!(ready_status(&a), 200, "a waits for a height nobody proved");
    assert_eq!(ready_status(&c), 200, "c waits for a height nobody proved");
    let shown = a.call("node_info", json!([]))["best_peer_height"].as_u64().unwrap();
    assert!(shown < (1 << 53), "a shows a height JSON cannot hold exactly: {shown}");
}

/// A peer of the previous protocol version (1, before compact blocks) is refused at the
/// handshake, with a log line naming both versions, and not banned: it is an old build,
/// not an attacker.
#[test]
fn a_peer_of_another_protocol_version_is_refused_by_name_and_not_banned() {
    let a = DevNode::start(&[]);
    let opts = HostileOptions {
        listen_port: free_port(),
        protocol: ember_node::net::wire::PROTOCOL_VERSION - 1,
        ..Default::default()
    };
    // Both sides exchange Version and Verack before judging; the node then closes.
    if let Ok(mut h) = HostilePeer::connect(p2p(&a), &devnet(), &opts) {
        assert!(h.wait_closed(T), "the node kept a version-1 peer");
    }
    let log = || std::fs::read_to_string(a.node.data_dir().join("node.log")).unwrap_or_default();
    wait_for(T, "the refusal in the log", || {
        log().contains("peer speaks another P2P protocol version").then_some(())
    })
    .unwrap();
    assert!(log().contains("theirs=1") && log().contains("ours=2"), "versions named");
    assert!(bans(&a).is_empty(), "an old build is not an attacker");
    assert_eq!(a.call("net_peers", json!([])), json!([]));
}
