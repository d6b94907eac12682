//! Serving what a peer asks for: blocks and transactions (`GetData`), headers
//! (`GetHeaders`), addresses (`GetAddr`).
//!
//! A `GetData` is not answered at once: its entries go to the peer's request queue
//! ([`Requests`], duplicates served once), and the peer's task serves one entry at a time,
//! only while the peer's reply queue is under its byte budget (so a peer that asks for the
//! same 100 KB block 50,000 times and reads nothing makes us hold at most
//! [`super::outbox::REPLY_BUDGET`] plus one block). While entries are queued the task
//! reads no further message from that peer, as Bitcoin Core processes nothing else from a
//! peer whose `getdata` queue is not empty. Entries we lack are answered with one
//! `NotFound` when the queue empties.
//!
//! Blocks and headers are read from the store, never under the chain lock (RocksDB reads
//! need none); the reads run on the blocking pool.

use super::wire::{self, Inv, Message};
use super::Network;
use crate::store::{BlockStatus, ChainStore};
use ember_core::{Block, BlockHeader, BlockId};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

/// A peer's queue of `GetData` entries still to serve.
#[derive(Default)]
pub struct Requests {
    queue: VecDeque<Inv>,
    queued: HashSet<Inv>,
    missing: Vec<Inv>,
}

impl Requests {
    /// Queues a request's entries; an entry already queued is not queued twice.
    pub fn push(&mut self, items: Vec<Inv>) {
        for i in items {
            if self.queued.insert(i) {
                self.queue.push_back(i);
            }
        }
    }

    pub fn next(&mut self) -> Option<Inv> {
        let i = self.queue.pop_front()?;
        self.queued.remove(&i);
        Some(i)
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

/// A block of any branch whose body is stored and not known invalid, from the store alone.
pub fn stored_block(store: &ChainStore, id: &BlockId) -> Option<Block> {
    let entry = store.header(id).ok().flatten()?;
    if entry.status != BlockStatus::BodyStored {
        return None;
    }
    let txs = store.body(id).ok().flatten()?;
    Some(Block { header: entry.header, txs })
}

/// The main-chain headers after the first `locator` entry on our main chain (genesis when
/// none is), up to `stop` or [`wire::MAX_HEADERS`], from the store alone. A reorg running
/// meanwhile may make the answer a mixture; the peer then asks again from its new locator.
pub fn main_headers_after(
    store: &ChainStore,
    locator: &[BlockId],
    stop: BlockId,
) -> Vec<BlockHeader> {
    let on_main = |id: &BlockId| -> Option<u64> {
        let e = store.header(id).ok().flatten()?;
        (store.main_chain_at(e.header.height).ok().flatten() == Some(*id))
            .then_some(e.header.height)
    };
    let start = locator.iter().find_map(on_main).map_or(1, |h| h + 1).max(1);
    let mut out = Vec::new();
    let mut h = start;
    while out.len() < wire::MAX_HEADERS {
        let Ok(Some(id)) = store.main_chain_at(h) else { break };
        let Ok(Some(e)) = store.header(&id) else { break };
        out.push(e.header);
        if id == stop {
            break;
        }
        h += 1;
    }
    out
}

impl Network {
    /// Serves one queued entry to peer `id`, waiting for room in its reply queue first.
    pub(super) async fn serve_one(self: &Arc<Self>, id: u64, inv: Inv, q: &mut Requests) {
        let reply = match inv {
            Inv::Tx(t) => self
                .node
                .mempool
                .lock()
                .expect("mempool lock is never poisoned")
                .get(&t)
                .map(|tx| Message::Tx(*tx)),
            Inv::Block(b) => {
                // A block we forwarded (compact, before validating it) is served once
                // judged: the peer's own rebuild of it may have failed.
                self.await_forwarded(&b).await;
                let store = self.store.clone();
                let block = self.blocking(move || stored_block(&store, &b)).await;
                if let Some(block) = &block {
                    // A peer that fetches a block from us will hold it: the best sign of
                    // its height for a peer that only downloads (`net_peers[].height` of a
                    // miner's peers). Bounded by our own blocks, so it cannot be inflated.
                    self.peer_reached(id, block.header.height);
                }
                block.map(Message::Block)
            }
        };
        match reply {
            Some(m) => self.reply(id, m).await,
            None => q.missing.push(inv),
        }
    }

    /// Peer `id` asked for `items` and we could not serve them: it does not have them, so
    /// they are pushed to it if we get them (a block we forwarded before we had it whole,
    /// and whose verdict took longer than the peer's request could wait, reaches it once we
    /// connect it).
    pub(super) fn lacks(&self, id: u64, items: &[Inv]) {
        if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
            for inv in items {
                p.known.remove(inv);
            }
        }
    }

    /// Raises peer `id`'s known height to `height` (never lowers it).
    pub(super) fn peer_reached(&self, id: u64, height: u64) {
        if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
            p.reached(height);
        }
    }

    /// Answers what could not be served with one `NotFound`.
    pub(super) fn finish_requests(&self, id: u64, q: &mut Requests) {
        let missing = std::mem::take(&mut q.missing);
        self.lacks(id, &missing);
        for chunk in missing.chunks(wire::MAX_INV) {
            self.send(id, Message::NotFound(chunk.to_vec()));
        }
    }

    /// Answers a `GetHeaders` from the store.
    pub(super) async fn serve_headers(
        self: &Arc<Self>,
        id: u64,
        locator: Vec<BlockId>,
        stop: BlockId,
    ) {
        let store = self.store.clone();
        let (headers, held) = self
            .blocking(move || {
                // The locator's first entry on our main chain is a block the peer holds.
                let held = locator.iter().find_map(|b| {
                    let e = store.header(b).ok().flatten()?;
                    (store.main_chain_at(e.header.height).ok().flatten() == Some(*b))
                        .then_some(e.header.height)
                });
                (main_headers_after(&store, &locator, stop), held)
            })
            .await;
        if let Some(h) = held {
            self.peer_reached(id, h);
        }
        self.reply(id, Message::Headers(headers)).await;
    }

    /// Answers a `GetAddr` with a random sample of the address book (at most 23% of it,
    /// Core's rule, so one peer cannot read the whole book in one go).
    pub(super) async fn serve_addresses(self: &Arc<Self>, id: u64) {
        let sample = self
            .addr_book
            .lock()
            .expect("never poisoned")
            .sample(wire::MAX_ADDRS, &mut rand::thread_rng());
        let addrs: Vec<String> = sample.into_iter().map(|a| a.to_string()).collect();
        self.reply(id, Message::Addr(addrs)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_entries_are_queued_once() {
        let b = Inv::Block(BlockId::ZERO);
        let mut q = Requests::default();
        q.push(vec![b; 3_000]);
        assert_eq!(q.len(), 1);
        assert_eq!(q.next(), Some(b));
        // Served: asking again queues it again.
        q.push(vec![b]);
        assert_eq!(q.len(), 1);
    }
}
