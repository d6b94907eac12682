//! `ember-cli` against real devnet nodes: a call's result on stdout, an admin call with the
//! cookie found through `--data-dir` (and refused without it), `--wait` for a node started
//! after the call, a bad param's error code, and `help` drawn from the node's method
//! table. The same table is checked against the RPC table of `docs/PROTOCOL.md` and
//! against what a running node serves.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ember_testnet::{binary, NodeProcess};
use serde_json::{json, Value};

use crate::support::{assert_no_crash, DevNode, Out};

// The node's table, which ember-cli's `help` prints too.
use ember_node::rpc::method_table::METHODS;

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Exit code 1 and `error code CODE: ...` as the first line of stderr.
    fn rpc_error(self, code: i64) -> Out {
        assert_eq!(self.code, Some(1), "{self:?}");
        assert!(self.stderr.starts_with(&format!("error code {code}: ")), "{self:?}");
        assert!(self.stdout.is_empty(), "{self:?}");
        assert_no_crash(&self.stderr);
        self
    }
}

fn cli_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(binary("ember-cli").expect("the binaries are built"));
    cmd.args(args).stdin(Stdio::null());
    cmd
}

fn cli(args: &[&str]) -> Out {
    let o = cli_command(args).output().expect("ember-cli runs");
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A run whose stdout is a socket with its reader already gone, as `| head` leaves it.
fn cli_closed_stdout(args: &[&str]) -> Out {
    let (reader, writer) = UnixStream::pair().expect("socket pair");
    drop(reader);
    let o = cli_command(args)
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(writer)))
        .stderr(Stdio::piped())
        .output()
        .expect("ember-cli runs");
    Out {
        code: o.status.code(),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn dir_arg(node: &DevNode) -> String {
    node.node.data_dir().to_str().expect("a utf-8 temp path").to_string()
}

#[test]
fn node_info_prints_the_nodes_answer_as_pretty_json() {
    let dev = DevNode::start(&[]);
    let url = dev.node.rpc_url().to_string();
    let expected = dev.call("node_info", json!([]));
    for args in [
        vec!["--rpc", url.as_str(), "node_info"],
        // Without the scheme, as --rpc-addr is written.
        vec!["--rpc", url.trim_start_matches("http://"), "node_info"],
        vec!["--data-dir", &dir_arg(&dev), "node_info"],
    ] {
        let out = cli(&args).ok();
        let info = out.json();
        assert_eq!(info["network"], "devnet", "{args:?}");
        assert_eq!(info["node_id"], expected["node_id"], "{args:?}");
        assert_eq!(info["genesis"], expected["genesis"], "{args:?}");
        // Pretty: one field per line.
        assert!(out.stdout.starts_with("{\n  \""), "{}", out.stdout);
        assert!(out.stderr.is_empty(), "{out:?}");
    }
    // A reader that goes away early is not an error.
    let out = cli_closed_stdout(&["--rpc", &url, "node_info"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}

#[test]
fn admin_call_uses_the_cookie_of_the_data_dir_and_is_refused_without_it() {
    let dev = DevNode::start(&[]);
    let dir = dir_arg(&dev);
    let url = dev.node.rpc_url().to_string();
    let bans = |dev: &DevNode| -> Vec<Value> {
        let out = cli(&["--rpc", dev.node.rpc_url(), "net_bans"]).ok();
        out.json().as_array().expect("net_bans is a list").clone()
    };
    let banned = |bans: &[Value], addr: &str| bans.iter().find(|b| b["address"] == addr).cloned();

    // Positional, with the token from DIR/rpc.cookie.
    let out = cli(&["--data-dir", &dir, "net_ban", "10.0.0.1", "60"]).ok();
    assert_eq!(out.stdout, "true\n");
    assert!(banned(&bans(&dev), "10.0.0.1").is_some(), "{:?}", bans(&dev));

    // Named: `seconds` must reach the node as a number, `reason` as text.
    cli(&["--data-dir", &dir, "net_ban", "address=10.0.0.2", "seconds=60", "reason=cli test"]).ok();
    let ban = banned(&bans(&dev), "10.0.0.2").expect("10.0.0.2 banned");
    assert_eq!(ban["reason"], "cli test");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let until = ban["until_ms"].as_u64().expect("until_ms");
    assert!(until <= now_ms + 61_000, "banned for 60 s, not the default hour: {ban}");

    // The same admin call without a token: refused, nothing banned.
    let out = cli(&["--rpc", &url, "net_ban", "10.0.0.3", "60"]).rpc_error(-32001);
    assert!(out.stderr.contains("--data-dir"), "the next step is named: {out:?}");
    assert!(banned(&bans(&dev), "10.0.0.3").is_none());

    // --rpc-token-file gives the token with a URL.
    let cookie = dev.node.data_dir().join("rpc.cookie");
    let cookie = cookie.to_str().expect("utf-8");
    cli(&["--rpc", &url, "--rpc-token-file", cookie, "net_unban", "10.0.0.1"]).ok();
    assert!(banned(&bans(&dev), "10.0.0.1").is_none());

    // A string result is printed as is, like bitcoin-cli.
    let out = cli(&["--data-dir", &dir, "node_stop"]).ok();
    assert_eq!(out.stdout, "stopping\n");
}

#[test]
fn wait_retries_until_a_node_started_after_the_call_answers() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data_dir = tmp.path().join("node");
    let dir = data_dir.to_str().expect("utf-8");
    // The CLI first, with no node and no data dir yet.
    let mut child = cli_command(&["--wait=90", "--data-dir", dir, "node_info"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ember-cli starts");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
    // Its note that the first try found no node: only then is the node started, so the
    // call cannot have been answered by a node that was already there.
    let mut first = String::new();
    stderr.read_line(&mut first).expect("read ember-cli's stderr");
    assert!(first.contains("waiting for") && first.contains("rpc.addr"), "{first:?}");
    // Not synchronisation (the note above is): a gap longer than one retry, so a CLI that
    // gives up early is caught here even though a devnet node starts in well under 1 s.
    std::thread::sleep(Duration::from_secs(1));
    assert!(child.try_wait().expect("try_wait").is_none(), "ember-cli stopped waiting");
    let node = NodeProcess::start(&data_dir, &["--network".into(), "devnet".into()])
        .expect("the node starts");

    // Wait for the CLI on another thread, so that a CLI that never returns fails the test.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let out = child.wait_with_output().expect("ember-cli finishes");
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).expect("stderr");
        let _ = tx.send((out, rest));
    });
    let (out, rest) = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
        panic!("ember-cli --wait never returned; node log:\n{}", node.log_tail())
    });
    let out = Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: first + &rest,
    };
    assert_eq!(out.code, Some(0), "{out:?}\nnode log:\n{}", node.log_tail());
    let info = out.json();
    let expected = node.client().call("node_info", json!([])).expect("node_info");
    assert_eq!(info["node_id"], expected["node_id"], "answered by the node started later");
}

#[test]
fn bad_params_give_the_nodes_invalid_params_error_and_usage() {
    let dev = DevNode::start(&[]);
    let url = dev.node.rpc_url().to_string();
    let dir = dir_arg(&dev);

    let out = cli(&["--rpc", &url, "chain_getBlock", "not-a-block"]).rpc_error(-32602);
    assert!(out.stderr.contains("block id"), "{out:?}");
    assert!(out.stderr.contains("usage: ember-cli chain_getBlock <block>"), "{out:?}");

    let out = cli(&["--data-dir", &dir, "net_ban", "10.0.0.1", "soon"]).rpc_error(-32602);
    assert!(out.stderr.contains("\"seconds\""), "{out:?}");

    let out = cli(&["--rpc", &url, "account_get"]).rpc_error(-32602);
    assert!(out.stderr.contains("missing parameter \"address\""), "{out:?}");

    cli(&["--rpc", &url, "node_bogus"]).rpc_error(-32601);

    // Said before anything is sent: exit code 2.
    for args in [
        vec!["--rpc", url.as_str(), "node_info", "extra"],
        vec!["--rpc", url.as_str(), "net_ban", "address=10.0.0.1", "secs=60"],
        vec!["--rpc", url.as_str(), "node_info", "--wait"],
        vec!["--rpc", url.as_str()],
        vec!["--rpc", url.as_str(), "--data-dir", &dir, "node_info"],
        vec!["help", "no_such_method"],
    ] {
        let out = cli(&args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("error: "), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        assert_no_crash(&out.stderr);
    }
    assert!(dev.call("net_bans", json!([])).as_array().is_some_and(Vec::is_empty));
}

#[test]
fn no_node_is_reported_with_the_url_and_the_next_step() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = cli(&["--rpc", &url, "node_info"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains(&format!("not reachable at {url}")), "{out:?}");
    assert!(out.stderr.contains("--wait") && out.stderr.contains("--data-dir"), "{out:?}");
    assert_no_crash(&out.stderr);
}

#[test]
fn help_lists_every_method_of_the_table_with_its_params() {
    let out = cli(&["help"]).ok();
    for m in METHODS {
        let line = out
            .stdout
            .lines()
            .find(|l| l.trim_start().split(' ').next() == Some(m.name))
            .unwrap_or_else(|| panic!("{} missing from help:\n{}", m.name, out.stdout));
        for p in m.params {
            assert!(line.contains(p.name), "{}: param {} in {line:?}", m.name, p.name);
        }
        assert_eq!(line.ends_with("(admin)"), m.admin, "{line:?}");
        assert!(out.stdout.contains(m.summary), "{}'s summary", m.name);

        let one = cli(&["help", m.name]).ok();
        for p in m.params {
            let row = one
                .stdout
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{} ", p.name)))
                .unwrap_or_else(|| {
                    panic!("help {}: no row for {}:\n{}", m.name, p.name, one.stdout)
                });
            assert!(row.contains(p.ty.label()), "{row:?}");
            match p.default {
                Some(d) => assert!(row.contains(&format!("default: {d}")), "{row:?}"),
                None => assert!(row.contains("required"), "{row:?}"),
            }
        }
    }
    assert_eq!(cli_closed_stdout(&["help"]).code, Some(0));
    let out = cli(&["--help"]).ok();
    assert!(out.stdout.contains("Examples:") && out.stdout.contains("--wait"), "{out:?}");
}

/// The RPC table of docs/PROTOCOL.md: each row's method, whether it is marked admin, and
/// its params column.
fn protocol_rows() -> Vec<(String, bool, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(&path).expect("docs/PROTOCOL.md");
    let section = doc.split("\n## JSON-RPC\n").nth(1).expect("a JSON-RPC section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut rows = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let name = cells[0].trim_start_matches("| `").split('`').next().expect("a name");
        rows.push((name.to_string(), cells[0].contains("*admin*"), cells[1].to_string()));
    }
    assert!(rows.len() > 10, "the RPC table was not found in PROTOCOL.md: {rows:?}");
    rows
}

#[test]
fn protocol_md_documents_exactly_the_methods_of_the_table() {
    let rows = protocol_rows();
    for (name, admin, params) in &rows {
        let m = METHODS
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} is in PROTOCOL.md but not in the method table"));
        assert_eq!(m.admin, *admin, "{name}: admin in the table vs PROTOCOL.md");
        assert_eq!(m.params.is_empty(), params.trim() == "—", "{name}: params {params:?}");
        for p in m.params {
            assert!(params.contains(&format!("`{}`", p.name)), "{name}: {} in {params:?}", p.name);
        }
    }
    for m in METHODS {
        assert!(rows.iter().any(|r| r.0 == m.name), "{} is not documented in PROTOCOL.md", m.name);
    }
}

#[test]
fn a_node_serves_every_method_of_the_table() {
    let dev = DevNode::start(&[]);
    let cookie = std::fs::read_to_string(dev.node.data_dir().join("rpc.cookie")).expect("cookie");
    let client = dev.node.client().with_token(cookie.trim());
    // Twenty positional nulls: more than any method takes, so each one that counts its
    // params refuses them (-32602) and none acts; what matters is that none is unknown.
    let junk = Value::Array(vec![Value::Null; 20]);
    for m in METHODS {
        match client.call(m.name, junk.clone()) {
            Ok(_) => {}
            Err(ember_wallet::rpc::RpcClientError::Rpc { code, message, .. }) => {
                assert_ne!(code, -32601, "{} is in the table but not served: {message}", m.name)
            }
            Err(e) => panic!("{}: {e}", m.name),
        }
    }
    // And one that is not in the table is unknown.
    match client.call("node_bogus", json!([])) {
        Err(ember_wallet::rpc::RpcClientError::Rpc { code, .. }) => assert_eq!(code, -32601),
        other => panic!("node_bogus: {other:?}"),
    }
}
