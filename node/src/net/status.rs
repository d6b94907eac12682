//! What RPC and `GET /ready` read of the network: the peer list (`net_peers`), sync
//! progress, the best heights and work peers showed or proved, and readiness (with the
//! grace an unproven claim gets, see [`super::claims`]). Read-only but for the claims
//! marks; each call holds the peer table's lock for one pass over at most every peer.

use super::claims::claim_group;
use super::{Network, SyncStatus};
use ember_core::U256;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

/// How long `GET /ready` waits for a peer's answer to the locator sent at connect.
pub const READY_GRACE: std::time::Duration = super::claims::GRACE;

/// See [`Network::readiness`].
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    pub peers: usize,
    pub proven_height: u64,
    pub awaiting_headers: bool,
}

/// What `net_peers` shows of a peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub id: u64,
    /// The static key the peer proved in the Noise handshake.
    pub node_id: String,
    pub address: String,
    pub listen_address: Option<String>,
    pub direction: &'static str,
    pub user_agent: String,
    pub height: u64,
    pub latency_ms: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Bytes queued to the peer and not yet written (both queues).
    pub send_queue_bytes: u64,
    pub ban_score: u32,
    pub connected_secs: u64,
}

impl Network {
    /// The node's sync progress.
    pub fn sync_status(&self) -> SyncStatus {
        self.sync.lock().expect("never poisoned").clone()
    }

    /// How many addresses the address book holds (≤ 6,144), without copying them.
    pub fn known_address_count(&self) -> usize {
        self.addr_book.lock().expect("never poisoned").len()
    }

    /// Payments of whole blocks from peers whose signatures were all found valid ahead, on
    /// every core, before the chain lock: during a sync, every payment of every block.
    pub fn payments_checked_ahead(&self) -> u64 {
        self.checked_ahead.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn peer_count(&self) -> usize {
        self.peers.lock().expect("never poisoned").len()
    }

    /// What `GET /ready` weighs: connected peers, the best height a peer has proven (by
    /// headers or blocks, never by its handshake claim), and whether a peer that claimed
    /// more work has not answered our locator yet, within its group's grace
    /// ([`super::claims`]: at most [`READY_GRACE`] from the group's oldest unanswered
    /// claim; reconnecting does not renew it).
    pub fn readiness(&self) -> Readiness {
        let peers = self.peers.lock().expect("never poisoned");
        let mut claims = self.claims.lock().expect("never poisoned");
        let now = tokio::time::Instant::now();
        let mut awaiting_headers = false;
        for p in peers.values().filter(|p| p.awaiting_headers.is_some()) {
            // Every group is looked at (not stopping at the first that holds), so each
            // grace that ran out is marked.
            awaiting_headers |= claims.holds(&claim_group(p.addr, p.listen_addr), now);
        }
        // A height proven by headers whose bodies nobody sends does not count.
        let cap = self.cap_locked(&peers, self.node.tip.get().height);
        Readiness {
            peers: peers.len(),
            proven_height: peers.values().map(|p| p.proven).max().unwrap_or(0).min(cap),
            awaiting_headers,
        }
    }

    /// The highest height the sync target and proven heights may count: below the lowest
    /// header-only block above `height` whose body a peer withheld and nobody else is
    /// fetching ([`super::undelivered`]).
    pub(super) fn undelivered_cap(&self, height: u64) -> u64 {
        let peers = self.peers.lock().expect("never poisoned");
        self.cap_locked(&peers, height)
    }

    fn cap_locked(&self, peers: &HashMap<u64, super::peer::Peer>, height: u64) -> u64 {
        let groups: Vec<(u64, Vec<u8>)> =
            peers.iter().map(|(id, p)| (*id, claim_group(p.addr, p.listen_addr))).collect();
        let in_flight = groups
            .iter()
            .flat_map(|(id, g)| peers[id].in_flight.keys().map(move |b| (b, g.as_slice())));
        let mut undelivered = self.undelivered.lock().expect("never poisoned");
        undelivered.prune(height);
        undelivered.cap(in_flight)
    }

    /// A peer at `addr` (listening on `listen`) claimed more work and is sent our locator.
    pub(super) fn claim_made(&self, addr: SocketAddr, listen: Option<SocketAddr>) {
        let now = tokio::time::Instant::now();
        self.claims.lock().expect("never poisoned").claimed(claim_group(addr, listen), now);
    }

    /// A peer at `addr` answered our locator.
    pub(super) fn claim_answered(&self, addr: SocketAddr, listen: Option<SocketAddr>) {
        self.claims.lock().expect("never poisoned").answered(&claim_group(addr, listen));
    }

    /// Best height any peer showed.
    pub fn best_peer_height(&self) -> u64 {
        self.peers.lock().expect("never poisoned").values().map(|p| p.height).max().unwrap_or(0)
    }

    /// Most cumulative work any peer claimed at its handshake (a claim, not a proof).
    pub fn best_peer_work(&self) -> U256 {
        self.peers
            .lock()
            .expect("never poisoned")
            .values()
            .map(|p| p.work)
            .max()
            .unwrap_or_default()
    }

    /// Every connected peer, by connection id (`net_peers`).
    pub fn peers(&self) -> Vec<PeerView> {
        let peers = self.peers.lock().expect("never poisoned");
        let mut out: Vec<PeerView> = peers
            .iter()
            .map(|(id, p)| PeerView {
                id: *id,
                node_id: p.node_id.to_string(),
                address: p.addr.to_string(),
                listen_address: p.listen_addr.map(|a| a.to_string()),
                direction: if p.inbound { "inbound" } else { "outbound" },
                user_agent: p.user_agent.clone(),
                height: p.height,
                latency_ms: p.latency_ms,
                bytes_in: p.bytes_in.load(Ordering::Relaxed),
                bytes_out: p.bytes_out.load(Ordering::Relaxed),
                send_queue_bytes: p.outbox.queued_bytes() as u64,
                ban_score: p.ban_score,
                connected_secs: p.connected.elapsed().as_secs(),
            })
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }
}
