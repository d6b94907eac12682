//! The hostile-peer measurement: each attack of [`crate::hostile`] run for a while against a
//! devnet node that has an honest peer, with the node's memory, RPC latency and the honest
//! link sampled throughout (`ember-testnet attack`).
//!
//! For each attack a fresh pair of nodes is started in a temp dir (the attacked node mines
//! 300 blocks and one block of 500 payments first, so there is something to ask for and a
//! chain for side branches to lose against). A sampler thread reads the attacked node's RSS
//! from `/proc`, times `node_info`, and checks that the honest node is still listed, every
//! 100 ms; every loop is bounded by the attack's duration.

use crate::hostile::{self, rss_bytes, Attack, AttackReport};
use crate::{wait_for, NodeProcess};
use anyhow::{Context, Result};
use ember_core::{ChainParams, Keypair};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one attack did to the node.
#[derive(Debug, Clone)]
pub struct AttackFigures {
    pub report: AttackReport,
    /// RSS of the attacked node before, at its peak during, and just after the attack (bytes).
    pub rss_before: u64,
    pub rss_peak: u64,
    pub rss_after: u64,
    /// `node_info` round trips during the attack (ms): median, 99th percentile, slowest.
    pub rpc_p50_ms: f64,
    pub rpc_p99_ms: f64,
    pub rpc_max_ms: f64,
    /// `node_info` calls that failed.
    pub rpc_errors: usize,
    /// Samples in which the honest peer was not listed by the attacked node.
    pub honest_missing: usize,
    pub samples: usize,
}

fn node_id(n: &NodeProcess) -> Result<String> {
    let info = n.client().call("node_info", json!([]))?;
    info["node_id"].as_str().map(str::to_string).context("node_info.node_id")
}

fn lists(n: &NodeProcess, id: &str) -> bool {
    n.client()
        .call("net_peers", json!([]))
        .ok()
        .and_then(|v| v.as_array().map(|a| a.iter().any(|p| p["node_id"] == id)))
        .unwrap_or(false)
}

/// Fills the attacked node's chain: 300 empty blocks and one of 500 payments.
fn prepare(a: &NodeProcess, params: &ChainParams) -> Result<()> {
    a.client().call("mining_generate", json!([300]))?;
    let to = Keypair::generate().address();
    let keys: Vec<Keypair> = (0..10).map(ember_wallet::dev_keypair).collect();
    let txs: Vec<String> = (0..500)
        .map(|i| {
            let tx =
                ember_core::testkit::pay(params, &keys[i % 10], to, 1_000, 10, (i / 10) as u64);
            hex::encode(tx.encode())
        })
        .collect();
    for chunk in txs.chunks(100) {
        let calls: Vec<(&str, Value)> = chunk.iter().map(|t| ("tx_submit", json!([t]))).collect();
        for r in a.client().call_batch(&calls)? {
            r.context("a dev payment")?;
        }
    }
    a.client().call("mining_generate", json!([1]))?;
    Ok(())
}

/// What the sampler collected.
#[derive(Default, Clone)]
struct Samples {
    /// `node_info` round trips that succeeded (ms).
    latencies_ms: Vec<f64>,
    rpc_errors: usize,
    honest_missing: usize,
    rss_peak: u64,
    count: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs `attack` for `duration` against a fresh devnet node with an honest peer, in a temp
/// dir removed afterwards.
pub fn measure(attack: Attack, duration: Duration) -> Result<AttackFigures> {
    let dir = tempfile::tempdir()?;
    let params = ChainParams::devnet();
    let devnet = ["--network".to_string(), "devnet".to_string()];
    let a = NodeProcess::start(&dir.path().join("attacked"), &devnet)?;
    let mut b_args = devnet.to_vec();
    b_args.extend(["--peer".to_string(), a.p2p_addr()]);
    let b = NodeProcess::start(&dir.path().join("honest"), &b_args)?;
    let (ia, ib) = (node_id(&a)?, node_id(&b)?);
    wait_for(Duration::from_secs(30), "the honest pair to connect", || {
        (lists(&a, &ib) && lists(&b, &ia)).then_some(())
    })?;
    prepare(&a, &params)?;
    let height = a.client().call("node_info", json!([]))?["height"].as_u64().unwrap_or(0);
    wait_for(Duration::from_secs(60), "the honest peer to catch up", || {
        let h = b.client().call("node_info", json!([])).ok()?["height"].as_u64()?;
        (h == height).then_some(())
    })?;
    let pid = a.pid().context("the attacked node's pid")?;
    let rss_before = rss_bytes(pid).context("RSS")?;

    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Samples { rss_peak: rss_before, ..Samples::default() }));
    let sampler = {
        let (stop, samples, client, ib) = (stop.clone(), samples.clone(), a.client(), ib.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = client.call("node_info", json!([])).is_ok();
                let ms = t.elapsed().as_secs_f64() * 1_000.0;
                let listed = client
                    .call("net_peers", json!([]))
                    .ok()
                    .and_then(|v| v.as_array().map(|a| a.iter().any(|p| p["node_id"] == ib)))
                    .unwrap_or(false);
                let rss = rss_bytes(pid).unwrap_or(0);
                let mut s = samples.lock().expect("never poisoned");
                if ok {
                    s.latencies_ms.push(ms);
                } else {
                    s.rpc_errors += 1;
                }
                if !listed {
                    s.honest_missing += 1;
                }
                s.rss_peak = s.rss_peak.max(rss);
                s.count += 1;
                drop(s);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let report = hostile::run(attack, a.p2p_addr().parse()?, &a.client(), &params, duration);
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let report = report?;
    let rss_after = rss_bytes(pid).unwrap_or(0);
    let Samples { latencies_ms: mut lat, rpc_errors, honest_missing, rss_peak, count: n } =
        samples.lock().expect("never poisoned").clone();
    lat.sort_by(f64::total_cmp);
    Ok(AttackFigures {
        report,
        rss_before,
        rss_peak: rss_peak.max(rss_after),
        rss_after,
        rpc_p50_ms: percentile(&lat, 0.5),
        rpc_p99_ms: percentile(&lat, 0.99),
        rpc_max_ms: lat.last().copied().unwrap_or(0.0),
        rpc_errors,
        honest_missing,
        samples: n,
    })
}
