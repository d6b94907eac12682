//! The orphan pool: blocks whose parent is not known yet, bounded in count and age.
//!
//! When the pool is full the oldest block is dropped; a block older than the age limit is
//! dropped when next seen. Peers that send floods of orphans therefore cost bounded memory.

use ember_core::{Block, BlockId};
use std::collections::{HashMap, VecDeque};

pub struct OrphanPool {
    blocks: HashMap<BlockId, (Block, u64)>,
    by_prev: HashMap<BlockId, Vec<BlockId>>,
    order: VecDeque<BlockId>,
    max: usize,
    max_age_ms: u64,
}

impl OrphanPool {
    pub fn new(max: usize, max_age_ms: u64) -> Self {
        OrphanPool {
            blocks: HashMap::new(),
            by_prev: HashMap::new(),
            order: VecDeque::new(),
            max,
            max_age_ms,
        }
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn insert(&mut self, block: Block, now_ms: u64) {
        let id = block.id();
        if self.blocks.contains_key(&id) {
            return;
        }
        while self.blocks.len() >= self.max {
            match self.order.pop_front() {
                Some(old) => self.remove(&old),
                None => break,
            }
        }
        self.by_prev.entry(block.header.prev).or_default().push(id);
        self.blocks.insert(id, (block, now_ms));
        self.order.push_back(id);
    }

    fn remove(&mut self, id: &BlockId) {
        if let Some((b, _)) = self.blocks.remove(id) {
            if let Some(v) = self.by_prev.get_mut(&b.header.prev) {
                v.retain(|x| x != id);
                if v.is_empty() {
                    self.by_prev.remove(&b.header.prev);
                }
            }
        }
    }

    /// Removes and returns the children of `parent` that are not too old.
    pub fn take_children(&mut self, parent: &BlockId, now_ms: u64) -> Vec<Block> {
        let ids = self.by_prev.remove(parent).unwrap_or_default();
        let mut out = Vec::new();
        for id in ids {
            if let Some((b, t)) = self.blocks.remove(&id) {
                self.order.retain(|x| *x != id);
                if now_ms.saturating_sub(t) <= self.max_age_ms {
                    out.push(b);
                }
            }
        }
        out
    }
}
