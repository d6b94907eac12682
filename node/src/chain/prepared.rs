//! A block prepared for the chain manager: the checks that need no chain state, done once on
//! a blocking thread before the chain lock is taken, and carried with the block so no later
//! step repeats them.
//!
//! A block's path (socket or compact rebuild → [`PreparedBlock::check_root`] →
//! [`PreparedBlock::verify_signatures`] → `ChainManager::accept_prepared` → connected) used to
//! hash each payment's signature-cache entry twice and the merkle root twice; now each once.
//! The txids themselves are computed once, when a payment is decoded
//! ([`ember_core::Transaction::txid`]).

use super::SigCache;
use ember_core::keys::SignatureError;
use ember_core::validate::{self, SigVerifier};
use ember_core::{Block, BlockError, BlockId, Transaction};
use std::sync::Arc;

/// A block and what is already known to hold of it. Only this module's methods set the
/// flags, each after doing the check it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedBlock {
    block: Arc<Block>,
    id: BlockId,
    /// The merkle root of its txids equals the header's `tx_root`.
    root_matches: bool,
    /// Every payment's signature is valid (verified now or found in the signature cache).
    signatures_valid: bool,
}

impl PreparedBlock {
    /// A block nothing is known of yet (its id is computed here).
    pub fn new(block: impl Into<Arc<Block>>) -> Self {
        let block = block.into();
        PreparedBlock { id: block.id(), block, root_matches: false, signatures_valid: false }
    }

    pub fn id(&self) -> BlockId {
        self.id
    }

    pub fn block(&self) -> &Arc<Block> {
        &self.block
    }

    /// Whether every payment's signature was found valid ([`PreparedBlock::verify_signatures`]).
    pub fn signatures_valid(&self) -> bool {
        self.signatures_valid
    }

    /// Whether the body is the header's ([`validate::check_tx_root`]): `Err(BadTxRoot)` when
    /// not. Remembered when it is, so validation does not hash the tree again.
    pub fn check_root(&mut self) -> Result<(), BlockError> {
        if !self.root_matches {
            validate::check_tx_root(&self.block)?;
            self.root_matches = true;
        }
        Ok(())
    }

    /// Verifies, on every core, the signatures `cache` lacks, and caches the valid ones
    /// ([`SigCache::preverify`]). When every one is valid that is remembered, and validation
    /// asks the cache nothing more; otherwise validation finds the bad one through the cache
    /// and reports it. Only for a body that is its header's ([`PreparedBlock::check_root`]
    /// first): payments made up by a peer cost their txids' hashes, never their signatures.
    pub fn verify_signatures(&mut self, cache: &SigCache) {
        if !self.signatures_valid && self.check_root().is_ok() {
            self.signatures_valid = cache.preverify(&self.block.txs);
        }
    }

    /// The checks of [`validate::check_block_body`] this block still needs, `cache` verifying
    /// the signatures not already known valid.
    pub(super) fn check_body(
        &self,
        params: &ember_core::ChainParams,
        cache: &SigCache,
    ) -> Result<(), BlockError> {
        let verifier: &dyn SigVerifier = if self.signatures_valid { &AllValid } else { cache };
        if self.root_matches {
            validate::check_block_txs(params, &self.block, verifier)
        } else {
            validate::check_block_body(params, &self.block, verifier)
        }
    }
}

/// The verifier of a block whose every signature [`PreparedBlock::verify_signatures`] found
/// valid.
struct AllValid;

impl SigVerifier for AllValid {
    fn verify(&self, _: &Transaction) -> Result<(), SignatureError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::testkit::{child_block, devnet_funding, keys, pay};
    use ember_core::Signature;

    fn block_with(tampered: bool) -> (ember_core::ChainParams, Block) {
        let k = keys(2);
        let params = devnet_funding(&k, 1_000_000);
        let mut txs = vec![
            pay(&params, &k[0], k[1].address(), 5, 1, 0),
            pay(&params, &k[0], k[1].address(), 5, 1, 1),
        ];
        if tampered {
            txs[1] = Transaction::from_parts(*txs[1].body(), Signature([7; 64]));
        }
        let block = child_block(&params, &params.genesis().header, txs, k[0].address(), 0);
        (params, block)
    }

    #[test]
    fn a_root_or_signature_found_good_is_not_checked_again_and_a_bad_one_still_fails() {
        let (params, block) = block_with(false);
        let cache = SigCache::new(100);
        let mut p = PreparedBlock::new(block.clone());
        assert_eq!(p.id(), block.id());
        p.check_root().unwrap();
        p.verify_signatures(&cache);
        assert!(p.root_matches && p.signatures_valid);
        assert_eq!(cache.verified.load(std::sync::atomic::Ordering::Relaxed), 2);
        p.check_body(&params, &cache).unwrap();
        assert_eq!(cache.hits.load(std::sync::atomic::Ordering::Relaxed), 0, "no second lookup");

        // A tampered signature: not remembered as valid, and the body check refuses it.
        let (params, bad) = block_with(true);
        let mut p = PreparedBlock::new(bad);
        p.verify_signatures(&cache);
        assert!(!p.signatures_valid);
        let err = p.check_body(&params, &cache).unwrap_err();
        assert!(err.is_body_malleation(), "{err}");

        // A body that is not the header's.
        let mut other = block.clone();
        other.txs.pop();
        let mut p = PreparedBlock::new(other);
        let fresh = SigCache::new(100);
        p.verify_signatures(&fresh);
        assert!(!p.signatures_valid);
        assert_eq!(
            fresh.verified.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "a body that is not the header's costs no signature check"
        );
        assert!(matches!(p.check_root(), Err(BlockError::BadTxRoot { .. })));
        assert!(!p.root_matches);
        assert!(matches!(p.check_body(&params, &cache), Err(BlockError::BadTxRoot { .. })));
    }
}
