//! The wire format: plaintext frames and messages.
//!
//! A plaintext frame is `magic (4 bytes) || length (u32 LE) || payload`. On the network
//! only the three Noise handshake messages travel in plaintext frames ([`read_frame`],
//! [`write_frame`]); every [`Message`] after them is encrypted by [`super::secure`]. The
//! length is checked against a cap *before* anything is allocated: [`MAX_HANDSHAKE_FRAME`]
//! for handshake frames, so an unauthenticated stranger can make us buffer at most a few KiB;
//! [`MAX_FRAME`] for messages after the handshake (room for the largest block). After
//! decoding, list lengths are checked against the protocol limits ([`decode_message`]); a
//! peer that breaks any of these is disconnected and banned.
//!
//! [`read_message`] and [`write_message`] carry a [`Message`] in a plaintext frame: the
//! protocol before encryption, kept for tests that play an old plaintext peer.

pub use super::compact::CompactBlock;
use bincode::{Decode, Encode};
use ember_core::encoding::{decode, encode};
use ember_core::{Block, BlockHeader, BlockId, Transaction, Txid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Protocol version spoken by this node.
pub const PROTOCOL_VERSION: u32 = 2;
/// Largest frame payload after the handshake: a maximal block plus slack.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;
/// Largest frame payload before the handshake completes.
pub const MAX_HANDSHAKE_FRAME: usize = 4 * 1024;
/// Most headers in one `Headers` message.
pub const MAX_HEADERS: usize = 2_000;
/// Most entries in one `Inv`, `GetData` or `NotFound`.
pub const MAX_INV: usize = 50_000;
/// Most addresses in one `Addr`.
pub const MAX_ADDRS: usize = 1_000;
/// Most hashes in a block locator.
pub const MAX_LOCATOR: usize = 101;
/// Most payments a compact block, `GetBlockTxn` or `BlockTxn` may name: what fits in the
/// largest frame ([`MAX_FRAME`]); the network's own block limit is checked on receipt.
pub const MAX_COMPACT_TXS: usize = MAX_FRAME / ember_core::tx::TX_ENCODED_LEN;

/// What an inventory entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum Inv {
    Tx(Txid),
    Block(BlockId),
}

/// The handshake's first message, sent by both sides.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Version {
    pub protocol: u32,
    /// Genesis id: a peer of another network is refused.
    pub genesis: BlockId,
    pub best_height: u64,
    /// Cumulative work of the sender's tip, big-endian.
    pub best_work: [u8; 32],
    /// The port the sender accepts connections on (0 = none).
    pub listen_port: u16,
    pub user_agent: String,
    /// Random per-process value: receiving our own nonce means we connected to ourselves.
    pub nonce: u64,
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Message {
    Version(Version),
    Verack,
    Ping(u64),
    Pong(u64),
    GetAddr,
    /// Known peer addresses as "ip:port" text.
    Addr(Vec<String>),
    Inv(Vec<Inv>),
    GetData(Vec<Inv>),
    NotFound(Vec<Inv>),
    Tx(Transaction),
    Block(Block),
    /// Headers after the first locator entry on the sender's main chain, up to `stop`
    /// (zero = as many as allowed).
    GetHeaders {
        locator: Vec<BlockId>,
        stop: BlockId,
    },
    Headers(Vec<BlockHeader>),
    /// BIP152's `sendcmpct`: send me new blocks as compact blocks; with `high_bandwidth`,
    /// as soon as their proof of work checks, before validating them.
    SendCmpct {
        high_bandwidth: bool,
    },
    /// BIP152's `cmpctblock` ([`CompactBlock`]).
    CmpctBlock(CompactBlock),
    /// BIP152's `getblocktxn`: the payments of `block` at these indexes (ascending).
    GetBlockTxn {
        block: BlockId,
        indexes: Vec<u32>,
    },
    /// BIP152's `blocktxn`: the payments a `GetBlockTxn` asked for, in its order.
    BlockTxn {
        block: BlockId,
        txs: Vec<Transaction>,
    },
}

impl Message {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Version(_) => "version",
            Message::Verack => "verack",
            Message::Ping(_) => "ping",
            Message::Pong(_) => "pong",
            Message::GetAddr => "getaddr",
            Message::Addr(_) => "addr",
            Message::Inv(_) => "inv",
            Message::GetData(_) => "getdata",
            Message::NotFound(_) => "notfound",
            Message::Tx(_) => "tx",
            Message::Block(_) => "block",
            Message::GetHeaders { .. } => "getheaders",
            Message::Headers(_) => "headers",
            Message::SendCmpct { .. } => "sendcmpct",
            Message::CmpctBlock(_) => "cmpctblock",
            Message::GetBlockTxn { .. } => "getblocktxn",
            Message::BlockTxn { .. } => "blocktxn",
        }
    }

    /// Checks the per-message list limits.
    pub fn check_limits(&self) -> Result<(), WireError> {
        let (n, max) = match self {
            Message::Addr(a) => (a.len(), MAX_ADDRS),
            Message::Inv(v) | Message::GetData(v) | Message::NotFound(v) => (v.len(), MAX_INV),
            Message::Headers(h) => (h.len(), MAX_HEADERS),
            Message::GetHeaders { locator, .. } => (locator.len(), MAX_LOCATOR),
            Message::Version(v) => (v.user_agent.len(), 256),
            Message::CmpctBlock(cb) => (cb.tx_count(), MAX_COMPACT_TXS),
            Message::GetBlockTxn { indexes, .. } => (indexes.len(), MAX_COMPACT_TXS),
            Message::BlockTxn { txs, .. } => (txs.len(), MAX_COMPACT_TXS),
            _ => (0, 0),
        };
        if n > max {
            return Err(WireError::TooMany { what: self.name(), count: n, max });
        }
        Ok(())
    }
}

/// Why a frame was refused. Every variant is the peer's fault.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("i/o: {0}")]
    Io(String),
    #[error("wrong network magic {0:02x?}")]
    BadMagic([u8; 4]),
    #[error("frame of {len} bytes exceeds the {max}-byte cap")]
    Oversized { len: usize, max: usize },
    #[error("undecodable message: {0}")]
    Malformed(String),
    #[error("{what} with {count} entries exceeds the limit of {max}")]
    TooMany { what: &'static str, count: usize, max: usize },
    /// The Noise handshake failed: garbage, a plaintext (pre-encryption) peer, another
    /// network (the prologue differs), or bytes altered in flight.
    #[error("noise handshake failed: {0}")]
    Handshake(String),
    /// A frame after the handshake failed authentication: corrupted in flight or forged.
    #[error("frame failed authentication (corrupted in flight or forged)")]
    Auth,
    /// The peer proved a static key other than the one `ID@host:port` asked for.
    #[error("peer proved node id {got}, but {expected} was expected")]
    UnexpectedNodeId { expected: super::identity::NodeId, got: super::identity::NodeId },
}

impl WireError {
    /// Whether the error is the peer's misbehaviour, to be punished with a ban. A closed
    /// connection, an I/O error or a peer with another key than expected is not. Neither is
    /// a frame that fails authentication after the handshake: an attacker on the path can
    /// cause that, and must not be able to make honest peers ban each other (the connection
    /// is closed all the same, and nothing of the frame is used).
    pub fn is_misbehaviour(&self) -> bool {
        !matches!(
            self,
            WireError::Closed
                | WireError::Io(_)
                | WireError::Auth
                | WireError::UnexpectedNodeId { .. }
        )
    }
}

/// Reads one plaintext frame's payload, refusing a wrong magic, and anything over `cap`
/// before reading it. Returns the payload.
pub async fn read_frame<R: AsyncReadExt + Unpin>(
    r: &mut R,
    magic: [u8; 4],
    cap: usize,
) -> Result<Vec<u8>, WireError> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
        Err(e) => return Err(WireError::Io(e.to_string())),
    }
    let got: [u8; 4] = head[..4].try_into().expect("4 bytes");
    if got != magic {
        return Err(WireError::BadMagic(got));
    }
    let len = u32::from_le_bytes(head[4..].try_into().expect("4 bytes")) as usize;
    if len > cap {
        return Err(WireError::Oversized { len, max: cap });
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await.map_err(|e| WireError::Io(e.to_string()))?;
    Ok(payload)
}

/// Writes one plaintext frame around `payload`.
pub async fn write_frame<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    magic: [u8; 4],
    payload: &[u8],
) -> Result<(), WireError> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    w.write_all(&out).await.map_err(|e| WireError::Io(e.to_string()))
}

/// Decodes one message payload (exactly one message, no trailing bytes) and checks its list
/// limits.
pub fn decode_message(payload: &[u8], cap: usize) -> Result<Message, WireError> {
    let msg: Message = decode(payload, cap).map_err(|e| WireError::Malformed(e.to_string()))?;
    msg.check_limits()?;
    Ok(msg)
}

/// Reads one plaintext frame and decodes its message, refusing anything over `cap` before
/// reading it.
pub async fn read_message<R: AsyncReadExt + Unpin>(
    r: &mut R,
    magic: [u8; 4],
    cap: usize,
) -> Result<(Message, usize), WireError> {
    let payload = read_frame(r, magic, cap).await?;
    let msg = decode_message(&payload, cap)?;
    Ok((msg, payload.len() + 8))
}

/// Encodes a message into a plaintext frame.
pub fn frame(magic: [u8; 4], msg: &Message) -> Vec<u8> {
    let payload = encode(msg);
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Writes one message in a plaintext frame.
pub async fn write_message<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    magic: [u8; 4],
    msg: &Message,
) -> Result<usize, WireError> {
    let bytes = frame(magic, msg);
    w.write_all(&bytes).await.map_err(|e| WireError::Io(e.to_string()))?;
    Ok(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 4] = *b"EMBd";

    #[tokio::test]
    async fn frames_round_trip() {
        let msgs = vec![
            Message::Ping(7),
            Message::Inv(vec![Inv::Tx(Txid::from_bytes([1; 32]))]),
            Message::GetHeaders { locator: vec![BlockId::ZERO], stop: BlockId::ZERO },
        ];
        for m in msgs {
            let bytes = frame(MAGIC, &m);
            let (back, n) = read_message(&mut bytes.as_slice(), MAGIC, MAX_FRAME).await.unwrap();
            assert_eq!(back, m);
            assert_eq!(n, bytes.len());
        }
    }

    #[tokio::test]
    async fn bad_frames_are_refused() {
        let good = frame(MAGIC, &Message::Ping(1));
        assert!(matches!(
            read_message(&mut good.as_slice(), *b"EMBt", MAX_FRAME).await,
            Err(WireError::BadMagic(_))
        ));
        // A length over the cap is refused before the payload is read.
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_message(&mut huge.as_slice(), MAGIC, MAX_FRAME).await,
            Err(WireError::Oversized { .. })
        ));
        let big = frame(MAGIC, &Message::Addr(vec!["x".repeat(100); 100]));
        assert!(matches!(
            read_message(&mut big.as_slice(), MAGIC, MAX_HANDSHAKE_FRAME).await,
            Err(WireError::Oversized { .. })
        ));
        // Garbage payload.
        let mut garbage = MAGIC.to_vec();
        garbage.extend_from_slice(&3u32.to_le_bytes());
        garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert!(matches!(
            read_message(&mut garbage.as_slice(), MAGIC, MAX_FRAME).await,
            Err(WireError::Malformed(_))
        ));
        // List limits.
        let many = frame(MAGIC, &Message::Addr(vec![String::new(); MAX_ADDRS + 1]));
        assert!(matches!(
            read_message(&mut many.as_slice(), MAGIC, MAX_FRAME).await,
            Err(WireError::TooMany { .. })
        ));
        // Truncated.
        assert!(read_message(&mut &good[..good.len() - 1], MAGIC, MAX_FRAME).await.is_err());
    }
}
