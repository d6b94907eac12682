//! `ember-testnet export`: the same network `up` starts, written out for the engines people
//! already run — a Docker Compose file or Kubernetes manifests — which then run it. Ember
//! writes files here and starts nothing.
//!
//! Both exports write into DIR a fresh devnet genesis (`genesis.json`, the dev accounts
//! prefunded, as `up` writes it) and a random RPC admin token (`rpc_token`, 64 hex digits)
//! that every node accepts (`EMBER_RPC_TOKEN_FILE`). The compose export also writes
//! `engine.json` ([`crate::engine::EngineSpec`]), through which `ember-testnet --dir DIR
//! status|partition|kill|...` attach to the containers.
//!
//! The YAML is written by hand (no YAML library in the dependency tree): every string value
//! is a JSON string, which is also a valid YAML double-quoted scalar, so no value can break
//! the document's structure.

use crate::engine::{EngineNode, EngineSpec, LinkSpec, ENGINE_FILE, P2P_PORT, RPC_PORT};
use crate::network::{write_genesis, Topology};
use anyhow::{bail, Context, Result};
use rand::RngCore;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The compose file's name inside DIR.
pub const COMPOSE_FILE: &str = "compose.yaml";
/// The Kubernetes manifests' name inside DIR.
pub const K8S_FILE: &str = "ember.yaml";
/// The RPC admin token's file name inside DIR.
pub const TOKEN_FILE: &str = "rpc_token";

/// What to export: the network `up` would start, and how the engine should run it.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub nodes: usize,
    pub topology: Topology,
    /// Indices of the nodes that mine continuously.
    pub miners: Vec<usize>,
    pub block_time_secs: f64,
    /// The Ember image every node runs (`make image` builds `ember:local`).
    pub image: String,
    /// Compose project name, or prefix of every Kubernetes object's name.
    pub project: String,
    /// Compose only: node i's RPC is published on 127.0.0.1:base_port+i (0 = not published).
    pub base_port: u16,
    /// Replace an earlier export in the same DIR.
    pub force: bool,
}

impl ExportOptions {
    /// `nodes` nodes in a ring, node 0 mining, image `ember:local`, project `ember`, RPC
    /// ports from 18545.
    pub fn new(nodes: usize) -> ExportOptions {
        ExportOptions {
            nodes,
            topology: Topology::Ring,
            miners: vec![0],
            block_time_secs: 2.0,
            image: "ember:local".into(),
            project: "ember".into(),
            base_port: 18545,
            force: false,
        }
    }

    /// Checks sizes, indices, names and ports; nothing is written.
    pub fn validate(&self) -> Result<()> {
        if self.nodes == 0 || self.nodes > 50 {
            bail!("--nodes must be between 1 and 50");
        }
        if let Some(m) = self.miners.iter().find(|m| **m >= self.nodes) {
            bail!("miner index {m} is not a node (there are {} nodes: 0..{})", self.nodes, {
                self.nodes - 1
            });
        }
        if !(self.block_time_secs > 0.0 && self.block_time_secs.is_finite()) {
            bail!("--block-time must be a positive number of seconds");
        }
        // A DNS label (Kubernetes object names, pod host names) that is also a valid compose
        // project name; short enough for `<project>-<ordinal>` and the StatefulSet's
        // `<project>-<revision hash>` label values (63 characters at most).
        let p = &self.project;
        let ok = (1..=40).contains(&p.len())
            && p.starts_with(|c: char| c.is_ascii_lowercase())
            && !p.ends_with('-')
            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            bail!(
                "--project {p:?} is not a usable name: 1 to 40 lowercase letters, digits and \
                 '-', starting with a letter and not ending with '-' (e.g. ember or ember-ci)"
            );
        }
        if self.image.is_empty() || self.image.contains(char::is_whitespace) {
            bail!("--image {:?} is not an image reference (e.g. ember:local)", self.image);
        }
        if self.base_port != 0 && usize::from(self.base_port) + self.nodes > 65536 {
            bail!("--base-port {} leaves no room for {} nodes", self.base_port, self.nodes);
        }
        Ok(())
    }
}

/// The files an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The compose file or the Kubernetes manifests.
    pub manifest: PathBuf,
    pub genesis: PathBuf,
    pub token_file: PathBuf,
    /// The links of the topology (`from` dials `to`), drawn once for `random`.
    pub links: Vec<(usize, usize)>,
}

/// Writes `DIR/compose.yaml`, the genesis, the token and `DIR/engine.json`.
pub fn export_compose(opts: &ExportOptions, dir: &Path) -> Result<Exported> {
    // Another export's containers under the same names would be taken over by this one's
    // `up` (and its `down` would remove them).
    let own = crate::engine::Engine::find(dir)
        .ok()
        .flatten()
        .is_some_and(|e| e.spec.project == opts.project);
    let first = format!("{}-node0", opts.project);
    let taken = std::process::Command::new("docker")
        .args(["inspect", "--type", "container", &first])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if taken && !own {
        bail!(
            "a container {first} already exists (another export with --project {}?): pick \
             another --project, or take that network down first",
            opts.project
        );
    }
    let out = prepare(opts, dir, COMPOSE_FILE)?;
    write(&out.manifest, &compose_yaml(opts, &out.links))?;
    let spec = EngineSpec {
        engine: "compose".into(),
        project: opts.project.clone(),
        compose_file: out.manifest.clone(),
        network: opts.project.clone(),
        image: opts.image.clone(),
        topology: opts.topology.name().into(),
        block_time_secs: opts.block_time_secs,
        base_port: opts.base_port,
        nodes: (0..opts.nodes)
            .map(|i| EngineNode {
                index: i,
                service: format!("node{i}"),
                container: format!("{}-node{i}", opts.project),
                volume: format!("{}-node{i}-data", opts.project),
                rpc_url: (opts.base_port != 0)
                    .then(|| format!("http://127.0.0.1:{}", usize::from(opts.base_port) + i)),
                miner: opts.miners.contains(&i),
            })
            .collect(),
        links: out.links.iter().map(|&(from, to)| LinkSpec { from, to }).collect(),
        token_file: out.token_file.clone(),
        genesis: out.genesis.clone(),
    };
    spec.save(dir)?;
    Ok(out)
}

/// Writes `DIR/ember.yaml` (Kubernetes manifests), the genesis and the token.
pub fn export_k8s(opts: &ExportOptions, dir: &Path) -> Result<Exported> {
    let out = prepare(opts, dir, K8S_FILE)?;
    let genesis_json = std::fs::read_to_string(&out.genesis)
        .with_context(|| format!("cannot read back {}", out.genesis.display()))?;
    let token = std::fs::read_to_string(&out.token_file)?;
    write(&out.manifest, &k8s_yaml(opts, &out.links, &genesis_json, token.trim()))?;
    Ok(out)
}

/// "4 nodes, ring, miners 0"
fn summary(opts: &ExportOptions) -> String {
    format!("{} nodes, {}, miners {}", opts.nodes, opts.topology.name(), miners_text(opts))
}

/// What `export compose` prints: the files, and the commands to run next.
pub fn compose_next_steps(
    opts: &ExportOptions,
    out: &Exported,
    dir: &Path,
    image_here: bool,
) -> String {
    let d = dir.display();
    let mut t = format!(
        "wrote {} ({}), genesis.json, rpc_token and engine.json\n",
        out.manifest.display(),
        summary(opts)
    );
    if !image_here {
        let how = if opts.image == "ember:local" {
            "build it with `make image`"
        } else {
            "build or load it"
        };
        let _ = write!(t, "\nnote: the image {} is not here yet: {how}.\n", opts.image);
    }
    let _ = write!(
        t,
        "\nStart it:\n  docker-compose -p {} -f {} up -d\n\nThen watch it and break it:\n  \
         ember-testnet --dir {d} status\n  ember-testnet --dir {d} dashboard\n",
        opts.project,
        out.manifest.display()
    );
    if opts.nodes >= 2 {
        let rest: Vec<String> = (1..opts.nodes).map(|i| i.to_string()).collect();
        let _ = write!(
            t,
            "  ember-testnet --dir {d} partition 0/{}\n  ember-testnet --dir {d} heal\n",
            rest.join(",")
        );
    }
    let _ = writeln!(t, "  ember-testnet --dir {d} down");
    if opts.base_port != 0 {
        let _ = write!(
            t,
            "\nNode i's RPC: http://127.0.0.1:{}+i (admin token in {})\n",
            opts.base_port,
            out.token_file.display()
        );
    }
    t
}

/// What `export k8s` prints: the file, and the kubectl commands to run next.
pub fn k8s_next_steps(opts: &ExportOptions, out: &Exported) -> String {
    let m = out.manifest.display();
    let p = &opts.project;
    format!(
        "wrote {m} ({}), genesis.json and rpc_token\n\n\
         Run it (the cluster must be able to pull {}):\n  \
         kubectl apply -f {m}\n  \
         kubectl get pods -l app.kubernetes.io/instance={p} -w\n  \
         kubectl port-forward pod/{p}-0 8545:8545\n\
         The head of {m} says what is simplified.\n",
        summary(opts),
        opts.image
    )
}

/// Validates, makes DIR (mode 0700), writes the genesis and the token; returns the paths
/// (the manifest's, `dir/manifest`, still to be written) and the topology's links.
fn prepare(opts: &ExportOptions, dir: &Path, manifest: &str) -> Result<Exported> {
    opts.validate()?;
    if dir.join(crate::state::STATE_FILE).exists() {
        bail!(
            "{} holds a loopback testnet (testnet.json); export into another directory",
            dir.display()
        );
    }
    let earlier = [ENGINE_FILE, COMPOSE_FILE, K8S_FILE].iter().find(|f| dir.join(f).exists());
    if let (Some(f), false) = (earlier, opts.force) {
        bail!(
            "{} already holds an export ({f}); its containers would not match a new genesis: \
             pass --force to take them down and replace it, or pick another directory",
            dir.display()
        );
    }
    let other_files = std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false);
    if earlier.is_none() && other_files && !opts.force {
        bail!(
            "{} is not empty and holds no export: its genesis.json and rpc_token would be \
             replaced; pick a new or empty directory (or pass --force)",
            dir.display()
        );
    }
    // --force over a compose export: its containers, networks and volumes go first, or
    // they would keep running on the old genesis under the same names.
    if opts.force {
        if let Some(old) = crate::engine::Engine::find(dir)? {
            old.down()?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The token file must be readable by the container's user (uid 10001): compose v1 mounts
    // a file secret as a bind mount that keeps the host file's owner and mode, so the file is
    // 0644 and the directory around it 0700 keeps other local users out.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private (chmod 700)", dir.display()))?;
    for stale in [ENGINE_FILE, COMPOSE_FILE, K8S_FILE] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    let genesis = write_genesis(dir)?;
    let token_file = dir.join(TOKEN_FILE);
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    write(&token_file, &format!("{}\n", hex::encode(bytes)))?;
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644))?;
    let links = opts.topology.links(opts.nodes);
    Ok(Exported { manifest: dir.join(manifest), genesis, token_file, links })
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// A YAML double-quoted scalar (a JSON string is one).
fn q(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// `EMBER_PEERS` of node `i`: the links it dials, as `host:9545`.
fn peers_of(i: usize, links: &[(usize, usize)], host: impl Fn(usize) -> String) -> String {
    let peers: Vec<String> =
        links.iter().filter(|l| l.0 == i).map(|l| format!("{}:{P2P_PORT}", host(l.1))).collect();
    peers.join(",")
}

fn miners_text(opts: &ExportOptions) -> String {
    if opts.miners.is_empty() {
        "none".into()
    } else {
        opts.miners.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
    }
}

/// Comment lines `#   COMMAND   # NOTE`, the notes aligned.
fn usage(lines: &[(&str, &str)]) -> String {
    let width = lines.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    lines.iter().map(|(c, n)| format!("#   {c:<width$}   # {n}\n")).collect()
}

/// The compose file (format 3.8, as docker-compose 1.29 reads it).
pub fn compose_yaml(opts: &ExportOptions, links: &[(usize, usize)]) -> String {
    let p = &opts.project;
    let mut y = String::new();
    let _ = write!(
        y,
        "# Ember testnet {p:?}: {n} nodes ({topo}), miners: {miners}. Written by `ember-testnet \
         export compose`.\n\
         #\n\
         {usage}\
         #\n\
         # Each node dials its topology links by service name (EMBER_PEERS, names resolved at\n\
         # every dial) and learns further peers by discovery. Node i's RPC: {rpc}.\n\
         version: \"3.8\"\n\
         services:\n",
        n = opts.nodes,
        topo = opts.topology.name(),
        miners = miners_text(opts),
        usage = usage(&[
            (
                &format!("docker-compose -p {p} -f compose.yaml up -d"),
                &format!("start it (image {})", opts.image)
            ),
            ("ember-testnet --dir DIR status", "DIR: this file's folder"),
            ("ember-testnet --dir DIR partition 0/1", "and heal, kill, start, mine, logs"),
            ("ember-testnet --dir DIR down", "containers, networks, volumes"),
        ]),
        rpc = if opts.base_port == 0 {
            "not published (--base-port 0)".to_string()
        } else {
            format!("127.0.0.1:{}+i", opts.base_port)
        },
    );
    for i in 0..opts.nodes {
        let peers = peers_of(i, links, |j| format!("node{j}"));
        let _ = writeln!(y, "  node{i}:");
        let _ = writeln!(y, "    image: {}", q(&opts.image));
        // Fixed names, so that docker commands (and `ember-testnet`) can find each node.
        let _ = writeln!(y, "    container_name: {}", q(&format!("{p}-node{i}")));
        let _ = writeln!(y, "    hostname: node{i}");
        // tc netem inside the container (`ember-testnet latency` / `loss`).
        let _ = writeln!(y, "    cap_add: [NET_ADMIN]");
        let _ = writeln!(y, "    stop_grace_period: 30s");
        let _ = writeln!(y, "    environment:");
        let _ = writeln!(y, "      EMBER_GENESIS: /etc/ember/genesis.json");
        let _ = writeln!(y, "      EMBER_RPC_TOKEN_FILE: /run/secrets/{TOKEN_FILE}");
        if !peers.is_empty() {
            let _ = writeln!(y, "      EMBER_PEERS: {}", q(&peers));
        }
        let _ = writeln!(y, "      EMBER_MINE: \"{}\"", opts.miners.contains(&i));
        let _ = writeln!(y, "      EMBER_BLOCK_TIME: \"{}\"", opts.block_time_secs);
        let _ = writeln!(y, "      EMBER_LOG_FORMAT: text");
        let _ = writeln!(y, "    networks: [{}]", q(p));
        if opts.base_port != 0 {
            let port = usize::from(opts.base_port) + i;
            let _ = writeln!(y, "    ports: [\"127.0.0.1:{port}:{RPC_PORT}\"]");
        }
        let _ = writeln!(y, "    volumes:");
        let _ = writeln!(y, "      - \"node{i}-data:/data\"");
        // Not a `configs:` entry: docker-compose 1.29 ignores configs outside swarm mode
        // ("Compose does not support 'configs' configuration"), so the node would start
        // without its genesis. A read-only bind mount does the same job everywhere.
        let _ = writeln!(y, "      - \"./genesis.json:/etc/ember/genesis.json:ro\"");
        let _ = writeln!(y, "    secrets: [{TOKEN_FILE}]");
    }
    let _ = writeln!(y, "networks:\n  {}:\n    name: {}", q(p), q(p));
    let _ = writeln!(y, "volumes:");
    for i in 0..opts.nodes {
        let _ = writeln!(y, "  node{i}-data:\n    name: {}", q(&format!("{p}-node{i}-data")));
    }
    let _ = writeln!(y, "secrets:\n  {TOKEN_FILE}:\n    file: ./{TOKEN_FILE}");
    y
}

/// The bash line of the pod template that gives each pod its own peers and miner flag from
/// its ordinal (`${HOSTNAME##*-}`): one `case` per setting, written from the topology.
fn k8s_script(opts: &ExportOptions, links: &[(usize, usize)]) -> String {
    let p = &opts.project;
    let mut s = String::from("ord=\"${HOSTNAME##*-}\"\ncase \"$ord\" in\n");
    for i in 0..opts.nodes {
        let peers = peers_of(i, links, |j| format!("{p}-{j}.{p}"));
        let _ = writeln!(s, "  {i}) peers=\"{peers}\" ;;");
    }
    let _ = writeln!(s, "  *) peers=\"{p}-0.{p}:{P2P_PORT}\" ;;\nesac");
    let miners: Vec<String> = opts.miners.iter().map(usize::to_string).collect();
    if miners.is_empty() {
        s.push_str("mine=false\n");
    } else {
        let _ = writeln!(s, "case \"$ord\" in {}) mine=true ;; *) mine=false ;; esac", {
            miners.join("|")
        });
    }
    s.push_str("export EMBER_MINE=\"$mine\"\n");
    s.push_str("if [ -n \"$peers\" ]; then export EMBER_PEERS=\"$peers\"; fi\n");
    s.push_str("exec ember-node\n");
    s
}

/// The Kubernetes manifests: ConfigMap (genesis), Secret (token), headless Service and
/// StatefulSet, one document each.
pub fn k8s_yaml(
    opts: &ExportOptions,
    links: &[(usize, usize)],
    genesis_json: &str,
    token: &str,
) -> String {
    let p = &opts.project;
    let labels =
        format!("app.kubernetes.io/name: ember-node\n    app.kubernetes.io/instance: {}", q(p));
    let indent = |text: &str, by: usize| -> String {
        let pad = " ".repeat(by);
        text.lines().map(|l| format!("{pad}{l}\n")).collect()
    };
    let mut y = String::new();
    let _ = write!(
        y,
        "# Ember testnet {p:?}: {n} nodes ({topo}), miners: {miners}. Written by `ember-testnet \
         export k8s`.\n\
         #\n\
         #   kubectl apply -f ember.yaml            # image {image} must be pullable by the cluster\n\
         #   kubectl get pods -l app.kubernetes.io/instance={p} -w\n\
         #   kubectl port-forward pod/{p}-0 8545:8545   # then: ember-cli --rpc http://127.0.0.1:8545 ...\n\
         #   kubectl delete -f ember.yaml && kubectl delete pvc -l app.kubernetes.io/instance={p}\n\
         #\n\
         # Simplifications (a StatefulSet has one pod template for all its pods):\n\
         # - Each pod's peers and miner flag come from a bash `case` on its ordinal (the end of\n\
         #   its host name), written from --topology and --miners; pods beyond the {n} exported\n\
         #   (kubectl scale) dial pod 0 and do not mine. Discovery stays on, so pods also connect\n\
         #   beyond the topology's links.\n\
         # - podManagementPolicy: Parallel, because a node is ready only once it has a peer: with\n\
         #   ordered start-up pod 0 would wait for a peer that is never created.\n\
         # - Faults (partition, latency) are not driven by ember-testnet here: it attaches to\n\
         #   compose exports only. The NET_ADMIN capability is there for `kubectl exec` as root.\n\
         # - The namespace is the current one (kubectl -n NAME apply ... for another).\n",
        n = opts.nodes,
        topo = opts.topology.name(),
        miners = miners_text(opts),
        image = opts.image,
    );
    // ConfigMap: the genesis, as a literal block (pretty JSON: no tabs, no trailing blanks).
    let _ = write!(
        y,
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    \
         {labels}\ndata:\n  genesis.json: |\n{genesis}",
        name = q(&format!("{p}-genesis")),
        genesis = indent(genesis_json.trim_end(), 4),
    );
    let _ = write!(
        y,
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  labels:\n    \
         {labels}\ntype: Opaque\nstringData:\n  {TOKEN_FILE}: {token}\n",
        name = q(&format!("{p}-rpc-token")),
        token = q(token),
    );
    // Headless: one DNS name per pod (<project>-<i>.<project>), published before the pod is
    // ready, since a node becomes ready only after its peers have found it.
    let _ = write!(
        y,
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  labels:\n    {labels}\n\
         spec:\n  clusterIP: None\n  publishNotReadyAddresses: true\n  selector:\n    {labels}\n  \
         ports:\n    - name: p2p\n      port: {P2P_PORT}\n      targetPort: p2p\n    \
         - name: rpc\n      port: {RPC_PORT}\n      targetPort: rpc\n",
        name = q(p),
    );
    let pod_labels = labels.replace("\n    ", "\n        ");
    let script = indent(&k8s_script(opts, links), 14);
    let _ = write!(
        y,
        "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: {name}\n  labels:\n    \
         {labels}\nspec:\n  serviceName: {name}\n  replicas: {n}\n  \
         podManagementPolicy: Parallel\n  selector:\n    matchLabels:\n      {match_labels}\n  \
         template:\n    metadata:\n      labels:\n        {pod_labels}\n    spec:\n      \
         securityContext:\n        runAsUser: 10001\n        runAsGroup: 10001\n        \
         fsGroup: 10001\n      terminationGracePeriodSeconds: 30\n      containers:\n        \
         - name: ember-node\n          image: {image}\n          \
         command: [\"bash\", \"-c\"]\n          args:\n            - |\n{script}          \
         env:\n            - name: EMBER_GENESIS\n              value: /etc/ember/genesis.json\n            \
         - name: EMBER_RPC_TOKEN_FILE\n              value: /run/secrets/ember/{TOKEN_FILE}\n            \
         - name: EMBER_BLOCK_TIME\n              value: \"{block_time}\"\n            \
         - name: EMBER_LOG_FORMAT\n              value: text\n          \
         ports:\n            - name: p2p\n              containerPort: {P2P_PORT}\n            \
         - name: rpc\n              containerPort: {RPC_PORT}\n          \
         securityContext:\n            capabilities:\n              add: [NET_ADMIN]\n          \
         readinessProbe:\n            httpGet:\n              path: /ready\n              \
         port: rpc\n            periodSeconds: 2\n            failureThreshold: 3\n          \
         livenessProbe:\n            httpGet:\n              path: /health\n              \
         port: rpc\n            initialDelaySeconds: 10\n            periodSeconds: 10\n            \
         failureThreshold: 6\n          volumeMounts:\n            - name: data\n              \
         mountPath: /data\n            - name: genesis\n              mountPath: /etc/ember\n              \
         readOnly: true\n            - name: rpc-token\n              mountPath: /run/secrets/ember\n              \
         readOnly: true\n      volumes:\n        - name: genesis\n          configMap:\n            \
         name: {genesis_name}\n        - name: rpc-token\n          secret:\n            \
         secretName: {secret_name}\n            defaultMode: 288  # 0440: the fsGroup reads it\n  \
         volumeClaimTemplates:\n    - metadata:\n        name: data\n      spec:\n        \
         accessModes: [ReadWriteOnce]\n        resources:\n          requests:\n            \
         storage: 1Gi\n",
        name = q(p),
        n = opts.nodes,
        match_labels = labels.replace("\n    ", "\n      "),
        image = q(&opts.image),
        block_time = opts.block_time_secs,
        genesis_name = q(&format!("{p}-genesis")),
        secret_name = q(&format!("{p}-rpc-token")),
    );
    y
}
