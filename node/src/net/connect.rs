//! Making and taking connections: the accept loop, persistent `--peer` connections,
//! discovery from the address book, and the limits on connections.
//!
//! Bounds on what strangers can make us hold before they prove anything:
//! - at most [`MAX_HANDSHAKING`] inbound connections in the handshake at once, and at most
//!   [`MAX_HANDSHAKING_PER_IP`] from one IP (loopback excepted: a local testnet is one
//!   IP). When the slots are full, a new connection takes the slot of the oldest one, which
//!   is closed: a flood of silent connections cannot keep an honest peer from its
//!   handshake, which takes a round trip, not the handshake timeout.
//! - after the handshake, at most `--max-inbound` inbound peers; when full, one is evicted
//!   for the newcomer by [`eviction_candidate`] (Bitcoin Core's inbound eviction,
//!   simplified: peers with a low ping, that gave us blocks, or connected longest are
//!   protected; the newest of the largest network group goes).
//! - accept errors (e.g. out of file descriptors) back off from 10 ms to 1 s and are
//!   logged at most once per [`ACCEPT_LOG_EVERY`], with a count of those not logged.

use super::disconnect::DisconnectReason;
use super::identity::{Endpoint, NodeId};
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

/// What inbound eviction knows of an inbound peer.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub id: u64,
    /// Its network group ([`eviction_group`]).
    pub group: Vec<u8>,
    pub connected: Instant,
    pub latency_ms: Option<u64>,
    /// When it last gave us a block we did not have.
    pub last_block: Option<Instant>,
}

/// The group inbound peers are counted in: the address group of a public address (IPv4
/// /16, IPv6 /32, as the address manager's), the exact IP of a private or loopback one
/// (on a local or container network each host is its own operator).
pub fn eviction_group(ip: IpAddr) -> Vec<u8> {
    let ip = ip.to_canonical();
    let public = match ip {
        IpAddr::V4(a) => !(a.is_private() || a.is_loopback() || a.is_link_local()),
        IpAddr::V6(a) => !(a.is_loopback() || a.is_unique_local() || a.is_unicast_link_local()),
    };
    match ip {
        IpAddr::V4(a) if public => [&[4u8][..], &a.octets()[..2]].concat(),
        IpAddr::V6(a) if public => [&[6u8][..], &a.octets()[..4]].concat(),
        other => other.to_string().into_bytes(),
    }
}

/// The inbound peer to evict so a newcomer can have its slot (Bitcoin Core's
/// `SelectNodeToEvict`, simplified), or `None` when every peer is protected. Protected:
/// the [`PROTECT_EACH`] with the lowest ping, the [`PROTECT_EACH`] that most recently gave
/// us a new block, then the longest-connected half of the rest. Of the others, the newest
/// peer of the group with the most peers goes. So a party that opens many connections
/// evicts mostly its own, and cannot push out the peers that serve us best.
pub fn eviction_candidate(inbound: &[Inbound]) -> Option<u64> {
    let mut left: Vec<&Inbound> = inbound.iter().collect();
    left.sort_by_key(|p| (p.latency_ms.is_none(), p.latency_ms, std::cmp::Reverse(p.id)));
    left.drain(..PROTECT_EACH.min(left.iter().filter(|p| p.latency_ms.is_some()).count()));
    left.sort_by_key(|p| (std::cmp::Reverse(p.last_block), p.id));
    left.drain(..PROTECT_EACH.min(left.iter().filter(|p| p.last_block.is_some()).count()));
    left.sort_by_key(|p| (p.connected, p.id));
    let half = left.len() / 2;
    left.drain(..half);
    let mut groups: HashMap<&[u8], Vec<&Inbound>> = HashMap::new();
    for p in left {
        groups.entry(&p.group).or_default().push(p);
    }
    let newest = |v: &Vec<&Inbound>| v.iter().map(|p| (p.connected, p.id)).max();
    let (_, members) = groups.into_iter().max_by_key(|(g, v)| (v.len(), newest(v), g.to_vec()))?;
    members.iter().max_by_key(|p| (p.connected, p.id)).map(|p| p.id)
}

/// How many peers each protected category of inbound eviction keeps.
pub const PROTECT_EACH: usize = 4;

impl Network {
    /// Whether an inbound peer may take a slot, evicting another if needed.
    pub(super) fn make_inbound_room(&self) -> bool {
        let inbound: Vec<Inbound> = self
            .peers
            .lock()
            .expect("never poisoned")
            .iter()
            .filter(|(_, p)| p.inbound && !p.cancel.is_cancelled())
            .map(|(id, p)| Inbound {
                id: *id,
                group: eviction_group(p.addr.ip()),
                connected: p.connected,
                latency_ms: p.latency_ms,
                last_block: p.last_block,
            })
            .collect();
        if inbound.len() < self.node.config.max_inbound {
            return true;
        }
        match eviction_candidate(&inbound) {
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

    /// Keeps a connection to a --peer endpoint, reconnecting with exponential back-off. A
    /// DNS name is resolved again before every dial (a restarted container may have a new
    /// IP); a name that does not resolve is retried like an address that does not answer.
    pub(super) async fn outbound_loop(
        self: Arc<Self>,
        endpoint: Endpoint,
        expected: Option<NodeId>,
    ) {
        let mut backoff = Duration::from_millis(250);
        let mut warned = false;
        loop {
            if self.node.shutdown.is_cancelled() {
                return;
            }
            let resolved = tokio::time::timeout(self.timings.connect, endpoint.resolve()).await;
            let addr = match resolved {
                Ok(Ok(addrs)) if !addrs.is_empty() => Some(addrs[0]),
                Ok(Ok(_)) | Ok(Err(_)) | Err(_) => {
                    let why = match resolved {
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "the resolver did not answer in time".into(),
                        _ => "no address".into(),
                    };
                    // Once at warn (a typo in --peer), then quietly while it stays so.
                    if !warned {
                        tracing::warn!(peer = %endpoint, error = %why, "cannot resolve peer; retrying");
                        warned = true;
                    } else {
                        tracing::debug!(peer = %endpoint, error = %why, "cannot resolve peer");
                    }
                    None
                }
            };
            if let Some(addr) = addr {
                warned = false;
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

    fn inbound(id: u64, ip_: &str, at: Instant) -> Inbound {
        Inbound {
            id,
            group: eviction_group(ip(ip_)),
            connected: at,
            latency_ms: None,
            last_block: None,
        }
    }

    #[test]
    fn eviction_takes_the_newest_peer_of_the_most_crowded_group() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Public addresses: 203.0.113.x is one /16 group.
        let mut peers = vec![
            inbound(1, "203.0.113.1", at(0)),
            inbound(2, "203.0.113.2", at(1)),
            inbound(3, "198.51.100.1", at(2)),
            inbound(4, "203.0.113.3", at(10)),
            inbound(5, "203.0.113.4", at(9)),
            inbound(6, "192.0.2.1", at(11)),
        ];
        // The longest-connected half (1, 2, 3) is protected; of 4, 5, 6 the /16 with two.
        assert_eq!(eviction_candidate(&peers), Some(4));
        // Low ping and recent blocks protect too.
        peers[3].latency_ms = Some(1);
        peers[4].last_block = Some(at(20));
        assert_eq!(eviction_candidate(&peers), Some(6));
    }

    #[test]
    fn many_connections_from_many_addresses_evict_each_other_not_the_useful_peers() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut peers = vec![
            Inbound { latency_ms: Some(5), ..inbound(1, "198.51.100.7", at(0)) },
            Inbound { last_block: Some(at(50)), ..inbound(2, "192.0.2.9", at(1)) },
        ];
        // An attacker's 62 connections, each from its own public /16.
        for i in 0..62u64 {
            peers.push(inbound(10 + i, &format!("{}.1.0.1", 11 + i), at(100 + i)));
        }
        let evicted = eviction_candidate(&peers).unwrap();
        assert!(evicted >= 10, "an attacker's connection goes, not peer {evicted}");
        assert_eq!(evicted, 10 + 61, "the newest one");
        // With nothing unprotected, the newcomer is refused.
        assert_eq!(eviction_candidate(&peers[..1]), None);
    }
}
