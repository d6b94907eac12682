//! Account state: `address -> { balance, nonce }`, read through the small [`StateView`] trait.
//!
//! Applying a block yields a [`StateDelta`]: the new state of every account it touched and an
//! [`Undo`] record holding their previous states, so the node can revert the block exactly
//! during a reorg. An account whose balance and nonce are both zero does not exist: stores
//! delete it rather than keep a zero entry, so two nodes with the same accounts have the same
//! state whatever history led there.

use crate::address::Address;
use crate::amount::Amount;
use crate::hash::{sha256, Digest32};
use bincode::{Decode, Encode};
use std::collections::BTreeMap;

/// One account's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode, serde::Serialize)]
pub struct Account {
    pub balance: Amount,
    /// Number of transactions this account has sent; the next one must carry this nonce.
    pub nonce: u64,
}

impl Account {
    /// True for the state of an account that does not exist.
    pub fn is_empty(&self) -> bool {
        self.balance == Amount::ZERO && self.nonce == 0
    }
}

/// Read access to account state.
pub trait StateView {
    /// The account's state; [`Account::default`] when it does not exist.
    fn account(&self, address: &Address) -> Account;
}

/// The previous state of every account a block changed, in first-touch order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, Decode)]
pub struct Undo {
    pub previous: Vec<(Address, Account)>,
}

/// The effect of a block: new states of the accounts it touched and how to revert them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateDelta {
    /// New state per touched account (sorted by address; empty means "delete").
    pub updates: Vec<(Address, Account)>,
    pub undo: Undo,
}

/// An in-memory account state: the reference implementation for tests and tools.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemState {
    accounts: BTreeMap<Address, Account>,
}

impl StateView for MemState {
    fn account(&self, address: &Address) -> Account {
        self.accounts.get(address).copied().unwrap_or_default()
    }
}

impl MemState {
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets an account, deleting it when empty.
    pub fn set(&mut self, address: Address, account: Account) {
        if account.is_empty() {
            self.accounts.remove(&address);
        } else {
            self.accounts.insert(address, account);
        }
    }
    /// Writes a block's new states.
    pub fn apply(&mut self, delta: &StateDelta) {
        for (addr, acct) in &delta.updates {
            self.set(*addr, *acct);
        }
    }
    /// Reverts a block with its undo record.
    pub fn revert(&mut self, undo: &Undo) {
        for (addr, acct) in &undo.previous {
            self.set(*addr, *acct);
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = (&Address, &Account)> {
        self.accounts.iter()
    }
    pub fn len(&self) -> usize {
        self.accounts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
    /// Sum of all balances; `None` on overflow (impossible under the consensus rules).
    pub fn total_balance(&self) -> Option<Amount> {
        Amount::checked_sum(self.accounts.values().map(|a| a.balance))
    }
    pub fn digest(&self) -> Digest32 {
        state_digest(self.accounts.iter().map(|(a, s)| (*a, *s)))
    }
}

/// The state digest: sha256 over `address || encode(account)` of every non-empty account in
/// ascending address order. Two nodes agree on state exactly when their digests match.
pub fn state_digest(accounts_in_order: impl Iterator<Item = (Address, Account)>) -> Digest32 {
    let mut hasher = StateHasher::default();
    for (a, s) in accounts_in_order {
        hasher.add(&a, &s);
    }
    hasher.finish()
}

/// Incremental form of [`state_digest`] for stores that stream their accounts.
#[derive(Default)]
pub struct StateHasher(sha2::Sha256);

impl StateHasher {
    /// Adds the next account; accounts must come in ascending address order.
    pub fn add(&mut self, address: &Address, account: &Account) {
        use sha2::Digest;
        if !account.is_empty() {
            self.0.update(address.as_bytes());
            self.0.update(crate::encoding::encode(account));
        }
    }
    pub fn finish(self) -> Digest32 {
        use sha2::Digest;
        Digest32::from_bytes(self.0.finalize().into())
    }
}

/// Accumulates changes while a block is applied, reading through to a base state.
pub(crate) struct Overlay<'a, S: StateView + ?Sized> {
    base: &'a S,
    changed: BTreeMap<Address, Account>,
    undo: Undo,
}

impl<'a, S: StateView + ?Sized> Overlay<'a, S> {
    pub(crate) fn new(base: &'a S) -> Self {
        Overlay { base, changed: BTreeMap::new(), undo: Undo::default() }
    }
    pub(crate) fn get(&self, a: &Address) -> Account {
        self.changed.get(a).copied().unwrap_or_else(|| self.base.account(a))
    }
    pub(crate) fn put(&mut self, a: Address, acct: Account) {
        if !self.changed.contains_key(&a) {
            self.undo.previous.push((a, self.base.account(&a)));
        }
        self.changed.insert(a, acct);
    }
    pub(crate) fn finish(self) -> StateDelta {
        StateDelta { updates: self.changed.into_iter().collect(), undo: self.undo }
    }
}

/// Digest of an empty state, for reference.
pub fn empty_state_digest() -> Digest32 {
    Digest32::from_hash(sha256(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_accounts_are_deleted() {
        let mut s = MemState::new();
        let a = Address::from_bytes([1; 32]);
        s.set(a, Account { balance: Amount::from_units(5), nonce: 0 });
        assert_eq!(s.len(), 1);
        s.set(a, Account::default());
        assert!(s.is_empty());
        assert_eq!(s.digest(), empty_state_digest());
    }

    #[test]
    fn overlay_records_first_previous_state_only() {
        let mut base = MemState::new();
        let a = Address::from_bytes([1; 32]);
        base.set(a, Account { balance: Amount::from_units(5), nonce: 0 });
        let mut o = Overlay::new(&base);
        o.put(a, Account { balance: Amount::from_units(4), nonce: 1 });
        o.put(a, Account { balance: Amount::from_units(3), nonce: 2 });
        let d = o.finish();
        assert_eq!(d.undo.previous, vec![(a, base.account(&a))]);
        let mut s = base.clone();
        s.apply(&d);
        assert_eq!(s.account(&a).nonce, 2);
        s.revert(&d.undo);
        assert_eq!(s, base);
    }
}
