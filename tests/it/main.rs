//! Ember's integration tests: real binaries on loopback, ports from the OS, temp dirs that
//! are removed at the end. One test binary, one module per area.

mod block_assembly;
mod cli_errors;
mod cli_help;
mod compact;
mod containers;
mod dashboard;
mod devnet_controls;
mod ember_cli;
mod hostile;
mod incoming_pending;
mod mempool_persist;
mod node_config;
mod node_crash;
mod node_rpc;
mod p2p;
mod p2p_secure;
mod ready;
mod rpc_json;
mod soak;
mod subscriptions;
mod support;
mod testnet;
mod wallet_cli;
mod wallet_incoming;
mod wallet_watch;
