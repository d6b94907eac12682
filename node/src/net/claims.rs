//! Readiness grace for unproven claims. A peer whose `Version` claims more work than ours
//! holds `GET /ready` back until it answers our locator, for at most
//! [`READY_GRACE`](super::READY_GRACE): an honest peer answers within a round trip, and a
//! restarted node must not say "ready" before it has heard what its peers have. A liar
//! could reconnect just before each grace runs out and hold readiness back forever, so a
//! claim left unanswered (its grace ran out, or its connection closed first) marks the
//! claimer's address group ([`claim_group`]): for [`STALE_FOR`] no claim from that group
//! holds readiness back again. No I/O, no clock of its own.
//!
//! One party with many address ranges could still take a grace from each: so once
//! [`MAX_RECENT_MARKS`] groups left claims unanswered within [`STALE_FOR`], no claim holds
//! readiness back until the marks age out. Unproven claims can therefore delay readiness
//! by at most `MAX_RECENT_MARKS` graces (80 s) per [`STALE_FOR`], however many addresses
//! the claimers have; an honest peer answers our locator and leaves no mark.
//!
//! Bounds: at most [`MAX_GROUPS`] groups remembered (the oldest mark makes room).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// How long a group that left a claim unanswered gets no grace.
pub const STALE_FOR: Duration = Duration::from_secs(600);
/// Groups remembered at most.
pub const MAX_GROUPS: usize = 1024;
/// Unanswered claims from this many groups within [`STALE_FOR`] end every grace.
pub const MAX_RECENT_MARKS: usize = 8;

/// The group a claim is charged to. A public address: its inbound-eviction group (IPv4
/// /16, IPv6 /32; [`eviction_group`](super::connect::eviction_group)). A private one: its
/// exact IP (nodes of one container network are separate operators, and one of them
/// leaving before it answered must not take the grace from the others). Loopback, where
/// every node has the same IP: the peer's `ip:listen_port`, or the IP alone when it
/// announced no listening port (its connection's port is new each time).
/// [`MAX_RECENT_MARKS`] bounds a party that uses many groups.
pub fn claim_group(addr: SocketAddr, listen: Option<SocketAddr>) -> Vec<u8> {
    let ip = addr.ip().to_canonical();
    if ip.is_loopback() {
        match listen {
            Some(l) => SocketAddr::new(l.ip().to_canonical(), l.port()).to_string(),
            None => ip.to_string(),
        }
        .into_bytes()
    } else {
        super::connect::eviction_group(addr.ip())
    }
}

/// Groups whose claims are no longer given grace, with when they were marked.
#[derive(Debug, Default)]
pub struct ClaimGrace {
    stale: HashMap<Vec<u8>, Instant>,
}

impl ClaimGrace {
    /// A claim from the group `group` ([`claim_group`]) went unanswered at `now`.
    pub fn unanswered(&mut self, group: Vec<u8>, now: Instant) {
        if !self.stale.contains_key(&group) && self.stale.len() >= MAX_GROUPS {
            self.stale.retain(|_, at| now.saturating_duration_since(*at) < STALE_FOR);
            if self.stale.len() >= MAX_GROUPS {
                let oldest = self.stale.iter().min_by_key(|(_, at)| **at).map(|(g, _)| g.clone());
                if let Some(g) = oldest {
                    self.stale.remove(&g);
                }
            }
        }
        self.stale.insert(group, now);
    }

    /// Whether a claim from the group `group` may hold readiness back at `now`.
    pub fn may_hold(&self, group: &[u8], now: Instant) -> bool {
        let recent = |at: &Instant| now.saturating_duration_since(*at) < STALE_FOR;
        !self.stale.get(group).is_some_and(recent)
            && self.stale.values().filter(|at| recent(at)).count() < MAX_RECENT_MARKS
    }

    /// Groups remembered.
    pub fn len(&self) -> usize {
        self.stale.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stale.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    /// The group of a peer at `addr` that listens on the same address.
    fn g(addr: &str) -> Vec<u8> {
        let a: SocketAddr = addr.parse().unwrap();
        claim_group(a, Some(a))
    }

    #[test]
    fn a_group_that_left_a_claim_unanswered_gets_no_grace_until_the_mark_expires() {
        let t0 = Instant::now();
        let mut c = ClaimGrace::default();
        assert!(c.may_hold(&g("127.0.0.1:4000"), t0));
        c.unanswered(g("127.0.0.1:4000"), t0);
        assert!(!c.may_hold(&g("127.0.0.1:4000"), t0 + Duration::from_secs(1)));
        assert!(!c.may_hold(&g("[::ffff:127.0.0.1]:4000"), t0), "v4-mapped is the same");
        // On loopback another listening port is another node; a private IP is its own
        // group; public ones go by /16.
        assert!(c.may_hold(&g("127.0.0.1:4001"), t0));
        let listen = Some("127.0.0.1:4000".parse().unwrap());
        assert!(!c.may_hold(&claim_group("127.0.0.1:55555".parse().unwrap(), listen), t0));
        // Not listening: the IP alone, whatever port the connection came from.
        let (a, b) = ("127.0.0.1:50001".parse().unwrap(), "127.0.0.1:50002".parse().unwrap());
        c.unanswered(claim_group(a, None), t0);
        assert!(!c.may_hold(&claim_group(b, None), t0));
        c.unanswered(g("10.1.2.3:1"), t0);
        assert!(c.may_hold(&g("10.1.2.4:1"), t0));
        c.unanswered(g("8.8.1.1:1"), t0);
        assert!(!c.may_hold(&g("8.8.200.7:2"), t0), "same public /16");
        assert!(c.may_hold(&g("8.9.1.1:1"), t0));
        // After the mark expires, grace again.
        assert!(c.may_hold(&g("127.0.0.1:4000"), t0 + STALE_FOR));
    }

    #[test]
    fn claimers_from_many_groups_get_a_few_graces_in_all() {
        let t0 = Instant::now();
        let mut c = ClaimGrace::default();
        for port in 0..MAX_RECENT_MARKS as u16 - 1 {
            c.unanswered(g(&format!("127.0.0.1:{}", 5000 + port)), t0);
        }
        assert!(c.may_hold(&g("127.0.0.1:6000"), t0), "a fresh group still gets its grace");
        c.unanswered(g("127.0.0.1:6000"), t0);
        assert!(!c.may_hold(&g("127.0.0.1:6001"), t0), "after 8 unanswered groups: no grace");
        assert!(!c.may_hold(&g("10.0.0.1:1"), t0 + STALE_FOR / 2));
        assert!(c.may_hold(&g("10.0.0.1:1"), t0 + STALE_FOR), "the marks aged out");
    }

    #[test]
    fn at_most_max_groups_are_remembered() {
        let t0 = Instant::now();
        let mut c = ClaimGrace::default();
        let public = |n: u32| -> Vec<u8> {
            let a = std::net::Ipv4Addr::from((20 << 24) + (n << 16));
            claim_group(SocketAddr::new(IpAddr::V4(a), 1), None)
        };
        for n in 0..(MAX_GROUPS as u32 + 100) {
            c.unanswered(public(n), t0 + Duration::from_millis(n as u64));
        }
        assert_eq!(c.len(), MAX_GROUPS);
        assert!(c.stale.contains_key(&public(MAX_GROUPS as u32 + 99)), "the newest are kept");
        assert!(!c.stale.contains_key(&public(0)), "the oldest made room");
    }
}
