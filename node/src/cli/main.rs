//! `ember-cli`: call an `ember-node`'s JSON-RPC from the command line, as `bitcoin-cli`
//! or `cast rpc` do.
//!
//! `ember-cli [--rpc URL | --data-dir DIR] [--rpc-token-file FILE] [--wait[=SECS]] METHOD
//! [PARAMS...]`. The result goes to stdout as pretty JSON (a plain string as is), an error
//! to stderr as `error code N: message`. Exit codes: 0 a result, 1 an error from the node
//! or no node, 2 a usage error (before anything is sent). A closed stdout (`| head`) ends
//! the run quietly with 0. The methods, their params and which are admin come from the
//! node's own table (`node/src/rpc/method_table.rs`), which `help` prints.
//!
//! | module | what it does |
//! |---|---|
//! | [`params`] | command-line words to JSON params, typed by the table |
//! | [`call`] | the node's URL and token (from `--data-dir`), the HTTP call, `--wait` |
//! | [`help`] | `help`, `help METHOD`, `--help`'s examples |

mod call;
mod help;
mod params;
use ember_node::rpc::method_table as table;

use call::{CallError, Endpoint};
use clap::Parser;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit code of an error from the node, or of no node.
const FAILED: u8 = 1;
/// Exit code of a command line that is wrong (clap uses it too).
const USAGE: u8 = 2;

/// Call an ember-node's JSON-RPC methods.
#[derive(Parser)]
#[command(name = "ember-cli", version, after_help = help::EXAMPLES)]
struct Args {
    /// The node's RPC URL [default: http://127.0.0.1:8545]
    #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
    rpc: Option<String>,
    /// The node's data dir: its URL from DIR/rpc.addr, its token from DIR/rpc.cookie
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Read the admin token from FILE (a node's rpc.cookie)
    #[arg(long, value_name = "FILE")]
    rpc_token_file: Option<PathBuf>,
    /// Wait until the node answers, up to SECS seconds (30 when no SECS is given)
    #[arg(
        long,
        value_name = "SECS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "30"
    )]
    wait: Option<u64>,
    /// The method (`ember-cli help` lists them), then its params
    #[arg(value_name = "METHOD [PARAMS]", trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    // clap prints help and version to stdout (exit 0) and errors to stderr (exit 2), and
    // ignores a closed stdout.
    let args = Args::try_parse().unwrap_or_else(|e| e.exit());
    let Some((method, words)) = args.command.split_first() else {
        return usage_error(
            "no method given; `ember-cli help` lists the methods, `ember-cli --help` the options",
        );
    };
    if method == "help" {
        return show_help(words);
    }
    let endpoint = match (args.data_dir, args.rpc) {
        (Some(dir), _) => Endpoint::DataDir { dir, token_file: args.rpc_token_file },
        (None, url) => Endpoint::Url {
            url: url.unwrap_or_else(|| call::DEFAULT_URL.to_string()),
            token_file: args.rpc_token_file,
        },
    };
    if let Endpoint::Url { url, .. } = &endpoint {
        if let Err(e) = call::check_url(url) {
            return usage_error(&format!("{e}; e.g. --rpc http://127.0.0.1:8545"));
        }
    }
    if method == "ready" {
        return ready(&endpoint, words, args.wait);
    }
    let spec = table::find(method);
    if let Some(option) = words.iter().find(|w| is_our_option(w)) {
        return usage_error(&format!(
            "{option} after the method: options go before it (ember-cli {option} {method} ...)"
        ));
    }
    let params = match params::build(method, spec, words) {
        Ok(p) => p,
        Err(e) => return usage_error(&format!("{e}\nusage: ember-cli {}", usage_of(method))),
    };
    let wait = args.wait.map(Duration::from_secs);
    let result = call::call(&endpoint, method, &params, wait, |url| {
        let secs = args.wait.unwrap_or(0);
        say(&format!("ember-cli: waiting for {url} (up to {secs} s)"));
    });
    match result {
        Ok(v) => print_result(&v),
        Err(e) => {
            report(&e, method, args.wait);
            ExitCode::from(FAILED)
        }
    }
}

/// `ready`: the node's `GET /ready` answer; exit 0 when it is connected and caught up,
/// 1 otherwise (with the reason), so it serves as a container health check.
fn ready(endpoint: &Endpoint, words: &[String], wait: Option<u64>) -> ExitCode {
    if !words.is_empty() {
        return usage_error("ready takes no params (use --wait=SECS before it to wait)");
    }
    match call::ready(endpoint, wait.map(Duration::from_secs)) {
        Ok((true, v)) => print_result(&v),
        Ok((false, v)) => {
            let reason = v.get("reason").and_then(Value::as_str).unwrap_or("not ready");
            say(&format!("not ready: {reason}"));
            ExitCode::from(FAILED)
        }
        Err(e) => {
            report(&e, "ready", wait);
            ExitCode::from(FAILED)
        }
    }
}

/// `help` or `help METHOD`.
fn show_help(words: &[String]) -> ExitCode {
    match words {
        [] => print_text(&help::list()),
        [name] if name == "ready" => print_text(
            "ready\n    GET /ready: exit 0 when the node has a peer (or is alone by design) and \
             is caught up, else 1 with the reason on stderr. With --wait=SECS: until it is, or \
             SECS pass.\n\nExamples:\n  ember-cli ready\n  ember-cli --wait=120 --rpc \
             http://node3:8545 ready\n",
        ),
        [name] => match table::find(name) {
            Some(spec) => print_text(&help::one(spec)),
            None => {
                let near = help::suggest(name);
                let hint = if near.is_empty() {
                    String::new()
                } else {
                    format!(" (did you mean {}?)", near.join(", "))
                };
                usage_error(&format!(
                    "no method {name:?}{hint}; `ember-cli help` lists the methods"
                ))
            }
        },
        _ => usage_error("help takes at most one method name"),
    }
}

fn usage_of(method: &str) -> String {
    table::find(method).map_or_else(|| format!("{method} [PARAMS...]"), help::usage)
}

/// A word after the method that is one of our own options: surely meant for us.
fn is_our_option(word: &str) -> bool {
    let name = word.split('=').next().unwrap_or(word);
    ["--rpc", "--data-dir", "--rpc-token-file", "--wait", "--help", "--version"].contains(&name)
}

/// What went wrong, on stderr, with the next step where there is one.
fn report(e: &CallError, method: &str, wait: Option<u64>) {
    match e {
        CallError::Rpc { code, message, data } => {
            say(&format!("error code {code}: {message}"));
            if let Some(d) = data {
                say(&format!("data: {d}"));
            }
            // The codes of docs/PROTOCOL.md: bad params, admin without the token, unknown.
            match code {
                -32602 => say(&format!("usage: ember-cli {}", usage_of(method))),
                -32001 => say("hint: pass the node's data dir (--data-dir DIR), its cookie \
                     (--rpc-token-file DIR/rpc.cookie, new at every node start) or the file \
                     of the node's own --rpc-token-file"),
                -32601 => say("hint: `ember-cli help` lists the methods"),
                _ => {}
            }
        }
        CallError::Unreachable { url, reason, .. } => {
            let next = match wait {
                Some(s) => format!("waited {s} s; is ember-node running there?"),
                None => "is ember-node running? --wait waits for it to start, --data-dir DIR \
                         finds it by its data dir"
                    .into(),
            };
            say(&format!("error: the node is not reachable at {url} ({reason}); {next}"));
        }
        CallError::NoAddress { file } => {
            let dir = file.parent().unwrap_or(file).display();
            let next = match wait {
                Some(s) => format!("waited {s} s for it"),
                None => "--wait waits for the node to start".into(),
            };
            say(&format!(
                "error: the node is not reachable: {} does not exist (is ember-node running \
                 with --data-dir {dir}?); {next}",
                file.display()
            ));
        }
        CallError::Token { path, reason } => {
            say(&format!("error: cannot read the RPC token from {}: {reason}", path.display()))
        }
        CallError::BadAnswer { url, reason } => {
            say(&format!("error: {url} did not answer as an ember-node: {reason}"))
        }
    }
}

/// A result on stdout: a string as is (like bitcoin-cli), anything else as pretty JSON.
fn print_result(v: &Value) -> ExitCode {
    match v {
        Value::String(s) => print_text(s),
        other => print_text(
            &serde_json::to_string_pretty(other).expect("a serde_json Value always serialises"),
        ),
    }
}

/// Writes `text` and a newline on stdout. A reader that went away (`| head`) is not an
/// error: exit quietly with 0; any other write error is said, with exit code 1.
fn print_text(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{}", text.trim_end_matches('\n')).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("error: cannot write the result to standard output: {e}"));
            ExitCode::from(FAILED)
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    say(&format!("error: {message}"));
    ExitCode::from(USAGE)
}

/// A line on stderr; a closed stderr is ignored (`eprintln!` would panic).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
