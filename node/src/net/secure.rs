//! The encrypted transport: a Noise handshake, then encrypted and authenticated frames.
//!
//! Every connection starts with `Noise_XX_25519_ChaChaPoly_BLAKE2s` ([`handshake`]): three
//! messages that exchange ephemeral keys and prove both sides' static keys (their node ids),
//! each carried in a plaintext frame of [`super::wire`] (network magic, length, at most
//! [`MAX_HANDSHAKE_FRAME`] bytes). The prologue binds the handshake to this protocol and
//! network ([`prologue`]): a peer with another magic or genesis cannot complete it. The
//! handshake payloads are empty, so each message has exactly one valid size; a plaintext
//! `Version` of the protocol before encryption, or garbage, is refused by its size or its
//! authentication tag before anything of it is used.
//!
//! After the handshake every [`Message`] is one encrypted frame:
//!
//! ```text
//! length  = AEAD(u32 LE payload length)                        4 + 16 bytes
//! chunk_i = AEAD(next min(65519, remaining) payload bytes)     up to 65535 bytes each
//! ```
//!
//! Each AEAD message is a Noise transport message (ChaCha20-Poly1305, empty associated
//! data, nonce = the direction's message counter), so the length is authenticated before it
//! is trusted, and a dropped, replayed, reordered or altered length or chunk fails its tag.
//! The decrypted length is checked against the cap before the payload is allocated; the
//! chunk sizes follow from it, so no chunk needs a length of its own. Each direction rekeys
//! (Noise `Rekey()`) after every [`REKEY_FRAMES`] frames, so a key captured later does not
//! decrypt earlier traffic of a long-lived connection.
//!
//! The two halves of a connection ([`SecureReader`], [`SecureWriter`]) share the Noise
//! transport state behind a mutex held only for the synchronous encryption or decryption of
//! one frame (the state keeps one cipher and nonce per direction, so the halves never touch
//! each other's). The ChaCha20-Poly1305 of the transport runs on `ring` (snow's
//! `ring-accelerated` resolver, about 6x less per small message than the pure-Rust cipher;
//! X25519 and BLAKE2s stay pure Rust); the bytes on the wire are the same either way (a test
//! runs one side on each). [`SecureReader::read_message`] is cancel-safe: it keeps partial input in
//! the reader, so the peer task can `select!` on it.

use super::identity::{NodeId, NodeKey};
use super::wire::{self, decode_message, Message, WireError, MAX_FRAME, MAX_HANDSHAKE_FRAME};
use ember_core::encoding::encode;
use ember_core::BlockId;
use snow::TransportState;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Bytes of an AEAD tag.
const TAG: usize = 16;
/// Largest Noise message.
const MAX_NOISE_MESSAGE: usize = 65_535;
/// Payload bytes per encrypted chunk.
pub const CHUNK: usize = MAX_NOISE_MESSAGE - TAG;
/// Bytes the reader asks the socket for at least, beyond what the current message needs.
const READ_AHEAD: usize = 8 * 1024;
/// Frames a direction sends (receives) between two rekeys.
pub const REKEY_FRAMES: u64 = 256;
/// The handshake messages' sizes: payloads are empty. `-> e`; `<- e, ee, s, es` (the static
/// key encrypted, with its tag, then the empty payload's tag); `-> s, se`.
const HANDSHAKE_SIZES: [usize; 3] = [32, 32 + 32 + TAG + TAG, 32 + TAG + TAG];

/// How frames travel after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameMode {
    /// Encrypted and authenticated (the only mode of a real network).
    Encrypted,
    /// The same frames in the clear, without tags: devnet benchmarks only
    /// (`--insecure-p2p-plaintext`), to measure what encryption costs.
    Plaintext,
}

impl FrameMode {
    /// Bytes of authentication tag after every length and chunk.
    fn tag(self) -> usize {
        match self {
            FrameMode::Encrypted => TAG,
            FrameMode::Plaintext => 0,
        }
    }
}

/// The Noise prologue: both sides must agree on it byte for byte, or the handshake fails.
/// `"ember-p2p-noise/1" || network magic (4 bytes) || genesis id (32 bytes)`; a plaintext
/// benchmark node uses `"ember-p2p-plain/1"`, so it never talks to an encrypting one.
pub fn prologue(magic: [u8; 4], genesis: BlockId, mode: FrameMode) -> Vec<u8> {
    let mut p = match mode {
        FrameMode::Encrypted => b"ember-p2p-noise/1".to_vec(),
        FrameMode::Plaintext => b"ember-p2p-plain/1".to_vec(),
    };
    p.extend_from_slice(&magic);
    p.extend_from_slice(genesis.as_bytes());
    p
}

/// A completed handshake: who the peer proved to be, and the keys for both directions.
pub struct Session {
    /// The node id (static key) the peer proved.
    pub remote: NodeId,
    state: TransportState,
}

impl Session {
    /// Puts the session over the two halves of the connection.
    pub fn split<R, W>(self, r: R, w: W) -> (SecureReader<R>, SecureWriter<W>) {
        self.split_with(r, w, FrameMode::Encrypted)
    }

    /// [`Session::split`], with frames in `mode` (both sides must use the same one, which
    /// the prologue guarantees).
    pub fn split_with<R, W>(
        self,
        r: R,
        w: W,
        mode: FrameMode,
    ) -> (SecureReader<R>, SecureWriter<W>) {
        let state = match mode {
            FrameMode::Encrypted => Some(Arc::new(Mutex::new(self.state))),
            FrameMode::Plaintext => None,
        };
        let reader = SecureReader {
            inner: r,
            state: state.clone(),
            tag: mode.tag(),
            buf: Vec::new(),
            start: 0,
            frame: None,
            frames: 0,
        };
        (reader, SecureWriter { inner: w, state, tag: mode.tag(), out: Vec::new(), frames: 0 })
    }
}

fn noise_error(step: usize, e: snow::Error) -> WireError {
    let hint = match e {
        snow::Error::Decrypt => {
            " (the peer is on another network, is not an Ember peer, or the bytes were altered)"
        }
        _ => "",
    };
    WireError::Handshake(format!("message {step}: {e}{hint}"))
}

/// Reads handshake message `step` (1-based), which must have exactly its expected size.
async fn read_handshake<S: AsyncRead + Unpin>(
    s: &mut S,
    magic: [u8; 4],
    step: usize,
) -> Result<Vec<u8>, WireError> {
    let msg = wire::read_frame(s, magic, MAX_HANDSHAKE_FRAME).await?;
    let want = HANDSHAKE_SIZES[step - 1];
    if msg.len() != want {
        return Err(WireError::Handshake(format!(
            "message {step} has {} bytes, expected {want} (a plaintext or foreign peer?)",
            msg.len()
        )));
    }
    Ok(msg)
}

/// Runs the Noise XX handshake as initiator (the side that dialed) or responder, with our
/// static key, over a stream whose first bytes are the handshake.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    magic: [u8; 4],
    prologue: &[u8],
    key: &NodeKey,
    initiator: bool,
) -> Result<Session, WireError> {
    handshake_expecting(s, magic, prologue, key, initiator, None).await
}

/// [`handshake`], and an initiator that expects the responder's node id checks it as soon as
/// message 2 proves it, before sending message 3 (which reveals our static key).
pub async fn handshake_expecting<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    magic: [u8; 4],
    prologue: &[u8],
    key: &NodeKey,
    initiator: bool,
    expected: Option<NodeId>,
) -> Result<Session, WireError> {
    let params = NOISE_PARAMS.parse().expect("a valid Noise protocol name");
    let builder = snow::Builder::new(params)
        .local_private_key(key.private())
        .and_then(|b| b.prologue(prologue))
        .map_err(|e| WireError::Handshake(format!("setup: {e}")))?;
    let mut hs = if initiator { builder.build_initiator() } else { builder.build_responder() }
        .map_err(|e| WireError::Handshake(format!("setup: {e}")))?;
    let mut buf = [0u8; 256];
    let mut empty = [0u8; 256];
    for step in 1..=3 {
        // The initiator writes messages 1 and 3, the responder message 2.
        if (step % 2 == 1) == initiator {
            let n = hs.write_message(&[], &mut buf).map_err(|e| noise_error(step, e))?;
            wire::write_frame(s, magic, &buf[..n]).await?;
        } else {
            let msg = read_handshake(s, magic, step).await?;
            let n = hs.read_message(&msg, &mut empty).map_err(|e| noise_error(step, e))?;
            if n != 0 {
                return Err(WireError::Handshake(format!("message {step} has a payload")));
            }
            // The initiator learns the responder's key from message 2, the responder the
            // initiator's from message 3.
            if let (Some(want), Some(_)) = (expected, hs.get_remote_static()) {
                let got = remote_id(&hs)?;
                if got != want {
                    return Err(WireError::UnexpectedNodeId { expected: want, got });
                }
            }
        }
    }
    let remote = remote_id(&hs)?;
    let state = hs.into_transport_mode().map_err(|e| WireError::Handshake(e.to_string()))?;
    Ok(Session { remote, state })
}

/// The static key the peer proved so far.
fn remote_id(hs: &snow::HandshakeState) -> Result<NodeId, WireError> {
    hs.get_remote_static()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .map(NodeId::from_bytes)
        .ok_or_else(|| WireError::Handshake("no static key from the peer".into()))
}

/// Bytes of an encrypted frame carrying `len` payload bytes.
pub fn frame_size(len: usize) -> usize {
    frame_size_with(len, TAG)
}

fn frame_size_with(len: usize, tag: usize) -> usize {
    4 + tag + len + len.div_ceil(CHUNK) * tag
}

/// A frame whose length is known and whose chunks are being decrypted.
struct PartialFrame {
    payload: Vec<u8>,
    filled: usize,
}

/// The receiving half: decrypts frames into messages.
pub struct SecureReader<R> {
    inner: R,
    /// The Noise keys; `None` in plaintext mode.
    state: Option<Arc<Mutex<TransportState>>>,
    /// Tag bytes per AEAD message (0 in plaintext mode).
    tag: usize,
    /// Received bytes not yet decrypted are `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// The frame being received, once its length is decrypted.
    frame: Option<PartialFrame>,
    frames: u64,
}

impl<R: AsyncRead + Unpin> SecureReader<R> {
    /// Reads until `buf[start..]` holds at least `n` bytes. Cancel-safe: bytes read are kept.
    async fn fill(&mut self, n: usize) -> Result<(), WireError> {
        while self.buf.len() - self.start < n {
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            // Room for at least what is needed, and for a few small frames at once, so that
            // a burst of small messages costs one read, not two per message.
            self.buf.reserve((n - self.buf.len()).max(READ_AHEAD));
            match self.inner.read_buf(&mut self.buf).await {
                Ok(0) => return Err(WireError::Closed),
                Ok(_) => {}
                Err(e) => return Err(WireError::Io(e.to_string())),
            }
        }
        Ok(())
    }

    /// Decrypts the next `n` buffered bytes (one AEAD message) into `out`.
    fn open(&mut self, n: usize, out: &mut [u8]) -> Result<(), WireError> {
        let msg = &self.buf[self.start..self.start + n];
        match &self.state {
            Some(state) => {
                let got = state
                    .lock()
                    .expect("the cipher lock is never poisoned")
                    .read_message(msg, out)
                    .map_err(|_| WireError::Auth)?;
                debug_assert_eq!(got, n - TAG);
            }
            None => out.copy_from_slice(msg),
        }
        self.start += n;
        Ok(())
    }

    /// Reads, authenticates and decodes one message, refusing a length over `cap` before
    /// allocating. Returns the message and the bytes it took on the wire. Cancel-safe.
    pub async fn read_message(&mut self, cap: usize) -> Result<(Message, usize), WireError> {
        loop {
            let Some(frame) = &self.frame else {
                self.fill(4 + self.tag).await?;
                let mut len = [0u8; 4];
                self.open(4 + self.tag, &mut len)?;
                let len = u32::from_le_bytes(len) as usize;
                if len > cap {
                    return Err(WireError::Oversized { len, max: cap });
                }
                self.frame = Some(PartialFrame { payload: vec![0; len], filled: 0 });
                continue;
            };
            let (len, filled) = (frame.payload.len(), frame.filled);
            if filled == len {
                let frame = self.frame.take().expect("checked above");
                self.frames += 1;
                if let Some(state) = self.state.as_ref().filter(|_| self.frames % REKEY_FRAMES == 0)
                {
                    state.lock().expect("the cipher lock is never poisoned").rekey_incoming();
                }
                let msg = decode_message(&frame.payload, cap)?;
                return Ok((msg, frame_size_with(len, self.tag)));
            }
            let chunk = CHUNK.min(len - filled);
            self.fill(chunk + self.tag).await?;
            // Decrypt into the frame's payload (taken out and put back to satisfy the
            // borrow checker; nothing in between can fail halfway).
            let mut frame = self.frame.take().expect("checked above");
            let result = self.open(chunk + self.tag, &mut frame.payload[filled..filled + chunk]);
            frame.filled += chunk;
            self.frame = Some(frame);
            result?;
        }
    }
}

/// The sending half: encrypts messages into frames.
pub struct SecureWriter<W> {
    inner: W,
    /// The Noise keys; `None` in plaintext mode.
    state: Option<Arc<Mutex<TransportState>>>,
    tag: usize,
    out: Vec<u8>,
    frames: u64,
}

impl<W: AsyncWrite + Unpin> SecureWriter<W> {
    /// The stream under the encryption (what a fuzz target writes garbage into).
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Encrypts and writes one message; returns the bytes it took on the wire.
    pub async fn write_message(&mut self, msg: &Message) -> Result<usize, WireError> {
        self.write_payload(&encode(msg)).await
    }

    /// Encrypts and writes one frame of any payload (an encoded message; the fuzz targets
    /// send arbitrary bytes); returns the bytes it took on the wire.
    pub async fn write_payload(&mut self, payload: &[u8]) -> Result<usize, WireError> {
        if payload.len() > MAX_FRAME {
            return Err(WireError::Oversized { len: payload.len(), max: MAX_FRAME });
        }
        let len = (payload.len() as u32).to_le_bytes();
        self.out.clear();
        match &self.state {
            Some(state) => {
                self.out.resize(frame_size_with(payload.len(), self.tag), 0);
                let mut state = state.lock().expect("the cipher lock is never poisoned");
                let seal = |state: &mut TransportState, plain: &[u8], out: &mut [u8]| {
                    state.write_message(plain, out).expect("chunks fit a Noise message")
                };
                let mut at = seal(&mut state, &len, &mut self.out);
                for chunk in payload.chunks(CHUNK) {
                    at += seal(&mut state, chunk, &mut self.out[at..]);
                }
                debug_assert_eq!(at, self.out.len());
                self.frames += 1;
                if self.frames % REKEY_FRAMES == 0 {
                    state.rekey_outgoing();
                }
            }
            None => {
                self.out.extend_from_slice(&len);
                self.out.extend_from_slice(payload);
            }
        }
        self.inner.write_all(&self.out).await.map_err(|e| WireError::Io(e.to_string()))?;
        Ok(self.out.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_core::{BlockId, Txid};
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};
    use wire::Inv;

    const MAGIC: [u8; 4] = *b"EMBd";
    /// Bytes of the encrypted length that starts every frame.
    const LENGTH_MESSAGE: usize = 4 + TAG;

    async fn pair(
        prologue_a: &[u8],
        prologue_b: &[u8],
    ) -> (Result<Session, WireError>, Result<Session, WireError>, NodeId, NodeId) {
        let (mut a, mut b) = duplex(1 << 20);
        let (ka, kb) = (NodeKey::generate(), NodeKey::generate());
        let (ia, ib) = (ka.id(), kb.id());
        let (pa, pb) = (prologue_a.to_vec(), prologue_b.to_vec());
        // Each side closes its end when done (or failed): buffered bytes stay readable.
        let ta = tokio::spawn(async move { handshake(&mut a, MAGIC, &pa, &ka, true).await });
        let rb = handshake(&mut b, MAGIC, &pb, &kb, false).await;
        drop(b);
        (ta.await.unwrap(), rb, ia, ib)
    }

    fn connected(
        sa: Session,
        sb: Session,
    ) -> (SecureWriter<DuplexStream>, SecureReader<DuplexStream>) {
        let (x, y) = duplex(1 << 16);
        let (_, w) = sa.split((), x);
        let (r, _) = sb.split(y, ());
        (w, r)
    }

    #[test]
    fn the_ring_cipher_speaks_the_same_noise_as_the_pure_rust_one() {
        use snow::resolvers::DefaultResolver;
        let params = || NOISE_PARAMS.parse::<snow::params::NoiseParams>().unwrap();
        let key = || snow::Builder::new(params()).generate_keypair().unwrap().private;
        let (ka, kb) = (key(), key());
        // What the node builds (ring for the cipher), against snow's pure-Rust resolver.
        let mut a = snow::Builder::new(params())
            .local_private_key(&ka)
            .unwrap()
            .prologue(b"p")
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut b = snow::Builder::with_resolver(params(), Box::new(DefaultResolver))
            .local_private_key(&kb)
            .unwrap()
            .prologue(b"p")
            .unwrap()
            .build_responder()
            .unwrap();
        let (mut buf, mut out) = ([0u8; 1024], [0u8; 1024]);
        for step in 0..3 {
            let (from, to) = if step % 2 == 0 { (&mut a, &mut b) } else { (&mut b, &mut a) };
            let n = from.write_message(&[], &mut buf).unwrap();
            to.read_message(&buf[..n], &mut out).unwrap();
        }
        let mut a = a.into_transport_mode().unwrap();
        let mut b = b.into_transport_mode().unwrap();
        for round in 0..3 {
            let text = format!("round {round}");
            let n = a.write_message(text.as_bytes(), &mut buf).unwrap();
            let m = b.read_message(&buf[..n], &mut out).unwrap();
            assert_eq!(&out[..m], text.as_bytes());
            let n = b.write_message(text.as_bytes(), &mut buf).unwrap();
            let m = a.read_message(&buf[..n], &mut out).unwrap();
            assert_eq!(&out[..m], text.as_bytes());
            a.rekey_outgoing();
            b.rekey_incoming();
            b.rekey_outgoing();
            a.rekey_incoming();
        }
        // One flipped bit fails the tag on either implementation.
        let n = a.write_message(b"x", &mut buf).unwrap();
        buf[0] ^= 1;
        assert!(b.read_message(&buf[..n], &mut out).is_err());
    }

    #[tokio::test]
    async fn both_sides_learn_each_others_id_and_messages_round_trip_across_rekeys() {
        let p = prologue(MAGIC, BlockId::ZERO, FrameMode::Encrypted);
        let (sa, sb, ia, ib) = pair(&p, &p).await;
        let (sa, sb) = (sa.unwrap(), sb.unwrap());
        assert_eq!(sa.remote, ib);
        assert_eq!(sb.remote, ia);
        let (mut w, mut r) = connected(sa, sb);
        let big = Message::Addr(vec!["x".repeat(1000); 1000]);
        let msgs: Vec<Message> = (0..2 * REKEY_FRAMES + 3)
            .map(|i| match i % 3 {
                0 => Message::Ping(i),
                1 => Message::Inv(vec![Inv::Tx(Txid::from_bytes([i as u8; 32]))]),
                _ if i % 50 == 2 => big.clone(),
                _ => Message::GetAddr,
            })
            .collect();
        let sent = msgs.clone();
        let writer = tokio::spawn(async move {
            for m in &sent {
                let n = w.write_message(m).await.unwrap();
                assert_eq!(n, frame_size(encode(m).len()));
            }
        });
        for m in msgs {
            let (got, _) = r.read_message(MAX_FRAME).await.unwrap();
            assert_eq!(got, m);
        }
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn an_initiator_expecting_another_id_stops_before_revealing_its_key() {
        let (mut a, mut b) = duplex(1 << 16);
        let (ka, kb, other) = (NodeKey::generate(), NodeKey::generate(), NodeKey::generate());
        let (want, got) = (other.id(), kb.id());
        let p = prologue(MAGIC, BlockId::ZERO, FrameMode::Encrypted);
        let p2 = p.clone();
        let ta = tokio::spawn(async move {
            handshake_expecting(&mut a, MAGIC, &p2, &ka, true, Some(want)).await
        });
        let rb = handshake(&mut b, MAGIC, &p, &kb, false).await;
        let ra = ta.await.unwrap();
        assert!(
            matches!(ra, Err(WireError::UnexpectedNodeId { expected, got: g }) if expected == want && g == got),
            "{:?}",
            ra.err()
        );
        // Message 3 was never sent: the responder saw the connection close instead.
        assert!(matches!(rb, Err(WireError::Closed)), "{:?}", rb.err());
    }

    #[tokio::test]
    async fn another_network_cannot_complete_the_handshake() {
        let (sa, sb, _, _) = pair(
            &prologue(MAGIC, BlockId::ZERO, FrameMode::Encrypted),
            &prologue(MAGIC, BlockId::from_bytes([1; 32]), FrameMode::Encrypted),
        )
        .await;
        assert!(matches!(sa, Err(WireError::Handshake(_))), "initiator: {:?}", sa.err());
        assert!(sb.is_err());
    }

    #[tokio::test]
    async fn a_plaintext_version_is_refused_by_its_size() {
        let (mut a, mut b) = duplex(1 << 16);
        let v = Message::Version(wire::Version {
            protocol: wire::PROTOCOL_VERSION,
            genesis: BlockId::ZERO,
            best_height: 0,
            best_work: [0; 32],
            listen_port: 1,
            user_agent: "old".into(),
            nonce: 1,
        });
        wire::write_message(&mut a, MAGIC, &v).await.unwrap();
        let key = NodeKey::generate();
        let err = handshake(&mut b, MAGIC, b"p", &key, false).await.err().unwrap();
        assert!(matches!(err, WireError::Handshake(_)) && err.is_misbehaviour(), "{err}");
        // The responder answered nothing: it never spoke to the plaintext peer.
        drop(b);
        let mut rest = Vec::new();
        a.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn altered_frames_fail_authentication_and_lengths_are_capped() {
        let p = prologue(MAGIC, BlockId::ZERO, FrameMode::Encrypted);
        for flip_at in [0usize, 19, 20, 30] {
            let (sa, sb, _, _) = pair(&p, &p).await;
            let (sa, sb) = (sa.unwrap(), sb.unwrap());
            let (mut x, y) = duplex(1 << 16);
            let (_, mut w) = sa.split((), Vec::new());
            let (mut r, _) = sb.split(y, ());
            w.write_message(&Message::Ping(42)).await.unwrap();
            let mut bytes = std::mem::take(&mut w.inner);
            bytes[flip_at] ^= 1;
            x.write_all(&bytes).await.unwrap();
            assert!(matches!(r.read_message(MAX_FRAME).await, Err(WireError::Auth)), "{flip_at}");
        }
        // A genuine length over the cap is refused before the payload arrives.
        let (sa, sb, _, _) = pair(&p, &p).await;
        let (mut x, y) = duplex(1 << 16);
        let (_, mut w) = sa.unwrap().split((), Vec::new());
        let (mut r, _) = sb.unwrap().split(y, ());
        w.write_message(&Message::Addr(vec!["x".repeat(100); 100])).await.unwrap();
        x.write_all(&w.inner[..LENGTH_MESSAGE]).await.unwrap();
        let err = r.read_message(MAX_HANDSHAKE_FRAME).await.err().unwrap();
        assert!(matches!(err, WireError::Oversized { max: MAX_HANDSHAKE_FRAME, .. }), "{err}");
    }

    #[tokio::test]
    async fn plaintext_mode_round_trips_in_the_clear_and_never_meets_an_encrypting_peer() {
        let plain = prologue(MAGIC, BlockId::ZERO, FrameMode::Plaintext);
        let (sa, sb, _, _) = pair(&plain, &plain).await;
        let (x, y) = duplex(1 << 20);
        let (_, mut w) = sa.unwrap().split_with((), x, FrameMode::Plaintext);
        let (mut r, _) = sb.unwrap().split_with(y, (), FrameMode::Plaintext);
        let msgs = [Message::Ping(7), Message::Addr(vec!["z".repeat(1000); 100]), Message::GetAddr];
        for m in &msgs {
            let n = w.write_message(m).await.unwrap();
            let payload = encode(m);
            assert_eq!(n, 4 + payload.len(), "no tags in plaintext mode");
            let (got, read) = r.read_message(MAX_FRAME).await.unwrap();
            assert_eq!((&got, read), (m, n));
        }
        // A plaintext node and an encrypting one disagree on the prologue: no session.
        let (sa, sb, _, _) =
            pair(&plain, &prologue(MAGIC, BlockId::ZERO, FrameMode::Encrypted)).await;
        assert!(sa.is_err() && sb.is_err());
    }

    #[tokio::test]
    async fn reading_survives_cancellation_mid_frame() {
        let p = prologue(MAGIC, BlockId::ZERO, FrameMode::Encrypted);
        let (sa, sb, _, _) = pair(&p, &p).await;
        let (mut x, y) = duplex(1 << 20);
        let (_, mut w) = sa.unwrap().split((), Vec::new());
        let (mut r, _) = sb.unwrap().split(y, ());
        let msg = Message::Addr(vec!["y".repeat(1000); 200]);
        w.write_message(&msg).await.unwrap();
        let bytes = std::mem::take(&mut w.inner);
        // Deliver all but the last byte in pieces, abandoning the read after each piece
        // (a zero timeout polls the read once, then drops it), as `select!` does.
        let (most, last) = bytes.split_at(bytes.len() - 1);
        for piece in most.chunks(7_000) {
            x.write_all(piece).await.unwrap();
            let read = r.read_message(MAX_FRAME);
            let res = tokio::time::timeout(std::time::Duration::ZERO, read).await;
            assert!(res.is_err(), "a partial frame cannot complete");
        }
        x.write_all(last).await.unwrap();
        assert_eq!(r.read_message(MAX_FRAME).await.unwrap().0, msg);
    }
}
