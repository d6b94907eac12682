//! The orphan pool: blocks whose parent is not known yet, bounded in count and age.
//!
//! When the pool is full (in count or in bytes) the oldest blocks are dropped; a block older
//! than the age limit is dropped when next seen. Peers that send floods of orphans
//! therefore cost bounded memory: at most [`MAX_ORPHAN_BYTES`] of blocks, all peers together.

use ember_core::{Block, BlockId};
use std::collections::{HashMap, VecDeque};

/// Most bytes of orphan blocks held (encoded size: 128-byte header, 184 bytes a payment).
pub const MAX_ORPHAN_BYTES: usize = 32 * 1024 * 1024;

fn size_of(block: &Block) -> usize {
    128 + 8 + block.txs.len() * 184
}

pub struct OrphanPool {
    blocks: HashMap<BlockId, (Block, u64)>,
    by_prev: HashMap<BlockId, Vec<BlockId>>,
    order: VecDeque<BlockId>,
    max: usize,
    max_age_ms: u64,
    bytes: usize,
}

impl OrphanPool {
    pub fn new(max: usize, max_age_ms: u64) -> Self {
        OrphanPool {
            blocks: HashMap::new(),
            by_prev: HashMap::new(),
            order: VecDeque::new(),
            max,
            max_age_ms,
            bytes: 0,
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
        let cost = size_of(&block);
        while self.blocks.len() >= self.max || self.bytes + cost > MAX_ORPHAN_BYTES {
            match self.order.pop_front() {
                Some(old) => self.remove(&old),
                None => break,
            }
        }
        self.by_prev.entry(block.header.prev).or_default().push(id);
        self.bytes += cost;
        self.blocks.insert(id, (block, now_ms));
        self.order.push_back(id);
    }

    fn remove(&mut self, id: &BlockId) {
        if let Some((b, _)) = self.blocks.remove(id) {
            self.bytes -= size_of(&b);
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
                self.bytes -= size_of(&b);
                self.order.retain(|x| *x != id);
                if now_ms.saturating_sub(t) <= self.max_age_ms {
                    out.push(b);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::testkit;

    #[test]
    fn the_pool_is_bounded_in_bytes_as_well_as_count() {
        let params = ember_core::ChainParams::devnet();
        let keys = testkit::keys(2);
        let tx = testkit::pay(&params, &keys[0], keys[1].address(), 1, 1, 0);
        let genesis = params.genesis().header;
        let mut pool = OrphanPool::new(256, 60_000);
        // 200 blocks of 1,000 payments (about 184 KB each, 37 MB in all) with unknown parents.
        for i in 0..200 {
            let mut b = testkit::child_block(&params, &genesis, vec![], keys[0].address(), i);
            b.txs = vec![tx; 1_000];
            pool.insert(b, 0);
        }
        assert!(pool.bytes <= MAX_ORPHAN_BYTES, "{} bytes held", pool.bytes);
        assert_eq!(pool.len(), MAX_ORPHAN_BYTES / (128 + 8 + 1_000 * 184));
        let held: usize = pool.blocks.values().map(|(b, _)| size_of(b)).sum();
        assert_eq!(held, pool.bytes, "the byte count follows what is held");
        // Taking children gives their bytes back.
        let children = pool.take_children(&genesis.id(), 0);
        assert_eq!(children.len(), MAX_ORPHAN_BYTES / (128 + 8 + 1_000 * 184));
        assert_eq!(pool.bytes, 0);
    }
}
