//! What compact-block messages do (the decisions are [`super::compact`]'s): ask peers for
//! compact relay at connect, forward a compact block to high-bandwidth peers as soon as its
//! header's proof of work checks and it would extend our best chain (BIP152's
//! high-bandwidth mode: before rebuilding or validating it; a block that then fails is not
//! the forwarder's fault, as in Core), rebuild it from the mempool on the blocking pool,
//! ask for what is missing, and serve `GetBlockTxn` (a peer asking for a block we forwarded
//! before having it is answered once we have judged it, waiting at most
//! [`FORWARDED_WAIT`]).

use super::compact::{CompactBlock, CompactError, CompactStats, PartialBlock};
use super::disconnect::Misbehaviour;
use super::outbox;
use super::wire::{Inv, Message};
use super::Network;
use crate::store::BlockStatus;
use ember_core::block::max_txs_for;
use ember_core::{Block, BlockId, Transaction};
use std::sync::Arc;
use std::time::Duration;

/// Longest a peer's `GetBlockTxn` or `GetData` waits for a block we forwarded before we
/// had it whole (its sender's answer and our validation).
pub const FORWARDED_WAIT: Duration = Duration::from_secs(5);

/// What a compact block leads to, decided on the blocking pool.
enum Verdict {
    /// Known already, or not better than our tip: nothing to do.
    Ignore,
    /// Its header breaks a rule (proof of work, structure).
    BadHeader(String),
    /// Rebuilt (maybe partly).
    Partial(PartialBlock),
    /// Cannot be rebuilt from short ids: fetch the whole block.
    Fallback,
    Malformed(String),
}

impl Network {
    /// A peer just connected: ask it for compact blocks, high-bandwidth while fewer than
    /// [`super::compact::HIGH_BANDWIDTH_PEERS`] peers are.
    pub(super) fn compact_on_connect(&self, id: u64) {
        let high_bandwidth = {
            let mut st = self.compact.lock().expect("never poisoned");
            st.high_bandwidth.has_room() && st.high_bandwidth.promote(id).is_some()
        };
        self.send(id, Message::SendCmpct { high_bandwidth });
    }

    /// Peer `id` gave us a new tip first: make it one of our high-bandwidth peers (Core's
    /// rule), moving the least recent one back to low bandwidth.
    pub(super) fn compact_promote(&self, id: u64) {
        let change = self.compact.lock().expect("never poisoned").high_bandwidth.promote(id);
        if let Some(demoted) = change {
            self.send(id, Message::SendCmpct { high_bandwidth: true });
            if let Some(old) = demoted {
                self.send(old, Message::SendCmpct { high_bandwidth: false });
            }
        }
    }

    /// What compact relay did so far.
    pub fn compact_stats(&self) -> CompactStats {
        self.compact.lock().expect("never poisoned").stats
    }

    pub(super) fn on_send_cmpct(&self, id: u64, high_bandwidth: bool) {
        if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
            p.cmpct = Some(high_bandwidth);
        }
    }

    /// A compact block from peer `id`: judged, forwarded, rebuilt and (when nothing is
    /// missing) validated and connected in one task on the blocking pool, so that a block
    /// relayed on a busy machine waits for a thread once per hop, not once per step.
    pub(super) async fn on_cmpct_block(self: &Arc<Self>, id: u64, cb: CompactBlock) {
        let net = self.clone();
        self.blocking(move || net.cmpct_block_now(id, cb)).await
    }

    /// [`Network::on_cmpct_block`] on the calling (blocking) thread.
    fn cmpct_block_now(&self, id: u64, cb: CompactBlock) {
        let (bid, height) = (cb.header.id(), cb.header.height);
        if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
            p.knows(Inv::Block(bid));
        }
        let (verdict, forward, orphan) = self.judge_compact(cb);
        if orphan {
            // Its parent is unknown: sync headers from the sender too.
            let m = self.locator_message();
            self.send(id, m);
        }
        if let Some(payload) = forward {
            self.compact.lock().expect("never poisoned").forwarded(bid);
            self.forward_high_bandwidth(id, Inv::Block(bid), payload);
        }
        if !matches!(verdict, Verdict::BadHeader(_) | Verdict::Malformed(_)) {
            // Shown, not proven: its proof of work checks, but it may be on an unknown or
            // invalid branch (and is free on devnet); only once stored does it count.
            if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
                p.shows(height);
            }
        }
        match verdict {
            Verdict::Ignore => {}
            Verdict::BadHeader(e) => self.punish(id, Misbehaviour::InvalidHeaders(e)),
            Verdict::Malformed(m) => self.punish(id, Misbehaviour::Protocol(m)),
            Verdict::Fallback => self.fetch_whole(id, bid),
            Verdict::Partial(partial) if partial.missing.is_empty() => {
                self.compact.lock().expect("never poisoned").stats.rebuilt_from_mempool += 1;
                self.compact_rebuilt(id, partial, Vec::new());
            }
            Verdict::Partial(partial) => {
                let indexes = partial.missing.clone();
                {
                    let mut st = self.compact.lock().expect("never poisoned");
                    st.stats.round_trips += 1;
                    st.hold(id, partial);
                }
                self.send(id, Message::GetBlockTxn { block: bid, indexes });
            }
        }
    }

    /// What a compact block leads to, and the payload to forward to high-bandwidth peers
    /// (`None` when it is not forwarded), and whether its parent is unknown.
    fn judge_compact(&self, cb: CompactBlock) -> (Verdict, Option<outbox::Payload>, bool) {
        let node = &self.node;
        if let Err(e) = ember_core::validate::check_header(&node.params, &cb.header) {
            return (Verdict::BadHeader(e.to_string()), None, false);
        }
        // An unknown parent is rebuilt all the same (and held in the orphan pool until its
        // parent comes): with blocks forwarded before validation, a block can overtake its
        // parent on a line of nodes.
        let orphan = match node
            .chain
            .lock()
            .expect("chain lock is never poisoned")
            .body_wanted(&cb.header)
        {
            None => true,
            Some(false) => return (Verdict::Ignore, None, false),
            Some(true) => false,
        };
        let max_txs = max_txs_for(node.params.max_block_bytes);
        let verdict = {
            let mp = node.mempool.lock().expect("mempool lock is never poisoned");
            match PartialBlock::new(&cb, max_txs, mp.with_txids()) {
                Ok(p) => Verdict::Partial(p),
                Err(CompactError::Collision) => Verdict::Fallback,
                Err(CompactError::Malformed(m)) => return (Verdict::Malformed(m), None, false),
            }
        };
        // Well formed, proof of work checked, extends our best chain: forwarded as it came
        // (its prefilled payments are what its sender predicted we lack, likely what our
        // peers lack too). An orphan is not: we cannot tell yet.
        let forward = (!orphan).then(|| outbox::payload(&Message::CmpctBlock(cb)));
        (verdict, forward, orphan)
    }

    pub(super) async fn on_block_txn(
        self: &Arc<Self>,
        id: u64,
        block: BlockId,
        txs: Vec<Transaction>,
    ) {
        let Some(mut partial) = self.compact.lock().expect("never poisoned").take(id, &block)
        else {
            // Not asked (or replaced by a newer block of the same peer): ignored.
            return;
        };
        let lacked = partial.missing.clone();
        if let Err(e) = partial.fill(txs) {
            self.punish(id, Misbehaviour::Protocol(e.to_string()));
            return;
        }
        let net = self.clone();
        self.blocking(move || net.compact_rebuilt(id, partial, lacked)).await
    }

    /// A partial block with nothing missing: checked against its header's root, then
    /// validated and connected, on the calling (blocking) thread.
    fn compact_rebuilt(&self, id: u64, partial: PartialBlock, lacked: Vec<u32>) {
        let bid = partial.id();
        let block = match partial.complete() {
            Some(Ok(block)) => block,
            // A short id matched the wrong payment, or the sender's payments are not the
            // block's: the whole block settles it.
            Some(Err(_)) | None => return self.fetch_whole(id, bid),
        };
        self.compact.lock().expect("never poisoned").stats.rebuilt += 1;
        self.judge_block(id, block, Some(lacked));
    }

    /// A block we just made, before we validate it: to every high-bandwidth peer as a
    /// compact block at once, and kept for their `GetBlockTxn`s.
    pub(super) fn announce_found(&self, block: &Block) {
        let block = Arc::new(block.clone());
        let cb = CompactBlock::build(&block, rand::random(), &[]);
        let payload = outbox::payload(&Message::CmpctBlock(cb));
        self.compact.lock().expect("never poisoned").remember(block.clone(), Vec::new());
        // Peer ids start at 1: 0 is nobody.
        self.forward_high_bandwidth(0, Inv::Block(block.id()), payload);
    }

    /// Sends a compact block (`payload`), before validating it, to every high-bandwidth
    /// peer but `from` that does not know it.
    fn forward_high_bandwidth(&self, from: u64, inv: Inv, payload: outbox::Payload) {
        let mut sent = 0;
        let mut slow = Vec::new();
        {
            let mut peers = self.peers.lock().expect("never poisoned");
            for (pid, p) in peers.iter_mut() {
                if *pid != from && p.cmpct == Some(true) && p.knows(inv) {
                    if p.outbox.gossip(payload.clone()) {
                        sent += 1;
                    } else {
                        slow.push(*pid);
                    }
                }
            }
        }
        self.compact.lock().expect("never poisoned").stats.sent += sent;
        for pid in slow {
            self.drop_peer(pid, super::disconnect::DisconnectReason::SlowReader);
        }
    }

    /// `block` was judged (stored or refused): peers waiting for it are answered.
    pub(super) fn compact_settled(&self, block: &BlockId) {
        if self.compact.lock().expect("never poisoned").settled(block) {
            self.compact_done.notify_waiters();
        }
    }

    /// Waits while `block` is one we forwarded before having it whole, until it is judged
    /// or [`FORWARDED_WAIT`] passed (then it is given up on: no later request waits).
    pub(super) async fn await_forwarded(&self, block: &BlockId) {
        let deadline = tokio::time::Instant::now() + FORWARDED_WAIT;
        loop {
            let notified = self.compact_done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.compact.lock().expect("never poisoned").pending(block) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                self.compact_settled(block);
                return;
            }
        }
    }

    /// Asks `id` for the whole block (BIP152's fallback).
    pub(super) fn fetch_whole(&self, id: u64, block: BlockId) {
        self.compact.lock().expect("never poisoned").stats.fallbacks += 1;
        self.send(id, Message::GetData(vec![Inv::Block(block)]));
    }

    /// `GetBlockTxn`: the payments of a recent or stored block at strictly ascending
    /// indexes inside it (so the answer is at most the block's size); anything else is a
    /// protocol violation. A block we do not have is answered with `NotFound`.
    pub(super) async fn on_get_block_txn(
        self: &Arc<Self>,
        id: u64,
        block: BlockId,
        indexes: Vec<u32>,
    ) {
        self.await_forwarded(&block).await;
        let recent = self.compact.lock().expect("never poisoned").recent(&block);
        let txs: Option<Vec<Transaction>> = match recent {
            Some((b, _)) => Some(b.txs.clone()),
            None => {
                let store = self.store.clone();
                self.blocking(move || match store.header(&block) {
                    Ok(Some(e)) if e.status == BlockStatus::BodyStored => {
                        store.body(&block).ok().flatten()
                    }
                    _ => None,
                })
                .await
            }
        };
        let Some(txs) = txs else {
            self.lacks(id, &[Inv::Block(block)]);
            self.send(id, Message::NotFound(vec![Inv::Block(block)]));
            return;
        };
        let ascending = indexes.windows(2).all(|w| w[0] < w[1]);
        if !ascending || indexes.last().is_some_and(|i| *i as usize >= txs.len()) {
            self.punish(
                id,
                Misbehaviour::Protocol(format!(
                    "getblocktxn indexes not ascending or past the block's {} payments",
                    txs.len()
                )),
            );
            return;
        }
        let picked = indexes.iter().map(|i| txs[*i as usize]).collect();
        self.reply(id, Message::BlockTxn { block, txs: picked }).await;
    }
}
