//! The soak test: a testnet with miners and a steady stream of random payments, while
//! faults are injected one after another, and the money invariants are checked throughout.
//!
//! Faults, in a seeded shuffled cycle so that every kind occurs: SIGKILL and restart of a
//! node, a partition into two random sides then heal, latency on a link, loss on a link,
//! and a hostile peer (garbage and an oversized frame on a node's P2P port, a payment with a
//! forged signature over RPC, and one attack of the hostile-peer suite, `hostile::run`).
//!
//! Checked while it runs: every running node answers RPC; no node exits unless killed; on
//! every node the balances add up to genesis plus the subsidies of its main chain
//! (`state_digest.supply_units == expected_supply_units`); each node's RSS stays under a
//! bound. Checked at the end, after healing everything: all nodes reach one tip and one
//! state digest within a bound; every payment seen with `confirmations` confirmations is
//! still confirmed everywhere, or is reported as reorganised with the partition that
//! explains it: one that was active when the payment was seen settled, or healed but not
//! yet merged (every node on one tip) then. A violation when no partition does.
//!
//! Everything random comes from one seed, printed in the report, so a failing run can be
//! repeated with `--seed`. (Timing on a real machine still varies from run to run.)

use crate::hostile;
use crate::network::{Testnet, TestnetOptions, Topology};
use crate::process::wait_for;
use anyhow::{Context, Result};
use ember_core::{Address, ChainParams, GenesisSpec, Keypair, Transaction};
use ember_wallet::rpc::RpcClientError;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long the hostile fault's attack runs.
const HOSTILE_ATTACK_TIME: Duration = Duration::from_secs(3);
/// How long a node may take to have a peer again after an attack.
const HOSTILE_RECOVERY: Duration = Duration::from_secs(40);

/// What a soak run does.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// How long faults are injected (at least one of each kind); healing and the final
    /// checks come after.
    pub duration: Duration,
    pub seed: u64,
    pub nodes: usize,
    /// Accounts that pay each other (funded from dev accounts at the start).
    pub wallets: usize,
    /// How long each fault lasts (the next one follows a short calm).
    pub fault_time: Duration,
    /// Confirmations after which a payment counts as settled.
    pub confirmations: u64,
    /// How long the network may take to converge after the last fault.
    pub converge_within: Duration,
    /// RSS above which a node counts as growing without bound.
    pub max_rss_mb: u64,
    pub dir: PathBuf,
}

impl SoakOptions {
    pub fn new(duration: Duration, seed: u64, dir: PathBuf) -> SoakOptions {
        SoakOptions {
            duration,
            seed,
            nodes: 5,
            wallets: 12,
            fault_time: Duration::from_secs(5),
            confirmations: 3,
            converge_within: Duration::from_secs(90),
            max_rss_mb: 512,
            dir,
        }
    }
}

/// What a soak run saw.
#[derive(Debug, Default, Serialize)]
pub struct SoakReport {
    pub seed: u64,
    pub injected: Vec<String>,
    /// Checks made, by kind; a check counts once it has run (whatever it found).
    pub checks: BTreeMap<&'static str, u64>,
    /// The funding payments of the start (all accepted and confirmed, or the run fails);
    /// not counted below.
    pub funding_payments: u64,
    /// The random payments between wallets while faults come and go.
    pub payments_submitted: u64,
    pub payments_refused: u64,
    /// Refusals by the node's reason (`error.data.reason`, or what kind of failure).
    pub refusals: BTreeMap<String, u64>,
    pub payments_settled: u64,
    /// Settled payments undone by a partition's losing side (expected, with the reason).
    pub reorganised: Vec<String>,
    pub max_rss_mb: Vec<u64>,
    pub final_height: u64,
    pub violations: Vec<String>,
}

impl SoakReport {
    /// Counts a check of `kind` that has run.
    fn check(&mut self, kind: &'static str) {
        *self.checks.entry(kind).or_default() += 1;
    }

    /// Refused payments per 1,000 submitted.
    pub fn refused_per_mille(&self) -> u64 {
        (self.payments_refused * 1000).checked_div(self.payments_submitted).unwrap_or(0)
    }
    fn violation(&mut self, text: String) {
        self.violations.push(text);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    Partition,
    Latency,
    Loss,
    Hostile,
}

const FAULTS: [Fault; 5] =
    [Fault::Kill, Fault::Partition, Fault::Latency, Fault::Loss, Fault::Hostile];

/// A payment we submitted, and what we learned about it.
struct Payment {
    txid: String,
    /// Settled: seen with enough confirmations; with the partition active then, if any.
    settled: Option<Option<String>>,
}

struct Soak<'a> {
    opts: &'a SoakOptions,
    tn: Testnet,
    params: ChainParams,
    rng: StdRng,
    wallets: Vec<Keypair>,
    payments: Vec<Payment>,
    report: SoakReport,
    /// Nodes we killed on purpose (and not yet restarted).
    killed: Vec<usize>,
    partition: Option<String>,
    last_check: Instant,
    /// Where the next settlement check starts among the unsettled payments.
    cursor: usize,
    log: &'a mut dyn FnMut(&str),
}

/// Runs a soak test and returns its report (violations included; an `Err` means the
/// harness itself could not run, e.g. the testnet did not start).
pub fn soak(opts: &SoakOptions, log: &mut dyn FnMut(&str)) -> Result<SoakReport> {
    let topts = TestnetOptions {
        miners: vec![0, opts.nodes / 2],
        block_time_secs: 1.0,
        ..TestnetOptions::new(opts.nodes, Topology::Ring, &opts.dir)
    };
    log(&format!("starting {} nodes in a ring (seed {})", opts.nodes, opts.seed));
    let tn = Testnet::start(&topts, |_| {})?;
    let text = std::fs::read_to_string(&tn.genesis).context("reading the testnet genesis")?;
    let spec = GenesisSpec::from_json(&text).map_err(|e| anyhow::anyhow!("genesis: {e}"))?;
    let params = ChainParams::from_spec(&spec).map_err(|e| anyhow::anyhow!("genesis: {e}"))?;
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let wallets = (0..opts.wallets).map(|_| Keypair::from_secret_bytes(rng.gen())).collect();
    let mut s = Soak {
        opts,
        tn,
        params,
        rng,
        wallets,
        payments: Vec::new(),
        report: SoakReport { seed: opts.seed, ..Default::default() },
        killed: Vec::new(),
        partition: None,
        last_check: Instant::now(),
        cursor: 0,
        log,
    };
    s.report.max_rss_mb = vec![0; opts.nodes];
    let result = s.run();
    let stopped = s.tn.stop();
    result?;
    if let Err(e) = stopped {
        s.report.violation(format!("clean stop: {e:#}"));
    }
    Ok(s.report)
}

impl Soak<'_> {
    fn run(&mut self) -> Result<()> {
        self.fund()?;
        let end = Instant::now() + self.opts.duration;
        let mut cycle = FAULTS.to_vec();
        let mut round = 0;
        // At least one full cycle of the fault kinds, however short the duration.
        while round < FAULTS.len() || Instant::now() < end {
            if round % FAULTS.len() == 0 {
                cycle.shuffle(&mut self.rng);
            }
            let fault = cycle[round % FAULTS.len()];
            round += 1;
            self.inject(fault)?;
            self.traffic(self.opts.fault_time)?;
            self.undo(fault)?;
            self.traffic(Duration::from_secs(2))?;
        }
        self.finish()
    }

    /// Dev accounts 1..=4 (prefunded) fund every wallet; mined in at once. Every funding
    /// payment must be accepted and confirmed (an unfunded wallet would make its traffic
    /// fail for a reason of the harness, not of the network).
    fn fund(&mut self) -> Result<()> {
        let mut txids = Vec::new();
        for (i, w) in self.wallets.clone().iter().enumerate() {
            let funder = ember_wallet::dev_keypair(1 + (i % 4) as u32);
            let nonce = self.next_nonce(0, &funder.address())?;
            let tx = ember_core::testkit::pay(
                &self.params,
                &funder,
                w.address(),
                1_000 * 100_000_000,
                1_000,
                nonce,
            );
            let txid = self
                .tn
                .client(0)
                .call("tx_submit", json!([hex::encode(tx.encode())]))
                .with_context(|| format!("funding wallet {i}"))?;
            txids.push(txid);
            self.report.funding_payments += 1;
        }
        // The other miners run meanwhile: the block holding the funding payments can lose a
        // race (a longer branch arrives, the payments go back to node 0's mempool), so mine
        // again until every one is confirmed, within a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            self.tn.mine(0, 1)?;
            self.tn.wait_for_agreement(Duration::from_secs(60))?;
            let mut unconfirmed = None;
            for txid in &txids {
                let t = self.tn.client(0).call("chain_getTransaction", json!([txid]))?;
                if t["status"] != "confirmed" {
                    unconfirmed = Some(t);
                    break;
                }
            }
            let Some(t) = unconfirmed else { break };
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "a funding payment was not mined within 60 s: {t}"
            );
            (self.log)("a funding block lost a race with another miner's; mining again");
        }
        (self.log)(&format!("funded {} wallets", self.wallets.len()));
        Ok(())
    }

    fn next_nonce(&self, node: usize, addr: &Address) -> Result<u64> {
        let a =
            self.tn.client(node).call("account_get", json!([addr.to_bech32(self.params.hrp())]))?;
        a["next_nonce"].as_u64().context("account_get without next_nonce")
    }

    /// Submits one traffic payment; a refusal is counted with its reason (a few are normal:
    /// a nonce raced by a reorg or by a payment submitted to another node; the soak test
    /// bounds how many).
    fn submit(&mut self, node: usize, tx: &Transaction) {
        self.report.payments_submitted += 1;
        match self.tn.client(node).call("tx_submit", json!([hex::encode(tx.encode())])) {
            Ok(v) => {
                let txid = v.as_str().unwrap_or_default().to_string();
                self.payments.push(Payment { txid, settled: None });
            }
            Err(e) => {
                self.report.payments_refused += 1;
                let reason = match (&e, e.reason()) {
                    (_, Some(r)) => r.to_string(),
                    (RpcClientError::Unreachable { .. }, None) => "unreachable".to_string(),
                    (RpcClientError::Rpc { code, .. }, None) => format!("error {code}"),
                    (RpcClientError::BadResponse { .. }, None) => "bad response".to_string(),
                };
                *self.report.refusals.entry(reason).or_default() += 1;
            }
        }
    }

    fn running(&self) -> Vec<usize> {
        (0..self.opts.nodes).filter(|i| !self.killed.contains(i)).collect()
    }

    /// Random payments between wallets for `d`, with the invariants checked every second.
    fn traffic(&mut self, d: Duration) -> Result<()> {
        let end = Instant::now() + d;
        while Instant::now() < end {
            let running = self.running();
            let node = *running.choose(&mut self.rng).expect("a node always runs");
            let from = self.rng.gen_range(0..self.wallets.len());
            let mut to = self.rng.gen_range(0..self.wallets.len());
            if to == from {
                to = (to + 1) % self.wallets.len();
            }
            let (payer, payee) = (self.wallets[from].clone(), self.wallets[to].address());
            if let Ok(nonce) = self.next_nonce(node, &payer.address()) {
                let amount = self.rng.gen_range(1..1_000_000);
                let fee = self.rng.gen_range(1..5_000);
                let tx = ember_core::testkit::pay(&self.params, &payer, payee, amount, fee, nonce);
                self.submit(node, &tx);
            }
            if self.last_check.elapsed() >= Duration::from_secs(1) {
                self.check_running();
                self.last_check = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The checks made while faults come and go.
    fn check_running(&mut self) {
        for i in 0..self.opts.nodes {
            if self.killed.contains(&i) {
                continue;
            }
            if !self.tn.is_running(i) {
                let tail = self.tn.node(i).log_tail();
                self.report.violation(format!("node {i} exited without being killed:\n{tail}"));
                self.killed.push(i); // Reported once; the final phase restarts it.
                continue;
            }
            match self.tn.client(i).call("state_digest", json!([])) {
                Ok(v) => self.check_supply(i, &v),
                Err(e) => self.report.violation(format!("node {i}: RPC does not answer: {e}")),
            }
            self.report.check("rpc answers");
            if let Some(rss) = self.tn.node(i).pid().and_then(rss_mb) {
                let max = &mut self.report.max_rss_mb[i];
                *max = (*max).max(rss);
                if rss > self.opts.max_rss_mb {
                    self.report.violation(format!(
                        "node {i}: RSS {rss} MB is above {} MB",
                        self.opts.max_rss_mb
                    ));
                }
                self.report.check("memory bounded");
            }
        }
        self.observe_settled();
    }

    fn check_supply(&mut self, i: usize, v: &Value) {
        let (have, want) = (v["supply_units"].as_str(), v["expected_supply_units"].as_str());
        if have.is_none() || have != want {
            self.report.violation(format!(
                "node {i} at height {}: balances add up to {have:?} units, genesis and \
                 subsidies to {want:?}",
                v["height"]
            ));
        }
        self.report.check("supply adds up");
    }

    /// Notes payments node 0 (or any running node) shows with enough confirmations.
    fn observe_settled(&mut self) {
        let node = self.running()[0];
        let client = self.tn.client(node);
        let partition = self.partition.clone();
        // Round-robin over the unsettled ones, 100 a check: payments that never confirm
        // (replaced, or dropped by a reorg) must not hide the others.
        let unsettled: Vec<usize> =
            (0..self.payments.len()).filter(|&i| self.payments[i].settled.is_none()).collect();
        if unsettled.is_empty() {
            return;
        }
        let start = self.cursor % unsettled.len();
        self.cursor = start + 100;
        let picked: Vec<usize> =
            unsettled.iter().cycle().skip(start).take(100.min(unsettled.len())).copied().collect();
        for i in picked {
            let p = &mut self.payments[i];
            if let Ok(t) = client.call("chain_getTransaction", json!([p.txid])) {
                if t["confirmations"].as_u64().unwrap_or(0) >= self.opts.confirmations {
                    p.settled = Some(partition.clone());
                    self.report.payments_settled += 1;
                }
            }
        }
    }

    fn inject(&mut self, fault: Fault) -> Result<()> {
        let n = self.opts.nodes;
        let text = match fault {
            Fault::Kill => {
                let i = self.rng.gen_range(0..n);
                self.tn.kill(i)?;
                self.killed.push(i);
                format!("kill -9 node {i}")
            }
            Fault::Partition => {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut self.rng);
                let cut = self.rng.gen_range(1..n);
                let (a, b) = order.split_at(cut);
                let (mut a, mut b) = (a.to_vec(), b.to_vec());
                a.sort();
                b.sort();
                self.tn.partition(&[&a, &b])?;
                let text = format!("partition {a:?} / {b:?}");
                self.partition = Some(text.clone());
                text
            }
            Fault::Latency => {
                let l = &self.tn.links()[self.rng.gen_range(0..self.tn.links().len())];
                let (i, j) = (l.from, l.to);
                let ms = self.rng.gen_range(50..400);
                self.tn.set_latency(i, j, ms)?;
                format!("latency {ms} ms on link {i}-{j}")
            }
            Fault::Loss => {
                let l = &self.tn.links()[self.rng.gen_range(0..self.tn.links().len())];
                let (i, j) = (l.from, l.to);
                let pct = self.rng.gen_range(5..40) as f64;
                self.tn.set_loss(i, j, pct)?;
                format!("loss {pct}% on link {i}-{j}")
            }
            Fault::Hostile => {
                let running = self.running();
                let i = *running.choose(&mut self.rng).expect("a node runs");
                let attack = self.hostile(i)?;
                format!("hostile peer against node {i} (then {attack})")
            }
        };
        (self.log)(&format!("inject: {text}"));
        self.report.injected.push(text);
        Ok(())
    }

    fn undo(&mut self, fault: Fault) -> Result<()> {
        match fault {
            Fault::Kill => {
                for i in std::mem::take(&mut self.killed) {
                    self.tn.start_node(i)?;
                }
            }
            Fault::Partition => {
                self.tn.heal();
                // Until the sides have merged, a node may still show its side's branch:
                // a payment seen settled there is still the partition's. So the partition
                // ends for the settlement check once every node has one tip; if they do
                // not merge in time, the final convergence check reports it.
                match self.tn.wait_for_agreement(self.opts.converge_within) {
                    Ok(_) => self.partition = None,
                    Err(e) => (self.log)(&format!("sides not merged after healing: {e:#}")),
                }
            }
            Fault::Latency | Fault::Loss => {
                self.clear_link_faults()?;
            }
            Fault::Hostile => {}
        }
        Ok(())
    }

    fn clear_link_faults(&mut self) -> Result<()> {
        let pairs: Vec<(usize, usize)> = self.tn.links().iter().map(|l| (l.from, l.to)).collect();
        for (i, j) in pairs {
            self.tn.set_latency(i, j, 0)?;
            self.tn.set_loss(i, j, 0.0)?;
        }
        Ok(())
    }

    /// Garbage and an oversized frame on node `i`'s P2P port, a forged payment over RPC, and
    /// one attack of [`hostile::Attack`] (picked by the seed) for a few seconds: the node must
    /// refuse them, keep answering RPC and keep at least one peer.
    fn hostile(&mut self, i: usize) -> Result<&'static str> {
        let p2p = self.tn.node(i).p2p_addr();
        let mut junk = vec![0u8; 512];
        self.rng.fill(&mut junk[..]);
        for payload in [junk, [b"EMBd".as_slice(), &u32::MAX.to_le_bytes()].concat()] {
            if let Ok(mut s) = TcpStream::connect(&p2p) {
                let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(&payload);
            }
        }
        let payer = self.wallets[0].clone();
        let nonce = self.next_nonce(i, &payer.address()).unwrap_or(0);
        let tx =
            ember_core::testkit::pay(&self.params, &payer, self.wallets[1].address(), 1, 10, nonce);
        let mut bytes = tx.encode();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01; // the signature's last byte
        match self.tn.client(i).call("tx_submit", json!([hex::encode(bytes)])) {
            Err(e) if e.reason() == Some("bad_signature") => {}
            Ok(_) => self
                .report
                .violation(format!("node {i} accepted a payment with a forged signature")),
            Err(e) => self.report.violation(format!(
                "node {i} refused a payment with a forged signature for another reason: {e}"
            )),
        }
        self.report.check("forged payment refused");
        // Then one attack of the hostile-peer suite, picked by the seed, for a few seconds.
        let attack = *hostile::Attack::ALL.choose(&mut self.rng).expect("attacks exist");
        let addr: SocketAddr = p2p.parse().with_context(|| format!("node {i}'s P2P address"))?;
        let client = self.tn.client(i);
        match hostile::run(attack, addr, &client, &self.params, HOSTILE_ATTACK_TIME) {
            Ok(r) => (self.log)(&format!(
                "hostile {} against node {i}: {} rounds, {} connections ({} refused, {} closed \
                 by the node), {} messages, {} bytes",
                attack.name(),
                r.rounds,
                r.connections,
                r.refused,
                r.closed_by_node,
                r.messages_sent,
                r.bytes_sent
            )),
            Err(e) => (self.log)(&format!("hostile {} against node {i}: {e:#}", attack.name())),
        }
        // Afterwards the node answers and is still linked to the testnet (a link it lost to
        // the attack may take its --peer back-off to come back).
        let peers = wait_for(HOSTILE_RECOVERY, "a peer after the attack", || {
            client
                .call("node_info", json!([]))
                .ok()
                .and_then(|v| v["peers"].as_u64())
                .filter(|&n| n >= 1)
        });
        if let Err(e) = peers {
            let answers =
                client.call("node_info", json!([])).map(|_| ()).map_err(|e| e.to_string());
            self.report.violation(format!(
                "node {i} after the {} attack: {e:#} (node_info: {answers:?})",
                attack.name()
            ));
        }
        self.report.check("answers and keeps a peer after an attack");
        Ok(attack.name())
    }

    /// Heals everything, restarts what is down, and checks convergence and settlement.
    fn finish(&mut self) -> Result<()> {
        (self.log)("healing every fault; waiting for the network to converge");
        self.tn.heal();
        self.partition = None;
        self.clear_link_faults()?;
        for i in std::mem::take(&mut self.killed) {
            if !self.tn.is_running(i) {
                self.tn.start_node(i)?;
            }
        }
        // One more block settles any tie between equal-work branches.
        let _ = self.tn.mine(0, 1);
        // Each check is counted by the arm that reports its outcome: a check skipped (or
        // never reaching a verdict) is not counted as made.
        match self.tn.wait_for_agreement(self.opts.converge_within) {
            Ok((h, _)) => {
                self.report.final_height = h;
                self.report.check("converges");
            }
            Err(e) => {
                self.report.violation(format!("no convergence after the last fault: {e:#}"));
                self.report.check("converges");
            }
        }
        match self.tn.state_digests() {
            Ok(d)
                if d.len() == self.opts.nodes
                    && !d[0].is_empty()
                    && d.windows(2).all(|w| w[0] == w[1]) =>
            {
                self.report.check("equal state digests");
            }
            Ok(d) => {
                self.report.violation(format!("state digests differ: {d:?}"));
                self.report.check("equal state digests");
            }
            Err(e) => {
                self.report.violation(format!("state digests: {e:#}"));
                self.report.check("equal state digests");
            }
        }
        self.check_running();
        self.check_settled();
        Ok(())
    }

    fn check_settled(&mut self) {
        let mut confirmed_on: HashMap<String, usize> = HashMap::new();
        for i in 0..self.opts.nodes {
            let client = self.tn.client(i);
            for p in self.payments.iter().filter(|p| p.settled.is_some()) {
                let ok = client
                    .call("chain_getTransaction", json!([p.txid]))
                    .is_ok_and(|t| t["status"] == "confirmed");
                if ok {
                    *confirmed_on.entry(p.txid.clone()).or_default() += 1;
                }
            }
        }
        let settled: Vec<(String, Option<String>)> = self
            .payments
            .iter()
            .filter_map(|p| p.settled.clone().map(|during| (p.txid.clone(), during)))
            .collect();
        for (txid, during) in settled {
            let everywhere = confirmed_on.get(&txid).copied().unwrap_or(0) == self.opts.nodes;
            self.report.check("settled payments stay settled");
            if everywhere {
                continue;
            }
            match during {
                Some(partition) => self.report.reorganised.push(format!(
                    "{txid}: settled on one side of {partition}, undone when the other side's \
                     branch won"
                )),
                None => self.report.violation(format!(
                    "{txid} had {} confirmations with no partition active, and is no longer \
                     confirmed on every node",
                    self.opts.confirmations
                )),
            }
        }
    }
}

/// Resident memory of a process in MB, from /proc.
fn rss_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// The report as text.
pub fn render(r: &SoakReport) -> String {
    let mut out = String::new();
    out.push_str(&format!("seed {}\n\ninjected ({}):\n", r.seed, r.injected.len()));
    for f in &r.injected {
        out.push_str(&format!("  {f}\n"));
    }
    out.push_str("\nchecked:\n");
    for (k, n) in &r.checks {
        out.push_str(&format!("  {k:<32} {n} times\n"));
    }
    out.push_str(&format!(
        "\npayments: {} funding; traffic {} submitted, {} refused at submission ({} per mille: \
         {:?}), {} settled\n",
        r.funding_payments,
        r.payments_submitted,
        r.payments_refused,
        r.refused_per_mille(),
        r.refusals,
        r.payments_settled
    ));
    out.push_str(&format!("final height: {}\n", r.final_height));
    out.push_str(&format!("peak RSS per node (MB): {:?}\n", r.max_rss_mb));
    if !r.reorganised.is_empty() {
        out.push_str(&format!("\nreorganised by a partition ({}):\n", r.reorganised.len()));
        for x in &r.reorganised {
            out.push_str(&format!("  {x}\n"));
        }
    }
    if r.violations.is_empty() {
        out.push_str("\nno invariant violated\n");
    } else {
        out.push_str(&format!("\nVIOLATIONS ({}):\n", r.violations.len()));
        for v in &r.violations {
            out.push_str(&format!("  {v}\n"));
        }
        out.push_str(&format!("\nreproduce with --seed {}\n", r.seed));
    }
    out
}
