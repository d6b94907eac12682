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
//! (`miner::run_devnet`) wakes on every change. Other networks keep `--mine`'s continuous search and
//! refuse these controls (`-32020`).

use std::time::Duration;
use tokio::sync::watch;

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

    /// A receiver that wakes on every change of mode (the devnet miner task's).
    pub fn subscribe(&self) -> watch::Receiver<MiningMode> {
        self.tx.subscribe()
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
