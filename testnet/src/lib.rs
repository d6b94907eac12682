//! # ember-testnet: local multi-node Ember networks
//!
//! The library is the harness the integration tests use; the `ember-testnet` binary is the
//! command-line tool built on it.
//!
//! | module | what it owns |
//! |---|---|
//! | [`process`] | one real `ember-node` process: start, stop, kill, restart, RPC client |
//! | [`network`] | a fresh devnet of N processes linked in a topology; waits for agreement |

pub mod network;
pub mod process;

pub use network::{Testnet, TestnetOptions, Topology};

pub use process::{binary, wait_for, NodeProcess};
