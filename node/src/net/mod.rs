//! Peer-to-peer networking: connections, handshake, relay, header-first sync and bans.
//!
//! Who owns what, and which task runs it:
//!
//! | file | job | runs on |
//! |---|---|---|
//! | [`connect`] | accept loop (handshake slots, accept back-off), `--peer` loops, discovery | one task each |
//! | [`peer`] | one connection: Noise + `Version`/`Verack`, reader, request queue, writer | two tasks per peer |
//! | [`outbox`] | a peer's two outbound queues (gossip, replies), bounded in bytes | — (data) |
//! | `handle` | what each message from a peer does | the peer's reader task |
//! | `serve` | blocks, transactions and headers a peer asked for, read from the store without the chain lock | the peer's reader task + the blocking pool |
//! | `sync` | header-first sync: presync, in-flight block requests, stalls, progress | reader tasks and housekeeping |
//! | [`ping`] | liveness and round-trip time of a peer (no I/O; unit-tested) | the peer's reader task |
//! | [`headers`] | what a `Headers` message leads to: store, ask on, locator, punish (no I/O; unit-tested) | the peer's reader task |
//! | [`presync`] | which headers are worth storing (no I/O; unit-tested) | — |
//! | [`relay`] | new blocks pushed to every peer (compact to peers that asked), payments announced in batches (what to send: no I/O; unit-tested) | one task each |
//! | [`compact`] | compact blocks (BIP152): short ids, rebuilding from the mempool, high-bandwidth peers, bounded partial blocks (no I/O; unit-tested) | — |
//! | `compact_relay` | what compact-block messages do; forwards rebuilt blocks to high-bandwidth peers before validating them | the peer's reader task + the blocking pool |
//! | [`bans`] | persisted bans (no I/O but the store) | — |
//! | [`claims`] | which unproven claims may still hold `/ready` back (no I/O; unit-tested) | — |
//! | [`undelivered`] | bodies asked for and never sent: not asked of that group again, not counted towards the sync target (no I/O; unit-tested) | — |
//! | `addrman` | addresses in new/tried buckets (Bitcoin Core's addrman), persisted | — |
//! | `status` | what RPC and `GET /ready` read: peers, sync progress, readiness (claims) | RPC handlers |
//! | [`disconnect`] | why a connection ends; only misbehaviour is the peer's fault | — |
//!
//! Data flows one way: a peer's task reads a message and hands it to `handle`, which asks
//! the [`Node`] (chain, mempool) and queues what to send on peers' [`outbox::Outbox`]es; a
//! writer task per peer drains its outbox. Shared state sits behind short std mutexes, never
//! held across `.await`; when the chain lock is needed too it is taken first. Serving a
//! peer never takes the chain lock: the store is read directly.
//!
//! Every cost a peer can impose has a bound (see `docs/PROTOCOL.md`, "Liveness and
//! limits"): queued bytes ([`outbox`]), requests served only as the peer reads them,
//! headers stored only for branches with enough work ([`presync`]), address book buckets,
//! handshake slots, bans. Misbehaviour disconnects and bans the peer with the reason kept
//! ([`bans`]); slow, silent or merely unlucky peers are disconnected without blame.

pub mod addrman;
pub mod bans;
pub mod claims;
pub mod compact;
mod compact_relay;
pub mod connect;
pub mod disconnect;
#[cfg(fuzzing)]
mod fuzz;
mod handle;
pub mod headers;
/// Node keys live at the crate root (the node owns its key); the network uses them.
pub use crate::identity;
pub mod outbox;
pub mod peer;
pub mod ping;
pub mod presync;
pub mod relay;
pub mod secure;
mod serve;
mod status;
mod sync;
pub mod transport;
pub mod undelivered;
pub mod wire;

pub use status::{PeerView, Readiness, READY_GRACE};

use crate::node::{now_ms, Node};
use crate::store::{ChainStore, KvStore};
use addrman::AddrMan;
use bans::{Ban, BanList};
use disconnect::{DisconnectReason, Misbehaviour};
use identity::{Endpoint, NodeId, PeerTarget};
use peer::Peer;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use transport::{TcpTransport, Transport};
use wire::{Message, Version};

/// Block bodies requested from one peer at a time.
const MAX_BLOCKS_IN_FLIGHT: usize = 64;
/// Blocks of one peer whose signatures are checked ahead of their turn to be connected.
const BLOCK_PIPELINE: usize = 8;

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
    /// A frame to a peer not fully written within this time drops the peer (it stopped
    /// reading).
    pub send_stall: Duration,
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
            send_stall: Duration::from_secs(20),
        }
    }
}

/// Where the node stands in catching up with its peers (`node_info.sync`, metrics, logs).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncStatus {
    /// Whether a known header chain (validated, stored) is ahead of our tip. A height a
    /// peer merely claims does not count: anyone can claim anything.
    pub syncing: bool,
    pub height: u64,
    /// The best height known from validated headers and from what peers showed us.
    pub target_height: u64,
    /// Blocks connected per second (smoothed over the last seconds).
    pub blocks_per_sec: f64,
    /// Seconds to reach the target at the current rate, when syncing and moving.
    pub eta_secs: Option<u64>,
    /// Block requests that timed out or were refused and went to another peer, in all.
    pub stalled_requests: u64,
}

/// The P2P side of a node.
pub struct Network {
    node: Arc<Node>,
    /// The store, read without the chain lock when serving peers.
    store: ChainStore,
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
    bans: Mutex<BanList>,
    addr_book: Mutex<AddrMan>,
    /// Addresses that turned out to be this node itself.
    self_addrs: Mutex<HashSet<SocketAddr>>,
    /// Addresses with a connection attempt under way (persistent --peer loops included).
    dialing: Mutex<HashSet<SocketAddr>>,
    /// The endpoints of --peer and `net_addPeer`, each kept connected by its own loop.
    persistent: Mutex<HashSet<Endpoint>>,
    /// Inbound connections still in the handshake (bounded; see [`connect`]).
    handshaking: Mutex<connect::Handshaking>,
    next_id: AtomicU64,
    tx_queue: Mutex<Vec<ember_core::Txid>>,
    sync: Mutex<SyncStatus>,
    /// Address groups whose claims no longer hold `/ready` back ([`claims`]).
    claims: Mutex<claims::ClaimGrace>,
    /// Header-only blocks whose bodies a peer withheld ([`undelivered`]).
    undelivered: Mutex<undelivered::Undelivered>,
    /// Compact relay: high-bandwidth peers, partial and recent blocks ([`compact`]).
    compact: Mutex<compact::CompactState>,
    /// Woken when a block forwarded before we had it is judged (see `compact_relay`).
    compact_done: tokio::sync::Notify,
    /// Payments of whole blocks whose signatures a peer's reader found valid ahead, before
    /// the chain lock (see `worth_verifying`): every payment of a sync should be.
    checked_ahead: AtomicU64,
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
        let store = node.chain.lock().expect("chain lock is never poisoned").store().clone();
        let kv: Arc<dyn KvStore> = store.kv().clone();
        let addr_book = AddrMan::load(kv.clone());
        let bans = BanList::load(kv, now_ms());
        let mode = if node.config.p2p_plaintext {
            tracing::warn!(
                "--insecure-p2p-plaintext: peer traffic is neither encrypted nor authenticated"
            );
            secure::FrameMode::Plaintext
        } else {
            secure::FrameMode::Encrypted
        };
        let own: HashSet<SocketAddr> = node.config.external_addr.into_iter().collect();
        let net = Arc::new(Network {
            magic: node.params.magic,
            prologue: secure::prologue(node.params.magic, node.params.genesis_id(), mode),
            mode,
            nonce: rand::random(),
            node,
            store,
            transport,
            timings,
            listen_port: Mutex::new(0),
            peers: Mutex::new(HashMap::new()),
            bans: Mutex::new(bans),
            addr_book: Mutex::new(addr_book),
            self_addrs: Mutex::new(own),
            dialing: Mutex::new(HashSet::new()),
            persistent: Mutex::new(HashSet::new()),
            handshaking: Mutex::new(connect::Handshaking::default()),
            next_id: AtomicU64::new(1),
            tx_queue: Mutex::new(Vec::new()),
            sync: Mutex::new(SyncStatus::default()),
            claims: Mutex::new(claims::ClaimGrace::default()),
            undelivered: Mutex::new(undelivered::Undelivered::default()),
            compact: Mutex::new(compact::CompactState::default()),
            compact_done: tokio::sync::Notify::new(),
            checked_ahead: AtomicU64::new(0),
        });
        // Our own blocks go to high-bandwidth peers before we validate them. Weak: the
        // node must not keep its network alive.
        let weak = Arc::downgrade(&net);
        let hook: crate::node::FoundHook = Box::new(move |block| {
            if let Some(net) = weak.upgrade() {
                net.announce_found(block);
            }
        });
        let _ = net.node.on_found.set(hook);
        net
    }

    /// Runs CPU-heavy work (validation, store reads for peers) off the async threads, or
    /// inline when the transport asks for it (the simulator).
    async fn blocking<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        if self.transport.inline_blocking() {
            f()
        } else {
            match tokio::task::spawn_blocking(f).await {
                Ok(r) => r,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Cancelled: the runtime is shutting down and this task goes with it.
                Err(_) => std::future::pending().await,
            }
        }
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

    /// Starts a persistent outbound connection (reconnecting with back-off) to `host:port`
    /// (an IP address or a DNS name, resolved at every dial), or to `ID@host:port`, which
    /// also refuses a peer that proves another node id.
    pub fn add_peer(self: &Arc<Self>, target: &str) -> anyhow::Result<()> {
        let PeerTarget { endpoint, expected } =
            target.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        if !self.persistent.lock().expect("never poisoned").insert(endpoint.clone()) {
            anyhow::bail!("already connecting to {endpoint}");
        }
        if let Endpoint::Addr(addr) = endpoint {
            // Discovery leaves a --peer address to its own loop.
            self.dialing.lock().expect("never poisoned").insert(addr);
        }
        let net = self.clone();
        tokio::spawn(async move { net.outbound_loop(endpoint, expected).await });
        Ok(())
    }

    fn is_connected_to(&self, addr: SocketAddr) -> bool {
        self.peers
            .lock()
            .expect("never poisoned")
            .values()
            .any(|p| p.addr == addr || p.listen_addr == Some(addr))
    }

    /// Whether node `id` is already connected at `addr` (as dialed, or as its listening
    /// address).
    fn is_connected_to_node(&self, addr: SocketAddr, id: NodeId) -> bool {
        self.peers
            .lock()
            .expect("never poisoned")
            .values()
            .any(|p| p.node_id == id && (p.addr == addr || p.listen_addr == Some(addr)))
    }

    /// Whether a connection from `addr` (listening at `listen`, once known) is banned.
    fn is_banned(&self, addr: SocketAddr, listen: Option<SocketAddr>) -> bool {
        let keys = bans::keys_for(addr, listen);
        self.bans.lock().expect("never poisoned").is_banned(&keys, now_ms())
    }

    /// Closes a peer's connection, recording why (its task logs it when it ends).
    fn drop_peer(&self, id: u64, reason: DisconnectReason) {
        let mut peers = self.peers.lock().expect("never poisoned");
        if let Some(p) = peers.get_mut(&id) {
            if p.closing.is_none() {
                tracing::info!(peer = %p.addr, id, %reason, "disconnecting");
                p.closing = Some(reason);
            }
            p.cancel.cancel();
        }
    }

    /// Disconnects a peer for what it provably did and bans its host (see [`bans`]).
    fn punish(&self, id: u64, m: Misbehaviour) {
        let key = {
            let peers = self.peers.lock().expect("never poisoned");
            let Some(p) = peers.get(&id) else { return };
            bans::ban_key(p.addr, p.listen_addr)
        };
        tracing::warn!(peer = %key, reason = %m, "banning misbehaving peer");
        let reason = m.to_string();
        self.drop_peer(id, DisconnectReason::Misbehaved(m));
        self.ban_key(key, &reason, self.timings.ban);
    }

    /// Bans `key` (an IP, or `ip:port`) for `duration` (at most [`bans::MAX_BAN`]) and
    /// disconnects every peer it matches.
    fn ban_key(&self, key: String, reason: &str, duration: Duration) {
        self.bans.lock().expect("never poisoned").ban(key.clone(), reason, duration, now_ms());
        let ids: Vec<u64> = self
            .peers
            .lock()
            .expect("never poisoned")
            .iter()
            .filter(|(_, p)| bans::keys_for(p.addr, p.listen_addr).contains(&key))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.drop_peer(id, DisconnectReason::Operator);
        }
    }

    /// Bans an address (`ip` or `ip:port`) for `duration`, as `net_ban` asks.
    pub fn ban(&self, address: String, reason: String, duration: Duration) {
        self.ban_key(address, &reason, duration);
    }

    pub fn unban(&self, address: &str) -> bool {
        self.bans.lock().expect("never poisoned").unban(address)
    }

    /// Bans in force, soonest to end first.
    pub fn bans(&self) -> Vec<Ban> {
        self.bans.lock().expect("never poisoned").list(now_ms())
    }

    /// Disconnects a peer by connection id, address or node id; returns whether one matched.
    pub fn disconnect(&self, target: &str) -> bool {
        let ids: Vec<u64> = self
            .peers
            .lock()
            .expect("never poisoned")
            .iter()
            .filter(|(id, p)| {
                id.to_string() == target
                    || p.node_id.to_string() == target
                    || p.addr.to_string() == target
                    || p.listen_addr.map(|a| a.to_string()).as_deref() == Some(target)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.drop_peer(*id, DisconnectReason::Operator);
        }
        !ids.is_empty()
    }

    /// Queues gossip to one peer without waiting; a peer over its budget is dropped.
    fn send(&self, id: u64, msg: Message) {
        let outbox = self.peers.lock().expect("never poisoned").get(&id).map(|p| p.outbox.clone());
        if let Some(o) = outbox {
            if !o.gossip_msg(&msg) {
                self.drop_peer(id, DisconnectReason::SlowReader);
            }
        }
    }

    /// Queues a reply to what peer `id` asked, once its reply queue has room (waiting
    /// pauses only this peer's reader, which is what calls it).
    async fn reply(&self, id: u64, msg: Message) {
        let outbox = self.peers.lock().expect("never poisoned").get(&id).map(|p| p.outbox.clone());
        if let Some(o) = outbox {
            o.reply_room().await;
            o.reply(outbox::payload(&msg));
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
}
