//! The `--help` of every command of the three binaries (`ember-node`, `ember-wallet`,
//! `ember-testnet`), found by walking each binary's "Commands:" lists: each prints on
//! stdout and exits 0, has examples, describes every positional argument, and every
//! default it documents (`[default: X]`, written by clap or by hand) is one the parser
//! accepts and, where a run can show it, the value used when the option is left out.
//!
//! Why by running the binaries: the wallet's and the testnet tool's command lines live in
//! their `main.rs`, out of reach of a test's `CommandFactory`; the help a user reads is
//! exactly what is checked here.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use ember_node::config::Cli as NodeCli;

const BINARIES: [&str; 3] = ["ember-node", "ember-wallet", "ember-testnet"];

/// One command's help: the binary, the subcommand path, the text.
struct Help {
    bin: &'static str,
    path: Vec<String>,
    text: String,
}

impl Help {
    fn name(&self) -> String {
        std::iter::once(self.bin.to_string())
            .chain(self.path.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One option of a help text: its long name, whether it takes a value, its description.
#[derive(Debug)]
struct Opt {
    long: String,
    takes_value: bool,
    text: String,
}

fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(ember_testnet::binary(bin).expect("the binaries are built"));
    cmd.args(args).stdin(Stdio::null());
    // The defaults must not come from the environment of whoever runs the tests.
    for var in ["EMBER_NODE", "EMBER_NETWORK", "EMBER_GENESIS", "EMBER_DATA_DIR", "COLUMNS"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("the binary runs")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// The subcommands listed under "Commands:" (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line == "Commands:" {
            inside = true;
        } else if inside {
            let Some(entry) = line.strip_prefix("  ") else { break };
            // A description wrapped onto the next line is indented further.
            if entry.starts_with(' ') {
                continue;
            }
            let name = entry.split_whitespace().next().unwrap_or("");
            if !name.is_empty() && name != "help" {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// Every command's `--help`, recursively through the "Commands:" lists.
fn all_helps(bin: &'static str) -> Vec<Help> {
    let mut out = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let o = run(bin, &args, &[]);
        let name = format!("{bin} {}", args.join(" "));
        assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o.stderr));
        assert!(o.stderr.is_empty(), "{name} wrote to stderr: {}", text(&o.stderr));
        let help = text(&o.stdout);
        for sub in subcommands(&help) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        out.push(Help { bin, path, text: help });
    }
    assert!(out.len() > 1, "{bin} has subcommands");
    out
}

/// The options of a help text, with their whole descriptions (clap's long help puts them
/// on the following, more indented lines).
fn options(help: &str) -> Vec<Opt> {
    let mut opts: Vec<Opt> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let is_option = (2..=6).contains(&indent)
            && (trimmed.starts_with("--")
                || (trimmed.starts_with('-') && trimmed[2..].starts_with(", --")));
        if is_option {
            let from = trimmed.find("--").expect("a long option");
            let rest = &trimmed[from + 2..];
            let end =
                rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).unwrap_or(rest.len());
            let after = &rest[end..];
            opts.push(Opt {
                long: format!("--{}", &rest[..end]),
                takes_value: after.trim_start().starts_with('<'),
                text: after.to_string(),
            });
        } else if !line.is_empty() && indent == 0 {
            // A heading ("Options:", "Examples:") ends the option before it.
            if let Some(last) = opts.last_mut() {
                last.text.push('\u{0}');
            }
        } else if let Some(last) = opts.last_mut() {
            if !last.text.contains('\u{0}') {
                last.text.push(' ');
                last.text.push_str(trimmed);
            }
        }
    }
    for o in &mut opts {
        if let Some(end) = o.text.find('\u{0}') {
            o.text.truncate(end);
        }
    }
    opts
}

/// What an option's help documents as its default: the text of `[default: ...]`.
fn documented_default(opt: &Opt) -> Option<String> {
    let start = opt.text.find("[default: ")? + "[default: ".len();
    let end = opt.text[start..].find(']')? + start;
    Some(opt.text[start..end].to_string())
}

/// The literal value that starts a documented default ("devnet" of "devnet, or the
/// network named in the --genesis file"), when it is one: no placeholder, no words.
fn literal(default: &str) -> Option<String> {
    let head = default.split([',', ';']).next()?.trim();
    (!head.is_empty() && !head.contains(['<', ' ', '"'])).then(|| head.to_string())
}

/// Every command of every binary prints its help on stdout with exit code 0, shows
/// examples, and describes each positional argument (`latency <I> <J>` once did not).
#[test]
fn every_help_runs_has_examples_and_describes_its_arguments() {
    for bin in BINARIES {
        for help in all_helps(bin) {
            let name = help.name();
            assert!(help.text.contains("Examples:"), "{name} --help has no examples");
            // Short help: "  <I>  Node at one end"; long help: "  <HEX>" and the
            // description on the next, more indented line.
            let lines: Vec<&str> = help.text.lines().collect();
            let start = lines.iter().position(|l| *l == "Arguments:");
            for (i, line) in lines.iter().enumerate().skip(start.map_or(lines.len(), |s| s + 1)) {
                if line.is_empty() {
                    continue; // between the entries of a long help
                }
                let Some(entry) = line.strip_prefix("  ") else { break };
                if entry.starts_with(' ') {
                    continue; // a long description
                }
                let words: Vec<&str> = entry.split_whitespace().collect();
                let below = lines
                    .get(i + 1)
                    .is_some_and(|next| next.starts_with("    ") && !next.trim().is_empty());
                assert!(words.len() > 1 || below, "{name}: argument {} is not described", words[0]);
            }
        }
    }
}

/// Every literal default a help documents is a value the parser accepts for that option
/// (`--opt X --help` is parsed before the help is shown).
#[test]
fn every_documented_default_is_accepted_by_the_parser() {
    let mut checked = 0;
    for bin in BINARIES {
        for help in all_helps(bin) {
            for opt in options(&help.text) {
                let Some(value) = documented_default(&opt).as_deref().and_then(literal) else {
                    continue;
                };
                assert!(
                    opt.takes_value,
                    "{}: {} documents a default but takes no value",
                    help.name(),
                    opt.long
                );
                let mut args: Vec<&str> = help.path.iter().map(String::as_str).collect();
                args.extend([opt.long.as_str(), value.as_str(), "--help"]);
                let o = run(bin, &args, &[]);
                assert_eq!(
                    o.status.code(),
                    Some(0),
                    "{}: the documented default {} {value} is refused: {}",
                    help.name(),
                    opt.long,
                    text(&o.stderr)
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} documented defaults found: is the help parsed?");
}

/// The node: every literal default documented for its options (and `check`'s) is what
/// the configuration resolves to when the option is left out.
#[test]
fn node_defaults_are_what_the_node_runs_with() {
    let helps = all_helps("ember-node");
    let top = helps.iter().find(|h| h.path.is_empty()).expect("top-level help");
    let resolved = |args: &[&str]| -> String {
        let cli = <NodeCli as clap::Parser>::try_parse_from(
            std::iter::once("ember-node").chain(args.iter().copied()),
        )
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        format!("{:?}", cli.run.resolve().unwrap_or_else(|e| panic!("{args:?}: {e:#}")))
    };
    let bare = resolved(&[]);
    let mut checked = Vec::new();
    for opt in options(&top.text) {
        let Some(value) = documented_default(&opt).as_deref().and_then(literal) else { continue };
        assert_eq!(
            resolved(&[&opt.long, &value]),
            bare,
            "ember-node {} {value} (the documented default) changes the configuration",
            opt.long
        );
        checked.push(opt.long);
    }
    for expected in ["--network", "--rpc-addr", "--p2p-addr", "--log-format", "--mempool-max-txs"] {
        assert!(
            checked.iter().any(|c| c == expected),
            "{expected} documents no default: {checked:?}"
        );
    }
    // `check --network`: the default network is the built-in devnet unless --genesis names one.
    let check = helps.iter().find(|h| h.path == ["check"]).expect("check --help");
    let net = options(&check.text).into_iter().find(|o| o.long == "--network").expect("--network");
    let value = documented_default(&net).as_deref().and_then(literal).expect("a literal default");
    let network = value.parse::<ember_core::Network>().expect("a network name");
    let by_default = ember_node::config::load_params(None, None).expect("built-in");
    let given = ember_node::config::load_params(Some(network), None).expect("built-in");
    assert_eq!(by_default.genesis_id(), given.genesis_id());
}

/// The node's help says what --genesis is and the defaults of --network and --log-format;
/// `check --help` states its exit codes and has examples.
#[test]
fn node_help_names_genesis_and_the_defaults() {
    let o = run("ember-node", &["--help"], &[]);
    let help = text(&o.stdout);
    let opts: BTreeMap<String, Opt> =
        options(&help).into_iter().map(|o| (o.long.clone(), o)).collect();
    let genesis = &opts["--genesis"].text;
    assert!(
        genesis.contains("Genesis spec (JSON file)")
            && genesis.contains("--network may be left out"),
        "{genesis}"
    );
    assert!(!genesis.contains("of a devnet"), "{genesis}");
    assert_eq!(
        documented_default(&opts["--network"]).as_deref().and_then(literal).as_deref(),
        Some("devnet")
    );
    assert_eq!(documented_default(&opts["--log-format"]).as_deref(), Some("text"));
    let check = text(&run("ember-node", &["check", "--help"], &[]).stdout);
    assert!(check.contains("Examples:\n  ember-node check --data-dir"), "{check}");
    assert!(check.contains("Exit codes: 0") && check.contains("2 bad command line"), "{check}");
}

/// The wallet: an offline signature with each documented literal default of `sign`'s
/// options given explicitly is the one made without it (signatures are deterministic),
/// and so are the worded defaults --chain (the built-in genesis) and --account (the
/// first account).
#[test]
fn wallet_sign_defaults_are_what_sign_uses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let wallet = dir.path().join("dev.json");
    let wallet = wallet.to_str().expect("utf-8");
    let env = [("EMBER_WALLET_KDF", "test"), ("EMBER_WALLET_PASSPHRASE", "pass")];
    let o = run("ember-wallet", &["--wallet", wallet, "import-dev-key"], &env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let to = ember_wallet::dev_keypair(1).address().to_bech32("edev");
    let sign = |extra: &[&str]| -> String {
        let mut args =
            vec!["--wallet", wallet, "sign", "--to", &to, "--amount", "2", "--nonce", "0"];
        args.extend_from_slice(extra);
        let o = run("ember-wallet", &args, &env);
        assert_eq!(o.status.code(), Some(0), "sign {extra:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let bare = sign(&[]);
    let help = text(&run("ember-wallet", &["sign", "--help"], &[]).stdout);
    let mut checked = Vec::new();
    for opt in options(&help) {
        let Some(value) = documented_default(&opt).as_deref().and_then(literal) else { continue };
        assert_eq!(
            sign(&[&opt.long, &value]),
            bare,
            "sign {} {value} differs from the default",
            opt.long
        );
        checked.push(opt.long);
    }
    assert!(
        checked.contains(&"--fee".to_string()),
        "--fee documents no literal default: {checked:?}"
    );
    let devnet = ember_core::ChainParams::devnet().genesis_id().to_string();
    assert_eq!(sign(&["--chain", &devnet]), bare, "--chain defaults to the built-in genesis");
    assert_eq!(sign(&["--account", "0"]), bare, "--account defaults to the first account");
}

/// The wallet's default wallet file is where its help says: <user data dir>/ember/wallet.json.
#[test]
fn wallet_file_default_is_the_documented_path() {
    let home = tempfile::tempdir().expect("temp dir");
    let data = home.path().join("data");
    let data_str = data.to_str().expect("utf-8");
    let env = [("XDG_DATA_HOME", data_str), ("HOME", home.path().to_str().expect("utf-8"))];
    let o = run("ember-wallet", &["address"], &env);
    let expected = data.join("ember").join("wallet.json");
    assert!(
        text(&o.stderr).contains(&format!("no wallet at {}", expected.display())),
        "{}",
        text(&o.stderr)
    );
    let help = text(&run("ember-wallet", &["--help"], &[]).stdout);
    assert!(help.contains("<user data dir>/ember/wallet.json"), "{help}");
}

/// The testnet tool: --dir is .testnet where its help says so, and a temp dir for bench,
/// whose help must not claim .testnet alone; `balance --help` uses an RPC port of the
/// README (85xx), not a P2P one (95xx).
#[test]
fn testnet_dir_default_and_wallet_ports_match_the_readme() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let bin = ember_testnet::binary("ember-testnet").expect("built");
    let o = Command::new(&bin)
        .arg("status")
        .current_dir(cwd.path())
        .env_remove("COLUMNS")
        .output()
        .expect("runs");
    let expected = std::fs::canonicalize(cwd.path()).expect("canonical").join(".testnet");
    let stderr = text(&o.stderr);
    assert!(
        stderr.contains(&format!("no testnet is running in {}", expected.display()))
            || stderr.contains(&format!(
                "no testnet is running in {}",
                cwd.path().join(".testnet").display()
            )),
        "{stderr}"
    );
    assert!(!Path::new(&cwd.path().join(".testnet")).exists(), "status created the dir");
    let bench = text(&run("ember-testnet", &["bench", "--help"], &[]).stdout);
    let dir = options(&bench).into_iter().find(|o| o.long == "--dir").expect("--dir");
    let default = documented_default(&dir).expect("a documented default");
    assert!(default.contains("bench, a temp dir"), "bench --help: --dir [default: {default}]");
    let balance = text(&run("ember-wallet", &["balance", "--help"], &[]).stdout);
    assert!(balance.contains("--node http://127.0.0.1:85"), "{balance}");
    assert!(!balance.contains(":95"), "a P2P port as the wallet's node: {balance}");
}
