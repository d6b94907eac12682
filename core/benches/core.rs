//! Criterion benchmarks of the consensus hot paths (`make bench`).
//!
//! The reference figure is `verify_strict`: every other figure that verifies signatures
//! should be read as a share of it (a 5,000-transaction block costs at least 5,000 of them).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ember_core::block::merkle_root;
use ember_core::testkit::{child_block, devnet_funding, keys, pay};
use ember_core::validate::{
    apply_block, check_block_structure, check_tx, check_tx_against, StrictVerifier,
};
use ember_core::{StateView, Txid};

fn benches(c: &mut Criterion) {
    let k = keys(2);
    let params = devnet_funding(&k, 1_000_000);
    let tx = pay(&params, &k[0], k[1].address(), 1, 1, 0);

    c.bench_function("verify_strict", |b| b.iter(|| tx.verify_signature().unwrap()));

    let state = params.genesis_state();
    c.bench_function("tx_admission_checks", |b| {
        b.iter(|| {
            check_tx(&params, &tx, &StrictVerifier).unwrap();
            check_tx_against(&state.account(&tx.body().from), &tx).unwrap();
        })
    });

    let header = params.genesis().header;
    c.bench_function("header_id", |b| b.iter(|| header.id()));

    let txids: Vec<Txid> = (0..10_000u32)
        .map(|i| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_le_bytes());
            Txid::from_bytes(b)
        })
        .collect();
    let mut g = c.benchmark_group("merkle");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("merkle_root_10000", |b| b.iter(|| merkle_root(&txids)));
    g.finish();

    // A 5,000-transaction block: 100 senders x 50 payments each.
    let senders = keys(100);
    let params = devnet_funding(&senders, 1_000_000);
    let mut txs = Vec::with_capacity(5_000);
    for nonce in 0..50 {
        for (i, s) in senders.iter().enumerate() {
            txs.push(pay(&params, s, senders[(i + 1) % 100].address(), 1_000, 10, nonce));
        }
    }
    let block = child_block(&params, &params.genesis().header, txs, senders[0].address(), 0);
    let state = params.genesis_state();
    let mut g = c.benchmark_group("block_5000");
    g.throughput(Throughput::Elements(5_000));
    g.sample_size(10);
    g.bench_function("validate_and_apply", |b| {
        b.iter_batched(
            || (),
            |_| {
                check_block_structure(&params, &block, &StrictVerifier).unwrap();
                apply_block(&params, &state, &block).unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("apply_only", |b| b.iter(|| apply_block(&params, &state, &block).unwrap()));
    g.finish();
}

criterion_group!(core_benches, benches);
criterion_main!(core_benches);
