//! A fuzzed peer talking to a real node over the encrypted transport.
//!
//! The input is a sequence of records `kind (1 byte) || length (u16 LE) || bytes`. For most
//! kinds the bytes are one frame's payload: the harness encrypts it with a Noise session as
//! a peer would, the node's [`SecureReader`] decrypts and decodes it, and a message that
//! decodes is handled by the node's [`Network`] exactly as from a connected peer, against
//! the node's real chain, mempool, address book and bans. Kind 3 puts the bytes raw on the
//! encrypted stream instead (garbage from the path): they must never become a message.
//!
//! Checks beyond "no panic": a decoded message re-encodes to exactly the payload, and the
//! reader counts its wire bytes right; raw garbage never decodes; a peer the node punished
//! is cut off (nothing more of its input is handled, as its connection would close); and
//! the chain only ever moves to a tip whose stored state equals a replay from genesis.
#![no_main]

#[path = "../common/node.rs"]
mod common;

use ember_core::encoding::encode;
use ember_node::net::identity::NodeKey;
use ember_node::net::secure::{self, FrameMode, SecureReader, SecureWriter};
use ember_node::net::wire::{WireError, MAX_FRAME};
use ember_node::net::Network;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, LazyLock, Mutex};
use tokio::io::{duplex, DuplexStream, ReadHalf, WriteHalf};

type Writer = SecureWriter<WriteHalf<DuplexStream>>;
type Reader = SecureReader<ReadHalf<DuplexStream>>;

struct P2p {
    h: common::Harness,
    net: Arc<Network>,
    /// The fuzzer's end (writer) and the node's end (reader) of one encrypted connection,
    /// kept across inputs while the two stay in step (a handshake costs ~2 ms).
    link: Mutex<Option<(Writer, Reader)>>,
}

static P2P: LazyLock<P2p> = LazyLock::new(|| {
    let h = common::Harness::new();
    let net = Network::new(h.node.clone());
    P2p { h, net, link: Mutex::new(None) }
});

/// A fresh encrypted connection: a Noise handshake between the fuzzer's key and the node's.
async fn connect(node: &ember_node::Node) -> (Writer, Reader) {
    let (mut a, mut b) = duplex(1 << 17);
    let prologue = secure::prologue(node.params.magic, node.params.genesis_id(), FrameMode::Encrypted);
    let fuzzer_key = NodeKey::generate();
    let (sa, sb) = tokio::join!(
        secure::handshake(&mut a, node.params.magic, &prologue, &fuzzer_key, true),
        secure::handshake(&mut b, node.params.magic, &prologue, &node.node_key, false)
    );
    let (sa, sb) = (sa.expect("handshake"), sb.expect("handshake"));
    let (_, aw) = tokio::io::split(a);
    let (br, _) = tokio::io::split(b);
    let (_, w) = sa.split(tokio::io::empty(), aw);
    let (r, _) = sb.split(br, tokio::io::sink());
    // Only the two halves that carry fuzzer -> node traffic are kept.
    (w, r)
}

fuzz_target!(|data: &[u8]| {
    let p = &*P2P;
    let before = p.h.tip_and_digest();
    let mut handled_block = false;
    p.h.rt.block_on(async {
        let addr = "127.0.0.1:9".parse().expect("valid");
        let (id, mut rx) = p.net.fuzz_connect(addr, 0);
        // What the node sends back is drained as a live peer's socket would be.
        let drain = tokio::spawn(async move { while rx.next().await.is_some() {} });
        let mut rest = data;
        while rest.len() >= 3 {
            let kind = rest[0];
            let len = (u16::from_le_bytes([rest[1], rest[2]]) as usize).min(rest.len() - 3);
            let bytes = &rest[3..3 + len];
            rest = &rest[3 + len..];
            let mut link = p.link.lock().expect("never poisoned").take();
            if link.is_none() {
                link = Some(connect(&p.h.node).await);
            }
            let (mut w, mut r) = link.expect("connected above");
            if kind % 4 == 3 {
                // Garbage on the encrypted stream, then the end of it.
                use tokio::io::AsyncWriteExt;
                let mut inner = w.into_inner();
                inner.write_all(bytes).await.expect("room in the pipe");
                inner.shutdown().await.expect("shutdown");
                drop(inner);
                let got = r.read_message(MAX_FRAME).await;
                assert!(got.is_err(), "raw bytes became a message: {:?}", got.ok());
                break;
            }
            let sent = w.write_payload(bytes).await.expect("a frame within the cap");
            match r.read_message(MAX_FRAME).await {
                Ok((msg, n)) => {
                    assert_eq!(n, sent, "wire bytes counted");
                    assert_eq!(encode(&msg), bytes, "one encoding per message");
                    *p.link.lock().expect("never poisoned") = Some((w, r));
                    handled_block |= matches!(msg, ember_node::net::wire::Message::Block(_));
                    p.net.fuzz_handle(id, msg).await;
                    if p.net.fuzz_disconnected(id) {
                        break;
                    }
                }
                Err(e) => {
                    // The node would disconnect and ban. A frame that was read whole but
                    // did not decode leaves the session in step: keep it for the next input.
                    assert!(e.is_misbehaviour(), "a well-encrypted frame failed with {e}");
                    if matches!(e, WireError::Malformed(_) | WireError::TooMany { .. }) {
                        *p.link.lock().expect("never poisoned") = Some((w, r));
                    }
                    break;
                }
            }
        }
        p.net.fuzz_disconnect(id);
        drain.abort();
    });
    let after = p.h.tip_and_digest();
    if after != before {
        assert!(handled_block, "only a block moves the tip");
        let chain = p.h.node.chain.lock().expect("never poisoned");
        let (_, stored, replayed) = ember_node::chain::replay_check(&p.h.node.params, chain.store())
            .expect("the main chain replays from genesis");
        assert_eq!(stored, replayed, "the stored state equals a replay from genesis");
    }
});
