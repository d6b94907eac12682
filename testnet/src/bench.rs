//! `ember-testnet bench`: how fast a network of real `ember-node` processes is on this
//! machine, with every figure stated against the machine's own limits measured in the same
//! run.
//!
//! The limits: `verify_strict` signature checks per second on one core (measured in this
//! process with ember-core, which is what every node does for every payment), a loopback
//! TCP round trip, and a JSON-RPC round trip to an idle node. Phases, in order, on one
//! fresh devnet in a temp dir (or `--dir`):
//!
//! 1. a line of `nodes` nodes (default 10): empty and full blocks mined on node 0, timed
//!    until every node of the first 5 and of all 10 has them as tip; payments submitted to
//!    node 0, timed until they are in the mempool of node 4 and of the far end;
//! 2. nodes 5.. stop; on the 5-node line, payments are submitted to node 0 as fast as it
//!    takes them (batches of 100) while node 0 mines a block a second: submitted,
//!    admitted and confirmed-on-every-node rates, and RPC latency meanwhile;
//! 3. the other nodes stop; node 0 builds a longer chain of payments and empty blocks and a
//!    fresh node syncs it from scratch;
//! 4. a fresh node with a 100,000-transaction mempool bound is filled (memory);
//! 5. a payment flood at the admission limit against a fresh node with the default mempool
//!    bound: rates, the mempool's size against its bounds, RPC latency, RSS, and a check
//!    that eviction took the lowest fees.
//!
//! Between 1 and 2, what encryption costs: in rounds, every node of the line restarts with
//! `--insecure-p2p-plaintext` and empty and full blocks are timed, and every node restarts
//! encrypted and the same is timed (the order alternating by round); each node's own time
//! of storing each block is compared between the pooled samples of the two modes.
//!
//! Peak RSS of every node is read from `/proc/<pid>/status` (`VmHWM`) before it stops.
//! Times are measured by polling node RPC in a tight loop from one thread, so they carry
//! about one RPC round trip of resolution. Nothing here asserts a speed: it reports.
//!
//! The report: every ratio in one style (a multiple, `0.84x`), and only between quantities
//! of one kind (a payment's trip over hops against the relay interval over hops, not a
//! loopback round trip; no ratio at all for blocks per second, which no machine limit
//! bounds). The encryption cost notes the spread of its rounds, and says "within
//! run-to-run noise" when the rounds disagree on its sign.

use crate::network::{Testnet, TestnetOptions, Topology};
use crate::process::{wait_for, NodeProcess};
use anyhow::{anyhow, bail, Context, Result};
use ember_core::params::{ChainParams, GenesisSpec};
use ember_core::{Address, Keypair, Network, Transaction};
use ember_wallet::rpc::{RpcClient, RpcClientError};
use serde::Serialize;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most transactions one account may have pending (the mempool's nonce window is 64
/// ahead of the account's nonce, so 65 fit; we keep one slot free).
const PENDING_PER_SENDER: u64 = 60;
/// Requests per JSON-RPC batch (the node's limit is 100).
const BATCH: usize = 100;
/// The node flag that turns encryption off (devnet benchmarks only).
const PLAINTEXT_FLAG: &str = "--insecure-p2p-plaintext";
/// How often a node announces the payments it admitted (node/src/net/relay.rs): a
/// payment waits up to this long at every hop, so it is what payment propagation is
/// compared with.
const TX_ANNOUNCE_INTERVAL_MS: f64 = 100.0;
/// A payment's amount and fee, in base units.
const AMOUNT: u64 = 1_000;
const FEE: u64 = 10;

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Smaller sizes and shorter windows: the whole run takes under 3 minutes.
    pub quick: bool,
    /// Nodes of the line for block and payment propagation (at least 5; the 5-node figures
    /// are taken on its first 5 nodes).
    pub nodes: usize,
    /// Where the nodes' data dirs go (a temp dir when `None`: removed at the end, kept
    /// when the run fails).
    pub dir: Option<PathBuf>,
    /// Set on Ctrl-C: the run stops at the next step and cleans up.
    pub stop: Arc<AtomicBool>,
}

/// The sizes of a run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sizes {
    pub senders: usize,
    pub empty_block_samples: usize,
    pub full_block_samples: usize,
    pub full_block_txs: usize,
    /// The 5-node line alone (nodes 5-9 stopped): blocks of each kind, and the payments of
    /// its full blocks (~500, issue 16's comparison with Litecoin Core 0.21).
    pub line5_samples: usize,
    pub line5_block_txs: usize,
    pub payment_samples: usize,
    pub throughput_secs: u64,
    pub sync_blocks: u64,
    pub sync_txs: u64,
    pub mempool_txs: u64,
    /// The encryption comparison: rounds (each restarts the line in both modes, plaintext
    /// first in even rounds, encrypted first in odd ones), and empty and full blocks per
    /// mode per round. Many short rounds: the state each restart leaves varies more than
    /// the blocks after one restart do.
    pub cost_rounds: usize,
    pub cost_empty_blocks: usize,
    pub cost_full_blocks: usize,
    /// The payment flood: seconds, and senders (each signs 60 payments ahead).
    pub flood_secs: u64,
    pub flood_senders: usize,
}

impl Sizes {
    pub fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                senders: 640,
                empty_block_samples: 10,
                full_block_samples: 3,
                full_block_txs: 1_000,
                line5_samples: 5,
                line5_block_txs: 500,
                payment_samples: 10,
                throughput_secs: 10,
                sync_blocks: 1_000,
                sync_txs: 20_000,
                mempool_txs: 100_000,
                cost_rounds: 4,
                cost_empty_blocks: 5,
                cost_full_blocks: 1,
                flood_secs: 10,
                flood_senders: 1_500,
            }
        } else {
            Sizes {
                senders: 1_920,
                empty_block_samples: 30,
                full_block_samples: 10,
                full_block_txs: 2_000,
                line5_samples: 15,
                line5_block_txs: 500,
                payment_samples: 30,
                throughput_secs: 60,
                sync_blocks: 10_000,
                sync_txs: 200_000,
                mempool_txs: 100_000,
                cost_rounds: 8,
                cost_empty_blocks: 12,
                cost_full_blocks: 3,
                flood_secs: 60,
                flood_senders: 10_000,
            }
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    /// The figure divided by the limit it is compared with; `None` when no limit measured
    /// here is of the same kind (blocks per second against signature checks per second
    /// would say nothing).
    pub ratio: Option<f64>,
    /// What `ratio` is relative to, e.g. "verify/s/core" or "loopback RTT x hops".
    pub ratio_to: Option<&'static str>,
    /// How far to trust the figure, e.g. that a difference is within the spread of the
    /// runs it comes from.
    pub note: Option<String>,
}

/// The machine's limits, measured at the start of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    /// `verify_strict` checks per second on one core.
    pub verify_per_sec_core: f64,
    /// `verify_strict` checks per second of all cores verifying at once (one thread per
    /// core), measured: below `cores` x `verify_per_sec_core` when cores share a physical
    /// core (hyperthreads) or the clock drops under load. What the sync is compared with.
    pub verify_per_sec_all: f64,
    /// Loopback TCP round trip (1-byte ping-pong), median, µs.
    pub loopback_rtt_us: f64,
    /// `node_info` round trip to an idle node, median, µs.
    pub rpc_rtt_us: f64,
}

/// The whole result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub quick: bool,
    pub machine: Machine,
    pub sizes: Sizes,
    pub figures: Vec<Figure>,
    pub seconds: f64,
}

impl Report {
    /// The table `ember-testnet bench` prints.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "machine: {} ({} cores); verify_strict {:.0}/s/core, {:.0}/s on all cores at once; \
             loopback RTT {:.1} µs; RPC RTT {:.1} µs\n\n",
            m.cpu,
            m.cores,
            m.verify_per_sec_core,
            m.verify_per_sec_all,
            m.loopback_rtt_us,
            m.rpc_rtt_us
        );
        let w = self.figures.iter().map(|f| f.name.chars().count()).max().unwrap_or(0).max(58);
        let nw = self.figures.iter().filter_map(|f| f.note.as_ref()).map(|n| n.chars().count());
        let nw = nw.max().unwrap_or(0).max(4);
        let rw = self.figures.iter().filter_map(|f| f.ratio_to).map(|r| r.chars().count());
        let rw = rw.max().unwrap_or(0).max(24);
        out += &format!(
            "| {:<w$} | {:>12} | {:<5} | {:>10} | {:<rw$} | {:<nw$} |\n",
            "figure", "value", "unit", "ratio", "relative to", "note"
        );
        out += &format!(
            "|{}|{}|{}|{}|{}|{}|\n",
            "-".repeat(w + 2),
            "-".repeat(14),
            "-".repeat(7),
            "-".repeat(12),
            "-".repeat(rw + 2),
            "-".repeat(nw + 2)
        );
        for f in &self.figures {
            out += &format!(
                "| {:<w$} | {:>12} | {:<5} | {:>10} | {:<rw$} | {:<nw$} |\n",
                f.name,
                fmt_num(f.value),
                f.unit,
                fmt_ratio(f.ratio),
                f.ratio_to.unwrap_or("-"),
                f.note.as_deref().unwrap_or("")
            );
        }
        out += &format!(
            "\n({} run, {:.0} s)\n",
            if self.quick { "quick" } else { "full" },
            self.seconds
        );
        out
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A ratio, always as a multiple (`0.84x`, `1.12x`, `2723x`) so one column reads one way;
/// "-" where there is none.
fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        None => "-".to_owned(),
        Some(r) if r >= 100.0 => format!("{r:.0}x"),
        Some(r) if r >= 10.0 => format!("{r:.1}x"),
        Some(r) if r >= 0.1 || r == 0.0 => format!("{r:.2}x"),
        Some(r) => format!("{r:.3}x"),
    }
}

/// The note on a difference in % between two modes, from the same difference in each
/// round: the rounds' range, and "within run-to-run noise" when they disagree on its sign
/// (then the pooled figure says nothing about which mode is faster).
fn spread_note(per_round: &[f64]) -> Option<String> {
    let lo = per_round.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if per_round.len() < 2 || !lo.is_finite() || !hi.is_finite() {
        return None;
    }
    let range = format!("rounds {lo:+.1}%..{hi:+.1}%");
    Some(if lo <= 0.0 && hi >= 0.0 { format!("within run-to-run noise ({range})") } else { range })
}

/// Runs the benchmark; `progress` hears of every step.
pub fn run(opts: &BenchOptions, mut progress: impl FnMut(&str)) -> Result<Report> {
    if opts.nodes < 5 || opts.nodes > 50 {
        bail!("--nodes must be between 5 and 50 (the 5-node figures use the first 5)");
    }
    match &opts.dir {
        Some(d) => run_in(opts, d, &mut progress),
        None => {
            let temp = tempfile::Builder::new().prefix("ember-bench").tempdir()?;
            let result = run_in(opts, temp.path(), &mut progress);
            if result.is_err() {
                // A failed run's nodes' logs are what tells why: kept, and said where.
                let kept = temp.keep();
                return result.with_context(|| {
                    format!("the nodes' data dirs and logs are kept in {}", kept.display())
                });
            }
            result
        }
    }
}

/// [`run`] in the testnet directory `dir`.
fn run_in(opts: &BenchOptions, dir: &Path, mut progress: impl FnMut(&str)) -> Result<Report> {
    let started = Instant::now();
    let sizes = Sizes::new(opts.quick);
    let dir = dir.to_path_buf();
    let mut b = Bench { opts, sizes, figures: Vec::new(), machine: None, block_cpu_ms: Vec::new() };

    progress("measuring the machine: verify_strict on one core and on all, loopback round trip");
    let secs = if opts.quick { 1.0 } else { 3.0 };
    let verify = verify_per_sec(secs);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let verify_all = verify_per_sec_threads(cores, secs);
    let loopback = loopback_rtt_us(2_000)?;

    progress(&format!("starting a {}-node line", opts.nodes));
    let mut tn = Testnet::start(&TestnetOptions::new(opts.nodes, Topology::Line, &dir), |_| {})?;
    let params = load_genesis(&tn.genesis)?;
    let clients: Vec<RpcClient> = (0..tn.len()).map(|i| tn.client(i)).collect();
    let rpc_rtt = rpc_rtt_us(&clients[0], 300)?;
    b.machine = Some(Machine {
        cpu: cpu_model(),
        cores,
        verify_per_sec_core: verify,
        verify_per_sec_all: verify_all,
        loopback_rtt_us: loopback,
        rpc_rtt_us: rpc_rtt,
    });
    let mut peaks = vec![0u64; tn.len()];

    progress(&format!("funding {} sender accounts", sizes.senders));
    let mut senders = Senders::new(&params, sizes.senders);
    senders.fund(&clients[0], &tn)?;
    b.check()?;

    progress("block propagation: empty blocks");
    b.block_propagation(&tn, &clients, "empty", sizes.empty_block_samples, 0, &mut senders)?;
    progress("payment propagation");
    b.payment_propagation(&clients, &mut senders)?;
    progress("block propagation: full blocks");
    b.block_propagation(
        &tn,
        &clients,
        "full",
        sizes.full_block_samples,
        sizes.full_block_txs,
        &mut senders,
    )?;
    record_peaks(&tn, &mut peaks);
    b.compact_counters(&clients, "10-node line")?;
    progress(
        "the same blocks with and without encryption (the nodes restarted in each mode in turn)",
    );
    b.encryption_cost(&mut tn, &mut senders, &mut peaks)?;
    // The nodes restarted: new RPC cookies.
    let clients: Vec<RpcClient> = (0..tn.len()).map(|i| tn.client(i)).collect();

    // Throughput on the first 5 nodes.
    for i in 5..tn.len() {
        tn.stop_node(i)?;
    }
    progress(&format!(
        "the 5-node line alone: empty and {}-payment blocks, mining call to far node",
        sizes.line5_block_txs
    ));
    b.line5(&tn, &clients[..5], &mut senders)?;
    progress(&format!("throughput on a 5-node line for {} s", sizes.throughput_secs));
    b.throughput(&tn, &clients[..5], &mut senders)?;
    record_peaks(&tn, &mut peaks);

    // Sync: node 0 alone builds the chain, a fresh node downloads it.
    for i in 1..5 {
        tn.stop_node(i)?;
    }
    progress(&format!(
        "building a {}-block chain with {} payments on node 0",
        sizes.sync_blocks, sizes.sync_txs
    ));
    let sync_peak = b.sync(&tn, &clients[0], &mut senders, &dir, &mut progress)?;
    record_peaks(&tn, &mut peaks);
    tn.stop()?;
    drop(tn);

    for (i, kb) in peaks.iter().enumerate() {
        b.figure(format!("peak RSS node {i}"), *kb as f64 / 1024.0, "MB", 200.0, "200 MB budget");
    }
    b.figure(
        "peak RSS of the syncing node",
        sync_peak as f64 / 1024.0,
        "MB",
        200.0,
        "200 MB budget",
    );

    progress(&format!("memory: {} payments in one node's mempool", sizes.mempool_txs));
    b.mempool_memory(&dir)?;

    progress(&format!(
        "payment flood: {} senders against one node with the default mempool bound for {} s",
        sizes.flood_senders, sizes.flood_secs
    ));
    b.flood(&dir, &mut progress)?;

    Ok(Report {
        quick: opts.quick,
        machine: b.machine.take().expect("measured above"),
        sizes,
        figures: b.figures,
        seconds: started.elapsed().as_secs_f64(),
    })
}

struct Bench<'a> {
    opts: &'a BenchOptions,
    sizes: Sizes,
    figures: Vec<Figure>,
    machine: Option<Machine>,
    /// CPU of all nodes per block (ms), one entry per block of the last
    /// [`Clock::Far`] run of [`Bench::propagation_samples`].
    block_cpu_ms: Vec<f64>,
}

impl Bench<'_> {
    fn check(&self) -> Result<()> {
        if self.opts.stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        Ok(())
    }

    fn machine(&self) -> &Machine {
        self.machine.as_ref().expect("the machine is measured first")
    }

    fn figure(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        limit: f64,
        ratio_to: &'static str,
    ) {
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit,
            ratio: Some(value / limit),
            ratio_to: Some(ratio_to),
            note: None,
        });
    }

    /// A figure that no limit measured here is of the same kind as: no ratio.
    fn figure_alone(&mut self, name: impl Into<String>, value: f64, unit: &'static str) {
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit,
            ratio: None,
            ratio_to: None,
            note: None,
        });
    }

    /// A time in ms, as a ratio to `per_hop` ms per hop, which `what` names.
    fn time_per_hop(
        &mut self,
        name: String,
        ms: f64,
        hops: usize,
        per_hop: f64,
        what: &'static str,
    ) {
        self.figure(name, ms, "ms", per_hop * hops as f64, what);
    }

    /// Mines `samples` blocks on node 0 (each after putting `txs` payments into every
    /// mempool) and times their arrival at every node: p50 and p95 on the first 5 nodes
    /// and on the whole line.
    fn block_propagation(
        &mut self,
        tn: &Testnet,
        clients: &[RpcClient],
        kind: &str,
        samples: usize,
        txs: usize,
        senders: &mut Senders,
    ) -> Result<()> {
        let times = self.propagation_samples(tn, clients, samples, txs, senders, Clock::Polled)?;
        let n = clients.len();
        // What a hop cannot beat: a round trip for an empty block; for a full one, checking
        // its payments' signatures (each node does it once, unless its cache has them).
        let (per_hop, what) = if txs > 0 {
            (txs as f64 / self.machine().verify_per_sec_core * 1000.0, "verify its txs x hops")
        } else {
            (self.machine().loopback_rtt_us / 1000.0, "loopback RTT x hops")
        };
        for (last, label) in [(4usize, "5-node"), (n - 1, &format!("{n}-node") as &str)] {
            let mut all = line_times(&times, last);
            let name = if txs > 0 { format!("{kind} ({txs} tx)") } else { kind.to_string() };
            let (p50, p95) = (percentile(&mut all, 50.0), percentile(&mut all, 95.0));
            let p50_name = format!("block propagation {name}, {label} line p50");
            self.time_per_hop(p50_name, p50, last, per_hop, what);
            let p95_name = format!("block propagation {name}, {label} line p95");
            self.time_per_hop(p95_name, p95, last, per_hop, what);
        }
        Ok(())
    }

    /// The 5-node line alone, as issue 16 compared Ember with Litecoin Core 0.21 (same
    /// machine, 5-node line on loopback, from the mining RPC call until the far node's
    /// height moves): empty blocks, and blocks of `line5_block_txs` payments that every
    /// mempool already holds. Core took 6.8-10.0 ms (empty) and 31-81 ms (~500 payments,
    /// median of its runs 39 ms); the ratios are to those medians (6.9 and 39 ms).
    fn line5(&mut self, tn: &Testnet, clients: &[RpcClient], senders: &mut Senders) -> Result<()> {
        let n = self.sizes.line5_samples;
        for (txs, core_ms, what) in [
            (0, 6.9, "Litecoin Core 0.21: 6.9 ms"),
            (self.sizes.line5_block_txs, 39.0, "Litecoin Core 0.21: 39 ms"),
        ] {
            let pids: Vec<u32> = (0..clients.len()).filter_map(|i| tn.node(i).pid()).collect();
            self.block_cpu_ms.clear();
            let times = self.propagation_samples(tn, clients, n, txs, senders, Clock::Far)?;
            let kind_short = if txs > 0 { format!("{txs}-payment") } else { "empty".into() };
            let mut cpu = std::mem::take(&mut self.block_cpu_ms);
            if cpu.len() == n && pids.len() == clients.len() {
                // All nodes' CPU from the mining call until every mempool has dropped the
                // block's payments, per node: what a node spends on one block.
                let mut v: Vec<f64> = cpu.drain(..).map(|ms| ms / pids.len() as f64).collect();
                self.figure_alone(
                    format!("5-node line alone, CPU per node per {kind_short} block, p50"),
                    percentile(&mut v, 50.0),
                    "ms",
                );
            }
            // One time per block: the far node's.
            let mut far: Vec<f64> = times.iter().map(|t| t[0]).collect();
            let kind = if txs > 0 { format!("{txs}-payment block") } else { "empty block".into() };
            for p in [50.0, 95.0] {
                let name = format!("5-node line alone, {kind}, mining call to node 4, p{p:.0}");
                self.figure(name, percentile(&mut far, p), "ms", core_ms, what);
            }
        }
        self.compact_counters(clients, "5-node line")
    }

    /// Compact relay's counters added over `clients`' nodes (`node_info.compact`): how many
    /// blocks were rebuilt from the mempool alone, round trips for missing payments, whole
    /// blocks fetched instead. Counts since each node started.
    fn compact_counters(&mut self, clients: &[RpcClient], label: &str) -> Result<()> {
        let mut sum = [0u64; 4];
        for c in clients {
            let st = c.call("node_info", json!([]))?["compact"].clone();
            for (k, key) in
                ["rebuilt", "rebuilt_from_mempool", "round_trips", "fallbacks"].iter().enumerate()
            {
                sum[k] += st[key].as_u64().unwrap_or(0);
            }
        }
        let names = [
            "blocks rebuilt from compact blocks",
            "of those, rebuilt from the mempool alone",
            "round trips for missing payments",
            "whole blocks fetched instead (collisions)",
        ];
        for (k, name) in names.iter().enumerate() {
            self.figure_alone(format!("compact relay, {label}: {name}"), sum[k] as f64, "count");
        }
        Ok(())
    }

    /// Mines `samples` blocks on node 0 (each after putting `txs` payments into every
    /// mempool); returns, per block, the ms until each node had it, as seen by polling
    /// heights from the mining call on (`Clock::Polled`), or as each node's own record of
    /// when it stored the block, from when node 0 did (`Clock::Stored`, `stored_at_us` of
    /// `chain_getHeader`: every node runs on this machine's clock); with `Clock::Far`, one
    /// time per block: the last node's, polled alone.
    fn propagation_samples(
        &mut self,
        tn: &Testnet,
        clients: &[RpcClient],
        samples: usize,
        txs: usize,
        senders: &mut Senders,
        clock: Clock,
    ) -> Result<Vec<Vec<f64>>> {
        // Polling for the stored times only has to see the height reached: it polls the far
        // node alone, pausing between calls, and leaves the cores to the nodes instead of
        // spinning on RPC (then one round checks that every node has the block).
        let pause = match clock {
            Clock::Polled | Clock::Far => Duration::ZERO,
            Clock::Stored => STORED_POLL_PAUSE,
        };
        let polled = match clock {
            Clock::Far | Clock::Stored => &clients[clients.len() - 1..],
            Clock::Polled => clients,
        };
        let mut times = Vec::new();
        for _ in 0..samples {
            self.check()?;
            if txs > 0 {
                let batch = senders.next_payments(txs);
                submit_all(&clients[0], &batch)?;
                wait_mempools(clients, batch.len(), Duration::from_secs(60))?;
            }
            let (h0, _) = tn.tip(0)?;
            let target = h0 + 1;
            let pids: Vec<u32> = (0..clients.len()).filter_map(|i| tn.node(i).pid()).collect();
            let cpu_before: u64 = pids.iter().map(|&p| cpu_ns(p)).sum();
            let arrived = std::thread::scope(|s| -> Result<Vec<f64>> {
                let t0 = Instant::now();
                let poller = s.spawn(move || poll_heights(polled, target, t0, pause));
                let mined = clients[0].call("mining_generate", json!([1]));
                let arrived = poller.join().map_err(|_| anyhow!("poller panicked"))??;
                mined.context("mining_generate on node 0")?;
                Ok(arrived)
            })?;
            senders.confirm_all();
            times.push(match clock {
                Clock::Polled | Clock::Far => arrived,
                Clock::Stored => {
                    // The far node can store a block before a node nearer node 0 does
                    // (each forwards it before storing it): wait for every node.
                    poll_heights(clients, target, Instant::now(), STORED_POLL_PAUSE)?;
                    stored_times(clients, target)?
                }
            });
            if txs > 0 {
                wait_mempools(clients, 0, Duration::from_secs(30))?;
            }
            if matches!(clock, Clock::Far) {
                let cpu_after: u64 = pids.iter().map(|&p| cpu_ns(p)).sum();
                self.block_cpu_ms.push(cpu_after.saturating_sub(cpu_before) as f64 / 1e6);
            }
        }
        Ok(times)
    }

    /// What encryption costs end to end, in the same run: the empty and full blocks again,
    /// on the same nodes restarted with `--insecure-p2p-plaintext` and restarted encrypted,
    /// in turn (ABBA: plaintext first in even rounds, encrypted first in odd ones), each
    /// mode measured right after its restart, so that neither gets warmer caches or a
    /// longer chain than the other, and once the restarted nodes are idle (a database that
    /// compacts after its restart would otherwise be timed as slow hops). After each
    /// restart one empty block is mined and not counted: the first block after a start
    /// meets cold connections in either mode. Times are each node's own record of when it
    /// stored the block, from when node 0 (the miner) did: only the hops count, to the
    /// microsecond, and a stall in mining itself (which hits either mode) is left out. The
    /// samples of each mode are pooled; the figures give both modes' p50 and p95 and their
    /// difference, over the line and per hop. Leaves the nodes encrypted.
    fn encryption_cost(
        &mut self,
        tn: &mut Testnet,
        senders: &mut Senders,
        peaks: &mut [u64],
    ) -> Result<()> {
        let s = self.sizes;
        let (empty, full) = (s.cost_empty_blocks, s.cost_full_blocks);
        // [plaintext, encrypted] x [empty, full]: per round, per block, per node.
        let mut rounds: [[Vec<Vec<Vec<f64>>>; 2]; 2] = Default::default();
        for round in 0..s.cost_rounds {
            // Plaintext first in even rounds, encrypted first in odd ones: whatever drifts
            // during a round hits both modes alike.
            let order =
                if round % 2 == 0 { [(0, true), (1, false)] } else { [(1, false), (0, true)] };
            for (m, plain) in order {
                tn.restart_all_with_flag(PLAINTEXT_FLAG, plain)?;
                // New clients: a restarted node has a new RPC cookie.
                let clients: Vec<RpcClient> = (0..tn.len()).map(|i| tn.client(i)).collect();
                wait_quiet(tn);
                self.propagation_samples(tn, &clients, 1, 0, senders, Clock::Stored)?;
                let txs = s.full_block_txs;
                let e = self.propagation_samples(tn, &clients, empty, 0, senders, Clock::Stored)?;
                let f =
                    self.propagation_samples(tn, &clients, full, txs, senders, Clock::Stored)?;
                record_peaks(tn, peaks);
                rounds[m][0].push(e);
                rounds[m][1].push(f);
            }
        }
        if s.cost_rounds % 2 == 0 {
            tn.restart_all_with_flag(PLAINTEXT_FLAG, false)?;
        }
        let n = tn.len();
        self.figures.extend(encryption_figures(&rounds, n, s.full_block_txs));
        Ok(())
    }

    /// Submits single payments to node 0 and times their arrival in the mempools of node 4
    /// and of the far end.
    fn payment_propagation(&mut self, clients: &[RpcClient], senders: &mut Senders) -> Result<()> {
        let n = clients.len();
        let far = [4, n - 1];
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..self.sizes.payment_samples {
            self.check()?;
            let base: Vec<u64> =
                far.iter().map(|&i| mempool_count(&clients[i])).collect::<Result<_>>()?;
            let tx = senders.next_payments(1);
            let t0 = Instant::now();
            submit_all(&clients[0], &tx)?;
            let mut done = [None, None];
            let deadline = t0 + Duration::from_secs(30);
            while done.iter().any(Option::is_none) {
                for (k, &i) in far.iter().enumerate() {
                    if done[k].is_none() && mempool_count(&clients[i])? > base[k] {
                        done[k] = Some(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                if Instant::now() > deadline {
                    bail!("a payment did not reach node {} within 30 s", far[1]);
                }
            }
            for k in 0..2 {
                times[k].push(done[k].expect("loop ends when both are set"));
            }
        }
        // Each hop holds a payment until its next announcement batch: that interval, not a
        // round trip, is what a payment's trip is made of.
        let (per_hop, what) = (TX_ANNOUNCE_INTERVAL_MS, "100 ms relay batch x hops");
        for (k, &last) in far.iter().enumerate() {
            let label = format!("{}-node", last + 1);
            let (p50, p95) = (percentile(&mut times[k], 50.0), percentile(&mut times[k], 95.0));
            let name = format!("payment propagation, {label} line p50");
            self.time_per_hop(name, p50, last, per_hop, what);
            let name = format!("payment propagation, {label} line p95");
            self.time_per_hop(name, p95, last, per_hop, what);
        }
        // Leave the mempools empty for what follows.
        clients[0].call("mining_generate", json!([1])).context("mining_generate on node 0")?;
        senders.confirm_all();
        wait_mempools(clients, 0, Duration::from_secs(30))
    }

    /// Submits as fast as node 0 takes payments for the configured time while node 0 mines a
    /// block a second; measures submitted, admitted and confirmed-on-every-node rates and the
    /// RPC latency meanwhile.
    fn throughput(
        &mut self,
        tn: &Testnet,
        clients: &[RpcClient],
        senders: &mut Senders,
    ) -> Result<()> {
        let secs = self.sizes.throughput_secs;
        let start_nonces: Vec<u64> =
            clients.iter().map(|c| senders.chain_nonce_sum(c)).collect::<Result<_>>()?;
        let submitted = AtomicU64::new(0);
        let admitted = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        let latencies = Mutex::new(Vec::new());
        let rpc_url = tn.node(0).rpc_url().to_string();
        let halves = senders.split(2);
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs(secs);
        let mut end_nonces = Vec::new();
        let returned = std::thread::scope(|s| -> Result<Vec<Senders>> {
            let workers: Vec<_> = halves
                .into_iter()
                .map(|mut part| {
                    let (submitted, admitted, done, url) = (&submitted, &admitted, &done, &rpc_url);
                    s.spawn(move || -> Result<Senders> {
                        let client = RpcClient::new(url.as_str());
                        while !done.load(Ordering::Relaxed) && Instant::now() < end {
                            let batch = part.next_payments(BATCH);
                            if batch.len() < BATCH {
                                // Windows full: learn what the chain has confirmed.
                                part.chain_nonce_sum(&client)?;
                                if batch.is_empty() {
                                    std::thread::sleep(Duration::from_millis(50));
                                    continue;
                                }
                            }
                            let ok = submit_batch(&client, &batch)?;
                            submitted.fetch_add(batch.len() as u64, Ordering::Relaxed);
                            admitted.fetch_add(
                                ok.iter().filter(|o| **o).count() as u64,
                                Ordering::Relaxed,
                            );
                            part.settle(&batch, &ok);
                        }
                        Ok(part)
                    })
                })
                .collect();
            let miner = s.spawn(|| -> Result<()> {
                let client = tn.client(0);
                while Instant::now() < end && !done.load(Ordering::Relaxed) {
                    let next = Instant::now() + Duration::from_secs(1);
                    client.call("mining_generate", json!([1])).context("mining on node 0")?;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                Ok(())
            });
            let prober = s.spawn(|| {
                let client = RpcClient::new(rpc_url.as_str());
                while Instant::now() < end && !done.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if client.call("node_info", json!([])).is_ok() {
                        latencies
                            .lock()
                            .expect("not poisoned")
                            .push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            while Instant::now() < end {
                if self.opts.stop.load(Ordering::Relaxed) {
                    done.store(true, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let mut parts = Vec::new();
            let mut failure = None;
            for w in workers {
                match w.join().map_err(|_| anyhow!("submitter panicked"))? {
                    Ok(p) => parts.push(p),
                    Err(e) => failure = Some(e),
                }
            }
            miner.join().map_err(|_| anyhow!("miner panicked"))??;
            let _ = prober.join();
            if let Some(e) = failure {
                return Err(e);
            }
            Ok(parts)
        })?;
        self.check()?;
        let elapsed = t0.elapsed().as_secs_f64();
        // Confirmed on every node at the end of the window: the slowest node's nonce sum.
        let mut merged = Senders::join(returned);
        for c in clients {
            end_nonces.push(merged.chain_nonce_sum(c)?);
        }
        let confirmed = end_nonces
            .iter()
            .zip(&start_nonces)
            .map(|(e, s)| e.saturating_sub(*s))
            .min()
            .unwrap_or(0);
        let limit = self.machine().verify_per_sec_core;
        let sub = submitted.load(Ordering::Relaxed) as f64 / elapsed;
        let adm = admitted.load(Ordering::Relaxed) as f64 / elapsed;
        self.figure(
            "throughput: submitted to node 0 (5-node line)",
            sub,
            "tx/s",
            limit,
            "verify/s/core",
        );
        self.figure(
            "throughput: admitted by node 0's mempool",
            adm,
            "tx/s",
            limit,
            "verify/s/core",
        );
        self.figure(
            "throughput: confirmed on every node",
            confirmed as f64 / elapsed,
            "tx/s",
            limit,
            "verify/s/core",
        );
        let mut lat = latencies.into_inner().expect("not poisoned");
        let rpc_ms = self.machine().rpc_rtt_us / 1000.0;
        let (p50, p99) = (percentile(&mut lat, 50.0), percentile(&mut lat, 99.0));
        self.figure(
            "RPC latency under load (node_info on node 0) p50",
            p50,
            "ms",
            rpc_ms,
            "idle RPC RTT",
        );
        self.figure(
            "RPC latency under load (node_info on node 0) p99",
            p99,
            "ms",
            rpc_ms,
            "idle RPC RTT",
        );
        // Drain what is still pending so the next phase starts clean.
        for _ in 0..20 {
            if mempool_count(&clients[0])? == 0 {
                break;
            }
            clients[0].call("mining_generate", json!([1])).context("mining on node 0")?;
        }
        merged.confirm_all();
        *senders = merged;
        wait_mempools(clients, 0, Duration::from_secs(60))?;
        let (_, tip) = tn.tip(0)?;
        tn.wait_for_tip(&(0..clients.len()).collect::<Vec<_>>(), &tip, Duration::from_secs(60))?;
        Ok(())
    }

    /// Grows node 0's chain to the sync sizes, then times a fresh node downloading it.
    /// Returns the syncing node's peak RSS (kB).
    fn sync(
        &mut self,
        tn: &Testnet,
        client: &RpcClient,
        senders: &mut Senders,
        dir: &Path,
        progress: &mut impl FnMut(&str),
    ) -> Result<u64> {
        let (want_blocks, want_txs) = (self.sizes.sync_blocks, self.sizes.sync_txs);
        let mut txs = senders.chain_nonce_sum(client)? + dev_nonce_sum(client)?;
        while txs < want_txs {
            self.check()?;
            // As many as the nonce window and the mempool allow, then blocks until it is empty.
            let round = (want_txs - txs).min(40_000) as usize;
            let batch = senders.next_payments(round);
            submit_all(client, &batch)?;
            while mempool_count(client)? > 0 {
                client.call("mining_generate", json!([1])).context("mining on node 0")?;
            }
            senders.confirm_all();
            txs = senders.chain_nonce_sum(client)? + dev_nonce_sum(client)?;
            progress(&format!("  {txs} payments in the chain"));
        }
        // Every payment is in the blocks up to here; the rest are empty.
        let paid_height = tn.tip(0)?.0;
        let mut height = paid_height;
        while height < want_blocks {
            self.check()?;
            let n = (want_blocks - height).min(1000);
            client.call("mining_generate", json!([n])).context("mining on node 0")?;
            height = tn.tip(0)?.0;
        }
        progress(&format!("  a fresh node syncs {height} blocks with {txs} payments"));
        let args = vec![
            "--network".to_string(),
            "devnet".into(),
            "--genesis".into(),
            tn.genesis.display().to_string(),
            "--no-discover".into(),
            "--peer".into(),
            tn.node(0).p2p_addr(),
        ];
        let data = dir.join("sync-node");
        let _ = std::fs::remove_dir_all(&data);
        let t0 = Instant::now();
        let node = NodeProcess::start(&data, &args).context("the syncing node did not start")?;
        let c = node.client();
        let mut last_print = Instant::now();
        // When the syncing node first has every block that holds payments.
        let mut paid_at: Option<f64> = None;
        wait_for(Duration::from_secs(1800), "the fresh node to sync", || {
            if self.opts.stop.load(Ordering::Relaxed) {
                return Some(());
            }
            let h = c.call("node_info", json!([])).ok()?["height"].as_u64()?;
            if paid_at.is_none() && h >= paid_height {
                paid_at = Some(t0.elapsed().as_secs_f64());
            }
            if last_print.elapsed() > Duration::from_secs(5) {
                last_print = Instant::now();
                progress(&format!("  synced {h}/{height}"));
            }
            (h >= height).then_some(())
        })?;
        self.check()?;
        let secs = t0.elapsed().as_secs_f64();
        let peak = node.pid().map_or(0, peak_rss_kb);
        let limit = self.machine().verify_per_sec_all;
        // Blocks per second has no limit of its kind here (an empty block costs no
        // signature check): the figure stands alone.
        self.figure_alone(
            format!("sync of {height} blocks: blocks/s"),
            height as f64 / secs,
            "blk/s",
        );
        self.figure(
            format!("sync of {txs} payments: tx/s"),
            txs as f64 / secs,
            "tx/s",
            limit,
            "verify/s, all cores at once",
        );
        // The same payments over the time to the last block that holds any (process start
        // and handshake included): the verification rate while there is something to verify.
        if let Some(t) = paid_at.filter(|t| *t > 0.0) {
            self.figure(
                format!("sync, first {paid_height} blocks (all the payments): tx/s"),
                txs as f64 / t,
                "tx/s",
                limit,
                "verify/s, all cores at once",
            );
        }
        drop(node);
        Ok(peak)
    }

    /// A fresh node whose mempool holds `mempool_txs` payments: its peak RSS.
    fn mempool_memory(&mut self, dir: &Path) -> Result<()> {
        let want = self.sizes.mempool_txs;
        let opts = TestnetOptions::new(1, Topology::Line, &dir.join("mempool"));
        // A single node needs a larger mempool bound than the default.
        let genesis = crate::network::write_genesis(&opts.dir)?;
        let params = load_genesis(&genesis)?;
        let args = vec![
            "--network".to_string(),
            "devnet".into(),
            "--genesis".into(),
            genesis.display().to_string(),
            "--no-discover".into(),
            "--mempool-max-txs".into(),
            want.to_string(),
        ];
        let data = opts.dir.join("node0");
        let _ = std::fs::remove_dir_all(&data);
        let node = NodeProcess::start(&data, &args)?;
        let client = node.client();
        let n_senders = (want as usize).div_ceil(PENDING_PER_SENDER as usize + 1);
        let mut senders = Senders::new(&params, n_senders);
        senders.fund_single(&client)?;
        senders.window = PENDING_PER_SENDER + 1;
        let batch = senders.next_payments(want as usize);
        // Two submitters (pre-signed payments, batches of 100) and a latency probe: the
        // admission rate of a node that has the machine to itself.
        let url = node.rpc_url().to_string();
        let done = AtomicBool::new(false);
        let t0 = Instant::now();
        let mut lat = std::thread::scope(|s| -> Result<Vec<f64>> {
            let half = batch.len().div_ceil(2);
            let workers: Vec<_> = batch
                .chunks(half)
                .map(|part| {
                    let url = url.as_str();
                    s.spawn(move || submit_all(&RpcClient::new(url), part))
                })
                .collect();
            let prober = s.spawn(|| {
                let c = RpcClient::new(url.as_str());
                let mut lat = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if c.call("node_info", json!([])).is_ok() {
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                lat
            });
            let mut result = Ok(());
            for w in workers {
                let r = w.join().map_err(|_| anyhow!("submitter panicked"))?;
                result = result.and(r);
            }
            done.store(true, Ordering::Relaxed);
            let lat = prober.join().map_err(|_| anyhow!("prober panicked"))?;
            result.map(|()| lat)
        })?;
        let secs = t0.elapsed().as_secs_f64();
        let count = mempool_count(&client)?;
        let limit = self.machine().verify_per_sec_core;
        self.figure(
            format!("admission on a lone node ({count} tx into its mempool)"),
            count as f64 / secs,
            "tx/s",
            limit,
            "verify/s/core",
        );
        let rpc_ms = self.machine().rpc_rtt_us / 1000.0;
        let (p50, p99) = (percentile(&mut lat, 50.0), percentile(&mut lat, 99.0));
        self.figure("RPC latency during that admission p50", p50, "ms", rpc_ms, "idle RPC RTT");
        self.figure("RPC latency during that admission p99", p99, "ms", rpc_ms, "idle RPC RTT");
        let rss = node.pid().map_or(0, current_rss_kb);
        let peak = node.pid().map_or(0, peak_rss_kb);
        self.figure(
            format!("RSS with {count} payments in the mempool"),
            rss as f64 / 1024.0,
            "MB",
            200.0,
            "200 MB budget",
        );
        self.figure(
            "peak RSS while filling that mempool",
            peak as f64 / 1024.0,
            "MB",
            200.0,
            "200 MB budget",
        );
        Ok(())
    }

    /// A payment flood at the admission limit against a lone node with the default mempool
    /// bounds, for `flood_secs`: far more payments than the mempool holds, each sender
    /// paying its own fee (spread over 10..1,000 units), submitted by two clients as fast
    /// as the node answers. No block is mined, so the mempool only fills: once full, every
    /// newcomer either evicts a lower-fee payment or is refused. Reported: the rates, the
    /// largest mempool seen against its bounds, RPC latency meanwhile, peak RSS, and the
    /// eviction check: no payment that was evicted paid more than one that was kept.
    fn flood(&mut self, dir: &Path, progress: &mut impl FnMut(&str)) -> Result<()> {
        let (secs, n_senders) = (self.sizes.flood_secs, self.sizes.flood_senders);
        let opts = TestnetOptions::new(1, Topology::Line, &dir.join("flood"));
        let genesis = crate::network::write_genesis(&opts.dir)?;
        let params = load_genesis(&genesis)?;
        let args: Vec<String> = ["--network", "devnet", "--genesis"]
            .into_iter()
            .map(String::from)
            .chain([genesis.display().to_string(), "--no-discover".into()])
            .collect();
        let data = opts.dir.join("node0");
        let _ = std::fs::remove_dir_all(&data);
        let node = NodeProcess::start(&data, &args)?;
        let client = node.client();
        let mut senders = Senders::new(&params, n_senders);
        senders.coins = 10;
        senders.fund_single(&client)?;
        let info = client.call("mempool_info", json!([]))?;
        let max_count = info["max_count"].as_u64().unwrap_or(0);
        let max_bytes = info["max_bytes"].as_u64().unwrap_or(0);

        // Sender i pays fee[i] on all its payments, so its queue's weakest link is that fee.
        let fee: Vec<u64> = (0..n_senders).map(|i| 10 + (i as u64 * 7_919) % 991).collect();
        progress(&format!("signing {} payments", n_senders * PENDING_PER_SENDER as usize));
        let keys = &senders.keys;
        let sink = senders.sink;
        // Nonce-major order: every sender's nonce n is submitted long before its nonce n+1.
        let order: Vec<(usize, u64)> = (0..PENDING_PER_SENDER)
            .flat_map(|nonce| (0..n_senders).map(move |i| (i, nonce)))
            .collect();
        let txs: Vec<Transaction> = std::thread::scope(|s| {
            let half = order.len().div_ceil(2);
            let parts: Vec<_> = order
                .chunks(half)
                .map(|part| {
                    let (params, fee) = (&params, &fee);
                    s.spawn(move || {
                        part.iter()
                            .map(|&(i, nonce)| {
                                ember_core::testkit::pay(
                                    params, &keys[i], sink, AMOUNT, fee[i], nonce,
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts.into_iter().flat_map(|p| p.join().expect("signer")).collect()
        });

        progress(&format!("flooding for {secs} s"));
        let url = node.rpc_url().to_string();
        let next_chunk = AtomicU64::new(0);
        let chunks: Vec<&[Transaction]> = txs.chunks(BATCH).collect();
        let done = AtomicBool::new(false);
        let deadline = Instant::now() + Duration::from_secs(secs);
        let t0 = Instant::now();
        // Per submitted payment: admitted or not; refusals counted by reason.
        type Outcome = (Vec<(usize, bool)>, std::collections::BTreeMap<String, u64>);
        let (outcomes, mut lat, max_seen, max_seen_bytes) =
            std::thread::scope(|s| -> Result<(Vec<Outcome>, Vec<f64>, u64, u64)> {
                let workers: Vec<_> = (0..2)
                    .map(|_| {
                        let (url, chunks, next_chunk) = (url.as_str(), &chunks, &next_chunk);
                        s.spawn(move || -> Result<Outcome> {
                            let c = RpcClient::new(url);
                            let mut got = Vec::new();
                            let mut refused = std::collections::BTreeMap::new();
                            while Instant::now() < deadline {
                                let k = next_chunk.fetch_add(1, Ordering::Relaxed) as usize;
                                let Some(chunk) = chunks.get(k) else { break };
                                let calls: Vec<(&str, Value)> = chunk
                                    .iter()
                                    .map(|t| ("tx_submit", json!([hex::encode(t.encode())])))
                                    .collect();
                                for (j, r) in c.call_batch(&calls)?.into_iter().enumerate() {
                                    got.push((k * BATCH + j, r.is_ok()));
                                    if let Err(RpcClientError::Rpc { data, .. }) = r {
                                        let reason = data
                                            .as_ref()
                                            .and_then(|d| d["reason"].as_str())
                                            .unwrap_or("other")
                                            .to_string();
                                        *refused.entry(reason).or_insert(0) += 1;
                                    } else if let Err(e) = r {
                                        return Err(e.into());
                                    }
                                }
                            }
                            Ok((got, refused))
                        })
                    })
                    .collect();
                let prober = s.spawn(|| {
                    let c = RpcClient::new(url.as_str());
                    let (mut lat, mut max_count, mut max_bytes) = (Vec::new(), 0u64, 0u64);
                    while !done.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        if let Ok(v) = c.call("mempool_info", json!([])) {
                            lat.push(t.elapsed().as_secs_f64() * 1000.0);
                            max_count = max_count.max(v["count"].as_u64().unwrap_or(0));
                            max_bytes = max_bytes.max(v["bytes"].as_u64().unwrap_or(0));
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    (lat, max_count, max_bytes)
                });
                let mut outcomes = Vec::new();
                let mut result = Ok(());
                for w in workers {
                    match w.join().map_err(|_| anyhow!("submitter panicked"))? {
                        Ok(o) => outcomes.push(o),
                        Err(e) => result = Err(e),
                    }
                }
                done.store(true, Ordering::Relaxed);
                let (lat, max_count, max_bytes) =
                    prober.join().map_err(|_| anyhow!("prober panicked"))?;
                result.map(|()| (outcomes, lat, max_count, max_bytes))
            })?;
        let elapsed = t0.elapsed().as_secs_f64();

        // What each sender got admitted, and what the mempool still holds of it.
        let mut admitted = vec![0u64; n_senders];
        let mut refused = std::collections::BTreeMap::<String, u64>::new();
        let mut submitted = 0u64;
        for (got, r) in &outcomes {
            submitted += got.len() as u64;
            for &(k, ok) in got {
                if ok {
                    admitted[order[k].0] += 1;
                }
            }
            for (reason, n) in r {
                *refused.entry(reason.clone()).or_insert(0) += n;
            }
        }
        let hrp = params.hrp();
        let mut held = Vec::with_capacity(n_senders);
        for chunk in senders.keys.chunks(BATCH) {
            let calls: Vec<(&str, Value)> = chunk
                .iter()
                .map(|k| ("account_get", json!([k.address().to_bech32(hrp)])))
                .collect();
            for r in client.call_batch(&calls)? {
                held.push(r?["pending_count"].as_u64().unwrap_or(0));
            }
        }
        let final_count = mempool_count(&client)?;
        let evicted: u64 = admitted.iter().zip(&held).map(|(a, h)| a.saturating_sub(*h)).sum();
        let min_kept = (0..n_senders).filter(|&i| held[i] > 0).map(|i| fee[i]).min();
        let max_evicted = (0..n_senders).filter(|&i| admitted[i] > held[i]).map(|i| fee[i]).max();
        // Evicted payments that paid more than the cheapest one kept: 0 when eviction
        // always takes the lowest fee.
        let wrong: u64 = (0..n_senders)
            .filter(|&i| min_kept.is_some_and(|m| fee[i] > m))
            .map(|i| admitted[i].saturating_sub(held[i]))
            .sum();
        let total_admitted: u64 = admitted.iter().sum();
        let limit = self.machine().verify_per_sec_core;
        let rpc_ms = self.machine().rpc_rtt_us / 1000.0;
        self.figure(
            format!("flood ({:.0} s): payments submitted", elapsed),
            submitted as f64 / elapsed,
            "tx/s",
            limit,
            "verify/s/core",
        );
        self.figure(
            "flood: payments admitted",
            total_admitted as f64 / elapsed,
            "tx/s",
            limit,
            "verify/s/core",
        );
        let full = refused.get("mempool_full").copied().unwrap_or(0);
        self.figure(
            "flood: refused, too cheap for the full mempool",
            full as f64,
            "tx",
            submitted as f64,
            "submitted",
        );
        let other: u64 = refused.iter().filter(|(r, _)| *r != "mempool_full").map(|(_, n)| n).sum();
        self.figure(
            "flood: refused for another reason",
            other as f64,
            "tx",
            submitted as f64,
            "submitted",
        );
        self.figure(
            "flood: admitted, then evicted by higher fees",
            evicted as f64,
            "tx",
            total_admitted.max(1) as f64,
            "admitted",
        );
        self.figure(
            "flood: largest mempool seen (count)",
            max_seen as f64,
            "tx",
            max_count as f64,
            "mempool bound (count)",
        );
        self.figure(
            "flood: largest mempool seen (bytes)",
            max_seen_bytes as f64 / 1e6,
            "MB",
            max_bytes as f64 / 1e6,
            "mempool bound (bytes)",
        );
        self.figure(
            format!(
                "flood: evicted paying more than the cheapest kept (max evicted fee {}, min kept {})",
                max_evicted.unwrap_or(0),
                min_kept.unwrap_or(0)
            ),
            wrong as f64,
            "tx",
            evicted.max(1) as f64,
            "evicted",
        );
        let (p50, p99) = (percentile(&mut lat, 50.0), percentile(&mut lat, 99.0));
        self.figure("flood: RPC latency (mempool_info) p50", p50, "ms", rpc_ms, "idle RPC RTT");
        self.figure("flood: RPC latency (mempool_info) p99", p99, "ms", rpc_ms, "idle RPC RTT");
        let peak = node.pid().map_or(0, peak_rss_kb);
        self.figure(
            "flood: peak RSS of the node",
            peak as f64 / 1024.0,
            "MB",
            200.0,
            "200 MB budget",
        );
        if final_count > max_count || max_seen > max_count {
            bail!("the mempool went over its bound: {max_seen} (now {final_count}) > {max_count}");
        }
        if wrong > 0 {
            bail!(
                "{wrong} evicted payments paid more than the cheapest kept one ({:?} > {:?})",
                max_evicted,
                min_kept
            );
        }
        Ok(())
    }
}

/// Sender accounts (deterministic keys) with the next nonce to use and the nonce the chain
/// has confirmed.
struct Senders {
    params: ChainParams,
    keys: Vec<Keypair>,
    /// Next nonce to sign for each key.
    next: Vec<u64>,
    /// Nonce at the last confirmation (all signed up to here are in blocks).
    confirmed: Vec<u64>,
    /// Next key to use.
    cursor: usize,
    /// How many payments a sender may have pending.
    window: u64,
    sink: Address,
    /// What `fund_single` gives each sender, in whole coins.
    coins: u64,
}

impl Senders {
    fn new(params: &ChainParams, n: usize) -> Senders {
        let keys = ember_core::testkit::keys(n);
        Senders {
            params: params.clone(),
            next: vec![0; keys.len()],
            confirmed: vec![0; keys.len()],
            keys,
            cursor: 0,
            window: PENDING_PER_SENDER,
            sink: ember_wallet::dev_keypair(9).address(),
            // Plenty for every payment of a run (each dev account holds 1,000,000).
            coins: 1_000,
        }
    }

    /// Each dev account 0..9 pays up to 60 senders per block until all are funded (node 0
    /// mines; every node of `tn` must then have the blocks).
    fn fund(&mut self, client: &RpcClient, tn: &Testnet) -> Result<()> {
        self.fund_single(client)?;
        tn.wait_for_agreement(Duration::from_secs(60))?;
        Ok(())
    }

    fn fund_single(&mut self, client: &RpcClient) -> Result<()> {
        let devs: Vec<Keypair> = (0..9).map(ember_wallet::dev_keypair).collect();
        let mut dev_nonce = Vec::new();
        for d in &devs {
            let v =
                client.call("account_get", json!([d.address().to_bech32(self.params.hrp())]))?;
            dev_nonce.push(v["nonce"].as_u64().unwrap_or(0));
        }
        let coins = self.coins * 100_000_000u64;
        for chunk in self.keys.chunks(devs.len() * PENDING_PER_SENDER as usize) {
            let txs: Vec<Transaction> = chunk
                .iter()
                .enumerate()
                .map(|(k, key)| {
                    let d = k % devs.len();
                    let tx = ember_core::testkit::pay(
                        &self.params,
                        &devs[d],
                        key.address(),
                        coins,
                        FEE,
                        dev_nonce[d],
                    );
                    dev_nonce[d] += 1;
                    tx
                })
                .collect();
            submit_all(client, &txs)?;
            client.call("mining_generate", json!([1])).context("mining the funding block")?;
            if mempool_count(client)? > 0 {
                client.call("mining_generate", json!([1])).context("mining the funding block")?;
            }
        }
        Ok(())
    }

    /// `n` new payments, round-robin over senders, skipping senders whose window is full.
    /// Fewer than `n` when every window is full.
    fn next_payments(&mut self, n: usize) -> Vec<Transaction> {
        let mut todo = Vec::with_capacity(n);
        let mut idle = 0;
        while todo.len() < n && idle < self.keys.len() {
            let i = self.cursor;
            self.cursor = (self.cursor + 1) % self.keys.len();
            if self.next[i] - self.confirmed[i] >= self.window {
                idle += 1;
                continue;
            }
            idle = 0;
            todo.push((i, self.next[i]));
            self.next[i] += 1;
        }
        // Signing is the client's cost, not the node's: spread big batches over the cores.
        let sign = |chunk: &[(usize, u64)]| -> Vec<Transaction> {
            chunk
                .iter()
                .map(|&(i, nonce)| {
                    ember_core::testkit::pay(
                        &self.params,
                        &self.keys[i],
                        self.sink,
                        AMOUNT,
                        FEE,
                        nonce,
                    )
                })
                .collect()
        };
        if todo.len() < 1_000 {
            return sign(&todo);
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::thread::scope(|s| {
            let parts: Vec<_> = todo
                .chunks(todo.len().div_ceil(threads))
                .map(|chunk| s.spawn(move || sign(chunk)))
                .collect();
            parts.into_iter().flat_map(|p| p.join().expect("signing does not panic")).collect()
        })
    }

    /// After a batch: refused payments are given back (their nonces reused next time, and
    /// every later payment of that sender in the batch too).
    fn settle(&mut self, batch: &[Transaction], ok: &[bool]) {
        let mut first_refused = std::collections::HashMap::new();
        for (tx, ok) in batch.iter().zip(ok) {
            if !ok {
                let e = first_refused.entry(tx.body().from).or_insert(tx.body().nonce);
                *e = (*e).min(tx.body().nonce);
            }
        }
        for (i, k) in self.keys.iter().enumerate() {
            if let Some(n) = first_refused.get(&k.address()) {
                self.next[i] = self.next[i].min(*n);
            }
        }
        // Payments of a sender are confirmed about a block after they are admitted; the
        // nonce sums below tell the truth, so refresh the windows cheaply here.
    }

    /// Everything signed so far is in blocks now.
    fn confirm_all(&mut self) {
        self.confirmed.clone_from(&self.next);
    }

    /// The chain's nonces of every sender (one batch per 100), summed; also moves each
    /// sender's confirmed nonce up to what the chain holds.
    fn chain_nonce_sum(&mut self, client: &RpcClient) -> Result<u64> {
        let mut sum = 0;
        let hrp = self.params.hrp();
        for (c, chunk) in self.keys.chunks(BATCH).enumerate() {
            let calls: Vec<(&str, Value)> = chunk
                .iter()
                .map(|k| ("account_get", json!([k.address().to_bech32(hrp)])))
                .collect();
            for (k, r) in client.call_batch(&calls)?.into_iter().enumerate() {
                let nonce = r?["nonce"].as_u64().unwrap_or(0);
                let i = c * BATCH + k;
                self.confirmed[i] = self.confirmed[i].max(nonce.min(self.next[i]));
                sum += nonce;
            }
        }
        Ok(sum)
    }

    /// Splits the senders into `n` parts for parallel submitters.
    fn split(&mut self, n: usize) -> Vec<Senders> {
        let mut parts: Vec<Senders> = (0..n).map(|_| self.shallow()).collect();
        for (i, key) in self.keys.drain(..).enumerate() {
            let p = &mut parts[i % n];
            p.keys.push(key);
            p.next.push(self.next[i]);
            p.confirmed.push(self.confirmed[i]);
        }
        parts
    }

    fn join(parts: Vec<Senders>) -> Senders {
        let mut all = parts[0].shallow();
        for p in parts {
            all.keys.extend(p.keys);
            all.next.extend(p.next);
            all.confirmed.extend(p.confirmed);
        }
        all
    }

    fn shallow(&self) -> Senders {
        Senders {
            params: self.params.clone(),
            keys: Vec::new(),
            next: Vec::new(),
            confirmed: Vec::new(),
            cursor: 0,
            window: self.window,
            sink: self.sink,
            coins: self.coins,
        }
    }
}

/// The nonces of dev accounts 0..9 (their payments: funding and the like), summed.
fn dev_nonce_sum(client: &RpcClient) -> Result<u64> {
    let calls: Vec<(&str, Value)> = (0..10)
        .map(|i| {
            let addr = ember_wallet::dev_keypair(i).address().to_bech32(Network::Devnet.hrp());
            ("account_get", json!([addr]))
        })
        .collect();
    client.call_batch(&calls)?.into_iter().map(|r| Ok(r?["nonce"].as_u64().unwrap_or(0))).sum()
}

/// Submits `txs` in batches of 100; returns which were admitted.
fn submit_batch(client: &RpcClient, txs: &[Transaction]) -> Result<Vec<bool>> {
    let mut ok = Vec::with_capacity(txs.len());
    for chunk in txs.chunks(BATCH) {
        let calls: Vec<(&str, Value)> =
            chunk.iter().map(|t| ("tx_submit", json!([hex::encode(t.encode())]))).collect();
        for r in client.call_batch(&calls)? {
            ok.push(match r {
                Ok(_) => true,
                // Already in the mempool (a retried nonce signs to the same payment).
                Err(RpcClientError::Rpc { data: Some(d), .. })
                    if d["reason"] == "already_known" =>
                {
                    true
                }
                Err(RpcClientError::Rpc { .. }) => false,
                Err(e) => return Err(e.into()),
            });
        }
    }
    Ok(ok)
}

/// Submits `txs` and fails unless every one is admitted.
fn submit_all(client: &RpcClient, txs: &[Transaction]) -> Result<()> {
    for chunk in txs.chunks(BATCH) {
        let calls: Vec<(&str, Value)> =
            chunk.iter().map(|t| ("tx_submit", json!([hex::encode(t.encode())]))).collect();
        for r in client.call_batch(&calls)? {
            r.context("a benchmark payment was refused")?;
        }
    }
    Ok(())
}

fn mempool_count(client: &RpcClient) -> Result<u64> {
    Ok(client.call("mempool_info", json!([]))?["count"].as_u64().unwrap_or(0))
}

/// Waits until every node's mempool holds exactly `count` transactions.
/// On a timeout, the error says what each node holds: its height and mempool count, and
/// for the first few payments of a mempool off the count, each payment's sender nonce
/// against the sender's nonce on that node's chain (a stale payment not dropped, or one
/// waiting for a predecessor the node never got).
fn wait_mempools(clients: &[RpcClient], count: usize, timeout: Duration) -> Result<()> {
    wait_for(timeout, &format!("every mempool to hold {count} transactions"), || {
        clients.iter().all(|c| mempool_count(c).ok() == Some(count as u64)).then_some(())
    })
    .map_err(|e| {
        let held: Vec<String> =
            clients.iter().enumerate().map(|(i, c)| mempool_state(i, c, count)).collect();
        e.context(held.join("; "))
    })
}

/// One node's height and mempool, as [`wait_mempools`] reports them.
fn mempool_state(i: usize, c: &RpcClient, count: usize) -> String {
    let info = c.call("node_info", json!([])).unwrap_or_default();
    let n = mempool_count(c).unwrap_or(u64::MAX);
    // What a stuck node knows: its peers, the headers it holds past its tip, its sync.
    let mut out = format!(
        "node {i}: height {}, {n} pooled, {} peers, {} known headers, best peer height {}, \
         sync {}",
        info["height"],
        info["peers"],
        info["known_headers"],
        info["best_peer_height"],
        info["sync"]
    );
    if n == count as u64 {
        return out;
    }
    let ids = c.call("mempool_list", json!([3])).unwrap_or_default();
    for id in ids.as_array().into_iter().flatten() {
        let tx = c.call("chain_getTransaction", json!([id])).unwrap_or_default();
        let acct = c.call("account_get", json!([tx["from"]])).unwrap_or_default();
        out += &format!(
            " [{} from {} nonce {} (chain nonce {}, next {})]",
            id.as_str().unwrap_or("?"),
            tx["from"].as_str().unwrap_or("?"),
            tx["nonce"],
            acct["nonce"],
            acct["next_nonce"]
        );
    }
    out
}

/// Per block, the time until nodes `0..=last` all had it.
/// The encryption-cost figures from the samples of every round, `rounds[mode][kind]`
/// (mode 0 plaintext, 1 encrypted; kind 0 empty blocks, 1 full ones of `full_txs`
/// payments), on a line of `n` nodes: p50 and p95 over the 5-node line, the whole line
/// and each hop, pooled over the rounds, each with the spread of the same difference
/// round by round.
fn encryption_figures(
    rounds: &[[Vec<Vec<Vec<f64>>>; 2]; 2],
    n: usize,
    full_txs: usize,
) -> Vec<Figure> {
    type Times = Box<dyn Fn(&[Vec<f64>]) -> Vec<f64>>;
    let mut figures = Vec::new();
    for (k, what) in ["empty".to_string(), format!("full ({full_txs} tx)")].iter().enumerate() {
        let mut series: Vec<(String, Times)> = Vec::new();
        for (last, label) in [(4usize, "5-node".to_string()), (n - 1, format!("{n}-node"))] {
            let times: Times = Box::new(move |t: &[Vec<f64>]| line_times(t, last));
            series.push((format!("{label} line from node 0"), times));
        }
        series.push(("each hop".to_string(), Box::new(|t: &[Vec<f64>]| hop_times(t))));
        let (plain, enc) = (rounds[0][k].concat(), rounds[1][k].concat());
        for (label, times) in series {
            for p in [50.0, 95.0] {
                let e = percentile(&mut times(&enc), p);
                let pt = percentile(&mut times(&plain), p);
                let per_round: Vec<f64> = rounds[0][k]
                    .iter()
                    .zip(&rounds[1][k])
                    .map(|(plain, enc)| {
                        let e = percentile(&mut times(enc), p);
                        (e / percentile(&mut times(plain), p) - 1.0) * 100.0
                    })
                    .collect();
                // The value is the difference in %, the ratio encrypted / plaintext.
                figures.push(Figure {
                    name: format!(
                        "encryption cost: {what} block, {label}, p{p:.0} ({} vs {} ms plaintext)",
                        fmt_num(e),
                        fmt_num(pt)
                    ),
                    value: (e / pt - 1.0) * 100.0,
                    unit: "%",
                    ratio: Some(e / pt),
                    ratio_to: Some("same, plaintext"),
                    note: spread_note(&per_round),
                });
            }
        }
    }
    figures
}

fn line_times(times: &[Vec<f64>], last: usize) -> Vec<f64> {
    times.iter().map(|t| t[..=last].iter().copied().fold(0.0, f64::max)).collect()
}

/// The time of every hop of every block: node i+1's time minus node i's.
fn hop_times(times: &[Vec<f64>]) -> Vec<f64> {
    times.iter().flat_map(|t| t.windows(2).map(|w| w[1] - w[0])).collect()
}

/// Polls every node's height in a tight loop (one thread, round robin over nodes still
/// short) until each reaches `target`; returns the ms since `t0` at which each did.
fn poll_heights(
    clients: &[RpcClient],
    target: u64,
    t0: Instant,
    pause: Duration,
) -> Result<Vec<f64>> {
    let mut at: Vec<Option<f64>> = vec![None; clients.len()];
    let deadline = t0 + Duration::from_secs(60);
    while at.iter().any(Option::is_none) {
        for (i, c) in clients.iter().enumerate() {
            if at[i].is_some() {
                continue;
            }
            let h = c.call("node_info", json!([]))?["height"].as_u64().unwrap_or(0);
            if h >= target {
                at[i] = Some(t0.elapsed().as_secs_f64() * 1000.0);
            }
        }
        if Instant::now() > deadline {
            bail!("block {target} did not reach every node within 60 s: {at:?}");
        }
        if at.iter().any(Option::is_none) && !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    Ok(at.into_iter().map(|t| t.expect("loop ends when all are set")).collect())
}

/// The pause between polls of the far node's height when the times are the nodes' own
/// records (`Clock::Stored`): the poll's resolution does not enter those times, and each
/// call costs a node and the bench CPU on the cores the hops are timed on (an idle RPC
/// round trip is 50-100 µs here). Until 2026-12-04 every node still short of the block was
/// polled round-robin with a 2 ms pause: up to ten calls every ~3 ms.
const STORED_POLL_PAUSE: Duration = Duration::from_millis(5);

/// How [`Bench::propagation_samples`] times a block's arrival.
#[derive(Clone, Copy)]
enum Clock {
    /// Polling every node's height from the mining call on: what a user watching sees,
    /// to about a millisecond (one round of RPC calls).
    Polled,
    /// Each node's own record of when it stored the block, from when node 0 stored it:
    /// only the hops, to the microsecond.
    Stored,
    /// Polling the far node's height alone from the mining call on: the method for
    /// Litecoin Core and Ember side by side (time from the mining RPC call until the far
    /// node's height moves), without RPC calls to the line's other nodes taking their
    /// cores. One time per block.
    Far,
}

/// Each node's `stored_at_us` for the block at `height`, in ms after node 0's; fails unless
/// every node has the same block there and knows when it stored it.
fn stored_times(clients: &[RpcClient], height: u64) -> Result<Vec<f64>> {
    let mut at = Vec::with_capacity(clients.len());
    let mut first_id = None;
    for (i, c) in clients.iter().enumerate() {
        let h = c.call("chain_getHeader", json!([height]))?;
        let id = h["id"].as_str().unwrap_or_default().to_string();
        if *first_id.get_or_insert_with(|| id.clone()) != id {
            bail!("node {i} has block {id} at height {height}, node 0 another");
        }
        let us = h["stored_at_us"]
            .as_u64()
            .ok_or_else(|| anyhow!("node {i} did not record when it stored block {id}"))?;
        at.push(us);
    }
    Ok(at.iter().map(|&us| (us as f64 - at[0] as f64) / 1000.0).collect())
}

fn load_genesis(path: &Path) -> Result<ChainParams> {
    let text = std::fs::read_to_string(path)?;
    let spec = GenesisSpec::from_json(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    ChainParams::from_spec(&spec).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// `verify_strict` checks per second on this thread, over about `secs` seconds.
pub fn verify_per_sec(secs: f64) -> f64 {
    let key = ember_core::testkit::keys(1).remove(0);
    let params = ember_core::testkit::devnet_funding(std::slice::from_ref(&key), 1);
    let txs: Vec<Transaction> =
        (0..64).map(|n| ember_core::testkit::pay(&params, &key, key.address(), 1, 1, n)).collect();
    let t0 = Instant::now();
    let mut done = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        for tx in &txs {
            tx.verify_signature().expect("a freshly signed payment verifies");
        }
        done += txs.len() as u64;
    }
    done as f64 / t0.elapsed().as_secs_f64()
}

/// `verify_strict` checks per second of `threads` threads verifying at once, over about
/// `secs` seconds: the machine's verification rate over its cores.
pub fn verify_per_sec_threads(threads: usize, secs: f64) -> f64 {
    std::thread::scope(|s| {
        let all: Vec<_> = (0..threads).map(|_| s.spawn(move || verify_per_sec(secs))).collect();
        all.into_iter().map(|t| t.join().expect("verifying a signed payment never panics")).sum()
    })
}

/// Median round trip of a 1-byte ping-pong over loopback TCP, µs.
pub fn loopback_rtt_us(rounds: usize) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut b = [0u8; 1];
        while s.read(&mut b)? == 1 {
            s.write_all(&b)?;
        }
        Ok(())
    });
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut times = Vec::with_capacity(rounds);
    let mut b = [7u8; 1];
    for _ in 0..rounds {
        let t = Instant::now();
        s.write_all(&b)?;
        s.read_exact(&mut b)?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(s);
    let _ = echo.join();
    Ok(percentile(&mut times, 50.0))
}

/// Median `node_info` round trip, µs.
fn rpc_rtt_us(client: &RpcClient, rounds: usize) -> Result<f64> {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        client.call("node_info", json!([]))?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(percentile(&mut times, 50.0))
}

/// The `p`th percentile (nearest rank) of `v`; 0 when empty.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak resident set size of a process (VmHWM), kB.
pub fn peak_rss_kb(pid: u32) -> u64 {
    proc_status_kb(pid, "VmHWM:")
}

/// Current resident set size of a process (VmRSS), kB.
pub fn current_rss_kb(pid: u32) -> u64 {
    proc_status_kb(pid, "VmRSS:")
}

fn record_peaks(tn: &Testnet, peaks: &mut [u64]) {
    for (i, p) in peaks.iter_mut().enumerate() {
        if let Some(pid) = tn.node(i).pid() {
            *p = (*p).max(peak_rss_kb(pid));
        }
    }
}

/// CPU time a process has used (user and system, all its threads), in the ticks of
/// `/proc/<pid>/stat` (USER_HZ: 100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // After "pid (name) ": the state is field 3; utime and stime are fields 14, 15.
            let fields: Vec<&str> = s.get(s.rfind(')')? + 2..)?.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// CPU time a process has used so far, in ns: the sum over its live threads of the first
/// field of `/proc/<pid>/task/<tid>/schedstat` (time on a CPU, ns). Threads that have
/// exited are not counted, so it is for windows in which the process keeps its threads
/// (a node's runtime and blocking pool while it works); 0 for no such process.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Waits until the nodes together use at most 4% of one core over half a second (2 ticks),
/// for up to 30 s, then goes on either way: right after a restart, a node's database may
/// flush and compact for a while.
fn wait_quiet(tn: &Testnet) {
    const WINDOW: Duration = Duration::from_millis(500);
    let pids: Vec<u32> = (0..tn.len()).filter_map(|i| tn.node(i).pid()).collect();
    let used = || pids.iter().map(|&p| cpu_ticks(p)).sum::<u64>();
    // Timing out is not an error here: the comparison runs either way.
    let _ = wait_for(Duration::from_secs(30), "the restarted nodes to be idle", || {
        let before = used();
        // A measuring window, not a wait for an event: the CPU time used during it.
        std::thread::sleep(WINDOW);
        (used().saturating_sub(before) <= 2).then_some(())
    });
}

/// The CPU model from /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), 50.0);
        assert_eq!(percentile(&mut v, 95.0), 95.0);
        assert_eq!(percentile(&mut v, 100.0), 100.0);
        assert_eq!(percentile(&mut [3.0], 99.0), 3.0);
        assert_eq!(percentile(&mut [], 50.0), 0.0);
    }

    #[test]
    fn line_and_hop_times_come_from_each_nodes_arrival() {
        // Two blocks on a 4-node line, ms from node 0.
        let times = vec![vec![0.0, 1.0, 3.0, 3.5], vec![0.0, 2.0, 2.5, 6.0]];
        assert_eq!(line_times(&times, 2), vec![3.0, 2.5]);
        assert_eq!(line_times(&times, 3), vec![3.5, 6.0]);
        assert_eq!(hop_times(&times), vec![1.0, 2.0, 0.5, 2.0, 0.5, 3.5]);
    }

    #[test]
    fn cpu_time_of_a_process_is_read_from_proc() {
        let me = std::process::id();
        let start = cpu_ticks(me);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        // Burn CPU until the kernel has counted at least two more ticks of this process.
        while cpu_ticks(me) < start + 2 {
            assert!(Instant::now() < deadline, "no CPU time counted in 10 s");
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        assert_eq!(cpu_ticks(u32::MAX), 0, "no such process: no ticks");
    }

    #[test]
    fn the_table_and_the_json_carry_every_figure_with_its_ratio() {
        let report = Report {
            quick: true,
            machine: Machine {
                cpu: "test cpu".into(),
                cores: 2,
                verify_per_sec_core: 17_000.0,
                verify_per_sec_all: 30_000.0,
                loopback_rtt_us: 20.0,
                rpc_rtt_us: 100.0,
            },
            sizes: Sizes::new(true),
            figures: vec![
                Figure {
                    name: "throughput: admitted".into(),
                    value: 13_600.0,
                    unit: "tx/s",
                    ratio: Some(0.8),
                    ratio_to: Some("verify/s/core"),
                    note: None,
                },
                Figure {
                    name: "sync: blocks/s".into(),
                    value: 561.0,
                    unit: "blk/s",
                    ratio: None,
                    ratio_to: None,
                    note: None,
                },
                Figure {
                    name: "payment propagation".into(),
                    value: 246.0,
                    unit: "ms",
                    ratio: Some(0.61),
                    ratio_to: Some("100 ms relay batch x hops"),
                    note: Some("within run-to-run noise (rounds -1.0%..+2.0%)".into()),
                },
            ],
            seconds: 1.0,
        };
        let table = report.table();
        assert!(table.contains("throughput: admitted") && table.contains("0.80x"), "{table}");
        assert!(table.contains("verify_strict 17000/s/core"), "{table}");
        let rows: Vec<usize> =
            table.lines().filter(|l| l.starts_with('|')).map(|l| l.chars().count()).collect();
        assert!(rows.len() == 5 && rows.iter().all(|w| *w == rows[0]), "misaligned:\n{table}");
        let v: Value = serde_json::to_value(&report).unwrap();
        assert_eq!(v["figures"][0]["ratio"], 0.8);
        assert!(v["figures"][1]["ratio"].is_null(), "no ratio between unrelated units");
        assert_eq!(v["machine"]["cores"], 2);
    }

    /// One style in the ratio column: every ratio a multiple, never a percentage.
    #[test]
    fn every_ratio_is_a_multiple() {
        for (r, shown) in [
            (Some(2723.4), "2723x"),
            (Some(11.93), "11.9x"),
            (Some(1.12), "1.12x"),
            (Some(0.921), "0.92x"),
            (Some(0.036), "0.036x"),
            (Some(0.0), "0.00x"),
            (None, "-"),
        ] {
            assert_eq!(fmt_ratio(r), shown);
        }
    }

    /// A difference whose sign changes from round to round is marked as noise; one that
    /// keeps its sign is not, and both show the rounds' range.
    #[test]
    fn encryption_cost_within_the_rounds_spread_is_marked_as_noise() {
        // 2 rounds, 1 block each, a 5-node line: node i has the block at i ms (plaintext).
        let line = |hop: f64| vec![(0..5).map(|i| i as f64 * hop).collect::<Vec<f64>>()];
        let rounds = |enc: [f64; 2]| -> [[Vec<Vec<Vec<f64>>>; 2]; 2] {
            [
                [vec![line(1.0), line(1.0)], vec![line(1.0), line(1.0)]],
                [vec![line(enc[0]), line(enc[1])], vec![line(enc[0]), line(enc[1])]],
            ]
        };
        let noisy = encryption_figures(&rounds([0.9, 1.2]), 5, 10);
        let note = noisy[0].note.as_deref().unwrap();
        assert!(note.starts_with("within run-to-run noise"), "{note}");
        assert!(note.contains("-10.0%..+20.0%"), "{note}");
        let steady = encryption_figures(&rounds([1.1, 1.2]), 5, 10);
        let note = steady[0].note.as_deref().unwrap();
        assert!(!note.contains("noise") && note.contains("+10.0%..+20.0%"), "{note}");
        assert_eq!(steady[0].ratio_to, Some("same, plaintext"));
    }

    #[test]
    fn senders_respect_the_nonce_window_and_reuse_refused_nonces() {
        let key = ember_core::testkit::keys(1).remove(0);
        let params = ember_core::testkit::devnet_funding(std::slice::from_ref(&key), 1);
        let mut s = Senders::new(&params, 2);
        let txs = s.next_payments(1_000);
        assert_eq!(txs.len(), 2 * PENDING_PER_SENDER as usize);
        let ok: Vec<bool> = txs.iter().map(|t| t.body().nonce < 10).collect();
        s.settle(&txs, &ok);
        assert_eq!(s.next, vec![10, 10]);
        s.confirm_all();
        assert_eq!(
            s.next_payments(3).iter().map(|t| t.body().nonce).collect::<Vec<_>>(),
            vec![10, 10, 11]
        );
    }
}
