//! The testnet harness: a fresh network of real processes linked in a line agrees on
//! blocks mined at one end, and a node killed with SIGKILL catches up after a restart.

use ember_testnet::{Testnet, TestnetOptions, Topology};
use serde_json::json;
use std::time::Duration;

#[test]
fn line_of_four_agrees_and_a_killed_node_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TestnetOptions {
        nodes: 4,
        topology: Topology::Line,
        miners: vec![],
        block_time_secs: 1.0,
        dir: dir.path().to_path_buf(),
        base_port: 0,
    };
    let mut net = Testnet::start(&opts, |_| {}).unwrap();
    net.nodes[0].client().call("mining_generate", json!([5])).unwrap();
    net.wait_for_height(5, Duration::from_secs(60)).unwrap();
    let (h, _) = net.wait_for_agreement(Duration::from_secs(60)).unwrap();
    assert_eq!(h, 5);

    net.nodes[3].kill().unwrap();
    net.nodes[0].client().call("mining_generate", json!([3])).unwrap();
    net.nodes[3].restart().unwrap();
    // Node 3 reconnects to node 2 (its --peer) and syncs the blocks it missed.
    net.wait_for_height(8, Duration::from_secs(60)).unwrap();
    net.wait_for_agreement(Duration::from_secs(60)).unwrap();
    net.stop().unwrap();
}
