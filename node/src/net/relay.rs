//! Relay manager: new blocks pushed to every peer at once (encoded once, when a peer first
//! needs it, and shared by all outboxes: compact to peers that asked for compact blocks,
//! whole to the others); admitted
//! payments announced by inventory in batches every 100 ms. Each peer's
//! [`KnownInventory`] keeps us from sending it what it already has; gossip never waits, and
//! a peer over its gossip budget is dropped as too slow.
//!
//! What to send is decided by plain functions ([`block_relay`], [`tx_announcements`]),
//! unit-tested below; the two tasks at the end only feed them events and queue the result.

use super::compact::CompactBlock;
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

    /// Forgets `inv`: the peer asked us for it, so it does not have it (and once we do, it
    /// is worth sending).
    pub fn remove(&mut self, inv: &Inv) {
        self.0.remove(inv);
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

/// One block (or tip announcement) a chain event pushes to peers. Its two encodings are
/// made when a peer first needs one (then shared by every outbox): in a network where
/// high-bandwidth peers got the block before we validated it, nobody needs either, and a
/// 500-payment block is neither copied nor encoded again.
#[derive(Debug)]
pub struct BlockPush {
    pub inv: Inv,
    /// The height a peer holds once it has the block (0 for an announcement, which proves
    /// nothing of the peer until it fetches it).
    pub height: u64,
    what: Pushed,
    whole: std::cell::OnceCell<outbox::Payload>,
    compact: std::cell::OnceCell<outbox::Payload>,
}

#[derive(Debug)]
enum Pushed {
    /// A connected block, compact with these indexes sent whole, keyed by the nonce.
    Block { block: Arc<ember_core::Block>, nonce: u64, lacked: Vec<u32> },
    /// An `Inv` of the tip, the same for everyone.
    Announcement,
}

impl BlockPush {
    /// What a peer that did not ask for compact blocks gets: the whole block (or the `Inv`).
    pub fn whole(&self) -> &outbox::Payload {
        self.whole.get_or_init(|| match &self.what {
            Pushed::Block { block, .. } => outbox::payload(&Message::Block((**block).clone())),
            Pushed::Announcement => outbox::payload(&Message::Inv(vec![self.inv])),
        })
    }

    /// What a peer that did (`SendCmpct`) gets: the compact block; `None` for an
    /// announcement.
    pub fn compact(&self) -> Option<&outbox::Payload> {
        let Pushed::Block { block, nonce, lacked } = &self.what else { return None };
        Some(self.compact.get_or_init(|| {
            outbox::payload(&Message::CmpctBlock(CompactBlock::build(block, *nonce, lacked)))
        }))
    }
}

/// What one chain event pushes to peers. Up to [`MAX_BLOCKS_PUSHED`] connected blocks go
/// whole, or compact (keyed by `nonce`, with the payments at `lacked(block)` sent whole) to
/// peers that asked for compact blocks; a pushed block extends our main chain, so the peer
/// will hold it. A longer run is one `Inv` of the tip for everyone.
pub fn block_relay(
    ev: &ChainEvent,
    nonce: u64,
    lacked: impl Fn(&ember_core::BlockId) -> Vec<u32>,
) -> Vec<BlockPush> {
    let push = |inv, height, what| BlockPush {
        inv,
        height,
        what,
        whole: Default::default(),
        compact: Default::default(),
    };
    if ev.connected.len() <= MAX_BLOCKS_PUSHED {
        ev.connected
            .iter()
            .map(|b| {
                let id = b.id();
                let what = Pushed::Block { block: b.clone(), nonce, lacked: lacked(&id) };
                push(Inv::Block(id), b.header.height, what)
            })
            .collect()
    } else {
        vec![push(Inv::Block(ev.tip), 0, Pushed::Announcement)]
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
            let push = {
                let st = self.compact.lock().expect("never poisoned");
                block_relay(&ev, rand::random(), |id| {
                    st.recent(id).map(|(_, l)| l).unwrap_or_default()
                })
            };
            let mut slow = Vec::new();
            let mut compact_sent = 0;
            {
                let mut peers = self.peers.lock().expect("never poisoned");
                for (id, p) in peers.iter_mut() {
                    for b in &push {
                        if p.knows(b.inv) {
                            // Only a peer that asked for compact blocks makes one.
                            let payload = match p.cmpct.and_then(|_| b.compact()) {
                                Some(c) => {
                                    compact_sent += 1;
                                    c
                                }
                                None => b.whole(),
                            };
                            if p.outbox.gossip(payload.clone()) {
                                p.reached(b.height);
                            } else {
                                slow.push(*id);
                            }
                        } else if b.height > 0 {
                            // It has this block of our main chain already (we sent it before
                            // validating it, or it sent it to us): at most our own height,
                            // so it cannot hold readiness back.
                            p.reached(b.height);
                        }
                    }
                }
            }
            self.compact.lock().expect("never poisoned").stats.sent += compact_sent;
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
    fn a_few_new_blocks_go_whole_or_compact_and_a_long_run_is_announced_by_its_tip() {
        let few = block_relay(&event(1..=MAX_BLOCKS_PUSHED as u64), 5, |_| vec![0]);
        assert_eq!(few.len(), MAX_BLOCKS_PUSHED);
        for (i, push) in few.iter().enumerate() {
            assert!(push.whole.get().is_none() && push.compact.get().is_none(), "not encoded yet");
            let b = block(i as u64 + 1);
            assert_eq!((push.inv, push.height), (Inv::Block(b.id()), b.header.height));
            assert_eq!(**push.whole(), *outbox::payload(&Message::Block((*b).clone())));
            let cb = CompactBlock::build(&b, 5, &[0]);
            assert_eq!(**push.compact().unwrap(), *outbox::payload(&Message::CmpctBlock(cb)));
        }
        let long = event(1..=MAX_BLOCKS_PUSHED as u64 + 1);
        let tip = long.tip;
        let pushed = block_relay(&long, 5, |_| vec![]);
        assert_eq!(pushed.len(), 1);
        assert_eq!((pushed[0].inv, pushed[0].height), (Inv::Block(tip), 0));
        assert_eq!(**pushed[0].whole(), *outbox::payload(&Message::Inv(vec![Inv::Block(tip)])));
        assert!(pushed[0].compact().is_none(), "an announcement is the same for everyone");
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
