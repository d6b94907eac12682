//! Node configuration: command-line flags, `EMBER_*` environment variables and an optional
//! TOML file, in that order of precedence, resolved into one [`NodeConfig`].
//!
//! On/off settings follow the same order: `--mine`/`--no-mine` and `--discover`/
//! `--no-discover` (the last given wins), else `EMBER_MINE` / `EMBER_DISCOVER` (or
//! `EMBER_NO_DISCOVER`) as `true`/`false`, else the file's `mine` / `discover` (or
//! `no-discover`), else the default. They are read apart from clap's `env` so that a
//! variable or file saying `false` is not lost to a flag that can only say "given".
//!
//! A config file with an unknown key or a value of the wrong type is refused with the file
//! name and the reason, rather than half-applied.

use crate::mempool::MempoolLimits;
use clap::{Args, Parser, Subcommand, ValueEnum};
use ember_core::{Address, ChainParams, GenesisSpec, Network};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ember-node",
    version,
    about = "The Ember full node: keeps the chain, relays blocks and payments, serves JSON-RPC.",
    long_about = "The Ember full node.\n\nIt keeps the chain in RocksDB under --data-dir, validates \
                  and relays blocks and transactions, keeps a mempool, mines when asked, and serves \
                  JSON-RPC 2.0 over HTTP (loopback by default) with GET /health and GET /metrics.",
    after_help = "Examples:\n  ember-node --network devnet                 # built-in devnet, RPC on 127.0.0.1:8545\n  \
                  ember-node --network devnet --mine --block-time 2\n  \
                  ember-node --genesis .testnet/genesis.json --data-dir /tmp/n9 \\\n    \
                  --rpc-addr 127.0.0.1:0 --p2p-addr 127.0.0.1:0 --peer $(cat .testnet/node0/p2p.addr)\n    \
                  # join a local testnet (free ports; node 0 as the first peer)\n  \
                  ember-node check --data-dir ~/.local/share/ember/devnet\n  \
                  ember-node --genesis genesis.json --p2p-addr 0.0.0.0:9545 --peer node1.example:9545 \\\n    \
                  --external-addr 203.0.113.7:9545 --rpc-token-file /run/secrets/rpc_token\n    \
                  # one host of a network across machines (see `ember-node genesis --help`)\n  \
                  ember-node --network devnet --automine      # a block per submitted payment\n\n\
                  Flags override EMBER_* environment variables, which override --config FILE (TOML).\n\
                  Exit codes: 0 stopped cleanly, 1 failed while running, 2 bad command line or \
                  configuration."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write the genesis spec of a new network, for every host of it to pass as --genesis.
    #[command(
        long_about = "Write the genesis spec (JSON) of a new network: its rules (devnet or \
                      testnet), its prefunded accounts and a note that makes it a network of its \
                      own. Every node of the network is then started with --genesis FILE; nodes \
                      with different specs refuse each other at the handshake. The genesis id \
                      is printed on stderr to compare across hosts.",
        after_help = "Exit codes: 0 written; 1 the file cannot be written; 2 bad arguments, or \
                      --out names an existing file without --force.\n\n\
                      Examples:\n  \
                      ember-node genesis --dev-accounts --out genesis.json\n  \
                      ember-node genesis --network testnet --alloc tmbr1...=21000 --out net.json\n  \
                      ember-node genesis --dev-accounts | ssh host2 'cat > genesis.json'\n  \
                      ember-node --genesis genesis.json --p2p-addr 0.0.0.0:9545 --peer host1:9545"
    )]
    Genesis(crate::genesis_cmd::GenesisArgs),
    /// Open a data dir read-only, replay its main chain from genesis and compare the state.
    #[command(
        long_about = "Open a stopped node's data dir read-only, replay its main chain from \
                      genesis and compare the state with the stored one. Nothing in the data dir \
                      is created or changed.",
        after_help = "Exit codes: 0 the stored state matches the replay; 1 it does not, or the \
                      data dir cannot be checked (missing, not a node's data dir, another \
                      chain: the message says which); 2 bad command line (or an unreadable \
                      --genesis file).\n\n\
                      Examples:\n  \
                      ember-node check --data-dir ~/.local/share/ember/devnet\n  \
                      ember-node check --data-dir .testnet/node1 --genesis .testnet/genesis.json\n  \
                      ember-node check --data-dir /srv/ember --network testnet"
    )]
    Check {
        /// The data dir to check (a node's --data-dir; it must exist).
        #[arg(long)]
        data_dir: PathBuf,
        /// Network of the data dir [default: devnet, or the network named in the --genesis
        /// file].
        #[arg(long, value_enum)]
        network: Option<NetworkArg>,
        /// Genesis spec (JSON) the data dir's node was started with, when not a built-in one
        /// (`ember-testnet up` writes its network's to <dir>/genesis.json).
        #[arg(long)]
        genesis: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetworkArg {
    Devnet,
    Testnet,
}

impl From<NetworkArg> for Network {
    fn from(n: NetworkArg) -> Self {
        match n {
            NetworkArg::Devnet => Network::Devnet,
            NetworkArg::Testnet => Network::Testnet,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Flags of the node itself. Every one can also come from the environment or the file.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunArgs {
    /// Network to join [default: devnet, or the network named in the --genesis file].
    #[arg(long, value_enum, env = "EMBER_NETWORK")]
    pub network: Option<NetworkArg>,
    /// Genesis spec (JSON file) of the chain to follow instead of the network's built-in
    /// genesis, e.g. the one `ember-testnet up` writes to <dir>/genesis.json. The file names
    /// its network, so --network may be left out.
    #[arg(long, env = "EMBER_GENESIS", value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Where the chain, the RPC cookie and the node's files live
    /// [default: <user data dir>/ember/<network>].
    #[arg(long, env = "EMBER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// JSON-RPC listen address, ip:port or host:port [default: 127.0.0.1:8545].
    #[arg(long, env = "EMBER_RPC_ADDR")]
    pub rpc_addr: Option<String>,
    /// P2P listen address, ip:port or host:port [default: 127.0.0.1:9545].
    #[arg(long, env = "EMBER_P2P_ADDR")]
    pub p2p_addr: Option<String>,
    /// Peer to connect to at start (repeatable): `host:port` (an IP address or a DNS name,
    /// resolved again at every dial), or `ID@host:port` to accept only the node that proves
    /// node id ID (its `node_info.node_id`).
    #[arg(long = "peer", env = "EMBER_PEERS", value_delimiter = ',')]
    #[serde(default, rename = "peers")]
    pub peers: Vec<String>,
    /// Address to advertise to peers (`ip:port`, or `host:port` resolved once at start)
    /// when the P2P listen address is not reachable from outside: a public IP in front of
    /// NAT, a published container port. Without it, peers note the address they see.
    #[arg(long, env = "EMBER_EXTERNAL_ADDR", value_name = "HOST:PORT")]
    pub external_addr: Option<String>,
    /// File holding a fixed RPC admin token, accepted besides the cookie's (which is new
    /// at every start): for tools in other containers or hosts. At least 16 characters,
    /// surrounding whitespace ignored.
    #[arg(long, env = "EMBER_RPC_TOKEN_FILE", value_name = "FILE")]
    pub rpc_token_file: Option<PathBuf>,
    /// Run CMD (with `sh -c`) whenever the main chain's tip changes, `%s` replaced by the
    /// new tip's id (Bitcoin Core's -blocknotify). At most 4 run at once; a change that
    /// finds 4 still running is skipped with a warning.
    #[arg(long, env = "EMBER_BLOCK_NOTIFY", value_name = "CMD")]
    pub block_notify: Option<String>,
    /// Outbound connections to keep, dialing addresses learned from peers when the --peer
    /// ones are not enough [default: 8].
    #[arg(long, env = "EMBER_OUTBOUND")]
    pub outbound: Option<usize>,
    /// Most inbound connections accepted at once [default: 64].
    #[arg(long, env = "EMBER_MAX_INBOUND")]
    pub max_inbound: Option<usize>,
    /// Never dial addresses learned from peers: connect only to --peer (and net_addPeer).
    /// Also EMBER_DISCOVER=false (or EMBER_NO_DISCOVER=true), or `discover = false` in the
    /// config file.
    #[arg(long, overrides_with = "discover")]
    #[serde(skip)]
    pub no_discover: bool,
    /// Dial addresses learned from peers (the default): overrides EMBER_DISCOVER and the
    /// config file.
    #[arg(long, overrides_with = "no_discover")]
    #[serde(skip)]
    pub discover: bool,
    /// Mine blocks continuously (devnet: paced at random around --block-time). Also
    /// EMBER_MINE=true|false, or `mine = true|false` in the config file.
    #[arg(long, overrides_with = "no_mine")]
    #[serde(skip)]
    pub mine: bool,
    /// Devnet: mine a block as soon as payments are admitted (anvil's automine), besides
    /// or instead of --mine's interval blocks. Also EMBER_AUTOMINE=true|false, or
    /// `automine = true|false` in the config file. Switched at run time by
    /// `mining_setAutomine`.
    #[arg(long)]
    #[serde(skip)]
    pub automine: bool,
    /// `automine = true|false` of the config file.
    #[arg(skip)]
    #[serde(rename = "automine")]
    pub file_automine: Option<bool>,
    /// Do not mine: overrides EMBER_MINE and the config file.
    #[arg(long, overrides_with = "mine")]
    #[serde(skip)]
    pub no_mine: bool,
    /// `mine = true|false` of the config file. A boolean flag cannot say "not given", so
    /// the file's and the environment's booleans are kept apart from the flags and resolved
    /// in [`RunArgs::resolve`] (flags, then environment, then file).
    #[arg(skip)]
    #[serde(rename = "mine")]
    pub file_mine: Option<bool>,
    /// `discover = true|false` of the config file.
    #[arg(skip)]
    #[serde(rename = "discover")]
    pub file_discover: Option<bool>,
    /// `no-discover = true|false` of the config file (the older spelling of `discover`).
    #[arg(skip)]
    #[serde(rename = "no-discover")]
    pub file_no_discover: Option<bool>,
    /// Address credited with mined blocks [default: the genesis's first prefunded account,
    /// dev account 0 on devnet].
    #[arg(long, env = "EMBER_MINER_ADDRESS")]
    pub miner_address: Option<String>,
    /// Mining threads (0 = do not mine) [default: 1].
    #[arg(long, env = "EMBER_MINE_THREADS")]
    pub mine_threads: Option<usize>,
    /// Mean seconds between devnet blocks when mining [default: 2].
    #[arg(long, env = "EMBER_BLOCK_TIME")]
    pub block_time: Option<f64>,
    /// TOML config file with any of these settings (keys in kebab-case, `peers = [...]`).
    #[arg(long, env = "EMBER_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Log output format (logs go to stderr) [default: text].
    #[arg(long, value_enum, env = "EMBER_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Most transactions the mempool holds (1,000 to 1,000,000) [default: 50000].
    #[arg(long, env = "EMBER_MEMPOOL_MAX_TXS")]
    pub mempool_max_txs: Option<usize>,
    /// Devnet benchmarks only: after the Noise handshake, peer frames travel in the clear,
    /// unauthenticated, so that `ember-testnet bench` can measure what encryption costs.
    /// Such a node only talks to others started with this flag. Refused on any other
    /// network; hidden from --help; not read from the environment or a config file.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub insecure_p2p_plaintext: bool,
}

/// The resolved configuration the node runs with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub params: Arc<ChainParams>,
    pub data_dir: PathBuf,
    pub rpc_addr: SocketAddr,
    pub p2p_addr: SocketAddr,
    pub peers: Vec<String>,
    /// What this node advertises as its address (--external-addr).
    pub external_addr: Option<SocketAddr>,
    /// The --rpc-token-file token, accepted besides the cookie's.
    pub rpc_token: Option<String>,
    /// `--block-notify CMD`.
    pub block_notify: Option<String>,
    pub outbound: usize,
    pub max_inbound: usize,
    pub discover: bool,
    pub mine: bool,
    /// Devnet: a block as soon as payments are admitted.
    pub automine: bool,
    pub miner_address: Option<Address>,
    pub mine_threads: usize,
    pub block_time: Duration,
    pub log_format: LogFormat,
    /// Bounds of the mempool.
    pub mempool: MempoolLimits,
    /// Peer frames in the clear after the handshake (devnet benchmarks only).
    pub p2p_plaintext: bool,
}

impl NodeConfig {
    /// The defaults for `params` in `data_dir`: RPC on 127.0.0.1:8545, P2P on
    /// 127.0.0.1:9545, no peers given, 8 outbound and 64 inbound connections, discovery on,
    /// not mining, default mempool bounds, encrypted peers.
    pub fn new(params: Arc<ChainParams>, data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            params,
            data_dir,
            rpc_addr: "127.0.0.1:8545".parse().expect("valid"),
            p2p_addr: "127.0.0.1:9545".parse().expect("valid"),
            peers: Vec::new(),
            external_addr: None,
            rpc_token: None,
            block_notify: None,
            outbound: 8,
            max_inbound: 64,
            discover: true,
            mine: false,
            automine: false,
            miner_address: None,
            mine_threads: 1,
            block_time: Duration::from_secs(2),
            log_format: LogFormat::Text,
            mempool: MempoolLimits::default(),
            p2p_plaintext: false,
        }
    }
}

/// The chain parameters to run with: the built-in genesis of `network` (devnet when
/// none is given), or the genesis spec file `genesis`, whose network is taken from the file
/// when `network` is `None`. Every error names the file and says what to change.
pub fn load_params(
    network: Option<Network>,
    genesis: Option<&Path>,
) -> anyhow::Result<ChainParams> {
    let Some(path) = genesis else {
        return Ok(match network.unwrap_or(Network::Devnet) {
            Network::Testnet => ChainParams::testnet(),
            Network::Devnet => ChainParams::devnet(),
        });
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the genesis file {}: {e}; check the --genesis path",
            path.display()
        )
    })?;
    let spec = GenesisSpec::from_json(&text).map_err(|e| {
        anyhow::anyhow!(
            "genesis file {}: {e}; --genesis needs a genesis spec (JSON)",
            path.display()
        )
    })?;
    if let Some(network) = network.filter(|n| *n != spec.network) {
        anyhow::bail!(
            "genesis file {} is for {}, but --network {network} was given; leave --network out \
             (the file names its network) or use a {network} genesis file",
            path.display(),
            spec.network
        );
    }
    ChainParams::from_spec(&spec)
        .map_err(|e| anyhow::anyhow!("genesis file {}: {e}", path.display()))
}

/// A genesis spec file near `data_dir` (in it, or beside it as `ember-testnet` keeps its
/// `genesis.json`) whose genesis is `genesis`: what to pass as --genesis to open that data
/// dir.
pub fn find_genesis_file(data_dir: &Path, genesis: ember_core::BlockId) -> Option<PathBuf> {
    let dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let candidates = [Some(dir.join("genesis.json")), dir.parent().map(|p| p.join("genesis.json"))];
    candidates.into_iter().flatten().find(|path| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| GenesisSpec::from_json(&text).ok())
            .and_then(|spec| ChainParams::from_spec(&spec).ok())
            .is_some_and(|params| params.genesis_id() == genesis)
    })
}

/// What to do when `data_dir` holds the chain of genesis `stored` (of `network`) but the
/// node was started for another: the flag that opens it, when it can be found.
pub fn other_genesis_hint(data_dir: &Path, network: &str, stored: ember_core::BlockId) -> String {
    for builtin in [ChainParams::devnet(), ChainParams::testnet()] {
        if builtin.genesis_id() == stored {
            return format!(
                "it is the built-in {} chain: use --network {} without --genesis",
                builtin.network, builtin.network
            );
        }
    }
    match find_genesis_file(data_dir, stored) {
        Some(path) => {
            format!("open it with --genesis {} (that file has its genesis)", path.display())
        }
        None => format!(
            "open it with --genesis FILE, the genesis spec its node was started with (a \
             {network} chain; `ember-testnet up` keeps its spec in <dir>/genesis.json), or use \
             another --data-dir"
        ),
    }
}

/// The `--peer` list checked and without repeats: one entry per endpoint, the pinned
/// (`ID@`) form kept when both are given; two different ids for one endpoint are refused.
fn dedup_peers(peers: &[String]) -> anyhow::Result<Vec<String>> {
    use crate::identity::PeerTarget;
    let mut out: Vec<(PeerTarget, String)> = Vec::new();
    for text in peers {
        let t: PeerTarget = text.parse().map_err(|e| anyhow::anyhow!("--peer: {e}"))?;
        match out.iter_mut().find(|(o, _)| o.endpoint == t.endpoint) {
            None => out.push((t, text.clone())),
            Some((o, kept)) => match (o.expected, t.expected) {
                (Some(a), Some(b)) if a != b => anyhow::bail!(
                    "--peer {} is given with two node ids ({a} and {b}); keep the right one",
                    t.endpoint
                ),
                (None, Some(_)) => (*o, *kept) = (t, text.clone()),
                _ => {}
            },
        }
    }
    Ok(out.into_iter().map(|(_, text)| text).collect())
}

/// A listen address: `ip:port`, or `host:port` with a host this machine resolves
/// (`localhost:0`), the first IPv4 answer preferred.
fn listen_addr(flag: &str, text: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let hint = "give ip:port or host:port, e.g. 127.0.0.1:8545, 0.0.0.0:9545 or localhost:0";
    let (host, port) =
        text.rsplit_once(':').ok_or_else(|| anyhow::anyhow!("{flag} {text:?}: no port; {hint}"))?;
    let port: u16 =
        port.parse().map_err(|_| anyhow::anyhow!("{flag} {text:?}: bad port; {hint}"))?;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("{flag} {text:?}: cannot resolve {host:?} ({e}); {hint}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| anyhow::anyhow!("{flag} {text:?}: {host:?} has no address; {hint}"))
}

/// `--external-addr`: `ip:port`, or `host:port` resolved now (the first IPv4 answer, else
/// the first).
fn parse_external(text: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let endpoint: crate::identity::Endpoint =
        text.parse().map_err(|e| anyhow::anyhow!("--external-addr: {e}"))?;
    let addrs: Vec<SocketAddr> = endpoint
        .to_string()
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("--external-addr {text}: cannot resolve ({e})"))?
        .collect();
    let addr = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied();
    let addr = addr.ok_or_else(|| anyhow::anyhow!("--external-addr {text}: no address"))?;
    if addr.ip().is_unspecified() || addr.port() == 0 {
        anyhow::bail!("--external-addr {text}: peers cannot dial an unspecified address or port 0");
    }
    Ok(addr)
}

/// The token of `--rpc-token-file`: the file's text without surrounding whitespace, at
/// least 16 characters of printable ASCII (it travels in an HTTP header).
fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read --rpc-token-file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        anyhow::bail!(
            "--rpc-token-file {}: the token must be at least 16 printable characters without \
             spaces (e.g. `openssl rand -hex 32 > {}`)",
            path.display(),
            path.display()
        );
    }
    Ok(token.to_string())
}

/// Default data dir: `<user data dir>/ember/<network>`.
pub fn default_data_dir(network: Network) -> PathBuf {
    dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("ember").join(network.name())
}

/// A boolean from the environment: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl RunArgs {
    /// Merges a TOML file under the flags (flags and env win).
    fn merge_file(mut self) -> anyhow::Result<Self> {
        let Some(path) = self.config.clone() else { return Ok(self) };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
        let file: RunArgs = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        self.network = self.network.or(file.network);
        self.genesis = self.genesis.or(file.genesis);
        self.data_dir = self.data_dir.or(file.data_dir);
        self.rpc_addr = self.rpc_addr.or(file.rpc_addr);
        self.p2p_addr = self.p2p_addr.or(file.p2p_addr);
        if self.peers.is_empty() {
            self.peers = file.peers;
        }
        self.external_addr = self.external_addr.or(file.external_addr);
        self.rpc_token_file = self.rpc_token_file.or(file.rpc_token_file);
        self.block_notify = self.block_notify.or(file.block_notify);
        self.outbound = self.outbound.or(file.outbound);
        self.max_inbound = self.max_inbound.or(file.max_inbound);
        self.file_mine = file.file_mine;
        self.file_automine = file.file_automine;
        self.file_discover = match (file.file_discover, file.file_no_discover) {
            (Some(d), Some(nd)) if d == nd => anyhow::bail!(
                "config file {}: `discover = {d}` and `no-discover = {nd}` contradict each \
                 other; keep one of them",
                path.display()
            ),
            (Some(d), _) => Some(d),
            (None, nd) => nd.map(|nd| !nd),
        };
        self.miner_address = self.miner_address.or(file.miner_address);
        self.mine_threads = self.mine_threads.or(file.mine_threads);
        self.block_time = self.block_time.or(file.block_time);
        self.log_format = self.log_format.or(file.log_format);
        self.mempool_max_txs = self.mempool_max_txs.or(file.mempool_max_txs);
        Ok(self)
    }

    /// A boolean setting from its flags (`yes` wins when both are given: clap keeps only the
    /// last of a pair that override each other), else the environment, else the file.
    fn boolean(
        yes: bool,
        no: bool,
        env: &dyn Fn(&str) -> Option<String>,
        vars: &[(&str, bool)],
        file: Option<bool>,
    ) -> anyhow::Result<Option<bool>> {
        if yes || no {
            return Ok(Some(yes));
        }
        for (var, negated) in vars {
            let Some(text) = env(var).filter(|t| !t.trim().is_empty()) else { continue };
            let value = parse_bool(&text).ok_or_else(|| {
                anyhow::anyhow!(
                    "{var} must be true or false (or 1/0, yes/no, on/off), got {text:?}"
                )
            })?;
            return Ok(Some(value != *negated));
        }
        Ok(file)
    }

    /// Resolves defaults and validates every value, reading the boolean settings'
    /// environment variables (`EMBER_MINE`, `EMBER_DISCOVER`, `EMBER_NO_DISCOVER`) from the
    /// process environment.
    pub fn resolve(self) -> anyhow::Result<NodeConfig> {
        self.resolve_with_env(&|var| std::env::var(var).ok())
    }

    /// [`RunArgs::resolve`] with the environment given as a function, for tests. The other
    /// settings' variables are read by clap when parsing and are already in `self`.
    pub fn resolve_with_env(
        self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<NodeConfig> {
        let args = self.merge_file()?;
        let mine =
            Self::boolean(args.mine, args.no_mine, env, &[("EMBER_MINE", false)], args.file_mine)?
                .unwrap_or(false);
        let automine = Self::boolean(
            args.automine,
            false,
            env,
            &[("EMBER_AUTOMINE", false)],
            args.file_automine,
        )?
        .unwrap_or(false);
        let discover = Self::boolean(
            args.discover,
            args.no_discover,
            env,
            &[("EMBER_DISCOVER", false), ("EMBER_NO_DISCOVER", true)],
            args.file_discover,
        )?
        .unwrap_or(true);
        let params = load_params(args.network.map(Network::from), args.genesis.as_deref())?;
        let network = params.network;
        let miner_address = match &args.miner_address {
            Some(text) => Some(
                Address::parse(text, params.hrp())
                    .map_err(|e| anyhow::anyhow!("--miner-address: {e}"))?,
            ),
            None => None,
        };
        let block_time = args.block_time.unwrap_or(2.0);
        if !(block_time.is_finite() && block_time > 0.0 && block_time <= 3600.0) {
            anyhow::bail!("--block-time must be between 0 and 3600 seconds, got {block_time}");
        }
        if automine && network != Network::Devnet {
            anyhow::bail!(
                "--automine is for devnet only (blocks there need no real proof of work); \
                 use --mine on {}",
                network.name()
            );
        }
        if args.insecure_p2p_plaintext && network != Network::Devnet {
            anyhow::bail!(
                "--insecure-p2p-plaintext is for devnet benchmarks only, not for {}",
                network.name()
            );
        }
        let mine_threads = args.mine_threads.unwrap_or(1);
        let mut mempool = MempoolLimits::default();
        if let Some(n) = args.mempool_max_txs {
            if !(1_000..=1_000_000).contains(&n) {
                anyhow::bail!("--mempool-max-txs must be between 1000 and 1000000, got {n}");
            }
            mempool.max_count = n;
        }
        let peers = dedup_peers(&args.peers)?;
        if (mine || automine) && miner_address.is_none() && params.allocations().is_empty() {
            anyhow::bail!(
                "--mine and --automine need --miner-address on a network whose genesis funds \
                 no account (mined blocks pay that address)"
            );
        }
        let external_addr = args.external_addr.as_deref().map(parse_external).transpose()?;
        let rpc_token = args.rpc_token_file.as_deref().map(read_token_file).transpose()?;
        let rpc_addr =
            args.rpc_addr.as_deref().map(|a| listen_addr("--rpc-addr", a)).transpose()?;
        let p2p_addr =
            args.p2p_addr.as_deref().map(|a| listen_addr("--p2p-addr", a)).transpose()?;
        let data_dir = args.data_dir.unwrap_or_else(|| default_data_dir(network));
        let defaults = NodeConfig::new(Arc::new(params), data_dir);
        Ok(NodeConfig {
            rpc_addr: rpc_addr.unwrap_or(defaults.rpc_addr),
            p2p_addr: p2p_addr.unwrap_or(defaults.p2p_addr),
            peers,
            external_addr,
            rpc_token,
            block_notify: args.block_notify.filter(|c| !c.trim().is_empty()),
            outbound: args.outbound.unwrap_or(defaults.outbound),
            max_inbound: args.max_inbound.unwrap_or(defaults.max_inbound),
            discover,
            mine: mine && mine_threads > 0,
            automine,
            miner_address,
            mine_threads,
            block_time: Duration::from_secs_f64(block_time),
            log_format: args.log_format.unwrap_or_default(),
            mempool,
            p2p_plaintext: args.insecure_p2p_plaintext,
            ..defaults
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_is_merged_under_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "rpc-addr = \"127.0.0.1:1234\"\nmine-threads = 3\npeers = [\"127.0.0.1:9\"]\n",
        )
        .unwrap();
        let args = RunArgs { config: Some(path), mine_threads: Some(2), ..Default::default() };
        let cfg = args.resolve().unwrap();
        assert_eq!(cfg.rpc_addr.port(), 1234);
        assert_eq!(cfg.mine_threads, 2, "flags win over the file");
        assert_eq!(cfg.peers, vec!["127.0.0.1:9".to_string()]);
    }

    #[test]
    fn peers_tokens_and_external_addresses_are_checked_when_resolving() {
        let dir = tempfile::tempdir().unwrap();
        let resolve = |f: &dyn Fn(&mut RunArgs)| {
            let mut args = RunArgs::default();
            f(&mut args);
            args.resolve_with_env(&|_| None)
        };
        let err = resolve(&|a| a.peers = vec!["127.0.0.1:9".into(), "foo".into()]).unwrap_err();
        assert!(err.to_string().starts_with("--peer"), "{err}");
        let cfg = resolve(&|a| a.rpc_addr = Some("localhost:0".into())).unwrap();
        assert!(cfg.rpc_addr.ip().is_loopback() && cfg.rpc_addr.port() == 0);
        let err = resolve(&|a| a.p2p_addr = Some("127.0.0.1".into())).unwrap_err();
        assert!(err.to_string().contains("--p2p-addr"), "{err}");
        let cfg = resolve(&|a| a.peers = vec!["node1.ember:9545".into()]).unwrap();
        assert_eq!(cfg.peers, vec!["node1.ember:9545".to_string()]);

        let token = dir.path().join("token");
        std::fs::write(&token, "\n  abcdefghijklmnop  \n").unwrap();
        let cfg = resolve(&|a| a.rpc_token_file = Some(token.clone())).unwrap();
        assert_eq!(cfg.rpc_token.as_deref(), Some("abcdefghijklmnop"));
        std::fs::write(&token, "abc def ghi jkl mno").unwrap();
        assert!(resolve(&|a| a.rpc_token_file = Some(token.clone())).is_err());

        let cfg = resolve(&|a| a.external_addr = Some("203.0.113.7:9545".into())).unwrap();
        assert_eq!(cfg.external_addr, Some("203.0.113.7:9545".parse().unwrap()));
        let cfg = resolve(&|a| a.external_addr = Some("localhost:9545".into())).unwrap();
        assert!(cfg.external_addr.unwrap().ip().is_loopback());
        for bad in ["0.0.0.0:9545", "nowhere", "host:0"] {
            assert!(resolve(&|a| a.external_addr = Some(bad.into())).is_err(), "{bad}");
        }
    }

    /// The precedence table for booleans: a flag (either spelling) beats the environment,
    /// which beats the file, which beats the default; `false` anywhere is as strong as `true`.
    #[test]
    fn boolean_precedence_table() {
        // (flag: None / Some(true) = --mine / Some(false) = --no-mine, EMBER_MINE, file, expected)
        type Row = (Option<bool>, Option<&'static str>, Option<bool>, bool);
        let table: &[Row] = &[
            (None, None, None, false),
            (None, None, Some(true), true),
            (None, None, Some(false), false),
            (None, Some("false"), Some(true), false),
            (None, Some("0"), Some(true), false),
            (None, Some("true"), Some(false), true),
            (None, Some("yes"), None, true),
            (None, Some(""), Some(true), true),
            (Some(false), None, Some(true), false),
            (Some(false), Some("true"), Some(true), false),
            (Some(true), Some("false"), Some(false), true),
            (Some(true), None, None, true),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (i, &(flag, env, file, expected)) in table.iter().enumerate() {
            let config = file.map(|f| {
                let path = dir.path().join(format!("mine{i}.toml"));
                std::fs::write(&path, format!("mine = {f}\n")).unwrap();
                path
            });
            let args = RunArgs {
                mine: flag == Some(true),
                no_mine: flag == Some(false),
                config,
                ..Default::default()
            };
            let lookup =
                move |var: &str| (var == "EMBER_MINE").then(|| env.map(String::from)).flatten();
            let cfg = args.resolve_with_env(&lookup).unwrap();
            assert_eq!(cfg.mine, expected, "row {i}: flag {flag:?}, env {env:?}, file {file:?}");
        }
    }

    /// The same for discovery, with both spellings in the environment and the file.
    #[test]
    fn discover_precedence_table() {
        // (flag: Some(true) = --discover / Some(false) = --no-discover, env var and value,
        // file line, expected)
        type Row = (Option<bool>, Option<(&'static str, &'static str)>, Option<&'static str>, bool);
        let table: &[Row] = &[
            (None, None, None, true),
            (None, None, Some("no-discover = true"), false),
            (None, None, Some("discover = false"), false),
            (None, Some(("EMBER_DISCOVER", "true")), Some("no-discover = true"), true),
            (None, Some(("EMBER_NO_DISCOVER", "false")), Some("discover = false"), true),
            (None, Some(("EMBER_NO_DISCOVER", "true")), Some("discover = true"), false),
            (Some(true), Some(("EMBER_NO_DISCOVER", "true")), Some("discover = false"), true),
            (Some(false), Some(("EMBER_DISCOVER", "true")), Some("discover = true"), false),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (i, &(flag, env, file, expected)) in table.iter().enumerate() {
            let config = file.map(|line| {
                let path = dir.path().join(format!("discover{i}.toml"));
                std::fs::write(&path, format!("{line}\n")).unwrap();
                path
            });
            let args = RunArgs {
                discover: flag == Some(true),
                no_discover: flag == Some(false),
                config,
                ..Default::default()
            };
            let lookup = move |var: &str| {
                env.and_then(|(name, value)| (name == var).then(|| value.to_string()))
            };
            let cfg = args.resolve_with_env(&lookup).unwrap();
            assert_eq!(
                cfg.discover, expected,
                "row {i}: flag {flag:?}, env {env:?}, file {file:?}"
            );
        }
    }

    #[test]
    fn bad_boolean_settings_are_refused() {
        let err = RunArgs::default()
            .resolve_with_env(&|var| (var == "EMBER_MINE").then(|| "maybe".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("EMBER_MINE must be true or false"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("both.toml");
        std::fs::write(&path, "discover = true\nno-discover = true\n").unwrap();
        let err = RunArgs { config: Some(path), ..Default::default() }
            .resolve_with_env(&|_| None)
            .unwrap_err();
        assert!(err.to_string().contains("contradict"), "{err}");
    }

    /// `--mine` and `--no-mine` (and the discover pair) parse, the last one given wins, and
    /// the flags are independent of the file keys.
    #[test]
    fn boolean_flags_parse_and_the_last_wins() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("ember-node").chain(args.iter().copied()))
                .unwrap()
                .run
        };
        let run = parse(&["--mine", "--no-mine"]);
        assert!(!run.mine && run.no_mine);
        let run = parse(&["--no-mine", "--mine", "--no-discover"]);
        assert!(run.mine && !run.no_mine && run.no_discover);
        let run = parse(&["--no-discover", "--discover"]);
        assert!(run.discover && !run.no_discover);
        assert!(run.file_mine.is_none() && run.file_discover.is_none());
    }

    #[test]
    fn corrupt_config_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "rpc-addr = 5\n").unwrap();
        let err =
            RunArgs { config: Some(path.clone()), ..Default::default() }.resolve().unwrap_err();
        assert!(err.to_string().contains("bad.toml"), "{err}");
        std::fs::write(&path, "no-such-key = true\n").unwrap();
        assert!(RunArgs { config: Some(path), ..Default::default() }.resolve().is_err());
    }

    #[test]
    fn plaintext_peers_are_refused_outside_devnet() {
        let args = RunArgs {
            network: Some(NetworkArg::Testnet),
            insecure_p2p_plaintext: true,
            ..Default::default()
        };
        let err = args.resolve().unwrap_err();
        assert!(err.to_string().contains("devnet benchmarks only"), "{err}");
        let dev = RunArgs { insecure_p2p_plaintext: true, ..Default::default() };
        assert!(dev.resolve().unwrap().p2p_plaintext);
        assert!(!RunArgs::default().resolve().unwrap().p2p_plaintext);
    }

    /// A testnet genesis spec in a file.
    fn testnet_spec(dir: &Path) -> PathBuf {
        let key = ember_core::Keypair::from_secret_bytes([1; 32]);
        let spec = GenesisSpec {
            network: Network::Testnet,
            time_ms: 1,
            note: "config test".into(),
            allocations: vec![ember_core::params::AllocationSpec {
                address: key.address().to_bech32("etest"),
                amount: "5".into(),
            }],
        };
        let path = dir.join("genesis.json");
        std::fs::write(&path, spec.to_json()).unwrap();
        path
    }

    #[test]
    fn the_genesis_file_names_the_network() {
        let dir = tempfile::tempdir().unwrap();
        let path = testnet_spec(dir.path());
        let cfg = RunArgs { genesis: Some(path.clone()), ..Default::default() }.resolve().unwrap();
        assert_eq!(cfg.params.network, Network::Testnet);
        assert!(cfg.data_dir.ends_with("ember/testnet"), "{}", cfg.data_dir.display());
        let err = RunArgs {
            genesis: Some(path),
            network: Some(NetworkArg::Devnet),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(
            err.to_string().contains("is for testnet, but --network devnet was given"),
            "{err}"
        );
    }

    #[test]
    fn another_genesis_is_answered_with_the_flag_that_opens_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = testnet_spec(dir.path());
        let id = load_params(None, Some(&path)).unwrap().genesis_id();
        let hint = other_genesis_hint(&dir.path().join("node1"), "testnet", id);
        assert!(hint.contains(&format!("--genesis {}", path.display())), "{hint}");
        let elsewhere = tempfile::tempdir().unwrap();
        let hint = other_genesis_hint(elsewhere.path(), "testnet", id);
        assert!(hint.contains("--genesis FILE") && hint.contains("another --data-dir"), "{hint}");
        let hint = other_genesis_hint(dir.path(), "devnet", ChainParams::devnet().genesis_id());
        assert!(hint.contains("--network devnet"), "{hint}");
    }

    #[test]
    fn wrong_network_miner_address_is_refused() {
        let addr = ember_core::Keypair::from_secret_bytes([1; 32]).address().to_bech32("etest");
        let err =
            RunArgs { miner_address: Some(addr), ..Default::default() }.resolve().unwrap_err();
        assert!(err.to_string().contains("--miner-address"));
    }

    #[test]
    fn repeated_peers_are_kept_once_and_conflicting_ids_refused() {
        let id = "11".repeat(32);
        let peers = |p: &[&str]| {
            RunArgs { peers: p.iter().map(|s| s.to_string()).collect(), ..Default::default() }
                .resolve_with_env(&|_| None)
                .map(|c| c.peers)
        };
        assert_eq!(peers(&["a:1", "a:1"]).unwrap(), vec!["a:1"]);
        let pinned = format!("{id}@a:1");
        assert_eq!(peers(&["a:1", &pinned]).unwrap(), vec![pinned.clone()]);
        let other = format!("{}@a:1", "22".repeat(32));
        assert!(peers(&[&pinned, &other]).unwrap_err().to_string().contains("two node ids"));
    }
}
