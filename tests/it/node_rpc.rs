//! A devnet node started by hand: mining, a payment through `tx_submit`, confirmation, and
//! every kind of bad input refused with a precise error and no change of state.

use crate::support::{dev_key, devnet, http_get, payment_hex, DevNode};
use ember_core::Keypair;
use serde_json::{json, Value};

#[test]
fn payment_is_mined_and_confirmed() {
    let n = DevNode::start(&[]);
    let params = devnet();
    let alice = dev_key(0);
    let bob = Keypair::generate();
    let bob_addr = bob.address().to_bech32(params.hrp());

    let ids = n.call("mining_generate", json!([2]));
    assert_eq!(ids.as_array().unwrap().len(), 2);
    assert_eq!(n.height(), 2);

    let tx = payment_hex(&params, &alice, bob.address(), 150_000_000, 1_000, 0);
    let txid = n.call("tx_submit", json!([tx]));
    let pending = n.call("chain_getTransaction", json!([txid]));
    assert_eq!(pending["status"], "pending");
    let acct = n.call("account_get", json!([alice.address().to_bech32(params.hrp())]));
    assert_eq!(acct["next_nonce"], 1, "next nonce counts the pending payment");

    n.call("mining_generate", json!({ "count": 1 }));
    let confirmed = n.call("chain_getTransaction", json!([txid]));
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["height"], 3);
    assert_eq!(confirmed["confirmations"], 1);
    let b = n.call("account_get", json!([bob_addr]));
    assert_eq!(b["balance"], "1.5");
    let hist = n.call("account_history", json!([bob_addr]));
    assert_eq!(hist["items"][0]["txid"], txid);
    assert_eq!(hist["items"][0]["direction"], "received");
    assert_eq!(n.call("mempool_info", json!([]))["count"], 0);

    // Blocks by height and id agree.
    let by_height = n.call("chain_getBlock", json!([3]));
    let by_id = n.call("chain_getBlock", json!([by_height["id"]]));
    assert_eq!(by_height, by_id);
    assert_eq!(by_height["txs"][0]["txid"], txid);

    // Health and metrics answer over plain GET.
    let url = n.node.rpc_url().to_string();
    let health = http_get(&format!("{url}/health"));
    assert!(health.contains("\"ok\""), "{health}");
    let metrics = http_get(&format!("{url}/metrics"));
    assert!(metrics.contains("ember_height 3"), "{metrics}");
    assert!(metrics.contains("ember_txs_accepted_total 1"), "{metrics}");
}

/// Posts a raw body and returns the parsed JSON answer, whatever its HTTP status (a refused
/// request still carries a JSON-RPC error); no answer at all fails the test.
fn raw_post(url: &str, body: &str) -> Value {
    let resp = match ureq::post(url).set("Content-Type", "application/json").send_string(body) {
        Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("POST {url}: {e}"),
    };
    let text = resp.into_string().unwrap_or_else(|e| panic!("POST {url}: unreadable body: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn bad_input_gets_precise_errors_and_changes_nothing() {
    let n = DevNode::start(&[]);
    let params = devnet();
    n.call("mining_generate", json!([1]));
    let alice = dev_key(0);
    let bob = Keypair::generate();
    // One valid pending payment, so "mempool unchanged" is a real check.
    n.call("tx_submit", json!([payment_hex(&params, &alice, bob.address(), 1, 1, 0)]));
    let digest = n.digest();
    let mempool = n.call("mempool_list", json!([]));
    let url = n.node.rpc_url().to_string();

    // Transport-level problems.
    let r = raw_post(&url, "{not json");
    assert_eq!(r["error"]["code"], -32700);
    let r = raw_post(&url, r#"{"jsonrpc":"2.0","id":1,"method":"no_such_method"}"#);
    assert_eq!(r["error"]["code"], -32601);
    let r = raw_post(&url, r#"{"jsonrpc":"1.0","id":1,"method":"node_info"}"#);
    assert_eq!(r["error"]["code"], -32600);
    let r = raw_post(&url, r#"{"jsonrpc":"2.0","id":1,"method":"account_get","params":[42]}"#);
    assert_eq!(r["error"]["code"], -32602);
    let r =
        raw_post(&url, r#"{"jsonrpc":"2.0","id":1,"method":"account_get","params":["edev1qqqq"]}"#);
    assert_eq!(r["error"]["code"], -32602);
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tx_submit","params":["{}"]}}"#,
        "00".repeat(600_000)
    );
    let r = raw_post(&url, &big);
    assert_eq!(r["error"]["code"], -32600);
    assert!(r["error"]["message"].as_str().unwrap().contains("exceeds"));
    let r = raw_post(&url, r#"{"jsonrpc":"2.0","id":1,"method":"mining_generate","params":[1]}"#);
    assert_eq!(r["error"]["code"], -32001, "admin methods need the cookie token");

    // Refused transactions, each with its reason.
    let refused = |hex: String, reason: &str| {
        let err = n.node.client().call("tx_submit", json!([hex])).unwrap_err();
        assert_eq!(err.reason(), Some(reason), "{err}");
    };
    let good = ember_core::testkit::pay(&params, &alice, bob.address(), 5, 1, 1);
    let mut bytes = good.encode();
    bytes[ember_core::tx::TX_ENCODED_LEN - 64 + 10] ^= 1; // inside the signature (last 64 bytes)
    refused(hex::encode(&bytes), "bad_signature");
    let other = ember_core::testkit::devnet_funding(std::slice::from_ref(&alice), 1);
    refused(payment_hex(&other, &alice, bob.address(), 5, 1, 1), "wrong_chain");
    refused(payment_hex(&params, &alice, bob.address(), 5, 1, 0), "replacement_fee_too_low");
    // A replay of a confirmed nonce: mine the pending one first would change state, so use
    // bob, whose nonce 0 is unused, to check "too low" through a second account below.
    refused(payment_hex(&params, &bob, alice.address(), 5, 1, 0), "insufficient_balance");
    refused(payment_hex(&params, &alice, bob.address(), u64::MAX, 1, 1), "cost_overflow");
    let err = n.node.client().call("tx_submit", json!(["zz"])).unwrap_err();
    assert!(err.to_string().contains("hex"), "{err}");
    let err = n.node.client().call("tx_submit", json!(["00"])).unwrap_err();
    assert!(err.to_string().contains("decode"), "{err}");

    assert_eq!(n.digest(), digest, "state digest unchanged");
    assert_eq!(n.call("mempool_list", json!([])), mempool, "mempool unchanged");
}

#[test]
fn replayed_nonce_is_refused() {
    let n = DevNode::start(&[]);
    let params = devnet();
    let alice = dev_key(1);
    let bob = Keypair::generate();
    let tx = payment_hex(&params, &alice, bob.address(), 10, 1, 0);
    n.call("tx_submit", json!([tx]));
    n.call("mining_generate", json!([1]));
    let digest = n.digest();
    let err = n.node.client().call("tx_submit", json!([tx])).unwrap_err();
    assert_eq!(err.reason(), Some("nonce_too_low"), "{err}");
    assert_eq!(n.digest(), digest);
}

#[test]
fn a_batch_admits_exactly_its_well_formed_payments_and_answers_each_in_order() {
    let n = DevNode::start(&[]);
    let params = devnet();
    let (alice, carol, dave) = (dev_key(1), dev_key(2), dev_key(3));
    let to = Keypair::generate().address();
    let good = payment_hex(&params, &alice, to, 1_000, 10, 0);
    let good2 = payment_hex(&params, &alice, to, 1_000, 10, 1);
    let notified = payment_hex(&params, &carol, to, 1_000, 10, 0);
    // A valid payment inside a request that is not JSON-RPC 2.0 must not be admitted.
    let smuggled = payment_hex(&params, &dave, to, 1_000, 10, 0);
    let mut forged = hex::decode(payment_hex(&params, &dave, to, 2_000, 10, 0)).unwrap();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tx_submit", "params": [good]},
        {"jsonrpc": "2.0", "id": 2, "method": "tx_submit", "params": ["zz"]},
        {"jsonrpc": "2.0", "method": "tx_submit", "params": [notified]},
        {"jsonrpc": "1.0", "id": 4, "method": "tx_submit", "params": [smuggled]},
        {"jsonrpc": "2.0", "id": 5, "method": "tx_submit", "params": {"tx": good2}},
        {"jsonrpc": "2.0", "id": 6, "method": "tx_submit", "params": [hex::encode(&forged)]},
        {"jsonrpc": "2.0", "id": 7, "method": "mempool_info"},
        {"jsonrpc": "2.0", "id": 8, "method": "tx_submit", "params": [good]},
    ]);
    let url = n.node.rpc_url().to_string();
    let out = raw_post(&url, &batch.to_string());
    let out = out.as_array().expect("a batch answer");
    let ids: Vec<i64> = out.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![1, 2, 4, 5, 6, 7, 8], "one answer per request with an id, in order");
    assert!(out[0]["result"].is_string(), "{}", out[0]);
    assert_eq!(out[1]["error"]["code"], -32602, "{}", out[1]);
    assert_eq!(out[2]["error"]["code"], -32600, "{}", out[2]);
    assert!(out[3]["result"].is_string(), "named params: {}", out[3]);
    assert_eq!(out[4]["error"]["data"]["reason"], "bad_signature", "{}", out[4]);
    assert_eq!(out[6]["error"]["data"]["reason"], "already_known", "{}", out[6]);
    // Admitted: alice's two and carol's notified one; dave's neither.
    let info = n.call("mempool_info", json!([]));
    assert_eq!(info["count"], 3, "{info}");
    let dave_acct = n.call("account_get", json!([dave.address().to_bech32(params.hrp())]));
    assert_eq!(dave_acct["pending_count"], 0);
}

/// Found by the RPC fuzz target: a fractional id came back one unit in the last place off
/// (the JSON parser was not exact), so a client could not match the answer to its request.
#[test]
fn a_fractional_id_is_echoed_as_the_same_number() {
    let n = DevNode::start(&[]);
    let url = n.node.rpc_url().to_string();
    for id in ["233333333333333333.333333333333333333333", "0.1", "1e-7", "-17.25", "4.2e300"] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"node_info"}}"#);
        let sent: Value = serde_json::from_str(id).unwrap();
        let got = raw_post(&url, &body);
        assert_eq!(got["id"], sent, "id {id}: {got}");
        assert!(got["result"].is_object(), "{got}");
    }
}
