use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedRwLockWriteGuard, RwLock};
use tokio_util::sync::CancellationToken;

use crate::Limits;

/// What a running command gets from the agent.
#[derive(Clone)]
pub struct ExecContext {
    /// Cancelled by `DELETE /jobs/{id}`, `/abort` and shutdown. Commands stop promptly and return what they did.
    pub cancel: CancellationToken,
    pub limits: Arc<Limits>,
    pub health: HealthGate,
}

impl ExecContext {
    /// A flag that OS threads can poll cheaply; it turns true when the job is cancelled.
    pub fn cancel_flag(&self) -> CancelFlag {
        let flag = CancelFlag::default();
        let (token, setter) = (self.cancel.clone(), flag.clone());
        tokio::spawn(async move {
            token.cancelled().await;
            setter.raise();
        });
        flag
    }
}

/// A cancellation flag for blocking threads that cannot await a token.
#[derive(Clone, Default, Debug)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
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
