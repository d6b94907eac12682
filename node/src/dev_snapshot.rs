//! `dev_snapshot` / `dev_revert`, as anvil's `evm_snapshot` / `evm_revert`: a snapshot is
//! the main tip at that moment; reverting to it takes every later main-chain block off
//! the chain through the undo records ([`crate::chain::ChainManager::invalidate`]), so the
//! state is the snapshot's again and the payments of the reverted blocks go back to the
//! mempool. Snapshots live in memory only (a restart forgets them); reverting consumes the
//! snapshot and every later one, as anvil does. At most [`MAX_SNAPSHOTS`] are kept (the
//! oldest go first).

use crate::chain::{ChainManager, ManualError};
use crate::node::Node;
use crate::store::BlockStatus;
use ember_core::BlockId;
use std::collections::VecDeque;

/// Most snapshots kept.
pub const MAX_SNAPSHOTS: usize = 1_000;

/// The snapshots taken so far: (id, main tip then).
#[derive(Default)]
pub struct Snapshots {
    next: u64,
    taken: VecDeque<(u64, BlockId)>,
}

/// Why a revert failed.
#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error(
        "no snapshot {0}: a revert uses up its snapshot and every later one, and only the \
         newest 1,000 are kept"
    )]
    Unknown(u64),
    #[error("the snapshot's block {0} is no longer known")]
    Gone(BlockId),
    #[error(
        "the snapshot's block {0} was invalidated by hand since; chain_reconsiderBlock it first"
    )]
    Invalidated(BlockId),
    #[error(transparent)]
    Chain(#[from] ManualError),
}

impl Node {
    /// Takes a snapshot of the main tip; returns its id.
    pub fn snapshot(&self) -> u64 {
        let tip = self.chain.lock().expect("chain lock is never poisoned").tip();
        let mut s = self.snapshots.lock().expect("never poisoned");
        s.next += 1;
        let id = s.next;
        s.taken.push_back((id, tip));
        if s.taken.len() > MAX_SNAPSHOTS {
            s.taken.pop_front();
        }
        id
    }

    /// Reverts to snapshot `id` (see the module doc); returns the height.
    pub fn revert(&self, id: u64) -> Result<u64, RevertError> {
        let target = {
            let mut s = self.snapshots.lock().expect("never poisoned");
            let at = s.taken.iter().position(|(i, _)| *i == id).ok_or(RevertError::Unknown(id))?;
            let target = s.taken[at].1;
            s.taken.truncate(at);
            target
        };
        self.change_chain(|chain| revert_to(chain, target))
    }
}

/// Takes main-chain blocks off until `target` is the tip: each round invalidates the main
/// block right above `target`'s line (above `target` itself, or above where its branch
/// leaves the main chain, when a side branch with more work took over). Each round marks
/// one more branch invalid, and `target`'s own branch is never touched, so it ends.
fn revert_to(chain: &mut ChainManager, target: BlockId) -> Result<u64, RevertError> {
    let entry = chain.entry(&target).ok_or(RevertError::Gone(target))?;
    if entry.status == BlockStatus::Invalid {
        return Err(RevertError::Invalidated(target));
    }
    let height = entry.header.height;
    while chain.tip() != target {
        let main = chain.is_main(&target).map_err(|e| ManualError::Chain(e.into()))?;
        let above = if main {
            chain.main_id_at(height + 1).map_err(|e| ManualError::Chain(e.into()))?
        } else {
            fork_child(chain, &target)
        };
        chain.invalidate(&above.ok_or(RevertError::Gone(target))?)?;
    }
    Ok(height)
}

/// The main-chain block right above the point where `target`'s branch leaves it.
fn fork_child(chain: &ChainManager, target: &BlockId) -> Option<BlockId> {
    let mut cur = *target;
    loop {
        let e = chain.entry(&cur)?;
        if chain.is_main(&cur).ok()? {
            return chain.main_id_at(e.header.height + 1).ok()?;
        }
        cur = e.header.prev;
    }
}
