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

pub use chain_store::{Batch, BlockStatus, ChainStore, HeaderEntry, TxLocation, SCHEMA_VERSION};
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
    /// Peer address text -> peer record (the P2P address book).
    Peers,
    /// Named values: schema version, network, genesis id, tip.
    Meta,
}

impl Column {
    pub const ALL: [Column; 9] = [
        Column::Headers,
        Column::Bodies,
        Column::MainChain,
        Column::Accounts,
        Column::Undo,
        Column::TxIndex,
        Column::AddrIndex,
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

/// One write in a batch: `None` deletes.
pub type Op = (Column, Vec<u8>, Option<Vec<u8>>);

/// A key-value store with column families and atomic batches.
pub trait KvStore: Send + Sync {
    fn get(&self, col: Column, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes all operations atomically, in order.
    fn write(&self, ops: Vec<Op>) -> Result<(), StoreError>;
    /// Calls `f` on every entry whose key starts with `prefix`, in ascending key order,
    /// until `f` returns false.
    fn scan_prefix(
        &self,
        col: Column,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;
    /// Flushes memtables to disk (on clean shutdown).
    fn flush(&self) -> Result<(), StoreError>;
}
