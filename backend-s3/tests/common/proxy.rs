//! A fault-injecting HTTP proxy on 127.0.0.1 in front of the test server: what real
//! S3 does under load (503 SlowDown, 500s, a reply lost after the write landed) or
//! misconfiguration (403), on demand, with every request counted. The S3 server stays
//! real: passed requests reach it byte for byte.
//!
//! One request per connection: the proxy asks the server to close after each reply, so
//! it can read a request whole, decide its fate, and forward it without parsing replies.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Forward it and relay the reply.
    Pass,
    /// Answer this status and S3 error code without forwarding.
    Fail(u16, &'static str),
    /// Forward it, let the server apply it, then cut the connection without a reply.
    LoseReply,
}

#[derive(Debug)]
struct State {
    upstream: String,
    plan: Mutex<VecDeque<Fate>>,
    otherwise: Mutex<Fate>,
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    lines: Mutex<Vec<String>>,
    strip_conditions: AtomicBool,
}

/// The proxy; it stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`, to use as the storage's endpoint.
    pub endpoint: String,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// A proxy to `upstream` (`http://host:port`) that passes everything until told
    /// otherwise.
    pub async fn start(upstream: &str) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State {
            upstream: upstream.trim_start_matches("http://").to_owned(),
            plan: Mutex::new(VecDeque::new()),
            otherwise: Mutex::new(Fate::Pass),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            lines: Mutex::new(Vec::new()),
            strip_conditions: AtomicBool::new(false),
        });
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                while let Ok((conn, _)) = listener.accept().await {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let _ = serve(conn, &state).await;
                    });
                }
            }
        });
        Ok(FaultProxy {
            endpoint,
            state,
            task,
        })
    }

    /// The next requests meet these fates, in order; later ones meet `otherwise`.
    pub fn plan(&self, fates: impl IntoIterator<Item = Fate>, otherwise: Fate) {
        if let Ok(mut p) = self.state.plan.lock() {
            p.clear();
            p.extend(fates);
        }
        if let Ok(mut o) = self.state.otherwise.lock() {
            *o = otherwise;
        }
    }

    /// From now on, drop `If-Match` and `If-None-Match` from every request (`false`:
    /// forward them again): a server that accepts conditional writes and ignores them.
    pub fn strip_conditions(&self, on: bool) {
        self.state.strip_conditions.store(on, Ordering::SeqCst);
    }

    /// Requests seen since the last reset.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// The request lines (`PUT /bucket/key HTTP/1.1`) seen since the last reset.
    pub fn lines(&self) -> Vec<String> {
        self.state
            .lines
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// The most requests in flight at once since the last reset.
    pub fn max_in_flight(&self) -> u64 {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Zeroes the counters.
    pub fn reset(&self) {
        self.state.requests.store(0, Ordering::SeqCst);
        self.state.max_in_flight.store(0, Ordering::SeqCst);
        if let Ok(mut l) = self.state.lines.lock() {
            l.clear();
        }
    }
}

async fn serve(mut conn: TcpStream, state: &State) -> std::io::Result<()> {
    let strip = state.strip_conditions.load(Ordering::SeqCst);
    let Some(request) = read_request(&mut conn, strip).await? else {
        return Ok(());
    };
    state.requests.fetch_add(1, Ordering::SeqCst);
    let line =
        String::from_utf8_lossy(request.split(|b| *b == b'\r').next().unwrap_or(&[])).into_owned();
    if let Ok(mut l) = state.lines.lock() {
        l.push(line);
    }
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let fate = {
        let next = state.plan.lock().ok().and_then(|mut p| p.pop_front());
        match next {
            Some(f) => f,
            None => state.otherwise.lock().map(|o| *o).unwrap_or(Fate::Pass),
        }
    };
    // The request stops counting as in flight before its reply is written: once the
    // client can see the reply it may send its next request, and counting past that
    // point would show more requests in flight than the client ever had.
    let mut done = Some(());
    let mut leave = || {
        if done.take().is_some() {
            state.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    };
    let result = async {
        match fate {
            Fate::Fail(status, code) => {
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                     <Message>injected by the test proxy</Message></Error>"
                );
                let reply = format!(
                    "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                leave();
                conn.write_all(reply.as_bytes()).await?;
                conn.shutdown().await
            }
            Fate::Pass | Fate::LoseReply => {
                let mut upstream = TcpStream::connect(&state.upstream).await?;
                upstream.write_all(&request).await?;
                let mut reply = Vec::new();
                upstream.read_to_end(&mut reply).await?;
                leave();
                if fate == Fate::Pass {
                    conn.write_all(&reply).await?;
                }
                conn.shutdown().await
            }
        }
    }
    .await;
    leave();
    result
}

/// Reads one request (head and `Content-Length` body), rewriting it to close the
/// connection after the reply, and without its conditions if `strip`. `None` if the
/// client closed first.
async fn read_request(conn: &mut TcpStream, strip: bool) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut length = 0usize;
    let mut lines: Vec<&str> = Vec::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:")
            || (strip && (lower.starts_with("if-match:") || lower.starts_with("if-none-match:")))
        {
            continue;
        }
        lines.push(line);
    }
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(&buf[head_end..head_end + length]);
    Ok(Some(out))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
