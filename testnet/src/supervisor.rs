//! The supervisor: the one process that owns a running testnet — its node processes (it is
//! their parent and reaps them), its link proxies, the poller behind the dashboard, and a
//! loopback HTTP endpoint that serves
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the dashboard page ([`crate::monitor::DASHBOARD_HTML`]) |
//! | `GET /api/state` | the polled view as JSON (what the page and `status` show) |
//! | `POST /api/control` | a [`Control`] command as JSON, with the token header |
//!
//! `ember-testnet up` runs it in the foreground; `up --detach` runs it as a background
//! process (`ember-testnet supervise`). Other commands find it through the state file.
//! The token (from the 0600 state file) keeps other local users and web pages from
//! changing the network: a browser cannot send a custom header cross-origin without a
//! preflight that this server never grants.

use crate::http::{Request, Response, Server};
use crate::monitor::{LinkTarget, Monitor, NodeTarget, DASHBOARD_HTML, POLL_INTERVAL};
use crate::network::{rand_u64, Progress, Testnet, TestnetOptions};
use crate::state::{LinkRecord, NodeRecord, TestnetState};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The header that carries the control token.
pub const TOKEN_HEADER: &str = "X-Ember-Testnet-Token";

/// A command to the supervisor (the body of `POST /api/control`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Control {
    Stop { node: usize },
    Start { node: usize },
    Restart { node: usize },
    Kill { node: usize },
    Partition { groups: Vec<Vec<usize>> },
    Heal,
    Latency { a: usize, b: usize, ms: u64 },
    Loss { a: usize, b: usize, pct: f64 },
    Mine { node: usize, count: u64 },
    Down,
}

struct Inner {
    net: Mutex<Testnet>,
    monitor: Mutex<Monitor>,
    state: Mutex<TestnetState>,
    /// Held for a whole poll, so that a poll started before a command cannot overwrite
    /// the view of the poll made after it.
    polling: Mutex<()>,
    /// Set by `down` or by the owner; the run loop then shuts everything down.
    shutdown: AtomicBool,
}

/// A running supervisor. [`Supervisor::shutdown`] (or dropping it) stops everything.
pub struct Supervisor {
    inner: Arc<Inner>,
    server: Option<Server>,
    poller: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Starts the testnet, the poller and the HTTP endpoint on `control_addr` (port 0 = from
    /// the OS), then writes the state file.
    pub fn start(
        opts: &TestnetOptions,
        control_addr: SocketAddr,
        progress: impl FnMut(Progress<'_>),
    ) -> Result<Supervisor> {
        // Check every fixed port before starting anything, so a taken one fails fast.
        opts.check_ports()?;
        let listener_probe = std::net::TcpListener::bind(control_addr).with_context(|| {
            format!("cannot listen on {control_addr} for the dashboard; pick another --base-port")
        })?;
        drop(listener_probe);
        let net = Testnet::start(opts, progress)?;
        let meta = json!({
            "dir": opts.dir,
            "topology": net.topology.name(),
            "block_time_secs": opts.block_time_secs,
        });
        let token = format!("{:016x}{:016x}", rand_u64(), rand_u64());
        let state = TestnetState {
            supervisor_pid: std::process::id(),
            control_addr: String::new(),
            dashboard_url: String::new(),
            token: token.clone(),
            dir: opts.dir.clone(),
            genesis: net.genesis.clone(),
            topology: net.topology.name().to_string(),
            block_time_secs: opts.block_time_secs,
            nodes: Vec::new(),
            links: Vec::new(),
        };
        let inner = Arc::new(Inner {
            net: Mutex::new(net),
            monitor: Mutex::new(Monitor::new(meta)),
            state: Mutex::new(state),
            polling: Mutex::new(()),
            shutdown: AtomicBool::new(false),
        });
        // One poll before serving, so the first page load already shows every node.
        poll_once(&inner);
        let handler_inner = inner.clone();
        let server = Server::start(control_addr, move |req| handle(&handler_inner, req, &token))?;
        {
            let mut st = inner.state.lock().expect("never poisoned");
            st.control_addr = server.addr().to_string();
            st.dashboard_url = format!("http://{}/", server.addr());
        }
        refresh_state(&inner)?;
        let poll_inner = inner.clone();
        let poller = std::thread::Builder::new().name("poller".into()).spawn(move || {
            while !poll_inner.shutdown.load(Ordering::SeqCst) {
                poll_once(&poll_inner);
                std::thread::sleep(POLL_INTERVAL);
            }
        })?;
        Ok(Supervisor { inner, server: Some(server), poller: Some(poller) })
    }

    pub fn state(&self) -> TestnetState {
        self.inner.state.lock().expect("never poisoned").clone()
    }

    /// The dashboard JSON.
    pub fn view(&self) -> Value {
        self.inner.monitor.lock().expect("never poisoned").to_json()
    }

    /// Whether a `down` command (or [`Supervisor::request_shutdown`]) asked to stop.
    pub fn shutdown_requested(&self) -> bool {
        self.inner.shutdown.load(Ordering::SeqCst)
    }

    pub fn request_shutdown(&self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
    }

    /// Runs `cmd` as the control endpoint would.
    pub fn control(&self, cmd: Control) -> Result<String> {
        apply(&self.inner, cmd)
    }

    /// Stops the endpoint and the poller, stops every node cleanly, closes the proxies and
    /// removes the state file.
    pub fn shutdown(mut self) -> Result<()> {
        self.shutdown_inner()
    }

    fn shutdown_inner(&mut self) -> Result<()> {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        self.server.take();
        if let Some(p) = self.poller.take() {
            let _ = p.join();
        }
        let result = self.inner.net.lock().expect("never poisoned").stop();
        let dir = self.inner.state.lock().expect("never poisoned").dir.clone();
        let _ = std::fs::remove_file(TestnetState::path(&dir));
        result
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if self.server.is_some() || self.poller.is_some() {
            let _ = self.shutdown_inner();
        }
    }
}

/// Polls every node once and folds the answers into the monitor.
fn poll_once(inner: &Inner) {
    let _polling = inner.polling.lock().expect("never poisoned");
    let (targets, links) = {
        let mut net = inner.net.lock().expect("never poisoned");
        let miners = net.miners().to_vec();
        let targets: Vec<NodeTarget> = (0..net.len())
            .map(|i| NodeTarget {
                index: i,
                running: net.is_running(i),
                miner: miners.contains(&i),
                rpc_url: net.node(i).rpc_url().to_string(),
                p2p_addr: net.node(i).p2p_addr(),
            })
            .collect();
        let links: Vec<LinkTarget> = net
            .links()
            .iter()
            .map(|l| {
                let f = l.faults();
                LinkTarget {
                    from: l.from,
                    to: l.to,
                    proxy_addr: l.proxy_addr().to_string(),
                    partitioned: f.partitioned,
                    latency_ms: f.latency_ms,
                    loss_pct: f.loss_pct,
                    to_addrs: Vec::new(),
                    from_addrs: Vec::new(),
                }
            })
            .collect();
        (targets, links)
    };
    // Sample without holding any lock: a slow node must not stall the page or commands.
    let known = inner.monitor.lock().expect("never poisoned").known();
    let samples: Vec<_> = targets.iter().map(|t| Monitor::sample(t, &known)).collect();
    inner.monitor.lock().expect("never poisoned").update(&targets, links, samples);
}

/// Rewrites the state file from the testnet (after any change to a node's process).
fn refresh_state(inner: &Inner) -> Result<()> {
    let mut net = inner.net.lock().expect("never poisoned");
    let miners = net.miners().to_vec();
    let nodes: Vec<NodeRecord> = (0..net.len())
        .map(|i| {
            let running = net.is_running(i);
            let n = net.node(i);
            NodeRecord {
                index: i,
                pid: if running { n.pid() } else { None },
                running,
                miner: miners.contains(&i),
                data_dir: n.data_dir().to_path_buf(),
                log: n.data_dir().join("node.log"),
                rpc_url: n.rpc_url().to_string(),
                p2p_addr: n.p2p_addr(),
                args: n.args().to_vec(),
            }
        })
        .collect();
    let links = net
        .links()
        .iter()
        .map(|l| LinkRecord { from: l.from, to: l.to, proxy_addr: l.proxy_addr().to_string() })
        .collect();
    drop(net);
    let mut st = inner.state.lock().expect("never poisoned");
    st.nodes = nodes;
    st.links = links;
    st.save()
}

fn handle(inner: &Inner, req: Request, token: &str) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/") | ("GET", "/index.html") => Response::html(DASHBOARD_HTML),
        ("GET", "/api/state") => {
            Response::json(200, &inner.monitor.lock().expect("never poisoned").to_json())
        }
        ("POST", "/api/control") => {
            if req.header(TOKEN_HEADER) != Some(token) {
                return Response::json(403, &json!({ "error": "missing or wrong control token" }));
            }
            let cmd: Control = match serde_json::from_slice(&req.body) {
                Ok(c) => c,
                Err(e) => {
                    return Response::json(400, &json!({ "error": format!("bad command: {e}") }))
                }
            };
            match apply(inner, cmd) {
                Ok(message) => Response::json(200, &json!({ "ok": true, "message": message })),
                Err(e) => Response::json(400, &json!({ "error": format!("{e:#}") })),
            }
        }
        (_, "/") | (_, "/api/state") | (_, "/api/control") => {
            Response::text(405, "method not allowed")
        }
        _ => Response::text(404, "not found"),
    }
}

/// Carries out one control command. Every check happens before anything changes.
fn apply(inner: &Inner, cmd: Control) -> Result<String> {
    if inner.shutdown.load(Ordering::SeqCst) {
        bail!("the testnet is shutting down");
    }
    let mut net = inner.net.lock().expect("never poisoned");
    let msg = match cmd {
        Control::Stop { node } => {
            net.check_index(node)?;
            if !net.is_running(node) {
                bail!("node {node} is not running");
            }
            let clean = net.stop_node(node)?;
            format!(
                "node {node} stopped{}",
                if clean { "" } else { " (forcibly, it did not exit cleanly)" }
            )
        }
        Control::Start { node } => {
            net.start_node(node)?;
            format!("node {node} started (pid {})", net.node(node).pid().unwrap_or(0))
        }
        Control::Restart { node } => {
            net.restart_node(node)?;
            format!("node {node} restarted (pid {})", net.node(node).pid().unwrap_or(0))
        }
        Control::Kill { node } => {
            net.check_index(node)?;
            if !net.is_running(node) {
                bail!("node {node} is not running");
            }
            net.kill(node)?;
            format!("node {node} killed (SIGKILL)")
        }
        Control::Partition { groups } => {
            let refs: Vec<&[usize]> = groups.iter().map(Vec::as_slice).collect();
            net.partition(&refs)?;
            let spec: Vec<String> = groups
                .iter()
                .map(|g| g.iter().map(usize::to_string).collect::<Vec<_>>().join(","))
                .collect();
            format!("partitioned into {}", spec.join(" / "))
        }
        Control::Heal => {
            net.heal();
            "every link healed".to_string()
        }
        Control::Latency { a, b, ms } => {
            net.set_latency(a, b, ms)?;
            format!("link {a}-{b}: {ms} ms latency each way")
        }
        Control::Loss { a, b, pct } => {
            net.set_loss(a, b, pct)?;
            format!("link {a}-{b}: {pct}% of chunks delayed by a retransmission timeout")
        }
        Control::Mine { node, count } => {
            net.check_index(node)?;
            if !net.is_running(node) {
                bail!("node {node} is not running; `ember-testnet start {node}` first");
            }
            let ids = net.mine(node, count)?;
            format!("node {node} mined {} block(s): {}", ids.len(), ids.join(" "))
        }
        Control::Down => {
            inner.shutdown.store(true, Ordering::SeqCst);
            return Ok("stopping every node and the supervisor".to_string());
        }
    };
    drop(net);
    refresh_state(inner)?;
    // So that `status` right after a command already shows its effect.
    poll_once(inner);
    Ok(msg)
}

/// Sends `cmd` to the supervisor of `state` and returns its message.
pub fn send_control(state: &TestnetState, cmd: &Control) -> Result<String> {
    let body = serde_json::to_vec(cmd)?;
    let (status, text) = crate::http::request(
        &state.control_addr,
        "POST",
        "/api/control",
        &[(TOKEN_HEADER, &state.token), ("Content-Type", "application/json")],
        &body,
        std::time::Duration::from_secs(120),
    )?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("unexpected answer from the supervisor: {text}"))?;
    if status != 200 {
        bail!("{}", v["error"].as_str().unwrap_or(&text));
    }
    Ok(v["message"].as_str().unwrap_or("").to_string())
}

/// Fetches the dashboard JSON from the supervisor of `state`.
pub fn fetch_view(state: &TestnetState) -> Result<Value> {
    let (status, text) = crate::http::request(
        &state.control_addr,
        "GET",
        "/api/state",
        &[],
        &[],
        std::time::Duration::from_secs(10),
    )?;
    if status != 200 {
        bail!("the supervisor answered {status}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}
