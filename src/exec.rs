//! Running one command body on this agent: resolve, check, run as a job, answer.

use std::sync::Arc;
use std::time::Instant;

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};
use tarsier_plugin::{CommandError, ExecContext};
use tokio_util::sync::CancellationToken;

use crate::agent::AgentState;
use crate::body::{CommandBody, WaveSpec};
use crate::error::ApiError;
use crate::wave::{forward, now_ms, report, Forwarded, ReportEntry};

/// A finished command's HTTP status and JSON answer.
pub struct Answer {
    pub status: StatusCode,
    pub body: ExecAnswer,
}

/// The JSON answer of `/exec`. Typed rather than built as a `serde_json::Value`: building, patching and
/// dropping that tree was a fifth of an agent's own cost per request.
#[derive(Debug, Serialize)]
pub struct ExecAnswer {
    pub wave_id: String,
    pub agent: String,
    pub command: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
    /// `ok`, `cancelled`, `invalid`, `refused`, `failed`; `accepted` (a forwarded copy), `running` (detached),
    /// `duplicate` (a dedupe wave seen before).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The data field an `invalid` answer is about; `null` when it is about the whole data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<Option<String>>,
    /// Peers that took this agent's copy of the wave.
    pub forwarded: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forwarded>,
}

impl ExecAnswer {
    /// An answer with no result (yet), nothing forwarded.
    fn new(wave_id: String, agent: String, command: String, job_id: Option<u64>, status: &'static str) -> Self {
        Self {
            wave_id,
            agent,
            command,
            job_id,
            status,
            result: None,
            elapsed_ms: None,
            error: None,
            field: None,
            forwarded: 0,
            forward: None,
        }
    }
}

/// Runs `body` here and sends it on through the swarm when it is a wave. Refusals (unknown command, bad data,
/// over a limit) come back as `Err` before anything is taken; once accepted, the command runs as a job in its
/// own task, so a client that hangs up does not cut it short, and the answer says how it ended.
///
/// A copy forwarded by a peer (`wave.hop > 0`) is answered `202` at once, so a deep wave never holds
/// connections open along its tree; the origin's client gets the answer when its own command has finished.
pub async fn execute(state: &Arc<AgentState>, mut body: CommandBody) -> Result<Answer, ApiError> {
    let resolved = state.registry.resolve(&body.command)?;
    let received_at_ms = now_ms();
    let mut wave = body.wave.take().unwrap_or_default();
    let forwarded_copy = wave.hop > 0;
    let wave_id = wave.id.get_or_insert_with(new_wave_id).clone();
    if forwarded_copy {
        state.metrics.waves_received.inc();
    }
    if wave.report && wave.origin.is_none() {
        wave.origin = Some(state.advertised_public.clone());
        state.waves.open_report(&wave_id, &resolved.name);
    }
    if wave.dedupe && !state.waves.first_time(&wave_id) {
        state.metrics.waves_deduped.inc();
        let body = ExecAnswer::new(wave_id, state.name.clone(), resolved.name, None, "duplicate");
        return Ok(Answer { status: StatusCode::OK, body });
    }
    let copy = (wave.remain > 0).then(|| next_hop(&resolved.name, &body.data, &wave));
    let (job_id, cancel) = state.jobs.start(&resolved.name, &wave_id, body.detach || forwarded_copy);
    let ctx = ExecContext { cancel: cancel.clone(), limits: state.limits.clone(), health: state.health.clone() };
    let job = match resolved.command.prepare(body.data, ctx) {
        Ok(job) => job,
        Err(err) => {
            state.jobs.discard(job_id);
            state.metrics.commands.with_label_values(&[resolved.name.as_str(), "invalid"]).inc();
            return Err(err.into());
        }
    };
    // The local command and the forwarding start together.
    let forwarding = copy.map(|copy| {
        let (state, buddies, dedupe) = (state.clone(), wave.buddies, wave.dedupe);
        tokio::spawn(async move { forward(&state, "/exec", &copy, buddies, dedupe).await })
    });
    let report_to = match (&wave.origin, wave.report) {
        (Some(origin), true) => Some(ReportTo { origin: origin.clone(), hop: wave.hop, received_at_ms }),
        _ => None,
    };
    let run = RunningJob { state: state.clone(), job_id, command: resolved.name, wave_id, cancel, report_to };
    let base = run.answer_base();
    let handle = tokio::spawn(run.finish(job));
    if forwarded_copy {
        return Ok(Answer { status: StatusCode::ACCEPTED, body: ExecAnswer { status: "accepted", ..base } });
    }
    let forwarded = match forwarding {
        Some(task) => task.await.unwrap_or_default(),
        None => Forwarded::default(),
    };
    let mut answer = if body.detach {
        Answer { status: StatusCode::ACCEPTED, body: ExecAnswer { status: "running", ..base } }
    } else {
        handle
            .await
            .map_err(|err| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the job's task failed: {err}")))?
    };
    answer.body.forwarded = forwarded.accepted;
    answer.body.forward = Some(forwarded);
    Ok(answer)
}

/// The copy a wave sends on: one hop further, one hop less to go, same id and origin.
fn next_hop(command: &str, data: &Value, wave: &WaveSpec) -> Value {
    json!(CommandBody { command: command.to_owned(), data: data.clone(), wave: Some(wave.next_hop()), detach: false })
}

/// Where and as what this agent reports its result, for a wave with `report: true`.
struct ReportTo {
    origin: String,
    hop: u32,
    received_at_ms: u64,
}

struct RunningJob {
    state: Arc<AgentState>,
    job_id: u64,
    command: String,
    wave_id: String,
    cancel: CancellationToken,
    report_to: Option<ReportTo>,
}

impl RunningJob {
    fn answer_base(&self) -> ExecAnswer {
        let (wave_id, agent, command) = (self.wave_id.clone(), self.state.name.clone(), self.command.clone());
        ExecAnswer::new(wave_id, agent, command, Some(self.job_id), "running")
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
        answer.status = result_label;
        answer.elapsed_ms = Some(elapsed_ms);
        if let Some((message, field)) = &error {
            answer.error = Some(message.clone());
            answer.field = Some(field.clone());
            tracing::warn!(command = %self.command, wave_id = %self.wave_id, job = self.job_id, elapsed_ms, result = result_label, error = %message, "command ended");
        } else {
            tracing::info!(command = %self.command, wave_id = %self.wave_id, job = self.job_id, elapsed_ms, result = result_label, "command ended");
        }
        let stored = match &error {
            Some((message, _)) => json!({ "error": message }),
            None => result.clone(),
        };
        if let Some(to) = &self.report_to {
            let entry = ReportEntry {
                agent: self.state.name.clone(),
                hop: to.hop,
                status: result_label.to_owned(),
                received_at_ms: to.received_at_ms,
                elapsed_ms,
                result: stored.clone(),
            };
            report(&self.state, &to.origin, &self.wave_id, entry).await;
        }
        self.state.jobs.finish(self.job_id, result_label, elapsed_ms, stored);
        answer.result = Some(result);
        Answer { status, body: answer }
    }
}

/// A wave id: 16 hex digits, random enough to tell waves apart across a swarm.
pub fn new_wave_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
