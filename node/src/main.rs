//! The `ember-node` binary: parses the configuration, opens the store, starts the RPC server
//! and the miner, and shuts down cleanly on SIGINT/SIGTERM or `node_stop`.
//!
//! Exit codes: 0 stopped cleanly (or `check`: the state matches), 1 failed while running
//! (or `check`: mismatch, or nothing checkable), 2 bad command line or configuration. The
//! one result on stdout (`check`'s verdict) is written so that a closed stdout (`| head`) is
//! not an error: the exit code still carries the verdict.

use clap::Parser;
use ember_node::chain::replay_check;
use ember_node::config::{load_params, other_genesis_hint, Cli, Command, LogFormat};
use ember_node::node::{open_store, Node};
use ember_node::store::{ChainStore, KvStore, RocksKv};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("EMBER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: logs redirected to a file stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// glibc's malloc gives threads that allocate at the same time arenas of their own, up to 8
/// per core, and keeps what is freed in each for reuse: with the runtime's workers, the
/// blocking pool and rayon's threads all allocating blocks and payments, a node under load
/// peaked at 257-304 MB, against 138-193 MB with two arenas, the speed figures within the
/// spread between runs (PERFORMANCE.md, "malloc arenas"). glibc reads `MALLOC_ARENA_MAX` only when the process
/// starts, and `mallopt` would need `unsafe` (forbidden here), so a node started without
/// it runs itself again, same pid and arguments, with `MALLOC_ARENA_MAX=2`. An operator's
/// own value is kept; if the re-run cannot start, the node goes on with glibc's default.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        use std::os::unix::process::CommandExt;
        let Ok(exe) = std::env::current_exe() else { return };
        let mut args = std::env::args_os();
        let mut cmd = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            cmd.arg0(arg0);
        }
        // `exec` returns only if it failed.
        let err = cmd.args(args).env("MALLOC_ARENA_MAX", "2").exec();
        ember_node::errln!("note: could not run again with MALLOC_ARENA_MAX=2 ({err}); going on");
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Genesis(args)) => genesis(&args),
        Some(Command::Check { data_dir, network, genesis }) => {
            init_logging(LogFormat::Text);
            check(&data_dir, network.map(Into::into), genesis.as_deref())
        }
        None => {
            let config = match cli.run.resolve() {
                Ok(c) => c,
                Err(e) => {
                    ember_node::errln!("error: {e:#}");
                    return ExitCode::from(2);
                }
            };
            init_logging(config.log_format);
            let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
            match runtime.block_on(run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    ember_node::errln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `ember-node genesis`: the spec on stdout or in --out, the genesis id on stderr.
fn genesis(args: &ember_node::genesis_cmd::GenesisArgs) -> ExitCode {
    use ember_node::genesis_cmd;
    let (json, id) = match genesis_cmd::build(args) {
        Ok(built) => built,
        Err(e) => {
            ember_node::errln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match &args.out {
        None => {
            verdict(&json);
            ember_node::errln!("genesis {id}");
        }
        Some(path) => {
            if let Err(e) = genesis_cmd::write(args, path, &json) {
                ember_node::errln!("error: {e:#}");
                return ExitCode::from(if path.exists() && !args.force { 2 } else { 1 });
            }
            ember_node::errln!(
                "wrote {} (genesis {id}); start every node of this network with --genesis {}",
                path.display(),
                path.display()
            );
        }
    }
    ExitCode::SUCCESS
}

/// Prints `check`'s verdict on stdout. A reader that went away (`| head`) is not an error:
/// the exit code carries the verdict, so a failed write is ignored rather than a panic.
fn verdict(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

fn check(
    data_dir: &Path,
    network: Option<ember_core::Network>,
    genesis: Option<&Path>,
) -> ExitCode {
    let params = match load_params(network, genesis) {
        Ok(p) => p,
        Err(e) => {
            ember_node::errln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    // Read-only means nothing is created either: the rocksdb crate creates a missing
    // database directory even to open it read-only, so what is not there is refused first.
    if !data_dir.is_dir() {
        ember_node::errln!(
            "error: the data dir {} does not exist; nothing to check (give --data-dir the \
             directory a node ran with)",
            data_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let path = data_dir.join("chain");
    if !path.join("CURRENT").is_file() {
        ember_node::errln!(
            "error: {} is not a node's data dir: it has no chain database ({} is missing); \
             give --data-dir the directory a node ran with",
            data_dir.display(),
            path.join("CURRENT").display()
        );
        return ExitCode::FAILURE;
    }
    let kv: Arc<dyn KvStore> = match RocksKv::open_read_only(&path) {
        Ok(kv) => Arc::new(kv),
        Err(e) => {
            ember_node::errln!("error: cannot open the chain database {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let store = match ChainStore::open(kv.clone(), &params) {
        Ok(s) => s,
        Err(e) => {
            let hint = match ChainStore::stored_genesis(kv.as_ref()) {
                Ok(Some((network, id))) if id != params.genesis_id() => {
                    format!("; {}", other_genesis_hint(data_dir, &network, id))
                }
                _ => String::new(),
            };
            ember_node::errln!("error: {}: {e}{hint}", data_dir.display());
            return ExitCode::FAILURE;
        }
    };
    match replay_check(&params, &store) {
        Ok((height, stored, replayed)) if stored == replayed => {
            verdict(&format!(
                "ok: height {height}, state digest {stored} matches a replay from genesis"
            ));
            ExitCode::SUCCESS
        }
        Ok((height, stored, replayed)) => {
            verdict(&format!(
                "MISMATCH at height {height}: stored state {stored}, replay gives {replayed}"
            ));
            ExitCode::FAILURE
        }
        Err(e) => {
            verdict(&format!("FAILED: the replay from genesis stopped: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn write_atomic(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    ember_node::atomic_file::write(path, text.as_bytes(), 0o644)
}

/// How often the mempool is written to `mempool.dat` while the node runs: a crash loses at
/// most what arrived since.
const MEMPOOL_SAVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads `mempool.dat` back into the mempool (through the normal admission) and logs what
/// came back and what was dropped. A file that cannot be used is set aside; the node starts
/// with an empty pool rather than not at all.
async fn restore_mempool(node: &Arc<Node>) -> anyhow::Result<()> {
    use ember_node::mempool_file::{self, Loaded};
    let data_dir = node.config.data_dir.clone();
    match mempool_file::load(&data_dir, node.params.genesis_id()) {
        Loaded::Missing => {}
        Loaded::Corrupt { reason, moved_to } => tracing::warn!(
            file = %data_dir.join(mempool_file::FILE_NAME).display(),
            moved_to = %moved_to.map_or_else(|| "(could not be moved)".into(), |p| p.display().to_string()),
            "the saved mempool cannot be read ({reason}); starting with an empty mempool"
        ),
        Loaded::Saved(saved) => {
            let total = saved.len();
            let n = node.clone();
            let report = tokio::task::spawn_blocking(move || n.restore_mempool(saved)).await?;
            let refused: Vec<String> =
                report.refused.iter().map(|(reason, n)| format!("{reason}: {n}")).collect();
            tracing::info!(
                saved = total,
                restored = report.admitted,
                expired = report.expired,
                refused = report.refused_total(),
                reasons = %refused.join(", "),
                "mempool restored from {}",
                mempool_file::FILE_NAME
            );
        }
    }
    Ok(())
}

/// Writes `mempool.dat` (at shutdown and periodically), logging a failure: losing the file
/// loses pending payments, never the chain.
async fn save_mempool(node: &Arc<Node>, why: &'static str) {
    let n = node.clone();
    match tokio::task::spawn_blocking(move || n.save_mempool()).await {
        Ok(Ok(count)) => tracing::debug!(count, why, "mempool saved"),
        Ok(Err(e)) => tracing::error!(error = %e, why, "cannot write mempool.dat"),
        Err(e) => tracing::error!(error = %e, why, "mempool save task failed"),
    }
}

async fn run(config: ember_node::config::NodeConfig) -> anyhow::Result<()> {
    let store = open_store(&config)?;
    let data_dir = config.data_dir.clone();
    let rpc_addr = config.rpc_addr;
    let node = Node::new(config, store)?;
    restore_mempool(&node).await?;
    let token = ember_node::rpc::write_cookie(&data_dir).map_err(|e| {
        anyhow::anyhow!("cannot write the RPC cookie in {}: {e}", data_dir.display())
    })?;
    let tokens = std::iter::once(token).chain(node.config.rpc_token.clone()).collect();
    let net_slot = ember_node::rpc::NetSlot::default();
    let bound = ember_node::rpc::serve(node.clone(), net_slot.clone(), rpc_addr, tokens).await?;
    let net = ember_node::net::Network::new(node.clone());
    let p2p = net.start(node.config.p2p_addr, &node.config.peers).await.map_err(|e| {
        // The network's own message names the address and the cause; the flag that
        // changes it is the binary's to say.
        let text = format!("{e:#}");
        if text.starts_with("cannot listen for peers") {
            anyhow::anyhow!(
                "{text}; choose another address with --p2p-addr (port 0 takes a free one)"
            )
        } else {
            e
        }
    })?;
    let _ = net_slot.set(net);
    // Signal handlers before anything tells the world we are up: a SIGTERM sent as soon as
    // rpc.addr exists must stop the node cleanly, not kill it.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // Tools and tests that asked for port 0 read the real addresses from these files. Each
    // appears whole (written aside, then renamed), and rpc.addr last: once it exists, the
    // node is serving both.
    write_atomic(&data_dir.join("p2p.addr"), &p2p.to_string())?;
    write_atomic(&data_dir.join("rpc.addr"), &bound.to_string())?;
    tracing::info!(rpc = %bound, p2p = %p2p, data_dir = %data_dir.display(), "node started");

    if let Some(cmd) = node.config.block_notify.clone() {
        tokio::spawn(ember_node::block_notify::run(node.clone(), cmd));
    }
    let devnet = !node.params.retarget;
    match node.default_miner() {
        // Devnet: one miner task follows the mining mode (interval, automine), which RPC
        // may change at any time.
        Some(miner) if devnet => {
            tokio::spawn(ember_node::miner::run_devnet(node.clone(), miner));
        }
        Some(miner) if node.config.mine => {
            tokio::spawn(ember_node::miner::run(node.clone(), miner));
        }
        None if node.config.mine || node.config.automine => {
            anyhow::bail!("--mine needs --miner-address on this network")
        }
        _ => {}
    }
    {
        let node = node.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                tokio::select! {
                    _ = tick.tick() => node.expire_mempool(),
                    _ = node.shutdown.cancelled() => return,
                }
            }
        });
    }

    let saver = {
        let node = node.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(MEMPOOL_SAVE_INTERVAL);
            tick.tick().await; // the first tick is immediate: nothing new to save yet
            loop {
                tokio::select! {
                    // A save under way finishes before the loop sees the shutdown, so it
                    // never races the final one below.
                    _ = tick.tick() => save_mempool(&node, "periodic").await,
                    _ = node.shutdown.cancelled() => return,
                }
            }
        })
    };

    tokio::select! {
        _ = int.recv() => tracing::info!("SIGINT received, stopping"),
        _ = term.recv() => tracing::info!("SIGTERM received, stopping"),
        _ = node.shutdown.cancelled() => tracing::info!("stop requested over RPC"),
    }
    node.shutdown.cancel();
    let _ = saver.await;
    save_mempool(&node, "shutdown").await;
    let n = node.clone();
    tokio::task::spawn_blocking(move || n.close()).await?;
    tracing::info!("store flushed; bye");
    Ok(())
}
