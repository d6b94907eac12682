//! `ember-cli help` and `ember-cli help METHOD`, rendered from the method table, and the
//! examples of `--help`.

use crate::table::{MethodSpec, METHODS};
use std::fmt::Write;

/// What `--help` shows after the options.
pub const EXAMPLES: &str = "\
Params are positional (each parsed as JSON when it is JSON, else taken as text) or all \
name=value. Admin methods need the node's cookie: --data-dir DIR reads both the address \
(DIR/rpc.addr) and the token (DIR/rpc.cookie).

Examples:
  ember-cli node_info
  ember-cli chain_getBlock 12
  ember-cli --rpc 127.0.0.1:8546 account_history edev1... page_size=10
  ember-cli --data-dir ~/.local/share/ember/devnet mining_generate 5
  ember-cli --data-dir /tmp/a net_ban 10.0.0.1 60
  ember-cli --wait=60 --data-dir /tmp/a node_info   # waits for the node to start
  ember-cli ready                                  # GET /ready: exit 0 once synced
  ember-cli --wait=120 --rpc node3:8545 ready      # wait until node3 is ready
  ember-cli help                                   # every method with its params
  ember-cli help net_ban

Exit codes: 0 the result is on stdout (JSON, or a plain string as is); 1 the node \
answered with an error (\"error code N: message\" on stderr) or could not be reached; 2 a \
usage error.";

/// `net_ban <address> [seconds] [reason]`.
pub fn usage(spec: &MethodSpec) -> String {
    let mut s = spec.name.to_string();
    for p in spec.params {
        match p.default {
            None => write!(s, " <{}>", p.name),
            Some(_) => write!(s, " [{}]", p.name),
        }
        .expect("writing to a String cannot fail");
    }
    s
}

/// Every method: its usage line, whether it is admin, and its summary.
pub fn list() -> String {
    let mut out = String::from(
        "Methods of ember-node (admin: needs the node's cookie, with --data-dir DIR or \
         --rpc-token-file FILE).\n`ember-cli help METHOD` shows one with its params' types.\n\n",
    );
    let width = METHODS.iter().map(|m| usage(m).len()).max().unwrap_or(0);
    for m in METHODS {
        let admin = if m.admin { "  (admin)" } else { "" };
        let line = format!("  {:width$}{admin}", usage(m));
        writeln!(out, "{}\n      {}", line.trim_end(), m.summary)
            .expect("writing to a String cannot fail");
    }
    out.push_str(
        "\nNot a JSON-RPC method:\n  ready\n      GET /ready: exit 0 when the node has a peer \
         and is caught up, else 1 with the reason (with --wait=SECS: until it is)\n",
    );
    out
}

/// One method in full: usage, summary, each param with its type and default, examples.
pub fn one(spec: &MethodSpec) -> String {
    let mut out = String::new();
    let w = |out: &mut String, line: String| {
        writeln!(out, "{line}").expect("writing to a String cannot fail")
    };
    w(&mut out, format!("ember-cli {}", usage(spec)));
    w(&mut out, String::new());
    w(&mut out, spec.summary.to_string());
    if spec.admin {
        w(
            &mut out,
            "Admin: needs the node's cookie (--data-dir DIR, or --rpc-token-file FILE).".into(),
        );
    }
    if !spec.params.is_empty() {
        w(&mut out, "\nParams (by position, or as name=value):".into());
        let nw = spec.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
        let tw = spec.params.iter().map(|p| p.ty.label().len()).max().unwrap_or(0);
        for p in spec.params {
            let when = match p.default {
                None => "required".to_string(),
                Some(d) => format!("default: {d}"),
            };
            let about = if p.about.is_empty() { String::new() } else { format!("; {}", p.about) };
            w(&mut out, format!("  {:nw$}  {:tw$}  {when}{about}", p.name, p.ty.label()));
        }
    }
    let dir = if spec.admin { "--data-dir DIR " } else { "" };
    let placeholders: Vec<String> =
        spec.params.iter().filter(|p| p.default.is_none()).map(|p| p.name.to_uppercase()).collect();
    w(&mut out, "\nExample:".into());
    let example = format!("  ember-cli {dir}{} {}", spec.name, placeholders.join(" "));
    w(&mut out, example.trim_end().to_string());
    out
}

/// The listed methods closest to a mistyped name: same letters but for case, or sharing
/// the part before `_` (`net_addpeer` -> `net_addPeer`; `chain_block` -> the chain_ ones).
pub fn suggest(name: &str) -> Vec<&'static str> {
    if let Some(m) = METHODS.iter().find(|m| m.name.eq_ignore_ascii_case(name)) {
        return vec![m.name];
    }
    let prefix = name.split('_').next().unwrap_or(name).to_ascii_lowercase();
    METHODS
        .iter()
        .filter(|m| m.name.split('_').next() == Some(prefix.as_str()))
        .map(|m| m.name)
        .collect()
}
