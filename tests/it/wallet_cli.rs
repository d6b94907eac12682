//! The `ember-wallet` binary against a real devnet node: the whole journey of a payment
//! (import a dev key, create a wallet, send, wait, balances, histories, offline signing,
//! restore from the recovery phrase), and every refusal — wrong passphrase, tampered
//! keystore, bad recovery phrase, wrong-network address, too many decimals, too little
//! money, fee below the minimum, node unreachable — each with its clear error, no file
//! changed and nothing submitted. A transcript of every output is searched for secrets.
//!
//! Wallets are written with `EMBER_WALLET_KDF=test` (weak argon2id costs, tests only) so
//! each command takes milliseconds; passphrases come from `EMBER_WALLET_PASSPHRASE` or
//! `--passphrase-file`, never from a prompt.

use std::cell::RefCell;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ember_core::{Keypair, Network};
use ember_wallet::{derive_account, Mnemonic};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::support::{dev_key, DevNode};

const PASSPHRASE: &str = "correct horse battery staple";

/// One finished run of the wallet binary.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Panics with everything the run printed unless it succeeded.
    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "ember-wallet failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr)
        })
    }

    /// Panics unless the run was refused: exit code 1, `needle` in the error on stderr, no
    /// result on stdout.
    fn refused(self, needle: &str) -> Run {
        assert_eq!(self.code, 1, "expected a refusal with {needle:?}: {self:?}");
        assert!(self.stderr.contains(needle), "error lacks {needle:?}: {}", self.stderr);
        assert!(self.stdout.is_empty(), "a refused command prints no result: {}", self.stdout);
        self
    }

    /// The `--json` error object printed on stderr.
    fn error(&self) -> Value {
        let line = self.stderr.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stderr has no JSON error ({e}): {}", self.stderr))
    }
}

/// Runs the wallet binary against one node and keeps a transcript of all its output.
struct WalletCli {
    bin: PathBuf,
    node_url: String,
    dir: TempDir,
    /// Every stdout and stderr, except the one-time mnemonic display of `create`.
    transcript: RefCell<String>,
}

/// What a run gets on stdin and as passphrase.
#[derive(Default)]
struct Opts<'a> {
    passphrase: Option<&'a str>,
    stdin: Option<&'a str>,
    /// The output shows the recovery phrase once (create): kept out of the transcript.
    shows_mnemonic: bool,
}

impl WalletCli {
    fn new(node_url: &str) -> WalletCli {
        WalletCli {
            bin: ember_testnet::binary("ember-wallet").expect("ember-wallet is built"),
            node_url: node_url.to_string(),
            dir: tempfile::tempdir().expect("temp dir"),
            transcript: RefCell::new(String::new()),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run_with(&self, wallet: &Path, opts: Opts, args: &[&str]) -> Run {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--wallet").arg(wallet);
        // A test may name another node itself.
        if !args.contains(&"--node") {
            cmd.args(["--node", &self.node_url]);
        }
        cmd.args(args);
        cmd.env("EMBER_WALLET_KDF", "test")
            .env_remove("EMBER_NODE")
            .env_remove("EMBER_WALLET_PASSPHRASE");
        if let Some(p) = opts.passphrase {
            cmd.env("EMBER_WALLET_PASSPHRASE", p);
        }
        cmd.stdin(if opts.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("ember-wallet starts");
        if let Some(input) = opts.stdin {
            let written = child.stdin.take().expect("piped stdin").write_all(input.as_bytes());
            // A command refused before it reads stdin (e.g. restore over an existing
            // file) closes it early: that is its answer, not the test's failure.
            if let Err(e) = written {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "stdin: {e}");
            }
        }
        let out = child.wait_with_output().expect("ember-wallet runs");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let mut transcript = self.transcript.borrow_mut();
        if !opts.shows_mnemonic {
            transcript.push_str(&run.stdout);
        }
        transcript.push_str(&run.stderr);
        run
    }

    /// A run with the right passphrase and nothing on stdin.
    fn run(&self, wallet: &Path, args: &[&str]) -> Run {
        self.run_with(wallet, Opts { passphrase: Some(PASSPHRASE), ..Opts::default() }, args)
    }

    /// `create --json`: the address and the recovery phrase.
    fn create(&self, wallet: &Path, extra: &[&str]) -> (String, String) {
        let mut args = vec!["--json", "create"];
        args.extend_from_slice(extra);
        let opts = Opts { passphrase: Some(PASSPHRASE), shows_mnemonic: true, ..Opts::default() };
        let v = self.run_with(wallet, opts, &args).ok().json();
        let mnemonic = v["mnemonic"].as_str().expect("mnemonic").to_string();
        assert_eq!(mnemonic.split(' ').count(), 24, "{v}");
        (v["accounts"][0]["address"].as_str().expect("address").to_string(), mnemonic)
    }

    fn balance(&self, wallet: &Path) -> Value {
        self.run(wallet, &["--json", "balance"]).ok().json()
    }
}

fn devnet_address(key: &Keypair) -> String {
    key.address().to_bech32(Network::Devnet.hrp())
}

fn mempool_count(node: &DevNode) -> u64 {
    node.call("mempool_info", json!([]))["count"].as_u64().expect("count")
}

/// The ids of every pending payment, sorted.
fn mempool_txids(node: &DevNode) -> Vec<String> {
    let list = node.call("mempool_list", json!([50_000]));
    let mut ids: Vec<String> =
        list.as_array().expect("a list").iter().map(|t| t.as_str().expect("txid").into()).collect();
    ids.sort();
    ids
}

/// The account's next nonce, pending payments included: a payment submitted from it raises
/// it at once, with no block mined.
fn next_nonce_of(node: &DevNode, address: &str) -> u64 {
    node.call("account_get", json!([address]))["next_nonce"].as_u64().expect("next_nonce")
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn payment_is_sent_confirmed_and_the_wallet_restored() {
    // The miner is paid to a third address, so both balances below are exact.
    let miner = devnet_address(&Keypair::generate());
    let node = DevNode::start(&["--mine", "--block-time", "0.2", "--miner-address", &miner]);
    let cli = WalletCli::new(node.node.rpc_url());
    let (alice_wallet, bob_wallet) = (cli.path("alice.json"), cli.path("bob.json"));

    // Alice: the prefunded dev account 1.
    let v = cli.run(&alice_wallet, &["--json", "import-dev-key", "--index", "1"]).ok().json();
    let alice = devnet_address(&dev_key(1));
    assert_eq!(v["address"], alice.as_str());
    assert_eq!(v["network"], "devnet");
    assert_eq!(cli.run(&alice_wallet, &["address"]).ok().stdout.trim(), alice);

    // Bob: a new wallet; the network comes from the node.
    let (bob, mnemonic) = cli.create(&bob_wallet, &[]);
    assert!(bob.starts_with("edev1"), "{bob}");
    let v = cli.balance(&bob_wallet);
    assert_eq!((v["balance"].as_str(), v["available"].as_str()), (Some("0"), Some("0")));
    let v = cli.balance(&alice_wallet);
    assert_eq!(v["balance"], "1000000");

    // Send and wait for the block.
    let sent = cli
        .run(
            &alice_wallet,
            &[
                "--json",
                "send",
                "--to",
                &bob,
                "--amount",
                "12.5",
                "--fee",
                "0.001",
                "--wait",
                "--timeout",
                "60",
            ],
        )
        .ok()
        .json();
    assert_eq!(sent["status"], "confirmed", "{sent}");
    assert!(sent["confirmations"].as_u64().unwrap() >= 1, "{sent}");
    assert_eq!(
        (sent["from"].as_str(), sent["to"].as_str()),
        (Some(alice.as_str()), Some(bob.as_str()))
    );
    let txid = sent["txid"].as_str().expect("txid").to_string();

    let v = cli.run(&alice_wallet, &["--json", "tx", &txid]).ok().json();
    assert_eq!(v["status"], "confirmed");
    assert_eq!(v["amount"], "12.5");
    let text = cli.run(&alice_wallet, &["tx", &txid]).ok().stdout;
    assert!(text.contains("confirmed in block"), "{text}");

    // Both balances, exactly.
    let v = cli.balance(&alice_wallet);
    assert_eq!(v["balance"], "999987.499", "{v}");
    assert_eq!(
        (v["pending_count"].as_u64(), v["available"].as_str()),
        (Some(0), Some("999987.499"))
    );
    assert_eq!(v["nonce"], 1);
    let v = cli.balance(&bob_wallet);
    assert_eq!(v["balance"], "12.5", "{v}");
    let text = cli.run(&bob_wallet, &["balance"]).ok().stdout;
    assert!(
        text.contains("confirmed  12.5 coins") && text.contains("available  12.5 coins"),
        "{text}"
    );

    // Both histories.
    let h = cli.run(&alice_wallet, &["--json", "history"]).ok().json();
    assert_eq!(h["total"], 1, "{h}");
    assert_eq!(h["items"][0]["txid"], txid.as_str());
    assert_eq!(h["items"][0]["direction"], "sent");
    let h = cli.run(&bob_wallet, &["--json", "history"]).ok().json();
    assert_eq!(h["items"][0]["txid"], txid.as_str());
    assert_eq!(h["items"][0]["direction"], "received");
    assert_eq!(h["items"][0]["from"], alice.as_str());
    let text = cli.run(&bob_wallet, &["history"]).ok().stdout;
    assert!(text.contains(&txid) && text.contains("received") && text.contains(&alice), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 80), "history fits 80 columns:\n{text}");

    // Offline signing: Bob signs with an explicit nonce, no node; broadcast submits it.
    let no_node = ["--node", "http://127.0.0.1:9"];
    let signed = cli
        .run(
            &bob_wallet,
            &[&no_node[..], &["--json", "sign", "--to", &alice, "--amount", "2.5", "--nonce", "0"]]
                .concat(),
        )
        .ok()
        .json();
    assert_eq!(signed["fee"], "0.00001");
    let hex = signed["hex"].as_str().expect("hex");
    let v = cli
        .run_with(
            &bob_wallet,
            Opts::default(),
            &["--json", "broadcast", hex, "--wait", "--timeout", "60"],
        )
        .ok()
        .json();
    assert_eq!(v["status"], "confirmed", "{v}");
    assert_eq!(v["txid"], signed["txid"]);
    assert_eq!(cli.balance(&bob_wallet)["balance"], "9.99999");

    // Restore Bob from his 24 words (on stdin) into a new file: same address and balance.
    let restored = cli.path("bob-restored.json");
    let opts =
        Opts { passphrase: Some("another passphrase"), stdin: Some(&mnemonic), ..Opts::default() };
    let v = cli.run_with(&restored, opts, &["--json", "restore"]).ok().json();
    assert_eq!(v["accounts"][0]["address"], bob.as_str(), "{v}");
    assert_eq!(mode(&restored), 0o600);
    let opts = Opts { passphrase: Some("another passphrase"), ..Opts::default() };
    let v = cli.run_with(&restored, opts, &["--json", "balance"]).ok().json();
    assert_eq!(
        (v["address"].as_str(), v["balance"].as_str()),
        (Some(bob.as_str()), Some("9.99999"))
    );

    // No secret in any output but create's one-time display, nor in the wallet files.
    let seed = Mnemonic::parse(&mnemonic).expect("the shown phrase parses").seed();
    let bob_secret = hex::encode(derive_account(&seed, 0).expect("account 0").secret());
    let alice_secret = hex::encode(dev_key(1).secret_bytes());
    let transcript = cli.transcript.borrow();
    let first_words: String = mnemonic.split(' ').take(4).collect::<Vec<_>>().join(" ");
    for (what, secret) in [
        ("the recovery phrase", mnemonic.as_str()),
        ("the start of the recovery phrase", first_words.as_str()),
        ("Bob's seed", &hex::encode(seed.as_bytes())),
        ("Bob's secret key", &bob_secret),
        ("Alice's secret key", &alice_secret),
        ("the passphrase", PASSPHRASE),
    ] {
        assert!(!transcript.contains(secret), "{what} appears in the output:\n{transcript}");
        for file in [&alice_wallet, &bob_wallet, &restored] {
            let text = std::fs::read_to_string(file).expect("wallet file");
            assert!(!text.contains(secret), "{what} appears in {}", file.display());
        }
    }
    assert!(transcript.contains(&txid), "the transcript holds the session's outputs");
}

/// A devnet node, a funded wallet (dev account 0) and a way to check that a refused
/// command changed nothing.
struct Fixture {
    node: DevNode,
    cli: WalletCli,
    wallet: PathBuf,
    address: String,
}

impl Fixture {
    fn new() -> Fixture {
        let node = DevNode::start(&[]);
        let cli = WalletCli::new(node.node.rpc_url());
        let wallet = cli.path("wallet.json");
        cli.run(&wallet, &["import-dev-key"]).ok();
        Fixture { node, cli, wallet, address: devnet_address(&dev_key(0)) }
    }

    /// Runs `args`, which must fail with `needle` in its message (and `kind` in its JSON
    /// form), leaving the wallet file, the directory, the mempool and the account's next
    /// nonce as they were.
    fn refused(&self, passphrase: Option<&str>, args: &[&str], kind: &str, needle: &str) -> String {
        let before = std::fs::read(&self.wallet).expect("wallet");
        let files = files_in(self.cli.dir.path());
        let (mempool, nonce) =
            (mempool_txids(&self.node), next_nonce_of(&self.node, &self.address));
        let opts = || Opts { passphrase, ..Opts::default() };

        let run = self.cli.run_with(&self.wallet, opts(), args).refused(needle);
        let mut json_args = vec!["--json"];
        json_args.extend_from_slice(args);
        let err = self.cli.run_with(&self.wallet, opts(), &json_args).error();
        assert_eq!(err["error"]["kind"], kind, "{err}");

        assert_eq!(std::fs::read(&self.wallet).expect("wallet"), before, "the wallet file changed");
        assert_eq!(files_in(self.cli.dir.path()), files, "files appeared or vanished");
        // The same pending payments, by id: none added, none replaced (a payment that
        // took the place of a pending one would leave the count as it was).
        assert_eq!(mempool_txids(&self.node), mempool, "the mempool changed");
        // The fixture's node does not mine (its `EMBER_*` environment is cleared, so not
        // even by accident): a payment that got out and was mined at once would leave the
        // mempool as it was, but not the account's next nonce.
        assert_eq!(
            next_nonce_of(&self.node, &self.address),
            nonce,
            "a payment from the wallet's account reached the node"
        );
        run.stderr
    }
}

#[test]
fn wrong_passphrase_is_refused() {
    let f = Fixture::new();
    let to = devnet_address(&Keypair::generate());
    let send = ["send", "--to", to.as_str(), "--amount", "1"];
    let msg = "wrong passphrase or the keystore file was modified";
    f.refused(Some("not the passphrase"), &send, "wrong_passphrase", msg);
    f.refused(Some("not the passphrase"), &["new-account"], "wrong_passphrase", msg);
    f.refused(Some(""), &send, "wrong_passphrase", msg);

    // The passphrase file wins over the environment, and a wrong one is refused too.
    let pass_file = f.cli.dir.path().join("pass.txt");
    std::fs::write(&pass_file, "wrong\n").expect("write");
    let pass_arg = pass_file.to_str().expect("utf-8 path");
    f.refused(
        Some(PASSPHRASE),
        &["--passphrase-file", pass_arg, "new-account"],
        "wrong_passphrase",
        msg,
    );
    std::fs::write(&pass_file, format!("{PASSPHRASE}\n")).expect("write");
    f.cli
        .run_with(&f.wallet, Opts::default(), &["--passphrase-file", pass_arg, "new-account"])
        .ok();
    // Watching needs no passphrase at all: a wrong one is never even read.
    let v = f.cli.run_with(&f.wallet, Opts::default(), &["--json", "balance"]).ok().json();
    assert_eq!(v["balance"], "1000000");
}

#[test]
fn tampered_keystore_is_refused() {
    let f = Fixture::new();
    let original = std::fs::read(&f.wallet).expect("wallet");
    let text = String::from_utf8(original.clone()).expect("the keystore is text");
    let to = devnet_address(&Keypair::generate());
    let send = ["send", "--to", to.as_str(), "--amount", "1"];

    // One hex digit of the ciphertext, one of the salt: only authentication can tell.
    for field in ["\"ciphertext\": \"", "\"salt\": \""] {
        let at = text.find(field).expect("field") + field.len() + 5;
        let mut bytes = original.clone();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        std::fs::write(&f.wallet, &bytes).expect("write");
        f.refused(
            Some(PASSPHRASE),
            &send,
            "wrong_passphrase",
            "wrong passphrase or the keystore file was modified",
        );
    }
    // A byte that breaks the form: refused as damage, before the passphrase is tried.
    let mut bytes = original.clone();
    let at = text.find("\"version\"").expect("version");
    bytes[at + 1] ^= 0x20;
    std::fs::write(&f.wallet, &bytes).expect("write");
    f.refused(Some(PASSPHRASE), &send, "wallet", "damaged");
    // Truncated.
    std::fs::write(&f.wallet, &original[..original.len() / 2]).expect("write");
    f.refused(Some(PASSPHRASE), &["balance"], "wallet", "damaged");

    std::fs::write(&f.wallet, &original).expect("write");
    assert_eq!(f.cli.balance(&f.wallet)["balance"], "1000000", "the untouched file still opens");
}

#[test]
fn wallet_files_have_mode_0600() {
    let node = DevNode::start(&[]);
    let cli = WalletCli::new(node.node.rpc_url());
    let created = cli.path("created.json");
    let (_, mnemonic) = cli.create(&created, &[]);
    assert_eq!(mode(&created), 0o600);
    cli.run(&created, &["new-account", "--label", "savings"]).ok();
    assert_eq!(mode(&created), 0o600, "after rewriting");
    let v = cli.run(&created, &["--json", "accounts"]).ok().json();
    assert_eq!(v["accounts"][1]["label"], "savings");

    let restored = cli.path("restored.json");
    let opts = Opts { passphrase: Some(PASSPHRASE), stdin: Some(&mnemonic), ..Opts::default() };
    cli.run_with(&restored, opts, &["restore", "--accounts", "2"]).ok();
    assert_eq!(mode(&restored), 0o600);
    let a = cli.run(&created, &["--json", "accounts"]).ok().json();
    let b = cli.run(&restored, &["--json", "accounts"]).ok().json();
    assert_eq!(a["accounts"][1]["address"], b["accounts"][1]["address"]);

    // The default location's directory is created 0700 when missing.
    let nested = cli.dir.path().join("sub").join("dev.json");
    cli.run(&nested, &["import-dev-key", "--index", "3"]).ok();
    assert_eq!(mode(&nested), 0o600);
    assert_eq!(mode(nested.parent().expect("parent")), 0o700);
    cli.run(&nested, &["import-dev-key", "--index", "4"]).ok();
    assert_eq!(mode(&nested), 0o600);
    let v = cli.run(&nested, &["--json", "accounts"]).ok().json();
    assert_eq!(v["accounts"][1]["address"], devnet_address(&dev_key(4)).as_str());

    // Dev keys are refused in a wallet of another phrase; no temp files are left behind.
    let before = std::fs::read(&created).expect("wallet");
    cli.run(&created, &["import-dev-key"]).refused("separate file");
    assert_eq!(std::fs::read(&created).expect("wallet"), before);
    assert_eq!(files_in(cli.dir.path()), ["created.json", "restored.json", "sub"]);
}

#[test]
fn mnemonic_with_a_bad_checksum_is_refused() {
    let node = DevNode::start(&[]);
    let cli = WalletCli::new(node.node.rpc_url());
    // 24 valid words whose checksum is wrong (the right last word is "art").
    let bad = format!("{} abandon", ["abandon"; 23].join(" "));
    let target = cli.path("restored.json");
    let opts = Opts { passphrase: Some(PASSPHRASE), stdin: Some(&bad), ..Opts::default() };
    let run = cli.run_with(&target, opts, &["restore"]).refused("checksum does not match");
    assert!(!run.stderr.contains("abandon"), "the error must not quote the phrase: {}", run.stderr);
    let opts = Opts { passphrase: Some(PASSPHRASE), stdin: Some(&bad), ..Opts::default() };
    assert_eq!(
        cli.run_with(&target, opts, &["--json", "restore"]).error()["error"]["kind"],
        "invalid_mnemonic"
    );
    // A word missing and an unknown word are refused too, by position, without quoting.
    let short = ["abandon"; 23].join(" ");
    let opts = Opts { passphrase: Some(PASSPHRASE), stdin: Some(&short), ..Opts::default() };
    cli.run_with(&target, opts, &["restore"]).refused("24 words, but 23 were given");
    let mut words = vec!["abandon"; 23];
    words.push("art");
    words[0] = "abandom";
    let typo = words.join(" ");
    let opts = Opts { passphrase: Some(PASSPHRASE), stdin: Some(&typo), ..Opts::default() };
    let run = cli
        .run_with(&target, opts, &["restore"])
        .refused("word 1 of the recovery phrase is not in the BIP39");
    assert!(!run.stderr.contains("abandom"), "{}", run.stderr);

    assert!(!target.exists(), "nothing was written");
    assert!(files_in(cli.dir.path()).is_empty(), "{:?}", files_in(cli.dir.path()));
    // An existing wallet is never overwritten by restore.
    let (_, mnemonic) = cli.create(&target, &[]);
    let before = std::fs::read(&target).expect("wallet");
    let opts = Opts { passphrase: Some(PASSPHRASE), stdin: Some(&mnemonic), ..Opts::default() };
    cli.run_with(&target, opts, &["restore"]).refused("already exists");
    assert_eq!(std::fs::read(&target).expect("wallet"), before);
}

#[test]
fn address_of_another_network_is_refused_before_signing() {
    let f = Fixture::new();
    let testnet_address = Keypair::generate().address().to_bech32(Network::Testnet.hrp());
    // A wrong passphrase: the refusal comes before the wallet is even unlocked.
    let err = f.refused(
        Some("not the passphrase"),
        &["send", "--to", &testnet_address, "--amount", "1"],
        "wrong_network",
        "is a testnet address (prefix etest), but this wallet is for devnet",
    );
    assert!(err.contains(&testnet_address), "{err}");
    f.refused(
        Some("not the passphrase"),
        &["sign", "--to", &testnet_address, "--amount", "1", "--nonce", "0"],
        "wrong_network",
        "nothing was signed",
    );
    // A typo is caught by the checksum.
    let mut typo = devnet_address(&Keypair::generate());
    let last = typo.pop().expect("char");
    typo.push(if last == 'q' { 'p' } else { 'q' });
    f.refused(
        Some(PASSPHRASE),
        &["send", "--to", &typo, "--amount", "1"],
        "invalid_argument",
        "not a valid address",
    );

    // A testnet wallet is refused by a devnet node, and `--network` must match the wallet.
    let testnet_wallet = f.cli.path("testnet.json");
    f.cli.create(&testnet_wallet, &["--network", "testnet"]);
    f.cli.run(&testnet_wallet, &["balance"]).refused("runs devnet, but this wallet is for testnet");
    f.refused(
        Some(PASSPHRASE),
        &["--network", "testnet", "balance"],
        "wrong_network",
        "is for devnet, but --network testnet",
    );
}

#[test]
fn amount_with_too_many_decimals_is_refused() {
    let f = Fixture::new();
    let to = devnet_address(&Keypair::generate());
    f.refused(
        Some(PASSPHRASE),
        &["send", "--to", &to, "--amount", "1.123456789"],
        "invalid_argument",
        "invalid amount: amount \"1.123456789\" has more than 8 decimal places",
    );
    f.refused(
        Some(PASSPHRASE),
        &["send", "--to", &to, "--amount", "1", "--fee", "0.000000001"],
        "invalid_argument",
        "invalid fee",
    );
    f.refused(
        Some(PASSPHRASE),
        &["send", "--to", &to, "--amount", "0"],
        "invalid_argument",
        "more than 0",
    );
    f.refused(
        Some(PASSPHRASE),
        &["send", "--to", &to, "--amount", "1,5"],
        "invalid_argument",
        "not a decimal number",
    );
}

#[test]
fn send_larger_than_the_balance_is_refused() {
    let f = Fixture::new();
    let to = devnet_address(&Keypair::generate());
    // Exactly the balance: the fee no longer fits.
    f.refused(
        Some(PASSPHRASE),
        &["send", "--to", &to, "--amount", "1000000"],
        "insufficient_funds",
        "insufficient funds: this payment needs 1000000.00001 coins (1000000 + 0.00001 fee), but the \
         available balance is 1000000 coins",
    );
    // An empty wallet says its balance is 0.
    let empty = f.cli.path("empty.json");
    f.cli.create(&empty, &[]);
    f.cli
        .run(&empty, &["send", "--to", &to, "--amount", "1"])
        .refused("available balance is 0 coins");
    // Pending payments count: after one pending payment, the rest is what is available.
    f.cli.run(&f.wallet, &["send", "--to", &to, "--amount", "999000"]).ok();
    f.refused(
        Some(PASSPHRASE),
        &["send", "--to", &to, "--amount", "1000"],
        "insufficient_funds",
        "available balance is 999.99999 coins (confirmed balance 1000000 minus 999000.00001 spent by pending payments)",
    );
    let v = f.cli.balance(&f.wallet);
    assert_eq!(
        (v["pending_count"].as_u64(), v["available"].as_str()),
        (Some(1), Some("999.99999")),
        "{v}"
    );
}

#[test]
fn fee_below_the_minimum_and_an_unreachable_node_are_refused() {
    let f = Fixture::new();
    let to = devnet_address(&Keypair::generate());
    f.refused(
        Some(PASSPHRASE),
        &["send", "--to", &to, "--amount", "1", "--fee", "0"],
        "fee_too_low",
        "the fee of 0 coins is below the node's minimum fee of 0.00000001 coins",
    );
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [vec!["balance"], vec!["send", "--to", &to, "--amount", "1"], vec!["history"]] {
        let mut full = vec!["--node", url.as_str()];
        full.extend(args);
        f.refused(
            Some(PASSPHRASE),
            &full,
            "node_unreachable",
            &format!("cannot reach the node at {url}"),
        );
    }
    // A transaction the node does not know, and one that is not an id.
    f.cli.run(&f.wallet, &["tx", &"ab".repeat(32)]).refused("neither confirmed nor pending");
    f.cli.run(&f.wallet, &["tx", "xyz"]).refused("not a transaction id");
    // A broadcast of something that is not a signed transaction.
    f.cli.run(&f.wallet, &["broadcast", "00ff"]).refused("not a signed Ember transaction");
}

#[test]
fn every_command_explains_itself_with_examples() {
    let cli = WalletCli::new("http://127.0.0.1:9");
    let wallet = cli.path("none.json");
    let commands = [
        "create",
        "restore",
        "address",
        "accounts",
        "new-account",
        "balance",
        "send",
        "history",
        "tx",
        "sign",
        "broadcast",
        "import-dev-key",
    ];
    for command in commands {
        let run = cli.run_with(&wallet, Opts::default(), &[command, "--help"]).ok();
        assert!(run.stdout.contains("Examples:"), "{command} --help: {}", run.stdout);
    }
    let run = cli.run_with(&wallet, Opts::default(), &["--help"]).ok();
    assert!(run.stdout.contains("EMBER_WALLET_PASSPHRASE"), "{}", run.stdout);
    // A missing wallet is named, with what to do.
    let run = cli.run_with(&wallet, Opts::default(), &["balance"]).refused("no wallet at");
    assert!(run.stderr.contains("ember-wallet create"), "{}", run.stderr);
}

#[test]
fn wait_without_a_block_times_out_clearly() {
    // No miner: the payment stays pending, and --wait gives up with exit code 3.
    let f = Fixture::new();
    let to = devnet_address(&Keypair::generate());
    let args = ["--json", "send", "--to", &to, "--amount", "1", "--wait", "--timeout", "1"];
    let run = f.cli.run(&f.wallet, &args);
    assert_eq!(run.code, 3, "{run:?}");
    let err = run.error();
    assert_eq!(err["error"]["kind"], "timeout");
    let message = err["error"]["message"].as_str().expect("message");
    assert!(message.contains("still pending"), "{message}");
    // And why: this node neither mines nor has peers.
    assert!(message.contains("does not mine and has no peers"), "{message}");
    assert_eq!(mempool_count(&f.node), 1, "the payment was submitted and is pending");
    let v = f.cli.balance(&f.wallet);
    assert_eq!((v["pending_count"].as_u64(), v["next_nonce"].as_u64()), (Some(1), Some(1)), "{v}");
}
