//! Bans: who may not connect, why, and until when; persisted so a restart keeps them.
//!
//! A ban keys on what identifies the peer's host: its IP address, except on loopback,
//! where several nodes share one IP (a local testnet) and a ban keys on `ip:port` — the
//! peer's listening address when it told us one, else the address it connected from.
//! Bans never key on node ids, which cost nothing to make.
//!
//! Bounds: at most [`MAX_BANS`] bans are held (the one that ends first makes room), a
//! reason is cut to [`MAX_REASON`] bytes, and a ban lasts at most [`MAX_BAN`]. Every time
//! computation saturates, so no duration overflows the clock.
//!
//! Persistence: each ban is one entry of the store's `peers` column, key `ban/<key>`,
//! value `until_ms (u64 BE) || reason (UTF-8)`. Loading drops expired and unreadable
//! entries.

use crate::store::{Change, Column, KvStore, Op};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Most bans held at once.
pub const MAX_BANS: usize = 10_000;
/// Longest reason kept, in bytes.
pub const MAX_REASON: usize = 200;
/// Longest ban: ten years. `net_ban` refuses longer ones with -32602.
pub const MAX_BAN: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

const KEY_PREFIX: &[u8] = b"ban/";

/// A ban with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ban {
    /// What the ban keys on: an IP address, or `ip:port` on loopback.
    pub address: String,
    pub reason: String,
    /// Unix ms when the ban ends.
    pub until_ms: u64,
}

/// What a ban on a peer keys on (see the module doc): the IP, or on loopback the listening
/// address (else the connecting one).
pub fn ban_key(addr: SocketAddr, listen: Option<SocketAddr>) -> String {
    if addr.ip().is_loopback() {
        listen.unwrap_or(addr).to_string()
    } else {
        addr.ip().to_string()
    }
}

/// The keys under which a ban would stop a connection from `addr` (listening at `listen`,
/// once known): its IP, and the exact addresses.
pub fn keys_for(addr: SocketAddr, listen: Option<SocketAddr>) -> Vec<String> {
    let mut keys = vec![addr.ip().to_string(), addr.to_string()];
    if let Some(l) = listen {
        keys.push(l.to_string());
    }
    keys
}

/// The ban list, owned by the network; no I/O but the store writes.
pub struct BanList {
    kv: Arc<dyn KvStore>,
    bans: HashMap<String, Ban>,
}

impl BanList {
    /// Loads the persisted bans still in force at `now_ms`.
    pub fn load(kv: Arc<dyn KvStore>, now_ms: u64) -> BanList {
        let mut bans = HashMap::new();
        let mut stale = Vec::new();
        let scan = kv.scan_prefix(Column::Peers, KEY_PREFIX, &mut |k, v| {
            match decode(&k[KEY_PREFIX.len()..], v) {
                Some(b) if b.until_ms > now_ms => {
                    bans.insert(b.address.clone(), b);
                }
                _ => stale.push(k.to_vec()),
            }
            true
        });
        if let Err(e) = scan {
            tracing::warn!(error = %e, "cannot read the ban list; starting with none");
        }
        let list = BanList { kv, bans };
        if !stale.is_empty() {
            list.write(stale.into_iter().map(|k| (Column::Peers, k, Change::Delete)).collect());
        }
        if !list.bans.is_empty() {
            tracing::info!(bans = list.bans.len(), "bans loaded");
        }
        list
    }

    fn write(&self, ops: Vec<Op>) {
        if let Err(e) = self.kv.write(ops) {
            tracing::warn!(error = %e, "cannot write the ban list");
        }
    }

    /// Bans `key` for `duration` (capped at [`MAX_BAN`]) from `now_ms`. A longer ban
    /// already in force is kept.
    pub fn ban(&mut self, key: String, reason: &str, duration: Duration, now_ms: u64) {
        let ms = u64::try_from(duration.min(MAX_BAN).as_millis()).unwrap_or(u64::MAX);
        let until_ms = now_ms.saturating_add(ms);
        if self.bans.get(&key).is_some_and(|b| b.until_ms >= until_ms) {
            return;
        }
        let mut ops = Vec::new();
        if !self.bans.contains_key(&key) && self.bans.len() >= MAX_BANS {
            // Room for the new ban: the one that ends first goes.
            let first = self.bans.values().min_by_key(|b| b.until_ms).map(|b| b.address.clone());
            if let Some(k) = first {
                self.bans.remove(&k);
                ops.push((Column::Peers, db_key(&k), Change::Delete));
            }
        }
        let reason = truncate(reason, MAX_REASON);
        let ban = Ban { address: key.clone(), reason, until_ms };
        ops.push((Column::Peers, db_key(&key), Change::Put(encode(&ban))));
        self.bans.insert(key, ban);
        self.write(ops);
    }

    /// Lifts a ban; whether there was one.
    pub fn unban(&mut self, key: &str) -> bool {
        let had = self.bans.remove(key).is_some();
        if had {
            self.write(vec![(Column::Peers, db_key(key), Change::Delete)]);
        }
        had
    }

    /// Whether any of `keys` is banned at `now_ms`.
    pub fn is_banned<S: AsRef<str>>(&self, keys: &[S], now_ms: u64) -> bool {
        keys.iter().any(|k| self.bans.get(k.as_ref()).is_some_and(|b| b.until_ms > now_ms))
    }

    /// Bans in force at `now_ms`, soonest to end first; expired ones are dropped.
    pub fn list(&mut self, now_ms: u64) -> Vec<Ban> {
        let expired: Vec<String> = self
            .bans
            .values()
            .filter(|b| b.until_ms <= now_ms)
            .map(|b| b.address.clone())
            .collect();
        if !expired.is_empty() {
            for k in &expired {
                self.bans.remove(k);
            }
            self.write(
                expired.iter().map(|k| (Column::Peers, db_key(k), Change::Delete)).collect(),
            );
        }
        let mut v: Vec<Ban> = self.bans.values().cloned().collect();
        v.sort_by(|a, b| a.until_ms.cmp(&b.until_ms).then_with(|| a.address.cmp(&b.address)));
        v
    }

    pub fn len(&self) -> usize {
        self.bans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bans.is_empty()
    }
}

fn db_key(key: &str) -> Vec<u8> {
    [KEY_PREFIX, key.as_bytes()].concat()
}

fn encode(b: &Ban) -> Vec<u8> {
    let mut v = b.until_ms.to_be_bytes().to_vec();
    v.extend_from_slice(b.reason.as_bytes());
    v
}

fn decode(key: &[u8], value: &[u8]) -> Option<Ban> {
    let address = std::str::from_utf8(key).ok()?.to_string();
    let until_ms = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let reason = std::str::from_utf8(&value[8..]).ok()?.to_string();
    Some(Ban { address, reason, until_ms })
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemKv;

    fn kv() -> Arc<dyn KvStore> {
        Arc::new(MemKv::new())
    }

    #[test]
    fn bans_survive_a_reload_with_reason_and_expiry() {
        let kv = kv();
        let mut list = BanList::load(kv.clone(), 0);
        list.ban("10.0.0.1".into(), "sent an invalid block", Duration::from_secs(60), 1_000);
        list.ban("127.0.0.1:9000".into(), "operator", Duration::from_secs(3600), 1_000);
        let mut back = BanList::load(kv.clone(), 2_000);
        let bans = back.list(2_000);
        assert_eq!(bans.len(), 2);
        assert_eq!(bans[0].address, "10.0.0.1");
        assert_eq!(bans[0].reason, "sent an invalid block");
        assert_eq!(bans[0].until_ms, 61_000);
        assert_eq!(bans[1].until_ms, 3_601_000);
        // After the first one's end, a reload keeps only the second, and deletes the first.
        let back = BanList::load(kv.clone(), 61_000);
        assert_eq!(back.len(), 1);
        let mut keys = 0;
        kv.scan_prefix(Column::Peers, KEY_PREFIX, &mut |_, _| {
            keys += 1;
            true
        })
        .unwrap();
        assert_eq!(keys, 1);
    }

    #[test]
    fn absurd_durations_saturate_instead_of_overflowing() {
        let mut list = BanList::load(kv(), 0);
        let now = u64::MAX - 5;
        list.ban("10.0.0.2".into(), "x", Duration::from_secs(u64::MAX), now);
        assert!(list.is_banned(&["10.0.0.2"], now + 1));
        assert_eq!(list.list(now)[0].until_ms, u64::MAX);
        // Capped at ten years from now.
        let mut list = BanList::load(kv(), 0);
        list.ban("10.0.0.3".into(), "x", Duration::from_secs(u64::MAX), 1_000);
        assert_eq!(list.list(1_000)[0].until_ms, 1_000 + MAX_BAN.as_millis() as u64);
    }

    #[test]
    fn the_list_is_bounded_and_the_first_to_end_makes_room() {
        let mut list = BanList::load(kv(), 0);
        for i in 0..MAX_BANS as u64 + 10 {
            list.ban(format!("k{i}"), "x", Duration::from_millis(1_000 + i), 0);
        }
        assert_eq!(list.len(), MAX_BANS);
        assert!(!list.is_banned(&["k0"], 1));
        assert!(list.is_banned(&[format!("k{}", MAX_BANS + 9)], 1));
    }

    #[test]
    fn a_longer_ban_is_not_shortened_and_reasons_are_bounded() {
        let mut list = BanList::load(kv(), 0);
        list.ban("a".into(), "long", Duration::from_secs(100), 0);
        list.ban("a".into(), "short", Duration::from_secs(1), 0);
        assert_eq!(list.list(0)[0].reason, "long");
        list.ban("b".into(), &"é".repeat(500), Duration::from_secs(1), 0);
        let b = list.list(0).into_iter().find(|b| b.address == "b").unwrap();
        assert!(b.reason.len() <= MAX_REASON);
        assert!(list.unban("b"));
        assert!(!list.unban("b"));
    }

    #[test]
    fn ban_keys_are_the_ip_except_on_loopback() {
        let remote: SocketAddr = "203.0.113.7:50123".parse().unwrap();
        let listen: SocketAddr = "203.0.113.7:9000".parse().unwrap();
        assert_eq!(ban_key(remote, Some(listen)), "203.0.113.7");
        let local: SocketAddr = "127.0.0.1:50123".parse().unwrap();
        let local_listen: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(ban_key(local, Some(local_listen)), "127.0.0.1:9000");
        assert_eq!(ban_key(local, None), "127.0.0.1:50123");
    }
}
