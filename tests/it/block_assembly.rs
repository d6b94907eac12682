//! Block assembly on a devnet whose genesis gives one account nearly the largest amount: a
//! payment that would overflow its receiver is refused at submission, and one that stops
//! fitting while it waits is left out of the block, so mining goes on for every sender.
//!
//! Found by an attacker: one such payment admitted to the mempool made every template an
//! invalid block, and `mining_generate` answered "a mined block was refused" from then on.

use crate::support::{dev_key, payment_hex, DevNode};
use ember_core::params::AllocationSpec;
use ember_core::{Amount, ChainParams, GenesisSpec, Network};
use serde_json::{json, Value};

const COIN: u64 = 100_000_000;
/// Dev account 0's allocation: an ordinary one.
const FUNDED: u64 = 1_000 * COIN;
/// Dev account 2's allocation.
const SMALL: u64 = COIN;
/// Dev account 1 holds the rest of the largest amount: room for `FUNDED + SMALL` more units,
/// which account 0 can exceed once it has mined a block.
const RICH: u64 = u64::MAX - FUNDED - SMALL;

/// The devnet of this test, written to `dir/genesis.json`.
fn write_genesis(dir: &std::path::Path) -> (std::path::PathBuf, ChainParams) {
    let hrp = Network::Devnet.hrp();
    let allocation = |i: u32, units: u64| AllocationSpec {
        address: dev_key(i).address().to_bech32(hrp),
        amount: Amount::from_units(units).to_string(),
    };
    let spec = GenesisSpec {
        network: Network::Devnet,
        time_ms: 1_764_000_000_000,
        note: "block assembly test: a nearly full account".into(),
        allocations: vec![allocation(0, FUNDED), allocation(1, RICH), allocation(2, SMALL)],
    };
    let params = ChainParams::from_spec(&spec).expect("the test genesis is valid");
    let path = dir.join("genesis.json");
    std::fs::write(&path, spec.to_json()).expect("genesis written");
    (path, params)
}

fn balance(n: &DevNode, params: &ChainParams, i: u32) -> Value {
    n.call("account_get", json!([dev_key(i).address().to_bech32(params.hrp())]))["balance"].clone()
}

fn coins(units: u64) -> Value {
    json!(Amount::from_units(units).to_string())
}

#[test]
fn payments_that_overflow_their_receiver_never_stall_mining() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (genesis, params) = write_genesis(dir.path());
    let n = DevNode::start(&["--genesis", genesis.to_str().expect("a UTF-8 temp path")]);
    let (alice, rich, carol) = (dev_key(0), dev_key(1), dev_key(2));
    let alice_addr = alice.address().to_bech32(params.hrp());
    let generate = |count: u64| n.call("mining_generate", json!([count, alice_addr]));

    // Alice mines a block: with its subsidy she can pay more than the rich account has room for.
    generate(1);
    assert_eq!(n.height(), 1);
    let subsidy = params.subsidy(1).units();
    assert_eq!(balance(&n, &params, 0), coins(FUNDED + subsidy));
    assert_eq!(balance(&n, &params, 1), coins(RICH));

    // 1. Refused at submission, with its reason, and nothing pending.
    let room = u64::MAX - RICH;
    let overflow = payment_hex(&params, &alice, rich.address(), room + 1, 1_000, 0);
    let err = n.node.client().call("tx_submit", json!([overflow])).unwrap_err();
    match &err {
        ember_wallet::rpc::RpcClientError::Rpc { code, message, .. } => {
            assert_eq!(*code, -32010, "{err}");
            assert!(
                message.starts_with("transaction refused: the receiver's balance of ")
                    && message.ends_with("it would exceed the largest possible amount"),
                "{message}"
            );
        }
        other => panic!("expected an RPC error, got {other}"),
    }
    assert_eq!(err.reason(), Some("receiver_overflow"), "{err}");
    assert_eq!(n.call("mempool_info", json!([]))["count"], 0);

    // 2. Two payments to the rich account that fit one at a time but not together, and a
    // normal one behind the first in alice's queue.
    let fills = payment_hex(&params, &alice, rich.address(), room - SMALL / 4, 10_000, 0);
    let fills = n.call("tx_submit", json!([fills]));
    let late = payment_hex(&params, &carol, rich.address(), SMALL / 2, 1_000, 0);
    let late = n.call("tx_submit", json!([late]));
    let normal = payment_hex(&params, &alice, carol.address(), COIN, 1_000, 1);
    let normal = n.call("tx_submit", json!([normal]));
    assert_eq!(n.call("mempool_info", json!([]))["count"], 3);

    // The block takes what fits and leaves the late payment out: mining goes on.
    let ids = generate(1);
    assert_eq!(ids.as_array().map(Vec::len), Some(1), "{ids}");
    assert_eq!(n.height(), 2);
    let block = n.call("chain_getBlock", json!([2]));
    let txids: Vec<&Value> = block["txs"].as_array().unwrap().iter().map(|t| &t["txid"]).collect();
    assert_eq!(txids, vec![&fills, &normal], "{block}");
    let status = |txid: &Value| n.call("chain_getTransaction", json!([txid]))["status"].clone();
    assert_eq!(status(&fills), "confirmed");
    assert_eq!(status(&normal), "confirmed");
    assert_eq!(status(&late), "pending");
    assert_eq!(balance(&n, &params, 1), coins(u64::MAX - SMALL / 4));
    assert_eq!(balance(&n, &params, 2), coins(2 * SMALL));

    // Now it can never fit: the next template evicts it, and the block is mined all the same.
    generate(1);
    assert_eq!(n.height(), 3);
    assert_eq!(n.call("mempool_info", json!([]))["count"], 0);
    let err = n.node.client().call("chain_getTransaction", json!([late])).unwrap_err();
    assert!(err.to_string().contains("neither confirmed nor pending"), "{err}");
    assert_eq!(balance(&n, &params, 1), coins(u64::MAX - SMALL / 4));
    assert_eq!(balance(&n, &params, 2), coins(2 * SMALL));
    // Alice mined all three blocks and took the fees of the second.
    assert_eq!(
        balance(&n, &params, 0),
        coins(FUNDED + 3 * subsidy + 11_000 - (room - SMALL / 4) - 10_000 - COIN - 1_000)
    );
}
