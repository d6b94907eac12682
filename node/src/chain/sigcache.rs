//! The signature cache: transactions whose signatures were already verified (at mempool
//! admission, or earlier in a block) are not verified again when a block brings them.
//!
//! Keyed by txid *and* signature: the txid does not cover the signature, so a cache keyed
//! by txid alone would let a tampered signature ride on an honest transaction's entry. An
//! entry is SHA-256(txid || signature), 32 bytes instead of the pair's 96: a tampered
//! signature would need a second preimage of it to hit. At the default 200,000 entries the
//! cache takes about 17 MB instead of 34 (the benchmark's nodes were at the 200 MB budget).

use ember_core::keys::SignatureError;
use ember_core::validate::SigVerifier;
use ember_core::{Signature, Transaction, Txid};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A bounded set of verified (txid, signature) pairs, oldest evicted first.
pub struct SigCache {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Verifications skipped thanks to the cache (a metric).
    pub hits: AtomicU64,
    /// Signatures actually verified through the cache.
    pub verified: AtomicU64,
}

#[derive(Default)]
struct Inner {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl Inner {
    /// Adds `e`, evicting the oldest entries beyond `capacity`.
    fn insert(&mut self, e: [u8; 32], capacity: usize) {
        if self.set.insert(e) {
            self.order.push_back(e);
            while self.order.len() > capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// The entry of a (txid, signature) pair.
fn entry(txid: &Txid, sig: &Signature) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(txid.as_bytes());
    h.update(sig.0);
    h.finalize().into()
}

impl SigCache {
    pub fn new(capacity: usize) -> Self {
        SigCache {
            inner: Mutex::new(Inner::default()),
            capacity,
            hits: AtomicU64::new(0),
            verified: AtomicU64::new(0),
        }
    }

    pub fn contains(&self, tx: &Transaction) -> bool {
        let e = entry(&tx.txid(), tx.signature());
        self.inner.lock().expect("sig cache lock is never poisoned").set.contains(&e)
    }

    /// Records that `tx`'s signature verified.
    pub fn insert(&self, txid: Txid, sig: Signature) {
        let e = entry(&txid, &sig);
        self.inner.lock().expect("sig cache lock is never poisoned").insert(e, self.capacity);
    }

    /// Verifies the signatures of `txs` not yet cached, in parallel on all cores, and caches
    /// the good ones. Returns whether every signature is valid (cached before, or verified
    /// now); which one is bad is not reported here: validation, if it runs, refuses it
    /// through [`SigVerifier::verify`]. Each entry is hashed once and the lock taken once for
    /// the look-ups and once for the insertions, whatever the count.
    pub fn preverify(&self, txs: &[Transaction]) -> bool {
        let entries: Vec<[u8; 32]> = txs.iter().map(|t| entry(&t.txid(), t.signature())).collect();
        let todo: Vec<usize> = {
            let inner = self.inner.lock().expect("sig cache lock is never poisoned");
            (0..txs.len()).filter(|&i| !inner.set.contains(&entries[i])).collect()
        };
        if todo.is_empty() {
            return true;
        }
        let good: Vec<usize> =
            todo.par_iter().copied().filter(|&i| txs[i].verify_signature().is_ok()).collect();
        self.verified.fetch_add(todo.len() as u64, Ordering::Relaxed);
        let all_valid = good.len() == todo.len();
        let mut inner = self.inner.lock().expect("sig cache lock is never poisoned");
        for i in good {
            inner.insert(entries[i], self.capacity);
        }
        all_valid
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("sig cache lock is never poisoned").set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SigVerifier for SigCache {
    fn verify(&self, tx: &Transaction) -> Result<(), SignatureError> {
        if self.contains(tx) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.verified.fetch_add(1, Ordering::Relaxed);
        tx.verify_signature()?;
        self.insert(tx.txid(), *tx.signature());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::testkit::{devnet_funding, keys, pay};

    #[test]
    fn cache_keys_on_signature_too() {
        let k = keys(2);
        let p = devnet_funding(&k, 1);
        let t = pay(&p, &k[0], k[1].address(), 1, 0, 0);
        let cache = SigCache::new(10);
        cache.verify(&t).unwrap();
        assert!(cache.contains(&t));
        let forged = Transaction::from_parts(*t.body(), Signature([0; 64]));
        assert!(!cache.contains(&forged));
        assert_eq!(cache.verify(&forged), Err(SignatureError::Invalid));
        assert!(!cache.contains(&forged), "a failed signature is not cached");
    }

    #[test]
    fn cache_is_bounded() {
        let cache = SigCache::new(3);
        for i in 0..10u8 {
            cache.insert(Txid::from_bytes([i; 32]), Signature([i; 64]));
        }
        assert_eq!(cache.len(), 3);
    }
}
