//! `ember-testnet`: start and watch a local multi-node Ember network with one command.

use anyhow::Result;
use clap::{Parser, Subcommand};
use ember_testnet::network::{parse_indices, Testnet, TestnetOptions, Topology};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "ember-testnet",
    version,
    about = "Start and watch a local multi-node Ember network on loopback.",
    after_help = "Examples:\n  ember-testnet up                       # 4 nodes in a ring, node 0 mines, RPC of node 0 on 127.0.0.1:8545\n  \
                  ember-testnet up --nodes 6 --topology mesh --miners 0,3 --block-time 1\n  \
                  ember-testnet up --base-port 0         # ports chosen by the OS"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a fresh network and show its state live until Ctrl-C, then stop every node.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// How the nodes are linked.
        #[arg(long, value_enum, default_value = "ring")]
        topology: Topology,
        /// Comma-separated indices of the nodes that mine.
        #[arg(long, default_value = "0")]
        miners: String,
        /// Mean seconds between blocks of each miner.
        #[arg(long, default_value_t = 2.0)]
        block_time: f64,
        /// Where node data dirs and the genesis go (replaced if present).
        #[arg(long, default_value = ".testnet")]
        dir: PathBuf,
        /// RPC of node i listens on BASE+i, P2P on BASE+100+i (0 = ports from the OS).
        #[arg(long, default_value_t = 8545)]
        base_port: u16,
    },
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    match Cli::parse().command {
        Cmd::Up { nodes, topology, miners, block_time, dir, base_port } => {
            let opts = TestnetOptions {
                nodes,
                topology,
                miners: parse_indices(&miners)?,
                block_time_secs: block_time,
                dir: std::path::absolute(&dir)?,
                base_port,
            };
            up(&opts)
        }
    }
}

fn up(opts: &TestnetOptions) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc_flag(stop);
    }
    let mut net = Testnet::start(opts, |step| eprintln!("[testnet] {step}"))?;
    print_table(&net);
    let rpc0 = net.nodes[0].rpc_url().to_string();
    println!("\nSend coins (dev account 0 is prefunded with 1,000,000 coins):");
    println!("  ember-wallet --node {rpc0} import-dev-key --wallet dev.json");
    println!("  ember-wallet --node {rpc0} create");
    println!(
        "  ember-wallet --node {rpc0} --wallet dev.json send --to $(ember-wallet address) --amount 12.5 --wait"
    );
    println!("  ember-wallet --node {rpc0} balance");
    println!(
        "\nData and logs: {} (node<i>/node.log). Ctrl-C stops every node.\n",
        opts.dir.display()
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        if let Ok(tips) = net.tips() {
            let line: Vec<String> = tips
                .iter()
                .enumerate()
                .map(|(i, t)| format!("n{i}:{}@{}", t.0, &t.1[..8.min(t.1.len())]))
                .collect();
            eprint!("\r[testnet] {}   ", line.join("  "));
        }
    }
    eprintln!("\n[testnet] stopping nodes");
    net.stop()?;
    Ok(())
}

fn print_table(net: &Testnet) {
    println!("{:<5} {:<24} {:<22} {:>7} {:>6}", "node", "rpc", "p2p", "height", "peers");
    for (i, n) in net.nodes.iter().enumerate() {
        let info = n.client().call("node_info", json!([])).unwrap_or_default();
        println!(
            "{:<5} {:<24} {:<22} {:>7} {:>6}",
            i,
            n.rpc_url(),
            n.p2p_addr(),
            info["height"].as_u64().unwrap_or(0),
            info["peers"].as_u64().unwrap_or(0)
        );
    }
}

/// Sets `flag` on SIGINT/SIGTERM.
fn ctrlc_flag(flag: Arc<AtomicBool>) {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
}
