//! Live subscriptions (issue 17): a WebSocket client of `/ws` receives each new head, a
//! reorganisation (from `chain_invalidateBlock`) with the blocks that left the main chain,
//! pending payments, and an address's payments pending then confirmed; bad requests get
//! their JSON-RPC errors; a subscriber that never reads is dropped, the node unharmed.
//! `--block-notify` runs its command with each new tip's id.

use crate::support::{dev_key, devnet, payment_hex, DevNode};
use ember_core::Keypair;
use ember_testnet::process::wait_for;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::time::Duration;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

fn connect(n: &DevNode) -> Ws {
    let url = n.node.rpc_url().replace("http://", "ws://") + "/ws";
    let (ws, _) = tungstenite::connect(url.as_str()).unwrap_or_else(|e| panic!("{url}: {e}"));
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    // MaybeTlsStream without TLS features is the plain stream: rebuild the type simply.
    let stream = match ws.into_inner() {
        tungstenite::stream::MaybeTlsStream::Plain(s) => s,
        _ => unreachable!("no TLS"),
    };
    WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Client, None)
}

fn request(ws: &mut Ws, id: u64, method: &str, params: Value) -> Value {
    let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    ws.send(Message::text(req.to_string())).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(std::time::Instant::now() < deadline, "no answer to {method} within 20 s");
        let v = next(ws);
        if v["id"] == id {
            return v;
        }
    }
}

/// The next JSON message (notifications and replies alike).
fn next(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a message within 20 s") {
            Message::Text(t) => {
                eprintln!("ws: {t}");
                return serde_json::from_str(t.as_str()).unwrap();
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The next notification of subscription `sid`, within 20 s (the node's pings alone
/// would keep the socket alive forever).
fn notified(ws: &mut Ws, sid: &Value) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(std::time::Instant::now() < deadline, "no notification of {sid} within 20 s");
        let v = next(ws);
        if v["method"] == "subscription" && v["params"]["subscription"] == *sid {
            return v["params"]["result"].clone();
        }
    }
}

#[test]
fn heads_reorgs_and_an_address_payments_arrive_as_they_happen() {
    let n = DevNode::start(&[]);
    let mut ws = connect(&n);
    let heads = request(&mut ws, 1, "subscribe", json!(["newHeads"]))["result"].clone();
    let bob = Keypair::generate();
    let bob_addr = bob.address().to_bech32("edev");
    let addr = request(&mut ws, 2, "subscribe", json!(["address", bob_addr]))["result"].clone();
    assert!(heads.is_u64() && addr.is_u64() && heads != addr);

    n.call("mining_generate", json!([2]));
    for h in [1, 2] {
        let head = notified(&mut ws, &heads);
        assert_eq!(head["height"], h, "{head}");
        assert_eq!(head["disconnected"], json!([]));
    }

    let tx = payment_hex(&devnet(), &dev_key(1), bob.address(), 42, 1, 0);
    let txid = n.call("tx_submit", json!([tx]));
    let pending = notified(&mut ws, &addr);
    assert_eq!((&pending["txid"], &pending["status"]), (&txid, &json!("pending")));
    let ids = n.call("mining_generate", json!([1]));
    assert_eq!(notified(&mut ws, &heads)["height"], 3);
    let confirmed = notified(&mut ws, &addr);
    assert_eq!((&confirmed["status"], &confirmed["height"]), (&json!("confirmed"), &json!(3)));
    assert_eq!(confirmed["block"], ids[0]);

    // A reorganisation: block 3 invalidated by hand leaves the main chain.
    n.call("chain_invalidateBlock", json!([3]));
    let head = notified(&mut ws, &heads);
    assert_eq!(head["height"], 2);
    assert_eq!(head["disconnected"], json!([{"id": ids[0], "height": 3}]));
    let gone = notified(&mut ws, &addr);
    assert_eq!((&gone["status"], &gone["txid"]), (&json!("disconnected"), &txid));
    // Then pending again: the order a wallet must see to end with the right state.
    let again = notified(&mut ws, &addr);
    assert_eq!((&again["status"], &again["txid"]), (&json!("pending"), &txid));

    // Unsubscribed: no more heads; bad requests answered with their errors.
    assert_eq!(request(&mut ws, 3, "unsubscribe", json!([heads]))["result"], true);
    assert_eq!(request(&mut ws, 4, "subscribe", json!(["everything"]))["error"]["code"], -32602);
    assert_eq!(request(&mut ws, 5, "node_info", json!([]))["error"]["code"], -32601);
    let bad = json!(["address", "edev1nonsense"]);
    assert_eq!(request(&mut ws, 6, "subscribe", bad)["error"]["code"], -32602);
    ws.send(Message::text("{not json")).unwrap();
    assert_eq!(next(&mut ws)["error"]["code"], -32700);
    for bad in [r#"{"id":7,"method":"subscribe","params":["newHeads"]}"#, "[1,2]"] {
        ws.send(Message::text(bad)).unwrap();
        assert_eq!(next(&mut ws)["error"]["code"], -32600, "{bad}");
    }
}

#[test]
fn a_subscriber_that_never_reads_is_dropped_and_the_node_goes_on() {
    let n = DevNode::start(&[]);
    let mut ws = connect(&n);
    // 16 subscriptions to the heads: 16 notifications per block, 48,000 for 3,000 blocks,
    // past the node's per-connection queue and whatever the sockets buffer.
    for i in 0..16 {
        let sid = request(&mut ws, i, "subscribe", json!(["newHeads"]))["result"].clone();
        assert!(sid.is_u64());
    }
    // Never read again.
    for _ in 0..3 {
        n.call("mining_generate", json!([1000]));
    }
    // The node answers, and a new subscriber is served.
    assert_eq!(n.height(), 3000);
    let mut fresh = connect(&n);
    let s2 = request(&mut fresh, 1, "subscribe", json!(["newHeads"]))["result"].clone();
    n.call("mining_generate", json!([1]));
    assert_eq!(notified(&mut fresh, &s2)["height"], 3001);
    // The slow one was closed: reading ends (after whatever was queued), it never blocks.
    let mut read = 0;
    while let Ok(m) = ws.read() {
        read += matches!(m, Message::Text(_)) as usize;
    }
    assert!(read < 48_000, "the slow subscriber got {read} heads: it was not dropped");
}

#[test]
fn block_notify_runs_with_each_new_tip() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tips");
    let cmd = format!("echo %s >> {}", out.display());
    let n = DevNode::start(&["--block-notify", &cmd]);
    let ids = n.call("mining_generate", json!([3]));
    wait_for(Duration::from_secs(30), "three notifications", || {
        let text = std::fs::read_to_string(&out).ok()?;
        (text.lines().count() == 3).then_some(text)
    })
    .map(|text| {
        let mut got: Vec<&str> = text.lines().collect();
        got.sort();
        let mut want: Vec<String> =
            ids.as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()).collect();
        want.sort();
        assert_eq!(got, want);
    })
    .unwrap();
}
