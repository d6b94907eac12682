//! The mempool: valid transactions waiting for a block, and the node's policy for which of
//! them it keeps.
//!
//! The [`Mempool`] is plain synchronous data with no I/O and no clock of its own (callers pass
//! `now_ms`), so every rule here is unit-testable. The node owns it behind a `std::sync::Mutex`:
//! every method is short and never waits, so the lock is never held across an `.await`.
//!
//! # Layout
//!
//! - **Per-sender queues**: `Address -> BTreeMap<nonce, Entry>`. Ember is account based, so a
//!   sender's transactions can only be mined in nonce order; keeping them ordered by nonce
//!   makes "what comes next for this account" a map lookup.
//! - **`by_txid`**: `Txid -> (sender, nonce)`, for duplicate detection and queries.
//! - **`by_receiver`**: `receiver -> {(sender, nonce)}`, so that a payment *to* an address
//!   is found without scanning the pool (`account_history`'s incoming pending). One element
//!   per pending transaction, so it is bounded by the pool's own bounds.
//! - **`evict_order`**: an ordered set with exactly one key per queue, naming that queue's
//!   *last* transaction. The first key is the next eviction victim.
//!
//! # Guarantees (kept after every public call)
//!
//! 1. The index and the queues describe the same transactions; `len() <= max_count` and
//!    `bytes() <= max_bytes`. A refused transaction changes nothing.
//! 2. Against the last account state the pool was given (through [`Mempool::admit`],
//!    [`Mempool::remove_for_block`] or [`Mempool::readmit_reorged`]), every pending nonce lies
//!    in `[account nonce, account nonce + max_nonce_gap]`, and each sender can pay for its
//!    **whole** queue: the sum of `amount + fee` over it is at most the balance. So the
//!    sender's side of any gap-free run of its queue in nonce order is valid, whatever else
//!    is pending. The receiving side is not a pool invariant: a receiver's balance only grows
//!    while a payment waits, so a credit that fitted at admission may overflow later (only
//!    on a network whose genesis holds close to `u64::MAX` units). The block template checks
//!    every credit (see below).
//! 3. Removals never open a hole in a queue: eviction takes a queue's last transaction, and
//!    expiry and invalidation remove a transaction together with every higher nonce of the
//!    same sender (those could not be mined without it anyway). A queue can still hold a gap
//!    that *arrived* that way (nonce 5 sent before nonce 4, within `max_nonce_gap`); such a
//!    transaction waits until the gap is filled.
//!
//! # Eviction: lowest effective fee, from queue tails
//!
//! Transactions all have the same encoded size ([`TX_ENCODED_LEN`]), so the fee alone is the
//! fee rate. When the pool is over a bound, it evicts the last transaction of the queue whose
//! *effective fee* is lowest, where a queue's effective fee is the lowest fee anywhere in it.
//!
//! Why the tail: removing a middle transaction would leave every higher nonce of the sender
//! stuck behind a gap, holding slots without being minable. Why the lowest fee *in the queue*
//! rather than the tail's own fee: the block template ([`Mempool::select_for_block`]) takes a
//! sender's transactions strictly in nonce order, so a transaction is mined no sooner than
//! its cheapest predecessor. Ranking queues by that weakest link evicts what would be mined
//! last, and stops a sender from shielding a low-fee transaction behind a high-fee one.
//!
//! Ties go against the most recent arrival, so of equal offers the older one stays. If the
//! newcomer itself would be evicted, it is refused with [`MempoolError::MempoolFull`] and
//! anything evicted on its behalf is put back.
//!
//! # Block templates never fail because of one transaction
//!
//! [`Mempool::select_for_block`] applies each chosen transaction to a running view of the
//! accounts touched so far with the consensus rules themselves
//! ([`ember_core::BlockAssembler`], the per-transaction part of `apply_block`), so every
//! credit is checked: receivers, and the miner's subsidy plus fees. A transaction that would
//! make the block invalid is left out with its sender's later nonces, and evicted when the
//! chain itself makes it invalid. Without this one payment that overflowed its receiver made
//! every template invalid, and mining stopped for everyone.
//!
//! # Policy (not consensus; a node may differ without forking)
//!
//! - **Minimum fee**: 1 unit ([`DEFAULT_MIN_FEE`]); free transactions would let anyone fill
//!   every pool at no cost.
//! - **Replacement** of a pending `(sender, nonce)`: the fee must be at least
//!   [`REPLACEMENT_FEE_BUMP`] (1 unit) higher, as Bitcoin asks for a higher absolute fee, and
//!   the sender's whole queue must stay affordable with the replacement in it.
//! - **Nonce gap**: at most [`DEFAULT_MAX_NONCE_GAP`] (64) nonces ahead of the account.
//! - **Expiry**: 1 hour after arrival ([`DEFAULT_EXPIRY_MS`]); a transaction readmitted after
//!   a reorg counts as arriving anew.
//! - **Bounds**: 50,000 transactions and 64 MiB of encoded transactions (the count binds
//!   first: 50,000 transactions are about 9 MiB).
//!
//! # What callers must do
//!
//! - Verify the signature before [`Mempool::admit`] on a blocking thread, outside the lock,
//!   and pass `sig_checked = true`; with `false`, `admit` verifies it itself, under the lock.
//! - After connecting a block: [`Mempool::remove_for_block`] with the state after it.
//! - After a reorg: `remove_for_block` for each newly connected block, then
//!   [`Mempool::readmit_reorged`] with the transactions of the disconnected blocks and the
//!   final state (it re-checks the whole pool, since a reorg can lower nonces and balances).
//! - Call [`Mempool::expire`] periodically (e.g. once a minute).
//! - A block transaction is known to be signature-checked only if the pool holds it *with the
//!   same signature* ([`Mempool::holds_exact`]): a txid does not cover the signature.

use ember_core::tx::TX_ENCODED_LEN;
use ember_core::validate::check_tx_structure;
use ember_core::{
    Account, Address, Amount, Block, BlockAssembler, BlockError, ChainParams, StateView,
    Transaction, TxError, Txid,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

/// Default largest number of pending transactions.
pub const DEFAULT_MAX_COUNT: usize = 50_000;
/// Default largest total size of pending transactions, encoded.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Default largest distance of a pending nonce ahead of the account's next nonce.
pub const DEFAULT_MAX_NONCE_GAP: u64 = 64;
/// Default lifetime of a pending transaction: one hour.
pub const DEFAULT_EXPIRY_MS: u64 = 60 * 60 * 1000;
/// Default minimum fee: one base unit.
pub const DEFAULT_MIN_FEE: Amount = Amount::from_units(1);
/// How much more than the pending transaction a same-nonce replacement must pay. Without a
/// bump, a sender could replace a transaction forever at no cost, making every node relay
/// each version.
pub const REPLACEMENT_FEE_BUMP: Amount = Amount::from_units(1);

/// The mempool's bounds and policy numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolLimits {
    /// Largest number of pending transactions.
    pub max_count: usize,
    /// Largest total size of pending transactions, encoded.
    pub max_bytes: usize,
    /// A transaction may be at most this many nonces ahead of its account's next nonce. Far
    /// future nonces cannot be mined for a long time and would let one account hold many slots.
    pub max_nonce_gap: u64,
    /// A transaction is dropped this long after it arrived.
    pub expiry_ms: u64,
    /// Smallest fee accepted.
    pub min_fee: Amount,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        MempoolLimits {
            max_count: DEFAULT_MAX_COUNT,
            max_bytes: DEFAULT_MAX_BYTES,
            max_nonce_gap: DEFAULT_MAX_NONCE_GAP,
            expiry_ms: DEFAULT_EXPIRY_MS,
            min_fee: DEFAULT_MIN_FEE,
        }
    }
}

/// Why the mempool refused a transaction. The messages reach wallet users through JSON-RPC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// A consensus rule refuses it whatever the state: wrong network, `amount + fee`
    /// overflowing, a bad signature (when the mempool checks it), or a nonce of `u64::MAX`,
    /// which can never be applied.
    #[error("invalid transaction: {0}")]
    Tx(#[from] TxError),
    /// The fee is below this node's minimum (policy).
    #[error("the fee of {fee} coins is below this node's minimum fee of {min_fee} coins")]
    FeeTooLow { fee: Amount, min_fee: Amount },
    /// The same transaction (same txid) is already pending.
    #[error("transaction {0} is already in the mempool")]
    AlreadyKnown(Txid),
    /// The sender already used this nonce: the transaction was confirmed, or it is a replay.
    #[error(
        "nonce {nonce} was already used: the sender's next nonce is {account_nonce} \
         (was this transaction already confirmed?)"
    )]
    NonceTooLow { nonce: u64, account_nonce: u64 },
    /// The nonce is too far ahead of the account's next nonce.
    #[error(
        "nonce {nonce} is too far ahead: the sender's next nonce is {account_nonce} and at \
         most {max_gap} ahead are accepted; send the missing nonces first"
    )]
    NonceGap { nonce: u64, account_nonce: u64, max_gap: u64 },
    /// A transaction with the same sender and nonce is pending, and this one does not pay
    /// enough more to replace it.
    #[error(
        "a transaction with nonce {nonce} is already pending with a fee of {pending_fee} \
         coins; a replacement must pay a fee of at least {required} coins"
    )]
    ReplacementFeeTooLow { nonce: u64, pending: Txid, pending_fee: Amount, required: Amount },
    /// The sender cannot pay for this transaction together with its other pending ones.
    /// `needed` is [`Amount::MAX`] when the sum overflows.
    #[error(
        "insufficient balance: the sender has {balance} coins, but this transaction and the \
         sender's other pending transactions need {needed} coins"
    )]
    InsufficientBalance { balance: Amount, needed: Amount },
    /// Crediting the receiver would overflow its balance at the current tip, so no block
    /// could include the payment. Only reachable on a network whose genesis gives an account
    /// close to the largest amount.
    #[error(
        "the receiver's balance of {balance} coins cannot take {amount} coins more: it would \
         exceed the largest possible amount"
    )]
    ReceiverOverflow { balance: Amount, amount: Amount },
    /// The fee plus the block subsidy exceeds the largest amount, so no miner's reward could
    /// hold it and no block could include the payment.
    #[error(
        "the fee of {fee} coins plus the block subsidy exceeds the largest possible amount: \
         no block could include the transaction"
    )]
    FeeOverflow { fee: Amount },
    /// The pool is full and this transaction ranks lowest, so it would be the one evicted.
    #[error(
        "the mempool is full and a fee of {fee} coins is too low to make room (the fees of \
         the sender's earlier pending transactions count too); retry with a higher fee"
    )]
    MempoolFull { fee: Amount },
    /// The node could not finish checking the transaction (e.g. the task that verifies
    /// signatures off the async threads failed). Not a verdict on the transaction: the mempool
    /// itself never returns it, the node's submission path does.
    #[error("the node could not process the transaction: {0}")]
    Internal(String),
}

impl MempoolError {
    /// A short stable label of the reason, for metrics and RPC error data.
    pub fn reason(&self) -> &'static str {
        match self {
            MempoolError::Tx(TxError::WrongChain { .. }) => "wrong_chain",
            MempoolError::Tx(TxError::BadSignature(_)) => "bad_signature",
            MempoolError::Tx(TxError::CostOverflow) => "cost_overflow",
            MempoolError::Tx(TxError::NonceOverflow) => "nonce_overflow",
            MempoolError::Tx(_) => "invalid",
            MempoolError::FeeTooLow { .. } => "fee_too_low",
            MempoolError::AlreadyKnown(_) => "already_known",
            MempoolError::NonceTooLow { .. } => "nonce_too_low",
            MempoolError::NonceGap { .. } => "nonce_gap",
            MempoolError::ReplacementFeeTooLow { .. } => "replacement_fee_too_low",
            MempoolError::InsufficientBalance { .. } => "insufficient_balance",
            MempoolError::ReceiverOverflow { .. } => "receiver_overflow",
            MempoolError::FeeOverflow { .. } => "fee_overflow",
            MempoolError::MempoolFull { .. } => "mempool_full",
            MempoolError::Internal(_) => "internal",
        }
    }
}

/// The outcome of a successful admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub txid: Txid,
    /// The pending transaction with the same sender and nonce that this one replaced.
    pub replaced: Option<Txid>,
    /// Transactions evicted to make room, lowest effective fee first.
    pub evicted: Vec<Txid>,
}

/// Counters and sizes for metrics and the `mempool_*` RPC methods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MempoolStats {
    /// Pending transactions.
    pub count: usize,
    /// Their total encoded size.
    pub bytes: usize,
    /// Accounts with at least one pending transaction.
    pub senders: usize,
    /// Admitted since start, including replacements and readmissions after reorgs.
    pub admitted_total: u64,
    /// Pending transactions replaced by a higher fee.
    pub replaced_total: u64,
    /// Evicted to respect the bounds.
    pub evicted_total: u64,
    /// Dropped by [`Mempool::expire`].
    pub expired_total: u64,
    /// Removed because a connected block included them.
    pub included_total: u64,
    /// Dropped because the chain made them invalid (nonce used, balance too low) or a
    /// reorged-out transaction could not come back.
    pub dropped_total: u64,
    /// Evicted while a block template was built, because the chain made them invalid since
    /// they were admitted (e.g. their receiver's balance would now overflow).
    pub unminable_total: u64,
    /// Refused by [`Mempool::admit`], in total and per [`MempoolError::reason`].
    pub rejected_total: u64,
    pub rejected: BTreeMap<&'static str, u64>,
}

/// One pending transaction with what the policy needs to know about it.
#[derive(Debug, Clone)]
struct Entry {
    tx: Transaction,
    txid: Txid,
    fee: Amount,
    /// `amount + fee`, checked at admission.
    cost: Amount,
    size: usize,
    arrival_ms: u64,
    /// Admission sequence number: breaks ties between equal arrival times, so the order of
    /// eviction and selection never depends on hash-map order.
    seq: u64,
}

/// Entries removed by eviction, with their senders.
type Evicted = Vec<(Address, Entry)>;

/// A sender's pending transactions, and the key of its last one in `evict_order`.
#[derive(Debug, Default)]
struct Queue {
    txs: BTreeMap<u64, Entry>,
    evict_key: Option<EvictKey>,
}

/// Ranks a queue's last transaction for eviction; the smallest key goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct EvictKey {
    /// The lowest fee in the whole queue (the queue's weakest link).
    effective_fee: Amount,
    /// The last transaction's own fee: between queues of equal weakest link, the cheaper
    /// tail goes first.
    fee: Amount,
    /// `(arrival_ms, seq)` reversed: among equals the most recent arrival goes first.
    newest_first: Reverse<(u64, u64)>,
    sender: Address,
    nonce: u64,
}

/// A sender's next transaction while a block template is built; the largest goes first.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    fee: Amount,
    /// `(arrival_ms, seq)` reversed: among equal fees the oldest goes first.
    oldest_first: Reverse<(u64, u64)>,
    sender: Address,
    nonce: u64,
}

/// Pending transactions, bounded and ordered for eviction and for block templates.
#[derive(Debug)]
pub struct Mempool {
    params: Arc<ChainParams>,
    limits: MempoolLimits,
    /// A `BTreeMap` so that iteration (queries, templates) is deterministic.
    queues: BTreeMap<Address, Queue>,
    by_txid: HashMap<Txid, (Address, u64)>,
    /// Pending payments by receiver: `(sender, nonce)` of each.
    by_receiver: HashMap<Address, BTreeSet<(Address, u64)>>,
    evict_order: BTreeSet<EvictKey>,
    bytes: usize,
    next_seq: u64,
    stats: MempoolStats,
    /// Count and bytes, published for readers that must not wait for the mempool lock.
    size: Arc<MempoolSize>,
}

/// The mempool's count and bytes as of its last change, readable without its lock
/// (`node_info` under load must not wait behind a block's removals).
#[derive(Debug, Default)]
pub struct MempoolSize {
    count: std::sync::atomic::AtomicUsize,
    bytes: std::sync::atomic::AtomicUsize,
}

impl MempoolSize {
    /// Pending payments and their encoded bytes.
    pub fn get(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.count.load(Relaxed), self.bytes.load(Relaxed))
    }
}

impl Mempool {
    pub fn new(params: Arc<ChainParams>, limits: MempoolLimits) -> Self {
        Mempool {
            params,
            limits,
            queues: BTreeMap::new(),
            by_txid: HashMap::new(),
            by_receiver: HashMap::new(),
            evict_order: BTreeSet::new(),
            bytes: 0,
            next_seq: 0,
            stats: MempoolStats::default(),
            size: Arc::new(MempoolSize::default()),
        }
    }

    /// The published count and bytes (see [`MempoolSize`]).
    pub fn size_cell(&self) -> Arc<MempoolSize> {
        self.size.clone()
    }

    fn publish_size(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.size.count.store(self.by_txid.len(), Relaxed);
        self.size.bytes.store(self.bytes, Relaxed);
    }

    pub fn limits(&self) -> &MempoolLimits {
        &self.limits
    }

    /// Admits a transaction if the policy and the sender's state allow it.
    ///
    /// `sig_checked` says the caller verified the signature already (do it on a blocking
    /// thread, outside the lock); with `false` it is verified here. Everything else is
    /// checked here: chain and cost, minimum fee, duplicates, nonce not used and not too far
    /// ahead, replacement fee, that the sender can pay for its whole queue including this
    /// transaction, and the bounds (evicting lower-ranked transactions, or refusing this one
    /// when it ranks lowest). A refusal changes nothing.
    pub fn admit(
        &mut self,
        tx: Transaction,
        state: &dyn StateView,
        now_ms: u64,
        sig_checked: bool,
    ) -> Result<Admitted, MempoolError> {
        let result = self.try_admit(tx, state, now_ms, sig_checked);
        if let Err(e) = &result {
            tracing::debug!(txid = %tx.txid(), reason = e.reason(), "mempool refused transaction");
            self.stats.rejected_total += 1;
            *self.stats.rejected.entry(e.reason()).or_default() += 1;
        }
        result
    }

    /// [`Self::admit`] without counting refusals (readmission after a reorg uses it too).
    fn try_admit(
        &mut self,
        tx: Transaction,
        state: &dyn StateView,
        now_ms: u64,
        sig_checked: bool,
    ) -> Result<Admitted, MempoolError> {
        // Stateless checks first: they are the cheapest and need no lookups.
        check_tx_structure(&self.params, &tx)?;
        let body = *tx.body();
        let cost = body.total_cost().ok_or(TxError::CostOverflow)?;
        if body.fee < self.limits.min_fee {
            return Err(MempoolError::FeeTooLow { fee: body.fee, min_fee: self.limits.min_fee });
        }
        // The miner is credited subsidy + fees: a fee that overflows with the subsidy makes
        // every block holding it invalid, whoever mines it. No subsidy exceeds the first.
        if body.fee.checked_add(self.params.initial_subsidy).is_none() {
            return Err(MempoolError::FeeOverflow { fee: body.fee });
        }
        // Applying it would have to raise the sender's nonce past u64::MAX: never minable.
        if body.nonce == u64::MAX {
            return Err(TxError::NonceOverflow.into());
        }
        let txid = tx.txid();
        if self.by_txid.contains_key(&txid) {
            return Err(MempoolError::AlreadyKnown(txid));
        }

        let sender = body.from;
        let account = state.account(&sender);
        if body.nonce < account.nonce {
            return Err(MempoolError::NonceTooLow {
                nonce: body.nonce,
                account_nonce: account.nonce,
            });
        }
        if body.nonce > account.nonce.saturating_add(self.limits.max_nonce_gap) {
            return Err(MempoolError::NonceGap {
                nonce: body.nonce,
                account_nonce: account.nonce,
                max_gap: self.limits.max_nonce_gap,
            });
        }

        let queue = self.queues.get(&sender);
        let pending = queue.and_then(|q| q.txs.get(&body.nonce));
        if let Some(old) = pending {
            let required = old.fee.checked_add(REPLACEMENT_FEE_BUMP).unwrap_or(Amount::MAX);
            // `<= old.fee` also refuses everything when the pending fee is already Amount::MAX.
            if body.fee < required || body.fee <= old.fee {
                return Err(MempoolError::ReplacementFeeTooLow {
                    nonce: body.nonce,
                    pending: old.txid,
                    pending_fee: old.fee,
                    required,
                });
            }
        }
        let replaced = pending.map(|old| old.txid);

        // The whole queue must stay affordable, not only the nonces up to this one: a
        // transaction filling a gap or replacing one with a larger amount would otherwise make
        // the later ones unpayable. Nonces below the account's are mined or conflicting and
        // about to be dropped by `remove_for_block`, so they do not count.
        let others = queue.into_iter().flat_map(|q| q.txs.range(account.nonce..));
        let needed = Amount::checked_sum(
            others.filter(|&(&n, _)| n != body.nonce).map(|(_, e)| e.cost).chain([cost]),
        );
        match needed {
            Some(needed) if needed <= account.balance => {}
            needed => {
                return Err(MempoolError::InsufficientBalance {
                    balance: account.balance,
                    needed: needed.unwrap_or(Amount::MAX),
                })
            }
        }

        // The receiver's side, at the tip only. Pending payments to it are not added: they come
        // from any senders, so counting them would let anyone block payments to an account
        // by queueing credits to it, and they may never be mined. A credit that no longer
        // fits when the template is built is left out there (see `select_for_block`).
        // A payment to oneself cannot overflow: the amount was debited first.
        if body.to != sender {
            let receiver = state.account(&body.to).balance;
            if receiver.checked_add(body.amount).is_none() {
                return Err(MempoolError::ReceiverOverflow {
                    balance: receiver,
                    amount: body.amount,
                });
            }
        }

        // Last, as it is the most expensive check.
        if !sig_checked {
            tx.verify_signature().map_err(TxError::BadSignature)?;
        }

        let replaced_entry = replaced
            .map(|_| self.remove_entry(&sender, body.nonce).expect("the replaced entry is pooled"));
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry =
            Entry { tx, txid, fee: body.fee, cost, size: TX_ENCODED_LEN, arrival_ms: now_ms, seq };
        self.insert_entry(sender, entry);

        let evicted = match self.make_room((sender, body.nonce)) {
            Ok(evicted) => evicted,
            Err(put_back) => {
                // The newcomer ranked lowest: undo everything done on its behalf.
                for (owner, entry) in put_back {
                    self.insert_entry(owner, entry);
                }
                if let Some(entry) = replaced_entry {
                    self.insert_entry(sender, entry);
                }
                return Err(MempoolError::MempoolFull { fee: body.fee });
            }
        };

        let evicted: Vec<Txid> = evicted.into_iter().map(|(_, e)| e.txid).collect();
        self.stats.admitted_total += 1;
        self.stats.replaced_total += u64::from(replaced.is_some());
        self.stats.evicted_total += evicted.len() as u64;
        tracing::debug!(
            %txid,
            nonce = body.nonce,
            fee = %body.fee,
            ?replaced,
            evicted = evicted.len(),
            "mempool admitted transaction"
        );
        Ok(Admitted { txid, replaced, evicted })
    }

    /// Evicts until the bounds hold. Returns the evicted entries, or, if `newcomer` itself
    /// had to go, the entries evicted before it so the caller can put them back.
    fn make_room(&mut self, newcomer: (Address, u64)) -> Result<Evicted, Evicted> {
        let mut evicted = Vec::new();
        while self.by_txid.len() > self.limits.max_count || self.bytes > self.limits.max_bytes {
            let key = *self.evict_order.first().expect(
                "a pool over its bounds holds at least the newcomer, and every queue has a key",
            );
            let entry =
                self.remove_entry(&key.sender, key.nonce).expect("eviction keys name pooled txs");
            if (key.sender, key.nonce) == newcomer {
                return Err(evicted);
            }
            evicted.push((key.sender, entry));
        }
        Ok(evicted)
    }

    /// Removes the transactions a newly connected block included, then drops whatever the
    /// block made invalid for its senders: nonces now used (conflicting transactions) and the
    /// part of a queue the sender can no longer pay for. Returns the txids dropped that way
    /// (not those the block included).
    ///
    /// Only the block's senders are re-checked: connecting a block raises nonces and lowers
    /// balances of senders only; receivers and the miner only gain. (A gain can make a
    /// pending payment *to* them overflow; finding those would need an index by receiver,
    /// so the next template finds them instead, as it applies every payment it picks.)
    pub fn remove_for_block(&mut self, block: &Block, state_after: &dyn StateView) -> Vec<Txid> {
        let mut senders = BTreeSet::new();
        for tx in &block.txs {
            senders.insert(tx.body().from);
            // By txid: a pooled copy with another signature is still the same payment.
            if let Some(&(sender, nonce)) = self.by_txid.get(&tx.txid()) {
                // The sender's eviction key is refreshed once below, not per payment.
                self.take_entry(&sender, nonce).expect("the index names pooled txs");
                self.stats.included_total += 1;
            }
        }
        let mut dropped = Vec::new();
        for sender in senders {
            dropped.extend(self.reconcile_sender(&sender, &state_after.account(&sender)));
            self.refresh_evict_key(sender);
        }
        self.publish_size();
        if !dropped.is_empty() {
            tracing::debug!(
                count = dropped.len(),
                "mempool dropped transactions invalidated by a block"
            );
        }
        self.stats.dropped_total += dropped.len() as u64;
        dropped
    }

    /// Brings the transactions of disconnected blocks back after a reorg, with `state` the
    /// account state of the new tip. First re-checks the whole pool against `state` (a reorg
    /// can lower nonces and balances, e.g. of a miner whose block was disconnected), then
    /// admits each transaction by the usual rules, treating its signature as checked (it was,
    /// when the block was). Those that no longer fit are dropped silently. Returns the txids
    /// that came back.
    ///
    /// `txs` may come in any block order. They are admitted by ascending nonce, so that when
    /// the pool is full a sender's lower nonces, on which its higher ones depend, compete first.
    /// Call it after `remove_for_block` for the new branch's blocks, so transactions that the
    /// new branch also includes are refused as already used.
    pub fn readmit_reorged(
        &mut self,
        mut txs: Vec<Transaction>,
        state: &dyn StateView,
        now_ms: u64,
    ) -> Vec<Txid> {
        let dropped = self.revalidate(state);
        // Stable: senders keep their block order among equal nonces.
        txs.sort_by_key(|tx| tx.body().nonce);
        let mut readmitted = Vec::new();
        for tx in txs {
            match self.try_admit(tx, state, now_ms, true) {
                Ok(admitted) => readmitted.push(admitted.txid),
                // Pending again already (relayed back meanwhile): nothing was lost.
                Err(MempoolError::AlreadyKnown(_)) => {}
                Err(e) => {
                    tracing::trace!(
                        txid = %tx.txid(),
                        reason = e.reason(),
                        "reorged-out transaction not readmitted"
                    );
                    self.stats.dropped_total += 1;
                }
            }
        }
        tracing::debug!(
            readmitted = readmitted.len(),
            dropped = dropped.len(),
            "mempool re-checked after a reorg"
        );
        readmitted
    }

    /// Re-checks every queue against `state` and drops what is invalid: used nonces, nonces
    /// too far ahead, and the unaffordable part of each queue. Returns the dropped txids.
    ///
    /// O(pool size) state reads; for reorgs, and for a node that lost track of chain events.
    pub fn revalidate(&mut self, state: &dyn StateView) -> Vec<Txid> {
        let senders: Vec<Address> = self.queues.keys().copied().collect();
        let mut dropped = Vec::new();
        for sender in senders {
            dropped.extend(self.reconcile_sender(&sender, &state.account(&sender)));
        }
        self.stats.dropped_total += dropped.len() as u64;
        dropped
    }

    /// Drops transactions that arrived `expiry_ms` or more before `now_ms`, each with the
    /// higher nonces of its sender (they could not be mined without it). Returns their txids.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Txid> {
        let expiry = self.limits.expiry_ms;
        // The lowest expired nonce of each queue: everything from there on goes.
        let cuts: Vec<(Address, u64)> = self
            .queues
            .iter()
            .filter_map(|(sender, q)| {
                q.txs
                    .iter()
                    .find(|(_, e)| now_ms.saturating_sub(e.arrival_ms) >= expiry)
                    .map(|(&nonce, _)| (*sender, nonce))
            })
            .collect();
        let mut expired = Vec::new();
        for (sender, from_nonce) in cuts {
            expired.extend(self.remove_from(&sender, from_nonce));
        }
        if !expired.is_empty() {
            tracing::debug!(count = expired.len(), "mempool expired transactions");
        }
        self.stats.expired_total += expired.len() as u64;
        expired
    }

    /// A block template: at most `max_txs` transactions for the block at `height` paying
    /// `miner`, greedily by fee across senders, each sender's strictly in nonce order from its
    /// account nonce with no gaps.
    ///
    /// Each chosen transaction is applied to a running view of the accounts touched so far by
    /// the rules of block validation ([`BlockAssembler`]; signatures are not re-checked), so
    /// the result, in order, is always a valid block body on `state`. A transaction the block
    /// would be invalid with is left out, with every later nonce of its sender:
    ///
    /// - if the chain made it invalid (its receiver's balance would overflow at the tip, its
    ///   sender can no longer pay, e.g. after a reorg), it is evicted with those later nonces
    ///   and counted in [`MempoolStats::unminable_total`];
    /// - if only this template rules it out (an earlier payment in it filled the receiver, or
    ///   this miner's balance cannot take its fee), it stays pending.
    ///
    /// Fails only when no block at `height` may pay `miner`: its balance cannot take even the
    /// subsidy ([`BlockError::MinerOverflow`]). Nothing is evicted for that.
    pub fn select_for_block(
        &mut self,
        state: &dyn StateView,
        height: u64,
        miner: Address,
        max_txs: usize,
    ) -> Result<Vec<Transaction>, BlockError> {
        let capacity = max_txs.min(self.len());
        let mut block = BlockAssembler::with_capacity(&self.params, state, height, miner, capacity);
        let mut selected = Vec::new();
        let mut unminable: Vec<(Address, u64, TxError)> = Vec::new();
        // Each sender's lowest pending nonce; the assembler reads the account once, when the
        // sender's turn comes, and says whether that nonce is the account's.
        let mut heap: BinaryHeap<Candidate> = self
            .queues
            .iter()
            .filter_map(|(sender, q)| {
                let (&nonce, _) = q.txs.first_key_value()?;
                candidate(sender, q, nonce)
            })
            .collect();
        while selected.len() < max_txs {
            let Some(best) = heap.pop() else { break };
            let queue = self.queues.get(&best.sender).expect("candidates come from queues");
            let entry = queue.txs.get(&best.nonce).expect("candidates name pooled txs");
            let next = match block.try_add(&entry.tx) {
                Ok(()) => {
                    selected.push(entry.tx);
                    best.nonce.checked_add(1)
                }
                // A nonce a connected block used, which the pool has not been told about:
                // the sender's run starts at its account nonce.
                Err(BlockError::Tx { error: TxError::NonceTooLow { expected, .. }, .. }) => {
                    Some(expected)
                }
                // A gap: the account's next nonce is not pending yet.
                Err(BlockError::Tx { error: TxError::NonceTooHigh { .. }, .. }) => None,
                Err(BlockError::Tx { error, .. }) => {
                    if invalid_at_tip(state, &entry.tx, &error) {
                        unminable.push((best.sender, best.nonce, error));
                    } else {
                        tracing::debug!(
                            txid = %entry.txid,
                            %error,
                            "left out of the block template because of earlier payments in it"
                        );
                    }
                    None
                }
                // The miner's credit (subsidy plus fees) would overflow: a matter of this
                // miner and this block, another may include the transaction.
                Err(error) => {
                    tracing::debug!(
                        txid = %entry.txid,
                        %error,
                        "left out of the block template: the miner cannot take its fee"
                    );
                    None
                }
            };
            if let Some(c) = next.and_then(|n| candidate(&best.sender, queue, n)) {
                heap.push(c);
            }
        }
        let checked = block.reward();
        for (sender, nonce, error) in unminable {
            let removed = self.remove_from(&sender, nonce);
            tracing::debug!(
                ?sender,
                nonce,
                %error,
                evicted = removed.len(),
                "mempool evicted transactions no block could include"
            );
            self.stats.unminable_total += removed.len() as u64;
        }
        checked.map(|_| selected)
    }

    /// The pending transaction with this txid.
    pub fn get(&self, txid: &Txid) -> Option<&Transaction> {
        let (sender, nonce) = self.by_txid.get(txid)?;
        self.queues.get(sender).and_then(|q| q.txs.get(nonce)).map(|e| &e.tx)
    }

    pub fn contains(&self, txid: &Txid) -> bool {
        self.by_txid.contains_key(txid)
    }

    /// Whether this exact transaction, signature included, is pending; then its signature
    /// was verified when it was admitted. A txid alone does not say so: it does not cover
    /// the signature.
    pub fn holds_exact(&self, tx: &Transaction) -> bool {
        self.get(&tx.txid()) == Some(tx)
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.by_txid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_txid.is_empty()
    }

    /// Total encoded size of the pending transactions.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// A sender's pending transactions in nonce order.
    pub fn pending_for(&self, sender: &Address) -> Vec<Transaction> {
        self.queues.get(sender).map(|q| q.txs.values().map(|e| e.tx).collect()).unwrap_or_default()
    }

    /// Pending payments to `receiver` (from any sender, itself included), by sender and
    /// then nonce, at most `limit` of them. From the receiver index: no scan of the pool.
    pub fn pending_to(&self, receiver: &Address, limit: usize) -> Vec<Transaction> {
        self.by_receiver
            .get(receiver)
            .into_iter()
            .flatten()
            .take(limit)
            .filter_map(|(sender, nonce)| {
                self.queues.get(sender).and_then(|q| q.txs.get(nonce)).map(|e| e.tx)
            })
            .collect()
    }

    /// How many payments to `receiver` from others are pending, and their amounts added up
    /// (saturating at [`Amount::MAX`]). Payments to oneself are not counted: they are in
    /// [`Mempool::pending_spend`] already.
    pub fn pending_received(&self, receiver: &Address) -> (usize, Amount) {
        let Some(set) = self.by_receiver.get(receiver) else { return (0, Amount::ZERO) };
        let amounts: Vec<Amount> = set
            .iter()
            .filter(|(sender, _)| sender != receiver)
            .filter_map(|(sender, nonce)| {
                self.queues.get(sender).and_then(|q| q.txs.get(nonce)).map(|e| e.tx.body().amount)
            })
            .collect();
        (amounts.len(), Amount::checked_sum(amounts).unwrap_or(Amount::MAX))
    }

    /// The nonce a wallet should use next: `state_nonce` plus the run of pending nonces that
    /// follows it without a gap.
    pub fn next_nonce(&self, sender: &Address, state_nonce: u64) -> u64 {
        let mut next = state_nonce;
        if let Some(queue) = self.queues.get(sender) {
            for &nonce in queue.txs.range(state_nonce..).map(|(n, _)| n) {
                if nonce != next {
                    break;
                }
                match next.checked_add(1) {
                    Some(n) => next = n,
                    None => break,
                }
            }
        }
        next
    }

    /// Sum of `amount + fee` over a sender's pending transactions: what a wallet should
    /// subtract from the balance to show what is still spendable. Saturates at
    /// [`Amount::MAX`], which the affordability rule makes unreachable in practice.
    pub fn pending_spend(&self, sender: &Address) -> Amount {
        self.queues
            .get(sender)
            .map(|q| Amount::checked_sum(q.txs.values().map(|e| e.cost)).unwrap_or(Amount::MAX))
            .unwrap_or(Amount::ZERO)
    }

    /// Every pending transaction, by sender and then nonce.
    pub fn iter(&self) -> impl Iterator<Item = &Transaction> + '_ {
        self.queues.values().flat_map(|q| q.txs.values().map(|e| &e.tx))
    }

    /// Every pending transaction with its arrival time (unix ms), by sender and then nonce:
    /// the order in which they can be admitted again (`mempool.dat`).
    pub fn entries(&self) -> impl Iterator<Item = (&Transaction, u64)> + '_ {
        self.queues.values().flat_map(|q| q.txs.values().map(|e| (&e.tx, e.arrival_ms)))
    }

    /// Every pending transaction with its txid (no hashing: the pool keeps them).
    pub fn with_txids(&self) -> impl Iterator<Item = (Txid, &Transaction)> + '_ {
        self.queues.values().flat_map(|q| q.txs.values().map(|e| (e.txid, &e.tx)))
    }

    /// Every pending txid, by sender and then nonce.
    pub fn txids(&self) -> impl Iterator<Item = Txid> + '_ {
        self.queues.values().flat_map(|q| q.txs.values().map(|e| e.txid))
    }

    pub fn stats(&self) -> MempoolStats {
        MempoolStats {
            count: self.len(),
            bytes: self.bytes,
            senders: self.queues.len(),
            ..self.stats.clone()
        }
    }

    /// Drops a sender's transactions that `account` makes invalid: nonces below its nonce,
    /// beyond the allowed gap, and from the first one it cannot pay for (in nonce order) on.
    fn reconcile_sender(&mut self, sender: &Address, account: &Account) -> Vec<Txid> {
        let Some(queue) = self.queues.get(sender) else { return Vec::new() };
        let max_nonce = account.nonce.saturating_add(self.limits.max_nonce_gap);
        let mut spent = Amount::ZERO;
        let mut cut_from = None;
        let mut stale = Vec::new();
        for (&nonce, entry) in &queue.txs {
            if nonce < account.nonce {
                stale.push(nonce);
                continue;
            }
            let affordable = spent.checked_add(entry.cost).filter(|s| *s <= account.balance);
            match affordable {
                Some(s) if nonce <= max_nonce => spent = s,
                _ => {
                    cut_from = Some(nonce);
                    break;
                }
            }
        }
        let mut dropped: Vec<Txid> = stale
            .into_iter()
            .map(|n| self.remove_entry(sender, n).expect("listed from the queue").txid)
            .collect();
        if let Some(nonce) = cut_from {
            dropped.extend(self.remove_from(sender, nonce));
        }
        dropped
    }

    /// Removes a sender's transactions with nonce `from_nonce` or higher.
    fn remove_from(&mut self, sender: &Address, from_nonce: u64) -> Vec<Txid> {
        let nonces: Vec<u64> = match self.queues.get(sender) {
            Some(q) => q.txs.range(from_nonce..).map(|(n, _)| *n).collect(),
            None => return Vec::new(),
        };
        // Highest first, so the queue shrinks from its tail as eviction would.
        nonces
            .into_iter()
            .rev()
            .map(|n| self.remove_entry(sender, n).expect("listed from the queue").txid)
            .collect()
    }

    /// Adds an entry whose `(sender, nonce)` slot and txid are free.
    fn insert_entry(&mut self, sender: Address, entry: Entry) {
        let nonce = entry.tx.body().nonce;
        let previous = self.by_txid.insert(entry.txid, (sender, nonce));
        debug_assert!(previous.is_none(), "txids are checked before insertion");
        self.by_receiver.entry(entry.tx.body().to).or_default().insert((sender, nonce));
        self.bytes += entry.size;
        let displaced = self.queues.entry(sender).or_default().txs.insert(nonce, entry);
        debug_assert!(displaced.is_none(), "a replaced entry is removed first");
        self.refresh_evict_key(sender);
        self.publish_size();
    }

    fn remove_entry(&mut self, sender: &Address, nonce: u64) -> Option<Entry> {
        let entry = self.take_entry(sender, nonce)?;
        self.refresh_evict_key(*sender);
        self.publish_size();
        Some(entry)
    }

    /// [`Mempool::remove_entry`] without refreshing the sender's eviction key or the
    /// published size: the caller does both before it returns (a block's payments are
    /// taken out, then each sender refreshed once).
    fn take_entry(&mut self, sender: &Address, nonce: u64) -> Option<Entry> {
        let entry = self.queues.get_mut(sender)?.txs.remove(&nonce)?;
        self.by_txid.remove(&entry.txid);
        let to = entry.tx.body().to;
        if let Some(set) = self.by_receiver.get_mut(&to) {
            set.remove(&(*sender, nonce));
            if set.is_empty() {
                self.by_receiver.remove(&to);
            }
        }
        self.bytes -= entry.size;
        Some(entry)
    }

    /// Replaces a queue's key in `evict_order` after the queue changed, and forgets the queue
    /// once it is empty. O(queue length), which `max_nonce_gap` bounds.
    fn refresh_evict_key(&mut self, sender: Address) {
        let Some(queue) = self.queues.get_mut(&sender) else { return };
        if let Some(old) = queue.evict_key.take() {
            self.evict_order.remove(&old);
        }
        match evict_key(&sender, queue) {
            Some(key) => {
                self.evict_order.insert(key);
                queue.evict_key = Some(key);
            }
            None => {
                self.queues.remove(&sender);
            }
        }
    }
}

/// The eviction key of a queue's last transaction; `None` for an empty queue.
fn evict_key(sender: &Address, queue: &Queue) -> Option<EvictKey> {
    let (&nonce, tail) = queue.txs.last_key_value()?;
    let effective_fee = queue.txs.values().map(|e| e.fee).min()?;
    Some(EvictKey {
        effective_fee,
        fee: tail.fee,
        newest_first: Reverse((tail.arrival_ms, tail.seq)),
        sender: *sender,
        nonce,
    })
}

/// The template candidate for `sender` at `nonce`, if it is pending.
fn candidate(sender: &Address, queue: &Queue, nonce: u64) -> Option<Candidate> {
    let entry = queue.txs.get(&nonce)?;
    Some(Candidate {
        fee: entry.fee,
        oldest_first: Reverse((entry.arrival_ms, entry.seq)),
        sender: *sender,
        nonce,
    })
}

/// Whether a transaction the template refused with `error` is invalid on top of the tip
/// itself, not only after the payments chosen before it: then no later block can include it
/// either (unless the receiver spends first), and it only holds a slot.
fn invalid_at_tip(state: &dyn StateView, tx: &Transaction, error: &TxError) -> bool {
    match error {
        // Earlier payments of the template to the same receiver may be what filled it.
        TxError::ReceiverOverflow => {
            let body = tx.body();
            state.account(&body.to).balance.checked_add(body.amount).is_none()
        }
        // Everything else concerns the sender, whose earlier transactions in the template
        // are its own queue: the pool keeps the whole queue affordable, so a shortfall means
        // the chain took the coins (or the nonce) away.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::testkit::{child_block, devnet_funding, keys, pay};
    use ember_core::validate::apply_block;
    use ember_core::{Keypair, MemState, Undo};
    use proptest::prelude::*;

    const COIN: u64 = 100_000_000;

    /// Keys each funded with 1,000 coins on a fresh devnet.
    fn setup(n: usize) -> (Arc<ChainParams>, Vec<Keypair>, MemState) {
        let keys = keys(n);
        let params = Arc::new(devnet_funding(&keys, 1_000));
        let state = params.genesis_state();
        (params, keys, state)
    }

    fn pool(params: &Arc<ChainParams>) -> Mempool {
        Mempool::new(params.clone(), MempoolLimits::default())
    }

    fn pool_with(params: &Arc<ChainParams>, limits: MempoolLimits) -> Mempool {
        Mempool::new(params.clone(), limits)
    }

    fn sink() -> Address {
        Address::from_bytes([7; 32])
    }

    /// Checks every structural invariant, and guarantee 2 of the module doc against `state`.
    fn assert_consistent(pool: &Mempool, state: &dyn StateView) {
        // What readers see without the lock is what the pool holds.
        assert_eq!(pool.size_cell().get(), (pool.len(), pool.bytes()), "published size");
        let mut count = 0;
        let mut keys = BTreeSet::new();
        for (sender, queue) in &pool.queues {
            assert!(!queue.txs.is_empty(), "empty queues are forgotten");
            let account = state.account(sender);
            let mut spend = Amount::ZERO;
            for (&nonce, e) in &queue.txs {
                assert_eq!(e.tx.body().from, *sender);
                assert_eq!(e.tx.body().nonce, nonce);
                assert_eq!(e.txid, e.tx.txid());
                assert_eq!(pool.by_txid.get(&e.txid), Some(&(*sender, nonce)));
                assert!(pool.by_receiver[&e.tx.body().to].contains(&(*sender, nonce)));
                assert!(nonce >= account.nonce, "no used nonce stays pending");
                assert!(nonce <= account.nonce + pool.limits.max_nonce_gap);
                spend = spend.checked_add(e.cost).unwrap();
                count += 1;
            }
            assert!(spend <= account.balance, "every queue is affordable");
            let key = evict_key(sender, queue).unwrap();
            assert_eq!(queue.evict_key, Some(key));
            keys.insert(key);
        }
        assert_eq!(count, pool.by_txid.len());
        assert_eq!(count, pool.by_receiver.values().map(BTreeSet::len).sum::<usize>());
        assert!(pool.by_receiver.values().all(|set| !set.is_empty()), "empty sets are forgotten");
        assert_eq!(keys, pool.evict_order);
        assert_eq!(pool.bytes, count * TX_ENCODED_LEN);
        assert!(pool.len() <= pool.limits.max_count);
        assert!(pool.bytes <= pool.limits.max_bytes);
    }

    /// A template for the block at height 1 paying [`sink`].
    fn template(pool: &mut Mempool, state: &dyn StateView, max_txs: usize) -> Vec<Transaction> {
        pool.select_for_block(state, 1, sink(), max_txs).expect("the sink can take the subsidy")
    }

    /// Mines `txs` on top of `parent` and applies the block to `state`.
    fn mine(
        params: &ChainParams,
        state: &mut MemState,
        parent: &ember_core::BlockHeader,
        txs: Vec<Transaction>,
    ) -> (Block, Undo) {
        let block = child_block(params, parent, txs, sink(), 0);
        let delta = apply_block(params, state, &block).expect("test blocks are valid");
        state.apply(&delta);
        (block, delta.undo)
    }

    #[test]
    fn admits_a_valid_payment() {
        let (params, k, state) = setup(2);
        let mut pool = pool(&params);
        let tx = pay(&params, &k[0], k[1].address(), 5 * COIN, 10, 0);
        let admitted = pool.admit(tx, &state, 1_000, false).unwrap();
        assert_eq!(admitted, Admitted { txid: tx.txid(), replaced: None, evicted: vec![] });
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.bytes(), TX_ENCODED_LEN);
        assert_eq!(pool.get(&tx.txid()), Some(&tx));
        assert!(pool.contains(&tx.txid()) && pool.holds_exact(&tx));
        assert_eq!(pool.pending_for(&k[0].address()), vec![tx]);
        assert_eq!(pool.next_nonce(&k[0].address(), 0), 1);
        assert_eq!(pool.pending_spend(&k[0].address()), Amount::from_units(5 * COIN + 10));
        assert_eq!(pool.txids().collect::<Vec<_>>(), vec![tx.txid()]);
        assert_eq!(pool.iter().count(), 1);
        let stats = pool.stats();
        assert_eq!((stats.count, stats.senders, stats.admitted_total), (1, 1, 1));
        assert_consistent(&pool, &state);
    }

    /// Payments to an address are found through the receiver index, and leave it with
    /// the pool (here, by expiry); a payment to oneself is not "received".
    #[test]
    fn pending_payments_are_found_by_receiver() {
        let (params, k, state) = setup(3);
        let mut pool = pool(&params);
        let b = k[1].address();
        let one = pay(&params, &k[0], b, 5 * COIN, 10, 0);
        let two = pay(&params, &k[2], b, 2 * COIN, 10, 0);
        let own = pay(&params, &k[1], b, COIN, 10, 0);
        for tx in [one, two, own] {
            pool.admit(tx, &state, 1_000, false).unwrap();
        }
        let mut to_b = pool.pending_to(&b, 10);
        to_b.sort_by_key(|t| t.txid());
        let mut expected = vec![one, two, own];
        expected.sort_by_key(|t| t.txid());
        assert_eq!(to_b, expected);
        assert_eq!(pool.pending_to(&b, 1).len(), 1, "the limit holds");
        assert_eq!(pool.pending_received(&b), (2, Amount::from_units(7 * COIN)));
        assert_eq!(pool.pending_received(&k[0].address()), (0, Amount::ZERO));
        assert_consistent(&pool, &state);
        pool.expire(1_000 + DEFAULT_EXPIRY_MS);
        assert!(pool.pending_to(&b, 10).is_empty());
        assert_consistent(&pool, &state);
    }

    #[test]
    fn refuses_replays_and_far_nonces() {
        let (params, k, mut state) = setup(2);
        let a = k[0].address();
        state.set(a, Account { balance: Amount::from_units(1_000 * COIN), nonce: 3 });
        let mut pool = pool(&params);
        let replay = pay(&params, &k[0], sink(), 1, 1, 2);
        assert_eq!(
            pool.admit(replay, &state, 0, true),
            Err(MempoolError::NonceTooLow { nonce: 2, account_nonce: 3 })
        );
        let farthest = pay(&params, &k[0], sink(), 1, 1, 3 + DEFAULT_MAX_NONCE_GAP);
        assert!(pool.admit(farthest, &state, 0, true).is_ok());
        let too_far = pay(&params, &k[0], sink(), 1, 1, 4 + DEFAULT_MAX_NONCE_GAP);
        let err = pool.admit(too_far, &state, 0, true).unwrap_err();
        assert_eq!(
            err,
            MempoolError::NonceGap { nonce: 68, account_nonce: 3, max_gap: DEFAULT_MAX_NONCE_GAP }
        );
        assert!(err.to_string().contains("next nonce is 3"));
        // The gap means the wallet's next nonce is still the account's.
        assert_eq!(pool.next_nonce(&a, 3), 3);
        let never = pay(&params, &k[0], sink(), 1, 1, u64::MAX);
        assert_eq!(
            pool.admit(never, &state, 0, true),
            Err(MempoolError::Tx(TxError::NonceOverflow))
        );
        let stats = pool.stats();
        assert_eq!(stats.rejected_total, 3);
        assert_eq!(stats.rejected.get("nonce_gap"), Some(&1));
    }

    #[test]
    fn replacement_needs_a_higher_fee() {
        let (params, k, state) = setup(1);
        let mut pool = pool(&params);
        let first = pay(&params, &k[0], sink(), 100, 10, 0);
        pool.admit(first, &state, 0, true).unwrap();
        let same_fee = pay(&params, &k[0], sink(), 200, 10, 0);
        let err = pool.admit(same_fee, &state, 0, true).unwrap_err();
        assert_eq!(
            err,
            MempoolError::ReplacementFeeTooLow {
                nonce: 0,
                pending: first.txid(),
                pending_fee: Amount::from_units(10),
                required: Amount::from_units(11),
            }
        );
        let lower = pay(&params, &k[0], sink(), 200, 9, 0);
        assert!(pool.admit(lower, &state, 0, true).is_err());
        assert!(pool.holds_exact(&first));

        let higher = pay(&params, &k[0], sink(), 200, 11, 0);
        let admitted = pool.admit(higher, &state, 0, true).unwrap();
        assert_eq!(admitted.replaced, Some(first.txid()));
        assert!(!pool.contains(&first.txid()) && pool.holds_exact(&higher));
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.stats().replaced_total, 1);
        assert_consistent(&pool, &state);
    }

    #[test]
    fn sender_must_afford_all_pending() {
        let (params, k, mut state) = setup(1);
        let a = k[0].address();
        state.set(a, Account { balance: Amount::from_units(1_000), nonce: 0 });
        let mut pool = pool(&params);
        pool.admit(pay(&params, &k[0], sink(), 590, 10, 0), &state, 0, true).unwrap();
        let second = pay(&params, &k[0], sink(), 490, 10, 1);
        let err = pool.admit(second, &state, 0, true).unwrap_err();
        assert_eq!(
            err,
            MempoolError::InsufficientBalance {
                balance: Amount::from_units(1_000),
                needed: Amount::from_units(1_100),
            }
        );
        assert!(err.to_string().contains("other pending transactions"));
        pool.admit(pay(&params, &k[0], sink(), 390, 10, 1), &state, 0, true).unwrap();
        // A replacement that raises the amount must keep the later nonces payable too.
        let bigger_first = pay(&params, &k[0], sink(), 700, 11, 0);
        assert!(matches!(
            pool.admit(bigger_first, &state, 0, true),
            Err(MempoolError::InsufficientBalance { .. })
        ));
        let cheaper_first = pay(&params, &k[0], sink(), 500, 11, 0);
        pool.admit(cheaper_first, &state, 0, true).unwrap();
        assert_eq!(pool.pending_spend(&a), Amount::from_units(511 + 400));
        assert_consistent(&pool, &state);
    }

    #[test]
    fn refuses_other_networks_low_fees_duplicates_and_bad_signatures() {
        let (params, k, state) = setup(2);
        let mut pool = pool(&params);
        let other = Arc::new(devnet_funding(&k[..1], 1_000));
        let foreign = pay(&other, &k[0], sink(), 1, 1, 0);
        let err = pool.admit(foreign, &state, 0, true).unwrap_err();
        assert!(matches!(err, MempoolError::Tx(TxError::WrongChain { .. })));
        assert_eq!(err.reason(), "wrong_chain");

        let free = pay(&params, &k[0], sink(), 1, 0, 0);
        assert_eq!(
            pool.admit(free, &state, 0, true),
            Err(MempoolError::FeeTooLow { fee: Amount::ZERO, min_fee: DEFAULT_MIN_FEE })
        );
        let overflow = pay(&params, &k[0], sink(), u64::MAX, 1, 0);
        assert_eq!(
            pool.admit(overflow, &state, 0, true),
            Err(MempoolError::Tx(TxError::CostOverflow))
        );

        let tx = pay(&params, &k[0], sink(), 1, 1, 0);
        pool.admit(tx, &state, 0, true).unwrap();
        assert_eq!(pool.admit(tx, &state, 5, true), Err(MempoolError::AlreadyKnown(tx.txid())));

        // A signature by another key: caught when the mempool is asked to check it.
        let body = *pay(&params, &k[0], sink(), 1, 1, 1).body();
        let forged = Transaction::from_parts(body, *body.sign(&k[1]).signature());
        let err = pool.admit(forged, &state, 0, false).unwrap_err();
        assert!(matches!(err, MempoolError::Tx(TxError::BadSignature(_))));
        assert_eq!(pool.len(), 1);
        assert_consistent(&pool, &state);
    }

    #[test]
    fn full_pool_evicts_lowest_fee_tails_and_refuses_the_lowest() {
        let (params, k, state) = setup(8);
        let limits = MempoolLimits { max_count: 5, ..MempoolLimits::default() };
        let mut pool = pool_with(&params, limits);
        // Sender 0 has a cheap head and a rich tail; senders 1..=3 pay 5, 6, 7.
        let a0 = pay(&params, &k[0], sink(), 1, 3, 0);
        let a1 = pay(&params, &k[0], sink(), 1, 90, 1);
        for tx in [a0, a1] {
            pool.admit(tx, &state, 0, true).unwrap();
        }
        for (i, fee) in [(1, 5), (2, 6), (3, 7)] {
            pool.admit(pay(&params, &k[i], sink(), 1, fee, 0), &state, i as u64, true).unwrap();
        }
        assert_eq!(pool.len(), 5);

        // The weakest queue is sender 0's (fee 3 at its head): its tail goes first, so no
        // gap opens even though that tail pays the most.
        let n1 = pay(&params, &k[4], sink(), 1, 8, 0);
        let admitted = pool.admit(n1, &state, 10, true).unwrap();
        assert_eq!(admitted.evicted, vec![a1.txid()]);
        assert!(pool.contains(&a0.txid()));
        let n2 = pay(&params, &k[5], sink(), 1, 8, 0);
        assert_eq!(pool.admit(n2, &state, 11, true).unwrap().evicted, vec![a0.txid()]);
        assert_consistent(&pool, &state);

        // Lowest fee of all: refused, and nothing changes.
        let before: Vec<Txid> = pool.txids().collect();
        let cheap = pay(&params, &k[6], sink(), 1, 4, 0);
        assert_eq!(
            pool.admit(cheap, &state, 12, true),
            Err(MempoolError::MempoolFull { fee: Amount::from_units(4) })
        );
        // A tie with the lowest pending fee: the older transaction stays.
        let tie = pay(&params, &k[6], sink(), 1, 5, 0);
        assert!(matches!(pool.admit(tie, &state, 12, true), Err(MempoolError::MempoolFull { .. })));
        assert_eq!(pool.txids().collect::<Vec<_>>(), before);
        let stats = pool.stats();
        assert_eq!((stats.evicted_total, stats.rejected.get("mempool_full")), (2, Some(&2)));
        assert_consistent(&pool, &state);
    }

    #[test]
    fn refused_newcomer_puts_back_what_was_evicted_for_it() {
        let (params, k, state) = setup(4);
        let mut pool = pool(&params);
        for (i, fee) in [(0, 5), (1, 6), (2, 7)] {
            pool.admit(pay(&params, &k[i], sink(), 1, fee, 0), &state, 0, true).unwrap();
        }
        // Sender 3 queues nonce 0 and 2 at a high fee, then fills nonce 1 cheaply.
        pool.admit(pay(&params, &k[3], sink(), 1, 50, 0), &state, 0, true).unwrap();
        pool.admit(pay(&params, &k[3], sink(), 1, 50, 2), &state, 0, true).unwrap();
        let before: Vec<Txid> = pool.txids().collect();
        // Shrink the bound so that two evictions are needed: sender 3's tail (weakest queue
        // once the fee-1 transaction joins it) goes first, then the newcomer itself.
        pool.limits.max_count = 4;
        let filler = pay(&params, &k[3], sink(), 1, 1, 1);
        assert!(matches!(
            pool.admit(filler, &state, 1, true),
            Err(MempoolError::MempoolFull { .. })
        ));
        assert_eq!(pool.txids().collect::<Vec<_>>(), before);
        assert_eq!(pool.stats().evicted_total, 0);
        pool.limits.max_count = 5;
        assert_consistent(&pool, &state);
    }

    #[test]
    fn byte_bound_is_enforced() {
        let (params, k, state) = setup(3);
        let limits = MempoolLimits { max_bytes: 2 * TX_ENCODED_LEN, ..MempoolLimits::default() };
        let mut pool = pool_with(&params, limits);
        pool.admit(pay(&params, &k[0], sink(), 1, 2, 0), &state, 0, true).unwrap();
        pool.admit(pay(&params, &k[1], sink(), 1, 3, 0), &state, 0, true).unwrap();
        let admitted = pool.admit(pay(&params, &k[2], sink(), 1, 4, 0), &state, 0, true).unwrap();
        assert_eq!(admitted.evicted.len(), 1);
        assert_eq!(pool.bytes(), 2 * TX_ENCODED_LEN);
        assert!(pool.pending_for(&k[0].address()).is_empty());
    }

    #[test]
    fn block_removes_included_conflicting_and_unaffordable() {
        let (params, k, mut state) = setup(3);
        let (a, b, c) = (&k[0], &k[1], &k[2]);
        let mut pool = pool(&params);
        let a_txs: Vec<_> = (0..3).map(|n| pay(&params, a, sink(), 1, 5, n)).collect();
        for tx in &a_txs {
            pool.admit(*tx, &state, 0, true).unwrap();
        }
        let b0 = pay(&params, b, sink(), 100, 5, 0);
        pool.admit(b0, &state, 0, true).unwrap();
        // C (1,000 coins) queues 400 coins at nonces 1 and 2, leaving a gap at 0.
        let c1 = pay(&params, c, sink(), 400 * COIN, 5, 1);
        let c2 = pay(&params, c, sink(), 400 * COIN, 5, 2);
        pool.admit(c1, &state, 0, true).unwrap();
        pool.admit(c2, &state, 0, true).unwrap();

        // The block: A's first two, a different B nonce 0, and a C nonce 0 that leaves C
        // enough for one more of its queued payments but not two.
        let b0_other = pay(&params, b, sink(), 200, 5, 0);
        let c0 = pay(&params, c, sink(), 250 * COIN, 5, 0);
        let genesis = params.genesis().header;
        let txs = vec![a_txs[0], a_txs[1], b0_other, c0];
        let (block, _) = mine(&params, &mut state, &genesis, txs);
        let dropped = pool.remove_for_block(&block, &state);

        assert_eq!(dropped.len(), 2);
        assert!(dropped.contains(&b0.txid()) && dropped.contains(&c2.txid()));
        assert_eq!(pool.txids().collect::<BTreeSet<_>>(), [a_txs[2].txid(), c1.txid()].into());
        let stats = pool.stats();
        assert_eq!((stats.included_total, stats.dropped_total), (2, 2));
        assert_consistent(&pool, &state);
    }

    #[test]
    fn reorged_out_transactions_come_back() {
        let (params, k, mut state) = setup(2);
        let mut pool = pool(&params);
        let txs: Vec<_> = (0..3).map(|n| pay(&params, &k[0], sink(), 1, 5, n)).collect();
        for tx in &txs {
            pool.admit(*tx, &state, 0, true).unwrap();
        }
        let before = state.clone();
        let genesis = params.genesis().header;
        let (block, undo) = mine(&params, &mut state, &genesis, txs[..2].to_vec());
        pool.remove_for_block(&block, &state);
        assert_eq!(pool.len(), 1);

        // The block is disconnected and a competing empty block takes its place.
        state.revert(&undo);
        assert_eq!(state, before);
        let back = pool.readmit_reorged(block.txs.clone(), &state, 50);
        assert_eq!(back, vec![txs[0].txid(), txs[1].txid()]);
        assert_eq!(pool.pending_for(&k[0].address()), txs);
        assert_consistent(&pool, &state);

        // If the new branch included one of them, it does not come back.
        let (block2, _) = mine(&params, &mut state, &genesis, txs[..1].to_vec());
        pool.remove_for_block(&block2, &state);
        let back = pool.readmit_reorged(vec![txs[0]], &state, 60);
        assert!(back.is_empty());
        assert_eq!(pool.len(), 2);
        assert_consistent(&pool, &state);
    }

    #[test]
    fn readmission_order_does_not_matter() {
        let (params, k, mut state) = setup(1);
        let mut pool = pool(&params);
        let txs: Vec<_> = (0..4).map(|n| pay(&params, &k[0], sink(), 1, 5, n)).collect();
        let genesis = params.genesis().header;
        let (block, undo) = mine(&params, &mut state, &genesis, txs.clone());
        state.revert(&undo);
        // Newest first, as blocks are disconnected.
        let reversed: Vec<_> = block.txs.iter().rev().copied().collect();
        assert_eq!(pool.readmit_reorged(reversed, &state, 0).len(), 4);
        assert_eq!(pool.pending_for(&k[0].address()), txs);
        // Coming back while already pending is not a loss.
        assert!(pool.readmit_reorged(txs, &state, 0).is_empty());
        assert_eq!(pool.stats().dropped_total, 0);
        assert_consistent(&pool, &state);
    }

    #[test]
    fn reorg_that_lowers_a_balance_drops_what_is_no_longer_affordable() {
        let (params, k, mut state) = setup(2);
        let mut pool = pool(&params);
        let genesis = params.genesis().header;
        // A pays B 900 coins; B then queues a payment that needs them.
        let a_to_b = pay(&params, &k[0], k[1].address(), 900 * COIN, 5, 0);
        let (block, undo) = mine(&params, &mut state, &genesis, vec![a_to_b]);
        let spend = pay(&params, &k[1], sink(), 1_500 * COIN, 5, 0);
        pool.admit(spend, &state, 0, true).unwrap();
        state.revert(&undo);
        let back = pool.readmit_reorged(block.txs.clone(), &state, 10);
        assert_eq!(back, vec![a_to_b.txid()]);
        assert!(!pool.contains(&spend.txid()));
        assert_consistent(&pool, &state);
    }

    #[test]
    fn expiry_drops_old_transactions_and_their_dependants() {
        let (params, k, state) = setup(2);
        let limits = MempoolLimits { expiry_ms: 1_000, ..MempoolLimits::default() };
        let mut pool = pool_with(&params, limits);
        let a0 = pay(&params, &k[0], sink(), 1, 5, 0);
        let a1 = pay(&params, &k[0], sink(), 1, 5, 1);
        let a2 = pay(&params, &k[0], sink(), 1, 5, 2);
        let b0 = pay(&params, &k[1], sink(), 1, 5, 0);
        pool.admit(a0, &state, 500, true).unwrap();
        pool.admit(a1, &state, 100, true).unwrap();
        pool.admit(a2, &state, 900, true).unwrap();
        pool.admit(b0, &state, 1_000, true).unwrap();
        assert!(pool.expire(1_099).is_empty());
        // a1 is expired; a2 is not, but cannot be mined without a1.
        let expired = pool.expire(1_100);
        assert_eq!(expired.into_iter().collect::<BTreeSet<_>>(), [a1.txid(), a2.txid()].into());
        assert_eq!(pool.txids().collect::<BTreeSet<_>>(), [a0.txid(), b0.txid()].into());
        assert_eq!(pool.expire(1_500), vec![a0.txid()]);
        assert_eq!(pool.stats().expired_total, 3);
        assert_consistent(&pool, &state);
    }

    #[test]
    fn template_is_by_fee_but_in_nonce_order() {
        let (params, k, mut state) = setup(3);
        let mut pool = pool(&params);
        let a0 = pay(&params, &k[0], sink(), 1, 1, 0);
        let a1 = pay(&params, &k[0], sink(), 1, 100, 1);
        let b0 = pay(&params, &k[1], sink(), 1, 50, 0);
        let c1 = pay(&params, &k[2], sink(), 1, 999, 1); // nonce 0 missing: not minable
        for tx in [a1, a0, b0, c1] {
            pool.admit(tx, &state, 0, true).unwrap();
        }
        assert_eq!(template(&mut pool, &state, 10), vec![b0, a0, a1]);
        assert_eq!(template(&mut pool, &state, 2), vec![b0, a0]);
        assert!(template(&mut pool, &state, 0).is_empty());

        // The template is a valid block.
        let genesis = params.genesis().header;
        let body = template(&mut pool, &state, 10);
        mine(&params, &mut state, &genesis, body);

        // A balance that dropped below the queue (stale pool) stops the sender's run.
        let (params, k, mut state) = setup(1);
        let mut pool = pool_with(&params, MempoolLimits::default());
        for n in 0..3 {
            pool.admit(pay(&params, &k[0], sink(), 100, 5, n), &state, 0, true).unwrap();
        }
        state.set(k[0].address(), Account { balance: Amount::from_units(210), nonce: 0 });
        assert_eq!(template(&mut pool, &state, 10).len(), 2);
        // The chain took the coins: the payment it cannot make goes.
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.stats().unminable_total, 1);
    }

    /// An account without a key whose balance leaves room for only `room` more units.
    /// Genesis allocations add up to at most the largest amount, so on a real chain it takes
    /// subsidies for senders to hold more than such an account's room; tests set it directly.
    fn rich(state: &mut MemState, room: u64) -> Address {
        let rich = Address::from_bytes([0x11; 32]);
        state.set(rich, Account { balance: Amount::from_units(u64::MAX - room), nonce: 0 });
        rich
    }

    #[test]
    fn refuses_a_payment_that_would_overflow_its_receiver() {
        let (params, k, mut state) = setup(2);
        // k[1] is rich, so that it can pay itself below.
        let rich = k[1].address();
        let full = Amount::from_units(u64::MAX - 1_000);
        state.set(rich, Account { balance: full, nonce: 0 });
        let mut pool = pool(&params);
        let overflow = pay(&params, &k[0], rich, 1_001, 1, 0);
        let err = pool.admit(overflow, &state, 0, true).unwrap_err();
        assert_eq!(
            err,
            MempoolError::ReceiverOverflow { balance: full, amount: Amount::from_units(1_001) }
        );
        assert_eq!(err.reason(), "receiver_overflow");
        assert_eq!(
            err.to_string(),
            "the receiver's balance of 184467440737.09550615 coins cannot take 0.00001001 \
             coins more: it would exceed the largest possible amount"
        );
        assert!(pool.is_empty());
        // Exactly filling the receiver is fine.
        pool.admit(pay(&params, &k[0], rich, 1_000, 1, 0), &state, 0, true).unwrap();
        // A payment to oneself never overflows: the amount is debited first.
        pool.admit(pay(&params, &k[1], rich, 5_000, 1, 0), &state, 0, true).unwrap();

        // A fee that overflows with the subsidy: no miner could be paid for it.
        let fee = u64::MAX - params.initial_subsidy.units() + 1;
        let greedy = pay(&params, &k[1], sink(), 0, fee, 1);
        let err = pool.admit(greedy, &state, 0, true).unwrap_err();
        assert_eq!(err, MempoolError::FeeOverflow { fee: Amount::from_units(fee) });
        assert_eq!(err.reason(), "fee_overflow");
        let stats = pool.stats();
        assert_eq!(stats.rejected.get("receiver_overflow"), Some(&1));
        assert_eq!(stats.rejected.get("fee_overflow"), Some(&1));
        assert_consistent(&pool, &state);
    }

    #[test]
    fn template_leaves_out_payments_that_would_overflow_their_receiver() {
        let (params, k, mut state) = setup(4);
        let rich = rich(&mut state, 5_000);
        let mut pool = pool(&params);
        let a0 = pay(&params, &k[0], rich, 1_000, 50, 0);
        let a1 = pay(&params, &k[0], sink(), 1, 5, 1);
        let b0 = pay(&params, &k[1], rich, 2_000, 90, 0);
        let b1 = pay(&params, &k[1], sink(), 1, 5, 1);
        let c0 = pay(&params, &k[2], rich, 1_000, 10, 0);
        let d0 = pay(&params, &k[3], sink(), 7, 1, 0);
        for tx in [a0, a1, b0, b1, c0, d0] {
            pool.admit(tx, &state, 0, true).unwrap();
        }
        // The chain credits the receiver (e.g. a block from another miner) and leaves it room
        // for 1,500 units: b0 no longer fits at all, c0 fits but not after a0.
        state.set(rich, Account { balance: Amount::from_units(u64::MAX - 1_500), nonce: 0 });

        let body = template(&mut pool, &state, 10);
        assert_eq!(body, vec![a0, a1, d0]);
        // b0 is evicted with b1, which cannot be mined without it; c0 waits.
        assert_eq!(
            pool.txids().collect::<BTreeSet<_>>(),
            [a0.txid(), a1.txid(), c0.txid(), d0.txid()].into()
        );
        assert_eq!(pool.stats().unminable_total, 2);
        let genesis = params.genesis().header;
        let (block, _) = mine(&params, &mut state, &genesis, body);
        assert_eq!(state.account(&rich).balance.units(), u64::MAX - 500);
        pool.remove_for_block(&block, &state);
        assert_consistent(&pool, &state);

        // Once the block is in, c0 cannot fit either: the next template evicts it.
        assert!(template(&mut pool, &state, 10).is_empty());
        assert!(pool.is_empty());
        assert_eq!(pool.stats().unminable_total, 3);
    }

    #[test]
    fn template_skips_fees_the_miner_cannot_take() {
        let (params, k, mut state) = setup(2);
        let mut pool = pool(&params);
        let rich_fee = pay(&params, &k[0], sink(), 1, 100, 0);
        let small_fee = pay(&params, &k[1], sink(), 1, 10, 0);
        for tx in [rich_fee, small_fee] {
            pool.admit(tx, &state, 0, true).unwrap();
        }
        // A miner whose balance can take the subsidy and 50 units of fees.
        let miner = Address::from_bytes([8; 32]);
        let subsidy = params.subsidy(1).units();
        let room = Account { balance: Amount::from_units(u64::MAX - subsidy - 50), nonce: 0 };
        state.set(miner, room);
        let body = pool.select_for_block(&state, 1, miner, 10).unwrap();
        assert_eq!(body, vec![small_fee]);
        // Another miner can take it: it stays.
        assert_eq!(pool.len(), 2);
        let block = child_block(&params, &params.genesis().header, body, miner, 0);
        apply_block(&params, &state, &block).expect("the template is a valid block");

        // A miner that cannot take the subsidy itself: no block may pay it.
        state.set(miner, Account { balance: Amount::MAX, nonce: 0 });
        assert_eq!(pool.select_for_block(&state, 1, miner, 10), Err(BlockError::MinerOverflow));
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn equal_fees_are_selected_oldest_first() {
        let (params, k, state) = setup(2);
        let mut pool = pool(&params);
        let late = pay(&params, &k[0], sink(), 1, 5, 0);
        let early = pay(&params, &k[1], sink(), 1, 5, 0);
        pool.admit(late, &state, 20, true).unwrap();
        pool.admit(early, &state, 10, true).unwrap();
        assert_eq!(template(&mut pool, &state, 2), vec![early, late]);
    }

    #[test]
    fn error_messages_speak_to_wallet_users() {
        let e = MempoolError::InsufficientBalance {
            balance: Amount::from_units(150_000_000),
            needed: Amount::from_units(200_000_000),
        };
        assert_eq!(
            e.to_string(),
            "insufficient balance: the sender has 1.5 coins, but this transaction and the \
             sender's other pending transactions need 2 coins"
        );
        let e = MempoolError::FeeTooLow { fee: Amount::ZERO, min_fee: Amount::from_units(1) };
        assert_eq!(
            e.to_string(),
            "the fee of 0 coins is below this node's minimum fee of 0.00000001 coins"
        );
    }

    /// An operation of the property test.
    #[derive(Debug, Clone)]
    enum Op {
        /// A payment from `sender` at its account nonce plus `ahead` minus one, to the next
        /// sender or to the rich account whose balance is close to the largest amount.
        Admit { sender: usize, ahead: u64, amount: u64, fee: u64, to_rich: bool },
        /// Mine a template of at most `max_txs`.
        Mine { max_txs: usize },
        /// Disconnect the last block and readmit its transactions.
        Reorg,
        /// Advance the clock and expire.
        Tick { ms: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0..4usize, 0..5u64, 0..90_000_000u64, 0..12u64, proptest::bool::weighted(0.3))
                .prop_map(|(sender, ahead, amount, fee, to_rich)| {
                    Op::Admit { sender, ahead, amount, fee, to_rich }
                }),
            2 => (0..5usize).prop_map(|max_txs| Op::Mine { max_txs }),
            1 => Just(Op::Reorg),
            1 => (0..700u64).prop_map(|ms| Op::Tick { ms }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// After any sequence of admissions, blocks, reorgs and expiries the pool is
        /// consistent, within bounds and valid against the chain's state, and every template
        /// is a valid block, also when payments to a nearly full account compete for its room.
        #[test]
        fn invariants_hold(
            max_count in 1..8usize,
            max_txs_bytes in 1..8usize,
            max_nonce_gap in 0..3u64,
            ops in proptest::collection::vec(op(), 1..40),
        ) {
            let keys = keys(4);
            // One coin each: two payments of up to 0.9 coin often exhaust a sender.
            let params = Arc::new(devnet_funding(&keys, 1));
            let limits = MempoolLimits {
                max_count,
                max_bytes: max_txs_bytes * TX_ENCODED_LEN,
                max_nonce_gap,
                expiry_ms: 1_000,
                min_fee: Amount::from_units(1),
            };
            let mut pool = Mempool::new(params.clone(), limits);
            let mut state = params.genesis_state();
            // Room for one coin: two payments to it often do not both fit.
            let rich = rich(&mut state, COIN);
            let mut chain: Vec<(Block, Undo)> = Vec::new();
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Admit { sender, ahead, amount, fee, to_rich } => {
                        let key = &keys[sender];
                        let account_nonce = state.account(&key.address()).nonce;
                        let nonce = (account_nonce + ahead).saturating_sub(1);
                        let to = if to_rich { rich } else { keys[(sender + 1) % 4].address() };
                        let tx = pay(&params, key, to, amount, fee, nonce);
                        let before = pool.len();
                        match pool.admit(tx, &state, now, true) {
                            Ok(a) => {
                                prop_assert!(pool.holds_exact(&tx));
                                let grew = usize::from(a.replaced.is_none()) + before;
                                prop_assert_eq!(pool.len() + a.evicted.len(), grew);
                            }
                            Err(_) => prop_assert_eq!(pool.len(), before),
                        }
                    }
                    Op::Mine { max_txs } => {
                        let parent =
                            chain.last().map_or(params.genesis().header, |(b, _)| b.header);
                        let template = pool
                            .select_for_block(&state, parent.height + 1, sink(), max_txs)
                            .expect("the sink can take the subsidy");
                        prop_assert!(template.len() <= max_txs);
                        let block = child_block(&params, &parent, template, sink(), 0);
                        let delta = apply_block(&params, &state, &block)
                            .expect("a template is always a valid block");
                        state.apply(&delta);
                        pool.remove_for_block(&block, &state);
                        for tx in &block.txs {
                            prop_assert!(!pool.contains(&tx.txid()));
                        }
                        chain.push((block, delta.undo));
                    }
                    Op::Reorg => {
                        if let Some((block, undo)) = chain.pop() {
                            state.revert(&undo);
                            pool.readmit_reorged(block.txs, &state, now);
                        }
                    }
                    Op::Tick { ms } => {
                        now += ms;
                        for txid in pool.expire(now) {
                            prop_assert!(!pool.contains(&txid));
                        }
                    }
                }
                assert_consistent(&pool, &state);
            }
        }
    }
}
