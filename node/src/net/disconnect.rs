//! Why a connection ends, and which of those reasons are the peer's provable fault.
//!
//! Only a [`Misbehaviour`] earns a ban: something the peer itself sent that no honest node
//! sends (an undecodable or oversized message, an invalid block or signature, headers
//! that do not chain). Everything else — a slow or silent peer, a frame corrupted on the
//! path, a block that is merely early by our clock — ends the connection (or not even
//! that) without blame, as nakamoto's `DisconnectReason` and Bitcoin Core's
//! `Misbehaving` distinguish.

use std::fmt;

/// Something a peer provably did wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misbehaviour {
    /// A frame or message that breaks the wire format or its limits.
    Protocol(String),
    /// `Version` or `Verack` after the handshake.
    HandshakeAgain,
    /// A block that breaks a consensus rule its id commits to.
    InvalidBlock(String),
    /// A block body that does not match its header (altered; the id is not to blame).
    BadBlockCopy,
    /// A transaction with a bad signature or for another network.
    InvalidTransaction(String),
    /// Headers that break a consensus rule.
    InvalidHeaders(String),
    /// A `Headers` message whose headers do not each follow the one before.
    NonChainingHeaders,
    /// Too many `Headers` messages in a row that connect to nothing we know.
    UnconnectingHeaders,
    /// Headers sent again after their presync that are not the ones presynced.
    ChangedHeaders,
    /// The Noise handshake failed on garbage or another protocol.
    Handshake(String),
}

impl fmt::Display for Misbehaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misbehaviour::Protocol(e) => write!(f, "protocol violation: {e}"),
            Misbehaviour::HandshakeAgain => write!(f, "handshake message after the handshake"),
            Misbehaviour::InvalidBlock(e) => write!(f, "sent an invalid block: {e}"),
            Misbehaviour::BadBlockCopy => {
                write!(f, "sent a block body that does not match its header")
            }
            Misbehaviour::InvalidTransaction(e) => write!(f, "sent an invalid transaction: {e}"),
            Misbehaviour::InvalidHeaders(e) => write!(f, "sent invalid headers: {e}"),
            Misbehaviour::NonChainingHeaders => {
                write!(f, "sent headers that do not chain one to the next")
            }
            Misbehaviour::UnconnectingHeaders => {
                write!(f, "sent too many headers messages that connect to nothing known")
            }
            Misbehaviour::ChangedHeaders => {
                write!(f, "sent other headers on download than it showed in presync")
            }
            Misbehaviour::Handshake(e) => write!(f, "handshake: {e}"),
        }
    }
}

/// Why a connection was closed by us (or by the peer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The peer's fault; it is banned.
    Misbehaved(Misbehaviour),
    /// A frame to it was not written within the send deadline: it stopped reading.
    StalledReader,
    /// What we queued for it exceeded its budget: it reads slower than it is sent to.
    SlowReader,
    /// Nothing heard from it for three ping intervals.
    Silent,
    /// A frame failed authentication: altered on the path, or forged (nobody to blame).
    Auth,
    /// It closed the connection, or the socket failed.
    Closed,
    /// Its inbound slot went to another peer.
    Evicted,
    /// An operator asked (`net_disconnect`, `net_ban`).
    Operator,
    /// The node is stopping.
    Shutdown,
}

impl DisconnectReason {
    /// Whether the peer is to blame (and banned).
    pub fn is_peer_fault(&self) -> bool {
        matches!(self, DisconnectReason::Misbehaved(_))
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::Misbehaved(m) => m.fmt(f),
            DisconnectReason::StalledReader => write!(f, "peer stopped reading (send deadline)"),
            DisconnectReason::SlowReader => write!(f, "peer too slow (send budget exceeded)"),
            DisconnectReason::Silent => write!(f, "peer silent"),
            DisconnectReason::Auth => {
                write!(f, "frame failed authentication (corrupted in flight or forged)")
            }
            DisconnectReason::Closed => write!(f, "connection closed"),
            DisconnectReason::Evicted => write!(f, "evicted to make room for another peer"),
            DisconnectReason::Operator => write!(f, "disconnected by the operator"),
            DisconnectReason::Shutdown => write!(f, "node stopping"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_misbehaviour_is_the_peers_fault() {
        assert!(DisconnectReason::Misbehaved(Misbehaviour::BadBlockCopy).is_peer_fault());
        for r in [
            DisconnectReason::StalledReader,
            DisconnectReason::SlowReader,
            DisconnectReason::Silent,
            DisconnectReason::Auth,
            DisconnectReason::Closed,
            DisconnectReason::Evicted,
            DisconnectReason::Operator,
            DisconnectReason::Shutdown,
        ] {
            assert!(!r.is_peer_fault(), "{r}");
        }
    }
}
