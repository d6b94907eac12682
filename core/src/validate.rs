//! Validation in three levels, as zebra splits it:
//!
//! 1. **structural** ([`check_header`], [`check_block_structure`], [`check_tx_structure`]):
//!    needs nothing but the data and the chain parameters: sizes, version, proof of work,
//!    duplicates, merkle root, signatures;
//! 2. **contextual** ([`check_header_context`]): needs the parent and recent block times:
//!    linkage, height, the median-time-past and future-time rules, the required target;
//! 3. **stateful** ([`apply_block`], [`check_tx_against`]): needs account state: nonces,
//!    balances, fees, subsidy. Applying returns the [`StateDelta`] with its undo record.
//!    [`BlockAssembler`] applies the same rules one transaction at a time for block
//!    templates, refusing a transaction that would make the block invalid instead of
//!    refusing the block.
//!
//! Every reason a block or transaction is refused is one variant of [`TxError`] or
//! [`BlockError`].

use crate::address::Address;
use crate::amount::Amount;
use crate::block::{Block, BlockHeader, BLOCK_VERSION};
use crate::hash::{BlockId, Hash, Txid};
use crate::keys::SignatureError;
use crate::params::ChainParams;
use crate::pow::{meets_target, CompactError, CompactTarget};
use crate::state::{Account, Overlay, StateDelta, StateView};
use crate::tx::Transaction;
use std::collections::{HashMap, HashSet};

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

/// The body part of [`check_block_structure`], for blocks whose header was checked already:
/// [`check_tx_root`], then [`check_block_txs`].
pub fn check_block_body(
    params: &ChainParams,
    block: &Block,
    verifier: &dyn SigVerifier,
) -> Result<(), BlockError> {
    check_tx_root(block)?;
    check_block_txs(params, block, verifier)
}

/// Whether the body is the header's: the merkle root of its txids equals `tx_root`. Checked
/// first: a body that does not match is not this block's body, and must be reported as a bad
/// copy ([`BlockError::BadTxRoot`]) before any rule that would condemn the id.
pub fn check_tx_root(block: &Block) -> Result<(), BlockError> {
    let computed = block.compute_tx_root();
    if computed != block.header.tx_root {
        return Err(BlockError::BadTxRoot { found: block.header.tx_root, computed });
    }
    Ok(())
}

/// The rest of [`check_block_body`], for a body already matched to its header by
/// [`check_tx_root`]: size, no payment twice, and each payment's chain, cost and signature
/// (through `verifier`).
pub fn check_block_txs(
    params: &ChainParams,
    block: &Block,
    verifier: &dyn SigVerifier,
) -> Result<(), BlockError> {
    let size = block.encoded_len();
    if size > params.max_block_bytes {
        return Err(BlockError::TooLarge { size, max: params.max_block_bytes });
    }
    let mut seen = HashSet::with_capacity(block.txs.len());
    for tx in &block.txs {
        if !seen.insert(tx.txid()) {
            return Err(BlockError::DuplicateTx(tx.txid()));
        }
    }
    for (index, tx) in block.txs.iter().enumerate() {
        check_tx(params, tx, verifier).map_err(|error| BlockError::Tx {
            index,
            txid: tx.txid(),
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
    let sender = overlay.get(&body.from);
    let receiver = (body.to != body.from).then(|| overlay.get(&body.to));
    let (sender, receiver) = transfer(sender, receiver, tx)?;
    overlay.put(body.from, sender);
    if let Some(receiver) = receiver {
        overlay.put(body.to, receiver);
    }
    Ok(())
}

/// The rule of one payment: the new states of its sender and its receiver, given their
/// states now. `receiver` is `None` for a payment to oneself: then the one account is
/// debited first and credited after, so it sees the debit. Shared by [`apply_block`] and
/// [`BlockAssembler`], so a template follows exactly the rule blocks are validated by.
fn transfer(
    mut sender: Account,
    receiver: Option<Account>,
    tx: &Transaction,
) -> Result<(Account, Option<Account>), TxError> {
    let body = tx.body();
    check_tx_against(&sender, tx)?;
    let cost = body.total_cost().ok_or(TxError::CostOverflow)?;
    sender.balance = sender.balance.checked_sub(cost).expect("balance checked above");
    sender.nonce = sender.nonce.checked_add(1).ok_or(TxError::NonceOverflow)?;
    let credit = |mut account: Account| -> Result<Account, TxError> {
        account.balance =
            account.balance.checked_add(body.amount).ok_or(TxError::ReceiverOverflow)?;
        Ok(account)
    };
    match receiver {
        Some(receiver) => Ok((sender, Some(credit(receiver)?))),
        None => Ok((credit(sender)?, None)),
    }
}

/// Builds a block's transaction list one transaction at a time under the rules of
/// [`apply_block`], so that a block of the transactions it accepted, in the order it accepted
/// them, at its height and paying its miner, always applies.
///
/// It runs the same per-payment rule as `apply_block` on a running view of the accounts
/// touched so far (each read from the state once), and keeps the miner's credit payable after
/// every accepted transaction. That last check is stricter than `apply_block`, which checks
/// the credit once at the end: a transaction paying the miner could be refused here although
/// a later one spending from the miner would have made room. Stricter is safe; a template
/// only has to be valid, not maximal. Signatures are not checked: the caller's transactions
/// were verified already (the mempool's were, at admission).
pub struct BlockAssembler<'a, S: StateView + ?Sized> {
    state: &'a S,
    /// The accounts touched so far, as the accepted transactions left them. A hash map, not
    /// the ordered overlay of `apply_block`: templates are on the miner's hot path and need
    /// neither an order nor an undo record.
    touched: HashMap<Address, Account>,
    miner: Address,
    subsidy: Amount,
    /// Fees of the accepted transactions.
    fees: Amount,
    /// The miner's balance after the accepted transactions, kept so that the common case (a
    /// transaction that does not touch the miner) needs no lookup.
    miner_balance: Amount,
    accepted: usize,
}

impl<'a, S: StateView + ?Sized> BlockAssembler<'a, S> {
    /// Starts the block at `height` on top of `state`, paying `miner`.
    pub fn new(params: &ChainParams, state: &'a S, height: u64, miner: Address) -> Self {
        Self::with_capacity(params, state, height, miner, 0)
    }

    /// [`BlockAssembler::new`] with room for `max_txs` transactions (two accounts each)
    /// reserved up front, so a large template does not rehash as it grows.
    pub fn with_capacity(
        params: &ChainParams,
        state: &'a S,
        height: u64,
        miner: Address,
        max_txs: usize,
    ) -> Self {
        BlockAssembler {
            state,
            touched: HashMap::with_capacity(max_txs.saturating_mul(2)),
            miner,
            subsidy: params.subsidy(height),
            fees: Amount::ZERO,
            miner_balance: state.account(&miner).balance,
            accepted: 0,
        }
    }

    /// Applies `tx` after the transactions accepted so far, or refuses it with the error
    /// [`apply_block`] would give a block holding it: [`BlockError::Tx`] (nonce, balance,
    /// receiver overflow...), [`BlockError::RewardOverflow`] or [`BlockError::MinerOverflow`].
    /// A refused transaction changes nothing.
    pub fn try_add(&mut self, tx: &Transaction) -> Result<(), BlockError> {
        let body = tx.body();
        let sender = self.account(&body.from);
        let receiver = (body.to != body.from).then(|| self.account(&body.to));
        let (sender, receiver) = transfer(sender, receiver, tx)
            .map_err(|error| BlockError::Tx { index: self.accepted, txid: tx.txid(), error })?;
        let fees = self.fees.checked_add(body.fee).ok_or(BlockError::RewardOverflow)?;
        let reward = self.subsidy.checked_add(fees).ok_or(BlockError::RewardOverflow)?;
        let miner_balance = match receiver {
            _ if body.from == self.miner => sender.balance,
            Some(receiver) if body.to == self.miner => receiver.balance,
            _ => self.miner_balance,
        };
        miner_balance.checked_add(reward).ok_or(BlockError::MinerOverflow)?;
        self.touched.insert(body.from, sender);
        if let Some(receiver) = receiver {
            self.touched.insert(body.to, receiver);
        }
        self.fees = fees;
        self.miner_balance = miner_balance;
        self.accepted += 1;
        Ok(())
    }

    /// The account as the accepted transactions left it.
    pub fn account(&self, address: &Address) -> Account {
        self.touched.get(address).copied().unwrap_or_else(|| self.state.account(address))
    }

    /// Number of accepted transactions.
    pub fn len(&self) -> usize {
        self.accepted
    }

    pub fn is_empty(&self) -> bool {
        self.accepted == 0
    }

    /// Fees of the accepted transactions.
    pub fn fees(&self) -> Amount {
        self.fees
    }

    /// What the block credits its miner (subsidy plus fees), or why no block of the accepted
    /// transactions may pay this miner: that fails only when nothing was accepted and the
    /// miner's balance cannot take the subsidy itself ([`BlockError::MinerOverflow`]).
    pub fn reward(&self) -> Result<Amount, BlockError> {
        let reward = self.subsidy.checked_add(self.fees).ok_or(BlockError::RewardOverflow)?;
        self.miner_balance.checked_add(reward).ok_or(BlockError::MinerOverflow)?;
        Ok(reward)
    }

    /// Credits the miner and returns the new state of every account the block touches,
    /// sorted by address: the `updates` [`apply_block`] returns for it. Fails only when
    /// nothing was accepted and the miner's balance cannot take the subsidy itself
    /// ([`BlockError::MinerOverflow`]): then no block at this height may pay this miner.
    pub fn finish(mut self) -> Result<Vec<(Address, Account)>, BlockError> {
        let reward = self.reward()?;
        let mut miner = self.account(&self.miner);
        miner.balance = miner.balance.checked_add(reward).expect("reward() checked the credit");
        self.touched.insert(self.miner, miner);
        let mut updates: Vec<(Address, Account)> = self.touched.into_iter().collect();
        updates.sort_unstable_by_key(|(address, _)| *address);
        Ok(updates)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Keypair;
    use crate::state::MemState;
    use crate::testkit::{child_block, devnet_funding, keys, pay};
    use proptest::prelude::*;

    /// A block of `txs` at height 1 paying `miner`, applied to `state`.
    fn apply(
        params: &ChainParams,
        state: &MemState,
        txs: Vec<Transaction>,
        miner: Address,
    ) -> Result<StateDelta, BlockError> {
        let block = child_block(params, &params.genesis().header, txs, miner, 0);
        apply_block(params, state, &block)
    }

    #[test]
    fn assembler_refuses_what_would_overflow_and_keeps_the_rest() {
        let k = keys(3);
        let params = devnet_funding(&k, 1_000);
        let mut state = params.genesis_state();
        let (rich, miner) = (k[1].address(), k[2].address());
        state.set(rich, Account { balance: Amount::from_units(u64::MAX - 1_000), nonce: 0 });
        let mut asm = BlockAssembler::new(&params, &state, 1, miner);

        let overflow = pay(&params, &k[0], rich, 1_001, 5, 0);
        assert!(matches!(
            asm.try_add(&overflow),
            Err(BlockError::Tx { index: 0, error: TxError::ReceiverOverflow, .. })
        ));
        // Refused without a trace: the sender is not debited.
        assert_eq!(asm.account(&k[0].address()), state.account(&k[0].address()));
        let fits = pay(&params, &k[0], rich, 1_000, 5, 0);
        asm.try_add(&fits).unwrap();
        // The receiver is now full: even one unit more is refused.
        let one_more = pay(&params, &k[0], rich, 1, 5, 1);
        assert!(matches!(
            asm.try_add(&one_more),
            Err(BlockError::Tx { index: 1, error: TxError::ReceiverOverflow, .. })
        ));
        let other = pay(&params, &k[0], miner, 7, 5, 1);
        asm.try_add(&other).unwrap();
        assert_eq!((asm.len(), asm.fees()), (2, Amount::from_units(10)));
        let updates = asm.finish().unwrap();
        assert_eq!(apply(&params, &state, vec![fits, other], miner).unwrap().updates, updates);
    }

    #[test]
    fn assembler_keeps_the_miner_credit_payable() {
        let k = keys(2);
        let params = devnet_funding(&k, 1_000);
        let mut state = params.genesis_state();
        let miner = Address::from_bytes([9; 32]);
        let subsidy = params.subsidy(1).units();
        // The miner can take the subsidy and 10 units of fees, no more.
        state
            .set(miner, Account { balance: Amount::from_units(u64::MAX - subsidy - 10), nonce: 0 });
        let mut asm = BlockAssembler::new(&params, &state, 1, miner);
        let a = pay(&params, &k[0], k[1].address(), 1, 6, 0);
        let b = pay(&params, &k[1], k[0].address(), 1, 6, 0);
        asm.try_add(&a).unwrap();
        assert_eq!(asm.try_add(&b), Err(BlockError::MinerOverflow));
        assert_eq!(apply(&params, &state, vec![a, b], miner), Err(BlockError::MinerOverflow));
        // A payment to the miner counts against its credit too.
        let to_miner = pay(&params, &k[1], miner, 4, 1, 0);
        assert_eq!(asm.try_add(&to_miner), Err(BlockError::MinerOverflow));
        let cheap = pay(&params, &k[1], miner, 3, 1, 0);
        asm.try_add(&cheap).unwrap();
        let updates = asm.finish().unwrap();
        assert_eq!(apply(&params, &state, vec![a, cheap], miner).unwrap().updates, updates);

        // A miner that cannot take the subsidy itself: no block may pay it.
        state.set(miner, Account { balance: Amount::from_units(u64::MAX - subsidy + 1), nonce: 0 });
        let asm = BlockAssembler::new(&params, &state, 1, miner);
        assert_eq!(asm.reward(), Err(BlockError::MinerOverflow));
        assert_eq!(asm.finish(), Err(BlockError::MinerOverflow));
        assert_eq!(apply(&params, &state, vec![], miner), Err(BlockError::MinerOverflow));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever is offered, the accepted transactions form a block that `apply_block`
        /// accepts with the same result, and each refused one would have made the block
        /// invalid had it been appended where it was offered.
        #[test]
        fn assembled_blocks_always_apply(
            near_max in proptest::collection::vec(any::<bool>(), 4),
            payments in proptest::collection::vec(
                (0usize..4, 0usize..5, 0u64..3_000, 0u64..3_000, 0u64..3), 0..20),
        ) {
            let k = keys(4);
            let params = devnet_funding(&k, 0);
            let miner = Address::from_bytes([9; 32]);
            let mut state = MemState::new();
            let subsidy = params.subsidy(1).units();
            for (key, &rich) in k.iter().zip(&near_max) {
                let balance = if rich { u64::MAX - 2_000 } else { 2_000 };
                state.set(key.address(), Account { balance: Amount::from_units(balance), nonce: 0 });
            }
            state.set(miner, Account { balance: Amount::from_units(u64::MAX - subsidy - 50), nonce: 0 });
            let mut asm = BlockAssembler::new(&params, &state, 1, miner);
            let mut accepted = Vec::new();
            for (from, to, amount, fee, nonce_skew) in payments {
                let sender = &k[from];
                let to = k.get(to).map_or(miner, Keypair::address);
                let nonce = (asm.account(&sender.address()).nonce + nonce_skew).saturating_sub(1);
                let tx = pay(&params, sender, to, amount, fee, nonce);
                match asm.try_add(&tx) {
                    Ok(()) => accepted.push(tx),
                    Err(e) => {
                        // The block with it is refused for the same reason, at the same index.
                        let mut with = accepted.clone();
                        with.push(tx);
                        prop_assert_eq!(apply(&params, &state, with, miner).map(|_| ()), Err(e));
                    }
                }
            }
            let updates = asm.finish().expect("a miner that takes the subsidy always can finish");
            prop_assert_eq!(apply(&params, &state, accepted, miner).unwrap().updates, updates);
        }
    }
}
