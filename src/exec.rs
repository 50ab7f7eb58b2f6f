//! Running one command body on this agent: resolve, check, run as a job, answer.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::http::StatusCode;
use serde_json::{json, Value};
use tarsier_plugin::{CommandError, ExecContext};
use tokio_util::sync::CancellationToken;

use crate::agent::AgentState;
use crate::body::CommandBody;
use crate::error::ApiError;

/// A finished command's HTTP status and JSON answer.
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

/// Runs `body` here. Refusals (unknown command, bad data, over a limit) come back as `Err` before anything
/// is taken; once accepted, the command runs as a job in its own task, so a client that hangs up does not
/// cut it short, and the answer says how it ended.
pub async fn execute(state: &Arc<AgentState>, body: CommandBody) -> Result<Answer, ApiError> {
    let resolved = state.registry.resolve(&body.command)?;
    let wave_id = body.wave.as_ref().and_then(|w| w.id.clone()).unwrap_or_else(new_wave_id);
    let (job_id, cancel) = state.jobs.start(&resolved.name, &wave_id, body.detach);
    let ctx = ExecContext { cancel: cancel.clone(), limits: state.limits.clone(), health: state.health.clone() };
    let job = match resolved.command.prepare(body.data, ctx) {
        Ok(job) => job,
        Err(err) => {
            state.jobs.discard(job_id);
            state.metrics.commands.with_label_values(&[resolved.name.as_str(), "invalid"]).inc();
            return Err(err.into());
        }
    };
    let run = RunningJob { state: state.clone(), job_id, command: resolved.name, wave_id, cancel };
    let base = run.answer_base();
    let handle = tokio::spawn(run.finish(job));
    if body.detach {
        let mut answer = base;
        answer["status"] = json!("running");
        return Ok(Answer { status: StatusCode::ACCEPTED, body: answer });
    }
    handle
        .await
        .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the job's task failed: {err}")))
}

struct RunningJob {
    state: Arc<AgentState>,
    job_id: u64,
    command: String,
    wave_id: String,
    cancel: CancellationToken,
}

impl RunningJob {
    fn answer_base(&self) -> Value {
        json!({
            "wave_id": self.wave_id,
            "agent": self.state.name,
            "command": self.command,
            "job_id": self.job_id,
            "forwarded": 0,
        })
    }

    async fn finish(self, job: tarsier_plugin::JobFuture) -> Answer {
        let started = Instant::now();
        let outcome = job.await;
        let elapsed = started.elapsed();
        let (status, result_label, result, error) = match outcome {
            Ok(result) if self.cancel.is_cancelled() => (StatusCode::OK, "cancelled", result, None),
            Ok(result) => (StatusCode::OK, "ok", result, None),
            Err(CommandError::Invalid(err)) => {
                (StatusCode::BAD_REQUEST, "invalid", Value::Null, Some((err.message, err.field)))
            }
            Err(CommandError::Refused(msg)) => {
                (StatusCode::INSUFFICIENT_STORAGE, "refused", Value::Null, Some((msg, None)))
            }
            Err(CommandError::Failed(msg)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "failed", Value::Null, Some((msg, None)))
            }
        };
        let metrics = &self.state.metrics;
        metrics.commands.with_label_values(&[self.command.as_str(), result_label]).inc();
        metrics.command_duration.with_label_values(&[self.command.as_str()]).observe(elapsed.as_secs_f64());
        let elapsed_ms = elapsed.as_millis() as u64;
        let mut answer = self.answer_base();
        answer["status"] = json!(result_label);
        answer["result"] = result.clone();
        answer["elapsed_ms"] = json!(elapsed_ms);
        if let Some((message, field)) = &error {
            answer["error"] = json!(message);
            answer["field"] = json!(field);
            tracing::warn!(command = %self.command, wave_id = %self.wave_id, job = self.job_id, elapsed_ms, result = result_label, error = %message, "command ended");
        } else {
            tracing::info!(command = %self.command, wave_id = %self.wave_id, job = self.job_id, elapsed_ms, result = result_label, "command ended");
        }
        let stored = if error.is_some() { json!({ "error": answer["error"] }) } else { result };
        self.state.jobs.finish(self.job_id, result_label, elapsed_ms, stored);
        Answer { status, body: answer }
    }
}

/// A wave id: 16 hex digits, random enough to tell waves apart across a swarm.
fn new_wave_id() -> String {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:016x}", RandomState::new().hash_one((nanos, std::process::id())))
}
