//! `ember-testnet export`: what the compose file and the Kubernetes manifests say, checked
//! by the engines' own tools where they are installed — `docker-compose config` for the
//! compose file, and `kubernetes-validate` (Kubernetes' OpenAPI schemas, offline) for the
//! manifests, installed from PyPI into a cache venv when missing.

use ember_testnet::engine::{Engine, ENGINE_FILE};
use ember_testnet::export::{compose_yaml, export_compose, export_k8s, ExportOptions};
use ember_testnet::Topology;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn opts(nodes: usize, topology: Topology) -> ExportOptions {
    ExportOptions { topology, miners: vec![0, nodes - 1], ..ExportOptions::new(nodes) }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_compose_export_writes_every_file_and_engine_json_describes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let mut o = opts(4, Topology::Line);
    o.project = "ember-t1".into();
    let out = export_compose(&o, &dir).unwrap();
    assert_eq!(out.links, vec![(1, 0), (2, 1), (3, 2)]);
    // The container user (uid 10001) reads the bind-mounted token; the directory is private.
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&out.token_file), 0o644);
    let token = std::fs::read_to_string(&out.token_file).unwrap();
    let token = token.trim();
    assert!(token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
    assert!(std::fs::read_to_string(&out.genesis).unwrap().contains("\"devnet\""));

    let engine = Engine::load(&dir).unwrap();
    assert_eq!(engine.len(), 4);
    assert_eq!(engine.spec.project, "ember-t1");
    assert_eq!(engine.spec.network, "ember-t1");
    assert_eq!(engine.container(2), "ember-t1-node2");
    assert_eq!(engine.spec.nodes[3].rpc_url.as_deref(), Some("http://127.0.0.1:18548"));
    let miners: Vec<bool> = engine.spec.nodes.iter().map(|n| n.miner).collect();
    assert_eq!(miners, [true, false, false, true]);
    assert_eq!(engine.spec.links.len(), 3);
    assert_eq!(engine.spec.compose_file, dir.join("compose.yaml"));

    let err = export_compose(&o, &dir).unwrap_err().to_string();
    assert!(err.contains("already holds an export") && err.contains("--force"), "{err}");
    o.force = true;
    export_compose(&o, &dir).unwrap();
    let new_token = std::fs::read_to_string(&out.token_file).unwrap();
    assert_ne!(new_token.trim(), token, "a new export, a new token");
}

#[test]
fn each_service_dials_its_links_by_name_and_only_miners_mine() {
    let mut o = opts(4, Topology::Ring);
    let y = compose_yaml(&o, &Topology::Ring.links(4));
    let service = |i: usize| -> String {
        let start = y.find(&format!("\n  node{i}:\n")).unwrap();
        let rest = &y[start + 3..];
        rest[..rest.find("\n  node").or_else(|| rest.find("\nnetworks:")).unwrap()].to_string()
    };
    // Ring: 1->0, 2->1, 3->2 and 0->3, each dialed once by its first node.
    assert!(service(0).contains("EMBER_PEERS: \"node3:9545\""), "{}", service(0));
    assert!(service(2).contains("EMBER_PEERS: \"node1:9545\""));
    assert!(
        service(0).contains("EMBER_MINE: \"true\"") && service(3).contains("EMBER_MINE: \"true\"")
    );
    assert!(service(1).contains("EMBER_MINE: \"false\""));
    for i in 0..4 {
        let s = service(i);
        for want in [
            format!("container_name: \"ember-node{i}\""),
            "cap_add: [NET_ADMIN]".to_string(),
            "EMBER_GENESIS: /etc/ember/genesis.json".to_string(),
            "EMBER_RPC_TOKEN_FILE: /run/secrets/rpc_token".to_string(),
            "EMBER_BLOCK_TIME: \"2\"".to_string(),
            format!("ports: [\"127.0.0.1:{}:8545\"]", 18545 + i),
            format!("\"node{i}-data:/data\""),
            "./genesis.json:/etc/ember/genesis.json:ro".to_string(),
        ] {
            assert!(s.contains(&want), "node{i} lacks {want}:\n{s}");
        }
    }
    assert!(y.contains("networks:\n  \"ember\":\n    name: \"ember\""));
    // A star's hub dials nobody: no empty EMBER_PEERS. Unpublished RPC: no ports.
    o.base_port = 0;
    let star = compose_yaml(&o, &Topology::Star.links(4));
    assert_eq!(star.matches("EMBER_PEERS:").count(), 3);
    assert!(!star.contains("ports:"));
}

#[test]
fn bad_options_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never");
    for (change, want) in [
        (
            Box::new(|o: &mut ExportOptions| o.project = "Ember".into()) as Box<dyn Fn(&mut _)>,
            "--project",
        ),
        (Box::new(|o: &mut ExportOptions| o.project = "ember-".into()), "--project"),
        (Box::new(|o: &mut ExportOptions| o.miners = vec![7]), "miner index 7"),
        (Box::new(|o: &mut ExportOptions| o.nodes = 0), "--nodes"),
        (Box::new(|o: &mut ExportOptions| o.image = "a b".into()), "--image"),
        (Box::new(|o: &mut ExportOptions| o.base_port = 65534), "--base-port"),
    ] {
        let mut o = opts(4, Topology::Ring);
        change(&mut o);
        let err = export_compose(&o, &dir).unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
        assert!(!dir.exists(), "nothing written for {want}");
    }
    // A directory with other files (a real network's genesis.json, say) is not written into.
    let busy = tmp.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("genesis.json"), "precious").unwrap();
    let err = export_compose(&opts(4, Topology::Ring), &busy).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read_to_string(busy.join("genesis.json")).unwrap(), "precious");
}

/// `docker-compose config -q` (the installed docker-compose, 1.29 here) accepts the file
/// and warns about nothing (it ignores `configs:` outside swarm with a warning, which is
/// why the genesis is a bind mount).
#[test]
fn docker_compose_accepts_the_compose_file_without_warnings() {
    if Command::new("docker-compose").arg("version").output().is_err() {
        eprintln!("docker-compose is not installed: compose file not checked by it");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let o = opts(5, Topology::Random);
    let out = export_compose(&o, tmp.path()).unwrap();
    let run = Command::new("docker-compose")
        .args(["-p", "ember-config-check", "-f"])
        .arg(&out.manifest)
        .args(["config", "-q"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "docker-compose config failed: {stderr}");
    assert!(stderr.trim().is_empty(), "docker-compose warned: {stderr}");
}

/// The `kubernetes-validate` program: on PATH, else in a venv under the user's cache dir,
/// installed from PyPI on first use. `Err` only when it cannot be had (no python3, or no
/// way to reach PyPI); a failure of the installation itself panics.
fn kubernetes_validate() -> Result<PathBuf, String> {
    if Command::new("kubernetes-validate").arg("--version").output().is_ok() {
        return Ok(PathBuf::from("kubernetes-validate"));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .ok_or("neither XDG_CACHE_HOME nor HOME is set")?;
    let venv = cache.join("ember-k8s-venv");
    let bin = venv.join("bin/kubernetes-validate");
    if bin.exists() {
        return Ok(bin);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .map_err(|e| format!("python3 cannot be run ({e})"))?;
    if !made.status.success() {
        return Err(format!(
            "python3 -m venv failed (Debian: apt-get install python3-venv): {}",
            String::from_utf8_lossy(&made.stderr).trim()
        ));
    }
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "kubernetes-validate"])
        .output()
        .expect("the venv has pip");
    if !pip.status.success() {
        let err = String::from_utf8_lossy(&pip.stderr).to_string();
        let _ = std::fs::remove_dir_all(&venv);
        let offline = [
            "Failed to establish a new connection",
            "Temporary failure in name resolution",
            "Network is unreachable",
            "No matching distribution found",
            "ProxyError",
        ];
        if offline.iter().any(|o| err.contains(o)) {
            return Err(format!("PyPI cannot be reached: {}", err.trim()));
        }
        panic!("pip install kubernetes-validate failed:\n{err}");
    }
    Ok(bin)
}

#[test]
fn the_kubernetes_manifests_pass_the_kubernetes_schemas() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts(5, Topology::Line);
    o.project = "ember-k8s".into();
    let out = export_k8s(&o, tmp.path()).unwrap();
    assert!(!tmp.path().join(ENGINE_FILE).exists(), "nothing to attach to on Kubernetes");
    let y = std::fs::read_to_string(&out.manifest).unwrap();
    for want in [
        "kind: ConfigMap",
        "kind: Secret",
        "clusterIP: None",
        "publishNotReadyAddresses: true",
        "kind: StatefulSet",
        "replicas: 5",
        "podManagementPolicy: Parallel",
        "path: /ready",
        "path: /health",
        "runAsUser: 10001",
        "fsGroup: 10001",
        "add: [NET_ADMIN]",
        "volumeClaimTemplates:",
        // Line 0-1-2-3-4: pod i dials pod i-1 by its stable DNS name; pods 0 and 4 mine.
        "1) peers=\"ember-k8s-0.ember-k8s:9545\" ;;",
        "4) peers=\"ember-k8s-3.ember-k8s:9545\" ;;",
        "case \"$ord\" in 0|4) mine=true ;; *) mine=false ;; esac",
    ] {
        assert!(y.contains(want), "ember.yaml lacks {want}");
    }
    let token = std::fs::read_to_string(&out.token_file).unwrap();
    assert!(y.contains(&format!("rpc_token: \"{}\"", token.trim())));

    let tool = match kubernetes_validate() {
        Ok(tool) => tool,
        Err(why) => {
            eprintln!("kubernetes-validate cannot be installed ({why}): manifests not validated");
            return;
        }
    };
    let run = Command::new(&tool).arg("--strict").arg(&out.manifest).output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "kubernetes-validate refused the manifests:\n{text}");
    for kind in ["configmap", "secret", "service", "statefulset"] {
        assert!(text.contains(&format!("passed for resource {kind}/")), "{kind}:\n{text}");
    }
}
