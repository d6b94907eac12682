//! What the dashboard shows, gathered by polling every node's RPC (the page never talks
//! to the nodes itself): height, tip, peers and mempool of each node, which links are up,
//! a tree of recent blocks, and how long each block took to reach every node.
//!
//! Propagation is measured here, at the poll interval's resolution ([`POLL_INTERVAL`]): a
//! block counts as reached by a node at the first poll where the node's tip is that block
//! or a descendant of it (a node that receives two blocks between polls never has the
//! first as its tip, yet clearly holds it). A block's time zero is the first poll where any
//! node held it.

use ember_wallet::rpc::RpcClient;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the supervisor polls the nodes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Blocks further than this below the best height are forgotten.
const KEEP_DEPTH: u64 = 30;

/// What the poller needs to know about a node (copied out of the testnet under its lock,
/// so polling never holds it).
#[derive(Debug, Clone)]
pub struct NodeTarget {
    pub index: usize,
    pub running: bool,
    pub miner: bool,
    pub rpc_url: String,
    pub p2p_addr: String,
}

/// A link as the poller sees it.
#[derive(Debug, Clone)]
pub struct LinkTarget {
    pub from: usize,
    pub to: usize,
    pub proxy_addr: String,
    pub partitioned: bool,
    pub latency_ms: u64,
    pub loss_pct: f64,
}

#[derive(Debug, Clone, Default)]
struct NodeView {
    running: bool,
    miner: bool,
    rpc_url: String,
    p2p_addr: String,
    height: u64,
    tip: String,
    peers: u64,
    mempool: u64,
    /// Proxy addresses of the node's connected outbound peers.
    outbound: Vec<String>,
    error: Option<String>,
}

#[derive(Debug, Clone)]
struct BlockView {
    height: u64,
    prev: String,
    /// Unix ms at which each node first held the block.
    seen: Vec<Option<u64>>,
}

/// The polled view of the network; [`Monitor::poll`] updates it, [`Monitor::to_json`]
/// serves it.
#[derive(Default)]
pub struct Monitor {
    nodes: Vec<NodeView>,
    links: Vec<LinkTarget>,
    blocks: HashMap<String, BlockView>,
    updated_ms: u64,
    meta: Value,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One round of RPC answers for a node, fetched without any lock held.
pub struct NodeSample {
    index: usize,
    info: Result<Value, String>,
    peers: Vec<String>,
    /// Headers (id → (height, prev)) fetched for blocks the monitor did not know.
    headers: Vec<(String, u64, String)>,
}

impl Monitor {
    /// `meta` is served as is (directory, topology, ...).
    pub fn new(meta: Value) -> Monitor {
        Monitor { meta, ..Monitor::default() }
    }

    /// Asks node `t` for its state, and for the headers of its tip's recent ancestors that
    /// `known` does not contain.
    pub fn sample(t: &NodeTarget, known: &dyn Fn(&str) -> bool) -> NodeSample {
        let mut s = NodeSample {
            index: t.index,
            info: Err("stopped".into()),
            peers: vec![],
            headers: vec![],
        };
        if !t.running {
            return s;
        }
        let c = RpcClient::new(t.rpc_url.clone());
        s.info = c.call("node_info", json!([])).map_err(|e| e.to_string());
        let Ok(info) = &s.info else { return s };
        if let Ok(Value::Array(peers)) = c.call("net_peers", json!([])) {
            s.peers = peers
                .iter()
                .filter(|p| p["direction"] == "outbound")
                .filter_map(|p| p["address"].as_str().map(str::to_string))
                .collect();
        }
        let mut id = info["tip"].as_str().unwrap_or("").to_string();
        for _ in 0..KEEP_DEPTH {
            if id.is_empty() || known(&id) {
                break;
            }
            let Ok(h) = c.call("chain_getHeader", json!([id])) else { break };
            let height = h["height"].as_u64().unwrap_or(0);
            let prev = h["prev"].as_str().unwrap_or("").to_string();
            s.headers.push((id, height, prev.clone()));
            if height == 0 {
                break;
            }
            id = prev;
        }
        s
    }

    /// The ids of the blocks the monitor knows (to pass to [`Monitor::sample`]).
    pub fn known_ids(&self) -> HashSet<String> {
        self.blocks.keys().cloned().collect()
    }

    /// Folds one round of samples into the view, as of now.
    pub fn update(
        &mut self,
        targets: &[NodeTarget],
        links: Vec<LinkTarget>,
        samples: Vec<NodeSample>,
    ) {
        self.update_at(now_ms(), targets, links, samples);
    }

    /// [`Monitor::update`] with the time of the round given (unix ms), so tests can set it.
    pub fn update_at(
        &mut self,
        now: u64,
        targets: &[NodeTarget],
        links: Vec<LinkTarget>,
        samples: Vec<NodeSample>,
    ) {
        let n = targets.len();
        self.nodes.resize_with(n, NodeView::default);
        for b in self.blocks.values_mut() {
            b.seen.resize(n, None);
        }
        for t in targets {
            let v = &mut self.nodes[t.index];
            v.running = t.running;
            v.miner = t.miner;
            v.rpc_url = t.rpc_url.clone();
            v.p2p_addr = t.p2p_addr.clone();
        }
        for s in samples {
            for (id, height, prev) in s.headers {
                self.blocks.entry(id).or_insert(BlockView { height, prev, seen: vec![None; n] });
            }
            let v = &mut self.nodes[s.index];
            match s.info {
                Ok(info) => {
                    v.height = info["height"].as_u64().unwrap_or(0);
                    v.tip = info["tip"].as_str().unwrap_or("").to_string();
                    v.peers = info["peers"].as_u64().unwrap_or(0);
                    v.mempool = info["mempool_size"].as_u64().unwrap_or(0);
                    v.outbound = s.peers;
                    v.error = None;
                    // The node holds its tip and every ancestor of it.
                    let mut id = v.tip.clone();
                    while let Some(b) = self.blocks.get_mut(&id) {
                        if b.seen[s.index].is_some() {
                            break;
                        }
                        b.seen[s.index] = Some(now);
                        id = b.prev.clone();
                    }
                }
                Err(e) => {
                    v.peers = 0;
                    v.outbound.clear();
                    v.error = Some(e);
                }
            }
        }
        self.links = links;
        let best = self.blocks.values().map(|b| b.height).max().unwrap_or(0);
        self.blocks.retain(|_, b| b.height + KEEP_DEPTH >= best);
        self.updated_ms = now;
    }

    /// The JSON the dashboard and `status --json` show.
    pub fn to_json(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, v)| {
                json!({
                    "index": i,
                    "running": v.running,
                    "miner": v.miner,
                    "rpc_url": v.rpc_url,
                    "p2p_addr": v.p2p_addr,
                    "height": v.height,
                    "tip": v.tip,
                    "peers": v.peers,
                    "mempool": v.mempool,
                    "error": v.error,
                })
            })
            .collect();
        let links: Vec<Value> = self
            .links
            .iter()
            .map(|l| {
                let connected =
                    self.nodes.get(l.from).is_some_and(|v| v.outbound.contains(&l.proxy_addr));
                json!({
                    "from": l.from,
                    "to": l.to,
                    "proxy_addr": l.proxy_addr,
                    "connected": connected,
                    "partitioned": l.partitioned,
                    "latency_ms": l.latency_ms,
                    "loss_pct": l.loss_pct,
                })
            })
            .collect();
        let mut blocks: Vec<(&String, &BlockView)> = self.blocks.iter().collect();
        blocks.sort_by(|a, b| b.1.height.cmp(&a.1.height).then(a.0.cmp(b.0)));
        let blocks: Vec<Value> = blocks
            .into_iter()
            .map(|(id, b)| {
                let first = b.seen.iter().flatten().min().copied();
                let first_node = first.and_then(|f| b.seen.iter().position(|s| *s == Some(f)));
                let tip_of: Vec<usize> = self
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.running && v.error.is_none() && v.tip == *id)
                    .map(|(i, _)| i)
                    .collect();
                let propagation: Vec<Option<u64>> =
                    b.seen.iter().map(|s| s.zip(first).map(|(s, f)| s - f)).collect();
                json!({
                    "id": id,
                    "height": b.height,
                    "prev": b.prev,
                    "tip_of": tip_of,
                    "first_seen_ms": first,
                    "first_node": first_node,
                    "propagation_ms": propagation,
                })
            })
            .collect();
        json!({
            "updated_ms": self.updated_ms,
            "poll_interval_ms": POLL_INTERVAL.as_millis() as u64,
            "testnet": self.meta,
            "nodes": nodes,
            "links": links,
            "blocks": blocks,
        })
    }
}

/// Where the dashboard page comes from: embedded at build time, no front-end build step.
pub const DASHBOARD_HTML: &str = include_str!("dashboard.html");

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(n: usize) -> Vec<NodeTarget> {
        (0..n)
            .map(|index| NodeTarget {
                index,
                running: true,
                miner: false,
                rpc_url: String::new(),
                p2p_addr: String::new(),
            })
            .collect()
    }

    fn sample(index: usize, height: u64, tip: &str, headers: &[(&str, u64, &str)]) -> NodeSample {
        NodeSample {
            index,
            info: Ok(json!({ "height": height, "tip": tip, "peers": 1, "mempool_size": 0 })),
            peers: vec![],
            headers: headers.iter().map(|(i, h, p)| (i.to_string(), *h, p.to_string())).collect(),
        }
    }

    fn block<'a>(v: &'a Value, id: &str) -> &'a Value {
        v["blocks"].as_array().unwrap().iter().find(|b| b["id"] == id).unwrap()
    }

    #[test]
    fn a_block_reaches_a_node_when_its_tip_is_the_block_or_a_descendant() {
        let mut m = Monitor::new(json!({}));
        let t = targets(2);
        let t0 = 1_700_000_000_000;
        let samples = vec![sample(0, 0, "g", &[("g", 0, "")]), sample(1, 0, "g", &[])];
        m.update_at(t0, &t, vec![], samples);
        // Node 0 mines a and b; node 1 still has g.
        m.update_at(
            t0 + 250,
            &t,
            vec![],
            vec![sample(0, 2, "b", &[("b", 2, "a"), ("a", 1, "g")]), sample(1, 0, "g", &[])],
        );
        let v = m.to_json();
        assert_eq!(block(&v, "b")["tip_of"], json!([0]));
        assert_eq!(block(&v, "g")["tip_of"], json!([1]));
        assert_eq!(block(&v, "a")["propagation_ms"][1], Value::Null, "node 1 lacks a");
        assert_eq!(block(&v, "b")["first_seen_ms"], t0 + 250);
        // Node 1 jumps straight to b one poll later: it holds a too.
        m.update_at(t0 + 500, &t, vec![], vec![sample(0, 2, "b", &[]), sample(1, 2, "b", &[])]);
        let v = m.to_json();
        for id in ["a", "b"] {
            let p = &block(&v, id)["propagation_ms"];
            assert_eq!(p, &json!([0, 250]), "{id}: node 0 had it first, node 1 a poll later");
            assert_eq!(block(&v, id)["first_node"], 0);
        }
        assert_eq!(block(&v, "b")["tip_of"], json!([0, 1]));
        assert_eq!(v["blocks"][0]["id"], "b", "highest block first");
        assert_eq!(v["updated_ms"], t0 + 500);
    }

    #[test]
    fn a_stopped_node_is_shown_down_and_holds_no_tip() {
        let mut m = Monitor::new(json!({}));
        let mut t = targets(2);
        m.update(&t, vec![], vec![sample(0, 0, "g", &[("g", 0, "")]), sample(1, 0, "g", &[])]);
        t[1].running = false;
        let stopped =
            NodeSample { index: 1, info: Err("stopped".into()), peers: vec![], headers: vec![] };
        m.update(&t, vec![], vec![sample(0, 0, "g", &[]), stopped]);
        let v = m.to_json();
        assert_eq!(v["nodes"][1]["running"], false);
        assert_eq!(block(&v, "g")["tip_of"], json!([0]));
    }
}
