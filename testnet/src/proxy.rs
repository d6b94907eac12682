//! A loopback TCP proxy for one P2P link, so the testnet can break and slow links without
//! root: node `i` dials the proxy (`--peer <proxy addr>`), the proxy dials node `j`.
//!
//! Faults, changed at any time through [`LinkProxy::set_faults`]:
//! - **partition**: current connections are closed and new ones are accepted and closed at
//!   once, until healed. Accept-then-close (rather than refusing) keeps the dialing node's
//!   reconnect back-off at its minimum, so a healed link is back within a fraction of a
//!   second.
//! - **latency**: every chunk read from one side is written to the other `latency` ms later,
//!   in both directions, in order.
//! - **loss**: TCP cannot drop bytes without corrupting the stream, so loss is modelled as
//!   what TCP turns it into: a retransmission delay. With probability `loss_pct`, a chunk is
//!   held back an extra [`RETRANSMIT_DELAY`]; the chunks behind it wait too (head-of-line
//!   blocking), exactly as on a lossy TCP connection.
//!
//! Each direction of a connection is a reader thread and a writer thread joined by a queue of
//! `(due time, bytes)`; the writer sleeps until each chunk is due. Order is preserved because
//! the queue is FIFO and due times never go backwards.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The extra delay of a "lost" chunk: a typical minimum TCP retransmission timeout.
pub const RETRANSMIT_DELAY: Duration = Duration::from_millis(200);

/// Chunks queued per direction before the reader stops reading.
const QUEUED_CHUNKS: usize = 256;

/// The faults applied to a link (both directions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    pub partitioned: bool,
    pub latency_ms: u64,
    /// Percentage (0–100) of chunks delayed by [`RETRANSMIT_DELAY`].
    pub loss_pct: f64,
}

struct Shared {
    /// Where connections go; `None` until the target node listens.
    target: Mutex<Option<SocketAddr>>,
    faults: Mutex<Faults>,
    /// Both sockets of each live connection, to close them on a partition.
    conns: Mutex<HashMap<u64, (TcpStream, TcpStream)>>,
    next_conn: AtomicU64,
    closed: AtomicBool,
    rng: Mutex<u64>,
    /// Chunks read from either side, and how many of them were held back for latency or
    /// for loss (what the faults did, counted).
    chunks: AtomicU64,
    delayed: AtomicU64,
    held_back: AtomicU64,
}

/// What a proxy's faults did to the chunks it relayed, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Chunks read from either side.
    pub chunks: u64,
    /// Chunks scheduled `latency_ms` later than they were read.
    pub delayed: u64,
    /// Chunks held back a further [`RETRANSMIT_DELAY`] for loss.
    pub held_back: u64,
}

impl Shared {
    fn faults(&self) -> Faults {
        *self.faults.lock().expect("never poisoned")
    }

    /// True with probability `pct` percent (xorshift64; statistical quality is plenty).
    fn chance(&self, pct: f64) -> bool {
        if pct <= 0.0 {
            return false;
        }
        let mut s = self.rng.lock().expect("never poisoned");
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        ((*s % 10_000) as f64) < pct * 100.0
    }

    fn close_all(&self) {
        for (_, (a, b)) in self.conns.lock().expect("never poisoned").drain() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    fn forget(&self, id: u64) {
        if let Some((a, b)) = self.conns.lock().expect("never poisoned").remove(&id) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

/// A proxy listening on `127.0.0.1:<port from the OS>`. Dropping it closes the listener and
/// every connection through it.
pub struct LinkProxy {
    shared: Arc<Shared>,
    listen: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl LinkProxy {
    /// Starts a proxy towards `target` (or nowhere yet: connections are closed until
    /// [`LinkProxy::set_target`]).
    pub fn start(target: Option<SocketAddr>) -> Result<LinkProxy> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("cannot listen for a link proxy")?;
        let listen = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target: Mutex::new(target),
            faults: Mutex::new(Faults::default()),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            rng: Mutex::new(crate::network::rand_u64() | 1),
            chunks: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name(format!("proxy-{}", listen.port()))
            .spawn(move || accept_loop(listener, s))?;
        Ok(LinkProxy { shared, listen, accept: Some(accept) })
    }

    /// The address nodes dial.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    pub fn target(&self) -> Option<SocketAddr> {
        *self.shared.target.lock().expect("never poisoned")
    }

    /// Points the proxy at a (restarted) node; current connections go to the old address
    /// and are closed.
    pub fn set_target(&self, target: SocketAddr) {
        let old = self.shared.target.lock().expect("never poisoned").replace(target);
        if old != Some(target) {
            self.shared.close_all();
        }
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Applies new faults; starting a partition closes every current connection.
    pub fn set_faults(&self, faults: Faults) {
        let was =
            std::mem::replace(&mut *self.shared.faults.lock().expect("never poisoned"), faults);
        if faults.partitioned && !was.partitioned {
            self.shared.close_all();
        }
    }

    /// Live connections through the proxy.
    pub fn connections(&self) -> usize {
        self.shared.conns.lock().expect("never poisoned").len()
    }

    /// What the faults did so far.
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            chunks: self.shared.chunks.load(Ordering::Relaxed),
            delayed: self.shared.delayed.load(Ordering::Relaxed),
            held_back: self.shared.held_back.load(Ordering::Relaxed),
        }
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        // Wake the blocking accept so its thread sees `closed` and drops the listener.
        let _ = TcpStream::connect_timeout(&self.listen, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        self.shared.close_all();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = stream else { continue };
        let target = *shared.target.lock().expect("never poisoned");
        // Partitioned or nowhere to go: accept and close at once (see the module docs).
        let Some(target) = target.filter(|_| !shared.faults().partitioned) else {
            drop(client);
            continue;
        };
        let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
            continue;
        };
        if let Err(e) = open_connection(&shared, client, upstream) {
            ember_node::errln!("[proxy] cannot relay a connection to {target}: {e}");
        }
    }
}

fn open_connection(shared: &Arc<Shared>, client: TcpStream, upstream: TcpStream) -> Result<()> {
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    shared
        .conns
        .lock()
        .expect("never poisoned")
        .insert(id, (client.try_clone()?, upstream.try_clone()?));
    // A partition may have started between the check and the insert.
    if shared.faults().partitioned {
        shared.forget(id);
        return Ok(());
    }
    pump(shared.clone(), id, client.try_clone()?, upstream.try_clone()?)?;
    pump(shared.clone(), id, upstream, client)?;
    Ok(())
}

/// Relays `from` → `to` with the link's faults, on two threads; when either side ends, the
/// whole connection is closed.
fn pump(shared: Arc<Shared>, id: u64, mut from: TcpStream, mut to: TcpStream) -> Result<()> {
    // Bounded, so a slow link pushes back on the sender as TCP would (at most
    // QUEUED_CHUNKS × 64 KiB in flight per direction) instead of buffering without limit.
    let (tx, rx) = mpsc::sync_channel::<(Instant, Vec<u8>)>(QUEUED_CHUNKS);
    let reader_shared = shared.clone();
    std::thread::Builder::new().name("proxy-read".into()).spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_due = Instant::now();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let f = reader_shared.faults();
            let mut delay = Duration::from_millis(f.latency_ms);
            reader_shared.chunks.fetch_add(1, Ordering::Relaxed);
            if f.latency_ms > 0 {
                reader_shared.delayed.fetch_add(1, Ordering::Relaxed);
            }
            if reader_shared.chance(f.loss_pct) {
                reader_shared.held_back.fetch_add(1, Ordering::Relaxed);
                delay += RETRANSMIT_DELAY;
            }
            // Never earlier than the chunk before it (latency may have just been lowered).
            let due = (Instant::now() + delay).max(last_due);
            last_due = due;
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
        reader_shared.forget(id);
    })?;
    std::thread::Builder::new().name("proxy-write".into()).spawn(move || {
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        shared.forget(id);
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server, a proxy in front of it, and a client.
    fn echo_through_proxy() -> (LinkProxy, TcpStream) {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in server.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut s);
                });
            }
        });
        let proxy = LinkProxy::start(Some(addr)).unwrap();
        let client = TcpStream::connect(proxy.addr()).unwrap();
        client.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (proxy, client)
    }

    fn roundtrip(c: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        c.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got)?;
        Ok(got)
    }

    /// How a connection answered a message that needed an echo.
    #[derive(Debug, PartialEq)]
    enum Answer {
        Echoed,
        /// End of stream, or reset: the proxy closed the connection.
        Closed,
        /// Nothing within the read timeout: open but dead, which is not what a partition
        /// must do.
        TimedOut,
        Other(String),
    }

    fn answer(c: &mut TcpStream, msg: &[u8]) -> Answer {
        use std::io::ErrorKind::*;
        let closed = |e: &std::io::Error| {
            matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof)
        };
        match roundtrip(c, msg) {
            Ok(got) if got == msg => Answer::Echoed,
            Ok(got) => Answer::Other(format!("echoed {got:?}")),
            Err(e) if closed(&e) => Answer::Closed,
            Err(e) if matches!(e.kind(), WouldBlock | TimedOut) => Answer::TimedOut,
            Err(e) => Answer::Other(e.to_string()),
        }
    }

    #[test]
    fn relays_in_order_and_delays_both_directions() {
        let (proxy, mut c) = echo_through_proxy();
        assert_eq!(roundtrip(&mut c, b"hello").unwrap(), b"hello");
        assert_eq!(proxy.stats().delayed, 0, "no latency yet");
        proxy.set_faults(Faults { latency_ms: 100, ..Faults::default() });
        let before = proxy.stats();
        let t = Instant::now();
        let msg: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        assert_eq!(roundtrip(&mut c, &msg).unwrap(), msg);
        // Every chunk, both ways, was scheduled 100 ms late; a monotonic clock shows the
        // round trip took at least 100 ms each way.
        let after = proxy.stats();
        let chunks = after.chunks - before.chunks;
        assert!(chunks >= 2, "{chunks} chunks for a round trip");
        assert_eq!(after.delayed - before.delayed, chunks, "{after:?}");
        assert_eq!(after.held_back, 0, "no loss configured");
        assert!(t.elapsed() >= Duration::from_millis(200), "{:?}", t.elapsed());
    }

    #[test]
    fn loss_delays_but_never_corrupts() {
        let (proxy, mut c) = echo_through_proxy();
        proxy.set_faults(Faults { loss_pct: 100.0, ..Faults::default() });
        let t = Instant::now();
        assert_eq!(roundtrip(&mut c, b"abc").unwrap(), b"abc");
        // 100% loss: every chunk (at least one each way) was held back once.
        let s = proxy.stats();
        assert!(s.chunks >= 2 && s.held_back == s.chunks, "{s:?}");
        assert!(t.elapsed() >= RETRANSMIT_DELAY * 2, "{:?}", t.elapsed());
    }

    #[test]
    fn partition_closes_connections_until_healed() {
        let (proxy, mut c) = echo_through_proxy();
        assert_eq!(answer(&mut c, b"x"), Answer::Echoed);
        proxy.set_faults(Faults { partitioned: true, ..Faults::default() });
        assert_eq!(answer(&mut c, b"y"), Answer::Closed, "the old connection is closed");
        let mut c2 = TcpStream::connect(proxy.addr()).unwrap();
        c2.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(answer(&mut c2, b"z"), Answer::Closed, "new connections are closed");
        assert_eq!(proxy.connections(), 0);
        proxy.set_faults(Faults::default());
        let mut c3 = TcpStream::connect(proxy.addr()).unwrap();
        c3.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(answer(&mut c3, b"healed"), Answer::Echoed);
    }

    #[test]
    fn dropping_the_proxy_frees_its_port() {
        let (proxy, _c) = echo_through_proxy();
        let addr = proxy.addr();
        drop(proxy);
        assert!(TcpStream::connect(addr).is_err());
    }
}
