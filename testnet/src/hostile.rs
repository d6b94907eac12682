//! Hostile peers: a real Ember peer under a test's control, the material of known attacks,
//! and an attack runner for the soak.
//!
//! [`HostilePeer`] dials a node's P2P port and completes the real handshake as the dialer,
//! exactly as a node does (`run_peer` in `node/src/net/mod.rs`): Noise XX with a fresh static
//! key, then `Version` both ways and `Verack` both ways, encrypted. After that the caller
//! decides everything: send any [`Message`] or any encrypted payload, read with a deadline,
//! or never read at all. The API is blocking, like the rest of this crate: the async
//! transport runs on a current-thread tokio runtime owned by the peer, which runs only inside
//! the peer's own calls, and no task is ever spawned. So nothing reads in the background: a
//! test that stops calling [`HostilePeer::recv`] really leaves the node's replies in the
//! socket, and the node sees a peer that does not read.
//!
//! Attack material: [`side_branch`] (headers with valid devnet proof of work forking anywhere),
//! [`early_block`] (a valid block stamped in the future), [`made_up_addrs`] (addresses in the
//! documentation ranges, which never answer), [`IdleConnections`] (TCP connections that never
//! start the handshake). Measures: [`rss_bytes`], [`dir_size`]; [`limit_open_files`] puts a
//! running node under a file-descriptor limit.
//!
//! [`run`] repeats one [`Attack`] against a node for a bounded time and says what it did
//! ([`AttackReport`]); the soak injects one of them as its hostile fault. Every loop here is
//! bounded by a deadline and a round count.

use anyhow::{anyhow, bail, Context, Result};
use ember_core::block::BLOCK_VERSION;
use ember_core::encoding::encode;
use ember_core::hash::sha256;
use ember_core::validate::solve_pow;
use ember_core::{Address, Block, BlockHeader, BlockId, ChainParams};
use ember_node::net::identity::{NodeId, NodeKey};
use ember_node::net::secure::{self, FrameMode, SecureReader, SecureWriter};
use ember_node::net::wire::{
    Inv, Message, Version, WireError, MAX_FRAME, MAX_HANDSHAKE_FRAME, MAX_HEADERS, PROTOCOL_VERSION,
};
use ember_wallet::rpc::RpcClient;
use serde::Serialize;
use serde_json::json;
use std::cell::Cell;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::runtime::Runtime;

/// How long our side of the handshake may take (the node allows 10 s for its side).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// By default, a write that cannot hand its bytes to the socket for this long means the node
/// stopped reading; the stream is then cut mid-frame and no longer used for writing.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Entries of the `GetData` of [`Attack::GetDataFlood`], all naming the tip block.
pub const GETDATA_FLOOD_ENTRIES: usize = 3_000;

/// The current Unix time in milliseconds, by this machine's clock (the node's clock too, on
/// a loopback testnet).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// What a hostile peer claims about itself in its `Version`.
#[derive(Debug, Clone)]
pub struct HostileOptions {
    /// The port it says it accepts connections on (0 = not listening). The node keys the
    /// address book and bans on `ip:listen_port`, so a peer that claims a port is banned and
    /// refused under it.
    pub listen_port: u16,
    pub best_height: u64,
    /// Cumulative work of its claimed tip, big-endian.
    pub best_work: [u8; 32],
    pub user_agent: String,
    /// The P2P protocol version it claims (this build's unless set).
    pub protocol: u32,
}

impl Default for HostileOptions {
    fn default() -> Self {
        HostileOptions {
            listen_port: 0,
            best_height: 0,
            best_work: [0; 32],
            user_agent: "ember-hostile/0.1".into(),
            protocol: PROTOCOL_VERSION,
        }
    }
}

/// How far a handshake got before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeStage {
    /// The TCP connect (or the local runtime) failed: the node did not take the connection.
    Tcp,
    /// The Noise XX handshake.
    Noise,
    /// Sending our `Version` or reading the node's.
    Version,
    /// Sending our `Verack` or reading the node's: a node that refuses a banned peer's
    /// `ip:listen_port` closes the connection here.
    Verack,
}

/// A handshake that did not complete.
#[derive(Debug, thiserror::Error)]
#[error("handshake with {addr} failed at {stage:?}: {reason}")]
pub struct HandshakeError {
    pub addr: SocketAddr,
    pub stage: HandshakeStage,
    pub reason: String,
}

/// A peer that completed the real handshake with a node and then does whatever its caller
/// says. See the module doc.
pub struct HostilePeer {
    // The halves are declared before the runtime so that they are dropped while it exists.
    reader: SecureReader<OwnedReadHalf>,
    /// `None` once a write timed out mid-frame: the stream can no longer be written.
    writer: Option<SecureWriter<OwnedWriteHalf>>,
    rt: Runtime,
    write_timeout: Duration,
    id: NodeId,
    remote: NodeId,
    local: SocketAddr,
    node_version: Version,
    bytes_sent: u64,
    bytes_received: u64,
    messages_sent: u64,
}

impl HostilePeer {
    /// Dials `addr` and completes the handshake with a fresh static key, claiming what `opts`
    /// says. Fails with the stage at which the node refused or closed.
    pub fn connect(
        addr: SocketAddr,
        params: &ChainParams,
        opts: &HostileOptions,
    ) -> Result<HostilePeer, HandshakeError> {
        let fail = |stage, reason: String| HandshakeError { addr, stage, reason };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(HandshakeStage::Tcp, format!("cannot start a runtime: {e}")))?;
        let key = NodeKey::generate();
        let prologue = secure::prologue(params.magic, params.genesis_id(), FrameMode::Encrypted);
        let ours = Version {
            protocol: opts.protocol,
            genesis: params.genesis_id(),
            best_height: opts.best_height,
            best_work: opts.best_work,
            listen_port: opts.listen_port,
            user_agent: opts.user_agent.clone(),
            nonce: rand::random(),
        };
        let stage = Cell::new(HandshakeStage::Tcp);
        let handshake = async {
            let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let _ = s.set_nodelay(true);
            let local = s.local_addr().map_err(|e| e.to_string())?;
            stage.set(HandshakeStage::Noise);
            let session = secure::handshake(&mut s, params.magic, &prologue, &key, true)
                .await
                .map_err(|e| e.to_string())?;
            let remote = session.remote;
            let (r, w) = s.into_split();
            let (mut r, mut w) = session.split_with(r, w, FrameMode::Encrypted);
            stage.set(HandshakeStage::Version);
            w.write_message(&Message::Version(ours)).await.map_err(|e| e.to_string())?;
            let (msg, _) = r.read_message(MAX_HANDSHAKE_FRAME).await.map_err(|e| e.to_string())?;
            let Message::Version(theirs) = msg else {
                return Err(format!("expected version, got {}", msg.name()));
            };
            stage.set(HandshakeStage::Verack);
            w.write_message(&Message::Verack).await.map_err(|e| e.to_string())?;
            let (msg, _) = r.read_message(MAX_HANDSHAKE_FRAME).await.map_err(|e| e.to_string())?;
            if msg != Message::Verack {
                return Err(format!("expected verack, got {}", msg.name()));
            }
            Ok((r, w, remote, local, theirs))
        };
        let done = rt.block_on(async { tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await });
        let (reader, writer, remote, local, node_version) = match done {
            Ok(Ok(x)) => x,
            Ok(Err(reason)) => return Err(fail(stage.get(), reason)),
            Err(_) => {
                return Err(fail(stage.get(), format!("no progress within {HANDSHAKE_TIMEOUT:?}")))
            }
        };
        Ok(HostilePeer {
            reader,
            writer: Some(writer),
            rt,
            write_timeout: WRITE_TIMEOUT,
            id: key.id(),
            remote,
            local,
            node_version,
            bytes_sent: 0,
            bytes_received: 0,
            messages_sent: 0,
        })
    }

    /// How long a write may wait for the node to take bytes before the peer gives up writing
    /// ([`WRITE_TIMEOUT`] unless set).
    pub fn set_write_timeout(&mut self, t: Duration) {
        self.write_timeout = t;
    }

    /// Our node id (the static key we proved), as the node shows it in `net_peers`.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The node id the node proved.
    pub fn remote_id(&self) -> NodeId {
        self.remote
    }

    /// Our end of the connection, as the node shows it in `net_peers[].address`.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The `Version` the node sent in the handshake.
    pub fn node_version(&self) -> &Version {
        &self.node_version
    }

    /// Bytes written to the node after the handshake (frames, tags included).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent
    }

    /// Bytes of the messages read from the node after the handshake.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Messages (and raw payloads) sent after the handshake.
    pub fn messages_sent(&self) -> u64 {
        self.messages_sent
    }

    /// Encrypts and sends one message; returns its bytes on the wire.
    pub fn send(&mut self, msg: &Message) -> Result<usize> {
        self.send_payload(&encode(msg))
            .with_context(|| format!("sending {} to the node", msg.name()))
    }

    /// Encrypts and sends one frame of any payload (up to `MAX_FRAME` bytes): an encoded
    /// message, or garbage that decrypts fine and decodes to nothing.
    pub fn send_payload(&mut self, payload: &[u8]) -> Result<usize> {
        let Some(w) = self.writer.as_mut() else {
            bail!("an earlier write timed out mid-frame; the stream cannot be written any more")
        };
        let t = self.write_timeout;
        match self.rt.block_on(async { tokio::time::timeout(t, w.write_payload(payload)).await }) {
            Ok(Ok(n)) => {
                self.bytes_sent += n as u64;
                self.messages_sent += 1;
                Ok(n)
            }
            Ok(Err(e)) => Err(anyhow!("write failed: {e}")),
            Err(_) => {
                self.writer = None;
                bail!("the node took nothing from the socket for {t:?}")
            }
        }
    }

    /// An encrypted frame whose payload is no message at all (variant index `u32::MAX`):
    /// authentic, so only the peer itself can have sent it, and undecodable.
    pub fn send_undecodable(&mut self) -> Result<usize> {
        self.send_payload(&[0xff; 16])
    }

    /// Reads the next message, waiting at most `within`: `Ok(None)` when none came in time,
    /// an error when the connection closed or failed (`WireError::Closed` on EOF).
    pub fn recv(&mut self, within: Duration) -> Result<Option<Message>, WireError> {
        let reader = &mut self.reader;
        let read = self.rt.block_on(async {
            // Cancel-safe: a frame cut by the timeout stays buffered for the next call.
            tokio::time::timeout(within, reader.read_message(MAX_FRAME)).await
        });
        match read {
            Err(_) => Ok(None),
            Ok(Ok((msg, n))) => {
                self.bytes_received += n as u64;
                Ok(Some(msg))
            }
            Ok(Err(e)) => Err(e),
        }
    }

    /// Reads messages, dropping those `pick` does not want, until it wants one or `within`
    /// passes (an error then, as when the connection closes).
    pub fn recv_until<T>(
        &mut self,
        within: Duration,
        what: &str,
        mut pick: impl FnMut(&Message) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no {what} from the node within {within:?}");
            }
            match self.recv(left) {
                Ok(Some(m)) => {
                    if let Some(x) = pick(&m) {
                        return Ok(x);
                    }
                }
                Ok(None) => {}
                Err(e) => bail!("waiting for {what}: the connection ended: {e}"),
            }
        }
    }

    /// Reads and drops what the node has sent already, without waiting for more.
    pub fn drain(&mut self) -> Result<usize, WireError> {
        let mut n = 0;
        while self.recv(Duration::ZERO)?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// A `Ping` and its `Pong` within `within`. The node handles a peer's messages in order,
    /// so the answer also says that everything sent before the ping has been handled (blocks
    /// excepted: they go through a pipeline of their own).
    pub fn round_trip(&mut self, within: Duration) -> Result<()> {
        let n: u64 = rand::random();
        self.send(&Message::Ping(n))?;
        self.recv_until(within, "pong", |m| (*m == Message::Pong(n)).then_some(()))
    }

    /// Asks for one block by id and waits for it.
    pub fn fetch_block(&mut self, id: BlockId, within: Duration) -> Result<Block> {
        self.send(&Message::GetData(vec![Inv::Block(id)]))?;
        let got = self.recv_until(within, "the block", |m| match m {
            Message::Block(b) if b.id() == id => Some(Some(b.clone())),
            Message::NotFound(items) if items.contains(&Inv::Block(id)) => Some(None),
            _ => None,
        })?;
        got.ok_or_else(|| anyhow!("the node does not have block {id}"))
    }

    /// Whether the node closes the connection within `within`: reads (and drops) whatever it
    /// still sends until EOF or a reset. A peer that stopped reading calls this only once it
    /// has seen the node drop it by other means (`net_peers`), since reading is what it
    /// refrained from.
    pub fn wait_closed(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.recv(left) {
                Ok(Some(_)) => {}
                Ok(None) => return false,
                Err(_) => return true,
            }
        }
    }
}

/// `count` headers of a branch forking at `parent`, each with valid proof of work and
/// following the header rules (height, `prev`, target, time above the median of the previous
/// eleven): the `i`-th (from 0) has time `first_time_ms + i`, which must be above the median
/// time past at `parent` and at most the receiver's clock plus `max_future_ms`. `tag` goes
/// into every header (as its `tx_root` and miner), so branches with different tags have
/// different ids. Devnet only: elsewhere a header costs millions of hashes.
pub fn side_branch(
    params: &ChainParams,
    parent: &BlockHeader,
    count: usize,
    first_time_ms: u64,
    tag: u64,
) -> Result<Vec<BlockHeader>> {
    if params.retarget {
        bail!("side branches with valid proof of work are only cheap on a devnet");
    }
    let root = sha256(&[b"ember hostile side branch", &tag.to_le_bytes()]);
    let miner = Address::from_bytes(root.to_bytes());
    let mut out: Vec<BlockHeader> = Vec::with_capacity(count);
    let mut prev = *parent;
    for i in 0..count as u64 {
        let mut h = BlockHeader {
            version: BLOCK_VERSION,
            height: prev.height + 1,
            prev: prev.id(),
            tx_root: root,
            time: first_time_ms + i,
            target: params.next_target(&prev),
            nonce: 0,
            miner,
        };
        if !solve_pow(&mut h, 1 << 20) {
            bail!("no proof of work found for a side header at height {}", h.height);
        }
        prev = h;
        out.push(h);
    }
    Ok(out)
}

/// A valid, empty child of `parent` stamped `time_ms` (e.g. [`now_ms`] plus 125 s, a little
/// beyond the node's `max_future_ms` of 120 s), mined to the devnet target.
pub fn early_block(
    params: &ChainParams,
    parent: &BlockHeader,
    time_ms: u64,
    miner: Address,
) -> Result<Block> {
    if params.retarget {
        bail!("blocks with valid proof of work are only cheap on a devnet");
    }
    let mut header = BlockHeader {
        version: BLOCK_VERSION,
        height: parent.height + 1,
        prev: parent.id(),
        tx_root: ember_core::block::merkle_root(&[]),
        time: time_ms,
        target: params.next_target(parent),
        nonce: 0,
        miner,
    };
    if !solve_pow(&mut header, 1 << 20) {
        bail!("no proof of work found for the block");
    }
    Ok(Block { header, txs: Vec::new() })
}

/// `n` distinct made-up `ip:port` addresses in two documentation ranges (198.51.100.0/24 and
/// 203.0.113.0/24), which no host on the internet answers; `batch` picks a fresh set
/// (batches 0, 1, 2... never repeat an address while `(batch + 1) * n` stays below
/// 25 million). Not 192.0.2.0/24: containers and CI sandboxes use it for real links.
pub fn made_up_addrs(n: usize, batch: u64) -> Vec<String> {
    const NETS: [&str; 2] = ["198.51.100", "203.0.113"];
    (0..n as u64)
        .map(|i| {
            let k = batch * n as u64 + i;
            let net = NETS[(k % 2) as usize];
            let host = 1 + (k / 2) % 254;
            let port = 10_000 + (k / 508) % 50_000;
            format!("{net}.{host}:{port}")
        })
        .collect()
}

/// TCP connections to a node that never start the handshake: each costs the node a file
/// descriptor and a handshake slot until its handshake timeout.
pub struct IdleConnections {
    addr: SocketAddr,
    conns: Vec<TcpStream>,
    /// Connection attempts that failed or timed out.
    pub failed: usize,
}

impl IdleConnections {
    /// Opens up to `n` connections to `addr`, raising this process's own open-file limit
    /// first if it is lower than `n` plus some room. Stops at the first attempt that fails
    /// (a node out of descriptors and backlog makes connects hang until they time out).
    pub fn open(addr: SocketAddr, n: usize) -> Result<IdleConnections> {
        raise_own_open_files(n as u64 + 256)?;
        let mut c = IdleConnections { addr, conns: Vec::with_capacity(n), failed: 0 };
        c.top_up(n);
        Ok(c)
    }

    /// Connections held now.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Forgets the connections the node has closed (EOF or reset); returns how many.
    pub fn reap_closed(&mut self) -> usize {
        let before = self.conns.len();
        let mut byte = [0u8; 1];
        self.conns.retain_mut(|s| match s.read(&mut byte) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        });
        before - self.conns.len()
    }

    /// Opens connections until `n` are held, stopping at the first failure; returns how many
    /// were opened.
    pub fn top_up(&mut self, n: usize) -> usize {
        let mut opened = 0;
        while self.conns.len() < n {
            match TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)) {
                Ok(s) => {
                    // Non-blocking, so that `reap_closed` can look without waiting.
                    let _ = s.set_nonblocking(true);
                    self.conns.push(s);
                    opened += 1;
                }
                Err(_) => {
                    self.failed += 1;
                    break;
                }
            }
        }
        opened
    }

    /// Closes every connection.
    pub fn close(&mut self) {
        self.conns.clear();
    }
}

/// Raises this process's soft limit on open files to at least `want` (up to the hard limit).
fn raise_own_open_files(want: u64) -> Result<()> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit")?;
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard).context("setrlimit")?;
    }
    Ok(())
}

/// Puts a running process under a limit of `n` open files (soft and hard), with util-linux
/// `prlimit`, and checks that it took.
pub fn limit_open_files(pid: u32, n: u64) -> Result<()> {
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={n}:{n}")])
        .status()
        .context("cannot run prlimit (util-linux)")?;
    if !status.success() {
        bail!("prlimit --pid {pid} --nofile={n}:{n} failed: {status}");
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no open-files line in /proc/<pid>/limits")?;
    if line.split_whitespace().nth(3) != Some(n.to_string().as_str()) {
        bail!("the limit did not take: {line}");
    }
    Ok(())
}

/// Resident memory of a process in bytes, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Bytes of the files under `path`, recursively (0 for what cannot be read).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The attacks [`run`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Attack {
    /// `GetData` of [`GETDATA_FLOOD_ENTRIES`] entries all naming the tip block, repeated as
    /// fast as the node takes it, never reading; a new such peer every second, at most four.
    GetDataFlood,
    /// Side branches forking at genesis with valid devnet proof of work, each ten blocks
    /// shorter than the node's chain (so never enough work to win), one `Headers` each.
    SideHeaders,
    /// `Addr` messages of 1,000 made-up addresses, one after another.
    AddrFlood,
    /// 1,100 TCP connections that never start the handshake, topped up as the node drops them.
    IdleConnections,
    /// A valid block stamped 125 s ahead of now (the node allows 120 s), from a new peer
    /// each round.
    EarlyBlock,
    /// An authentic encrypted frame that decodes to nothing, from a new peer each round.
    Garbage,
}

impl Attack {
    pub const ALL: [Attack; 6] = [
        Attack::GetDataFlood,
        Attack::SideHeaders,
        Attack::AddrFlood,
        Attack::IdleConnections,
        Attack::EarlyBlock,
        Attack::Garbage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Attack::GetDataFlood => "getdata-flood",
            Attack::SideHeaders => "side-headers",
            Attack::AddrFlood => "addr-flood",
            Attack::IdleConnections => "idle-connections",
            Attack::EarlyBlock => "early-block",
            Attack::Garbage => "garbage",
        }
    }
}

/// What [`run`] did.
#[derive(Debug, Clone, Serialize)]
pub struct AttackReport {
    pub attack: Attack,
    /// Repetitions of the attack's unit (a message, a connection, a branch).
    pub rounds: u64,
    /// Connections opened (handshaken peers and idle ones).
    pub connections: u64,
    /// Handshakes the node refused or cut (a ban, a limit, no answer).
    pub refused: u64,
    /// Handshaken connections the node closed while the attack used them.
    pub closed_by_node: u64,
    pub messages_sent: u64,
    pub bytes_sent: u64,
}

/// Most rounds of any attack, whatever the duration.
const MAX_ROUNDS: u64 = 100_000;
/// Connections [`Attack::IdleConnections`] holds.
const IDLE_CONNECTIONS: usize = 1_100;
/// Flooding peers [`Attack::GetDataFlood`] holds at once.
const FLOODERS: usize = 4;
/// How long a round waits for the node's answer.
const ROUND_WAIT: Duration = Duration::from_secs(5);

/// Repeats `attack` against the node at `p2p` (its RPC at `rpc`, for the tip) for about
/// `duration`, every loop bounded by that deadline and [`MAX_ROUNDS`]. An `Err` means the
/// attack could not be mounted at all (the node's RPC does not answer, or the network is
/// not a devnet where one is needed); what the node did to the attacker is in the report.
pub fn run(
    attack: Attack,
    p2p: SocketAddr,
    rpc: &RpcClient,
    params: &ChainParams,
    duration: Duration,
) -> Result<AttackReport> {
    let mut r = AttackReport {
        attack,
        rounds: 0,
        connections: 0,
        refused: 0,
        closed_by_node: 0,
        messages_sent: 0,
        bytes_sent: 0,
    };
    let deadline = Instant::now() + duration;
    let info = rpc.call("node_info", json!([])).context("node_info before the attack")?;
    let tip: BlockId = info["tip"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .context("node_info.tip is not a block id")?;
    let height = info["height"].as_u64().context("node_info.height")?;
    let opts = HostileOptions::default();
    match attack {
        Attack::GetDataFlood => {
            let flood = Message::GetData(vec![Inv::Block(tip); GETDATA_FLOOD_ENTRIES]);
            let mut held: Vec<HostilePeer> = Vec::new();
            let mut next_peer = Instant::now();
            while Instant::now() < deadline && r.rounds < MAX_ROUNDS {
                if held.len() < FLOODERS && Instant::now() >= next_peer {
                    next_peer = Instant::now() + Duration::from_secs(1);
                    if let Some(mut p) = connect_counted(&mut r, p2p, params, &opts) {
                        // A node that stops reading us makes a write give up quickly.
                        p.set_write_timeout(Duration::from_millis(200));
                        held.push(p);
                    }
                }
                // Held peers never read: that is the attack. A node that serves a repeated
                // entry once per request gets the request again and again.
                for p in &mut held {
                    if p.send(&flood).is_ok() {
                        r.rounds += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(100).min(left(deadline)));
            }
            for p in &held {
                tally(&mut r, p);
            }
        }
        Attack::SideHeaders => {
            let genesis = params.genesis().header;
            let len = (height.saturating_sub(10) as usize).clamp(1, MAX_HEADERS);
            let mut peer: Option<HostilePeer> = None;
            while Instant::now() < deadline && r.rounds < MAX_ROUNDS {
                let Some(p) = peer_or_connect(&mut r, &mut peer, p2p, params, &opts) else {
                    pace();
                    continue;
                };
                let tag = rand::random();
                let branch = side_branch(params, &genesis, len, genesis.time + 1, tag)?;
                // The ping after each branch paces us to the node's speed (and drains what it
                // sent, so that its queue to us never fills).
                let ok =
                    p.send(&Message::Headers(branch)).is_ok() && p.round_trip(ROUND_WAIT).is_ok();
                r.rounds += 1;
                if !ok {
                    drop_peer(&mut r, &mut peer);
                }
            }
            if let Some(p) = &peer {
                tally(&mut r, p);
            }
        }
        Attack::AddrFlood => {
            let mut peer: Option<HostilePeer> = None;
            while Instant::now() < deadline && r.rounds < MAX_ROUNDS {
                let Some(p) = peer_or_connect(&mut r, &mut peer, p2p, params, &opts) else {
                    pace();
                    continue;
                };
                let addrs = made_up_addrs(1_000, r.rounds);
                let ok = p.send(&Message::Addr(addrs)).is_ok() && p.round_trip(ROUND_WAIT).is_ok();
                r.rounds += 1;
                if !ok {
                    drop_peer(&mut r, &mut peer);
                }
            }
            if let Some(p) = &peer {
                tally(&mut r, p);
            }
        }
        Attack::IdleConnections => {
            let mut idle = IdleConnections::open(p2p, IDLE_CONNECTIONS)?;
            r.connections += idle.len() as u64;
            r.rounds += 1;
            while Instant::now() < deadline && r.rounds < MAX_ROUNDS {
                std::thread::sleep(Duration::from_millis(250).min(left(deadline)));
                idle.reap_closed();
                r.connections += idle.top_up(IDLE_CONNECTIONS) as u64;
                r.rounds += 1;
            }
            r.refused += idle.failed as u64;
            idle.close();
        }
        Attack::EarlyBlock | Attack::Garbage => {
            while Instant::now() < deadline && r.rounds < MAX_ROUNDS {
                let Some(mut p) = connect_counted(&mut r, p2p, params, &opts) else {
                    pace();
                    continue;
                };
                r.rounds += 1;
                let closed = if attack == Attack::Garbage {
                    let _ = p.send_undecodable();
                    p.wait_closed(ROUND_WAIT)
                } else {
                    let sent = p
                        .fetch_block(tip, ROUND_WAIT)
                        .and_then(|parent| {
                            let miner = Address::from_bytes(rand::random());
                            early_block(params, &parent.header, now_ms() + 125_000, miner)
                        })
                        .and_then(|b| p.send(&Message::Block(b)));
                    // The answer to a ping after it says whether the node kept us (blocks
                    // are handled in a pipeline of their own, so it may come first; then
                    // a punishment shows in the next rounds' refusals).
                    sent.is_err() || p.round_trip(ROUND_WAIT).is_err()
                };
                if closed {
                    r.closed_by_node += 1;
                }
                tally(&mut r, &p);
            }
        }
    }
    Ok(r)
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// A short pause after a refused connection, so that a node refusing everything is not
/// hammered in a tight loop.
fn pace() {
    std::thread::sleep(Duration::from_millis(100));
}

fn connect_counted(
    r: &mut AttackReport,
    p2p: SocketAddr,
    params: &ChainParams,
    opts: &HostileOptions,
) -> Option<HostilePeer> {
    r.connections += 1;
    match HostilePeer::connect(p2p, params, opts) {
        Ok(p) => Some(p),
        Err(_) => {
            r.refused += 1;
            None
        }
    }
}

fn peer_or_connect<'a>(
    r: &mut AttackReport,
    peer: &'a mut Option<HostilePeer>,
    p2p: SocketAddr,
    params: &ChainParams,
    opts: &HostileOptions,
) -> Option<&'a mut HostilePeer> {
    if peer.is_none() {
        *peer = connect_counted(r, p2p, params, opts);
    }
    peer.as_mut()
}

fn drop_peer(r: &mut AttackReport, peer: &mut Option<HostilePeer>) {
    if let Some(p) = peer.take() {
        r.closed_by_node += 1;
        tally(r, &p);
    }
}

fn tally(r: &mut AttackReport, p: &HostilePeer) {
    r.messages_sent += p.messages_sent();
    r.bytes_sent += p.bytes_sent();
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::validate::{check_header, check_header_context};

    #[test]
    fn side_branches_follow_the_header_rules_and_differ_by_tag() {
        let params = ChainParams::devnet();
        let genesis = params.genesis().header;
        let a = side_branch(&params, &genesis, 30, genesis.time + 1, 1).unwrap();
        let b = side_branch(&params, &genesis, 30, genesis.time + 1, 2).unwrap();
        assert_ne!(a[0].id(), b[0].id());
        let mut chain = vec![genesis];
        for h in &a {
            check_header(&params, h).unwrap();
            let parent = chain.last().unwrap();
            let times: Vec<u64> = chain.iter().rev().take(11).map(|h| h.time).collect();
            check_header_context(&params, h, parent, &times, now_ms()).unwrap();
            chain.push(*h);
        }
    }

    #[test]
    fn an_early_block_is_valid_but_for_its_time() {
        let params = ChainParams::devnet();
        let genesis = params.genesis().header;
        let now = now_ms();
        let b =
            early_block(&params, &genesis, now + 125_000, Address::from_bytes([3; 32])).unwrap();
        check_header(&params, &b.header).unwrap();
        let err = check_header_context(&params, &b.header, &genesis, &[genesis.time], now);
        assert!(matches!(err, Err(ember_core::BlockError::TimeTooNew { .. })), "{err:?}");
        check_header_context(&params, &b.header, &genesis, &[genesis.time], now + 10_000).unwrap();
    }

    #[test]
    fn made_up_addresses_are_distinct_across_batches() {
        let mut all: Vec<String> = (0..5).flat_map(|b| made_up_addrs(1_000, b)).collect();
        assert!(all.iter().all(|a| a.parse::<SocketAddr>().is_ok()));
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 5_000);
    }
}
