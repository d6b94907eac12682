//! The running node: the chain manager, mempool and miner wired together, with the shared
//! handles the RPC server and the network use.
//!
//! Locks: the chain and the mempool each sit behind a std `Mutex` (their operations are
//! short and CPU-bound, never held across `.await`). When both are needed the chain is
//! locked first. Signature checks for submitted transactions run in `spawn_blocking`, before
//! any lock is taken, so RPC stays responsive under a flood.

use crate::chain::{Accepted, ChainError, ChainEvent, ChainManager, PreparedBlock, SigCache};
use crate::config::NodeConfig;
use crate::mempool::{Mempool, MempoolError};
use crate::mempool_file::{self, SavedTx};
use crate::metrics::Metrics;
use crate::store::ChainStore;
#[cfg(feature = "rocksdb")]
use crate::store::{KvStore, RocksKv, StoreError};
use ember_core::validate::check_tx_structure;
use ember_core::{Block, ChainParams, Transaction, Txid};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// What [`Node::restore_mempool`] did with the saved payments.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Back in the mempool.
    pub admitted: usize,
    /// Older than the mempool's expiry: dropped without a check.
    pub expired: usize,
    /// Refused by admission, per reason (`nonce_too_low`: confirmed meanwhile, ...).
    pub refused: std::collections::BTreeMap<&'static str, usize>,
}

impl RestoreReport {
    /// Payments refused by admission, all reasons together.
    pub fn refused_total(&self) -> usize {
        self.refused.values().sum()
    }
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Shared state of a running node.
pub struct Node {
    pub config: NodeConfig,
    pub params: Arc<ChainParams>,
    /// The static key proved to peers (`<data dir>/node.key`); its public half is the node id.
    pub node_key: crate::identity::NodeKey,
    pub chain: Mutex<ChainManager>,
    /// The chain's store, for readers that need no chain lock (RocksDB reads are
    /// thread-safe; one that needs several reads to agree uses a snapshot).
    pub store: ChainStore,
    /// The chain's tip as of its last change, readable without the chain lock.
    pub tip: crate::tip::TipCell,
    /// The tx and address indexes' follower (its own thread), told of every chain change.
    pub indexer: crate::indexer::Indexer,
    pub mempool: Mutex<Mempool>,
    /// The mempool's count and bytes, readable without its lock.
    pub mempool_size: Arc<crate::mempool::MempoolSize>,
    pub sig_cache: Arc<SigCache>,
    pub metrics: Metrics,
    /// Cancelled to stop every task of the node.
    pub shutdown: CancellationToken,
    /// Bumped on every tip change, so miners can restart cheaply.
    pub tip_generation: AtomicU64,
    /// Hashes tried by the miner.
    pub hashes: AtomicU64,
    /// Chain events, each sent once, after the mempool has applied it (RPC waiters, miner,
    /// network).
    pub events: broadcast::Sender<ChainEvent>,
    /// Txids admitted to the mempool, for relay and subscriptions (fresh admissions and
    /// payments a reorganisation returned).
    pub new_txs: broadcast::Sender<Txid>,
    /// Txids of fresh admissions only (RPC, peers): what automine mines.
    pub fresh_txs: broadcast::Sender<Txid>,
    /// How a devnet node mines (interval, automine); see [`crate::mining_mode`].
    pub mining: crate::mining_mode::MiningControl,
    /// `dev_snapshot`s taken (devnet).
    pub snapshots: Mutex<crate::dev_snapshot::Snapshots>,
    /// Held while this node makes a block (the miner's `mine_one`): concurrent
    /// `mining_generate` calls and the miner task take turns, so each block builds on the
    /// tip the previous one made and none forks off another.
    pub making_block: Mutex<()>,
    /// Told of each block this node makes, after its proof of work and before it is
    /// validated and connected: the network sends it to high-bandwidth peers at once (as
    /// Core announces a block once its proof of work checks, BIP152). Set once, by the
    /// network; unset, nobody is told.
    pub on_found: std::sync::OnceLock<FoundHook>,
}

/// What [`Node::on_found`] calls.
pub type FoundHook = Box<dyn Fn(&Block) + Send + Sync>;

/// Opens the node's RocksDB store under `data_dir/chain`, refusing a foreign data dir and
/// one another node has open, each with what to do instead.
#[cfg(feature = "rocksdb")]
pub fn open_store(config: &NodeConfig) -> anyhow::Result<ChainStore> {
    let data_dir = &config.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the data dir {}: {e}; choose another with --data-dir",
            data_dir.display()
        )
    })?;
    let path = data_dir.join("chain");
    let kv: Arc<dyn KvStore> = Arc::new(RocksKv::open(&path, true).map_err(|e| match e {
        StoreError::InUse(_) => anyhow::anyhow!(
            "another ember-node is using this data dir ({}); stop it first, or give this \
             node its own --data-dir",
            data_dir.display()
        ),
        other => anyhow::anyhow!("cannot open the store in {}: {other}", path.display()),
    })?);
    ChainStore::open(kv.clone(), &config.params).map_err(|e| match e {
        StoreError::Foreign(msg) => {
            let hint = match ChainStore::stored_genesis(kv.as_ref()) {
                Ok(Some((network, genesis))) => {
                    crate::config::other_genesis_hint(data_dir, &network, genesis)
                }
                _ => "use another --data-dir".to_owned(),
            };
            anyhow::anyhow!("{}: {msg}; {hint}", data_dir.display())
        }
        other => anyhow::anyhow!("{}: {other}", path.display()),
    })
}

impl Node {
    /// Builds a node on an opened store, with the node key from the data dir (created on
    /// first start).
    pub fn new(config: NodeConfig, store: ChainStore) -> anyhow::Result<Arc<Node>> {
        let node_key = crate::identity::NodeKey::load_or_create(&config.data_dir)?;
        let params = config.params.clone();
        // A store from before the index follower had its indexes written with each connect:
        // they hold its tip, which is recorded before opening the chain can connect more.
        crate::indexer::IndexFollower::adopt_indexed_tip(&store)?;
        let chain = ChainManager::open(params.clone(), store)?;
        chain.store().ensure_history_counts()?;
        let indexer = crate::indexer::Indexer::start(chain.store().clone())?;
        let sig_cache = chain.sig_cache().clone();
        let (events, _) = broadcast::channel(1024);
        let mempool = Mempool::new(params.clone(), config.mempool);
        let devnet = !params.retarget;
        let mining = crate::mining_mode::MiningMode {
            automine: config.automine,
            interval: (devnet && config.mine).then_some(config.block_time),
        };
        tracing::info!(
            network = %params.network,
            genesis = %params.genesis_id(),
            height = chain.height(),
            tip = %chain.tip(),
            node_id = %node_key.id(),
            "chain opened"
        );
        Ok(Arc::new(Node {
            config,
            params,
            node_key,
            tip: crate::tip::TipCell::new(&chain),
            indexer,
            store: chain.store().clone(),
            chain: Mutex::new(chain),
            mempool_size: mempool.size_cell(),
            mempool: Mutex::new(mempool),
            sig_cache,
            metrics: Metrics::default(),
            shutdown: CancellationToken::new(),
            tip_generation: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
            events,
            new_txs: broadcast::channel(8192).0,
            fresh_txs: broadcast::channel(8192).0,
            mining: crate::mining_mode::MiningControl::new(mining),
            snapshots: Mutex::new(Default::default()),
            making_block: Mutex::new(()),
            on_found: std::sync::OnceLock::new(),
        }))
    }

    /// The address mined blocks pay when none is given: `--miner-address`, else the
    /// genesis's first prefunded account (dev account 0 on devnet).
    pub fn default_miner(&self) -> Option<ember_core::Address> {
        self.config.miner_address.or_else(|| self.params.allocations().first().map(|(a, _)| *a))
    }

    /// Accepts a block from anywhere and brings the mempool up to date before returning.
    pub fn accept_block(&self, block: Block) -> Result<Accepted, ChainError> {
        self.accept_prepared(PreparedBlock::new(block))
    }

    /// [`Node::accept_block`] for a block some of whose checks may be done already (a
    /// compact block's rebuild matched its root; a peer's reader verified its signatures):
    /// blocking, call it from a blocking thread.
    pub fn accept_prepared(&self, mut block: PreparedBlock) -> Result<Accepted, ChainError> {
        // Signatures the cache lacks (a block from sync, or payments we never saw) are
        // checked on every core before the chain lock is taken: RPC, admission and the other
        // peers' blocks are not held up by them, and the chain manager does not look them up
        // again.
        // Only for a block that can be connected now: an orphan's (or a known block's)
        // signatures would be checked for nothing, and anyone can send endless orphans.
        if self.can_connect(&block.block().header) {
            block.verify_signatures(&self.sig_cache);
        }
        self.change_chain(|chain| chain.accept_prepared(block, now_ms()))
    }

    /// Runs `f` on the chain under its lock, then brings the mempool up to date with what
    /// `f` connected and disconnected before the lock is released (see `drain_events`).
    pub(crate) fn change_chain<T>(&self, f: impl FnOnce(&mut ChainManager) -> T) -> T {
        let mut chain = self.chain.lock().expect("chain lock is never poisoned");
        let result = f(&mut chain);
        self.drain_events(&mut chain);
        self.tip.publish(&chain);
        result
    }

    /// `chain_invalidateBlock`: see [`ChainManager::invalidate`]. Payments of the blocks
    /// that left the main chain go back to the mempool. Returns the new height.
    pub fn invalidate_block(
        &self,
        id: &ember_core::BlockId,
    ) -> Result<u64, crate::chain::ManualError> {
        self.change_chain(|chain| chain.invalidate(id))
    }

    /// `chain_reconsiderBlock`: see [`ChainManager::reconsider`]. Returns the new height.
    pub fn reconsider_block(
        &self,
        id: &ember_core::BlockId,
    ) -> Result<u64, crate::chain::ManualError> {
        self.change_chain(|chain| chain.reconsider(id))
    }

    /// Whether a block with this header would be validated now: not known yet, its parent
    /// known (not an orphan), and its proof of work valid. A block whose header is known
    /// already is not: anyone may send a body for it, and its signatures are then checked
    /// one by one under the chain lock, stopping at the first bad one (a block of a sync,
    /// asked of one peer, is checked ahead by that peer's reader instead).
    pub fn can_connect(&self, header: &ember_core::BlockHeader) -> bool {
        ember_core::validate::check_header(&self.params, header).is_ok()
            && self
                .chain
                .lock()
                .expect("chain lock is never poisoned")
                .work_if_added(header)
                .is_some()
    }

    /// Applies the chain's new events to the mempool, then sends each once on
    /// [`Node::events`]; the caller holds the chain lock, so the mempool never lags behind
    /// the tip a template is built on.
    fn drain_events(&self, chain: &mut ChainManager) {
        for ev in chain.take_events() {
            let readmitted = {
                let state = chain.state();
                let mut mp = self.mempool.lock().expect("mempool lock is never poisoned");
                for b in &ev.connected {
                    mp.remove_for_block(b, &state);
                }
                // Payments the new branch confirms again are not "returned": only the
                // others go back to the pool (and count as dropped if they no longer fit).
                let again_confirmed: HashSet<Txid> = if ev.disconnected.is_empty() {
                    HashSet::new()
                } else {
                    ev.connected.iter().flat_map(|b| b.txs.iter().map(|t| t.txid())).collect()
                };
                let back: Vec<Transaction> = ev
                    .disconnected
                    .iter()
                    .flat_map(|b| b.txs.iter().copied())
                    .filter(|t| !again_confirmed.contains(&t.txid()))
                    .collect();
                let returned = back.len();
                // Any reorg re-checks the whole pool (a disconnected miner lost its reward),
                // even when the new branch confirms every payment again.
                let again = if ev.disconnected.is_empty() {
                    Vec::new()
                } else {
                    mp.readmit_reorged(back, &state, now_ms())
                };
                if again.len() < returned {
                    tracing::warn!(
                        returned,
                        readmitted = again.len(),
                        "payments of disconnected blocks that no longer fit the mempool's \
                         rules (nonce gap, size, fee) were dropped"
                    );
                }
                again
            };
            self.tip_generation.fetch_add(1, Ordering::Relaxed);
            self.indexer.notify(ev.disconnected.iter().chain(&ev.connected).cloned());
            // The chain event first, then the payments it returned: a subscriber sees a
            // payment disconnected, then pending again.
            let _ = self.events.send(ev);
            // Announce them again: peers on the winning branch never saw payments confirmed
            // only on the losing one. Not on `fresh_txs`: automine does not re-mine what a
            // reorg, an invalidation or a revert gave back.
            for txid in readmitted {
                let _ = self.new_txs.send(txid);
            }
        }
    }

    /// Admits a transaction to the mempool: structural checks and the signature off the
    /// async threads, then the stateful checks under the locks.
    pub async fn submit_tx(self: &Arc<Self>, tx: Transaction) -> Result<Txid, MempoolError> {
        let node = self.clone();
        tokio::task::spawn_blocking(move || node.submit_tx_blocking(tx))
            .await
            .unwrap_or_else(|e| Err(MempoolError::Internal(e.to_string())))
    }

    /// [`Node::submit_tx`] on the calling thread: admits, counts, and queues the
    /// transaction for relay.
    pub fn submit_tx_blocking(&self, tx: Transaction) -> Result<Txid, MempoolError> {
        let result = self.admit_tx(tx);
        match &result {
            Ok(txid) => {
                self.metrics.txs_accepted.fetch_add(1, Ordering::Relaxed);
                let _ = self.new_txs.send(*txid);
                let _ = self.fresh_txs.send(*txid);
            }
            Err(e) => self.metrics.tx_refused(e.reason()),
        }
        result
    }

    fn admit_tx(&self, tx: Transaction) -> Result<Txid, MempoolError> {
        self.admit_tx_at(tx, now_ms())
    }

    /// [`Node::admit_tx`] for a transaction that arrived at `arrival_ms` (now, or its first
    /// arrival before a restart, so expiry still counts from then).
    fn admit_tx_at(&self, tx: Transaction, arrival_ms: u64) -> Result<Txid, MempoolError> {
        check_tx_structure(&self.params, &tx).map_err(MempoolError::Tx)?;
        let txid = tx.txid();
        // Not through `SigVerifier::verify`: its hits count what block validation skips.
        self.sig_cache.check_and_cache(&tx).map_err(|e| MempoolError::Tx(e.into()))?;
        let chain = self.chain.lock().expect("chain lock is never poisoned");
        let state = chain.state();
        let mut mp = self.mempool.lock().expect("mempool lock is never poisoned");
        mp.admit(tx, &state, arrival_ms, true)?;
        Ok(txid)
    }

    /// Writes the mempool to `<data dir>/mempool.dat` (see [`crate::mempool_file`]).
    /// Returns how many payments were written. The pool is copied under its lock and
    /// written outside it.
    pub fn save_mempool(&self) -> std::io::Result<usize> {
        let txs: Vec<SavedTx> = {
            let mp = self.mempool.lock().expect("mempool lock is never poisoned");
            mp.entries().map(|(tx, arrival)| (*tx, arrival)).collect()
        };
        mempool_file::save(&self.config.data_dir, self.params.genesis_id(), &txs)?;
        Ok(txs.len())
    }

    /// Re-admits saved payments through the normal admission: structure, signature (checked
    /// on every core first), chain, nonce, balance, fee and bounds, each against the current
    /// state. Those that arrived longer ago than the mempool's expiry are dropped unchecked.
    /// Blocking: call it from a blocking thread.
    pub fn restore_mempool(&self, saved: Vec<SavedTx>) -> RestoreReport {
        let now = now_ms();
        let expiry = self.config.mempool.expiry_ms;
        let mut report = RestoreReport::default();
        let (fresh, expired): (Vec<SavedTx>, Vec<SavedTx>) =
            saved.into_iter().partition(|(_, arrival)| now.saturating_sub(*arrival) < expiry);
        report.expired = expired.len();
        let txs: Vec<Transaction> = fresh.iter().map(|(tx, _)| *tx).collect();
        self.sig_cache.preverify(&txs);
        for (tx, arrival) in fresh {
            match self.admit_tx_at(tx, arrival.min(now)) {
                Ok(_) => report.admitted += 1,
                Err(e) => *report.refused.entry(e.reason()).or_default() += 1,
            }
        }
        report
    }

    /// Drops expired mempool transactions; run periodically.
    pub fn expire_mempool(&self) {
        let mut mp = self.mempool.lock().expect("mempool lock is never poisoned");
        let gone = mp.expire(now_ms());
        if !gone.is_empty() {
            tracing::debug!(count = gone.len(), "expired mempool transactions");
        }
    }

    /// Stops the index thread and flushes the store; called on clean shutdown.
    pub fn close(&self) {
        self.indexer.stop();
        let chain = self.chain.lock().expect("chain lock is never poisoned");
        if let Err(e) = chain.store().flush() {
            tracing::error!(error = %e, "flushing the store failed");
        }
    }
}
