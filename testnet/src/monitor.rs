//! What the dashboard shows, gathered by polling every node's RPC (the page never talks
//! to the nodes itself): height, tip, peers and mempool of each node, which links are up,
//! a tree of recent blocks, and how long each block took to reach every node.
//!
//! Propagation comes from the nodes' own records: every node notes when it stored each
//! block (`chain_getHeader.stored_at_us`, unix µs), and all nodes of a testnet share this
//! host's clock, so a block's propagation to node `i` is node `i`'s stored time minus the
//! earliest stored time of any node — microseconds, not the poll interval. The poller asks
//! each node once per block it newly holds, walking back from the node's tip, at most
//! [`HEADERS_PER_POLL`] header calls per node per poll (a long catch-up is spread over
//! several polls). A node holds a block from the first poll where its tip is that block or
//! a descendant (a node that receives two blocks between polls never has the first as its
//! tip, yet clearly holds it); one that stored it before it started has no stored time and
//! is shown as holding it, without a number.

use ember_wallet::rpc::RpcClient;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the supervisor polls the nodes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Blocks further than this below the best height are forgotten, unless they are above the
/// running nodes' fork point.
const KEEP_DEPTH: u64 = 30;
/// At most this many blocks are kept, however old the fork point of the nodes' tips.
const MAX_BLOCKS: usize = 1_000;
/// At most this many `chain_getHeader` calls per node per poll, so a poll stays short
/// however far a node jumped.
pub const HEADERS_PER_POLL: usize = 8;

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
    /// Other addresses under which `from` may list `to` among its outbound peers (an
    /// engine's nodes dial by service name and may report the resolved IP); empty for a
    /// proxy link, where `proxy_addr` is the one.
    pub to_addrs: Vec<String>,
    /// Addresses under which `to` may list `from` when it was `to` that dialed (discovery
    /// on an engine's network); empty for a proxy link.
    pub from_addrs: Vec<String>,
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
    /// Unix ms of the first poll at which each node held the block.
    seen: Vec<Option<u64>>,
    /// Unix µs at which each node stored the block, by its own record.
    stored_us: Vec<Option<u64>>,
    /// Whether each node has been asked for its stored time (once is enough: it never
    /// changes, and a node without a record keeps having none).
    asked: Vec<bool>,
}

impl BlockView {
    fn new(height: u64, prev: String, n: usize) -> BlockView {
        BlockView {
            height,
            prev,
            seen: vec![None; n],
            stored_us: vec![None; n],
            asked: vec![false; n],
        }
    }
}

/// What the poller needs of one known block to walk past it without an RPC call.
#[derive(Debug, Clone)]
pub struct KnownBlock {
    height: u64,
    prev: String,
    asked: Vec<bool>,
}

/// The blocks the monitor knows, copied out for [`Monitor::sample`] (which runs without
/// the monitor's lock).
pub type Known = HashMap<String, KnownBlock>;

/// One header a node answered: the block and when that node stored it.
#[derive(Debug, Clone)]
struct HeaderSample {
    id: String,
    height: u64,
    prev: String,
    stored_at_us: Option<u64>,
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
    /// Headers of blocks the node holds and had not been asked about.
    headers: Vec<HeaderSample>,
}

impl Monitor {
    /// `meta` is served as is (directory, topology, ...).
    pub fn new(meta: Value) -> Monitor {
        Monitor { meta, ..Monitor::default() }
    }

    /// Asks node `t` for its state, and for the headers (with its stored time) of its tip's
    /// recent ancestors it has not been asked about: walking back from the tip, blocks in
    /// `known` that it was asked about are passed without a call, and at most
    /// [`HEADERS_PER_POLL`] headers are fetched.
    pub fn sample(t: &NodeTarget, known: &Known) -> NodeSample {
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
            if id.is_empty() {
                break;
            }
            let (height, prev) = match known.get(&id) {
                Some(k) if k.asked.get(t.index) == Some(&true) => (k.height, k.prev.clone()),
                _ => {
                    if s.headers.len() == HEADERS_PER_POLL {
                        break;
                    }
                    let Ok(h) = c.call("chain_getHeader", json!([id])) else { break };
                    let height = h["height"].as_u64().unwrap_or(0);
                    let prev = h["prev"].as_str().unwrap_or("").to_string();
                    let stored_at_us = h["stored_at_us"].as_u64();
                    s.headers.push(HeaderSample { id, height, prev: prev.clone(), stored_at_us });
                    (height, prev)
                }
            };
            if height == 0 {
                break;
            }
            id = prev;
        }
        s
    }

    /// The blocks the monitor knows (to pass to [`Monitor::sample`]).
    pub fn known(&self) -> Known {
        self.blocks
            .iter()
            .map(|(id, b)| {
                let k =
                    KnownBlock { height: b.height, prev: b.prev.clone(), asked: b.asked.clone() };
                (id.clone(), k)
            })
            .collect()
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
            b.stored_us.resize(n, None);
            b.asked.resize(n, false);
        }
        for t in targets {
            let v = &mut self.nodes[t.index];
            v.running = t.running;
            v.miner = t.miner;
            v.rpc_url = t.rpc_url.clone();
            v.p2p_addr = t.p2p_addr.clone();
        }
        for s in samples {
            for h in s.headers {
                let b =
                    self.blocks.entry(h.id).or_insert_with(|| BlockView::new(h.height, h.prev, n));
                b.stored_us[s.index] = h.stored_at_us;
                b.asked[s.index] = true;
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
        // Recent blocks, and every block from the nodes' fork point up (a long partition's
        // branches stay joined in the tree), but never more than MAX_BLOCKS.
        let fork = self.fork_height().unwrap_or(best);
        let floor = (best.saturating_sub(KEEP_DEPTH))
            .min(fork.saturating_sub(2))
            .max(best.saturating_sub(MAX_BLOCKS as u64));
        self.blocks.retain(|_, b| b.height >= floor);
        self.updated_ms = now;
    }

    /// Height of the newest block every running node's tip descends from, as far as the
    /// kept blocks tell (`None` when their chains do not meet among them).
    fn fork_height(&self) -> Option<u64> {
        let tips: Vec<&str> = self
            .nodes
            .iter()
            .filter(|v| v.running && v.error.is_none() && !v.tip.is_empty())
            .map(|v| v.tip.as_str())
            .collect();
        let mut count: HashMap<&str, usize> = HashMap::new();
        for tip in &tips {
            let mut id: &str = tip;
            // Each walk visits a kept block at most once: at most MAX_BLOCKS steps.
            while let Some(b) = self.blocks.get(id) {
                *count.entry(id).or_default() += 1;
                id = &b.prev;
            }
        }
        count
            .iter()
            .filter(|(_, n)| **n == tips.len())
            .filter_map(|(id, _)| self.blocks.get(*id).map(|b| b.height))
            .max()
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
                let dials = |from: usize, addrs: &[String]| {
                    self.nodes
                        .get(from)
                        .is_some_and(|v| addrs.iter().any(|a| v.outbound.contains(a)))
                };
                let connected = dials(l.from, std::slice::from_ref(&l.proxy_addr))
                    || dials(l.from, &l.to_addrs)
                    || dials(l.to, &l.from_addrs);
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
                let first_seen = b.seen.iter().flatten().min().copied();
                let first_stored = b.stored_us.iter().flatten().min().copied();
                // The first node to store it, by the nodes' records; by the polls only
                // when no node has a record.
                let first_node = match first_stored {
                    Some(f) => b.stored_us.iter().position(|s| *s == Some(f)),
                    None => first_seen.and_then(|f| b.seen.iter().position(|s| *s == Some(f))),
                };
                let tip_of: Vec<usize> = self
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.running && v.error.is_none() && v.tip == *id)
                    .map(|(i, _)| i)
                    .collect();
                let held: Vec<bool> = (0..b.seen.len())
                    .map(|i| b.seen[i].is_some() || b.stored_us[i].is_some())
                    .collect();
                // µs apart on one host clock, served in ms (three decimals).
                let propagation: Vec<Option<f64>> = b
                    .stored_us
                    .iter()
                    .map(|s| s.zip(first_stored).map(|(s, f)| (s - f) as f64 / 1000.0))
                    .collect();
                json!({
                    "id": id,
                    "height": b.height,
                    "prev": b.prev,
                    "tip_of": tip_of,
                    "held": held,
                    "first_seen_ms": first_seen,
                    "first_node": first_node,
                    "stored_at_us": b.stored_us,
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

    /// A node's answers: `headers` are (id, height, prev, stored_at_us).
    fn sample(
        index: usize,
        height: u64,
        tip: &str,
        headers: &[(&str, u64, &str, Option<u64>)],
    ) -> NodeSample {
        NodeSample {
            index,
            info: Ok(json!({ "height": height, "tip": tip, "peers": 1, "mempool_size": 0 })),
            peers: vec![],
            headers: headers
                .iter()
                .map(|(i, h, p, at)| HeaderSample {
                    id: i.to_string(),
                    height: *h,
                    prev: p.to_string(),
                    stored_at_us: *at,
                })
                .collect(),
        }
    }

    fn block<'a>(v: &'a Value, id: &str) -> &'a Value {
        v["blocks"].as_array().unwrap().iter().find(|b| b["id"] == id).unwrap()
    }

    #[test]
    fn propagation_is_each_nodes_stored_time_after_the_first_in_ms() {
        let mut m = Monitor::new(json!({}));
        let t = targets(3);
        let t0 = 1_700_000_000_000;
        let us = t0 * 1000;
        // Genesis: no node has a record of storing it (they all started with it).
        let g = [("g", 0, "", None)];
        m.update_at(t0, &t, vec![], vec![sample(0, 0, "g", &g), sample(1, 0, "g", &g)]);
        // Node 0 mines a and b; node 1 still has g; node 2 has not answered yet.
        let mined = [("b", 2, "a", Some(us + 100)), ("a", 1, "g", Some(us + 50))];
        m.update_at(t0 + 250, &t, vec![], vec![sample(0, 2, "b", &mined), sample(1, 0, "g", &[])]);
        let v = m.to_json();
        assert_eq!(block(&v, "b")["tip_of"], json!([0]));
        assert_eq!(block(&v, "g")["tip_of"], json!([1]));
        assert_eq!(block(&v, "a")["propagation_ms"], json!([0.0, null, null]), "only node 0");
        assert_eq!(block(&v, "a")["held"], json!([true, false, false]));
        assert_eq!(block(&v, "b")["first_seen_ms"], t0 + 250);
        // Both others store both blocks within the same poll interval: the records, not
        // the polls, tell them apart, to the microsecond.
        let n1 = [("b", 2, "a", Some(us + 1_334)), ("a", 1, "g", Some(us + 1_250))];
        let n2 = [("b", 2, "a", Some(us + 2_600)), ("a", 1, "g", Some(us + 2_550))];
        m.update_at(
            t0 + 500,
            &t,
            vec![],
            vec![sample(0, 2, "b", &[]), sample(1, 2, "b", &n1), sample(2, 2, "b", &n2)],
        );
        let v = m.to_json();
        assert_eq!(block(&v, "a")["propagation_ms"], json!([0.0, 1.2, 2.5]));
        assert_eq!(block(&v, "b")["propagation_ms"], json!([0.0, 1.234, 2.5]));
        assert_eq!(block(&v, "b")["stored_at_us"], json!([us + 100, us + 1_334, us + 2_600]));
        for id in ["a", "b"] {
            assert_eq!(block(&v, id)["first_node"], 0, "{id}: node 0 stored it first");
        }
        // Genesis: held by all, with no number (node 2 holds it as an ancestor of b).
        assert_eq!(block(&v, "g")["held"], json!([true, true, true]));
        assert_eq!(block(&v, "g")["propagation_ms"], json!([null, null, null]));
        assert_eq!(block(&v, "b")["tip_of"], json!([0, 1, 2]));
        assert_eq!(v["blocks"][0]["id"], "b", "highest block first");
        assert_eq!(v["updated_ms"], t0 + 500);
    }

    #[test]
    fn a_fork_deeper_than_the_kept_depth_stays_joined_to_both_branches() {
        let mut m = Monitor::new(json!({}));
        let t = targets(2);
        // Both nodes at block f (height 5), then node 0 grows a branch 60 blocks long and
        // node 1 one of 3, both from f: the fork point is 60 below the best height.
        let names: Vec<String> = (0..=60).map(|i| format!("a{i}")).collect();
        let f = [("f", 5, "e", None)];
        m.update(&t, vec![], vec![sample(0, 5, "f", &f), sample(1, 5, "f", &f)]);
        for i in 1..=60usize {
            let prev = if i == 1 { "f" } else { names[i - 1].as_str() };
            let h = [(names[i].as_str(), 5 + i as u64, prev, None)];
            let b1: Vec<(&str, u64, &str, Option<u64>)> = match i {
                1 => vec![("b1", 6, "f", None)],
                2 => vec![("b2", 7, "b1", None)],
                _ => vec![],
            };
            let tip1 = if i == 1 { "b1" } else { "b2" };
            let h1 = if i == 1 { 6 } else { 7 };
            m.update(
                &t,
                vec![],
                vec![sample(0, 5 + i as u64, &names[i], &h), sample(1, h1, tip1, &b1)],
            );
        }
        let v = m.to_json();
        for id in ["f", "a1", "a60", "b1", "b2"] {
            assert!(v["blocks"].as_array().unwrap().iter().any(|b| b["id"] == id), "{id} dropped");
        }
        // Healed: node 1 on node 0's branch; the old branch's blocks go once deep enough.
        let h = [("a61", 66, "a60", None)];
        for _ in 0..2 {
            m.update(&t, vec![], vec![sample(0, 66, "a61", &h), sample(1, 66, "a61", &h)]);
        }
        let v = m.to_json();
        assert!(!v["blocks"].as_array().unwrap().iter().any(|b| b["id"] == "b2"), "kept forever");
    }

    #[test]
    fn a_node_is_asked_once_per_block_and_the_walk_passes_asked_blocks() {
        let mut m = Monitor::new(json!({}));
        let t = targets(2);
        let h = [("b", 2, "a", Some(7)), ("a", 1, "g", Some(5)), ("g", 0, "", None)];
        m.update(&t, vec![], vec![sample(0, 2, "b", &h)]);
        let known = m.known();
        assert!(["a", "b", "g"].iter().all(|id| known[*id].asked == [true, false]));
        assert_eq!((known["b"].height, known["b"].prev.as_str()), (2, "a"));
        // Node 1 answers about its tip only (its budget ran out, say).
        m.update(&t, vec![], vec![sample(0, 2, "b", &[]), sample(1, 2, "b", &h[..1])]);
        let known = m.known();
        assert_eq!(known["b"].asked, [true, true]);
        assert_eq!(known["a"].asked, [true, false], "node 1 was not asked about a yet");
        assert_eq!(block(&m.to_json(), "a")["held"], json!([true, true]));
    }

    #[test]
    fn a_stopped_node_is_shown_down_and_holds_no_tip() {
        let mut m = Monitor::new(json!({}));
        let mut t = targets(2);
        m.update(
            &t,
            vec![],
            vec![sample(0, 0, "g", &[("g", 0, "", None)]), sample(1, 0, "g", &[])],
        );
        t[1].running = false;
        let stopped =
            NodeSample { index: 1, info: Err("stopped".into()), peers: vec![], headers: vec![] };
        m.update(&t, vec![], vec![sample(0, 0, "g", &[]), stopped]);
        let v = m.to_json();
        assert_eq!(v["nodes"][1]["running"], false);
        assert_eq!(block(&v, "g")["tip_of"], json!([0]));
    }

    #[test]
    fn an_engine_link_is_up_whichever_end_dialed_and_under_any_of_its_addresses() {
        let link = |from: usize, to: usize| LinkTarget {
            from,
            to,
            proxy_addr: format!("node{to}:9545"),
            partitioned: false,
            latency_ms: 0,
            loss_pct: 0.0,
            to_addrs: vec![format!("172.18.0.{}:9545", 10 + to)],
            from_addrs: vec![format!("172.18.0.{}:9545", 10 + from)],
        };
        let with_outbound = |index: usize, peers: &[&str]| NodeSample {
            peers: peers.iter().map(|p| p.to_string()).collect(),
            ..sample(index, 0, "g", &[])
        };
        let mut m = Monitor::new(json!({}));
        let samples = vec![
            // 1 dialed 0 and reports its resolved address; 2 was dialed by 3 (discovery).
            with_outbound(0, &[]),
            with_outbound(1, &["172.18.0.10:9545"]),
            with_outbound(2, &[]),
            with_outbound(3, &["172.18.0.12:9545"]),
        ];
        m.update(&targets(4), vec![link(1, 0), link(2, 3), link(0, 2)], samples);
        let connected: Vec<bool> = m.to_json()["links"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["connected"] == true)
            .collect();
        assert_eq!(connected, [true, true, false]);
    }
}
