//! # ember-node: a full Ember node
//!
//! | module | what it owns |
//! |---|---|
//! | [`store`] | the `KvStore` trait, RocksDB and in-memory implementations, the typed `ChainStore` |
//! | [`chain`] | `ChainManager`: validation, fork choice, reorgs, orphans, signature cache, events |
//! | [`indexer`] | the tx and address indexes, following the main chain on their own thread |
//! | [`mempool`] | pending transactions: per-sender nonce queues, admission, eviction, templates |
//! | [`mempool_file`] | `mempool.dat`: the pending payments saved across restarts |
//! | [`atomic_file`] | whole-or-nothing file writes (temp file, fsync, rename) |
//! | [`miner`] | block templates and the proof-of-work search; devnet pacing |
//! | [`net`] | P2P: encrypted transport (Noise), node ids, wire format, handshake, relay, sync, bans |
//! | [`rpc`] | JSON-RPC 2.0 over HTTP, `/health`, `/metrics`, cookie auth |
//! | [`node`] | `Node`: the running pieces wired together |
//! | [`tip`] | the tip snapshot readers use instead of the chain lock |
//! | [`config`] | flags, environment and TOML config resolved into `NodeConfig` |
//! | [`metrics`] | counters for `/metrics` |
//!
//! Tasks and channels: the chain manager publishes a `ChainEvent` on every tip change; the
//! node applies it to the mempool while still holding the chain lock (so a template never
//! sees a stale mempool), then re-broadcasts it on `Node::events` for the RPC and network.
//! The miner runs on blocking threads; RPC handlers run on the tokio runtime and move CPU
//! work (signature checks, mining) to `spawn_blocking`.

/// `eprintln!` that ignores a failed write instead of panicking: with stderr closed (e.g.
/// `2>&1 | head -1` after `head` exits) a diagnostic nobody can read is not worth a crash.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that ignores a failed write (see [`errln!`]).
#[macro_export]
macro_rules! errout {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
        let _ = std::io::stderr().flush();
    }};
}

pub mod atomic_file;
pub mod block_notify;
pub mod chain;
pub mod config;
pub mod dev_snapshot;
pub mod genesis_cmd;
pub mod identity;
pub mod indexer;
pub mod mempool;
pub mod mempool_file;
pub mod metrics;
pub mod miner;
pub mod mining_mode;
pub mod net;
pub mod node;
pub mod rpc;
pub mod store;
pub mod tip;

pub use node::Node;
