//! Invalidating and reconsidering a block by hand, as Bitcoin Core's `invalidateblock` and
//! `reconsiderblock`: to rehearse a reorganisation on one node.
//!
//! `invalidate` takes the block (and every descendant) off the main chain if it is on it,
//! marks them invalid (kept in the store, so it survives a restart) and moves to the best
//! remaining branch. `reconsider` clears the mark from the block, its descendants and its
//! ancestors (as Core's `ResetBlockFailureFlags`): one whose body is stored is valid again
//! (a body is only stored after the header and the body's structure passed; a block that
//! fails when connected again is marked again), one whose body never came is header-only
//! again if its header passes the contextual checks against its parent (the clock left
//! out: "too far in the future" is never a recorded fault; it may have failed the others
//! itself; it gets its own work back), so its body is asked for as the sync
//! goes on; a block under a parent still invalid stays invalid. Then it moves to the best
//! branch. Headers that arrive below a block invalidated
//! by hand are refused without being recorded, so they are welcome once it is
//! reconsidered (the RPC then asks every peer for headers again).
//!
//! The blocks invalidated by hand are kept (store meta `manual_invalid`): a peer that
//! sends one of them, or a descendant, gets [`ChainError::InvalidatedByHand`] and is not
//! punished; it did nothing wrong.

use super::{ChainError, ChainManager};
use crate::store::{Batch, BlockStatus};
use ember_core::validate::check_header_context;
use ember_core::BlockId;
use std::sync::Arc;

/// Why a block could not be invalidated or reconsidered.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    #[error("block {0} is not known to this node")]
    Unknown(BlockId),
    #[error("the genesis block cannot be invalidated")]
    Genesis,
    #[error(transparent)]
    Chain(#[from] ChainError),
}

impl ChainManager {
    /// The error for a block known invalid: [`ChainError::InvalidatedByHand`] when it is,
    /// or descends from, a block invalidated by hand (a walk down its invalid ancestors).
    pub(super) fn known_invalid(&self, id: BlockId) -> ChainError {
        let mut cur = id;
        while let Some(e) = self.index.get(&cur) {
            if self.manual.contains(&cur) {
                return ChainError::InvalidatedByHand(id);
            }
            if e.status != BlockStatus::Invalid || e.header.height == 0 {
                break;
            }
            cur = e.header.prev;
        }
        ChainError::KnownInvalid(id)
    }

    /// A block invalidated by hand at `height` (the lowest id when several are), so that
    /// `chain_reconsiderBlock HEIGHT` finds what `chain_invalidateBlock HEIGHT` took off.
    pub fn invalidated_at(&self, height: u64) -> Option<BlockId> {
        self.manual
            .iter()
            .filter(|id| self.index.get(*id).is_some_and(|e| e.header.height == height))
            .min()
            .copied()
    }

    fn save_manual(&self) -> Result<(), ChainError> {
        let mut ids: Vec<BlockId> = self.manual.iter().copied().collect();
        ids.sort();
        let mut b = Batch::new();
        b.set_manual_invalid(&ids);
        Ok(self.store.write(b)?)
    }

    /// Marks `id` and its descendants invalid and leaves their branch (see the module doc).
    /// Returns the new height.
    pub fn invalidate(&mut self, id: &BlockId) -> Result<u64, ManualError> {
        let Some(entry) = self.index.get(id) else { return Err(ManualError::Unknown(*id)) };
        if entry.header.height == 0 {
            return Err(ManualError::Genesis);
        }
        let start_tip = self.tip;
        let mut disconnected = Vec::new();
        while self.is_main(id).map_err(ChainError::from)? {
            disconnected.push(Arc::new(self.disconnect_tip()?));
        }
        self.mark_invalid_tree(id).map_err(ChainError::from)?;
        self.manual.insert(*id);
        self.save_manual()?;
        tracing::info!(block = %id, disconnected = disconnected.len(), "block invalidated by hand");
        self.activate_from(None, start_tip, disconnected)?;
        Ok(self.height())
    }

    /// Clears the invalid mark of `id`, its descendants and its ancestors (back to valid
    /// where the body is stored, to header-only where it is not), then moves to the best
    /// branch. Returns the new height.
    pub fn reconsider(&mut self, id: &BlockId) -> Result<u64, ManualError> {
        if !self.index.contains_key(id) {
            return Err(ManualError::Unknown(*id));
        }
        let mut todo: Vec<BlockId> = Vec::new();
        let mut stack = vec![*id];
        while let Some(cur) = stack.pop() {
            todo.push(cur);
            stack.extend(self.children.get(&cur).into_iter().flatten().copied());
        }
        let mut cur = self.index[id].header.prev;
        while let Some(e) = self.index.get(&cur) {
            if e.status == BlockStatus::Invalid {
                todo.push(cur);
            }
            if e.header.height == 0 {
                break;
            }
            cur = e.header.prev;
        }
        // Parents first: each block is judged against its parent as revived.
        todo.sort_by_key(|cur| self.index.get(cur).map_or(0, |e| e.header.height));
        let mut b = Batch::new();
        let mut cleared = 0;
        for cur in todo {
            let Some(mut e) = self.index.get(&cur).copied() else { continue };
            let parent = self.index.get(&e.header.prev).copied();
            if e.status != BlockStatus::Invalid
                || (e.header.height > 0 && parent.is_none_or(|p| p.status == BlockStatus::Invalid))
            {
                continue;
            }
            if self.store.body(&cur).map_err(ChainError::from)?.is_some() {
                e.status = BlockStatus::BodyStored;
            } else {
                // A header whose body never came may have failed its own checks (recorded
                // with its parent's work): back only if it passes them now, with its work.
                // Checked with the clock left out: a time too far ahead of our clock now is
                // no fault of the header (never recorded invalid for that; the clock stepped
                // back), and it must not hide a rule checked after it (the target).
                let parent = parent.expect("checked above");
                let times = self.recent_times(&e.header.prev);
                if check_header_context(&self.params, &e.header, &parent.header, &times, u64::MAX)
                    .is_err()
                {
                    continue;
                }
                e.work = super::work_bytes(parent.work() + super::block_work(&e.header));
                e.status = BlockStatus::HeaderOnly;
            }
            self.index.insert(cur, e);
            b.put_header(&cur, &e);
            cleared += 1;
        }
        self.store.write(b).map_err(ChainError::from)?;
        self.manual.retain(|m| self.index.get(m).is_some_and(|e| e.status == BlockStatus::Invalid));
        self.save_manual()?;
        self.best_header = super::best_header_of(&self.index);
        tracing::info!(block = %id, cleared, "block reconsidered by hand");
        self.activate_best_chain(None)?;
        Ok(self.height())
    }
}
