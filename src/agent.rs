//! One agent: binding its two listeners, building its state and routers, and an orderly shutdown that
//! releases everything.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tarsier_plugin::{Budgets, HealthGate};
use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, TlsConfig};
use crate::discovery::{ConsulPeers, LocalRegistry, NoPeers, Peer, PeerSource, StaticPeers};
use crate::jobs::Jobs;
use crate::metrics::Metrics;
use crate::registry::{builtin_plugins, Registry};
use crate::state::AgentState;
use crate::wave::Swarm;

/// How long in-flight requests get to finish once shutdown starts. Every job is cancelled first and stops
/// within 100 ms, so requests waiting on one end at once; this bounds only a client that does not read.
const GRACE: Duration = Duration::from_millis(1500);

/// An agent whose sockets are bound (so its addresses are known) but which does not serve yet.
pub struct BoundAgent {
    pub state: Arc<AgentState>,
    public: tokio::net::TcpListener,
    service: std::net::TcpListener,
    tls: Option<TlsConfig>,
    max_body: usize,
}

impl BoundAgent {
    /// Binds both ports and joins the swarm: the local registry when given (`tarsier swarm`), else Consul or
    /// static peers from the config. `shutdown` ends the agent.
    pub async fn bind(
        config: &AgentConfig,
        local: Option<&Arc<LocalRegistry>>,
        http: reqwest::Client,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let registry = Registry::new(builtin_plugins(config)?);
        let public = tokio::net::TcpListener::bind(config.listen())
            .await
            .with_context(|| format!("cannot listen on {}", config.listen()))?;
        let service = std::net::TcpListener::bind(config.service_listen())
            .with_context(|| format!("cannot listen on {}", config.service_listen()))?;
        service.set_nonblocking(true)?;
        let public_addr = public.local_addr()?;
        let service_addr = service.local_addr()?;
        let host = advertised_host(config, public_addr);
        let advertised_public = format!("{host}:{}", public_addr.port());
        let advertised_service = format!("{host}:{}", service_addr.port());
        let name = config.name.clone().unwrap_or_else(|| format!("{}:{}", hostname(), public_addr.port()));
        let me =
            Peer { id: name.clone(), public: advertised_public.clone(), service: Some(advertised_service.clone()) };
        let peers: Arc<dyn PeerSource> = match (local, &config.discovery.consul) {
            (Some(registry), _) => Arc::new(registry.join(me)),
            (None, Some(consul)) => ConsulPeers::start(
                consul.clone(),
                crate::discovery::consul_registration(
                    &me,
                    &host,
                    public_addr.port(),
                    service_addr.port(),
                    config.tls.is_some(),
                ),
                consul_client()?,
                shutdown.clone(),
            ),
            (None, None) if !config.discovery.static_peers.is_empty() => {
                Arc::new(StaticPeers::new(&config.discovery.static_peers, &advertised_public))
            }
            (None, None) => Arc::new(NoPeers),
        };
        let metrics = Metrics::new(true, registry.collectors(), &config.limits)?;
        let swarm = Arc::new(Swarm::new(name.clone(), advertised_public, peers, http, metrics.waves.clone()));
        let state = Arc::new(AgentState {
            name,
            registry,
            jobs: Jobs::default(),
            metrics,
            budgets: Arc::new(Budgets::from_limits(&config.limits)),
            limits: Arc::new(config.limits.clone()),
            health: HealthGate::default(),
            started: Instant::now(),
            public_addr,
            service_addr,
            advertised_service,
            swarm,
            shutdown,
            aborting: tokio::sync::Mutex::new(()),
        });
        Ok(Self { state, public, service, tls: config.tls.clone(), max_body: config.max_body() })
    }

    /// Serves until `shutdown` fires, then cancels every job, lets in-flight requests finish, and releases
    /// everything held (files are deleted).
    pub async fn serve(self) -> anyhow::Result<()> {
        let state = self.state.clone();
        let shutdown = state.shutdown.clone();
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
        state.swarm.peers.leave().await;
        stop_serving.cancel();
        let drained = tokio::time::timeout(GRACE, async {
            let _ = public.await;
            let _ = service.await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("requests still in flight after {GRACE:?}; closing anyway");
        }
        let released = state.release_all().await;
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

/// The host part peers use: `advertise`, else the listen IP unless it is unspecified, else the hostname.
fn advertised_host(config: &AgentConfig, public: SocketAddr) -> String {
    if let Some(host) = &config.advertise {
        return host.clone();
    }
    match public.ip() {
        ip if ip.is_unspecified() => hostname(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The client agents use to forward waves and send reports.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        // Agents speak HTTP/2 to each other (their public port serves h2c): one multiplexed connection per peer
        // carries every copy and report. Fresh HTTP/1 connections per burst left tens of thousands of sockets
        // in TIME_WAIT and overflowed listen queues at 1,000 local agents. One connection per peer is cheap
        // enough to keep for a minute, so waves a few seconds apart find them open.
        .http2_prior_knowledge()
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build()
        .context("cannot build the HTTP client")
}

/// Consul's HTTP API speaks HTTP/1 only.
pub fn consul_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        .pool_max_idle_per_host(2)
        .build()
        .context("cannot build the Consul HTTP client")
}
