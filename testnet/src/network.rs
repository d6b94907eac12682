//! A local network of real `ember-node` processes: a fresh devnet genesis, one data dir per
//! node, ports on loopback, a topology of `--peer` links, and waits for agreement.
//!
//! The genesis prefunds the accounts of the public dev mnemonic (so `ember-wallet
//! import-dev-key` works against it) and carries a random note, so every fresh testnet is
//! a network of its own that no stale node can join.

use crate::process::{wait_for, NodeProcess};
use anyhow::{bail, Context, Result};
use ember_core::params::{AllocationSpec, GenesisSpec, DEVNET_GENESIS_JSON};
use ember_core::Network;
use serde_json::json;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How nodes are linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Topology {
    /// 0-1-2-...-(n-1)
    Line,
    /// a line closed into a circle
    Ring,
    /// everyone connects to node 0
    Star,
    /// everyone connects to everyone
    Mesh,
}

impl Topology {
    /// The (from, to) outbound links.
    pub fn links(self, n: usize) -> Vec<(usize, usize)> {
        match self {
            Topology::Line => (1..n).map(|i| (i, i - 1)).collect(),
            Topology::Ring => {
                let mut l: Vec<_> = (1..n).map(|i| (i, i - 1)).collect();
                if n > 2 {
                    l.push((0, n - 1));
                }
                l
            }
            Topology::Star => (1..n).map(|i| (i, 0)).collect(),
            Topology::Mesh => (0..n).flat_map(|i| (0..i).map(move |j| (i, j))).collect(),
        }
    }
}

/// Options of a testnet.
#[derive(Debug, Clone)]
pub struct TestnetOptions {
    pub nodes: usize,
    pub topology: Topology,
    /// Indices of nodes that mine with `--mine`.
    pub miners: Vec<usize>,
    pub block_time_secs: f64,
    pub dir: PathBuf,
    /// RPC of node i on base+i, P2P on base+100+i; 0 = ports from the OS.
    pub base_port: u16,
}

/// A running testnet.
pub struct Testnet {
    pub nodes: Vec<NodeProcess>,
    pub dir: PathBuf,
    pub genesis: PathBuf,
}

/// Writes a fresh devnet genesis (dev accounts, random note) into `dir/genesis.json`.
pub fn write_genesis(dir: &Path) -> Result<PathBuf> {
    let base = GenesisSpec::from_json(DEVNET_GENESIS_JSON).expect("built-in genesis parses");
    let spec = GenesisSpec {
        network: Network::Devnet,
        time_ms: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis()
            as u64,
        note: format!("ember-testnet {:016x}", rand_u64()),
        allocations: base
            .allocations
            .iter()
            .map(|a| AllocationSpec { address: a.address.clone(), amount: a.amount.clone() })
            .collect(),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("genesis.json");
    std::fs::write(&path, spec.to_json())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Fails with a clear message when a fixed port is taken.
fn check_port_free(port: u16) -> Result<()> {
    if port == 0 {
        return Ok(());
    }
    TcpListener::bind(("127.0.0.1", port)).map(drop).map_err(|e| {
        anyhow::anyhow!("port {port} on 127.0.0.1 is in use ({e}); pick another --base-port")
    })
}

impl Testnet {
    /// Starts every node, links them, and waits until all are connected and agree on a tip.
    pub fn start(opts: &TestnetOptions, mut progress: impl FnMut(&str)) -> Result<Testnet> {
        if opts.nodes == 0 || opts.nodes > 50 {
            bail!("--nodes must be between 1 and 50");
        }
        if let Some(m) = opts.miners.iter().find(|m| **m >= opts.nodes) {
            bail!("miner index {m} is not a node (there are {} nodes)", opts.nodes);
        }
        let port = |i: usize, off: u16| {
            if opts.base_port == 0 {
                0
            } else {
                opts.base_port + off + i as u16
            }
        };
        for i in 0..opts.nodes {
            check_port_free(port(i, 0))?;
            check_port_free(port(i, 100))?;
        }
        let genesis = write_genesis(&opts.dir)?;
        let mut nodes: Vec<NodeProcess> = Vec::new();
        let links = opts.topology.links(opts.nodes);
        for i in 0..opts.nodes {
            progress(&format!("starting node {i}"));
            let data = opts.dir.join(format!("node{i}"));
            let _ = std::fs::remove_dir_all(&data);
            let mut args = vec![
                "--network".to_string(),
                "devnet".into(),
                "--genesis".into(),
                genesis.display().to_string(),
                "--rpc-addr".into(),
                format!("127.0.0.1:{}", port(i, 0)),
                "--p2p-addr".into(),
                format!("127.0.0.1:{}", port(i, 100)),
            ];
            // Links go from the later node to the earlier, already listening one.
            for (from, to) in &links {
                if *from == i && *to < i {
                    args.push("--peer".into());
                    args.push(nodes[*to].p2p_addr());
                }
            }
            if opts.miners.contains(&i) {
                args.extend([
                    "--mine".into(),
                    "--block-time".into(),
                    opts.block_time_secs.to_string(),
                ]);
            }
            nodes.push(NodeProcess::start(&data, &args)?);
        }
        // Links to later nodes (rings, meshes): add them now that everyone listens.
        for (from, to) in &links {
            if to > from {
                let addr = nodes[*to].p2p_addr();
                nodes[*from].client().call("net_addPeer", json!([addr]))?;
            }
        }
        let net = Testnet { nodes, dir: opts.dir.clone(), genesis };
        progress("waiting for peers to connect");
        let mut degree = vec![0usize; opts.nodes];
        for (a, b) in &links {
            degree[*a] += 1;
            degree[*b] += 1;
        }
        wait_for(Duration::from_secs(60), "every node to connect to its peers", || {
            net.nodes
                .iter()
                .enumerate()
                .all(|(i, n)| {
                    n.client()
                        .call("node_info", json!([]))
                        .ok()
                        .and_then(|v| v["peers"].as_u64())
                        .unwrap_or(0) as usize
                        >= degree[i]
                })
                .then_some(())
        })?;
        progress("waiting for nodes to agree on a tip");
        net.wait_for_agreement(Duration::from_secs(60))?;
        Ok(net)
    }

    /// Each node's (height, tip), or an error naming the node that did not answer.
    pub fn tips(&self) -> Result<Vec<(u64, String)>> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let v =
                    n.client().call("node_info", json!([])).with_context(|| format!("node {i}"))?;
                Ok((v["height"].as_u64().unwrap_or(0), v["tip"].as_str().unwrap_or("").to_string()))
            })
            .collect()
    }

    /// Waits until every node reports the same tip.
    pub fn wait_for_agreement(&self, timeout: Duration) -> Result<(u64, String)> {
        wait_for(timeout, "all nodes to agree on one tip", || {
            let tips = self.tips().ok()?;
            tips.windows(2).all(|w| w[0].1 == w[1].1).then(|| tips[0].clone())
        })
    }

    /// Waits until every node's tip is at least `height`.
    pub fn wait_for_height(&self, height: u64, timeout: Duration) -> Result<()> {
        wait_for(timeout, &format!("all nodes to reach height {height}"), || {
            self.tips().ok()?.iter().all(|t| t.0 >= height).then_some(())
        })
    }

    /// Stops every node cleanly.
    pub fn stop(&mut self) -> Result<()> {
        for n in &mut self.nodes {
            n.stop()?;
        }
        Ok(())
    }

    /// Addresses of node `i`.
    pub fn addresses(&self, i: usize) -> (String, String) {
        (self.nodes[i].rpc_url().to_string(), self.nodes[i].p2p_addr())
    }
}

/// Parses "0,2,3" into indices.
pub fn parse_indices(s: &str) -> Result<Vec<usize>> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|p| p.trim().parse::<usize>().with_context(|| format!("{p:?} is not a node index")))
        .collect()
}
