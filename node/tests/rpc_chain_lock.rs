//! RPC stays served while the chain lock is held (as a long chain switch holds it): the
//! methods that take that lock wait for it on the blocking pool, never on a tokio worker,
//! so they cannot take every worker and stall the node's other RPC calls and its peers.

use ember_core::testkit::{devnet_funding, keys};
use ember_node::config::NodeConfig;
use ember_node::node::{open_store, Node};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

/// One JSON-RPC call over HTTP (a fresh connection each time), with the admin token.
fn call(addr: SocketAddr, method: &str, params: Value) -> Result<Value, String> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let text = agent
        .post(&format!("http://{addr}/"))
        .set("Authorization", "Bearer test-token")
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())
        .or_else(|e| match e {
            // A JSON-RPC error comes with an HTTP error status and its body.
            ureq::Error::Status(_, resp) => Ok(resp),
            e => Err(e.to_string()),
        })?
        .into_string()
        .map_err(|e| e.to_string())?;
    let reply: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    match reply.get("result") {
        Some(r) => Ok(r.clone()),
        None => Err(reply.to_string()),
    }
}

/// `GET /metrics` over HTTP.
fn metrics(addr: SocketAddr) -> Result<String, String> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
    agent
        .get(&format!("http://{addr}/metrics"))
        .call()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|e| e.to_string())
}

#[test]
fn rpc_is_served_while_the_chain_lock_is_held() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = std::sync::Arc::new(devnet_funding(&keys(2), 1_000));
    let address = keys(1)[0].address().to_bech32(params.hrp());
    let config = NodeConfig {
        rpc_addr: "127.0.0.1:0".parse().expect("an address"),
        mine_threads: 0,
        discover: false,
        ..NodeConfig::new(params.clone(), dir.path().to_path_buf())
    };
    let store = open_store(&config).expect("open the store");
    let node = Node::new(config, store).expect("build the node");
    // Two workers, as on a 2-core machine: more callers wait for the chain lock than that.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let addr = rt
        .block_on(ember_node::rpc::serve(
            node.clone(),
            Default::default(),
            "127.0.0.1:0".parse().expect("an address"),
            vec!["test-token".into()],
        ))
        .expect("serve RPC");
    let genesis = node.tip.get().tip;

    let chain = node.chain.lock().expect("chain lock");
    // Every read-only method that takes the chain lock, twice (more callers than
    // workers); invalidate, reconsider and revert wait on the same pool.
    let (done_tx, done_rx) = mpsc::channel();
    let waiting: Vec<(&str, Value)> = vec![
        ("chain_getHeader", json!([0])),
        ("chain_getBlock", json!([0])),
        ("chain_getTransaction", json!(["00".repeat(32)])),
        ("account_get", json!([address])),
        ("chain_getTips", json!([])),
        ("metrics", Value::Null),
    ];
    for (method, params) in waiting.iter().chain(waiting.iter()).cloned() {
        let done = done_tx.clone();
        std::thread::spawn(move || {
            let r = match method {
                "metrics" => metrics(addr).map(Value::String),
                m => call(addr, m, params),
            };
            done.send((method, r)).expect("the test is waiting");
        });
    }
    drop(done_tx);
    // node_info reads the published tip: answered while the lock is still held, every
    // time (before, the callers above held both workers until the lock was released).
    for _ in 0..20 {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(call(addr, "node_info", json!([])));
        });
        let info = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("node_info answered within 10 s while the chain lock is held")
            .expect("node_info succeeds");
        assert_eq!(info["height"], json!(0));
    }
    assert!(
        done_rx.try_recv().is_err(),
        "a caller of the chain lock was answered while it was held"
    );

    // Released: every waiting call is answered, correctly.
    drop(chain);
    let mut answered = 0;
    while let Ok((method, r)) = done_rx.recv_timeout(Duration::from_secs(30)) {
        match (method, r) {
            ("chain_getTransaction", Err(e)) => {
                assert!(e.contains("neither confirmed nor pending"), "{e}")
            }
            (_, Err(e)) => panic!("{method} after the lock was released: {e}"),
            ("chain_getHeader" | "chain_getBlock", Ok(r)) => {
                assert_eq!(r["id"], json!(genesis), "{method}: {r}")
            }
            ("chain_getTransaction", Ok(r)) => panic!("an unknown payment was found: {r}"),
            ("metrics", Ok(r)) => {
                assert!(r.as_str().is_some_and(|t| t.contains("ember_height 0")), "{r}")
            }
            ("account_get", Ok(r)) => {
                assert!(r["balance"].as_str().is_some_and(|b| b.starts_with("1000")), "{r}")
            }
            (_, Ok(_)) => {}
        }
        answered += 1;
    }
    assert_eq!(answered, waiting.len() * 2, "every caller answered");
    node.shutdown.cancel();
}
