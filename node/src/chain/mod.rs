//! The chain manager: the one owner of chain state. All writes go through it.
//!
//! It keeps an in-memory index of every known header (with cumulative work and status),
//! validates what arrives with `ember-core`, stores bodies, and keeps the main chain on the
//! valid branch with the most cumulative work (first seen wins ties). Switching branches
//! disconnects blocks down to the fork point with their undo records and connects the new
//! branch; each connect or disconnect is one atomic store batch that moves the tip, so a
//! crash mid-reorg reopens at a consistent tip and [`ChainManager::open`] resumes the switch.
//!
//! Blocks whose parent is unknown wait in a bounded orphan pool. A block that fails a rule
//! its id commits to is marked invalid with all its descendants and never fetched again; a
//! body that fails only because it was altered in transit (see
//! [`ember_core::BlockError::is_body_malleation`]) is refused without marking the id.
//!
//! Every change of tip is recorded as a [`ChainEvent`]; the caller takes them after each
//! change ([`ChainManager::take_events`]) and hands them on once (`Node::change_chain`: the
//! mempool, then one broadcast for the miner, RPC and network).

mod account_cache;
mod manual;
mod orphans;
mod prepared;
pub mod sigcache;
pub mod tips;

use crate::store::{Batch, BlockStatus, ChainStore, HeaderEntry, StoreError};
use account_cache::AccountCache;
use ember_core::state::StateHasher;
use ember_core::validate::{self, apply_block, check_header, check_header_context};
use ember_core::{
    Account, Address, Block, BlockError, BlockHeader, BlockId, ChainParams, Digest32, StateView,
    U256,
};
pub use manual::ManualError;
use orphans::OrphanPool;
pub use prepared::PreparedBlock;
pub use sigcache::SigCache;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A change of the main chain.
#[derive(Debug, Clone)]
pub struct ChainEvent {
    pub tip: BlockId,
    pub height: u64,
    /// Blocks connected, oldest first.
    pub connected: Vec<Arc<Block>>,
    /// Blocks disconnected by a reorg, newest first.
    pub disconnected: Vec<Arc<Block>>,
}

/// What happened to an accepted block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// It (and possibly others) became the new main chain.
    NewTip { height: u64 },
    /// Valid so far and stored, on a branch with less work than the tip.
    SideChain,
    /// Its parent is unknown; it waits in the orphan pool.
    Orphan,
    /// Already known.
    Duplicate,
}

/// Why a block was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The block breaks a consensus rule; it is marked invalid.
    #[error("invalid block {id}: {error}")]
    Invalid { id: BlockId, error: Box<BlockError> },
    /// The body does not match the header or carries a bad signature: a bad copy, the id
    /// is not marked (the sender is to blame).
    #[error("bad copy of block {id}: {error}")]
    BadCopy { id: BlockId, error: Box<BlockError> },
    #[error("block {0} is known to be invalid")]
    KnownInvalid(BlockId),
    /// On a branch this node's operator invalidated by hand (`chain_invalidateBlock`): not
    /// the sender's fault, so not punished.
    #[error("block {0} is on a branch invalidated by hand")]
    InvalidatedByHand(BlockId),
    /// A header whose parent is unknown (headers must arrive in order).
    #[error("parent {0} of the header is unknown")]
    UnknownParent(BlockId),
    /// A block not asked for, on a branch whose work stays below the anti-DoS threshold
    /// ([`anti_dos_threshold`]): not stored, not marked (it may be honest but stale).
    #[error("block {0} is on a branch with too little work to be worth storing")]
    TooLittleWork(BlockId),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl ChainError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ChainError::Invalid { .. } => "invalid",
            ChainError::BadCopy { .. } => "bad_copy",
            ChainError::KnownInvalid(_) => "known_invalid",
            ChainError::InvalidatedByHand(_) => "invalidated_by_hand",
            ChainError::UnknownParent(_) => "unknown_parent",
            ChainError::TooLittleWork(_) => "too_little_work",
            ChainError::Store(_) => "store",
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Clone, Default)]
pub struct ChainStats {
    pub blocks_accepted: u64,
    pub blocks_refused: HashMap<&'static str, u64>,
    pub reorgs: u64,
    pub txs_connected: u64,
}

/// Reads the tip's account state: from the account cache, else from the store (then
/// cached). A read error means the disk or the database is failing; the node cannot
/// continue safely, so it stops (RocksDB reopens consistently).
struct StoreState<'a> {
    store: &'a ChainStore,
    cache: &'a RefCell<AccountCache>,
}

impl StateView for StoreState<'_> {
    fn account(&self, address: &Address) -> Account {
        if let Some(account) = self.cache.borrow().get(address) {
            return account;
        }
        let account =
            self.store.account(address).expect("account read failed: the store is unusable");
        self.cache.borrow_mut().put(*address, account);
        account
    }
}

pub struct ChainManager {
    params: Arc<ChainParams>,
    store: ChainStore,
    index: HashMap<BlockId, HeaderEntry>,
    children: HashMap<BlockId, Vec<BlockId>>,
    tip: BlockId,
    /// The most-work header that is not invalid (bodies fetched or not; first seen among
    /// equals), kept as headers arrive so sync never scans the index for it.
    best_header: BlockId,
    /// The header-only blocks between the main chain and `best_header`, oldest first, as
    /// last computed for that best header ([`ChainManager::missing_bodies`]).
    missing: (BlockId, std::collections::VecDeque<(BlockId, u64)>),
    orphans: OrphanPool,
    sig_cache: Arc<SigCache>,
    /// Changes of the main chain not yet taken by the caller ([`ChainManager::take_events`]).
    /// The node takes them after every change it makes, under the same lock hold, so this
    /// holds the events of one call at most.
    events: Vec<ChainEvent>,
    stats: ChainStats,
    /// When this node stored each of the last [`STORED_AT_KEPT`] bodies it stored since it
    /// started (unix µs; oldest first in the queue). Only a diagnostic: how long blocks take
    /// to reach this node. Never consulted by a rule.
    stored_at: (HashMap<BlockId, u64>, VecDeque<BlockId>),
    /// The block `accept_one` has just stored, while it activates the best chain: connecting
    /// it takes this copy instead of reading the body back from the store and decoding it.
    in_hand: Option<Arc<Block>>,
    /// The clock `stored_at` is read from (unix µs): the system clock, or a test's.
    unix_us: fn() -> u64,
    /// Blocks invalidated by hand (kept in the store's meta), see [`manual`].
    manual: HashSet<BlockId>,
    /// The tip state's recently used accounts ([`account_cache`]); a `RefCell` because reads
    /// through `&self` fill it (the chain manager is used by one thread at a time, behind
    /// the node's chain lock).
    accounts: RefCell<AccountCache>,
}

/// The system clock in unix µs (0 before 1970).
fn system_unix_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// How many blocks [`ChainManager::stored_at_us`] remembers.
pub const STORED_AT_KEPT: usize = 4096;

impl ChainManager {
    /// Opens the chain on `store`, writing genesis into a fresh one, loading the header index,
    /// and finishing any branch switch a crash interrupted.
    pub fn open(params: Arc<ChainParams>, store: ChainStore) -> Result<Self, ChainError> {
        let genesis = params.genesis().clone();
        let gid = genesis.id();
        if store.tip()?.is_none() {
            let mut b = Batch::new();
            b.init_meta(&params);
            let entry = HeaderEntry {
                header: genesis.header,
                work: work_bytes(block_work(&genesis.header)),
                status: BlockStatus::BodyStored,
            };
            b.put_header(&gid, &entry);
            b.put_body(&gid, &genesis.txs);
            for (addr, acct) in params.genesis_state().iter() {
                b.put_account(addr, acct);
            }
            b.set_main(0, Some(&gid));
            b.set_tip(&gid);
            store.write(b)?;
        }
        let tip = store.tip()?.expect("tip written above");
        let mut index = HashMap::new();
        let mut children: HashMap<BlockId, Vec<BlockId>> = HashMap::new();
        for (id, entry) in store.all_headers()? {
            if id != gid {
                children.entry(entry.header.prev).or_default().push(id);
            }
            index.insert(id, entry);
        }
        if !index.contains_key(&tip) {
            return Err(StoreError::Corrupt(format!("tip {tip} has no header")).into());
        }
        let best_header = best_header_of(&index);
        let manual = store.manual_invalid()?.into_iter().collect();
        let mut cm = ChainManager {
            params,
            store,
            index,
            children,
            tip,
            best_header,
            missing: (BlockId::ZERO, Default::default()),
            orphans: OrphanPool::new(256, 10 * 60 * 1000),
            sig_cache: Arc::new(SigCache::new(200_000)),
            events: Vec::new(),
            stats: ChainStats::default(),
            stored_at: Default::default(),
            in_hand: None,
            unix_us: system_unix_us,
            manual,
            accounts: RefCell::new(AccountCache::new(AccountCache::DEFAULT_CAPACITY)),
        };
        cm.activate_best_chain(None)?;
        // A branch switch resumed here is reported in the log; nobody is waiting for events
        // before the chain opens.
        cm.events.clear();
        Ok(cm)
    }

    pub fn params(&self) -> &Arc<ChainParams> {
        &self.params
    }
    pub fn store(&self) -> &ChainStore {
        &self.store
    }
    pub fn sig_cache(&self) -> &Arc<SigCache> {
        &self.sig_cache
    }
    /// The changes of the main chain since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<ChainEvent> {
        std::mem::take(&mut self.events)
    }
    pub fn stats(&self) -> &ChainStats {
        &self.stats
    }
    pub fn tip(&self) -> BlockId {
        self.tip
    }
    pub fn tip_entry(&self) -> &HeaderEntry {
        &self.index[&self.tip]
    }
    pub fn height(&self) -> u64 {
        self.tip_entry().header.height
    }
    pub fn tip_work(&self) -> U256 {
        self.tip_entry().work()
    }
    pub fn entry(&self, id: &BlockId) -> Option<&HeaderEntry> {
        self.index.get(id)
    }
    /// When this node stored the body of `id` (unix time, µs), if it did since it started
    /// and among the last [`STORED_AT_KEPT`] it stored.
    pub fn stored_at_us(&self, id: &BlockId) -> Option<u64> {
        self.stored_at.0.get(id).copied()
    }
    pub fn orphan_count(&self) -> usize {
        self.orphans.len()
    }
    /// Number of known headers (all branches).
    pub fn known_headers(&self) -> usize {
        self.index.len()
    }

    /// The account's state at the tip.
    pub fn account(&self, address: &Address) -> Result<Account, StoreError> {
        self.store.account(address)
    }

    /// A `StateView` of the tip state.
    pub fn state(&self) -> impl StateView + '_ {
        StoreState { store: &self.store, cache: &self.accounts }
    }

    /// The main-chain block id at `height`.
    pub fn main_id_at(&self, height: u64) -> Result<Option<BlockId>, StoreError> {
        self.store.main_chain_at(height)
    }

    /// Whether `id` is on the main chain.
    pub fn is_main(&self, id: &BlockId) -> Result<bool, StoreError> {
        match self.index.get(id) {
            Some(e) => Ok(self.store.main_chain_at(e.header.height)? == Some(*id)),
            None => Ok(false),
        }
    }

    /// A stored block (any branch).
    pub fn block(&self, id: &BlockId) -> Result<Option<Block>, StoreError> {
        let Some(entry) = self.index.get(id) else { return Ok(None) };
        Ok(self.store.body(id)?.map(|txs| Block { header: entry.header, txs }))
    }

    /// The digest of the whole account state at the tip.
    pub fn state_digest(&self) -> Result<Digest32, StoreError> {
        let mut h = StateHasher::default();
        self.store.for_each_account(|a, s| h.add(&a, &s))?;
        Ok(h.finish())
    }

    /// Times of `id` and its ancestors, newest first, at most the median span.
    fn recent_times(&self, id: &BlockId) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.params.median_time_span);
        let mut cur = self.index.get(id);
        while let Some(e) = cur {
            out.push(e.header.time);
            if out.len() == self.params.median_time_span || e.header.height == 0 {
                break;
            }
            cur = self.index.get(&e.header.prev);
        }
        out
    }

    /// [`anti_dos_threshold`] for the current tip.
    pub fn anti_dos_work(&self) -> U256 {
        anti_dos_threshold(self.tip_work(), block_work(&self.tip_entry().header))
    }

    /// The target and minimum time a child of the tip must have (for the miner).
    pub fn next_block_rules(&self) -> (ember_core::pow::CompactTarget, u64) {
        let tip = self.tip_entry().header;
        let median = validate::median_time(&self.recent_times(&self.tip));
        (self.params.next_target(&tip), median.saturating_add(1))
    }

    /// Validates and stores a header without its body (header-first sync).
    pub fn accept_header(&mut self, header: &BlockHeader, now_ms: u64) -> Result<bool, ChainError> {
        let id = header.id();
        match self.index.get(&id) {
            Some(e) if e.status == BlockStatus::Invalid => return Err(self.known_invalid(id)),
            Some(_) => return Ok(false),
            None => {}
        }
        if !self.index.contains_key(&header.prev) {
            return Err(ChainError::UnknownParent(header.prev));
        }
        self.check_new_header(&id, header, now_ms)?;
        let work = self.index[&header.prev].work() + block_work(header);
        let entry = HeaderEntry {
            header: *header,
            work: work_bytes(work),
            status: BlockStatus::HeaderOnly,
        };
        let mut b = Batch::new();
        b.put_header(&id, &entry);
        self.store.write(b)?;
        self.insert_index(id, entry);
        Ok(true)
    }

    /// Header checks shared by headers and blocks: proof of work, a known valid parent, and
    /// the contextual rules. A header failing after its parent is known is marked invalid.
    fn check_new_header(
        &mut self,
        id: &BlockId,
        header: &BlockHeader,
        now_ms: u64,
    ) -> Result<(), ChainError> {
        // Structural failures are not recorded: the id does not even meet its target, so
        // anyone can make endless such ids and recording them would only fill our memory.
        check_header(&self.params, header)
            .map_err(|error| ChainError::Invalid { id: *id, error: Box::new(error) })?;
        let parent = match self.index.get(&header.prev) {
            Some(p) if p.status == BlockStatus::Invalid => {
                // Below a block invalidated by hand the header is not recorded: once the
                // block is reconsidered, it is welcome again.
                let err = self.known_invalid(header.prev);
                if !matches!(err, ChainError::InvalidatedByHand(_)) {
                    self.mark_invalid_new(id, header)?;
                }
                return Err(err);
            }
            Some(p) => *p,
            None => return Err(ChainError::UnknownParent(header.prev)),
        };
        let times = self.recent_times(&header.prev);
        if let Err(error) =
            check_header_context(&self.params, header, &parent.header, &times, now_ms)
        {
            // Too far in the future is not a permanent verdict: it may be valid later.
            if !error.is_temporary() {
                self.mark_invalid_new(id, header)?;
            }
            return Err(ChainError::Invalid { id: *id, error: Box::new(error) });
        }
        Ok(())
    }

    fn insert_index(&mut self, id: BlockId, entry: HeaderEntry) {
        if self.index.insert(id, entry).is_none() {
            self.children.entry(entry.header.prev).or_default().push(id);
        }
        if entry.status != BlockStatus::Invalid
            && self.index.get(&self.best_header).is_none_or(|b| entry.work() > b.work())
        {
            self.best_header = id;
        }
    }

    /// Records a header that failed contextual checks as invalid.
    fn mark_invalid_new(&mut self, id: &BlockId, header: &BlockHeader) -> Result<(), StoreError> {
        let work = self.index.get(&header.prev).map(|p| p.work()).unwrap_or_default();
        let entry =
            HeaderEntry { header: *header, work: work_bytes(work), status: BlockStatus::Invalid };
        let mut b = Batch::new();
        b.put_header(id, &entry);
        self.store.write(b)?;
        self.insert_index(*id, entry);
        Ok(())
    }

    /// Marks a known block and all its descendants invalid.
    fn mark_invalid_tree(&mut self, id: &BlockId) -> Result<(), StoreError> {
        let mut stack = vec![*id];
        let mut b = Batch::new();
        while let Some(cur) = stack.pop() {
            if let Some(e) = self.index.get_mut(&cur) {
                e.status = BlockStatus::Invalid;
                b.put_header(&cur, e);
            }
            if let Some(kids) = self.children.get(&cur) {
                stack.extend(kids.iter().copied());
            }
        }
        self.store.write(b)?;
        if self.index.get(&self.best_header).is_none_or(|e| e.status == BlockStatus::Invalid) {
            self.best_header = best_header_of(&self.index);
        }
        Ok(())
    }

    /// Accepts a block from anywhere (miner, RPC, peer): validates, stores, and switches the
    /// main chain when it leads to more work. Orphans whose parent this block is follow.
    pub fn accept_block(&mut self, block: Block, now_ms: u64) -> Result<Accepted, ChainError> {
        self.accept_prepared(PreparedBlock::new(block), now_ms)
    }

    /// [`ChainManager::accept_block`] for a block whose checks that need no chain state may
    /// already be done ([`PreparedBlock`]): those are not repeated.
    pub fn accept_prepared(
        &mut self,
        block: PreparedBlock,
        now_ms: u64,
    ) -> Result<Accepted, ChainError> {
        let result = self.accept_one(block, now_ms);
        match &result {
            Ok(Accepted::NewTip { .. } | Accepted::SideChain) => self.stats.blocks_accepted += 1,
            Ok(_) => {}
            Err(e) => *self.stats.blocks_refused.entry(e.reason()).or_default() += 1,
        }
        result
    }

    fn accept_one(&mut self, prepared: PreparedBlock, now_ms: u64) -> Result<Accepted, ChainError> {
        let id = prepared.id();
        let block = prepared.block().clone();
        let known = self.index.get(&id).copied();
        match known {
            Some(e) if e.status == BlockStatus::Invalid => return Err(self.known_invalid(id)),
            Some(e) if e.status == BlockStatus::BodyStored => return Ok(Accepted::Duplicate),
            _ => {}
        }
        if known.is_none() {
            if !self.index.contains_key(&block.header.prev) {
                check_header(&self.params, &block.header)
                    .map_err(|error| ChainError::Invalid { id, error: Box::new(error) })?;
                self.orphans.insert(Arc::unwrap_or_clone(block), now_ms);
                return Ok(Accepted::Orphan);
            }
            // A block nobody asked for (its header is not indexed) on a branch that cannot
            // come near the tip is not worth storing: anyone can make endless such blocks
            // on an easy target.
            let work = self.index[&block.header.prev].work() + block_work(&block.header);
            if work < self.anti_dos_work() {
                return Err(ChainError::TooLittleWork(id));
            }
            self.check_new_header(&id, &block.header, now_ms)?;
        }
        // Body. Callers check uncached signatures in parallel before they take the chain
        // lock (`Node::accept_block`, the peer's reader), and may have matched the body to
        // the header (a compact block's rebuild): what they did is not done again, what they
        // did not is done here (signatures through the cache).
        if let Err(error) = prepared.check_body(&self.params, &self.sig_cache) {
            if error.is_body_malleation() {
                return Err(ChainError::BadCopy { id, error: Box::new(error) });
            }
            if known.is_none() {
                self.mark_invalid_new(&id, &block.header)?;
            } else {
                self.mark_invalid_tree(&id)?;
            }
            return Err(ChainError::Invalid { id, error: Box::new(error) });
        }
        let parent_work = self.index[&block.header.prev].work();
        let entry = HeaderEntry {
            header: block.header,
            work: work_bytes(parent_work + block_work(&block.header)),
            status: BlockStatus::BodyStored,
        };
        let mut b = Batch::new();
        b.put_header(&id, &entry);
        b.put_body(&id, &block.txs);
        self.store.write(b)?;
        self.insert_index(id, entry);
        self.note_stored(id);

        let old_tip = self.tip;
        // Even with less work than the tip, this body may complete a better branch whose
        // later bodies arrived first.
        self.in_hand = Some(block);
        let activated = self.activate_best_chain(Some(id));
        self.in_hand = None;
        let mut result = activated?;
        // Children that were waiting for this block.
        for orphan in self.orphans.take_children(&id, now_ms) {
            let oid = orphan.id();
            match self.accept_one(PreparedBlock::new(orphan), now_ms) {
                Ok(Accepted::NewTip { .. }) => result = Some(self.height()),
                Ok(_) => {}
                Err(e) => tracing::debug!(block = %oid, error = %e, "orphan refused"),
            }
        }
        // Report whether *this* block ended up on the main chain.
        if self.tip != old_tip && self.is_main(&id)? {
            return Ok(Accepted::NewTip { height: result.unwrap_or(self.height()) });
        }
        if self.index[&id].status == BlockStatus::Invalid {
            return Err(self.known_invalid(id));
        }
        Ok(Accepted::SideChain)
    }

    fn note_stored(&mut self, id: BlockId) {
        let now = (self.unix_us)();
        let (at, order) = &mut self.stored_at;
        if at.insert(id, now).is_none() {
            order.push_back(id);
        }
        if order.len() > STORED_AT_KEPT {
            let old = order.pop_front().expect("longer than the bound");
            at.remove(&old);
        }
    }

    /// Moves the main chain to the most-work fully available valid branch. Returns the new
    /// height when the tip changed. `stored` is the block whose body was just stored, when
    /// that is what changed: then only branches through it can beat the tip (see
    /// [`ChainManager::best_candidate_through`]), which spares a scan of the whole index
    /// per block during a sync.
    fn activate_best_chain(&mut self, stored: Option<BlockId>) -> Result<Option<u64>, ChainError> {
        self.activate_from(stored, self.tip, Vec::new())
    }

    /// [`ChainManager::activate_best_chain`] after the tip already moved from `start_tip`
    /// by disconnecting `already_disconnected` (tip first): one event reports it all.
    fn activate_from(
        &mut self,
        stored: Option<BlockId>,
        start_tip: BlockId,
        already_disconnected: Vec<Arc<Block>>,
    ) -> Result<Option<u64>, ChainError> {
        let mut all_connected = Vec::new();
        let mut all_disconnected = already_disconnected;
        let mut hint = stored;
        while let Some(target) = match hint.take() {
            Some(id) => self.best_candidate_through(id),
            None => self.best_candidate(),
        } {
            if target == self.tip {
                break;
            }
            match self.reorg_to(target, &mut all_connected, &mut all_disconnected) {
                Ok(()) => break,
                Err(ChainError::Invalid { id, error }) => {
                    tracing::warn!(block = %id, %error, "block failed while connecting; marked invalid");
                    *self.stats.blocks_refused.entry("invalid").or_default() += 1;
                    // Try the next best branch (the old chain is always still available).
                }
                Err(e) => return Err(e),
            }
        }
        if self.tip == start_tip {
            return Ok(None);
        }
        // Blocks that were disconnected and connected again are neither.
        let connected_ids: std::collections::HashSet<BlockId> =
            all_connected.iter().map(|b: &Arc<Block>| b.id()).collect();
        let disconnected_ids: std::collections::HashSet<BlockId> =
            all_disconnected.iter().map(|b: &Arc<Block>| b.id()).collect();
        all_connected.retain(|b| !disconnected_ids.contains(&b.id()));
        all_disconnected.retain(|b| !connected_ids.contains(&b.id()));
        if !all_disconnected.is_empty() {
            self.stats.reorgs += 1;
            tracing::info!(
                disconnected = all_disconnected.len(),
                connected = all_connected.len(),
                tip = %self.tip,
                "reorganised"
            );
        }
        let height = self.height();
        self.events.push(ChainEvent {
            tip: self.tip,
            height,
            connected: all_connected,
            disconnected: all_disconnected,
        });
        Ok(Some(height))
    }

    /// [`ChainManager::best_candidate`] when the only change since the last activation is
    /// that block `id`'s body was stored. After every activation no fully available branch
    /// has more work than the tip, so a better one must now go through `id`: it is `id`'s
    /// branch (if available down to the main chain) ended at its most-work descendant whose
    /// bodies are all stored. Costs the walk down to the main chain (one step in a sync)
    /// plus the stored descendants, not a scan of the index.
    fn best_candidate_through(&self, id: BlockId) -> Option<BlockId> {
        let mut cur = id;
        loop {
            let Some(e) = self.index.get(&cur) else { return Some(self.tip) };
            if e.status != BlockStatus::BodyStored {
                return Some(self.tip);
            }
            if self.store.main_chain_at(e.header.height).ok().flatten() == Some(cur) {
                break;
            }
            cur = e.header.prev;
        }
        let tip_work = self.tip_work();
        let mut best: Option<(U256, BlockId)> = None;
        let mut stack = vec![id];
        while let Some(b) = stack.pop() {
            let w = self.index[&b].work();
            // Most work first; among equals the lower id, as in `best_candidate`.
            if w > tip_work && best.is_none_or(|(bw, bid)| w > bw || (w == bw && b < bid)) {
                best = Some((w, b));
            }
            for c in self.children.get(&b).into_iter().flatten() {
                if self.index.get(c).is_some_and(|e| e.status == BlockStatus::BodyStored) {
                    stack.push(*c);
                }
            }
        }
        Some(best.map_or(self.tip, |(_, b)| b))
    }

    /// The most-work block whose whole branch has bodies and is not invalid. Scans only
    /// entries with more work than the tip, so the common case (nothing better) is cheap.
    fn best_candidate(&self) -> Option<BlockId> {
        let tip_work = self.tip_work();
        let mut better: Vec<(&BlockId, &HeaderEntry)> = self
            .index
            .iter()
            .filter(|(_, e)| e.status == BlockStatus::BodyStored && e.work() > tip_work)
            .collect();
        // Most work first; among equals, lower id for determinism (first-seen is kept by
        // never switching to equal work).
        better.sort_by(|a, b| b.1.work().cmp(&a.1.work()).then(a.0.cmp(b.0)));
        // Candidates above a missing body share the walk down to it: remember every block
        // already found to lead to a gap, so one call costs O(candidates), not O(n^2) store
        // reads (out-of-order downloads during sync leave many such candidates).
        let mut leads_to_gap: HashSet<BlockId> = HashSet::new();
        for (id, _) in better {
            let mut path = Vec::new();
            let mut cur = *id;
            let available = loop {
                if leads_to_gap.contains(&cur) {
                    break false;
                }
                let Some(e) = self.index.get(&cur) else { break false };
                if e.status != BlockStatus::BodyStored {
                    break false;
                }
                if self.store.main_chain_at(e.header.height).ok().flatten() == Some(cur) {
                    break true;
                }
                path.push(cur);
                cur = e.header.prev;
            };
            if available {
                return Some(*id);
            }
            leads_to_gap.extend(path);
        }
        Some(self.tip)
    }

    /// Disconnects down to the fork point with `target`'s branch, then connects that branch.
    fn reorg_to(
        &mut self,
        target: BlockId,
        connected: &mut Vec<Arc<Block>>,
        disconnected: &mut Vec<Arc<Block>>,
    ) -> Result<(), ChainError> {
        // The branch from the fork point (exclusive) to target, oldest first.
        let mut path = Vec::new();
        let mut cur = target;
        while !self.is_main(&cur)? {
            path.push(cur);
            cur = self.index[&cur].header.prev;
        }
        path.reverse();
        let fork = cur;
        if self.tip != fork {
            // Before the first write: a crash from here on leaves the store part way between
            // the two branches, which the next open resumes (the crash tests wait for this).
            let fork_height = self.index[&fork].header.height;
            tracing::info!(
                from = %self.tip,
                to = %target,
                disconnect = self.height() - fork_height,
                connect = path.len(),
                "reorganising"
            );
        }
        while self.tip != fork {
            disconnected.push(Arc::new(self.disconnect_tip()?));
        }
        for id in path {
            let block = match self.in_hand.take_if(|b| b.id() == id) {
                Some(block) => block,
                None => Arc::new(
                    self.block(&id)?
                        .ok_or_else(|| StoreError::Corrupt(format!("body of {id} missing")))?,
                ),
            };
            match self.connect_tip(&block) {
                Ok(()) => connected.push(block),
                Err(ChainError::Invalid { id, error }) => {
                    self.mark_invalid_tree(&id)?;
                    return Err(ChainError::Invalid { id, error });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Applies `block` (a child of the tip) to the state: one atomic batch.
    fn connect_tip(&mut self, block: &Block) -> Result<(), ChainError> {
        let id = block.id();
        debug_assert_eq!(block.header.prev, self.tip);
        let delta = apply_block(&self.params, &self.state(), block)
            .map_err(|error| ChainError::Invalid { id, error: Box::new(error) })?;
        let height = block.header.height;
        let mut b = Batch::new();
        for (addr, acct) in &delta.updates {
            b.put_account(addr, acct);
        }
        b.put_undo(&id, Some(&delta.undo));
        b.set_main(height, Some(&id));
        // The tx and address indexes follow on their own thread (`crate::indexer`).
        b.set_tip(&id);
        self.store.write(b)?;
        let cache = self.accounts.get_mut();
        for (addr, acct) in &delta.updates {
            cache.put(*addr, *acct);
        }
        self.tip = id;
        self.stats.txs_connected += block.txs.len() as u64;
        Ok(())
    }

    /// Reverts the tip block with its undo record: one atomic batch.
    fn disconnect_tip(&mut self) -> Result<Block, ChainError> {
        let id = self.tip;
        let block = self
            .block(&id)?
            .ok_or_else(|| StoreError::Corrupt(format!("body of tip {id} missing")))?;
        let undo = self
            .store
            .undo(&id)?
            .ok_or_else(|| StoreError::Corrupt(format!("undo of tip {id} missing")))?;
        let height = block.header.height;
        let mut b = Batch::new();
        for (addr, acct) in &undo.previous {
            b.put_account(addr, acct);
        }
        b.put_undo(&id, None);
        b.set_main(height, None);
        b.set_tip(&block.header.prev);
        self.store.write(b)?;
        let cache = self.accounts.get_mut();
        for (addr, acct) in &undo.previous {
            cache.put(*addr, *acct);
        }
        self.tip = block.header.prev;
        Ok(block)
    }

    /// Height of the most-work valid header known (bodies fetched or not).
    /// Cumulative work of the most-work valid header (at least the tip's).
    pub fn best_header_work(&self) -> U256 {
        self.index.get(&self.best_header).map_or(U256::zero(), |e| e.work())
    }

    /// For a header not yet known whose parent is: the cumulative work it would have.
    /// `None` when it is known already or its parent is not.
    pub fn work_if_added(&self, header: &BlockHeader) -> Option<U256> {
        if self.index.contains_key(&header.id()) {
            return None;
        }
        self.index.get(&header.prev).map(|p| p.work() + block_work(header))
    }

    /// For a header not yet known whose parent is: whether it would make a chain with more
    /// work than the best header. `None` when it is known already or its parent is not.
    pub fn would_improve_best(&self, header: &BlockHeader) -> Option<bool> {
        self.work_if_added(header).map(|w| w > self.best_header_work())
    }

    /// For a block whose body we lack: whether it would give the main chain more work than
    /// the tip (worth rebuilding from a compact block and validating now). `Some(false)`
    /// when its body is stored or it is invalid; `None` when neither it nor its parent is
    /// known.
    pub fn body_wanted(&self, header: &BlockHeader) -> Option<bool> {
        let work = match self.index.get(&header.id()) {
            Some(e) if e.status != BlockStatus::HeaderOnly => return Some(false),
            Some(e) => e.work(),
            None => self.index.get(&header.prev)?.work() + block_work(header),
        };
        Some(work > self.tip_work())
    }

    pub fn best_header_height(&self) -> u64 {
        self.index.get(&self.best_header).map_or(0, |e| e.header.height)
    }

    /// Header-only blocks to fetch: those between the main chain and the most-work valid
    /// header, oldest first, at most `limit`.
    ///
    /// The list is computed once per best header (a walk down to the main chain) and then
    /// only trimmed of the blocks whose bodies arrived, so asking after every block during
    /// a sync costs O(limit), not a walk over the whole header index.
    pub fn missing_bodies(&mut self, limit: usize) -> Vec<(BlockId, u64)> {
        let best = self.best_header;
        if self.missing.0 != best {
            let tip_height = self.height();
            let mut out = Vec::new();
            let mut cur = best;
            while let Some(e) = self.index.get(&cur) {
                match e.status {
                    BlockStatus::HeaderOnly => out.push((cur, e.header.height)),
                    BlockStatus::Invalid => {
                        out.clear();
                        break;
                    }
                    BlockStatus::BodyStored => {
                        let h = e.header.height;
                        if h == 0
                            || (h <= tip_height
                                && self.store.main_chain_at(h).ok().flatten() == Some(cur))
                        {
                            break;
                        }
                    }
                }
                cur = e.header.prev;
            }
            out.reverse();
            self.missing = (best, out.into());
        }
        let (index, (_, missing)) = (&self.index, &mut self.missing);
        let wanted =
            |id: &BlockId| index.get(id).is_some_and(|e| e.status == BlockStatus::HeaderOnly);
        while missing.front().is_some_and(|(id, _)| !wanted(id)) {
            missing.pop_front();
        }
        missing.iter().filter(|(id, _)| wanted(id)).take(limit).copied().collect()
    }

    /// A block locator for the main chain: the tip, then exponentially sparser ancestors,
    /// ending with genesis (at most 101 entries).
    pub fn locator(&self) -> Result<Vec<BlockId>, StoreError> {
        let mut out = Vec::new();
        let mut height = self.height() as i64;
        let mut step = 1i64;
        while height > 0 && out.len() < 100 {
            if let Some(id) = self.store.main_chain_at(height as u64)? {
                out.push(id);
            }
            if out.len() >= 10 {
                step *= 2;
            }
            height -= step;
        }
        out.push(self.params.genesis_id());
        Ok(out)
    }
}

/// How far below the tip's work a branch may end and still be stored, in blocks of the
/// tip's own work (Bitcoin Core's `GetAntiDoSWorkThreshold` allows 144).
pub const ANTI_DOS_BLOCKS: u64 = 144;

/// The least cumulative work a branch must reach for its headers or blocks to be stored
/// when a peer offers them: the tip's work less [`ANTI_DOS_BLOCKS`] blocks of the tip
/// block's work (saturating at zero, so a young chain stores everything).
pub fn anti_dos_threshold(tip_work: U256, tip_block_work: U256) -> U256 {
    tip_work.saturating_sub(tip_block_work.saturating_mul(U256::from(ANTI_DOS_BLOCKS)))
}

/// The work a header's target represents (zero for an undecodable target).
pub(crate) fn block_work(header: &BlockHeader) -> U256 {
    header.target.expand().map(ember_core::pow::work).unwrap_or_default()
}

fn work_bytes(w: U256) -> [u8; 32] {
    w.to_big_endian()
}

/// Replays the main chain of `store` from genesis into memory and compares the resulting
/// state digest with the stored state's. Returns (height, stored digest, replayed digest).
pub fn replay_check(
    params: &ChainParams,
    store: &ChainStore,
) -> Result<(u64, Digest32, Digest32), String> {
    let tip = store.tip().map_err(|e| e.to_string())?.ok_or("the store has no tip")?;
    let tip_entry = store.header(&tip).map_err(|e| e.to_string())?.ok_or("tip header missing")?;
    let mut state = params.genesis_state();
    for height in 1..=tip_entry.header.height {
        let id = store
            .main_chain_at(height)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("main chain has no block at height {height}"))?;
        let header = store.header(&id).map_err(|e| e.to_string())?.ok_or("header missing")?.header;
        let txs = store.body(&id).map_err(|e| e.to_string())?.ok_or("body missing")?;
        let block = Block { header, txs };
        let delta = apply_block(params, &state, &block)
            .map_err(|e| format!("block {height} ({id}): {e}"))?;
        state.apply(&delta);
    }
    let mut h = StateHasher::default();
    store.for_each_account(|a, s| h.add(&a, &s)).map_err(|e| e.to_string())?;
    Ok((tip_entry.header.height, h.finish(), state.digest()))
}

/// The most-work header that is not invalid; among equals the lowest id (a full scan, used
/// at open and when the best header turns out invalid).
fn best_header_of(index: &HashMap<BlockId, HeaderEntry>) -> BlockId {
    index
        .iter()
        .filter(|(_, e)| e.status != BlockStatus::Invalid)
        .max_by(|a, b| a.1.work().cmp(&b.1.work()).then(b.0.cmp(a.0)))
        .map_or(BlockId::ZERO, |(id, _)| *id)
}

#[cfg(test)]
mod manual_tests;
#[cfg(test)]
mod reader_tests;
#[cfg(test)]
mod tests;
