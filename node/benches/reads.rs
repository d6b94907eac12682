//! Criterion benchmarks of the reads RPC serves without the chain lock
//! (`cargo bench -p ember-node --bench reads`).
//!
//! # `account_history`: page 0 of an address with 100,000 entries
//!
//! A RocksDB store in a temporary directory holds 1,000 blocks of 100 payments, every one
//! to the same address, written as the chain and the index follower write them (bodies,
//! the main-chain entry, the tx index, the address index and its counter, the index tip). `ChainStore::history_page(addr, 0,
//! 50)` is what the `account_history` RPC reads for page 0 (`page_size` 50): the count, 50
//! index entries from one reverse seek, their 50 tx-index entries and the one block body
//! they sit in, all from one snapshot.
//!
//! - `page_0_idle`: nothing else runs.
//! - `page_0_while_connecting`: a second thread writes a block-sized batch (2,000 account
//!   writes, 2,000 index entries and counters, a 368 KB body) as fast as it can the whole
//!   time, as a node connecting blocks does; no lock is shared with it.
//! - `page_1000`: page 1,000 of 50 (entries 50,000..50,050): the reverse scan steps over
//!   50,000 entries first, the cost of a deep page.
//!
//! The target (issue 16): page 0 under 10 ms with a block being connected.

use criterion::{Criterion, SamplingMode};
use ember_core::testkit::{devnet_funding, keys, pay};
use ember_core::{Account, Amount};
use ember_node::store::{Batch, ChainStore, RocksKv, TxLocation};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Blocks, and payments per block: 100,000 entries for the address.
const BLOCKS: u64 = 1_000;
const PER_BLOCK: usize = 100;

/// 32 bytes made from `n` (distinct for distinct `n`).
fn bytes32(n: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b
}

/// A made-up block id for `height`.
fn id_of(height: u64) -> ember_core::BlockId {
    ember_core::BlockId::from_bytes(bytes32(height))
}

fn bench_history(c: &mut Criterion) {
    let k = keys(PER_BLOCK + 1);
    let params = Arc::new(devnet_funding(&k, 1_000_000));
    let dir = tempfile::tempdir().expect("temp dir");
    let kv = Arc::new(RocksKv::open(dir.path(), true).expect("open RocksDB"));
    let store = ChainStore::open(kv, &params).expect("open store");
    let chain = ember_node::chain::ChainManager::open(params.clone(), store.clone()).unwrap();
    drop(chain);
    let target = k[PER_BLOCK].address();
    let mut txs = Vec::new();
    for height in 1..=BLOCKS {
        // Every payment its own (the nonce is the height): the tx index finds each once.
        txs = (0..PER_BLOCK).map(|i| pay(&params, &k[i], target, 1_000, 10, height)).collect();
        let id = id_of(height);
        let mut b = Batch::new();
        b.put_body(&id, &txs);
        b.set_main(height, Some(&id));
        for (pos, tx) in txs.iter().enumerate() {
            let txid = tx.txid();
            let loc = TxLocation { block: id, height, position: pos as u32 };
            b.put_tx_location(&txid, Some(&loc));
            b.put_history(&tx.body().from, height, pos as u32, Some(&txid));
            b.put_history(&target, height, pos as u32, Some(&txid));
            b.add_history_count(&tx.body().from, 1);
        }
        b.add_history_count(&target, PER_BLOCK as i64);
        store.write(b).expect("write");
    }
    let page = store.history_page(&target, 0, 50).expect("page 0");
    assert_eq!(page.total, BLOCKS * PER_BLOCK as u64);
    assert_eq!(page.items.len(), 50);
    assert_eq!(page.items[0].height, BLOCKS, "newest first");

    let mut g = c.benchmark_group("account_history");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(50);
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("page_0_idle", |b| {
        b.iter(|| store.history_page(&target, 0, 50).expect("page 0"))
    });

    // A writer connecting "blocks" the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop, txs) = (store.clone(), stop.clone(), txs.clone());
        let body: Vec<_> = txs.iter().cycle().take(2_000).copied().collect();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let height = BLOCKS + n;
                let id = id_of(height);
                let mut b = Batch::new();
                b.put_body(&id, &body);
                for (pos, tx) in body.iter().enumerate() {
                    let a = ember_core::Address::from_bytes(bytes32(n * 10_000 + pos as u64));
                    b.put_account(&a, &Account { balance: Amount::from_units(1), nonce: n });
                    b.put_history(&a, height, pos as u32, Some(&tx.txid()));
                    b.add_history_count(&a, 1);
                }
                store.write(b).expect("write");
            }
            n
        })
    };
    g.bench_function("page_0_while_connecting", |b| {
        b.iter(|| store.history_page(&target, 0, 50).expect("page 0"))
    });
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer");
    println!("(the writer wrote {written} block-sized batches meanwhile)");

    g.sample_size(10);
    g.bench_function("page_1000", |b| {
        b.iter(|| store.history_page(&target, 50_000, 50).expect("page 1000"))
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_history(&mut c);
    c.final_summary();
}
