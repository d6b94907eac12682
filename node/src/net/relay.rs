//! Relay: new blocks pushed to every peer at once (encoded once, shared by all outboxes);
//! admitted payments announced by inventory in batches every 100 ms. Each peer's known
//! set keeps us from sending it what it already has; gossip never waits, and a peer over
//! its gossip budget is dropped as too slow.

use super::disconnect::DisconnectReason;
use super::outbox;
use super::wire::{self, Inv, Message};
use super::Network;
use std::sync::Arc;
use std::time::Duration;

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
            // (what, its message, the height a peer holds once it has the message: a
            // pushed block extends our main chain, so the peer will hold it; an announced
            // tip says nothing until the peer fetches it, see `serve_one`).
            let push: Vec<(Inv, outbox::Payload, u64)> = if ev.connected.len() <= 4 {
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
            };
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
                let inv: Vec<Inv> =
                    batch.iter().map(|t| Inv::Tx(*t)).filter(|i| p.knows(*i)).collect();
                for chunk in inv.chunks(wire::MAX_INV) {
                    if !p.outbox.gossip_msg(&Message::Inv(chunk.to_vec())) {
                        slow.push(*id);
                    }
                }
            }
        }
        for id in slow {
            self.drop_peer(id, DisconnectReason::SlowReader);
        }
    }
}
