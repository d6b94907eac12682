//! The state file `<dir>/testnet.json`: how commands find a running testnet.
//!
//! The supervisor writes it when the network is up and again whenever a node's process
//! changes (start, restart, kill), and removes it when it shuts down cleanly. A file whose
//! supervisor is gone is *stale*: `down` cleans up what it names, other commands refuse.
//! The file holds the control token, so it is written with mode 0600.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "testnet.json";

/// One node as the state file records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    pub index: usize,
    pub pid: Option<u32>,
    pub running: bool,
    pub miner: bool,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub rpc_url: String,
    pub p2p_addr: String,
    /// The `ember-node` arguments besides `--data-dir`.
    pub args: Vec<String>,
}

/// One link: node `from` dials `proxy_addr`, which forwards to node `to`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkRecord {
    pub from: usize,
    pub to: usize,
    pub proxy_addr: String,
}

/// Everything another command needs to reach a running testnet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestnetState {
    pub supervisor_pid: u32,
    /// Loopback address of the supervisor's control endpoint and dashboard.
    pub control_addr: String,
    pub dashboard_url: String,
    /// Sent as `X-Ember-Testnet-Token` with control requests.
    pub token: String,
    pub dir: PathBuf,
    pub genesis: PathBuf,
    pub topology: String,
    pub block_time_secs: f64,
    pub nodes: Vec<NodeRecord>,
    pub links: Vec<LinkRecord>,
}

impl TestnetState {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Writes the file atomically (temp file + rename), mode 0600.
    pub fn save(&self) -> Result<()> {
        let path = Self::path(&self.dir);
        let tmp = self.dir.join(format!(".{STATE_FILE}.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(self)?.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The state file in `dir`, if there is one.
    pub fn read(dir: &Path) -> Result<Option<TestnetState>> {
        let path = Self::path(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a testnet state file", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The running testnet in `dir`, or a clear error when there is none.
    pub fn load_running(dir: &Path) -> Result<TestnetState> {
        let Some(state) = Self::read(dir)? else {
            bail!(
                "no testnet is running in {} (no {STATE_FILE} there); start one with \
                 `ember-testnet up --dir {}`",
                dir.display(),
                dir.display()
            );
        };
        if !pid_alive(state.supervisor_pid) {
            bail!(
                "the testnet in {} is not running: its supervisor (pid {}) has exited; \
                 `ember-testnet down --dir {}` cleans up what is left",
                dir.display(),
                state.supervisor_pid,
                dir.display()
            );
        }
        Ok(state)
    }

    /// Fails unless `i` is a node index of this testnet.
    pub fn check_index(&self, i: usize) -> Result<()> {
        if i >= self.nodes.len() {
            bail!("there is no node {i}: this testnet has nodes 0..{}", self.nodes.len() - 1);
        }
        Ok(())
    }
}

/// Whether process `pid` exists and is not a zombie (a zombie holds no ports and is only
/// waiting for a parent, possibly a non-reaping init in a container, to collect it).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// Whether `pid` is alive and runs the program `name` (guards against a reused pid).
pub fn pid_runs(pid: u32, name: &str) -> bool {
    pid_alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            c.split(|b| *b == 0)
                .next()
                .is_some_and(|argv0| String::from_utf8_lossy(argv0).ends_with(name))
        })
}
