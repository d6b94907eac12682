//! Attaching to a network that an engine runs: the containers of an `ember-testnet export
//! compose` directory, started by `docker-compose`. When `--dir DIR` holds `engine.json`,
//! `status`, `kill`, `start`, `stop`, `restart`, `partition`, `heal`, `latency`, `loss`,
//! `mine`, `logs`, `down` and `dashboard` act on the containers, with the same syntax as on
//! a loopback testnet. Ember starts nothing here: docker and docker-compose do, when asked.
//!
//! | concern | how | where |
//! |---|---|---|
//! | a node's state | `docker inspect` of its fixed container name, then its RPC | [`Engine::containers`], [`Engine::view`] |
//! | kill, stop, start, restart | `docker kill/stop/start/restart` | here |
//! | partition, heal | moving containers between bridge networks | [`networks`] |
//! | latency, loss | `tc netem` inside the containers (needs the kernel's sch_netem) | [`netem`] |
//! | mine | RPC `mining_generate` with the token of `DIR/rpc_token` | [`Engine::mine`] |
//! | the dashboard | the loopback testnet's page and poller, fed from here | [`watch`] |
//!
//! Node RPC URLs are the ports published on 127.0.0.1 (Docker keeps publishing them while a
//! container is moved to another network, checked on Docker 20.10); when a node has none,
//! or it does not answer, its container's current IP is used, which a Linux host reaches
//! directly.

use crate::monitor::Monitor;
use anyhow::{anyhow, bail, Context, Result};
use ember_wallet::rpc::RpcClient;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub mod netem;
pub mod networks;
pub mod watch;

/// The description of an exported network, inside its directory.
pub const ENGINE_FILE: &str = "engine.json";
/// Every node's RPC port inside its container.
pub const RPC_PORT: u16 = 8545;
/// Every node's P2P port inside its container.
pub const P2P_PORT: u16 = 9545;

/// One node of an exported network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineNode {
    pub index: usize,
    /// Compose service name, also the node's DNS name on the project's networks.
    pub service: String,
    /// Fixed container name (`<project>-node<i>`).
    pub container: String,
    /// Named volume holding the node's /data.
    pub volume: String,
    /// The RPC as published on the host, when it is.
    pub rpc_url: Option<String>,
    pub miner: bool,
}

/// A link of the exported topology: `from` dials `to` (by service name).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkSpec {
    pub from: usize,
    pub to: usize,
}

/// `DIR/engine.json`: what `ember-testnet export` wrote, for the commands that attach.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineSpec {
    /// `compose` (the one engine that can be attached to).
    pub engine: String,
    pub project: String,
    pub compose_file: PathBuf,
    /// The project's bridge network, named explicitly in the compose file.
    pub network: String,
    pub image: String,
    pub topology: String,
    pub block_time_secs: f64,
    /// Node i's RPC is published on 127.0.0.1:base_port+i (0 = not published).
    pub base_port: u16,
    pub nodes: Vec<EngineNode>,
    pub links: Vec<LinkSpec>,
    pub token_file: PathBuf,
    pub genesis: PathBuf,
}

impl EngineSpec {
    /// Writes `dir/engine.json`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(ENGINE_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// What `docker inspect` says of one node's container.
#[derive(Debug, Clone, Default)]
pub struct ContainerState {
    pub exists: bool,
    pub running: bool,
    /// Docker's word: created, running, exited, ... or `missing`.
    pub status: String,
    /// The image's health check: starting, healthy or unhealthy.
    pub health: Option<String>,
    pub exit_code: Option<i64>,
    /// (network, IPv4 address) of every network the container is on.
    pub networks: Vec<(String, String)>,
}

impl ContainerState {
    /// The container's address on `network`, if it is on it.
    pub fn ip_on(&self, network: &str) -> Option<&str> {
        self.networks.iter().find(|(n, _)| n == network).map(|(_, ip)| ip.as_str())
    }

    /// The first network both containers are on.
    pub fn shared_network<'a>(&'a self, other: &ContainerState) -> Option<&'a str> {
        self.networks
            .iter()
            .map(|(n, _)| n.as_str())
            .find(|n| other.ip_on(n).is_some_and(|ip| !ip.is_empty()))
    }
}

/// An exported compose network, attached through its directory.
#[derive(Debug, Clone)]
pub struct Engine {
    pub dir: PathBuf,
    pub spec: EngineSpec,
    token: String,
}

impl Engine {
    /// The exported network in `dir`, or `None` when `dir` holds no `engine.json`.
    pub fn find(dir: &Path) -> Result<Option<Engine>> {
        let path = dir.join(ENGINE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let spec: EngineSpec = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an ember-testnet engine file", path.display()))?;
        if spec.engine != "compose" {
            bail!(
                "{} describes a {:?} network; ember-testnet attaches to compose exports only \
                 (drive Kubernetes with kubectl)",
                path.display(),
                spec.engine
            );
        }
        let token = std::fs::read_to_string(&spec.token_file)
            .with_context(|| {
                format!(
                    "cannot read the RPC token {}; export the network again",
                    spec.token_file.display()
                )
            })?
            .trim()
            .to_string();
        Ok(Some(Engine { dir: dir.to_path_buf(), spec, token }))
    }

    /// The exported network in `dir`, or an error saying how to make one.
    pub fn load(dir: &Path) -> Result<Engine> {
        Engine::find(dir)?.ok_or_else(|| {
            anyhow!(
                "{} holds no exported network (no {ENGINE_FILE}); write one with \
                 `ember-testnet export compose {}`",
                dir.display(),
                dir.display()
            )
        })
    }

    pub fn len(&self) -> usize {
        self.spec.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spec.nodes.is_empty()
    }

    /// Fails unless `i` is a node index.
    pub fn check_index(&self, i: usize) -> Result<()> {
        if i >= self.len() {
            bail!("there is no node {i}: this network has nodes 0..{}", self.len() - 1);
        }
        Ok(())
    }

    pub fn container(&self, i: usize) -> &str {
        &self.spec.nodes[i].container
    }

    /// The command that starts the network, for messages.
    pub fn up_command(&self) -> String {
        format!(
            "docker-compose -p {} -f {} up -d",
            self.spec.project,
            self.spec.compose_file.display()
        )
    }

    /// Every node's container, in node order (missing ones as `exists: false`).
    pub fn containers(&self) -> Result<Vec<ContainerState>> {
        let names: Vec<&str> = self.spec.nodes.iter().map(|n| n.container.as_str()).collect();
        // A missing container makes `docker inspect` fail, yet it still prints the others.
        let out = docker_output(&[&["inspect"], names.as_slice()].concat())?;
        let found: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if found.is_empty() && !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if !err.contains("No such") {
                bail!("`docker inspect` failed: {}", err.trim());
            }
        }
        Ok(names
            .iter()
            .map(|name| {
                found
                    .iter()
                    .find(|c| c["Name"].as_str() == Some(&format!("/{name}")))
                    .map(container_state)
                    .unwrap_or_else(|| ContainerState {
                        status: "missing".into(),
                        ..ContainerState::default()
                    })
            })
            .collect())
    }

    /// Node `i`'s container, which must exist.
    pub fn container_state(&self, i: usize) -> Result<ContainerState> {
        self.check_index(i)?;
        let state = self.containers()?.swap_remove(i);
        if !state.exists {
            bail!(
                "container {} does not exist: start the network with `{}`",
                self.container(i),
                self.up_command()
            );
        }
        Ok(state)
    }

    /// Node `i`'s RPC URL as the host reaches it now.
    pub fn rpc_url(&self, i: usize) -> Result<String> {
        Ok(self.rpc_url_of(i, &self.container_state(i)?))
    }

    /// The published port when it answers, else the container's current IP.
    fn rpc_url_of(&self, i: usize, state: &ContainerState) -> String {
        let published = self.spec.nodes[i].rpc_url.clone();
        let answers = |url: &str| {
            let addr = url.trim_start_matches("http://").parse::<SocketAddr>();
            addr.is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
        };
        match (&published, state.networks.iter().find(|(_, ip)| !ip.is_empty())) {
            (Some(url), _) if answers(url) => url.clone(),
            (_, Some((_, ip))) if state.running => format!("http://{ip}:{RPC_PORT}"),
            _ => published.unwrap_or_else(|| format!("http://{}:{RPC_PORT}", self.container(i))),
        }
    }

    /// An RPC client for node `i` that sends the admin token.
    pub fn client(&self, i: usize) -> Result<RpcClient> {
        Ok(RpcClient::new(self.rpc_url(i)?).with_token(self.token.clone()))
    }

    /// The node's container, which must be running.
    fn running(&self, i: usize) -> Result<ContainerState> {
        let state = self.container_state(i)?;
        if !state.running {
            bail!(
                "node {i} is not running (container {} is {}); `ember-testnet start {i}` first",
                self.container(i),
                state.status
            );
        }
        Ok(state)
    }

    /// SIGKILL node `i` (`docker kill`), to try crash recovery.
    pub fn kill(&self, i: usize) -> Result<String> {
        self.running(i)?;
        docker(&["kill", self.container(i)])?;
        Ok(format!("node {i} killed (docker kill {}: SIGKILL)", self.container(i)))
    }

    /// Stops node `i` cleanly (`docker stop`: SIGTERM, SIGKILL after 30 s).
    pub fn stop(&self, i: usize) -> Result<String> {
        self.running(i)?;
        docker(&["stop", "-t", "30", self.container(i)])?;
        let clean = self.container_state(i)?.exit_code == Some(0);
        Ok(format!(
            "node {i} stopped{}",
            if clean { "" } else { " (forcibly or with an error: see `ember-testnet logs`)" }
        ))
    }

    /// Starts node `i`'s stopped container again (same volume, networks and settings).
    pub fn start(&self, i: usize) -> Result<String> {
        let state = self.container_state(i)?;
        if state.running {
            bail!("node {i} is already running (container {})", self.container(i));
        }
        docker(&["start", self.container(i)])?;
        self.reapply_faults(&[i])?;
        Ok(format!("node {i} started (container {})", self.container(i)))
    }

    /// Stops node `i` (when running) and starts it again.
    pub fn restart(&self, i: usize) -> Result<String> {
        self.container_state(i)?;
        docker(&["restart", "-t", "30", self.container(i)])?;
        self.reapply_faults(&[i])?;
        Ok(format!("node {i} restarted (container {})", self.container(i)))
    }

    /// Moves the nodes of each group but the first to a network of their own (see
    /// [`networks`]); replaces an earlier partition.
    pub fn partition(&self, groups: &[&[usize]]) -> Result<String> {
        networks::partition(self, groups)
    }

    /// Puts every node back on the project's network (latency and loss stay).
    pub fn heal(&self) -> Result<String> {
        networks::heal(self)
    }

    /// Delays the traffic between nodes `a` and `b` by `ms` each way (see [`netem`]).
    pub fn set_latency(&self, a: usize, b: usize, ms: u64) -> Result<String> {
        netem::set_latency(self, a, b, ms)
    }

    /// Drops `pct` percent of the packets between nodes `a` and `b` each way.
    pub fn set_loss(&self, a: usize, b: usize, pct: f64) -> Result<String> {
        netem::set_loss(self, a, b, pct)
    }

    /// Mines `n` devnet blocks at once on node `i`; returns their ids.
    pub fn mine(&self, i: usize, n: u64) -> Result<Vec<String>> {
        if n == 0 || n > 1000 {
            bail!("can mine 1 to 1000 blocks at once, not {n}");
        }
        self.running(i)?;
        let v = self
            .client(i)?
            .call("mining_generate", json!([n]))
            .with_context(|| format!("mining on node {i}"))?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default())
    }

    /// Node `i`'s (height, tip).
    pub fn tip(&self, i: usize) -> Result<(u64, String)> {
        let v =
            self.client(i)?.call("node_info", json!([])).with_context(|| format!("node {i}"))?;
        Ok((v["height"].as_u64().unwrap_or(0), v["tip"].as_str().unwrap_or("").to_string()))
    }

    /// Waits until every node reports the same tip; returns it.
    pub fn wait_for_agreement(&self, timeout: Duration) -> Result<(u64, String)> {
        crate::wait_for(timeout, "all nodes to agree on one tip", || {
            let tips: Vec<_> = (0..self.len()).map(|i| self.tip(i).ok()).collect::<Option<_>>()?;
            tips.windows(2).all(|w| w[0].1 == w[1].1).then(|| tips[0].clone())
        })
    }

    /// Waits until Docker reports every node's container healthy (the image's health check
    /// asks `GET /ready`: the node has a peer and is not behind it).
    pub fn wait_healthy(&self, timeout: Duration) -> Result<()> {
        crate::wait_for(timeout, "every node's container to be healthy", || {
            let states = self.containers().ok()?;
            states.iter().all(|s| s.health.as_deref() == Some("healthy")).then_some(())
        })
    }

    /// Prints node `i`'s log (`docker logs`) to this process's stdout and stderr.
    pub fn logs(&self, i: usize, follow: bool, lines: usize) -> Result<()> {
        self.container_state(i)?;
        let mut cmd = Command::new("docker");
        cmd.arg("logs");
        if follow {
            cmd.arg("--follow");
        }
        if lines > 0 {
            cmd.args(["--tail", &lines.to_string()]);
        }
        // The node logs to stderr, which `docker logs` replays on its stderr: both go to our
        // stdout, so `logs 2 | grep ...` works as with a loopback testnet's log file.
        cmd.stderr(Stdio::from(std::io::stdout()));
        let status = cmd.arg(self.container(i)).status().map_err(docker_missing)?;
        // Ctrl-C during --follow ends `docker logs` too: that is how following stops.
        if !status.success() && !follow {
            bail!("`docker logs {}` failed ({status})", self.container(i));
        }
        Ok(())
    }

    /// Runs `docker-compose -p <project> -f <compose file> ARGS` (or `docker compose`
    /// where only the plugin is installed), its output shown.
    pub fn compose(&self, args: &[&str]) -> Result<()> {
        let file = self.spec.compose_file.display().to_string();
        let base = ["-p", self.spec.project.as_str(), "-f", file.as_str()];
        let has_v1 = Command::new("docker-compose")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        let mut cmd = if has_v1 {
            Command::new("docker-compose")
        } else {
            let mut c = Command::new("docker");
            c.arg("compose");
            c
        };
        let status =
            cmd.args(base).args(args).stdin(Stdio::null()).status().map_err(docker_missing)?;
        if !status.success() {
            bail!("`docker-compose {} {}` failed ({status})", base.join(" "), args.join(" "));
        }
        Ok(())
    }

    /// Removes the containers, networks (the project's and any partition's) and volumes:
    /// `docker-compose down -v`, then whatever it could not know about.
    pub fn down(&self) -> Result<String> {
        let compose = self.compose(&["down", "-v", "--remove-orphans"]);
        // A network started without `-p <project>` belongs to another compose project,
        // which `down` above does not see: remove its pieces by name.
        let states = self.containers()?;
        let left: Vec<&str> =
            (0..self.len()).filter(|&i| states[i].exists).map(|i| self.container(i)).collect();
        if !left.is_empty() {
            docker(&[&["rm", "-f"], left.as_slice()].concat())?;
        }
        networks::remove_part_networks(self)?;
        let _ = docker_output(&["network", "rm", &self.spec.network]);
        for n in &self.spec.nodes {
            let _ = docker_output(&["volume", "rm", &n.volume]);
        }
        netem::forget(self)?;
        if let Err(e) = compose {
            ember_node::errln!("note: {e:#}; removed the containers by name instead");
        }
        Ok(format!(
            "removed {} container(s), their networks and volumes; {} keeps the files \
             (`{}` starts the network afresh)",
            self.len(),
            self.dir.display(),
            self.up_command()
        ))
    }

    /// What the dashboard's poller is told about the network (`testnet` in the JSON).
    pub fn meta(&self) -> Value {
        json!({
            "dir": self.dir,
            "topology": self.spec.topology,
            "block_time_secs": self.spec.block_time_secs,
            "engine": self.spec.engine,
            "project": self.spec.project,
            "compose_file": self.spec.compose_file,
        })
    }

    /// Polls every node once: the dashboard's JSON, with each node's container, health and
    /// networks added (`status` prints it).
    pub fn view(&self) -> Result<Value> {
        let mut monitor = Monitor::new(self.meta());
        watch::poll(self, &mut monitor)
    }

    /// Applies the stored latency and loss again for `nodes` and their faulty peers (a
    /// container that starts or changes network comes back without its qdiscs, and with
    /// a new address).
    fn reapply_faults(&self, nodes: &[usize]) -> Result<()> {
        netem::reapply(self, nodes)
    }
}

fn container_state(c: &Value) -> ContainerState {
    let st = &c["State"];
    let mut networks: Vec<(String, String)> = c["NetworkSettings"]["Networks"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v["IPAddress"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    networks.sort();
    ContainerState {
        exists: true,
        running: st["Running"].as_bool().unwrap_or(false),
        status: st["Status"].as_str().unwrap_or("unknown").to_string(),
        health: st["Health"]["Status"].as_str().map(str::to_string),
        exit_code: st["ExitCode"].as_i64(),
        networks,
    }
}

fn docker_missing(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow!("the docker command is not installed (or not on PATH): attaching to an exported network needs the Docker CLI")
    } else {
        anyhow!("cannot run docker: {e}")
    }
}

/// Runs `docker ARGS` and returns its output, whatever its exit status.
pub(crate) fn docker_output(args: &[&str]) -> Result<std::process::Output> {
    Command::new("docker").args(args).stdin(Stdio::null()).output().map_err(docker_missing)
}

/// Runs `docker ARGS`; its stdout, or an error with its stderr.
pub(crate) fn docker(args: &[&str]) -> Result<String> {
    let out = docker_output(args)?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let hint = if err.contains("permission denied") && err.contains("docker.sock") {
            " (add yourself to the docker group, or run as root)"
        } else if err.contains("Cannot connect to the Docker daemon") {
            " (start Docker first)"
        } else {
            ""
        };
        bail!("`docker {}` failed: {}{hint}", args.join(" "), err.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
