//! # ember-testnet: local multi-node Ember networks
//!
//! The library is the harness the integration tests use; the `ember-testnet` binary is the
//! command-line tool built on it.
//!
//! | module | what it owns |
//! |---|---|
//! | [`export`] | `ember-testnet export compose/k8s`: the same network as files for Docker Compose or Kubernetes |
//! | [`engine`] | attaching to an exported compose network: status, faults, dashboard through docker |
//! | [`bench`] | `ember-testnet bench`: propagation, throughput, sync, memory vs the machine |
//! | [`hostile`] | a real peer under a test's control (handshake, then any message or none), attack material, the attack runner |
//! | [`process`] | one real `ember-node` process: start, stop, kill, restart, RPC client |
//! | [`proxy`] | a loopback TCP proxy per link: partition, latency, loss (as delay) |
//! | [`soak`] | payments under random faults, with the money invariants checked |
//! | [`network`] | a fresh devnet of N processes linked through proxies; faults; waits |
//! | [`monitor`] | polls the nodes: heights, tips, peers, block tree, propagation times |
//! | [`supervisor`] | owns a running testnet: a poller and a loopback HTTP endpoint |
//! | [`state`] | `<dir>/testnet.json`, how the CLI finds a running supervisor |
//! | [`http`] | the tiny std HTTP server and client the supervisor and CLI use |
//!
//! Threads, not async: one accept thread per proxy and two per relayed connection
//! direction, one poller, one thread per HTTP request. A testnet has tens of links at most.
//! The one exception is [`hostile`]: its peer speaks the node's own async transport, on a
//! current-thread runtime it owns and runs only inside its blocking calls.

pub mod attack;
pub mod bench;
pub mod engine;
pub mod export;
pub mod hostile;
pub mod http;
pub mod monitor;
pub mod network;
pub mod process;
pub mod proxy;
pub mod soak;
pub mod state;
pub mod supervisor;

pub use network::{Testnet, TestnetOptions, Topology};
pub use proxy::Faults;
pub use supervisor::{Control, Supervisor};

pub use process::{binary, wait_for, NodeProcess};
