//! The signature cache: transactions whose signatures were already verified (at mempool
//! admission, or earlier in a block) are not verified again when a block brings them.
//!
//! Keyed by txid *and* signature: the txid does not cover the signature, so a cache keyed
//! by txid alone would let a tampered signature ride on an honest transaction's entry. An
//! entry is SHA-256(txid || signature), 32 bytes instead of the pair's 96: a tampered
//! signature would need a second preimage of it to hit. At the default 200,000 entries the
//! cache takes about 17 MB instead of 34 (the benchmark's nodes were at the 200 MB budget).
//!
//! Beside it, the key cache: senders' keys already decompressed into ed25519 points
//! ([`PublicKey`]), so a signature the cache lacks from a sender seen before (a sync's
//! payments, most admissions) costs one decompression instead of two. At most
//! [`KEY_CACHE_ENTRIES`]; a peer that sends payments of ever new senders only makes every
//! look-up miss, each costing what a check cost without the cache plus a look-up and an
//! insertion (under a microsecond, against ~40 µs for the check).

use ember_core::keys::{PublicKey, SignatureError};
use ember_core::validate::SigVerifier;
use ember_core::{Address, Signature, Transaction, Txid};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Decompressed sender keys kept: 7,168, 7/8 of 8,192, so the map (which fills at most 7/8
/// of its buckets) stays at 8,192 buckets of 225 bytes (the 32-byte address, the 192-byte
/// key, a control byte), 1.8 MB, with 0.25 MB for the eviction order: about 2 MB.
pub const KEY_CACHE_ENTRIES: usize = 7_168;

/// A bounded set of verified (txid, signature) pairs, oldest evicted first, and the
/// decompressed keys of recent senders.
pub struct SigCache {
    inner: Mutex<Fifo<[u8; 32], ()>>,
    keys: Mutex<Fifo<Address, PublicKey>>,
    capacity: usize,
    /// Verifications skipped thanks to the cache (a metric).
    pub hits: AtomicU64,
    /// Signatures actually verified through the cache.
    pub verified: AtomicU64,
}

/// A map of at most a given number of entries, the oldest evicted first.
struct Fifo<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: Hash + Eq + Copy, V> Fifo<K, V> {
    fn new() -> Self {
        Fifo { map: HashMap::new(), order: VecDeque::new() }
    }

    fn contains(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    /// Adds `k`, first evicting the oldest entries so that at most `capacity` are held,
    /// at any moment.
    fn insert(&mut self, k: K, v: V, capacity: usize) {
        if self.map.contains_key(&k) {
            return;
        }
        while self.order.len() >= capacity.max(1) {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        self.map.insert(k, v);
        self.order.push_back(k);
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
            inner: Mutex::new(Fifo::new()),
            keys: Mutex::new(Fifo::new()),
            capacity,
            hits: AtomicU64::new(0),
            verified: AtomicU64::new(0),
        }
    }

    pub fn contains(&self, tx: &Transaction) -> bool {
        let e = entry(&tx.txid(), tx.signature());
        self.inner.lock().expect("sig cache lock is never poisoned").contains(&e)
    }

    /// Records that `tx`'s signature verified.
    pub fn insert(&self, txid: Txid, sig: Signature) {
        let e = entry(&txid, &sig);
        self.inner.lock().expect("sig cache lock is never poisoned").insert(e, (), self.capacity);
    }

    /// Checks `tx`'s signature (strict ed25519, [`Transaction::verify_signature_with`])
    /// with its sender's key from the key cache, decompressing and keeping it on a miss;
    /// the (txid, signature) cache is neither read nor written.
    pub fn check(&self, tx: &Transaction) -> Result<(), SignatureError> {
        let from = tx.body().from;
        let kept =
            self.keys.lock().expect("key cache lock is never poisoned").map.get(&from).copied();
        let key = match kept {
            Some(key) => key,
            None => {
                let key = PublicKey::from_address(&from)?;
                self.keys.lock().expect("key cache lock is never poisoned").insert(
                    from,
                    key,
                    KEY_CACHE_ENTRIES,
                );
                key
            }
        };
        tx.verify_signature_with(&key)
    }

    /// Checks `tx`'s signature unless the cache holds it, and caches it when valid:
    /// `Ok(true)` when it was held (no check made), `Ok(false)` when checked now. Counts
    /// nothing; [`SigVerifier::verify`] counts for validation.
    pub fn check_and_cache(&self, tx: &Transaction) -> Result<bool, SignatureError> {
        if self.contains(tx) {
            return Ok(true);
        }
        self.check(tx)?;
        self.insert(tx.txid(), *tx.signature());
        Ok(false)
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
            (0..txs.len()).filter(|&i| !inner.contains(&entries[i])).collect()
        };
        if todo.is_empty() {
            return true;
        }
        let good: Vec<usize> =
            todo.par_iter().copied().filter(|&i| self.check(&txs[i]).is_ok()).collect();
        self.verified.fetch_add(todo.len() as u64, Ordering::Relaxed);
        let all_valid = good.len() == todo.len();
        let mut inner = self.inner.lock().expect("sig cache lock is never poisoned");
        for i in good {
            inner.insert(entries[i], (), self.capacity);
        }
        all_valid
    }

    pub fn len(&self) -> usize {
        self.inner.lock().expect("sig cache lock is never poisoned").map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SigVerifier for SigCache {
    fn verify(&self, tx: &Transaction) -> Result<(), SignatureError> {
        let result = self.check_and_cache(tx);
        let counter = if result == Ok(true) { &self.hits } else { &self.verified };
        counter.fetch_add(1, Ordering::Relaxed);
        result.map(|_| ())
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

    /// A sender's key kept from one check serves the next: a good signature passes, a
    /// tampered one is refused as without the cache, and neither is cached as verified.
    #[test]
    fn a_kept_key_refuses_what_a_fresh_one_refuses() {
        let k = keys(2);
        let p = devnet_funding(&k, 1);
        let cache = SigCache::new(10);
        assert!(cache.preverify(&[pay(&p, &k[0], k[1].address(), 1, 0, 0)]));
        assert_eq!(cache.keys.lock().unwrap().map.len(), 1, "the sender's key is kept");
        let next = pay(&p, &k[0], k[1].address(), 1, 0, 1);
        let forged = Transaction::from_parts(*next.body(), Signature([7; 64]));
        let mut other = *next.body();
        other.amount = ember_core::Amount::from_units(2);
        let moved = Transaction::from_parts(other, *next.signature());
        for bad in [&forged, &moved] {
            assert_eq!(cache.check(bad), bad.verify_signature());
            assert!(cache.check(bad).is_err());
            assert!(!cache.preverify(std::slice::from_ref(bad)));
            assert!(!cache.contains(bad));
        }
        assert!(cache.preverify(&[next]));
        assert_eq!(cache.keys.lock().unwrap().map.len(), 1);
    }

    /// At most `capacity` entries at any moment, the oldest evicted first; adding a held
    /// key again changes nothing.
    #[test]
    fn fifo_holds_at_most_its_capacity_oldest_out_first() {
        let mut f: Fifo<u32, u32> = Fifo::new();
        for k in 0..5 {
            f.insert(k, k * 10, 3);
            assert!(f.map.len() <= 3 && f.order.len() == f.map.len());
        }
        assert_eq!((f.contains(&1), f.contains(&2), f.contains(&4)), (false, true, true));
        f.insert(2, 99, 3);
        assert_eq!(f.map[&2], 20, "a held key is not replaced");
        f.insert(5, 50, 3);
        assert!(!f.contains(&2), "nor moved to the back: it is still the oldest");
    }

    /// A sender whose address is no curve point is refused as before (`BadKey`) and
    /// nothing is kept for it.
    #[test]
    fn an_off_curve_sender_is_refused_and_not_kept() {
        let k = keys(2);
        let p = devnet_funding(&k, 1);
        let mut body = *pay(&p, &k[0], k[1].address(), 1, 0, 0).body();
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        body.from = ember_core::Address::from_bytes(off_curve);
        let tx = Transaction::from_parts(body, Signature([1; 64]));
        let cache = SigCache::new(10);
        assert_eq!(cache.check(&tx), Err(SignatureError::BadKey));
        assert_eq!(cache.check(&tx), tx.verify_signature());
        assert!(cache.keys.lock().unwrap().map.is_empty());
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
