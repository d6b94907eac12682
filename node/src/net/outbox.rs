//! A peer's two outbound queues, each bounded in bytes: gossip (what we push: blocks,
//! announcements, pings) and replies (what the peer asked for: blocks, transactions,
//! headers, addresses).
//!
//! Messages are encoded once when queued ([`Payload`], shared between peers for a block
//! relayed to all of them) and written by the peer's writer task, gossip first.
//!
//! Bounds: gossip may hold at most [`GOSSIP_BUDGET`] bytes; queueing past it fails, and the
//! caller drops the peer as too slow (gossip never waits, grin's rule). Replies are only
//! produced while the reply queue holds less than [`REPLY_BUDGET`] bytes
//! ([`Outbox::reply_room`] waits for that), so what a peer's own requests make us hold is
//! at most `REPLY_BUDGET` plus one message (as Bitcoin Core serves `getdata` only while
//! the peer's send buffer is below its limit). Each queued message also counts
//! [`OVERHEAD`] bytes, so a flood of tiny messages is bounded too.

use super::wire::Message;
use ember_core::encoding::encode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

/// Most bytes of gossip queued to one peer.
pub const GOSSIP_BUDGET: usize = 16 * 1024 * 1024;
/// Replies are produced only while fewer bytes than this are queued to the peer (Bitcoin
/// Core's `DEFAULT_MAXSENDBUFFER` is 1,000 KB, `net.h`).
pub const REPLY_BUDGET: usize = 1024 * 1024;
/// What each queued message counts beyond its payload (the queue's own memory).
pub const OVERHEAD: usize = 64;

/// An encoded message, shareable between peers.
pub type Payload = Arc<Vec<u8>>;

/// Encodes a message for queueing.
pub fn payload(msg: &Message) -> Payload {
    Arc::new(encode(msg))
}

/// The sending side, held by the network (and cloned by whoever queues).
#[derive(Clone)]
pub struct Outbox {
    gossip: mpsc::UnboundedSender<Payload>,
    replies: mpsc::UnboundedSender<Payload>,
    gossip_bytes: Arc<AtomicUsize>,
    reply_bytes: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

/// The receiving side, owned by the peer's writer task.
pub struct OutboxReceiver {
    gossip: mpsc::UnboundedReceiver<Payload>,
    replies: mpsc::UnboundedReceiver<Payload>,
    gossip_bytes: Arc<AtomicUsize>,
    reply_bytes: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

/// A new pair of queues.
pub fn outbox() -> (Outbox, OutboxReceiver) {
    let (gtx, grx) = mpsc::unbounded_channel();
    let (rtx, rrx) = mpsc::unbounded_channel();
    let gossip_bytes = Arc::new(AtomicUsize::new(0));
    let reply_bytes = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(Notify::new());
    (
        Outbox {
            gossip: gtx,
            replies: rtx,
            gossip_bytes: gossip_bytes.clone(),
            reply_bytes: reply_bytes.clone(),
            drained: drained.clone(),
        },
        OutboxReceiver { gossip: grx, replies: rrx, gossip_bytes, reply_bytes, drained },
    )
}

impl Outbox {
    /// Queues gossip without waiting. False when the gossip budget would be exceeded or
    /// the writer is gone: the caller drops the peer.
    pub fn gossip(&self, p: Payload) -> bool {
        let cost = p.len() + OVERHEAD;
        let before = self.gossip_bytes.fetch_add(cost, Ordering::AcqRel);
        if before + cost > GOSSIP_BUDGET {
            self.gossip_bytes.fetch_sub(cost, Ordering::AcqRel);
            return false;
        }
        self.gossip.send(p).is_ok()
    }

    /// [`Outbox::gossip`] of a message encoded for this peer alone.
    pub fn gossip_msg(&self, msg: &Message) -> bool {
        self.gossip(payload(msg))
    }

    /// Queues a reply. Call [`Outbox::reply_room`] first: this does not check the budget.
    pub fn reply(&self, p: Payload) -> bool {
        self.reply_bytes.fetch_add(p.len() + OVERHEAD, Ordering::AcqRel);
        self.replies.send(p).is_ok()
    }

    /// Waits until the reply queue is under [`REPLY_BUDGET`], or the writer is gone (then
    /// there is nothing to wait for: what is queued next is dropped with the queue).
    pub async fn reply_room(&self) {
        loop {
            let notified = self.drained.notified();
            if self.reply_bytes.load(Ordering::Acquire) < REPLY_BUDGET || self.replies.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Bytes queued and not yet written, both queues.
    pub fn queued_bytes(&self) -> usize {
        self.gossip_bytes.load(Ordering::Acquire) + self.reply_bytes.load(Ordering::Acquire)
    }
}

impl OutboxReceiver {
    /// The next payload to write, gossip first; None when every sender is gone.
    pub async fn next(&mut self) -> Option<Payload> {
        let (p, bytes) = tokio::select! {
            biased;
            p = self.gossip.recv() => match p {
                Some(p) => (p, &self.gossip_bytes),
                None => (self.replies.recv().await?, &self.reply_bytes),
            },
            Some(p) = self.replies.recv() => (p, &self.reply_bytes),
        };
        bytes.fetch_sub(p.len() + OVERHEAD, Ordering::AcqRel);
        self.drained.notify_waiters();
        Some(p)
    }
}

impl Drop for OutboxReceiver {
    /// Wakes whoever waits for room: the writer is gone, so no room will ever come.
    fn drop(&mut self) {
        self.replies.close();
        self.drained.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gossip_past_its_budget_is_refused_and_replies_wait_for_room() {
        let (out, mut rx) = outbox();
        let big = Arc::new(vec![0u8; 1024 * 1024]);
        let mut queued = 0;
        while out.gossip(big.clone()) {
            queued += 1;
        }
        assert_eq!(queued, GOSSIP_BUDGET / (big.len() + OVERHEAD));
        assert!(out.queued_bytes() <= GOSSIP_BUDGET);

        for _ in 0..REPLY_BUDGET / big.len() {
            out.reply_room().await;
            assert!(out.reply(big.clone()));
        }
        // Full: room comes only when the writer takes something.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), out.reply_room());
        assert!(waiting.await.is_err(), "no room while the reply queue is at its budget");
        // Gossip is written first.
        for _ in 0..queued {
            rx.next().await.unwrap();
        }
        assert_eq!(out.queued_bytes(), (REPLY_BUDGET / big.len()) * (big.len() + OVERHEAD));
        rx.next().await.unwrap();
        out.reply_room().await;
    }

    #[tokio::test]
    async fn a_wait_for_room_ends_when_the_writer_is_gone() {
        let (out, rx) = outbox();
        let big = Arc::new(vec![0u8; REPLY_BUDGET]);
        out.reply(big);
        let waiter = tokio::spawn({
            let out = out.clone();
            async move { out.reply_room().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "no room while the queue is full");
        drop(rx);
        waiter.await.expect("the wait ends once the writer is gone");
    }
}
