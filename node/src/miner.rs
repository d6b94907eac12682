//! The miner: block templates from the mempool by fee, proof-of-work search on its own
//! threads, restart when the tip moves.
//!
//! On devnet the target is so easy that a block is found in a couple of hashes, so
//! `mining_generate` mines N blocks at once, and [`crate::mining_mode`] decides when a
//! block is due (intervals around `--block-time`, or automine).

use crate::node::Node;
use ember_core::block::{max_txs_for, merkle_root, BLOCK_VERSION};
use ember_core::pow::meets_target;
use ember_core::{Address, Block, BlockError, BlockHeader, Transaction};
use rand::Rng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds a template on the current tip: the best transactions by fee within the block size,
/// each applied by the consensus rules as it is chosen, so the block is valid whatever the
/// mempool holds (see [`crate::mempool::Mempool::select_for_block`]).
///
/// Fails only when `miner`'s balance cannot take the block subsidy: no block may pay it.
pub fn template(node: &Node, miner: Address) -> Result<Block, BlockError> {
    let chain = node.chain.lock().expect("chain lock is never poisoned");
    let (target, min_time) = chain.next_block_rules();
    let tip = chain.tip_entry().header;
    let max_txs = max_txs_for(node.params.max_block_bytes);
    let txs: Vec<Transaction> = {
        let mut mempool = node.mempool.lock().expect("mempool lock is never poisoned");
        mempool.select_for_block(&chain.state(), tip.height + 1, miner, max_txs)?
    };
    let tx_root = merkle_root(&txs.iter().map(Transaction::txid).collect::<Vec<_>>());
    let header = BlockHeader {
        version: BLOCK_VERSION,
        height: tip.height + 1,
        prev: tip.id(),
        tx_root,
        time: crate::node::now_ms().max(min_time),
        target,
        nonce: rand::thread_rng().gen(),
        miner,
    };
    Ok(Block { header, txs })
}

/// Searches nonces on `threads` threads until one meets the target, `stop` is set, or
/// `deadline` passes (so the caller can refresh the template's time and transactions).
/// Returns the solved header.
pub fn search(
    header: BlockHeader,
    threads: usize,
    stop: &(dyn Fn() -> bool + Sync),
    deadline: Instant,
    hashes: &AtomicU64,
) -> Option<BlockHeader> {
    let target = header.target.expand().ok()?;
    let found: std::sync::Mutex<Option<BlockHeader>> = std::sync::Mutex::new(None);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..threads.max(1) {
            let (found, done) = (&found, &done);
            s.spawn(move || {
                let mut h = header;
                h.nonce = header.nonce.wrapping_add(t as u64);
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) {
                    if meets_target(h.id().as_bytes(), target) {
                        *found.lock().expect("never poisoned") = Some(h);
                        done.store(true, Ordering::Relaxed);
                        break;
                    }
                    h.nonce = h.nonce.wrapping_add(threads.max(1) as u64);
                    n += 1;
                    if n % 4096 == 0 {
                        hashes.fetch_add(4096, Ordering::Relaxed);
                        if Instant::now() > deadline || stop() {
                            break;
                        }
                    }
                }
            });
        }
    });
    found.into_inner().expect("never poisoned")
}

/// Mines `count` blocks now (devnet), paying `miner` (`mining_generate`). Returns their
/// ids; an error on a network with retargeting, or when a mined block was refused.
pub fn generate(
    node: &Node,
    count: u32,
    miner: Address,
) -> Result<Vec<ember_core::BlockId>, String> {
    if node.params.retarget {
        return Err("mining_generate is only available on devnet".into());
    }
    let stop = AtomicBool::new(false);
    let mut ids = Vec::with_capacity(count as usize);
    for _ in 0..count {
        match mine_one(node, miner, &stop) {
            Some(b) => ids.push(b.id()),
            None => return Err("a mined block was refused (see the node log)".into()),
        }
    }
    Ok(ids)
}

/// Mines one block on the current tip and submits it; on devnet this takes microseconds.
pub fn mine_one(node: &Node, miner: Address, stop: &AtomicBool) -> Option<Block> {
    let _turn = node.making_block.lock().expect("never poisoned");
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let generation = node.tip_generation.load(Ordering::Relaxed);
        let mut block = match template(node, miner) {
            Ok(block) => block,
            Err(e) => {
                tracing::warn!(
                    miner = %miner.to_bech32(node.params.hrp()),
                    error = %e,
                    "cannot mine: no block may pay this miner address; mine to another one"
                );
                return None;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        // Stop early when asked to, or when another block moved the tip under us.
        let stop_now = || {
            stop.load(Ordering::Relaxed)
                || node.tip_generation.load(Ordering::Relaxed) != generation
        };
        let threads = node.config.mine_threads.max(1);
        if let Some(h) = search(block.header, threads, &stop_now, deadline, &node.hashes) {
            block.header = h;
            if let Some(found) = node.on_found.get() {
                found(&block);
            }
            match node.accept_block(block.clone()) {
                Ok(_) => return Some(block),
                Err(e) => {
                    tracing::warn!(error = %e, "own block refused");
                    return None;
                }
            }
        }
        // Deadline passed or the tip moved: rebuild the template.
    }
}

/// The `--mine` loop of a network with real proof of work: mine continuously, restarting
/// on a new tip. (Devnet's paced and automatic mining is [`run_devnet`].)
pub async fn run(node: Arc<Node>, miner: Address) {
    let stop = Arc::new(AtomicBool::new(false));
    loop {
        let (n, s) = (node.clone(), stop.clone());
        let stopper = {
            let s = stop.clone();
            let node = node.clone();
            tokio::spawn(async move {
                node.shutdown.cancelled().await;
                s.store(true, Ordering::Relaxed);
            })
        };
        let mined = tokio::task::spawn_blocking(move || mine_one(&n, miner, &s)).await;
        stopper.abort();
        match mined {
            Ok(Some(b)) => {
                tracing::info!(height = b.header.height, id = %b.id(), txs = b.txs.len(), "mined block")
            }
            Ok(None) if node.shutdown.is_cancelled() => return,
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "miner task failed"),
        }
    }
}
/// An exponentially distributed wait with mean `mean` (at most 20 means).
fn next_wait(mean: Duration) -> Duration {
    let u: f64 = rand::thread_rng().gen_range(f64::EPSILON..1.0);
    Duration::from_secs_f64((-u.ln() * mean.as_secs_f64()).min(mean.as_secs_f64() * 20.0))
}

/// The devnet miner ([`crate::mining_mode`]): waits for the next interval block, a freshly admitted payment
/// (automine), a change of mode or the shutdown, and mines one block at a time on the
/// blocking pool. Automine mines only while payments are pending: the notifications of
/// payments a block already took wake it for nothing, and payments a reorganisation, an
/// invalidation or a revert gave back (not on `fresh_txs`) wait for a new payment or an
/// interval block, so `dev_revert` leaves the snapshot's state in place.
pub async fn run_devnet(node: Arc<Node>, miner: Address) {
    let mut mode_rx = node.mining.subscribe();
    let mut admitted = node.fresh_txs.subscribe();
    let stop = Arc::new(AtomicBool::new(false));
    loop {
        let mode = *mode_rx.borrow_and_update();
        let wait = mode.interval.map(next_wait);
        let mine = tokio::select! {
            _ = tokio::time::sleep(wait.unwrap_or(Duration::MAX)), if wait.is_some() => true,
            r = admitted.recv(), if mode.automine => match r {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Every notification up to now: this block takes their payments.
                    while admitted.try_recv().is_ok() {}
                    !node.mempool.lock().expect("mempool lock is never poisoned").is_empty()
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            changed = mode_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                false
            }
            _ = node.shutdown.cancelled() => return,
        };
        if !mine {
            continue;
        }
        let (n, s) = (node.clone(), stop.clone());
        let mined = tokio::task::spawn_blocking(move || mine_one(&n, miner, &s)).await;
        match mined {
            Ok(Some(b)) => {
                tracing::info!(height = b.header.height, id = %b.id(), txs = b.txs.len(), "mined block")
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "miner task failed"),
        }
        if node.shutdown.is_cancelled() {
            return;
        }
    }
}
