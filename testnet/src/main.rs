//! `ember-testnet`: start, watch and break a local multi-node Ember network.
//!
//! `up` starts a supervisor (in the foreground, or in the background with `--detach`) that
//! owns the nodes, the link proxies and the dashboard. Every other command finds it through
//! `<dir>/testnet.json` and talks to its loopback control endpoint (`logs` only reads files).
//!
//! Output rules: results go to stdout through [`outln!`], which returns the write error
//! instead of panicking, and a closed stdout (`status | head -2`) ends the command quietly
//! with exit code 0 (`up` keeps its network running: its live line is on stderr). Tables
//! and the live line fit the terminal (`COLUMNS`, else the terminal's own width): columns
//! are narrowed or left out, never wrapped.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use ember_testnet::network::{check_partition, parse_indices, parse_partition, Progress};
use ember_testnet::state::{pid_alive, pid_runs, TestnetState};
use ember_testnet::supervisor::{fetch_view, send_control, Control, Supervisor};
use ember_testnet::{TestnetOptions, Topology};
use serde_json::{json, Value};
use std::io::{IsTerminal, Read, Seek, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `println!` that returns the write error instead of panicking on a closed stdout; `main`
/// turns a broken pipe into a quiet exit.
macro_rules! outln {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)
    };
}

const EXAMPLES: &str = "Examples:
  ember-testnet up                          # 4 nodes in a ring, node 0 mines; Ctrl-C stops
  ember-testnet up --detach --nodes 5 --topology line --miners 0,4
  ember-testnet status
  ember-testnet mine 0 3                    # 3 instant blocks on node 0
  ember-testnet partition 0,1/2,3,4         # cut every link between the two groups
  ember-testnet heal
  ember-testnet latency 1 2 300             # 300 ms each way on the link 1-2
  ember-testnet kill 3 && ember-testnet start 3
  ember-testnet logs 3 --follow
  ember-testnet down                        # stop every node and the supervisor

Every command takes --dir DIR (default .testnet; bench: a temp dir) to pick the testnet.";

#[derive(Parser)]
#[command(
    name = "ember-testnet",
    version,
    about = "Start, watch and break a local multi-node Ember network on loopback.",
    long_about = "Start, watch and break a local multi-node Ember network on loopback.\n\n\
                  `up` starts N real ember-node processes with a fresh devnet genesis, links \
                  them through small loopback proxies (so links can be cut, slowed and made \
                  lossy without root) and serves a live dashboard. The other commands act on \
                  the testnet running in --dir.",
    after_help = EXAMPLES
)]
struct Cli {
    /// Directory of the testnet: genesis, node data dirs and logs, testnet.json [default:
    /// .testnet; for bench, a temp dir removed at the end].
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct UpArgs {
    /// Number of nodes (1 to 50).
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// How the nodes are linked (random: a random tree plus extra links).
    #[arg(long, value_enum, default_value = "ring")]
    topology: Topology,
    /// Comma-separated indices of the nodes that mine continuously ("" = none).
    #[arg(long, default_value = "0")]
    miners: String,
    /// Mean seconds between blocks of each miner.
    #[arg(long, default_value_t = 2.0)]
    block_time: f64,
    /// RPC of node i on BASE+i, P2P on BASE+100+i, dashboard on BASE+200 (0 = ports from
    /// the OS).
    #[arg(long, default_value_t = 8545)]
    base_port: u16,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a fresh network (replacing what is in --dir) and show it live until Ctrl-C.
    #[command(after_help = "Examples:
  ember-testnet up
  ember-testnet up --nodes 6 --topology mesh --miners 0,3 --block-time 1
  ember-testnet up --detach --base-port 0     # in the background, ports from the OS
  ember-testnet up --dir /tmp/tn2 --base-port 9000")]
    Up {
        #[command(flatten)]
        up: UpArgs,
        /// Run the supervisor in the background: print the table and exit once the network
        /// is up. `ember-testnet down` stops it.
        #[arg(long)]
        detach: bool,
    },
    /// (internal) The background supervisor started by `up --detach`.
    #[command(hide = true)]
    Supervise {
        #[command(flatten)]
        up: UpArgs,
    },
    /// Show every node's height, tip, peers and mempool, and the links.
    #[command(after_help = "Examples:\n  ember-testnet status\n  \
                        ember-testnet status --json | jq '.nodes[].height'")]
    Status {
        /// Print the dashboard's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop every node and the supervisor; nothing is left running (data and logs stay).
    #[command(after_help = "Examples:\n  ember-testnet down\n  ember-testnet down --dir /tmp/tn2")]
    Down,
    /// Stop node I cleanly (SIGTERM).
    #[command(after_help = "Examples:\n  ember-testnet stop 2")]
    Stop {
        /// Node index.
        #[arg(value_name = "I")]
        node: usize,
    },
    /// Start stopped node I again with its data dir, addresses and links.
    #[command(after_help = "Examples:\n  ember-testnet kill 2 && ember-testnet start 2")]
    Start {
        /// Node index.
        #[arg(value_name = "I")]
        node: usize,
    },
    /// Stop node I and start it again.
    #[command(after_help = "Examples:\n  ember-testnet restart 2")]
    Restart {
        /// Node index.
        #[arg(value_name = "I")]
        node: usize,
    },
    /// Kill node I with SIGKILL (no clean shutdown), to try crash recovery.
    #[command(after_help = "Examples:\n  ember-testnet kill 2 && ember-testnet start 2")]
    Kill {
        /// Node index.
        #[arg(value_name = "I")]
        node: usize,
    },
    /// Cut every link between nodes of different groups, e.g. 0,1/2,3 (every node in one
    /// group; replaces an earlier partition).
    #[command(after_help = "Examples:\n  ember-testnet partition 0,1/2,3\n  \
                        ember-testnet partition 0/1,2,3,4\n  ember-testnet heal")]
    Partition {
        /// Groups of node indices separated by '/', e.g. 0,1/2,3.
        groups: String,
    },
    /// Undo any partition (latency and loss stay).
    #[command(after_help = "Examples:\n  ember-testnet heal")]
    Heal,
    /// Delay every chunk on the link between I and J by MS milliseconds, both ways (0 = off).
    #[command(
        after_help = "Examples:\n  ember-testnet latency 0 1 250\n  ember-testnet latency 0 1 0"
    )]
    Latency {
        /// Node at one end of the link (index, as in `status`).
        #[arg(value_name = "I")]
        a: usize,
        /// Node at the other end; the two must be linked (`status` lists the links).
        #[arg(value_name = "J")]
        b: usize,
        /// Milliseconds, each way.
        #[arg(value_name = "MS")]
        ms: u64,
    },
    /// Make PCT percent of chunks on the link between I and J late by a TCP retransmission
    /// timeout (~200 ms): on TCP, loss shows up as delay, never as missing bytes.
    #[command(after_help = "Examples:\n  ember-testnet loss 2 3 20\n  ember-testnet loss 2 3 0")]
    Loss {
        /// Node at one end of the link (index, as in `status`).
        #[arg(value_name = "I")]
        a: usize,
        /// Node at the other end; the two must be linked (`status` lists the links).
        #[arg(value_name = "J")]
        b: usize,
        /// Percentage of chunks, 0 to 100.
        #[arg(value_name = "PCT")]
        pct: f64,
    },
    /// Mine N devnet blocks at once on node I.
    #[command(after_help = "Examples:\n  ember-testnet mine 0 5")]
    Mine {
        /// Node index.
        #[arg(value_name = "I")]
        node: usize,
        /// Number of blocks (1 to 1000).
        #[arg(value_name = "N")]
        count: u64,
    },
    /// Measure the network on this machine: block and payment propagation, throughput, sync
    /// and memory of real nodes, each against the machine's own limits (see
    /// docs/PERFORMANCE.md). Uses a temp dir unless --dir is given.
    #[command(after_help = "Examples:
  cargo build --release --workspace --all-targets && target/release/ember-testnet bench
  ember-testnet bench --quick               # under 3 minutes
  ember-testnet bench --quick --json > bench.json")]
    Bench {
        /// Smaller sizes and a 10 s throughput window (under 3 minutes on 2 cores).
        #[arg(long)]
        quick: bool,
        /// Print the report as JSON (progress still goes to stderr).
        #[arg(long)]
        json: bool,
        /// Nodes in the line for the propagation figures (5 to 50; the 5-node figures use
        /// its first 5).
        #[arg(long, default_value_t = 10)]
        nodes: usize,
    },
    /// Print node I's log.
    #[command(
        after_help = "Examples:\n  ember-testnet logs 0\n  ember-testnet logs 0 --follow\n  \
                        ember-testnet logs 2 --lines 50"
    )]
    Logs {
        /// Node index.
        #[arg(value_name = "I")]
        node: usize,
        /// Keep printing new lines until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
        /// Only the last N lines (0 = all).
        #[arg(long, short = 'n', default_value_t = 0)]
        lines: usize,
    },
    /// Run a fresh 5-node network with miners and random payments while injecting faults
    /// (kill -9, partitions, latency, loss, a hostile peer), checking that no coin is created
    /// or lost, that every node converges, and that settled payments stay settled.
    /// Exit code 1 when an invariant is violated (the report says which, and the seed).
    #[command(after_help = "Examples:\n  ember-testnet soak --minutes 10\n  \
                        ember-testnet soak --minutes 1 --seed 42 --dir /tmp/soak")]
    Soak {
        /// How long to inject faults (healing and final checks come after).
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// Seed of every random choice [default: from the clock, printed].
        #[arg(long)]
        seed: Option<u64>,
        /// Number of nodes (at least 2).
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    if let Err(e) = run() {
        // A reader that went away (`status | head -2`) is not an error.
        if is_broken_pipe(&e) {
            std::process::exit(0);
        }
        ember_node::errln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// Whether `e` comes from writing to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let given_dir = cli.dir.clone();
    let dir_arg = cli.dir.unwrap_or_else(|| PathBuf::from(".testnet"));
    let dir = std::path::absolute(&dir_arg)
        .with_context(|| format!("bad --dir {}", dir_arg.display()))?;
    match cli.command {
        Cmd::Up { up, detach } => {
            let opts = options(&up, &dir)?;
            opts.validate()?;
            prepare_dir(&dir)?;
            if detach {
                up_detached(&up, &opts)
            } else {
                up_foreground(&opts, up.base_port)
            }
        }
        Cmd::Supervise { up } => supervise(&options(&up, &dir)?, up.base_port),
        Cmd::Status { json } => status(&dir, json),
        Cmd::Bench { quick, json, nodes } => bench(quick, json, nodes, given_dir.map(|_| dir)),
        Cmd::Down => down(&dir),
        Cmd::Stop { node } => node_command(&dir, node, Control::Stop { node }),
        Cmd::Start { node } => node_command(&dir, node, Control::Start { node }),
        Cmd::Restart { node } => node_command(&dir, node, Control::Restart { node }),
        Cmd::Kill { node } => node_command(&dir, node, Control::Kill { node }),
        Cmd::Partition { groups } => {
            let state = TestnetState::load_running(&dir)?;
            let groups = parse_partition(&groups)?;
            let refs: Vec<&[usize]> = groups.iter().map(Vec::as_slice).collect();
            check_partition(&refs, state.nodes.len())?;
            outln!("{}", send_control(&state, &Control::Partition { groups })?)?;
            Ok(())
        }
        Cmd::Heal => {
            let state = TestnetState::load_running(&dir)?;
            outln!("{}", send_control(&state, &Control::Heal)?)?;
            Ok(())
        }
        Cmd::Latency { a, b, ms } => {
            let state = TestnetState::load_running(&dir)?;
            check_link(&state, a, b)?;
            outln!("{}", send_control(&state, &Control::Latency { a, b, ms })?)?;
            Ok(())
        }
        Cmd::Loss { a, b, pct } => {
            let state = TestnetState::load_running(&dir)?;
            check_link(&state, a, b)?;
            if !(0.0..=100.0).contains(&pct) {
                bail!("loss must be a percentage between 0 and 100, not {pct}");
            }
            outln!("{}", send_control(&state, &Control::Loss { a, b, pct })?)?;
            Ok(())
        }
        Cmd::Mine { node, count } => node_command(&dir, node, Control::Mine { node, count }),
        Cmd::Logs { node, follow, lines } => logs(&dir, node, follow, lines),
        Cmd::Soak { minutes, seed, nodes, json } => soak(&dir, minutes, seed, nodes, json),
    }
}

fn options(up: &UpArgs, dir: &Path) -> Result<TestnetOptions> {
    Ok(TestnetOptions {
        nodes: up.nodes,
        topology: up.topology,
        miners: parse_indices(&up.miners)?,
        block_time_secs: up.block_time,
        dir: dir.to_path_buf(),
        base_port: up.base_port,
    })
}

fn dashboard_addr(base_port: u16) -> Result<SocketAddr> {
    let port = if base_port == 0 {
        0
    } else {
        base_port.checked_add(200).context("--base-port is too high for the dashboard port")?
    };
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Refuses to start over a running testnet; cleans up after a dead one.
fn prepare_dir(dir: &Path) -> Result<()> {
    if let Some(state) = TestnetState::read(dir)? {
        if pid_alive(state.supervisor_pid) {
            bail!(
                "a testnet is already running in {} (supervisor pid {}, dashboard {}); stop it \
                 with `ember-testnet down --dir {}` or pick another --dir",
                dir.display(),
                state.supervisor_pid,
                state.dashboard_url,
                dir.display()
            );
        }
        kill_leftover_nodes(&state);
        std::fs::remove_file(TestnetState::path(dir))?;
    }
    Ok(())
}

/// `ember-testnet bench`: runs the benchmark with progress on stderr, prints the table (or
/// JSON) on stdout. Ctrl-C stops it at the next step; the nodes and the temp dir go away.
fn bench(quick: bool, json: bool, nodes: usize, dir: Option<PathBuf>) -> Result<()> {
    let stop = stop_flag(true);
    let opts = ember_testnet::bench::BenchOptions { quick, nodes, dir, stop };
    let started = Instant::now();
    let report = ember_testnet::bench::run(&opts, |step| {
        ember_node::errln!("[bench {:>5.1}s] {step}", started.elapsed().as_secs_f64());
    })?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(std::io::stdout().lock(), "{}", report.table())?;
    }
    Ok(())
}

/// SIGKILLs the node processes a dead supervisor left behind.
fn kill_leftover_nodes(state: &TestnetState) -> usize {
    let mut killed = 0;
    for n in &state.nodes {
        if let Some(pid) = n.pid.filter(|p| pid_runs(*p, "ember-node")) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            killed += 1;
        }
    }
    killed
}

/// Sets `flag` on SIGINT/SIGTERM (and SIGHUP when `hup`: a closed terminal stops a
/// foreground testnet cleanly instead of orphaning its nodes).
fn stop_flag(hup: bool) -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let mut sigs = vec![signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM];
    if hup {
        sigs.push(signal_hook::consts::SIGHUP);
    }
    for sig in sigs {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    flag
}

fn up_foreground(opts: &TestnetOptions, base_port: u16) -> Result<()> {
    let stop = stop_flag(true);
    let sup = Supervisor::start(opts, dashboard_addr(base_port)?, progress_bar())?;
    // A closed stdout does not stop the network: the live line is on stderr, and Ctrl-C
    // stops it as always.
    let printed = print_summary(&sup.state(), &sup.view(), stdout_width())
        .and_then(|()| outln!("Ctrl-C stops every node.\n"));
    if let Err(e) = printed {
        ember_node::errln!(
            "note: cannot print to standard output ({e}); the testnet keeps running"
        );
    }
    // On a terminal the live line is redrawn in place, so it must never wrap (a wrapped
    // line cannot be redrawn); elsewhere (a log file) a line is written when it changes.
    let tty = std::io::stderr().is_terminal();
    let mut shown = String::new();
    let mut last = Instant::now() - Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) && !sup.shutdown_requested() {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            let view = sup.view();
            if tty {
                let width = terminal_width(true).unwrap_or(80);
                ember_node::errout!("\r\x1b[K{}", live_line(&view, width));
            } else {
                // COLUMNS, when set, holds for a log or pipe too (the README's promise).
                let line = live_line(&view, terminal_width(false).unwrap_or(usize::MAX));
                if line != shown {
                    ember_node::errln!("{line}");
                    shown = line;
                }
            }
        }
    }
    if tty {
        ember_node::errln!();
    }
    ember_node::errln!("[testnet] stopping every node");
    sup.shutdown()?;
    ember_node::errln!("[testnet] stopped; data and logs stay in {}", opts.dir.display());
    Ok(())
}

/// Draws the start-up progress on one terminal line, cut to the terminal's width (one line
/// per update otherwise).
fn progress_bar() -> impl FnMut(Progress<'_>) {
    let tty = std::io::stderr().is_terminal();
    let mut last_step = String::new();
    move |p| {
        if !tty {
            ember_node::errln!("[testnet] {p}");
            return;
        }
        if !last_step.is_empty() && last_step != p.step {
            ember_node::errln!();
        }
        last_step = p.step.to_string();
        let width = terminal_width(true).unwrap_or(80);
        ember_node::errout!("\r\x1b[K{}", fit(&format!("[testnet] {p}"), width.saturating_sub(1)));
        if p.done == p.total && p.step == "nodes on one tip" {
            ember_node::errln!();
        }
    }
}

fn supervise(opts: &TestnetOptions, base_port: u16) -> Result<()> {
    // In the background a closed terminal must not stop the testnet: only SIGINT/SIGTERM
    // or `down` do.
    let stop = stop_flag(false);
    let _ =
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::new(AtomicBool::new(false)));
    let sup = Supervisor::start(opts, dashboard_addr(base_port)?, |step| {
        ember_node::errln!("[testnet] {step}")
    })?;
    ember_node::errln!("[testnet] up; dashboard {}", sup.state().dashboard_url);
    while !stop.load(Ordering::Relaxed) && !sup.shutdown_requested() {
        std::thread::sleep(Duration::from_millis(100));
    }
    ember_node::errln!("[testnet] stopping every node");
    sup.shutdown()?;
    ember_node::errln!("[testnet] stopped");
    Ok(())
}

fn up_detached(up: &UpArgs, opts: &TestnetOptions) -> Result<()> {
    std::fs::create_dir_all(&opts.dir)
        .with_context(|| format!("cannot create {}", opts.dir.display()))?;
    let log_path = opts.dir.join("supervisor.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find the ember-testnet executable")?;
    let mut child = Command::new(exe)
        .arg("--dir")
        .arg(&opts.dir)
        .arg("supervise")
        .args(["--nodes", &up.nodes.to_string()])
        .args(["--topology", opts.topology.name()])
        .args(["--miners", &up.miners])
        .args(["--block-time", &up.block_time.to_string()])
        .args(["--base-port", &up.base_port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: Ctrl-C in this terminal does not reach it.
        .process_group(0)
        .spawn()
        .context("cannot start the supervisor")?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut shown = 0;
    loop {
        shown = echo_new_lines(&log_path, shown);
        if let Some(status) = child.try_wait()? {
            bail!("the supervisor exited ({status}); see {}", log_path.display());
        }
        if let Ok(Some(state)) = TestnetState::read(&opts.dir) {
            if state.supervisor_pid == pid {
                let view = fetch_view(&state)?;
                print_summary(&state, &view, stdout_width())?;
                outln!("The testnet runs in the background (supervisor pid {pid}).")?;
                outln!("Stop it with: ember-testnet down --dir {}\n", opts.dir.display())?;
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("the testnet did not come up within 3 minutes; see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Prints the lines of `path` after byte `from` to stderr; returns the new offset.
fn echo_new_lines(path: &Path, from: usize) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let upto = text[..].rfind('\n').map_or(from, |i| i + 1).max(from);
    if upto > from {
        ember_node::errout!("{}", &text[from..upto]);
    }
    upto
}

fn status(dir: &Path, as_json: bool) -> Result<()> {
    let state = TestnetState::load_running(dir)?;
    let mut view = fetch_view(&state)?;
    if as_json {
        view["dashboard_url"] = json!(state.dashboard_url);
        view["supervisor_pid"] = json!(state.supervisor_pid);
        outln!("{}", serde_json::to_string_pretty(&view)?)?;
    } else {
        let width = stdout_width();
        print_table(&view, width)?;
        print_links(&view, width)?;
        outln!("\nDashboard: {}", state.dashboard_url)?;
    }
    Ok(())
}

fn down(dir: &Path) -> Result<()> {
    let Some(state) = TestnetState::read(dir)? else {
        bail!("no testnet is running in {} (no testnet.json there)", dir.display());
    };
    if pid_alive(state.supervisor_pid) {
        // The supervisor may exit before its answer arrives: its exit is what counts.
        let sent = send_control(&state, &Control::Down);
        let deadline = Instant::now() + Duration::from_secs(120);
        while pid_alive(state.supervisor_pid) {
            if Instant::now() > deadline {
                bail!(
                    "the supervisor (pid {}) did not exit within 2 minutes{}; see {}",
                    state.supervisor_pid,
                    sent.err().map(|e| format!(" ({e:#})")).unwrap_or_default(),
                    dir.join("supervisor.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Whatever a crashed supervisor left behind.
    let killed = kill_leftover_nodes(&state);
    let _ = std::fs::remove_file(TestnetState::path(dir));
    outln!(
        "stopped {} node(s) and the supervisor{}; data and logs stay in {}",
        state.nodes.len(),
        if killed > 0 { format!(" ({killed} left-over node(s) killed)") } else { String::new() },
        dir.display()
    )?;
    Ok(())
}

fn node_command(dir: &Path, node: usize, cmd: Control) -> Result<()> {
    let state = TestnetState::load_running(dir)?;
    state.check_index(node)?;
    outln!("{}", send_control(&state, &cmd)?)?;
    Ok(())
}

fn check_link(state: &TestnetState, a: usize, b: usize) -> Result<()> {
    state.check_index(a)?;
    state.check_index(b)?;
    if !state.links.iter().any(|l| (l.from, l.to) == (a, b) || (l.from, l.to) == (b, a)) {
        let all: Vec<String> = state.links.iter().map(|l| format!("{}-{}", l.to, l.from)).collect();
        bail!("there is no link between node {a} and node {b} (links: {})", all.join(", "));
    }
    Ok(())
}

fn logs(dir: &Path, node: usize, follow: bool, lines: usize) -> Result<()> {
    let path = match TestnetState::read(dir)? {
        Some(state) => {
            state.check_index(node)?;
            state.nodes[node].log.clone()
        }
        None => {
            // After `down` the logs stay; still show them.
            let p = dir.join(format!("node{node}")).join("node.log");
            if !p.exists() {
                bail!("no testnet in {} has a node {node} (no {})", dir.display(), p.display());
            }
            p
        }
    };
    let mut f =
        std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    let all: Vec<&str> = text.lines().collect();
    let from = if lines == 0 { 0 } else { all.len().saturating_sub(lines) };
    let mut out = std::io::stdout().lock();
    for l in &all[from..] {
        writeln!(out, "{l}")?;
    }
    out.flush()?;
    if follow {
        let stop = stop_flag(true);
        let mut pos = f.stream_position()?;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(pos);
            if len < pos {
                pos = 0; // truncated: start over
            }
            if len > pos {
                let mut f = std::fs::File::open(&path)?;
                f.seek(std::io::SeekFrom::Start(pos))?;
                let mut buf = Vec::new();
                f.read_to_end(&mut buf)?;
                pos += buf.len() as u64;
                out.write_all(&buf)?;
                out.flush()?;
            }
        }
    }
    Ok(())
}

/// The width results on stdout must fit: `COLUMNS`, else the terminal's, else none (a
/// pipe or a file: whole lines for scripts).
fn stdout_width() -> Option<usize> {
    terminal_width(std::io::stdout().is_terminal())
}

/// Columns of the terminal: `COLUMNS` when set, else what `stty size` says of the
/// controlling terminal when `tty` (80 if it cannot say), else `None` (no limit). `stty`
/// rather than an ioctl: no unsafe code and no extra dependency.
fn terminal_width(tty: bool) -> Option<usize> {
    let columns = std::env::var("COLUMNS").ok().and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(n) = columns.filter(|n| *n > 0) {
        return Some(n);
    }
    if !tty {
        return None;
    }
    let asked = std::fs::File::open("/dev/tty").ok().and_then(|tty| {
        Command::new("stty").arg("size").stdin(tty).stderr(Stdio::null()).output().ok()
    });
    let width = asked.and_then(|out| {
        let text = String::from_utf8(out.stdout).ok()?;
        text.split_whitespace().nth(1)?.parse::<usize>().ok().filter(|n| *n > 0)
    });
    Some(width.unwrap_or(80))
}

/// `text` cut to at most `width` characters, ending in '…' when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn short(id: &str, len: usize) -> &str {
    &id[..len.min(id.len())]
}

/// The live line: every node's height and tip, `[testnet] n0:12@a793e92c  n1:...`, in at
/// most `width - 1` characters (the last column of a terminal would wrap a redrawn line):
/// shorter tips, then heights only, then cut with '…'.
fn live_line(view: &Value, width: usize) -> String {
    let nodes = view["nodes"].as_array().cloned().unwrap_or_default();
    let line = |tip_len: Option<usize>| {
        let parts: Vec<String> = nodes
            .iter()
            .map(|n| {
                let i = n["index"].as_u64().unwrap_or(0);
                if n["running"] == true && n["error"].is_null() {
                    match tip_len {
                        Some(len) => {
                            format!(
                                "n{i}:{}@{}",
                                n["height"],
                                short(n["tip"].as_str().unwrap_or(""), len)
                            )
                        }
                        None => format!("n{i}:{}", n["height"]),
                    }
                } else {
                    format!("n{i}:down")
                }
            })
            .collect();
        format!("[testnet] {}", parts.join("  "))
    };
    let room = width.saturating_sub(1);
    [Some(8), Some(4), None]
        .into_iter()
        .map(line)
        .find(|l| l.chars().count() <= room)
        .unwrap_or_else(|| fit(&line(None), room))
}

/// The nodes table, its columns as wide as their widest cell. When wider than `width`,
/// tips are shortened, then the p2p, mempool and peers columns are left out in that
/// order (a last line names them), and lines are cut as a last resort: never wrapped.
fn render_table(view: &Value, width: Option<usize>) -> String {
    const HEADER: [&str; 8] = ["node", "state", "rpc", "p2p", "height", "tip", "peers", "mempool"];
    const RIGHT: [bool; 8] = [false, false, false, false, true, false, true, true];
    let nodes: Vec<&Value> = view["nodes"].as_array().into_iter().flatten().collect();
    let rows = |tip_len: usize| -> Vec<[String; 8]> {
        nodes
            .iter()
            .map(|n| {
                let state = if n["running"] != true {
                    "stopped"
                } else if !n["error"].is_null() {
                    "no answer"
                } else if n["miner"] == true {
                    "mining"
                } else {
                    "running"
                };
                [
                    n["index"].to_string(),
                    state.to_owned(),
                    n["rpc_url"].as_str().unwrap_or("").to_owned(),
                    n["p2p_addr"].as_str().unwrap_or("").to_owned(),
                    n["height"].to_string(),
                    short(n["tip"].as_str().unwrap_or(""), tip_len).to_owned(),
                    n["peers"].to_string(),
                    n["mempool"].to_string(),
                ]
            })
            .collect()
    };
    let render = |rows: &[[String; 8]], hidden: &[usize]| -> String {
        let shown: Vec<usize> = (0..8).filter(|c| !hidden.contains(c)).collect();
        let widths: Vec<usize> = (0..8)
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].chars().count())
                    .chain([HEADER[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: [&str; 8]| {
            let parts: Vec<String> = shown
                .iter()
                .map(|&c| {
                    if RIGHT[c] {
                        format!("{:>w$}", cells[c], w = widths[c])
                    } else {
                        format!("{:<w$}", cells[c], w = widths[c])
                    }
                })
                .collect();
            parts.join(" ").trim_end().to_owned()
        };
        let mut out = line(HEADER);
        for r in rows {
            out.push('\n');
            out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6], &r[7]]));
        }
        out
    };
    let widest = |t: &str| t.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let Some(width) = width else { return render(&rows(12), &[]) };
    let layouts: [(usize, &[usize]); 5] =
        [(12, &[]), (8, &[]), (8, &[3]), (8, &[3, 7]), (8, &[3, 7, 6])];
    let note = |hidden: &[usize]| {
        let names: Vec<&str> = hidden.iter().map(|&c| HEADER[c]).collect();
        let names = names.join(", ");
        let long = format!(
            "({names} not shown: the terminal is {width} columns; `status --json` has every field)"
        );
        let short = format!("({names} not shown: too narrow)");
        if long.chars().count() <= width {
            long
        } else {
            fit(&short, width)
        }
    };
    for (tip_len, hidden) in layouts {
        let table = render(&rows(tip_len), hidden);
        if widest(&table) <= width {
            if hidden.is_empty() {
                return table;
            }
            return format!("{table}\n{}", note(hidden));
        }
    }
    let hidden = [3, 7, 6];
    let table = render(&rows(8), &hidden);
    let cut: Vec<String> = table.lines().map(|l| fit(l, width)).collect();
    format!("{}\n{}", cut.join("\n"), note(&hidden))
}

fn print_table(view: &Value, width: Option<usize>) -> std::io::Result<()> {
    outln!("{}", render_table(view, width))
}

/// The links, as many to a line as `width` allows.
fn render_links(view: &Value, width: Option<usize>) -> String {
    let links: Vec<String> = view["links"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let mut s = format!("{}->{}", l["from"], l["to"]);
            let mut notes = Vec::new();
            if l["partitioned"] == true {
                notes.push("partitioned".to_string());
            } else if l["connected"] != true {
                notes.push("down".to_string());
            }
            if l["latency_ms"].as_u64().unwrap_or(0) > 0 {
                notes.push(format!("{}ms", l["latency_ms"]));
            }
            if l["loss_pct"].as_f64().unwrap_or(0.0) > 0.0 {
                notes.push(format!("{}% loss", l["loss_pct"]));
            }
            if !notes.is_empty() {
                s.push_str(&format!(" ({})", notes.join(", ")));
            }
            s
        })
        .collect();
    let title = "Links (dialer->listener, each through a proxy):";
    let Some(width) = width else { return format!("{title} {}", links.join("  ")) };
    let mut out = title.to_owned();
    let mut line = String::from(" ");
    for link in links {
        if line.len() > 2 && line.chars().count() + 2 + link.chars().count() > width {
            out.push('\n');
            out.push_str(line.trim_end());
            line = String::from(" ");
        }
        line.push(' ');
        line.push_str(&link);
    }
    if line.len() > 1 {
        out.push('\n');
        out.push_str(line.trim_end());
    }
    out.lines().map(|l| fit(l, width)).collect::<Vec<_>>().join("\n")
}

fn print_links(view: &Value, width: Option<usize>) -> std::io::Result<()> {
    outln!("\n{}", render_links(view, width))
}

fn print_summary(state: &TestnetState, view: &Value, width: Option<usize>) -> std::io::Result<()> {
    outln!()?;
    print_table(view, width)?;
    print_links(view, width)?;
    let rpc0 = &state.nodes[0].rpc_url;
    let n = state.nodes.len();
    // From the directory holding the default .testnet, the commands need no --dir (and
    // stay short enough for the terminal).
    let cwd = std::env::current_dir().unwrap_or_default();
    let (cd, dir) = if state.dir == cwd.join(".testnet") {
        (Some(cwd.display().to_string()), String::new())
    } else {
        (None, format!(" --dir {}", state.dir.display()))
    };
    outln!("\nDashboard: {}", state.dashboard_url)?;
    outln!("\nIn another terminal:")?;
    if let Some(bin_dir) = wallet_dir_off_path() {
        outln!("  export PATH=\"{}:$PATH\"", bin_dir.display())?;
    }
    if let Some(cd) = &cd {
        outln!("  cd {cd}")?;
    }
    let miners: Vec<String> =
        state.nodes.iter().filter(|n| n.miner).map(|n| n.index.to_string()).collect();
    outln!("\nSend coins (dev account 0 is prefunded with 1,000,000 coins):")?;
    outln!("  export EMBER_NODE={rpc0}")?;
    outln!("  ember-wallet import-dev-key --wallet dev.json")?;
    outln!("  ember-wallet create")?;
    outln!("  ember-wallet --wallet dev.json send --to $(ember-wallet address) \\")?;
    outln!("      --amount 12.5 --wait")?;
    outln!("  ember-wallet balance")?;
    match miners.len() {
        0 => outln!("No node mines (--miners \"\"): `ember-testnet mine I N` makes blocks.")?,
        _ => {
            let who = if miners.len() == 1 { "node" } else { "nodes" };
            outln!(
                "Mining rewards ({who} {}) go to dev account 0, so its balance grows past\n\
                 1,000,000 with every block.",
                miners.join(", ")
            )?;
        }
    }
    outln!("\nWatch it and break it:")?;
    outln!("  ember-testnet{dir} status")?;
    outln!("  ember-testnet{dir} mine 0 5")?;
    if n >= 2 {
        let half = n / 2;
        let group =
            |r: std::ops::Range<usize>| r.map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        outln!("  ember-testnet{dir} partition {}/{}", group(0..half), group(half..n))?;
        outln!("  ember-testnet{dir} heal")?;
        outln!("  ember-testnet{dir} kill 1")?;
        outln!("  ember-testnet{dir} start 1")?;
        outln!("  ember-testnet{dir} logs 1")?;
    }
    outln!("  ember-testnet{dir} down")?;
    outln!("\nData and logs: {} (node<i>/node.log).", state.dir.display())
}

/// The directory of the `ember-wallet` binary next to this one, when it is not on `PATH`.
fn wallet_dir_off_path() -> Option<PathBuf> {
    let dir = ember_testnet::binary("ember-wallet").ok()?.parent()?.to_path_buf();
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("ember-wallet").exists()));
    (!on_path).then_some(dir)
}

fn soak(
    dir: &std::path::Path,
    minutes: f64,
    seed: Option<u64>,
    nodes: usize,
    json: bool,
) -> Result<()> {
    if !(minutes > 0.0 && minutes <= 24.0 * 60.0) {
        anyhow::bail!("--minutes must be between 0 and 1440, not {minutes}");
    }
    if !(2..=20).contains(&nodes) {
        anyhow::bail!("--nodes must be between 2 and 20 for a soak");
    }
    if let Ok(state) = std::fs::read_to_string(dir.join("testnet.json")) {
        if !state.is_empty() {
            anyhow::bail!(
                "{} holds a running testnet; use another --dir or `ember-testnet down` first",
                dir.display()
            );
        }
    }
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let mut opts = ember_testnet::soak::SoakOptions::new(
        std::time::Duration::from_secs_f64(minutes * 60.0),
        seed,
        dir.to_path_buf(),
    );
    opts.nodes = nodes;
    let report = ember_testnet::soak::soak(&opts, &mut |line| ember_node::errln!("[soak] {line}"))?;
    let text = if json {
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        ember_testnet::soak::render(&report)
    };
    let printed = write!(std::io::stdout().lock(), "{text}");
    // The verdict is the exit code, whether or not anyone read the report.
    if !report.violations.is_empty() {
        std::process::exit(1);
    }
    Ok(printed?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A view of `n` nodes with big heights and whole 64-digit tips, linked in a mesh.
    fn view(n: usize) -> Value {
        let nodes: Vec<Value> = (0..n)
            .map(|i| {
                json!({
                    "index": i, "running": true, "error": null, "miner": i == 0,
                    "rpc_url": format!("http://127.0.0.1:{}", 40_000 + i),
                    "p2p_addr": format!("127.0.0.1:{}", 50_000 + i),
                    "height": 123_456, "tip": "ab".repeat(32), "peers": n - 1, "mempool": 12_345,
                })
            })
            .collect();
        let links: Vec<Value> = (0..n)
            .flat_map(|a| (0..a).map(move |b| json!({"from": a, "to": b, "connected": true})))
            .collect();
        json!({ "nodes": nodes, "links": links })
    }

    fn widest(text: &str) -> usize {
        text.lines().map(|l| l.chars().count()).max().unwrap_or(0)
    }

    #[test]
    fn the_live_line_never_reaches_the_last_column() {
        for n in [1, 4, 6, 12, 50] {
            for width in [20, 40, 80, 120] {
                let line = live_line(&view(n), width);
                assert!(line.chars().count() < width, "{n} nodes, {width} columns: {line}");
                assert!(line.starts_with("[testnet]") || width < 12, "{line}");
            }
        }
        // Wide enough: every node with its height and tip.
        let line = live_line(&view(4), 200);
        assert_eq!(line.matches("@abababab").count(), 4, "{line}");
        // 6 nodes at 80 columns (the README's mesh): heights of every node still shown.
        let line = live_line(&view(6), 80);
        assert!((0..6).all(|i| line.contains(&format!("n{i}:123456"))), "{line}");
    }

    #[test]
    fn tables_and_links_fit_the_width_and_say_what_they_leave_out() {
        for n in [1, 6, 20] {
            for width in [40, 60, 80, 100] {
                let table = render_table(&view(n), Some(width));
                assert!(widest(&table) <= width, "{n} nodes, {width} columns:\n{table}");
                assert_eq!(table.lines().filter(|l| l.starts_with(char::is_numeric)).count(), n);
                let links = render_links(&view(n), Some(width));
                assert!(widest(&links) <= width, "{width} columns:\n{links}");
            }
        }
        let table = render_table(&view(6), Some(80));
        assert!(table.contains("p2p not shown") || table.lines().next().unwrap().contains("p2p"));
        // Without a width (a pipe), nothing is left out.
        let table = render_table(&view(6), None);
        assert!(table.lines().next().unwrap().contains("p2p") && table.contains(&"ab".repeat(6)));
        assert!(!render_links(&view(6), None).contains('\n'));
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_the_context() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("printing the table");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("no testnet is running")));
    }
}
