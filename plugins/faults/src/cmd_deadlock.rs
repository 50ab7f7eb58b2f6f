use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{
    negative_is_zero, Command, CommandError, DataError, ExecContext, HumanDuration, JobFuture, Reservation,
};

use crate::Traps;

const MAX_THREADS: u32 = 4096;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeadlockData {
    /// OS threads to block: two in a lock-order inversion, the rest waiting on the first lock. 0 blocks nothing
    /// and waits `duration`, as the reference did.
    #[serde(alias = "amount")]
    pub threads: u32,
    /// How long they stay blocked (or until abort / job cancel); a negative one is no wait, as in the reference.
    #[serde(deserialize_with = "negative_is_zero")]
    pub duration: HumanDuration,
    /// Make `/health` hang for as long, so a liveness probe fires.
    pub block_health: bool,
}

impl Default for DeadlockData {
    fn default() -> Self {
        Self { threads: 2, duration: HumanDuration::from_secs(30), block_health: false }
    }
}

/// A checked request and its share of `limits.max_blocked_threads`.
pub struct DeadlockPlan {
    data: DeadlockData,
    reserved: Reservation,
}

pub struct Deadlock(pub Arc<Traps>);

impl Command for Deadlock {
    type Data = DeadlockData;
    type Plan = DeadlockPlan;
    const NAME: &'static str = "deadlock";
    const DESCRIPTION: &'static str = "Blocks `threads` OS threads in a real lock-order inversion for `duration` \
        (released early by abort). With block_health, /health hangs too.";

    fn check(&self, data: DeadlockData, ctx: &ExecContext) -> Result<DeadlockPlan, DataError> {
        if data.threads > MAX_THREADS {
            return Err(DataError::field("threads", format!("{} must be at most {MAX_THREADS}", data.threads)));
        }
        ctx.limits.check_duration("duration", data.duration)?;
        let reserved = ctx.budgets.blocked_threads.reserve("threads", u64::from(data.threads))?;
        Ok(DeadlockPlan { data, reserved })
    }

    fn execute(&self, plan: DeadlockPlan, ctx: ExecContext) -> JobFuture {
        let traps = self.0.clone();
        Box::pin(async move {
            let data = plan.data;
            let health_guard = if data.block_health { Some(ctx.health.block().await) } else { None };
            let started = Instant::now();
            let deadline = started + data.duration.0;
            // The threads are nobody's to join: they wake when released or at the deadline and end by
            // themselves, giving back their share of the budget with the last one. Joining them on the blocking
            // pool took one of its slots per deadlock, and 520 deadlocks starved DNS and file work.
            let trap = traps
                .spring(data.threads, deadline, plan.reserved)
                .map_err(|err| CommandError::Failed(format!("cannot start a thread: {err}")))?;
            let released_by = tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => "timeout",
                _ = ctx.cancel.cancelled() => "cancel",
            };
            trap.release();
            // The threads wake within microseconds; waiting (briefly) for them to end means that when the
            // job ends, what it held is no longer counted as held (an abort reports what it released).
            let woken = Instant::now();
            while !trap.all_ended() && woken.elapsed() < std::time::Duration::from_millis(100) {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
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
