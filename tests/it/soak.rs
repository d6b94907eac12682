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
    eprintln!("{text}");
    assert!(report.violations.is_empty(), "{text}");
    for kind in ["kill -9", "partition", "latency", "loss", "hostile"] {
        assert!(report.injected.iter().any(|f| f.starts_with(kind)), "no {kind} fault:\n{text}");
    }
    for check in [
        "supply adds up",
        "rpc answers",
        "memory bounded",
        "forged payment refused",
        "answers and keeps a peer after an attack",
        "converges",
        "equal state digests",
        "settled payments stay settled",
    ] {
        assert!(report.checks.get(check).copied().unwrap_or(0) > 0, "{check} never ran:\n{text}");
    }
    assert!(report.final_height > 0, "no converged height:\n{text}");
    // The traffic itself (not the funding payments, counted apart) went through: almost
    // every payment was accepted, and most settled despite the faults (a calibration run:
    // 295 submitted, none refused, 265 settled).
    assert_eq!(report.funding_payments, 12, "{text}");
    assert!(report.payments_submitted >= 100, "too little traffic:\n{text}");
    assert!(
        report.refused_per_mille() <= MAX_REFUSED_PER_MILLE,
        "more than {MAX_REFUSED_PER_MILLE} per mille of the payments were refused:\n{text}"
    );
    assert!(
        report.payments_settled * 2 >= report.payments_submitted,
        "fewer than half of the payments settled:\n{text}"
    );
}

/// Refusals a soak may see: a payment that raced another from the same wallet sent to
/// another node (both took the same nonce), or a nonce a reorg made stale.
const MAX_REFUSED_PER_MILLE: u64 = 100;
