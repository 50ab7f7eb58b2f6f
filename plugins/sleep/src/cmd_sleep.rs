use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{negative_is_zero, Command, DataError, ExecContext, HumanDuration, JobFuture};

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SleepData {
    /// How long to wait before answering; a negative one is no wait, as in the reference.
    #[serde(deserialize_with = "negative_is_zero")]
    pub duration: HumanDuration,
}

impl Default for SleepData {
    fn default() -> Self {
        Self { duration: HumanDuration::from_secs(1) }
    }
}

pub struct Sleep;

impl Command for Sleep {
    type Data = SleepData;
    type Plan = SleepData;
    const NAME: &'static str = "sleep";
    const DESCRIPTION: &'static str = "Answers only after `duration` (a slow dependency, a hung request).";

    fn check(&self, data: SleepData, ctx: &ExecContext) -> Result<SleepData, DataError> {
        ctx.limits.check_duration("duration", data.duration)?;
        Ok(data)
    }

    fn execute(&self, data: SleepData, ctx: ExecContext) -> JobFuture {
        Box::pin(async move {
            let started = Instant::now();
            // A zero sleep answers at once: the timer wheel would round it up to its next millisecond tick.
            if data.duration.0.is_zero() {
                return Ok(json!({ "slept_ms": 0 }));
            }
            tokio::select! {
                _ = tokio::time::sleep(data.duration.0) => {}
                _ = ctx.cancel.cancelled() => {}
            }
            Ok(json!({ "slept_ms": started.elapsed().as_millis() as u64 }))
        })
    }
}
