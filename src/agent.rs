//! One agent: its state, its two listeners, and an orderly shutdown that releases everything.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tarsier_plugin::{HealthGate, Held, Limits};
use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, TlsConfig};
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::registry::{builtin_plugins, Registry};

/// How long in-flight requests get to finish once shutdown starts.
const GRACE: Duration = Duration::from_secs(5);

pub struct AgentState {
    pub name: String,
    pub registry: Registry,
    pub jobs: Jobs,
    pub metrics: Metrics,
    pub limits: Arc<Limits>,
    pub health: HealthGate,
    pub started: Instant,
    pub public_addr: SocketAddr,
    pub service_addr: SocketAddr,
}

impl AgentState {
    /// Cancels every job and releases everything every plugin holds (the local half of `/abort`).
    pub fn abort_local(&self) -> (usize, Held) {
        let cancelled = self.jobs.cancel_all();
        let released = self.registry.release_all();
        self.metrics.aborts.inc();
        tracing::warn!(agent = %self.name, cancelled_jobs = cancelled, ?released, "abort: everything released");
        (cancelled, released)
    }
}

/// An agent whose sockets are bound (so its addresses are known) but which does not serve yet.
pub struct BoundAgent {
    pub state: Arc<AgentState>,
    public: tokio::net::TcpListener,
    service: std::net::TcpListener,
    tls: Option<TlsConfig>,
    max_body: usize,
}

impl BoundAgent {
    pub async fn bind(config: &AgentConfig) -> anyhow::Result<Self> {
        let registry = Registry::new(builtin_plugins(config)?);
        let public = tokio::net::TcpListener::bind(config.listen())
            .await
            .with_context(|| format!("cannot listen on {}", config.listen()))?;
        let service = std::net::TcpListener::bind(config.service_listen())
            .with_context(|| format!("cannot listen on {}", config.service_listen()))?;
        service.set_nonblocking(true)?;
        let public_addr = public.local_addr()?;
        let service_addr = service.local_addr()?;
        let name = config.name.clone().unwrap_or_else(|| format!("{}:{}", hostname(), public_addr.port()));
        let state = Arc::new(AgentState {
            name,
            registry,
            jobs: Jobs::default(),
            metrics: Metrics::new(true)?,
            limits: Arc::new(config.limits.clone()),
            health: HealthGate::default(),
            started: Instant::now(),
            public_addr,
            service_addr,
        });
        Ok(Self { state, public, service, tls: config.tls.clone(), max_body: config.max_body() })
    }

    /// Serves until `shutdown` fires, then cancels every job, lets in-flight requests finish, and releases
    /// everything held (files are deleted).
    pub async fn serve(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = self.state.clone();
        let stop_serving = CancellationToken::new();
        let public_app = crate::api::router(state.clone(), self.max_body);
        let public = {
            let stop = stop_serving.clone();
            tokio::spawn(async move {
                axum::serve(self.public, public_app).with_graceful_shutdown(stop.cancelled_owned()).await
            })
        };
        let service = tokio::spawn(serve_service(
            self.service,
            self.tls,
            crate::service::router(state.clone()),
            stop_serving.clone(),
        ));

        shutdown.cancelled().await;
        tracing::info!(agent = %state.name, "shutting down: cancelling jobs, releasing what is held");
        state.jobs.cancel_all();
        stop_serving.cancel();
        let drained = tokio::time::timeout(GRACE, async {
            let _ = public.await;
            let _ = service.await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("requests still in flight after {GRACE:?}; closing anyway");
        }
        let released = state.registry.release_all();
        tracing::info!(agent = %state.name, ?released, "agent stopped");
        Ok(())
    }
}

async fn serve_service(
    listener: std::net::TcpListener,
    tls: Option<TlsConfig>,
    app: axum::Router,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    match tls {
        None => {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await?;
        }
        Some(tls) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
                .await
                .with_context(|| format!("cannot load TLS cert {} / key {}", tls.cert.display(), tls.key.display()))?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                stopper.graceful_shutdown(Some(GRACE));
            });
            axum_server::from_tcp_rustls(listener, config)?.handle(handle).serve(app.into_make_service()).await?;
        }
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
