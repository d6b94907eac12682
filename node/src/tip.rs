//! The tip snapshot: what most readers need of the chain (height, tip id, cumulative work,
//! headers known), published by the writer after every change so that readers (`node_info`,
//! `GET /health`, `GET /ready`) never wait for the chain lock, which a block being connected
//! holds for its whole validation.
//!
//! The writer publishes while it still holds the chain lock, so snapshots appear in the
//! order the chain went through them; a reader sees the last one, never a half-made one.

use crate::chain::ChainManager;
use ember_core::{BlockId, U256};
use tokio::sync::watch;

/// The chain's tip as of its last change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TipSnapshot {
    pub height: u64,
    pub tip: BlockId,
    /// Cumulative work of the main chain up to the tip.
    pub work: U256,
    /// Headers in the block index (main chain, side branches, headers-only).
    pub known_headers: usize,
}

impl TipSnapshot {
    /// Reads the figures off the chain (the caller holds the chain lock).
    pub fn of(chain: &ChainManager) -> TipSnapshot {
        TipSnapshot {
            height: chain.height(),
            tip: chain.tip(),
            work: chain.tip_work(),
            known_headers: chain.known_headers(),
        }
    }
}

/// The publishing side and the latest snapshot.
#[derive(Debug)]
pub struct TipCell(watch::Sender<TipSnapshot>);

impl TipCell {
    pub fn new(chain: &ChainManager) -> TipCell {
        TipCell(watch::Sender::new(TipSnapshot::of(chain)))
    }

    /// Publishes the chain as it is now (call with the chain lock held).
    pub fn publish(&self, chain: &ChainManager) {
        let now = TipSnapshot::of(chain);
        self.0.send_if_modified(|s| std::mem::replace(s, now) != now);
    }

    /// A receiver told of every snapshot published from now on.
    pub fn subscribe(&self) -> watch::Receiver<TipSnapshot> {
        self.0.subscribe()
    }

    /// The last published snapshot (a copy; no lock but the cell's own, held for the copy).
    pub fn get(&self) -> TipSnapshot {
        *self.0.borrow()
    }
}
