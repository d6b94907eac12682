//! Readiness grace for unproven claims. A peer whose `Version` claims more work than ours
//! holds `GET /ready` back until it answers our locator, for at most [`GRACE`]: an honest
//! peer answers within a round trip, and a restarted node must not say "ready" before it
//! has heard what its peers have. No I/O, no clock of its own.
//!
//! The grace belongs to the claimer's group ([`claim_group`]), not to a connection: it
//! runs from the group's oldest unanswered claim, so reconnecting, or holding two
//! connections and closing one, does not renew it; any answer from the group ends it, so
//! a duplicate connection closed by either side costs nothing. A group whose grace ran out
//! unanswered is marked for [`STALE_FOR`]: its claims hold nothing back meanwhile. Once
//! [`MAX_RECENT_MARKS`] groups are marked, no claim holds readiness back until the marks
//! age out, so claimers with many addresses delay readiness by at most
//! `MAX_RECENT_MARKS` graces (80 s) per [`STALE_FOR`]; an honest peer leaves no mark.
//!
//! Bounds: at most [`MAX_GROUPS`] pending claims and as many marks (the oldest make room).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// How long a claim may hold readiness back unanswered.
pub const GRACE: Duration = Duration::from_secs(10);
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

/// Pending claims and marked groups.
#[derive(Debug, Default)]
pub struct ClaimGrace {
    /// Groups with an unanswered claim, from when the oldest was made.
    pending: HashMap<Vec<u8>, Instant>,
    /// Groups whose grace ran out unanswered, with when.
    stale: HashMap<Vec<u8>, Instant>,
}

/// Inserts into a map bounded to [`MAX_GROUPS`]: entries `expired` go first, then the
/// oldest.
fn insert_bounded(
    map: &mut HashMap<Vec<u8>, Instant>,
    group: Vec<u8>,
    at: Instant,
    expired: impl Fn(&Instant) -> bool,
) {
    if !map.contains_key(&group) && map.len() >= MAX_GROUPS {
        map.retain(|_, t| !expired(t));
        if map.len() >= MAX_GROUPS {
            if let Some(g) = map.iter().min_by_key(|(_, t)| **t).map(|(g, _)| g.clone()) {
                map.remove(&g);
            }
        }
    }
    map.entry(group).or_insert(at);
}

impl ClaimGrace {
    /// A peer of `group` claimed more work at `now` and was sent our locator. The group's
    /// grace runs from its oldest unanswered claim.
    pub fn claimed(&mut self, group: Vec<u8>, now: Instant) {
        let recent = |at: &Instant| now.saturating_duration_since(*at) < STALE_FOR;
        if self.stale.get(&group).is_some_and(recent) {
            return;
        }
        let expired = |t: &Instant| now.saturating_duration_since(*t) >= GRACE;
        if self.pending.get(&group).is_some_and(expired) {
            // Its grace ran out unanswered while nobody asked: mark it now, no new grace.
            self.pending.remove(&group);
            insert_bounded(&mut self.stale, group, now, |t| !recent(t));
            return;
        }
        insert_bounded(&mut self.pending, group, now, expired);
    }

    /// A peer of `group` answered our locator: the group's claim is settled.
    pub fn answered(&mut self, group: &[u8]) {
        self.pending.remove(group);
    }

    /// Whether a claim of `group`'s still holds readiness back at `now`; a grace that ran
    /// out unanswered marks the group.
    pub fn holds(&mut self, group: &[u8], now: Instant) -> bool {
        let recent = |at: &Instant| now.saturating_duration_since(*at) < STALE_FOR;
        if self.stale.get(group).is_some_and(recent) {
            return false;
        }
        let Some(since) = self.pending.get(group).copied() else { return false };
        if now.saturating_duration_since(since) >= GRACE {
            self.pending.remove(group);
            insert_bounded(&mut self.stale, group.to_vec(), now, |t| !recent(t));
            return false;
        }
        self.stale.values().filter(|at| recent(at)).count() < MAX_RECENT_MARKS
    }

    /// Groups marked.
    pub fn marked(&self) -> usize {
        self.stale.len()
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
    fn a_groups_grace_runs_from_its_oldest_claim_and_reconnecting_does_not_renew_it() {
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        let mut c = ClaimGrace::default();
        let liar = g("127.0.0.1:4000");
        c.claimed(liar.clone(), t0);
        assert!(c.holds(&liar, t0 + 9 * sec));
        // It reconnects (a new claim) at 9 s: the grace still ends at 10 s.
        c.claimed(liar.clone(), t0 + 9 * sec);
        assert!(!c.holds(&liar, t0 + GRACE));
        assert_eq!(c.marked(), 1);
        // Marked: a new claim holds nothing back for STALE_FOR.
        c.claimed(liar.clone(), t0 + 11 * sec);
        assert!(!c.holds(&liar, t0 + 12 * sec));
        assert!(!c.holds(&g("[::ffff:127.0.0.1]:4000"), t0 + 12 * sec), "v4-mapped is the same");
        c.claimed(liar.clone(), t0 + GRACE + STALE_FOR);
        assert!(c.holds(&liar, t0 + GRACE + STALE_FOR + sec), "the mark aged out");
    }

    #[test]
    fn a_grace_that_ran_out_while_nobody_asked_is_not_renewed_by_a_new_claim() {
        let t0 = Instant::now();
        let mut c = ClaimGrace::default();
        let liar = g("127.0.0.1:4000");
        c.claimed(liar.clone(), t0);
        c.claimed(liar.clone(), t0 + GRACE + Duration::from_secs(1));
        assert!(!c.holds(&liar, t0 + GRACE + Duration::from_secs(1)));
        assert_eq!(c.marked(), 1);
    }

    #[test]
    fn an_answer_settles_the_groups_claim_and_leaves_no_mark() {
        let t0 = Instant::now();
        let mut c = ClaimGrace::default();
        let peer = g("127.0.0.1:4000");
        // Two connections of one node (both dialed); one closes, the other answers.
        c.claimed(peer.clone(), t0);
        c.claimed(peer.clone(), t0);
        assert!(c.holds(&peer, t0));
        c.answered(&peer);
        assert!(!c.holds(&peer, t0), "answered: nothing to wait for");
        assert!(!c.holds(&peer, t0 + GRACE * 2));
        assert_eq!(c.marked(), 0);
        c.claimed(peer.clone(), t0 + GRACE * 3);
        assert!(c.holds(&peer, t0 + GRACE * 3), "a later claim gets a grace again");
    }

    #[test]
    fn groups_are_per_node_on_loopback_per_ip_on_private_per_16_on_public_addresses() {
        let t0 = Instant::now();
        let mut c = ClaimGrace::default();
        for a in ["127.0.0.1:4000", "10.1.2.3:1", "8.8.1.1:1"] {
            c.claimed(g(a), t0);
            assert!(!c.holds(&g(a), t0 + GRACE));
        }
        assert_eq!(c.marked(), 3);
        let t1 = t0 + GRACE + Duration::from_secs(1);
        for (a, same) in [
            ("127.0.0.1:4001", false),
            ("10.1.2.4:1", false),
            ("8.8.200.7:2", true),
            ("8.9.1.1:1", false),
        ] {
            c.claimed(g(a), t1);
            assert_eq!(c.holds(&g(a), t1), !same, "{a}");
        }
        // Not listening on loopback: the IP alone, whatever port the connection came from.
        let (a, b) = ("127.0.0.1:50001".parse().unwrap(), "127.0.0.1:50002".parse().unwrap());
        assert_eq!(claim_group(a, None), claim_group(b, None));
        let listen = Some("127.0.0.1:4000".parse().unwrap());
        assert_eq!(claim_group(a, listen), g("127.0.0.1:4000"));
    }

    #[test]
    fn claimers_from_many_groups_get_a_few_graces_in_all() {
        let t0 = Instant::now();
        let mut c = ClaimGrace::default();
        for port in 0..MAX_RECENT_MARKS as u16 {
            let group = g(&format!("127.0.0.1:{}", 5000 + port));
            c.claimed(group.clone(), t0);
            assert!(c.holds(&group, t0), "group {port} gets its grace");
            assert!(!c.holds(&group, t0 + GRACE));
        }
        let fresh = g("10.0.0.1:1");
        c.claimed(fresh.clone(), t0 + GRACE);
        assert!(!c.holds(&fresh, t0 + GRACE), "after 8 marked groups: no grace for anyone");
        assert!(!c.holds(&fresh, t0 + GRACE + Duration::from_secs(5)));
        let later = g("10.0.0.2:1");
        c.claimed(later.clone(), t0 + GRACE + STALE_FOR);
        assert!(c.holds(&later, t0 + GRACE + STALE_FOR), "the marks aged out");
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
            c.claimed(public(n), t0 + Duration::from_millis(n as u64));
        }
        assert_eq!(c.pending.len(), MAX_GROUPS);
        assert!(c.pending.contains_key(&public(MAX_GROUPS as u32 + 99)), "the newest are kept");
        assert!(!c.pending.contains_key(&public(0)), "the oldest made room");
    }
}
