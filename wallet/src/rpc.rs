//! A small blocking JSON-RPC 2.0 client for talking to an `ember-node` over HTTP.
//!
//! Used by the wallet CLI, the testnet tool and the integration tests. Errors say which URL
//! could not be reached, or carry the node's own error code and message unchanged.

use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcClientError {
    /// No answer at all: the node is not running there, or the network refused.
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The node answered with a JSON-RPC error.
    #[error("{message} (error {code})")]
    Rpc { code: i64, message: String, data: Option<Value> },
    /// The node answered something that is not a JSON-RPC response.
    #[error("unexpected answer from {url}: {reason}")]
    BadResponse { url: String, reason: String },
}

impl RpcClientError {
    /// The node's refusal reason (`error.data.reason`), when it gave one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            RpcClientError::Rpc { data: Some(d), .. } => d.get("reason").and_then(Value::as_str),
            _ => None,
        }
    }
}

/// A client for one node.
pub struct RpcClient {
    url: String,
    token: Option<String>,
    agent: ureq::Agent,
    next_id: AtomicU64,
}

impl RpcClient {
    /// A client for `url` (e.g. `http://127.0.0.1:8545`), with a 30 s timeout per call.
    pub fn new(url: impl Into<String>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build();
        RpcClient { url: url.into(), token: None, agent, next_id: AtomicU64::new(1) }
    }

    /// Sends the admin token with every call.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Reads the admin token from a node's cookie file.
    pub fn with_cookie_file(self, path: &Path) -> std::io::Result<Self> {
        let token = std::fs::read_to_string(path)?;
        Ok(self.with_token(token.trim()))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `calls` as one JSON-RPC batch (one HTTP request; a node takes up to 100) and
    /// returns each call's result or error, in order. Fails as a whole only when the node
    /// is unreachable or its answer is not a batch of the same length.
    pub fn call_batch(
        &self,
        calls: &[(&str, Value)],
    ) -> Result<Vec<Result<Value, RpcClientError>>, RpcClientError> {
        let first = self.next_id.fetch_add(calls.len() as u64, Ordering::Relaxed);
        let body: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (m, p))| json!({ "jsonrpc": "2.0", "id": first + i as u64, "method": m, "params": p }))
            .collect();
        let v = self.post(&Value::Array(body))?;
        let Value::Array(items) = v else {
            return Err(self.bad(format!("not a batch answer: {}", excerpt(&v.to_string()))));
        };
        // Answers may come in any order: put them back in the order of the ids.
        let mut out: Vec<Option<Result<Value, RpcClientError>>> =
            (0..calls.len()).map(|_| None).collect();
        for item in items {
            let slot = item
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| id.checked_sub(first))
                .filter(|i| (*i as usize) < calls.len())
                .ok_or_else(|| self.bad(format!("batch answer with an unknown id: {item}")))?;
            out[slot as usize] = Some(self.answer(&item));
        }
        out.into_iter()
            .map(|r| r.ok_or_else(|| self.bad("the batch answer misses a call".into())))
            .collect()
    }

    /// Calls `method` with `params` and returns its `result`.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, RpcClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        self.answer(&self.post(&body)?)
    }

    /// POSTs a JSON-RPC body and parses the JSON answer.
    fn post(&self, body: &Value) -> Result<Value, RpcClientError> {
        let mut req = self.agent.post(&self.url).set("Content-Type", "application/json");
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let (status, text) = match req.send_string(&body.to_string()) {
            Ok(resp) => (resp.status(), resp.into_string()),
            // Non-2xx answers still carry a JSON-RPC error body (e.g. 413 for oversized).
            Err(ureq::Error::Status(code, resp)) => (code, resp.into_string()),
            Err(ureq::Error::Transport(t)) => {
                return Err(RpcClientError::Unreachable {
                    url: self.url.clone(),
                    reason: transport_reason(&t),
                })
            }
        };
        let text = text.map_err(|e| self.bad(e.to_string()))?;
        serde_json::from_str(&text).map_err(|_| self.bad(not_json_rpc(status, &text)))
    }

    /// One JSON-RPC response object: its `result`, or its `error` as [`RpcClientError::Rpc`].
    fn answer(&self, item: &Value) -> Result<Value, RpcClientError> {
        if let Some(err) = item.get("error") {
            return Err(RpcClientError::Rpc {
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
                data: err.get("data").cloned(),
            });
        }
        item.get("result").cloned().ok_or_else(|| self.bad("no result and no error".into()))
    }

    fn bad(&self, reason: String) -> RpcClientError {
        RpcClientError::BadResponse { url: self.url.clone(), reason }
    }
}

/// Why a request got no answer, in words: ureq's own text ("Connection Failed: Connect
/// error: ...", "Network Error: ...") is capitalised library jargon that repeats the URL.
fn transport_reason(t: &ureq::Transport) -> String {
    use ureq::ErrorKind as K;
    let what = match t.kind() {
        K::Dns => "the host name does not resolve",
        K::ConnectionFailed => "the connection failed",
        K::Io => "the connection broke before the answer arrived",
        K::InvalidUrl | K::UnknownScheme => "the URL is not usable",
        K::TooManyRedirects => "too many redirects",
        K::BadStatus | K::BadHeader => "the answer is not HTTP",
        _ => "the request failed",
    };
    // The innermost cause is the operating system's own words ("connection refused");
    // the layers above it repeat ureq's capitalised wrappers.
    let mut root = std::error::Error::source(t);
    while let Some(next) = root.and_then(std::error::Error::source) {
        root = Some(next);
    }
    let cause = root.map(|s| s.to_string()).or_else(|| t.message().map(str::to_owned));
    match cause {
        Some(cause) => {
            let mut chars = cause.chars();
            let first =
                chars.next().map(|c| c.to_lowercase().collect::<String>()).unwrap_or_default();
            format!("{what}: {first}{}", chars.as_str())
        }
        None => what.to_owned(),
    }
}

/// The first 200 characters of an answer, for error messages.
/// Why an answer is not from an ember-node's JSON-RPC, and what to check: the status, what
/// the body looks like (empty, a web page, or its first words), never a parser's message.
fn not_json_rpc(status: u16, text: &str) -> String {
    let body = text.trim_start();
    let looks = if body.is_empty() {
        "an empty body".to_string()
    } else if body.starts_with('<') {
        "a web page".to_string()
    } else {
        format!("a body starting {:?}", body.chars().take(60).collect::<String>())
    };
    format!(
        "HTTP {status} with {looks}, not JSON-RPC; is this an ember-node's RPC address (http://HOST:PORT, \
         no path)?"
    )
}

fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}
