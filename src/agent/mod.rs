//! The server side: one agent, binding its two listeners, building its state and routers, and an orderly
//! shutdown that releases everything. Its rooms: `http/` (listeners, the gate, the two ports' routes), `exec`
//! and `jobs` (running a command), `wave/` (the swarm), `discovery/`, `config/`, `registry` (plugins),
//! `state` and `metrics`.

pub mod config;
pub(crate) mod discovery;
pub(crate) mod exec;
pub mod http;
pub(crate) mod jobs;
pub(crate) mod metrics;
pub(crate) mod registry;
pub mod state;
pub(crate) mod wave;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tarsier_plugin::{Budgets, HealthGate};
use tokio_util::sync::CancellationToken;

use crate::agent::config::AgentConfig;
use crate::agent::discovery::{
    ConsulPeers, LocalRegistry, NoPeers, Peer, PeerKind, PeerSource, ReferencePeers, StaticPeers, Trust,
};
use crate::agent::http::listener::ServeLimits;
use crate::agent::jobs::Jobs;
use crate::agent::metrics::Metrics;
use crate::agent::registry::{builtin_plugins, Registry};
use crate::agent::state::{AgentState, BodyLimits};
use crate::agent::wave::{Member, Swarm, WaveBounds};
use crate::wire::browsers::BrowserPolicy;

/// How long in-flight requests get to finish once shutdown starts. Every job is cancelled first and stops
/// within 100 ms, so requests waiting on one end at once; this bounds only a client that does not read.
const GRACE: Duration = Duration::from_millis(1500);

/// An agent whose sockets are bound (so its addresses are known) but which does not serve yet.
pub struct BoundAgent {
    pub state: Arc<AgentState>,
    public: tokio::net::TcpListener,
    service: tokio::net::TcpListener,
    public_tls: Option<Arc<rustls::ServerConfig>>,
    service_tls: Option<Arc<rustls::ServerConfig>>,
    limits: (ServeLimits, ServeLimits),
    /// `proxy.api_listen`: Toxiproxy's API over the fault proxies.
    toxiproxy: Option<tokio::net::TcpListener>,
}

impl BoundAgent {
    /// Binds both ports and joins the swarm: the local registry when given (`tarsier swarm`), else Consul or
    /// static peers from the config. `http` is the client for copies and reports ([`http_client`]).
    /// `shutdown` ends the agent. Refuses to start exposed without a token (docs/security.md).
    pub async fn bind(
        config: &AgentConfig,
        local: Option<&Arc<LocalRegistry>>,
        http: reqwest::Client,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let token = config.token()?;
        config.check_exposure(token.as_ref())?;
        let key = token.as_ref().map(crate::credentials::SwarmKey::from_token);
        let public_tls = config.public_tls.as_ref().map(crate::credentials::tls::server_config).transpose()?;
        let service_tls = config.tls.as_ref().map(crate::credentials::tls::server_config).transpose()?;
        let registry = Registry::new(builtin_plugins(config)?);
        let public = tokio::net::TcpListener::bind(config.listen())
            .await
            .with_context(|| format!("cannot listen on {}", config.listen()))?;
        let service = tokio::net::TcpListener::bind(config.service_listen())
            .await
            .with_context(|| format!("cannot listen on {}", config.service_listen()))?;
        let toxiproxy = match config.proxy.api_listen {
            Some(address) => Some(
                tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (proxy.api_listen)"))?,
            ),
            None => None,
        };
        let public_addr = public.local_addr()?;
        let service_addr = service.local_addr()?;
        let host = advertised_host(config, public_addr);
        let advertised_public = format!("{host}:{}", public_addr.port());
        let advertised_service = format!("{host}:{}", service_addr.port());
        let name = config.name.clone().unwrap_or_else(|| format!("{}:{}", crate::sys::hostname(), public_addr.port()));
        let labels = config.all_labels();
        let me = Peer {
            id: name.clone(),
            public: advertised_public.clone(),
            service: Some(advertised_service.clone()),
            kind: PeerKind::Tarsier,
            labels: labels.clone(),
        };
        let trust = Trust {
            key: key.clone(),
            reference_peers: ReferencePeers::new(&config.compat.reference_peers)?,
            tls: public_tls.is_some(),
        };
        // Static peers all on loopback (a local swarm in processes) are this machine's own: no stranger there.
        let loopback_only = config.discovery.static_peers.iter().all(|peer| {
            let (address, _) = crate::agent::discovery::split_static(peer);
            address.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback())
        });
        let discovers =
            (!config.discovery.static_peers.is_empty() && !loopback_only) || config.discovery.consul.is_some();
        if key.is_none() && local.is_none() && discovers {
            tracing::warn!("no token: discovered agents cannot prove membership and are taken as peers as they are");
        }
        let in_process = local.is_some();
        let peers: Arc<dyn PeerSource> = match (local, &config.discovery.consul) {
            (Some(registry), _) => Arc::new(registry.join(me)),
            (None, Some(consul)) => ConsulPeers::start(
                {
                    let mut consul = consul.clone();
                    consul.resolve_token()?;
                    consul
                },
                crate::agent::discovery::consul_registration(
                    &me,
                    &host,
                    (public_addr.port(), public_tls.is_some()),
                    (service_addr.port(), config.tls.is_some()),
                    key.as_ref(),
                ),
                consul_client()?,
                trust.clone(),
                shutdown.clone(),
            ),
            (None, None) if !config.discovery.static_peers.is_empty() => {
                Arc::new(StaticPeers::new(&config.discovery.static_peers, &advertised_public, &trust))
            }
            (None, None) => Arc::new(NoPeers),
        };
        let metrics = Metrics::new(true, registry.collectors(), &config.limits)?;
        let bounds = WaveBounds::from_limits(&config.limits);
        let member = Member { name: name.clone(), advertised_public, labels };
        let swarm = Arc::new(Swarm::new(member, peers, http, trust, metrics.waves.clone(), bounds)?);
        let control_plane = control_plane_source(
            (public_addr.port(), service_addr.port()),
            in_process || config.local_swarm,
            config.discovery.consul.as_ref().map(|consul| consul.address.as_str()),
            swarm.clone(),
        );
        let state = Arc::new(AgentState {
            name: name.into(),
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
            remote_write: match &config.remote_write {
                Some(remote) => Some(Arc::new(
                    crate::remote_write::RemoteWrite::new(&remote.url)
                        .map_err(|why| anyhow::anyhow!("remote_write.url: {why}"))?,
                )),
                None => None,
            },
            token,
            bodies: BodyLimits { max_bytes: config.max_body(), timeout: config.server.body_timeout() },
            seen_nonces: Default::default(),
            browsers: BrowserPolicy::new(
                &[host.trim_start_matches('[').trim_end_matches(']'), &crate::sys::hostname()],
                &config.server.allowed_hosts,
                &config.server.allowed_origins,
            ),
            control_plane,
            shutdown,
            aborting: tokio::sync::Mutex::new(()),
            in_process,
            restarts: if in_process { 0 } else { restarts_by_supervisor() },
        });
        if !in_process {
            state.registry.started(&state.control_plane.read());
        }
        if let Some(api) = &toxiproxy {
            tracing::info!(address = %api.local_addr()?, "Toxiproxy's API served (proxy.api_listen)");
        }
        Ok(Self { state, public, service, public_tls, service_tls, limits: config.server.limits(), toxiproxy })
    }

    /// Serves until `shutdown` fires, then cancels every job, lets in-flight requests finish, and releases
    /// everything held (files are deleted).
    pub async fn serve(self) -> anyhow::Result<()> {
        let state = self.state.clone();
        let shutdown = state.shutdown.clone();
        let stop_serving = CancellationToken::new();
        let refused = |listener| state.metrics.connections_refused.with_label_values(&[listener]);
        let public = tokio::spawn(crate::agent::http::listener::serve(
            self.public,
            crate::agent::http::public::router(state.clone()),
            self.public_tls.clone(),
            self.limits.0,
            refused("public"),
            stop_serving.clone(),
            GRACE,
        ));
        let service = tokio::spawn(crate::agent::http::listener::serve(
            self.service,
            crate::agent::http::service::router(state.clone()),
            self.service_tls,
            self.limits.1,
            refused("service"),
            stop_serving.clone(),
            GRACE,
        ));

        let toxiproxy = self.toxiproxy.map(|listener| {
            tokio::spawn(crate::agent::http::listener::serve(
                listener,
                crate::agent::http::toxiproxy::router(state.clone()),
                self.public_tls.clone(),
                self.limits.0,
                refused("toxiproxy"),
                stop_serving.clone(),
                GRACE,
            ))
        });

        shutdown.cancelled().await;
        tracing::info!(agent = %state.name, "shutting down: cancelling jobs, releasing what is held");
        state.jobs.cancel_all();
        state.swarm.peers.leave().await;
        stop_serving.cancel();
        let _ = tokio::join!(public, service);
        if let Some(toxiproxy) = toxiproxy {
            let _ = toxiproxy.await;
        }
        let released = state.release_all().await;
        tracing::info!(agent = %state.name, ?released, "agent stopped");
        Ok(())
    }
}

/// The control plane network faults leave alone, read when a fault is installed: this agent's two ports, its
/// Consul agent's, and every peer's public and service port as discovery knows them then.
fn control_plane_source(
    (public, service): (u16, u16),
    local_swarm: bool,
    consul: Option<&str>,
    swarm: Arc<Swarm>,
) -> tarsier_plugin::ControlPlaneSource {
    let consul_port = consul.and_then(|address| crate::wire::address::port_of(address).ok());
    tarsier_plugin::ControlPlaneSource::new(move || {
        let mut ports: std::collections::BTreeSet<u16> = [public, service].into_iter().collect();
        ports.extend(consul_port);
        for peer in swarm.peers.members().iter() {
            let addresses = std::iter::once(peer.public.as_str()).chain(peer.service.as_deref());
            ports.extend(addresses.filter_map(|address| crate::wire::address::port_of(address).ok()));
        }
        tarsier_plugin::ControlPlane { public_port: public, ports, local_swarm }
    })
}

/// The host part peers use: `advertise`, else the listen IP unless it is unspecified, else the address the
/// hostname resolves to (a container's own IP, which Docker writes into /etc/hosts), else the machine's
/// primary IP (the source address of its default route), else the hostname, with a warning: peers may not
/// resolve it.
fn advertised_host(config: &AgentConfig, public: SocketAddr) -> String {
    if let Some(host) = &config.advertise {
        return host.clone();
    }
    let ip = match public.ip() {
        ip if ip.is_unspecified() => {
            let name = crate::sys::hostname();
            let resolved = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), 0))
                .ok()
                .and_then(|mut addrs| addrs.find(|a| !a.ip().is_loopback()).map(|a| a.ip()));
            match resolved.or_else(primary_ip) {
                Some(ip) => ip,
                None => {
                    tracing::warn!(host = %name, "no IP to advertise was found; peers are given the host name (set --advertise)");
                    return name;
                }
            }
        }
        ip => ip,
    };
    match ip {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    }
}

/// The source address the kernel picks for the default route: a UDP socket "connected" to a TEST-NET-1
/// address (RFC 5737) sends no packet, it only chooses a route.
fn primary_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

/// How long an idle connection to a peer is kept open.
// PERF(wave): peer connections close after 10 s idle: ~160 KiB each, tens per agent after a wave.
pub(crate) const PEER_CONNECTION_IDLE: std::time::Duration = std::time::Duration::from_secs(10);

/// The client agents use to forward waves and send reports. It carries no token: each request to a peer is
/// signed with the swarm key instead (`wave::forward`), so a peer, or whatever poses as one, never sees the
/// token. With `public_tls` it speaks HTTPS to peers, verifying them against `public_tls.ca` and, with
/// `client_auth`, presenting this agent's certificate (mutual TLS).
pub fn http_client(config: &AgentConfig) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        // Agents speak HTTP/2 to each other (their public port serves h2c, and h2 over TLS): one multiplexed
        // connection per peer carries every copy and report. Fresh HTTP/1 connections per burst left tens of
        // thousands of sockets in TIME_WAIT and overflowed listen queues at 1,000 local agents. An idle
        // connection is kept 10 s, so waves a few seconds apart find it open; no longer, because one costs
        // ~160 KiB at both ends together (h2's buffers and stream tables) and a wave leaves an agent
        // connected to tens of peers (a 1,000-agent swarm held ~250 MiB of them for a minute).
        .http2_prior_knowledge()
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(PEER_CONNECTION_IDLE)
        // A copy or report is never redirected: a peer that answers 3xx is a failed send.
        .redirect(reqwest::redirect::Policy::none());
    if let Some(tls) = &config.public_tls {
        let ca = tls.ca.as_deref().context(
            "public_tls.ca is needed: the CA that signed the agents' certificates, so agents can verify each other",
        )?;
        let identity = tls.client_auth.then_some((tls.cert.as_path(), tls.key.as_path()));
        builder = builder.tls_backend_preconfigured(crate::credentials::tls::client_config(ca, identity)?);
    } else {
        builder = crate::credentials::tls::with_system_roots(builder);
    }
    builder.build().context("cannot build the HTTP client")
}

/// Consul's HTTP API speaks HTTP/1 only.
pub(crate) fn consul_client() -> anyhow::Result<reqwest::Client> {
    crate::credentials::tls::with_system_roots(reqwest::Client::builder())
        .connect_timeout(std::time::Duration::from_secs(2))
        .pool_max_idle_per_host(2)
        .build()
        .context("cannot build the Consul HTTP client")
}

/// `TARSIER_RESTARTS`, which `tarsier swarm` sets on an agent it starts again after it died.
fn restarts_by_supervisor() -> u64 {
    std::env::var("TARSIER_RESTARTS").ok().and_then(|count| count.parse().ok()).unwrap_or(0)
}
