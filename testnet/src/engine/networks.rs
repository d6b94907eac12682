//! Partitions of an exported compose network, made of Docker bridge networks.
//!
//! Group 0 of a partition stays on the project's network `<project>`; every other group `g`
//! is moved to a network `<project>-part<g>`, created on the fly and labelled
//! `ember.partition-of=<project>` so that `heal` and `down` find it. A moved container is
//! connected under its service name as alias (`--alias node3`): nodes dial their peers by
//! service name and resolve it again at every dial, so the nodes of one group find each
//! other on their new network, and those of other groups no longer resolve at all.
//! Connections open before the move go silent rather than closing (the old addresses are
//! gone, no reset is sent): each node drops them at its silence timeout (3 pings, about
//! 45 s) and then redials its peers by name.
//!
//! Planning is pure ([`plan`]): the docker commands are derived from where each container
//! is and where it should be, so a partition replaces an earlier one, and heal is the plan
//! that puts everyone in group 0 and removes every partition network.

use super::{docker, docker_output, ContainerState, Engine};
use crate::network::check_partition;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The label that marks a partition network as belonging to a project.
pub const PART_LABEL: &str = "ember.partition-of";

/// The network of group `g` of a partition of `project`.
pub fn group_network(project: &str, g: usize) -> String {
    if g == 0 {
        project.to_string()
    } else {
        format!("{project}-part{g}")
    }
}

/// One change to Docker's networks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetOp {
    /// A partition network of `project`.
    Create {
        network: String,
        project: String,
    },
    Connect {
        network: String,
        container: String,
        alias: String,
    },
    Disconnect {
        network: String,
        container: String,
    },
    Remove(String),
}

impl NetOp {
    /// The `docker` arguments that carry it out.
    pub fn args(&self) -> Vec<String> {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
        match self {
            NetOp::Create { network, project } => {
                v(&["network", "create", "--label", &format!("{PART_LABEL}={project}"), network])
            }
            NetOp::Connect { network, container, alias } => {
                v(&["network", "connect", "--alias", alias, network, container])
            }
            NetOp::Disconnect { network, container } => {
                v(&["network", "disconnect", network, container])
            }
            NetOp::Remove(n) => v(&["network", "rm", n]),
        }
    }
}

/// A node as the planner sees it: its container, its alias (service name) and the
/// networks it is on now.
#[derive(Debug, Clone)]
pub struct Placement {
    pub container: String,
    pub alias: String,
    pub networks: Vec<String>,
}

/// The changes that put node `i` on the network of group `group_of[i]` and on no other
/// network of the project, create the partition networks needed and remove those of
/// `existing` no longer used. Networks that are not the project's are left alone.
/// Each container is connected to its new network before it leaves the old one.
pub fn plan(
    project: &str,
    nodes: &[Placement],
    group_of: &[usize],
    existing: &[String],
) -> Vec<NetOp> {
    let wanted: Vec<String> = group_of.iter().map(|&g| group_network(project, g)).collect();
    let ours = |n: &String| n == project || existing.contains(n) || wanted.contains(n);
    let mut ops = Vec::new();
    let mut created: Vec<&String> = Vec::new();
    for w in &wanted {
        if w != project && !existing.contains(w) && !created.contains(&w) {
            created.push(w);
            ops.push(NetOp::Create { network: w.clone(), project: project.to_string() });
        }
    }
    for (node, target) in nodes.iter().zip(&wanted) {
        if !node.networks.contains(target) {
            ops.push(NetOp::Connect {
                network: target.clone(),
                container: node.container.clone(),
                alias: node.alias.clone(),
            });
        }
        for n in node.networks.iter().filter(|n| ours(n) && *n != target) {
            ops.push(NetOp::Disconnect { network: n.clone(), container: node.container.clone() });
        }
    }
    for e in existing.iter().filter(|e| !wanted.contains(e)) {
        ops.push(NetOp::Remove(e.clone()));
    }
    ops
}

/// The partition networks of the engine's project that exist now.
pub fn part_networks(engine: &Engine) -> Result<Vec<String>> {
    let filter = format!("label={PART_LABEL}={}", engine.spec.project);
    let out = docker(&["network", "ls", "--filter", &filter, "--format", "{{.Name}}"])?;
    let mut names: Vec<String> = out.lines().map(str::to_string).collect();
    names.sort();
    Ok(names)
}

/// Moves every node to its group's network (see the module doc). Every check is made
/// before anything changes.
pub fn partition(engine: &Engine, groups: &[&[usize]]) -> Result<String> {
    let group_of = check_partition(groups, engine.len())?;
    let before = engine.containers()?;
    move_nodes(engine, &group_of)?;
    cut_across(engine, &before, &group_of);
    let spec: Vec<String> = groups
        .iter()
        .map(|g| g.iter().map(usize::to_string).collect::<Vec<_>>().join(","))
        .collect();
    Ok(format!(
        "partitioned into {} (group 0 on network {}, group g on {}-part<g>)",
        spec.join(" / "),
        engine.spec.network,
        engine.spec.project
    ))
}

/// Closes, on each running node, the connections to nodes now on another side. Moved off a
/// network, a container's TCP connections are not closed, only silent: each side would
/// keep them until its peer-silence timeout (about a minute), still counting the peers and
/// answering `/ready` as if connected. `before` holds the addresses they had.
fn cut_across(engine: &Engine, before: &[ContainerState], group_of: &[usize]) {
    let ip_group: HashMap<&str, usize> = before
        .iter()
        .zip(group_of)
        .flat_map(|(s, g)| s.networks.iter().map(move |(_, ip)| (ip.as_str(), *g)))
        .collect();
    for (i, g) in group_of.iter().enumerate() {
        let Ok(client) = engine.client(i) else { continue };
        let Ok(Value::Array(peers)) = client.call("net_peers", json!([])) else { continue };
        for p in peers {
            let ip = p["address"].as_str().and_then(|a| a.rsplit_once(':')).map(|(ip, _)| ip);
            if ip.and_then(|ip| ip_group.get(ip)).is_some_and(|pg| pg != g) {
                let _ = client.call("net_disconnect", json!([p["id"].to_string()]));
            }
        }
    }
}

/// Puts every node back on the project's network and removes the partition networks.
pub fn heal(engine: &Engine) -> Result<String> {
    move_nodes(engine, &vec![0; engine.len()])?;
    Ok(format!("every node is back on network {}", engine.spec.network))
}

fn move_nodes(engine: &Engine, group_of: &[usize]) -> Result<()> {
    let states = engine.containers()?;
    if let Some(i) = states.iter().position(|s| !s.exists) {
        bail!(
            "container {} does not exist: start the network with `{}`",
            engine.container(i),
            engine.up_command()
        );
    }
    let nodes: Vec<Placement> = engine
        .spec
        .nodes
        .iter()
        .zip(&states)
        .map(|(n, s)| Placement {
            container: n.container.clone(),
            alias: n.service.clone(),
            networks: s.networks.iter().map(|(name, _)| name.clone()).collect(),
        })
        .collect();
    let existing = part_networks(engine)?;
    let ops = plan(&engine.spec.network, &nodes, group_of, &existing);
    for op in &ops {
        let args = op.args();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&refs)?;
    }
    if !ops.is_empty() {
        // Addresses changed: the latency and loss filters name the old ones.
        engine.reapply_faults(&(0..engine.len()).collect::<Vec<_>>())?;
    }
    Ok(())
}

/// Removes the project's partition networks (after `down` removed the containers).
pub fn remove_part_networks(engine: &Engine) -> Result<()> {
    for n in part_networks(engine)? {
        let out = docker_output(&["network", "rm", &n])?;
        if !out.status.success() {
            bail!("cannot remove network {n}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: usize, nets: &[&str]) -> Placement {
        Placement {
            container: format!("ember-node{i}"),
            alias: format!("node{i}"),
            networks: nets.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn connect(net: &str, i: usize) -> NetOp {
        NetOp::Connect {
            network: net.into(),
            container: format!("ember-node{i}"),
            alias: format!("node{i}"),
        }
    }

    fn create(net: &str) -> NetOp {
        NetOp::Create { network: net.into(), project: "ember".into() }
    }

    fn disconnect(net: &str, i: usize) -> NetOp {
        NetOp::Disconnect { network: net.into(), container: format!("ember-node{i}") }
    }

    #[test]
    fn a_partition_moves_later_groups_to_their_own_networks() {
        let nodes: Vec<_> = (0..4).map(|i| node(i, &["ember"])).collect();
        let ops = plan("ember", &nodes, &[0, 0, 1, 1], &[]);
        assert_eq!(
            ops,
            vec![
                create("ember-part1"),
                connect("ember-part1", 2),
                disconnect("ember", 2),
                connect("ember-part1", 3),
                disconnect("ember", 3),
            ]
        );
        assert_eq!(
            ops[0].args(),
            ["network", "create", "--label", "ember.partition-of=ember", "ember-part1"]
        );
        assert_eq!(
            ops[1].args(),
            ["network", "connect", "--alias", "node2", "ember-part1", "ember-node2"]
        );
    }

    #[test]
    fn a_new_partition_replaces_the_old_and_heal_undoes_it() {
        // Now 0,1 / 2,3 (2 and 3 on part1); the new partition is 0 / 1,2 / 3.
        let nodes = vec![
            node(0, &["ember"]),
            node(1, &["ember"]),
            node(2, &["ember-part1"]),
            node(3, &["bridge", "ember-part1"]),
        ];
        let existing = vec!["ember-part1".to_string()];
        let ops = plan("ember", &nodes, &[0, 1, 1, 2], &existing);
        assert_eq!(
            ops,
            vec![
                create("ember-part2"),
                connect("ember-part1", 1),
                disconnect("ember", 1),
                connect("ember-part2", 3),
                disconnect("ember-part1", 3),
            ],
            "a network the project does not own (bridge) is left alone"
        );
        let heal = plan("ember", &nodes, &[0; 4], &existing);
        assert_eq!(
            heal,
            vec![
                connect("ember", 2),
                disconnect("ember-part1", 2),
                connect("ember", 3),
                disconnect("ember-part1", 3),
                NetOp::Remove("ember-part1".into()),
            ]
        );
        let healed: Vec<_> = (0..4).map(|i| node(i, &["ember"])).collect();
        assert!(plan("ember", &healed, &[0; 4], &[]).is_empty(), "heal twice changes nothing");
    }
}
