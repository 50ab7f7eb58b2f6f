//! What one agent holds: plain data, shared by its two routers. It knows nothing of HTTP routing; the wave
//! code (`wave::Swarm`) owns what waves need and does not look back here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tarsier_plugin::{run_on_thread, Budgets, Cancel, ExecContext, HealthGate, Held, Limits};
use tokio_util::sync::CancellationToken;

use crate::agent::jobs::Jobs;
use crate::agent::metrics::Metrics;
use crate::agent::registry::Registry;
use crate::agent::wave::Swarm;
use crate::credentials::Token;

pub struct AgentState {
    /// Shared: every `/exec` answer carries it.
    pub name: Arc<str>,
    pub(crate) registry: Registry,
    pub(crate) jobs: Jobs,
    pub(crate) metrics: Metrics,
    pub(crate) limits: Arc<Limits>,
    /// What `limits` caps, reserved by commands before they take it.
    pub(crate) budgets: Arc<Budgets>,
    pub(crate) health: HealthGate,
    pub(crate) started: Instant,
    pub public_addr: SocketAddr,
    pub service_addr: SocketAddr,
    /// `host:port` Prometheus reaches the service port at (for `/sd`).
    pub(crate) advertised_service: String,
    pub(crate) swarm: Arc<Swarm>,
    /// `remote_write:`: where the figures of the loads this agent runs are pushed.
    pub(crate) remote_write: Option<Arc<crate::remote_write::RemoteWrite>>,
    /// The swarm token every public route requires, when the agent has one.
    pub(crate) token: Option<Token>,
    pub(crate) bodies: BodyLimits,
    /// Nonces of the signed requests taken from peers (`http::signed`): a copy is taken once.
    pub(crate) seen_nonces: crate::agent::http::nonces::SeenNonces,
    /// Which host names and web origins requests may carry (`http::browsers`).
    pub(crate) browsers: crate::wire::browsers::BrowserPolicy,
    /// The ports network faults leave alone: own, Consul's, peers' (`tarsier_plugin::ControlPlane`).
    pub(crate) control_plane: tarsier_plugin::ControlPlaneSource,
    /// Fires when the agent shuts down.
    pub(crate) shutdown: CancellationToken,
    /// One abort at a time here, so two concurrent aborts do not both count what one of them released.
    pub(crate) aborting: tokio::sync::Mutex<()>,
    /// One of the agents of an in-process local swarm: they share this process, so a command that ends the
    /// process (`faults/segfault`, ...) is refused rather than taking them all.
    pub(crate) in_process: bool,
    /// How often `tarsier swarm` has started this agent again after it died (`TARSIER_RESTARTS`, which its
    /// supervisor sets; 0 elsewhere).
    pub(crate) restarts: u64,
}

/// How long an abort waits for the jobs it cancelled to stop and release what they hold (they stop within
/// 100 ms), before it says what was released.
const ABORT_SETTLE: Duration = Duration::from_millis(500);

/// How large a request body may be, and how long it may take to arrive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimits {
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// What the local half of an abort did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Aborted {
    /// Jobs this abort cancelled (a job another abort had already cancelled is not counted again).
    pub cancelled_jobs: usize,
    pub released: Held,
}

impl AgentState {
    /// The context a job of this agent runs with.
    pub(crate) fn exec_context(&self, cancel: Cancel, progress: tarsier_plugin::Progress) -> ExecContext {
        ExecContext {
            cancel,
            limits: self.limits.clone(),
            budgets: self.budgets.clone(),
            health: self.health.clone(),
            progress,
            control_plane: self.control_plane.clone(),
        }
    }

    /// Cancels every job, then releases everything every plugin holds (the local half of `/abort`). In that
    /// order: a command sees its cancel before the release, so it cannot add anything after it. What it says
    /// was released is what was held before and is not any more, once the cancelled jobs have stopped.
    pub(crate) async fn abort_local(self: &Arc<Self>) -> Aborted {
        let _one_at_a_time = self.aborting.lock().await;
        let before = self.registry.held();
        let cancelled = self.jobs.cancel_all();
        self.release_all().await;
        let settle = Instant::now() + ABORT_SETTLE;
        while self.jobs.any_running(&cancelled) && Instant::now() < settle {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let released = before.released_since(self.registry.held());
        let cancelled_jobs = cancelled.len();
        self.metrics.aborts.inc();
        tracing::info!(activity = "abort", agent = %self.name, cancelled_jobs, ?released, "abort: everything released");
        Aborted { cancelled_jobs, released }
    }

    /// Releases everything held, on a thread of its own: deleting 100,000 files blocks for a while.
    pub(crate) async fn release_all(self: &Arc<Self>) -> Held {
        let state = self.clone();
        run_on_thread("release", &Cancel::default(), move || Ok(state.registry.release_all())).await.unwrap_or_else(
            |err| {
                tracing::error!(%err, "releasing what is held failed");
                Held::default()
            },
        )
    }
}
