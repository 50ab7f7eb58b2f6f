//! Serving one listener: plain TCP or TLS (rustls; HTTP/2 by ALPN), HTTP/1.1 and HTTP/2 (h2c too), and the
//! bounds a server on a shared network needs: a cap on open connections, a header timeout (also the longest
//! an HTTP/1 connection may wait between its requests), an idle timeout for any HTTP/2 connection
//! with no request in flight, and a graceful stop. Every request carries the client's address
//! (`ConnectInfo<SocketAddr>`), for the logs.

use crate::agent::http::parse_errors::JsonParseErrors;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// The bounds of one listener (`server:` in the config; defaults in docs/operating.md).
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// A request's headers (and, over TLS, the handshake) must arrive within this.
    pub header_timeout: Duration,
    /// A connection with no request in flight and no bytes either way for this long is closed.
    pub idle_timeout: Duration,
}

/// Serves `app` on `listener` until `stop` fires, then lets the connections finish their requests for at
/// most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ServeLimits,
    refused: IntCounter,
    stop: CancellationToken,
    grace: Duration,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    let mut warned_at: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, most likely: say so once in a while, and let some close.
                    if warned_at.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(%err, "cannot accept a connection");
                        warned_at = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused.inc();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (app, tls, closing) = (app.clone(), tls.clone(), closing.clone());
        connections.spawn(async move {
            connection(stream, peer, app, tls, limits, closing).await;
            drop(permit);
        });
    }
    drop(listener);
    closing.cancel();
    connections.close();
    if tokio::time::timeout(grace, connections.wait()).await.is_err() {
        tracing::warn!("requests still in flight after {grace:?}; closing anyway");
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ServeLimits,
    closing: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = Watched { inner: stream, activity: activity.clone() };
    match tls {
        None => drive(TokioIo::new(JsonParseErrors::new(io)), peer, app, limits, closing, activity).await,
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
                Ok(Ok(stream)) => {
                    drive(TokioIo::new(JsonParseErrors::new(stream)), peer, app, limits, closing, activity).await
                }
                Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Runs one connection's HTTP until it ends, is idle too long, or the listener stops.
async fn drive<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    limits: ServeLimits,
    closing: CancellationToken,
    activity: Arc<Activity>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let in_service = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if request.version() == hyper::Version::HTTP_2 {
            in_service.http2.store(true, Ordering::Relaxed);
        }
        let (app, in_flight) = (app.clone(), InFlight::start(&in_service));
        async move {
            let response = app.oneshot(request.map(axum::body::Body::new)).await;
            drop(in_flight);
            response
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // The header timeout is the watchdog's below: hyper's own arms a timer for every request, which cost
        // 1.5 % of an `/exec`; a deadline checked twice a second costs nothing per request.
        // PERF(control): one watchdog deadline checked twice a second instead of a hyper timer per request.
        .header_read_timeout(None)
        // Headers larger than this get hyper's own bodiless 431, made JSON by `parse_errors`; the routers
        // answer JSON below it.
        .max_buf_size(MAX_HEADER_BUFFER);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEADER_BUFFER as u32)
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(10));
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut watchdog = tokio::time::interval(Duration::from_millis(500));
    let mut shutting_down = false;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = closing.cancelled(), if !shutting_down => {
                connection.as_mut().graceful_shutdown();
                shutting_down = true;
            }
            _ = watchdog.tick() => {
                if activity.in_flight() > 0 {
                    continue;
                }
                // An HTTP/1 connection between requests must send the next head within the header timeout,
                // counted from its last answer (or its opening), however slowly its bytes trickle in; an
                // HTTP/2 one may stay open while bytes move, until the idle timeout passes without any.
                let expired = if activity.http2.load(Ordering::Relaxed) {
                    activity.quiet_for() > limits.idle_timeout
                } else {
                    activity.waiting_for_head() > limits.header_timeout
                };
                if expired {
                    tracing::debug!(%peer, "closing an idle or stalled connection");
                    return;
                }
            }
        }
    }
}

/// hyper's buffer for one HTTP/1 head, and the largest HTTP/2 header list.
const MAX_HEADER_BUFFER: usize = 64 * 1024;
/// HTTP/2 requests in flight on one connection (a peer's multiplexed copies and reports).
const MAX_STREAMS: u32 = 512;

/// When a connection last moved bytes, last wrote or finished a request, and how many of its requests are
/// being handled. Times are milliseconds since it opened.
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
    /// The last write or finished request: an HTTP/1 client's next head is due within the header timeout
    /// of it.
    answered_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Seen to speak HTTP/2 (a multiplexed connection has no "next head" to wait for).
    http2: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            answered_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            http2: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn read(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn wrote(&self) {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        self.answered_ms.store(now, Ordering::Relaxed);
    }

    fn since(&self, at_ms: &AtomicU64) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(at_ms.load(Ordering::Relaxed)))
    }

    fn quiet_for(&self) -> Duration {
        self.since(&self.last_ms)
    }

    fn waiting_for_head(&self) -> Duration {
        self.since(&self.answered_ms)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// One request being handled; the connection is not idle while it lives.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.wrote();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that notes every read and write in its connection's [`Activity`].
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    /// Passed through so hyper writes a response's head and body in one `writev`: without it hyper copies
    /// them into one buffer first.
    // PERF(control): head and body in one writev, not copied into one buffer first.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The default connection caps, from the open-file limit: half of it for the public port, an eighth for
/// the service port (at most 4,096 and 256), so strangers holding connections open cannot take the
/// descriptors that commands, peers and `/health` need.
pub fn default_caps() -> (usize, usize) {
    use nix::sys::resource::{getrlimit, Resource};
    let files = getrlimit(Resource::RLIMIT_NOFILE).map(|(soft, _)| soft).unwrap_or(1024);
    let files = usize::try_from(files).unwrap_or(usize::MAX);
    ((files / 2).clamp(16, 4096), (files / 8).clamp(8, 256))
}
