//! Storage: a small key-value trait with column families and atomic batches, a RocksDB
//! implementation for the node and an in-memory one for unit tests, and [`ChainStore`],
//! the typed layer the chain manager uses.
//!
//! Everything that changes the chain goes through one [`Batch`], written atomically: a
//! block connected or disconnected moves the tip pointer in the same batch as the account
//! states, undo record and indexes, so after a crash the store holds either the old tip or
//! the new one, never a mixture (RocksDB's WAL makes the batch atomic; no fsync per batch).

mod chain_store;
mod mem;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use chain_store::{
    Batch, BlockStatus, ChainStore, HeaderEntry, HistoryItem, HistoryPage, StateSummary,
    TxLocation, TxLookup, SCHEMA_VERSION,
};
pub use mem::MemKv;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksKv;

/// The column families (DESIGN §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    /// BlockId -> HeaderEntry (header, height, cumulative work, status).
    Headers,
    /// BlockId -> encoded transactions of the block.
    Bodies,
    /// height (u64 big-endian) -> BlockId of the main chain.
    MainChain,
    /// Address -> Account, the state at the tip. Empty accounts are absent.
    Accounts,
    /// BlockId -> Undo: the previous states of the accounts the block changed.
    Undo,
    /// Txid -> TxLocation of confirmed transactions on the main chain.
    TxIndex,
    /// Address || height (BE) || position (BE) -> Txid, for wallet history.
    AddrIndex,
    /// Address -> how many `AddrIndex` entries it has (i64 LE), a counter: batches add to
    /// it ([`Change::Add`], a RocksDB merge) and never read it first.
    AddrCount,
    /// Peer address text -> peer record (the P2P address book).
    Peers,
    /// Named values: schema version, network, genesis id, tip.
    Meta,
}

impl Column {
    pub const ALL: [Column; 10] = [
        Column::Headers,
        Column::Bodies,
        Column::MainChain,
        Column::Accounts,
        Column::Undo,
        Column::TxIndex,
        Column::AddrIndex,
        Column::AddrCount,
        Column::Peers,
        Column::Meta,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::Headers => "headers",
            Column::Bodies => "bodies",
            Column::MainChain => "main_chain",
            Column::Accounts => "accounts",
            Column::Undo => "undo",
            Column::TxIndex => "tx_index",
            Column::AddrIndex => "addr_index",
            Column::AddrCount => "addr_count",
            Column::Peers => "peers",
            Column::Meta => "meta",
        }
    }
}

/// Why the store failed. Any of these is fatal for the node except where noted.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(String),
    /// A stored value does not decode: the data dir is damaged.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The data dir holds something that is not an Ember store of this network.
    #[error("{0}")]
    Foreign(String),
    #[error(
        "store schema version {found} is not supported (this node uses {expected}); \
             use a fresh --data-dir or a matching ember-node version"
    )]
    SchemaMismatch { found: u32, expected: u32 },
    /// Another process holds the database's lock: another node runs on this data dir.
    #[error("another ember-node is using this data dir ({})", .0.display())]
    InUse(std::path::PathBuf),
}

/// What one operation of a batch does to its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put(Vec<u8>),
    Delete,
    /// Adds to the counter at the key (i64 little-endian, absent = 0) without reading it:
    /// only for [`Column::AddrCount`].
    Add(i64),
}

impl From<Option<Vec<u8>>> for Change {
    /// `Some` puts, `None` deletes.
    fn from(v: Option<Vec<u8>>) -> Change {
        v.map_or(Change::Delete, Change::Put)
    }
}

/// One write in a batch.
pub type Op = (Column, Vec<u8>, Change);

/// Reads, from the live store or from a point-in-time snapshot of it.
pub trait KvRead {
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Calls `f` on every entry whose key starts with `prefix`, in ascending key order,
    /// until `f` returns false.
    fn scan_prefix(
        &self,
        col: Column,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;
    /// [`KvRead::scan_prefix`] in descending key order: the first entry costs one seek.
    fn scan_prefix_rev(
        &self,
        col: Column,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;
}

/// A key-value store with column families and atomic batches.
pub trait KvStore: KvRead + Send + Sync {
    /// Writes all operations atomically, in order.
    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError>;
    /// Runs `f` on a snapshot: every read of `f` sees the store as it was when the snapshot
    /// was taken, whatever batches are written meanwhile (a RocksDB snapshot; no lock).
    fn with_snapshot(
        &self,
        f: &mut dyn FnMut(&dyn KvRead) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Flushes memtables to disk (on clean shutdown).
    fn flush(&self) -> Result<(), StoreError>;
}

/// A counter of [`Column::AddrCount`] with `n` added: the stored value is an i64
/// little-endian (a malformed one counts as 0); wrapping, as a sum of ±1 steps never nears
/// the limit.
pub(crate) fn add_counter(stored: &[u8], n: i64) -> [u8; 8] {
    counter_value(stored).wrapping_add(n).to_le_bytes()
}

/// The value of a counter as stored (0 when absent or malformed).
pub(crate) fn counter_value(stored: &[u8]) -> i64 {
    stored.try_into().map(i64::from_le_bytes).unwrap_or(0)
}
