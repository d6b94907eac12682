//! Helpers to build valid keys, networks, payments and blocks in tests and benchmarks.
//!
//! Used by this crate's tests, the node's tests and the benchmarks; deterministic, so a
//! failing case reproduces.

use crate::address::Address;
use crate::amount::Amount;
use crate::block::{merkle_root, Block, BlockHeader, BLOCK_VERSION};
use crate::keys::Keypair;
use crate::params::{AllocationSpec, ChainParams, GenesisSpec, Network};
use crate::tx::{Transaction, TxBody};
use crate::validate::solve_pow;

/// `n` deterministic keys (secret seeds 1, 2, 3, ... in the first eight bytes).
pub fn keys(n: usize) -> Vec<Keypair> {
    (0..n)
        .map(|i| {
            let mut seed = [0x5a; 32];
            seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            Keypair::from_secret_bytes(seed)
        })
        .collect()
}

/// A devnet whose genesis gives each key `coins` coins.
pub fn devnet_funding(keys: &[Keypair], coins: u64) -> ChainParams {
    let spec = GenesisSpec {
        network: Network::Devnet,
        time_ms: 1_700_000_000_000,
        note: "testkit".into(),
        allocations: keys
            .iter()
            .map(|k| AllocationSpec {
                address: k.address().to_bech32(Network::Devnet.hrp()),
                amount: coins.to_string(),
            })
            .collect(),
    };
    ChainParams::from_spec(&spec).expect("testkit genesis is valid")
}

/// A signed payment on `params`' network.
pub fn pay(
    params: &ChainParams,
    from: &Keypair,
    to: Address,
    amount: u64,
    fee: u64,
    nonce: u64,
) -> Transaction {
    TxBody {
        chain: params.genesis_id(),
        from: from.address(),
        to,
        amount: Amount::from_units(amount),
        fee: Amount::from_units(fee),
        nonce,
    }
    .sign(from)
}

/// A mined child of `parent` holding `txs`, one spacing after it (plus `extra_ms`, which
/// lets tests make competing blocks with different ids).
pub fn child_block(
    params: &ChainParams,
    parent: &BlockHeader,
    txs: Vec<Transaction>,
    miner: Address,
    extra_ms: u64,
) -> Block {
    let txids: Vec<_> = txs.iter().map(Transaction::txid).collect();
    let mut header = BlockHeader {
        version: BLOCK_VERSION,
        height: parent.height + 1,
        prev: parent.id(),
        tx_root: merkle_root(&txids),
        time: parent.time + params.target_spacing_ms + extra_ms,
        target: params.next_target(parent),
        nonce: 0,
        miner,
    };
    assert!(solve_pow(&mut header, u64::MAX), "testkit targets are always solvable");
    Block { header, txs }
}
