//! Headers manager: what one `Headers` message from one peer leads to. No I/O, no chain
//! lock, no clock: the caller passes in what the chain knows (the cumulative work of the
//! first header's parent, the best header's work) and carries out the [`HeadersAction`] it
//! gets back, so every rule below is unit-tested with made-up chain figures.
//!
//! Rules (each in `docs/PROTOCOL.md`, "Header-first sync"):
//! - an empty message ends a presync still counting (the peer has nothing more);
//! - the headers of one message must each follow the one before (`prev`, height + 1):
//!   otherwise the peer is punished ([`check_chaining`]);
//! - a message whose first parent is neither known nor the end of this peer's presync is
//!   answered with our locator; after [`MAX_UNCONNECTING`] such messages in a row the
//!   peer is punished (an honest peer answers our locator with headers that connect);
//! - a branch is stored only when its work passes the best header's, or as the checked
//!   redownload of a presync that showed it does ([`super::presync`]); any other branch
//!   is dropped without blame.
//!
//! State per peer: one [`Presync`] (≤ 512 KiB) and one counter, whatever the peer sends.

use super::disconnect::Misbehaviour;
use super::presync::{Presync, Verdict};
use super::wire;
use crate::chain::block_work;
use ember_core::{BlockHeader, BlockId, U256};

/// `Headers` messages in a row that connect to nothing before the peer is punished
/// (Bitcoin Core's `MAX_NUM_UNCONNECTING_HEADERS_MSGS`).
pub const MAX_UNCONNECTING: u32 = 10;

/// What the caller does with a `Headers` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersAction {
    /// Nothing: an empty message, or a branch that ends behind the best header.
    Nothing,
    /// Store the batch (contextual checks under the chain lock); after a full batch, ask
    /// for the headers after its last one.
    Store,
    /// Send `GetHeaders { locator: [from] }`: the next part of a presync, or its
    /// redownload from the fork point.
    AskFrom(BlockId),
    /// Send our locator: the batch connects to nothing we know.
    SendLocator,
    /// The peer misbehaved: disconnect and ban.
    Punish(Misbehaviour),
}

/// Whether each header of one message follows the one before it (`prev` is its id, height
/// one more). Costs one header hash per header.
pub fn check_chaining(headers: &[BlockHeader]) -> Result<(), Misbehaviour> {
    if headers.windows(2).any(|w| w[1].prev != w[0].id() || w[1].height != w[0].height + 1) {
        return Err(Misbehaviour::NonChainingHeaders);
    }
    Ok(())
}

/// One peer's header-sync state.
#[derive(Debug, Default)]
pub struct HeaderSync {
    presync: Option<Presync>,
    /// `Headers` messages in a row that connected to nothing.
    unconnecting: u32,
}

impl HeaderSync {
    /// The peer sent an empty `Headers`: it has nothing more. A presync still counting
    /// ends (nothing of it was stored); a redownload in progress is kept.
    pub fn on_empty(&mut self) {
        self.presync = self.presync.take().filter(Presync::is_redownloading);
    }

    /// A non-empty message of headers that chain ([`check_chaining`]) and each meet
    /// their own target. `base_work`: the cumulative work of the first header's parent,
    /// `None` when we do not know it. `best`: the best header's cumulative work.
    pub fn on_headers(
        &mut self,
        headers: &[BlockHeader],
        base_work: Option<U256>,
        best: U256,
    ) -> HeadersAction {
        let Some(first) = headers.first() else {
            self.on_empty();
            return HeadersAction::Nothing;
        };
        let full = headers.len() == wire::MAX_HEADERS;
        let continues_presync = self.presync.as_ref().is_some_and(|s| s.last() == first.prev);
        if base_work.is_none() && !continues_presync {
            self.unconnecting += 1;
            if self.unconnecting > MAX_UNCONNECTING {
                return HeadersAction::Punish(Misbehaviour::UnconnectingHeaders);
            }
            return HeadersAction::SendLocator;
        }
        self.unconnecting = 0;
        let (verdict, presync) = match (self.presync.take(), base_work) {
            // The next part of a presync (counted, not stored) or of its redownload.
            (Some(mut ps), _) if ps.last() == first.prev || ps.is_redownloading() => {
                (ps.feed(headers, full, best), Some(ps))
            }
            (_, Some(base_work)) => {
                let work = headers.iter().map(block_work).fold(base_work, U256::saturating_add);
                if work > best {
                    (Verdict::Store, None)
                } else if full {
                    let mut ps = Presync::start(first.prev, base_work);
                    (ps.feed(headers, full, best), Some(ps))
                } else {
                    (Verdict::Drop, None)
                }
            }
            (_, None) => (Verdict::Drop, None),
        };
        match verdict {
            Verdict::Store => {
                self.presync = presync.filter(|s| !s.redownload_done());
                HeadersAction::Store
            }
            Verdict::Continue(from) | Verdict::Redownload(from) => {
                self.presync = presync;
                HeadersAction::AskFrom(from)
            }
            Verdict::Drop => HeadersAction::Nothing,
            Verdict::Changed => HeadersAction::Punish(Misbehaviour::ChangedHeaders),
        }
    }

    /// Headers counted by a presync in progress (its memory: a bit each).
    pub fn presync_count(&self) -> usize {
        self.presync.as_ref().map_or(0, Presync::count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::{testkit, ChainParams};

    /// A chain of `n` devnet headers after `parent`.
    fn branch(parent: &BlockHeader, n: usize, salt: u64) -> Vec<BlockHeader> {
        let params = ChainParams::devnet();
        let miner = testkit::keys(1)[0].address();
        let mut prev = *parent;
        (0..n)
            .map(|i| {
                let extra = salt.wrapping_mul(1_000_000).wrapping_add(i as u64);
                prev = testkit::child_block(&params, &prev, vec![], miner, extra).header;
                prev
            })
            .collect()
    }

    fn work(hs: &[BlockHeader]) -> U256 {
        hs.iter().map(block_work).fold(U256::zero(), U256::saturating_add)
    }

    fn genesis() -> BlockHeader {
        ChainParams::devnet().genesis().header
    }

    #[test]
    fn headers_that_do_not_chain_are_the_peers_fault() {
        let mut hs = branch(&genesis(), 3, 1);
        assert_eq!(check_chaining(&hs), Ok(()));
        hs.swap(1, 2);
        assert_eq!(check_chaining(&hs), Err(Misbehaviour::NonChainingHeaders));
        let mut hs = branch(&genesis(), 2, 2);
        hs[1].height += 1;
        assert_eq!(check_chaining(&hs), Err(Misbehaviour::NonChainingHeaders));
    }

    #[test]
    fn a_branch_that_passes_the_best_is_stored_one_that_does_not_is_dropped() {
        let hs = branch(&genesis(), 5, 3);
        let mut s = HeaderSync::default();
        // Best = 4 blocks' work: 5 headers on genesis pass it.
        assert_eq!(s.on_headers(&hs, Some(U256::zero()), work(&hs[..4])), HeadersAction::Store);
        // Best = 5 blocks' work: a tie is not stored, nobody is punished.
        assert_eq!(s.on_headers(&hs, Some(U256::zero()), work(&hs)), HeadersAction::Nothing);
        assert_eq!(s.presync_count(), 0, "a short batch starts no presync");
    }

    #[test]
    fn unconnecting_messages_get_our_locator_then_a_ban_and_a_connecting_one_resets() {
        let hs = branch(&genesis(), 2, 4);
        let mut s = HeaderSync::default();
        for _ in 0..MAX_UNCONNECTING {
            assert_eq!(s.on_headers(&hs, None, U256::zero()), HeadersAction::SendLocator);
        }
        // One that connects resets the count: ten more are answered again.
        assert_eq!(s.on_headers(&hs, Some(U256::zero()), U256::zero()), HeadersAction::Store);
        for _ in 0..MAX_UNCONNECTING {
            assert_eq!(s.on_headers(&hs, None, U256::zero()), HeadersAction::SendLocator);
        }
        assert_eq!(
            s.on_headers(&hs, None, U256::zero()),
            HeadersAction::Punish(Misbehaviour::UnconnectingHeaders)
        );
    }

    #[test]
    fn a_full_batch_behind_the_best_is_presynced_then_redownloaded_when_it_passes() {
        let n = wire::MAX_HEADERS;
        let hs = branch(&genesis(), 2 * n + 1, 5);
        let (first, second, last) = (&hs[..n], &hs[n..2 * n], &hs[2 * n..]);
        let best = work(&hs[..2 * n]);
        let mut s = HeaderSync::default();
        // Full and behind: counted, not stored; ask for what follows.
        assert_eq!(
            s.on_headers(first, Some(U256::zero()), best),
            HeadersAction::AskFrom(first[n - 1].id())
        );
        assert_eq!(s.presync_count(), n);
        // The next part is unknown to the chain but continues the presync.
        assert_eq!(s.on_headers(second, None, best), HeadersAction::AskFrom(second[n - 1].id()));
        // Passing the best: ask again from the fork point (genesis).
        assert_eq!(s.on_headers(last, None, best), HeadersAction::AskFrom(genesis().id()));
        // The redownload is stored as it comes, checked against the presync.
        assert_eq!(s.on_headers(first, Some(U256::zero()), best), HeadersAction::Store);
        assert_eq!(s.on_headers(second, Some(work(first)), best), HeadersAction::Store);
    }

    #[test]
    fn other_headers_on_redownload_are_caught_and_an_empty_message_ends_a_presync() {
        let n = wire::MAX_HEADERS;
        let hs = branch(&genesis(), n + 1, 6);
        let best = work(&hs[..n]);
        let mut s = HeaderSync::default();
        s.on_headers(&hs[..n], Some(U256::zero()), best);
        assert_eq!(s.on_headers(&hs[n..], None, best), HeadersAction::AskFrom(genesis().id()));
        let other = branch(&genesis(), n, 7);
        assert_eq!(
            s.on_headers(&other, Some(U256::zero()), best),
            HeadersAction::Punish(Misbehaviour::ChangedHeaders)
        );

        let mut s = HeaderSync::default();
        s.on_headers(&hs[..n], Some(U256::zero()), work(&hs));
        assert_eq!(s.presync_count(), n);
        s.on_empty();
        assert_eq!(s.presync_count(), 0, "nothing more from the peer: the presync is forgotten");
    }
}
