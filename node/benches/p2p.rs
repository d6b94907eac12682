//! Criterion benchmarks of the P2P transport on loopback TCP: what the Noise handshake and
//! the encryption of frames cost (`cargo bench -p ember-node --bench p2p`; in a dev build,
//! run the bench binary `target/debug/deps/p2p-*` with `--bench`).
//!
//! # `p2p_handshake`: connection set-up
//!
//! - `tcp_connect`: a loopback TCP connect and accept, nothing else: the baseline.
//! - `noise_xx`: the same plus the whole `Noise_XX_25519_ChaChaPoly_BLAKE2s` handshake of
//!   `net::secure::handshake`, both sides on one thread (three messages, three X25519 DH and
//!   one key generation per side). `noise_xx - tcp_connect` is the handshake's cost; on a
//!   real link add 1.5 round trips.
//!
//! # `p2p_frames_*`: one message through the frame layer
//!
//! A writer and a reader on the two ends of one loopback TCP connection, joined on one
//! thread, so the figure is the CPU of both ends: encode, frame, TCP, unframe, decode —
//! `plaintext` with the pre-encryption frames of `net::wire` (magic, length, payload),
//! `encrypted` with `net::secure` (encrypted length, ChaCha20-Poly1305 chunks). The
//! throughput is in payload bytes.
//!
//! `plaintext_mem` and `encrypted_mem` do the same over an in-memory pipe
//! (`tokio::io::duplex`) instead of TCP: no system calls, so their difference is the cost
//! of the encryption alone, with less noise from a busy machine. `plaintext_mode_mem` is
//! `net::secure`'s frames with the ciphers left out (the node's `--insecure-p2p-plaintext`):
//! `encrypted_mem - plaintext_mode_mem` is what the ciphers cost per message.
//!
//! - `p2p_frames_block_1000tx`: a `Block` of 1,000 payments (about 190 KB): the block relay
//!   path, where `encrypted / plaintext` bounds what encryption adds to a block's hop.
//! - `p2p_frames_inv_1`: an `Inv` of one txid: the per-message overhead on small messages.

use criterion::{Criterion, SamplingMode, Throughput};
use ember_core::encoding::encode;
use ember_core::testkit::{child_block, devnet_funding, keys, pay};
use ember_core::Txid;
use ember_node::net::identity::NodeKey;
use ember_node::net::secure::{self, SecureReader, SecureWriter, Session};
use ember_node::net::wire::{self, Inv, Message, MAX_FRAME};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

const MAGIC: [u8; 4] = *b"EMBd";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// Both ends of a fresh loopback TCP connection, Nagle off as in the node.
async fn tcp_pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let addr = listener.local_addr().expect("bound");
    let (a, b) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (a, (b, _)) = (a.expect("connect"), b.expect("accept"));
    a.set_nodelay(true).expect("nodelay");
    b.set_nodelay(true).expect("nodelay");
    (a, b)
}

/// Runs the Noise handshake over both ends; returns the dialer's and the listener's session.
async fn noise_pair(
    a: &mut TcpStream,
    b: &mut TcpStream,
    ka: &NodeKey,
    kb: &NodeKey,
    prologue: &[u8],
) -> (Session, Session) {
    let (sa, sb) = tokio::join!(
        secure::handshake(a, MAGIC, prologue, ka, true),
        secure::handshake(b, MAGIC, prologue, kb, false)
    );
    (sa.expect("initiator handshake"), sb.expect("responder handshake"))
}

fn bench_handshake(c: &mut Criterion) {
    let rt = runtime();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let (ka, kb) = (NodeKey::generate(), NodeKey::generate());
    let prologue = secure::prologue(MAGIC, ember_core::BlockId::ZERO, secure::FrameMode::Encrypted);
    let mut g = c.benchmark_group("p2p_handshake");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("tcp_connect", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    drop(tcp_pair(&listener).await);
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("noise_xx", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let (mut x, mut y) = tcp_pair(&listener).await;
                    drop(noise_pair(&mut x, &mut y, &ka, &kb, &prologue).await);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn bench_frames(c: &mut Criterion) {
    let k = keys(100);
    let params = devnet_funding(&k, 1_000_000);
    let txs: Vec<_> = (0..10)
        .flat_map(|nonce| {
            let (k, params) = (&k, &params);
            (0..k.len())
                .map(move |i| pay(params, &k[i], k[(i + 1) % k.len()].address(), 1, 1, nonce))
        })
        .collect();
    let block = child_block(&params, &params.genesis().header, txs, k[0].address(), 0);
    let workloads = [
        ("block_1000tx", Message::Block(block)),
        ("inv_1", Message::Inv(vec![Inv::Tx(Txid::from_bytes([7; 32]))])),
    ];

    let rt = runtime();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let (ka, kb) = (NodeKey::generate(), NodeKey::generate());
    let prologue = secure::prologue(MAGIC, ember_core::BlockId::ZERO, secure::FrameMode::Encrypted);
    for (name, msg) in workloads {
        let mut g = c.benchmark_group(format!("p2p_frames_{name}"));
        g.throughput(Throughput::Bytes(encode(&msg).len() as u64));
        g.sampling_mode(SamplingMode::Flat);
        g.warm_up_time(Duration::from_secs(1));
        g.measurement_time(Duration::from_secs(4));

        // Over loopback TCP.
        let (a, b) = rt.block_on(tcp_pair(&listener));
        let (_, mut w) = a.into_split();
        let (mut r, _) = b.into_split();
        g.bench_function("plaintext", |bch| {
            bch.iter_custom(|iters| rt.block_on(pump_plain(&mut r, &mut w, &msg, iters)))
        });
        let (mut a, mut b) = rt.block_on(tcp_pair(&listener));
        let (sa, sb) = rt.block_on(noise_pair(&mut a, &mut b, &ka, &kb, &prologue));
        let (_, aw) = a.into_split();
        let (br, _) = b.into_split();
        let (_, mut w) = sa.split((), aw);
        let (mut r, _) = sb.split(br, ());
        g.bench_function("encrypted", |bch| {
            bch.iter_custom(|iters| rt.block_on(pump_secure(&mut r, &mut w, &msg, iters)))
        });

        // Over an in-memory pipe: no kernel, so the difference is the encryption alone.
        let (a, b) = tokio::io::duplex(PIPE);
        let (_, mut w) = tokio::io::split(a);
        let (mut r, _) = tokio::io::split(b);
        g.bench_function("plaintext_mem", |bch| {
            bch.iter_custom(|iters| rt.block_on(pump_plain(&mut r, &mut w, &msg, iters)))
        });
        let (mut a, mut b) = tokio::io::duplex(PIPE);
        let (sa, sb) = rt.block_on(async {
            tokio::join!(
                secure::handshake(&mut a, MAGIC, &prologue, &ka, true),
                secure::handshake(&mut b, MAGIC, &prologue, &kb, false)
            )
        });
        let (_, mut w) = sa.expect("handshake").split((), a);
        let (mut r, _) = sb.expect("handshake").split(b, ());
        g.bench_function("encrypted_mem", |bch| {
            bch.iter_custom(|iters| rt.block_on(pump_secure(&mut r, &mut w, &msg, iters)))
        });
        // The node's own plaintext mode (`--insecure-p2p-plaintext`): the same frame layer
        // with the ciphers left out, what the bench's encryption comparison runs against.
        let (mut a, mut b) = tokio::io::duplex(PIPE);
        let plain =
            secure::prologue(MAGIC, ember_core::BlockId::ZERO, secure::FrameMode::Plaintext);
        let (sa, sb) = rt.block_on(async {
            tokio::join!(
                secure::handshake(&mut a, MAGIC, &plain, &ka, true),
                secure::handshake(&mut b, MAGIC, &plain, &kb, false)
            )
        });
        let (_, mut w) = sa.expect("handshake").split_with((), a, secure::FrameMode::Plaintext);
        let (mut r, _) = sb.expect("handshake").split_with(b, (), secure::FrameMode::Plaintext);
        g.bench_function("plaintext_mode_mem", |bch| {
            bch.iter_custom(|iters| rt.block_on(pump_secure(&mut r, &mut w, &msg, iters)))
        });
        g.finish();
    }
}

/// Bytes the in-memory pipe buffers.
const PIPE: usize = 1 << 20;

/// Sends `iters` copies of `msg` in plaintext frames and reads them back; the elapsed time.
async fn pump_plain<R, W>(r: &mut R, w: &mut W, msg: &Message, iters: u64) -> Duration
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let start = Instant::now();
    let send = async {
        for _ in 0..iters {
            wire::write_message(w, MAGIC, msg).await.expect("write");
        }
    };
    let recv = async {
        for _ in 0..iters {
            wire::read_message(r, MAGIC, MAX_FRAME).await.expect("read");
        }
    };
    tokio::join!(send, recv);
    start.elapsed()
}

/// The same through the encrypted frames.
async fn pump_secure<R, W>(
    r: &mut SecureReader<R>,
    w: &mut SecureWriter<W>,
    msg: &Message,
    iters: u64,
) -> Duration
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let start = Instant::now();
    let send = async {
        for _ in 0..iters {
            w.write_message(msg).await.expect("write");
        }
    };
    let recv = async {
        for _ in 0..iters {
            r.read_message(MAX_FRAME).await.expect("read");
        }
    };
    tokio::join!(send, recv);
    start.elapsed()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_handshake(&mut c);
    bench_frames(&mut c);
    c.final_summary();
}
