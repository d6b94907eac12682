//! Live subscriptions over WebSocket (`GET /ws` on the RPC port), as geth's and anvil's
//! `eth_subscribe`: JSON-RPC 2.0 requests `subscribe` / `unsubscribe`, then notifications
//! `{"jsonrpc":"2.0","method":"subscription","params":{"subscription":ID,"result":...}}`.
//!
//! Kinds (`params[0]`):
//! - `newHeads`: every change of the main chain: `tip`, `height`, `connected` and
//!   `disconnected` blocks (`id`, `height`; a reorganisation has `disconnected` blocks,
//!   newest first);
//! - `pendingPayments`: the txid of every payment admitted to the mempool;
//! - `address` (`params[1]`: an address): payments from or to it, `status` `pending` when
//!   admitted and `confirmed` (with `block`, `height`) when a main-chain block takes them,
//!   `disconnected` when a reorganisation takes that block away.
//!
//! Notifications of one event come in subscription order (oldest subscription first).
//!
//! Bounds (see docs/PROTOCOL.md): at most [`MAX_CONNECTIONS`] WebSocket connections, each
//! with at most [`MAX_SUBSCRIPTIONS`] subscriptions and [`QUEUE`] notifications queued; a
//! subscriber that falls that far behind is disconnected, never waited for. Requests are
//! at most 64 KiB. No admin method is served here.

use super::{codes, RpcError};
use crate::chain::ChainEvent;
use crate::node::Node;
use axum::extract::ws::{Message, WebSocket};
use ember_core::{Address, Block, Transaction, Txid};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, Semaphore};
use tokio::time::Instant;

/// Most WebSocket connections at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Most subscriptions per connection.
pub const MAX_SUBSCRIPTIONS: usize = 16;
/// Notifications queued per connection before it is dropped as too slow.
pub const QUEUE: usize = 1024;
/// Largest request frame.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest frame read at all (a larger one closes the connection; between the two, the
/// request is refused with `-32600`).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// How often the node pings; a connection that sent nothing (not even a pong) for three
/// of these is closed.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// A connection with no subscription that sent nothing for this long is closed.
pub const IDLE: Duration = Duration::from_secs(30);
/// Blocks listed in one `newHeads` notification's `connected` and `disconnected` each
/// (the counts say how many there were); payments notified per event to one `address`
/// subscription, after which one `{"status":"truncated","count":N}` says how many more.
pub const MAX_LISTED: usize = 100;

/// What a subscription follows.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    NewHeads,
    PendingPayments,
    Address(Address),
}

/// The connection limit, shared by every upgrade.
pub fn connection_slots() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_CONNECTIONS))
}

/// Serves one WebSocket until the client leaves, falls [`QUEUE`] notifications behind, or
/// the node stops.
pub async fn serve(node: Arc<Node>, socket: WebSocket, _slot: tokio::sync::OwnedSemaphorePermit) {
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(QUEUE);
    let mut subs: BTreeMap<u64, Kind> = BTreeMap::new();
    let mut next_id = 1u64;
    let mut events = node.events.subscribe();
    let mut admitted = node.new_txs.subscribe();
    let (mut sink, mut stream) = {
        use futures_util::StreamExt;
        socket.split()
    };
    let writer = tokio::spawn(async move {
        use futures_util::SinkExt;
        while let Some(msg) = out_rx.recv().await {
            if sink.send(msg).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    // Queues a message; false when the client is too slow (or gone): drop it.
    let push = |text: String| out_tx.try_send(Message::Text(text.into())).is_ok();
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut heard = Instant::now();
    loop {
        use futures_util::StreamExt;
        // Biased, in this order: a chain event is handled before the payments it returned
        // (the node publishes it first), so a subscriber sees "disconnected" before
        // "pending"; with a random pick the two could swap.
        let ok = tokio::select! {
            biased;
            ev = events.recv() => match ev {
                Ok(ev) => notify_chain(&node, &ev, &subs, &push),
                // Fell behind the node's own event queue: the client missed events.
                Err(broadcast::error::RecvError::Lagged(_)) => false,
                Err(broadcast::error::RecvError::Closed) => false,
            },
            tx = admitted.recv() => match tx {
                Ok(txid) => notify_pending(&node, txid, &subs, &push),
                Err(broadcast::error::RecvError::Lagged(_)) => false,
                Err(broadcast::error::RecvError::Closed) => false,
            },
            _ = ping.tick() => {
                let silent = heard.elapsed();
                !(silent > PING_EVERY * 3 || (subs.is_empty() && silent > IDLE))
                    && out_tx.try_send(Message::Ping(Vec::new().into())).is_ok()
            }
            msg = stream.next() => {
                heard = Instant::now();
                match msg {
                Some(Ok(Message::Text(t))) => {
                    let reply = if t.len() > MAX_REQUEST_BYTES {
                        error_reply(Value::Null, RpcError::new(
                            codes::INVALID_REQUEST,
                            format!("request exceeds {MAX_REQUEST_BYTES} bytes"),
                        ))
                    } else {
                        handle(&node, t.as_str(), &mut subs, &mut next_id)
                    };
                    push(reply.to_string())
                }
                Some(Ok(Message::Binary(_))) => push(
                    error_reply(Value::Null, RpcError::new(codes::INVALID_REQUEST, "send text frames of JSON")).to_string(),
                ),
                Some(Ok(_)) => true, // ping/pong are answered by the library
                Some(Err(_)) | None => false,
                }
            }
            _ = node.shutdown.cancelled() => false,
        };
        if !ok {
            break;
        }
    }
    drop(out_tx);
    writer.abort();
}

fn error_reply(id: Value, e: RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": e.code, "message": e.message } })
}

/// One request: `subscribe` or `unsubscribe`.
fn handle(node: &Node, text: &str, subs: &mut BTreeMap<u64, Kind>, next_id: &mut u64) -> Value {
    let req: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return error_reply(
                Value::Null,
                RpcError::new(codes::PARSE_ERROR, format!("invalid JSON: {e}")),
            )
        }
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    if req.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        let e = RpcError::new(
            codes::INVALID_REQUEST,
            "a request is a JSON object with \"jsonrpc\": \"2.0\" (batches are not served on /ws)",
        );
        return error_reply(id, e);
    }
    let params = req.get("params").and_then(Value::as_array).cloned().unwrap_or_default();
    let result = match req.get("method").and_then(Value::as_str) {
        Some("subscribe") => subscribe(node, &params, subs, next_id),
        Some("unsubscribe") => match params.first().and_then(Value::as_u64) {
            Some(sid) => Ok(json!(subs.remove(&sid).is_some())),
            None => Err(RpcError::params("unsubscribe takes the subscription id")),
        },
        Some(other) => Err(RpcError::new(
            codes::METHOD_NOT_FOUND,
            format!(
                "unknown method {other:?} on /ws: subscribe or unsubscribe (other methods: POST /)"
            ),
        )),
        None => Err(RpcError::new(codes::INVALID_REQUEST, "no method")),
    };
    match result {
        Ok(r) => json!({ "jsonrpc": "2.0", "id": id, "result": r }),
        Err(e) => error_reply(id, e),
    }
}

fn subscribe(
    node: &Node,
    params: &[Value],
    subs: &mut BTreeMap<u64, Kind>,
    next_id: &mut u64,
) -> Result<Value, RpcError> {
    let kind = match params.first().and_then(Value::as_str) {
        Some("newHeads") => Kind::NewHeads,
        Some("pendingPayments") => Kind::PendingPayments,
        Some("address") => {
            let text = params.get(1).and_then(Value::as_str).ok_or_else(|| {
                RpcError::params("subscribe \"address\" takes the address as its second param")
            })?;
            Kind::Address(
                Address::parse(text, node.params.hrp())
                    .map_err(|e| RpcError::params(format!("address: {e}")))?,
            )
        }
        _ => {
            return Err(RpcError::params(
                "subscribe takes \"newHeads\", \"pendingPayments\" or \"address\", ADDRESS",
            ))
        }
    };
    if subs.len() >= MAX_SUBSCRIPTIONS {
        return Err(RpcError::params(format!(
            "at most {MAX_SUBSCRIPTIONS} subscriptions per connection"
        )));
    }
    let sid = *next_id;
    *next_id += 1;
    subs.insert(sid, kind);
    Ok(json!(sid))
}

fn notification(sid: u64, result: Value) -> String {
    json!({
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": { "subscription": sid, "result": result },
    })
    .to_string()
}

fn brief(b: &Block) -> Value {
    json!({ "id": b.id(), "height": b.header.height })
}

fn touches(tx: &Transaction, a: &Address) -> bool {
    tx.body().from == *a || tx.body().to == *a
}

fn payment(node: &Node, tx: &Transaction, status: &str) -> Value {
    let b = tx.body();
    let hrp = node.params.hrp();
    json!({
        "txid": tx.txid(),
        "status": status,
        "from": b.from.to_bech32(hrp),
        "to": b.to.to_bech32(hrp),
        "amount": b.amount.to_string(),
        "fee": b.fee.to_string(),
        "nonce": b.nonce,
    })
}

/// Notifications for one chain event; false when the client is too slow.
fn notify_chain(
    node: &Node,
    ev: &ChainEvent,
    subs: &BTreeMap<u64, Kind>,
    push: &dyn Fn(String) -> bool,
) -> bool {
    for (sid, kind) in subs {
        let sent = match kind {
            Kind::NewHeads => push(notification(
                *sid,
                json!({
                    "tip": ev.tip,
                    "height": ev.height,
                    // The newest connected ones, the first disconnected (the newest).
                    "connected": ev.connected.iter().rev().take(MAX_LISTED).rev()
                        .map(|b| brief(b)).collect::<Vec<_>>(),
                    "connected_count": ev.connected.len(),
                    "disconnected": ev.disconnected.iter().take(MAX_LISTED)
                        .map(|b| brief(b)).collect::<Vec<_>>(),
                    "disconnected_count": ev.disconnected.len(),
                }),
            )),
            Kind::PendingPayments => true,
            Kind::Address(a) => {
                let gone = ev.disconnected.iter().flat_map(|b| {
                    b.txs.iter().filter(|t| touches(t, a)).map(move |tx| {
                        let mut v = payment(node, tx, "disconnected");
                        v["block"] = json!(b.id());
                        v
                    })
                });
                let came = ev.connected.iter().flat_map(|b| {
                    b.txs.iter().filter(|t| touches(t, a)).map(move |tx| {
                        let mut v = payment(node, tx, "confirmed");
                        v["block"] = json!(b.id());
                        v["height"] = json!(b.header.height);
                        v
                    })
                });
                let mut ok = true;
                let mut more = 0usize;
                for (i, v) in gone.chain(came).enumerate() {
                    if i < MAX_LISTED {
                        ok &= push(notification(*sid, v));
                    } else {
                        more += 1;
                    }
                }
                if more > 0 {
                    ok &= push(notification(*sid, json!({ "status": "truncated", "count": more })));
                }
                ok
            }
        };
        if !sent {
            return false;
        }
    }
    true
}

/// Notifications for one admitted payment; false when the client is too slow.
fn notify_pending(
    node: &Node,
    txid: Txid,
    subs: &BTreeMap<u64, Kind>,
    push: &dyn Fn(String) -> bool,
) -> bool {
    if subs.is_empty() {
        return true;
    }
    let tx = node.mempool.lock().expect("mempool lock is never poisoned").get(&txid).copied();
    for (sid, kind) in subs {
        let sent = match (kind, &tx) {
            (Kind::PendingPayments, _) => push(notification(*sid, json!({ "txid": txid }))),
            (Kind::Address(a), Some(tx)) if touches(tx, a) => {
                push(notification(*sid, payment(node, tx, "pending")))
            }
            _ => true,
        };
        if !sent {
            return false;
        }
    }
    true
}
