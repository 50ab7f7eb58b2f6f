use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, CommandError, DataError, ExecContext, HumanDuration, JobFuture, Limits};

use crate::Traps;

const MAX_THREADS: u32 = 4096;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeadlockData {
    /// OS threads to block: two in a lock-order inversion, the rest waiting on the first lock.
    #[serde(alias = "amount")]
    pub threads: u32,
    /// How long they stay blocked (or until abort / job cancel).
    pub duration: HumanDuration,
    /// Make `/health` hang for as long, so a liveness probe fires.
    pub block_health: bool,
}

impl Default for DeadlockData {
    fn default() -> Self {
        Self { threads: 2, duration: HumanDuration::from_secs(30), block_health: false }
    }
}

pub struct Deadlock(pub Arc<Traps>);

impl Command for Deadlock {
    type Data = DeadlockData;
    const NAME: &'static str = "deadlock";
    const DESCRIPTION: &'static str = "Blocks `threads` OS threads in a real lock-order inversion for `duration` \
        (released early by abort). With block_health, /health hangs too.";

    fn check(&self, data: &DeadlockData, limits: &Limits) -> Result<(), DataError> {
        if data.threads == 0 || data.threads > MAX_THREADS {
            return Err(DataError::field("threads", format!("{} must be between 1 and {MAX_THREADS}", data.threads)));
        }
        limits.check_duration("duration", data.duration)
    }

    fn execute(&self, data: DeadlockData, ctx: ExecContext) -> JobFuture {
        let traps = self.0.clone();
        Box::pin(async move {
            let health_guard = if data.block_health { Some(ctx.health.block().await) } else { None };
            let started = Instant::now();
            let (trap, handles) = traps
                .spring(data.threads, started + data.duration.0)
                .map_err(|err| CommandError::Failed(format!("cannot start a thread: {err}")))?;
            let joined = tokio::task::spawn_blocking(move || handles.into_iter().for_each(|h| drop(h.join())));
            tokio::pin!(joined);
            let released_by = tokio::select! {
                _ = &mut joined => "timeout",
                _ = ctx.cancel.cancelled() => {
                    trap.release();
                    // `joined` cannot fail in a way that matters here: the threads only wait.
                    let _ = joined.await;
                    "cancel"
                }
            };
            traps.forget(&trap);
            drop(health_guard);
            Ok(json!({
                "threads": data.threads,
                "blocked_ms": started.elapsed().as_millis() as u64,
                "released_by": released_by,
                "health_blocked": data.block_health,
            }))
        })
    }
}
