//! Crash safety. `kill -9` ends the process, not the machine: whatever the node wrote to
//! RocksDB before it (each block stored, connected or disconnected is one batch through the
//! WAL) survives. So after a kill at any moment the store must open at a consistent tip whose
//! state equals a replay of its own main chain (`ember-node check`, read-only, before the
//! node runs again), the tip the node reported just before the kill must still be on its
//! main chain, and every payment it reported confirmed must still be confirmed. Payments
//! still pending at the kill are not checked: the mempool is saved only now and then and on
//! a clean stop, so a kill may lose them.
//!
//! Killed at random (seeded) moments while it mines and takes payments; in the middle of a
//! reorg, which the next start finishes by itself; and in the middle of a long sync, which
//! it resumes. A failing run prints its seed (`EMBER_TEST_SEED` repeats it).

use crate::support::{dev_key, devnet, payment_hex, DevNode, TestRng};
use ember_core::Keypair;
use ember_testnet::{binary, wait_for, NodeProcess};
use rand::Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(120);

/// `ember-node check` on a stopped node's data dir: fails the test unless the store checks
/// out, and returns the height of the tip it found.
fn check_store(data_dir: &Path, what: &str) -> u64 {
    let out = std::process::Command::new(binary("ember-node").unwrap())
        .args(["check", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what}: check failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .trim()
        .strip_prefix("ok: height ")
        .and_then(|rest| rest.split(',').next())
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("{what}: unexpected verdict {stdout:?}"))
}

fn call(n: &NodeProcess, method: &str, params: serde_json::Value) -> serde_json::Value {
    n.client()
        .call(method, params)
        .unwrap_or_else(|e| panic!("{method} failed: {e}\nlog:\n{}", n.log_tail()))
}

/// Height and tip id, from one `node_info`.
fn tip(n: &NodeProcess) -> (u64, String) {
    let i = call(n, "node_info", json!([]));
    (i["height"].as_u64().expect("height"), i["tip"].as_str().expect("tip").to_string())
}

/// The id of the main-chain block at `height`.
fn main_id_at(n: &NodeProcess, height: u64) -> String {
    call(n, "chain_getHeader", json!([height]))["id"].as_str().expect("id").to_string()
}

#[test]
fn kill_9_at_random_moments_keeps_every_block_and_payment_it_reported() {
    let mut rng =
        TestRng::new("kill_9_at_random_moments_keeps_every_block_and_payment_it_reported");
    let mut n = DevNode::start(&["--mine", "--block-time", "0.05"]);
    let params = devnet();
    let sender = dev_key(2);
    let addr = sender.address().to_bech32(params.hrp());
    let bob = Keypair::from_secret_bytes(rng.gen()).address();
    // Payments the node acknowledged, by nonce, not yet checked after a kill.
    let mut acknowledged: BTreeMap<u64, String> = BTreeMap::new();
    let (mut kept_payments, mut last_height) = (0, 0);
    for round in 0..20 {
        // Feed payments while it mines, for a random while; at most 32 pending at a time (the
        // mempool takes nonces up to 64 ahead of the account's), so each must be accepted.
        let until = Instant::now() + Duration::from_millis(rng.gen_range(50..400));
        while Instant::now() < until {
            let acct = call(&n.node, "account_get", json!([addr]));
            let (nonce, next) =
                (acct["nonce"].as_u64().unwrap(), acct["next_nonce"].as_u64().unwrap());
            if next - nonce >= 32 {
                continue;
            }
            let txid = call(
                &n.node,
                "tx_submit",
                json!([payment_hex(&params, &sender, bob, 1_000, 10, next)]),
            );
            acknowledged.insert(next, txid.as_str().expect("txid").to_string());
        }
        // Just before the kill: the tip, and how many payments are confirmed.
        let (height, tip_id) = tip(&n.node);
        let confirmed = call(&n.node, "account_get", json!([addr]))["nonce"].as_u64().unwrap();
        n.node.kill().unwrap();

        // The store checks out before the node touches it again, and holds that tip.
        let what = format!("round {round} (killed at height {height})");
        let stored = check_store(n.node.data_dir(), &what);
        assert!(stored >= height, "{what}: the store's tip is at height {stored}");
        n.node.restart().unwrap();
        let (after, _) = tip(&n.node);
        assert!(after >= height, "{what}: restarted at height {after}");
        assert_eq!(main_id_at(&n.node, height), tip_id, "{what}: that tip left the main chain");
        // Every payment confirmed then is confirmed now; the ones only pending may be lost
        // with the mempool, and the next round pays from the account's next nonce again.
        let now_confirmed = call(&n.node, "account_get", json!([addr]))["nonce"].as_u64().unwrap();
        assert!(
            now_confirmed >= confirmed,
            "{what}: {confirmed} payments confirmed, now {now_confirmed}"
        );
        for (nonce, txid) in std::mem::take(&mut acknowledged).range(..confirmed) {
            let t = call(&n.node, "chain_getTransaction", json!([txid]));
            assert_eq!(t["status"], "confirmed", "{what}: payment {nonce} ({txid}): {t}");
            kept_payments += 1;
        }
        last_height = after;
    }
    assert!(last_height > 0, "the node mined while being killed");
    assert!(kept_payments > 0, "no payment was confirmed before a kill: nothing was checked");
}

/// Copies a stopped node's data dir.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn devnet_args(extra: &[&str]) -> Vec<String> {
    ["--network", "devnet"].iter().chain(extra).map(|s| s.to_string()).collect()
}

/// Mines `count` blocks through RPC, in calls the node accepts (at most 10,000 each).
fn generate(n: &NodeProcess, count: u64) {
    let mut left = count;
    while left > 0 {
        let now = left.min(1_000);
        call(n, "mining_generate", json!([now]));
        left -= now;
    }
}

#[test]
fn kill_9_in_the_middle_of_a_reorg_leaves_a_store_the_next_start_finishes_switching() {
    let mut rng = TestRng::new(
        "kill_9_in_the_middle_of_a_reorg_leaves_a_store_the_next_start_finishes_switching",
    );
    let root = tempfile::tempdir().unwrap();
    // Two nodes that never met mine a branch each from genesis: A's (with payments, so
    // disconnecting it has state to undo) is shorter than B's, so A switches to B's branch
    // once B's body at A's height + 1 is stored: one reorg of thousands of blocks.
    let a_len: u64 = rng.gen_range(1_200..1_600);
    let mut a =
        NodeProcess::start(&root.path().join("a"), &devnet_args(&["--no-discover"])).unwrap();
    let params = devnet();
    let payer = dev_key(3);
    for nonce in 0..20 {
        let to = Keypair::from_secret_bytes(rng.gen()).address();
        call(&a, "tx_submit", json!([payment_hex(&params, &payer, to, 5_000, 10, nonce)]));
    }
    generate(&a, a_len);
    assert_eq!(tip(&a).0, a_len);
    a.stop().unwrap();
    let b = DevNode::start(&["--no-discover"]);
    generate(&b.node, a_len + 20);
    let b_ids: Vec<String> =
        [1, a_len, a_len + 1].iter().map(|&h| main_id_at(&b.node, h)).collect();

    // From a copy of A each time (the first kill may come too late or too early).
    let mut mid_reorg = 0;
    let mut seen = Vec::new();
    for attempt in 0..5 {
        let dir = root.path().join(format!("attempt-{attempt}"));
        copy_dir(a.data_dir(), &dir);
        std::fs::remove_file(dir.join("node.log")).unwrap();
        let args = devnet_args(&["--no-discover", "--peer", &b.node.p2p_addr()]);
        let mut n = NodeProcess::start(&dir, &args).unwrap();
        let log = dir.join("node.log");
        wait_for(T, "the reorganisation to start", || {
            std::fs::read_to_string(&log).ok()?.contains("reorganising").then_some(())
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", n.log_tail()));
        n.kill().unwrap();
        let what = format!("attempt {attempt}");
        // Consistent whatever the moment, and (below A's tip) caught part way.
        let stored = check_store(&dir, &what);
        seen.push(stored);
        if stored >= a_len {
            continue;
        }
        mid_reorg += 1;
        eprintln!(
            "attempt {attempt}: killed at store height {stored}, reorganising {a_len} blocks"
        );
        // Started alone, the node finishes the switch from what it stored.
        let mut n = NodeProcess::start(&dir, &devnet_args(&["--no-discover"])).unwrap();
        let (h, _) = tip(&n);
        assert!(
            h > a_len,
            "{what}: killed at height {stored}, restarted at {h}, not past A's {a_len}"
        );
        let ids: Vec<String> = [1, a_len, a_len + 1].iter().map(|&h| main_id_at(&n, h)).collect();
        assert_eq!(ids, b_ids, "{what}: the main chain is not B's branch");
        n.stop().unwrap();
        check_store(&dir, &format!("{what}, after the switch"));
        break;
    }
    assert_eq!(
        mid_reorg, 1,
        "no kill landed in the middle of the reorg of {a_len} blocks; store heights after \
         each kill: {seen:?}"
    );
}

#[test]
fn kill_9_during_a_long_sync_keeps_what_was_synced_and_the_sync_resumes() {
    let mut rng =
        TestRng::new("kill_9_during_a_long_sync_keeps_what_was_synced_and_the_sync_resumes");
    const LEN: u64 = 3_000;
    let b = DevNode::start(&["--no-discover"]);
    generate(&b.node, LEN);
    let b_tip = tip(&b.node);
    let mut c = DevNode::start(&["--no-discover", "--peer", &b.node.p2p_addr()]);
    let (mut kills, mut target) = (0, 0);
    for k in 0..4 {
        // Kill at a random height ahead of the last kill, as soon as the node reports it.
        target += rng.gen_range(50..LEN / 6);
        let what = match k {
            0 => format!("the sync to pass height {target}"),
            _ => format!("the sync to resume after kill {} and pass height {target}", k - 1),
        };
        let (height, tip_id) = wait_for(T, &what, || {
            let (h, id) = tip(&c.node);
            (h >= target).then_some((h, id))
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", c.node.log_tail()));
        if height >= LEN {
            break;
        }
        c.node.kill().unwrap();
        kills += 1;
        let what = format!("kill {k} at height {height}");
        let stored = check_store(c.node.data_dir(), &what);
        assert!(stored >= height, "{what}: the store's tip is at height {stored}");
        c.node.restart().unwrap();
        let (after, _) = tip(&c.node);
        assert!(after >= height, "{what}: restarted at height {after}");
        assert_eq!(main_id_at(&c.node, height), tip_id, "{what}: that tip left the main chain");
    }
    assert!(kills >= 2, "only {kills} kills landed during the sync of {LEN} blocks");
    wait_for(T, "the sync to finish after the kills", || (tip(&c.node) == b_tip).then_some(()))
        .unwrap_or_else(|e| panic!("{e:#}\n{}", c.node.log_tail()));
    assert_eq!(c.digest(), b.digest());
}
