//! Where the node is, with which token, and one JSON-RPC call to it; `--wait` retries the
//! call until the node answers.
//!
//! With `--data-dir` the URL and token are read again before every try: a node that is
//! starting writes `rpc.cookie` first and `rpc.addr` last (each whole), so once the address
//! is there the token beside it is the running node's, not a stale one from an earlier run.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The node's default RPC address (`ember-node --rpc-addr`'s default, node/src/config.rs).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8545";

/// How often `--wait` tries again.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// Where to send the call.
pub enum Endpoint {
    /// `--rpc URL` (or the default), with the token from `--rpc-token-file`, if any.
    Url { url: String, token_file: Option<PathBuf> },
    /// `--data-dir DIR`: the URL from `DIR/rpc.addr`, the token from `--rpc-token-file`
    /// or else `DIR/rpc.cookie`.
    DataDir { dir: PathBuf, token_file: Option<PathBuf> },
}

/// Why a call failed.
pub enum CallError {
    /// No answer. `retry`: nothing reached the node, so trying again cannot run the
    /// method twice (no `rpc.addr` yet, or the connection was refused).
    Unreachable { url: String, reason: String, retry: bool },
    /// The node answered with a JSON-RPC error.
    Rpc { code: i64, message: String, data: Option<Value> },
    /// The token file could not be read.
    Token { path: PathBuf, reason: String },
    /// `--data-dir` names a dir without `rpc.addr`: no node has started there (yet).
    NoAddress { file: PathBuf },
    /// The answer is not a JSON-RPC response.
    BadAnswer { url: String, reason: String },
}

impl CallError {
    /// Nothing reached a node: trying again cannot run the method twice.
    fn is_retryable(&self) -> bool {
        matches!(self, CallError::NoAddress { .. } | CallError::Unreachable { retry: true, .. })
    }

    /// Where the node was looked for, for the note `--wait` prints.
    fn place(&self) -> String {
        match self {
            CallError::NoAddress { file } => format!("{} to appear", file.display()),
            CallError::Unreachable { url, .. } | CallError::BadAnswer { url, .. } => {
                format!("the node at {url}")
            }
            CallError::Rpc { .. } | CallError::Token { .. } => "the node".into(),
        }
    }
}

/// Calls `method`; with `wait`, tries again while the node is unreachable, until it answers
/// or `wait` has passed. `on_first_wait` runs once, when the first try finds no node.
pub fn call(
    endpoint: &Endpoint,
    method: &str,
    params: &Value,
    wait: Option<Duration>,
    mut on_first_wait: impl FnMut(&str),
) -> Result<Value, CallError> {
    let deadline = wait.map(|w| Instant::now() + w);
    let mut waited = false;
    loop {
        match call_once(endpoint, method, params) {
            Err(e)
                if e.is_retryable()
                    && deadline.is_some_and(|d| Instant::now() + RETRY_EVERY < d) =>
            {
                if !waited {
                    on_first_wait(&e.place());
                    waited = true;
                }
                std::thread::sleep(RETRY_EVERY);
            }
            other => return other,
        }
    }
}

fn call_once(endpoint: &Endpoint, method: &str, params: &Value) -> Result<Value, CallError> {
    let (url, token) = url_and_token(endpoint)?;
    post(&url, token.as_deref(), method, params)
}

/// `ember-cli ready`: asks `GET /ready` until it says 200 or `wait` has passed (once without
/// `wait`). `Ok((ready, answer))` with the node's JSON (its `reason` when not ready).
pub fn ready(endpoint: &Endpoint, wait: Option<Duration>) -> Result<(bool, Value), CallError> {
    let deadline = wait.map(|w| Instant::now() + w);
    loop {
        let answer = url_and_token(endpoint).and_then(|(url, _)| get_ready(&url));
        let again = deadline.is_some_and(|d| Instant::now() + RETRY_EVERY < d);
        match answer {
            Ok((false, _)) if again => std::thread::sleep(RETRY_EVERY),
            Err(e) if again && e.is_retryable() => std::thread::sleep(RETRY_EVERY),
            other => return other,
        }
    }
}

fn get_ready(base: &str) -> Result<(bool, Value), CallError> {
    let url = format!("{}/ready", base.trim_end_matches('/'));
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(5)).build();
    let (status, resp) = match agent.get(&url).call() {
        Ok(resp) => (200, resp),
        Err(ureq::Error::Status(code, resp)) => (code, resp),
        Err(ureq::Error::Transport(t)) => {
            return Err(CallError::Unreachable {
                url,
                reason: transport_reason(&t),
                retry: t.kind() == ureq::ErrorKind::ConnectionFailed,
            })
        }
    };
    let text = resp
        .into_string()
        .map_err(|e| CallError::BadAnswer { url: url.clone(), reason: e.to_string() })?;
    let v: Value = serde_json::from_str(&text).map_err(|e| CallError::BadAnswer {
        url: url.clone(),
        reason: format!("{e}: {}", text.chars().take(200).collect::<String>()),
    })?;
    Ok((status == 200, v))
}

/// The URL to call and the admin token to send, if any.
fn url_and_token(endpoint: &Endpoint) -> Result<(String, Option<String>), CallError> {
    Ok(match endpoint {
        Endpoint::Url { url, token_file } => {
            (normalise(url), token_file.as_deref().map(read_token).transpose()?)
        }
        Endpoint::DataDir { dir, token_file } => {
            let addr_file = dir.join("rpc.addr");
            let addr = match std::fs::read_to_string(&addr_file) {
                Ok(a) if !a.trim().is_empty() => a.trim().to_string(),
                _ => return Err(CallError::NoAddress { file: addr_file }),
            };
            let token = match token_file {
                Some(f) => Some(read_token(f)?),
                // A node writes its cookie before its address; a data dir without one gets
                // non-admin calls served all the same.
                None => read_token(&dir.join("rpc.cookie")).ok(),
            };
            (normalise(&addr), token)
        }
    })
}

/// Checks a `--rpc` URL before anything is sent: `http://` or `https://` (added when no
/// scheme is given), a host and a port that parse. The error says what is wrong.
pub fn check_url(url: &str) -> Result<(), String> {
    let full = normalise(url);
    let parsed = url::Url::parse(&full).map_err(|e| format!("--rpc {url:?} is not a URL ({e})"))?;
    if parsed.scheme() != "http" {
        return Err(format!(
            "--rpc {url:?}: ember-node serves plain http only; reach a remote node over an \
             SSH tunnel or a VPN"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || parsed.path() != "/" {
        return Err(format!("--rpc {url:?}: give only http://HOST:PORT, without a path or query"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("--rpc {url:?} has no host"));
    }
    Ok(())
}

/// `127.0.0.1:8545` -> `http://127.0.0.1:8545`.
fn normalise(url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

fn read_token(path: &Path) -> Result<String, CallError> {
    let bad = |reason: String| CallError::Token { path: path.to_path_buf(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let token = text.trim();
    // It travels in an HTTP header: one line of printable characters.
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("a token is one line of printable characters without spaces".into()));
    }
    Ok(token.to_string())
}

fn post(url: &str, token: Option<&str>, method: &str, params: &Value) -> Result<Value, CallError> {
    // A long read timeout: `mining_generate 10000` takes a while (bitcoin-cli waits 900 s).
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(Duration::from_secs(900))
        .build();
    let mut req = agent.post(url).set("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let bad = |reason: String| CallError::BadAnswer { url: url.to_string(), reason };
    let text = match req.send_string(&body.to_string()) {
        Ok(resp) => resp.into_string(),
        // A non-2xx answer still carries a JSON-RPC error (413 for an oversized body).
        Err(ureq::Error::Status(_, resp)) => resp.into_string(),
        Err(ureq::Error::Transport(t)) => {
            return Err(CallError::Unreachable {
                url: url.to_string(),
                reason: transport_reason(&t),
                // Refused: the request never left; anything later may have run the method.
                retry: t.kind() == ureq::ErrorKind::ConnectionFailed,
            });
        }
    }
    .map_err(|e| bad(e.to_string()))?;
    let answer: Value = serde_json::from_str(&text)
        .map_err(|e| bad(format!("{e}: {}", text.chars().take(200).collect::<String>())))?;
    if let Some(err) = answer.get("error") {
        return Err(CallError::Rpc {
            code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: err.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
            data: err.get("data").cloned(),
        });
    }
    answer.get("result").cloned().ok_or_else(|| bad("neither a result nor an error".into()))
}

/// Why a request got no answer, in the operating system's words ("connection refused")
/// rather than ureq's capitalised wrappers.
fn transport_reason(t: &ureq::Transport) -> String {
    let mut root: Option<&dyn std::error::Error> = std::error::Error::source(t);
    while let Some(next) = root.and_then(std::error::Error::source) {
        root = Some(next);
    }
    let cause = root.map(|s| s.to_string()).or_else(|| t.message().map(str::to_owned));
    let cause = cause.unwrap_or_else(|| t.kind().to_string());
    let mut chars = cause.chars();
    let first = chars.next().map(|c| c.to_lowercase().collect::<String>()).unwrap_or_default();
    format!("{first}{}", chars.as_str())
}
