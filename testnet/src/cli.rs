//! `ember-testnet`'s command line: the commands, their options and their help.

use clap::{Args, Parser, Subcommand};
use ember_testnet::Topology;
use std::path::PathBuf;

pub(crate) const EXAMPLES: &str = "Examples:
  ember-testnet up                          # 4 nodes in a ring, node 0 mines; Ctrl-C stops
  ember-testnet up --detach --nodes 5 --topology line --miners 0,4
  ember-testnet status
  ember-testnet mine 0 3                    # 3 instant blocks on node 0
  ember-testnet partition 0,1/2,3,4         # cut every link between the two groups
  ember-testnet heal
  ember-testnet latency 1 2 300             # 300 ms each way on the link 1-2
  ember-testnet kill 3 && ember-testnet start 3
  ember-testnet logs 3 --follow
  ember-testnet down                        # stop every node and the supervisor
  ember-testnet export compose /tmp/net     # the same network for docker-compose (or k8s);
  ember-testnet --dir /tmp/net status       #   --dir then attaches to its containers

Every command takes --dir DIR (default .testnet; bench: a temp dir) to pick the testnet;
on a directory written by `export compose`, status, kill, start, stop, restart, partition,
heal, latency, loss, mine, logs, dashboard and down act on its containers through Docker.
Exit codes: 0 done, 1 failed (soak: also an invariant broken), 2 bad command line.";

#[derive(Parser)]
#[command(
    name = "ember-testnet",
    version,
    about = "Start, watch and break a local multi-node Ember network on loopback.",
    long_about = "Start, watch and break a local multi-node Ember network on loopback.\n\n\
                  `up` starts N real ember-node processes with a fresh devnet genesis, links \
                  them through small loopback proxies (so links can be cut, slowed and made \
                  lossy without root) and serves a live dashboard. The other commands act on \
                  the testnet running in --dir.",
    after_help = EXAMPLES
)]
pub(crate) struct Cli {
    /// Directory of the testnet: genesis, node data dirs and logs, testnet.json [default:
    /// .testnet; for bench, a temp dir removed at the end, kept when the run fails].
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Cmd,
}

/// The network's shape, the same for `up` and `export`.
#[derive(Args, Clone)]
pub(crate) struct Shape {
    /// Number of nodes (1 to 50).
    #[arg(long, default_value_t = 4)]
    pub(crate) nodes: usize,
    /// How the nodes are linked (random: a random tree plus extra links; in an export each
    /// link is dialed by its first node and discovery stays on).
    #[arg(long, value_enum, default_value = "ring")]
    pub(crate) topology: Topology,
    /// Comma-separated indices of the nodes that mine continuously ("" = none).
    #[arg(long, default_value = "0")]
    pub(crate) miners: String,
    /// Mean seconds between blocks of each miner.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) block_time: f64,
}

#[derive(Args, Clone)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    pub(crate) shape: Shape,
    /// RPC of node i on BASE+i, P2P on BASE+100+i, dashboard on BASE+200 (0 = ports from
    /// the OS).
    #[arg(long, default_value_t = 8545)]
    pub(crate) base_port: u16,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Start a fresh network (replacing what is in --dir) and show it live until Ctrl-C.
    #[command(after_help = "Examples:
  ember-testnet up
  ember-testnet up --nodes 6 --topology mesh --miners 0,3 --block-time 1
  ember-testnet up --detach --base-port 0     # in the background, ports from the OS
  ember-testnet up --dir /tmp/tn2 --base-port 9000")]
    Up {
        #[command(flatten)]
        up: UpArgs,
        /// Run the supervisor in the background: print the table and exit once the network
        /// is up. `ember-testnet down` stops it.
        #[arg(long)]
        detach: bool,
    },
    /// (internal) The background supervisor started by `up --detach`.
    #[command(hide = true)]
    Supervise {
        #[command(flatten)]
        up: UpArgs,
    },
    /// Show every node's height, tip, peers and mempool, and the links.
    #[command(after_help = "Examples:\n  ember-testnet status\n  \
                        ember-testnet status --json | jq '.nodes[].height'")]
    Status {
        /// Print the dashboard's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop every node and the supervisor; nothing is left running (data and logs stay).
    /// On a compose export (--dir holding engine.json): its containers, networks and volumes
    /// are removed (the chain data with them).
    #[command(
        after_help = "Examples:\n  ember-testnet down\n  ember-testnet down --dir /tmp/tn2\n  \
                        ember-testnet --dir /tmp/net down      # a compose export"
    )]
    Down,
    /// Stop node I cleanly (SIGTERM).
    #[command(after_help = "Examples:\n  ember-testnet stop 2")]
    Stop {
        /// Node index.
        #[arg(value_name = "I")]
        node: usize,
    },
    /// Start stopped node I again with its data dir, addresses and links.
    #[command(after_help = "Examples:\n  ember-testnet kill 2 && ember-testnet start 2")]
    Start {
        /// Node index.
        #[arg(value_name = "I")]
        node: usize,
    },
    /// Stop node I and start it again.
    #[command(after_help = "Examples:\n  ember-testnet restart 2")]
    Restart {
        /// Node index.
        #[arg(value_name = "I")]
        node: usize,
    },
    /// Kill node I with SIGKILL (no clean shutdown), to try crash recovery.
    #[command(after_help = "Examples:\n  ember-testnet kill 2 && ember-testnet start 2")]
    Kill {
        /// Node index.
        #[arg(value_name = "I")]
        node: usize,
    },
    /// Cut every link between nodes of different groups, e.g. 0,1/2,3 (every node in one
    /// group; replaces an earlier partition).
    #[command(after_help = "Examples:\n  ember-testnet partition 0,1/2,3\n  \
                        ember-testnet partition 0/1,2,3,4\n  ember-testnet heal")]
    Partition {
        /// Groups of node indices separated by '/', e.g. 0,1/2,3.
        groups: String,
    },
    /// Undo any partition (latency and loss stay).
    #[command(after_help = "Examples:\n  ember-testnet heal")]
    Heal,
    /// Delay every chunk on the link between I and J by MS milliseconds, both ways (0 = off).
    #[command(
        after_help = "Examples:\n  ember-testnet latency 0 1 250\n  ember-testnet latency 0 1 0"
    )]
    Latency {
        /// Node at one end of the link (index, as in `status`).
        #[arg(value_name = "I")]
        a: usize,
        /// Node at the other end; the two must be linked (`status` lists the links).
        #[arg(value_name = "J")]
        b: usize,
        /// Milliseconds, each way.
        #[arg(value_name = "MS")]
        ms: u64,
    },
    /// Make PCT percent of chunks on the link between I and J late by a TCP retransmission
    /// timeout (~200 ms): on TCP, loss shows up as delay, never as missing bytes.
    #[command(after_help = "Examples:\n  ember-testnet loss 2 3 20\n  ember-testnet loss 2 3 0")]
    Loss {
        /// Node at one end of the link (index, as in `status`).
        #[arg(value_name = "I")]
        a: usize,
        /// Node at the other end; the two must be linked (`status` lists the links).
        #[arg(value_name = "J")]
        b: usize,
        /// Percentage of chunks, 0 to 100.
        #[arg(value_name = "PCT")]
        pct: f64,
    },
    /// Mine N devnet blocks at once on node I.
    #[command(after_help = "Examples:\n  ember-testnet mine 0 5")]
    Mine {
        /// Node index.
        #[arg(value_name = "I")]
        node: usize,
        /// Number of blocks (1 to 1000).
        #[arg(value_name = "N")]
        count: u64,
    },
    /// Measure the network on this machine: block and payment propagation, throughput, sync
    /// and memory of real nodes, each against the machine's own limits (see
    /// docs/PERFORMANCE.md). Uses a temp dir unless --dir is given.
    #[command(after_help = "Examples:
  cargo build --release --workspace --all-targets && target/release/ember-testnet bench
  ember-testnet bench --quick               # under 3 minutes
  ember-testnet bench --quick --json > bench.json")]
    Bench {
        /// Smaller sizes and a 10 s throughput window (under 3 minutes on 2 cores).
        #[arg(long)]
        quick: bool,
        /// Print the report as JSON (progress still goes to stderr).
        #[arg(long)]
        json: bool,
        /// Nodes in the line for the propagation figures (5 to 50; the 5-node figures use
        /// its first 5).
        #[arg(long, default_value_t = 10)]
        nodes: usize,
    },
    /// Print node I's log.
    #[command(
        after_help = "Examples:\n  ember-testnet logs 0\n  ember-testnet logs 0 --follow\n  \
                        ember-testnet logs 2 --lines 50"
    )]
    Logs {
        /// Node index.
        #[arg(value_name = "I")]
        node: usize,
        /// Keep printing new lines until Ctrl-C.
        #[arg(long, short)]
        follow: bool,
        /// Only the last N lines (0 = all).
        #[arg(long, short = 'n', default_value_t = 0)]
        lines: usize,
    },
    /// Run a fresh 5-node network with miners and random payments while injecting faults
    /// (kill -9, partitions, latency, loss, a hostile peer), checking that no coin is created
    /// or lost, that every node converges, and that settled payments stay settled.
    /// Exit code 1 when an invariant is violated (the report says which, and the seed).
    #[command(after_help = "Examples:\n  ember-testnet soak --minutes 10\n  \
                        ember-testnet soak --minutes 1 --seed 42 --dir /tmp/soak")]
    Soak {
        /// How long to inject faults (healing and final checks come after).
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// Seed of every random choice [default: from the clock, printed].
        #[arg(long)]
        seed: Option<u64>,
        /// Number of nodes (at least 2).
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the network as files for Docker Compose or Kubernetes, which then run it
    /// (nothing is started here). `--dir DIR` of the other commands then attaches to a
    /// compose export's containers.
    #[command(after_help = "Examples:
  ember-testnet export compose /tmp/net --nodes 5 --topology line --miners 0,4
  docker-compose -p ember -f /tmp/net/compose.yaml up -d
  ember-testnet --dir /tmp/net status
  ember-testnet export k8s /tmp/k8s --nodes 3 --image registry.example/ember:0.1")]
    Export {
        #[command(subcommand)]
        target: ExportTarget,
    },
    /// Serve the live dashboard: for a compose export (--dir holding engine.json) here, in
    /// the foreground until Ctrl-C; for a loopback testnet, print its supervisor's URL.
    #[command(
        visible_alias = "watch",
        after_help = "Examples:\n  ember-testnet --dir /tmp/net dashboard\n  \
                      ember-testnet --dir /tmp/net watch --port 9000\n  ember-testnet dashboard"
    )]
    Dashboard {
        /// Loopback port of the page [default: the export's --base-port + 200, or one from
        /// the OS when that is taken or the RPC is not published].
        #[arg(long)]
        port: Option<u16>,
    },
}

/// What `export` writes, besides DIR.
#[derive(Args, Clone)]
pub(crate) struct ExportArgs {
    /// Directory to write into (created, then made private: mode 0700).
    #[arg(value_name = "DIR")]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) shape: Shape,
    /// Image every node runs (`make image` builds ember:local).
    #[arg(long, default_value = "ember:local")]
    pub(crate) image: String,
    /// Compose project name, or prefix of every Kubernetes object (lowercase, digits, '-').
    #[arg(long, default_value = "ember")]
    pub(crate) project: String,
    /// Replace an earlier export in DIR (a compose one's containers, networks and volumes
    /// are taken down first), or write into a directory that is not empty.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Subcommand)]
pub(crate) enum ExportTarget {
    /// DIR/compose.yaml (docker-compose 1.29 or `docker compose`), DIR/engine.json for the
    /// commands that attach, the genesis and the RPC admin token.
    #[command(after_help = "Examples:
  ember-testnet export compose /tmp/net
  ember-testnet export compose /tmp/net --nodes 6 --topology mesh --miners 0,3 --base-port 0
  docker-compose -p ember -f /tmp/net/compose.yaml up -d
  ember-testnet --dir /tmp/net status           # also partition, heal, kill, start, stop,
  ember-testnet --dir /tmp/net dashboard        #   restart, latency, loss, mine, logs
  ember-testnet --dir /tmp/net down             # containers, networks and volumes

Each node is a service nodeI (container <project>-nodeI, volume <project>-nodeI-data) on
the bridge network <project>; peers are dialed by service name.")]
    Compose {
        #[command(flatten)]
        args: ExportArgs,
        /// Node i's RPC is published on 127.0.0.1:BASE+i (0 = not published: the commands
        /// then reach the nodes at their container IPs).
        #[arg(long, default_value_t = 18545)]
        base_port: u16,
    },
    /// DIR/ember.yaml: ConfigMap (genesis), Secret (token), headless Service and a
    /// StatefulSet of N pods; the genesis and the token as files too.
    #[command(after_help = "Examples:
  ember-testnet export k8s /tmp/k8s
  ember-testnet export k8s /tmp/k8s --nodes 5 --topology star --project ember-ci
  kubectl apply -f /tmp/k8s/ember.yaml
  kubectl port-forward pod/ember-0 8545:8545

Simplifications, as a StatefulSet has one pod template: each pod takes its peers (by DNS,
<project>-J.<project>:9545) and its miner flag from a bash `case` on its ordinal, written
from --topology and --miners; pods added later by `kubectl scale` dial pod 0 and do not
mine. Pods start in parallel (a node is ready only once it has a peer). RPC is not
published: use `kubectl port-forward`. ember-testnet does not attach to Kubernetes:
partitions and latency are yours to make there.")]
    K8s {
        #[command(flatten)]
        args: ExportArgs,
    },
}
