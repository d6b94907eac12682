//! A single unauthenticated peer against a real devnet node, one test per attack, each with
//! an honest second node connected. Every test asserts what the node must do (a counted
//! quantity: entries held, bytes queued, peers listed, bans kept), waiting for conditions
//! with deadlines; none relies on how long something took.
//!
//! | attack | the node must |
//! |---|---|
//! | `GetData` of 3,000 entries naming one ~100 KB block, then never reading | grow by tens of MB at most, keep answering, queue at most its 1 MiB reply budget plus one message to that peer, drop it, keep the honest peer |
//! | 100,000 headers of side branches that cannot beat the tip | not keep them (`known_headers` grows by a few thousand at most), memory and disk bounded |
//! | 5,000 made-up addresses in `Addr` | still find the honest peer again after a restart without `--peer` |
//! | 1,100 idle TCP connections at a 1,024-descriptor limit | not spin on failed accepts, keep answering RPC, keep its peer, accept a new one afterwards |
//! | misbehaviour and `net_ban`, then a restart | keep both bans (reason, expiry) and refuse the banned peer's handshake |
//! | a valid block 125 s ahead of its clock (120 s allowed) | neither ban nor drop the sender |
//! | `net_ban` for 2^64 − 1 seconds (or 2^64 / 1,000) | refuse it with -32602, add no ban, keep answering |
//!
//! Failures are collected, so one run says everything a node gets wrong in an attack.

use crate::support::{dev_key, devnet, payment_hex, DevNode};
use ember_core::Keypair;
use ember_node::net::wire::{Inv, Message};
use ember_testnet::hostile::{
    dir_size, early_block, limit_open_files, made_up_addrs, now_ms, rss_bytes, side_branch,
    HandshakeStage, HostileOptions, HostilePeer, IdleConnections,
};
use ember_testnet::{wait_for, NodeProcess};
use ember_wallet::rpc::RpcClientError;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const MIB: u64 = 1024 * 1024;
/// What "a few tens of MB" of memory growth means here.
const MAX_RSS_GROWTH: u64 = 64 * MIB;

/// Failed expectations of one test, reported together at the end.
struct Failures {
    what: &'static str,
    list: Vec<String>,
}

impl Failures {
    fn new(what: &'static str) -> Failures {
        Failures { what, list: Vec::new() }
    }

    fn check(&mut self, ok: bool, why: impl FnOnce() -> String) {
        if !ok {
            self.list.push(why());
        }
    }

    fn fail(&mut self, why: String) {
        self.list.push(why);
    }

    fn finish(self, node: &DevNode) {
        if !self.list.is_empty() {
            panic!(
                "{}: {} expectation(s) failed:\n- {}\nlog tail of the attacked node:\n{}",
                self.what,
                self.list.len(),
                self.list.join("\n- "),
                node.node.log_tail()
            );
        }
    }
}

fn p2p(n: &DevNode) -> SocketAddr {
    n.node.p2p_addr().parse().expect("the node wrote its P2P address")
}

fn pid(n: &DevNode) -> u32 {
    n.node.pid().expect("the node runs")
}

fn node_id(n: &DevNode) -> String {
    n.call("node_info", json!([]))["node_id"].as_str().expect("node_info.node_id").to_string()
}

fn try_peers(n: &DevNode) -> Result<Vec<Value>, String> {
    let v = n.node.client().call("net_peers", json!([])).map_err(|e| e.to_string())?;
    v.as_array().cloned().ok_or_else(|| format!("net_peers is not a list: {v}"))
}

/// Whether `n` lists a peer that proved node id `id` (false when it does not answer).
fn lists_peer(n: &DevNode, id: &str) -> bool {
    try_peers(n).is_ok_and(|ps| ps.iter().any(|p| p["node_id"] == id))
}

fn answers(n: &DevNode) -> Result<Value, String> {
    n.node.client().call("node_info", json!([])).map_err(|e| e.to_string())
}

fn bans(n: &DevNode) -> Vec<Value> {
    n.call("net_bans", json!([])).as_array().cloned().expect("net_bans is a list")
}

/// A port nothing listens on (bound by the OS, then released): what a hostile peer claims as
/// its listening port, so that the node bans it as `127.0.0.1:<port>`.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr").port()
}

/// The node to attack, started with `args`, and an honest node dialing it with `--peer`;
/// returns once each lists the other.
fn honest_pair(args: &[&str]) -> (DevNode, DevNode) {
    let a = DevNode::start(args);
    let peer = a.node.p2p_addr();
    let b = DevNode::start(&["--peer", &peer]);
    let (ia, ib) = (node_id(&a), node_id(&b));
    wait_for(T, "the honest peers to connect", || {
        (lists_peer(&a, &ib) && lists_peer(&b, &ia)).then_some(())
    })
    .unwrap();
    (a, b)
}

fn hostile(n: &DevNode, opts: &HostileOptions) -> HostilePeer {
    HostilePeer::connect(p2p(n), &devnet(), opts)
        .unwrap_or_else(|e| panic!("hostile handshake: {e}\n{}", n.node.log_tail()))
}

/// Whether the honest pair is still linked (each lists the other).
fn still_linked(a: &DevNode, b: &DevNode, ia: &str, ib: &str) -> bool {
    lists_peer(a, ib) && lists_peer(b, ia)
}

/// Submits `n` payments from the ten dev accounts (`n / 10` nonces each, within the
/// mempool's nonce gap of 64) and mines them into one block; returns its id and encoded size
/// (a 128-byte header, an 8-byte count, 184 bytes a payment).
fn mine_big_block(a: &DevNode, n: usize) -> (String, usize) {
    let params = devnet();
    let to = Keypair::generate().address();
    let keys: Vec<Keypair> = (0..10).map(dev_key).collect();
    let txs: Vec<String> = (0..n)
        .map(|i| payment_hex(&params, &keys[i % 10], to, 1_000, 10, (i / 10) as u64))
        .collect();
    let client = a.node.client();
    for chunk in txs.chunks(100) {
        let calls: Vec<(&str, Value)> = chunk.iter().map(|t| ("tx_submit", json!([t]))).collect();
        for r in client.call_batch(&calls).expect("tx_submit batch") {
            r.expect("a dev payment is admitted");
        }
    }
    let ids = a.call("mining_generate", json!([1]));
    let id = ids[0].as_str().expect("a block id").to_string();
    let block = a.call("chain_getBlock", json!([id]));
    let count = block["txs"].as_array().map_or(0, Vec::len);
    assert_eq!(count, n, "the block holds every payment");
    (id, 128 + 8 + 184 * n)
}

/// Row 1. A `GetData` of 3,000 entries naming the same ~100 KB block (300 MB of replies),
/// and the peer never reads. It keeps sending the same `GetData` as fast as the node takes
/// it (so a node that serves a repeated entry once per request still has more to send than
/// the socket holds, and so silence is not what gets the peer dropped). Replies must be
/// produced as the peer reads them, within a bounded per-peer send budget; the peer must be
/// dropped for not reading (the node's send stall timeout: 20 s; we allow 60 s).
#[test]
fn getdata_flood_of_a_big_block_is_served_within_a_send_budget_and_the_non_reader_is_dropped() {
    let (a, b) = honest_pair(&[]);
    let (ia, ib) = (node_id(&a), node_id(&b));
    let (block, size) = mine_big_block(&a, 540);
    let height = a.height();
    wait_for(T, "the honest peer to have the big block", || (b.height() == height).then_some(()))
        .unwrap();
    let before = rss_bytes(pid(&a)).expect("the node's RSS");

    let mut h = hostile(&a, &HostileOptions::default());
    let me = h.node_id().to_string();
    let id = block.parse().expect("a block id");
    let flood = Message::GetData(vec![Inv::Block(id); 3_000]);
    h.send(&flood).expect("the GetData is sent");
    // From here on `h` never reads until the node has dropped it.

    let mut f = Failures::new("getdata flood");
    let (mut max_rss, mut max_queue, mut queue_field, mut polls) = (before, 0u64, true, 0u64);
    let (mut info_errors, mut requests) = (Vec::<String>::new(), 1u64);
    let dropped = wait_for(T, "the node to drop the peer that reads nothing", || {
        polls += 1;
        if let Some(r) = rss_bytes(pid(&a)) {
            max_rss = max_rss.max(r);
        }
        if let Err(e) = answers(&a) {
            info_errors.push(e);
        }
        // Ask again: fails at once when an earlier write found the node no longer reading
        // (it then waited for at most 10 s).
        if h.send(&flood).is_ok() {
            requests += 1;
        }
        let peers = try_peers(&a).ok()?;
        let Some(p) = peers.iter().find(|p| p["node_id"] == me.as_str()) else {
            return Some(());
        };
        match p["send_queue_bytes"].as_u64() {
            Some(q) => max_queue = max_queue.max(q),
            None => queue_field = false,
        }
        None
    });
    let growth = max_rss.saturating_sub(before);
    eprintln!(
        "getdata flood: block of {size} bytes x 3,000, {requests} such GetData sent; RSS {} \
         MiB -> peak {} MiB (+{} MiB); peak send_queue_bytes {max_queue}; {polls} polls; \
         dropped: {}",
        before / MIB,
        max_rss / MIB,
        growth / MIB,
        dropped.is_ok()
    );
    f.check(dropped.is_ok(), || {
        "the peer that reads nothing was still connected after 60 s (the node must drop a peer \
         whose sends stall, after 20 s)"
            .into()
    });
    f.check(growth <= MAX_RSS_GROWTH, || {
        format!(
            "the node's RSS grew by {} MiB (from {} to {} MiB), more than {} MiB: replies must \
             be produced as the peer reads them",
            growth / MIB,
            before / MIB,
            max_rss / MIB,
            MAX_RSS_GROWTH / MIB
        )
    });
    f.check(queue_field, || {
        "net_peers[].send_queue_bytes is missing (bytes queued to that peer, u64)".into()
    });
    // The reply budget plus one message (the ~100 KB block) and a little gossip.
    let queue_bound = ember_node::net::outbox::REPLY_BUDGET as u64 + MIB;
    f.check(max_queue <= queue_bound, || {
        format!(
            "send_queue_bytes reached {max_queue}, above the reply budget plus one message \
             ({queue_bound})"
        )
    });
    f.check(info_errors.is_empty(), || {
        format!(
            "node_info failed {} of {polls} times: {:?}",
            info_errors.len(),
            info_errors.first()
        )
    });
    if dropped.is_ok() {
        // Now reading is allowed: what is left must end in EOF or a reset.
        f.check(h.wait_closed(T), || {
            "net_peers no longer lists the peer, but its connection stays open".into()
        });
    }
    f.check(answers(&a).is_ok(), || "node_info does not answer after the attack".into());
    f.check(still_linked(&a, &b, &ia, &ib), || "the honest peer was disconnected".into());
    f.finish(&a);
}

/// Row 2. Side branches forking at genesis with valid devnet proof of work, each ten headers
/// shorter than the node's chain: on devnet every block has the same work (no retarget), so
/// such a branch never has the tip's work, and 50 of them (97,500 headers) cost the node
/// nothing to refuse. (500,000 headers of one branch would outweigh any tip a test can mine,
/// hence many shorter branches.)
#[test]
fn side_branch_headers_that_cannot_beat_the_tip_are_not_kept() {
    const TIP: u64 = 2_000;
    const BRANCHES: u64 = 50;
    let (a, b) = honest_pair(&[]);
    let (ia, ib) = (node_id(&a), node_id(&b));
    let params = devnet();
    a.call("mining_generate", json!([TIP]));
    wait_for(T, "the honest peer to sync", || (b.height() == TIP).then_some(())).unwrap();

    let mut f = Failures::new("side-branch headers");
    let known = |n: &DevNode| n.call("node_info", json!([]))["known_headers"].as_u64();
    let base_known = known(&a);
    let base_rss = rss_bytes(pid(&a)).expect("the node's RSS");
    let base_dir = dir_size(a.node.data_dir());
    let genesis = params.genesis().header;
    let len = (TIP - 10) as usize;

    let mut h = Some(hostile(&a, &HostileOptions::default()));
    let (mut sent, mut reconnects, mut max_rss) = (0u64, 0u64, base_rss);
    for k in 0..BRANCHES {
        let branch = side_branch(&params, &genesis, len, genesis.time + 1, k).expect("branch");
        let Some(p) = h.as_mut() else { break };
        // The pong after each branch says it has been handled (and paces us to the node).
        let ok = p.send(&Message::Headers(branch)).is_ok() && p.round_trip(T).is_ok();
        if ok {
            sent += len as u64;
        } else {
            // Dropped (or banned) for it: an attacker comes back; stop if refused.
            reconnects += 1;
            h = HostilePeer::connect(p2p(&a), &params, &HostileOptions::default()).ok();
        }
        if let Some(r) = rss_bytes(pid(&a)) {
            max_rss = max_rss.max(r);
        }
    }
    let after_known = known(&a);
    let rss_growth = max_rss.saturating_sub(base_rss);
    let dir_growth = dir_size(a.node.data_dir()).saturating_sub(base_dir);
    eprintln!(
        "side headers: {sent} headers handled in {BRANCHES} branches of {len} ({reconnects} \
         reconnects); known_headers {base_known:?} -> {after_known:?}; RSS +{} MiB; data dir \
         +{} MiB",
        rss_growth / MIB,
        dir_growth / MIB
    );
    match (base_known, after_known) {
        (Some(x), Some(y)) => f.check(y <= x + 4_000, || {
            format!(
                "known_headers grew from {x} to {y} (+{}): headers of branches that cannot beat \
                 the tip must not be stored",
                y.saturating_sub(x)
            )
        }),
        _ => f.fail("node_info.known_headers is missing (count of headers in the index)".into()),
    }
    f.check(rss_growth <= MAX_RSS_GROWTH, || {
        format!("the node's RSS grew by {} MiB during the attack", rss_growth / MIB)
    });
    f.check(dir_growth <= 16 * MIB, || {
        format!("the data dir grew by {} MiB during the attack", dir_growth / MIB)
    });
    f.check(a.height() == TIP, || "the tip moved".into());
    f.check(still_linked(&a, &b, &ia, &ib), || "the honest peer was disconnected".into());
    f.finish(&a);
}

/// Row 3. 5,000 made-up addresses in five `Addr` messages must not push the honest peer out
/// of the address book: restarted without `--peer` (discovery on), the node finds it again.
/// The honest peer runs with `--no-discover`, so the reconnection can only be the attacked
/// node's doing.
#[test]
fn an_addr_flood_does_not_make_the_node_forget_its_honest_peer() {
    let a = DevNode::start(&["--no-discover"]);
    let a_addr = a.node.p2p_addr();
    let mut b = DevNode::start(&["--peer", &a_addr]);
    let (ia, ib) = (node_id(&a), node_id(&b));
    wait_for(T, "the honest peers to connect", || {
        (lists_peer(&a, &ib) && lists_peer(&b, &ia)).then_some(())
    })
    .unwrap();

    let mut h = hostile(&b, &HostileOptions::default());
    for batch in 0..5 {
        h.send(&Message::Addr(made_up_addrs(1_000, batch))).expect("Addr sent");
    }
    // The pong says all five were handled.
    h.round_trip(T).expect("the node answers the ping after the Addr messages");
    let known_before = b.call("node_info", json!([]))["known_addresses"].clone();
    drop(h);

    // A clean restart without --peer: only the address book can lead back to `a`.
    let dir = b.node.data_dir().to_path_buf();
    assert!(b.node.stop().expect("stop"), "clean stop");
    let args: Vec<String> = vec!["--network".into(), "devnet".into()];
    b.node = NodeProcess::start(&dir, &args).expect("restart without --peer");
    let mut f = Failures::new("addr flood");
    let back = wait_for(T, "the restarted node to reconnect to its honest peer", || {
        lists_peer(&b, &ia).then_some(())
    });
    let info = answers(&b).unwrap_or_default();
    eprintln!(
        "addr flood: known_addresses before restart {known_before}, after {}; reconnected: {}",
        info["known_addresses"],
        back.is_ok()
    );
    f.check(back.is_ok(), || {
        format!(
            "restarted without --peer, the node did not reconnect to its honest peer {a_addr} \
             within 60 s (known_addresses: {}, peers: {})",
            info["known_addresses"], info["peers"]
        )
    });
    f.finish(&b);
}

/// Row 4. 1,100 TCP connections that never start the handshake, against a node limited to
/// 1,024 open files, held (and topped up as the node drops them) for 15 s, longer than the
/// node's 10 s handshake timeout. The node must not spin on failed accepts, must keep
/// answering RPC and keep its honest peer; afterwards a new peer must get in.
#[test]
fn idle_connections_at_the_descriptor_limit_do_not_lock_out_rpc_or_peers() {
    const IDLE: usize = 1_100;
    let (a, b) = honest_pair(&[]);
    let (ia, ib) = (node_id(&a), node_id(&b));
    let params = devnet();
    limit_open_files(pid(&a), 1_024).expect("limit the node's open files");
    let log = a.node.data_dir().join("node.log");
    // Streamed: a node that logs every failed accept writes hundreds of MB in seconds.
    let accept_failed = || {
        let Ok(file) = std::fs::File::open(&log) else { return 0 };
        BufReader::new(file)
            .split(b'\n')
            .map_while(Result::ok)
            .filter(|l| l.windows(13).any(|w| w == b"accept failed"))
            .count()
    };
    let failed_before = accept_failed();

    let mut f = Failures::new("idle connections");
    let mut idle = IdleConnections::open(p2p(&a), IDLE).expect("open idle connections");
    let opened = idle.len();
    // A newcomer while they are held: informative (the node may rightly refuse it when full).
    let newcomer = HostilePeer::connect(p2p(&a), &params, &HostileOptions::default());
    let (mut rounds, mut info_errors, mut refilled) = (0u64, Vec::new(), 0usize);
    let _ = wait_for(Duration::from_secs(15), "the end of the attack", || {
        rounds += 1;
        idle.reap_closed();
        refilled += idle.top_up(IDLE);
        if let Err(e) = answers(&a) {
            info_errors.push(e);
        }
        None::<()>
    });
    let linked = still_linked(&a, &b, &ia, &ib);
    idle.close();
    let failed = accept_failed() - failed_before;
    eprintln!(
        "idle connections: {opened} opened, {refilled} more as the node dropped them, {} \
         failed; {failed} 'accept failed' lines; node_info failed {} of {rounds} times; a \
         newcomer's handshake during the attack: {}",
        idle.failed,
        info_errors.len(),
        match &newcomer {
            Ok(_) => "completed".to_string(),
            Err(e) => e.to_string(),
        }
    );
    drop(newcomer);
    f.check(failed <= 50, || {
        format!("node.log got {failed} 'accept failed' lines during the attack (at most 50)")
    });
    f.check(info_errors.is_empty(), || {
        format!(
            "node_info failed {} of {rounds} times during the attack: {:?}",
            info_errors.len(),
            info_errors.first()
        )
    });
    f.check(linked, || "the honest peer was disconnected during the attack".into());
    let after = wait_for(T, "a new peer to get in after the attack", || {
        HostilePeer::connect(p2p(&a), &params, &HostileOptions::default()).ok()
    });
    f.check(after.is_ok(), || "no new peer could complete a handshake after the attack".into());
    f.check(answers(&a).is_ok(), || "node_info does not answer after the attack".into());
    f.finish(&a);
}

/// Row 5. Two bans earned by misbehaviour (a `Version` after the handshake; an undecodable
/// encrypted frame) and one by `net_ban` for an hour survive a clean restart with their
/// reasons and expiries, and a banned address's handshake does not complete.
#[test]
fn bans_survive_a_clean_restart_and_the_banned_peer_is_refused() {
    let (mut a, b) = honest_pair(&[]);
    let (ia, ib) = (node_id(&a), node_id(&b));
    let params = devnet();
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let key = |p: u16| format!("127.0.0.1:{p}");
    let claim = |p: u16| HostileOptions { listen_port: p, ..HostileOptions::default() };

    let mut h1 = hostile(&a, &claim(p1));
    let v = h1.node_version().clone();
    h1.send(&Message::Version(v)).expect("a second Version is sent");
    let mut h2 = hostile(&a, &claim(p2));
    h2.send_undecodable().expect("an undecodable frame is sent");
    let ok = a.call("net_ban", json!([key(p3), 3_600, "hostile suite: operator ban"]));
    assert_eq!(ok, json!(true));
    let find = |list: &[Value], k: &str| list.iter().find(|b| b["address"] == k).cloned();
    let before = wait_for(T, "the three bans", || {
        let list = bans(&a);
        let got: Vec<Value> = [p1, p2, p3].iter().filter_map(|p| find(&list, &key(*p))).collect();
        (got.len() == 3).then_some(got)
    })
    .unwrap();
    drop((h1, h2));

    a.node.pin_addresses();
    assert!(a.node.stop().expect("stop"), "clean stop");
    a.node.restart().expect("restart");
    let mut f = Failures::new("bans across a restart");
    let after = bans(&a);
    for old in &before {
        let k = old["address"].as_str().unwrap_or_default();
        match find(&after, k) {
            None => f.fail(format!("the ban of {k} ({}) is gone after the restart", old["reason"])),
            Some(new) => {
                f.check(new["reason"] == old["reason"], || {
                    format!("{k}: reason {} became {}", old["reason"], new["reason"])
                });
                let until = |b: &Value| b.get("until_ms").or_else(|| b.get("until")).cloned();
                f.check(until(&new) == until(old), || {
                    format!("{k}: expiry {:?} became {:?}", until(old), until(&new))
                });
            }
        }
    }
    for p in [p1, p3] {
        match HostilePeer::connect(p2p(&a), &params, &claim(p)) {
            Err(e) if e.stage != HandshakeStage::Tcp => {}
            Err(e) => f.fail(format!("the node did not even take the connection: {e}")),
            Ok(mut h) => {
                let closed = h.wait_closed(Duration::from_secs(5));
                f.fail(format!(
                    "banned {}: the handshake completed (the node {} afterwards)",
                    key(p),
                    if closed { "closed the connection" } else { "kept the connection" }
                ));
            }
        }
    }
    let back = wait_for(T, "the honest peer to reconnect", || {
        still_linked(&a, &b, &ia, &ib).then_some(())
    });
    f.check(back.is_ok(), || "the honest peer did not reconnect after the restart".into());
    f.finish(&a);
}

/// Row 6. A block 125 s ahead of the node's clock breaks only the future limit (120 s),
/// which a slightly fast clock also breaks: not a reason to ban or drop the sender. A valid
/// on-time sibling sent after it is imported after it (blocks of one peer go in order), so
/// once the node has the sibling it has judged the early block.
#[test]
fn a_block_a_little_too_far_ahead_gets_its_sender_neither_banned_nor_dropped() {
    let (a, b) = honest_pair(&[]);
    let (ia, ib) = (node_id(&a), node_id(&b));
    let params = devnet();
    a.call("mining_generate", json!([3]));
    wait_for(T, "the honest peer to sync", || (b.height() == 3).then_some(())).unwrap();

    let mut h = hostile(&a, &HostileOptions { listen_port: free_port(), ..Default::default() });
    let me = h.node_id().to_string();
    let tip = a.call("node_info", json!([]))["tip"].as_str().unwrap().parse().unwrap();
    let parent = h.fetch_block(tip, T).expect("the tip block").header;
    let miner = Keypair::generate().address();
    let early = early_block(&params, &parent, now_ms() + 125_000, miner).expect("early block");
    let sibling = ember_core::testkit::child_block(&params, &parent, vec![], miner, 0);
    h.send(&Message::Block(early)).expect("the early block is sent");
    h.send(&Message::Block(sibling.clone())).expect("the on-time block is sent");
    let sid = sibling.id().to_string();
    let mut f = Failures::new("early block");
    let judged = wait_for(T, "the on-time block (or a ban)", || {
        let info = answers(&a).ok()?;
        (info["tip"] == sid.as_str() || !bans(&a).is_empty()).then_some(())
    });
    f.check(judged.is_ok(), || "the node took neither block nor action within 60 s".into());
    let list = bans(&a);
    f.check(list.is_empty(), || format!("the node banned: {list:?}"));
    f.check(lists_peer(&a, &me), || "the sender of the early block was disconnected".into());
    f.check(h.round_trip(T).is_ok(), || "the sender's connection does not answer a ping".into());
    f.check(still_linked(&a, &b, &ia, &ib), || "the honest peer was disconnected".into());
    f.finish(&a);
}

/// Row 7. `net_ban` with a duration whose milliseconds overflow u64 (2^64 − 1 seconds, and
/// 18,446,744,073,709,552 s, whose ×1,000 just passes 2^64) is refused as invalid params;
/// the node keeps answering, adds no ban, and a sane hour still works.
#[test]
fn net_ban_refuses_durations_that_overflow() {
    let (a, b) = honest_pair(&[]);
    let (ia, ib) = (node_id(&a), node_id(&b));
    let mut f = Failures::new("net_ban overflow");
    for secs in [u64::MAX, 18_446_744_073_709_552u64] {
        let addr = format!("127.0.0.1:{}", free_port());
        match a.node.client().call("net_ban", json!([addr, secs, "overflow"])) {
            Err(RpcClientError::Rpc { code: -32602, .. }) => {}
            other => f.fail(format!("net_ban for {secs} s: expected error -32602, got {other:?}")),
        }
        f.check(answers(&a).is_ok(), || format!("node_info does not answer after {secs} s"));
        let list = a.node.client().call("net_bans", json!([])).unwrap_or_default();
        let banned = list.as_array().is_some_and(|l| l.iter().any(|b| b["address"] == addr));
        f.check(!banned, || format!("net_ban for {secs} s added a ban: {list}"));
    }
    let addr = format!("127.0.0.1:{}", free_port());
    let t0 = now_ms();
    match a.node.client().call("net_ban", json!([addr, 3_600, "sane"])) {
        Ok(Value::Bool(true)) => {
            let t1 = now_ms();
            let ban = bans(&a).into_iter().find(|b| b["address"] == addr.as_str());
            let until = ban.as_ref().and_then(|b| b["until_ms"].as_u64());
            let hour = 3_600_000;
            f.check(until.is_some_and(|u| u >= t0 + hour && u <= t1 + hour), || {
                format!("net_ban for 3600 s listed as {ban:?}")
            });
        }
        other => f.fail(format!("net_ban for 3600 s: {other:?}")),
    }
    f.check(still_linked(&a, &b, &ia, &ib), || "the honest peer was disconnected".into());
    f.finish(&a);
}

/// A peer that floods requests answered in line (`Ping`, `GetHeaders`) and never reads:
/// once the node gives up writing to it (the 20 s send deadline) the connection must end
/// for good: the peer gone from `net_peers`, its socket closed, its inbound slot free. (A
/// reader waiting for reply room once outlived its writer, and such "zombie" peers held
/// sockets and slots for ever.)
#[test]
fn a_peer_that_floods_requests_and_never_reads_is_removed_not_left_half_closed() {
    let (a, b) = honest_pair(&["--max-inbound", "4"]);
    let (ia, ib) = (node_id(&a), node_id(&b));
    a.call("mining_generate", json!([200]));
    let mut f = Failures::new("request flood without reading");
    let genesis = devnet().genesis_id();
    for (what, msg) in [
        ("ping", Message::Ping(7)),
        (
            "getheaders",
            Message::GetHeaders { locator: vec![genesis], stop: ember_core::BlockId::ZERO },
        ),
    ] {
        let mut h = hostile(&a, &HostileOptions::default());
        h.set_write_timeout(Duration::from_secs(3));
        let me = h.node_id().to_string();
        // Send until the node stops reading us (a write blocks for 3 s), at most 5,000,000.
        let mut sent = 0u64;
        while sent < 5_000_000 && h.send(&msg).is_ok() {
            sent += 1;
        }
        let gone = wait_for(T, "the node to drop the peer that reads nothing", || {
            try_peers(&a).ok().filter(|ps| !ps.iter().any(|p| p["node_id"] == me.as_str()))
        });
        eprintln!("{what} flood: {sent} messages sent before the node stopped reading");
        f.check(gone.is_ok(), || {
            format!("after a {what} flood, the peer that reads nothing is still listed after 60 s")
        });
        f.check(h.wait_closed(T), || format!("after a {what} flood, the connection stays open"));
    }
    // Their slots are free: three new peers fit beside the honest one under --max-inbound 4.
    let fresh: Vec<HostilePeer> = (0..3).map(|_| hostile(&a, &HostileOptions::default())).collect();
    f.check(fresh.len() == 3, || "new peers could not connect".into());
    f.check(answers(&a).is_ok(), || "node_info does not answer after the flood".into());
    f.check(still_linked(&a, &b, &ia, &ib), || "the honest peer was disconnected".into());
    f.finish(&a);
}
