//! Node identity: the static X25519 key a node proves in every Noise handshake, and the
//! node id derived from it.
//!
//! The key lives in `<data dir>/node.key` as 64 hex characters (the private key) and a
//! newline. It is created on first start with mode 0600 (written to a temporary file, synced
//! and renamed, so a crash never leaves half a key behind). A key file that is not exactly
//! that, or that the group or others may read or write, is refused with an error that says
//! what to do: the node never silently replaces an identity, since peers may pin it
//! (`--peer ID@host:port`).
//!
//! The node id is the static public key in hex (64 characters). It is not secret.

use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// File name of the static key in the data dir.
pub const KEY_FILE: &str = "node.key";

/// A node's public identity: its static X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId([u8; 32]);

impl NodeId {
    pub fn from_bytes(bytes: [u8; 32]) -> NodeId {
        NodeId(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// Why a node id did not parse.
#[derive(Debug, thiserror::Error)]
#[error("a node id is 64 hex characters (the peer's `node_info.node_id`), got {0:?}")]
pub struct NodeIdError(String);

impl FromStr for NodeId {
    type Err = NodeIdError;
    fn from_str(s: &str) -> Result<NodeId, NodeIdError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| NodeIdError(s.to_string()))?;
        Ok(NodeId(out))
    }
}

/// Where a peer listens: an IP address, or a DNS name resolved again at every dial (a
/// restarted container or pod may come back with another IP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Addr(SocketAddr),
    /// A host name (RFC 1123 labels: letters, digits, '-', dot-separated) and a port.
    Name {
        host: String,
        port: u16,
    },
}

impl Endpoint {
    /// The addresses it stands for now: itself, or what the resolver answers for the name
    /// (IPv4 first). An error when the name does not resolve.
    pub async fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            Endpoint::Addr(a) => Ok(vec![*a]),
            Endpoint::Name { host, port } => {
                let mut addrs: Vec<SocketAddr> =
                    tokio::net::lookup_host((host.as_str(), *port)).await?.collect();
                addrs.sort_by_key(|a| !a.is_ipv4());
                addrs.dedup();
                Ok(addrs)
            }
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Addr(a) => write!(f, "{a}"),
            Endpoint::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;
    /// `ip:port`, `[ipv6]:port` or `host:port`.
    fn from_str(s: &str) -> Result<Endpoint, String> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Endpoint::Addr(addr));
        }
        let bad = |why: &str| format!("{s:?} is not ip:port or host:port ({why})");
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no :port"))?;
        let port: u16 = port.parse().map_err(|_| bad("the port must be 1 to 65535"))?;
        if port == 0 {
            return Err(bad("the port must be 1 to 65535"));
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return Err(bad("the host must be an IP address or a DNS name"));
        }
        if host.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
            return Err(bad("not a valid IPv4 address"));
        }
        Ok(Endpoint::Name { host: host.to_ascii_lowercase(), port })
    }
}

/// A peer to dial: `host:port`, or `ID@host:port` to also require that the peer proves the
/// static key with that node id. The host is an IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTarget {
    pub endpoint: Endpoint,
    pub expected: Option<NodeId>,
}

impl FromStr for PeerTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<PeerTarget, String> {
        let (id, addr) = match s.split_once('@') {
            Some((id, addr)) => (Some(id), addr),
            None => (None, s),
        };
        let expected = id
            .map(|id| id.parse::<NodeId>().map_err(|e| format!("peer {s:?}: {e}")))
            .transpose()?;
        let endpoint = addr.parse().map_err(|e| {
            format!("peer {e}; give ip:port, host:port, or ID@host:port (ID: the peer's node_id)")
        })?;
        Ok(PeerTarget { endpoint, expected })
    }
}

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read the node key {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("cannot create the node key {path}: {error}")]
    Create { path: PathBuf, error: std::io::Error },
    #[error(
        "the node key {path} has mode {mode:o}: it must be readable by its owner only \
         (run `chmod 600 {path}`)"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "the node key {path} is corrupt ({why}); restore it from a backup, or delete it to \
         start with a new node id (peers that pinned the old id will refuse this node)"
    )]
    Corrupt { path: PathBuf, why: String },
}

/// The node's static key pair. The private half is wiped from memory when dropped.
pub struct NodeKey {
    private: [u8; 32],
    id: NodeId,
}

impl NodeKey {
    /// A fresh random key (not saved anywhere).
    pub fn generate() -> NodeKey {
        let mut private = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut private);
        NodeKey::from_private(private)
    }

    /// The key with this private half; the public half is derived.
    pub fn from_private(private: [u8; 32]) -> NodeKey {
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .expect("snow's default resolver is built with Curve25519");
        dh.set(&private);
        let public: [u8; 32] = dh.pubkey().try_into().expect("X25519 public keys are 32 bytes");
        NodeKey { private, id: NodeId(public) }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub(crate) fn private(&self) -> &[u8; 32] {
        &self.private
    }

    /// Loads `<data_dir>/node.key`, creating it (mode 0600) when there is none.
    pub fn load_or_create(data_dir: &Path) -> Result<NodeKey, KeyFileError> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyFileError::Permissions { path, mode });
                }
                let text = std::fs::read(&path)
                    .map_err(|error| KeyFileError::Read { path: path.clone(), error })?;
                Self::parse_file(&text).map_err(|why| KeyFileError::Corrupt { path, why })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = NodeKey::generate();
                key.write_new(&path)
                    .map_err(|error| KeyFileError::Create { path: path.clone(), error })?;
                tracing::info!(node_id = %key.id, path = %path.display(), "created a node key");
                Ok(key)
            }
            Err(error) => Err(KeyFileError::Read { path, error }),
        }
    }

    fn parse_file(text: &[u8]) -> Result<NodeKey, String> {
        let body = text.strip_suffix(b"\n").unwrap_or(text);
        if body.len() != 64 {
            return Err(format!(
                "expected 64 hex characters and a newline, found {} bytes",
                text.len()
            ));
        }
        let mut private = [0u8; 32];
        hex::decode_to_slice(body, &mut private).map_err(|_| "not hex".to_string())?;
        Ok(NodeKey::from_private(private))
    }

    /// Writes the key to a fresh file: temporary file (0600), sync, rename.
    fn write_new(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("key.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(format!("{}\n", hex::encode(self.private)).as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            // Make the rename itself durable.
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

impl Drop for NodeKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private);
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({})", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_reloaded_with_the_same_id() {
        let dir = tempfile::tempdir().unwrap();
        let a = NodeKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = NodeKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.private(), b.private());
    }

    #[test]
    fn loose_permissions_and_corrupt_files_are_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let key = NodeKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = NodeKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, KeyFileError::Permissions { mode: 0o644, .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        for bad in [&b"short\n"[..], &[b'z'; 65][..], b""] {
            std::fs::write(&path, bad).unwrap();
            let err = NodeKey::load_or_create(dir.path()).unwrap_err();
            assert!(matches!(err, KeyFileError::Corrupt { .. }), "{err}");
            // Refused, not replaced.
            assert_eq!(std::fs::read(&path).unwrap(), bad);
        }
        // A good file again gives back the same identity.
        std::fs::write(&path, format!("{}\n", hex::encode(key.private()))).unwrap();
        assert_eq!(NodeKey::load_or_create(dir.path()).unwrap().id(), key.id());
    }

    #[test]
    fn node_ids_and_peer_targets_parse() {
        let id = NodeKey::generate().id();
        assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
        assert!("abc".parse::<NodeId>().is_err());

        let plain: PeerTarget = "127.0.0.1:9545".parse().unwrap();
        assert_eq!(plain.endpoint, Endpoint::Addr("127.0.0.1:9545".parse().unwrap()));
        let named: PeerTarget = "Node-1.ember:9545".parse().unwrap();
        assert_eq!(named.endpoint, Endpoint::Name { host: "node-1.ember".into(), port: 9545 });
        for bad in ["foo", "foo:0", "foo:70000", "-x:1", "a..b:1", "a_b:1", "1.2.3:4", ":9"] {
            assert!(bad.parse::<PeerTarget>().is_err(), "{bad} accepted");
        }
        assert_eq!(plain.expected, None);
        let pinned: PeerTarget = format!("{id}@127.0.0.1:9545").parse().unwrap();
        assert_eq!(pinned.expected, Some(id));
        assert_eq!(pinned.endpoint, plain.endpoint);
        assert!("nothex@127.0.0.1:9545".parse::<PeerTarget>().unwrap_err().contains("64 hex"));
        assert!(format!("{id}@nowhere").parse::<PeerTarget>().is_err());
    }
}
