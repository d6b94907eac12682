//! Relay manager: new blocks pushed to every peer at once (encoded once, shared by all
//! outboxes); admitted payments announced by inventory in batches every 100 ms. Each peer's
//! [`KnownInventory`] keeps us from sending it what it already has; gossip never waits, and
//! a peer over its gossip budget is dropped as too slow.
//!
//! What to send is decided by plain functions ([`block_relay`], [`tx_announcements`]),
//! unit-tested below; the two tasks at the end only feed them events and queue the result.

use super::disconnect::DisconnectReason;
use super::outbox;
use super::wire::{self, Inv, Message};
use super::Network;
use crate::chain::ChainEvent;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Inventory remembered per peer as known to it.
pub const MAX_KNOWN_INV: usize = 50_000;

/// Most blocks of one chain event pushed whole; a longer run (a sync or a reorg) is
/// announced by its tip only, and peers fetch what they lack.
pub const MAX_BLOCKS_PUSHED: usize = 4;

/// Inventory a peer is known to have: what it announced or sent us, and what we sent it.
/// Bounded: at [`MAX_KNOWN_INV`] entries (40 bytes each, about 2 MB with the set's
/// overhead) it is forgotten all at once, which costs at most a repeated announcement.
#[derive(Debug, Default)]
pub struct KnownInventory(HashSet<Inv>);

impl KnownInventory {
    /// Remembers `inv`; true if it was not known (so it is worth sending to the peer).
    pub fn insert(&mut self, inv: Inv) -> bool {
        if self.0.len() >= MAX_KNOWN_INV {
            self.0.clear();
        }
        self.0.insert(inv)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What one chain event pushes to peers: `(inventory, its message, the height a peer holds
/// once it has the message)`. Up to [`MAX_BLOCKS_PUSHED`] connected blocks go whole (a
/// pushed block extends our main chain, so the peer will hold it); a longer run is one
/// `Inv` of the tip, which proves nothing of the peer until it fetches it (height 0).
pub fn block_relay(ev: &ChainEvent) -> Vec<(Inv, outbox::Payload, u64)> {
    if ev.connected.len() <= MAX_BLOCKS_PUSHED {
        ev.connected
            .iter()
            .map(|b| {
                let m = Message::Block((**b).clone());
                (Inv::Block(b.id()), outbox::payload(&m), b.header.height)
            })
            .collect()
    } else {
        let m = Message::Inv(vec![Inv::Block(ev.tip)]);
        vec![(Inv::Block(ev.tip), outbox::payload(&m), 0)]
    }
}

/// The `Inv` messages that announce `batch` to a peer: what it does not know yet (now
/// marked known), in order, at most [`wire::MAX_INV`] entries each.
pub fn tx_announcements(known: &mut KnownInventory, batch: &[ember_core::Txid]) -> Vec<Message> {
    let fresh: Vec<Inv> = batch.iter().map(|t| Inv::Tx(*t)).filter(|i| known.insert(*i)).collect();
    fresh.chunks(wire::MAX_INV).map(|c| Message::Inv(c.to_vec())).collect()
}

impl Network {
    /// Pushes every newly connected block to all peers at once (or, after a long sync or
    /// reorg, announces only the tip so peers fetch what they lack).
    pub(super) async fn relay_blocks(self: Arc<Self>) {
        let mut rx = self.node.events.subscribe();
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = self.node.shutdown.cancelled() => return,
            };
            let ev = match ev {
                Ok(ev) => ev,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            let push = block_relay(&ev);
            let mut slow = Vec::new();
            {
                let mut peers = self.peers.lock().expect("never poisoned");
                for (id, p) in peers.iter_mut() {
                    for (inv, payload, height) in &push {
                        if p.knows(*inv) {
                            if p.outbox.gossip(payload.clone()) {
                                p.reached(*height);
                            } else {
                                slow.push(*id);
                            }
                        }
                    }
                }
            }
            for id in slow {
                self.drop_peer(id, DisconnectReason::SlowReader);
            }
        }
    }

    /// Announces admitted transactions in batches every 100 ms.
    pub(super) async fn relay_txs(self: Arc<Self>) {
        let mut rx = self.node.new_txs.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                t = rx.recv() => match t {
                    Ok(txid) => self.tx_queue.lock().expect("never poisoned").push(txid),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
                _ = tick.tick() => self.flush_tx_announcements(),
                _ = self.node.shutdown.cancelled() => return,
            }
        }
    }

    fn flush_tx_announcements(&self) {
        let batch: Vec<ember_core::Txid> =
            std::mem::take(&mut *self.tx_queue.lock().expect("never poisoned"));
        if batch.is_empty() {
            return;
        }
        let mut slow = Vec::new();
        {
            let mut peers = self.peers.lock().expect("never poisoned");
            for (id, p) in peers.iter_mut() {
                for m in tx_announcements(&mut p.known, &batch) {
                    if !p.outbox.gossip_msg(&m) {
                        slow.push(*id);
                        break;
                    }
                }
            }
        }
        for id in slow {
            self.drop_peer(id, DisconnectReason::SlowReader);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::pow::CompactTarget;
    use ember_core::{Block, BlockHeader, BlockId, Hash, Txid};

    fn block(height: u64) -> Arc<Block> {
        let header = BlockHeader {
            version: 1,
            height,
            prev: BlockId::from_bytes([height as u8; 32]),
            tx_root: Hash::ZERO,
            time: 1_700_000_000_000 + height,
            target: CompactTarget(0x207f_ffff),
            nonce: height,
            miner: ember_core::Address::from_bytes([7; 32]),
        };
        Arc::new(Block { header, txs: Vec::new() })
    }

    fn event(heights: std::ops::RangeInclusive<u64>) -> ChainEvent {
        let connected: Vec<Arc<Block>> = heights.map(block).collect();
        let last = connected.last().expect("a block");
        ChainEvent { tip: last.id(), height: last.header.height, connected, disconnected: vec![] }
    }

    #[test]
    fn a_few_new_blocks_go_whole_and_a_long_run_is_announced_by_its_tip() {
        let few = block_relay(&event(1..=MAX_BLOCKS_PUSHED as u64));
        assert_eq!(few.len(), MAX_BLOCKS_PUSHED);
        for (i, (inv, payload, height)) in few.iter().enumerate() {
            let b = block(i as u64 + 1);
            assert_eq!((*inv, *height), (Inv::Block(b.id()), b.header.height));
            assert_eq!(**payload, *outbox::payload(&Message::Block((*b).clone())));
        }
        let long = event(1..=MAX_BLOCKS_PUSHED as u64 + 1);
        let tip = long.tip;
        let pushed = block_relay(&long);
        assert_eq!(pushed.len(), 1);
        assert_eq!((pushed[0].0, pushed[0].2), (Inv::Block(tip), 0));
        assert_eq!(*pushed[0].1, *outbox::payload(&Message::Inv(vec![Inv::Block(tip)])));
    }

    fn txid(n: u32) -> Txid {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_le_bytes());
        Txid::from_bytes(b)
    }

    #[test]
    fn a_payment_is_announced_once_and_never_back_to_the_peer_that_told_us() {
        let mut known = KnownInventory::default();
        known.insert(Inv::Tx(txid(2)));
        let msgs = tx_announcements(&mut known, &[txid(1), txid(2), txid(3)]);
        assert_eq!(msgs, vec![Message::Inv(vec![Inv::Tx(txid(1)), Inv::Tx(txid(3))])]);
        assert!(tx_announcements(&mut known, &[txid(1), txid(3)]).is_empty());
    }

    #[test]
    fn announcements_are_split_at_the_inv_limit() {
        let mut known = KnownInventory::default();
        let batch: Vec<Txid> = (0..wire::MAX_INV as u32 + 1).map(txid).collect();
        let msgs = tx_announcements(&mut known, &batch);
        let sizes: Vec<usize> = msgs
            .iter()
            .map(|m| match m {
                Message::Inv(v) => v.len(),
                other => panic!("not an Inv: {other:?}"),
            })
            .collect();
        assert_eq!(sizes, vec![wire::MAX_INV, 1]);
    }

    #[test]
    fn the_known_set_never_holds_more_than_its_bound() {
        let mut known = KnownInventory::default();
        for n in 0..MAX_KNOWN_INV as u32 + 10 {
            known.insert(Inv::Tx(txid(n)));
            assert!(known.len() <= MAX_KNOWN_INV);
        }
        assert_eq!(known.len(), 10);
    }
}
