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
use clap::Parser;
use ember_testnet::engine::watch::Dashboard;
use ember_testnet::engine::Engine;
use ember_testnet::export::{self, ExportOptions};
use ember_testnet::network::{check_partition, parse_indices, parse_partition, Progress};
use ember_testnet::state::{pid_alive, pid_runs, TestnetState};
use ember_testnet::supervisor::{fetch_view, send_control, Control, Supervisor};
use ember_testnet::TestnetOptions;
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

mod cli;
mod render;
use cli::{Cli, Cmd, ExportTarget, UpArgs};
use render::*;

fn main() {
    if let Err(e) = run() {
        // A reader that went away (`status | head -2`) is not an error.
        if is_broken_pipe(&e) {
            std::process::exit(0);
        }
        ember_node::errln!("error: {e:#}");
        std::process::exit(if e.downcast_ref::<Usage>().is_some() { 2 } else { 1 });
    }
}

/// A wrong command line found after parsing (a value out of range, a bad partition): exit
/// code 2, as clap's own usage errors.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Marks `r`'s error as a usage error.
fn usage<T>(r: Result<T>) -> Result<T> {
    r.map_err(|e| anyhow::Error::new(Usage(format!("{e:#}"))))
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
    // A directory written by `export compose` is attached to through docker instead of a
    // supervisor; bench, soak and export start nothing of it.
    if !matches!(cli.command, Cmd::Bench { .. } | Cmd::Soak { .. } | Cmd::Export { .. }) {
        if let Some(engine) = Engine::find(&dir)? {
            return attached(&engine, cli.command);
        }
    }
    match cli.command {
        Cmd::Up { up, detach } => {
            let opts = options(&up, &dir)?;
            usage(opts.validate())?;
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
            let groups = usage(parse_partition(&groups))?;
            let refs: Vec<&[usize]> = groups.iter().map(Vec::as_slice).collect();
            usage(check_partition(&refs, state.nodes.len()))?;
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
            usage(check_link(&state, a, b))?;
            outln!("{}", send_control(&state, &Control::Latency { a, b, ms })?)?;
            Ok(())
        }
        Cmd::Loss { a, b, pct } => {
            let state = TestnetState::load_running(&dir)?;
            usage(check_link(&state, a, b))?;
            if !(0.0..=100.0).contains(&pct) {
                usage(Err(anyhow::anyhow!(
                    "loss must be a percentage between 0 and 100, not {pct}"
                )))?;
            }
            outln!("{}", send_control(&state, &Control::Loss { a, b, pct })?)?;
            Ok(())
        }
        Cmd::Mine { node, count } => node_command(&dir, node, Control::Mine { node, count }),
        Cmd::Logs { node, follow, lines } => logs(&dir, node, follow, lines),
        Cmd::Soak { minutes, seed, nodes, json } => soak(&dir, minutes, seed, nodes, json),
        Cmd::Export { target } => export(target),
        Cmd::Dashboard { .. } => {
            let state = TestnetState::load_running(&dir)?;
            outln!("{} (served by the testnet's supervisor, pid {})", state.dashboard_url, {
                state.supervisor_pid
            })?;
            Ok(())
        }
    }
}

/// `ember-testnet export compose|k8s DIR`: writes the files and says what to run next.
fn export(target: ExportTarget) -> Result<()> {
    let (args, base_port, compose) = match target {
        ExportTarget::Compose { args, base_port } => (args, base_port, true),
        ExportTarget::K8s { args } => (args, 0, false),
    };
    let opts = ExportOptions {
        nodes: args.shape.nodes,
        topology: args.shape.topology,
        miners: usage(parse_indices(&args.shape.miners))?,
        block_time_secs: args.shape.block_time,
        image: args.image,
        project: args.project,
        base_port,
        force: args.force,
    };
    usage(opts.validate())?;
    let dir = std::path::absolute(&args.out)
        .with_context(|| format!("bad directory {}", args.out.display()))?;
    if !compose {
        let out = export::export_k8s(&opts, &dir)?;
        write!(std::io::stdout().lock(), "{}", export::k8s_next_steps(&opts, &out))?;
        return Ok(());
    }
    let out = export::export_compose(&opts, &dir)?;
    let image_here = Command::new("docker")
        .args(["image", "inspect", &opts.image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let text = export::compose_next_steps(&opts, &out, &dir, image_here);
    write!(std::io::stdout().lock(), "{text}")?;
    Ok(())
}

/// A command on an exported compose network (`--dir` holds engine.json).
fn attached(engine: &Engine, cmd: Cmd) -> Result<()> {
    let node = |i: usize| usage(engine.check_index(i).map(|()| i));
    let msg = match cmd {
        Cmd::Status { json } => return engine_status(engine, json),
        Cmd::Dashboard { port } => return engine_dashboard(engine, port),
        Cmd::Logs { node: i, follow, lines } => return engine.logs(node(i)?, follow, lines),
        Cmd::Down => engine.down()?,
        Cmd::Stop { node: i } => engine.stop(node(i)?)?,
        Cmd::Start { node: i } => engine.start(node(i)?)?,
        Cmd::Restart { node: i } => engine.restart(node(i)?)?,
        Cmd::Kill { node: i } => engine.kill(node(i)?)?,
        Cmd::Partition { groups } => {
            let groups = usage(parse_partition(&groups))?;
            let refs: Vec<&[usize]> = groups.iter().map(Vec::as_slice).collect();
            usage(check_partition(&refs, engine.len()))?;
            engine.partition(&refs)?
        }
        Cmd::Heal => engine.heal()?,
        Cmd::Latency { a, b, ms } => {
            node(a)?;
            node(b)?;
            engine.set_latency(a, b, ms)?
        }
        Cmd::Loss { a, b, pct } => {
            node(a)?;
            node(b)?;
            if !(0.0..=100.0).contains(&pct) {
                usage(Err(anyhow::anyhow!(
                    "loss must be a percentage between 0 and 100, not {pct}"
                )))?;
            }
            engine.set_loss(a, b, pct)?
        }
        Cmd::Mine { node: i, count } => {
            let ids = engine.mine(node(i)?, count)?;
            format!("node {i} mined {} block(s): {}", ids.len(), ids.join(" "))
        }
        Cmd::Up { .. } | Cmd::Supervise { .. } => bail!(
            "{} holds an exported compose network (engine.json): start it with `{}`, or `up` a \
             loopback testnet in another --dir",
            engine.dir.display(),
            engine.up_command()
        ),
        Cmd::Bench { .. } | Cmd::Soak { .. } | Cmd::Export { .. } => {
            unreachable!("run() never attaches these")
        }
    };
    outln!("{msg}")?;
    Ok(())
}

fn engine_status(engine: &Engine, as_json: bool) -> Result<()> {
    let view = engine.view()?;
    if as_json {
        outln!("{}", serde_json::to_string_pretty(&view)?)?;
        return Ok(());
    }
    let width = stdout_width();
    print_table(&view, width)?;
    print_links(&view, width)?;
    let nodes: Vec<&Value> = view["nodes"].as_array().into_iter().flatten().collect();
    let cell = |n: &Value, key: &str| n[key].as_str().unwrap_or("-").to_string();
    let health: Vec<String> =
        nodes.iter().map(|n| format!("n{}:{}", n["index"], cell(n, "health"))).collect();
    outln!("\nHealth (GET /ready): {}", health.join("  "))?;
    let off: Vec<String> = nodes
        .iter()
        .filter(|n| n["container_status"] != "missing")
        .filter(|n| n["networks"].as_array().is_none_or(|a| a != &[json!(engine.spec.network)]))
        .map(|n| {
            let nets: Vec<&str> =
                n["networks"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            format!("n{}:{}", n["index"], if nets.is_empty() { "-".into() } else { nets.join("+") })
        })
        .collect();
    if !off.is_empty() {
        outln!("Networks (others on {}): {}", engine.spec.network, off.join("  "))?;
    }
    if nodes.iter().all(|n| n["container_status"] == "missing") {
        outln!("\nNo container of this network exists yet: {}", engine.up_command())?;
    } else {
        outln!(
            "\nCompose project {} ({}); `ember-testnet --dir {} dashboard` shows it live.",
            engine.spec.project,
            engine.spec.compose_file.display(),
            engine.dir.display()
        )?;
    }
    Ok(())
}

/// Serves the dashboard of an exported network until Ctrl-C, with the live line on stderr.
fn engine_dashboard(engine: &Engine, port: Option<u16>) -> Result<()> {
    let stop = stop_flag(true);
    let default =
        (engine.spec.base_port != 0).then(|| engine.spec.base_port.checked_add(200)).flatten();
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let dash = match (port, default) {
        (Some(p), _) => Dashboard::start(engine.clone(), addr(p))?,
        (None, Some(p)) => Dashboard::start(engine.clone(), addr(p))
            .or_else(|_| Dashboard::start(engine.clone(), addr(0)))?,
        (None, None) => Dashboard::start(engine.clone(), addr(0))?,
    };
    outln!("Dashboard: {}\nCtrl-C stops the dashboard; the containers keep running.", dash.url())?;
    live_loop(&stop, || false, || dash.view());
    Ok(())
}

fn options(up: &UpArgs, dir: &Path) -> Result<TestnetOptions> {
    Ok(TestnetOptions {
        nodes: up.shape.nodes,
        topology: up.shape.topology,
        miners: usage(parse_indices(&up.shape.miners))?,
        block_time_secs: up.shape.block_time,
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
    live_loop(&stop, || sup.shutdown_requested(), || sup.view());
    ember_node::errln!("[testnet] stopping every node");
    sup.shutdown()?;
    ember_node::errln!("[testnet] stopped; data and logs stay in {}", opts.dir.display());
    Ok(())
}

/// Shows the live line on stderr until `stop` is set or `done()` says so.
fn live_loop(stop: &AtomicBool, done: impl Fn() -> bool, view: impl Fn() -> Value) {
    // On a terminal the live line is redrawn in place, so it must never wrap (a wrapped
    // line cannot be redrawn); elsewhere (a log file) a line is written when it changes.
    let tty = std::io::stderr().is_terminal();
    let mut shown = String::new();
    let mut last = Instant::now() - Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) && !done() {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            let view = view();
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
        .args(["--nodes", &up.shape.nodes.to_string()])
        .args(["--topology", opts.topology.name()])
        .args(["--miners", &up.shape.miners])
        .args(["--block-time", &up.shape.block_time.to_string()])
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
            // Its error is in the lines just echoed from its log: say where the rest is,
            // not a second error.
            echo_new_lines(&log_path, shown);
            ember_node::errln!(
                "the testnet did not start; the supervisor's log: {}",
                log_path.display()
            );
            std::process::exit(status.code().filter(|c| *c != 0).unwrap_or(1));
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
        // At 40 columns the values a user watches are still there: every node's height and
        // the start of its tip.
        let table = render_table(&view(6), Some(40));
        let rows: Vec<&str> = table.lines().filter(|l| l.starts_with(char::is_numeric)).collect();
        assert!(rows.iter().all(|r| r.contains("123456") && r.contains("abababab")), "{table}");
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
