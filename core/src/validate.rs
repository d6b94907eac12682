//! Validation in three levels, as zebra splits it:
//!
//! 1. **structural** ([`check_header`], [`check_block_structure`], [`check_tx_structure`]):
//!    needs nothing but the data and the chain parameters: sizes, version, proof of work,
//!    duplicates, merkle root, signatures;
//! 2. **contextual** ([`check_header_context`]): needs the parent and recent block times:
//!    linkage, height, the median-time-past and future-time rules, the required target;
//! 3. **stateful** ([`apply_block`], [`check_tx_against`]): needs account state: nonces,
//!    balances, fees, subsidy. Applying returns the [`StateDelta`] with its undo record.
//!
//! Every reason a block or transaction is refused is one variant of [`TxError`] or
//! [`BlockError`].

use crate::amount::Amount;
use crate::block::{Block, BlockHeader, BLOCK_VERSION};
use crate::hash::{BlockId, Hash, Txid};
use crate::keys::SignatureError;
use crate::params::ChainParams;
use crate::pow::{meets_target, CompactError, CompactTarget};
use crate::state::{Account, Overlay, StateDelta, StateView};
use crate::tx::Transaction;
use std::collections::HashSet;

/// Why a transaction is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Signed for another network (or another genesis of this one).
    #[error("transaction is for chain {found}, this network is {expected}")]
    WrongChain { expected: BlockId, found: BlockId },
    #[error("bad signature: {0}")]
    BadSignature(#[from] SignatureError),
    /// `amount + fee` does not fit in a u64.
    #[error("amount plus fee overflows")]
    CostOverflow,
    /// The nonce was already used: a replay.
    #[error("nonce {found} already used (account nonce is {expected})")]
    NonceTooLow { expected: u64, found: u64 },
    /// The nonce skips ahead of the account's.
    #[error("nonce {found} is ahead of the account nonce {expected}")]
    NonceTooHigh { expected: u64, found: u64 },
    #[error("insufficient balance: has {balance} coins, needs {needed}")]
    InsufficientBalance { balance: Amount, needed: Amount },
    /// Crediting the receiver would overflow its balance.
    #[error("receiver balance would overflow")]
    ReceiverOverflow,
    /// The sender's nonce is at its maximum and cannot be incremented.
    #[error("sender nonce is exhausted")]
    NonceOverflow,
}

/// Why a block (or header) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("unsupported block version {0}")]
    BadVersion(u32),
    #[error("invalid target encoding: {0}")]
    BadTargetEncoding(#[from] CompactError),
    #[error("target {0:?} is easier than the network's limit")]
    TargetAboveLimit(CompactTarget),
    #[error("block id does not meet its target (proof of work)")]
    InsufficientWork,
    #[error("block is {size} bytes, the limit is {max}")]
    TooLarge { size: usize, max: usize },
    #[error("transaction {0} appears twice")]
    DuplicateTx(Txid),
    #[error("merkle root {found} does not match the transactions ({computed})")]
    BadTxRoot { found: Hash, computed: Hash },
    #[error("parent is {found}, expected {expected}")]
    WrongParent { expected: BlockId, found: BlockId },
    #[error("height {found}, expected {expected}")]
    WrongHeight { expected: u64, found: u64 },
    #[error("time {time} is not after the median time {median} of the previous blocks")]
    TimeTooOld { time: u64, median: u64 },
    #[error("time {time} is more than {max_future_ms} ms ahead of local time {now}")]
    TimeTooNew { time: u64, now: u64, max_future_ms: u64 },
    #[error("target {found:?}, expected {expected:?}")]
    WrongTarget { expected: CompactTarget, found: CompactTarget },
    #[error("transaction {index} ({txid}): {error}")]
    Tx { index: usize, txid: Txid, error: TxError },
    #[error("fees plus subsidy overflow")]
    RewardOverflow,
    #[error("miner balance would overflow")]
    MinerOverflow,
}

impl BlockError {
    /// True when the failure may come from the body being altered in transit rather than
    /// from the block itself: the header does not commit to signatures, and a body that
    /// does not match `tx_root` is simply not this block's body. The node must not mark the
    /// block id invalid for these; it blames the peer that sent the copy instead.
    pub fn is_body_malleation(&self) -> bool {
        matches!(
            self,
            BlockError::BadTxRoot { .. }
                | BlockError::Tx { error: TxError::BadSignature(SignatureError::Invalid), .. }
        )
    }

    /// True when the block may become valid later (its time is too far ahead of our clock
    /// now); such a block must not be recorded as invalid.
    pub fn is_temporary(&self) -> bool {
        matches!(self, BlockError::TimeTooNew { .. })
    }
}

/// Verifies transaction signatures; the node supplies one backed by its signature cache.
pub trait SigVerifier {
    fn verify(&self, tx: &Transaction) -> Result<(), SignatureError>;
}

/// Verifies every signature with strict ed25519.
pub struct StrictVerifier;

impl SigVerifier for StrictVerifier {
    fn verify(&self, tx: &Transaction) -> Result<(), SignatureError> {
        tx.verify_signature()
    }
}

/// Structural checks of a transaction that need no state, except its signature.
pub fn check_tx_structure(params: &ChainParams, tx: &Transaction) -> Result<(), TxError> {
    let body = tx.body();
    if body.chain != params.genesis_id() {
        return Err(TxError::WrongChain { expected: params.genesis_id(), found: body.chain });
    }
    body.total_cost().ok_or(TxError::CostOverflow)?;
    Ok(())
}

/// Full structural check of a transaction, including its signature.
pub fn check_tx(
    params: &ChainParams,
    tx: &Transaction,
    verifier: &dyn SigVerifier,
) -> Result<(), TxError> {
    check_tx_structure(params, tx)?;
    verifier.verify(tx)?;
    Ok(())
}

/// Whether the transaction can be applied to `sender` as its next one.
pub fn check_tx_against(sender: &Account, tx: &Transaction) -> Result<(), TxError> {
    let body = tx.body();
    if body.nonce < sender.nonce {
        return Err(TxError::NonceTooLow { expected: sender.nonce, found: body.nonce });
    }
    if body.nonce > sender.nonce {
        return Err(TxError::NonceTooHigh { expected: sender.nonce, found: body.nonce });
    }
    let needed = body.total_cost().ok_or(TxError::CostOverflow)?;
    if sender.balance < needed {
        return Err(TxError::InsufficientBalance { balance: sender.balance, needed });
    }
    Ok(())
}

/// Context-free header checks: version, target encoding and limit, proof of work.
pub fn check_header(params: &ChainParams, header: &BlockHeader) -> Result<(), BlockError> {
    if header.version != BLOCK_VERSION {
        return Err(BlockError::BadVersion(header.version));
    }
    let target = header.target.expand()?;
    if target > params.pow_limit_target() {
        return Err(BlockError::TargetAboveLimit(header.target));
    }
    if !meets_target(header.id().as_bytes(), target) {
        return Err(BlockError::InsufficientWork);
    }
    Ok(())
}

/// Structural checks of a whole block: header, size, duplicates, merkle root, and each
/// transaction's chain, cost and signature.
pub fn check_block_structure(
    params: &ChainParams,
    block: &Block,
    verifier: &dyn SigVerifier,
) -> Result<(), BlockError> {
    check_header(params, &block.header)?;
    check_block_body(params, block, verifier)
}

/// The body part of [`check_block_structure`], for blocks whose header was checked already.
pub fn check_block_body(
    params: &ChainParams,
    block: &Block,
    verifier: &dyn SigVerifier,
) -> Result<(), BlockError> {
    // The merkle root first: a body that does not match it is not this block's body, and
    // must be reported as a bad copy before any rule that would condemn the id.
    let txids: Vec<Txid> = block.txs.iter().map(Transaction::txid).collect();
    let computed = crate::block::merkle_root(&txids);
    if computed != block.header.tx_root {
        return Err(BlockError::BadTxRoot { found: block.header.tx_root, computed });
    }
    let size = block.encoded_len();
    if size > params.max_block_bytes {
        return Err(BlockError::TooLarge { size, max: params.max_block_bytes });
    }
    let mut seen = HashSet::with_capacity(txids.len());
    for id in &txids {
        if !seen.insert(*id) {
            return Err(BlockError::DuplicateTx(*id));
        }
    }
    for (index, (tx, txid)) in block.txs.iter().zip(&txids).enumerate() {
        check_tx(params, tx, verifier).map_err(|error| BlockError::Tx {
            index,
            txid: *txid,
            error,
        })?;
    }
    Ok(())
}

/// Median of the given block times (the previous `median_time_span` blocks, or fewer near
/// genesis).
pub fn median_time(times: &[u64]) -> u64 {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

/// Contextual header checks against its parent.
///
/// `recent_times` are the times of the parent and its ancestors, newest first, at most
/// `params.median_time_span` of them. `now_ms` is the validating node's clock.
pub fn check_header_context(
    params: &ChainParams,
    header: &BlockHeader,
    parent: &BlockHeader,
    recent_times: &[u64],
    now_ms: u64,
) -> Result<(), BlockError> {
    let parent_id = parent.id();
    if header.prev != parent_id {
        return Err(BlockError::WrongParent { expected: parent_id, found: header.prev });
    }
    if header.height != parent.height + 1 {
        return Err(BlockError::WrongHeight { expected: parent.height + 1, found: header.height });
    }
    let span = params.median_time_span.min(recent_times.len());
    let median = median_time(&recent_times[..span]);
    if header.time <= median {
        return Err(BlockError::TimeTooOld { time: header.time, median });
    }
    if header.time > now_ms.saturating_add(params.max_future_ms) {
        return Err(BlockError::TimeTooNew {
            time: header.time,
            now: now_ms,
            max_future_ms: params.max_future_ms,
        });
    }
    let expected = params.next_target(parent);
    if header.target != expected {
        return Err(BlockError::WrongTarget { expected, found: header.target });
    }
    Ok(())
}

/// Applies a structurally valid block to `state`: each transaction in order (nonce, balance,
/// receiver credit), then the miner's subsidy plus fees. Returns the new account states and
/// the undo record; `state` itself is not changed.
pub fn apply_block<S: StateView + ?Sized>(
    params: &ChainParams,
    state: &S,
    block: &Block,
) -> Result<StateDelta, BlockError> {
    let mut overlay = Overlay::new(state);
    let mut fees = Amount::ZERO;
    for (index, tx) in block.txs.iter().enumerate() {
        let err = |error| BlockError::Tx { index, txid: tx.txid(), error };
        apply_tx(&mut overlay, tx).map_err(err)?;
        fees = fees.checked_add(tx.body().fee).ok_or(BlockError::RewardOverflow)?;
    }
    let reward =
        params.subsidy(block.header.height).checked_add(fees).ok_or(BlockError::RewardOverflow)?;
    let miner = block.header.miner;
    let mut acct = overlay.get(&miner);
    acct.balance = acct.balance.checked_add(reward).ok_or(BlockError::MinerOverflow)?;
    overlay.put(miner, acct);
    Ok(overlay.finish())
}

fn apply_tx<S: StateView + ?Sized>(
    overlay: &mut Overlay<'_, S>,
    tx: &Transaction,
) -> Result<(), TxError> {
    let body = tx.body();
    let mut sender = overlay.get(&body.from);
    check_tx_against(&sender, tx)?;
    let cost = body.total_cost().ok_or(TxError::CostOverflow)?;
    sender.balance = sender.balance.checked_sub(cost).expect("balance checked above");
    sender.nonce = sender.nonce.checked_add(1).ok_or(TxError::NonceOverflow)?;
    overlay.put(body.from, sender);
    // Read the receiver after writing the sender: a payment to oneself sees the debit.
    let mut receiver = overlay.get(&body.to);
    receiver.balance =
        receiver.balance.checked_add(body.amount).ok_or(TxError::ReceiverOverflow)?;
    overlay.put(body.to, receiver);
    Ok(())
}

/// Finds a nonce that makes the header meet its target, trying at most `max_tries`.
/// Returns whether one was found (the header keeps the winning nonce).
pub fn solve_pow(header: &mut BlockHeader, max_tries: u64) -> bool {
    let Ok(target) = header.target.expand() else { return false };
    for _ in 0..max_tries {
        if meets_target(header.id().as_bytes(), target) {
            return true;
        }
        header.nonce = header.nonce.wrapping_add(1);
    }
    false
}
