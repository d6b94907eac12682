//! Compact block relay (BIP152, written for Ember's format): a new block travels as its
//! header, a 6-byte short id per payment and the payments the sender predicts the peer
//! lacks; the receiver rebuilds it from its mempool and asks only for what is missing, in
//! one round trip (`GetBlockTxn` / `BlockTxn`). No I/O here: short ids, building a compact
//! block, rebuilding one, and the choice of high-bandwidth peers, each unit-tested.
//!
//! Short ids: SipHash-2-4 of the txid, keyed by the first 16 bytes of
//! `SHA-256(header || nonce LE)` (k0, k1 little-endian), the low 6 bytes little-endian, as
//! BIP152 does with the wtxid (Ember's txid is the whole signed payload but the signature,
//! and any valid signature of a payment is as good as another). A per-block random nonce
//! keys each block differently, so collisions cannot be prepared for every peer at once.
//!
//! Bounds (what one peer can make us hold): at most [`PARTIALS_PER_PEER`] partly rebuilt
//! blocks per peer and [`MAX_PARTIALS`] in all, each at most the network's largest block;
//! a compact block is looked at only when its header's proof of work checks and it would
//! extend our best chain or its parent is unknown (then it goes to the orphan pool).

use crate::chain::PreparedBlock;
use ember_core::encoding::encode;
use ember_core::hash::sha256;
use ember_core::{Block, BlockHeader, BlockId, Transaction, Txid};
use std::collections::HashMap;

/// Most partly rebuilt blocks held at once (over all peers).
pub const MAX_PARTIALS: usize = 8;
/// Most partly rebuilt blocks held for one peer: a block and its child can both be waiting
/// for payments (blocks forwarded before validation can arrive close together).
pub const PARTIALS_PER_PEER: usize = 4;
/// Peers asked to send compact blocks before validating them (BIP152's high-bandwidth
/// mode; Core asks three).
pub const HIGH_BANDWIDTH_PEERS: usize = 3;

/// A 6-byte short transaction id.
pub type ShortId = [u8; 6];

/// SipHash-2-4 of `data` under the key `(k0, k1)` (Aumasson and Bernstein, 2012).
pub fn siphash24(k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let m = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let mut last = [0u8; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    last[7] = data.len() as u8;
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    round(&mut v);
    round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The short-id key of one compact block: from its header and nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortIdKey(u64, u64);

impl ShortIdKey {
    pub fn new(header: &BlockHeader, nonce: u64) -> ShortIdKey {
        let h = sha256(&[&encode(header), &nonce.to_le_bytes()]).to_bytes();
        ShortIdKey(
            u64::from_le_bytes(h[0..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(h[8..16].try_into().expect("8 bytes")),
        )
    }

    /// The short id of `txid` under this key.
    pub fn short_id(&self, txid: &Txid) -> ShortId {
        let s = siphash24(self.0, self.1, txid.as_bytes()).to_le_bytes();
        s[..6].try_into().expect("6 bytes")
    }
}

/// A payment sent whole inside a compact block, at its index in the block.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct PrefilledTx {
    pub index: u32,
    pub tx: Transaction,
}

/// BIP152's `cmpctblock`: the header, a short id for each payment not prefilled (in block
/// order, skipping the prefilled indexes), and the prefilled payments by ascending index.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct CompactBlock {
    pub header: BlockHeader,
    pub nonce: u64,
    pub short_ids: Vec<ShortId>,
    pub prefilled: Vec<PrefilledTx>,
}

impl CompactBlock {
    /// `block` as a compact block under `nonce`, with the payments at `prefill` (indexes
    /// into the block; out-of-range ones are ignored) sent whole.
    pub fn build(block: &Block, nonce: u64, prefill: &[u32]) -> CompactBlock {
        let key = ShortIdKey::new(&block.header, nonce);
        let mut prefilled = Vec::new();
        let mut short_ids = Vec::with_capacity(block.txs.len());
        let mut prefill: Vec<u32> = prefill.to_vec();
        prefill.sort_unstable();
        prefill.dedup();
        let mut next = prefill.iter().peekable();
        for (i, tx) in block.txs.iter().enumerate() {
            if next.peek() == Some(&&(i as u32)) {
                next.next();
                prefilled.push(PrefilledTx { index: i as u32, tx: *tx });
            } else {
                short_ids.push(key.short_id(&tx.txid()));
            }
        }
        CompactBlock { header: block.header, nonce, short_ids, prefilled }
    }

    /// Payments the block holds.
    pub fn tx_count(&self) -> usize {
        self.short_ids.len() + self.prefilled.len()
    }
}

/// Why a compact block or its missing payments cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// Breaks the message's own rules: the sender's fault.
    #[error("malformed compact block: {0}")]
    Malformed(String),
    /// Two payments of the block share a short id: fetch the whole block instead (nobody's
    /// fault; BIP152's fallback).
    #[error("short ids collide; the whole block is needed")]
    Collision,
}

/// A block being rebuilt: every slot filled but the `missing` ones.
#[derive(Debug, Clone)]
pub struct PartialBlock {
    pub header: BlockHeader,
    slots: Vec<Option<Transaction>>,
    /// Indexes still to be fetched, ascending.
    pub missing: Vec<u32>,
}

impl PartialBlock {
    /// Rebuilds what it can of `cb` from `pool` (txid, payment): at most `max_txs` payments.
    /// A short id that two pool payments share is treated as missing.
    pub fn new<'a>(
        cb: &CompactBlock,
        max_txs: usize,
        pool: impl Iterator<Item = (Txid, &'a Transaction)>,
    ) -> Result<PartialBlock, CompactError> {
        let count = cb.tx_count();
        if count > max_txs {
            return Err(CompactError::Malformed(format!(
                "{count} payments, more than a block holds ({max_txs})"
            )));
        }
        let mut slots: Vec<Option<Transaction>> = vec![None; count];
        let mut is_prefilled = vec![false; count];
        let mut last: Option<u32> = None;
        for p in &cb.prefilled {
            if last.is_some_and(|l| p.index <= l) || p.index as usize >= count {
                return Err(CompactError::Malformed(format!(
                    "prefilled index {} out of order or past {count}",
                    p.index
                )));
            }
            last = Some(p.index);
            slots[p.index as usize] = Some(p.tx);
            is_prefilled[p.index as usize] = true;
        }
        // Short id -> slot; a short id the block uses twice cannot be told apart.
        let mut by_short: HashMap<ShortId, usize> = HashMap::with_capacity(cb.short_ids.len());
        let free = (0..count).filter(|i| !is_prefilled[*i]);
        for (slot, sid) in free.zip(&cb.short_ids) {
            if by_short.insert(*sid, slot).is_some() {
                return Err(CompactError::Collision);
            }
        }
        let key = ShortIdKey::new(&cb.header, cb.nonce);
        // Slots two pool payments claim are emptied again and fetched.
        let mut ambiguous = Vec::new();
        for (txid, tx) in pool {
            if let Some(&slot) = by_short.get(&key.short_id(&txid)) {
                if slots[slot].is_some() && !is_prefilled[slot] {
                    ambiguous.push(slot);
                } else {
                    slots[slot] = Some(*tx);
                }
            }
        }
        for slot in ambiguous {
            slots[slot] = None;
        }
        let missing = (0..count as u32).filter(|i| slots[*i as usize].is_none()).collect();
        Ok(PartialBlock { header: cb.header, slots, missing })
    }

    pub fn id(&self) -> BlockId {
        self.header.id()
    }

    /// Fills the missing slots with `txs`, the answer to a `GetBlockTxn` of
    /// [`PartialBlock::missing`]; the count must match.
    pub fn fill(&mut self, txs: Vec<Transaction>) -> Result<(), CompactError> {
        if txs.len() != self.missing.len() {
            return Err(CompactError::Malformed(format!(
                "{} payments sent for {} asked",
                txs.len(),
                self.missing.len()
            )));
        }
        for (i, tx) in std::mem::take(&mut self.missing).into_iter().zip(txs) {
            self.slots[i as usize] = Some(tx);
        }
        Ok(())
    }

    /// The whole block once nothing is missing, if its payments match the header's root
    /// (`Err(Collision)` otherwise: a short id matched the wrong pool payment, or a
    /// payment sent is not the block's; either way the whole block is fetched). The root
    /// found matching is carried with the block, so validation does not hash it again.
    pub fn complete(&self) -> Option<Result<PreparedBlock, CompactError>> {
        let txs: Option<Vec<Transaction>> = self.slots.iter().copied().collect();
        let mut block = PreparedBlock::new(Block { header: self.header, txs: txs? });
        Some(match block.check_root() {
            Ok(()) => Ok(block),
            Err(_) => Err(CompactError::Collision),
        })
    }
}

/// Which peers we asked for high-bandwidth relay: at most [`HIGH_BANDWIDTH_PEERS`], the
/// ones that most recently gave us a new block first (Core's
/// `MaybeSetPeerAsAnnouncingHeaderAndIDs`).
#[derive(Debug, Default)]
pub struct HighBandwidth(Vec<u64>);

impl HighBandwidth {
    /// Peer `id` just connected, or just gave us a new block: whether to ask it for
    /// high-bandwidth mode now (`Some(true)`), and which peer to move back to low
    /// bandwidth to make room (`Some((.., Some(old)))`). `None` if nothing changes.
    pub fn promote(&mut self, id: u64) -> Option<Option<u64>> {
        if let Some(pos) = self.0.iter().position(|p| *p == id) {
            // Already asked: most recent now.
            let p = self.0.remove(pos);
            self.0.push(p);
            return None;
        }
        self.0.push(id);
        let demoted = (self.0.len() > HIGH_BANDWIDTH_PEERS).then(|| self.0.remove(0));
        Some(demoted)
    }

    /// Peer `id` is gone.
    pub fn remove(&mut self, id: u64) {
        self.0.retain(|p| *p != id);
    }

    /// Whether `id` is asked for high-bandwidth relay.
    pub fn contains(&self, id: u64) -> bool {
        self.0.contains(&id)
    }

    /// Whether fewer than [`HIGH_BANDWIDTH_PEERS`] are asked (a new peer is asked at once).
    pub fn has_room(&self) -> bool {
        self.0.len() < HIGH_BANDWIDTH_PEERS
    }
}

/// Blocks kept in memory for `GetBlockTxn` (one just rebuilt may not be stored yet when a
/// high-bandwidth peer asks), with the indexes we lacked ourselves.
pub const MAX_RECENT: usize = 4;
/// Blocks forwarded before we had them whole, remembered at most (see
/// [`CompactState::forwarded`]).
pub const MAX_FORWARDED: usize = 16;

/// What compact relay did (`node_info.compact`, the bench's counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactStats {
    /// Compact blocks sent (announcements and high-bandwidth forwards).
    pub sent: u64,
    /// Blocks rebuilt from a compact block, with or without a round trip.
    pub rebuilt: u64,
    /// Of those, rebuilt without asking for anything (every payment in the mempool).
    pub rebuilt_from_mempool: u64,
    /// `GetBlockTxn` round trips for missing payments.
    pub round_trips: u64,
    /// Whole blocks fetched instead (short-id collision or a root mismatch).
    pub fallbacks: u64,
}

/// The network's compact-relay state: high-bandwidth choice, partial blocks, recent blocks.
#[derive(Debug, Default)]
pub struct CompactState {
    pub high_bandwidth: HighBandwidth,
    /// Blocks being rebuilt, oldest first: at most one per peer, [`MAX_PARTIALS`] in all.
    partials: std::collections::VecDeque<(u64, PartialBlock)>,
    /// Recently rebuilt or relayed blocks, newest last, with the indexes we lacked.
    recent: std::collections::VecDeque<(std::sync::Arc<Block>, Vec<u32>)>,
    /// Blocks forwarded to high-bandwidth peers before we rebuilt and judged them, oldest
    /// first: a peer that asks us for one meanwhile is answered once we have.
    forwarded: std::collections::VecDeque<BlockId>,
    pub stats: CompactStats,
}

impl CompactState {
    /// Holds `partial` from `peer` until its `BlockTxn` comes: replaces the same block's
    /// partial from that peer, the peer's oldest beyond [`PARTIALS_PER_PEER`], and the
    /// oldest of all beyond [`MAX_PARTIALS`].
    pub fn hold(&mut self, peer: u64, partial: PartialBlock) {
        let id = partial.id();
        self.partials.retain(|(p, b)| *p != peer || b.id() != id);
        if self.partials.iter().filter(|(p, _)| *p == peer).count() >= PARTIALS_PER_PEER {
            let oldest = self.partials.iter().position(|(p, _)| *p == peer);
            if let Some(i) = oldest {
                self.partials.remove(i);
            }
        }
        if self.partials.len() >= MAX_PARTIALS {
            self.partials.pop_front();
        }
        self.partials.push_back((peer, partial));
    }

    /// The partial block `peer` is to complete, if it is `block`.
    pub fn take(&mut self, peer: u64, block: &BlockId) -> Option<PartialBlock> {
        let pos = self.partials.iter().position(|(p, b)| *p == peer && b.id() == *block)?;
        self.partials.remove(pos).map(|(_, b)| b)
    }

    /// A peer is gone: what it was to complete goes too.
    pub fn forget_peer(&mut self, peer: u64) {
        self.partials.retain(|(p, _)| *p != peer);
        self.high_bandwidth.remove(peer);
    }

    /// Keeps `block` for `GetBlockTxn`, with the indexes we lacked (what our peers likely
    /// lack too: sent to them whole). Only a block that passed validation, or our own mined
    /// block, is kept: what is kept is served to peers.
    pub fn remember(&mut self, block: std::sync::Arc<Block>, lacked: Vec<u32>) {
        let id = block.id();
        if self.recent.iter().any(|(b, _)| b.id() == id) {
            return;
        }
        if self.recent.len() >= MAX_RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((block, lacked));
    }

    /// A recent block and the indexes we lacked of it.
    pub fn recent(&self, id: &BlockId) -> Option<(std::sync::Arc<Block>, Vec<u32>)> {
        self.recent.iter().find(|(b, _)| b.id() == *id).cloned()
    }

    /// We forwarded `block` before having it whole (at most [`MAX_FORWARDED`] are
    /// remembered: the oldest is dropped).
    pub fn forwarded(&mut self, block: BlockId) {
        if self.forwarded.len() >= MAX_FORWARDED {
            self.forwarded.pop_front();
        }
        self.forwarded.push_back(block);
    }

    /// Whether `block` was forwarded and is not judged yet.
    pub fn pending(&self, block: &BlockId) -> bool {
        self.forwarded.contains(block)
    }

    /// `block` is judged (stored, refused) or given up on; true if it was pending.
    pub fn settled(&mut self, block: &BlockId) -> bool {
        let before = self.forwarded.len();
        self.forwarded.retain(|b| b != block);
        self.forwarded.len() != before
    }

    /// Partial blocks held.
    pub fn partial_count(&self) -> usize {
        self.partials.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::testkit::{child_block, devnet_funding, keys, pay};

    #[test]
    fn siphash_matches_the_reference_vectors_and_std() {
        // The paper's example: key 00..0f, message 00..0e.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(k0, k1, &msg), 0xa129_ca61_49be_45e5);
        // vectors.h, first entry: the empty message.
        assert_eq!(siphash24(k0, k1, &[]), 0x726f_db47_dd0e_0e31);
        // And std's own SipHash-2-4 on every length up to 64.
        #[allow(deprecated)]
        for len in 0..64u8 {
            use std::hash::Hasher;
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            let mut h = std::hash::SipHasher::new_with_keys(k0 ^ 7, k1);
            h.write(&data);
            assert_eq!(siphash24(k0 ^ 7, k1, &data), h.finish(), "length {len}");
        }
    }

    fn block_of(n: u64) -> (Block, Vec<Transaction>) {
        let k = keys(4);
        let params = devnet_funding(&k, 1_000_000);
        let txs: Vec<Transaction> = (0..n)
            .map(|i| pay(&params, &k[(i % 4) as usize], k[0].address(), 1, 5, i / 4))
            .collect();
        (child_block(&params, &params.genesis().header, txs.clone(), k[1].address(), 0), txs)
    }

    fn pool(txs: &[Transaction]) -> Vec<(Txid, &Transaction)> {
        txs.iter().map(|t| (t.txid(), t)).collect()
    }

    #[test]
    fn a_block_whose_payments_are_all_pooled_is_rebuilt_without_a_round_trip() {
        let (block, txs) = block_of(50);
        let cb = CompactBlock::build(&block, 7, &[]);
        assert_eq!(cb.short_ids.len(), 50);
        assert!(encode(&cb).len() < 50 * 7 + 200, "about 6 bytes a payment");
        let p = PartialBlock::new(&cb, 1000, pool(&txs).into_iter()).unwrap();
        assert!(p.missing.is_empty());
        assert_eq!(**p.complete().unwrap().unwrap().block(), block);
    }

    #[test]
    fn missing_payments_are_asked_by_index_and_filled_prefilled_ones_are_never_asked() {
        let (block, txs) = block_of(20);
        let cb = CompactBlock::build(&block, 1, &[3, 0, 3]);
        assert_eq!(cb.prefilled.iter().map(|p| p.index).collect::<Vec<_>>(), vec![0, 3]);
        // The pool lacks payments 5 and 11 (and 3, which was sent whole).
        let pooled: Vec<Transaction> = txs
            .iter()
            .enumerate()
            .filter(|(i, _)| ![3, 5, 11].contains(i))
            .map(|(_, t)| *t)
            .collect();
        let mut p = PartialBlock::new(&cb, 1000, pool(&pooled).into_iter()).unwrap();
        assert_eq!(p.missing, vec![5, 11]);
        assert!(p.complete().is_none());
        assert!(matches!(p.clone().fill(vec![txs[5]]), Err(CompactError::Malformed(_))));
        // Wrong payments fill the slots but the root does not match: fetch the block.
        let mut wrong = p.clone();
        wrong.fill(vec![txs[11], txs[5]]).unwrap();
        assert_eq!(wrong.complete().unwrap().unwrap_err(), CompactError::Collision);
        p.fill(vec![txs[5], txs[11]]).unwrap();
        assert_eq!(**p.complete().unwrap().unwrap().block(), block);
    }

    #[test]
    fn malformed_and_colliding_compact_blocks_are_told_apart() {
        let (block, txs) = block_of(10);
        let good = CompactBlock::build(&block, 9, &[2]);
        let mut too_many = good.clone();
        too_many.short_ids.extend(vec![[0; 6]; 1000]);
        assert!(matches!(
            PartialBlock::new(&too_many, 500, std::iter::empty()),
            Err(CompactError::Malformed(_))
        ));
        let mut past = good.clone();
        past.prefilled[0].index = 10;
        assert!(matches!(
            PartialBlock::new(&past, 500, std::iter::empty()),
            Err(CompactError::Malformed(_))
        ));
        let mut twice = good.clone();
        twice.prefilled.push(twice.prefilled[0].clone());
        twice.short_ids.pop();
        assert!(matches!(
            PartialBlock::new(&twice, 500, std::iter::empty()),
            Err(CompactError::Malformed(_))
        ));
        // Two payments of the block with one short id: the whole block is needed.
        let mut dup = good.clone();
        dup.short_ids[1] = dup.short_ids[0];
        assert_eq!(
            PartialBlock::new(&dup, 500, pool(&txs).into_iter()).unwrap_err(),
            CompactError::Collision
        );
        // Two pool payments with the block's short id: that slot is fetched.
        let key = ShortIdKey::new(&good.header, good.nonce);
        let p = PartialBlock::new(
            &good,
            500,
            pool(&txs)
                .into_iter()
                .chain(pool(&txs[..1]).into_iter().map(|(_, t)| (txs[0].txid(), t))),
        )
        .unwrap();
        assert_eq!(p.missing, vec![0], "slot 0 claimed twice");
        assert_eq!(key.short_id(&txs[0].txid()), good.short_ids[0]);
    }

    #[test]
    fn partial_blocks_are_bounded_per_peer_and_in_all() {
        let (block, _) = block_of(3);
        let cb = CompactBlock::build(&block, 1, &[]);
        let partial = PartialBlock::new(&cb, 100, std::iter::empty()).unwrap();
        let mut st = CompactState::default();
        st.hold(1, partial.clone());
        st.hold(1, partial.clone());
        assert_eq!(st.partial_count(), 1, "one per peer and block");
        // Several blocks of one peer, up to the per-peer bound (the oldest goes first).
        let others: Vec<PartialBlock> = (0..=PARTIALS_PER_PEER as u64)
            .map(|n| {
                let mut b = block.clone();
                b.header.time += n + 1;
                PartialBlock::new(&CompactBlock::build(&b, 1, &[]), 100, std::iter::empty())
                    .unwrap()
            })
            .collect();
        for p in &others {
            st.hold(2, p.clone());
        }
        assert_eq!(st.partial_count(), 1 + PARTIALS_PER_PEER);
        assert!(st.take(2, &others[0].id()).is_none(), "peer 2's oldest made room");
        assert!(st.take(2, &others[1].id()).is_some());
        st.forget_peer(2);
        for peer in 2..20 {
            st.hold(peer, partial.clone());
        }
        assert_eq!(st.partial_count(), MAX_PARTIALS);
        assert!(st.take(1, &block.id()).is_none(), "the oldest made room");
        assert!(st.take(19, &block.id()).is_some());
        assert!(st.take(19, &block.id()).is_none(), "taken once");
        st.forget_peer(18);
        assert!(st.take(18, &block.id()).is_none());
        for n in 0..10u64 {
            let (b, _) = block_of(n % 3 + 1);
            let mut b = b;
            b.header.time += n;
            st.remember(std::sync::Arc::new(b), vec![]);
        }
        assert_eq!(st.recent.len(), MAX_RECENT);
        // Blocks forwarded before being judged: pending until settled, bounded.
        let id = |n: u8| BlockId::from_bytes([n; 32]);
        st.forwarded(id(1));
        assert!(st.pending(&id(1)) && !st.pending(&id(2)));
        assert!(st.settled(&id(1)) && !st.settled(&id(1)), "settled once");
        for n in 0..=MAX_FORWARDED as u8 {
            st.forwarded(id(n));
        }
        assert!(!st.pending(&id(0)) && st.pending(&id(MAX_FORWARDED as u8)), "oldest dropped");
    }

    #[test]
    fn high_bandwidth_goes_to_the_three_peers_that_last_gave_a_new_block_first() {
        let mut hb = HighBandwidth::default();
        assert_eq!(hb.promote(1), Some(None));
        assert_eq!(hb.promote(2), Some(None));
        assert_eq!(hb.promote(3), Some(None));
        assert_eq!(hb.promote(2), None, "already asked");
        // A fourth pushes out the least recent (1; 2 was refreshed).
        assert_eq!(hb.promote(4), Some(Some(1)));
        assert!(!hb.contains(1) && hb.contains(2) && hb.contains(4));
        hb.remove(3);
        assert_eq!(hb.promote(5), Some(None), "room after a disconnect");
    }
}
