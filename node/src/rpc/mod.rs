//! JSON-RPC 2.0 over HTTP, plus `GET /health` and `GET /metrics`, on one listener.
//!
//! Requests are read with a hard body limit (1 MiB) before parsing; a malformed or oversized
//! request, an unknown method or bad params each get their precise JSON-RPC error and change
//! nothing. Methods that change the node (mining, stop, peers, bans) need the token from the
//! cookie file `<data dir>/rpc.cookie` (rewritten at every start), or the fixed one of
//! `--rpc-token-file`, as `Authorization: Bearer <token>`. `GET /ready` says whether the
//! node is connected and caught up (200) or not (503, with the reason).

/// The table of methods (names, params, admin or not) that the server, `ember-cli help`
/// and the tests share.
pub mod method_table;
mod methods;
mod ws;

use crate::node::Node;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How much of an oversized body is read and dropped before the refusal is sent.
pub const MAX_DRAIN_BYTES: usize = 8 * 1024 * 1024;
/// Longest time spent draining an oversized body.
pub const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);
/// Largest batch of requests in one body.
pub const MAX_BATCH: usize = 100;

/// JSON-RPC error codes used by Ember (see docs/PROTOCOL.md).
pub mod codes {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL: i64 = -32603;
    pub const UNAUTHORIZED: i64 = -32001;
    pub const NOT_FOUND: i64 = -32004;
    pub const TX_REFUSED: i64 = -32010;
    pub const UNSUPPORTED: i64 = -32020;
    /// The tx and address indexes have not reached the chain's tip yet (retry).
    pub const INDEX_CATCHING_UP: i64 = -32030;
}

/// An error answer.
#[derive(Debug)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }
    pub fn params(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_PARAMS, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(codes::NOT_FOUND, message)
    }
    fn to_json(&self) -> Value {
        let mut e = json!({ "code": self.code, "message": self.message });
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        e
    }
}

#[derive(Clone)]
struct AppState {
    node: Arc<Node>,
    /// The P2P side, once started (the RPC server starts first).
    net: NetSlot,
    /// Admin tokens: the cookie's, and the --rpc-token-file one when given.
    tokens: Arc<Vec<String>>,
    /// WebSocket connections still allowed ([`ws::MAX_CONNECTIONS`]).
    ws_slots: Arc<tokio::sync::Semaphore>,
}

/// Creates (or replaces) the cookie file with a fresh random token, mode 0600.
pub fn write_cookie(data_dir: &Path) -> std::io::Result<String> {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    crate::atomic_file::write(&data_dir.join("rpc.cookie"), token.as_bytes(), 0o600)?;
    Ok(token)
}

/// Where the RPC server finds the network once `main` has started it (RPC answers first:
/// `node_info` then shows no peers).
pub type NetSlot = Arc<std::sync::OnceLock<Arc<crate::net::Network>>>;

/// Binds the RPC listener and serves until the node shuts down. Returns the bound address
/// (useful with port 0) once listening.
pub async fn serve(
    node: Arc<Node>,
    net: NetSlot,
    addr: SocketAddr,
    tokens: Vec<String>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen for RPC on {addr}: {e}; choose another address with --rpc-addr \
                 (port 0 takes a free one)"
        )
    })?;
    let local = listener.local_addr()?;
    let state = AppState {
        node: node.clone(),
        net,
        tokens: Arc::new(tokens),
        ws_slots: ws::connection_slots(),
    };
    let app = Router::new()
        .route("/", post(handle_rpc))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/ws", get(ws_upgrade))
        .route("/metrics", get(metrics))
        .with_state(state);
    let shutdown = node.shutdown.clone();
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "RPC server failed");
        }
    });
    Ok(local)
}

/// Reads a request body of at most [`MAX_BODY_BYTES`]. A longer one is refused, but only
/// after reading (and dropping) up to [`MAX_DRAIN_BYTES`] more of it for at most
/// [`DRAIN_TIME`]: a client that writes its whole body before reading (most do) would
/// otherwise see its connection reset mid-write ("broken pipe") instead of the error.
/// What the node holds stays bounded by `MAX_BODY_BYTES`; the drain costs only bandwidth.
async fn read_body(body: Body) -> Result<axum::body::Bytes, RpcError> {
    use futures_util::StreamExt;
    let too_big = || {
        RpcError::new(
            codes::INVALID_REQUEST,
            format!("request body exceeds {MAX_BODY_BYTES} bytes"),
        )
    };
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RpcError::new(codes::INVALID_REQUEST, format!("{e}")))?;
        if buf.len() + chunk.len() > MAX_BODY_BYTES {
            let mut drained = buf.len() + chunk.len();
            let drain = async {
                while let Some(Ok(c)) = stream.next().await {
                    drained += c.len();
                    if drained > MAX_BODY_BYTES + MAX_DRAIN_BYTES {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
            return Err(too_big());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.into())
}

async fn health(State(s): State<AppState>) -> impl IntoResponse {
    let height = s.node.tip.get().height;
    (StatusCode::OK, axum::Json(json!({ "status": "ok", "height": height })))
}

/// `GET /ready`: 200 `{"ready":true,...}` when the node is caught up with its peers: a
/// peer connected (unless the node is alone by design: no `--peer` and no address known),
/// no validated header ahead of its tip, no outbound peer's first answer still due, and a
/// height no lower than any peer has *proven* (by headers or blocks; a handshake claim
/// cannot hold readiness back). Else 503 `{"ready":false,"reason":...}`. For
/// orchestrators (a container's health check, a Kubernetes readiness probe) and scripts.
async fn ready(State(s): State<AppState>) -> Response {
    let height = s.node.tip.get().height;
    let (r, syncing, alone) = match s.net.get() {
        Some(n) => (
            n.readiness(),
            n.sync_status().syncing,
            s.node.config.peers.is_empty() && n.known_address_count() == 0,
        ),
        None => (
            crate::net::Readiness { peers: 0, proven_height: 0, awaiting_headers: false },
            false,
            false,
        ),
    };
    let reason = if r.peers == 0 && !alone {
        Some("no peers connected yet".to_string())
    } else if syncing || height < r.proven_height {
        Some(format!("syncing: height {height}, a peer has {}", r.proven_height.max(height)))
    } else if r.awaiting_headers {
        Some("waiting for a peer's headers".to_string())
    } else {
        None
    };
    let body = json!({
        "ready": reason.is_none(),
        "reason": reason,
        "height": height,
        "peers": r.peers,
        "proven_peer_height": r.proven_height,
    });
    let status = if reason.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_reply(status, body)
}

/// `GET /ws`: live subscriptions (see [`ws`]); 503 when [`ws::MAX_CONNECTIONS`] are open.
async fn ws_upgrade(
    State(s): State<AppState>,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    match s.ws_slots.clone().try_acquire_owned() {
        Ok(slot) => upgrade
            .max_message_size(ws::MAX_FRAME_BYTES)
            .max_frame_size(ws::MAX_FRAME_BYTES)
            .on_upgrade(move |socket| ws::serve(s.node.clone(), socket, slot)),
        Err(_) => json_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": format!("at most {} WebSocket connections", ws::MAX_CONNECTIONS) }),
        ),
    }
}

/// `GET /metrics`, rendered on the blocking pool: it reads the chain manager's counters
/// under the chain lock, which a chain switch holds for as long as it runs.
async fn metrics(State(s): State<AppState>) -> Response {
    let (node, net) = (s.node.clone(), s.net.get().cloned());
    match tokio::task::spawn_blocking(move || methods::render_metrics(&node, net.as_ref())).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn rpc_response(id: Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(r) => json!({ "jsonrpc": "2.0", "id": id, "result": r }),
        Err(e) => json!({ "jsonrpc": "2.0", "id": id, "error": e.to_json() }),
    }
}

fn json_reply(status: StatusCode, v: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

async fn handle_rpc(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(e) => {
            return json_reply(StatusCode::PAYLOAD_TOO_LARGE, rpc_response(Value::Null, Err(e)))
        }
    };
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| {
            s.tokens.iter().any(|k| constant_time_eq(t.trim().as_bytes(), k.as_bytes()))
        });
    let parsed: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let e = RpcError::new(codes::PARSE_ERROR, format!("invalid JSON: {e}"));
            return json_reply(StatusCode::OK, rpc_response(Value::Null, Err(e)));
        }
    };
    let reply = match parsed {
        Value::Array(items) => {
            if items.is_empty() || items.len() > MAX_BATCH {
                let e = RpcError::new(
                    codes::INVALID_REQUEST,
                    format!("a batch must hold 1 to {MAX_BATCH} requests"),
                );
                rpc_response(Value::Null, Err(e))
            } else {
                // The batch's payments are admitted together first (see `submit_parsed`);
                // each request is then answered in order.
                let mut submitted = prepare_submits(&s.node, &items).await;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let pre = submitted[i].take();
                    if let Some(r) = handle_one(&s.node, s.net.get(), item, authorized, pre).await {
                        out.push(r);
                    }
                }
                Value::Array(out)
            }
        }
        single => {
            handle_one(&s.node, s.net.get(), single, authorized, None).await.unwrap_or(Value::Null)
        }
    };
    s.node.metrics.observe_rpc(started.elapsed().as_secs_f64());
    json_reply(StatusCode::OK, reply)
}

/// Admits the payments of every well-formed `tx_submit` request of a batch in one go
/// ([`methods::submit_parsed`]): the profile of a node under a flood of batches showed a
/// thread hop and a single-core signature check per payment. Returns, per request, the
/// outcome for those admitted here; the others (malformed envelopes or params, other
/// methods) are left to [`handle_one`], which reports them as it always does.
async fn prepare_submits(
    node: &Arc<Node>,
    items: &[Value],
) -> Vec<Option<Result<ember_core::Txid, crate::mempool::MempoolError>>> {
    let mut at = Vec::new();
    let mut txs = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Ok((_, "tx_submit", params)) = envelope(item) {
            if let Ok(tx) = methods::tx_of_submit(params) {
                at.push(i);
                txs.push(tx);
            }
        }
    }
    let mut out: Vec<_> = items.iter().map(|_| None).collect();
    if txs.is_empty() {
        return out;
    }
    for (i, r) in at.into_iter().zip(methods::submit_parsed(node, txs).await) {
        out[i] = Some(r);
    }
    out
}

/// A request's id (absent for a notification), method and params, or the error response it
/// gets when it is not a well-formed JSON-RPC 2.0 request.
fn envelope(req: &Value) -> Result<(Option<&Value>, &str, &Value), Value> {
    let Value::Object(obj) = req else {
        return Err(rpc_response(
            Value::Null,
            Err(RpcError::new(codes::INVALID_REQUEST, "request must be an object")),
        ));
    };
    let id = obj.get("id");
    let id_ok = matches!(id, None | Some(Value::Null | Value::Number(_) | Value::String(_)));
    let id_or_null = || id.cloned().unwrap_or(Value::Null);
    if obj.get("jsonrpc") != Some(&Value::String("2.0".into())) || !id_ok {
        let e = RpcError::new(
            codes::INVALID_REQUEST,
            "request must have \"jsonrpc\": \"2.0\" and a string or number id",
        );
        return Err(rpc_response(id_or_null(), Err(e)));
    }
    let Some(Value::String(method)) = obj.get("method") else {
        let e = RpcError::new(codes::INVALID_REQUEST, "request must have a string \"method\"");
        return Err(rpc_response(id_or_null(), Err(e)));
    };
    static NO_PARAMS: Value = Value::Array(Vec::new());
    let params = obj.get("params").unwrap_or(&NO_PARAMS);
    if !matches!(params, Value::Array(_) | Value::Object(_)) {
        let e = RpcError::params("params must be an array or an object");
        return Err(rpc_response(id_or_null(), Err(e)));
    }
    Ok((id, method, params))
}

/// Handles one request object; `None` for a notification (no id), which gets no answer.
/// `submitted` is its payment's outcome when the batch already admitted it.
async fn handle_one(
    node: &Arc<Node>,
    net: Option<&Arc<crate::net::Network>>,
    req: Value,
    authorized: bool,
    submitted: Option<Result<ember_core::Txid, crate::mempool::MempoolError>>,
) -> Option<Value> {
    let (id, method, params) = match envelope(&req) {
        Ok(x) => x,
        Err(response) => return Some(response),
    };
    let result = methods::dispatch(node, net, method, params, authorized, submitted).await;
    id.map(|id| rpc_response(id.clone(), result))
}

/// The fuzz target's entry point (`fuzz/fuzz_targets/rpc.rs`, built with `--cfg fuzzing`):
/// one HTTP request body through the same handler the server runs, with or without the
/// cookie; returns the status and the response body.
#[cfg(fuzzing)]
pub async fn fuzz_request(node: &Arc<Node>, body: &[u8], authorized: bool) -> (u16, Vec<u8>) {
    let state = AppState {
        node: node.clone(),
        net: Default::default(),
        tokens: Arc::new(vec!["fuzz".into()]),
        ws_slots: ws::connection_slots(),
    };
    let mut headers = HeaderMap::new();
    if authorized {
        headers.insert(header::AUTHORIZATION, "Bearer fuzz".parse().expect("a valid header"));
    }
    let resp = handle_rpc(State(state), headers, Body::from(body.to_vec())).await;
    let status = resp.status().as_u16();
    let bytes = to_bytes(resp.into_body(), usize::MAX).await.expect("an in-memory body");
    (status, bytes.to_vec())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
