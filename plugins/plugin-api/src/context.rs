use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedRwLockWriteGuard, RwLock};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::{Budgets, ControlPlaneSource, Limits};

/// What a running command gets from the agent.
#[derive(Clone)]
pub struct ExecContext {
    /// Fired by `DELETE /jobs/{id}`, `/abort` and shutdown. Commands stop within 100 ms, release whatever they
    /// took, and answer `cancelled`.
    pub cancel: Cancel,
    pub limits: Arc<Limits>,
    /// The agent-wide budgets that `check` reserves from (`limits.max_ram`, `max_disk`, ...).
    pub budgets: Arc<Budgets>,
    pub health: HealthGate,
    /// Where a long command publishes how far it got, for `GET /jobs` and the CLI's live line.
    pub progress: Progress,
    /// The ports network faults leave alone (`ControlPlane`).
    pub control_plane: ControlPlaneSource,
}

/// A running command's latest progress (a small JSON object it replaces now and then); `GET /jobs` shows it.
#[derive(Clone, Default)]
pub struct Progress(Arc<std::sync::Mutex<Option<serde_json::Value>>>);

impl Progress {
    pub fn set(&self, progress: serde_json::Value) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(progress);
    }

    pub fn get(&self) -> Option<serde_json::Value> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ExecContext {
    /// A context of its own, with no limits: for tests and benches that run a command outside an agent.
    pub fn standalone() -> Self {
        let limits = Arc::new(Limits::default());
        Self {
            cancel: Cancel::default(),
            budgets: Arc::new(Budgets::from_limits(&limits)),
            limits,
            health: HealthGate::default(),
            progress: Progress::default(),
            control_plane: ControlPlaneSource::default(),
        }
    }

    /// The flag OS threads poll (an atomic load, no lock and no task behind it).
    pub fn cancel_flag(&self) -> CancelFlag {
        self.cancel.flag()
    }
}

/// A job's cancellation: a token async code awaits, and a flag OS threads poll. `cancel` sets both, flag first,
/// so code woken by the token always sees the flag raised.
#[derive(Clone, Default)]
pub struct Cancel {
    token: CancellationToken,
    flag: CancelFlag,
}

impl Cancel {
    /// Cancels; true when this call did it (not an earlier one), so concurrent aborts count a job once.
    pub fn cancel(&self) -> bool {
        let first = !self.flag.0.swap(true, Ordering::SeqCst);
        self.token.cancel();
        first
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.is_raised()
    }

    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    pub fn flag(&self) -> CancelFlag {
        self.flag.clone()
    }
}

/// A cancellation flag for blocking threads that cannot await a token.
#[derive(Clone, Default, Debug)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The agent's `/health` takes a read lock here; a command that must make health hang (a deadlock with
/// `block_health: true`) holds the write lock for as long as it runs.
#[derive(Clone, Default)]
pub struct HealthGate(Arc<RwLock<()>>);

impl HealthGate {
    pub async fn block(&self) -> OwnedRwLockWriteGuard<()> {
        self.0.clone().write_owned().await
    }
    pub async fn pass(&self) {
        let _read = self.0.read().await;
    }
}
