//! One real `ember-node` process on loopback: start, stop (SIGTERM), kill (SIGKILL),
//! restart, and an RPC client for it.
//!
//! Ports come from the OS (`127.0.0.1:0`); the node writes the address it bound to
//! `<data dir>/rpc.addr`, which is how we find it. Logs go to `<data dir>/node.log`.
//! Dropping a `NodeProcess` kills the process, so a failing test leaves nothing running.

use anyhow::{anyhow, bail, Context, Result};
use ember_wallet::rpc::RpcClient;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds a sibling binary of the running executable (`target/<profile>/NAME`), or
/// `$EMBER_BIN_DIR/NAME`.
///
/// When the running executable is a cargo test (in `target/<profile>/deps`), the
/// workspace's binaries are built first, once per test process ([`build_binaries`]): a
/// plain `cargo test` builds the test, not the binaries it starts, and must never run stale
/// ones. `EMBER_BIN_DIR` skips the build (binaries built just before, as `make test`
/// does), but not the checks: the binary must exist, and must not be older than any source
/// file cargo's dep-info (`NAME.d` beside it) lists for it.
pub fn binary(name: &str) -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("EMBER_BIN_DIR") {
        let path = PathBuf::from(dir).join(name);
        if !path.exists() {
            bail!(
                "{} not found (EMBER_BIN_DIR); build it first (`make build`), or unset \
                 EMBER_BIN_DIR to let the tests build it",
                path.display()
            );
        }
        if let Some(newer) = newer_source(&path)? {
            bail!(
                "{} is older than its source {}: rebuild it (`make build`), or unset \
                 EMBER_BIN_DIR to let the tests build it",
                path.display(),
                newer.display()
            );
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().context("cannot find the running executable")?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test binaries live in target/<profile>/deps, examples in target/<profile>/examples.
    let under_test = dir.ends_with("deps");
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    if under_test {
        static BUILT: std::sync::OnceLock<std::result::Result<(), String>> =
            std::sync::OnceLock::new();
        BUILT.get_or_init(|| build_binaries(&dir).map_err(|e| format!("{e:#}"))).clone().map_err(
            |e| anyhow!("cannot build the binaries the tests run (or set EMBER_BIN_DIR): {e}"),
        )?;
    }
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found; build it first (`make build`: cargo build --workspace --all-targets)",
            path.display()
        );
    }
    Ok(path)
}

/// A source file changed after `binary` was built, going by the dep-info file cargo writes
/// beside it (`<binary>.d`: `<binary>: <source> <source> ...`, spaces in paths escaped
/// with `\\`). `None` when every listed source is older, or when there is no dep-info
/// (binaries copied from elsewhere: nothing to compare with).
pub fn newer_source(binary: &Path) -> Result<Option<PathBuf>> {
    let mut dep_info = binary.as_os_str().to_owned();
    dep_info.push(".d");
    let Ok(text) = std::fs::read_to_string(&dep_info) else { return Ok(None) };
    let built = std::fs::metadata(binary)
        .and_then(|m| m.modified())
        .with_context(|| format!("cannot read the time {} was built", binary.display()))?;
    let Some((_, sources)) = text.lines().next().and_then(|l| l.split_once(": ")) else {
        return Ok(None);
    };
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut chars = sources.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ' ' => paths.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    paths.push(current);
    for source in paths.into_iter().filter(|p| !p.is_empty()).map(PathBuf::from) {
        // A source that is gone cannot be newer; cargo rebuilds when it is needed again.
        let Ok(changed) = std::fs::metadata(&source).and_then(|m| m.modified()) else {
            continue;
        };
        if changed > built {
            return Ok(Some(source));
        }
    }
    Ok(None)
}

/// The packages whose binaries the tests start: the node, the wallet CLI, and the testnet
/// tool (which starts nodes itself, found next to it).
const BINARY_PACKAGES: [&str; 3] = ["ember-node", "ember-wallet", "ember-testnet"];

/// Builds the workspace's binaries into `profile_dir` (`target/<profile>`) with the cargo
/// that runs the tests: a no-op when they are up to date, a rebuild when a source changed.
pub fn build_binaries(profile_dir: &Path) -> Result<()> {
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let target_dir = profile_dir.parent().context("the profile dir has no parent")?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(&cargo);
    cmd.arg("build").arg("--manifest-path").arg(&manifest).arg("--target-dir").arg(target_dir);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(profile) => {
            cmd.args(["--profile", profile]);
        }
        None => bail!("{} is not a cargo profile dir", profile_dir.display()),
    }
    for p in BINARY_PACKAGES {
        cmd.args(["-p", p]);
    }
    cmd.arg("--bins").stdin(Stdio::null());
    let out = cmd.output().with_context(|| format!("cannot run {}", cargo.to_string_lossy()))?;
    if !out.status.success() {
        bail!("`{cmd:?}` failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Polls `cond` until it returns `Some`, or fails after `timeout` with `what` in the error.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut cond: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running (or stopped) node process.
pub struct NodeProcess {
    child: Option<Child>,
    data_dir: PathBuf,
    args: Vec<String>,
    rpc_url: Option<String>,
}

impl NodeProcess {
    /// Starts `ember-node` with `data_dir` and extra `args` (network, genesis, mining...).
    /// RPC listens on a port from the OS unless `args` say otherwise.
    pub fn start(data_dir: &Path, args: &[String]) -> Result<Self> {
        let mut p = NodeProcess {
            child: None,
            data_dir: data_dir.to_path_buf(),
            args: args.to_vec(),
            rpc_url: None,
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.data_dir)?;
        let addr_file = self.data_dir.join("rpc.addr");
        let p2p_file = self.data_dir.join("p2p.addr");
        let _ = std::fs::remove_file(&addr_file);
        let _ = std::fs::remove_file(&p2p_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("node.log"))
            .context("cannot open node.log")?;
        let mut cmd = Command::new(binary("ember-node")?);
        // The node's settings are the args given here, nothing else: an `EMBER_*` variable
        // of the caller's shell (`EMBER_AUTOMINE=true`, say) would change what a test or a
        // testnet runs without anyone seeing it. `EMBER_LOG` (what the log shows) passes.
        for (key, _) in std::env::vars_os() {
            let kept = ["EMBER_BIN_DIR", "EMBER_LOG"];
            if key.to_str().is_some_and(|k| k.starts_with("EMBER_") && !kept.contains(&k)) {
                cmd.env_remove(key);
            }
        }
        cmd.arg("--data-dir").arg(&self.data_dir);
        if !self.args.iter().any(|a| a == "--rpc-addr") {
            cmd.args(["--rpc-addr", "127.0.0.1:0"]);
        }
        if !self.args.iter().any(|a| a == "--p2p-addr") {
            cmd.args(["--p2p-addr", "127.0.0.1:0"]);
        }
        cmd.args(&self.args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        let child = cmd.spawn().context("cannot start ember-node")?;
        self.child = Some(child);
        let addr = wait_for(Duration::from_secs(60), "the node's RPC address", || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Some(Err(anyhow!(
                    "ember-node exited with {status}; log:\n{}",
                    self.log_tail()
                )));
            }
            std::fs::read_to_string(&addr_file)
                .ok()
                .filter(|s| s.trim().parse::<std::net::SocketAddr>().is_ok())
                .map(Ok)
        })??;
        self.rpc_url = Some(format!("http://{}", addr.trim()));
        // The node writes its two address files one after the other (and not atomically):
        // wait until the P2P one holds a whole address too.
        wait_for(Duration::from_secs(30), "the node's P2P address", || {
            std::fs::read_to_string(&p2p_file)
                .ok()
                .filter(|s| s.trim().parse::<std::net::SocketAddr>().is_ok())
        })?;
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The arguments the node is started with (besides `--data-dir`).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Adds (`on`) or removes a boolean flag for the next start.
    /// Adds arguments for the next start (e.g. `--peer ADDR`).
    pub fn add_args(&mut self, args: &[&str]) {
        self.args.extend(args.iter().map(|a| a.to_string()));
    }

    pub fn set_flag(&mut self, flag: &str, on: bool) {
        self.args.retain(|a| a != flag);
        if on {
            self.args.push(flag.to_string());
        }
    }

    /// Replaces OS-chosen ports (`127.0.0.1:0`) in the arguments with the ports the node
    /// bound, so a restarted node keeps its RPC URL and P2P address.
    pub fn pin_addresses(&mut self) {
        let rpc = self.rpc_url().trim_start_matches("http://").to_string();
        let p2p = self.p2p_addr();
        for (flag, addr) in [("--rpc-addr", rpc), ("--p2p-addr", p2p)] {
            if addr.is_empty() {
                continue;
            }
            match self.args.iter().position(|a| a == flag) {
                Some(i) if i + 1 < self.args.len() => self.args[i + 1] = addr,
                _ => self.args.extend([flag.to_string(), addr]),
            }
        }
    }

    /// The P2P address the node listens on ("127.0.0.1:port").
    pub fn p2p_addr(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("p2p.addr"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    pub fn rpc_url(&self) -> &str {
        self.rpc_url.as_deref().unwrap_or("")
    }

    /// A client that sends the node's admin token.
    pub fn client(&self) -> RpcClient {
        let c = RpcClient::new(self.rpc_url());
        c.with_cookie_file(&self.data_dir.join("rpc.cookie"))
            .unwrap_or_else(|_| RpcClient::new(self.rpc_url()))
    }

    /// The last lines of the node's log (for error messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.data_dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGKILL: no chance to flush anything (crash-recovery tests).
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().context("kill failed")?;
            c.wait()?;
        }
        Ok(())
    }

    /// SIGTERM and wait for a clean exit (up to 30 s, then SIGKILL). Returns whether the
    /// process exited cleanly with status 0.
    pub fn stop(&mut self) -> Result<bool> {
        let Some(mut c) = self.child.take() else { return Ok(true) };
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let status =
            wait_for(Duration::from_secs(30), "the node to exit", || c.try_wait().ok().flatten());
        match status {
            Ok(s) => Ok(s.success()),
            Err(_) => {
                let _ = c.kill();
                let _ = c.wait();
                Ok(false)
            }
        }
    }

    /// Starts the process again with the same data dir and arguments.
    pub fn restart(&mut self) -> Result<()> {
        if self.is_running() {
            self.stop()?;
        }
        self.spawn()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn touch(path: &Path, at: SystemTime) {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.set_modified(at).unwrap();
    }

    /// A binary older than one of the sources its dep-info lists is stale; one newer than
    /// all of them, or without dep-info, is not.
    #[test]
    fn a_binary_older_than_a_listed_source_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("ember-node");
        let (a, b) = (dir.path().join("a.rs"), dir.path().join("with space.rs"));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        touch(&a, t0);
        touch(&b, t0);
        touch(&bin, t0 + Duration::from_secs(10));
        assert_eq!(newer_source(&bin).unwrap(), None, "no dep-info: nothing to compare");
        let listed = format!(
            "{}: {} {}\n",
            bin.display(),
            a.display(),
            b.display().to_string().replace(' ', "\\ ")
        );
        std::fs::write(dir.path().join("ember-node.d"), listed).unwrap();
        assert_eq!(newer_source(&bin).unwrap(), None, "every source is older");
        touch(&b, t0 + Duration::from_secs(20));
        assert_eq!(newer_source(&bin).unwrap(), Some(b.clone()), "the escaped path was read");
        touch(&bin, t0 + Duration::from_secs(30));
        assert_eq!(newer_source(&bin).unwrap(), None, "rebuilt");
    }
}
