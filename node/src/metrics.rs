//! Counters for `GET /metrics` (Prometheus text format).
//!
//! Gauges (height, peers, mempool size) are read from their owners at scrape time; only
//! event counters and the RPC latency histogram live here, as atomics, so recording never
//! takes a lock on a hot path.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the RPC latency histogram buckets.
const BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

#[derive(Default)]
pub struct Metrics {
    pub txs_accepted: AtomicU64,
    /// Refused transactions by reason.
    txs_refused: Mutex<BTreeMap<String, u64>>,
    rpc_buckets: [AtomicU64; 8],
    rpc_count: AtomicU64,
    rpc_sum_micros: AtomicU64,
}

impl Metrics {
    pub fn tx_refused(&self, reason: &str) {
        *self
            .txs_refused
            .lock()
            .expect("metrics lock is never poisoned")
            .entry(reason.to_string())
            .or_default() += 1;
    }

    pub fn observe_rpc(&self, seconds: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.rpc_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.rpc_count.fetch_add(1, Ordering::Relaxed);
        self.rpc_sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// Appends the counters kept here to a Prometheus text exposition.
    pub fn render_into(&self, out: &mut String) {
        let _ =
            writeln!(out, "# HELP ember_txs_accepted_total Transactions admitted to the mempool.");
        let _ = writeln!(out, "# TYPE ember_txs_accepted_total counter");
        let _ =
            writeln!(out, "ember_txs_accepted_total {}", self.txs_accepted.load(Ordering::Relaxed));
        let _ = writeln!(out, "# HELP ember_txs_refused_total Transactions refused, by reason.");
        let _ = writeln!(out, "# TYPE ember_txs_refused_total counter");
        for (reason, n) in self.txs_refused.lock().expect("metrics lock is never poisoned").iter() {
            let _ = writeln!(out, "ember_txs_refused_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP ember_rpc_duration_seconds JSON-RPC request latency.");
        let _ = writeln!(out, "# TYPE ember_rpc_duration_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "ember_rpc_duration_seconds_bucket{{le=\"{b}\"}} {}",
                self.rpc_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.rpc_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "ember_rpc_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "ember_rpc_duration_seconds_sum {}",
            self.rpc_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "ember_rpc_duration_seconds_count {count}");
    }
}

/// Writes one gauge or counter with its HELP and TYPE lines.
pub fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}
