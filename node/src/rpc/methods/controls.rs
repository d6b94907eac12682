//! Controls a developer reaches for: `mining_getMode`, `mining_setAutomine`,
//! `mining_setInterval` (devnet only: `-32020` elsewhere), `chain_getTips`,
//! `chain_invalidateBlock` and `chain_reconsiderBlock` (any network, admin),
//! `dev_snapshot` and `dev_revert` (devnet, admin).

use super::{on_blocking_pool, Params, RpcError};
use crate::mining_mode::{MiningMode, MAX_INTERVAL, MIN_INTERVAL};
use crate::node::Node;
use crate::rpc::codes;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The mode as `mining_getMode` and the setters answer it.
pub fn mode_json(node: &Node) -> Value {
    let devnet = !node.params.retarget;
    let MiningMode { automine, interval } = node.mining.get();
    json!({
        "automine": devnet && automine,
        "interval_secs": if devnet { interval.map(|d| d.as_secs_f64()) } else { None },
        // Blocks come without anyone asking: interval mining, or --mine on other networks.
        "mining": if devnet { interval.is_some() } else { node.config.mine },
    })
}

pub fn get_mode(node: &Node, p: &Params<'_>) -> Result<Value, RpcError> {
    p.no_more(0)?;
    Ok(mode_json(node))
}

/// Refuses a devnet control on another network (`-32020`), whose blocks need real proof
/// of work.
pub(super) fn devnet_only(node: &Node, method: &str) -> Result<(), RpcError> {
    if node.params.retarget {
        return Err(RpcError::new(
            codes::UNSUPPORTED,
            format!(
                "{method} is for devnet only; {} blocks need real proof of work (--mine)",
                node.params.network.name()
            ),
        ));
    }
    Ok(())
}

/// Refuses the setters off devnet, and on a node with no address to mine to.
fn devnet_miner(node: &Node, method: &str) -> Result<(), RpcError> {
    devnet_only(node, method)?;
    if node.default_miner().is_none() {
        return Err(RpcError::new(
            codes::UNSUPPORTED,
            format!(
                "{method}: this node has no address to mine to; restart it with --miner-address"
            ),
        ));
    }
    Ok(())
}

pub fn set_automine(node: &Arc<Node>, p: &Params<'_>) -> Result<Value, RpcError> {
    p.no_more(1)?;
    let on = p
        .required(0, "enabled")?
        .as_bool()
        .ok_or_else(|| RpcError::params("parameter \"enabled\" must be true or false"))?;
    devnet_miner(node, "mining_setAutomine")?;
    node.mining.set_automine(on);
    tracing::info!(automine = on, "mining mode changed over RPC");
    Ok(mode_json(node))
}

pub fn set_interval(node: &Arc<Node>, p: &Params<'_>) -> Result<Value, RpcError> {
    p.no_more(1)?;
    let secs = p.required(0, "seconds")?.as_f64().filter(|s| s.is_finite() && *s >= 0.0);
    let (min, max) = (MIN_INTERVAL.as_secs_f64(), MAX_INTERVAL.as_secs_f64());
    let secs = secs.filter(|s| *s == 0.0 || (min..=max).contains(s)).ok_or_else(|| {
        RpcError::params(format!(
            "parameter \"seconds\" must be 0 (off) or a number from {min} to {max}, e.g. 2 or 0.5"
        ))
    })?;
    devnet_miner(node, "mining_setInterval")?;
    node.mining.set_interval(Some(Duration::from_secs_f64(secs)));
    tracing::info!(interval_secs = secs, "mining mode changed over RPC");
    Ok(mode_json(node))
}

pub fn chain_tips(node: &Node, p: &Params<'_>) -> Result<Value, RpcError> {
    p.no_more(0)?;
    let tips = node.chain.lock().expect("chain lock is never poisoned").tips();
    Ok(Value::Array(
        tips.into_iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "height": t.height,
                    "work": format!("{:x}", t.work),
                    "branch_len": t.branch_len,
                    "status": t.status.name(),
                })
            })
            .collect(),
    ))
}

/// The block a param names: an id (64 hex) or a height: the main chain's block there, or
/// (for reconsider) the block invalidated by hand there.
fn block_param(
    node: &Node,
    p: &Params<'_>,
    invalidated: bool,
) -> Result<ember_core::BlockId, RpcError> {
    let v = p.required(0, "block")?;
    if let Some(h) = v.as_u64() {
        let chain = node.chain.lock().expect("chain lock is never poisoned");
        let main =
            chain.main_id_at(h).map_err(|e| RpcError::new(codes::INTERNAL, e.to_string()))?;
        let found = if invalidated { chain.invalidated_at(h).or(main) } else { main };
        return found.ok_or_else(|| {
            RpcError::not_found(format!("no block at height {h} on the main chain"))
        });
    }
    v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
        RpcError::params("parameter \"block\" must be a height or a 64-hex block id")
    })
}

fn manual_result(
    node: &Node,
    r: Result<u64, crate::chain::ManualError>,
) -> Result<Value, RpcError> {
    use crate::chain::ManualError;
    match r {
        Ok(height) => {
            let tip = node.chain.lock().expect("chain lock is never poisoned").tip();
            Ok(json!({ "height": height, "tip": tip }))
        }
        Err(e @ ManualError::Unknown(_)) => Err(RpcError::not_found(e.to_string())),
        Err(e @ ManualError::Genesis) => Err(RpcError::params(e.to_string())),
        Err(e) => Err(RpcError::new(codes::INTERNAL, e.to_string())),
    }
}

/// `chain_invalidateBlock`: the block named, its resolution (a height is read under the
/// chain lock) and the tip after it all on the blocking pool.
pub async fn invalidate(node: &Arc<Node>, p: &Params<'_>) -> Result<Value, RpcError> {
    p.no_more(1)?;
    let v = p.0.clone();
    on_blocking_pool(node, move |n| {
        let id = block_param(n, &Params(&v), false)?;
        manual_result(n, n.invalidate_block(&id))
    })
    .await?
}

/// `chain_reconsiderBlock`, on the blocking pool as [`invalidate`]; then peers are asked
/// again for what they had sent on the reconsidered branch.
pub async fn reconsider(
    node: &Arc<Node>,
    net: Option<&Arc<crate::net::Network>>,
    p: &Params<'_>,
) -> Result<Value, RpcError> {
    p.no_more(1)?;
    let v = p.0.clone();
    let result = on_blocking_pool(node, move |n| {
        let id = block_param(n, &Params(&v), true)?;
        manual_result(n, n.reconsider_block(&id))
    })
    .await?;
    if result.is_ok() {
        // Peers' blocks on the reconsidered branch were refused, not kept: ask again.
        if let Some(net) = net {
            net.resync();
        }
    }
    result
}

pub fn snapshot(node: &Node, p: &Params<'_>) -> Result<Value, RpcError> {
    p.no_more(0)?;
    devnet_only(node, "dev_snapshot")?;
    let id = node.snapshot();
    let tip = node.chain.lock().expect("chain lock is never poisoned").tip();
    Ok(json!({ "id": id, "tip": tip }))
}

pub async fn revert(node: &Arc<Node>, p: &Params<'_>) -> Result<Value, RpcError> {
    p.no_more(1)?;
    devnet_only(node, "dev_revert")?;
    let id = p.opt_u64(0, "id")?.ok_or_else(|| RpcError::params("missing parameter \"id\""))?;
    let (r, tip) = on_blocking_pool(node, move |n| {
        let r = n.revert(id);
        (r, n.chain.lock().expect("chain lock is never poisoned").tip())
    })
    .await?;
    match r {
        Ok(height) => Ok(json!({ "height": height, "tip": tip })),
        Err(e @ crate::dev_snapshot::RevertError::Unknown(_)) => {
            Err(RpcError::not_found(e.to_string()))
        }
        Err(e @ crate::dev_snapshot::RevertError::Invalidated(_)) => {
            Err(RpcError::params(e.to_string()))
        }
        Err(e) => Err(RpcError::new(codes::INTERNAL, e.to_string())),
    }
}
