//! # ember-core: what a valid Ember chain is
//!
//! Consensus types and rules, with no I/O and no async: everything here is a pure function
//! of its inputs, so every node computes the same answers.
//!
//! | module | what it owns |
//! |---|---|
//! | [`encoding`] | the one canonical bincode 2 configuration; decoding with limits |
//! | [`hash`] | `Hash`, `BlockId`, `Txid`: sha256 / sha256d, hex text form |
//! | [`amount`] | `Amount`: checked u64 base units, decimal coin text |
//! | [`address`] | `Address`: ed25519 key, bech32m text with a network prefix |
//! | [`keys`] | signing keys and the strict ed25519 consensus check |
//! | [`tx`] | `TxBody`, `Transaction`: txid, domain-separated signing digest |
//! | [`block`] | `BlockHeader`, `Block`, merkle root, block id |
//! | [`pow`] | compact targets, work, ASERT retarget |
//! | [`params`] | `ChainParams` per network, genesis specs, subsidy |
//! | [`state`] | `Account`, `StateView`, `MemState`, undo records, state digest |
//! | [`validate`] | structural, contextual and stateful validation; refusal reasons |
//!
//! The node calls [`validate::check_header`] and [`validate::check_header_context`] as
//! headers arrive, [`validate::check_block_body`] when the body does, and
//! [`validate::apply_block`] when connecting it to the tip, storing the returned undo
//! record so a reorg can revert it.

pub mod address;
pub mod amount;
pub mod block;
pub mod encoding;
pub mod hash;
pub mod keys;
pub mod params;
pub mod pow;
pub mod state;
pub mod testkit;
pub mod tx;
pub mod validate;

pub use address::{Address, AddressError};
pub use amount::Amount;
pub use block::{Block, BlockHeader};
pub use hash::{BlockId, Digest32, Hash, Txid};
pub use keys::{Keypair, Signature};
pub use params::{ChainParams, GenesisSpec, Network};
pub use primitive_types::U256;
pub use state::{Account, MemState, StateDelta, StateView, Undo};
pub use tx::{Transaction, TxBody};
pub use validate::{BlockAssembler, BlockError, TxError};
