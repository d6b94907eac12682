//! The node as the wallet sees it: typed answers to the few JSON-RPC methods a wallet
//! uses (`node_info`, `account_get`, `mempool_info`, `tx_submit`, `chain_getTransaction`,
//! `account_history`), over the plain [`RpcClient`].
//!
//! What it guarantees: every failure is one [`NodeError`] variant a person can act on —
//! the node is not reachable (and at which URL), the node refused a transaction (with its
//! machine-readable reason), the node does not know a transaction, or the node answered
//! something this wallet does not understand (naming the method and field). Answers are
//! parsed strictly: an amount that is not decimal coins or a network this wallet does not
//! know is an error, never a default.

use ember_core::{Address, Amount, BlockId, Network, Transaction, Txid};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

use crate::rpc::{RpcClient, RpcClientError};

/// The JSON-RPC error code of a refused transaction (`tx_submit`).
pub const TX_REFUSED: i64 = -32010;
/// The JSON-RPC error code of "not found" (unknown transaction or block).
pub const NOT_FOUND: i64 = -32004;
/// The JSON-RPC error code of "the node's indexes are catching up with its chain"
/// (`chain_getTransaction`, `account_history`; the node waited 10 s for them already).
pub const INDEX_CATCHING_UP: i64 = -32030;
/// How long a call answered with [`INDEX_CATCHING_UP`] is asked again before the wallet
/// gives up (no new ask starts after it; each ask waits up to 10 s in the node).
const INDEX_RETRY_FOR: Duration = Duration::from_secs(60);
/// The pause between two such asks.
const INDEX_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Why a call to the node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Nothing answered at the URL.
    #[error(
        "cannot reach the node at {url} ({reason}); is ember-node running there? \
         (choose another node with --node URL or EMBER_NODE)"
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The node refused a transaction (`tx_submit`), e.g. `nonce_too_low`.
    #[error("the node refused the transaction ({reason}): {message}")]
    Refused {
        /// The node's machine-readable reason (`error.data.reason`).
        reason: String,
        /// The node's message.
        message: String,
    },
    /// The node does not know what was asked for.
    #[error("{0}")]
    NotFound(String),
    /// The node's indexes stayed behind its chain for as long as the wallet asked
    /// (a node catching up after a long sync or a deep reorg).
    #[error("the node at {url} is still indexing its chain: {message}")]
    IndexCatchingUp {
        /// The URL of the node.
        url: String,
        /// The node's message (both heights).
        message: String,
    },
    /// Any other JSON-RPC error.
    #[error("the node at {url} answered with an error: {message} (error {code})")]
    Rpc {
        /// The URL of the node.
        url: String,
        /// The JSON-RPC error code.
        code: i64,
        /// The node's message.
        message: String,
    },
    /// An answer this wallet cannot read (another program, another version).
    #[error("unexpected answer from the node at {url} to {method}: {reason}")]
    BadAnswer {
        /// The URL of the node.
        url: String,
        /// The method called.
        method: &'static str,
        /// What was wrong with it.
        reason: String,
    },
}

/// `node_info`: which network the node runs and where its tip is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's network.
    pub network: Network,
    /// The genesis id: the chain id every transaction signs.
    pub genesis: BlockId,
    /// Height of the node's best chain.
    pub height: u64,
    /// Connected peers.
    pub peers: u64,
    /// Whether the node mines continuously (`None` from a node too old to say).
    pub mining: Option<bool>,
}

/// `account_get`: an account's confirmed state and what its pending payments spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// Confirmed balance.
    pub balance: Amount,
    /// Confirmed nonce (payments applied so far).
    pub nonce: u64,
    /// The nonce the next payment must use (counts pending payments).
    pub next_nonce: u64,
    /// Payments of this account waiting in the node's mempool.
    pub pending_count: u64,
    /// `amount + fee` of those pending payments.
    pub pending_spend: Amount,
    /// What can still be spent: `balance - pending_spend`.
    pub available: Amount,
    /// Payments to this account from others waiting in the node's mempool: how many, and
    /// their amounts added up (both 0 from a node too old to say).
    pub pending_received_count: u64,
    pub pending_received: Amount,
}

/// Where a transaction is, from `chain_getTransaction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// In the node's mempool, waiting for a block.
    Pending,
    /// In a block of the best chain.
    Confirmed {
        /// The block's height.
        height: u64,
        /// 1 for a transaction in the tip block, 2 one block later, ...
        confirmations: u64,
    },
}

/// A node, for the wallet.
pub struct NodeClient {
    client: RpcClient,
}

impl NodeClient {
    /// A client for the node at `url`.
    pub fn new(url: &str) -> NodeClient {
        NodeClient { client: RpcClient::new(url) }
    }

    /// The node's URL.
    pub fn url(&self) -> &str {
        self.client.url()
    }

    /// Calls `method`; an [`INDEX_CATCHING_UP`] answer is asked again for up to
    /// [`INDEX_RETRY_FOR`] (the node answers it only after waiting for its indexes).
    fn call(&self, method: &'static str, params: Value) -> Result<Value, NodeError> {
        let give_up = Instant::now() + INDEX_RETRY_FOR;
        loop {
            match self.call_once(method, params.clone()) {
                Err(NodeError::IndexCatchingUp { .. }) if Instant::now() < give_up => {
                    std::thread::sleep(INDEX_RETRY_PAUSE);
                }
                answer => return answer,
            }
        }
    }

    fn call_once(&self, method: &'static str, params: Value) -> Result<Value, NodeError> {
        self.client.call(method, params).map_err(|e| match e {
            RpcClientError::Unreachable { url, reason } => NodeError::Unreachable { url, reason },
            RpcClientError::BadResponse { url, reason } => {
                NodeError::BadAnswer { url, method, reason }
            }
            RpcClientError::Rpc { code, message, data } => {
                let reason = data.as_ref().and_then(|d| d.get("reason")).and_then(Value::as_str);
                match (code, reason) {
                    (TX_REFUSED, Some(reason)) => {
                        NodeError::Refused { reason: reason.to_owned(), message }
                    }
                    (NOT_FOUND, _) => NodeError::NotFound(message),
                    (INDEX_CATCHING_UP, _) => {
                        NodeError::IndexCatchingUp { url: self.url().to_owned(), message }
                    }
                    _ => NodeError::Rpc { url: self.url().to_owned(), code, message },
                }
            }
        })
    }

    fn bad(&self, method: &'static str, reason: String) -> NodeError {
        NodeError::BadAnswer { url: self.url().to_owned(), method, reason }
    }

    /// `node_info`.
    pub fn info(&self) -> Result<NodeInfo, NodeError> {
        const M: &str = "node_info";
        let v = self.call(M, json!([]))?;
        let network = field_str(&v, "network").ok_or_else(|| self.bad(M, missing("network")))?;
        let network: Network = network.parse().map_err(|e| self.bad(M, e))?;
        let genesis = field_str(&v, "genesis")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.bad(M, missing("genesis")))?;
        let height = v["height"].as_u64().ok_or_else(|| self.bad(M, missing("height")))?;
        let peers = v["peers"].as_u64().unwrap_or(0);
        Ok(NodeInfo { network, genesis, height, peers, mining: v["mining"].as_bool() })
    }

    /// `account_get` for `address` (written with the network's prefix `hrp`).
    pub fn account(&self, address: &Address, hrp: &str) -> Result<AccountInfo, NodeError> {
        const M: &str = "account_get";
        let v = self.call(M, json!([address.to_bech32(hrp)]))?;
        let amount = |name: &str| {
            field_str(&v, name)
                .and_then(|s| s.parse::<Amount>().ok())
                .ok_or_else(|| self.bad(M, missing(name)))
        };
        let int = |name: &str| v[name].as_u64().ok_or_else(|| self.bad(M, missing(name)));
        Ok(AccountInfo {
            balance: amount("balance")?,
            nonce: int("nonce")?,
            next_nonce: int("next_nonce")?,
            pending_count: int("pending_count")?,
            pending_spend: amount("pending_spend")?,
            available: amount("available")?,
            pending_received_count: v["pending_received_count"].as_u64().unwrap_or(0),
            pending_received: field_str(&v, "pending_received")
                .and_then(|s| s.parse::<Amount>().ok())
                .unwrap_or(Amount::ZERO),
        })
    }

    /// The smallest fee the node admits to its mempool (`mempool_info.min_fee`).
    pub fn min_fee(&self) -> Result<Amount, NodeError> {
        const M: &str = "mempool_info";
        let v = self.call(M, json!([]))?;
        field_str(&v, "min_fee")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.bad(M, missing("min_fee")))
    }

    /// `tx_submit`: hands a signed transaction to the node; its txid when admitted.
    pub fn submit(&self, tx: &Transaction) -> Result<Txid, NodeError> {
        const M: &str = "tx_submit";
        let v = self.call(M, json!([hex::encode(tx.encode())]))?;
        v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| self.bad(M, missing("txid")))
    }

    /// `chain_getTransaction`: the node's whole answer, and the status read from it.
    /// [`NodeError::NotFound`] when the transaction is neither confirmed nor pending.
    pub fn transaction(&self, txid: &Txid) -> Result<(TxStatus, Value), NodeError> {
        self.transaction_with(txid, true)
    }

    /// [`NodeClient::transaction`] asked once: [`NodeError::IndexCatchingUp`] is returned,
    /// not asked again (for a caller that polls with a deadline of its own).
    pub fn transaction_once(&self, txid: &Txid) -> Result<(TxStatus, Value), NodeError> {
        self.transaction_with(txid, false)
    }

    fn transaction_with(&self, txid: &Txid, retry: bool) -> Result<(TxStatus, Value), NodeError> {
        const M: &str = "chain_getTransaction";
        let params = json!([txid.to_string()]);
        let v = if retry { self.call(M, params) } else { self.call_once(M, params) }?;
        let status = match field_str(&v, "status") {
            Some("pending") => TxStatus::Pending,
            Some("confirmed") => TxStatus::Confirmed {
                height: v["height"].as_u64().ok_or_else(|| self.bad(M, missing("height")))?,
                confirmations: v["confirmations"]
                    .as_u64()
                    .ok_or_else(|| self.bad(M, missing("confirmations")))?,
            },
            other => return Err(self.bad(M, format!("unknown status {other:?}"))),
        };
        Ok((status, v))
    }

    /// `account_history`: one page (0-based) of confirmed payments, newest first, and
    /// the pending ones; the node's answer as it is.
    pub fn history(
        &self,
        address: &Address,
        hrp: &str,
        page: u64,
        page_size: u64,
    ) -> Result<Value, NodeError> {
        const M: &str = "account_history";
        let v = self.call(M, json!([address.to_bech32(hrp), page, page_size]))?;
        if !v["items"].is_array() || !v["total"].is_u64() {
            return Err(self.bad(M, missing("items")));
        }
        Ok(v)
    }
}

fn field_str<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str)
}

fn missing(name: &str) -> String {
    format!("field {name:?} is missing or malformed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// A loopback HTTP server answering each JSON-RPC request with the next of `answers`
    /// (an `error` object or a `result`); returns its URL and how many requests it served.
    fn serve(answers: Vec<Value>) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = std::thread::spawn(move || {
            let mut served = 0;
            for answer in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let req: Value = serde_json::from_slice(&body).unwrap();
                let mut resp = json!({ "jsonrpc": "2.0", "id": req["id"] });
                let key = if answer.get("code").is_some() { "error" } else { "result" };
                resp[key] = answer;
                let text = resp.to_string();
                let mut stream = reader.into_inner();
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                )
                .unwrap();
                served += 1;
            }
            served
        });
        (url, served)
    }

    #[test]
    fn a_node_whose_indexes_catch_up_is_asked_again_until_it_answers() {
        let lagging =
            json!({ "code": INDEX_CATCHING_UP, "message": "indexed to height 4, chain at 9" });
        let confirmed = json!({ "status": "confirmed", "height": 7, "confirmations": 3 });
        let (url, served) = serve(vec![lagging.clone(), lagging, confirmed]);
        let node = NodeClient::new(&url);
        let (status, _) = node.transaction(&Txid::from_bytes([7; 32])).unwrap();
        assert_eq!(status, TxStatus::Confirmed { height: 7, confirmations: 3 });
        assert_eq!(served.join().unwrap(), 3);
    }

    #[test]
    fn other_errors_are_not_asked_again() {
        let unknown =
            json!({ "code": NOT_FOUND, "message": "transaction is neither confirmed nor pending" });
        let (url, served) = serve(vec![unknown]);
        let node = NodeClient::new(&url);
        assert!(matches!(
            node.transaction(&Txid::from_bytes([7; 32])),
            Err(NodeError::NotFound(_))
        ));
        assert_eq!(served.join().unwrap(), 1);
    }
}
