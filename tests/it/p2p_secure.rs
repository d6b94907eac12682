//! The encrypted transport between real processes: plaintext (pre-encryption) peers and
//! garbage are refused before any message is handled; a byte flipped in flight closes the
//! connection and nothing of it is used; a peer pinned by node id must prove that key; a
//! node keeps its id across restarts and refuses a key file it cannot trust.

use crate::support::{devnet, DevNode};
use ember_node::net::wire::{self, Message, Version};
use ember_testnet::wait_for;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn info(n: &DevNode) -> Value {
    n.call("node_info", json!([]))
}

fn node_id(n: &DevNode) -> String {
    info(n)["node_id"].as_str().expect("node_info.node_id").to_string()
}

fn tip(n: &DevNode) -> (u64, String) {
    let i = info(n);
    (i["height"].as_u64().unwrap(), i["tip"].as_str().unwrap().to_string())
}

fn peers(n: &DevNode) -> Vec<Value> {
    n.call("net_peers", json!([])).as_array().unwrap().clone()
}

fn ban_reason(n: &DevNode, address: &str) -> Option<String> {
    let bans = n.call("net_bans", json!([]));
    bans.as_array()
        .unwrap()
        .iter()
        .find(|b| b["address"] == address)
        .map(|b| b["reason"].as_str().unwrap_or("").to_string())
}

fn whole_log(n: &DevNode) -> String {
    std::fs::read_to_string(n.node.data_dir().join("node.log")).unwrap_or_default()
}

/// A plaintext `Version` as the protocol before encryption sent it first thing, claiming a
/// long chain, so that a node that handled it would show a better peer.
fn old_version_frame() -> Vec<u8> {
    let params = devnet();
    wire::frame(
        params.magic,
        &Message::Version(Version {
            protocol: wire::PROTOCOL_VERSION,
            genesis: params.genesis_id(),
            best_height: 1_000,
            best_work: [0x7f; 32],
            listen_port: 1,
            user_agent: "ember-node/0.0.9".into(),
            nonce: 42,
        }),
    )
}

/// Reads until the node closes the connection; returns what it sent.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(T)).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("the node closes the connection");
    got
}

fn assert_nothing_handled(a: &DevNode) {
    let i = info(a);
    assert_eq!(i["peers"], 0, "{i}");
    assert_eq!(i["best_peer_height"], 0, "the old Version was never handled: {i}");
    assert_eq!(i["syncing"], false, "{i}");
}

#[test]
fn plaintext_peers_and_garbage_are_refused_before_any_message_is_handled() {
    let a = DevNode::start(&["--no-discover"]);
    let addr = a.node.p2p_addr();

    // An old peer dials in and sends its plaintext Version: refused by the Noise handshake
    // (wrong size for its first message) without a word from the node, and banned.
    let mut s = TcpStream::connect(&addr).unwrap();
    let local = s.local_addr().unwrap().to_string();
    s.write_all(&old_version_frame()).unwrap();
    assert!(read_until_closed(&mut s).is_empty(), "the node answered a plaintext peer");
    let reason = wait_for(T, "the plaintext peer to be banned", || ban_reason(&a, &local)).unwrap();
    assert!(reason.contains("noise handshake failed"), "{reason}");
    assert_nothing_handled(&a);

    // The node dials an old peer: it opens with a Noise message (magic, length 32, an
    // ephemeral key), not a Version; the old peer's Version is refused, the peer banned.
    let old = TcpListener::bind("127.0.0.1:0").unwrap();
    let old_addr = old.local_addr().unwrap().to_string();
    a.call("net_addPeer", json!([old_addr]));
    let (mut s, _) = old.accept().unwrap();
    s.write_all(&old_version_frame()).unwrap();
    let sent = read_until_closed(&mut s);
    let params = devnet();
    assert_eq!(sent.len(), 8 + 32, "one Noise handshake message: {sent:02x?}");
    assert_eq!(&sent[..4], &params.magic);
    assert_eq!(u32::from_le_bytes(sent[4..8].try_into().unwrap()), 32);
    let reason = wait_for(T, "the old peer to be banned", || ban_reason(&a, &old_addr)).unwrap();
    assert!(reason.contains("noise handshake failed"), "{reason}");
    assert_nothing_handled(&a);

    // Garbage of the right sizes: any 32 bytes pass as an ephemeral key, but the third
    // message fails its authentication tag.
    let mut s = TcpStream::connect(&addr).unwrap();
    let local = s.local_addr().unwrap().to_string();
    s.write_all(&wire_frame(&[7u8; 32])).unwrap();
    let mut reply = [0u8; 8 + 96];
    s.read_exact(&mut reply).unwrap();
    s.write_all(&wire_frame(&[9u8; 64])).unwrap();
    read_until_closed(&mut s);
    let reason = wait_for(T, "the garbage peer to be banned", || ban_reason(&a, &local)).unwrap();
    assert!(reason.contains("decrypt"), "{reason}");
    assert_nothing_handled(&a);

    // The node keeps working.
    a.call("mining_generate", json!([1]));
    assert_eq!(tip(&a).0, 1);
}

/// `magic || u32 LE length || payload` on the devnet.
fn wire_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = devnet().magic.to_vec();
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

/// A TCP proxy in front of a node that, once armed, flips one bit of the first bytes each
/// connection's dialer sends after its two Noise handshake messages.
struct FlipProxy {
    addr: SocketAddr,
    armed: Arc<AtomicBool>,
    /// Connections with a flipped byte that the node then closed.
    closed_after_flip: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FlipProxy {
    fn start(upstream: SocketAddr) -> FlipProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = FlipProxy {
            addr: listener.local_addr().unwrap(),
            armed: Arc::default(),
            closed_after_flip: Arc::default(),
            stop: Arc::default(),
        };
        let (armed, closed, stop) =
            (proxy.armed.clone(), proxy.closed_after_flip.clone(), proxy.stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                let (armed, closed) = (armed.clone(), closed.clone());
                std::thread::spawn(move || relay(client, server, armed, closed));
            }
        });
        proxy
    }
}

impl Drop for FlipProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn relay(client: TcpStream, server: TcpStream, armed: Arc<AtomicBool>, closed: Arc<AtomicUsize>) {
    let flipped = Arc::new(AtomicBool::new(false));
    let (mut from_server, mut to_client) =
        (server.try_clone().unwrap(), client.try_clone().unwrap());
    let flipped2 = flipped.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        if flipped2.load(Ordering::SeqCst) {
            closed.fetch_add(1, Ordering::SeqCst);
        }
        let _ = to_client.shutdown(Shutdown::Both);
    });
    let (mut from_client, mut to_server) = (client, server);
    let mut forward = || -> std::io::Result<()> {
        // The dialer's two handshake messages go through untouched.
        for _ in 0..2 {
            let mut head = [0u8; 8];
            from_client.read_exact(&mut head)?;
            let len = u32::from_le_bytes(head[4..].try_into().unwrap()) as usize;
            let mut body = vec![0u8; len];
            from_client.read_exact(&mut body)?;
            to_server.write_all(&head)?;
            to_server.write_all(&body)?;
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from_client.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            if armed.load(Ordering::SeqCst) && !flipped.swap(true, Ordering::SeqCst) {
                buf[0] ^= 0x01;
            }
            to_server.write_all(&buf[..n])?;
        }
    };
    let _ = forward();
    let _ = to_server.shutdown(Shutdown::Write);
}

#[test]
fn a_byte_flipped_in_flight_closes_the_connection_and_nothing_of_it_is_accepted() {
    let a = DevNode::start(&["--no-discover"]);
    let proxy = FlipProxy::start(a.node.p2p_addr().parse().unwrap());
    let b = DevNode::start(&["--no-discover", "--peer", &proxy.addr.to_string()]);
    wait_for(T, "b to connect to a through the proxy", || {
        (peers(&a).len() == 1 && peers(&b).len() == 1).then_some(())
    })
    .unwrap();

    // From now on the first bytes b sends on each connection are altered: the block b
    // mines next, then b's Version on every reconnection.
    proxy.armed.store(true, Ordering::SeqCst);
    b.call("mining_generate", json!([1]));
    wait_for(T, "a to close two tampered connections", || {
        (proxy.closed_after_flip.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .unwrap();
    assert_eq!(tip(&a).0, 0, "a accepted nothing from the tampered connections");
    assert_eq!(tip(&b).0, 1);
    assert!(whole_log(&a).contains("frame failed authentication"), "{}", a.node.log_tail());
    // Tampering on the path is not the peer's fault: no ban.
    assert_eq!(a.call("net_bans", json!([])), json!([]));

    // Once the path is clean again b reconnects and a gets the genuine block.
    proxy.armed.store(false, Ordering::SeqCst);
    let want = tip(&b);
    wait_for(T, "a to sync b's block over a clean connection", || (tip(&a) == want).then_some(()))
        .unwrap();
    assert_eq!(a.digest(), b.digest());
}

#[test]
fn a_peer_pinned_by_node_id_must_prove_that_key() {
    let a = DevNode::start(&["--no-discover"]);
    let other = DevNode::start(&["--no-discover"]);
    let (a_id, other_id) = (node_id(&a), node_id(&other));
    assert_ne!(a_id, other_id);
    let a_addr = a.node.p2p_addr();

    // b expects `other`'s key at a's address: a proves its own, and b refuses it.
    let wrong = format!("{other_id}@{a_addr}");
    let b = DevNode::start(&["--no-discover", "--peer", &wrong]);
    let line = wait_for(T, "b to refuse a's key", || {
        whole_log(&b)
            .lines()
            .find(|l| l.contains("another key than --peer expects"))
            .map(str::to_string)
    })
    .unwrap();
    assert!(line.contains(&a_id) && line.contains(&other_id), "{line}");
    assert!(peers(&b).is_empty());

    // With a's real id the connection is made, and both sides show the proven ids.
    let c = DevNode::start(&["--no-discover", "--peer", &format!("{a_id}@{a_addr}")]);
    let c_id = node_id(&c);
    wait_for(T, "c to connect to a", || (peers(&c).len() == 1).then_some(())).unwrap();
    assert_eq!(peers(&c)[0]["node_id"], a_id.as_str());
    wait_for(T, "a to list c", || {
        peers(&a).iter().any(|p| p["node_id"] == c_id.as_str()).then_some(())
    })
    .unwrap();
    // b never got through, and a did not ban b for it.
    assert!(peers(&b).is_empty());
    assert_eq!(a.call("net_bans", json!([])), json!([]));

    // A malformed id is refused up front.
    let err = b.node.client().call("net_addPeer", json!([format!("xyz@{a_addr}")])).unwrap_err();
    assert!(err.to_string().contains("64 hex"), "{err}");
}

#[test]
fn a_restarted_node_keeps_its_id_and_refuses_a_key_file_it_cannot_trust() {
    let mut a = DevNode::start(&["--no-discover"]);
    let id = node_id(&a);
    let key = a.node.data_dir().join("node.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    a.node.pin_addresses();
    a.node.restart().unwrap();
    assert_eq!(node_id(&a), id, "the id survives a restart");

    // Peers see the same id after the restart.
    let b = DevNode::start(&["--no-discover", "--peer", &format!("{id}@{}", a.node.p2p_addr())]);
    wait_for(T, "b to connect to the restarted a", || (peers(&b).len() == 1).then_some(()))
        .unwrap();
    assert_eq!(peers(&b)[0]["node_id"], id.as_str());

    // A key file others can read is refused, and left as it is.
    a.node.stop().unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = a.node.restart().unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    // A corrupt one too.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let good = std::fs::read(&key).unwrap();
    std::fs::write(&key, b"not a key\n").unwrap();
    let err = a.node.restart().unwrap_err().to_string();
    assert!(err.contains("is corrupt"), "{err}");
    assert_eq!(std::fs::read(&key).unwrap(), b"not a key\n");
    // Restored, the node is itself again.
    std::fs::write(&key, good).unwrap();
    a.node.restart().unwrap();
    assert_eq!(node_id(&a), id);
}

#[test]
fn benchmark_plaintext_nodes_relay_among_themselves_and_never_with_encrypting_ones() {
    const FLAG: &str = "--insecure-p2p-plaintext";
    let a = DevNode::start(&["--no-discover", FLAG]);
    let b = DevNode::start(&["--no-discover", FLAG, "--peer", &a.node.p2p_addr()]);
    wait_for(T, "b to connect to a", || (peers(&b).len() == 1).then_some(())).unwrap();
    a.call("mining_generate", json!([2]));
    let want = tip(&a);
    wait_for(T, "b to get a's blocks in plaintext", || (tip(&b) == want).then_some(())).unwrap();
    assert!(whole_log(&a).contains("neither encrypted nor authenticated"));

    // An encrypting node and a plaintext one disagree in the handshake's prologue.
    let c = DevNode::start(&["--no-discover", "--peer", &a.node.p2p_addr()]);
    wait_for(T, "c to give up on a", || {
        whole_log(&c).lines().any(|l| l.contains("handshake failed")).then_some(())
    })
    .unwrap();
    assert!(peers(&c).is_empty());
    assert_eq!(tip(&c).0, 0, "nothing crossed between the two modes");

    // Outside devnet the flag is refused at start.
    let out = std::process::Command::new(ember_testnet::process::binary("ember-node").unwrap())
        .args(["--network", "testnet", FLAG, "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("devnet benchmarks only"), "{err}");
}
