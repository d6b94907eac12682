//! Crash safety: `kill -9` at random moments while the node mines and accepts payments;
//! every restart must open the store at a consistent tip whose state equals a replay of
//! its own main chain from genesis (`ember-node check`).

use crate::support::{dev_key, devnet, payment_hex, DevNode};
use ember_core::Keypair;
use ember_testnet::binary;
use rand::Rng;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn kill_9_at_random_moments_leaves_a_consistent_store() {
    let mut n = DevNode::start(&["--mine", "--block-time", "0.05"]);
    let params = devnet();
    let sender = dev_key(2);
    let bob = Keypair::generate();
    let mut rng = rand::thread_rng();
    let mut last_height = 0;
    for round in 0..20 {
        // Feed payments while it mines, for a random while.
        let until = Instant::now() + Duration::from_millis(rng.gen_range(50..400));
        let client = n.node.client();
        let addr = sender.address().to_bech32(params.hrp());
        while Instant::now() < until {
            let Ok(acct) = client.call("account_get", json!([addr])) else { break };
            let nonce = acct["next_nonce"].as_u64().unwrap();
            let _ = client.call(
                "tx_submit",
                json!([payment_hex(&params, &sender, bob.address(), 1_000, 10, nonce)]),
            );
        }
        n.node.kill().unwrap();

        // The store must check out read-only before the node touches it again.
        let out = std::process::Command::new(binary("ember-node").unwrap())
            .args(["check", "--data-dir"])
            .arg(n.node.data_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "round {round}: check failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        n.node.restart().unwrap();
        let h = n.height();
        assert!(h + 1 >= last_height, "round {round}: height went back from {last_height} to {h}");
        last_height = h;
    }
    assert!(last_height > 0, "the node mined while being killed");
}
