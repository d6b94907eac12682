//! A deliberately tiny HTTP/1.1 server and client over std `TcpStream`, enough for the
//! supervisor's loopback endpoint (a page, a JSON document, control commands) and for the
//! commands that talk to it. One thread per request, `Connection: close`, bounded header
//! and body sizes; no keep-alive, no chunked bodies. The testnet crate stays synchronous.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_BODY_BYTES: usize = 64 * 1024;

/// A parsed request.
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A response to send.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        Response { status, content_type: "application/json", body: v.to_string().into_bytes() }
    }

    pub fn html(body: &str) -> Response {
        Response { status: 200, content_type: "text/html; charset=utf-8", body: body.into() }
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response { status, content_type: "text/plain; charset=utf-8", body: body.into() }
    }
}

/// A server on a loopback address; dropping it stops accepting and frees the port.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `handler` on `addr` (port 0 = from the OS).
    pub fn start(
        addr: SocketAddr,
        handler: impl Fn(Request) -> Response + Send + Sync + 'static,
    ) -> Result<Server> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("cannot listen on {addr} for the dashboard"))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("http".into()).spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let handler = handler.clone();
                let _ = std::thread::Builder::new().name("http-conn".into()).spawn(move || {
                    let _ = serve_one(conn, &*handler);
                });
            }
        })?;
        Ok(Server { addr, stop, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(conn: TcpStream, handler: &dyn Fn(Request) -> Response) -> Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut out = conn.try_clone()?;
    let resp = match read_request(conn) {
        Ok(req) => handler(req),
        Err(e) => Response::text(400, &format!("bad request: {e}")),
    };
    write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         Connection: close\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len()
    )?;
    out.write_all(&resp.body)?;
    out.flush()?;
    Ok(())
}

fn read_request(conn: TcpStream) -> Result<Request> {
    let mut r = BufReader::new(conn).take(MAX_HEADER_BYTES as u64);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        bail!("no request line");
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            bail!("headers not terminated");
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse())
        .transpose()
        .map_err(|_| anyhow!("bad Content-Length"))?
        .unwrap_or(0);
    if len > MAX_BODY_BYTES {
        bail!("body too large");
    }
    let mut r = r.into_inner();
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Request { method, path, headers, body })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    }
}

/// Sends one request and returns (status, body). `headers` are extra header lines.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, String)> {
    let sock: SocketAddr = addr.parse().with_context(|| format!("bad address {addr:?}"))?;
    let mut conn = TcpStream::connect_timeout(&sock, Duration::from_secs(5))
        .with_context(|| format!("cannot reach the testnet supervisor at {addr}"))?;
    conn.set_read_timeout(Some(timeout))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    let mut text = String::new();
    conn.read_to_string(&mut text)
        .with_context(|| format!("no answer from the testnet supervisor at {addr}"))?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow!("bad HTTP answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad HTTP status line"))?;
    Ok((status, body.to_string()))
}
