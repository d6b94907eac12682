//! Readers of the indexes against a chain that moves under them: a chain that got
//! shorter, a branch that fails halfway (its first blocks briefly on the main chain in the
//! store, never published).

use super::tests::{chain_indexed_to_2_of_5, open, paying_blocks, setup, NOW};
use super::*;
use crate::indexer::IndexFollower;
use crate::store::{Column, KvStore, MemKv};
use ember_core::testkit::{child_block, devnet_funding, keys, pay};

/// A reader that saw the chain at a tip the chain then left for a lower one (an
/// invalidation, a revert, a shorter branch with more work) is answered once the indexes
/// reach the chain's new tip: it is never kept waiting for a tip that will not come.
#[tokio::test]
async fn a_reader_waits_for_the_chain_as_it_is_now_when_it_got_shorter() {
    let (_k, mut cm, blocks) = chain_indexed_to_2_of_5();
    let tips = crate::tip::TipCell::new(&cm);
    let seen = tips.get();
    assert_eq!(seen.height, 5);
    // An old payment is confirmed on the main chain whatever the index lags.
    let old = cm.store().tx_lookup(&blocks[0].txs[0].txid(), (seen.height, seen.tip)).unwrap();
    assert_eq!((old.tip_height, old.on_main_chain, old.chain_height), (2, true, 5));
    assert!(!old.covers_seen, "the index is below the tip seen");
    // The chain leaves blocks 4 and 5 before the indexes ever reach them.
    cm.invalidate(&blocks[3].id()).unwrap();
    let indexer = crate::indexer::Indexer::start(cm.store().clone()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let wait = indexer.synced_to(seen, &tips, deadline);
    tokio::pin!(wait);
    tokio::select! {
        biased;
        r = &mut wait => panic!("answered before the chain's new tip was published: {r:?}"),
        () = tokio::task::yield_now() => {}
    }
    tips.publish(&cm);
    let t = wait.await.expect("the indexes reach the chain's tip now");
    assert_eq!((t.id, t.height), (blocks[2].id(), 3));
    let read = cm.store().tx_lookup(&blocks[3].txs[0].txid(), (t.height, t.id)).unwrap();
    assert_eq!((read.tip, read.found), (blocks[2].id(), None), "block 4 never indexed");
    assert!(read.covers_seen, "so it is unknown to the chain as it is");
    let read = cm.store().tx_lookup(&blocks[2].txs[0].txid(), (t.height, t.id)).unwrap();
    assert_eq!(read.found.map(|(loc, tx)| (loc.height, tx)), Some((3, blocks[2].txs[0])));
    assert!(read.on_main_chain);
}

/// A chain of four paying blocks, the first connected and indexed by a follower started
/// with `timing`, which is then idle (waiting `idle_check`); the other three connected and
/// handed to it. Returns what the tests need.
async fn follower_handed_three_blocks(
    timing: crate::indexer::Deferral,
) -> (ChainManager, Vec<Block>, crate::indexer::Indexer, crate::tip::TipCell) {
    let (k, params, kv) = setup();
    let mut cm = open(&params, &kv);
    let blocks = paying_blocks(&params, &k, 4);
    cm.accept_block(blocks[0].clone(), NOW).unwrap();
    let indexer = crate::indexer::Indexer::start_with(cm.store().clone(), timing).unwrap();
    // Its catch-up at start (nothing handed over: at once) reaches block 1; after that only
    // a hand-over, a reader or the idle check moves it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while indexer.tip().height < 1 {
        assert!(std::time::Instant::now() < deadline, "no catch-up at start");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let tips = crate::tip::TipCell::new(&cm);
    for b in &blocks[1..] {
        cm.accept_block(b.clone(), NOW).unwrap();
        tips.publish(&cm);
        indexer.notify([Arc::new(b.clone())]);
    }
    (cm, blocks, indexer, tips)
}

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// Blocks handed over are deferred, never dropped: with no reader, the follower indexes
/// them once the chain has been quiet for `settle`, or `max_defer` after the first
/// (whichever comes first; the idle check, an hour here, plays no part).
#[tokio::test]
async fn blocks_handed_over_are_indexed_with_no_reader_when_the_deferral_ends() {
    let short = std::time::Duration::from_millis(20);
    for (settle, max_defer) in [(short, HOUR), (HOUR, short)] {
        let timing = crate::indexer::Deferral { settle, max_defer, idle_check: HOUR };
        let (cm, blocks, indexer, _tips) = follower_handed_three_blocks(timing).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while indexer.tip().height < 4 {
            assert!(std::time::Instant::now() < deadline, "stuck at {:?}", indexer.tip());
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(indexer.tip().id, blocks[3].id());
        let loc = cm.store().tx_location(&blocks[3].txs[0].txid()).unwrap().expect("indexed");
        assert_eq!(loc.height, 4);
    }
}

/// A reader ends the deferral at once: with an hour of settle time, an hour's cap and an
/// hourly idle check, only its request can make the follower index the blocks handed
/// over within the reader's deadline.
#[tokio::test]
async fn a_reader_ends_the_deferral_at_once() {
    let timing = crate::indexer::Deferral { settle: HOUR, max_defer: HOUR, idle_check: HOUR };
    let (cm, blocks, indexer, tips) = follower_handed_three_blocks(timing).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let t = indexer.synced_to(tips.get(), &tips, deadline).await.expect("answered");
    assert_eq!((t.id, t.height), (blocks[3].id(), 4));
    let loc = cm.store().tx_location(&blocks[2].txs[0].txid()).unwrap().expect("indexed");
    assert_eq!(loc.height, 3);
    // A second reader, with the indexes already at the tip, is answered too.
    let t = indexer.synced_to(tips.get(), &tips, deadline).await.expect("answered again");
    assert_eq!(t.height, 4);
}

/// A MemKv that runs a hook after each write (not for writes made by the hook itself).
struct HookKv {
    inner: MemKv,
    hook: std::sync::Mutex<Option<Box<dyn FnMut() + Send>>>,
}
thread_local! { static IN_HOOK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) }; }
impl crate::store::KvRead for HookKv {
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, crate::store::StoreError> {
        self.inner.get(col, key)
    }
    fn scan_prefix(
        &self,
        col: Column,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), crate::store::StoreError> {
        self.inner.scan_prefix(col, prefix, f)
    }
    fn scan_prefix_rev(
        &self,
        col: Column,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), crate::store::StoreError> {
        self.inner.scan_prefix_rev(col, prefix, f)
    }
}
impl KvStore for HookKv {
    fn write(&self, ops: Vec<crate::store::Op>) -> Result<(), crate::store::StoreError> {
        self.inner.write(ops)?;
        if !IN_HOOK.with(|h| h.get()) {
            IN_HOOK.with(|h| h.set(true));
            if let Some(f) = self.hook.lock().unwrap().as_mut() {
                f();
            }
            IN_HOOK.with(|h| h.set(false));
        }
        Ok(())
    }
    fn with_snapshot(
        &self,
        f: &mut dyn FnMut(&dyn crate::store::KvRead) -> Result<(), crate::store::StoreError>,
    ) -> Result<(), crate::store::StoreError> {
        self.inner.with_snapshot(f)
    }
    fn flush(&self) -> Result<(), crate::store::StoreError> {
        Ok(())
    }
}

/// A branch with more work whose third block fails when connected: while the chain manager
/// tries it (chain lock held, tip never published), the store shows its first blocks on the
/// main chain and the follower indexes them; a reader must not take a payment only that
/// branch holds for confirmed (found by a review helper: `chain_getTransaction` said so).
#[test]
fn a_payment_of_a_branch_that_fails_midway_is_never_confirmed() {
    let k = keys(4);
    let params = Arc::new(devnet_funding(&k, 100));
    let hkv = Arc::new(HookKv { inner: MemKv::new(), hook: std::sync::Mutex::new(None) });
    let kv: Arc<dyn KvStore> = hkv.clone();
    let mut cm = open(&params, &kv);
    let g = params.genesis().header;
    let mut a = Vec::new();
    let mut parent = g;
    for _ in 0..4 {
        let b = child_block(&params, &parent, vec![], k[3].address(), 0);
        parent = b.header;
        cm.accept_block(b.clone(), NOW).unwrap();
        a.push(b);
    }
    let mut follower = IndexFollower::open(cm.store().clone()).unwrap();
    follower.catch_up().unwrap();
    // The invalid branch: y1 pays k0 -> k1 (never in our mempool), y3 spends a nonce k2
    // does not have; y4, y5 give the branch more work than the main chain.
    let payment = pay(&params, &k[0], k[1].address(), 10, 5, 0);
    let mut y = Vec::new();
    let mut parent = g;
    for i in 0..5 {
        let txs = match i {
            0 => vec![payment],
            2 => vec![pay(&params, &k[2], k[1].address(), 10, 5, 7)],
            _ => vec![],
        };
        let b = child_block(&params, &parent, txs, k[2].address(), 1);
        parent = b.header;
        y.push(b);
    }
    for b in &y[..4] {
        cm.accept_block(b.clone(), NOW).unwrap();
    }
    assert_eq!(cm.tip(), a[3].id());
    let seen = (4u64, a[3].id());
    let txid = payment.txid();
    let store = cm.store().clone();
    let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let found_on_main = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let (answers, found_on_main) = (answers.clone(), found_on_main.clone());
        *hkv.hook.lock().unwrap() = Some(Box::new(move || {
            follower.catch_up().unwrap();
            let published = [seen.1];
            let r = store.tx_lookup(&txid, seen).unwrap();
            if r.on_main_chain {
                found_on_main.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            // What chain_getTransaction's first read would answer at once.
            if let Some((loc, _)) = r.confirmed_on(&published) {
                answers.lock().unwrap().push((loc.block, loc.height, r.chain_height));
            }
            // Whether the follower's tip, a block of the branch being tried, would be taken
            // as answering a reader (Indexer::answers' third case) at any height.
            let t = follower.tip();
            if t.id != seen.1 && store.on_published_main_chain(&t.id, t.height, &published).unwrap()
            {
                answers.lock().unwrap().push((t.id, t.height, r.chain_height));
            }
        }));
    }
    let _ = cm.accept_block(y[4].clone(), NOW);
    *hkv.hook.lock().unwrap() = None;
    assert_eq!(cm.tip(), a[3].id(), "back on the valid chain");
    assert_eq!(cm.entry(&y[2].id()).unwrap().status, BlockStatus::Invalid);
    assert!(
        found_on_main.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "the store did show the payment on the main chain while the branch was tried"
    );
    let y1 = &y[0];
    let answers = answers.lock().unwrap().clone();
    assert!(
        answers.is_empty(),
        "a payment only an invalid branch holds was reported confirmed: {:?} (y1 = {})",
        answers,
        y1.id()
    );
}
