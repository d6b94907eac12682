//! Latency and loss between two containers of an exported network, with `tc netem` run
//! inside both of them (`docker exec -u root`; the compose file grants NET_ADMIN).
//!
//! Each container sends its traffic to a faulty peer through its own netem qdisc: a `prio`
//! root qdisc on the interface that routes to the peer, with one extra band per faulty peer
//! holding a netem child, and a `u32` filter on the peer's IP sending its packets there.
//! Traffic to every other peer takes the ordinary bands, untouched. As both ends shape
//! their egress, `latency I J 100` delays each direction by 100 ms, as on a loopback
//! testnet; loss drops that share of packets each way (TCP then retransmits them).
//!
//! The settings live in `DIR/engine-faults.json` and are applied again whenever a container
//! starts or changes network ([`reapply`]): a container's qdiscs and address do not survive
//! either. Netem needs the host kernel's `sch_netem` module (with `sch_prio` and `cls_u32`);
//! a kernel without it is detected before anything changes, and the error names the module.

use super::{docker_output, Engine};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Where the latency and loss settings are kept, inside the export's directory.
pub const FAULTS_FILE: &str = "engine-faults.json";
/// `prio` has at most 16 bands; 3 are the ordinary ones.
const MAX_FAULTY_PEERS: usize = 13;

/// The faults on the traffic between nodes `a < b`, each way.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct LinkFault {
    pub a: usize,
    pub b: usize,
    pub latency_ms: u64,
    pub loss_pct: f64,
}

impl LinkFault {
    fn joins(&self, i: usize) -> Option<usize> {
        if self.a == i {
            Some(self.b)
        } else if self.b == i {
            Some(self.a)
        } else {
            None
        }
    }
}

/// The stored faults (none when the file is missing).
pub fn load(engine: &Engine) -> Result<Vec<LinkFault>> {
    let path = engine.dir.join(FAULTS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).with_context(|| {
            format!("{} is damaged; delete it to clear every fault", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save(engine: &Engine, faults: &[LinkFault]) -> Result<()> {
    let path = engine.dir.join(FAULTS_FILE);
    if faults.is_empty() {
        return forget(engine);
    }
    std::fs::write(&path, serde_json::to_string_pretty(faults)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Drops the stored faults (`down`: the containers that had them are gone).
pub fn forget(engine: &Engine) -> Result<()> {
    match std::fs::remove_file(engine.dir.join(FAULTS_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Delays the traffic between nodes `a` and `b` by `ms`, each way (0 = no delay).
pub fn set_latency(engine: &Engine, a: usize, b: usize, ms: u64) -> Result<String> {
    if ms > 60_000 {
        bail!("latency {ms} ms is more than a minute; the peers would time out");
    }
    set(engine, a, b, |f| f.latency_ms = ms)?;
    Ok(format!("nodes {a} and {b}: {ms} ms latency each way (tc netem)"))
}

/// Drops `pct` percent of the packets between nodes `a` and `b`, each way.
pub fn set_loss(engine: &Engine, a: usize, b: usize, pct: f64) -> Result<String> {
    if !(0.0..=100.0).contains(&pct) {
        bail!("loss must be a percentage between 0 and 100, not {pct}");
    }
    set(engine, a, b, |f| f.loss_pct = pct)?;
    Ok(format!("nodes {a} and {b}: {pct}% of packets dropped each way (tc netem)"))
}

fn set(engine: &Engine, a: usize, b: usize, change: impl FnOnce(&mut LinkFault)) -> Result<()> {
    engine.check_index(a)?;
    engine.check_index(b)?;
    if a == b {
        bail!("latency and loss are set between two different nodes, not {a} and {b}");
    }
    let (a, b) = (a.min(b), a.max(b));
    let before = load(engine)?;
    let mut faults = before.clone();
    let at = match faults.iter().position(|f| (f.a, f.b) == (a, b)) {
        Some(at) => at,
        None => {
            faults.push(LinkFault { a, b, latency_ms: 0, loss_pct: 0.0 });
            faults.len() - 1
        }
    };
    change(&mut faults[at]);
    let set_any = faults[at].latency_ms > 0 || faults[at].loss_pct > 0.0;
    faults.retain(|f| f.latency_ms > 0 || f.loss_pct > 0.0);
    let states = engine.containers()?;
    for i in [a, b] {
        if set_any && !states[i].running {
            bail!(
                "node {i} is not running (container {} is {}); `ember-testnet start {i}` first",
                engine.container(i),
                states[i].status
            );
        }
    }
    if let Err(e) = apply(engine, &[a, b], &faults, &states) {
        // Put back what was there (best effort: the error is what the user needs to see).
        let _ = apply(engine, &[a, b], &before, &states);
        return Err(e);
    }
    save(engine, &faults)
}

/// Applies the stored faults again to `nodes` and to the peers they have faults with.
pub fn reapply(engine: &Engine, nodes: &[usize]) -> Result<()> {
    let faults = load(engine)?;
    if faults.is_empty() {
        return Ok(());
    }
    let mut touched: Vec<usize> = nodes.to_vec();
    for f in &faults {
        for &i in nodes {
            touched.extend(f.joins(i));
        }
    }
    touched.sort_unstable();
    touched.dedup();
    let states = engine.containers()?;
    apply(engine, &touched, &faults, &states)
        .context("the stored latency and loss could not be applied again")
}

/// Sets up each running node of `nodes` with exactly its faults of `faults`.
fn apply(
    engine: &Engine,
    nodes: &[usize],
    faults: &[LinkFault],
    states: &[super::ContainerState],
) -> Result<()> {
    for &i in nodes.iter().filter(|&&i| states[i].running) {
        // Peers it shares no network with (across a partition) need no shaping.
        let peers: Vec<(String, LinkFault)> = faults
            .iter()
            .filter_map(|f| {
                let j = f.joins(i)?;
                let net = states[j].shared_network(&states[i])?;
                Some((states[j].ip_on(net)?.to_string(), *f))
            })
            .collect();
        configure(engine.container(i), &peers)
            .with_context(|| format!("shaping the traffic of node {i}"))?;
    }
    Ok(())
}

/// Replaces the container's qdiscs with one netem band per faulty peer (by IP).
fn configure(container: &str, peers: &[(String, LinkFault)]) -> Result<()> {
    if !peers.is_empty() {
        // Before anything is removed: a kernel without netem keeps what it had.
        exec(container, &["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"])?;
        exec(container, &["tc", "qdisc", "del", "dev", "lo", "root"])?;
    }
    let links = exec(container, &["ip", "-o", "link", "show"])?;
    for dev in interfaces(&links) {
        // "Cannot delete qdisc with handle of zero" just means there was nothing to remove.
        let _ = exec(container, &["tc", "qdisc", "del", "dev", &dev, "root"]);
    }
    let mut by_dev: Vec<(String, Vec<(String, LinkFault)>)> = Vec::new();
    for (ip, f) in peers {
        let route = exec(container, &["ip", "-o", "route", "get", ip])?;
        let dev = route_device(&route)
            .with_context(|| format!("no route from {container} to {ip}: {route}"))?;
        match by_dev.iter_mut().find(|(d, _)| *d == dev) {
            Some((_, list)) => list.push((ip.clone(), *f)),
            None => by_dev.push((dev, vec![(ip.clone(), *f)])),
        }
    }
    for (dev, list) in &by_dev {
        let shaped: Vec<(&str, u64, f64)> =
            list.iter().map(|(ip, f)| (ip.as_str(), f.latency_ms, f.loss_pct)).collect();
        for cmd in tc_script(dev, &shaped)? {
            let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
            exec(container, &refs)?;
        }
    }
    Ok(())
}

/// The `tc` commands that give each `(ip, latency_ms, loss_pct)` its own netem band on `dev`.
pub fn tc_script(dev: &str, peers: &[(&str, u64, f64)]) -> Result<Vec<Vec<String>>> {
    if peers.len() > MAX_FAULTY_PEERS {
        bail!("at most {MAX_FAULTY_PEERS} peers of one node can have latency or loss at once");
    }
    let v = |a: &[&str]| -> Vec<String> { a.iter().map(|s| s.to_string()).collect() };
    let bands = (3 + peers.len()).to_string();
    let mut cmds = vec![v(&[
        "tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "prio", "bands", &bands,
    ])];
    for (k, (ip, ms, pct)) in peers.iter().enumerate() {
        // Bands 1:1..1:3 are prio's ordinary ones; peer k gets 1:(4+k).
        let class = format!("1:{}", 4 + k);
        let mut netem = v(&["tc", "qdisc", "add", "dev", dev, "parent", &class]);
        netem.extend(v(&["handle", &format!("{}:", 10 + k), "netem"]));
        if *ms > 0 {
            netem.extend(v(&["delay", &format!("{ms}ms")]));
        }
        if *pct > 0.0 {
            netem.extend(v(&["loss", &format!("{pct}%")]));
        }
        cmds.push(netem);
        cmds.push(v(&[
            "tc",
            "filter",
            "add",
            "dev",
            dev,
            "protocol",
            "ip",
            "parent",
            "1:",
            "prio",
            "1",
            "u32",
            "match",
            "ip",
            "dst",
            &format!("{ip}/32"),
            "flowid",
            &class,
        ]));
    }
    Ok(cmds)
}

/// Interface names of `ip -o link show` other than loopback (`2: eth0@if7: <...>`).
fn interfaces(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n != "lo")
        .collect()
}

/// The device of `ip -o route get IP` (`172.20.0.3 dev eth1 src 172.20.0.2 ...`).
fn route_device(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "dev")?;
    words.next().map(str::to_string)
}

/// Runs `cmd` as root inside `container`; its stdout, or what went wrong and what to do.
fn exec(container: &str, cmd: &[&str]) -> Result<String> {
    let args = [&["exec", "-u", "root", container], cmd].concat();
    let out = docker_output(&args)?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        bail!("{}", explain(cmd, &err));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Why a command in the container failed, naming the missing kernel module or capability.
pub fn explain(cmd: &[&str], stderr: &str) -> String {
    let module = |name: &str, config: &str, what: &str| {
        format!(
            "this kernel has no {what} (kernel module {name}, {config}), which latency and loss \
             in containers need: load it on the Docker host (`sudo modprobe {name}`; some \
             distributions ship it in linux-modules-extra-$(uname -r)) and try again. \
             `ember-testnet up` shapes links with loopback proxies instead and needs no kernel \
             support"
        )
    };
    let ran = cmd.join(" ");
    if stderr.contains("Specified qdisc kind is unknown") && cmd.contains(&"netem") {
        module("sch_netem", "CONFIG_NET_SCH_NETEM", "netem queueing discipline")
    } else if stderr.contains("Specified qdisc kind is unknown") && cmd.contains(&"prio") {
        module("sch_prio", "CONFIG_NET_SCH_PRIO", "prio queueing discipline")
    } else if cmd.contains(&"u32")
        && (stderr.contains("Unknown filter") || stderr.contains("unknown"))
    {
        module("cls_u32", "CONFIG_NET_CLS_U32", "u32 traffic filter")
    } else if stderr.contains("Operation not permitted") {
        format!(
            "`{ran}` was refused ({stderr}): the container lacks the NET_ADMIN capability \
             (compose.yaml grants it with cap_add: [NET_ADMIN]; re-export, then recreate the \
             containers)"
        )
    } else if stderr.contains("executable file not found") {
        format!(
            "`{ran}` cannot run: the image has no {} (package iproute2); rebuild it with \
             docker/build-image.sh",
            cmd[0]
        )
    } else {
        format!("`{ran}` failed in the container: {stderr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_faulty_peer_gets_its_own_netem_band_and_filter() {
        let cmds = tc_script("eth0", &[("172.18.0.3", 100, 0.0), ("172.18.0.5", 0, 12.5)]).unwrap();
        let lines: Vec<String> = cmds.iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            lines,
            [
                "tc qdisc add dev eth0 root handle 1: prio bands 5",
                "tc qdisc add dev eth0 parent 1:4 handle 10: netem delay 100ms",
                "tc filter add dev eth0 protocol ip parent 1: prio 1 u32 match ip dst 172.18.0.3/32 flowid 1:4",
                "tc qdisc add dev eth0 parent 1:5 handle 11: netem loss 12.5%",
                "tc filter add dev eth0 protocol ip parent 1: prio 1 u32 match ip dst 172.18.0.5/32 flowid 1:5",
            ]
        );
        let many: Vec<(&str, u64, f64)> = (0..14).map(|_| ("10.0.0.1", 1, 0.0)).collect();
        assert!(tc_script("eth0", &many).is_err());
    }

    #[test]
    fn interfaces_and_routes_are_read_from_ip_output() {
        let links = "1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue\n\
                     12: eth0@if13: <BROADCAST> mtu 1500 qdisc noqueue\n\
                     14: eth1@if15: <BROADCAST> mtu 1500 qdisc noqueue\n";
        assert_eq!(interfaces(links), ["eth0", "eth1"]);
        let route = "172.20.0.3 dev eth1 src 172.20.0.2 uid 0 \\    cache ";
        assert_eq!(route_device(route).as_deref(), Some("eth1"));
        assert_eq!(route_device("RTNETLINK answers: Network is unreachable"), None);
    }

    #[test]
    fn a_kernel_without_netem_is_named_with_its_module() {
        let cmd = ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"];
        let msg = explain(&cmd, "Error: Specified qdisc kind is unknown.");
        assert!(msg.contains("sch_netem") && msg.contains("CONFIG_NET_SCH_NETEM"), "{msg}");
        assert!(msg.contains("modprobe"), "{msg}");
        let msg = explain(
            &["tc", "qdisc", "add", "dev", "eth0", "root", "prio"],
            "Error: Specified qdisc kind is unknown.",
        );
        assert!(msg.contains("sch_prio"), "{msg}");
        let msg = explain(&cmd, "RTNETLINK answers: Operation not permitted");
        assert!(msg.contains("NET_ADMIN"), "{msg}");
    }
}
