//! What `status` and the dashboard show of an exported network: the loopback testnet's
//! [`Monitor`] fed from the containers (`docker inspect`) and the nodes' RPC, and the same
//! page ([`DASHBOARD_HTML`]) served on a loopback port in the foreground.
//!
//! Propagation times come from the nodes' own `stored_at_us`, as on a loopback testnet:
//! containers share the host's clock. The page only reads (`GET /api/state`); faults are
//! made with the commands.

use super::{netem, Engine, P2P_PORT};
use crate::http::{Response, Server};
use crate::monitor::{
    Known, LinkTarget, Monitor, NodeSample, NodeTarget, DASHBOARD_HTML, POLL_INTERVAL,
};
use anyhow::Result;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One round of answers, gathered without the monitor's lock.
struct Round {
    targets: Vec<NodeTarget>,
    links: Vec<LinkTarget>,
    samples: Vec<NodeSample>,
    states: Vec<super::ContainerState>,
}

/// Asks Docker where every container is, then every running node (in parallel: a node
/// that does not answer costs one timeout, not one per node).
fn round(engine: &Engine, known: &Known) -> Result<Round> {
    let states = engine.containers()?;
    let faults = netem::load(engine).unwrap_or_default();
    let targets: Vec<NodeTarget> = engine
        .spec
        .nodes
        .iter()
        .zip(&states)
        .map(|(n, s)| NodeTarget {
            index: n.index,
            running: s.running,
            miner: n.miner,
            rpc_url: engine.rpc_url_of(n.index, s),
            p2p_addr: match s.networks.iter().find(|(_, ip)| !ip.is_empty()) {
                Some((_, ip)) if s.running => format!("{ip}:{P2P_PORT}"),
                _ => format!("{}:{P2P_PORT}", n.service),
            },
        })
        .collect();
    // The topology's links, then any other pair with latency or loss.
    let mut pairs: Vec<(usize, usize)> = engine.spec.links.iter().map(|l| (l.from, l.to)).collect();
    for f in &faults {
        if !pairs.iter().any(|&(x, y)| (x, y) == (f.a, f.b) || (x, y) == (f.b, f.a)) {
            pairs.push((f.a, f.b));
        }
    }
    let addrs = |i: usize| -> Vec<String> {
        let mut a = vec![format!("{}:{P2P_PORT}", engine.spec.nodes[i].service)];
        a.extend(states[i].networks.iter().map(|(_, ip)| format!("{ip}:{P2P_PORT}")));
        a
    };
    let links = pairs
        .into_iter()
        .map(|(from, to)| {
            let f = faults.iter().find(|f| (f.a, f.b) == (from.min(to), from.max(to)));
            LinkTarget {
                from,
                to,
                proxy_addr: format!("{}:{P2P_PORT}", engine.spec.nodes[to].service),
                partitioned: states[from].exists
                    && states[to].exists
                    && states[from].shared_network(&states[to]).is_none(),
                latency_ms: f.map_or(0, |f| f.latency_ms),
                loss_pct: f.map_or(0.0, |f| f.loss_pct),
                to_addrs: addrs(to),
                from_addrs: addrs(from),
            }
        })
        .collect();
    let samples = std::thread::scope(|s| {
        let handles: Vec<_> =
            targets.iter().map(|t| s.spawn(|| Monitor::sample(t, known))).collect();
        handles.into_iter().map(|h| h.join().expect("sampling a node does not panic")).collect()
    });
    Ok(Round { targets, links, samples, states })
}

/// Folds a round into the monitor; its JSON, with each node's container, Docker status,
/// health and networks added.
fn fold(engine: &Engine, monitor: &mut Monitor, r: Round) -> Value {
    monitor.update(&r.targets, r.links, r.samples);
    let mut view = monitor.to_json();
    if let Some(nodes) = view["nodes"].as_array_mut() {
        for (v, (n, s)) in nodes.iter_mut().zip(engine.spec.nodes.iter().zip(&r.states)) {
            v["container"] = json!(n.container);
            v["container_status"] = json!(s.status);
            v["health"] = json!(s.health);
            let nets: Vec<&str> = s.networks.iter().map(|(name, _)| name.as_str()).collect();
            v["networks"] = json!(nets);
        }
    }
    view
}

/// Polls every node once into `monitor`; the decorated JSON.
pub fn poll(engine: &Engine, monitor: &mut Monitor) -> Result<Value> {
    let r = round(engine, &monitor.known())?;
    Ok(fold(engine, monitor, r))
}

struct Shared {
    monitor: Mutex<Monitor>,
    view: Mutex<Value>,
    stop: AtomicBool,
}

/// The dashboard of an exported network, served on a loopback port until dropped.
pub struct Dashboard {
    shared: Arc<Shared>,
    server: Option<Server>,
    poller: Option<JoinHandle<()>>,
}

impl Dashboard {
    /// Polls once (so the first page already shows every node), then serves the page on
    /// `addr` (port 0 = from the OS) and polls every [`POLL_INTERVAL`].
    pub fn start(engine: Engine, addr: SocketAddr) -> Result<Dashboard> {
        let mut monitor = Monitor::new(engine.meta());
        let first = poll(&engine, &mut monitor)?;
        let shared = Arc::new(Shared {
            monitor: Mutex::new(monitor),
            view: Mutex::new(first),
            stop: AtomicBool::new(false),
        });
        let page = shared.clone();
        let server =
            Server::start(addr, move |req| match (req.method.as_str(), req.path.as_str()) {
                ("GET", "/") | ("GET", "/index.html") => Response::html(DASHBOARD_HTML),
                ("GET", "/api/state") => {
                    Response::json(200, &page.view.lock().expect("never poisoned"))
                }
                (_, "/") | (_, "/api/state") => Response::text(405, "method not allowed"),
                _ => Response::text(404, "not found"),
            })?;
        let bg = shared.clone();
        let poller = std::thread::Builder::new().name("engine-poller".into()).spawn(move || {
            while !bg.stop.load(Ordering::SeqCst) {
                std::thread::sleep(POLL_INTERVAL);
                let known = bg.monitor.lock().expect("never poisoned").known();
                let view = match round(&engine, &known) {
                    Ok(r) => fold(&engine, &mut bg.monitor.lock().expect("never poisoned"), r),
                    Err(e) => {
                        // Keep the last view, saying why it is not fresh.
                        let mut v = bg.view.lock().expect("never poisoned").clone();
                        v["error"] = json!(format!("{e:#}"));
                        v
                    }
                };
                *bg.view.lock().expect("never poisoned") = view;
            }
        })?;
        Ok(Dashboard { shared, server: Some(server), poller: Some(poller) })
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.server.as_ref().map(Server::addr).expect("set until dropped"))
    }

    /// The latest polled view.
    pub fn view(&self) -> Value {
        self.shared.view.lock().expect("never poisoned").clone()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.server.take();
        if let Some(p) = self.poller.take() {
            let _ = p.join();
        }
    }
}
