//! JSON-RPC requests through the node's real handler (the one the HTTP server runs), against
//! a real node with a chain and a mempool.
//!
//! The first input byte chooses whether the request carries the RPC cookie; the rest is the
//! HTTP body. Checks beyond "no panic": every answer is JSON-RPC 2.0 (one response object,
//! an array of them for a batch, or nothing for notifications only), each with exactly one
//! of `result` and `error`, errors with an integer code and a message; a single request's
//! answer echoes its id; and nothing a client sends changes the chain (its tip and state
//! digest), and only an accepted `tx_submit` grows the mempool.
//!
//! Requests naming `mining_generate`, `node_stop` or `net_addPeer` are skipped: they mine
//! (slow, and meant to change the chain), stop the node, or dial out.
#![no_main]

#[path = "../common/node.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::LazyLock;

static H: LazyLock<common::Harness> = LazyLock::new(common::Harness::new);

const SKIPPED: [&[u8]; 3] = [b"mining_generate", b"node_stop", b"net_addPeer"];

fn check_response(r: &Value) {
    let obj = r.as_object().unwrap_or_else(|| panic!("a response is an object: {r}"));
    assert_eq!(obj.get("jsonrpc"), Some(&Value::String("2.0".into())), "{r}");
    assert!(obj.contains_key("id"), "{r}");
    match (obj.get("result"), obj.get("error")) {
        (Some(_), None) => {}
        (None, Some(e)) => {
            assert!(e["code"].is_i64(), "{r}");
            assert!(e["message"].is_string(), "{r}");
        }
        _ => panic!("exactly one of result and error: {r}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else { return };
    if SKIPPED.iter().any(|m| body.windows(m.len()).any(|w| w == *m)) {
        return;
    }
    let h = &*H;
    let before = h.tip_and_digest();
    let mempool_before = h.node.mempool.lock().expect("never poisoned").len();
    let (status, out) =
        h.rt.block_on(ember_node::rpc::fuzz_request(&h.node, body, flags & 1 == 1));
    assert!(status == 200 || status == 413, "status {status}");
    let reply: Value = serde_json::from_slice(&out).expect("the answer is JSON");
    let request: Option<Value> = serde_json::from_slice(body).ok();
    let mut accepted_submit = false;
    match &reply {
        Value::Array(items) => {
            for r in items {
                check_response(r);
            }
            if let Some(Value::Array(reqs)) = &request {
                assert!(items.len() <= reqs.len(), "at most one answer per request");
                accepted_submit = reqs.iter().any(|q| q["method"] == "tx_submit")
                    && items.iter().any(|r| r.get("result").is_some());
            }
        }
        Value::Null => {
            // Nothing to answer: a notification.
            let req = request.as_ref().expect("only a parsed request can be a notification");
            assert!(req.get("id").is_none(), "a request with an id got no answer: {req}");
        }
        r => {
            check_response(r);
            if let Some(Value::Object(q)) = &request {
                if let Some(id) = q.get("id").filter(|id| id.is_string() || id.is_number()) {
                    assert_eq!(&r["id"], id, "the answer echoes the id");
                }
                accepted_submit = q.get("method") == Some(&Value::String("tx_submit".into()))
                    && r.get("result").is_some();
            }
        }
    }
    assert_eq!(h.tip_and_digest(), before, "an RPC request changed the chain");
    let mempool_after = h.node.mempool.lock().expect("never poisoned").len();
    if !accepted_submit {
        assert_eq!(mempool_after, mempool_before, "the mempool changed without a tx_submit");
    }
});
