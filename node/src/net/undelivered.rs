//! Bodies that were asked for and never came. A valid header proves that *a* block exists,
//! not that anyone will send its body; a peer that sends a header and then withholds the
//! body (or answers `NotFound`) must not keep the node "syncing" (and `GET /ready` at 503)
//! for as long as it likes. No I/O, no clock of its own.
//!
//! The rule: a header-only block whose body request stalled, or was answered `NotFound`,
//! by a peer is *undelivered*, charged to the peer's address group ([`claim_group`]). It
//! counts towards the sync target (and the height a peer has proven, for `GET /ready`)
//! only while its body is in flight with a peer of a group that has not failed to deliver
//! it: reconnecting does not make it count again (the connection may still be asked, as
//! an honest but slow peer must be, but its request holds nothing back). Once
//! [`MAX_GROUPS_PER_BLOCK`] groups failed to deliver it, it never counts again: a party
//! with many addresses holds readiness back by at most that many stall timeouts (80 s)
//! per header chain it makes (each new one needs more work than the last). Blocks at or
//! below the tip no longer matter and are dropped. A body no connected peer can be asked
//! for is charged to a group of its own ("nobody"; see `sync`'s `mark_unrequestable`).
//!
//! Bounds: at most [`MAX_BLOCKS`] blocks (the lowest heights are kept: they are what caps
//! the target), each with at most [`MAX_GROUPS_PER_BLOCK`] groups.
//!
//! [`claim_group`]: super::claims::claim_group

use ember_core::BlockId;
use std::collections::{HashMap, HashSet};

/// Undelivered blocks remembered at most.
pub const MAX_BLOCKS: usize = 1024;
/// Groups that failed to deliver a block before it stops counting for good.
pub const MAX_GROUPS_PER_BLOCK: usize = 8;

#[derive(Debug)]
struct Entry {
    height: u64,
    groups: Vec<Vec<u8>>,
}

/// Undelivered header-only blocks and who failed to deliver them.
#[derive(Debug, Default)]
pub struct Undelivered {
    blocks: HashMap<BlockId, Entry>,
}

impl Undelivered {
    /// A peer of `group` did not deliver `block` (at `height`): its request stalled, or it
    /// answered `NotFound`.
    pub fn failed(&mut self, block: BlockId, height: u64, group: Vec<u8>) {
        if !self.blocks.contains_key(&block) && self.blocks.len() >= MAX_BLOCKS {
            let highest =
                self.blocks.iter().max_by_key(|(_, e)| e.height).map(|(b, e)| (*b, e.height));
            match highest {
                Some((b, h)) if h > height => {
                    self.blocks.remove(&b);
                }
                // Every block held is lower: this one would not lower the cap.
                _ => return,
            }
        }
        let e = self.blocks.entry(block).or_insert(Entry { height, groups: Vec::new() });
        if !e.groups.contains(&group) && e.groups.len() < MAX_GROUPS_PER_BLOCK {
            e.groups.push(group);
        }
    }

    /// Whether `group` already failed to deliver `block`.
    pub fn failed_by(&self, block: &BlockId, group: &[u8]) -> bool {
        self.blocks.get(block).is_some_and(|e| e.groups.iter().any(|g| g == group))
    }

    /// The block arrived.
    pub fn delivered(&mut self, block: &BlockId) {
        self.blocks.remove(block);
    }

    /// Forgets blocks at or below `tip_height`.
    pub fn prune(&mut self, tip_height: u64) {
        self.blocks.retain(|_, e| e.height > tip_height);
    }

    /// The highest height the sync target may count: one below the lowest undelivered
    /// block that is not in flight (`in_flight`: every request now outstanding, with the
    /// group of the peer asked) with a group that has not failed to deliver it, or that
    /// [`MAX_GROUPS_PER_BLOCK`] groups failed to deliver; `u64::MAX` when none caps it.
    pub fn cap<'a>(&self, in_flight: impl IntoIterator<Item = (&'a BlockId, &'a [u8])>) -> u64 {
        let fetching: HashSet<BlockId> = in_flight
            .into_iter()
            .filter(|(b, g)| self.blocks.contains_key(b) && !self.failed_by(b, g))
            .map(|(b, _)| *b)
            .collect();
        self.blocks
            .iter()
            .filter(|(b, e)| e.groups.len() >= MAX_GROUPS_PER_BLOCK || !fetching.contains(b))
            .map(|(_, e)| e.height.saturating_sub(1))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Blocks remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.blocks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Vec<(&'static BlockId, &'static [u8])> {
        Vec::new()
    }

    fn id(n: u32) -> BlockId {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_le_bytes());
        BlockId::from_bytes(b)
    }

    #[test]
    fn an_undelivered_block_caps_the_target_unless_another_peer_is_fetching_it() {
        let mut u = Undelivered::default();
        assert_eq!(u.cap(none()), u64::MAX);
        u.failed(id(1), 11, b"a".to_vec());
        assert_eq!(u.cap(none()), 10, "nobody fetching it: the target stops below it");
        let (one, a, b) = (id(1), b"a".to_vec(), b"b".to_vec());
        assert_eq!(u.cap([(&one, &b[..])]), u64::MAX, "in flight with another group: it counts");
        assert_eq!(u.cap([(&one, &a[..])]), 10, "asked again of the group that withheld it");
        assert!(u.failed_by(&id(1), b"a") && !u.failed_by(&id(1), b"b"));
        // The lowest undelivered block caps.
        u.failed(id(2), 15, b"b".to_vec());
        assert_eq!(u.cap(none()), 10);
        u.delivered(&id(1));
        assert_eq!(u.cap(none()), 14);
        u.prune(15);
        assert_eq!((u.len(), u.cap(none())), (0, u64::MAX));
    }

    #[test]
    fn enough_groups_failing_ends_the_blocks_count_for_good() {
        let mut u = Undelivered::default();
        for g in 0..MAX_GROUPS_PER_BLOCK as u8 - 1 {
            u.failed(id(1), 5, vec![g]);
            // The same group twice is one.
            u.failed(id(1), 5, vec![g]);
        }
        let (one, fresh) = (id(1), vec![250u8]);
        assert_eq!(u.cap([(&one, &fresh[..])]), u64::MAX, "a new group fetching it counts");
        u.failed(id(1), 5, vec![200]);
        let never = u.cap([(&one, &fresh[..])]);
        assert_eq!(never, 4, "{MAX_GROUPS_PER_BLOCK} groups failed: never again");
        // Further groups are not stored (bounded), and still not asked.
        u.failed(id(1), 5, vec![201]);
        assert!(!u.failed_by(&id(1), &[201]));
    }

    #[test]
    fn bounded_keeping_the_lowest_blocks() {
        let mut u = Undelivered::default();
        for n in 0..MAX_BLOCKS as u32 {
            u.failed(id(n), 100 + n as u64, vec![1]);
        }
        // Higher than all: not kept.
        u.failed(id(9_999), 10_000, vec![1]);
        assert_eq!(u.len(), MAX_BLOCKS);
        assert!(!u.failed_by(&id(9_999), &[1]));
        // Lower: replaces the highest.
        u.failed(id(10_000), 50, vec![1]);
        assert_eq!(u.len(), MAX_BLOCKS);
        assert_eq!(u.cap(none()), 49);
        assert!(!u.failed_by(&id(MAX_BLOCKS as u32 - 1), &[1]));
    }
}
