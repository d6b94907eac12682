//! Runs every hostile-peer attack for `SECONDS` (default 60) against a fresh devnet node that
//! has an honest peer, and prints what each did to the node: RSS before, at its peak and
//! after, `node_info` latency during it, and whether the honest peer stayed listed.
//!
//! `cargo run -p ember-testnet --example attack -- [SECONDS] [ATTACK]` (after building the
//! `ember-node` binary; ATTACK is one of the names printed, all by default).

use ember_testnet::attack::measure;
use ember_testnet::hostile::Attack;
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: u64 = match args.first() {
        Some(s) => s.parse().map_err(|_| anyhow::anyhow!("SECONDS must be a number, got {s:?}"))?,
        None => 60,
    };
    let only = args.get(1);
    println!(
        "{:<16} {:>7} {:>9} {:>8} {:>9} {:>9} {:>9} {:>7} {:>8}",
        "attack", "rounds", "rss_MiB", "peak", "after", "rpc_p50", "rpc_p99", "max_ms", "honest"
    );
    for attack in Attack::ALL {
        if only.is_some_and(|o| o != attack.name()) {
            continue;
        }
        let f = measure(attack, Duration::from_secs(secs))?;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!(
            "{:<16} {:>7} {:>9.1} {:>8.1} {:>9.1} {:>8.2}ms {:>8.2}ms {:>7.1} {:>8}",
            attack.name(),
            f.report.rounds,
            mib(f.rss_before),
            mib(f.rss_peak),
            mib(f.rss_after),
            f.rpc_p50_ms,
            f.rpc_p99_ms,
            f.rpc_max_ms,
            if f.honest_missing == 0 {
                "kept".to_string()
            } else {
                format!("lost {}/{}", f.honest_missing, f.samples)
            }
        );
        if f.rpc_errors > 0 {
            println!("  node_info failed {} of {} times", f.rpc_errors, f.samples);
        }
    }
    Ok(())
}
