//! JSON numbers above 2^53 lose digits in most clients (jq 1.6, JavaScript): every RPC
//! answer keeps its numbers below that, and a block's nonce (drawn from all of u64) is a
//! decimal string that round-trips exactly.

use crate::support::{dev_key, devnet, payment_hex, DevNode};
use ember_core::BlockHeader;
use serde_json::{json, Value};

/// The largest integer a double holds exactly.
const MAX_SAFE: u64 = (1 << 53) - 1;

/// Every number in `v` (with its path) that a double would not hold exactly.
fn unsafe_numbers(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Number(n) if n.as_u64().is_some_and(|u| u > MAX_SAFE) => {
            out.push(format!("{path} = {n}"))
        }
        Value::Array(a) => {
            a.iter().enumerate().for_each(|(i, x)| unsafe_numbers(x, &format!("{path}[{i}]"), out))
        }
        Value::Object(o) => {
            o.iter().for_each(|(k, x)| unsafe_numbers(x, &format!("{path}.{k}"), out))
        }
        _ => {}
    }
}

#[test]
fn block_nonces_are_strings_and_no_answer_holds_an_unsafe_number() {
    let n = DevNode::start(&[]);
    let params = devnet();
    let to = dev_key(1).address();
    let tx = payment_hex(&params, &dev_key(0), to, 1_000, 10_000, 0);
    n.call("tx_submit", json!([tx]));
    // Nonces are drawn at random from u64: with several blocks, at least one is above 2^53
    // (each is, with probability 1 - 2^-11).
    n.call("mining_generate", json!([8]));
    let pending = payment_hex(&params, &dev_key(2), to, 1_000, 10_000, 0);
    let pending_txid = n.call("tx_submit", json!([pending]));
    let addr = to.to_bech32(params.hrp());
    let mut large = 0;
    let mut answers = Vec::new();
    for height in 0..=8u64 {
        for method in ["chain_getBlock", "chain_getHeader"] {
            let v = n.call(method, json!([height]));
            let text = v["nonce"].as_str().unwrap_or_else(|| panic!("{method} nonce: {v}"));
            let nonce: u64 = text.parse().expect("a decimal u64");
            let bytes = hex::decode(v["hex"].as_str().unwrap()).unwrap();
            let header = BlockHeader::decode(&bytes).expect("the header decodes");
            assert_eq!(nonce, header.nonce, "{method} {height}: the string is the exact nonce");
            large += usize::from(nonce > MAX_SAFE);
            answers.push((format!("{method}({height})"), v));
        }
    }
    assert!(large > 0, "no nonce above 2^53 in 9 blocks: the check proved nothing");
    let txid = n.call("chain_getBlock", json!([1]))["txs"][0]["txid"].clone();
    for (method, params) in [
        ("node_info", json!([])),
        ("chain_getTransaction", json!([txid])),
        ("chain_getTransaction", json!([pending_txid])),
        ("account_get", json!([addr])),
        ("account_history", json!([addr])),
        ("mempool_info", json!([])),
        ("mempool_list", json!([])),
        ("state_digest", json!([])),
        ("net_peers", json!([])),
        ("net_bans", json!([])),
    ] {
        answers.push((method.to_string(), n.call(method, params)));
    }
    let mut bad = Vec::new();
    for (name, v) in &answers {
        unsafe_numbers(v, name, &mut bad);
    }
    assert!(bad.is_empty(), "numbers a JSON client cannot hold exactly: {bad:?}");
}
