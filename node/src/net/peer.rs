//! One connection, from handshake to disconnect: the Noise handshake, `Version`/`Verack`,
//! then a reader (this task) and a writer (a task of its own). No chain access here: what a
//! message means is `handle`'s job, serving requests is `serve`'s.
//!
//! The reader `select!`s over: the next frame (only while the peer's request queue is
//! empty: a peer with requests pending is served, at the pace it reads, before anything
//! else it sent is read), serving the next queued request (only while the peer's reply
//! queue has room), the ping timer, and cancellation. The writer drains the peer's
//! [`Outbox`](super::outbox::Outbox), gossip first; a frame it cannot write within
//! `Timings::send_stall` means the peer stopped reading, and it is dropped.
//!
//! Blocks from a peer go through a short pipeline ([`BLOCK_PIPELINE`] deep): each one's
//! signatures are checked on the blocking pool as soon as it is read, and a task accepts
//! them in arrival order. The simulator handles everything in line, deterministically.

use super::disconnect::{DisconnectReason, Misbehaviour};
use super::headers::HeaderSync;
use super::outbox::Outbox;
use super::outbox::{self, OutboxReceiver};
use super::ping::{PingAction, Pinger};
use super::relay::KnownInventory;
use super::serve::Requests;
use super::transport::BoxStream;
use super::wire::Inv;
use super::wire::{self, Message, WireError};
use super::{secure, Network, BLOCK_PIPELINE};
use crate::chain::PreparedBlock;
use crate::node::now_ms;
use ember_core::BlockId;
use ember_core::U256;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::identity::NodeId;

pub(super) struct Peer {
    pub(super) addr: SocketAddr,
    pub(super) node_id: NodeId,
    pub(super) listen_addr: Option<SocketAddr>,
    pub(super) inbound: bool,
    pub(super) user_agent: String,
    /// The best height the peer has shown (by its handshake claim, headers, blocks).
    pub(super) height: u64,
    /// The best height it has proven: by headers or blocks it sent, or blocks it fetched
    /// from us (never by its claim). What readiness compares against.
    pub(super) proven: u64,
    /// Since when we wait for its answer to the locator sent at connect (an outbound peer
    /// that claimed more work than ours); `None` once any `Headers` came.
    pub(super) awaiting_headers: Option<Instant>,
    pub(super) work: U256,
    pub(super) outbox: Outbox,
    pub(super) cancel: CancellationToken,
    /// Why we closed it, when we did (its task logs it).
    pub(super) closing: Option<DisconnectReason>,
    pub(super) bytes_in: Arc<AtomicU64>,
    pub(super) bytes_out: Arc<AtomicU64>,
    /// The last ping round trip (set by the reader's [`Pinger`](super::ping::Pinger)).
    pub(super) latency_ms: Option<u64>,
    pub(super) ban_score: u32,
    pub(super) connected: Instant,
    /// Inventory the peer is known to have: not announced back to it.
    pub(super) known: KnownInventory,
    /// Blocks requested from it and not yet received: when they were asked for, and their
    /// heights.
    pub(super) in_flight: HashMap<BlockId, (Instant, u64)>,
    /// Blocks of `in_flight` whose first copy from it is being checked ahead (≤ 64 + the
    /// pipeline's 8): a second copy read before the first is judged is not checked again.
    pub(super) checking_ahead: HashSet<BlockId>,
    /// Blocks it failed to deliver in time: never asked of it again.
    pub(super) stalled: HashSet<BlockId>,
    /// When it last gave us a block we did not have (inbound eviction protects such peers).
    pub(super) last_block: Option<Instant>,
    /// Its presync and unconnecting count (the headers manager's state for it).
    pub(super) headers: HeaderSync,
    /// How it asked for new blocks (`SendCmpct`): `None` whole blocks, `Some(false)`
    /// compact blocks once validated, `Some(true)` compact blocks before validation.
    pub(super) cmpct: Option<bool>,
}

impl Peer {
    /// The peer has proven it holds a block at `height`: headers we stored, a block we
    /// validated and stored, or a block of ours it was sent. Only this raises what
    /// `GET /ready` weighs.
    pub(super) fn reached(&mut self, height: u64) {
        self.shows(height);
        self.proven = self.proven.max(height.min(MAX_CLAIMED_HEIGHT));
    }

    /// The peer sent something at `height` that is not proven yet (a block or compact block
    /// before validation, whose header's proof of work may be all it has): shown in
    /// `net_peers`, at most 2^53 - 1, never weighed by `GET /ready`.
    pub(super) fn shows(&mut self, height: u64) {
        self.height = self.height.max(height.min(MAX_CLAIMED_HEIGHT));
    }

    /// A peer just connected, with nothing learned of it yet beyond its key.
    pub(super) fn new(
        addr: SocketAddr,
        node_id: NodeId,
        inbound: bool,
        outbox: Outbox,
        cancel: CancellationToken,
    ) -> Peer {
        Peer {
            addr,
            node_id,
            listen_addr: None,
            inbound,
            user_agent: String::new(),
            height: 0,
            proven: 0,
            awaiting_headers: None,
            work: U256::zero(),
            outbox,
            cancel,
            closing: None,
            bytes_in: Arc::new(AtomicU64::new(0)),
            bytes_out: Arc::new(AtomicU64::new(0)),
            latency_ms: None,
            ban_score: 0,
            connected: Instant::now(),
            known: KnownInventory::default(),
            in_flight: HashMap::new(),
            checking_ahead: HashSet::new(),
            stalled: HashSet::new(),
            last_block: None,
            headers: HeaderSync::default(),
            cmpct: None,
        }
    }

    /// Remembers that the peer has `inv` (bounded: the set is forgotten when full).
    pub(super) fn knows(&mut self, inv: Inv) -> bool {
        self.known.insert(inv)
    }
}

/// The most a peer's claimed height is taken to be (2^53 - 1).
pub const MAX_CLAIMED_HEIGHT: u64 = (1 << 53) - 1;

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// After a completed handshake.
    Handshaked,
    /// In the handshake (refused, failed or timed out).
    Failed,
    /// In the handshake: the peer proved another node id than `ID@host:port` asked for.
    WrongKey,
}

/// A handshake slot of an inbound connection (see `connect::Handshaking`): given back
/// when the handshake ends; its token fires if the slot is taken for a newer connection.
pub struct Slot {
    pub id: u64,
    pub evicted: CancellationToken,
}

/// Runs one connection from handshake to disconnect; returns how it ended. `expected` is
/// the node id an `ID@host:port` peer must prove.
pub async fn run_peer(
    net: Arc<Network>,
    mut stream: BoxStream,
    addr: SocketAddr,
    inbound: bool,
    expected: Option<NodeId>,
    slot: Option<Slot>,
) -> Ended {
    let magic = net.magic;
    // Noise first (nothing of the peer is used before it proved its key and the network in
    // the prologue), then Version/Verack, encrypted: both sides send Version, check the
    // other's, then Verack.
    let handshake = async {
        // An `ID@` peer's key is checked before ours is revealed to it.
        let session = secure::handshake_expecting(
            &mut stream,
            magic,
            &net.prologue,
            &net.node.node_key,
            !inbound,
            expected,
        )
        .await?;
        let remote = session.remote;
        let (r, w) = tokio::io::split(stream);
        let (mut r, mut w) = session.split_with(r, w, net.mode);
        w.write_message(&Message::Version(net.our_version())).await?;
        let (msg, _) = r.read_message(wire::MAX_HANDSHAKE_FRAME).await?;
        let Message::Version(v) = msg else {
            return Err(WireError::Malformed(format!("expected version, got {}", msg.name())));
        };
        // A banned peer (by its IP, address, or the listening address it just told us) does
        // not get our Verack: the handshake never completes.
        let listen = (v.listen_port != 0).then(|| SocketAddr::new(addr.ip(), v.listen_port));
        if net.is_banned(addr, listen) {
            return Ok(None);
        }
        w.write_message(&Message::Verack).await?;
        let (msg, _) = r.read_message(wire::MAX_HANDSHAKE_FRAME).await?;
        if msg != Message::Verack {
            return Err(WireError::Malformed(format!("expected verack, got {}", msg.name())));
        }
        Ok(Some((v, remote, r, w)))
    };
    let evicted = slot.as_ref().map(|s| s.evicted.clone()).unwrap_or_default();
    let result = tokio::select! {
        r = tokio::time::timeout(net.timings.handshake, handshake) => Some(r),
        _ = evicted.cancelled() => None,
    };
    if let Some(s) = &slot {
        net.handshaking.lock().expect("never poisoned").done(s.id);
    }
    let (version, node_id, r, w) = match result {
        None => {
            tracing::debug!(peer = %addr, "handshake slot taken by a newer connection");
            return Ended::Failed;
        }
        Some(Ok(Ok(Some(x)))) => x,
        Some(Ok(Ok(None))) => {
            tracing::debug!(peer = %addr, "banned; refused before Verack");
            return Ended::Failed;
        }
        Some(Ok(Err(e @ WireError::UnexpectedNodeId { .. }))) => {
            tracing::warn!(peer = %addr, error = %e, "peer holds another key than --peer expects; refusing");
            return Ended::WrongKey;
        }
        Some(Ok(Err(e))) => {
            if e.is_misbehaviour() {
                tracing::info!(peer = %addr, error = %e, "handshake failed; banning the peer");
                let reason = Misbehaviour::Handshake(e.to_string()).to_string();
                net.ban_key(super::bans::ban_key(addr, None), &reason, net.timings.ban);
                if !inbound && matches!(e, WireError::Handshake(_)) {
                    // Another network, or no Ember node at all: not worth redialing.
                    net.addr_book.lock().expect("never poisoned").forget(&addr);
                }
            } else if matches!(e, WireError::Auth) {
                tracing::warn!(peer = %addr, error = %e, "handshake failed; disconnecting");
            } else {
                tracing::debug!(peer = %addr, error = %e, "handshake failed");
            }
            return Ended::Failed;
        }
        Some(Err(_)) => {
            tracing::debug!(peer = %addr, "handshake timed out");
            return Ended::Failed;
        }
    };
    if version.nonce == net.nonce {
        tracing::debug!(peer = %addr, "connected to ourselves; dropping");
        if !inbound {
            net.self_addrs.lock().expect("never poisoned").insert(addr);
            net.addr_book.lock().expect("never poisoned").forget(&addr);
        }
        return Ended::Failed;
    }
    if version.genesis != net.node.params.genesis_id() {
        tracing::info!(peer = %addr, genesis = %version.genesis, "peer is on another network; refusing");
        net.addr_book.lock().expect("never poisoned").forget(&addr);
        return Ended::Failed;
    }
    if version.protocol != wire::PROTOCOL_VERSION {
        // Kept in the address book: the same node may come back upgraded.
        tracing::warn!(
            peer = %addr,
            theirs = version.protocol,
            ours = wire::PROTOCOL_VERSION,
            "peer speaks another P2P protocol version; refusing (run the same ember-node \
             version on every node of a network)"
        );
        return Ended::Failed;
    }
    let listen_addr =
        (version.listen_port != 0).then(|| SocketAddr::new(addr.ip(), version.listen_port));
    if let Some(la) = listen_addr {
        // The same node already connected (both dialed each other): keep one connection.
        // Another node at that address (an IP handed to a new container while the old
        // connection lingers) is welcome.
        if inbound && net.is_connected_to_node(la, node_id) {
            return Ended::Failed;
        }
        net.addr_book.lock().expect("never poisoned").add(&[la], addr.ip(), now_ms());
    }
    if !inbound {
        net.addr_book.lock().expect("never poisoned").good(addr, now_ms());
    }
    if inbound && !net.make_inbound_room() {
        tracing::debug!(peer = %addr, "inbound slots full; refusing");
        return Ended::Failed;
    }

    let id = net.next_id.fetch_add(1, Ordering::Relaxed);
    let (out, rx) = outbox::outbox();
    let cancel = net.node.shutdown.child_token();
    let their_work = U256::from_big_endian(&version.best_work);
    // Whether it claims more work than ours is settled before it is listed, so that
    // `/ready` never sees the peer without its claim.
    let our_work = net.node.chain.lock().expect("chain lock is never poisoned").tip_work();
    let claims_more = their_work > our_work;
    if claims_more {
        net.claim_made(addr, listen_addr);
    }
    let peer = Peer {
        listen_addr,
        user_agent: version.user_agent.clone(),
        // A claim, not a proof: kept within what JSON numbers hold exactly (2^53 - 1), since
        // `net_peers` and `node_info.best_peer_height` show it.
        height: version.best_height.min(MAX_CLAIMED_HEIGHT),
        work: their_work,
        awaiting_headers: claims_more.then(Instant::now),
        ..Peer::new(addr, node_id, inbound, out, cancel.clone())
    };
    let (bytes_in, bytes_out) = (peer.bytes_in.clone(), peer.bytes_out.clone());
    net.peers.lock().expect("never poisoned").insert(id, peer);
    tracing::info!(
        peer = %addr, id, %node_id, inbound, height = version.best_height, "peer connected"
    );

    let writer = tokio::spawn(write_loop(net.clone(), id, w, rx, bytes_out, cancel.clone()));

    // Catch up if they claim more work; ask for addresses.
    if claims_more {
        let m = net.locator_message();
        net.send(id, m);
    }
    net.send(id, Message::GetAddr);
    net.compact_on_connect(id);
    // Our pending payments, to a peer we chose: what a restart restored from mempool.dat,
    // or what arrived while we had no peer, reaches the network (each peer fetches what it
    // lacks). At most the mempool's bound, in `MAX_INV` chunks; inbound peers, which anyone
    // can open, get only what is admitted from now on.
    if !inbound {
        let txids: Vec<Inv> = {
            let mp = net.node.mempool.lock().expect("mempool lock is never poisoned");
            mp.txids().map(Inv::Tx).collect()
        };
        if let Some(p) = net.peers.lock().expect("never poisoned").get_mut(&id) {
            for i in &txids {
                p.knows(*i);
            }
        }
        for chunk in txids.chunks(wire::MAX_INV) {
            net.send(id, Message::Inv(chunk.to_vec()));
        }
    }
    // Our reachable address, when it differs from what peers see (--external-addr): the
    // peer keeps it (keyed by its own view of us as the source) and gossips it on, as Core
    // advertises its local address.
    if let Some(ext) = net.node.config.external_addr {
        net.send(id, Message::Addr(vec![ext.to_string()]));
    }
    // Bodies we still miss (an unfinished sync before a restart) may be this peer's to give.
    net.request_blocks(id);

    read_loop(&net, id, r, &bytes_in, &cancel).await;

    cancel.cancel();
    let _ = writer.await;
    let removed = net.peers.lock().expect("never poisoned").remove(&id);
    net.compact.lock().expect("never poisoned").forget_peer(id);
    let reason = removed.as_ref().and_then(|p| p.closing.clone());
    tracing::info!(
        peer = %addr, id, reason = %reason.unwrap_or(DisconnectReason::Closed), "peer disconnected"
    );
    let owed = removed.map_or(0, |p| p.in_flight.len());
    if owed > 0 {
        // What it owed us is asked of the others.
        net.sync.lock().expect("never poisoned").stalled_requests += owed as u64;
        net.request_from_all();
    }
    Ended::Handshaked
}

/// A block's encoded size: header, count, and 184 bytes a payment.
fn block_bytes(block: &ember_core::Block) -> usize {
    128 + 8 + block.txs.len() * 184
}

/// Drains the peer's outbox onto the socket; a frame that cannot be written within the
/// send deadline drops the peer.
async fn write_loop<W: tokio::io::AsyncWrite + Unpin>(
    net: Arc<Network>,
    id: u64,
    mut w: secure::SecureWriter<W>,
    mut rx: OutboxReceiver,
    bytes_out: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    loop {
        let p = tokio::select! {
            p = rx.next() => match p { Some(p) => p, None => break },
            _ = cancel.cancelled() => break,
        };
        match tokio::time::timeout(net.timings.send_stall, w.write_payload(&p)).await {
            Ok(Ok(n)) => {
                bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            }
            Ok(Err(_)) => {
                net.drop_peer(id, DisconnectReason::Closed);
                break;
            }
            Err(_) => {
                net.drop_peer(id, DisconnectReason::StalledReader);
                break;
            }
        }
    }
    cancel.cancel();
}

/// Reads and handles the peer's messages, serves its requests, pings it; returns when the
/// connection is to end.
async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    net: &Arc<Network>,
    id: u64,
    mut r: secure::SecureReader<R>,
    bytes_in: &AtomicU64,
    cancel: &CancellationToken,
) {
    let pipelined = !net.transport.inline_blocking();
    let (import_tx, mut import_rx) =
        mpsc::channel::<tokio::task::JoinHandle<PreparedBlock>>(BLOCK_PIPELINE);
    let import_net = net.clone();
    let importer = tokio::spawn(async move {
        while let Some(checked) = import_rx.recv().await {
            let Ok(block) = checked.await else { break };
            import_net.on_block_from(id, block, None).await;
        }
    });
    let outbox = net.peers.lock().expect("never poisoned").get(&id).map(|p| p.outbox.clone());
    let Some(outbox) = outbox else { return };
    let mut requests = Requests::default();
    let mut ping = tokio::time::interval(net.timings.ping);
    ping.tick().await;
    let mut pinger = Pinger::new(net.timings.ping, Instant::now());
    loop {
        tokio::select! {
            _ = outbox.reply_room(), if !requests.is_empty() => {
                if let Some(inv) = requests.next() {
                    // Every wait below ends with the connection: a writer that gave up on
                    // a peer that stopped reading cancels it, and nothing may keep this
                    // task (and the peer's slot and socket) alive after that.
                    tokio::select! {
                        _ = net.serve_one(id, inv, &mut requests) => {}
                        _ = cancel.cancelled() => break,
                    }
                }
                if requests.is_empty() {
                    net.finish_requests(id, &mut requests);
                }
            }
            // Cancel-safe: a partly received frame stays in the reader.
            read = r.read_message(wire::MAX_FRAME), if requests.is_empty() => match read {
                Ok((msg, n)) => {
                    bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    pinger.heard(Instant::now());
                    match msg {
                        Message::GetData(items) => requests.push(items),
                        Message::Pong(nonce) => {
                            if let Some(rtt) = pinger.pong(nonce, Instant::now()) {
                                if let Some(p) = net.peers.lock().expect("never poisoned").get_mut(&id) {
                                    p.latency_ms = Some(rtt.as_millis() as u64);
                                }
                            }
                        }
                        Message::Block(block) if block_bytes(&block) > net.node.params.max_block_bytes => {
                            net.punish(id, Misbehaviour::Protocol(format!(
                                "block of {} bytes exceeds the {}-byte limit",
                                block_bytes(&block),
                                net.node.params.max_block_bytes
                            )));
                            break;
                        }
                        Message::Block(block) if pipelined => {
                            // Signatures are checked ahead only for a block we will
                            // validate (see `worth_verifying`).
                            let n = net.clone();
                            let checked = tokio::task::spawn_blocking(move || {
                                let worth = n.worth_verifying(id, &block.header);
                                let mut block = PreparedBlock::new(block);
                                // A body that is not its header's is refused without
                                // a signature check (see `verify_signatures`).
                                if worth && block.check_root().is_ok() {
                                    block.verify_signatures(&n.node.sig_cache);
                                    if block.signatures_valid() {
                                        let txs = block.block().txs.len() as u64;
                                        n.checked_ahead.fetch_add(txs, Ordering::Relaxed);
                                    }
                                }
                                block
                            });
                            // A full pipeline stops reading: back-pressure on the peer.
                            tokio::select! {
                                sent = import_tx.send(checked) => if sent.is_err() { break },
                                _ = cancel.cancelled() => break,
                            }
                        }
                        msg => tokio::select! {
                            _ = net.handle(id, msg) => {}
                            _ = cancel.cancelled() => break,
                        },
                    }
                }
                Err(WireError::Auth) => {
                    net.drop_peer(id, DisconnectReason::Auth);
                    break;
                }
                Err(e) if !e.is_misbehaviour() => break,
                Err(e) => {
                    net.punish(id, Misbehaviour::Protocol(e.to_string()));
                    break;
                }
            },
            _ = ping.tick() => match pinger.tick(Instant::now(), !requests.is_empty(), rand::random()) {
                PingAction::Send(nonce) => net.send(id, Message::Ping(nonce)),
                PingAction::Disconnect => {
                    net.drop_peer(id, DisconnectReason::Silent);
                    break;
                }
            },
            _ = cancel.cancelled() => break,
        }
    }
    // Blocks already read are still accepted (at most BLOCK_PIPELINE of them).
    drop(import_tx);
    let _ = importer.await;
}
