//! Config precedence from a real process: flags beat `EMBER_*` variables, which beat the
//! `--config` file, for booleans too (`--mine`/`--no-mine`, `--discover`/`--no-discover`).

use ember_testnet::{binary, wait_for};
use ember_wallet::rpc::RpcClient;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An `ember-node` started with exactly these flags and environment (none inherited from
/// the test's own `EMBER_*`), killed when dropped.
struct Node {
    child: Child,
    client: RpcClient,
}

impl Node {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Node {
        std::fs::create_dir_all(dir).unwrap();
        let log = std::fs::File::create(dir.join("node.log")).unwrap();
        let mut cmd = Command::new(binary("ember-node").expect("ember-node is built"));
        for (var, _) in std::env::vars() {
            if var.starts_with("EMBER_") {
                cmd.env_remove(var);
            }
        }
        // The arena limit is the test's to set (see `malloc_arenas_...`).
        cmd.env_remove("MALLOC_ARENA_MAX");
        cmd.args(["--network", "devnet", "--data-dir"])
            .arg(dir)
            .args(["--rpc-addr", "127.0.0.1:0", "--p2p-addr", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut child = cmd.spawn().expect("ember-node starts");
        let addr = wait_for(Duration::from_secs(60), "rpc.addr", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "ember-node exited with {status}: {}",
                    std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
                );
            }
            std::fs::read_to_string(dir.join("rpc.addr")).ok().filter(|s| !s.trim().is_empty())
        })
        .unwrap();
        Node { child, client: RpcClient::new(format!("http://{}", addr.trim())) }
    }

    fn info(&self) -> Value {
        self.client.call("node_info", json!([])).expect("node_info")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mine = true` and `no-discover = true` in the file; each row of the table is one real
/// node, and what it runs with is read back from `node_info` (and, for mining, from the
/// height: a mining devnet node with `--block-time 0.05` makes blocks at once).
#[test]
fn boolean_settings_follow_flags_then_env_then_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, "mine = true\nno-discover = true\nblock-time = 0.05\n").unwrap();
    let file = file.to_str().unwrap();
    #[allow(clippy::type_complexity)]
    let table: &[(&[&str], &[(&str, &str)], bool, bool)] = &[
        // (flags, environment, mining, discover)
        (&[], &[], true, false),
        (&[], &[("EMBER_MINE", "false"), ("EMBER_DISCOVER", "true")], false, true),
        (&["--no-mine"], &[("EMBER_MINE", "true")], false, false),
        (
            &["--mine", "--discover"],
            &[("EMBER_MINE", "false"), ("EMBER_NO_DISCOVER", "1")],
            true,
            true,
        ),
    ];
    for (i, (flags, env, mining, discover)) in table.iter().enumerate() {
        let mut args = vec!["--config", file];
        args.extend_from_slice(flags);
        let node = Node::start(&dir.path().join(format!("node{i}")), &args, env);
        let info = node.info();
        let row = format!("row {i}: flags {flags:?}, env {env:?}");
        assert_eq!(info["mining"], json!(mining), "{row}: {info}");
        assert_eq!(info["discover"], json!(discover), "{row}: {info}");
        if *mining {
            wait_for(Duration::from_secs(20), "a mined block", || {
                (node.info()["height"].as_u64() > Some(0)).then_some(())
            })
            .unwrap();
        } else {
            std::thread::sleep(Duration::from_millis(500));
            assert_eq!(node.info()["height"], json!(0), "{row}: a node told not to mine mined");
        }
    }
}

/// The node runs with two malloc arenas (its peak RSS under load depends on it), unless
/// the operator chose a number: read from the running process's environment.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn malloc_arenas_are_limited_to_two_unless_the_operator_chose() {
    let environ = |n: &Node| {
        let raw = std::fs::read(format!("/proc/{}/environ", n.child.id())).unwrap();
        raw.split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .filter(|kv| kv.starts_with("MALLOC_ARENA_MAX="))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("a"), &[], &[]);
    assert_eq!(environ(&node), vec!["MALLOC_ARENA_MAX=2"]);
    assert!(node.info()["height"].is_u64(), "the node runs again and serves");
    let chosen = Node::start(&dir.path().join("b"), &[], &[("MALLOC_ARENA_MAX", "4")]);
    assert_eq!(environ(&chosen), vec!["MALLOC_ARENA_MAX=4"]);
}
