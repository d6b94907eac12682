//! How a devnet node mines, changeable while it runs (anvil's `evm_setAutomine` and
//! `evm_setIntervalMining`, Core's `generate*` aside):
//!
//! - **interval**: a block at exponentially distributed times around a mean (`--mine
//!   --block-time SECS`, `mining_setInterval`), so independent devnet miners still race;
//! - **automine**: a block as soon as payments are admitted (`--automine`,
//!   `mining_setAutomine`): one block takes every payment admitted before it starts, so a
//!   batch of payments lands in one block, and payments admitted while it is mined get the
//!   next one.
//!
//! Both can be on at once. The mode is one value behind a `watch` channel: the miner task
//! ([`run`]) wakes on every change. Other networks keep `--mine`'s continuous search and
//! refuse these controls (`-32020`).

use crate::node::Node;
use ember_core::Address;
use rand::Rng;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// The longest mean interval `mining_setInterval` takes (an hour, as `--block-time`).
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// The shortest one (a millisecond); 0 switches interval mining off.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// How a devnet node mines.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MiningMode {
    /// A block as soon as payments are admitted.
    pub automine: bool,
    /// Mean time between interval blocks; `None`: no interval mining.
    pub interval: Option<Duration>,
}

/// The node's mining mode, shared by the RPC (which changes it) and the miner (which
/// follows it).
pub struct MiningControl {
    tx: watch::Sender<MiningMode>,
}

impl MiningControl {
    pub fn new(initial: MiningMode) -> MiningControl {
        MiningControl { tx: watch::channel(initial).0 }
    }

    pub fn get(&self) -> MiningMode {
        *self.tx.borrow()
    }

    pub fn set_automine(&self, on: bool) {
        self.tx.send_modify(|m| m.automine = on);
    }

    /// `None` or a zero duration switches interval mining off.
    pub fn set_interval(&self, mean: Option<Duration>) {
        let mean = mean.filter(|d| !d.is_zero()).map(|d| d.min(MAX_INTERVAL));
        self.tx.send_modify(|m| m.interval = mean);
    }

    fn subscribe(&self) -> watch::Receiver<MiningMode> {
        self.tx.subscribe()
    }
}

/// An exponentially distributed wait with mean `mean` (at most 20 means).
fn next_wait(mean: Duration) -> Duration {
    let u: f64 = rand::thread_rng().gen_range(f64::EPSILON..1.0);
    Duration::from_secs_f64((-u.ln() * mean.as_secs_f64()).min(mean.as_secs_f64() * 20.0))
}

/// The devnet miner: waits for the next interval block, a freshly admitted payment
/// (automine), a change of mode or the shutdown, and mines one block at a time on the
/// blocking pool. Automine mines only while payments are pending: the notifications of
/// payments a block already took wake it for nothing, and payments a reorganisation, an
/// invalidation or a revert gave back (not on `fresh_txs`) wait for a new payment or an
/// interval block, so `dev_revert` leaves the snapshot's state in place.
pub async fn run(node: Arc<Node>, miner: Address) {
    let mut mode_rx = node.mining.subscribe();
    let mut admitted = node.fresh_txs.subscribe();
    let stop = Arc::new(AtomicBool::new(false));
    loop {
        let mode = *mode_rx.borrow_and_update();
        let wait = mode.interval.map(next_wait);
        let mine = tokio::select! {
            _ = tokio::time::sleep(wait.unwrap_or(Duration::MAX)), if wait.is_some() => true,
            r = admitted.recv(), if mode.automine => match r {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Every notification up to now: this block takes their payments.
                    while admitted.try_recv().is_ok() {}
                    !node.mempool.lock().expect("mempool lock is never poisoned").is_empty()
                }
                Err(broadcast::error::RecvError::Closed) => return,
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
        let mined =
            tokio::task::spawn_blocking(move || crate::miner::mine_one(&n, miner, &s)).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_zero_is_off_and_long_ones_are_capped() {
        let c = MiningControl::new(MiningMode::default());
        c.set_interval(Some(Duration::from_secs(2)));
        assert_eq!(c.get().interval, Some(Duration::from_secs(2)));
        c.set_interval(Some(Duration::ZERO));
        assert_eq!(c.get().interval, None);
        c.set_interval(Some(Duration::from_secs(10_000)));
        assert_eq!(c.get().interval, Some(MAX_INTERVAL));
        c.set_automine(true);
        assert!(c.get().automine);
    }
}
