//! Criterion benchmarks of the node's transaction and block paths
//! (`cargo bench -p ember-node --bench node`).
//!
//! # The reference: `verify_strict`
//!
//! One strict ed25519 signature check on one core, the same figure as core's bench. Every
//! other figure here that checks signatures is bounded by it: read a rate of *N tx/s* against
//! *1 / verify_strict* (e.g. 30 µs per signature is about 33,000 signatures/s per core), and
//! the gap between a "with signatures" and a "without signatures" figure is the signature
//! share of the cost.
//!
//! # `mempool_admit_2000`: admission rate
//!
//! 2,000 fresh payments (100 senders × nonces 0..20, lowest nonces first) admitted into an
//! empty [`Mempool`] with the default limits, against the genesis state. The throughput is
//! in elements, so criterion prints transactions per second.
//!
//! - `submit_path`: what `Node::submit_tx_blocking` does for each transaction, on one thread:
//!   `check_tx_structure`, the signature-cache lookup (a miss: the cache is fresh every
//!   iteration), `verify_signature`, the cache insert, then the chain and mempool locks and
//!   `admit(.., sig_checked = true)` against the chain manager's state (RocksDB reads at
//!   genesis). Expect about 1 / verify_strict plus a little: the signature dominates.
//! - `admit_sig_checked`: the same `admit` calls with `sig_checked = true` and no signature
//!   work: the mempool's own cost (policy, queues, eviction index) plus the account reads.
//! - `admit_sig_checked_memstate`: as above against the in-memory genesis state
//!   (`ChainParams::genesis_state`), so the difference to `admit_sig_checked` is the RocksDB
//!   account reads.
//!
//! # `connect_block_1000`: connect-block rate
//!
//! A 1,000-transaction block accepted as the node does (`PreparedBlock::verify_signatures`,
//! then `ChainManager::accept_prepared`) at height 1 (100 senders × 10
//! nonces) on a fresh RocksDB store in a temporary directory; the store, the genesis write
//! and the chain manager are set up outside the timing, one per iteration. Throughput is in
//! transactions per second. The figure covers header checks, body checks, `apply_block`
//! against RocksDB state, and the atomic batch write (WAL, no fsync).
//!
//! - `cold_sig_cache`: nothing is cached, so all 1,000 signatures are verified, in parallel
//!   on every core (rayon, in `SigCache::preverify`): expect about cores / verify_strict.
//! - `cold_sig_cache_1_thread`: the same inside a one-thread rayon pool, so it reads
//!   directly against 1 / verify_strict on one core.
//! - `warm_sig_cache`: every (txid, signature) of the block is inserted in the chain's
//!   signature cache first, as mempool admission does for relayed transactions: no
//!   signature is verified, which is the cost of a block whose transactions we already saw.
//!
//! # Store size per block (printed, not timed)
//!
//! Before the benchmarks, 200 blocks of 100 payments are connected to a RocksDB store in a
//! temporary directory; the store is flushed and closed and its directory measured against
//! a store holding genesis only. The line `store size: X bytes per block (Y bytes per tx)`
//! is that growth divided by the blocks (and transactions), followed by a breakdown of the
//! full store's files. It is a fresh, uncompacted store (flushed SST files, LZ4 on bodies and
//! undo), so it approximates rather than predicts a long-running node's size.
//!
//! The report runs under `cargo bench` with no filter, or with a filter containing
//! `store_size` (`cargo bench -p ember-node --bench node -- store_size` runs only it); it is
//! skipped in test mode (`cargo test --benches`) and for other filters.

use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use ember_core::testkit::{child_block, devnet_funding, keys, pay};
use ember_core::validate::check_tx_structure;
use ember_core::{Block, ChainParams, Keypair, Transaction};
use ember_node::chain::{ChainManager, PreparedBlock, SigCache};
use ember_node::mempool::{Mempool, MempoolLimits};
use ember_node::store::{ChainStore, RocksKv};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;

/// Senders in every workload; each pays the next one.
const SENDERS: usize = 100;
/// Coins each sender gets at genesis: far more than any workload spends.
const COINS: u64 = 1_000_000;

/// A devnet funding `SENDERS` keys.
fn network() -> (Vec<Keypair>, Arc<ChainParams>) {
    let k = keys(SENDERS);
    let params = Arc::new(devnet_funding(&k, COINS));
    (k, params)
}

/// `per_sender` payments from each sender with nonces `first_nonce..`, lowest nonces first
/// (the order a block must hold them in and the order admission accepts them without gaps).
fn payments(
    params: &ChainParams,
    k: &[Keypair],
    first_nonce: u64,
    per_sender: u64,
) -> Vec<Transaction> {
    let mut txs = Vec::with_capacity(k.len() * per_sender as usize);
    for nonce in first_nonce..first_nonce + per_sender {
        for (i, s) in k.iter().enumerate() {
            txs.push(pay(params, s, k[(i + 1) % k.len()].address(), 1_000, 10, nonce));
        }
    }
    txs
}

/// A fresh RocksDB store holding genesis in a temporary directory, and its chain manager.
fn rocks_chain(params: &Arc<ChainParams>) -> (TempDir, ChainManager) {
    let dir = tempfile::tempdir().expect("temp dir");
    let kv = Arc::new(RocksKv::open(dir.path(), true).expect("open RocksDB"));
    let store = ChainStore::open(kv, params).expect("open store");
    let cm = ChainManager::open(params.clone(), store).expect("open chain");
    (dir, cm)
}

fn bench_verify(c: &mut Criterion) {
    let k = keys(2);
    let params = devnet_funding(&k, 1_000_000);
    let tx = pay(&params, &k[0], k[1].address(), 1, 1, 0);
    c.bench_function("verify_strict", |b| b.iter(|| tx.verify_signature().unwrap()));
}

fn bench_mempool(c: &mut Criterion) {
    let (k, params) = network();
    let txs = payments(&params, &k, 0, 20);
    let n = txs.len() as u64;
    // The chain manager's state at genesis, behind a lock as in the node.
    let (_dir, cm) = rocks_chain(&params);
    let chain = Mutex::new(cm);
    let mem_state = params.genesis_state();
    let now = params.genesis().header.time;
    let fresh_pool = || Mutex::new(Mempool::new(params.clone(), MempoolLimits::default()));

    let mut g = c.benchmark_group(format!("mempool_admit_{n}"));
    g.throughput(Throughput::Elements(n));
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));

    g.bench_function("submit_path", |b| {
        b.iter_batched(
            || (fresh_pool(), SigCache::new(200_000)),
            |(mempool, sig_cache)| {
                for tx in &txs {
                    // Node::submit_tx_blocking, step by step.
                    check_tx_structure(&params, tx).unwrap();
                    sig_cache.check_and_cache(tx).unwrap();
                    let chain = chain.lock().unwrap();
                    let state = chain.state();
                    let mut mp = mempool.lock().unwrap();
                    mp.admit(*tx, &state, now, true).unwrap();
                }
                (mempool, sig_cache)
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("admit_sig_checked", |b| {
        b.iter_batched(
            fresh_pool,
            |mempool| {
                for tx in &txs {
                    let chain = chain.lock().unwrap();
                    let state = chain.state();
                    let mut mp = mempool.lock().unwrap();
                    mp.admit(*tx, &state, now, true).unwrap();
                }
                mempool
            },
            BatchSize::PerIteration,
        )
    });

    g.bench_function("admit_sig_checked_memstate", |b| {
        b.iter_batched(
            fresh_pool,
            |mempool| {
                for tx in &txs {
                    let mut mp = mempool.lock().unwrap();
                    mp.admit(*tx, &mem_state, now, true).unwrap();
                }
                mempool
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn bench_connect(c: &mut Criterion) {
    let (k, params) = network();
    let txs = payments(&params, &k, 0, 10);
    let n = txs.len() as u64;
    let block = child_block(&params, &params.genesis().header, txs, k[0].address(), 0);
    let now = block.header.time;
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("rayon pool");

    let mut g = c.benchmark_group(format!("connect_block_{n}"));
    g.throughput(Throughput::Elements(n));
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));

    // What `Node::accept_prepared` does: the signatures the cache lacks verified on every
    // core (rayon) before the chain lock, then the chain manager's rules and writes.
    let connect = |(dir, mut cm, block): (TempDir, ChainManager, Block)| {
        let mut block = PreparedBlock::new(block);
        block.verify_signatures(cm.sig_cache());
        let accepted = cm.accept_prepared(block, now).unwrap();
        assert!(matches!(accepted, ember_node::chain::Accepted::NewTip { height: 1 }));
        // Returned so that closing RocksDB and removing the directory are not timed.
        (dir, cm)
    };

    g.bench_function("cold_sig_cache", |b| {
        b.iter_batched(
            || {
                let (dir, cm) = rocks_chain(&params);
                (dir, cm, block.clone())
            },
            connect,
            BatchSize::PerIteration,
        )
    });

    g.bench_function("cold_sig_cache_1_thread", |b| {
        b.iter_batched(
            || {
                let (dir, cm) = rocks_chain(&params);
                (dir, cm, block.clone())
            },
            |input| one_thread.install(|| connect(input)),
            BatchSize::PerIteration,
        )
    });

    g.bench_function("warm_sig_cache", |b| {
        b.iter_batched(
            || {
                let (dir, cm) = rocks_chain(&params);
                for tx in &block.txs {
                    cm.sig_cache().insert(tx.txid(), *tx.signature());
                }
                (dir, cm, block.clone())
            },
            connect,
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Total size of the files under `path`, split into (SST, WAL, everything else).
fn dir_size(path: &Path) -> (u64, u64, u64) {
    let (mut sst, mut wal, mut other) = (0, 0, 0);
    for entry in std::fs::read_dir(path).expect("read store dir") {
        let entry = entry.expect("read store dir entry");
        let meta = entry.metadata().expect("store file metadata");
        if meta.is_dir() {
            let (s, w, o) = dir_size(&entry.path());
            sst += s;
            wal += w;
            other += o;
            continue;
        }
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".sst") {
            sst += meta.len();
        } else if name.ends_with(".log") {
            wal += meta.len();
        } else {
            other += meta.len();
        }
    }
    (sst, wal, other)
}

/// Flushes and closes the chain's store, then measures its directory.
fn close_and_measure(dir: &TempDir, cm: ChainManager) -> (u64, u64, u64) {
    cm.store().flush().expect("flush store");
    drop(cm);
    dir_size(dir.path())
}

/// Connects `BLOCKS` blocks of `TXS_PER_BLOCK` payments and prints the store's growth.
fn store_size_report() {
    const BLOCKS: u64 = 200;
    const PER_SENDER: u64 = 1;
    let (k, params) = network();
    let txs_per_block = SENDERS as u64 * PER_SENDER;

    let (base_dir, base_cm) = rocks_chain(&params);
    let (base_sst, base_wal, base_other) = close_and_measure(&base_dir, base_cm);
    let base = base_sst + base_wal + base_other;

    let (dir, mut cm) = rocks_chain(&params);
    let mut parent = params.genesis().header;
    for height in 1..=BLOCKS {
        let txs = payments(&params, &k, (height - 1) * PER_SENDER, PER_SENDER);
        let block = child_block(&params, &parent, txs, k[0].address(), 0);
        parent = block.header;
        let accepted = cm.accept_block(block, parent.time).expect("block connects");
        assert!(matches!(accepted, ember_node::chain::Accepted::NewTip { .. }));
    }
    let (sst, wal, other) = close_and_measure(&dir, cm);
    let full = sst + wal + other;
    let grown = full.saturating_sub(base);
    let txs = BLOCKS * txs_per_block;
    println!("store size: {} bytes per block ({} bytes per tx)", grown / BLOCKS, grown / txs);
    println!(
        "store size: {BLOCKS} blocks of {txs_per_block} txs on RocksDB, flushed and closed: \
         {full} bytes (SST {sst}, WAL {wal}, other {other}); genesis-only store {base} bytes \
         (SST {base_sst}, WAL {base_wal}, other {base_other})"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benching = args.iter().any(|a| a == "--bench");
    let unfiltered = args.iter().all(|a| a == "--bench");
    if benching && (unfiltered || args.iter().any(|a| a.contains("store_size"))) {
        store_size_report();
    }
    let mut c = Criterion::default().configure_from_args();
    bench_verify(&mut c);
    bench_mempool(&mut c);
    bench_connect(&mut c);
    c.final_summary();
}
