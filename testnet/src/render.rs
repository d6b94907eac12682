//! What `ember-testnet` prints: the node table, the links, the live line and the summary
//! after `up`, each fitted to the terminal's width (`COLUMNS`, else the terminal's own;
//! none for a pipe or a file: whole lines for scripts).

use ember_testnet::state::TestnetState;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::process::{Command, Stdio};

/// The width results on stdout must fit: `COLUMNS`, else the terminal's, else none (a
/// pipe or a file: whole lines for scripts).
pub(crate) fn stdout_width() -> Option<usize> {
    terminal_width(std::io::stdout().is_terminal())
}

/// Columns of the terminal: `COLUMNS` when set, else what `stty size` says of the
/// controlling terminal when `tty` (80 if it cannot say), else `None` (no limit). `stty`
/// rather than an ioctl: no unsafe code and no extra dependency.
pub(crate) fn terminal_width(tty: bool) -> Option<usize> {
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
pub(crate) fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

pub(crate) fn short(id: &str, len: usize) -> &str {
    &id[..len.min(id.len())]
}

/// The live line: every node's height and tip, `[testnet] n0:12@a793e92c  n1:...`, in at
/// most `width - 1` characters (the last column of a terminal would wrap a redrawn line):
/// shorter tips, then heights only, then cut with '…'.
pub(crate) fn live_line(view: &Value, width: usize) -> String {
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
/// tips are shortened, then the p2p, mempool, peers and rpc columns are left out in that
/// order (a last line names them), and lines are cut as a last resort: never wrapped.
pub(crate) fn render_table(view: &Value, width: Option<usize>) -> String {
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
    // Narrower and narrower: the values a user watches (state, height, tip) go last.
    let layouts: [(usize, &[usize]); 6] =
        [(12, &[]), (8, &[]), (8, &[3]), (8, &[3, 7]), (8, &[3, 7, 6]), (8, &[3, 7, 6, 2])];
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
    let hidden = [3, 7, 6, 2];
    let table = render(&rows(8), &hidden);
    let cut: Vec<String> = table.lines().map(|l| fit(l, width)).collect();
    format!("{}\n{}", cut.join("\n"), note(&hidden))
}

pub(crate) fn print_table(view: &Value, width: Option<usize>) -> std::io::Result<()> {
    outln!("{}", render_table(view, width))
}

/// The links, as many to a line as `width` allows.
pub(crate) fn render_links(view: &Value, width: Option<usize>) -> String {
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
    let title = if view["testnet"]["engine"].is_string() {
        "Links (dialer->listener, by service name; discovery adds more):"
    } else {
        "Links (dialer->listener, each through a proxy):"
    };
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

pub(crate) fn print_links(view: &Value, width: Option<usize>) -> std::io::Result<()> {
    outln!("\n{}", render_links(view, width))
}

pub(crate) fn print_summary(
    state: &TestnetState,
    view: &Value,
    width: Option<usize>,
) -> std::io::Result<()> {
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
    let path = super::wallet_dir_off_path();
    if path.is_some() || cd.is_some() {
        outln!("\nIn another terminal:")?;
    }
    if let Some(bin_dir) = path {
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
