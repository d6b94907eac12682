//! Peer-to-peer networking: connections, handshake, relay, header-first sync and bans.
//!
//! One task per connection ([`run_peer`]): it runs the Noise handshake ([`secure`]), which
//! proves both nodes' static keys ([`identity`]) and encrypts everything after it, then the
//! Ember handshake (`Version`/`Verack`), then `select!`s over the connection, its bounded
//! outbound queue and a ping timer. Messages are handled in [`Network::handle`], which
//! reaches the chain and mempool only through [`Node`]. Gossip never blocks: messages to a
//! peer go through `try_send`, and a peer whose queue is full is too slow and is dropped.
//!
//! Relay: a new tip's blocks are pushed in full to every peer at once (one round trip per
//! hop); transactions are announced by inventory in batches every 100 ms. Sync: after the
//! handshake, and whenever a peer shows more work or sends a block whose parent we lack,
//! we ask it for headers from our block locator, validate them, then fetch the bodies.
//!
//! Misbehaviour (a malformed or oversized frame, a failed Noise handshake, a wrong network,
//! an invalid block or transaction signature) disconnects the peer and bans its address for
//! a while, with the reason kept (`net_bans`). Bans key on the peer's listening address when
//! it told us one, so that distinct nodes sharing an IP (as on a loopback testnet) are told
//! apart; not on node ids, which cost nothing to make. A frame that fails authentication
//! after the handshake closes the connection without a ban (see
//! [`wire::WireError::is_misbehaviour`]).

mod addrbook;
pub mod identity;
pub mod secure;
pub mod transport;
pub mod wire;

use crate::chain::{Accepted, ChainError};
use crate::node::{now_ms, Node};
use crate::store::KvStore;
use addrbook::AddrBook;
use ember_core::{BlockId, U256};
use identity::{NodeId, PeerTarget};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use transport::{BoxStream, TcpTransport, Transport};
use wire::{Inv, Message, Version, WireError};

/// Outbound queue length per peer; a peer that lets it fill up is dropped.
const PEER_QUEUE: usize = 512;
/// Block bodies requested from one peer at a time.
const MAX_BLOCKS_IN_FLIGHT: usize = 64;
/// Blocks of one peer whose signatures are checked ahead of their turn to be connected.
const BLOCK_PIPELINE: usize = 8;
/// Addresses kept in the address book.
const ADDR_BOOK_SIZE: usize = 1_000;

/// The network's timeouts and periods. Production uses [`Timings::default`]; the simulator
/// shortens them so that simulated minutes stay cheap.
#[derive(Debug, Clone)]
pub struct Timings {
    /// How long the handshake may take.
    pub handshake: Duration,
    /// How long an outbound connect may take.
    pub connect: Duration,
    /// Ping interval; a peer silent for three intervals is dropped.
    pub ping: Duration,
    /// A block requested and not received within this time is asked of another peer.
    pub stall: Duration,
    /// How often the housekeeping runs (stalls, discovery, sync progress).
    pub housekeeping: Duration,
    /// How often sync progress is logged while syncing.
    pub progress_log: Duration,
    /// How long a misbehaving peer stays banned.
    pub ban: Duration,
    /// Longest wait between reconnect attempts to a --peer.
    pub max_backoff: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            handshake: Duration::from_secs(10),
            connect: Duration::from_secs(5),
            ping: Duration::from_secs(15),
            stall: Duration::from_secs(10),
            housekeeping: Duration::from_secs(1),
            progress_log: Duration::from_secs(5),
            ban: Duration::from_secs(600),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Where the node stands in catching up with its peers (`node_info.sync`, metrics, logs).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncStatus {
    /// Whether a peer or a known header chain is ahead of our tip.
    pub syncing: bool,
    pub height: u64,
    /// The best height known from peers and from validated headers.
    pub target_height: u64,
    /// Blocks connected per second (smoothed over the last seconds).
    pub blocks_per_sec: f64,
    /// Seconds to reach the target at the current rate, when syncing and moving.
    pub eta_secs: Option<u64>,
    /// Block requests that timed out or were refused and went to another peer, in all.
    pub stalled_requests: u64,
}

/// A ban with its reason.
#[derive(Debug, Clone, Serialize)]
pub struct Ban {
    pub address: String,
    pub reason: String,
    /// Unix ms when the ban ends.
    pub until_ms: u64,
}

/// What `net_peers` shows of a peer.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub id: u64,
    /// The static key the peer proved in the Noise handshake.
    pub node_id: String,
    pub address: String,
    pub listen_address: Option<String>,
    pub direction: &'static str,
    pub user_agent: String,
    pub height: u64,
    pub latency_ms: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub ban_score: u32,
    pub connected_secs: u64,
}

struct Peer {
    addr: SocketAddr,
    node_id: NodeId,
    listen_addr: Option<SocketAddr>,
    inbound: bool,
    user_agent: String,
    height: u64,
    work: U256,
    tx: mpsc::Sender<Message>,
    cancel: CancellationToken,
    bytes_in: Arc<AtomicU64>,
    bytes_out: Arc<AtomicU64>,
    latency_ms: Option<u64>,
    ping_sent: Option<(u64, Instant)>,
    ban_score: u32,
    connected: Instant,
    /// Inventory the peer is known to have: not announced back to it.
    known: HashSet<Inv>,
    /// Blocks requested from it and not yet received, with when they were asked for.
    in_flight: HashMap<BlockId, Instant>,
    /// Blocks it failed to deliver in time: never asked of it again.
    stalled: HashSet<BlockId>,
}

impl Peer {
    /// A peer just connected, with nothing learned of it yet beyond its key.
    fn new(
        addr: SocketAddr,
        node_id: NodeId,
        inbound: bool,
        tx: mpsc::Sender<Message>,
        cancel: CancellationToken,
    ) -> Peer {
        Peer {
            addr,
            node_id,
            listen_addr: None,
            inbound,
            user_agent: String::new(),
            height: 0,
            work: U256::zero(),
            tx,
            cancel,
            bytes_in: Arc::new(AtomicU64::new(0)),
            bytes_out: Arc::new(AtomicU64::new(0)),
            latency_ms: None,
            ping_sent: None,
            ban_score: 0,
            connected: Instant::now(),
            known: HashSet::new(),
            in_flight: HashMap::new(),
            stalled: HashSet::new(),
        }
    }
}

/// The P2P side of a node.
pub struct Network {
    node: Arc<Node>,
    transport: Arc<dyn Transport>,
    timings: Timings,
    magic: [u8; 4],
    /// The Noise prologue: protocol name (and frame mode), magic and genesis.
    prologue: Vec<u8>,
    /// Encrypted frames, or (devnet benchmarks) plaintext ones.
    mode: secure::FrameMode,
    nonce: u64,
    listen_port: Mutex<u16>,
    peers: Mutex<HashMap<u64, Peer>>,
    bans: Mutex<HashMap<String, Ban>>,
    addr_book: Mutex<AddrBook>,
    /// Addresses that turned out to be this node itself.
    self_addrs: Mutex<HashSet<SocketAddr>>,
    /// Addresses with a connection attempt under way (persistent --peer loops included).
    dialing: Mutex<HashSet<SocketAddr>>,
    next_id: AtomicU64,
    tx_queue: Mutex<Vec<ember_core::Txid>>,
    sync: Mutex<SyncStatus>,
}

impl Network {
    /// The production network: tokio TCP and the default timings.
    pub fn new(node: Arc<Node>) -> Arc<Network> {
        Self::with_transport(node, Arc::new(TcpTransport), Timings::default())
    }

    /// A network over any transport (the simulator's, in tests).
    pub fn with_transport(
        node: Arc<Node>,
        transport: Arc<dyn Transport>,
        timings: Timings,
    ) -> Arc<Network> {
        let kv: Arc<dyn KvStore> =
            node.chain.lock().expect("chain lock is never poisoned").store().kv().clone();
        let addr_book = AddrBook::load(kv, ADDR_BOOK_SIZE);
        let mode = if node.config.p2p_plaintext {
            tracing::warn!(
                "--insecure-p2p-plaintext: peer traffic is neither encrypted nor authenticated"
            );
            secure::FrameMode::Plaintext
        } else {
            secure::FrameMode::Encrypted
        };
        Arc::new(Network {
            magic: node.params.magic,
            prologue: secure::prologue(node.params.magic, node.params.genesis_id(), mode),
            mode,
            nonce: rand::random(),
            node,
            transport,
            timings,
            listen_port: Mutex::new(0),
            peers: Mutex::new(HashMap::new()),
            bans: Mutex::new(HashMap::new()),
            addr_book: Mutex::new(addr_book),
            self_addrs: Mutex::new(HashSet::new()),
            dialing: Mutex::new(HashSet::new()),
            next_id: AtomicU64::new(1),
            tx_queue: Mutex::new(Vec::new()),
            sync: Mutex::new(SyncStatus::default()),
        })
    }

    /// Runs CPU-heavy work (block and transaction validation) off the async threads, or
    /// inline when the transport asks for it (the simulator).
    async fn blocking<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        if self.transport.inline_blocking() {
            f()
        } else {
            tokio::task::spawn_blocking(f).await.expect("network validation task panicked")
        }
    }

    /// The node's sync progress.
    pub fn sync_status(&self) -> SyncStatus {
        self.sync.lock().expect("never poisoned").clone()
    }

    /// Addresses in the address book.
    pub fn known_addresses(&self) -> Vec<SocketAddr> {
        self.addr_book.lock().expect("never poisoned").addresses()
    }

    /// Binds the P2P listener and starts the accept loop, relay tasks and outbound peers.
    pub async fn start(
        self: &Arc<Self>,
        listen: SocketAddr,
        peers: &[String],
    ) -> anyhow::Result<SocketAddr> {
        let listener = self
            .transport
            .bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen for peers on {listen}: {e}"))?;
        let local = listener.local_addr()?;
        *self.listen_port.lock().expect("never poisoned") = local.port();
        let net = self.clone();
        tokio::spawn(async move { net.accept_loop(listener).await });
        let net = self.clone();
        tokio::spawn(async move { net.relay_blocks().await });
        let net = self.clone();
        tokio::spawn(async move { net.relay_txs().await });
        let net = self.clone();
        tokio::spawn(async move { net.housekeeping().await });
        for p in peers {
            self.add_peer(p)?;
        }
        Ok(local)
    }

    /// This node's id: the public half of its static key.
    pub fn node_id(&self) -> NodeId {
        self.node.node_key.id()
    }

    /// Starts a persistent outbound connection (reconnecting with back-off) to `ip:port`,
    /// or to `ID@ip:port`, which also refuses a peer that proves another node id.
    pub fn add_peer(self: &Arc<Self>, target: &str) -> anyhow::Result<()> {
        let PeerTarget { addr, expected } = target.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        if !self.dialing.lock().expect("never poisoned").insert(addr) {
            anyhow::bail!("already connecting to {addr}");
        }
        let net = self.clone();
        tokio::spawn(async move { net.outbound_loop(addr, expected).await });
        Ok(())
    }

    /// One outbound connection attempt, run until it closes. `None` when no connection
    /// was made; otherwise how it ended.
    async fn dial(self: &Arc<Self>, addr: SocketAddr, expected: Option<NodeId>) -> Option<Ended> {
        let connect = tokio::time::timeout(self.timings.connect, self.transport.connect(addr));
        match connect.await {
            Ok(Ok(stream)) => Some(run_peer(self.clone(), stream, addr, false, expected).await),
            Ok(Err(e)) => {
                tracing::debug!(peer = %addr, error = %e, "connect failed");
                None
            }
            Err(_) => {
                tracing::debug!(peer = %addr, "connect timed out");
                None
            }
        }
    }

    /// Keeps a connection to a --peer address, reconnecting with exponential back-off.
    async fn outbound_loop(self: Arc<Self>, addr: SocketAddr, expected: Option<NodeId>) {
        let mut backoff = Duration::from_millis(250);
        loop {
            if self.node.shutdown.is_cancelled() {
                return;
            }
            if self.is_banned(&addr.to_string())
                || self.is_connected_to(addr)
                || self.self_addrs.lock().expect("never poisoned").contains(&addr)
            {
                // Wait out the ban, or leave the existing connection alone.
            } else {
                match self.dial(addr, expected).await {
                    // Someone else holds the address: keep backing off (and logging less).
                    Some(Ended::WrongKey) | None => {}
                    // The address answers: retry soon (a link that was cut comes back fast).
                    Some(Ended::Handshaked | Ended::Failed) => {
                        backoff = Duration::from_millis(250);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.node.shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(self.timings.max_backoff);
        }
    }

    async fn accept_loop(self: Arc<Self>, mut listener: Box<dyn transport::PeerListener>) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = self.node.shutdown.cancelled() => return,
            };
            let (stream, addr) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let inbound =
                self.peers.lock().expect("never poisoned").values().filter(|p| p.inbound).count();
            if inbound >= self.node.config.max_inbound {
                tracing::debug!(peer = %addr, "inbound limit reached; refusing");
                continue;
            }
            tokio::spawn(run_peer(self.clone(), stream, addr, true, None));
        }
    }

    fn is_connected_to(&self, addr: SocketAddr) -> bool {
        self.peers
            .lock()
            .expect("never poisoned")
            .values()
            .any(|p| p.addr == addr || p.listen_addr == Some(addr))
    }

    fn is_banned(&self, key: &str) -> bool {
        let mut bans = self.bans.lock().expect("never poisoned");
        match bans.get(key) {
            Some(b) if b.until_ms > now_ms() => true,
            Some(_) => {
                bans.remove(key);
                false
            }
            None => false,
        }
    }

    /// Disconnects a peer and bans its (listening) address with a reason.
    fn punish(&self, id: u64, reason: String) {
        let key = {
            let peers = self.peers.lock().expect("never poisoned");
            let Some(p) = peers.get(&id) else { return };
            p.cancel.cancel();
            p.listen_addr.unwrap_or(p.addr).to_string()
        };
        tracing::warn!(peer = %key, %reason, "banning misbehaving peer");
        self.ban(key, reason, self.timings.ban);
    }

    pub fn ban(&self, address: String, reason: String, duration: Duration) {
        let until_ms = now_ms() + duration.as_millis() as u64;
        {
            let peers = self.peers.lock().expect("never poisoned");
            for p in peers.values() {
                if p.addr.to_string() == address
                    || p.listen_addr.map(|a| a.to_string()) == Some(address.clone())
                {
                    p.cancel.cancel();
                }
            }
        }
        self.bans
            .lock()
            .expect("never poisoned")
            .insert(address.clone(), Ban { address, reason, until_ms });
    }

    pub fn unban(&self, address: &str) -> bool {
        self.bans.lock().expect("never poisoned").remove(address).is_some()
    }

    pub fn bans(&self) -> Vec<Ban> {
        let now = now_ms();
        self.bans
            .lock()
            .expect("never poisoned")
            .values()
            .filter(|b| b.until_ms > now)
            .cloned()
            .collect()
    }

    /// Disconnects a peer by connection id, address or node id; returns whether one matched.
    pub fn disconnect(&self, target: &str) -> bool {
        let peers = self.peers.lock().expect("never poisoned");
        let mut hit = false;
        for (id, p) in peers.iter() {
            if id.to_string() == target
                || p.node_id.to_string() == target
                || p.addr.to_string() == target
                || p.listen_addr.map(|a| a.to_string()).as_deref() == Some(target)
            {
                p.cancel.cancel();
                hit = true;
            }
        }
        hit
    }

    pub fn peer_count(&self) -> usize {
        self.peers.lock().expect("never poisoned").len()
    }

    /// Best height any peer reported (for "syncing").
    pub fn best_peer_height(&self) -> u64 {
        self.peers.lock().expect("never poisoned").values().map(|p| p.height).max().unwrap_or(0)
    }

    /// Most cumulative work any peer reported at its handshake.
    pub fn best_peer_work(&self) -> U256 {
        self.peers
            .lock()
            .expect("never poisoned")
            .values()
            .map(|p| p.work)
            .max()
            .unwrap_or_default()
    }

    pub fn peers(&self) -> Vec<PeerView> {
        let peers = self.peers.lock().expect("never poisoned");
        let mut out: Vec<PeerView> = peers
            .iter()
            .map(|(id, p)| PeerView {
                id: *id,
                node_id: p.node_id.to_string(),
                address: p.addr.to_string(),
                listen_address: p.listen_addr.map(|a| a.to_string()),
                direction: if p.inbound { "inbound" } else { "outbound" },
                user_agent: p.user_agent.clone(),
                height: p.height,
                latency_ms: p.latency_ms,
                bytes_in: p.bytes_in.load(Ordering::Relaxed),
                bytes_out: p.bytes_out.load(Ordering::Relaxed),
                ban_score: p.ban_score,
                connected_secs: p.connected.elapsed().as_secs(),
            })
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }

    /// Queues what the peer itself asked for (a `GetData` of up to `MAX_INV` items), waiting
    /// for room (beyond a reserve for gossip): a big request from an honest peer (e.g. 1,000 payments announced at once)
    /// must not overflow its queue and get it dropped as slow. Waiting pauses only this
    /// peer's reader; its writer is a task of its own, and a cancelled peer ends the wait.
    async fn reply(&self, id: u64, msgs: Vec<Message>) {
        let queue = self.peers.lock().expect("never poisoned").get(&id).map(|p| p.tx.clone());
        let Some(queue) = queue else { return };
        for m in msgs {
            // Leave a quarter of the queue to gossip, which never waits and drops a peer
            // whose queue is full: replies filling it to the brim would get the peer dropped
            // by the next announcement.
            while queue.capacity() < PEER_QUEUE / 4 {
                if queue.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            if queue.send(m).await.is_err() {
                break;
            }
        }
    }

    /// Queues a message to one peer without waiting; a full queue drops the peer.
    fn send(&self, id: u64, msg: Message) {
        let peers = self.peers.lock().expect("never poisoned");
        if let Some(p) = peers.get(&id) {
            if p.tx.try_send(msg).is_err() {
                tracing::info!(peer = %p.addr, "peer too slow (queue full); disconnecting");
                p.cancel.cancel();
            }
        }
    }

    fn our_version(&self) -> Version {
        let chain = self.node.chain.lock().expect("chain lock is never poisoned");
        Version {
            protocol: wire::PROTOCOL_VERSION,
            genesis: self.node.params.genesis_id(),
            best_height: chain.height(),
            best_work: chain.tip_work().to_big_endian(),
            listen_port: *self.listen_port.lock().expect("never poisoned"),
            user_agent: format!("ember-node/{}", env!("CARGO_PKG_VERSION")),
            nonce: self.nonce,
        }
    }

    fn locator_message(&self) -> Message {
        let chain = self.node.chain.lock().expect("chain lock is never poisoned");
        let locator = chain.locator().unwrap_or_else(|_| vec![self.node.params.genesis_id()]);
        Message::GetHeaders { locator, stop: BlockId::ZERO }
    }

    /// Pushes every newly connected block to all peers at once (or, after a long sync or
    /// reorg, announces only the tip so peers fetch what they lack).
    async fn relay_blocks(self: Arc<Self>) {
        let mut rx = self.node.events.subscribe();
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = self.node.shutdown.cancelled() => return,
            };
            let ev = match ev {
                Ok(ev) => ev,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            };
            let ids: Vec<u64> =
                self.peers.lock().expect("never poisoned").keys().copied().collect();
            let push: Vec<_> =
                if ev.connected.len() <= 4 { ev.connected.clone() } else { Vec::new() };
            for id in ids {
                let mut msgs = Vec::new();
                {
                    let mut peers = self.peers.lock().expect("never poisoned");
                    let Some(p) = peers.get_mut(&id) else { continue };
                    for b in &push {
                        if p.known.insert(Inv::Block(b.id())) {
                            msgs.push(Message::Block((**b).clone()));
                        }
                    }
                    if push.is_empty() && p.known.insert(Inv::Block(ev.tip)) {
                        msgs.push(Message::Inv(vec![Inv::Block(ev.tip)]));
                    }
                }
                for m in msgs {
                    self.send(id, m);
                }
            }
        }
    }

    /// Announces admitted transactions in batches every 100 ms.
    async fn relay_txs(self: Arc<Self>) {
        let mut rx = self.node.new_txs.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                t = rx.recv() => match t {
                    Ok(txid) => self.tx_queue.lock().expect("never poisoned").push(txid),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
                _ = tick.tick() => self.flush_tx_announcements(),
                _ = self.node.shutdown.cancelled() => return,
            }
        }
    }

    fn flush_tx_announcements(&self) {
        let batch: Vec<ember_core::Txid> =
            std::mem::take(&mut *self.tx_queue.lock().expect("never poisoned"));
        if batch.is_empty() {
            return;
        }
        let mut peers = self.peers.lock().expect("never poisoned");
        for p in peers.values_mut() {
            let inv: Vec<Inv> =
                batch.iter().map(|t| Inv::Tx(*t)).filter(|i| p.known.insert(*i)).collect();
            if !inv.is_empty() {
                for chunk in inv.chunks(wire::MAX_INV) {
                    if p.tx.try_send(Message::Inv(chunk.to_vec())).is_err() {
                        tracing::info!(peer = %p.addr, "peer too slow (queue full); disconnecting");
                        p.cancel.cancel();
                    }
                }
            }
            if p.known.len() > 100_000 {
                p.known.clear();
            }
        }
    }

    /// Handles one message from peer `id`.
    async fn handle(self: &Arc<Self>, id: u64, msg: Message) {
        match msg {
            Message::Ping(n) => self.send(id, Message::Pong(n)),
            Message::Pong(n) => {
                let mut peers = self.peers.lock().expect("never poisoned");
                if let Some(p) = peers.get_mut(&id) {
                    if let Some((sent, at)) = p.ping_sent {
                        if sent == n {
                            p.latency_ms = Some(at.elapsed().as_millis() as u64);
                            p.ping_sent = None;
                        }
                    }
                }
            }
            Message::GetAddr => {
                let addrs: Vec<String> = self
                    .addr_book
                    .lock()
                    .expect("never poisoned")
                    .addresses()
                    .into_iter()
                    .take(wire::MAX_ADDRS)
                    .map(|a| a.to_string())
                    .collect();
                self.send(id, Message::Addr(addrs));
            }
            Message::Addr(list) => {
                let own = self.self_addrs.lock().expect("never poisoned").clone();
                let mut book = self.addr_book.lock().expect("never poisoned");
                for a in list.iter().take(wire::MAX_ADDRS) {
                    // Unparseable entries are ignored, not punished: a newer peer may
                    // gossip address forms this version does not know.
                    if let Ok(sa) = a.parse::<SocketAddr>() {
                        if sa.port() != 0 && !sa.ip().is_unspecified() && !own.contains(&sa) {
                            book.learn(sa, now_ms());
                        }
                    }
                }
            }
            Message::Inv(items) => {
                let want: Vec<Inv> = {
                    let chain = self.node.chain.lock().expect("chain lock is never poisoned");
                    let mp = self.node.mempool.lock().expect("mempool lock is never poisoned");
                    let mut peers = self.peers.lock().expect("never poisoned");
                    let peer = peers.get_mut(&id);
                    let mut want = Vec::new();
                    let mut known = Vec::new();
                    for i in items {
                        known.push(i);
                        let have = match i {
                            Inv::Tx(t) => {
                                mp.contains(&t)
                                    || chain.store().tx_location(&t).ok().flatten().is_some()
                            }
                            Inv::Block(b) => chain
                                .entry(&b)
                                .is_some_and(|e| e.status != crate::store::BlockStatus::HeaderOnly),
                        };
                        if !have {
                            want.push(i);
                        }
                    }
                    if let Some(p) = peer {
                        p.known.extend(known);
                    }
                    want
                };
                if !want.is_empty() {
                    self.send(id, Message::GetData(want));
                }
            }
            Message::GetData(items) => {
                let mut missing = Vec::new();
                let mut replies = Vec::new();
                {
                    let chain = self.node.chain.lock().expect("chain lock is never poisoned");
                    let mp = self.node.mempool.lock().expect("mempool lock is never poisoned");
                    for i in items {
                        match i {
                            Inv::Tx(t) => match mp.get(&t) {
                                Some(tx) => replies.push(Message::Tx(*tx)),
                                None => missing.push(i),
                            },
                            Inv::Block(b) => match chain.block(&b).ok().flatten() {
                                Some(block) => replies.push(Message::Block(block)),
                                None => missing.push(i),
                            },
                        }
                    }
                }
                self.reply(id, replies).await;
                if !missing.is_empty() {
                    self.send(id, Message::NotFound(missing));
                }
            }
            Message::NotFound(items) => {
                let mut peers = self.peers.lock().expect("never poisoned");
                if let Some(p) = peers.get_mut(&id) {
                    for i in items {
                        if let Inv::Block(b) = i {
                            if p.in_flight.remove(&b).is_some() {
                                // It does not have it: ask someone else.
                                p.stalled.insert(b);
                                self.sync.lock().expect("never poisoned").stalled_requests += 1;
                            }
                        }
                    }
                }
            }
            Message::Tx(tx) => {
                let txid = tx.txid();
                if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
                    p.known.insert(Inv::Tx(txid));
                }
                let node = self.node.clone();
                match self.blocking(move || node.submit_tx_blocking(tx)).await {
                    Ok(_) => {}
                    Err(e) if e.reason() == "bad_signature" || e.reason() == "wrong_chain" => {
                        self.punish(id, format!("sent an invalid transaction: {e}"))
                    }
                    Err(_) => {}
                }
            }
            Message::Block(block) => self.on_block(id, block).await,
            Message::GetHeaders { locator, stop } => {
                let headers = {
                    let chain = self.node.chain.lock().expect("chain lock is never poisoned");
                    let mut start = 0;
                    for l in &locator {
                        if chain.is_main(l).unwrap_or(false) {
                            start = chain.entry(l).map(|e| e.header.height + 1).unwrap_or(0);
                            break;
                        }
                    }
                    let mut out = Vec::new();
                    let mut h = start.max(1);
                    while out.len() < wire::MAX_HEADERS && h <= chain.height() {
                        let Ok(Some(bid)) = chain.main_id_at(h) else { break };
                        if let Some(e) = chain.entry(&bid) {
                            out.push(e.header);
                        }
                        if bid == stop {
                            break;
                        }
                        h += 1;
                    }
                    out
                };
                self.send(id, Message::Headers(headers));
            }
            Message::Headers(headers) => self.on_headers(id, headers).await,
            Message::Version(_) | Message::Verack => {
                self.punish(id, "handshake message after the handshake".into())
            }
        }
    }

    async fn on_block(self: &Arc<Self>, id: u64, block: ember_core::Block) {
        let bid = block.id();
        let height = block.header.height;
        if let Some(p) = self.peers.lock().expect("never poisoned").get_mut(&id) {
            p.known.insert(Inv::Block(bid));
            p.in_flight.remove(&bid);
            p.height = p.height.max(height);
        }
        let node = self.node.clone();
        let result = self.blocking(move || node.accept_block(block)).await;
        match result {
            Ok(Accepted::Orphan) => {
                // We lack its ancestors: sync headers from this peer.
                let m = self.locator_message();
                self.send(id, m);
            }
            Ok(_) => self.request_blocks(id),
            Err(e @ (ChainError::Invalid { .. } | ChainError::KnownInvalid(_))) => {
                self.punish(id, format!("sent an invalid block: {e}"))
            }
            Err(ChainError::BadCopy { .. }) => {
                self.punish(id, "sent a block body that does not match its header".into())
            }
            Err(e) => tracing::warn!(block = %bid, error = %e, "block not accepted"),
        }
    }

    async fn on_headers(self: &Arc<Self>, id: u64, headers: Vec<ember_core::BlockHeader>) {
        let full = headers.len() == wire::MAX_HEADERS;
        let last = headers.last().map(|h| h.id());
        let node = self.node.clone();
        let result = self
            .blocking(move || {
                let mut chain = node.chain.lock().expect("chain lock is never poisoned");
                for h in &headers {
                    match chain.accept_header(h, now_ms()) {
                        Ok(_) => {}
                        Err(e @ (ChainError::Invalid { .. } | ChainError::KnownInvalid(_))) => {
                            return Err(e.to_string())
                        }
                        Err(ChainError::UnknownParent(_)) => return Ok(false),
                        Err(e) => return Err(format!("store: {e}")),
                    }
                }
                Ok(true)
            })
            .await;
        match result {
            Ok(true) => {
                // Lock order: chain before peers, everywhere.
                let last_height = last.and_then(|l| {
                    self.node
                        .chain
                        .lock()
                        .expect("chain lock is never poisoned")
                        .entry(&l)
                        .map(|e| e.header.height)
                });
                if let (Some(h), Some(p)) =
                    (last_height, self.peers.lock().expect("never poisoned").get_mut(&id))
                {
                    p.height = p.height.max(h);
                }
                // This peer first, then every other peer that has the blocks: bodies come
                // from several peers at once.
                self.request_blocks(id);
                self.request_from_all();
                if full {
                    let m = self.locator_after(last);
                    self.send(id, m);
                }
            }
            Ok(false) => {
                let m = self.locator_message();
                self.send(id, m);
            }
            Err(reason) => self.punish(id, format!("sent invalid headers: {reason}")),
        }
    }

    /// A locator that continues from the last header received.
    fn locator_after(&self, last: Option<BlockId>) -> Message {
        let mut m = self.locator_message();
        if let (Message::GetHeaders { locator, .. }, Some(last)) = (&mut m, last) {
            locator.insert(0, last);
            locator.truncate(wire::MAX_LOCATOR);
        }
        m
    }

    /// Periodic work: stalled block requests, sync progress, address discovery.
    async fn housekeeping(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.timings.housekeeping);
        let mut sample: Option<(Instant, u64)> = None;
        let mut last_log: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.node.shutdown.cancelled() => return,
            }
            self.reassign_stalled();
            self.update_sync(&mut sample, &mut last_log);
            self.discover();
        }
    }

    /// Moves block requests a peer has not answered within `timings.stall` to other peers.
    fn reassign_stalled(&self) {
        let now = Instant::now();
        let mut moved = 0;
        {
            let mut peers = self.peers.lock().expect("never poisoned");
            for p in peers.values_mut() {
                let late: Vec<BlockId> = p
                    .in_flight
                    .iter()
                    .filter(|(_, at)| now.duration_since(**at) > self.timings.stall)
                    .map(|(b, _)| *b)
                    .collect();
                for b in late {
                    p.in_flight.remove(&b);
                    p.stalled.insert(b);
                    moved += 1;
                }
                if p.stalled.len() > 100_000 {
                    p.stalled.clear();
                }
            }
        }
        if moved > 0 {
            self.sync.lock().expect("never poisoned").stalled_requests += moved;
            tracing::info!(blocks = moved, "block requests stalled; asking other peers");
            self.request_from_all();
        }
    }

    /// Gives every peer a chance to take block requests.
    fn request_from_all(&self) {
        let ids: Vec<u64> = self.peers.lock().expect("never poisoned").keys().copied().collect();
        for id in ids {
            self.request_blocks(id);
        }
    }

    /// Recomputes the sync status; logs progress while syncing.
    fn update_sync(&self, sample: &mut Option<(Instant, u64)>, last_log: &mut Option<Instant>) {
        let (height, header_height) = {
            let chain = self.node.chain.lock().expect("chain lock is never poisoned");
            (chain.height(), chain.best_header_height())
        };
        let target = header_height.max(self.best_peer_height()).max(height);
        let now = Instant::now();
        let mut st = self.sync.lock().expect("never poisoned");
        if let Some((at, h)) = *sample {
            let dt = now.duration_since(at).as_secs_f64();
            if dt > 0.0 {
                let rate = height.saturating_sub(h) as f64 / dt;
                // Smoothed over roughly the last five samples.
                st.blocks_per_sec = if st.blocks_per_sec == 0.0 {
                    rate
                } else {
                    0.8 * st.blocks_per_sec + 0.2 * rate
                };
            }
        }
        *sample = Some((now, height));
        st.height = height;
        st.target_height = target;
        st.syncing = target > height;
        st.eta_secs = (st.syncing && st.blocks_per_sec > 0.01)
            .then(|| ((target - height) as f64 / st.blocks_per_sec).ceil() as u64);
        if st.syncing && last_log.is_none_or(|t| now.duration_since(t) >= self.timings.progress_log)
        {
            *last_log = Some(now);
            tracing::info!(
                height,
                target_height = target,
                blocks_per_sec = format!("{:.1}", st.blocks_per_sec),
                eta_secs = st.eta_secs,
                "syncing"
            );
        }
    }

    /// Dials one address from the address book when fewer outbound peers are connected than
    /// `--outbound` asks for (unless `--no-discover`).
    fn discover(self: &Arc<Self>) {
        let cfg = &self.node.config;
        if !cfg.discover {
            return;
        }
        let (outbound, connected): (usize, HashSet<SocketAddr>) = {
            let peers = self.peers.lock().expect("never poisoned");
            (
                peers.values().filter(|p| !p.inbound).count(),
                peers.values().flat_map(|p| [Some(p.addr), p.listen_addr]).flatten().collect(),
            )
        };
        if outbound >= cfg.outbound {
            return;
        }
        let own = self.self_addrs.lock().expect("never poisoned").clone();
        let dialing = self.dialing.lock().expect("never poisoned").clone();
        let candidate = self.addr_book.lock().expect("never poisoned").pick(|a| {
            !connected.contains(a)
                && !own.contains(a)
                && !dialing.contains(a)
                && !self.is_banned(&a.to_string())
        });
        let Some(addr) = candidate else { return };
        self.dialing.lock().expect("never poisoned").insert(addr);
        let net = self.clone();
        tokio::spawn(async move {
            if net.dial(addr, None).await != Some(Ended::Handshaked) {
                net.addr_book.lock().expect("never poisoned").failed(&addr);
            }
            net.dialing.lock().expect("never poisoned").remove(&addr);
        });
    }

    /// Requests bodies of header-only blocks on the best header chain, a bounded window at a
    /// time from this peer.
    fn request_blocks(&self, id: u64) {
        let wanted: Vec<(BlockId, u64)> = {
            let mut chain = self.node.chain.lock().expect("chain lock is never poisoned");
            chain.missing_bodies(MAX_BLOCKS_IN_FLIGHT * 4)
        };
        let mut peers = self.peers.lock().expect("never poisoned");
        let in_flight_elsewhere: HashSet<BlockId> = peers
            .iter()
            .filter(|(pid, _)| **pid != id)
            .flat_map(|(_, p)| p.in_flight.keys().copied())
            .collect();
        let Some(p) = peers.get_mut(&id) else { return };
        let room = MAX_BLOCKS_IN_FLIGHT.saturating_sub(p.in_flight.len());
        let ask: Vec<Inv> = wanted
            .into_iter()
            .filter(|(b, height)| {
                // Only what the peer can have (its height grows with what it shows us).
                *height <= p.height
                    && !p.in_flight.contains_key(b)
                    && !p.stalled.contains(b)
                    && !in_flight_elsewhere.contains(b)
            })
            .take(room)
            .map(|(b, _)| Inv::Block(b))
            .collect();
        let now = Instant::now();
        for i in &ask {
            if let Inv::Block(b) = i {
                p.in_flight.insert(*b, now);
            }
        }
        if !ask.is_empty() && p.tx.try_send(Message::GetData(ask)).is_err() {
            p.cancel.cancel();
        }
    }
}

/// The fuzz target's entry points (`fuzz/fuzz_targets/p2p.rs`, built with `--cfg fuzzing`):
/// a peer that exists only as its queue, whose messages the fuzzer supplies. It is
/// registered like a real one after its handshake, so every message goes through
/// [`Network::handle`] with the node's real state.
#[cfg(fuzzing)]
impl Network {
    /// Registers a fuzzed peer at `addr` claiming `height`; returns its id and the queue of
    /// what the node sends it (drain it, or the node treats the peer as slow).
    pub fn fuzz_connect(&self, addr: SocketAddr, height: u64) -> (u64, mpsc::Receiver<Message>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<Message>(PEER_QUEUE);
        let peer = Peer {
            user_agent: "fuzz".into(),
            height,
            ..Peer::new(
                addr,
                NodeId::from_bytes([7; 32]),
                true,
                tx,
                self.node.shutdown.child_token(),
            )
        };
        self.peers.lock().expect("never poisoned").insert(id, peer);
        (id, rx)
    }

    /// Handles one message from fuzzed peer `id`, as its connection task would.
    pub async fn fuzz_handle(self: &Arc<Self>, id: u64, msg: Message) {
        self.handle(id, msg).await
    }

    /// Whether the node has punished peer `id` into a disconnect (its cancel token fired).
    pub fn fuzz_disconnected(&self, id: u64) -> bool {
        self.peers.lock().expect("never poisoned").get(&id).is_none_or(|p| p.cancel.is_cancelled())
    }

    /// Forgets peer `id`, as the end of its connection does.
    pub fn fuzz_disconnect(&self, id: u64) {
        self.peers.lock().expect("never poisoned").remove(&id);
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// After a completed handshake.
    Handshaked,
    /// In the handshake (refused, failed or timed out).
    Failed,
    /// In the handshake: the peer proved another node id than `ID@host:port` asked for.
    WrongKey,
}

/// Runs one connection from handshake to disconnect; returns how it ended. `expected` is
/// the node id an `ID@host:port` peer must prove.
async fn run_peer(
    net: Arc<Network>,
    mut stream: BoxStream,
    addr: SocketAddr,
    inbound: bool,
    expected: Option<NodeId>,
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
        w.write_message(&Message::Verack).await?;
        let (msg, _) = r.read_message(wire::MAX_HANDSHAKE_FRAME).await?;
        if msg != Message::Verack {
            return Err(WireError::Malformed(format!("expected verack, got {}", msg.name())));
        }
        Ok((v, remote, r, w))
    };
    let (version, node_id, mut r, mut w) = match tokio::time::timeout(
        net.timings.handshake,
        handshake,
    )
    .await
    {
        Ok(Ok(x)) => x,
        Ok(Err(e @ WireError::UnexpectedNodeId { .. })) => {
            tracing::warn!(peer = %addr, error = %e, "peer holds another key than --peer expects; refusing");
            return Ended::WrongKey;
        }
        Ok(Err(e)) => {
            if e.is_misbehaviour() {
                tracing::info!(peer = %addr, error = %e, "handshake failed; banning the peer");
                net.ban(addr.to_string(), format!("handshake: {e}"), net.timings.ban);
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
        Err(_) => {
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
    if version.genesis != net.node.params.genesis_id() || version.protocol != wire::PROTOCOL_VERSION
    {
        tracing::info!(peer = %addr, genesis = %version.genesis, "peer is on another network; refusing");
        net.addr_book.lock().expect("never poisoned").forget(&addr);
        return Ended::Failed;
    }
    let listen_addr =
        (version.listen_port != 0).then(|| SocketAddr::new(addr.ip(), version.listen_port));
    if let Some(la) = listen_addr {
        if net.is_banned(&la.to_string()) || (inbound && net.is_connected_to(la)) {
            return Ended::Failed;
        }
        net.addr_book.lock().expect("never poisoned").learn(la, now_ms());
    }
    if !inbound {
        net.addr_book.lock().expect("never poisoned").connected(&addr, now_ms());
    }
    let id = net.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Message>(PEER_QUEUE);
    let cancel = net.node.shutdown.child_token();
    let bytes_in = Arc::new(AtomicU64::new(0));
    let bytes_out = Arc::new(AtomicU64::new(0));
    let their_work = U256::from_big_endian(&version.best_work);
    net.peers.lock().expect("never poisoned").insert(
        id,
        Peer {
            listen_addr,
            user_agent: version.user_agent.clone(),
            height: version.best_height,
            work: their_work,
            bytes_in: bytes_in.clone(),
            bytes_out: bytes_out.clone(),
            ..Peer::new(addr, node_id, inbound, tx.clone(), cancel.clone())
        },
    );
    tracing::info!(
        peer = %addr, id, %node_id, inbound, height = version.best_height, "peer connected"
    );

    // Writer: drains the bounded queue onto the socket.
    let writer_cancel = cancel.clone();
    let out_counter = bytes_out.clone();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                m = rx.recv() => {
                    let Some(m) = m else { break };
                    match w.write_message(&m).await {
                        Ok(n) => { out_counter.fetch_add(n as u64, Ordering::Relaxed); }
                        Err(_) => break,
                    }
                }
                _ = writer_cancel.cancelled() => break,
            }
        }
        writer_cancel.cancel();
    });

    // Catch up if they have more work; ask for addresses.
    let our_work = net.node.chain.lock().expect("chain lock is never poisoned").tip_work();
    if their_work > our_work {
        let m = net.locator_message();
        net.send(id, m);
    }
    net.send(id, Message::GetAddr);

    // Blocks from this peer go through a short pipeline: each one's signatures are checked
    // on the blocking pool (all cores) as soon as it is read, while the next ones download
    // and the previous one is connected and stored; a task then accepts them in arrival
    // order (finding their signatures cached). Other messages are handled in line. The
    // simulator runs everything in line, so its runs stay deterministic.
    let pipelined = !net.transport.inline_blocking();
    let (import_tx, mut import_rx) =
        mpsc::channel::<tokio::task::JoinHandle<ember_core::Block>>(BLOCK_PIPELINE);
    let import_net = net.clone();
    let importer = tokio::spawn(async move {
        while let Some(checked) = import_rx.recv().await {
            let Ok(block) = checked.await else { break };
            import_net.on_block(id, block).await;
        }
    });

    let ping_every = net.timings.ping;
    let mut ping = tokio::time::interval(ping_every);
    ping.tick().await;
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            // Cancel-safe: a partly received frame stays in the reader.
            read = r.read_message(wire::MAX_FRAME) => match read {
                Ok((Message::Block(block), n)) if pipelined => {
                    bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    last_heard = Instant::now();
                    let cache = net.node.sig_cache.clone();
                    let checked = tokio::task::spawn_blocking(move || {
                        cache.preverify(&block.txs);
                        block
                    });
                    // A full pipeline stops reading: back-pressure on the peer.
                    if import_tx.send(checked).await.is_err() {
                        break;
                    }
                }
                Ok((msg, n)) => {
                    bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    last_heard = Instant::now();
                    net.handle(id, msg).await;
                }
                Err(e @ WireError::Auth) => {
                    tracing::warn!(peer = %addr, error = %e, "disconnecting");
                    break;
                }
                Err(e) if !e.is_misbehaviour() => break,
                Err(e) => {
                    net.punish(id, format!("protocol violation: {e}"));
                    break;
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_every * 3 {
                    tracing::info!(peer = %addr, "peer silent; disconnecting");
                    break;
                }
                let n: u64 = rand::random();
                if let Some(p) = net.peers.lock().expect("never poisoned").get_mut(&id) {
                    p.ping_sent = Some((n, Instant::now()));
                }
                net.send(id, Message::Ping(n));
            }
            _ = cancel.cancelled() => break,
        }
    }
    cancel.cancel();
    let _ = writer.await;
    // Blocks already read are still accepted (at most BLOCK_PIPELINE of them).
    drop(import_tx);
    let _ = importer.await;
    let owed =
        net.peers.lock().expect("never poisoned").remove(&id).map_or(0, |p| p.in_flight.len());
    tracing::info!(peer = %addr, id, "peer disconnected");
    if owed > 0 {
        // What it owed us is asked of the others.
        net.sync.lock().expect("never poisoned").stalled_requests += owed as u64;
        net.request_from_all();
    }
    Ended::Handshaked
}
