//! The tip state's accounts most recently read or written, in memory, in front of the store
//! (as Core's `CCoinsViewCache` sits in front of its coins database, though write-through
//! here: the store is always up to date, the cache is only a copy).
//!
//! Connecting a block reads every sender and receiver it touches, and the mempool then reads
//! each sender again; admission reads each payment's sender and receiver. Those reads hit
//! the same few thousand accounts over and over, and a RocksDB point read (memtable, then
//! block cache, then decode) costs about as much as the rest of a payment's connection. The
//! cache answers them from a hash map.
//!
//! Consistency: only the chain manager writes accounts, and it updates this cache with the
//! same values right after each store write succeeds (connect, disconnect); reads fill it
//! from the store. Bounded: at [`AccountCache::DEFAULT_CAPACITY`] accounts it is emptied and refills
//! from the store (about 100 bytes an entry).

use ember_core::{Account, Address};
use std::collections::HashMap;

/// A bounded copy of the tip state's accounts. Absent from the store means
/// `Account::default()`, cached like any other value.
#[derive(Debug)]
pub struct AccountCache {
    map: HashMap<Address, Account>,
    capacity: usize,
}

impl AccountCache {
    /// Accounts kept at most before the cache is emptied: 65,536 (about 7 MB).
    pub const DEFAULT_CAPACITY: usize = 1 << 16;

    pub fn new(capacity: usize) -> Self {
        AccountCache { map: HashMap::new(), capacity: capacity.max(1) }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }

    pub fn get(&self, address: &Address) -> Option<Account> {
        self.map.get(address).copied()
    }

    /// Records `address`'s state at the tip, as just read from or written to the store.
    pub fn put(&mut self, address: Address, account: Account) {
        if self.map.len() >= self.capacity && !self.map.contains_key(&address) {
            self.map.clear();
        }
        self.map.insert(address, account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::Amount;

    fn acct(n: u64) -> Account {
        Account { balance: Amount::from_units(n), nonce: n }
    }

    #[test]
    fn keeps_the_latest_value_and_never_more_than_its_capacity() {
        let mut c = AccountCache::new(3);
        let a = |i: u8| Address::from_bytes([i; 32]);
        c.put(a(1), acct(1));
        c.put(a(1), acct(2));
        assert_eq!(c.get(&a(1)), Some(acct(2)), "a write replaces the cached value");
        c.put(a(2), acct(2));
        c.put(a(3), acct(3));
        assert_eq!(c.len(), 3);
        c.put(a(3), acct(4));
        assert_eq!(c.len(), 3, "updating a cached account never empties the cache");
        c.put(a(4), acct(4));
        assert_eq!(c.len(), 1, "full: emptied, then the new account kept");
        assert_eq!(c.get(&a(1)), None);
        assert_eq!(c.get(&a(4)), Some(acct(4)));
    }
}
