//! The tips of every known branch, as Bitcoin Core's `getchaintips` lists them: the
//! main chain's tip (`active`) and the last block of every side branch, with how far the
//! branch reaches back to the main chain.

use super::ChainManager;
use crate::store::BlockStatus;
use ember_core::BlockId;
use ember_core::U256;

/// Most tips [`ChainManager::tips`] returns (newest first).
pub const MAX_TIPS: usize = 1_000;

/// One branch tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    pub id: BlockId,
    pub height: u64,
    /// Cumulative work of the branch up to this block.
    pub work: U256,
    /// Blocks from the fork point with the main chain up to this tip (0 for `active`).
    pub branch_len: u64,
    pub status: TipStatus,
}

/// What the node knows of a tip (Core's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TipStatus {
    /// The main chain's tip.
    Active,
    /// Every block of the branch stored and not known invalid; not the main chain.
    ValidFork,
    /// Headers only: some body of the branch is missing.
    HeadersOnly,
    /// The tip (or a block below it) failed validation.
    Invalid,
}

impl TipStatus {
    pub fn name(self) -> &'static str {
        match self {
            TipStatus::Active => "active",
            TipStatus::ValidFork => "valid-fork",
            TipStatus::HeadersOnly => "headers-only",
            TipStatus::Invalid => "invalid",
        }
    }
}

impl ChainManager {
    /// Every block with no known child, and the main tip, newest first, at most
    /// [`MAX_TIPS`]. Costs one pass over the header index (all known headers) and, per tip,
    /// a walk down to the main chain; meant for a developer's look at a devnet, not for a
    /// hot path.
    pub fn tips(&self) -> Vec<Tip> {
        let mut ids: Vec<(&BlockId, u64)> = self
            .index
            .iter()
            .filter(|(id, _)| self.children.get(*id).is_none_or(Vec::is_empty) || **id == self.tip)
            .map(|(id, e)| (id, e.header.height))
            .collect();
        ids.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_bytes().cmp(b.0.as_bytes())));
        ids.truncate(MAX_TIPS);
        ids.into_iter()
            .map(|(id, height)| {
                let e = &self.index[id];
                let (branch_len, status) = self.branch_of(id);
                Tip {
                    id: *id,
                    height,
                    work: e.work(),
                    branch_len,
                    status: status.unwrap_or(match e.status {
                        BlockStatus::Invalid => TipStatus::Invalid,
                        BlockStatus::HeaderOnly => TipStatus::HeadersOnly,
                        BlockStatus::BodyStored => TipStatus::ValidFork,
                    }),
                }
            })
            .collect()
    }

    /// How many blocks below `id` reach the main chain, and `Active` when `id` is the main
    /// tip; a stored branch with a header-only or invalid block below its tip takes that
    /// block's status.
    fn branch_of(&self, id: &BlockId) -> (u64, Option<TipStatus>) {
        if *id == self.tip {
            return (0, Some(TipStatus::Active));
        }
        let mut len = 0;
        let mut worst: Option<TipStatus> = None;
        let mut cur = *id;
        while let Some(e) = self.index.get(&cur) {
            if self.is_main(&cur).unwrap_or(false) {
                break;
            }
            match e.status {
                BlockStatus::Invalid => worst = Some(TipStatus::Invalid),
                BlockStatus::HeaderOnly if worst.is_none() => worst = Some(TipStatus::HeadersOnly),
                _ => {}
            }
            len += 1;
            cur = e.header.prev;
        }
        (len, worst)
    }
}
