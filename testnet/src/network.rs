//! A local network of real `ember-node` processes: a fresh devnet genesis, one data dir per
//! node, ports on loopback, a topology of links, and waits for agreement.
//!
//! Every link goes through a [`LinkProxy`] the testnet owns: for a link `i → j`, node `i` is
//! started with `--peer <proxy>` and `--no-discover` (so it never dials around the proxies)
//! and the proxy forwards to node `j`. That is how [`Testnet::partition`],
//! [`Testnet::set_latency`] and [`Testnet::set_loss`] work without root, and how a restarted
//! node is found again (the proxy is re-pointed at it).
//!
//! The genesis prefunds the accounts of the public dev mnemonic (so `ember-wallet
//! import-dev-key` works against it) and carries a random note, so every fresh testnet is
//! a network of its own that no stale node can join.

use crate::process::{wait_for, NodeProcess};
use crate::proxy::{Faults, LinkProxy};
use anyhow::{anyhow, bail, Context, Result};
use ember_core::params::{AllocationSpec, GenesisSpec, DEVNET_GENESIS_JSON};
use ember_core::Network;
use ember_wallet::rpc::RpcClient;
use serde_json::json;
use std::net::{SocketAddr, TcpListener};
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
    /// a random spanning tree plus about n/2 extra random links (always connected)
    Random,
}

impl Topology {
    pub fn name(self) -> &'static str {
        match self {
            Topology::Line => "line",
            Topology::Ring => "ring",
            Topology::Star => "star",
            Topology::Mesh => "mesh",
            Topology::Random => "random",
        }
    }

    /// The (from, to) links: `from` dials `to`. At most one link per pair of nodes.
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
            Topology::Random => {
                let mut rng = rand_u64() | 1;
                let mut next = move |bound: usize| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    (rng % bound as u64) as usize
                };
                // Each node links to a random earlier one: a tree, so everyone is reachable.
                let mut l: Vec<(usize, usize)> = (1..n).map(|i| (i, next(i))).collect();
                let possible = n * n.saturating_sub(1) / 2;
                let want = (l.len() + n / 2).min(possible);
                let mut tries = 0;
                while l.len() < want && tries < 1000 {
                    tries += 1;
                    let (a, b) = (next(n), next(n));
                    if a != b && !l.iter().any(|&(x, y)| (x, y) == (a, b) || (x, y) == (b, a)) {
                        l.push((a.max(b), a.min(b)));
                    }
                }
                l
            }
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

impl TestnetOptions {
    /// Node `i`'s port at `offset` from the base port (0 when the OS picks).
    fn port(&self, i: usize, offset: u16) -> u16 {
        if self.base_port == 0 {
            0
        } else {
            self.base_port + offset + i as u16
        }
    }

    /// Checks the options themselves (sizes, indices, ports in range); nothing is started.
    pub fn validate(&self) -> Result<()> {
        if self.nodes == 0 || self.nodes > 50 {
            bail!("--nodes must be between 1 and 50");
        }
        if let Some(m) = self.miners.iter().find(|m| **m >= self.nodes) {
            bail!(
                "miner index {m} is not a node (there are {} nodes: 0..{})",
                self.nodes,
                self.nodes - 1
            );
        }
        if !(self.block_time_secs > 0.0 && self.block_time_secs.is_finite()) {
            bail!("--block-time must be a positive number of seconds");
        }
        if self.base_port != 0 && usize::from(self.base_port) + 200 + self.nodes > 65535 {
            bail!("--base-port {} leaves no room for {} nodes", self.base_port, self.nodes);
        }
        Ok(())
    }

    /// Fails with a clear message when a fixed RPC or P2P port is taken.
    pub fn check_ports(&self) -> Result<()> {
        for i in 0..self.nodes {
            check_port_free(self.port(i, 0))?;
            check_port_free(self.port(i, 100))?;
        }
        Ok(())
    }

    /// `nodes` nodes in `topology` under `dir`, ports from the OS, nobody mining.
    pub fn new(nodes: usize, topology: Topology, dir: &Path) -> TestnetOptions {
        TestnetOptions {
            nodes,
            topology,
            miners: Vec::new(),
            block_time_secs: 1.0,
            dir: dir.to_path_buf(),
            base_port: 0,
        }
    }
}

/// A step of [`Testnet::start`]: `done` of `total` nodes have reached it.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub step: &'a str,
    pub done: usize,
    pub total: usize,
}

impl std::fmt::Display for Progress<'_> {
    /// `[#####.....] 3/6 nodes started`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const WIDTH: usize = 20;
        let filled = (self.done * WIDTH).checked_div(self.total).unwrap_or(WIDTH);
        write!(
            f,
            "[{}{}] {}/{} {}",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            self.done,
            self.total,
            self.step
        )
    }
}

/// One P2P link: node `from` dials node `to` through `proxy`.
pub struct Link {
    pub from: usize,
    pub to: usize,
    proxy: LinkProxy,
}

impl Link {
    /// The address node `from` dials.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    pub fn faults(&self) -> Faults {
        self.proxy.faults()
    }

    /// TCP connections currently open through the proxy.
    pub fn connections(&self) -> usize {
        self.proxy.connections()
    }

    /// What the link's faults did to the chunks it relayed so far.
    pub fn stats(&self) -> crate::proxy::ProxyStats {
        self.proxy.stats()
    }

    fn joins(&self, i: usize, j: usize) -> bool {
        (self.from, self.to) == (i, j) || (self.from, self.to) == (j, i)
    }
}

/// A running testnet. Dropping it kills every node and closes every proxy.
pub struct Testnet {
    nodes: Vec<NodeProcess>,
    links: Vec<Link>,
    miners: Vec<usize>,
    pub topology: Topology,
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

/// A random u64 from the std hasher's per-process keys and the clock (no `rand` needed for
/// a note, a topology or a token).
pub(crate) fn rand_u64() -> u64 {
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
pub(crate) fn check_port_free(port: u16) -> Result<()> {
    if port == 0 {
        return Ok(());
    }
    TcpListener::bind(("127.0.0.1", port)).map(drop).map_err(|e| {
        anyhow::anyhow!("port {port} on 127.0.0.1 is in use ({e}); pick another --base-port")
    })
}

impl Testnet {
    /// Starts every node behind its link proxies and waits until all are connected and
    /// agree on a tip. `progress` hears of every step and count.
    pub fn start(opts: &TestnetOptions, mut progress: impl FnMut(Progress<'_>)) -> Result<Testnet> {
        let n = opts.nodes;
        opts.validate()?;
        opts.check_ports()?;
        let port = |i: usize, off: u16| opts.port(i, off);
        let genesis = write_genesis(&opts.dir)?;
        // Data dirs of a bigger earlier testnet in the same dir would only confuse.
        for i in n.. {
            let stale = opts.dir.join(format!("node{i}"));
            if !stale.is_dir() {
                break;
            }
            std::fs::remove_dir_all(&stale)
                .with_context(|| format!("cannot remove {}", stale.display()))?;
        }
        // Proxies first, pointing nowhere yet: every node can then be started with all its
        // --peer flags, and dials again (every 250 ms) until the proxy has a target.
        let links = opts
            .topology
            .links(opts.nodes)
            .into_iter()
            .map(|(from, to)| Ok(Link { from, to, proxy: LinkProxy::start(None)? }))
            .collect::<Result<Vec<_>>>()?;
        let mut net = Testnet {
            nodes: Vec::new(),
            links,
            miners: opts.miners.clone(),
            topology: opts.topology,
            dir: opts.dir.clone(),
            genesis: genesis.clone(),
        };
        for i in 0..opts.nodes {
            progress(Progress { step: "nodes started", done: i, total: n });
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
                "--no-discover".into(),
            ];
            for l in net.links.iter().filter(|l| l.from == i) {
                args.extend(["--peer".to_string(), l.proxy_addr().to_string()]);
            }
            if opts.miners.contains(&i) {
                args.extend([
                    "--mine".into(),
                    "--block-time".into(),
                    opts.block_time_secs.to_string(),
                ]);
            }
            let mut node = NodeProcess::start(&data, &args)
                .with_context(|| format!("node {i} did not start"))?;
            node.pin_addresses();
            net.nodes.push(node);
            net.point_proxies_at(i)?;
        }
        progress(Progress { step: "nodes started", done: n, total: n });
        net.wait_connected(&mut progress)?;
        net.wait_for_agreement(Duration::from_secs(60))?;
        progress(Progress { step: "nodes on one tip", done: n, total: n });
        Ok(net)
    }

    /// Waits (up to 60 s) until every node has as many peers as it has links.
    fn wait_connected(&self, progress: &mut impl FnMut(Progress<'_>)) -> Result<()> {
        let n = self.nodes.len();
        let mut degree = vec![0usize; n];
        for l in &self.links {
            degree[l.from] += 1;
            degree[l.to] += 1;
        }
        let mut shown = usize::MAX;
        wait_for(Duration::from_secs(60), "every node to connect to its peers", || {
            let connected = (0..n)
                .filter(|&i| {
                    self.client(i)
                        .call("node_info", json!([]))
                        .ok()
                        .and_then(|v| v["peers"].as_u64())
                        .unwrap_or(0) as usize
                        >= degree[i]
                })
                .count();
            if connected != shown {
                shown = connected;
                progress(Progress {
                    step: "nodes connected to all their peers",
                    done: connected,
                    total: n,
                });
            }
            (connected == n).then_some(())
        })
    }

    /// Restarts every node with a boolean flag added (`on`) or removed, and waits until they
    /// are all connected again and agree on a tip.
    pub fn restart_all_with_flag(&mut self, flag: &str, on: bool) -> Result<()> {
        for n in &mut self.nodes {
            n.stop()?;
            n.set_flag(flag, on);
        }
        for i in 0..self.nodes.len() {
            self.nodes[i].restart()?;
            self.point_proxies_at(i)?;
        }
        self.wait_connected(&mut |_| {})?;
        self.wait_for_agreement(Duration::from_secs(60))?;
        Ok(())
    }

    /// Re-points the proxies of links into node `i` at its current P2P address.
    fn point_proxies_at(&self, i: usize) -> Result<()> {
        let addr: SocketAddr = self.nodes[i]
            .p2p_addr()
            .parse()
            .with_context(|| format!("node {i} wrote no valid p2p.addr"))?;
        for l in self.links.iter().filter(|l| l.to == i) {
            l.proxy.set_target(addr);
        }
        Ok(())
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, i: usize) -> &NodeProcess {
        &self.nodes[i]
    }

    pub fn nodes(&self) -> &[NodeProcess] {
        &self.nodes
    }

    pub fn links(&self) -> &[Link] {
        &self.links
    }

    pub fn miners(&self) -> &[usize] {
        &self.miners
    }

    /// An RPC client for node `i` with its admin token.
    pub fn client(&self, i: usize) -> RpcClient {
        self.nodes[i].client()
    }

    /// Fails unless `i` is a node index.
    pub fn check_index(&self, i: usize) -> Result<()> {
        if i >= self.nodes.len() {
            bail!("there is no node {i}: this testnet has nodes 0..{}", self.nodes.len() - 1);
        }
        Ok(())
    }

    /// The link between `i` and `j` (either direction), or an error listing the links.
    pub fn link(&self, i: usize, j: usize) -> Result<&Link> {
        self.check_index(i)?;
        self.check_index(j)?;
        self.links.iter().find(|l| l.joins(i, j)).ok_or_else(|| {
            let all: Vec<String> =
                self.links.iter().map(|l| format!("{}-{}", l.to, l.from)).collect();
            anyhow::anyhow!(
                "there is no link between node {i} and node {j} (links: {})",
                if all.is_empty() { "none".to_string() } else { all.join(", ") }
            )
        })
    }

    /// Cuts every link between nodes of different `groups`. Every node must be in exactly
    /// one group; any earlier partition is replaced. Nothing changes on an error.
    pub fn partition(&mut self, groups: &[&[usize]]) -> Result<()> {
        let group_of = check_partition(groups, self.nodes.len())?;
        for l in &self.links {
            let mut f = l.proxy.faults();
            f.partitioned = group_of[l.from] != group_of[l.to];
            l.proxy.set_faults(f);
        }
        Ok(())
    }

    /// Undoes any partition (latency and loss stay as set).
    pub fn heal(&mut self) {
        for l in &self.links {
            l.proxy.set_faults(Faults { partitioned: false, ..l.proxy.faults() });
        }
    }

    /// Delays every chunk on the link between `i` and `j` by `ms`, both ways (0 = none).
    pub fn set_latency(&mut self, i: usize, j: usize, ms: u64) -> Result<()> {
        if ms > 60_000 {
            bail!("latency {ms} ms is more than a minute; the peers would time out");
        }
        let l = self.link(i, j)?;
        l.proxy.set_faults(Faults { latency_ms: ms, ..l.proxy.faults() });
        Ok(())
    }

    /// Delays `pct` percent of chunks on the link by a retransmission timeout (see
    /// [`crate::proxy`] for why loss is a delay on TCP).
    pub fn set_loss(&mut self, i: usize, j: usize, pct: f64) -> Result<()> {
        if !(0.0..=100.0).contains(&pct) {
            bail!("loss must be a percentage between 0 and 100, not {pct}");
        }
        let l = self.link(i, j)?;
        l.proxy.set_faults(Faults { loss_pct: pct, ..l.proxy.faults() });
        Ok(())
    }

    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].is_running()
    }

    /// SIGKILL node `i` (crash-recovery tests).
    pub fn kill(&mut self, i: usize) -> Result<()> {
        self.check_index(i)?;
        self.nodes[i].kill()
    }

    /// SIGTERM node `i` and wait for it to exit; returns whether it exited cleanly.
    pub fn stop_node(&mut self, i: usize) -> Result<bool> {
        self.check_index(i)?;
        self.nodes[i].stop()
    }

    /// Starts a stopped node `i` again with its data dir, addresses and links.
    pub fn start_node(&mut self, i: usize) -> Result<()> {
        self.check_index(i)?;
        if self.nodes[i].is_running() {
            bail!("node {i} is already running (pid {})", self.nodes[i].pid().unwrap_or(0));
        }
        self.nodes[i].restart()?;
        self.point_proxies_at(i)
    }

    /// Stops node `i` (when running) and starts it again.
    pub fn restart_node(&mut self, i: usize) -> Result<()> {
        self.check_index(i)?;
        self.nodes[i].restart()?;
        self.point_proxies_at(i)
    }

    /// Mines `n` devnet blocks at once on node `i` (`mining_generate`); returns their ids.
    pub fn mine(&self, i: usize, n: u64) -> Result<Vec<String>> {
        self.check_index(i)?;
        if n == 0 || n > 1000 {
            bail!("can mine 1 to 1000 blocks at once, not {n}");
        }
        let v = self
            .client(i)
            .call("mining_generate", json!([n]))
            .with_context(|| format!("mining on node {i}"))?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default())
    }

    /// Each node's (height, tip), or an error naming the node that did not answer.
    pub fn tips(&self) -> Result<Vec<(u64, String)>> {
        (0..self.nodes.len()).map(|i| self.tip(i)).collect()
    }

    /// Node `i`'s (height, tip).
    pub fn tip(&self, i: usize) -> Result<(u64, String)> {
        let v = self.client(i).call("node_info", json!([])).with_context(|| format!("node {i}"))?;
        Ok((v["height"].as_u64().unwrap_or(0), v["tip"].as_str().unwrap_or("").to_string()))
    }

    /// Each node's `state_digest` (a digest of its whole account state).
    pub fn state_digests(&self) -> Result<Vec<String>> {
        (0..self.nodes.len())
            .map(|i| {
                let v = self
                    .client(i)
                    .call("state_digest", json!([]))
                    .with_context(|| format!("node {i}"))?;
                // A missing digest is an error, not "": two missing digests must never
                // compare equal.
                v["digest"]
                    .as_str()
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("node {i}: state_digest answered without a digest: {v}"))
            })
            .collect()
    }

    /// Waits until every node reports the same tip; returns it.
    pub fn wait_for_agreement(&self, timeout: Duration) -> Result<(u64, String)> {
        wait_for(timeout, "all nodes to agree on one tip", || {
            let tips = self.tips().ok()?;
            tips.windows(2).all(|w| w[0].1 == w[1].1).then(|| tips[0].clone())
        })
        .with_context(|| format!("tips: {}", self.describe_tips()))
    }

    /// Waits until every node of `nodes` has `tip` as its tip.
    pub fn wait_for_tip(&self, nodes: &[usize], tip: &str, timeout: Duration) -> Result<()> {
        wait_for(timeout, &format!("nodes {nodes:?} to have tip {tip}"), || {
            nodes.iter().all(|&i| self.tip(i).is_ok_and(|t| t.1 == tip)).then_some(())
        })
        .with_context(|| format!("tips: {}", self.describe_tips()))
    }

    /// Waits until every node's tip is at least `height`.
    pub fn wait_for_height(&self, height: u64, timeout: Duration) -> Result<()> {
        wait_for(timeout, &format!("all nodes to reach height {height}"), || {
            self.tips().ok()?.iter().all(|t| t.0 >= height).then_some(())
        })
        .with_context(|| format!("tips: {}", self.describe_tips()))
    }

    /// "n0: 5@abcdef12, n1: ..." for error messages.
    pub fn describe_tips(&self) -> String {
        (0..self.nodes.len())
            .map(|i| match self.tip(i) {
                Ok((h, t)) => format!("n{i}: {h}@{}", &t[..8.min(t.len())]),
                Err(_) => format!("n{i}: down"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Stops every node cleanly (SIGTERM, then SIGKILL after 30 s) and closes the proxies.
    pub fn stop(&mut self) -> Result<()> {
        let mut unclean = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if !n.stop()? {
                unclean.push(i);
            }
        }
        self.links.clear();
        if !unclean.is_empty() {
            bail!("nodes {unclean:?} did not exit cleanly");
        }
        Ok(())
    }

    /// Addresses of node `i`: (RPC URL, P2P address).
    pub fn addresses(&self, i: usize) -> (String, String) {
        (self.nodes[i].rpc_url().to_string(), self.nodes[i].p2p_addr())
    }
}

/// Checks a partition of `n` nodes into groups and returns each node's group.
pub fn check_partition(groups: &[&[usize]], n: usize) -> Result<Vec<usize>> {
    if groups.len() < 2 || groups.iter().any(|g| g.is_empty()) {
        bail!("a partition needs at least two non-empty groups, e.g. 0,1/2,3");
    }
    let mut group_of = vec![usize::MAX; n];
    for (g, members) in groups.iter().enumerate() {
        for &i in *members {
            if i >= n {
                bail!("there is no node {i}: this testnet has nodes 0..{}", n - 1);
            }
            if group_of[i] != usize::MAX {
                bail!("node {i} is in more than one group");
            }
            group_of[i] = g;
        }
    }
    if let Some(missing) = group_of.iter().position(|g| *g == usize::MAX) {
        bail!("node {missing} is in no group: a partition must place every node");
    }
    Ok(group_of)
}

/// Parses "0,1/2,3" into groups of indices.
pub fn parse_partition(spec: &str) -> Result<Vec<Vec<usize>>> {
    spec.split('/')
        .map(|g| {
            let v = parse_indices(g)?;
            if v.is_empty() {
                bail!("empty group in partition {spec:?}; write groups like 0,1/2,3");
            }
            Ok(v)
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether every node is reachable from node 0 over `links`.
    fn connected(n: usize, links: &[(usize, usize)]) -> bool {
        let mut seen = vec![false; n];
        let mut stack = vec![0];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            for &(a, b) in links {
                if a == i {
                    stack.push(b);
                }
                if b == i {
                    stack.push(a);
                }
            }
        }
        seen.iter().all(|s| *s)
    }

    #[test]
    fn every_topology_is_connected_without_duplicate_links() {
        for topo in
            [Topology::Line, Topology::Ring, Topology::Star, Topology::Mesh, Topology::Random]
        {
            for n in 1..12 {
                let links = topo.links(n);
                assert!(connected(n, &links), "{topo:?} with {n} nodes: {links:?}");
                for (k, &(a, b)) in links.iter().enumerate() {
                    assert!(a != b && a < n && b < n, "{topo:?}: bad link {a}-{b}");
                    assert!(
                        !links[k + 1..].iter().any(|&l| l == (a, b) || l == (b, a)),
                        "{topo:?} with {n} nodes links {a}-{b} twice"
                    );
                }
            }
        }
        assert_eq!(Topology::Mesh.links(5).len(), 10);
        assert_eq!(Topology::Ring.links(5).len(), 5);
    }

    #[test]
    fn partitions_parse_and_bad_ones_say_why() {
        assert_eq!(parse_partition("0,1/2,3").unwrap(), vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(parse_partition(" 0 / 1 ,2").unwrap(), vec![vec![0], vec![1, 2]]);
        assert!(parse_partition("0,1/").unwrap_err().to_string().contains("empty group"));
        assert!(parse_partition("0,a/1").unwrap_err().to_string().contains("not a node index"));
        let check = |g: &[&[usize]]| check_partition(g, 4).map_err(|e| e.to_string());
        assert_eq!(check(&[&[0, 1], &[2, 3]]).unwrap(), vec![0, 0, 1, 1]);
        assert!(check(&[&[0, 1, 2, 3]]).unwrap_err().contains("two non-empty groups"));
        assert!(check(&[&[0, 1], &[2, 7]]).unwrap_err().contains("no node 7"));
        assert!(check(&[&[0, 1], &[1, 2, 3]]).unwrap_err().contains("more than one group"));
        assert!(check(&[&[0, 1], &[2]]).unwrap_err().contains("node 3 is in no group"));
    }
}
