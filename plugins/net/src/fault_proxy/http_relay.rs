//! One connection through a `protocol: http` proxy: HTTP/1.1 read request by request, each one's faults drawn
//! (`http_fault`), then either answered here (`http_respond`), dropped (`http_drop`), or sent on with its answer
//! relayed back, delayed, throttled, cut or with headers changed as the faults say.
//!
//! The relay is transparent where no fault acts: heads go on byte for byte unless a header is changed, bodies
//! are streamed through in the framing they came with (never held whole: at most one head, 64 KiB, plus one
//! read, 16 KiB, per side), an upstream that closes makes the client's connection close, and an upgrade (101,
//! a WebSocket) or a `CONNECT` becomes a plain byte relay. A request that cannot be framed (two lengths that
//! disagree, a length and a transfer-encoding, a head past 64 KiB) is answered 400 or 431 and its connection
//! closed: passed on, it is how requests are smuggled past a proxy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use prometheus::IntCounter;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::http_fault::{reason, Action, Before, RequestView};
use super::link::reset_on_close;
use super::metrics::Counters;
use super::toxic::{Effect, Stream, Toxic};
use crate::http1::{framing, Framing};

/// A head (request or answer) may not grow past this; the connection's buffers stay bounded.
const MAX_HEAD: usize = 64 * 1024;
/// Headers in one head, as hyper's default.
const MAX_HEADERS: usize = 100;
const READ_CHUNK: usize = 16 * 1024;

/// Runs the connection until either side closes or a fault ends it.
pub async fn run(
    client: TcpStream,
    upstream: TcpStream,
    toxics: watch::Receiver<Arc<Vec<Toxic>>>,
    counters: Arc<Counters>,
) {
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, mut client_write) = client.into_split();
    let (upstream_read, mut upstream_write) = upstream.into_split();
    let mut client_in = Inbound::new(client_read);
    let mut upstream_in = Inbound::new(upstream_read);
    loop {
        // Between requests the upstream is watched too: one that closes (or speaks unasked) ends the client's
        // connection at once, as it would without the proxy, rather than at the next request.
        let next = tokio::select! {
            next = read_request(&mut client_in) => next,
            _ = upstream_in.fill() => return,
        };
        let request = match next {
            Ok(Some(request)) => request,
            // The client closed between requests, or went mid-head: nothing to answer.
            Ok(None) | Err(Refusal::Gone) => return,
            Err(Refusal::Status(status, why)) => {
                let answer = plain_answer(status, why, false);
                if client_write.write_all(&answer).await.is_ok() {
                    counters.bytes_downstream.inc_by(answer.len() as u64);
                }
                return;
            }
        };
        counters.http.requests.inc();
        let toxics = toxics.borrow().clone();
        let plan = Plan::draw(&toxics, &request, &counters);
        match plan.terminal {
            Some(Action::Drop { reset }) => {
                if *reset {
                    reset_on_close(&client_write);
                    client_write.forget();
                }
                return;
            }
            Some(Action::Respond { status, body, headers }) => {
                // The request's body is read and let go: the upstream never hears of this request.
                client_in.buf.advance(request.head_length);
                if skip_body(&mut client_in, request.body).await.is_err() {
                    return;
                }
                plan.wait_before_headers().await;
                let mut answer = Vec::with_capacity(256 + body.len());
                answer.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(*status)).as_bytes());
                let mut fields: Vec<(String, Vec<u8>)> =
                    headers.iter().map(|(n, v)| (n.clone(), v.clone().into_bytes())).collect();
                if !fields.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-type")) {
                    fields.push(("content-type".into(), b"text/plain; charset=utf-8".to_vec()));
                }
                change_headers(&mut fields, &plan.answer_changes);
                fields.push(("content-length".into(), body.len().to_string().into_bytes()));
                if !request.framing.keep_alive {
                    fields.push(("connection".into(), b"close".to_vec()));
                }
                write_fields(&mut answer, &fields);
                if request.method != "HEAD" {
                    answer.extend_from_slice(body.as_bytes());
                }
                if client_write.write_all(&answer).await.is_err() {
                    return;
                }
                counters.bytes_downstream.inc_by(answer.len() as u64);
                if !request.framing.keep_alive {
                    return;
                }
                continue;
            }
            _ => {}
        }
        // On to the upstream: the head as it came (or rewritten), then the body while the answer comes back.
        let mut body = request.body;
        let head = if plan.request_changes.is_empty() {
            // PERF(proxy): a body that came whole with its head goes in the same write (one segment, and the
            // upstream never sees a head without its body).
            let mut length = request.head_length;
            if let Body::Length(size) = body {
                if size <= (client_in.buf.len() - length) as u64 {
                    length += size as usize;
                    body = Body::Empty;
                }
            }
            client_in.buf.split_to(length).to_vec()
        } else {
            client_in.buf.advance(request.head_length);
            let mut head = request.start_line.clone();
            let mut fields = request.headers.clone();
            change_headers(&mut fields, &plan.request_changes);
            write_fields(&mut head, &fields);
            head
        };
        if upstream_write.write_all(&head).await.is_err() {
            return;
        }
        counters.bytes_upstream.inc_by(head.len() as u64);
        let (next, body_sent) = {
            let mut plain = Shape { counted: Some(counters.bytes_upstream.clone()), ..Shape::default() };
            let send = copy_body(&mut client_in, &mut upstream_write, body, &mut plain);
            let answer = relay_answer(&mut upstream_in, &mut client_write, &request, &plan, &counters.bytes_downstream);
            tokio::pin!(send, answer);
            let mut body_sent = matches!(body, Body::Empty);
            let next = loop {
                tokio::select! {
                    sent = &mut send, if !body_sent => match sent {
                        Ok(_) => body_sent = true,
                        Err(_) => return,
                    },
                    next = &mut answer => break next,
                }
            };
            (next, body_sent)
        };
        match next {
            // The upstream answered before the request's body was all there (a 413, say): the rest of it
            // cannot be told from the next request, so the connection ends, as a server's would.
            Ok(Next::KeepAlive) if body_sent && request.framing.keep_alive => {}
            Ok(Next::Tunnel) if body_sent => {
                tunnel(client_in, client_write, upstream_in, upstream_write, &counters).await;
                return;
            }
            _ => return,
        }
    }
}

/// One side's reading half and what was read from it and not yet used.
struct Inbound {
    half: OwnedReadHalf,
    buf: BytesMut,
}

impl Inbound {
    fn new(half: OwnedReadHalf) -> Self {
        Self { half, buf: BytesMut::with_capacity(READ_CHUNK) }
    }

    /// Reads more; false at the end of the stream (or on an error, which ends it the same way).
    async fn fill(&mut self) -> bool {
        self.buf.reserve(READ_CHUNK);
        matches!(self.half.read_buf(&mut self.buf).await, Ok(n) if n > 0)
    }
}

/// How a message's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Empty,
    Length(u64),
    Chunked,
    /// Until the sender closes (answers only).
    UntilClose,
}

/// A request, parsed and owned (the buffer it came in moves on).
#[derive(Debug)]
struct Request {
    method: String,
    /// The path without its query, as the faults match it.
    path: String,
    /// `METHOD target HTTP/1.x\r\n`, for a rewritten head.
    start_line: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    framing: Framing,
    body: Body,
    head_length: usize,
}

/// Why a request is not relayed.
#[derive(Debug)]
enum Refusal {
    /// The client went before a whole head came.
    Gone,
    /// It cannot be framed: answered with this status, then closed.
    Status(u16, &'static str),
}

async fn read_request(from: &mut Inbound) -> Result<Option<Request>, Refusal> {
    loop {
        if !from.buf.is_empty() {
            if let Some(request) = parse_request(&from.buf)? {
                return Ok(Some(request));
            }
            if from.buf.len() > MAX_HEAD {
                return Err(Refusal::Status(431, "the request's head is larger than 64 KiB"));
            }
        }
        if !from.fill().await {
            return if from.buf.is_empty() { Ok(None) } else { Err(Refusal::Gone) };
        }
    }
}

fn parse_request(buf: &[u8]) -> Result<Option<Request>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_length = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Refusal::Status(400, "the request is not HTTP/1.1")),
    };
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version) else {
        return Err(Refusal::Status(400, "the request is not HTTP/1.1"));
    };
    let framing = framing(parsed.headers, minor).map_err(|_| Refusal::Status(400, "its content-length is bad"))?;
    let body = match (framing.chunked, framing.other_coding, framing.length) {
        (false, false, None) => Body::Empty,
        (false, false, Some(0)) => Body::Empty,
        (false, false, Some(length)) => Body::Length(length),
        (true, false, None) => Body::Chunked,
        _ => return Err(Refusal::Status(400, "its body's framing is ambiguous (RFC 9112 6.3)")),
    };
    Ok(Some(Request {
        method: method.to_owned(),
        path: target.split('?').next().unwrap_or(target).to_owned(),
        start_line: format!("{method} {target} HTTP/1.{minor}\r\n").into_bytes(),
        headers: parsed.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect(),
        framing,
        body,
        head_length,
    }))
}

/// What the faults drawn for one request do to it.
#[derive(Default)]
struct Plan<'a> {
    /// `http_respond` or `http_drop`: the request goes no further.
    terminal: Option<&'a Action>,
    before_headers: Duration,
    before_body: Duration,
    rate: Option<u64>,
    cut_after: Option<u64>,
    request_changes: Vec<&'a Action>,
    answer_changes: Vec<&'a Action>,
}

impl<'a> Plan<'a> {
    /// Each HTTP fault that picks the request is drawn against its toxicity, in the order they were added; the
    /// first `http_respond` or `http_drop` drawn wins (the later ones are not drawn). A fault is counted as
    /// applied when it is in force on the request: on an answer made here only the delay of its headers and
    /// the changes to its headers are, on a dropped request nothing but the drop.
    fn draw(toxics: &'a [Toxic], request: &Request, counters: &Counters) -> Plan<'a> {
        let headers: Vec<httparse::Header> =
            request.headers.iter().map(|(name, value)| httparse::Header { name, value }).collect();
        let view = RequestView { method: &request.method, path: &request.path, headers: &headers };
        let mut drawn = Vec::new();
        let mut terminal = None;
        for toxic in toxics {
            let Effect::Http(fault) = &toxic.effect else { continue };
            if !fault.picks.picks(&view) {
                continue;
            }
            counters.http.matched(&toxic.name, fault.type_name()).inc();
            let ends = matches!(fault.action, Action::Respond { .. } | Action::Drop { .. });
            if (ends && terminal.is_some()) || rand::random::<f64>() >= toxic.toxicity {
                continue;
            }
            if ends {
                terminal = Some(&fault.action);
            }
            drawn.push((toxic, &fault.action));
        }
        let mut plan = Plan { terminal, ..Plan::default() };
        for (toxic, action) in drawn {
            // What a request answered here or dropped leaves no room for: it is not counted as done.
            let in_force = match (plan.terminal, action) {
                (None, _) => true,
                (Some(chosen), action) if std::ptr::eq(chosen, action) => true,
                (Some(Action::Respond { .. }), Action::Delay { before: Before::Headers, .. }) => true,
                (Some(Action::Respond { .. }), Action::Header { .. }) => toxic.stream == Stream::Downstream,
                _ => false,
            };
            if !in_force {
                continue;
            }
            counters.http.applied(&toxic.name, action.type_name()).inc();
            match action {
                Action::Respond { .. } | Action::Drop { .. } => {}
                Action::Delay { delay, jitter, before } => {
                    let spread = jitter.as_secs_f64() * (2.0 * rand::random::<f64>() - 1.0);
                    let wait = Duration::from_secs_f64((delay.as_secs_f64() + spread).max(0.0));
                    match before {
                        Before::Headers => plan.before_headers += wait,
                        Before::Body => plan.before_body += wait,
                    }
                }
                Action::Throttle { rate_kb } => plan.rate = Some(plan.rate.map_or(*rate_kb, |r| r.min(*rate_kb))),
                Action::Cut { after } => plan.cut_after = Some(plan.cut_after.map_or(*after, |c| c.min(*after))),
                Action::Header { .. } => match toxic.stream {
                    Stream::Upstream => plan.request_changes.push(action),
                    Stream::Downstream => plan.answer_changes.push(action),
                },
            }
        }
        plan
    }

    async fn wait_before_headers(&self) {
        if !self.before_headers.is_zero() {
            tokio::time::sleep(self.before_headers).await;
        }
    }

    /// How the answer's body goes out (counted in `counted`).
    fn shape(&self, counted: &IntCounter) -> Shape {
        Shape {
            counted: Some(counted.clone()),
            first_byte_delay: Some(self.before_body).filter(|d| !d.is_zero()),
            rate: self.rate.map(|kb| kb * 1000),
            cut_after: self.cut_after,
            ..Shape::default()
        }
    }
}

/// Applies `http_header` changes in order: each removes its names, then sets its own.
fn change_headers(fields: &mut Vec<(String, Vec<u8>)>, changes: &[&Action]) {
    for change in changes {
        let Action::Header { set, remove } = change else { continue };
        fields.retain(|(name, _)| {
            !remove.iter().any(|r| r.eq_ignore_ascii_case(name))
                && !set.iter().any(|(s, _)| s.eq_ignore_ascii_case(name))
        });
        fields.extend(set.iter().map(|(name, value)| (name.clone(), value.clone().into_bytes())));
    }
}

fn write_fields(out: &mut Vec<u8>, fields: &[(String, Vec<u8>)]) {
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A short text answer made here.
fn plain_answer(status: u16, text: &str, keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive { "" } else { "connection: close\r\n" };
    format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{connection}\r\n{text}",
        reason(status),
        text.len()
    )
    .into_bytes()
}

/// What the connection does once an answer went back.
enum Next {
    KeepAlive,
    Close,
    /// Switched protocols: bytes are relayed as they come from now on.
    Tunnel,
}

/// The upstream stopped mid-answer, sent what is not HTTP, or the client went.
struct Broken;

/// Relays the answer to `request` (and any 1xx before it), with the plan's faults.
async fn relay_answer(
    from: &mut Inbound,
    to: &mut OwnedWriteHalf,
    request: &Request,
    plan: &Plan<'_>,
    counted: &IntCounter,
) -> Result<Next, Broken> {
    loop {
        let (head_length, status, minor, fields, framing) = loop {
            if !from.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut parsed = httparse::Response::new(&mut headers);
                match parsed.parse(&from.buf) {
                    Ok(httparse::Status::Complete(length)) => {
                        let (Some(status), Some(minor)) = (parsed.code, parsed.version) else { return Err(Broken) };
                        let framing = framing(parsed.headers, minor).map_err(|_| Broken)?;
                        let fields: Option<Vec<(String, Vec<u8>)>> = (!plan.answer_changes.is_empty())
                            .then(|| parsed.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect());
                        break (length, status, minor, fields, framing);
                    }
                    Ok(httparse::Status::Partial) if from.buf.len() <= MAX_HEAD => {}
                    _ => return Err(Broken),
                }
            }
            if !from.fill().await {
                return Err(Broken);
            }
        };
        let interim = (100..200).contains(&status) && status != 101;
        if interim {
            // `100 Continue` and the like go on as they are; the answer proper follows.
            to.write_all(&from.buf[..head_length]).await.map_err(|_| Broken)?;
            counted.inc_by(head_length as u64);
            from.buf.advance(head_length);
            continue;
        }
        let tunnel = status == 101 || (request.method == "CONNECT" && (200..300).contains(&status));
        let body = if tunnel || request.method == "HEAD" || status == 204 || status == 304 {
            Body::Empty
        } else if framing.chunked {
            Body::Chunked
        } else if framing.other_coding {
            Body::UntilClose
        } else {
            match framing.length {
                Some(0) => Body::Empty,
                Some(length) => Body::Length(length),
                None => Body::UntilClose,
            }
        };
        let mut shape = plan.shape(counted);
        plan.wait_before_headers().await;
        match fields {
            None => {
                // PERF(proxy): an answer that came whole, with nothing to shape, goes in one write.
                let mut length = head_length;
                if let (Body::Length(size), true) = (body, shape.is_plain()) {
                    if size <= (from.buf.len() - head_length) as u64 {
                        length += size as usize;
                    }
                }
                to.write_all(&from.buf[..length]).await.map_err(|_| Broken)?;
                counted.inc_by(length as u64);
                from.buf.advance(length);
                if length > head_length {
                    return Ok(if framing.keep_alive { Next::KeepAlive } else { Next::Close });
                }
            }
            Some(mut fields) => {
                let mut head = format!("HTTP/1.{minor} {status} ").into_bytes();
                let line_end = from.buf.iter().position(|b| *b == b'\n').unwrap_or(0);
                // The reason phrase as the upstream wrote it (after "HTTP/1.x NNN ").
                head.extend_from_slice(from.buf.get(13..line_end).unwrap_or_default().trim_ascii_end());
                head.extend_from_slice(b"\r\n");
                change_headers(&mut fields, &plan.answer_changes);
                write_fields(&mut head, &fields);
                to.write_all(&head).await.map_err(|_| Broken)?;
                counted.inc_by(head.len() as u64);
                from.buf.advance(head_length);
            }
        }
        if tunnel {
            return Ok(Next::Tunnel);
        }
        let whole = copy_body(from, to, body, &mut shape).await?;
        let keeps = whole && framing.keep_alive && body != Body::UntilClose;
        return Ok(if keeps { Next::KeepAlive } else { Next::Close });
    }
}

/// How an answer's body is let out: late, slow or cut.
#[derive(Default)]
struct Shape {
    first_byte_delay: Option<Duration>,
    /// Bytes per second.
    rate: Option<u64>,
    cut_after: Option<u64>,
    written: u64,
    free_at: Option<Instant>,
    /// Where what is written is counted (the proxy's bytes by stream).
    counted: Option<IntCounter>,
}

impl Shape {
    fn is_plain(&self) -> bool {
        self.first_byte_delay.is_none() && self.rate.is_none() && self.cut_after.is_none()
    }

    /// Writes `data` as the faults say; false once the cut is reached (the connection must close then).
    async fn write<W: AsyncWrite + Unpin>(&mut self, to: &mut W, mut data: &[u8]) -> Result<bool, Broken> {
        if data.is_empty() {
            return Ok(true);
        }
        if let Some(delay) = self.first_byte_delay.take() {
            tokio::time::sleep(delay).await;
        }
        let mut cut = false;
        if let Some(after) = self.cut_after {
            let left = after.saturating_sub(self.written);
            if data.len() as u64 >= left {
                data = &data[..left as usize];
                cut = true;
            }
        }
        while !data.is_empty() {
            // Throttled: at most a tenth of a second's worth at once, so a slow rate stays smooth.
            let size = self.rate.map_or(data.len(), |rate| ((rate / 10).max(1) as usize).min(data.len()));
            let (piece, rest) = data.split_at(size);
            if let Some(rate) = self.rate {
                let free_at = self.free_at.unwrap_or_else(Instant::now).max(Instant::now());
                tokio::time::sleep_until(free_at.into()).await;
                self.free_at = Some(free_at + Duration::from_secs_f64(piece.len() as f64 / rate as f64));
            }
            to.write_all(piece).await.map_err(|_| Broken)?;
            self.written += piece.len() as u64;
            if let Some(counted) = &self.counted {
                counted.inc_by(piece.len() as u64);
            }
            data = rest;
        }
        Ok(!cut)
    }
}

/// Copies one body as it is framed; false when a cut ended it first.
async fn copy_body<W: AsyncWrite + Unpin>(
    from: &mut Inbound,
    to: &mut W,
    body: Body,
    shape: &mut Shape,
) -> Result<bool, Broken> {
    match body {
        Body::Empty => Ok(true),
        Body::Length(length) => copy_exact(from, to, length, shape).await,
        Body::Chunked => loop {
            let size = loop {
                match httparse::parse_chunk_size(&from.buf) {
                    Ok(httparse::Status::Complete((length, size))) => {
                        if !shape.write(to, &from.buf[..length]).await? {
                            return Ok(false);
                        }
                        from.buf.advance(length);
                        break size;
                    }
                    Ok(httparse::Status::Partial) if from.buf.len() <= MAX_HEAD => {
                        if !from.fill().await {
                            return Err(Broken);
                        }
                    }
                    _ => return Err(Broken),
                }
            };
            if size == 0 {
                return copy_trailers(from, to, shape).await;
            }
            // The chunk's data and the CRLF after it.
            if !copy_exact(from, to, size.saturating_add(2), shape).await? {
                return Ok(false);
            }
        },
        Body::UntilClose => loop {
            if !from.buf.is_empty() {
                if !shape.write(to, &from.buf).await? {
                    return Ok(false);
                }
                from.buf.clear();
            }
            if !from.fill().await {
                return Ok(true);
            }
        },
    }
}

async fn copy_exact<W: AsyncWrite + Unpin>(
    from: &mut Inbound,
    to: &mut W,
    length: u64,
    shape: &mut Shape,
) -> Result<bool, Broken> {
    let mut left = length;
    while left > 0 {
        if from.buf.is_empty() && !from.fill().await {
            return Err(Broken);
        }
        let here = (from.buf.len() as u64).min(left) as usize;
        if !shape.write(to, &from.buf[..here]).await? {
            return Ok(false);
        }
        from.buf.advance(here);
        left -= here as u64;
    }
    Ok(true)
}

/// The trailer lines of a chunked body, up to and including the empty line that ends it.
async fn copy_trailers<W: AsyncWrite + Unpin>(
    from: &mut Inbound,
    to: &mut W,
    shape: &mut Shape,
) -> Result<bool, Broken> {
    loop {
        match from.buf.windows(2).position(|w| w == b"\r\n") {
            Some(end) => {
                if !shape.write(to, &from.buf[..end + 2]).await? {
                    return Ok(false);
                }
                from.buf.advance(end + 2);
                if end == 0 {
                    return Ok(true);
                }
            }
            None if from.buf.len() > MAX_HEAD => return Err(Broken),
            None => {
                if !from.fill().await {
                    return Err(Broken);
                }
            }
        }
    }
}

/// Reads a request's body and lets it go (a request answered here).
async fn skip_body(from: &mut Inbound, body: Body) -> Result<bool, Broken> {
    copy_body(from, &mut tokio::io::sink(), body, &mut Shape::default()).await
}

/// After a 101 or a `CONNECT`: bytes both ways as they come, what was read ahead first, until both close.
async fn tunnel(
    mut client_in: Inbound,
    mut client_out: OwnedWriteHalf,
    mut upstream_in: Inbound,
    mut upstream_out: OwnedWriteHalf,
    counters: &Counters,
) {
    let up = relay_raw(&mut client_in, &mut upstream_out, &counters.bytes_upstream);
    let down = relay_raw(&mut upstream_in, &mut client_out, &counters.bytes_downstream);
    tokio::join!(up, down);
}

/// One way of a tunnel: what was read ahead, then bytes as they come, then the close.
async fn relay_raw(from: &mut Inbound, to: &mut OwnedWriteHalf, counted: &IntCounter) {
    if to.write_all(&from.buf).await.is_ok() {
        counted.inc_by(from.buf.len() as u64);
        if let Ok(copied) = tokio::io::copy(&mut from.half, to).await {
            counted.inc_by(copied);
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_that_cannot_be_framed_are_refused_and_others_read() {
        let ok = parse_request(b"POST /pay?x=1 HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc").unwrap().unwrap();
        assert_eq!((ok.method.as_str(), ok.path.as_str(), ok.body), ("POST", "/pay", Body::Length(3)));
        assert_eq!(ok.head_length, 54);
        assert!(parse_request(b"GET / HTTP/1.1\r\nhost: a\r\n").unwrap().is_none());
        for bad in [
            &b"POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
            b"NOT HTTP\r\n\r\n",
        ] {
            assert!(matches!(parse_request(bad), Err(Refusal::Status(400, _))), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn header_changes_remove_then_set_in_order() {
        let set = Action::Header { set: vec![("x-b".into(), "2".into())], remove: vec!["x-a".into()] };
        let again = Action::Header { set: vec![("X-B".into(), "3".into())], remove: vec![] };
        let mut fields =
            vec![("X-A".into(), b"1".to_vec()), ("x-b".into(), b"0".to_vec()), ("x-c".into(), b"c".to_vec())];
        change_headers(&mut fields, &[&set, &again]);
        assert_eq!(fields, vec![("x-c".into(), b"c".to_vec()), ("X-B".into(), b"3".to_vec())]);
    }
}

#[cfg(test)]
mod copy_tests {
    use super::*;

    /// A connected pair of sockets on loopback: the reading half of one end, and the other end.
    async fn pair() -> (Inbound, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (far, _) = listener.accept().await.unwrap();
        (Inbound::new(near.into_split().0), far)
    }

    #[tokio::test]
    async fn a_chunked_body_goes_through_byte_for_byte_and_stops_at_its_end() {
        let (mut from, mut sender) = pair().await;
        let body = b"5\r\nhello\r\n3;ext=1\r\n, w\r\n0\r\nx-trailer: 1\r\n\r\n";
        // Sent in small pieces: the framing is read across reads.
        for piece in body.chunks(4) {
            sender.write_all(piece).await.unwrap();
        }
        sender.write_all(b"GET /next").await.unwrap();
        let mut out = Vec::new();
        let whole = copy_body(&mut from, &mut out, Body::Chunked, &mut Shape::default()).await;
        assert!(matches!(whole, Ok(true)));
        assert_eq!(out, body);
        // What follows the body stays for the next message.
        while from.buf.len() < 9 {
            assert!(from.fill().await);
        }
        assert_eq!(&from.buf[..], b"GET /next");
    }

    #[tokio::test]
    async fn a_cut_stops_the_body_after_its_bytes() {
        let (mut from, mut sender) = pair().await;
        sender.write_all(&[b'x'; 5000]).await.unwrap();
        let mut out = Vec::new();
        let mut shape = Shape { cut_after: Some(1234), ..Shape::default() };
        let whole = copy_body(&mut from, &mut out, Body::Length(5000), &mut shape).await;
        assert!(matches!(whole, Ok(false)));
        assert_eq!(out.len(), 1234);
    }

    /// An upgrade (101) turns the connection into a byte relay: an echo server behind it echoes through it.
    #[tokio::test]
    async fn an_upgraded_connection_relays_bytes_both_ways() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_at = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                socket.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            socket
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\n")
                .await
                .unwrap();
            let (mut read, mut write) = socket.split();
            let _ = tokio::io::copy(&mut read, &mut write).await;
        });
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_at = proxy.local_addr().unwrap();
        let counters = Arc::new(super::super::metrics::ProxyMetrics::new().counters("t"));
        let relay_counters = counters.clone();
        tokio::spawn(async move {
            let (client, _) = proxy.accept().await.unwrap();
            let upstream = TcpStream::connect(upstream_at).await.unwrap();
            let (_keep, toxics) = watch::channel(Arc::new(Vec::new()));
            run(client, upstream, toxics, relay_counters).await;
        });
        let mut client = TcpStream::connect(proxy_at).await.unwrap();
        client.write_all(b"GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n").await.unwrap();
        let mut answer = vec![0u8; 256];
        let mut read = 0;
        while !answer[..read].ends_with(b"\r\n\r\n") {
            read += client.read(&mut answer[read..]).await.unwrap();
        }
        assert!(answer.starts_with(b"HTTP/1.1 101 "));
        client.write_all(b"ping, not HTTP").await.unwrap();
        let mut echoed = [0u8; 14];
        client.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"ping, not HTTP");
        assert_eq!(counters.http.requests.get(), 1);
    }
}
