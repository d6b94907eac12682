//! Header-first sync: headers (through [`super::presync`]), then bodies from every peer
//! that has them, a bounded window each; stalled requests move to other peers.
//!
//! Headers from a peer are handled as follows (each rule is in `docs/PROTOCOL.md`):
//! - the headers of one message must each follow the one before (`prev` and height):
//!   otherwise the peer is punished;
//! - a message whose first header's parent is unknown is answered with our locator; after
//!   [`MAX_UNCONNECTING`] such messages in a row the peer is punished (an honest peer
//!   answers our locator with headers that connect);
//! - a branch is stored only when its work exceeds the best header's, or after a presync
//!   showed it does; any other branch is dropped without blame (it is asked for again if
//!   it ever gets ahead);
//! - headers that break a consensus rule get the peer punished; a header only too far in
//!   the future stops the batch without blame.

use super::disconnect::Misbehaviour;
use super::presync::{Presync, Verdict};
use super::wire::{self, Inv, Message};
use super::{Network, MAX_BLOCKS_IN_FLIGHT};
use crate::chain::{block_work, ChainError};
use crate::node::now_ms;
use ember_core::validate::check_header;
use ember_core::{BlockHeader, BlockId, U256};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::time::Instant;

/// `Headers` messages in a row that connect to nothing before the peer is punished
/// (Bitcoin Core's `MAX_NUM_UNCONNECTING_HEADERS_MSGS`).
pub const MAX_UNCONNECTING: u32 = 10;

/// What storing a batch of headers came to.
enum Stored {
    Ok,
    /// A header is only too far in the future: stop, no blame.
    Early,
    Invalid(String),
    Failed(String),
}

/// The block bodies to ask one peer for, from `wanted` (header-only blocks on the best
/// header chain, oldest first, with their heights): only what the peer can have (at most
/// its `height`), not already asked of it or of another peer, not stalled with it before,
/// at most [`MAX_BLOCKS_IN_FLIGHT`] in flight with it.
pub fn pick_requests(
    wanted: &[(BlockId, u64)],
    height: u64,
    in_flight: &HashMap<BlockId, Instant>,
    stalled: &HashSet<BlockId>,
    elsewhere: &HashSet<BlockId>,
) -> Vec<BlockId> {
    let room = MAX_BLOCKS_IN_FLIGHT.saturating_sub(in_flight.len());
    wanted
        .iter()
        .filter(|(b, h)| {
            *h <= height
                && !in_flight.contains_key(b)
                && !stalled.contains(b)
                && !elsewhere.contains(b)
        })
        .take(room)
        .map(|(b, _)| *b)
        .collect()
}

impl Network {
    pub(super) fn locator_message(&self) -> Message {
        let chain = self.node.chain.lock().expect("chain lock is never poisoned");
        let locator = chain.locator().unwrap_or_else(|_| vec![self.node.params.genesis_id()]);
        Message::GetHeaders { locator, stop: BlockId::ZERO }
    }

    /// Asks every peer for the headers after our main chain, as after a handshake: for when
    /// the node may now take branches it refused before (`chain_reconsiderBlock`).
    pub fn resync(&self) {
        let m = self.locator_message();
        let ids: Vec<u64> = self.peers.lock().expect("never poisoned").keys().copied().collect();
        for id in ids {
            self.send(id, m.clone());
        }
    }

    /// A locator that continues from `last` (the last header received).
    fn locator_after(&self, last: BlockId) -> Message {
        let mut m = self.locator_message();
        if let Message::GetHeaders { locator, .. } = &mut m {
            locator.insert(0, last);
            locator.truncate(wire::MAX_LOCATOR);
        }
        m
    }

    pub(super) async fn on_headers(self: &Arc<Self>, id: u64, headers: Vec<BlockHeader>) {
        if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
            p.awaiting_headers = None;
        }
        let Some(first) = headers.first().copied() else {
            // Nothing more on its side: a presync still counting ends here.
            if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
                p.presync = p.presync.take().filter(Presync::is_redownloading);
            }
            return;
        };
        if headers.windows(2).any(|w| w[1].prev != w[0].id() || w[1].height != w[0].height + 1) {
            return self.punish(id, Misbehaviour::NonChainingHeaders);
        }
        // Proof of work first (a few µs each): nothing below is done for headers that
        // do not even meet their own target.
        let params = self.node.params.clone();
        let (headers, pow) = self
            .blocking(move || {
                let r = headers.iter().try_for_each(|h| check_header(&params, h));
                (headers, r)
            })
            .await;
        if let Err(e) = pow {
            return self.punish(id, Misbehaviour::InvalidHeaders(e.to_string()));
        }
        let full = headers.len() == wire::MAX_HEADERS;
        let last = headers.last().expect("not empty").id();
        let (best, base) = {
            let chain = self.node.chain.lock().expect("chain lock is never poisoned");
            (chain.best_header_work(), chain.entry(&first.prev).map(|e| e.work()))
        };
        let presync = {
            let mut peers = self.peers.lock().expect("never poisoned");
            let Some(p) = peers.get_mut(&id) else { return };
            if base.is_some() || p.presync.as_ref().is_some_and(|s| s.last() == first.prev) {
                p.unconnecting = 0;
            } else {
                p.unconnecting += 1;
                let n = p.unconnecting;
                drop(peers);
                if n > MAX_UNCONNECTING {
                    return self.punish(id, Misbehaviour::UnconnectingHeaders);
                }
                let m = self.locator_message();
                return self.send(id, m);
            }
            p.presync.take()
        };
        let (verdict, presync) = match (presync, base) {
            // The next part of a presync (counted, not stored) or of its redownload.
            (Some(mut ps), _) if ps.last() == first.prev || ps.is_redownloading() => {
                let v = ps.feed(&headers, full, best);
                (v, Some(ps))
            }
            (_, Some(base_work)) => {
                let work = headers.iter().map(block_work).fold(base_work, U256::saturating_add);
                if work > best {
                    (Verdict::Store, None)
                } else if full {
                    let mut ps = Presync::start(first.prev, base_work);
                    let v = ps.feed(&headers, full, best);
                    (v, Some(ps))
                } else {
                    (Verdict::Drop, None)
                }
            }
            (_, None) => (Verdict::Drop, None),
        };
        let keep = |ps: Option<Presync>| {
            if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
                p.presync = ps.filter(|s| !s.redownload_done());
            }
        };
        match verdict {
            Verdict::Store => {
                keep(presync);
                self.store_headers(id, headers, full, last).await
            }
            Verdict::Continue(from) | Verdict::Redownload(from) => {
                keep(presync);
                self.send(id, Message::GetHeaders { locator: vec![from], stop: BlockId::ZERO });
            }
            Verdict::Drop => {
                tracing::debug!(peer = id, "headers of a branch behind the best; not stored");
            }
            Verdict::Changed => self.punish(id, Misbehaviour::ChangedHeaders),
        }
    }

    /// Stores a batch of headers (the chain lock held for at most [`wire::MAX_HEADERS`]
    /// header checks), then asks for bodies and, after a full batch, for more headers.
    async fn store_headers(
        self: &Arc<Self>,
        id: u64,
        headers: Vec<BlockHeader>,
        full: bool,
        last: BlockId,
    ) {
        let node = self.node.clone();
        let result = self
            .blocking(move || {
                let mut chain = node.chain.lock().expect("chain lock is never poisoned");
                for h in &headers {
                    match chain.accept_header(h, now_ms()) {
                        Ok(_) => {}
                        Err(ChainError::Invalid { error, .. }) if error.is_temporary() => {
                            return Stored::Early
                        }
                        Err(e @ (ChainError::Invalid { .. } | ChainError::KnownInvalid(_))) => {
                            return Stored::Invalid(e.to_string())
                        }
                        // Our operator's choice, not the peer's fault: stop, no blame.
                        Err(ChainError::InvalidatedByHand(_)) => return Stored::Early,
                        Err(e) => return Stored::Failed(e.to_string()),
                    }
                }
                Stored::Ok
            })
            .await;
        match result {
            Stored::Ok => {
                let last_height = self
                    .node
                    .chain
                    .lock()
                    .expect("chain lock is never poisoned")
                    .entry(&last)
                    .map(|e| e.header.height);
                if let (Some(h), Some(p)) =
                    (last_height, self.peers.lock().expect("never poisoned").get_mut(&id))
                {
                    p.reached(h);
                }
                // This peer first, then every other peer that has the blocks: bodies come
                // from several peers at once.
                self.request_blocks(id);
                self.request_from_all();
                if full {
                    let m = self.locator_after(last);
                    self.send(id, m);
                }
            }
            Stored::Early => tracing::debug!(
                peer = id,
                "headers not taken now (too far in the future, or on a branch invalidated by hand)"
            ),
            Stored::Invalid(reason) => self.punish(id, Misbehaviour::InvalidHeaders(reason)),
            Stored::Failed(e) => tracing::warn!(peer = id, error = %e, "headers not stored"),
        }
    }

    /// Periodic work: stalled block requests, sync progress, address discovery.
    pub(super) async fn housekeeping(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.timings.housekeeping);
        let mut sample: Option<(Instant, u64)> = None;
        let mut last_log: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.node.shutdown.cancelled() => return,
            }
            self.reassign_stalled();
            // Bodies still missing with nothing asked (after a restart the headers of an
            // unfinished sync are stored, but no new header will come to trigger requests):
            // every peer that has them is asked, within its in-flight window.
            self.request_from_all();
            self.update_sync(&mut sample, &mut last_log);
            self.discover();
        }
    }

    /// Moves block requests a peer has not answered within `timings.stall` to other peers.
    fn reassign_stalled(&self) {
        let now = Instant::now();
        let mut moved = 0;
        {
            let mut peers = self.peers.lock().expect("never poisoned");
            for p in peers.values_mut() {
                let late: Vec<BlockId> = p
                    .in_flight
                    .iter()
                    .filter(|(_, at)| now.duration_since(**at) > self.timings.stall)
                    .map(|(b, _)| *b)
                    .collect();
                for b in late {
                    p.in_flight.remove(&b);
                    p.stalled.insert(b);
                    moved += 1;
                }
                if p.stalled.len() > 100_000 {
                    p.stalled.clear();
                }
            }
        }
        if moved > 0 {
            self.sync.lock().expect("never poisoned").stalled_requests += moved;
            tracing::info!(blocks = moved, "block requests stalled; asking other peers");
            self.request_from_all();
        }
    }

    /// Gives every peer a chance to take block requests.
    pub(super) fn request_from_all(&self) {
        let ids: Vec<u64> = self.peers.lock().expect("never poisoned").keys().copied().collect();
        for id in ids {
            self.request_blocks(id);
        }
    }

    /// Recomputes the sync status; logs progress while syncing. Only validated headers
    /// make the node "syncing": a height a peer merely claims does not.
    fn update_sync(&self, sample: &mut Option<(Instant, u64)>, last_log: &mut Option<Instant>) {
        let (height, header_height) = {
            let chain = self.node.chain.lock().expect("chain lock is never poisoned");
            (chain.height(), chain.best_header_height())
        };
        let target = header_height.max(height);
        let now = Instant::now();
        let mut st = self.sync.lock().expect("never poisoned");
        if let Some((at, h)) = *sample {
            let dt = now.duration_since(at).as_secs_f64();
            if dt > 0.0 {
                let rate = height.saturating_sub(h) as f64 / dt;
                // Smoothed over roughly the last five samples.
                st.blocks_per_sec = if st.blocks_per_sec == 0.0 {
                    rate
                } else {
                    0.8 * st.blocks_per_sec + 0.2 * rate
                };
            }
        }
        *sample = Some((now, height));
        st.height = height;
        st.target_height = target;
        st.syncing = target > height;
        st.eta_secs = (st.syncing && st.blocks_per_sec > 0.01)
            .then(|| ((target - height) as f64 / st.blocks_per_sec).ceil() as u64);
        if st.syncing && last_log.is_none_or(|t| now.duration_since(t) >= self.timings.progress_log)
        {
            *last_log = Some(now);
            tracing::info!(
                height,
                target_height = target,
                blocks_per_sec = format!("{:.1}", st.blocks_per_sec),
                eta_secs = st.eta_secs,
                "syncing"
            );
        }
    }

    /// Requests bodies of header-only blocks on the best header chain, a bounded window at a
    /// time from this peer.
    pub(super) fn request_blocks(&self, id: u64) {
        let wanted: Vec<(BlockId, u64)> = {
            let mut chain = self.node.chain.lock().expect("chain lock is never poisoned");
            chain.missing_bodies(MAX_BLOCKS_IN_FLIGHT * 4)
        };
        let mut peers = self.peers.lock().expect("never poisoned");
        let in_flight_elsewhere: HashSet<BlockId> = peers
            .iter()
            .filter(|(pid, _)| **pid != id)
            .flat_map(|(_, p)| p.in_flight.keys().copied())
            .collect();
        let Some(p) = peers.get_mut(&id) else { return };
        let ask: Vec<Inv> =
            pick_requests(&wanted, p.height, &p.in_flight, &p.stalled, &in_flight_elsewhere)
                .into_iter()
                .map(Inv::Block)
                .collect();
        let now = Instant::now();
        for i in &ask {
            if let Inv::Block(b) = i {
                p.in_flight.insert(*b, now);
            }
        }
        if !ask.is_empty() && !p.outbox.gossip_msg(&Message::GetData(ask)) {
            p.cancel.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlockId {
        BlockId::from_bytes([n; 32])
    }

    #[test]
    fn requests_go_only_where_the_peer_can_serve_them_and_never_twice() {
        let wanted: Vec<(BlockId, u64)> = (1..=100u8).map(|n| (id(n), n as u64)).collect();
        let none = HashSet::new();
        // A peer at height 10 is asked for blocks 1-10 only.
        let got = pick_requests(&wanted, 10, &HashMap::new(), &none, &none);
        assert_eq!(got, (1..=10u8).map(id).collect::<Vec<_>>());
        // In flight with it, with another peer, or stalled with it: not asked.
        let mut in_flight = HashMap::new();
        in_flight.insert(id(1), Instant::now());
        let elsewhere: HashSet<BlockId> = [id(2)].into();
        let stalled: HashSet<BlockId> = [id(3)].into();
        let got = pick_requests(&wanted, 5, &in_flight, &stalled, &elsewhere);
        assert_eq!(got, vec![id(4), id(5)]);
        // At most 64 in flight per peer.
        let full: HashMap<BlockId, Instant> =
            (101..=160u8).map(|n| (id(n), Instant::now())).collect();
        assert_eq!(
            pick_requests(&wanted, 100, &full, &none, &none).len(),
            MAX_BLOCKS_IN_FLIGHT - 60
        );
    }
}
