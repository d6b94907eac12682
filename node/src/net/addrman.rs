//! The address manager: where the node keeps peer addresses, so a restarted node finds the
//! network again without `--peer`, and so gossip cannot push honest addresses out.
//!
//! It follows Bitcoin Core's addrman (`src/addrman.cpp`, `addrman_impl.h`) with two
//! fixed-size tables of buckets of slots. The *new* table (128 buckets × 32 slots) holds
//! addresses heard of; the *tried* table (64 × 32) holds addresses we completed an outbound
//! handshake with. What it guarantees:
//! - **Bounded memory**: every entry lives in exactly one slot, so at most
//!   128·32 + 64·32 = 6,144 entries are kept whatever peers send.
//! - **One source cannot flood the book**: a new address's bucket is a keyed hash of its
//!   source's group and the address's group, chosen among only 8 buckets per source group,
//!   so one source (or many in one /16) can fill at most 8·32 = 256 new slots.
//! - **Gossip never evicts a good entry**: a new address whose slot is taken is dropped unless
//!   the occupant is *terrible* (Core's `IsTerrible`: dated in the future, not seen for 30
//!   days, 3 failures and never a success, or 10 failures and no success for a week).
//! - **Tried entries are out of gossip's reach**: only [`AddrMan::good`] enters the tried
//!   table; one address group can use at most 8 tried buckets. An occupant displaced there
//!   goes back to its new slot. Failures alone never remove a tried entry.
//! - **Unpredictable, stable positions**: bucket and slot are SHA-256 of a 32-byte secret made
//!   at first start and kept under `addrman/key`, so attackers cannot aim at a slot.
//!
//! Groups: IPv4 /16, IPv6 /32; loopback and unspecified addresses share one group ("local"),
//! and private ones (RFC 1918, link-local, IPv6 unique-local) another ("private"), as Core
//! lumps unroutable addresses. So on a loopback testnet everything is one group: its nodes
//! share 8 new buckets and 8 tried buckets, plenty for a testnet.
//!
//! Storage, in `Column::Peers`: key `addr/<ip:port>`; value 49 bytes, big-endian: table (u8,
//! 0 new, 1 tried), bucket (u16), slot (u8), source family (u8, 4 or 6), source IP (16 bytes,
//! IPv4 in the first 4), last seen, last try, last success (u64 Unix ms each, 0 = never),
//! consecutive failures (u32). On load the tables are rebuilt from the stored positions; old
//! address-book entries (key `ip:port`, 12-byte value: last seen u64 + failures u32) are
//! imported into new with themselves as source; anything unreadable is deleted with a warning.
//! Every mutation writes its changes at once; a store error is logged, not fatal.

mod entry;

use crate::store::{Change, Column, KvStore, Op};
use entry::{Entry, EntryError, Pos, Table};
use rand::seq::SliceRandom;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Buckets of the new table (Core: 1024; ours is a small network).
pub const NEW_BUCKETS: usize = 128;
/// Buckets of the tried table (Core: 256).
pub const TRIED_BUCKETS: usize = 64;
/// Slots per bucket, in both tables (Core: 64).
pub const BUCKET_SIZE: usize = 32;
/// New buckets one source group can reach: what one attacker's /16 can fill.
pub const NEW_BUCKETS_PER_SOURCE_GROUP: u64 = 8;
/// Tried buckets one address group can reach, so one /16 cannot own the tried table.
pub const TRIED_BUCKETS_PER_GROUP: u64 = 8;
/// Most entries ever kept: one per slot.
pub const MAX_ENTRIES: usize = (NEW_BUCKETS + TRIED_BUCKETS) * BUCKET_SIZE;
/// Key prefixes of the `peers` column that belong to others (the ban list): never read or
/// deleted here.
const OTHER_OWNERS: &[&[u8]] = &[b"ban/"];

/// Consecutive failures after which a *new* entry is forgotten.
const NEW_MAX_FAILURES: u32 = 5;
/// At most this percentage of known addresses goes into one `GetAddr` answer (Core's rule),
/// so a peer needs many requests, over time, to map our whole book.
const GETADDR_MAX_PCT: usize = 23;
/// A `GetAddr` answer may hold this many addresses whatever the percentage: Ember relays no
/// addresses on its own, so a small network's nodes learn each other only from answers,
/// and 23% of a handful would be nothing.
const GETADDR_MIN: usize = 100;

const KEY_KEY: &[u8] = b"addrman/key";
const ENTRY_PREFIX: &[u8] = b"addr/";
const ENTRY_LEN: usize = 49;

const MINUTE_MS: u64 = 60_000;
const DAY_MS: u64 = 24 * 60 * MINUTE_MS;
/// A known address's last-seen time is refreshed at most this often, to bound store writes.
const REFRESH_MS: u64 = 60 * MINUTE_MS;

/// The network group an address belongs to (see the file doc); the unit of "one source".
fn group(ip: IpAddr) -> Vec<u8> {
    match ip.to_canonical() {
        ip if ip.is_loopback() || ip.is_unspecified() => b"local".to_vec(),
        IpAddr::V4(a) if a.is_private() || a.is_link_local() => b"private".to_vec(),
        IpAddr::V6(a) if a.is_unique_local() || a.is_unicast_link_local() => b"private".to_vec(),
        IpAddr::V4(a) => [&[4u8][..], &a.octets()[..2]].concat(),
        IpAddr::V6(a) => [&[6u8][..], &a.octets()[..4]].concat(),
    }
}

fn entry_key(addr: &SocketAddr) -> Vec<u8> {
    [ENTRY_PREFIX, addr.to_string().as_bytes()].concat()
}

fn parse_addr(text: &[u8]) -> Option<SocketAddr> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Whether an address could ever be dialled.
fn dialable(addr: &SocketAddr) -> bool {
    addr.port() != 0 && !addr.ip().is_unspecified()
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub struct AddrMan {
    kv: Arc<dyn KvStore>,
    /// The secret behind every bucket position.
    key: [u8; 32],
    /// `NEW_BUCKETS * BUCKET_SIZE` slots, bucket-major.
    new: Vec<Option<SocketAddr>>,
    /// `TRIED_BUCKETS * BUCKET_SIZE` slots, bucket-major.
    tried: Vec<Option<SocketAddr>>,
    /// Every address in a slot, and nothing else.
    entries: HashMap<SocketAddr, Entry>,
}

impl AddrMan {
    /// Loads the persisted tables (making the secret key on first start), imports legacy
    /// address-book entries and deletes unreadable ones.
    pub fn load(kv: Arc<dyn KvStore>) -> AddrMan {
        let mut ops = Vec::new();
        let key = match kv.get(Column::Peers, KEY_KEY) {
            Ok(Some(k)) if k.len() == 32 => k.try_into().expect("checked to be 32 bytes"),
            other => {
                if !matches!(other, Ok(None)) {
                    tracing::warn!("address manager key unreadable; making a new one");
                }
                let k: [u8; 32] = rand::random();
                ops.push((Column::Peers, KEY_KEY.to_vec(), Change::Put(k.to_vec())));
                k
            }
        };
        let (mut stored, mut legacy, mut bad) = (Vec::new(), Vec::new(), Vec::new());
        let scan = kv.scan_prefix(Column::Peers, &[], &mut |k, v| {
            if k == KEY_KEY || OTHER_OWNERS.iter().any(|p| k.starts_with(p)) {
                // Ours, or another owner's in the same column (bans): left alone.
            } else if let Some(text) = k.strip_prefix(ENTRY_PREFIX) {
                match parse_addr(text)
                    .ok_or(EntryError::Address)
                    .and_then(|a| Entry::decode(v).map(|e| (a, e)))
                {
                    Ok((a, e)) => stored.push((k.to_vec(), a, e)),
                    Err(e) => bad.push((k.to_vec(), e)),
                }
            } else if let (Some(a), Ok(v)) = (parse_addr(k), <[u8; 12]>::try_from(v)) {
                let seen = u64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
                let failures = u32::from_be_bytes(v[8..].try_into().expect("4 bytes"));
                legacy.push((k.to_vec(), a, seen, failures));
            } else {
                bad.push((k.to_vec(), EntryError::Unreadable));
            }
            true
        });
        if let Err(e) = scan {
            tracing::warn!(error = %e, "cannot read the address manager; starting empty");
        }
        let mut man = AddrMan {
            kv,
            key,
            new: vec![None; NEW_BUCKETS * BUCKET_SIZE],
            tried: vec![None; TRIED_BUCKETS * BUCKET_SIZE],
            entries: HashMap::new(),
        };
        for (k, addr, e) in stored {
            if man.entries.contains_key(&addr) || man.occupant(e.pos).is_some() {
                bad.push((k, EntryError::Collision));
            } else {
                man.place(addr, e); // already stored as it is
            }
        }
        for (k, addr, seen, failures) in legacy {
            ops.push((Column::Peers, k, Change::Delete));
            let pos = man.new_pos(&addr, addr.ip());
            if dialable(&addr) && !man.entries.contains_key(&addr) && man.occupant(pos).is_none() {
                let e = Entry { failures, ..Entry::fresh(pos, addr.ip(), seen) };
                ops.push(man.place(addr, e));
            }
        }
        if let Some((_, first)) = bad.first() {
            tracing::warn!(count = bad.len(), first = %first, "deleting unreadable peer entries");
        }
        ops.extend(bad.into_iter().map(|(k, _)| (Column::Peers, k, Change::Delete)));
        man.write(ops);
        if !man.is_empty() {
            tracing::info!(new = man.new_count(), tried = man.tried_count(), "addresses loaded");
        }
        man
    }

    /// Adds addresses heard of from `source` to the new table; returns how many were new.
    /// Known addresses keep their slot (at most their last-seen time is refreshed).
    pub fn add(&mut self, addrs: &[SocketAddr], source: IpAddr, now_ms: u64) -> usize {
        let (mut ops, mut added) = (Vec::new(), 0);
        for addr in addrs.iter().filter(|a| dialable(a)) {
            if let Some(e) = self.entries.get_mut(addr) {
                if now_ms > e.last_seen_ms.saturating_add(REFRESH_MS) {
                    e.last_seen_ms = now_ms;
                    ops.push((Column::Peers, entry_key(addr), Change::Put(e.encode())));
                }
                continue;
            }
            let pos = self.new_pos(addr, source);
            if let Some(old) = self.occupant(pos) {
                if !self.entries[&old].is_terrible(now_ms) {
                    continue; // first come keeps its slot: the heart of flood resistance
                }
                ops.extend(self.remove(&old).map(|(_, op)| op));
            }
            ops.push(self.place(*addr, Entry::fresh(pos, source, now_ms)));
            added += 1;
        }
        self.write(ops);
        added
    }

    /// Records a completed outbound handshake: the address moves to (or stays in) tried.
    /// A displaced tried occupant returns to its new slot, unless a good entry holds it.
    pub fn good(&mut self, addr: SocketAddr, now_ms: u64) {
        if !dialable(&addr) {
            return;
        }
        let mut ops = Vec::new();
        let mut e = match self.entries.get(&addr).copied() {
            Some(e) if e.pos.table == Table::Tried => e,
            Some(_) => self.remove(&addr).expect("just found").0, // re-put below
            None => Entry::fresh(self.tried_pos(&addr), addr.ip(), now_ms),
        };
        if e.pos.table == Table::New {
            e.pos = self.tried_pos(&addr);
        }
        if let Some(old) = self.occupant(e.pos).filter(|o| *o != addr) {
            let (mut o, op) = self.remove(&old).expect("a slot's occupant has an entry");
            ops.push(op);
            o.pos = self.new_pos(&old, o.source);
            let room = match self.occupant(o.pos) {
                None => true,
                Some(y) if self.entries[&y].is_terrible(now_ms) => {
                    ops.extend(self.remove(&y).map(|(_, op)| op));
                    true
                }
                Some(_) => false,
            };
            if room {
                ops.push(self.place(old, o));
            }
        }
        e.last_seen_ms = now_ms;
        e.last_try_ms = now_ms;
        e.last_success_ms = now_ms;
        e.failures = 0;
        ops.push(self.place(addr, e));
        self.write(ops);
    }

    /// Records that we are about to dial `addr`; follow with [`good`](Self::good) or
    /// [`failed`](Self::failed).
    pub fn attempt(&mut self, addr: SocketAddr, now_ms: u64) {
        if let Some(e) = self.entries.get_mut(&addr) {
            e.last_try_ms = now_ms;
            let op = (Column::Peers, entry_key(&addr), Change::Put(e.encode()));
            self.write(vec![op]);
        }
    }

    /// Records a failed dial. A new entry failing 5 times in a row is forgotten; a tried one
    /// only becomes less likely to be selected (a node we once reached may be back).
    pub fn failed(&mut self, addr: &SocketAddr) {
        let Some(e) = self.entries.get_mut(addr) else { return };
        e.failures = e.failures.saturating_add(1);
        if e.pos.table == Table::New && e.failures >= NEW_MAX_FAILURES {
            self.forget(addr);
        } else {
            let op = (Column::Peers, entry_key(addr), Change::Put(e.encode()));
            self.write(vec![op]);
        }
    }

    /// Removes an address from whichever table holds it (ourselves, another network).
    pub fn forget(&mut self, addr: &SocketAddr) {
        if let Some((_, op)) = self.remove(addr) {
            self.write(vec![op]);
        }
    }

    /// An address to dial among those passing `ok`: tried or new with even odds when both have
    /// one, then weighted by 0.66^failures (Core's chance factor). None when none pass.
    pub fn select(
        &self,
        ok: impl Fn(&SocketAddr) -> bool,
        rng: &mut impl Rng,
    ) -> Option<SocketAddr> {
        let pick = |slots: &[Option<SocketAddr>]| -> Vec<SocketAddr> {
            slots.iter().flatten().filter(|a| ok(a)).copied().collect()
        };
        let (tried, new) = (pick(&self.tried), pick(&self.new));
        let from = match (tried.is_empty(), new.is_empty()) {
            (true, true) => return None,
            (false, false) if rng.gen_bool(0.5) => tried,
            (false, false) => new,
            (false, true) => tried,
            (true, false) => new,
        };
        from.choose_weighted(rng, |a| 0.66f64.powi(self.entries[a].failures.min(8) as i32))
            .ok()
            .copied()
    }

    /// Addresses for a `GetAddr` answer: a random subset of the non-terrible ones, at most
    /// `max`, and at most 23% of all known or [`GETADDR_MIN`], whichever is more. Judged
    /// against the wall clock, as it has no clock passed in.
    pub fn sample(&self, max: usize, rng: &mut impl Rng) -> Vec<SocketAddr> {
        let limit = max.min((self.len() * GETADDR_MAX_PCT).div_ceil(100).max(GETADDR_MIN));
        let now = wall_ms();
        let ok: Vec<SocketAddr> =
            self.iter().filter(|a| !self.entries[a].is_terrible(now)).collect();
        ok.choose_multiple(rng, limit).copied().collect()
    }

    /// All known addresses, tried first.
    #[cfg(test)]
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.iter().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn new_count(&self) -> usize {
        self.new.iter().flatten().count()
    }

    pub fn tried_count(&self) -> usize {
        self.tried.iter().flatten().count()
    }

    // Part of the API the brief fixed; only tests call it so far.
    #[allow(dead_code)]
    pub fn contains(&self, addr: &SocketAddr) -> bool {
        self.entries.contains_key(addr)
    }

    fn iter(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.tried.iter().chain(&self.new).flatten().copied()
    }

    /// SHA-256 of the secret and length-prefixed parts, cut to a u64.
    fn hash(&self, parts: &[&[u8]]) -> u64 {
        let mut h = Sha256::new();
        h.update(self.key);
        for p in parts {
            h.update([p.len() as u8]);
            h.update(p);
        }
        u64::from_be_bytes(h.finalize()[..8].try_into().expect("a digest has 32 bytes"))
    }

    /// Core's new bucket: the address's group picks one of its source group's 8 buckets.
    fn new_pos(&self, addr: &SocketAddr, source: IpAddr) -> Pos {
        let (ag, sg) = (group(addr.ip()), group(source));
        let h1 = self.hash(&[b"new1", &ag, &sg]) % NEW_BUCKETS_PER_SOURCE_GROUP;
        let bucket = self.hash(&[b"new2", &sg, &h1.to_be_bytes()]) % NEW_BUCKETS as u64;
        self.slot_in(Table::New, bucket as u16, addr)
    }

    /// Core's tried bucket: the address picks one of its group's 8 buckets.
    fn tried_pos(&self, addr: &SocketAddr) -> Pos {
        let h1 = self.hash(&[b"tried1", addr.to_string().as_bytes()]) % TRIED_BUCKETS_PER_GROUP;
        let g = group(addr.ip());
        let bucket = self.hash(&[b"tried2", &g, &h1.to_be_bytes()]) % TRIED_BUCKETS as u64;
        self.slot_in(Table::Tried, bucket as u16, addr)
    }

    fn slot_in(&self, table: Table, bucket: u16, addr: &SocketAddr) -> Pos {
        let text = addr.to_string();
        let parts: [&[u8]; 4] = [b"slot", &[table as u8], &bucket.to_be_bytes(), text.as_bytes()];
        Pos { table, bucket, slot: (self.hash(&parts) % BUCKET_SIZE as u64) as u8 }
    }

    fn slots_mut(&mut self, table: Table) -> &mut [Option<SocketAddr>] {
        match table {
            Table::New => &mut self.new,
            Table::Tried => &mut self.tried,
        }
    }

    fn occupant(&self, pos: Pos) -> Option<SocketAddr> {
        match pos.table {
            Table::New => self.new[pos.index()],
            Table::Tried => self.tried[pos.index()],
        }
    }

    /// Puts an entry in its (free) slot; returns the store write.
    fn place(&mut self, addr: SocketAddr, e: Entry) -> Op {
        debug_assert!(self.occupant(e.pos).is_none_or(|o| o == addr), "slot taken");
        self.slots_mut(e.pos.table)[e.pos.index()] = Some(addr);
        self.entries.insert(addr, e);
        debug_assert!(self.entries.len() <= MAX_ENTRIES, "one entry per slot");
        (Column::Peers, entry_key(&addr), Change::Put(e.encode()))
    }

    /// Takes an entry out of its slot; returns it and the store delete.
    fn remove(&mut self, addr: &SocketAddr) -> Option<(Entry, Op)> {
        let e = self.entries.remove(addr)?;
        self.slots_mut(e.pos.table)[e.pos.index()] = None;
        Some((e, (Column::Peers, entry_key(addr), Change::Delete)))
    }

    fn write(&self, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        if let Err(e) = self.kv.write(ops) {
            tracing::warn!(error = %e, "cannot write the address manager");
        }
    }
}

#[cfg(test)]
mod tests;
