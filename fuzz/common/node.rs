//! A real node for the fuzz targets: devnet parameters, the in-memory store (no RocksDB in
//! the fuzz build), a short chain of 20 blocks and a few payments in the mempool, so that
//! locators, block and transaction requests and account lookups hit real data.

use ember_core::testkit::pay;
use ember_core::ChainParams;
use ember_node::config::NodeConfig;
use ember_node::store::{ChainStore, MemKv};
use ember_node::Node;
use std::sync::Arc;

pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub node: Arc<Node>,
    /// Holds the node key; removed when the fuzzer exits.
    _dir: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Harness {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = tempfile::tempdir().expect("a temp dir");
        let params = Arc::new(ChainParams::devnet());
        let config = NodeConfig {
            rpc_addr: "127.0.0.1:0".parse().expect("valid"),
            p2p_addr: "127.0.0.1:0".parse().expect("valid"),
            discover: false,
            mine_threads: 0,
            ..NodeConfig::new(params.clone(), dir.path().to_path_buf())
        };
        let store = ChainStore::open(Arc::new(MemKv::new()), &params).expect("a fresh store");
        let node = Node::new(config, store).expect("a node");
        let miner = params.allocations()[0].0;
        node.generate(20, miner).expect("20 devnet blocks");
        for i in 0..4u32 {
            let from = ember_wallet::dev_keypair(i);
            let to = ember_wallet::dev_keypair(i + 1).address();
            let tx = pay(&params, &from, to, 1_000, 10, 0);
            node.submit_tx_blocking(tx).expect("a valid payment");
        }
        Harness { rt, node, _dir: dir }
    }

    /// What must never change whatever a peer or an RPC client sends (short of a valid
    /// block): the tip and the state digest.
    pub fn tip_and_digest(&self) -> (ember_core::BlockId, String) {
        let chain = self.node.chain.lock().expect("never poisoned");
        (chain.tip(), format!("{:?}", chain.state_digest().expect("the state digest")))
    }
}
