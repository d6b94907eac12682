//! The short soak: a 5-node network under a full cycle of faults, with the money invariants
//! checked (the long one is `ember-testnet soak --minutes 10`).

use ember_testnet::soak::{render, soak, SoakOptions};
use std::time::Duration;

#[test]
fn short_soak_keeps_every_invariant_through_every_kind_of_fault() {
    let dir = tempfile::tempdir().unwrap();
    // One full cycle of the five fault kinds, 4 s each with 2 s of calm after each.
    let mut opts = SoakOptions::new(Duration::from_secs(1), 20261125, dir.path().join("soak"));
    opts.fault_time = Duration::from_secs(4);
    let report = soak(&opts, &mut |line| eprintln!("[soak] {line}")).expect("soak runs");
    let text = render(&report);
    assert!(report.violations.is_empty(), "{text}");
    for kind in ["kill -9", "partition", "latency", "loss", "hostile"] {
        assert!(report.injected.iter().any(|f| f.starts_with(kind)), "no {kind} fault:\n{text}");
    }
    for check in ["supply adds up", "rpc answers", "converges", "equal state digests"] {
        assert!(report.checks.get(check).copied().unwrap_or(0) > 0, "{check} never ran:\n{text}");
    }
    assert!(report.payments_settled > 0, "no payment settled:\n{text}");
}
