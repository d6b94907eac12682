//! The fuzz target's entry points (built only with `--cfg fuzzing`).

use super::identity::NodeId;
use super::peer::Peer;
use super::wire::Message;
use super::{outbox, Network};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Entry points (`fuzz/fuzz_targets/p2p.rs`, built with `--cfg fuzzing`):
/// a peer that exists only as its queue, whose messages the fuzzer supplies. It is
/// registered like a real one after its handshake, so every message goes through
/// `Network::handle` with the node's real state.
impl Network {
    /// Registers a fuzzed peer at `addr` claiming `height`; returns its id and the queues of
    /// what the node sends it (drain them, or the node treats the peer as slow).
    pub fn fuzz_connect(&self, addr: SocketAddr, height: u64) -> (u64, outbox::OutboxReceiver) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (out, rx) = outbox::outbox();
        let peer = Peer {
            user_agent: "fuzz".into(),
            height,
            ..Peer::new(
                addr,
                NodeId::from_bytes([7; 32]),
                true,
                out,
                self.node.shutdown.child_token(),
            )
        };
        self.peers.lock().expect("never poisoned").insert(id, peer);
        (id, rx)
    }

    /// Handles one message from fuzzed peer `id`, as its connection task would (a
    /// `GetData` is served at once).
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
