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
mod tests;
