//! `--block-notify CMD`: runs CMD whenever the main chain's tip changes, `%s` replaced by
//! the new tip's id, as Bitcoin Core's `-blocknotify`. The command runs under `sh -c` with
//! the node's environment; its output goes to the node's log stream. At most
//! [`MAX_RUNNING`] run at once: a tip change that finds that many still running is skipped
//! (logged), so a slow command cannot pile up processes.

use crate::node::Node;
use std::sync::Arc;
use tokio::sync::{broadcast, Semaphore};

/// Most notify commands running at once.
pub const MAX_RUNNING: usize = 4;

/// Follows the node's chain events until it stops.
pub async fn run(node: Arc<Node>, command: String) {
    let slots = Arc::new(Semaphore::new(MAX_RUNNING));
    let mut events = node.events.subscribe();
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = node.shutdown.cancelled() => return,
        };
        let tip = match ev {
            Ok(ev) => ev.tip,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(skipped = n, "block-notify fell behind; some tips not notified");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%tip, "block-notify: {MAX_RUNNING} commands still running; skipped");
            continue;
        };
        let line = command.replace("%s", &tip.to_string());
        tokio::spawn(async move {
            let status = tokio::process::Command::new("sh").arg("-c").arg(&line).status().await;
            match status {
                Ok(s) if s.success() => tracing::debug!(%tip, "block-notify ran"),
                Ok(s) => tracing::warn!(%tip, status = %s, "block-notify command failed"),
                Err(e) => tracing::warn!(%tip, error = %e, "block-notify command could not start"),
            }
            drop(slot);
        });
    }
}
