//! Deterministic network simulation: real `Node`s and the real P2P code (handshake, relay,
//! header-first sync, bans) running over turmoil's simulated TCP, with simulated time.
//!
//! Each simulated host runs one node with its own RocksDB store in a temp dir. The test
//! drives the simulation step by step from the outside: it mines on chosen nodes, submits
//! payments, partitions and repairs links, and waits (in simulated time, with a deadline)
//! for a condition over the nodes' chains. Network randomness comes from the seed; the
//! nodes' own randomness (nonces, hash-map order) does not change what the tests assert.

use ember_core::testkit::{devnet_funding, keys, pay};
use ember_core::{Address, BlockId, ChainParams, Keypair};
use ember_node::config::NodeConfig;
use ember_node::net::transport::{BoxFuture, BoxStream, PeerListener, Transport};
use ember_node::net::{Network, Timings};
use ember_node::node::{open_store, Node};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use turmoil::Sim;

const PORT: u16 = 9545;
const SEED: u64 = 7337;

/// turmoil's TCP behind the node's transport seam.
struct SimTransport;

struct SimListener(turmoil::net::TcpListener);

impl PeerListener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let (s, a) = self.0.accept().await?;
            Ok((Box::new(s) as BoxStream, a))
        })
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Transport for SimTransport {
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn PeerListener>>> {
        Box::pin(async move {
            let l = turmoil::net::TcpListener::bind(addr).await?;
            Ok(Box::new(SimListener(l)) as Box<dyn PeerListener>)
        })
    }
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<BoxStream>> {
        Box::pin(async move {
            let s = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(s) as BoxStream)
        })
    }
    fn inline_blocking(&self) -> bool {
        true
    }
}

/// How long a simulated node lets a peer take over the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Production timings scaled down so that simulated minutes stay cheap.
fn sim_timings() -> Timings {
    Timings {
        handshake: HANDSHAKE_TIMEOUT,
        connect: Duration::from_secs(1),
        ping: Duration::from_secs(1),
        stall: Duration::from_secs(2),
        housekeeping: Duration::from_millis(250),
        progress_log: Duration::from_secs(5),
        ban: Duration::from_secs(60),
        max_backoff: Duration::from_secs(2),
        send_stall: Duration::from_secs(5),
    }
}

/// Shared view of the nodes the hosts run, for the test driver.
type Registry = Arc<Mutex<HashMap<String, (Arc<Node>, Arc<Network>)>>>;

struct Net<'a> {
    sim: Sim<'a>,
    nodes: Registry,
    params: Arc<ChainParams>,
    keys: Vec<Keypair>,
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

fn name(i: usize) -> String {
    format!("n{i}")
}

impl<'a> Net<'a> {
    fn new() -> Net<'a> {
        // EMBER_LOG=debug shows what the simulated nodes log.
        if let Ok(filter) = std::env::var("EMBER_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let keys = keys(8);
        let params = Arc::new(devnet_funding(&keys, 1_000_000));
        let sim = turmoil::Builder::new()
            .simulation_duration(Duration::from_secs(24 * 3600))
            .tick_duration(Duration::from_millis(10))
            .rng_seed(SEED)
            .build();
        let dir = tempfile::tempdir().expect("temp dir");
        Net {
            sim,
            nodes: Registry::default(),
            params,
            keys,
            dir: dir.path().to_path_buf(),
            _dir: dir,
        }
    }

    /// Adds host `n{i}` running a node that dials the nodes listed in `peers`.
    fn add_node(&mut self, i: usize, peers: &[usize]) {
        let host = name(i);
        let peer_names: Vec<String> = peers.iter().map(|&j| name(j)).collect();
        let data_dir = self.dir.join(&host);
        let params = self.params.clone();
        let registry = self.nodes.clone();
        self.sim.host(name(i).as_str(), move || {
            let (host, peer_names, data_dir, params, registry) = (
                host.clone(),
                peer_names.clone(),
                data_dir.clone(),
                params.clone(),
                registry.clone(),
            );
            async move {
                let peers: Vec<String> = peer_names
                    .iter()
                    .map(|n| SocketAddr::new(turmoil::lookup(n.as_str()), PORT).to_string())
                    .collect();
                let config = NodeConfig {
                    rpc_addr: "127.0.0.1:0".parse()?,
                    p2p_addr: SocketAddr::from(([0, 0, 0, 0], PORT)),
                    peers: peers.clone(),
                    discover: false,
                    mine_threads: 0,
                    ..NodeConfig::new(params, data_dir)
                };
                let store = open_store(&config).map_err(|e| e.to_string())?;
                let node = Node::new(config, store).map_err(|e| e.to_string())?;
                let net =
                    Network::with_transport(node.clone(), Arc::new(SimTransport), sim_timings());
                net.start(node.config.p2p_addr, &peers).await.map_err(|e| e.to_string())?;
                registry.lock().unwrap().insert(host, (node.clone(), net));
                node.shutdown.cancelled().await;
                Ok(())
            }
        });
    }

    /// `n` nodes in a line (node i dials node i-1), all started.
    fn line(n: usize) -> Net<'a> {
        let mut net = Net::new();
        for i in 0..n {
            let peers: Vec<usize> = if i == 0 { vec![] } else { vec![i - 1] };
            net.add_node(i, &peers);
        }
        net.wait("all nodes started", Duration::from_secs(5), |net| net.running(n));
        net
    }

    /// Waits, in real time (at most 10 s), until node `i`'s tx and address indexes hold its
    /// chain's tip: their follower is a thread of its own, outside the simulation.
    fn index_caught_up(&self, i: usize) {
        let node = self.node(i);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while node.indexer.tip().id != node.tip.get().tip {
            assert!(std::time::Instant::now() < deadline, "n{i}: the index did not catch up");
            std::thread::yield_now();
        }
    }

    /// Whether node `i`'s main chain holds `txid`, by its tx index once caught up.
    fn confirmed(&self, i: usize, txid: &ember_core::Txid) -> bool {
        self.index_caught_up(i);
        self.node(i).store.tx_location(txid).unwrap().is_some()
    }

    fn node(&self, i: usize) -> Arc<Node> {
        self.nodes
            .lock()
            .unwrap()
            .get(&name(i))
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| panic!("n{i} runs"))
    }

    fn network(&self, i: usize) -> Arc<Network> {
        self.nodes
            .lock()
            .unwrap()
            .get(&name(i))
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| panic!("n{i} runs"))
    }

    fn miner(&self, i: usize) -> Address {
        self.keys[i % self.keys.len()].address()
    }

    /// Mines `n` blocks on node `i`, letting the network run `gap` between blocks.
    fn mine(&mut self, i: usize, n: usize, gap: Duration) -> Vec<BlockId> {
        let mut ids = Vec::new();
        for _ in 0..n {
            ids.extend(
                ember_node::miner::generate(&self.node(i), 1, self.miner(i))
                    .expect("devnet mining"),
            );
            self.run_for(gap);
        }
        ids
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.sim.elapsed() + d;
        while self.sim.elapsed() < until {
            self.sim.step().expect("simulation step");
        }
    }

    /// Steps until `cond` holds; panics with `what` after `limit` of simulated time.
    fn wait(&mut self, what: &str, limit: Duration, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = self.sim.elapsed() + limit;
        loop {
            if cond(self) {
                if std::env::var_os("EMBER_SIM_TRACE").is_some() {
                    eprintln!("[sim {:?}] reached: {what}", self.sim.elapsed());
                }
                return;
            }
            if self.sim.elapsed() > deadline {
                panic!("not reached within {limit:?} of simulated time: {what}\n{}", self.report());
            }
            self.sim.step().expect("simulation step");
        }
    }

    fn tip(&self, i: usize) -> (u64, BlockId) {
        let node = self.node(i);
        let chain = node.chain.lock().unwrap();
        (chain.height(), chain.tip())
    }

    fn running(&self, n: usize) -> bool {
        let reg = self.nodes.lock().unwrap();
        (0..n).all(|i| reg.contains_key(&name(i)))
    }

    fn agree(&self, nodes: &[usize]) -> bool {
        let tips: Vec<_> = nodes.iter().map(|&i| self.tip(i)).collect();
        tips.windows(2).all(|w| w[0] == w[1])
    }

    fn digest(&self, i: usize) -> String {
        self.node(i).chain.lock().unwrap().state_digest().unwrap().to_string()
    }

    fn report(&self) -> String {
        let reg = self.nodes.lock().unwrap();
        let mut names: Vec<_> = reg.keys().cloned().collect();
        names.sort();
        names
            .iter()
            .map(|n| {
                let (node, net) = &reg[n];
                let chain = node.chain.lock().unwrap();
                let peers = net.peer_count();
                format!("{n}: height {} tip {} peers {peers}", chain.height(), chain.tip())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

#[test]
fn ten_nodes_in_a_line_converge_on_one_tip() {
    let mut net = Net::line(10);
    net.wait("the line is connected", Duration::from_secs(30), |n| {
        (0..10).all(|i| n.network(i).peer_count() == if i == 0 || i == 9 { 1 } else { 2 })
    });
    // Blocks from both ends of the line, interleaved.
    for _ in 0..5 {
        net.mine(0, 2, Duration::from_millis(300));
        net.mine(9, 1, Duration::from_millis(300));
    }
    // Blocks racing from both ends fork the chain; one more block settles every tie.
    net.mine(4, 1, Duration::ZERO);
    net.wait("every node on one tip", Duration::from_secs(60), |n| {
        n.tip(0).0 >= 10 && n.agree(&all(10))
    });
    let d = net.digest(0);
    assert!((1..10).all(|i| net.digest(i) == d), "equal state digests");
}

#[test]
fn healed_partition_converges_on_the_most_work_branch() {
    const N: usize = 6;
    let mut net = Net::line(N);
    net.mine(0, 3, Duration::from_millis(200));
    net.wait("common start", Duration::from_secs(30), |n| n.tip(N - 1).0 == 3 && n.agree(&all(N)));

    let left = ["n0", "n1", "n2"];
    let right = ["n3", "n4", "n5"];
    for a in left {
        for b in right {
            net.sim.partition(a, b);
        }
    }
    // The left side confirms a payment on its (shorter) branch.
    let payer = &net.keys[5];
    let tx = pay(&net.params, payer, net.keys[6].address(), 12_345, 1_000, 0);
    let txid = net.node(0).submit_tx_blocking(tx).expect("payment admitted");
    net.wait("payment relayed on the left", Duration::from_secs(10), |n| {
        n.node(2).mempool.lock().unwrap().contains(&txid)
    });
    net.mine(0, 2, Duration::from_millis(200));
    net.mine(5, 4, Duration::from_millis(200));
    net.wait("both sides advanced separately", Duration::from_secs(30), |n| {
        n.agree(&[0, 1, 2]) && n.agree(&[3, 4, 5]) && n.tip(2).0 == 5 && n.tip(3).0 == 7
    });
    assert!(net.confirmed(0, &txid));
    let right_tip = net.tip(5);
    assert!(!net.node(5).mempool.lock().unwrap().contains(&txid), "the right never saw it");

    for a in left {
        for b in right {
            net.sim.repair(a, b);
        }
    }
    net.wait("everyone on the right side's branch", Duration::from_secs(120), |n| {
        (0..N).all(|i| n.tip(i) == right_tip)
    });
    let d = net.digest(0);
    assert!((1..N).all(|i| net.digest(i) == d), "equal state digests after the heal");
    for i in 0..3 {
        let node = net.node(i);
        assert!(!net.confirmed(i, &txid), "n{i}: the payment is no longer confirmed");
        assert!(
            node.mempool.lock().unwrap().contains(&txid),
            "n{i}: the losing side's payment is back in the mempool"
        );
    }
    // It is announced again, reaches the winning side, and confirms there.
    net.wait("payment relayed to the winning side", Duration::from_secs(10), |n| {
        n.node(5).mempool.lock().unwrap().contains(&txid)
    });
    net.mine(5, 1, Duration::from_millis(200));
    net.wait("payment confirmed again everywhere", Duration::from_secs(30), |n| {
        (0..N).all(|i| n.confirmed(i, &txid))
    });
}

#[test]
fn late_joiner_syncs_a_long_chain() {
    let mut net = Net::new();
    net.add_node(0, &[]);
    net.wait("n0 started", Duration::from_secs(5), |n| n.running(1));
    const BLOCKS: u64 = 1_200;
    ember_node::miner::generate(&net.node(0), BLOCKS as u32, net.miner(0)).expect("mining");
    assert_eq!(net.tip(0).0, BLOCKS);
    // n1 joins through n0; n2 joins through n1 only.
    net.add_node(1, &[0]);
    net.add_node(2, &[1]);
    net.wait("n1 and n2 started", Duration::from_secs(5), |n| n.running(3));
    net.wait("n1 reports the sync target", Duration::from_secs(30), |n| {
        let st = n.network(1).sync_status();
        st.target_height == BLOCKS
    });
    net.wait("the late joiners synced", Duration::from_secs(600), |n| n.agree(&[0, 1, 2]));
    let st = net.network(2).sync_status();
    assert!(!st.syncing, "sync finished: {st:?}");
    assert_eq!(net.digest(2), net.digest(0));
}

#[test]
fn links_with_latency_and_loss_still_converge() {
    const N: usize = 4;
    let mut net = Net::line(N);
    for i in 1..N {
        let (a, b) = (name(i - 1), name(i));
        net.sim.set_link_latency(a.as_str(), b.as_str(), Duration::from_millis(150));
        // 0.5% of the segments sent on a link are lost, with whatever is in flight. turmoil's
        // TCP does not retransmit, so each loss stalls that connection for good: the nodes
        // must notice the silence, drop it and reconnect.
        net.sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.005);
    }
    for _ in 0..10 {
        net.mine(0, 1, Duration::from_millis(700));
        net.mine(N - 1, 1, Duration::from_millis(700));
    }
    net.mine(1, 1, Duration::ZERO);
    net.wait("all nodes agree despite latency and loss", Duration::from_secs(300), |n| {
        n.tip(0).0 >= 10 && n.agree(&all(N))
    });
    let d = net.digest(0);
    assert!((1..N).all(|i| net.digest(i) == d));
    // The loss was real: broken connections were detected and re-established.
    let reconnects: u64 = (0..N)
        .map(|i| {
            let peers = net.network(i).peers();
            let initial = if i == 0 || i == N - 1 { 1 } else { 2 };
            peers.iter().map(|p| p.id).max().unwrap_or(0).saturating_sub(initial)
        })
        .sum();
    assert!(reconnects > 0, "no link broke: the test did not exercise loss");
}

#[test]
fn a_stalling_peer_does_not_stop_the_sync() {
    let mut net = Net::new();
    net.add_node(0, &[]);
    net.wait("n0 started", Duration::from_secs(5), |n| n.running(1));
    const BLOCKS: u64 = 800;
    ember_node::miner::generate(&net.node(0), BLOCKS as u32, net.miner(0)).expect("mining");
    net.add_node(1, &[0]);
    net.wait("n1 synced", Duration::from_secs(300), |n| n.running(2) && n.agree(&[0, 1]));
    // n2 syncs from both; as soon as it has asked n0 for bodies, n0 goes silent.
    net.add_node(2, &[0, 1]);
    net.wait("n2 connected to both", Duration::from_secs(10), |n| {
        n.running(3) && n.network(2).peer_count() == 2
    });
    net.wait("n2 downloading", Duration::from_secs(10), |n| n.tip(2).0 > 0);
    net.sim.partition("n0", "n2");
    net.wait("n2 synced from n1 alone", Duration::from_secs(300), |n| n.agree(&[1, 2]));
    let st = net.network(2).sync_status();
    assert!(st.stalled_requests > 0, "n0's requests were moved: {st:?}");
    assert_eq!(net.digest(2), net.digest(0));
}

/// What the silent peer of [`a_peer_that_connects_and_stays_silent_is_dropped_at_the_handshake_timeout`]
/// saw: the bytes the node sent, whether the node closed the connection (EOF or reset) rather
/// than our own give-up, and when, in simulated time since the connection was made.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SilentPeerSaw {
    bytes: usize,
    closed_by_node: bool,
    after: Duration,
}

#[test]
fn a_peer_that_connects_and_stays_silent_is_dropped_at_the_handshake_timeout() {
    let handshake = HANDSHAKE_TIMEOUT;
    let mut net = Net::new();
    net.add_node(0, &[]);
    net.wait("n0 started", Duration::from_secs(5), |n| n.running(1));
    let saw: Arc<Mutex<Option<SilentPeerSaw>>> = Arc::default();
    let report = saw.clone();
    net.sim.client("silent", async move {
        use tokio::io::AsyncReadExt;
        let mut s = turmoil::net::TcpStream::connect((turmoil::lookup("n0"), PORT)).await?;
        let connected = turmoil::elapsed();
        // The node answers a dialer only after its first handshake message (Noise XX: the
        // initiator speaks first), so it must say nothing, then give up on us.
        let (mut bytes, mut buf) = (0, [0u8; 1024]);
        let give_up = handshake * 10;
        let closed_by_node = loop {
            match tokio::time::timeout(give_up, s.read(&mut buf)).await {
                Ok(Ok(0)) => break true,
                Ok(Ok(n)) => bytes += n,
                Ok(Err(e)) => break e.kind() == io::ErrorKind::ConnectionReset,
                Err(_) => break false,
            }
        };
        let after = turmoil::elapsed() - connected;
        *report.lock().unwrap() = Some(SilentPeerSaw { bytes, closed_by_node, after });
        Ok(())
    });
    net.wait("the silent peer's connection to end", handshake * 20, |_| {
        saw.lock().unwrap().is_some()
    });
    let saw = saw.lock().unwrap().expect("reported");
    assert_eq!(saw.bytes, 0, "the node spoke to a peer that never started the handshake");
    assert!(saw.closed_by_node, "the node never closed the silent connection: {saw:?}");
    assert!(
        saw.after >= handshake && saw.after <= handshake + Duration::from_secs(1),
        "closed {:?} after connecting; the handshake timeout is {handshake:?}",
        saw.after
    );
    // The slot it held is free: an honest peer connects.
    net.add_node(1, &[0]);
    net.wait("n1 connected to n0", Duration::from_secs(10), |n| {
        n.running(2) && n.network(0).peer_count() == 1
    });
}
