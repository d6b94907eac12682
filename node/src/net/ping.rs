//! Ping manager: whether a peer is still there, and its round-trip time. No I/O and no
//! clock of its own: the peer's reader task passes `now` in and carries out the
//! [`PingAction`] it gets back, so the rules are unit-tested with a made-up clock.
//!
//! Rules (as Bitcoin Core's `MaybeSendPing` / `TIMEOUT_INTERVAL`, shorter):
//! - every `Timings::ping` (15 s) the peer gets a `Ping` with a fresh random nonce;
//! - a peer we have heard nothing from for three intervals (45 s) is dropped as silent,
//!   unless we are still sending it replies it asked for: a peer busy reading a long
//!   answer may say nothing meanwhile (the writer's send-stall deadline covers a peer that
//!   stops reading);
//! - a `Pong` counts as a round trip only when it echoes the nonce of the last `Ping`
//!   (a stale or made-up nonce sets no latency). One ping at a time: a new one replaces
//!   the unanswered one, so the state is two numbers whatever the peer sends.

use std::time::Duration;
use tokio::time::Instant;

/// What the reader task does at a ping tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingAction {
    /// Send `Ping(nonce)`.
    Send(u64),
    /// Drop the peer as silent (not its fault: no ban).
    Disconnect,
}

/// One peer's liveness state.
#[derive(Debug, Clone)]
pub struct Pinger {
    every: Duration,
    last_heard: Instant,
    /// The nonce of the unanswered `Ping`, and when it went out.
    sent: Option<(u64, Instant)>,
}

impl Pinger {
    /// A peer just connected at `now`, pinged every `every`.
    pub fn new(every: Duration, now: Instant) -> Pinger {
        Pinger { every, last_heard: now, sent: None }
    }

    /// Any message from the peer arrived at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
    }

    /// The ping interval passed at `now`. `serving`: replies the peer asked for are still
    /// being sent to it. `nonce`: a fresh random number for the next `Ping`.
    pub fn tick(&mut self, now: Instant, serving: bool, nonce: u64) -> PingAction {
        if !serving && now.saturating_duration_since(self.last_heard) > self.every * 3 {
            return PingAction::Disconnect;
        }
        self.sent = Some((nonce, now));
        PingAction::Send(nonce)
    }

    /// A `Pong(nonce)` arrived at `now`; returns the round trip when it answers the last
    /// `Ping`.
    pub fn pong(&mut self, nonce: u64, now: Instant) -> Option<Duration> {
        self.heard(now);
        match self.sent {
            Some((sent, at)) if sent == nonce => {
                self.sent = None;
                Some(now.saturating_duration_since(at))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(15);

    #[test]
    fn a_silent_peer_is_dropped_after_three_intervals_and_not_before() {
        let t0 = Instant::now();
        let mut p = Pinger::new(EVERY, t0);
        assert_eq!(p.tick(t0 + EVERY, false, 1), PingAction::Send(1));
        assert_eq!(p.tick(t0 + EVERY * 2, false, 2), PingAction::Send(2));
        assert_eq!(p.tick(t0 + EVERY * 3, false, 3), PingAction::Send(3));
        assert_eq!(p.tick(t0 + EVERY * 3 + Duration::from_millis(1), false, 4), {
            PingAction::Disconnect
        });
    }

    #[test]
    fn any_message_and_replies_still_being_sent_keep_a_peer() {
        let t0 = Instant::now();
        let mut p = Pinger::new(EVERY, t0);
        p.heard(t0 + EVERY * 2);
        assert_eq!(p.tick(t0 + EVERY * 4, false, 1), PingAction::Send(1));
        // Silent for a long time, but reading a long answer it asked for.
        assert_eq!(p.tick(t0 + EVERY * 10, true, 2), PingAction::Send(2));
        assert_eq!(p.tick(t0 + EVERY * 11, false, 3), PingAction::Disconnect);
    }

    #[test]
    fn only_the_last_pings_nonce_measures_a_round_trip() {
        let t0 = Instant::now();
        let mut p = Pinger::new(EVERY, t0);
        assert_eq!(p.tick(t0 + EVERY, false, 7), PingAction::Send(7));
        // A made-up nonce: no latency, but it is still a sign of life.
        assert_eq!(p.pong(8, t0 + EVERY + Duration::from_millis(3)), None);
        assert_eq!(
            p.pong(7, t0 + EVERY + Duration::from_millis(5)),
            Some(Duration::from_millis(5))
        );
        // Answered once: the same nonce again changes nothing.
        assert_eq!(p.pong(7, t0 + EVERY + Duration::from_millis(9)), None);
        // A new ping replaces an unanswered one: its old nonce no longer counts.
        p.tick(t0 + EVERY * 2, false, 10);
        p.tick(t0 + EVERY * 3, false, 11);
        assert_eq!(p.pong(10, t0 + EVERY * 3 + Duration::from_millis(1)), None);
        assert_eq!(
            p.pong(11, t0 + EVERY * 3 + Duration::from_millis(2)),
            Some(Duration::from_millis(2))
        );
    }
}
