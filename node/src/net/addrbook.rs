//! The address book: peer listening addresses learned from handshakes and `addr` gossip,
//! kept in the store's `peers` column so that a restarted node can find the network again
//! without its `--peer` list.
//!
//! Value layout (12 bytes): last time we connected or heard of it (u64 BE, Unix ms), then
//! consecutive failed connection attempts (u32 BE). An entry that fails five times in a row
//! is forgotten. When full, the entry with the most failures (then the oldest) makes room.

use crate::store::{Column, KvStore, Op};
use rand::seq::IteratorRandom;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Consecutive failures after which an address is forgotten.
const MAX_FAILURES: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    last_seen_ms: u64,
    failures: u32,
}

impl Entry {
    fn encode(self) -> Vec<u8> {
        let mut v = self.last_seen_ms.to_be_bytes().to_vec();
        v.extend_from_slice(&self.failures.to_be_bytes());
        v
    }

    fn decode(bytes: &[u8]) -> Option<Entry> {
        let bytes: &[u8; 12] = bytes.try_into().ok()?;
        Some(Entry {
            last_seen_ms: u64::from_be_bytes(bytes[..8].try_into().ok()?),
            failures: u32::from_be_bytes(bytes[8..].try_into().ok()?),
        })
    }
}

pub struct AddrBook {
    kv: Arc<dyn KvStore>,
    cap: usize,
    entries: HashMap<SocketAddr, Entry>,
}

impl AddrBook {
    /// Loads the persisted book; unreadable entries are dropped with a warning.
    pub fn load(kv: Arc<dyn KvStore>, cap: usize) -> AddrBook {
        let mut entries = HashMap::new();
        let mut bad = Vec::new();
        let scan = kv.scan_prefix(Column::Peers, &[], &mut |k, v| {
            let addr = std::str::from_utf8(k).ok().and_then(|t| t.parse::<SocketAddr>().ok());
            match (addr, Entry::decode(v)) {
                (Some(a), Some(e)) => {
                    entries.insert(a, e);
                }
                _ => bad.push(k.to_vec()),
            }
            true
        });
        if let Err(e) = scan {
            tracing::warn!(error = %e, "cannot read the address book; starting with an empty one");
        }
        let book = AddrBook { kv, cap, entries };
        if !bad.is_empty() {
            tracing::warn!(count = bad.len(), "dropping unreadable address book entries");
            book.write(bad.into_iter().map(|k| (Column::Peers, k, None)).collect());
        }
        if !book.entries.is_empty() {
            tracing::info!(addresses = book.entries.len(), "address book loaded");
        }
        book
    }

    fn write(&self, ops: Vec<Op>) {
        if let Err(e) = self.kv.write(ops) {
            tracing::warn!(error = %e, "cannot write the address book");
        }
    }

    fn put(&mut self, addr: SocketAddr, e: Entry) -> Op {
        self.entries.insert(addr, e);
        (Column::Peers, addr.to_string().into_bytes(), Some(e.encode()))
    }

    /// Known addresses, most recently seen first.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let mut v: Vec<(&SocketAddr, &Entry)> = self.entries.iter().collect();
        v.sort_by(|a, b| b.1.last_seen_ms.cmp(&a.1.last_seen_ms).then(a.0.cmp(b.0)));
        v.into_iter().map(|(a, _)| *a).collect()
    }

    /// Records an address heard of (gossip or a peer's handshake). Known ones keep their
    /// record; a full book evicts its worst entry first.
    pub fn learn(&mut self, addr: SocketAddr, now_ms: u64) {
        if self.entries.contains_key(&addr) {
            return;
        }
        let mut ops = Vec::new();
        if self.entries.len() >= self.cap {
            let worst = self
                .entries
                .iter()
                .max_by(|a, b| {
                    a.1.failures.cmp(&b.1.failures).then(b.1.last_seen_ms.cmp(&a.1.last_seen_ms))
                })
                .map(|(a, _)| *a);
            if let Some(w) = worst {
                self.entries.remove(&w);
                ops.push((Column::Peers, w.to_string().into_bytes(), None));
            }
        }
        ops.push(self.put(addr, Entry { last_seen_ms: now_ms, failures: 0 }));
        self.write(ops);
    }

    /// Records a successful outbound connection.
    pub fn connected(&mut self, addr: &SocketAddr, now_ms: u64) {
        if self.entries.contains_key(addr) {
            let op = self.put(*addr, Entry { last_seen_ms: now_ms, failures: 0 });
            self.write(vec![op]);
        }
    }

    /// Records a failed connection attempt; forgets the address after too many.
    pub fn failed(&mut self, addr: &SocketAddr) {
        let Some(mut e) = self.entries.get(addr).copied() else { return };
        e.failures += 1;
        if e.failures >= MAX_FAILURES {
            self.forget(addr);
        } else {
            let op = self.put(*addr, e);
            self.write(vec![op]);
        }
    }

    pub fn forget(&mut self, addr: &SocketAddr) {
        if self.entries.remove(addr).is_some() {
            self.write(vec![(Column::Peers, addr.to_string().into_bytes(), None)]);
        }
    }

    /// A random address among those with the fewest failures that pass `ok`.
    pub fn pick(&self, ok: impl Fn(&SocketAddr) -> bool) -> Option<SocketAddr> {
        let fewest = self.entries.iter().filter(|(a, _)| ok(a)).map(|(_, e)| e.failures).min()?;
        self.entries
            .iter()
            .filter(|(a, e)| e.failures == fewest && ok(a))
            .map(|(a, _)| *a)
            .choose(&mut rand::thread_rng())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemKv;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn book_survives_a_reload_and_forgets_failing_addresses() {
        let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
        let mut book = AddrBook::load(kv.clone(), 10);
        book.learn(addr(1), 100);
        book.learn(addr(2), 200);
        book.connected(&addr(1), 300);
        let reloaded = AddrBook::load(kv.clone(), 10);
        assert_eq!(reloaded.addresses(), vec![addr(1), addr(2)], "most recent first");
        let mut book = reloaded;
        for _ in 0..MAX_FAILURES {
            book.failed(&addr(2));
        }
        assert_eq!(AddrBook::load(kv, 10).addresses(), vec![addr(1)]);
    }

    #[test]
    fn full_book_evicts_the_worst_entry() {
        let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
        let mut book = AddrBook::load(kv.clone(), 2);
        book.learn(addr(1), 100);
        book.learn(addr(2), 200);
        book.failed(&addr(2));
        book.learn(addr(3), 300);
        let mut left = AddrBook::load(kv, 2).addresses();
        left.sort();
        assert_eq!(left, vec![addr(1), addr(3)]);
    }

    #[test]
    fn corrupt_entries_are_dropped_on_load() {
        let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
        kv.write(vec![
            (Column::Peers, b"not an address".to_vec(), Some(vec![0; 12])),
            (Column::Peers, addr(7).to_string().into_bytes(), Some(vec![1, 2, 3])),
            (
                Column::Peers,
                addr(8).to_string().into_bytes(),
                Some(Entry { last_seen_ms: 5, failures: 0 }.encode()),
            ),
        ])
        .unwrap();
        let book = AddrBook::load(kv.clone(), 10);
        assert_eq!(book.addresses(), vec![addr(8)]);
        let mut keys = 0;
        kv.scan_prefix(Column::Peers, &[], &mut |_, _| {
            keys += 1;
            true
        })
        .unwrap();
        assert_eq!(keys, 1, "the unreadable entries were deleted");
    }

    #[test]
    fn pick_prefers_addresses_that_did_not_fail() {
        let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
        let mut book = AddrBook::load(kv, 10);
        book.learn(addr(1), 1);
        book.learn(addr(2), 2);
        book.failed(&addr(1));
        assert_eq!(book.pick(|_| true), Some(addr(2)));
        assert_eq!(book.pick(|a| *a != addr(2)), Some(addr(1)));
        assert_eq!(book.pick(|_| false), None);
    }
}
