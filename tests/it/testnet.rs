//! `ember-testnet` end to end, with real node processes behind real link proxies on
//! loopback: a payment made on one end of a line of five is confirmed on the other end; a
//! partition with a miner on each side lets both sides grow their own branch, and healing
//! it converges every node on one tip and one state; latency and loss slow a link without
//! breaking it; a node killed while the network mines catches up after a restart; a
//! foreground `up` stops its nodes on Ctrl-C; the CLI runs a detached testnet, refuses bad
//! input without changing anything, and `down` leaves no process and no listening port;
//! the dashboard, loaded in headless Chromium, shows every node and a block mined during
//! the test.
//!
//! Every wait has a deadline (`wait_for`); blocks come from `mine` (instant devnet blocks)
//! except where continuous mining is the point. The CLI tests run the binaries, which the
//! first test to need them builds (`ember_testnet::binary`).

use ember_core::{Keypair, Network};
use ember_testnet::state::{pid_alive, TestnetState};
use ember_testnet::{binary, wait_for, Testnet, TestnetOptions, Topology};
use ember_wallet::rpc::RpcClientError;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(60);

fn start(nodes: usize, topology: Topology, miners: &[usize], dir: &Path) -> Testnet {
    let opts = TestnetOptions {
        miners: miners.to_vec(),
        block_time_secs: 0.5,
        ..TestnetOptions::new(nodes, topology, dir)
    };
    Testnet::start(&opts, |_| {}).expect("the testnet starts")
}

fn call(net: &Testnet, i: usize, method: &str, params: Value) -> Value {
    net.client(i)
        .call(method, params)
        .unwrap_or_else(|e| panic!("node {i}: {method}: {e}\nlog:\n{}", net.node(i).log_tail()))
}

#[test]
fn payment_sent_on_node_0_is_confirmed_on_node_4_of_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let net = start(5, Topology::Line, &[], dir.path());
    assert_eq!(net.links().len(), 4);

    // The wallet CLI, as a user would run it against node 0.
    let wallet_dir = tempfile::tempdir().unwrap();
    let wallet = |args: &[&str]| -> Value {
        let out = Command::new(binary("ember-wallet").unwrap())
            .args(["--json", "--node", net.node(0).rpc_url(), "--wallet"])
            .arg(wallet_dir.path().join("dev.json"))
            .args(args)
            .env("EMBER_WALLET_KDF", "test")
            .env("EMBER_WALLET_PASSPHRASE", "testnet passphrase")
            .env_remove("EMBER_NODE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ember-wallet {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    wallet(&["import-dev-key", "--index", "1"]);
    let to = Keypair::generate().address().to_bech32(Network::Devnet.hrp());
    let sent = wallet(&["send", "--to", &to, "--amount", "12.5"]);
    let txid = sent["txid"].as_str().expect("txid").to_string();

    // Relayed hop by hop through four proxies into node 4's mempool...
    wait_for(WAIT, "the payment to reach node 4's mempool", || {
        call(&net, 4, "mempool_list", json!([]))
            .as_array()?
            .iter()
            .any(|t| t == txid.as_str())
            .then_some(())
    })
    .unwrap();
    // ...then mined on node 0 and confirmed on node 4, with the recipient's balance.
    net.mine(0, 1).unwrap();
    wait_for(WAIT, "the payment to be confirmed on node 4", || {
        (call(&net, 4, "chain_getTransaction", json!([txid]))["status"] == "confirmed")
            .then_some(())
    })
    .unwrap();
    assert_eq!(call(&net, 4, "account_get", json!([to]))["balance"], "12.5");
}

/// Every node's (tip, state digest) from one `state_digest` call each.
fn tips_and_digests(net: &Testnet) -> Option<Vec<(String, String)>> {
    (0..net.len())
        .map(|i| {
            let v = net.client(i).call("state_digest", json!([])).ok()?;
            Some((v["tip"].as_str()?.to_string(), v["digest"].as_str()?.to_string()))
        })
        .collect()
}

#[test]
fn partitioned_sides_grow_apart_and_converge_after_heal() {
    let dir = tempfile::tempdir().unwrap();
    // A miner at each end of the line: 0-1 | 2-3-4 once partitioned.
    let mut net = start(5, Topology::Line, &[0, 4], dir.path());
    net.wait_for_height(1, WAIT).unwrap();

    // Bad partitions are refused, each for its reason, and change nothing.
    let bad: [(&[&[usize]], &str); 4] = [
        (&[&[0, 1]], "two non-empty groups"),
        (&[&[0, 1], &[2, 3, 9]], "there is no node 9"),
        (&[&[0, 1], &[1, 2, 3, 4]], "node 1 is in more than one group"),
        (&[&[0], &[1, 2]], "node 3 is in no group"),
    ];
    for (groups, why) in bad {
        let err = net.partition(groups).expect_err(&format!("{groups:?} accepted")).to_string();
        assert!(err.contains(why), "{groups:?}: {err:?} lacks {why:?}");
    }
    assert!(net.links().iter().all(|l| !l.faults().partitioned));

    net.partition(&[&[0, 1], &[2, 3, 4]]).unwrap();
    // The cut link 2->1 carries nothing any more: node 1 only sees node 0, node 2 only node 3.
    let info = |i| call(&net, i, "node_info", json!([]));
    wait_for(WAIT, "the cut link to drop", || {
        (info(1)["peers"] == 1 && info(2)["peers"] == 1).then_some(())
    })
    .unwrap();
    let (a0, b0) = (net.tip(1).unwrap().0, net.tip(2).unwrap().0);

    // Both sides keep mining, each on its own branch.
    wait_for(WAIT, "both sides to mine 2 blocks apart", || {
        (net.tip(1).ok()?.0 >= a0 + 2 && net.tip(2).ok()?.0 >= b0 + 2).then_some(())
    })
    .unwrap();
    let (a_tip, b_tip) = (net.tip(1).unwrap().1, net.tip(2).unwrap().1);
    assert_ne!(a_tip, b_tip);
    // Neither side has heard of the other's new blocks: each answers "not found" (not any
    // error: an unreachable node would fail the call too).
    assert_not_found(net.client(2).call("chain_getHeader", json!([a_tip])), "A leaked to B");
    assert_not_found(net.client(1).call("chain_getHeader", json!([b_tip])), "B leaked to A");

    net.heal();
    // One tip and one account state everywhere, read in one pass (the miners go on).
    let all = wait_for(WAIT, "all nodes to converge on one tip and state", || {
        let all = tips_and_digests(&net)?;
        all.windows(2).all(|w| w[0] == w[1]).then_some(all)
    })
    .unwrap_or_else(|e| panic!("{e:#}: {}", net.describe_tips()));
    // The converged chain holds the heavier side's blocks: one of the two branches lost.
    let on_main = |id: &str| {
        net.client(0).call("chain_getHeader", json!([id])).is_ok_and(|h| h["main_chain"] == true)
    };
    assert!(on_main(&a_tip) != on_main(&b_tip), "exactly one branch wins: {all:?}");
    net.stop().unwrap();
}

/// The node's "not found" answer (JSON-RPC error -32004), and nothing else.
fn assert_not_found(r: Result<Value, RpcClientError>, what: &str) {
    match r {
        Err(RpcClientError::Rpc { code: -32004, .. }) => {}
        other => panic!("{what}: expected the not-found error -32004, got {other:?}"),
    }
}

#[test]
fn node_killed_while_the_network_mines_catches_up_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = start(3, Topology::Line, &[0], dir.path());
    net.wait_for_height(2, WAIT).unwrap();
    let old_pid = net.node(2).pid();

    net.kill(2).unwrap();
    assert!(!net.is_running(2));
    let err = format!("{:#}", net.mine(2, 1).expect_err("a killed node cannot mine"));
    assert!(err.contains("cannot reach the node"), "{err}");
    let (at_kill, _) = net.tip(0).unwrap();
    // The miner keeps going without node 2.
    wait_for(WAIT, "node 0 to mine 3 blocks", || (net.tip(0).ok()?.0 >= at_kill + 3).then_some(()))
        .unwrap();

    net.start_node(2).unwrap();
    assert_ne!(net.node(2).pid(), old_pid);
    let err = net.start_node(2).expect_err("starting a running node is refused").to_string();
    assert!(err.contains("node 2 is already running"), "{err}");
    let (at_restart, _) = net.tip(0).unwrap();
    // Node 2 syncs what it missed and follows the miner again.
    wait_for(WAIT, "node 2 to catch up and agree", || {
        let tips = net.tips().ok()?;
        (tips[2].0 >= at_restart && tips.windows(2).all(|w| w[0].1 == w[1].1)).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e:#}\nnode 2 log:\n{}", net.node(2).log_tail()));
    net.stop().unwrap();
}

#[test]
fn latency_and_loss_slow_a_link_down_without_breaking_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = start(2, Topology::Line, &[], dir.path());
    let err = net.set_latency(0, 0, 10).expect_err("no link from a node to itself").to_string();
    assert!(err.contains("no link between node 0 and node 0"), "{err}");
    let err = net.set_loss(0, 1, 101.0).expect_err("a loss over 100%").to_string();
    assert!(err.contains("between 0 and 100"), "{err}");

    // The time for one block to cross the link 1->0, each way delayed.
    let cross = |net: &Testnet| {
        let t = std::time::Instant::now();
        let tip = net.mine(0, 1).unwrap().pop().unwrap();
        net.wait_for_tip(&[1], &tip, WAIT).unwrap();
        t.elapsed()
    };
    // The proxy counts what its faults did; the monotonic clock shows what that cost.
    let stats = |net: &Testnet| net.links()[0].stats();
    net.set_latency(1, 0, 300).unwrap();
    let before = stats(&net);
    let slow = cross(&net);
    let after = stats(&net);
    assert!(after.delayed > before.delayed, "no chunk was delayed: {after:?}");
    assert_eq!(after.held_back, before.held_back, "no loss configured yet");
    assert!(slow >= Duration::from_millis(300), "a block crossed a 300 ms link in {slow:?}");
    net.set_latency(0, 1, 0).unwrap();
    // Every chunk "lost" once: late by a retransmission timeout, never corrupted.
    net.set_loss(0, 1, 100.0).unwrap();
    let before = stats(&net);
    let lossy = cross(&net);
    let after = stats(&net);
    assert!(after.held_back > before.held_back, "no chunk was held back: {after:?}");
    assert!(lossy >= Duration::from_millis(200), "a block crossed a lossy link in {lossy:?}");
    net.set_loss(0, 1, 0.0).unwrap();
    cross(&net);
    assert_eq!(net.links()[0].faults(), ember_testnet::Faults::default());
    let digests = net.state_digests().unwrap();
    assert_eq!(digests[0], digests[1]);
    net.stop().unwrap();
}

/// A foreground `ember-testnet up`; on drop (a failed test) it gets SIGTERM, which stops
/// its nodes, and SIGKILL if it has not exited after 30 s.
struct Foreground(std::process::Child);

impl Foreground {
    fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0.id() as i32), sig);
    }

    fn wait(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        wait_for(timeout, "ember-testnet up to exit", || self.0.try_wait().ok().flatten())
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            self.signal(nix::sys::signal::Signal::SIGTERM);
            if self.wait(Duration::from_secs(30)).is_err() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }
}

#[test]
fn foreground_up_stops_every_node_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Foreground(
        Command::new(binary("ember-testnet").unwrap())
            .arg("--dir")
            .arg(dir.path())
            .args(["up", "--nodes", "2", "--miners", "", "--base-port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let state = wait_for(WAIT, "up to write testnet.json", || {
        assert!(up.0.try_wait().unwrap().is_none(), "up exited early");
        TestnetState::read(dir.path()).ok().flatten()
    })
    .unwrap();
    assert_eq!(state.supervisor_pid, up.0.id(), "up is its own supervisor");
    let node_pids: Vec<u32> = state.nodes.iter().filter_map(|n| n.pid).collect();
    assert_eq!(node_pids.len(), 2);
    // Another terminal's commands reach it.
    let run = testnet_cli(dir.path(), &["mine", "1", "1"]);
    assert!(run.ok, "{}", run.stderr);

    up.signal(nix::sys::signal::Signal::SIGINT);
    let status = up.wait(WAIT).unwrap();
    assert!(status.success(), "up exited with {status}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut up.0.stdout.take().unwrap(), &mut out).unwrap();
    assert!(out.contains("Dashboard: http://127.0.0.1:"), "{out}");
    for p in node_pids {
        assert!(!pid_alive(p), "node process {p} still runs after Ctrl-C");
    }
    assert!(!TestnetState::path(dir.path()).exists());
}

/// One finished run of the `ember-testnet` binary.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn testnet_cli(dir: &Path, args: &[&str]) -> Run {
    let out: Output = Command::new(binary("ember-testnet").unwrap())
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A testnet started with `up --detach` in a temp dir; `down` on drop, so a failing test
/// leaves nothing running.
struct Detached {
    dir: TempDir,
}

impl Detached {
    fn up(nodes: usize) -> Detached {
        let dir = tempfile::tempdir().unwrap();
        let n = nodes.to_string();
        let run = testnet_cli(
            dir.path(),
            &[
                "up",
                "--detach",
                "--nodes",
                &n,
                "--topology",
                "line",
                "--miners",
                "",
                "--base-port",
                "0",
            ],
        );
        let d = Detached { dir };
        assert!(run.ok, "up --detach failed:\n{}\n{}", run.stdout, run.stderr);
        assert!(run.stdout.contains("Dashboard: http://127.0.0.1:"), "{}", run.stdout);
        assert!(run.stdout.contains("ember-wallet import-dev-key"), "{}", run.stdout);
        d
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> Run {
        testnet_cli(self.path(), args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert!(r.ok, "ember-testnet {args:?} failed:\n{}\n{}", r.stdout, r.stderr);
        r.stdout
    }

    /// Fails with `needle` in the error.
    fn refused(&self, args: &[&str], needle: &str) {
        let r = self.run(args);
        assert!(!r.ok, "ember-testnet {args:?} was accepted:\n{}", r.stdout);
        assert!(
            r.stderr.contains(needle),
            "ember-testnet {args:?}: {:?} lacks {needle:?}",
            r.stderr
        );
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    fn state(&self) -> TestnetState {
        TestnetState::read(self.path()).unwrap().expect("testnet.json")
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if TestnetState::path(self.dir.path()).exists() {
            let _ = testnet_cli(self.dir.path(), &["down"]);
        }
    }
}

fn heights(status: &Value) -> Vec<u64> {
    status["nodes"].as_array().unwrap().iter().map(|n| n["height"].as_u64().unwrap()).collect()
}

#[test]
fn cli_runs_a_detached_testnet_refuses_bad_input_and_down_leaves_nothing() {
    let net = Detached::up(3);
    let s = net.status();
    assert_eq!(s["nodes"].as_array().unwrap().len(), 3);
    assert!(s["nodes"].as_array().unwrap().iter().all(|n| n["running"] == true));
    assert_eq!(s["links"].as_array().unwrap().len(), 2);

    // Bad input: a clear error, and nothing changes.
    net.refused(&["up", "--detach", "--base-port", "0"], "already running");
    net.refused(&["kill", "7"], "there is no node 7");
    net.refused(&["mine", "3", "1"], "there is no node 3");
    net.refused(&["partition", "0,1"], "two non-empty groups");
    net.refused(&["partition", "0/1"], "node 2 is in no group");
    net.refused(&["partition", "0,x/1,2"], "not a node index");
    net.refused(&["latency", "0", "2", "100"], "no link between node 0 and node 2");
    net.refused(&["loss", "0", "1", "150"], "between 0 and 100");
    net.refused(&["logs", "5"], "there is no node 5");
    let missing = net.path().join("nothing-here");
    let r = testnet_cli(&missing, &["status"]);
    assert!(!r.ok && r.stderr.contains("no testnet is running"), "{}", r.stderr);
    let s = net.status();
    assert!(s["nodes"].as_array().unwrap().iter().all(|n| n["running"] == true));
    assert!(s["links"].as_array().unwrap().iter().all(|l| l["partitioned"] == false));

    // Mine, kill, start: the restarted node catches up.
    let out = net.ok(&["mine", "0", "2"]);
    assert!(out.contains("mined 2 block(s)"), "{out}");
    net.ok(&["kill", "2"]);
    wait_for(WAIT, "status to show node 2 stopped", || {
        (net.status()["nodes"][2]["running"] == false).then_some(())
    })
    .unwrap();
    net.refused(&["kill", "2"], "node 2 is not running");
    net.ok(&["mine", "0", "1"]);
    net.ok(&["start", "2"]);
    wait_for(WAIT, "node 2 to catch up to height 3", || {
        (heights(&net.status()) == [3, 3, 3]).then_some(())
    })
    .unwrap();

    // Partition and heal through the supervisor.
    net.ok(&["partition", "0/1,2"]);
    let s = net.status();
    let cut: Vec<bool> =
        s["links"].as_array().unwrap().iter().map(|l| l["partitioned"] == true).collect();
    assert_eq!(cut, [true, false], "link 1->0 is cut, 2->1 is not");
    net.ok(&["latency", "1", "2", "20"]);
    net.ok(&["heal"]);
    assert!(net.status()["links"].as_array().unwrap().iter().all(|l| l["partitioned"] == false));
    assert!(!net.ok(&["logs", "0", "--lines", "5"]).is_empty());

    // Down: no process, no listening port, no state file.
    let state = net.state();
    let mut addrs: Vec<String> = vec![state.control_addr.clone()];
    for n in &state.nodes {
        addrs.push(n.rpc_url.trim_start_matches("http://").to_string());
        addrs.push(n.p2p_addr.clone());
    }
    addrs.extend(state.links.iter().map(|l| l.proxy_addr.clone()));
    let pids: Vec<u32> = std::iter::once(state.supervisor_pid)
        .chain(state.nodes.iter().filter_map(|n| n.pid))
        .collect();
    assert_eq!(pids.len(), 4);
    assert!(pids.iter().all(|p| pid_alive(*p)));
    let out = net.ok(&["down"]);
    assert!(out.contains("stopped 3 node(s)"), "{out}");
    for p in &pids {
        assert!(!pid_alive(*p), "process {p} still runs after down");
    }
    // Refused, not merely slow to answer: nothing listens there any more.
    for a in &addrs {
        let a: std::net::SocketAddr = a.parse().unwrap();
        match TcpStream::connect_timeout(&a, Duration::from_secs(1)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            other => panic!("{a} after down: expected the connection refused, got {other:?}"),
        }
    }
    assert!(!TestnetState::path(net.path()).exists());
    net.refused(&["status"], "no testnet is running");
    net.refused(&["down"], "no testnet is running");
    // The logs stay for a post-mortem.
    assert!(!net.ok(&["logs", "1"]).is_empty());
}

const CHROMIUM: &str = "/usr/bin/chromium";

/// Loads `url` in headless Chromium and returns the DOM after its scripts ran.
fn dump_dom(url: &str) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is not installed; the dashboard test needs it: run `make deps`"
    );
    let profile = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out_path: PathBuf = out_dir.path().join("dom.html");
    let out_file = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=5000", "--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let status = wait_for(Duration::from_secs(90), "chromium to dump the page", || {
        child.try_wait().ok().flatten()
    });
    if status.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(status.unwrap().success(), "chromium failed");
    std::fs::read_to_string(out_path).unwrap()
}

#[test]
fn dashboard_in_headless_chromium_shows_every_node_and_a_new_block() {
    let net = Detached::up(3);
    let out = net.ok(&["mine", "1", "1"]);
    let block = out.split_whitespace().last().unwrap().to_string();
    assert_eq!(block.len(), 64, "{out}");
    // The supervisor has seen the block on every node before the page is loaded.
    wait_for(WAIT, "the supervisor to see the block everywhere", || {
        let s = net.status();
        s["nodes"].as_array()?.iter().all(|n| n["tip"] == block.as_str()).then_some(())
    })
    .unwrap();

    let dom = dump_dom(&net.state().dashboard_url);
    for i in 0..3 {
        assert!(dom.contains(&format!("node {i}")), "node {i} missing from the dashboard:\n{dom}");
    }
    // The block is in the fork tree and the propagation table, as the tip of every node.
    assert!(dom.contains(&format!("data-block=\"{block}\"")), "block missing:\n{dom}");
    assert!(dom.contains(&format!(">{}</td>", &block[..12])), "block id not shown:\n{dom}");
    assert!(dom.contains("tip of node 0, 1, 2"), "block not shown as everyone's tip:\n{dom}");
    // The peer graph draws one circle per node inside its own svg (the fork tree draws
    // circles too, in another).
    let graph = dom
        .split_once("<svg id=\"graph\"")
        .and_then(|(_, rest)| rest.split_once("</svg>"))
        .map(|(graph, _)| graph)
        .unwrap_or_else(|| panic!("no peer graph:\n{dom}"));
    assert_eq!(graph.matches("<circle").count(), 3, "one circle per node in the graph:\n{graph}");
}
