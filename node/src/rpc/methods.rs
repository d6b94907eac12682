//! The JSON-RPC methods. Params may be positional (array) or named (object); every value
//! from the request is parsed with a precise error naming the parameter.
//!
//! Amounts are decimal coin strings ("1.5"), ids are hex, addresses are bech32m. Every u64
//! that can pass 2^53 (a block's nonce, supply in units) is a decimal string, and work is
//! hex: JSON numbers above 2^53 lose digits in most clients. Counters that grow by one per
//! block or per payment (heights, account nonces), sizes and unix times stay numbers.

use super::{codes, RpcError};
use crate::indexer::IndexTip;
use crate::mempool::MempoolError;
use crate::metrics::metric;
use crate::net::Network;
use crate::node::Node;
use crate::store::BlockStatus;
use crate::tip::TipSnapshot;
use ember_core::{Address, Amount, Block, BlockHeader, BlockId, Transaction, Txid};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// The largest integer a JSON number holds exactly in most clients (2^53 - 1).
const MAX_JSON_INT: u64 = (1 << 53) - 1;

/// Most incoming pending payments `account_history` lists (`pending_received_total` says
/// how many there are).
const MAX_PENDING_RECEIVED: usize = 500;

use super::method_table as table;

mod controls;

/// Runs one method. `submitted` is the outcome of a `tx_submit` already admitted with the
/// rest of its batch ([`submit_parsed`]); the method then only reports it.
pub async fn dispatch(
    node: &Arc<Node>,
    net: Option<&Arc<Network>>,
    method: &str,
    params: &Value,
    authorized: bool,
    submitted: Option<Result<Txid, MempoolError>>,
) -> Result<Value, RpcError> {
    // Only listed methods are served: one missing from the table is unknown rather than
    // served without its admin check.
    let Some(spec) = table::find(method) else {
        return Err(RpcError::new(codes::METHOD_NOT_FOUND, format!("unknown method {method:?}")));
    };
    if spec.admin && !authorized {
        return Err(RpcError::new(
            codes::UNAUTHORIZED,
            format!("{method} needs the admin token (<data dir>/rpc.cookie, or the node's --rpc-token-file) as 'Authorization: Bearer <token>'"),
        ));
    }
    let p = Params(params);
    match method {
        "node_info" => node_info(node, net),
        "chain_getBlock" => off_async_worker(node, params, chain_get_block).await,
        "chain_getHeader" => off_async_worker(node, params, chain_get_header).await,
        "chain_getTransaction" => chain_get_transaction(node, &p).await,
        "account_get" => off_async_worker(node, params, account_get).await,
        "account_history" => account_history(node, &p).await,
        "tx_submit" => tx_submit(node, &p, submitted).await,
        "mempool_info" => mempool_info(node),
        "mempool_list" => mempool_list(node, &p),
        "mining_generate" => mining_generate(node, &p).await,
        "mining_getMode" => controls::get_mode(node, &p),
        "mining_setAutomine" => controls::set_automine(node, &p),
        "mining_setInterval" => controls::set_interval(node, &p),
        "chain_getTips" => off_async_worker(node, params, controls::chain_tips).await,
        "chain_invalidateBlock" => controls::invalidate(node, &p).await,
        "chain_reconsiderBlock" => controls::reconsider(node, net, &p).await,
        "dev_snapshot" => off_async_worker(node, params, controls::snapshot).await,
        "dev_revert" => controls::revert(node, &p).await,
        "state_digest" => state_digest(node).await,
        "net_peers" | "net_addPeer" | "net_disconnect" | "net_ban" | "net_unban" | "net_bans" => {
            net_method(net, method, &p)
        }
        "node_stop" => {
            p.no_more(0)?;
            node.shutdown.cancel();
            Ok(json!("stopping"))
        }
        other => Err(RpcError::new(codes::METHOD_NOT_FOUND, format!("unknown method {other:?}"))),
    }
}

/// Runs `f` on the blocking pool. Every method that takes the chain lock runs there (or
/// takes it there): a chain switch holds that lock for as long as it connects and
/// disconnects blocks, and a tokio worker waiting for it would stall every peer and RPC
/// task it serves (a 2-core machine has two workers).
pub(super) async fn on_blocking_pool<T: Send + 'static>(
    node: &Arc<Node>,
    f: impl FnOnce(&Node) -> T + Send + 'static,
) -> Result<T, RpcError> {
    let n = node.clone();
    tokio::task::spawn_blocking(move || f(&n)).await.map_err(|e| internal(e.to_string()))
}

/// A read-only method that takes the chain lock, run with [`on_blocking_pool`] on its own
/// copy of the params (at most [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES)).
async fn off_async_worker(
    node: &Arc<Node>,
    params: &Value,
    f: fn(&Node, &Params<'_>) -> Result<Value, RpcError>,
) -> Result<Value, RpcError> {
    let params = params.clone();
    on_blocking_pool(node, move |n| f(n, &Params(&params))).await?
}

/// Access to positional-or-named params.
pub(super) struct Params<'a>(&'a Value);

impl Params<'_> {
    fn get(&self, index: usize, name: &str) -> Option<&Value> {
        match self.0 {
            Value::Array(a) => a.get(index),
            Value::Object(o) => o.get(name),
            _ => None,
        }
        .filter(|v| !v.is_null())
    }
    fn required(&self, index: usize, name: &str) -> Result<&Value, RpcError> {
        self.get(index, name).ok_or_else(|| RpcError::params(format!("missing parameter {name:?}")))
    }
    /// Refuses extra positional params (a likely mistake).
    fn no_more(&self, count: usize) -> Result<(), RpcError> {
        if let Value::Array(a) = self.0 {
            if a.len() > count {
                return Err(RpcError::params(format!(
                    "expected at most {count} parameters, got {}",
                    a.len()
                )));
            }
        }
        Ok(())
    }
    fn str(&self, index: usize, name: &str) -> Result<&str, RpcError> {
        self.required(index, name)?
            .as_str()
            .ok_or_else(|| RpcError::params(format!("parameter {name:?} must be a string")))
    }
    fn opt_u64(&self, index: usize, name: &str) -> Result<Option<u64>, RpcError> {
        match self.get(index, name) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                RpcError::params(format!("parameter {name:?} must be a non-negative integer"))
            }),
        }
    }
    fn address(&self, node: &Node, index: usize, name: &str) -> Result<Address, RpcError> {
        let s = self.str(index, name)?;
        Address::parse(s, node.params.hrp())
            .map_err(|e| RpcError::params(format!("parameter {name:?}: {e}")))
    }
}

fn amount(a: Amount) -> Value {
    Value::String(a.to_string())
}

fn tx_json(node: &Node, tx: &Transaction) -> Value {
    let b = tx.body();
    json!({
        "txid": tx.txid(),
        "chain": b.chain,
        "from": b.from.to_bech32(node.params.hrp()),
        "to": b.to.to_bech32(node.params.hrp()),
        "amount": amount(b.amount),
        "fee": amount(b.fee),
        "nonce": b.nonce,
        "signature": hex::encode(tx.signature().0),
        "hex": hex::encode(tx.encode()),
    })
}

fn header_json(node: &Node, h: &BlockHeader, confirmations: Option<u64>) -> Value {
    json!({
        "id": h.id(),
        "version": h.version,
        "height": h.height,
        "prev": h.prev,
        "tx_root": h.tx_root,
        "time": h.time,
        "target": format!("{:08x}", h.target.0),
        // A decimal string: the miner draws it from all of u64, and a JSON number above 2^53
        // loses digits in most clients (jq 1.6, JavaScript).
        "nonce": h.nonce.to_string(),
        "miner": h.miner.to_bech32(node.params.hrp()),
        "confirmations": confirmations,
        "hex": hex::encode(h.encode()),
    })
}

/// Resolves a block reference: a height (number) or an id (hex string).
fn resolve_block(node: &Node, v: &Value) -> Result<BlockId, RpcError> {
    let chain = node.chain.lock().expect("chain lock is never poisoned");
    if let Some(h) = v.as_u64() {
        return chain.main_id_at(h).map_err(internal)?.ok_or_else(|| {
            RpcError::not_found(format!("no block at height {h} (tip is {})", chain.height()))
        });
    }
    let s = v.as_str().ok_or_else(|| RpcError::params("block must be a height or a hex id"))?;
    let id: BlockId = s.parse().map_err(|e| RpcError::params(format!("block id: {e}")))?;
    Ok(id)
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::new(codes::INTERNAL, e.to_string())
}

fn confirmations(tip_height: u64, height: u64, main: bool) -> Option<u64> {
    main.then(|| tip_height.saturating_sub(height) + 1)
}

fn node_info(node: &Node, net: Option<&Arc<Network>>) -> Result<Value, RpcError> {
    // The tip snapshot, not the chain lock: a block being connected does not hold this up.
    let crate::tip::TipSnapshot { height, tip, work, known_headers } = node.tip.get();
    // Published by the mempool: a block's removals under its lock do not hold this up.
    let (count, bytes) = node.mempool_size.get();
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "network": node.params.network.name(),
        "genesis": node.params.genesis_id(),
        "node_id": node.node_key.id().to_string(),
        "height": height,
        "tip": tip,
        "work": format!("{work:x}"),
        "peers": net.map_or(0, |n| n.peer_count()),
        "mempool_size": count,
        "mempool_bytes": bytes,
        // Validated headers ahead of the tip, not a peer's claim (see PROTOCOL.md).
        "syncing": net.is_some_and(|n| n.sync_status().syncing),
        "best_peer_height": net.map_or(0, |n| n.best_peer_height()),
        "sync": net.map(|n| n.sync_status()),
        "compact": net.map(|n| n.compact_stats()),
        "known_addresses": net.map_or(0, |n| n.known_address_count()),
        "known_headers": known_headers,
        // The mining mode now (--mine / --automine, or as mining_set* changed it) and the
        // resolved --discover setting (flags, then environment, then file).
        "mining": controls::mode_json(node)["mining"],
        "automine": controls::mode_json(node)["automine"],
        "discover": node.config.discover,
        "rpc_addr": node.config.rpc_addr.to_string(),
        "p2p_addr": node.config.p2p_addr.to_string(),
    }))
}

fn block_by_param(node: &Node, p: &Params) -> Result<(Block, Option<u64>), RpcError> {
    let id = resolve_block(node, p.required(0, "block")?)?;
    let chain = node.chain.lock().expect("chain lock is never poisoned");
    let block = chain
        .block(&id)
        .map_err(internal)?
        .ok_or_else(|| RpcError::not_found(format!("block {id} not found")))?;
    let main = chain.is_main(&id).map_err(internal)?;
    Ok((block.clone(), confirmations(chain.height(), block.header.height, main)))
}

fn chain_get_block(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.no_more(1)?;
    let (block, conf) = block_by_param(node, p)?;
    let mut v = header_json(node, &block.header, conf);
    v["txs"] = Value::Array(block.txs.iter().map(|t| tx_json(node, t)).collect());
    v["size"] = json!(block.encoded_len());
    Ok(v)
}

fn chain_get_header(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.no_more(1)?;
    let id = resolve_block(node, p.required(0, "block")?)?;
    let chain = node.chain.lock().expect("chain lock is never poisoned");
    let entry =
        chain.entry(&id).ok_or_else(|| RpcError::not_found(format!("block {id} not found")))?;
    let main = chain.is_main(&id).map_err(internal)?;
    let mut v =
        header_json(node, &entry.header, confirmations(chain.height(), entry.header.height, main));
    v["status"] = json!(match entry.status {
        BlockStatus::HeaderOnly => "header-only",
        BlockStatus::BodyStored => "valid",
        BlockStatus::Invalid => "invalid",
    });
    v["main_chain"] = json!(main);
    v["work"] = json!(format!("{:x}", entry.work()));
    v["stored_at_us"] = json!(chain.stored_at_us(&id));
    Ok(v)
}

/// Waits until the tx and address indexes answer for `seen` (they follow the chain on
/// their own thread, [`crate::indexer`]), up to `deadline`.
async fn index_synced(
    node: &Node,
    seen: TipSnapshot,
    deadline: Instant,
) -> Result<IndexTip, RpcError> {
    node.indexer.synced_to(seen, &node.tip, deadline).await.map_err(|e| lagging(node, e.indexed))
}

/// `-32030`: the indexes, at `indexed`, do not yet answer for the chain's tip (the wallet
/// retries it).
fn lagging(node: &Node, indexed: u64) -> RpcError {
    let lag = crate::indexer::IndexLagging { indexed, chain: node.tip.get().height };
    RpcError::new(codes::INDEX_CATCHING_UP, lag.to_string())
}

/// Whether an index read made at `tip` answers a reader that saw the chain at `seen`; when
/// it does not (the follower was stepping back off a branch as the chain flipped), the
/// reader reads again, until `deadline`, then gets `-32030`.
fn read_answers(
    node: &Node,
    tip: IndexTip,
    seen: &TipSnapshot,
    deadline: Instant,
) -> Result<bool, RpcError> {
    if node.indexer.answers(tip, seen, &node.tip.get()) {
        return Ok(true);
    }
    if Instant::now() >= deadline {
        return Err(lagging(node, tip.height));
    }
    Ok(false)
}

/// `chain_getTransaction`: pending (from the mempool) or confirmed (from the tx index).
/// The mempool and the tip are read together under the chain lock (a look-up, no store
/// read; on the blocking pool): a block's payments leave the mempool under that lock before its tip is
/// published, so a payment not pending there is confirmed at or below that tip, or
/// unknown. A payment the tx index holds in a block of a published tip's main chain
/// ([`TxLookup::confirmed_on`](crate::store::TxLookup::confirmed_on)) is answered at once
/// (however far behind the index is); else the index, once it answers for that tip, is
/// read off the lock; a payment it lacks is unknown only if the index read was made at
/// that very tip or at a main-chain block above it, that tip still on the main chain
/// ([`TxLookup::covers_seen`](crate::store::TxLookup::covers_seen)): else a reorg may have
/// returned it to the mempool, and both are read again. `-32030` after
/// [`SYNC_WAIT`](crate::indexer::SYNC_WAIT) without such a read.
async fn chain_get_transaction(node: &Arc<Node>, p: &Params<'_>) -> Result<Value, RpcError> {
    p.no_more(1)?;
    let txid: Txid =
        p.str(0, "txid")?.parse().map_err(|e| RpcError::params(format!("txid: {e}")))?;
    let deadline = Instant::now() + crate::indexer::SYNC_WAIT;
    loop {
        let (pending, seen) = on_blocking_pool(node, move |n| {
            let chain = n.chain.lock().expect("chain lock is never poisoned");
            let mp = n.mempool.lock().expect("mempool lock is never poisoned");
            (mp.get(&txid).copied(), TipSnapshot::of(&chain))
        })
        .await?;
        if let Some(tx) = pending {
            let mut v = tx_json(node, &tx);
            v["status"] = json!("pending");
            v["confirmations"] = json!(0);
            return Ok(v);
        }
        let lookup = || async {
            let store = node.store.clone();
            let seen = (seen.height, seen.tip);
            tokio::task::spawn_blocking(move || store.tx_lookup(&txid, seen))
                .await
                .map_err(|e| internal(e.to_string()))?
                .map_err(internal)
        };
        // Found in a block of a published main chain: confirmed there, however far behind
        // the index is (an old payment needs no wait for the newest blocks' entries).
        let read = lookup().await?;
        if let Some((loc, tx)) = read.confirmed_on(&[seen.tip, node.tip.get().tip]) {
            return Ok(confirmed_json(node, loc, tx, read.chain_height));
        }
        index_synced(node, seen, deadline).await?;
        let read = lookup().await?;
        let at = IndexTip { id: read.tip, height: read.tip_height };
        if !read_answers(node, at, &seen, deadline)? {
            continue;
        }
        match &read.found {
            Some((loc, tx)) => return Ok(confirmed_json(node, loc, tx, read.tip_height)),
            // Read at that very tip, or at a descendant of it on the main chain: unknown.
            None if at.id == seen.tip || read.covers_seen => {
                return Err(RpcError::not_found(format!(
                    "transaction {txid} is neither confirmed nor pending"
                )))
            }
            // Read at another tip: the payment may have gone back to the mempool since.
            None if Instant::now() < deadline => continue,
            None => return Err(lagging(node, read.tip_height)),
        }
    }
}

/// A confirmed payment as `chain_getTransaction` shows it, `confirmations` counted from a
/// chain at `tip_height`.
fn confirmed_json(
    node: &Node,
    loc: &crate::store::TxLocation,
    tx: &Transaction,
    tip_height: u64,
) -> Value {
    let mut v = tx_json(node, tx);
    v["status"] = json!("confirmed");
    v["block"] = json!(loc.block);
    v["height"] = json!(loc.height);
    v["position"] = json!(loc.position);
    v["confirmations"] = json!(tip_height.saturating_sub(loc.height) + 1);
    v
}

fn account_get(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.no_more(1)?;
    let addr = p.address(node, 0, "address")?;
    let chain = node.chain.lock().expect("chain lock is never poisoned");
    let acct = chain.account(&addr).map_err(internal)?;
    let mp = node.mempool.lock().expect("mempool lock is never poisoned");
    let pending = mp.pending_for(&addr);
    let spend = mp.pending_spend(&addr);
    let (received_count, received) = mp.pending_received(&addr);
    Ok(json!({
        "address": addr.to_bech32(node.params.hrp()),
        "balance": amount(acct.balance),
        "nonce": acct.nonce,
        "next_nonce": mp.next_nonce(&addr, acct.nonce),
        "pending_count": pending.len(),
        "pending_spend": amount(spend),
        "available": amount(acct.balance.checked_sub(spend).unwrap_or(Amount::ZERO)),
        // Payments to this address still in the mempool (not spendable until mined).
        "pending_received_count": received_count,
        "pending_received": amount(received),
        "height": chain.height(),
    }))
}

/// `account_history`: confirmed payments newest first, a page at a time, read on the
/// blocking pool from a store snapshot without the chain lock (page 0 is one index seek,
/// page `p` steps over `p * page_size` entries); then the pending ones from the mempool.
async fn account_history(node: &Arc<Node>, p: &Params<'_>) -> Result<Value, RpcError> {
    p.no_more(3)?;
    let addr = p.address(node, 0, "address")?;
    let page = p.opt_u64(1, "page")?.unwrap_or(0);
    // Echoed back as a JSON number, which must stay exact.
    if page > MAX_JSON_INT {
        return Err(RpcError::params(format!("page must be at most {MAX_JSON_INT}")));
    }
    let page_size = p.opt_u64(2, "page_size")?.unwrap_or(50);
    if page_size == 0 || page_size > 500 {
        return Err(RpcError::params("page_size must be between 1 and 500"));
    }
    // Read again while the page was read at an index tip that does not answer for the
    // chain the caller saw (the follower stepping back off a branch as the chain flips).
    let deadline = Instant::now() + crate::indexer::SYNC_WAIT;
    let skip = page.saturating_mul(page_size);
    let read = loop {
        let seen = node.tip.get();
        index_synced(node, seen, deadline).await?;
        let store = node.store.clone();
        let read = tokio::task::spawn_blocking(move || {
            store.history_page(&addr, skip, page_size as usize)
        })
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(internal)?;
        if read_answers(node, IndexTip { id: read.tip, height: read.tip_height }, &seen, deadline)?
        {
            break read;
        }
    };
    let items: Vec<Value> = read
        .items
        .iter()
        .map(|item| {
            let mut v = tx_json(node, &item.tx);
            v["height"] = json!(item.height);
            v["block"] = json!(item.block);
            v["confirmations"] = json!(read.tip_height.saturating_sub(item.height) + 1);
            v["direction"] = json!(if item.tx.body().from == addr { "sent" } else { "received" });
            v
        })
        .collect();
    let total = read.total;
    // Pending both ways: what the address sends (its own queue, at most the nonce gap), then
    // what it receives (from the mempool's receiver index, at most MAX_PENDING_RECEIVED).
    let (pending, received_total) = {
        let mp = node.mempool.lock().expect("mempool lock is never poisoned");
        let with = |t: &Transaction, direction: &str| {
            let mut v = tx_json(node, t);
            v["direction"] = json!(direction);
            v
        };
        let mut pending: Vec<Value> =
            mp.pending_for(&addr).iter().map(|t| with(t, "sent")).collect();
        let received = mp.pending_to(&addr, MAX_PENDING_RECEIVED);
        // A payment to oneself is already listed as sent.
        pending
            .extend(received.iter().filter(|t| t.body().from != addr).map(|t| with(t, "received")));
        (pending, mp.pending_received(&addr).0)
    };
    Ok(json!({
        "total": total,
        "page": page,
        "page_size": page_size,
        "items": items,
        "pending": pending,
        "pending_received_total": received_total,
    }))
}

/// The transaction a `tx_submit` request carries, or the error its params deserve.
pub fn tx_of_submit(params: &Value) -> Result<Transaction, RpcError> {
    let p = Params(params);
    p.no_more(1)?;
    let text = p.str(0, "tx")?;
    let bytes =
        hex::decode(text.trim()).map_err(|e| RpcError::params(format!("tx must be hex: {e}")))?;
    Transaction::decode(&bytes).map_err(|e| RpcError::params(format!("tx does not decode: {e}")))
}

/// Admits the transactions of a batch's `tx_submit` requests in one trip to the blocking
/// pool: their signatures checked on every core at once, then admission one by one in
/// request order. Without this each payment cost a thread hop and a single-core check.
pub async fn submit_parsed(
    node: &Arc<Node>,
    txs: Vec<Transaction>,
) -> Vec<Result<Txid, MempoolError>> {
    let node = node.clone();
    let n = txs.len();
    tokio::task::spawn_blocking(move || {
        node.sig_cache.preverify(&txs);
        txs.into_iter().map(|tx| node.submit_tx_blocking(tx)).collect()
    })
    .await
    .unwrap_or_else(|e| (0..n).map(|_| Err(MempoolError::Internal(e.to_string()))).collect())
}

async fn tx_submit(
    node: &Arc<Node>,
    p: &Params<'_>,
    submitted: Option<Result<Txid, MempoolError>>,
) -> Result<Value, RpcError> {
    let result = match submitted {
        Some(r) => r,
        None => node.submit_tx(tx_of_submit(p.0)?).await,
    };
    match result {
        Ok(txid) => Ok(json!(txid)),
        Err(e) => Err(RpcError {
            code: codes::TX_REFUSED,
            message: format!("transaction refused: {e}"),
            data: Some(json!({ "reason": e.reason() })),
        }),
    }
}

fn mempool_info(node: &Node) -> Result<Value, RpcError> {
    let mp = node.mempool.lock().expect("mempool lock is never poisoned");
    let limits = mp.limits();
    Ok(json!({
        "count": mp.len(),
        "bytes": mp.bytes(),
        "max_count": limits.max_count,
        "max_bytes": limits.max_bytes,
        "min_fee": amount(limits.min_fee),
    }))
}

fn mempool_list(node: &Node, p: &Params) -> Result<Value, RpcError> {
    p.no_more(1)?;
    let limit = p.opt_u64(0, "limit")?.unwrap_or(1000).min(50_000) as usize;
    let mp = node.mempool.lock().expect("mempool lock is never poisoned");
    let ids: Vec<Txid> = mp.txids().take(limit).collect();
    Ok(json!(ids))
}

async fn mining_generate(node: &Arc<Node>, p: &Params<'_>) -> Result<Value, RpcError> {
    p.no_more(2)?;
    let count = p.opt_u64(0, "count")?.unwrap_or(1);
    if count == 0 || count > 10_000 {
        return Err(RpcError::params("count must be between 1 and 10000"));
    }
    controls::devnet_only(node, "mining_generate")?;
    let miner = match p.get(1, "address") {
        Some(_) => p.address(node, 1, "address")?,
        None => node
            .config
            .miner_address
            .or_else(|| node.params.allocations().first().map(|(a, _)| *a))
            .ok_or_else(|| {
                RpcError::params("no address given and the node has no default miner address")
            })?,
    };
    let n = node.clone();
    let ids = tokio::task::spawn_blocking(move || crate::miner::generate(&n, count as u32, miner))
        .await
        .map_err(internal)?
        .map_err(|e| RpcError::new(codes::UNSUPPORTED, e))?;
    Ok(json!(ids))
}

/// `state_digest`: the accounts' digest and their total balance (a conservation check
/// for tools: every balance added up, against what genesis and the subsidies of the main
/// chain created; fees move between accounts, never vanish). One scan of every account,
/// on the blocking pool, from a store snapshot: no chain lock.
async fn state_digest(node: &Arc<Node>) -> Result<Value, RpcError> {
    let store = node.store.clone();
    let s = tokio::task::spawn_blocking(move || store.state_summary())
        .await
        .map_err(internal)?
        .map_err(internal)?;
    let expected = node.params.supply_at(s.height).map(|a| a.units().to_string());
    Ok(json!({
        "height": s.height,
        "tip": s.tip,
        "digest": s.digest,
        "supply_units": s.supply_units.to_string(),
        "expected_supply_units": expected,
    }))
}

pub fn render_metrics(node: &Node, net: Option<&Arc<Network>>) -> String {
    let mut out = String::new();
    {
        let chain = node.chain.lock().expect("chain lock is never poisoned");
        let stats = chain.stats();
        metric(&mut out, "ember_height", "gauge", "Height of the main chain tip.", chain.height());
        metric(
            &mut out,
            "ember_known_headers",
            "gauge",
            "Headers known on all branches.",
            chain.known_headers(),
        );
        metric(
            &mut out,
            "ember_orphans",
            "gauge",
            "Blocks waiting for their parent.",
            chain.orphan_count(),
        );
        metric(
            &mut out,
            "ember_blocks_accepted_total",
            "counter",
            "Blocks accepted.",
            stats.blocks_accepted,
        );
        out.push_str("# HELP ember_blocks_refused_total Blocks refused, by reason.\n# TYPE ember_blocks_refused_total counter\n");
        for (reason, n) in &stats.blocks_refused {
            out.push_str(&format!("ember_blocks_refused_total{{reason=\"{reason}\"}} {n}\n"));
        }
        metric(&mut out, "ember_reorgs_total", "counter", "Chain reorganisations.", stats.reorgs);
        metric(
            &mut out,
            "ember_txs_confirmed_total",
            "counter",
            "Transactions connected to the main chain.",
            stats.txs_connected,
        );
    }
    {
        let mp = node.mempool.lock().expect("mempool lock is never poisoned");
        metric(&mut out, "ember_mempool_size", "gauge", "Transactions in the mempool.", mp.len());
        metric(
            &mut out,
            "ember_mempool_bytes",
            "gauge",
            "Encoded bytes of mempool transactions.",
            mp.bytes(),
        );
    }
    metric(&mut out, "ember_peers", "gauge", "Connected peers.", net.map_or(0, |n| n.peer_count()));
    if let Some(net) = net {
        let st = net.sync_status();
        metric(
            &mut out,
            "ember_sync_target_height",
            "gauge",
            "Best height known from peers and validated headers.",
            st.target_height,
        );
        metric(
            &mut out,
            "ember_sync_blocks_per_second",
            "gauge",
            "Blocks connected per second, smoothed.",
            format!("{:.3}", st.blocks_per_sec),
        );
        metric(
            &mut out,
            "ember_sync_eta_seconds",
            "gauge",
            "Seconds to reach the sync target at the current rate (0 when not syncing).",
            st.eta_secs.unwrap_or(0),
        );
        metric(
            &mut out,
            "ember_known_addresses",
            "gauge",
            "Addresses in the P2P address book.",
            net.known_address_count(),
        );
        metric(
            &mut out,
            "ember_payments_checked_ahead_total",
            "counter",
            "Payments of whole blocks from peers whose signatures were found valid on every \
             core before the chain lock (every payment of a sync).",
            net.payments_checked_ahead(),
        );
    }
    metric(
        &mut out,
        "ember_sigcache_hits_total",
        "counter",
        "Signature verifications skipped thanks to the cache.",
        node.sig_cache.hits.load(std::sync::atomic::Ordering::Relaxed),
    );
    node.metrics.render_into(&mut out);
    out
}

fn net_method(net: Option<&Arc<Network>>, method: &str, p: &Params) -> Result<Value, RpcError> {
    let net = net.ok_or_else(|| RpcError::new(codes::UNSUPPORTED, "networking is not running"))?;
    match method {
        "net_peers" => {
            p.no_more(0)?;
            Ok(json!(net.peers()))
        }
        "net_bans" => {
            p.no_more(0)?;
            Ok(json!(net.bans()))
        }
        "net_addPeer" => {
            p.no_more(1)?;
            let addr = p.str(0, "address")?;
            let node_net = net.clone();
            node_net.add_peer(addr).map_err(|e| RpcError::params(e.to_string()))?;
            Ok(json!(true))
        }
        "net_disconnect" => {
            p.no_more(1)?;
            Ok(json!(net.disconnect(p.str(0, "peer")?)))
        }
        "net_ban" => {
            p.no_more(3)?;
            let addr = p.str(0, "address")?;
            // An IP bans the host; `ip:port` one node of a shared IP (a loopback testnet).
            let key = match addr.parse::<std::net::SocketAddr>() {
                Ok(sa) => sa.to_string(),
                Err(_) => {
                    addr.parse::<std::net::IpAddr>().map(|ip| ip.to_string()).map_err(|_| {
                        RpcError::params(format!(
                            "address {addr:?} is neither an IP (\"203.0.113.7\") nor ip:port \
                         (\"127.0.0.1:9545\")"
                        ))
                    })?
                }
            };
            let max = crate::net::bans::MAX_BAN.as_secs();
            let secs = p.opt_u64(1, "seconds")?.unwrap_or(3600);
            if secs == 0 || secs > max {
                return Err(RpcError::params(format!(
                    "seconds must be from 1 to {max} (ten years); got {secs}"
                )));
            }
            let reason = p.get(2, "reason").and_then(Value::as_str).unwrap_or("banned by operator");
            net.ban(key, reason.to_string(), std::time::Duration::from_secs(secs));
            Ok(json!(true))
        }
        "net_unban" => {
            p.no_more(1)?;
            Ok(json!(net.unban(p.str(0, "address")?)))
        }
        _ => Err(RpcError::new(codes::METHOD_NOT_FOUND, format!("unknown method {method:?}"))),
    }
}
