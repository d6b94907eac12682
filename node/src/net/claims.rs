//! Readiness grace for unproven claims. A peer whose `Version` claims more work than ours
//! holds `GET /ready` back until it answers our locator, for at most
//! [`READY_GRACE`](super::READY_GRACE): an honest peer answers within a round trip, and a
//! restarted node must not say "ready" before it has heard what its peers have. A liar
//! could reconnect just before each grace runs out and hold readiness back forever, so a
//! claim left unanswered (its grace ran out, or its connection closed first) marks the
//! claimer's address group: for [`STALE_FOR`] no claim from that group holds readiness
//! back again. No I/O, no clock of its own.
//!
//! Bounds: at most [`MAX_GROUPS`] groups remembered (the oldest mark makes room), so one
//! party needs a fresh /16 (IPv4) or /32 (IPv6) for every grace it takes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;

/// How long a group that left a claim unanswered gets no grace.
pub const STALE_FOR: Duration = Duration::from_secs(600);
/// Groups remembered at most.
pub const MAX_GROUPS: usize = 1024;

/// The group a claim is charged to: IPv4 /16, IPv6 /32, whatever the address (loopback
/// and private ranges included: every address on one machine or LAN is one party here).
pub fn claim_group(ip: IpAddr) -> [u8; 5] {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let o = a.octets();
            [4, o[0], o[1], 0, 0]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            [6, o[0], o[1], o[2], o[3]]
        }
    }
}

/// Groups whose claims are no longer given grace, with when they were marked.
#[derive(Debug, Default)]
pub struct ClaimGrace {
    stale: HashMap<[u8; 5], Instant>,
}

impl ClaimGrace {
    /// A claim from `ip` went unanswered at `now`.
    pub fn unanswered(&mut self, ip: IpAddr, now: Instant) {
        let group = claim_group(ip);
        if !self.stale.contains_key(&group) && self.stale.len() >= MAX_GROUPS {
            self.stale.retain(|_, at| now.saturating_duration_since(*at) < STALE_FOR);
            if self.stale.len() >= MAX_GROUPS {
                let oldest = self.stale.iter().min_by_key(|(_, at)| **at).map(|(g, _)| *g);
                if let Some(g) = oldest {
                    self.stale.remove(&g);
                }
            }
        }
        self.stale.insert(group, now);
    }

    /// Whether a claim from `ip` may hold readiness back at `now`.
    pub fn may_hold(&self, ip: IpAddr, now: Instant) -> bool {
        self.stale
            .get(&claim_group(ip))
            .is_none_or(|at| now.saturating_duration_since(*at) >= STALE_FOR)
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_group_that_left_a_claim_unanswered_gets_no_grace_until_the_mark_expires() {
        let t0 = Instant::now();
        let mut g = ClaimGrace::default();
        assert!(g.may_hold(ip("127.0.0.1"), t0));
        g.unanswered(ip("127.0.0.1"), t0);
        // Same /16 (another loopback address, another port): no grace.
        assert!(!g.may_hold(ip("127.0.9.9"), t0 + Duration::from_secs(1)));
        assert!(!g.may_hold(ip("::ffff:127.0.0.1"), t0), "v4-mapped is the same address");
        // Another group still gets its grace.
        assert!(g.may_hold(ip("10.1.2.3"), t0));
        assert!(g.may_hold(ip("127.1.0.1"), t0));
        // After the mark expires, grace again.
        assert!(g.may_hold(ip("127.0.0.1"), t0 + STALE_FOR));
    }

    #[test]
    fn at_most_max_groups_are_remembered() {
        let t0 = Instant::now();
        let mut g = ClaimGrace::default();
        for n in 0..(MAX_GROUPS as u32 + 100) {
            let a = std::net::Ipv4Addr::from(n << 16);
            g.unanswered(IpAddr::V4(a), t0 + Duration::from_millis(n as u64));
        }
        assert_eq!(g.len(), MAX_GROUPS);
        // The newest marks are the ones kept.
        let newest = std::net::Ipv4Addr::from((MAX_GROUPS as u32 + 99) << 16);
        assert!(!g.may_hold(IpAddr::V4(newest), t0 + Duration::from_secs(1)));
        assert!(g.may_hold(IpAddr::V4(std::net::Ipv4Addr::from(0)), t0 + Duration::from_secs(1)));
    }
}
