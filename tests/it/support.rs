//! Shared helpers: a devnet node in a temp dir, dev keys, payments as hex.

use ember_core::params::DEVNET_GENESIS_JSON;
use ember_core::{ChainParams, Keypair};
use ember_testnet::NodeProcess;
use serde_json::{json, Value};
use tempfile::TempDir;

/// A devnet node in its own temp dir (removed when dropped, after the process is killed).
pub struct DevNode {
    pub node: NodeProcess,
    /// Removed on drop, after the process (dropped first) is gone.
    pub _dir: TempDir,
}

impl DevNode {
    pub fn start(extra: &[&str]) -> DevNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args: Vec<String> = vec!["--network".into(), "devnet".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let node = NodeProcess::start(&dir.path().join("node"), &args).expect("node starts");
        DevNode { node, _dir: dir }
    }

    /// A node with exactly these arguments (no `--network devnet` added).
    pub fn start_with(args: &[&str]) -> DevNode {
        let dir = tempfile::tempdir().expect("temp dir");
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let node = NodeProcess::start(&dir.path().join("node"), &args).expect("node starts");
        DevNode { node, _dir: dir }
    }

    pub fn call(&self, method: &str, params: Value) -> Value {
        self.node
            .client()
            .call(method, params)
            .unwrap_or_else(|e| panic!("{method} failed: {e}\nlog:\n{}", self.node.log_tail()))
    }

    pub fn height(&self) -> u64 {
        self.call("node_info", json!([]))["height"].as_u64().expect("height")
    }

    pub fn digest(&self) -> String {
        self.call("state_digest", json!([]))["digest"].as_str().expect("digest").to_string()
    }
}

/// The built-in devnet's parameters.
pub fn devnet() -> ChainParams {
    ChainParams::devnet()
}

/// The secret of dev account `i` (SLIP-0010 from the public dev mnemonic), via the wallet.
pub fn dev_key(i: u32) -> Keypair {
    ember_wallet::dev_keypair(i)
}

/// Sanity: the built-in genesis funds exactly the wallet's dev accounts.
#[test]
fn builtin_genesis_funds_the_dev_mnemonic_accounts() {
    let params = devnet();
    let spec = ember_core::GenesisSpec::from_json(DEVNET_GENESIS_JSON).unwrap();
    assert_eq!(spec.allocations.len(), params.allocations().len());
    for (i, (addr, _)) in params.allocations().iter().enumerate() {
        assert_eq!(dev_key(i as u32).address(), *addr, "dev account {i}");
    }
}

/// A signed payment as hex, ready for `tx_submit`.
pub fn payment_hex(
    params: &ChainParams,
    from: &Keypair,
    to: ember_core::Address,
    units: u64,
    fee: u64,
    nonce: u64,
) -> String {
    let tx = ember_core::testkit::pay(params, from, to, units, fee, nonce);
    hex::encode(tx.encode())
}

/// A seeded RNG for one test: the seed is `EMBER_TEST_SEED` when set, otherwise drawn, and
/// printed when the test fails (on panic), so a failing run can be repeated exactly.
pub struct TestRng {
    pub seed: u64,
    test: &'static str,
    rng: rand::rngs::StdRng,
}

impl TestRng {
    pub fn new(test: &'static str) -> TestRng {
        use rand::SeedableRng;
        let seed = match std::env::var("EMBER_TEST_SEED") {
            Ok(s) => s.parse().unwrap_or_else(|_| panic!("EMBER_TEST_SEED={s:?} is not a u64")),
            Err(_) => rand::random(),
        };
        TestRng { seed, test, rng: rand::rngs::StdRng::seed_from_u64(seed) }
    }
}

impl std::ops::Deref for TestRng {
    type Target = rand::rngs::StdRng;
    fn deref(&self) -> &Self::Target {
        &self.rng
    }
}

impl std::ops::DerefMut for TestRng {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.rng
    }
}

impl Drop for TestRng {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{} failed with seed {}: repeat with EMBER_TEST_SEED={}",
                self.test, self.seed, self.seed
            );
        }
    }
}

/// One finished run of a binary: its exit code and what it printed.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts exit code 0.
    pub fn ok(self) -> Out {
        assert_eq!(self.code, Some(0), "failed: {self:?}");
        self
    }
}

/// No panic, backtrace, debug dump or capitalised `Error:` in what a binary printed.
pub fn assert_no_crash(stderr: &str) {
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE", "Error:", "UnexpectedEnd", "{ "] {
        assert!(!stderr.contains(bad), "{bad:?} in stderr: {stderr}");
    }
}

/// GETs `url`: the body of a 200 answer; anything else fails the test.
pub fn http_get(url: &str) -> String {
    let resp = ureq::get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    resp.into_string().unwrap_or_else(|e| panic!("GET {url}: unreadable body: {e}"))
}
