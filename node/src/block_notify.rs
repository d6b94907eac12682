//! `--block-notify CMD`: runs CMD whenever the main chain's tip changes, `%s` replaced by
//! the new tip's id, as Bitcoin Core's `-blocknotify`. The command runs under `sh -c` with
//! the node's environment; its output goes to the node's log stream.
//!
//! At most [`MAX_RUNNING`] run at once. Tips that change while all are busy are coalesced:
//! when one finishes, the command runs once more for the newest tip not yet notified, so
//! the last tip of a burst is always notified and a slow command cannot pile up
//! processes. Skips are logged at most once per 10 s. Commands still running when the
//! node stops are killed.

use crate::node::Node;
use ember_core::BlockId;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, Semaphore};

/// Most notify commands running at once.
pub const MAX_RUNNING: usize = 4;

/// The newest tip that found every slot busy, and the skip count for the log.
#[derive(Default)]
struct Pending {
    tip: Option<BlockId>,
    skipped: u64,
    last_log: Option<Instant>,
}

/// Follows the node's chain events until it stops.
pub async fn run(node: Arc<Node>, command: String) {
    let slots = Arc::new(Semaphore::new(MAX_RUNNING));
    let pending = Arc::new(Mutex::new(Pending::default()));
    let mut events = node.events.subscribe();
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = node.shutdown.cancelled() => return,
        };
        let tip = match ev {
            Ok(ev) => ev.tip,
            // Only the newest tip matters; it comes with the next event.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => spawn(command.clone(), tip, slot, slots.clone(), pending.clone()),
            Err(_) => {
                let mut p = pending.lock().expect("never poisoned");
                p.tip = Some(tip);
                p.skipped += 1;
                if p.last_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(
                        skipped = p.skipped,
                        "block-notify: {MAX_RUNNING} commands still running; tips coalesced \
                         (the newest is notified when one finishes)"
                    );
                    p.last_log = Some(Instant::now());
                    p.skipped = 0;
                }
            }
        }
    }
}

/// Runs the command for `tip`, then for the newest tip that waited meanwhile, if any.
fn spawn(
    command: String,
    tip: BlockId,
    slot: tokio::sync::OwnedSemaphorePermit,
    slots: Arc<Semaphore>,
    pending: Arc<Mutex<Pending>>,
) {
    tokio::spawn(async move {
        let mut tip = tip;
        loop {
            let line = command.replace("%s", &tip.to_string());
            let status = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&line)
                .kill_on_drop(true)
                .status()
                .await;
            match status {
                Ok(s) if s.success() => tracing::debug!(%tip, "block-notify ran"),
                Ok(s) => tracing::warn!(%tip, status = %s, "block-notify command failed"),
                Err(e) => tracing::warn!(%tip, error = %e, "block-notify command could not start"),
            }
            match pending.lock().expect("never poisoned").tip.take() {
                Some(next) => tip = next,
                None => break,
            }
        }
        drop(slot);
        drop(slots);
    });
}
