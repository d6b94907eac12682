//! Making and taking connections: the accept loop, persistent `--peer` connections,
//! discovery from the address book, and the limits on connections.
//!
//! Bounds on what strangers can make us hold before they prove anything:
//! - at most [`MAX_HANDSHAKING`] inbound connections in the handshake at once, and at most
//!   [`MAX_HANDSHAKING_PER_IP`] from one IP (loopback excepted: a local testnet is one
//!   IP). When the slots are full, a new connection takes the slot of the oldest one, which
//!   is closed: a flood of silent connections cannot keep an honest peer from its
//!   handshake, which takes a round trip, not the handshake timeout.
//! - after the handshake, at most `--max-inbound` inbound peers; when full, the newest
//!   peer of the IP with the most inbound peers is evicted for the newcomer (unless the
//!   newcomer's IP already has the most; a simplified form of Bitcoin Core's inbound
//!   eviction, which protects peers by network group).
//! - accept errors (e.g. out of file descriptors) back off from 10 ms to 1 s and are
//!   logged at most once per [`ACCEPT_LOG_EVERY`], with a count of those not logged.

use super::disconnect::DisconnectReason;
use super::identity::NodeId;
use super::peer::{run_peer, Ended, Slot};
use super::{transport, Network};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most inbound connections in the handshake at once.
pub const MAX_HANDSHAKING: usize = 32;
/// Most inbound connections in the handshake from one (non-loopback) IP.
pub const MAX_HANDSHAKING_PER_IP: usize = 4;
/// Least time between two "accept failed" log lines.
pub const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Inbound connections still in the handshake, oldest first.
#[derive(Default)]
pub struct Handshaking {
    next: u64,
    open: VecDeque<(u64, IpAddr, CancellationToken)>,
}

impl Handshaking {
    /// Gives a new connection from `ip` a slot, taking the oldest one's when all are in
    /// use; `None` when `ip` already holds its share.
    pub fn admit(&mut self, ip: IpAddr) -> Option<Slot> {
        if !ip.is_loopback()
            && self.open.iter().filter(|(_, i, _)| *i == ip).count() >= MAX_HANDSHAKING_PER_IP
        {
            return None;
        }
        if self.open.len() >= MAX_HANDSHAKING {
            if let Some((_, _, oldest)) = self.open.pop_front() {
                oldest.cancel();
            }
        }
        self.next += 1;
        let evicted = CancellationToken::new();
        self.open.push_back((self.next, ip, evicted.clone()));
        Some(Slot { id: self.next, evicted })
    }

    /// The handshake in slot `id` ended (either way).
    pub fn done(&mut self, id: u64) {
        self.open.retain(|(s, _, _)| *s != id);
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// The inbound peer to evict for a newcomer from `newcomer` among `inbound` (id, IP,
/// connected since), or `None` to refuse the newcomer: the newest peer of the IP with the
/// most inbound peers, if that IP has more than the newcomer's would have with it.
pub fn eviction_candidate(inbound: &[(u64, IpAddr, Instant)], newcomer: IpAddr) -> Option<u64> {
    let mut per_ip: HashMap<IpAddr, usize> = HashMap::new();
    for (_, ip, _) in inbound {
        *per_ip.entry(*ip).or_default() += 1;
    }
    let (ip, n) = per_ip.iter().max_by_key(|(ip, n)| (**n, **ip))?;
    let theirs = per_ip.get(&newcomer).copied().unwrap_or(0) + 1;
    if *n <= theirs {
        return None;
    }
    inbound.iter().filter(|(_, i, _)| i == ip).max_by_key(|(id, _, at)| (*at, *id)).map(|p| p.0)
}

impl Network {
    /// Whether an inbound peer from `addr` may take a slot, evicting another if needed.
    pub(super) fn make_inbound_room(&self, addr: SocketAddr) -> bool {
        let inbound: Vec<(u64, IpAddr, Instant)> = self
            .peers
            .lock()
            .expect("never poisoned")
            .iter()
            .filter(|(_, p)| p.inbound && !p.cancel.is_cancelled())
            .map(|(id, p)| (*id, p.addr.ip(), p.connected))
            .collect();
        if inbound.len() < self.node.config.max_inbound {
            return true;
        }
        match eviction_candidate(&inbound, addr.ip()) {
            Some(id) => {
                self.drop_peer(id, DisconnectReason::Evicted);
                true
            }
            None => false,
        }
    }

    /// Accepts connections: each gets a handshake slot and a task of its own.
    pub(super) async fn accept_loop(
        self: Arc<Self>,
        mut listener: Box<dyn transport::PeerListener>,
    ) {
        let mut backoff = Duration::from_millis(10);
        let mut last_log: Option<Instant> = None;
        let mut unlogged = 0u64;
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = self.node.shutdown.cancelled() => return,
            };
            let (stream, addr) = match accepted {
                Ok(x) => {
                    backoff = Duration::from_millis(10);
                    x
                }
                Err(e) => {
                    if last_log.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
                        tracing::warn!(error = %e, not_logged = unlogged, "accept failed; backing off");
                        last_log = Some(Instant::now());
                        unlogged = 0;
                    } else {
                        unlogged += 1;
                    }
                    // Out of descriptors or memory: waiting lets other connections close.
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.node.shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            if self.is_banned(addr, None) {
                continue;
            }
            let Some(slot) = self.handshaking.lock().expect("never poisoned").admit(addr.ip())
            else {
                tracing::debug!(peer = %addr, "too many handshakes from this address; refusing");
                continue;
            };
            tokio::spawn(run_peer(self.clone(), stream, addr, true, None, Some(slot)));
        }
    }

    /// One outbound connection attempt, run until it closes. `None` when no connection
    /// was made; otherwise how it ended.
    pub(super) async fn dial(
        self: &Arc<Self>,
        addr: SocketAddr,
        expected: Option<NodeId>,
    ) -> Option<Ended> {
        let connect = tokio::time::timeout(self.timings.connect, self.transport.connect(addr));
        match connect.await {
            Ok(Ok(stream)) => {
                Some(run_peer(self.clone(), stream, addr, false, expected, None).await)
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = %addr, error = %e, "connect failed");
                None
            }
            Err(_) => {
                tracing::debug!(peer = %addr, "connect timed out");
                None
            }
        }
    }

    /// Keeps a connection to a --peer address, reconnecting with exponential back-off.
    pub(super) async fn outbound_loop(self: Arc<Self>, addr: SocketAddr, expected: Option<NodeId>) {
        let mut backoff = Duration::from_millis(250);
        loop {
            if self.node.shutdown.is_cancelled() {
                return;
            }
            if self.is_banned(addr, Some(addr))
                || self.is_connected_to(addr)
                || self.self_addrs.lock().expect("never poisoned").contains(&addr)
            {
                // Wait out the ban, or leave the existing connection alone.
            } else {
                match self.dial(addr, expected).await {
                    // Someone else holds the address: keep backing off (and logging less).
                    Some(Ended::WrongKey) | None => {}
                    // The address answers: retry soon (a link that was cut comes back fast).
                    Some(Ended::Handshaked | Ended::Failed) => {
                        backoff = Duration::from_millis(250);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.node.shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(self.timings.max_backoff);
        }
    }

    /// Dials one address from the address book when fewer outbound peers are connected than
    /// `--outbound` asks for (unless `--no-discover`).
    pub(super) fn discover(self: &Arc<Self>) {
        let cfg = &self.node.config;
        if !cfg.discover {
            return;
        }
        let (outbound, connected): (usize, HashSet<SocketAddr>) = {
            let peers = self.peers.lock().expect("never poisoned");
            (
                peers.values().filter(|p| !p.inbound).count(),
                peers.values().flat_map(|p| [Some(p.addr), p.listen_addr]).flatten().collect(),
            )
        };
        if outbound >= cfg.outbound {
            return;
        }
        let own = self.self_addrs.lock().expect("never poisoned").clone();
        let dialing = self.dialing.lock().expect("never poisoned").clone();
        let candidate = self.addr_book.lock().expect("never poisoned").select(
            |a| {
                !connected.contains(a)
                    && !own.contains(a)
                    && !dialing.contains(a)
                    && !self.is_banned(*a, Some(*a))
            },
            &mut rand::thread_rng(),
        );
        let Some(addr) = candidate else { return };
        self.addr_book.lock().expect("never poisoned").attempt(addr, crate::node::now_ms());
        self.dialing.lock().expect("never poisoned").insert(addr);
        let net = self.clone();
        tokio::spawn(async move {
            if net.dial(addr, None).await != Some(Ended::Handshaked) {
                net.addr_book.lock().expect("never poisoned").failed(&addr);
            }
            net.dialing.lock().expect("never poisoned").remove(&addr);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_flood_of_handshakes_takes_the_oldest_slots_not_more() {
        let mut h = Handshaking::default();
        let mut slots = Vec::new();
        for _ in 0..1_100 {
            slots.push(h.admit(ip("127.0.0.1")).expect("loopback has no per-IP share"));
        }
        assert_eq!(h.len(), MAX_HANDSHAKING);
        let closed = slots.iter().filter(|s| s.evicted.is_cancelled()).count();
        assert_eq!(closed, 1_100 - MAX_HANDSHAKING);
        // A newcomer still gets a slot, and its handshake ending frees it.
        let honest = h.admit(ip("127.0.0.1")).unwrap();
        h.done(honest.id);
        assert_eq!(h.len(), MAX_HANDSHAKING - 1);
    }

    #[test]
    fn one_remote_ip_gets_its_share_of_handshake_slots() {
        let mut h = Handshaking::default();
        for _ in 0..MAX_HANDSHAKING_PER_IP {
            assert!(h.admit(ip("203.0.113.9")).is_some());
        }
        assert!(h.admit(ip("203.0.113.9")).is_none());
        assert!(h.admit(ip("198.51.100.1")).is_some());
        assert_eq!(h.len(), MAX_HANDSHAKING_PER_IP + 1);
    }

    #[test]
    fn eviction_takes_the_newest_peer_of_the_most_crowded_ip() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let inbound = vec![
            (1, ip("203.0.113.1"), at(0)),
            (2, ip("203.0.113.1"), at(5)),
            (3, ip("203.0.113.1"), at(3)),
            (4, ip("198.51.100.1"), at(1)),
        ];
        assert_eq!(eviction_candidate(&inbound, ip("192.0.2.7")), Some(2));
        // The crowded IP itself cannot take a slot from a lonelier one.
        let even = vec![(1, ip("203.0.113.1"), at(0)), (2, ip("198.51.100.1"), at(1))];
        assert_eq!(eviction_candidate(&even, ip("203.0.113.1")), None);
    }
}
