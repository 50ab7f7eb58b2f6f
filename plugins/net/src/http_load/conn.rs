//! The fast path of `net/http_load` for plain-HTTP/1.1 targets, built like wrk's: every request of a run is the
//! same bytes, serialized once; each worker owns one keep-alive socket, writes those bytes and reads the answer
//! in its own task (no connection task to wake, no pool between the worker and the socket); answers are framed
//! with `httparse` and their bodies counted, not kept. (HTTPS and HTTP/2 go through reqwest, whose pool and TLS
//! they need.)

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// An answer's head may not grow past this: a target that sends more is broken, and the worker's buffer stays
/// bounded.
const MAX_HEAD: usize = 64 * 1024;
/// Headers parsed in one answer; more is an error, as in hyper's default.
const MAX_HEADERS: usize = 100;
/// Read buffer of a connection, grown on demand up to [`MAX_HEAD`] plus what one read brings.
const READ_CHUNK: usize = 16 * 1024;

/// What every request of a run shares: the target and the request's bytes.
pub struct Template {
    pub addr: SocketAddr,
    request: Bytes,
    /// HEAD: answers carry no body whatever their headers say.
    head: bool,
}

impl Template {
    /// `headers` must not carry framing (`content-length`, `transfer-encoding`): the body's length is set here.
    pub fn new(
        addr: SocketAddr,
        method: &reqwest::Method,
        target: &str,
        host: &str,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Self {
        let mut request = Vec::with_capacity(128 + body.len());
        request.extend_from_slice(method.as_str().as_bytes());
        request.push(b' ');
        request.extend_from_slice(target.as_bytes());
        request.extend_from_slice(b" HTTP/1.1\r\n");
        if !headers.contains_key(reqwest::header::HOST) {
            request.extend_from_slice(b"host: ");
            request.extend_from_slice(host.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        for (name, value) in headers {
            request.extend_from_slice(name.as_str().as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        // Like hyper: a length for any body, and for the methods that expect one even when it is empty.
        let expects_body = matches!(*method, reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH);
        if !body.is_empty() || expects_body {
            request.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        Self { addr, request: request.into(), head: *method == reqwest::Method::HEAD }
    }
}

/// How one request failed, on either path: the load counts connect errors, timeouts and the rest apart.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    Connect,
    Timeout,
    Other,
}

/// A reqwest failure (the HTTPS and HTTP/2 path) in the same three kinds as this path's own.
impl From<reqwest::Error> for Failure {
    fn from(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            Failure::Timeout
        } else if err.is_connect() {
            Failure::Connect
        } else {
            Failure::Other
        }
    }
}

/// One worker's connection, opened on first use and again after an error or a `connection: close`.
#[derive(Default)]
// PERF(http_load): wrk's design: the request serialized once, one socket per worker, no pool, bodies counted.
pub struct Connection {
    socket: Socket,
    /// The per-request timeout, armed lazily: registering a timer per request costs as much as parsing the
    /// answer, so one timer stays armed and is moved to the current request's deadline only when it fires
    /// early (at most once per `timeout` while answers come quickly).
    timer: Option<Pin<Box<Sleep>>>,
}

struct Socket {
    stream: Option<TcpStream>,
    buf: BytesMut,
}

impl Default for Socket {
    fn default() -> Self {
        Self { stream: None, buf: BytesMut::with_capacity(READ_CHUNK) }
    }
}

/// How an answer's body is delimited.
enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes (HTTP/1.0 style).
    Close,
}

struct Head {
    status: u16,
    framing: Framing,
    keep_alive: bool,
}

impl Connection {
    /// Sends one request and reads the whole answer: (status, body bytes). `started` is now, read by the
    /// caller, which needs it anyway.
    pub async fn send(
        &mut self,
        template: &Template,
        timeout: Duration,
        started: Instant,
    ) -> Result<(u16, u64), Failure> {
        let deadline = tokio::time::Instant::from_std(started + timeout);
        let Self { socket, timer } = self;
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        let result = {
            let exchange = socket.exchange(template);
            tokio::pin!(exchange);
            loop {
                tokio::select! {
                    biased;
                    result = &mut exchange => break result,
                    () = timer.as_mut() => {
                        if tokio::time::Instant::now() >= deadline {
                            break Err(Failure::Timeout);
                        }
                        // Armed for an earlier request: now for this one.
                        timer.as_mut().reset(deadline);
                    }
                }
            }
        };
        if result.is_err() {
            // Whatever state the connection is in now, the next request starts on a fresh one.
            socket.stream = None;
        }
        result
    }
}

impl Socket {
    async fn exchange(&mut self, template: &Template) -> Result<(u16, u64), Failure> {
        if self.stream.is_some() {
            match self.round_trip(template).await {
                // A kept-alive connection the server closed while idle fails before any answer: the request
                // never reached it, so it goes again on a fresh connection, as browsers and hyper's pool do.
                Err(Retry::Stale) => self.stream = None,
                other => return other.map_err(Retry::into_failure),
            }
        }
        let stream = TcpStream::connect(template.addr).await.map_err(|_| Failure::Connect)?;
        let _ = stream.set_nodelay(true);
        self.stream = Some(stream);
        self.round_trip(template).await.map_err(Retry::into_failure)
    }

    async fn round_trip(&mut self, template: &Template) -> Result<(u16, u64), Retry> {
        let Self { stream, buf } = self;
        let Some(socket) = stream.as_mut() else { return Err(Retry::Stale) };
        buf.clear();
        socket.write_all(&template.request).await.map_err(|_| Retry::Stale)?;
        let head = loop {
            // 1xx answers (100 Continue, 103 Early Hints) precede the real one and are skipped.
            match read_head(socket, buf).await? {
                head if (100..200).contains(&head.status) && head.status != 101 => continue,
                head => break head,
            }
        };
        if head.status == 101 {
            return Err(Retry::Failed(Failure::Other));
        }
        let no_body = template.head || head.status == 204 || head.status == 304;
        let bytes = match head.framing {
            _ if no_body => 0,
            Framing::Length(length) => skip_exact(socket, buf, length).await?,
            Framing::Chunked => skip_chunked(socket, buf).await?,
            Framing::Close => skip_to_end(socket, buf).await?,
        };
        let reusable = head.keep_alive && (no_body || !matches!(head.framing, Framing::Close));
        if !reusable || !buf.is_empty() {
            // Closed by the server, or it sent more than one answer: neither connection can carry the next.
            *stream = None;
        } else {
            // The answer was read whole without a read coming back empty, so tokio still thinks the socket
            // readable, and the next answer's first read would be a syscall that finds nothing. Nothing can
            // arrive before the next request but a close, and a close after this point wakes the socket
            // again (and one before it errors the next write), so the stale readiness is dropped here.
            let _ = socket.try_io(Interest::READABLE, || Err::<(), _>(std::io::ErrorKind::WouldBlock.into()));
        }
        Ok((head.status, bytes))
    }
}

enum Retry {
    /// Nothing of an answer arrived on a reused connection.
    Stale,
    Failed(Failure),
}

impl Retry {
    fn into_failure(self) -> Failure {
        match self {
            Retry::Stale => Failure::Other,
            Retry::Failed(failure) => failure,
        }
    }
}

/// Reads into `buf`; 0 means the server closed.
async fn fill(socket: &mut TcpStream, buf: &mut BytesMut) -> Result<usize, Failure> {
    buf.reserve(READ_CHUNK);
    socket.read_buf(buf).await.map_err(|_| Failure::Other)
}

/// Reads and consumes one answer's head from `buf`, reading more as needed.
async fn read_head(socket: &mut TcpStream, buf: &mut BytesMut) -> Result<Head, Retry> {
    let mut answered = !buf.is_empty();
    loop {
        if let Some((length, head)) = parse_head(buf).map_err(Retry::Failed)? {
            buf.advance(length);
            return Ok(head);
        }
        if buf.len() > MAX_HEAD {
            return Err(Retry::Failed(Failure::Other));
        }
        match fill(socket, buf).await {
            Ok(0) | Err(_) if !answered => return Err(Retry::Stale),
            Ok(0) | Err(_) => return Err(Retry::Failed(Failure::Other)),
            Ok(_) => answered = true,
        }
    }
}

/// The head at the start of `buf` and its length, or `None` when it is not all there yet.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Head)>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_length = match response.parse(buf) {
        Ok(httparse::Status::Complete(head_length)) => head_length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Failure::Other),
    };
    let status = response.code.ok_or(Failure::Other)?;
    let framing = crate::http1::framing(response.headers, response.version.unwrap_or(1)).map_err(|_| Failure::Other)?;
    let (keep_alive, chunked, length) = (framing.keep_alive, framing.chunked, framing.length);
    // Chunked wins over a length (RFC 9112 §6.3).
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(length)) => Framing::Length(length),
        (false, None) => Framing::Close,
    };
    Ok(Some((head_length, Head { status, framing, keep_alive })))
}

/// Skips `length` body bytes; the answer's size.
async fn skip_exact(socket: &mut TcpStream, buf: &mut BytesMut, length: u64) -> Result<u64, Retry> {
    let mut left = length;
    loop {
        let here = (buf.len() as u64).min(left);
        buf.advance(here as usize);
        left -= here;
        if left == 0 {
            return Ok(length);
        }
        if fill(socket, buf).await.map_err(Retry::Failed)? == 0 {
            return Err(Retry::Failed(Failure::Other));
        }
    }
}

/// Skips a chunked body and its trailers; the sum of the chunks' sizes.
async fn skip_chunked(socket: &mut TcpStream, buf: &mut BytesMut) -> Result<u64, Retry> {
    let mut total = 0u64;
    loop {
        let size = loop {
            match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((length, size))) => {
                    buf.advance(length);
                    break size;
                }
                Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD => {
                    if fill(socket, buf).await.map_err(Retry::Failed)? == 0 {
                        return Err(Retry::Failed(Failure::Other));
                    }
                }
                _ => return Err(Retry::Failed(Failure::Other)),
            }
        };
        if size == 0 {
            skip_trailers(socket, buf).await?;
            return Ok(total);
        }
        total = total.saturating_add(size);
        // The chunk's data and the CRLF after it.
        skip_exact(socket, buf, size + 2).await?;
    }
}

/// Skips trailer lines up to and including the empty line that ends a chunked body.
async fn skip_trailers(socket: &mut TcpStream, buf: &mut BytesMut) -> Result<(), Retry> {
    loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            buf.advance(end + 2);
            if end == 0 {
                return Ok(());
            }
            continue;
        }
        if buf.len() > MAX_HEAD || fill(socket, buf).await.map_err(Retry::Failed)? == 0 {
            return Err(Retry::Failed(Failure::Other));
        }
    }
}

/// Reads until the server closes; the bytes read.
async fn skip_to_end(socket: &mut TcpStream, buf: &mut BytesMut) -> Result<u64, Retry> {
    let mut total = buf.len() as u64;
    buf.clear();
    while fill(socket, buf).await.map_err(Retry::Failed)? > 0 {
        total += buf.len() as u64;
        buf.clear();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_serialized_once_with_host_and_length() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-a", reqwest::header::HeaderValue::from_static("1"));
        let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let t = Template::new(addr, &reqwest::Method::POST, "/p?q=1", "example:80", &headers, b"hi");
        assert_eq!(
            &t.request[..],
            b"POST /p?q=1 HTTP/1.1\r\nhost: example:80\r\nx-a: 1\r\ncontent-length: 2\r\n\r\nhi"
        );
        let t = Template::new(addr, &reqwest::Method::GET, "/", "h", &reqwest::header::HeaderMap::new(), b"");
        assert_eq!(&t.request[..], b"GET / HTTP/1.1\r\nhost: h\r\n\r\n");
    }

    #[test]
    fn heads_say_how_the_body_ends_and_whether_the_connection_stays() {
        let (n, head) = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").unwrap().unwrap();
        assert_eq!((n, head.status, head.keep_alive), (38, 200, true));
        assert!(matches!(head.framing, Framing::Length(5)));
        let (_, head) = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(matches!(head.framing, Framing::Chunked));
        assert!(!head.keep_alive);
        let (_, head) = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(matches!(head.framing, Framing::Close));
        assert!(!head.keep_alive);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap().is_none());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }
}
