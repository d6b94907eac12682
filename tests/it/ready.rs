//! What an orchestrator relies on, on loopback: `GET /ready` (503 with the reason until the
//! node has a peer and has caught up, never 200 while behind), a `--peer` given as a DNS
//! name, and a fixed admin token from `--rpc-token-file` besides the cookie.

use crate::support::DevNode;
use ember_testnet::hostile::{HostileOptions, HostilePeer};
use ember_testnet::process::wait_for;
use ember_wallet::rpc::RpcClient;
use serde_json::{json, Value};
use std::time::Duration;

/// `GET url/ready`: the HTTP status and the JSON answer.
fn ready(url: &str) -> Option<(u16, Value)> {
    let resp = match ureq::get(&format!("{url}/ready")).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(_) => return None,
    };
    let status = resp.status();
    Some((status, serde_json::from_str(&resp.into_string().ok()?).ok()?))
}

#[test]
fn ready_waits_for_a_peer_and_the_sync_and_peers_may_be_dns_names() {
    // Alone by design (no --peer, no address known): ready, as the first node of a network.
    let a = DevNode::start(&[]);
    a.call("mining_generate", json!([40]));
    let (status, body) = ready(a.node.rpc_url()).expect("answers");
    assert_eq!(status, 200, "{body}");
    // Told of a peer it cannot reach: not ready, and says why.
    let lonely = DevNode::start(&["--peer", "127.0.0.1:1"]);
    let (status, body) = ready(lonely.node.rpc_url()).expect("answers");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["reason"], "no peers connected yet");

    // B dials A by name ("localhost" resolves through the system resolver, as a compose
    // service name would) and has a fixed admin token.
    let port = a.node.p2p_addr().rsplit(':').next().expect("port").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "  0123456789abcdef0123456789abcdef\n").unwrap();
    let token_arg = token_file.to_str().unwrap();
    let peer = format!("localhost:{port}");
    let b = DevNode::start(&[
        "--rpc-addr",
        "127.0.0.1:0",
        "--p2p-addr",
        "127.0.0.1:0",
        "--peer",
        &peer,
        "--rpc-token-file",
        token_arg,
    ]);
    let mut not_ready = 0;
    wait_for(Duration::from_secs(60), "B ready", || match ready(b.node.rpc_url()) {
        Some((200, body)) => {
            let h = body["height"].as_u64().expect("height");
            assert!(h >= 40, "/ready said 200 at height {h}, below the peer's 40: {body}");
            assert!(body["peers"].as_u64() >= Some(1), "{body}");
            Some(())
        }
        Some((503, body)) => {
            assert!(body["reason"].is_string(), "a 503 says why: {body}");
            not_ready += 1;
            None
        }
        other => panic!("unexpected /ready answer {other:?}"),
    })
    .unwrap();
    assert_eq!(b.height(), 40);
    assert_eq!(ready(a.node.rpc_url()).expect("answers").0, 200, "A has a peer now");

    // A stranger that claims a huge height (and answers nothing) cannot make B unready: a
    // claim is not a proof.
    let port: u16 = b.node.p2p_addr().rsplit(':').next().unwrap().parse().unwrap();
    let opts =
        HostileOptions { best_height: (1 << 53) - 1, best_work: [0xff; 32], ..Default::default() };
    let connect = || {
        let mut liar =
            HostilePeer::connect(([127, 0, 0, 1], port).into(), &crate::support::devnet(), &opts)
                .expect("handshake");
        // B's locator has been sent (so the claim is registered) once it arrives.
        liar.recv_until(Duration::from_secs(10), "our locator", |m| {
            matches!(m, ember_node::net::wire::Message::GetHeaders { .. }).then_some(())
        })
        .expect("B asks the claimed-better peer for headers");
        liar
    };
    // It can delay readiness only for the grace its group gets (10 s from its first claim),
    // not for as long as it stays, and reconnecting every 2 s does not renew the grace.
    let mut liar = connect();
    let mut reconnected = std::time::Instant::now();
    let mut reconnections = 0;
    wait_for(Duration::from_secs(30), "B ready while the liar keeps reconnecting", || {
        if reconnected.elapsed() >= Duration::from_secs(2) {
            liar = connect();
            reconnected = std::time::Instant::now();
            reconnections += 1;
        }
        let (status, body) = ready(b.node.rpc_url()).expect("answers");
        (status == 200 && body["peers"] == 2).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#} ({reconnections} reconnections)"));
    // Marked now: a reconnection holds nothing back.
    for round in 0..3 {
        liar = connect();
        let (status, body) = ready(b.node.rpc_url()).expect("answers");
        assert_eq!(status, 200, "round {round}: the liar's reconnection held /ready back: {body}");
    }
    drop(liar);

    // The file's token (whitespace trimmed) is accepted, a wrong one is not, the cookie
    // still is.
    let with = |t: &str| RpcClient::new(b.node.rpc_url()).with_token(t);
    with("0123456789abcdef0123456789abcdef").call("mining_generate", json!([1])).unwrap();
    let err = with("0123456789abcdef0123456789abcdeX").call("mining_generate", json!([1]));
    assert!(err.unwrap_err().to_string().contains("admin token"));
    b.call("mining_generate", json!([1]));
    assert_eq!(b.height(), 42);
}

#[test]
fn bad_peer_token_and_external_addresses_are_refused_before_anything_is_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    let short = dir.path().join("short");
    std::fs::write(&short, "abc\n").unwrap();
    let node = ember_testnet::process::binary("ember-node").unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--peer", "foo"], "--peer"),
        (&["--peer", "node_1:9545"], "host:port"),
        (&["--rpc-token-file", short.to_str().unwrap()], "at least 16"),
        (&["--rpc-token-file", "/nonexistent/token"], "cannot read --rpc-token-file"),
        (&["--external-addr", "0.0.0.0:9545"], "--external-addr"),
    ];
    for (args, needle) in cases {
        let data = dir.path().join("data");
        let out = std::process::Command::new(&node)
            .args(["--network", "devnet", "--data-dir"])
            .arg(&data)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!data.exists(), "{args:?} created the data dir");
    }
}

/// A header proves a block exists, not that anyone will send it: a peer that sends a valid
/// header on the tip and withholds the body (silent, or `NotFound`) holds `/ready` at 503
/// only until its body request stalls (10 s), and reconnecting does not make the header
/// count again. (With every stored header counted, /ready answered 503 "syncing" for as
/// long as the header stayed ahead of the tip.)
#[test]
fn a_header_whose_body_is_withheld_holds_ready_back_only_until_the_request_stalls() {
    use ember_node::net::wire::Message;
    let (a, b) = peered_pair(3);
    wait_for(Duration::from_secs(30), "a ready", || {
        (ready(a.node.rpc_url())?.0 == 200).then_some(())
    })
    .unwrap();
    let params = crate::support::devnet();
    let addr = a.node.p2p_addr().parse().expect("p2p address");
    let opts = HostileOptions { listen_port: free_port(), ..Default::default() };
    let connect = || HostilePeer::connect(addr, &params, &opts).expect("handshake");
    let tip: ember_core::BlockId =
        a.call("node_info", json!([]))["tip"].as_str().unwrap().parse().unwrap();
    let mut h = connect();
    let tip = h.fetch_block(tip, Duration::from_secs(30)).expect("the tip block").header;
    let header = ember_testnet::hostile::side_branch(&params, &tip, 1, tip.time + 1, 7)
        .expect("a header on the tip")
        .remove(0);
    let asked = |h: &mut HostilePeer| {
        h.recv_until(Duration::from_secs(30), "a's request for the body", |m| match m {
            Message::GetData(items) => {
                items.contains(&ember_node::net::wire::Inv::Block(header.id())).then_some(())
            }
            _ => None,
        })
    };
    h.send(&Message::Headers(vec![header])).unwrap();
    asked(&mut h).expect("a asks the header's sender for the body");
    let status = |n: &DevNode| ready(n.node.rpc_url()).expect("answers");
    let (code, body) = status(&a);
    assert_eq!(code, 503, "a header ahead with its body asked for: syncing: {body}");
    // Silent: the request stalls and the header stops counting, the peer still connected.
    wait_for(Duration::from_secs(40), "a ready with the body withheld", || {
        (status(&a).0 == 200).then_some(())
    })
    .unwrap();
    h.round_trip(Duration::from_secs(10)).expect("the silent peer is still connected");
    assert_eq!(a.height(), 3);
    // The same peer again, on a new connection: asked again (it may be an honest slow
    // peer), but its request holds nothing back.
    drop(h);
    let mut h = connect();
    h.send(&Message::Headers(vec![header])).unwrap();
    h.round_trip(Duration::from_secs(10)).expect("a handled the header");
    let (code, body) = status(&a);
    assert_eq!(code, 200, "a reconnection made the withheld header count again: {body}");
    if asked(&mut h).is_ok() {
        let (code, body) = status(&a);
        assert_eq!(code, 200, "asked again of the peer that withheld it: {body}");
    }
    // Another peer (another group) answering `NotFound`: counted while asked, then not.
    let other = HostileOptions { listen_port: free_port(), ..Default::default() };
    let mut g = HostilePeer::connect(addr, &params, &other).expect("handshake");
    g.send(&Message::Headers(vec![header])).unwrap();
    if asked(&mut g).is_ok() {
        g.send(&Message::NotFound(vec![ember_node::net::wire::Inv::Block(header.id())])).unwrap();
    }
    g.round_trip(Duration::from_secs(10)).expect("a handled the answer");
    let (code, body) = status(&a);
    assert_eq!(code, 200, "a NotFound left the header counting: {body}");
    // A real block overtakes the header; b, which never saw it, was ready throughout.
    a.call("mining_generate", json!([1]));
    assert_eq!((status(&a).0, status(&b).0, a.height()), (200, 200, 4));
}

/// A header whose sender leaves at once (before or after it is asked for the body) holds
/// `/ready` back only until the next sync check finds nobody to ask: no connected peer has
/// shown that height. (Found by an attacker: the header was never marked undelivered, and
/// the node stayed "syncing" with an honest peer connected for as long as it ran.)
#[test]
fn a_header_whose_sender_leaves_at_once_does_not_hold_ready_back() {
    use ember_node::net::wire::Message;
    let (a, b) = peered_pair(5);
    let params = crate::support::devnet();
    let addr = a.node.p2p_addr().parse().expect("p2p address");
    let status = || ready(a.node.rpc_url()).expect("answers");
    for (round, linger) in [Duration::ZERO, Duration::from_millis(300)].into_iter().enumerate() {
        let opts = HostileOptions { listen_port: free_port(), ..Default::default() };
        let mut h = HostilePeer::connect(addr, &params, &opts).expect("handshake");
        let tip: ember_core::BlockId =
            a.call("node_info", json!([]))["tip"].as_str().unwrap().parse().unwrap();
        let tip = h.fetch_block(tip, Duration::from_secs(30)).expect("the tip block").header;
        // Round r: r + 1 headers on a's tip, so each round's branch is the new best header.
        let headers = ember_testnet::hostile::side_branch(
            &params,
            &tip,
            round + 1,
            tip.time + 1,
            round as u64,
        )
        .expect("headers on the tip");
        h.send(&Message::Headers(headers)).unwrap();
        h.round_trip(Duration::from_secs(10)).expect("a stored the header");
        std::thread::sleep(linger);
        drop(h);
        wait_for(Duration::from_secs(30), "a ready with the header's sender gone", || {
            (status().0 == 200).then_some(())
        })
        .unwrap_or_else(|e| panic!("round {round}: {e:#}: {}", status().1));
        // And it stays ready through the next sync checks (one a second), which used to
        // find the header ahead and say "syncing" for good.
        let until = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < until {
            let (code, body) = status();
            let syncing = a.call("node_info", json!([]))["syncing"].clone();
            assert_eq!((code, syncing), (200, json!(false)), "round {round}: {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(
        (a.height(), status().0, ready(b.node.rpc_url()).expect("answers").0),
        (5, 200, 200)
    );
}

/// Node `a`, and node `b` peered to it, once `a` has mined `blocks` blocks and `b` has them.
fn peered_pair(blocks: u64) -> (DevNode, DevNode) {
    let a = DevNode::start(&[]);
    let b = DevNode::start(&["--peer", &a.node.p2p_addr()]);
    a.call("mining_generate", json!([blocks]));
    wait_for(Duration::from_secs(30), &format!("b at height {blocks}"), || {
        (b.height() == blocks).then_some(())
    })
    .unwrap();
    (a, b)
}

/// A port nothing listens on: what a hostile peer claims (the node groups loopback peers by
/// `ip:listen_port`).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}
