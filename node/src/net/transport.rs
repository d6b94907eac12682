//! The I/O seam of the network: the only place where the P2P code reaches sockets.
//!
//! Production runs over [`TcpTransport`] (tokio TCP). The deterministic simulator in
//! `node/tests/sim.rs` implements [`Transport`] over `turmoil`'s simulated TCP, so the same
//! handshake, relay, sync and ban code runs inside a simulated network with partitions,
//! latency and loss. Timers come from `tokio::time` everywhere in the network code, which
//! turmoil drives with simulated time.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to a peer.
pub trait PeerStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PeerStream for T {}

/// A boxed peer stream.
pub type BoxStream = Box<dyn PeerStream>;
/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bound listener for inbound peers.
pub trait PeerListener: Send + 'static {
    /// Waits for the next inbound connection.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>>;
    /// The address actually bound (port 0 resolved).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// How the network opens connections, and how it runs CPU-heavy work.
pub trait Transport: Send + Sync + 'static {
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn PeerListener>>>;
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<BoxStream>>;
    /// Whether block validation should run inline on the network task instead of on
    /// tokio's blocking pool. A simulator says yes: its hosts share one thread, and work on
    /// another thread would finish at a time the simulation does not control.
    fn inline_blocking(&self) -> bool {
        false
    }
}

/// tokio TCP, with Nagle off (messages are small and latency matters).
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpTransport;

struct TcpPeerListener(tokio::net::TcpListener);

impl PeerListener for TcpPeerListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxStream, SocketAddr)>> {
        Box::pin(async move {
            let (s, a) = self.0.accept().await?;
            let _ = s.set_nodelay(true);
            Ok((Box::new(s) as BoxStream, a))
        })
    }
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Transport for TcpTransport {
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<Box<dyn PeerListener>>> {
        Box::pin(async move {
            let l = tokio::net::TcpListener::bind(addr).await?;
            Ok(Box::new(TcpPeerListener(l)) as Box<dyn PeerListener>)
        })
    }
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'_, io::Result<BoxStream>> {
        Box::pin(async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            let _ = s.set_nodelay(true);
            Ok(Box::new(s) as BoxStream)
        })
    }
}
