//! Headers presync: a branch's headers are stored only once the branch is shown to carry
//! enough work (Bitcoin Core's headers presync, `headerssync.cpp`, simplified).
//!
//! A `Headers` message that attaches to a known header is stored at once when the branch
//! it ends has more work than the best header we know (the tip, or a better header chain
//! being synced): only a branch that could become the best chain is worth holding. A
//! branch with less work (a stale fork, or one of endless side branches that free devnet
//! proof of work can make) is not stored; if it is extended past the best, its headers are
//! asked for again then. While the peer keeps sending full messages of a branch that has
//! not yet passed the best, we only *count* it: its cumulative work, its last header, and
//! one salted commitment bit per header. If it passes the best, we ask for it again from
//! the fork point and store it as it comes, checking every header against its commitment
//! bit, so a peer cannot show one chain and then deliver another. A branch that ends
//! without passing the best is forgotten: nothing of it was stored.
//!
//! Bounds: a presync holds [`MAX_PRESYNC_HEADERS`] bits at most (a longer one is
//! abandoned), i.e. 512 KiB per peer; the headers a peer can make the node store belong to
//! branches with at least the threshold's work, which costs real proof of work.

use crate::chain::block_work;
#[cfg(test)]
use crate::chain::{anti_dos_threshold as threshold, ANTI_DOS_BLOCKS};
use ember_core::{BlockHeader, BlockId, U256};

/// Longest presync, in headers.
pub const MAX_PRESYNC_HEADERS: usize = 4 * 1024 * 1024;

/// What to do with a batch of headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Store the batch (its branch passes the best header, or it is a verified redownload).
    Store,
    /// Not stored; ask for the headers after this one (presync continues).
    Continue(BlockId),
    /// The branch passed the best header in presync: ask again from this known header, and
    /// store what comes.
    Redownload(BlockId),
    /// The branch ended without passing the best header (or grew too long): nothing stored.
    Drop,
    /// The redownloaded headers are not those of the presync: the peer's fault.
    Changed,
}

/// One peer's presync of one branch.
#[derive(Debug, Clone)]
pub struct Presync {
    /// The known header the branch forks from.
    base: BlockId,
    salt: [u8; 16],
    /// One commitment bit per header after `base`.
    bits: Vec<u8>,
    count: usize,
    last: BlockId,
    work: U256,
    /// During the redownload: how many headers were checked and stored so far.
    redownloaded: Option<usize>,
}

fn bit(salt: &[u8; 16], id: &BlockId) -> bool {
    use sha2::{Digest, Sha256};
    let h = Sha256::new().chain_update(salt).chain_update(id.as_bytes()).finalize();
    h[0] & 1 == 1
}

impl Presync {
    /// Starts counting a branch forking from `base` (whose cumulative work is `base_work`).
    pub fn start(base: BlockId, base_work: U256) -> Presync {
        Presync {
            base,
            salt: rand::random(),
            bits: Vec::new(),
            count: 0,
            last: base,
            work: base_work,
            redownloaded: None,
        }
    }

    /// The last header counted: a batch continuing the presync starts after it.
    pub fn last(&self) -> BlockId {
        if self.redownloaded.is_some() {
            self.base
        } else {
            self.last
        }
    }

    pub fn is_redownloading(&self) -> bool {
        self.redownloaded.is_some()
    }

    /// Headers counted (memory held: `count / 8` bytes).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Feeds a batch that continues this presync (it starts right after [`Presync::last`]
    /// in presync, or is the next part of the redownload). `full` is whether the batch had
    /// the most headers a message may carry (more may follow). `headers` must chain. The
    /// branch is worth storing once its work exceeds `best` (the best header's work).
    pub fn feed(&mut self, headers: &[BlockHeader], full: bool, best: U256) -> Verdict {
        if let Some(done) = self.redownloaded.as_mut() {
            for (i, h) in headers.iter().enumerate() {
                let n = *done + i;
                if n >= self.count {
                    // Past what was presynced: the branch already passed the best.
                    break;
                }
                if bit(&self.salt, &h.id()) != (self.bits[n / 8] >> (n % 8) & 1 == 1) {
                    return Verdict::Changed;
                }
            }
            *done += headers.len();
            return Verdict::Store;
        }
        for h in headers {
            if self.count >= MAX_PRESYNC_HEADERS {
                return Verdict::Drop;
            }
            if self.count % 8 == 0 {
                self.bits.push(0);
            }
            if bit(&self.salt, &h.id()) {
                self.bits[self.count / 8] |= 1 << (self.count % 8);
            }
            self.count += 1;
            self.work = self.work.saturating_add(block_work(h));
            self.last = h.id();
        }
        if self.work > best {
            self.redownloaded = Some(0);
            Verdict::Redownload(self.base)
        } else if full {
            Verdict::Continue(self.last)
        } else {
            Verdict::Drop
        }
    }

    /// Whether the redownload has delivered every presynced header.
    pub fn redownload_done(&self) -> bool {
        self.redownloaded.is_some_and(|n| n >= self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::testkit;

    /// A chain of `n` headers after `parent` (devnet proof of work).
    fn branch(parent: &BlockHeader, n: usize, salt: u64) -> Vec<BlockHeader> {
        let params = ember_core::ChainParams::devnet();
        let mut out = Vec::new();
        let miner = testkit::keys(1)[0].address();
        let mut prev = *parent;
        for i in 0..n {
            let extra = salt.wrapping_mul(1_000).wrapping_add(i as u64);
            let h = testkit::child_block(&params, &prev, vec![], miner, extra).header;
            out.push(h);
            prev = h;
        }
        out
    }

    fn work_of(hs: &[BlockHeader]) -> U256 {
        hs.iter().map(block_work).fold(U256::zero(), |a, b| a + b)
    }

    #[test]
    fn a_branch_that_does_not_pass_the_best_is_counted_then_dropped() {
        let genesis = ember_core::ChainParams::devnet().genesis().header;
        let hs = branch(&genesis, 30, 1);
        let per = block_work(&hs[0]);
        let tip_work = per * U256::from(1_000u64);
        let t = threshold(tip_work, per);
        let mut p = Presync::start(genesis.id(), U256::zero());
        assert_eq!(p.feed(&hs[..10], true, t), Verdict::Continue(hs[9].id()));
        assert_eq!(p.feed(&hs[10..20], true, t), Verdict::Continue(hs[19].id()));
        assert_eq!(p.feed(&hs[20..], false, t), Verdict::Drop);
        assert_eq!(p.count(), 30);
        assert!(p.bits.len() <= 30 / 8 + 1, "one bit per header");
    }

    #[test]
    fn a_branch_passing_the_best_is_redownloaded_and_checked() {
        let genesis = ember_core::ChainParams::devnet().genesis().header;
        let hs = branch(&genesis, 40, 2);
        let t = work_of(&hs[..25]);
        let mut p = Presync::start(genesis.id(), U256::zero());
        assert_eq!(p.feed(&hs[..20], true, t), Verdict::Continue(hs[19].id()));
        // Equal work is not more: a tie never displaces the best.
        let mut tie = p.clone();
        assert_eq!(tie.feed(&hs[20..25], false, t), Verdict::Drop);
        assert_eq!(p.feed(&hs[20..30], true, t), Verdict::Redownload(genesis.id()));
        assert!(!p.redownload_done());
        assert_eq!(p.feed(&hs[..20], true, t), Verdict::Store);
        assert_eq!(p.feed(&hs[20..], false, t), Verdict::Store);
        assert!(p.redownload_done());
    }

    #[test]
    fn other_headers_on_redownload_are_caught() {
        let genesis = ember_core::ChainParams::devnet().genesis().header;
        let shown = branch(&genesis, 64, 3);
        let t = work_of(&shown[..63]);
        let mut p = Presync::start(genesis.id(), U256::zero());
        assert_eq!(p.feed(&shown, false, t), Verdict::Redownload(genesis.id()));
        // A different chain of the same length: each header has a 1/2 chance to match its
        // bit, so 64 of them all matching happens once in 2^64.
        let other = branch(&genesis, 64, 1_000);
        assert_eq!(p.feed(&other, false, t), Verdict::Changed);
    }

    #[test]
    fn a_presync_is_bounded() {
        let genesis = ember_core::ChainParams::devnet().genesis().header;
        let mut p = Presync::start(genesis.id(), U256::zero());
        p.count = MAX_PRESYNC_HEADERS;
        let hs = branch(&genesis, 1, 4);
        assert_eq!(p.feed(&hs, true, U256::MAX), Verdict::Drop);
    }

    #[test]
    fn the_threshold_saturates_at_zero() {
        assert_eq!(threshold(U256::from(5u64), U256::from(1u64)), U256::zero());
        assert_eq!(
            threshold(U256::from(1_000u64), U256::from(1u64)),
            U256::from(1_000 - ANTI_DOS_BLOCKS)
        );
    }
}
