//! Header-first sync: headers (through [`super::presync`]), then bodies from every peer
//! that has them, a bounded window each; stalled requests move to other peers.
//!
//! What a `Headers` message leads to is decided by [`super::headers`] (no I/O); this file
//! carries it out: proof-of-work checks on the blocking pool, storing under the chain lock,
//! requests. Which bodies to ask of which peer, and which requests stalled, are decided by
//! [`pick_requests`] and [`take_stalled`] (no I/O, unit-tested).

use super::claims::claim_group;
use super::disconnect::Misbehaviour;
use super::headers::{check_chaining, HeadersAction};
use super::wire::{self, Inv, Message};
use super::{Network, MAX_BLOCKS_IN_FLIGHT};
use crate::chain::ChainError;
use crate::node::now_ms;
use ember_core::validate::check_header;
use ember_core::{BlockHeader, BlockId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::time::Instant;

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
/// its `height`), not already asked of it or of another peer, not in `stalled` (those it
/// stalled on that another peer can serve, [`stalled_to_avoid`]), at most
/// [`MAX_BLOCKS_IN_FLIGHT`] in flight with it.
pub fn pick_requests(
    wanted: &[(BlockId, u64)],
    height: u64,
    in_flight: &HashMap<BlockId, (Instant, u64)>,
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

/// The blocks stalled with one peer (`stalled`) that it is not asked for again: those
/// another connected peer can be asked for (`others`: each other peer's height and its own
/// stalled blocks). A block nobody else can serve is asked again of the peer that stalled
/// on it, at the next request round: a busy peer on the only path to the chain (a node with
/// one peer, a line), slow or answering `NotFound` for a block it forwarded before storing
/// it, would else never be asked again while connected, and the node stopped syncing for
/// good (Core disconnects a peer that stalls the download window, which on
/// the only path cuts the node off all the same).
pub fn stalled_to_avoid(
    stalled: &HashSet<BlockId>,
    wanted: &[(BlockId, u64)],
    others: &[(u64, &HashSet<BlockId>)],
) -> HashSet<BlockId> {
    wanted
        .iter()
        .filter(|(b, h)| {
            stalled.contains(b)
                && others.iter().any(|(height, theirs)| height >= h && !theirs.contains(b))
        })
        .map(|(b, _)| *b)
        .collect()
}

/// The group a missing body is charged to when no connected peer can be asked for it
/// (see [`Network::mark_unrequestable`]); no peer's group looks like it.
const NOBODY: &[u8] = b"(no connected peer)";

/// Stalled requests remembered per peer, then forgotten at once (each costs 32 bytes).
pub const MAX_STALLED: usize = 100_000;

/// Moves the requests of one peer older than `after` at `now` from `in_flight` to
/// `stalled` (not asked of that peer again while it is connected and another peer can be
/// asked, [`stalled_to_avoid`]); returns them, with their heights. `stalled` holds at most [`MAX_STALLED`] ids.
pub fn take_stalled(
    in_flight: &mut HashMap<BlockId, (Instant, u64)>,
    stalled: &mut HashSet<BlockId>,
    now: Instant,
    after: std::time::Duration,
) -> Vec<(BlockId, u64)> {
    let mut late = Vec::new();
    in_flight.retain(|b, (at, height)| {
        let is_late = now.saturating_duration_since(*at) > after;
        if is_late {
            stalled.insert(*b);
            late.push((*b, *height));
        }
        !is_late
    });
    if stalled.len() > MAX_STALLED {
        stalled.clear();
    }
    late
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

    /// A `Headers` message from peer `id`. Its claim (if it made one) counts as answered
    /// only once the message has been handled: until the headers are stored and the peer's
    /// proven height recorded, `/ready` must go on seeing the claim, or it would say ready
    /// at our old height while the answer is still being hashed on the blocking pool.
    pub(super) async fn on_headers(self: &Arc<Self>, id: u64, headers: Vec<BlockHeader>) {
        self.handle_headers(id, headers).await;
        let answered = self
            .peers
            .lock()
            .expect("never poisoned")
            .get_mut(&id)
            .and_then(|p| p.awaiting_headers.take().map(|_| (p.addr, p.listen_addr)));
        if let Some((addr, listen)) = answered {
            self.claim_answered(addr, listen);
        }
    }

    async fn handle_headers(self: &Arc<Self>, id: u64, headers: Vec<BlockHeader>) {
        let Some(first) = headers.first().copied() else {
            if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
                p.headers.on_empty();
            }
            return;
        };
        // The manager's state is taken out of the peer table while it decides, and put
        // back: only this peer's reader handles its `Headers`, so nothing else touches it
        // meanwhile.
        let Some(mut state) = self
            .peers
            .lock()
            .expect("never poisoned")
            .get_mut(&id)
            .map(|p| std::mem::take(&mut p.headers))
        else {
            return;
        };
        // Every hash of the message (ids, proof of work, presync commitments: up to 3
        // per header) on the blocking pool, so a peer flooding headers never holds up the
        // runtime's workers (RPC among them); the chain lock only for two look-ups.
        let node = self.node.clone();
        let (headers, state, action) = self
            .blocking(move || {
                let action = match check_chaining(&headers).and_then(|()| {
                    headers
                        .iter()
                        .try_for_each(|h| check_header(&node.params, h))
                        .map_err(|e| Misbehaviour::InvalidHeaders(e.to_string()))
                }) {
                    Err(m) => HeadersAction::Punish(m),
                    Ok(()) => {
                        let (best, base) = {
                            let chain = node.chain.lock().expect("chain lock is never poisoned");
                            (chain.best_header_work(), chain.entry(&first.prev).map(|e| e.work()))
                        };
                        state.on_headers(&headers, base, best)
                    }
                };
                (headers, state, action)
            })
            .await;
        if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
            p.headers = state;
        }
        let full = headers.len() == wire::MAX_HEADERS;
        let last = headers.last().expect("not empty").id();
        match action {
            HeadersAction::Store => self.store_headers(id, headers, full, last).await,
            HeadersAction::AskFrom(from) => {
                self.send(id, Message::GetHeaders { locator: vec![from], stop: BlockId::ZERO })
            }
            HeadersAction::SendLocator => {
                let m = self.locator_message();
                self.send(id, m)
            }
            HeadersAction::Nothing => {
                tracing::debug!(peer = id, "headers of a branch behind the best; not stored");
            }
            HeadersAction::Punish(m) => self.punish(id, m),
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
                let mut stored = Stored::Ok;
                for h in &headers {
                    stored = match chain.accept_header(h, now_ms()) {
                        Ok(_) => continue,
                        Err(ChainError::Invalid { error, .. }) if error.is_temporary() => {
                            Stored::Early
                        }
                        Err(e @ (ChainError::Invalid { .. } | ChainError::KnownInvalid(_))) => {
                            Stored::Invalid(e.to_string())
                        }
                        // Our operator's choice, not the peer's fault: stop, no blame.
                        Err(ChainError::InvalidatedByHand(_)) => Stored::Early,
                        Err(e) => Stored::Failed(e.to_string()),
                    };
                    break;
                }
                // Headers change what readers see (`known_headers`).
                node.tip.publish(&chain);
                stored
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
                let late = take_stalled(&mut p.in_flight, &mut p.stalled, now, self.timings.stall);
                moved += late.len();
                self.not_delivered(p, late);
            }
        }
        if moved > 0 {
            self.sync.lock().expect("never poisoned").stalled_requests += moved as u64;
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
        let (height, header_height, wanted) = {
            let mut chain = self.node.chain.lock().expect("chain lock is never poisoned");
            let wanted = chain.missing_bodies(MAX_BLOCKS_IN_FLIGHT * 4);
            (chain.height(), chain.best_header_height(), wanted)
        };
        self.mark_unrequestable(&wanted);
        // Headers whose bodies nobody is sending do not count ([`super::undelivered`]).
        let target = header_height.min(self.undelivered_cap(height)).max(height);
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

    /// Peer `p` did not deliver these bodies (stalled, or `NotFound`): charged to its
    /// address group ([`super::undelivered`]).
    pub(super) fn not_delivered(&self, p: &super::peer::Peer, blocks: Vec<(BlockId, u64)>) {
        if blocks.is_empty() {
            return;
        }
        let group = claim_group(p.addr, p.listen_addr);
        let mut undelivered = self.undelivered.lock().expect("never poisoned");
        for (b, height) in blocks {
            undelivered.failed(b, height, group.clone());
        }
    }

    /// Marks as undelivered (by nobody in particular) the missing bodies that no connected
    /// peer can be asked for and nobody is fetching: their headers' senders left (before or
    /// after we asked them) or stalled, and no other peer has shown that height. Such a
    /// header counts again once a peer that has shown its height is asked for it.
    fn mark_unrequestable(&self, wanted: &[(BlockId, u64)]) {
        let peers = self.peers.lock().expect("never poisoned");
        let mut undelivered = self.undelivered.lock().expect("never poisoned");
        for (b, height) in wanted {
            let fetching = peers.values().any(|p| p.in_flight.contains_key(b));
            let askable = peers.values().any(|p| p.height >= *height && !p.stalled.contains(b));
            if !fetching && !askable {
                undelivered.failed(*b, *height, NOBODY.to_vec());
            }
        }
    }

    /// Requests bodies of header-only blocks on the best header chain, a bounded window at a
    /// time from this peer.
    pub(super) fn request_blocks(&self, id: u64) {
        let wanted: Vec<(BlockId, u64)> = {
            let mut chain = self.node.chain.lock().expect("chain lock is never poisoned");
            chain.missing_bodies(MAX_BLOCKS_IN_FLIGHT * 4)
        };
        let heights: HashMap<BlockId, u64> = wanted.iter().copied().collect();
        let mut peers = self.peers.lock().expect("never poisoned");
        let in_flight_elsewhere: HashSet<BlockId> = peers
            .iter()
            .filter(|(pid, _)| **pid != id)
            .flat_map(|(_, p)| p.in_flight.keys().copied())
            .collect();
        let Some(p) = peers.get(&id) else { return };
        let others: Vec<(u64, &HashSet<BlockId>)> = peers
            .iter()
            .filter(|(pid, _)| **pid != id)
            .map(|(_, q)| (q.height, &q.stalled))
            .collect();
        let avoid = stalled_to_avoid(&p.stalled, &wanted, &others);
        let Some(p) = peers.get_mut(&id) else { return };
        let ask: Vec<Inv> =
            pick_requests(&wanted, p.height, &p.in_flight, &avoid, &in_flight_elsewhere)
                .into_iter()
                .map(Inv::Block)
                .collect();
        let now = Instant::now();
        for i in &ask {
            if let Inv::Block(b) = i {
                p.in_flight.insert(*b, (now, heights.get(b).copied().unwrap_or(0)));
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
    fn requests_older_than_the_stall_timeout_move_to_stalled() {
        let t0 = Instant::now();
        let after = std::time::Duration::from_secs(10);
        let mut in_flight: HashMap<BlockId, (Instant, u64)> =
            [(id(1), (t0, 1)), (id(2), (t0 + std::time::Duration::from_secs(5), 2))].into();
        let mut stalled = HashSet::new();
        // Exactly at the timeout: not yet late.
        assert_eq!(take_stalled(&mut in_flight, &mut stalled, t0 + after, after), vec![]);
        assert_eq!(
            take_stalled(
                &mut in_flight,
                &mut stalled,
                t0 + after + std::time::Duration::from_millis(1),
                after
            ),
            vec![(id(1), 1)]
        );
        assert_eq!(
            (in_flight.len(), stalled.iter().copied().collect::<Vec<_>>()),
            (1, vec![id(1)])
        );
        // Stalled blocks to avoid are not picked for that peer.
        let wanted = [(id(1), 1), (id(2), 2), (id(3), 3)];
        assert_eq!(pick_requests(&wanted, 3, &in_flight, &stalled, &HashSet::new()), vec![id(3)]);
        // The stalled set is bounded.
        let mut many: HashMap<BlockId, (Instant, u64)> = (0..=MAX_STALLED as u32)
            .map(|n| {
                let mut b = [0u8; 32];
                b[..4].copy_from_slice(&n.to_le_bytes());
                (BlockId::from_bytes(b), (t0, n as u64))
            })
            .collect();
        let mut stalled = HashSet::new();
        assert_eq!(
            take_stalled(&mut many, &mut stalled, t0 + after * 2, after).len(),
            MAX_STALLED + 1
        );
        assert!(stalled.is_empty(), "over {MAX_STALLED}: forgotten at once");
    }

    /// A node whose only peer that has the blocks stalled on them (busy serving, on a
    /// line) asks it again; with another peer that can serve them, it asks that one.
    #[test]
    fn a_block_stalled_with_the_only_peer_that_has_it_is_asked_of_it_again() {
        let wanted: Vec<(BlockId, u64)> = (1..=4u8).map(|n| (id(n), n as u64)).collect();
        let stalled: HashSet<BlockId> = [id(1), id(2)].into();
        let none = HashSet::new();
        // Alone (or the others are behind): nothing to avoid, both are asked again.
        assert!(stalled_to_avoid(&stalled, &wanted, &[]).is_empty());
        // Another at height 1 can serve block 1 only: block 2 is asked of this one again.
        assert!(stalled_to_avoid(&stalled, &wanted, &[(1, &none)]) == [id(1)].into());
        let avoid = stalled_to_avoid(&stalled, &wanted, &[(0, &none)]);
        let got = pick_requests(&wanted, 4, &HashMap::new(), &avoid, &none);
        assert_eq!(got, (1..=4u8).map(id).collect::<Vec<_>>());
        // Another peer at the tip can serve both: they go there, not back to this one.
        let avoid = stalled_to_avoid(&stalled, &wanted, &[(4, &none)]);
        assert_eq!(pick_requests(&wanted, 4, &HashMap::new(), &avoid, &none), vec![id(3), id(4)]);
        // One that stalled on block 1 too cannot: block 1 is asked of this peer again.
        let theirs: HashSet<BlockId> = [id(1)].into();
        let avoid = stalled_to_avoid(&stalled, &wanted, &[(4, &theirs)]);
        assert_eq!(avoid, [id(2)].into());
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
        in_flight.insert(id(1), (Instant::now(), 1));
        let elsewhere: HashSet<BlockId> = [id(2)].into();
        let stalled: HashSet<BlockId> = [id(3)].into();
        let got = pick_requests(&wanted, 5, &in_flight, &stalled, &elsewhere);
        assert_eq!(got, vec![id(4), id(5)]);
        // At most 64 in flight per peer.
        let full: HashMap<BlockId, (Instant, u64)> =
            (101..=160u8).map(|n| (id(n), (Instant::now(), n as u64))).collect();
        assert_eq!(
            pick_requests(&wanted, 100, &full, &none, &none).len(),
            MAX_BLOCKS_IN_FLIGHT - 60
        );
    }
}
