//! Chain manager tests on the in-memory store: fork choice, reorgs in every arrival order,
//! orphans, invalid blocks, bad copies, and reopening.

use super::*;
use crate::indexer::IndexFollower;
use crate::store::{ChainStore, Column, KvStore, MemKv};
use ember_core::testkit::{child_block, devnet_funding, keys, pay};
use ember_core::validate::SigVerifier;
use ember_core::{Keypair, Signature, Transaction, Txid};

pub(super) const NOW: u64 = u64::MAX / 4;

pub(super) fn setup() -> (Vec<Keypair>, Arc<ChainParams>, Arc<dyn KvStore>) {
    let k = keys(4);
    let params = Arc::new(devnet_funding(&k, 100));
    (k, params, Arc::new(MemKv::new()))
}

pub(super) fn open(params: &Arc<ChainParams>, kv: &Arc<dyn KvStore>) -> ChainManager {
    ChainManager::open(params.clone(), ChainStore::open(kv.clone(), params).unwrap()).unwrap()
}

/// Branch A: 3 blocks with a payment from k0 in its first block. Branch B: 4 blocks from
/// genesis with a payment from k1 (more work), built with a time offset so ids differ.
fn branches(k: &[Keypair], params: &ChainParams) -> (Vec<Block>, Vec<Block>) {
    let g = params.genesis().header;
    let mut a = Vec::new();
    let mut parent = g;
    for i in 0..3 {
        let txs =
            if i == 0 { vec![pay(params, &k[0], k[2].address(), 1_000, 5, 0)] } else { vec![] };
        let b = child_block(params, &parent, txs, k[3].address(), 0);
        parent = b.header;
        a.push(b);
    }
    let mut b_chain = Vec::new();
    let mut parent = g;
    for i in 0..4 {
        let txs =
            if i == 1 { vec![pay(params, &k[1], k[2].address(), 7_000, 9, 0)] } else { vec![] };
        let b = child_block(params, &parent, txs, k[2].address(), 1);
        parent = b.header;
        b_chain.push(b);
    }
    (a, b_chain)
}

#[test]
fn most_work_branch_wins_in_every_arrival_order() {
    let (k, params, _) = setup();
    let (a, b) = branches(&k, &params);
    let orders: Vec<Vec<Block>> = vec![
        a.iter().chain(&b).cloned().collect(),
        b.iter().chain(&a).cloned().collect(),
        a.iter().rev().chain(b.iter().rev()).cloned().collect(),
        b.iter().rev().chain(a.iter()).cloned().collect(),
        // interleaved
        vec![
            a[0].clone(),
            b[0].clone(),
            a[1].clone(),
            b[1].clone(),
            a[2].clone(),
            b[2].clone(),
            b[3].clone(),
        ],
        vec![
            b[3].clone(),
            a[2].clone(),
            b[2].clone(),
            a[1].clone(),
            b[1].clone(),
            a[0].clone(),
            b[0].clone(),
        ],
    ];
    let mut results = Vec::new();
    for order in orders {
        let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
        let mut cm = open(&params, &kv);
        for block in order {
            cm.accept_block(block, NOW).unwrap();
        }
        assert_eq!(cm.tip(), b[3].id());
        assert_eq!(cm.height(), 4);
        assert_eq!(cm.orphan_count(), 0);
        results.push(cm.state_digest().unwrap());
        // The stored state equals a replay of the main chain.
        let (_, stored, replayed) = replay_check(&params, cm.store()).unwrap();
        assert_eq!(stored, replayed);
        // The account cache agrees with the store on every account, the losing branch's
        // miner and payer included (their blocks were connected, then disconnected).
        for key in &k {
            let a = key.address();
            assert_eq!(cm.state().account(&a), cm.store().account(&a).unwrap(), "{a:?}");
        }
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]), "same state whatever the order");
}

#[test]
fn reorg_publishes_disconnected_transactions() {
    let (k, params, kv) = setup();
    let (a, b) = branches(&k, &params);
    let mut cm = open(&params, &kv);
    let mut index = IndexFollower::open(cm.store().clone()).unwrap();
    for block in &a {
        cm.accept_block(block.clone(), NOW).unwrap();
    }
    // Connecting writes no index entry: the follower does, on its own.
    assert!(cm.store().tx_location(&a[0].txs[0].txid()).unwrap().is_none());
    index.catch_up().unwrap();
    assert_eq!(index.tip().id, cm.tip());
    assert!(cm.store().tx_location(&a[0].txs[0].txid()).unwrap().is_some());
    assert_eq!(cm.take_events().len(), a.len(), "one event per block that moved the tip");
    for block in &b {
        cm.accept_block(block.clone(), NOW).unwrap();
    }
    let mut disconnected = Vec::new();
    for ev in cm.take_events() {
        disconnected.extend(ev.disconnected.iter().flat_map(|b| b.txs.clone()));
    }
    assert!(cm.take_events().is_empty(), "taken once");
    assert_eq!(disconnected, a[0].txs, "the losing branch's payment comes back");
    assert_eq!(cm.stats().reorgs, 1);
    // The follower steps back off the losing branch, then along the winner's.
    index.catch_up().unwrap();
    assert_eq!(index.tip().id, cm.tip());
    // Its payment is no longer confirmed, the winner's is.
    assert!(cm.store().tx_location(&a[0].txs[0].txid()).unwrap().is_none());
    assert!(cm.store().tx_location(&b[1].txs[0].txid()).unwrap().is_some());
}

#[test]
fn equal_work_keeps_the_first_seen_tip() {
    let (k, params, kv) = setup();
    let g = params.genesis().header;
    let x = child_block(&params, &g, vec![], k[0].address(), 0);
    let y = child_block(&params, &g, vec![], k[1].address(), 0);
    let mut cm = open(&params, &kv);
    assert_eq!(cm.accept_block(x.clone(), NOW).unwrap(), Accepted::NewTip { height: 1 });
    assert_eq!(cm.accept_block(y, NOW).unwrap(), Accepted::SideChain);
    assert_eq!(cm.tip(), x.id());
}

#[test]
fn invalid_block_is_marked_with_descendants_and_never_accepted() {
    let (k, params, kv) = setup();
    let g = params.genesis().header;
    // Overspends: k0 has 100 coins.
    let bad_tx = pay(&params, &k[0], k[1].address(), 200 * 100_000_000, 0, 0);
    let bad = child_block(&params, &g, vec![bad_tx], k[0].address(), 0);
    let child = child_block(&params, &bad.header, vec![], k[0].address(), 0);
    let mut cm = open(&params, &kv);
    let digest = cm.state_digest().unwrap();
    // The child first (orphan), then the bad parent.
    assert_eq!(cm.accept_block(child.clone(), NOW).unwrap(), Accepted::Orphan);
    // Its body is well formed, so it is stored; connecting it fails (the overspend), which
    // marks it invalid: refused as such, and counted as invalid (not for another reason).
    let err = cm.accept_block(bad.clone(), NOW).unwrap_err();
    assert!(matches!(err, ChainError::KnownInvalid(id) if id == bad.id()), "{err:?}");
    assert_eq!(cm.stats().blocks_refused.get("invalid"), Some(&1), "{:?}", cm.stats());
    assert_eq!(cm.tip(), params.genesis_id());
    assert_eq!(cm.entry(&bad.id()).unwrap().status, BlockStatus::Invalid);
    assert!(matches!(cm.accept_block(bad, NOW), Err(ChainError::KnownInvalid(_))));
    assert!(matches!(
        cm.accept_block(child, NOW),
        Err(ChainError::KnownInvalid(_)) | Err(ChainError::Invalid { .. })
    ));
    assert_eq!(cm.state_digest().unwrap(), digest);
}

#[test]
fn bad_copy_does_not_condemn_the_block() {
    let (k, params, kv) = setup();
    let g = params.genesis().header;
    let t = pay(&params, &k[0], k[1].address(), 10, 1, 0);
    let good = child_block(&params, &g, vec![t], k[0].address(), 0);
    let mut tampered = good.clone();
    tampered.txs[0] = Transaction::from_parts(*t.body(), Signature([9; 64]));
    let mut cm = open(&params, &kv);
    assert!(matches!(cm.accept_block(tampered, NOW), Err(ChainError::BadCopy { .. })));
    assert_eq!(cm.accept_block(good, NOW).unwrap(), Accepted::NewTip { height: 1 });
}

#[test]
fn signature_cache_skips_verified_transactions() {
    use std::sync::atomic::Ordering::Relaxed;
    let (k, params, kv) = setup();
    let cached = pay(&params, &k[0], k[1].address(), 10, 1, 0);
    let uncached = pay(&params, &k[1], k[0].address(), 20, 1, 0);
    let mut cm = open(&params, &kv);
    cm.sig_cache().verify(&cached).unwrap();
    let cache = cm.sig_cache().clone();
    let counters = || (cache.verified.load(Relaxed), cache.hits.load(Relaxed));
    let (verified_before, hits_before) = counters();
    let b =
        child_block(&params, &params.genesis().header, vec![cached, uncached], k[0].address(), 0);
    assert_eq!(cm.accept_block(b, NOW).unwrap(), Accepted::NewTip { height: 1 });
    let (verified_after, hits_after) = counters();
    // The uncached signature is verified once; the cached one not at all, it is a hit.
    assert_eq!(verified_after - verified_before, 1, "signatures verified for the block");
    assert!(hits_after > hits_before, "the cached signature was not taken from the cache");
    assert!(cache.contains(&uncached), "a verified signature is cached");
}

#[test]
fn reopening_keeps_tip_and_state() {
    let (k, params, kv) = setup();
    let (a, _) = branches(&k, &params);
    let (tip, digest) = {
        let mut cm = open(&params, &kv);
        for b in &a {
            cm.accept_block(b.clone(), NOW).unwrap();
        }
        (cm.tip(), cm.state_digest().unwrap())
    };
    let cm = open(&params, &kv);
    assert_eq!(cm.tip(), tip);
    assert_eq!(cm.state_digest().unwrap(), digest);
    assert_eq!(cm.known_headers(), 4);
}

#[test]
fn foreign_store_is_refused() {
    let (_, params, kv) = setup();
    drop(open(&params, &kv));
    let other = Arc::new(ChainParams::devnet());
    assert!(matches!(ChainStore::open(kv.clone(), &other), Err(StoreError::Foreign(_))));
    // A non-empty store without an Ember schema is refused too.
    let junk: Arc<dyn KvStore> = Arc::new(MemKv::new());
    junk.write(vec![(crate::store::Column::Accounts, vec![1], crate::store::Change::Put(vec![2]))])
        .unwrap();
    assert!(matches!(ChainStore::open(junk, &params), Err(StoreError::Foreign(_))));
}

#[test]
fn future_block_is_not_marked_invalid() {
    let (k, params, kv) = setup();
    let g = params.genesis().header;
    let b = child_block(&params, &g, vec![], k[0].address(), 10 * params.max_future_ms);
    let mut cm = open(&params, &kv);
    // Our clock is far behind the block's time.
    let err = cm.accept_block(b.clone(), g.time).unwrap_err();
    assert!(
        matches!(&err, ChainError::Invalid { error, .. } if matches!(**error, BlockError::TimeTooNew { .. })),
        "{err:?}"
    );
    assert!(cm.entry(&b.id()).is_none());
    assert!(cm.accept_block(b, NOW).is_ok());
}

#[test]
fn missing_bodies_follow_the_best_header_chain_as_bodies_and_better_headers_arrive() {
    let (k, params, kv) = setup();
    let (a, b) = branches(&k, &params);
    let mut cm = open(&params, &kv);
    let ids = |v: &[(BlockId, u64)]| v.iter().map(|(id, _)| *id).collect::<Vec<_>>();
    // Headers of branch A first: all three bodies are wanted, oldest first.
    for blk in &a {
        cm.accept_header(&blk.header, NOW).unwrap();
    }
    assert_eq!(cm.best_header_height(), 3);
    assert_eq!(ids(&cm.missing_bodies(10)), a.iter().map(|b| b.id()).collect::<Vec<_>>());
    assert_eq!(ids(&cm.missing_bodies(1)), vec![a[0].id()]);
    // A body arrives (out of order too): it is no longer wanted.
    cm.accept_block(a[0].clone(), NOW).unwrap();
    cm.accept_block(a[2].clone(), NOW).unwrap();
    assert_eq!(ids(&cm.missing_bodies(10)), vec![a[1].id()]);
    // Branch B's headers carry more work: its bodies are wanted instead, from genesis.
    for blk in &b {
        cm.accept_header(&blk.header, NOW).unwrap();
    }
    assert_eq!(cm.best_header_height(), 4);
    assert_eq!(ids(&cm.missing_bodies(10)), b.iter().map(|b| b.id()).collect::<Vec<_>>());
    for blk in &b {
        cm.accept_block(blk.clone(), NOW).unwrap();
    }
    assert_eq!(cm.tip(), b[3].id());
    assert!(cm.missing_bodies(10).is_empty(), "nothing left once the best chain is connected");
    // Reopened, the best header is found again.
    drop(cm);
    let mut cm = open(&params, &kv);
    assert_eq!(cm.best_header_height(), 4);
    assert!(cm.missing_bodies(10).is_empty());
}

#[test]
fn a_parent_body_arriving_last_completes_the_better_branch() {
    let (k, params, kv) = setup();
    let (a, b) = branches(&k, &params);
    let mut cm = open(&params, &kv);
    for blk in &a {
        cm.accept_block(blk.clone(), NOW).unwrap();
    }
    assert_eq!(cm.tip(), a[2].id());
    // Branch B's headers, then its bodies from the top down: b[3] has more work than the tip,
    // but only b[0]'s body (less work than the tip) makes the branch available.
    for blk in &b {
        cm.accept_header(&blk.header, NOW).unwrap();
    }
    for blk in b.iter().rev() {
        cm.accept_block(blk.clone(), NOW).unwrap();
    }
    assert_eq!(cm.tip(), b[3].id(), "the most-work branch is connected once it is available");
    let replay = replay_check(&params, cm.store()).unwrap();
    assert_eq!(replay.1, replay.2);
}

thread_local! {
    /// The fake clock of [`fake_unix_us`]: each reading returns the next microsecond.
    static FAKE_US: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn fake_unix_us() -> u64 {
    FAKE_US.with(|t| {
        t.set(t.get() + 1);
        t.get()
    })
}

fn set_fake_us(us: u64) {
    FAKE_US.with(|t| t.set(us));
}

#[test]
fn the_time_each_block_was_stored_is_kept_for_the_newest_blocks() {
    let (k, params, kv) = setup();
    let g = params.genesis().header;
    let a = child_block(&params, &g, vec![], k[0].address(), 0);
    let b = child_block(&params, &a.header, vec![], k[0].address(), 0);
    let mut cm = open(&params, &kv);
    cm.unix_us = fake_unix_us;
    assert_eq!(cm.stored_at_us(&g.id()), None, "genesis was not stored by this run");
    // The child first: an orphan is not stored, so it has no time until its parent comes.
    set_fake_us(1_000);
    assert_eq!(cm.accept_block(b.clone(), NOW).unwrap(), Accepted::Orphan);
    assert_eq!(cm.stored_at_us(&b.id()), None);
    set_fake_us(2_000);
    assert_eq!(cm.accept_block(a.clone(), NOW).unwrap(), Accepted::NewTip { height: 2 });
    // The parent is stored first, then the orphan it completes: one clock reading each.
    assert_eq!((cm.stored_at_us(&a.id()), cm.stored_at_us(&b.id())), (Some(2_001), Some(2_002)));
    // A duplicate keeps the first time.
    set_fake_us(3_000);
    assert_eq!(cm.accept_block(a.clone(), NOW).unwrap(), Accepted::Duplicate);
    assert_eq!(cm.stored_at_us(&a.id()), Some(2_001));
    // Reopened, the node knows the blocks but not when it stored them.
    drop(cm);
    let mut cm = open(&params, &kv);
    assert_eq!(cm.height(), 2);
    assert_eq!(cm.stored_at_us(&a.id()), None);
    // Memory stays bounded: the oldest times go first.
    for n in 0..STORED_AT_KEPT as u32 + 1 {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&n.to_le_bytes());
        cm.note_stored(BlockId::from_bytes(id));
    }
    assert_eq!(cm.stored_at.0.len(), STORED_AT_KEPT);
    assert_eq!(cm.stored_at.1.len(), STORED_AT_KEPT);
    assert_eq!(cm.stored_at_us(&BlockId::from_bytes([0; 32])), None);
    let mut newest = [0u8; 32];
    newest[..4].copy_from_slice(&(STORED_AT_KEPT as u32).to_le_bytes());
    assert!(cm.stored_at_us(&BlockId::from_bytes(newest)).is_some());
}

/// Txids of a history page, newest first, once `index` has caught up with the chain.
fn page_txids(
    cm: &ChainManager,
    index: &mut IndexFollower,
    addr: &Address,
    skip: u64,
    limit: usize,
) -> (u64, Vec<Txid>) {
    index.catch_up().unwrap();
    let page = cm.store().history_page(addr, skip, limit).unwrap();
    assert_eq!(page.tip_height, cm.height());
    (page.total, page.items.iter().map(|i| i.tx.txid()).collect())
}

#[test]
fn history_pages_newest_first_and_counts_follow_connects_reorgs_and_a_rebuild() {
    let (k, params, kv) = setup();
    let mut cm = open(&params, &kv);
    let ix = &mut IndexFollower::open(cm.store().clone()).unwrap();
    // Five blocks: k0 pays k2 in each, k2 pays itself in the third.
    let mut parent = params.genesis().header;
    let mut paid = Vec::new();
    for i in 0..5u64 {
        let mut txs = vec![pay(&params, &k[0], k[2].address(), 100 + i, 5, i)];
        if i == 2 {
            txs.push(pay(&params, &k[2], k[2].address(), 1, 5, 0));
        }
        paid.push(txs.iter().map(|t| t.txid()).collect::<Vec<_>>());
        let b = child_block(&params, &parent, txs, k[3].address(), 0);
        parent = b.header;
        cm.accept_block(b, NOW).unwrap();
    }
    // k2: five received plus one to itself, counted once.
    let (total, all) = page_txids(&cm, ix, &k[2].address(), 0, 50);
    assert_eq!(total, 6);
    let mut newest_first: Vec<Txid> = paid.iter().flatten().copied().collect();
    newest_first.reverse();
    assert_eq!(all, newest_first);
    // Pages of two: the same order, nothing twice, nothing missed.
    let mut paged = Vec::new();
    for p in 0..4 {
        let (t, items) = page_txids(&cm, ix, &k[2].address(), p * 2, 2);
        assert_eq!(t, 6);
        assert!(items.len() <= 2);
        paged.extend(items);
    }
    assert_eq!(paged, newest_first);
    assert_eq!(page_txids(&cm, ix, &k[0].address(), 0, 50).0, 5);
    assert_eq!(page_txids(&cm, ix, &k[1].address(), 0, 50), (0, vec![]));

    // A longer branch from genesis without them: every count goes back to zero but what
    // the new branch paid.
    let mut parent = params.genesis().header;
    let mut other = Vec::new();
    for i in 0..6 {
        let txs = if i == 0 { vec![pay(&params, &k[1], k[2].address(), 9, 5, 0)] } else { vec![] };
        let b = child_block(&params, &parent, txs, k[3].address(), 1);
        parent = b.header;
        other.push(b);
    }
    let winner = other[0].txs[0].txid();
    for b in other {
        cm.accept_block(b, NOW).unwrap();
    }
    assert_eq!(cm.height(), 6);
    assert_eq!(page_txids(&cm, ix, &k[2].address(), 0, 50), (1, vec![winner]));
    assert_eq!(page_txids(&cm, ix, &k[0].address(), 0, 50), (0, vec![]));
    assert_eq!(page_txids(&cm, ix, &k[1].address(), 0, 50), (1, vec![winner]));

    // A store made before the counts existed: they are rebuilt from the index, once.
    let counts: Vec<Vec<u8>> = {
        let mut keys = Vec::new();
        kv.scan_prefix(Column::AddrCount, &[], &mut |k, _| {
            keys.push(k.to_vec());
            true
        })
        .unwrap();
        keys
    };
    assert!(!counts.is_empty());
    let mut wipe: Vec<crate::store::Op> =
        counts.into_iter().map(|k| (Column::AddrCount, k, crate::store::Change::Delete)).collect();
    wipe.push((Column::Meta, b"addr_counts".to_vec(), crate::store::Change::Delete));
    kv.write(wipe).unwrap();
    assert_eq!(page_txids(&cm, ix, &k[2].address(), 0, 50).0, 0, "wiped");
    cm.store().ensure_history_counts().unwrap();
    assert_eq!(page_txids(&cm, ix, &k[2].address(), 0, 50), (1, vec![winner]));
    assert_eq!(page_txids(&cm, ix, &k[1].address(), 0, 50).0, 1);
}

/// `n` blocks on the genesis, each with one payment from k0 to k1 (nonces 0, 1, ...).
pub(super) fn paying_blocks(params: &ChainParams, k: &[Keypair], n: u64) -> Vec<Block> {
    let mut parent = params.genesis().header;
    let mut blocks = Vec::new();
    for i in 0..n {
        let txs = vec![pay(params, &k[0], k[1].address(), 10, 5, i)];
        let b = child_block(params, &parent, txs, k[3].address(), 0);
        parent = b.header;
        blocks.push(b);
    }
    blocks
}

/// A chain of five [`paying_blocks`] whose indexes were written up to height 2 only: the
/// follower stopped there (the node stopped or crashed) and blocks 3-5 connected after.
pub(super) fn chain_indexed_to_2_of_5() -> (Vec<Keypair>, ChainManager, Vec<Block>) {
    let (k, params, kv) = setup();
    let mut cm = open(&params, &kv);
    let blocks = paying_blocks(&params, &k, 5);
    let mut index = IndexFollower::open(cm.store().clone()).unwrap();
    for b in &blocks[..2] {
        cm.accept_block(b.clone(), NOW).unwrap();
    }
    index.catch_up().unwrap();
    assert_eq!(index.tip().height, 2);
    drop(index);
    for b in &blocks[2..] {
        cm.accept_block(b.clone(), NOW).unwrap();
    }
    (k, cm, blocks)
}

/// `n` empty blocks in a row on genesis.
pub(super) fn empty_blocks(params: &ChainParams, k: &[Keypair], n: usize) -> Vec<Block> {
    let mut parent = params.genesis().header;
    let mut blocks = Vec::new();
    for _ in 0..n {
        let b = child_block(params, &parent, vec![], k[3].address(), 0);
        parent = b.header;
        blocks.push(b);
    }
    blocks
}

/// A follower that lags holds the blocks handed to it up to a bound in payments, not in
/// blocks (64 busy blocks held ~128 MB), and still indexes the blocks it refused to hold.
#[test]
fn blocks_handed_to_the_index_follower_are_held_up_to_a_payment_bound() {
    use crate::indexer::HINT_PAYMENTS;
    let (k, params, kv) = setup();
    let mut cm = open(&params, &kv);
    let blocks = paying_blocks(&params, &k, 12);
    let mut index = IndexFollower::open(cm.store().clone()).unwrap();
    // Blocks of a busy branch, each half the bound.
    let big: Vec<Arc<Block>> = (0..3u64)
        .map(|i| {
            let mut b = child_block(&params, &params.genesis().header, vec![], k[2].address(), i);
            b.txs = vec![blocks[0].txs[0]; HINT_PAYMENTS / 2];
            Arc::new(b)
        })
        .collect();
    for b in &big {
        index.hint(b.clone());
    }
    assert_eq!(index.hinted(), (2, HINT_PAYMENTS), "the third would pass the bound");
    index.hint(big[0].clone());
    assert_eq!(index.hinted(), (2, HINT_PAYMENTS), "the same block counted once");
    for b in &blocks {
        cm.accept_block(b.clone(), NOW).unwrap();
        index.hint(Arc::new(b.clone()));
    }
    assert_eq!(index.hinted(), (2, HINT_PAYMENTS), "refused: the bound is full");
    index.catch_up().unwrap();
    assert_eq!(index.tip().id, cm.tip());
    for (pos, b) in blocks.iter().enumerate() {
        let loc = cm.store().tx_location(&b.txs[0].txid()).unwrap().expect("read back, indexed");
        assert_eq!((loc.block, loc.height), (b.id(), pos as u64 + 1));
    }
    assert_eq!(index.hinted(), (0, 0), "blocks far below the index tip are let go");
}

#[test]
fn the_index_resumes_from_its_own_tip_and_counts_each_block_once() {
    // The node stops (or crashes) with the index at height 2; three more blocks connect
    // before it runs again.
    let (k, cm, blocks) = chain_indexed_to_2_of_5();
    let mut index = IndexFollower::open(cm.store().clone()).unwrap();
    assert_eq!(index.tip().height, 2, "resumes from the tip it wrote");
    // A block handed over is used as it is; the others are read back.
    index.hint(std::sync::Arc::new(blocks[3].clone()));
    index.catch_up().unwrap();
    assert_eq!(index.tip().id, cm.tip());
    let page = cm.store().history_page(&k[1].address(), 0, 50).unwrap();
    assert_eq!(page.total, 5, "each block counted once");
    assert_eq!(page.items.len(), 5);
    assert_eq!(page.tip_height, 5);
    for (pos, b) in blocks.iter().enumerate() {
        let loc = cm.store().tx_location(&b.txs[0].txid()).unwrap().expect("indexed");
        assert_eq!((loc.block, loc.height), (b.id(), pos as u64 + 1));
    }
}

#[test]
fn a_store_without_an_index_tip_is_taken_as_indexed_to_the_chain_tip() {
    let (_k, params, kv) = setup();
    let cm = open(&params, &kv);
    assert_eq!(cm.store().index_tip().unwrap(), None, "the chain writes none");
    let index = IndexFollower::open(cm.store().clone()).unwrap();
    assert_eq!(index.tip().id, cm.tip());
    assert_eq!(cm.store().index_tip().unwrap(), Some(cm.tip()), "recorded");
}
