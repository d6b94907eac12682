//! One address manager entry and its stored form (the 49-byte value of `addr/<ip:port>`;
//! see the layout in `addrman.rs`'s doc), with Core's `IsTerrible` judgement.

use super::{BUCKET_SIZE, DAY_MS, ENTRY_LEN, MINUTE_MS, NEW_BUCKETS, TRIED_BUCKETS};
use std::net::IpAddr;

/// Why a stored entry could not be read (it is then deleted).
#[derive(Debug, thiserror::Error)]
pub(super) enum EntryError {
    /// The key after `addr/` is not an `ip:port`.
    #[error("the key is not an address")]
    Address,
    /// The value has the wrong size for this format.
    #[error("value is {0} bytes, expected {ENTRY_LEN}")]
    Length(usize),
    /// The table byte is neither new (0) nor tried (1).
    #[error("unknown table {0}")]
    Table(u8),
    /// The source family byte is neither 4 nor 6.
    #[error("unknown address family {0}")]
    Family(u8),
    /// The bucket or slot lies outside its table.
    #[error("bucket {0} slot {1} is outside its table")]
    Position(u16, u8),
    /// Another entry already holds the slot (or the address).
    #[error("its slot or address is taken by another entry")]
    Collision,
    /// Neither an addrman entry nor a legacy address-book entry.
    #[error("not an address entry")]
    Unreadable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    New = 0,
    Tried = 1,
}

/// Where an entry sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    pub(super) table: Table,
    pub(super) bucket: u16,
    pub(super) slot: u8,
}

impl Pos {
    pub(super) fn index(self) -> usize {
        self.bucket as usize * BUCKET_SIZE + self.slot as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) pos: Pos,
    /// Who told us (ourselves for tried entries we found alone): decides the new bucket.
    pub(super) source: IpAddr,
    pub(super) last_seen_ms: u64,
    pub(super) last_try_ms: u64,
    pub(super) last_success_ms: u64,
    pub(super) failures: u32,
}

impl Entry {
    pub(super) fn fresh(pos: Pos, source: IpAddr, now_ms: u64) -> Entry {
        Entry { pos, source, last_seen_ms: now_ms, last_try_ms: 0, last_success_ms: 0, failures: 0 }
    }

    /// Core's `IsTerrible`: an entry that may be overwritten and is never gossiped.
    pub(super) fn is_terrible(&self, now_ms: u64) -> bool {
        // Just tried: give the attempt a chance to finish before judging.
        if self.last_try_ms != 0 && now_ms.saturating_sub(self.last_try_ms) < MINUTE_MS {
            return false;
        }
        self.last_seen_ms > now_ms + 10 * MINUTE_MS
            || now_ms.saturating_sub(self.last_seen_ms) > 30 * DAY_MS
            || (self.last_success_ms == 0 && self.failures >= 3)
            || (now_ms.saturating_sub(self.last_success_ms) > 7 * DAY_MS && self.failures >= 10)
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(ENTRY_LEN);
        v.push(self.pos.table as u8);
        v.extend_from_slice(&self.pos.bucket.to_be_bytes());
        v.push(self.pos.slot);
        let mut ip = [0u8; 16];
        match self.source {
            IpAddr::V4(a) => {
                v.push(4);
                ip[..4].copy_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                v.push(6);
                ip = a.octets();
            }
        }
        v.extend_from_slice(&ip);
        for t in [self.last_seen_ms, self.last_try_ms, self.last_success_ms] {
            v.extend_from_slice(&t.to_be_bytes());
        }
        v.extend_from_slice(&self.failures.to_be_bytes());
        v
    }

    pub(super) fn decode(b: &[u8]) -> Result<Entry, EntryError> {
        let b: &[u8; ENTRY_LEN] = b.try_into().map_err(|_| EntryError::Length(b.len()))?;
        let table = match b[0] {
            0 => Table::New,
            1 => Table::Tried,
            t => return Err(EntryError::Table(t)),
        };
        let (bucket, slot) = (u16::from_be_bytes([b[1], b[2]]), b[3]);
        let buckets = if table == Table::New { NEW_BUCKETS } else { TRIED_BUCKETS };
        if bucket as usize >= buckets || slot as usize >= BUCKET_SIZE {
            return Err(EntryError::Position(bucket, slot));
        }
        let ip: [u8; 16] = b[5..21].try_into().expect("16 bytes of a fixed-size array");
        let source = match b[4] {
            4 => IpAddr::from([ip[0], ip[1], ip[2], ip[3]]),
            6 => IpAddr::from(ip),
            f => return Err(EntryError::Family(f)),
        };
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Ok(Entry {
            pos: Pos { table, bucket, slot },
            source,
            last_seen_ms: u64_at(21),
            last_try_ms: u64_at(29),
            last_success_ms: u64_at(37),
            failures: u32::from_be_bytes(b[45..49].try_into().expect("4 bytes")),
        })
    }
}
