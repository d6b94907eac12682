//! A payment to an address shows on the receiver's side while it is pending:
//! `account_history.pending` (direction "received") and `account_get.pending_received`.

use crate::support::{dev_key, devnet, payment_hex, DevNode};
use serde_json::json;

#[test]
fn the_receiver_sees_an_incoming_pending_payment() {
    let n = DevNode::start(&[]);
    let params = devnet();
    let receiver = dev_key(7).address().to_bech32(params.hrp());
    let tx = payment_hex(&params, &dev_key(0), dev_key(7).address(), 250_000_000, 10_000, 0);
    let txid = n.call("tx_submit", json!([tx]));

    let history = n.call("account_history", json!([receiver]));
    let pending = history["pending"].as_array().expect("pending");
    assert_eq!(pending.len(), 1, "{history}");
    assert_eq!(pending[0]["txid"], txid);
    assert_eq!(pending[0]["direction"], "received");
    assert_eq!(pending[0]["amount"], "2.5");
    assert_eq!(history["pending_received_total"], 1);
    let account = n.call("account_get", json!([receiver]));
    assert_eq!(account["pending_received"], "2.5", "{account}");
    assert_eq!(account["pending_received_count"], 1);
    // The sender sees it as sent.
    let sender = dev_key(0).address().to_bech32(params.hrp());
    let history = n.call("account_history", json!([sender]));
    assert_eq!(history["pending"][0]["direction"], "sent", "{history}");

    n.call("mining_generate", json!([1]));
    let history = n.call("account_history", json!([receiver]));
    assert_eq!(history["pending"], json!([]), "{history}");
    assert_eq!(history["items"][0]["txid"], txid);
    assert_eq!(history["items"][0]["direction"], "received");
    assert_eq!(n.call("account_get", json!([receiver]))["pending_received"], "0");
}
