//! What each message from a peer does. Runs on the peer's reader task; what it sends goes
//! through the peer's outbox. Requests (`GetData`) are queued by the reader and served by
//! `serve`; headers go to `sync`.
//!
//! Only what a peer provably did wrong is punished ([`Misbehaviour`]): a transaction with a
//! bad signature or for another network, a block that breaks a rule its id commits to, a
//! body that does not match its header. A block that is only early by our clock, a
//! transaction that is merely stale (nonce used, fee too low, pool full), or an entry we do
//! not have are not.

use super::disconnect::Misbehaviour;
use super::wire::{self, Inv, Message};
use super::Network;
use crate::chain::{Accepted, ChainError, PreparedBlock};
use crate::mempool::MempoolError;
use crate::node::now_ms;
use crate::store::BlockStatus;
use ember_core::validate::TxError;
use std::net::SocketAddr;
use std::sync::Arc;

impl Network {
    /// Handles one message from peer `id` (a `GetData` is queued by the caller instead).
    pub(super) async fn handle(self: &Arc<Self>, id: u64, msg: Message) {
        match msg {
            Message::Ping(n) => self.reply(id, Message::Pong(n)).await,
            // The reader's `Pinger` takes a peer's `Pong`s (see `peer`).
            Message::Pong(_) => {}
            Message::GetAddr => self.serve_addresses(id).await,
            Message::Addr(list) => self.on_addr(id, list),
            Message::Inv(items) => self.on_inv(id, items).await,
            Message::GetData(items) => {
                // A peer's task queues these itself (see `serve`); a caller without a
                // request queue (the fuzz target) gets them served in order now.
                let mut q = super::serve::Requests::default();
                q.push(items);
                while let Some(inv) = q.next() {
                    self.serve_one(id, inv, &mut q).await;
                }
                self.finish_requests(id, &mut q);
            }
            Message::NotFound(items) => {
                let mut peers = self.peers.lock().expect("never poisoned");
                if let Some(p) = peers.get_mut(&id) {
                    let mut missing = Vec::new();
                    for i in items {
                        if let Inv::Block(b) = i {
                            if let Some((_, height)) = p.in_flight.remove(&b) {
                                // It does not have it: ask someone else (as a stall).
                                p.stalled.insert(b);
                                missing.push((b, height));
                            }
                        }
                    }
                    self.sync.lock().expect("never poisoned").stalled_requests +=
                        missing.len() as u64;
                    self.not_delivered(p, missing);
                }
            }
            Message::Tx(tx) => self.on_tx(id, tx).await,
            Message::Block(block) => self.on_block(id, block).await,
            Message::GetHeaders { locator, stop } => self.serve_headers(id, locator, stop).await,
            Message::Headers(headers) => self.on_headers(id, headers).await,
            Message::SendCmpct { high_bandwidth } => self.on_send_cmpct(id, high_bandwidth),
            Message::CmpctBlock(cb) => self.on_cmpct_block(id, cb).await,
            Message::GetBlockTxn { block, indexes } => {
                self.on_get_block_txn(id, block, indexes).await
            }
            Message::BlockTxn { block, txs } => self.on_block_txn(id, block, txs).await,
            Message::Version(_) | Message::Verack => self.punish(id, Misbehaviour::HandshakeAgain),
        }
    }

    /// Adds gossiped addresses to the new table, bucketed by the sender's address group
    /// (see `addrman`): one sender cannot push out what others taught us.
    fn on_addr(&self, id: u64, list: Vec<String>) {
        let Some(source) = self.peers.lock().expect("never poisoned").get(&id).map(|p| p.addr.ip())
        else {
            return;
        };
        let own = self.self_addrs.lock().expect("never poisoned").clone();
        // Unparseable entries are ignored, not punished: a newer peer may gossip address
        // forms this version does not know.
        let addrs: Vec<SocketAddr> = list
            .iter()
            .take(wire::MAX_ADDRS)
            .filter_map(|a| a.parse::<SocketAddr>().ok())
            .filter(|sa| sa.port() != 0 && !sa.ip().is_unspecified() && !own.contains(sa))
            .collect();
        self.addr_book.lock().expect("never poisoned").add(&addrs, source, now_ms());
    }

    /// Asks for what an announcement names that we lack. The checks read the mempool and
    /// the store (not the chain lock), on the blocking pool: at most [`wire::MAX_INV`]
    /// look-ups per message.
    async fn on_inv(self: &Arc<Self>, id: u64, items: Vec<Inv>) {
        {
            let mut peers = self.peers.lock().expect("never poisoned");
            if let Some(p) = peers.get_mut(&id) {
                for i in &items {
                    p.knows(*i);
                }
            }
        }
        let node = self.node.clone();
        let store = self.store.clone();
        let want: Vec<Inv> = self
            .blocking(move || {
                let mut seen = std::collections::HashSet::new();
                items
                    .into_iter()
                    .filter(|i| seen.insert(*i))
                    .filter(|i| match i {
                        Inv::Tx(t) => {
                            !node
                                .mempool
                                .lock()
                                .expect("mempool lock is never poisoned")
                                .contains(t)
                                && store.tx_location(t).ok().flatten().is_none()
                        }
                        Inv::Block(b) => store
                            .header(b)
                            .ok()
                            .flatten()
                            .is_none_or(|e| e.status == BlockStatus::HeaderOnly),
                    })
                    .collect()
            })
            .await;
        if !want.is_empty() {
            self.send(id, Message::GetData(want));
        }
    }

    async fn on_tx(self: &Arc<Self>, id: u64, tx: ember_core::Transaction) {
        let txid = tx.txid();
        if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
            p.knows(Inv::Tx(txid));
        }
        let node = self.node.clone();
        // Stale (nonce used, fee too low, pool full) is nobody's fault; invalid is.
        if let Err(
            e @ MempoolError::Tx(
                TxError::BadSignature(_) | TxError::WrongChain { .. } | TxError::CostOverflow,
            ),
        ) = self.blocking(move || node.submit_tx_blocking(tx)).await
        {
            self.punish(id, Misbehaviour::InvalidTransaction(e.to_string()));
        }
    }

    /// Whether peer `id`'s block with this header will be validated (so its signatures are
    /// worth checking ahead): valid proof of work, and either asked of this peer and the
    /// first copy of it read (a body we lack, its header already indexed: every block of a
    /// sync; a second copy is judged a duplicate for free) or, pushed unasked, not known
    /// itself with its parent known and more work than the best header (see `on_block`).
    /// An asked-for block is decided without the chain lock, which a connecting block holds.
    pub(super) fn worth_verifying(&self, id: u64, header: &ember_core::BlockHeader) -> bool {
        if ember_core::validate::check_header(&self.node.params, header).is_err() {
            return false;
        }
        let bid = header.id();
        let requested = self
            .peers
            .lock()
            .expect("never poisoned")
            .get_mut(&id)
            .is_some_and(|p| p.in_flight.contains_key(&bid) && p.checking_ahead.insert(bid));
        requested
            || self
                .node
                .chain
                .lock()
                .expect("chain lock is never poisoned")
                .would_improve_best(header)
                == Some(true)
    }

    pub(super) async fn on_block(self: &Arc<Self>, id: u64, block: ember_core::Block) {
        self.on_block_from(id, PreparedBlock::new(block), None).await
    }

    /// A block from peer `id`, whole or rebuilt from a compact block (`rebuilt`: the indexes
    /// we lacked and fetched). A
    /// rebuilt block that fails validation is not held against the peer: in
    /// high-bandwidth mode it relays blocks before validating them (BIP152; Core's
    /// `MaybePunishNodeForBlock` with `via_compact_block`).
    pub(super) async fn on_block_from(
        self: &Arc<Self>,
        id: u64,
        block: PreparedBlock,
        rebuilt: Option<Vec<u32>>,
    ) {
        let net = self.clone();
        self.blocking(move || net.judge_block(id, block, rebuilt)).await
    }

    /// [`Network::on_block_from`] on the calling (blocking) thread: validation and
    /// connection included.
    pub(super) fn judge_block(&self, id: u64, block: PreparedBlock, rebuilt: Option<Vec<u32>>) {
        let via_compact = rebuilt.is_some();
        let bid = block.id();
        let height = block.block().header.height;
        let requested = match self.peers.lock().expect("never poisoned").get_mut(&id) {
            Some(p) => {
                p.knows(Inv::Block(bid));
                // Shown only: proven once it is validated and stored (below).
                p.shows(height);
                p.checking_ahead.remove(&bid);
                p.in_flight.remove(&bid).is_some()
            }
            None => false,
        };
        if !requested {
            // A block pushed to us is worth storing only if it makes a better chain than
            // the best we know: a side block behind it (free to make on devnet) would be
            // held for ever. A block that loses a race is asked for again through headers
            // if its branch ever gets ahead.
            let chain = self.node.chain.lock().expect("chain lock is never poisoned");
            if chain.would_improve_best(&block.block().header) == Some(false) {
                drop(chain);
                tracing::debug!(block = %bid, "pushed block behind the best chain; not stored");
                self.compact_settled(&bid);
                return;
            }
        }
        let shared = rebuilt.map(|lacked| (block.block().clone(), lacked));
        let result = self.node.accept_prepared(block);
        if let (Some((block, lacked)), Ok(Accepted::NewTip { .. } | Accepted::SideChain)) =
            (shared, &result)
        {
            // Kept for `GetBlockTxn` answers (and the payments we lacked, prefilled when we
            // relay it) only once validated: a copy refused as bad (a payment with a
            // tampered signature in the sender's `BlockTxn`) or not judged yet (an orphan,
            // a block behind the best header) is never served; the store answers for a
            // block stored since.
            self.compact.lock().expect("never poisoned").remember(block, lacked);
        }
        // Judged: peers waiting for a block we forwarded before having it get their answer.
        self.compact_settled(&bid);
        match result {
            Ok(Accepted::Orphan) => {
                // We lack its ancestors: sync headers from this peer.
                let m = self.locator_message();
                self.send(id, m);
            }
            Ok(accepted) => {
                self.undelivered.lock().expect("never poisoned").delivered(&bid);
                if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
                    // Valid and stored (or already was): the peer holds a block at that
                    // height.
                    p.reached(height);
                    if matches!(accepted, Accepted::NewTip { .. } | Accepted::SideChain) {
                        p.last_block = Some(tokio::time::Instant::now());
                    }
                }
                if matches!(accepted, Accepted::NewTip { .. }) {
                    self.compact_promote(id);
                }
                self.request_blocks(id)
            }
            // Only early by our clock (a relaying peer's clock may run a little fast): not
            // recorded, not the sender's fault; it may be sent again later.
            Err(ChainError::Invalid { error, .. }) if error.is_temporary() => {
                tracing::debug!(block = %bid, %error, "block not accepted yet");
            }
            Err(e @ ChainError::BadCopy { .. }) if via_compact => {
                // The payments we were sent are not the block's (BIP152: fall back to the
                // whole block); the id is not condemned, so a valid copy is still welcome.
                tracing::info!(peer = id, block = %bid, error = %e, "compact block rebuilt wrongly (not the relayer's fault); asking for the whole block");
                self.fetch_whole(id, bid);
            }
            Err(e @ (ChainError::Invalid { .. } | ChainError::KnownInvalid(_))) if via_compact => {
                tracing::info!(peer = id, block = %bid, error = %e, "compact block refused (not the relayer's fault)");
            }
            Err(e @ (ChainError::Invalid { .. } | ChainError::KnownInvalid(_))) => {
                self.punish(id, Misbehaviour::InvalidBlock(e.to_string()))
            }
            Err(ChainError::BadCopy { .. }) => self.punish(id, Misbehaviour::BadBlockCopy),
            Err(e) => tracing::debug!(block = %bid, error = %e, "block not accepted"),
        }
    }
}
