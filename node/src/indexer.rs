//! The transaction and address indexes (txid -> location; address -> history, with its
//! count), kept off the block path: a thread of their own follows the main chain with its
//! own best block, as Bitcoin Core's optional indexes do (`src/index/base.cpp`).
//!
//! Connecting a block writes only the consensus state (accounts, undo record, main-chain
//! entry, tip) in its batch; for a 500-payment block that is ~500 writes instead of
//! ~2,500, and relay waits for no index. The [`IndexFollower`] then writes each main-chain
//! block's index entries in batches that also move the index's own tip (`Meta`
//! `index_tip`), so after a crash the indexes hold every block up to that tip and none
//! after it, and the follower resumes from there: it steps back while its tip is not on the
//! main chain (a reorg, or a branch switch a crash interrupted), deleting the entries of
//! each block it leaves, then forward along the main chain. Bodies are never deleted, so
//! every block it has to leave can be read back.
//!
//! Readers that need the index to match the chain (`chain_getTransaction`,
//! `account_history`) wait for it to reach the tip they saw or the chain's tip now
//! ([`Indexer::synced_to`], as Core's `BlockUntilSyncedToCurrentChain`), read it from one
//! snapshot with the index tip it answers for, and read again while that tip does not
//! [answer](Indexer::answers) them: up to [`SYNC_WAIT`], then a clear error.
//!
//! Relay and validation come first. The thread runs at a lower priority (nice [`NICE`]),
//! and it does not start on a block handed over until the chain has been quiet for
//! [`SETTLE`] (no newer block handed over), at most [`MAX_DEFER`] after it took the first
//! block it has not indexed: a block on its way through a line of nodes is usually relayed
//! and connected everywhere before the indexes of any node take CPU for it (unless the
//! line takes longer than [`SETTLE`], or a reader asks). A reader waiting in
//! [`Indexer::synced_to`] ends the wait: the follower indexes at once, so a reader waits
//! for the indexing, never for the settle time. Bitcoin Core's indexes likewise run on
//! their own thread, from the validation interface's queue, after the block is connected
//! and announced.

use crate::store::{Batch, ChainStore, StoreError, TxLocation};
use crate::tip::{TipCell, TipSnapshot};
use ember_core::{Address, Block, BlockId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a reader waits for the indexes to reach the chain's tip.
pub const SYNC_WAIT: Duration = Duration::from_secs(10);
/// The follower thread's nice value (0 is normal, 19 the lowest priority; Linux only).
pub const NICE: i32 = 10;
/// Blocks waiting in the hand-over channel at most (others are read back from the
/// store): with [`HINT_PAYMENTS`], what bounds the memory the hand-over holds.
const HINTS: usize = 8;
/// Payments in the blocks the follower keeps handed over, at most (~216 bytes each in
/// memory: ~11 MB; a block that would pass it is read back from the store instead). By
/// payments, not blocks: 64 blocks of a busy chain held ~128 MB while the follower lagged.
pub const HINT_PAYMENTS: usize = 50_000;
/// How far below its tip the follower keeps blocks handed over (to step back over them
/// without reading them back).
const REORG_HINTS: u64 = 8;
/// Index writes gathered into one batch at most while catching up (~5 per payment;
/// ~150 KB), or one block's when it has more (a block is never split: the index tip moves
/// with its last entry). Small, because the chain's own batch waits behind it in RocksDB's write queue
/// while it is written, chain lock held: a follower starved of CPU inside a 1.5 MB batch
/// (50,000 writes) held every block write, and so every RPC call, for seconds.
const BATCH_OPS: usize = 5_000;
/// How often an idle follower looks at the chain without being told of a change.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);
/// How long the chain must be quiet (no newer block handed over) before the follower
/// indexes the blocks handed over, unless a reader waits for them.
pub const SETTLE: Duration = Duration::from_millis(100);
/// The longest the follower defers a block handed over (the chain never quiet, as in a
/// sync), unless a reader waits for it: counted from when it takes the block.
pub const MAX_DEFER: Duration = Duration::from_secs(1);

/// When the follower indexes: [`Deferral::DEFAULT`] in a node; tests pass their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferral {
    /// Quiet time after the last block handed over ([`SETTLE`]).
    pub settle: Duration,
    /// Longest wait after the first block not indexed ([`MAX_DEFER`]).
    pub max_defer: Duration,
    /// How often an idle follower looks at the chain unasked ([`IDLE_CHECK`]).
    pub idle_check: Duration,
}

impl Deferral {
    pub const DEFAULT: Deferral =
        Deferral { settle: SETTLE, max_defer: MAX_DEFER, idle_check: IDLE_CHECK };
}

/// Where the indexes stand: the last main-chain block whose entries they hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexTip {
    pub id: BlockId,
    pub height: u64,
}

/// The readers' error when the indexes lag the chain for longer than [`SYNC_WAIT`].
#[derive(Debug, thiserror::Error)]
#[error(
    "the transaction index is catching up with the chain (indexed to height {indexed}, \
     chain at {chain}); retry in a few seconds"
)]
pub struct IndexLagging {
    pub indexed: u64,
    pub chain: u64,
}

/// Follows the main chain from the index tip (one step or batch per call); used by the
/// [`Indexer`] thread, and directly by tests that want the indexes now.
pub struct IndexFollower {
    store: ChainStore,
    tip: IndexTip,
    /// Blocks handed over by the chain (connected or disconnected), by id: read from
    /// here instead of decoding the stored body. At most [`HINT_PAYMENTS`] payments.
    hints: HashMap<BlockId, Arc<Block>>,
    /// The payments `hints` holds.
    hinted: usize,
}

impl IndexFollower {
    /// Opens at the index tip the store holds; a store without one (fresh, or written by
    /// an older version, whose blocks were indexed as they connected) is indexed up to
    /// the chain's tip, which is recorded as the index tip.
    pub fn open(store: ChainStore) -> Result<IndexFollower, StoreError> {
        Self::adopt_indexed_tip(&store)?;
        let id = store.index_tip()?.ok_or_else(|| corrupt("the store has no tip"))?;
        let height = store
            .header(&id)?
            .ok_or_else(|| corrupt(&format!("index tip {id} has no header")))?
            .header
            .height;
        Ok(IndexFollower { store, tip: IndexTip { id, height }, hints: HashMap::new(), hinted: 0 })
    }

    pub fn tip(&self) -> IndexTip {
        self.tip
    }

    /// Records the chain's stored tip as the index tip when the store has a tip but no
    /// index tip (written by an Ember that indexed each block as it connected it). Call it
    /// before [`crate::chain::ChainManager::open`], which may connect blocks (a resumed
    /// branch switch) that only the follower will index.
    pub fn adopt_indexed_tip(store: &ChainStore) -> Result<(), StoreError> {
        if let (None, Some(tip)) = (store.index_tip()?, store.tip()?) {
            let mut b = Batch::new();
            b.set_index_tip(&tip);
            store.write(b)?;
        }
        Ok(())
    }

    /// Keeps `block` to index (or unindex) without reading it back, unless the blocks held
    /// already come to [`HINT_PAYMENTS`] with it (the follower is behind: it needs the
    /// older ones first).
    pub fn hint(&mut self, block: Arc<Block>) {
        let n = block.txs.len();
        if self.hinted + n <= HINT_PAYMENTS {
            if let Some(old) = self.hints.insert(block.id(), block) {
                self.hinted -= old.txs.len();
            }
            self.hinted += n;
        }
    }

    /// Blocks and payments held handed over.
    pub fn hinted(&self) -> (usize, usize) {
        (self.hints.len(), self.hinted)
    }

    /// Drops the blocks handed over that the follower will not need: those more than
    /// [`REORG_HINTS`] below its tip (a block it may still step back over is at its tip or
    /// just below; one it indexed or skipped was taken or is stale).
    fn drop_stale_hints(&mut self) {
        let floor = self.tip.height.saturating_sub(REORG_HINTS);
        let hinted = &mut self.hinted;
        self.hints.retain(|_, b| {
            let keep = b.header.height > floor;
            if !keep {
                *hinted -= b.txs.len();
            }
            keep
        });
    }

    /// Runs [`IndexFollower::step`] until the indexes reach the chain's tip.
    pub fn catch_up(&mut self) -> Result<(), StoreError> {
        while self.step()? {}
        Ok(())
    }

    /// One move toward the main chain: steps back over one block if the index tip left
    /// the main chain, else writes the entries of the next main-chain blocks (one batch,
    /// at most [`BATCH_OPS`] writes). Returns whether it moved.
    pub fn step(&mut self) -> Result<bool, StoreError> {
        if self.store.main_chain_at(self.tip.height)? != Some(self.tip.id) {
            let id = self.tip.id;
            let block = self.block(&id)?;
            let mut b = Batch::new();
            write_entries(&mut b, &block, false);
            b.set_index_tip(&block.header.prev);
            self.store.write(b)?;
            self.tip = IndexTip { id: block.header.prev, height: self.tip.height - 1 };
            return Ok(true);
        }
        let mut b = Batch::new();
        let mut tip = self.tip;
        while b.len() < BATCH_OPS {
            let Some(next) = self.store.main_chain_at(tip.height + 1)? else { break };
            let block = self.block(&next)?;
            // The chain is switching branches under us: index what is settled first.
            if block.header.prev != tip.id {
                break;
            }
            write_entries(&mut b, &block, true);
            tip = IndexTip { id: next, height: tip.height + 1 };
        }
        if tip == self.tip {
            return Ok(false);
        }
        b.set_index_tip(&tip.id);
        self.store.write(b)?;
        self.tip = tip;
        self.drop_stale_hints();
        Ok(true)
    }

    /// Block `id`: the one handed over, else read back from the store.
    fn block(&mut self, id: &BlockId) -> Result<Arc<Block>, StoreError> {
        if let Some(b) = self.hints.remove(id) {
            self.hinted -= b.txs.len();
            return Ok(b);
        }
        let header = self
            .store
            .header(id)?
            .ok_or_else(|| corrupt(&format!("header of indexed block {id} missing")))?
            .header;
        let txs = self
            .store
            .body(id)?
            .ok_or_else(|| corrupt(&format!("body of indexed block {id} missing")))?;
        Ok(Arc::new(Block { header, txs }))
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// Puts (`add`) or deletes `block`'s entries: each payment's location, its sender's and its
/// receiver's history entry (a payment to oneself once), and the history counts.
fn write_entries(b: &mut Batch, block: &Block, add: bool) {
    let (id, height) = (block.id(), block.header.height);
    let sign = if add { 1 } else { -1 };
    let mut counts: HashMap<Address, i64> = HashMap::new();
    for (pos, tx) in block.txs.iter().enumerate() {
        let txid = tx.txid();
        let (from, to) = (tx.body().from, tx.body().to);
        let loc = TxLocation { block: id, height, position: pos as u32 };
        b.put_tx_location(&txid, add.then_some(&loc));
        b.put_history(&from, height, pos as u32, add.then_some(&txid));
        *counts.entry(from).or_default() += sign;
        if to != from {
            b.put_history(&to, height, pos as u32, add.then_some(&txid));
            *counts.entry(to).or_default() += sign;
        }
    }
    for (address, n) in counts {
        b.add_history_count(&address, n);
    }
}

/// What the follower thread is handed: a block of a main-chain change, or a wake-up for a
/// reader that waits for the indexes.
enum Msg {
    Block(Arc<Block>),
    Wanted,
}

/// The running follower: a thread, the blocks handed to it, and its published tip.
pub struct Indexer {
    hints: Mutex<Option<SyncSender<Msg>>>,
    /// Set by a reader waiting for the indexes (with a `Msg::Wanted` sent when it was
    /// clear); the follower takes it (clears it) each time round its loop, and then indexes
    /// without waiting for the chain to settle until it reaches the chain's tip.
    wanted: Arc<AtomicBool>,
    tip: watch::Receiver<IndexTip>,
    thread: Mutex<Option<JoinHandle<()>>>,
    store: ChainStore,
}

impl Indexer {
    /// Opens the follower on `store` and starts its thread, which catches up at once.
    pub fn start(store: ChainStore) -> Result<Indexer, StoreError> {
        Self::start_with(store, Deferral::DEFAULT)
    }

    /// [`Indexer::start`] with its own timings.
    pub fn start_with(store: ChainStore, timing: Deferral) -> Result<Indexer, StoreError> {
        let follower = IndexFollower::open(store.clone())?;
        let (tx, rx) = std::sync::mpsc::sync_channel(HINTS);
        let (publish, tip) = watch::channel(follower.tip());
        let wanted = Arc::new(AtomicBool::new(false));
        let demand = wanted.clone();
        let thread = std::thread::Builder::new()
            .name("ember-indexer".into())
            .spawn(move || follow(follower, rx, &demand, publish, timing))
            .map_err(|e| StoreError::Db(format!("cannot start the index thread: {e}")))?;
        Ok(Indexer {
            hints: Mutex::new(Some(tx)),
            wanted,
            tip,
            thread: Mutex::new(Some(thread)),
            store,
        })
    }

    /// Tells the follower the main chain changed, handing over the blocks concerned
    /// (newest last); never blocks: when the follower is [`HINTS`] blocks behind, it reads
    /// the rest back from the store.
    pub fn notify(&self, blocks: impl IntoIterator<Item = Arc<Block>>) {
        let guard = self.hints.lock().expect("index hints lock is never poisoned");
        let Some(tx) = guard.as_ref() else { return };
        for b in blocks {
            match tx.try_send(Msg::Block(b)) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => break,
            }
        }
    }

    /// Asks the follower to index now, without waiting for the chain to settle (a reader
    /// waits). Never blocks: when the hand-over channel is full, the follower has blocks
    /// to take and sees the request when it takes them.
    fn want(&self) {
        if !self.wanted.swap(true, Ordering::AcqRel) {
            let guard = self.hints.lock().expect("index hints lock is never poisoned");
            if let Some(tx) = guard.as_ref() {
                let _ = tx.try_send(Msg::Wanted);
            }
        }
    }

    /// Where the indexes stand now.
    pub fn tip(&self) -> IndexTip {
        *self.tip.borrow()
    }

    /// Whether a read of the indexes made at index tip `t` answers a reader that saw the
    /// chain at `seen` and sees it at `now`: `t` is one of the two, or a block at least as
    /// high as `seen` on the main chain of one of them (never a tip on a branch the chain
    /// left, which may be higher: a branch with more work can be shorter; nor a block the
    /// follower is stepping back over, which would show a history the chain never had at
    /// its tip; nor a block of a branch the chain is trying, not yet published, which may
    /// still fail).
    pub fn answers(&self, t: IndexTip, seen: &TipSnapshot, now: &TipSnapshot) -> bool {
        t.id == seen.tip
            || t.id == now.tip
            || (t.height >= seen.height
                && self
                    .store
                    .on_published_main_chain(&t.id, t.height, &[seen.tip, now.tip])
                    .unwrap_or(false))
    }

    /// Waits, until `deadline`, for the indexes to [`answer`](Self::answers) a reader that
    /// saw the chain at `seen` (the chain's tip now read from `tips`, so a chain that got
    /// shorter meanwhile is waited for too), then returns their tip; else says how far
    /// behind they are. While it waits, the follower indexes without deferring.
    pub async fn synced_to(
        &self,
        seen: TipSnapshot,
        tips: &TipCell,
        deadline: Instant,
    ) -> Result<IndexTip, IndexLagging> {
        let mut indexed = self.tip.clone();
        let mut chain = tips.subscribe();
        let reached = async {
            loop {
                let t = *indexed.borrow_and_update();
                let now = *chain.borrow_and_update();
                if self.answers(t, &seen, &now) {
                    return Some(t);
                }
                self.want();
                tokio::select! {
                    r = indexed.changed() => r.ok()?,
                    r = chain.changed() => r.ok()?,
                }
            }
        };
        match tokio::time::timeout_at(deadline.into(), reached).await {
            Ok(Some(t)) => Ok(t),
            _ => Err(IndexLagging { indexed: self.tip().height, chain: tips.get().height }),
        }
    }

    /// Stops the thread once its current batch is written, and waits for it.
    pub fn stop(&self) {
        drop(self.hints.lock().expect("index hints lock is never poisoned").take());
        let thread = self.thread.lock().expect("index thread lock is never poisoned").take();
        if let Some(t) = thread {
            if t.join().is_err() {
                tracing::error!("the index thread panicked");
            }
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread: catch up, then wait for a change (or `idle_check`), until the sender
/// is dropped. Blocks handed over are indexed once the chain has been quiet for
/// `settle`, at most `max_defer` after the first of them, or at once when a reader
/// waits (`wanted`); a change found without a hand-over (at start, or by the idle
/// check) is indexed at once.
fn follow(
    mut f: IndexFollower,
    rx: Receiver<Msg>,
    wanted: &AtomicBool,
    publish: watch::Sender<IndexTip>,
    timing: Deferral,
) {
    lower_priority();
    let mut deferred = Deferred::default();
    loop {
        // Take every block handed over so far.
        loop {
            match rx.try_recv() {
                Ok(m) => deferred.take(&mut f, m, Instant::now()),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            }
        }
        deferred.urgent |= wanted.swap(false, Ordering::AcqRel);
        let wait = match deferred.due(Instant::now(), &timing) {
            None => match f.step() {
                Ok(true) => {
                    publish.send_replace(f.tip());
                    continue;
                }
                Ok(false) => {
                    deferred = Deferred::default();
                    timing.idle_check
                }
                Err(e) => {
                    tracing::error!(error = %e, "indexing failed; retrying");
                    timing.idle_check
                }
            },
            Some(wait) => wait,
        };
        match rx.recv_timeout(wait) {
            Ok(m) => deferred.take(&mut f, m, Instant::now()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The blocks handed over and not indexed yet: since when, the last one when, and whether
/// a reader waits for them.
#[derive(Debug, Default)]
struct Deferred {
    first: Option<Instant>,
    last: Option<Instant>,
    urgent: bool,
}

impl Deferred {
    fn take(&mut self, f: &mut IndexFollower, m: Msg, now: Instant) {
        match m {
            Msg::Block(b) => {
                f.hint(b);
                self.first.get_or_insert(now);
                self.last = Some(now);
            }
            Msg::Wanted => self.urgent = true,
        }
    }

    /// How long to wait before indexing, or `None` to index now.
    fn due(&self, now: Instant, timing: &Deferral) -> Option<Duration> {
        let (Some(first), Some(last)) = (self.first, self.last) else { return None };
        if self.urgent {
            return None;
        }
        let at = (last + timing.settle).min(first + timing.max_defer);
        at.checked_duration_since(now).filter(|d| !d.is_zero())
    }
}

/// Lowers this thread's scheduling priority to [`NICE`] (Linux: `setpriority` on a thread
/// id changes that thread only); elsewhere, or if refused, it runs at normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE) {
        tracing::debug!(error = %e, "could not lower the index thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule, by the clock: blocks handed over wait for [`SETTLE`] of quiet after the
    /// last, never longer than [`MAX_DEFER`] after the first, and not at all for a reader.
    #[test]
    fn handed_over_blocks_wait_for_a_quiet_chain_at_most_max_defer_and_never_for_a_reader() {
        let t0 = Instant::now();
        let d = Deferral::DEFAULT;
        let ms = Duration::from_millis;
        let at = |first: u64, last: u64, urgent: bool| Deferred {
            first: Some(t0 + ms(first)),
            last: Some(t0 + ms(last)),
            urgent,
        };
        assert_eq!(Deferred::default().due(t0, &d), None, "nothing handed over: index now");
        assert_eq!(at(0, 0, false).due(t0, &d), Some(SETTLE));
        assert_eq!(at(0, 0, false).due(t0 + ms(40), &d), Some(SETTLE - ms(40)));
        assert_eq!(at(0, 0, false).due(t0 + SETTLE, &d), None, "quiet for SETTLE");
        // Another block 60 ms later starts the quiet time again...
        assert_eq!(at(0, 60, false).due(t0 + SETTLE, &d), Some(ms(60)));
        // ...but a chain never quiet (a block every 60 ms) waits MAX_DEFER at most.
        let max = MAX_DEFER.as_millis() as u64;
        assert_eq!(at(0, max - 40, false).due(t0 + ms(max - 30), &d), Some(ms(30)));
        assert_eq!(at(0, max - 10, false).due(t0 + MAX_DEFER, &d), None);
        assert_eq!(at(0, 0, true).due(t0, &d), None, "a reader waits: index now");
    }
}
