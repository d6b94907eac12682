//! What the three binaries do when things go wrong in ordinary use: a stdout closed early
//! (`| head`), a terminal of 80 columns, a mistyped path, address or URL, a data dir of
//! another chain or in use, garbage where a transaction should be. Each must exit with its
//! documented code and an error that names the cause and the next step: never a panic, a
//! backtrace, a library's debug text or a capitalised `Error:`, and never a file created
//! by a command that only reads.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ember_core::params::{AllocationSpec, GenesisSpec};
use ember_core::Network;
use ember_testnet::{binary, NodeProcess};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::support::{assert_no_crash, dev_key, DevNode, Out};

const PASSPHRASE: &str = "pass";

impl Out {
    /// Exit code `code`, and an error on stderr that is a sentence, not a crash.
    fn refused(self, code: i32) -> Out {
        assert_eq!(self.code, Some(code), "{self:?}");
        assert_no_crash(&self.stderr);
        assert!(
            self.stderr.starts_with("error: ") || self.stderr.contains("\nerror: "),
            "{self:?}"
        );
        self
    }
}

fn command(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary(bin).expect("the binaries are built"));
    cmd.args(args).stdin(Stdio::null());
    for var in
        ["EMBER_NODE", "EMBER_NETWORK", "EMBER_GENESIS", "EMBER_WALLET_PASSPHRASE", "COLUMNS"]
    {
        cmd.env_remove(var);
    }
    cmd.env("EMBER_WALLET_KDF", "test");
    cmd.envs(env.iter().copied());
    cmd
}

fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
    let o = command(bin, args, env).output().expect("the binary runs");
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs with stdout a socket whose reader is already gone: every write fails with EPIPE,
/// as `| head` does once head has exited, but deterministically.
fn run_closed_stdout(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
    let (reader, writer) = UnixStream::pair().expect("socket pair");
    drop(reader);
    let o = command(bin, args, env)
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(writer)))
        .stderr(Stdio::piped())
        .output()
        .expect("the binary runs");
    Out {
        code: o.status.code(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Exit code 0 and nothing on stderr but notes: what a closed stdout must give.
fn assert_quiet(what: &str, out: &Out) {
    assert_eq!(out.code, Some(0), "{what} on a closed stdout: {out:?}");
    assert_no_crash(&out.stderr);
    assert!(
        !out.stderr.contains("Broken pipe") && !out.stderr.contains("error"),
        "{what}: {}",
        out.stderr
    );
}

/// A wallet file holding dev account 0, in `dir`.
fn dev_wallet(dir: &Path) -> String {
    let path = dir.join("dev.json").to_str().expect("utf-8").to_string();
    let env = [("EMBER_WALLET_PASSPHRASE", PASSPHRASE)];
    run("ember-wallet", &["--wallet", &path, "--network", "devnet", "import-dev-key"], &env).ok();
    path
}

fn wallet(wallet: &str, node: &str, args: &[&str]) -> Out {
    let mut all = vec!["--wallet", wallet, "--node", node];
    all.extend_from_slice(args);
    run("ember-wallet", &all, &[("EMBER_WALLET_PASSPHRASE", PASSPHRASE)])
}

fn address(i: u32, hrp: &str) -> String {
    dev_key(i).address().to_bech32(hrp)
}

/// Every file under `dir`, as paths relative to it.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p.strip_prefix(dir).expect("under dir").to_path_buf());
        }
    }
    out.sort();
    out
}

/// A devnet node on a fresh genesis of its own, as `ember-testnet up` makes: its data dir
/// is `<dir>/node1` and its genesis `<dir>/genesis.json`.
struct OwnGenesisNode {
    dir: TempDir,
    genesis: PathBuf,
    node: NodeProcess,
}

impl OwnGenesisNode {
    fn start() -> OwnGenesisNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let genesis = ember_testnet::network::write_genesis(dir.path()).expect("genesis");
        let args = vec!["--genesis".to_string(), genesis.display().to_string()];
        let node = NodeProcess::start(&dir.path().join("node1"), &args).expect("node starts");
        OwnGenesisNode { dir, genesis, node }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("node1")
    }

    fn genesis_id(&self) -> String {
        let info = self.node.client().call("node_info", json!([])).expect("node_info");
        info["genesis"].as_str().expect("genesis").to_string()
    }
}

// ---- Closed stdout ----------------------------------------------------------------

/// Help, results and logs written to a stdout whose reader has gone: every binary exits
/// 0 without a panic (`ember-testnet status | head -2` panicked); `create`, whose phrase
/// is shown once, says so instead.
#[test]
fn every_binary_exits_quietly_when_stdout_closes() {
    for (bin, args) in [
        ("ember-node", vec!["--help"]),
        ("ember-node", vec!["check", "--help"]),
        ("ember-wallet", vec!["--help"]),
        ("ember-testnet", vec!["--help"]),
        ("ember-testnet", vec!["status", "--help"]),
    ] {
        assert_quiet(&format!("{bin} {args:?}"), &run_closed_stdout(bin, &args, &[]));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let w = dev_wallet(dir.path());
    let env = [("EMBER_WALLET_PASSPHRASE", PASSPHRASE)];
    let to = address(1, "edev");
    for args in [
        vec!["--wallet", &w, "accounts"],
        vec!["--wallet", &w, "--json", "address"],
        vec!["--wallet", &w, "sign", "--to", &to, "--amount", "1", "--nonce", "0"],
    ] {
        assert_quiet(
            &format!("ember-wallet {args:?}"),
            &run_closed_stdout("ember-wallet", &args, &env),
        );
    }
    let fresh = dir.path().join("fresh.json");
    let out = run_closed_stdout(
        "ember-wallet",
        &["--wallet", fresh.to_str().expect("utf-8"), "--network", "devnet", "create"],
        &env,
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_no_crash(&out.stderr);
    assert!(out.stderr.contains("recovery phrase was not shown in full"), "{}", out.stderr);

    // `logs` of a stopped testnet: a long log into a closed pipe.
    let tn = dir.path().join("tn");
    std::fs::create_dir_all(tn.join("node0")).expect("mkdir");
    let log: String = (0..5_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(tn.join("node0").join("node.log"), log).expect("write");
    let tn_arg = tn.to_str().expect("utf-8");
    assert_quiet(
        "ember-testnet logs",
        &run_closed_stdout("ember-testnet", &["--dir", tn_arg, "logs", "0"], &[]),
    );
}

/// `ember-node check` into a closed stdout: the verdict is still the exit code.
#[test]
fn node_check_keeps_its_verdict_when_stdout_closes() {
    let mut n = OwnGenesisNode::start();
    assert!(n.node.stop().expect("stop"), "clean stop");
    let data = n.data_dir();
    let genesis = n.genesis.display().to_string();
    let args = ["check", "--data-dir", data.to_str().expect("utf-8"), "--genesis", &genesis];
    assert_quiet("ember-node check", &run_closed_stdout("ember-node", &args, &[]));
}

/// A detached testnet: `status` into a closed stdout exits quietly, and its table fits
/// 80 columns, or 50 with columns left out and said so, never wrapped.
#[test]
fn testnet_status_survives_a_closed_stdout_and_fits_the_terminal() {
    struct Down(PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = run("ember-testnet", &["--dir", self.0.to_str().unwrap_or(""), "down"], &[]);
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let tn = dir.path().join("tn");
    let tn_arg = tn.to_str().expect("utf-8");
    let up = run(
        "ember-testnet",
        &[
            "--dir",
            tn_arg,
            "up",
            "--detach",
            "--nodes",
            "3",
            "--topology",
            "mesh",
            "--base-port",
            "0",
        ],
        &[("COLUMNS", "80")],
    );
    let _down = Down(tn.clone());
    assert_eq!(up.code, Some(0), "{up:?}");
    for line in up.stdout.lines() {
        assert!(
            line.chars().count() <= 80,
            "`up` wrote a line of {} columns: {line:?}",
            line.chars().count()
        );
    }
    assert!(
        up.stdout.contains("Mining rewards") && up.stdout.contains("dev account 0"),
        "{}",
        up.stdout
    );

    assert_quiet(
        "ember-testnet status",
        &run_closed_stdout("ember-testnet", &["--dir", tn_arg, "status"], &[]),
    );
    for columns in [80usize, 50] {
        let out = run(
            "ember-testnet",
            &["--dir", tn_arg, "status"],
            &[("COLUMNS", &columns.to_string())],
        )
        .ok();
        for line in out.stdout.lines() {
            assert!(line.chars().count() <= columns, "{columns} columns: {line:?}\n{}", out.stdout);
        }
        assert!(out.stdout.contains("node") && out.stdout.contains("height"), "{}", out.stdout);
        if columns == 50 {
            assert!(out.stdout.contains("not shown"), "{}", out.stdout);
        }
    }
    // Without a terminal width (a pipe), every column is there for scripts.
    let wide = run("ember-testnet", &["--dir", tn_arg, "status"], &[]).ok();
    assert!(wide.stdout.lines().next().unwrap_or("").contains("p2p"), "{}", wide.stdout);
}

// ---- ember-node -------------------------------------------------------------------

/// `check` of a path that does not exist, or of a directory that is no node's, creates
/// nothing, says which it is, and exits 1 as `check --help` documents.
#[test]
fn node_check_of_a_missing_or_foreign_dir_creates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("no").join("such");
    let out = run("ember-node", &["check", "--data-dir", missing.to_str().expect("utf-8")], &[])
        .refused(1);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("IO error") && !out.stderr.contains("CURRENT:"),
        "raw RocksDB text: {}",
        out.stderr
    );
    assert!(!dir.path().join("no").exists(), "check created {}", missing.display());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let out =
        run("ember-node", &["check", "--data-dir", empty.to_str().expect("utf-8")], &[]).refused(1);
    assert!(out.stderr.contains("is not a node's data dir"), "{}", out.stderr);
    assert!(tree(&empty).is_empty(), "check wrote into {}: {:?}", empty.display(), tree(&empty));
}

/// A data dir of a chain with its own genesis (as `ember-testnet up` makes): `check`
/// and the node both name the `--genesis` file that opens it; `check` with it passes and
/// changes nothing in the data dir (RocksDB's info log included).
#[test]
fn a_data_dir_of_another_genesis_names_the_genesis_file() {
    let mut n = OwnGenesisNode::start();
    assert!(n.node.stop().expect("stop"), "clean stop");
    let data = n.data_dir();
    let data_arg = data.to_str().expect("utf-8");
    let genesis = std::path::absolute(&n.genesis).expect("absolute");
    let hint = format!("--genesis {}", genesis.display());
    let before = tree(&data);

    let out = run("ember-node", &["check", "--data-dir", data_arg], &[]).refused(1);
    assert!(out.stderr.contains(&hint), "check does not name the genesis file: {}", out.stderr);
    assert!(!out.stderr.contains("use another --data-dir"), "{}", out.stderr);
    let out = run(
        "ember-node",
        &["check", "--data-dir", data_arg, "--genesis", genesis.to_str().expect("utf-8")],
        &[],
    )
    .ok();
    assert!(out.stdout.starts_with("ok: height"), "{out:?}");
    assert_eq!(tree(&data), before, "check changed the data dir");

    let out = run(
        "ember-node",
        &["--data-dir", data_arg, "--rpc-addr", "127.0.0.1:0", "--p2p-addr", "127.0.0.1:0"],
        &[],
    )
    .refused(1);
    assert!(out.stderr.contains(&hint), "the node does not name the genesis file: {}", out.stderr);
}

/// `--genesis FILE` without `--network` runs the file's network (testnet here), and a
/// `--network` that contradicts the file is refused saying both.
#[test]
fn node_takes_the_network_from_the_genesis_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = GenesisSpec {
        network: Network::Testnet,
        time_ms: 1_700_000_000_000,
        note: "cli_errors".into(),
        allocations: vec![AllocationSpec { address: address(0, "etest"), amount: "1000".into() }],
    };
    let path = dir.path().join("tgen.json");
    std::fs::write(&path, spec.to_json()).expect("write");
    let path_arg = path.to_str().expect("utf-8").to_string();
    let node =
        NodeProcess::start(&dir.path().join("node"), &["--genesis".to_string(), path_arg.clone()])
            .expect("a node on a testnet genesis file without --network starts");
    let info = node.client().call("node_info", json!([])).expect("node_info");
    assert_eq!(info["network"], "testnet", "{info}");
    drop(node);

    let other = dir.path().join("other");
    let out = run(
        "ember-node",
        &[
            "--genesis",
            &path_arg,
            "--network",
            "devnet",
            "--data-dir",
            other.to_str().expect("utf-8"),
        ],
        &[],
    )
    .refused(2);
    assert!(
        out.stderr.contains("is for testnet, but --network devnet was given"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("leave --network out"), "{}", out.stderr);
    assert!(!other.exists(), "a refused configuration created the data dir");
}

/// A second node on a running node's data dir says so in words, not with RocksDB's lock
/// error, and exits 1.
#[test]
fn a_second_node_on_a_data_dir_in_use_is_told_so() {
    let first = DevNode::start(&[]);
    let data = first.node.data_dir().to_path_buf();
    let out = run(
        "ember-node",
        &[
            "--network",
            "devnet",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--rpc-addr",
            "127.0.0.1:0",
            "--p2p-addr",
            "127.0.0.1:0",
        ],
        &[],
    )
    .refused(1);
    let expected = format!("another ember-node is using this data dir ({})", data.display());
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
    assert!(
        !out.stderr.contains("LOCK") && !out.stderr.contains("Resource temporarily"),
        "{}",
        out.stderr
    );
    assert_eq!(first.height(), 0, "the first node still answers");
}

// ---- ember-wallet -----------------------------------------------------------------

/// `--node HOST:PORT` is taken as http://HOST:PORT (documented in --help); a URL of
/// another scheme or a bad port is refused with the form that works.
#[test]
fn wallet_node_url_without_a_scheme_works_and_bad_ones_show_the_form() {
    let node = DevNode::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let w = dev_wallet(dir.path());
    let bare = node.node.rpc_url().trim_start_matches("http://").to_string();
    let out = wallet(&w, &bare, &["balance"]).ok();
    assert!(out.stdout.contains("confirmed  1000000 coins"), "{}", out.stdout);
    for (url, needle) in [
        ("ftp://127.0.0.1:8545", "scheme \"ftp\" is not supported"),
        ("127.0.0.1:99999", "is not a number from 1 to 65535"),
        ("http:/127.0.0.1:8545", "is not a URL"),
    ] {
        let out = wallet(&w, url, &["balance"]).refused(1);
        assert!(
            out.stderr.contains(needle) && out.stderr.contains("http://127.0.0.1:8545"),
            "{url}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("RelativeUrlWithoutBase")
                && !out.stderr.contains("is ember-node running"),
            "{url}: {}",
            out.stderr
        );
    }
    // Commands that need no node do not care what --node holds.
    wallet(&w, "ftp://x", &["address"]).ok();
}

/// Each way an address can be wrong is said in words (the first answers were "parse
/// failed" and "invalid checksum" for all of them).
#[test]
fn wallet_names_what_is_wrong_with_an_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    let w = dev_wallet(dir.path());
    let good = address(1, "edev");
    let letter = good[5..].find(|c: char| c.is_ascii_lowercase()).expect("a letter") + 5;
    let mut upper = good.clone();
    upper.replace_range(letter..letter + 1, &good[letter..letter + 1].to_uppercase());
    let cases = [
        (format!("{}b{}", &good[..12], &good[13..]), "'b' is not a bech32 character"),
        (upper, "mixes upper and lower case"),
        (good[..good.len() - 2].to_string(), "some are missing"),
        ("0x1234".to_string(), "hex (0x...) address"),
        (address(1, "etest"), "is a testnet address (prefix etest), but this wallet is for devnet"),
        ("edev".to_string(), "no '1'"),
    ];
    for (to, needle) in cases {
        let out = wallet(
            &w,
            "http://127.0.0.1:9",
            &["sign", "--to", &to, "--amount", "1", "--nonce", "0"],
        )
        .refused(1);
        assert!(out.stderr.contains(needle), "{to}: {}", out.stderr);
        assert!(
            !out.stderr.contains("parse failed") && !out.stderr.contains("invalid checksum"),
            "{}",
            out.stderr
        );
    }
}

/// A payment signed offline for the built-in devnet and broadcast to a network of its own
/// genesis is refused naming the option that fixes it (--chain with the node's genesis);
/// signed with that option, it goes through. `sign` itself warns which chain it used.
#[test]
fn offline_signature_for_another_chain_names_the_fix() {
    let n = OwnGenesisNode::start();
    let url = n.node.rpc_url().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let w = dev_wallet(dir.path());
    let to = address(1, "edev");
    let sign = |extra: &[&str]| {
        let mut args = vec!["sign", "--to", &to, "--amount", "1", "--nonce", "0"];
        args.extend_from_slice(extra);
        wallet(&w, "http://127.0.0.1:9", &args).ok()
    };
    let signed = sign(&[]);
    assert!(
        signed.stderr.contains("--chain"),
        "sign does not say which chain it used: {}",
        signed.stderr
    );
    let genesis = n.genesis_id();
    let out = wallet(&w, &url, &["broadcast", signed.stdout.trim()]).refused(1);
    assert!(out.stderr.contains(&format!("--chain {genesis}")), "{}", out.stderr);
    let signed = sign(&["--chain", &genesis]);
    let out = wallet(&w, &url, &["broadcast", signed.stdout.trim()]).ok();
    assert!(out.stdout.starts_with("Sent 1 coin to "), "{}", out.stdout);
}

/// Garbage given to `broadcast` is explained in words, without the decoder's debug text.
#[test]
fn broadcast_of_garbage_is_explained() {
    for (hex, needle) in [
        ("zz", "'z' at position 1 is not a hex digit"),
        ("abc", "odd number of hex digits"),
        ("abcd", "it is 2 bytes (4 hex digits), but a signed transaction is"),
        ("", "no transaction given"),
    ] {
        let out = run("ember-wallet", &["--node", "http://127.0.0.1:9", "broadcast", hex], &[])
            .refused(1);
        assert!(out.stderr.contains(needle), "{hex:?}: {}", out.stderr);
        assert!(out.stderr.contains("ember-wallet sign"), "{hex:?}: no next step: {}", out.stderr);
    }
}

/// `import-dev-key --index 10` works but says that only accounts 0-9 are funded.
#[test]
fn import_dev_key_beyond_the_funded_accounts_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let w = dir.path().join("dev.json");
    let w = w.to_str().expect("utf-8");
    let import = |index: &str| {
        wallet(
            w,
            "http://127.0.0.1:9",
            &["--network", "devnet", "import-dev-key", "--index", index],
        )
        .ok()
    };
    let note = "only dev accounts 0-9 are funded";
    assert!(!import("9").stdout.contains(note));
    let out = import("10");
    assert!(
        out.stdout.contains(note) && out.stdout.contains("account 10 starts with 0 coins"),
        "{}",
        out.stdout
    );
    let json = wallet(w, "http://127.0.0.1:9", &["--json", "import-dev-key", "--index", "11"]).ok();
    let v: Value = serde_json::from_str(json.stdout.trim()).expect("JSON");
    assert_eq!(v["funded"], false, "{v}");
}

/// "Sent 1 coin" (not "1 coins"), and `balance` calls its height the chain height.
#[test]
fn wallet_pluralises_coins_and_names_the_chain_height() {
    let node = DevNode::start(&[]);
    let url = node.node.rpc_url().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let w = dev_wallet(dir.path());
    let to = address(1, "edev");
    let out = wallet(&w, &url, &["send", "--to", &to, "--amount", "1"]).ok();
    assert!(out.stdout.starts_with("Sent 1 coin to "), "{}", out.stdout);
    let out = wallet(&w, &url, &["send", "--to", &to, "--amount", "2.5"]).ok();
    assert!(out.stdout.starts_with("Sent 2.5 coins to "), "{}", out.stdout);
    let out = wallet(&w, &url, &["balance"]).ok();
    assert!(out.stdout.contains("coins (chain height 0)"), "{}", out.stdout);
    assert!(!out.stdout.contains("at height"), "{}", out.stdout);
}

/// Every error starts with a lowercase `error:`, including the ones a dropped connection
/// gives (the HTTP library's own "Network Error: ..." used to show through).
#[test]
fn wallet_errors_start_with_lowercase_error() {
    // Accepts connections and closes them before answering.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let free = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("temp dir");
    let w = dev_wallet(dir.path());
    for url in [format!("http://127.0.0.1:{port}"), format!("http://127.0.0.1:{free}")] {
        for args in [vec!["balance"], vec!["tx", &"ab".repeat(32)], vec!["history"]] {
            let out = wallet(&w, &url, &args).refused(1);
            assert!(out.stderr.contains("cannot reach the node"), "{url} {args:?}: {}", out.stderr);
            for line in out.stderr.lines().filter(|l| l.to_lowercase().contains("error")) {
                assert!(line.starts_with("error: ") || line.starts_with("note: "), "{line}");
            }
        }
    }
}

/// With `--json`, a command-line error is JSON on stderr too (exit code 2); without it,
/// clap's text as before.
#[test]
fn wallet_usage_errors_follow_json() {
    for args in [
        vec!["--json", "brodcast"],
        vec!["--json", "sign", "--to", "x"],
        vec!["balance", "--json", "--bogus"],
    ] {
        let out = run("ember-wallet", &args, &[]);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        let v: Value = serde_json::from_str(out.stderr.trim())
            .unwrap_or_else(|e| panic!("{args:?}: stderr is not JSON ({e}): {}", out.stderr));
        assert_eq!(v["error"]["kind"], "usage", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty() && !m.starts_with("error:")),
            "{v}"
        );
    }
    let out = run("ember-wallet", &["brodcast"], &[]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.starts_with("error: unrecognized subcommand"), "{}", out.stderr);
    // Help is still help, on stdout.
    let out = run("ember-wallet", &["--json", "--help"], &[]).ok();
    assert!(out.stdout.contains("Examples:"), "{}", out.stdout);
}

/// A stdin that ends early is not a crash either (`broadcast -` reads it).
#[test]
fn wallet_broadcast_from_an_empty_stdin_is_explained() {
    let mut child =
        command("ember-wallet", &["--node", "http://127.0.0.1:9", "broadcast", "-"], &[])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
    child.stdin.take().expect("stdin").write_all(b"\n").expect("write");
    let o = child.wait_with_output().expect("exits");
    let out = Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
    .refused(1);
    assert!(out.stderr.contains("no transaction given"), "{}", out.stderr);
}

/// A port already taken is reported with the flag that changes it.
#[test]
fn a_port_in_use_names_the_flag_that_changes_it() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    for (i, (flag, other)) in
        [("--rpc-addr", "--p2p-addr"), ("--p2p-addr", "--rpc-addr")].iter().enumerate()
    {
        let data = dir.path().join(format!("n{i}"));
        let args = [
            "--network",
            "devnet",
            "--data-dir",
            data.to_str().expect("utf-8"),
            flag,
            &port,
            other,
            "127.0.0.1:0",
        ];
        let out = run("ember-node", &args, &[]).refused(1);
        let needle = format!("choose another address with {flag}");
        assert!(
            out.stderr.contains(&needle) && out.stderr.contains(&port),
            "{flag}: {}",
            out.stderr
        );
    }
}

// ---- Closed stderr ----------------------------------------------------------------

/// Runs `bin` with stdout and stderr both going into a socket whose reader is gone (as in
/// `cmd 2>&1 | head -1` once `head` has exited); returns the exit code.
fn run_closed_both(bin: &str, args: &[&str]) -> Option<i32> {
    let (reader, writer) = UnixStream::pair().expect("socket pair");
    drop(reader);
    let err = writer.try_clone().expect("clone the socket");
    command(bin, args, &[])
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(writer)))
        .stderr(Stdio::from(std::os::fd::OwnedFd::from(err)))
        .status()
        .expect("the binary runs")
        .code()
}

/// An error reported on a closed stderr is still an error exit (1 or 2), never a panic
/// (101): `eprintln!` panics on a broken pipe, so the binaries write diagnostics with
/// `errln!`, which ignores a failed write.
#[test]
fn errors_on_a_closed_stderr_exit_with_their_code_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nothing-here");
    let missing = missing.to_str().expect("utf-8");
    for (bin, args) in [
        ("ember-node", vec!["check", "--data-dir", missing]),
        ("ember-testnet", vec!["--dir", missing, "status"]),
        ("ember-wallet", vec!["--wallet", missing, "--node", "http://127.0.0.1:1", "balance"]),
        ("ember-cli", vec!["--rpc", "http://127.0.0.1:1", "node_info"]),
        ("ember-wallet", vec!["--no-such-flag"]),
    ] {
        let code = run_closed_both(bin, &args);
        assert!(
            matches!(code, Some(1) | Some(2)),
            "{bin} {args:?} on a closed stderr exited {code:?}"
        );
    }
}

#[test]
fn testnet_values_out_of_range_are_usage_errors_and_start_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tn = dir.path().join("tn");
    let tn_arg = tn.to_str().unwrap();
    for (args, needle) in [
        (&["up", "--nodes", "0"][..], "--nodes must be between 1 and 50"),
        (&["up", "--nodes", "2", "--miners", "5"][..], "miner index 5 is not a node"),
        (&["up", "--miners", "x"][..], "x"),
        (&["up", "--detach", "--block-time", "0"][..], "--block-time"),
    ] {
        let mut all = vec!["--dir", tn_arg];
        all.extend_from_slice(args);
        let out = run("ember-testnet", &all, &[]);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert_no_crash(&out.stderr);
        assert!(!tn.join("testnet.json").exists(), "{args:?} started something");
    }
}

/// Reads one HTTP request from `s`: its head, then as many body bytes as its
/// `Content-Length` says (up to a read error or EOF).
fn read_http_request(s: &mut std::net::TcpStream) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match std::io::Read::read(s, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < head_end + length {
        match std::io::Read::read(s, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `--node` pointing at something that answers HTTP but is no ember-node (a web server, a
/// node's /health path): the wallet says so and what to check, never a JSON parser's words.
#[test]
fn wallet_names_a_server_that_is_not_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let w = dev_wallet(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let Ok(mut s) = stream else { continue };
            // The whole request first: closing with some of it unread makes the kernel
            // reset the connection, and the wallet would see a reset, not this answer.
            read_http_request(&mut s);
            let body = "<!DOCTYPE html><html><body>It works</body></html>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let out = wallet(&w, &url, &["balance"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("not JSON-RPC"), "{}", out.stderr);
    assert!(out.stderr.contains("http://HOST:PORT"), "{}", out.stderr);
    for raw in ["EOF while parsing", "expected value", "<!DOCTYPE"] {
        assert!(!out.stderr.contains(raw), "{raw:?} in {}", out.stderr);
    }
}
