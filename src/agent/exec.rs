//! Running one command body on this agent: resolve, enter the wave, check, run as a job, answer.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{json, Value};
use tarsier_plugin::{Cancel, CommandError};

use crate::agent::jobs::raw_json;
use crate::agent::state::AgentState;
use crate::agent::wave::{Admitted, Entry, Forwarding, Route};
use crate::wire::answer::{ExecAnswer, Forwarded, Selection};
use crate::wire::body::CommandBody;
use crate::wire::error::ApiError;
use crate::wire::status::Status;

/// A finished command's HTTP status and JSON answer.
pub struct Answer {
    pub status: StatusCode,
    pub body: ExecAnswer,
}

/// Runs `body` here and sends it on through the swarm when it is a wave. Refusals (unknown command, bad data,
/// over a limit) come back as `Err` before anything is taken; once accepted, the command runs as a job in its
/// own task, so a client that hangs up does not cut it short, and the answer says how it ended.
///
/// A copy forwarded by a peer is answered `202` at once, so a deep wave never holds connections open along
/// its tree; the origin's client gets the answer when its own command has finished.
/// `request_id` is the client's `Tarsier-Request-Id`, kept with the job so the client can find it.
pub async fn execute(
    state: &Arc<AgentState>,
    mut body: CommandBody,
    request_id: Option<String>,
) -> Result<Answer, ApiError> {
    let resolved = state.registry.resolve(&body.command)?;
    if state.in_process && resolved.command.ends_process() {
        return Err(ApiError::bad_request(
            Some("command".into()),
            format!(
                "{} would end this agent's process, which every agent of this in-process local swarm shares: \
                 it would kill them all. Run `tarsier swarm` with its agents in processes of their own (the \
                 default for a small swarm, without --in-process), or agents an orchestrator restarts",
                resolved.name
            ),
        ));
    }
    let admitted = match state.swarm.enter(body.wave.take(), Route::Exec, &resolved.name)? {
        Entry::Duplicate { wave_id } => {
            let body = ExecAnswer::new(wave_id, state.name.clone(), resolved.name, None, Status::Duplicate);
            return Ok(Answer { status: StatusCode::OK, body });
        }
        Entry::Run(admitted) => admitted,
    };
    // The copies are made before the data goes to the command, and sent only once the command accepted it.
    let copies = admitted
        .copies(|wave| CommandBody {
            command: resolved.name.to_string(),
            data: body.data.clone(),
            wave: Some(wave),
            detach: false,
        })
        .map_err(|err| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot write the wave's copy as JSON: {err}"))
        })?;
    if !admitted.runs_here {
        return delegate(state, admitted, resolved, body.data, copies).await;
    }
    let detached = body.detach || !admitted.is_origin;
    let started = state.jobs.start(&resolved.name, &admitted.wave_id, detached, request_id, asked_duration(&body.data));
    let (job_id, cancel) = (started.id, started.cancel);
    let job = match resolved.command.prepare(body.data, state.exec_context(cancel.clone(), started.progress)) {
        Ok(job) => job,
        Err(err) => {
            state.jobs.discard(job_id);
            state.metrics.commands.with_label_values(&[&*resolved.name, Status::Invalid.as_str()]).inc();
            return Err(err.into());
        }
    };
    tracing::info!(
        target: crate::logs::ACTIVITY,
        activity = "command_started",
        command = %resolved.name,
        wave_id = %admitted.wave_id,
        job = job_id,
        origin = admitted.is_origin,
        "command started"
    );
    // The local command and the forwarding start together.
    let forwarding = state.swarm.forward(Route::Exec, &admitted, copies, None);
    let is_origin = admitted.is_origin;
    let selection = admitted.selection.clone();
    let run = RunningJob { state: state.clone(), job_id, command: resolved.name, cancel, admitted };
    // A peer's copy and a detached job are answered before the job ends: what it is, not how it ended. Their
    // job gets its task at once, so a wave's next hop never waits for this one's job (or its report's first
    // steps); a job its client waits for anyway is polled here first.
    let answered_early = match (is_origin, body.detach) {
        (false, _) => Some(Status::Accepted),
        (true, true) => Some(Status::Running),
        (true, false) => None,
    };
    let mut answer = match answered_early {
        Some(status) => {
            let body = ExecAnswer { status, ..run.answer_base() };
            tokio::spawn(run.finish(job));
            if !is_origin {
                return Ok(Answer { status: StatusCode::ACCEPTED, body });
            }
            Answer { status: StatusCode::ACCEPTED, body }
        }
        None => match run_job(run.finish(job)).await {
            Finishing::Done(answer) => answer?,
            Finishing::Running(handle) => handle.await.map_err(job_failed)?,
        },
    };
    note_forwarding(&mut answer.body, forwarding, selection).await;
    Ok(answer)
}

/// The `duration` a command's data asks for, in ms, when it has one that reads as a duration (the command
/// checks it properly; this only lets `/jobs` and `/status` say `7 s of 30 s`).
fn asked_duration(data: &serde_json::Value) -> Option<u64> {
    let text = data.get("duration")?.as_str()?;
    tarsier_plugin::HumanDuration::parse(text).ok().map(|d| d.0.as_millis() as u64)
}

/// How the wave went on from here, in the origin's answer once its first hop is done, and what a selection
/// chose.
async fn note_forwarding(body: &mut ExecAnswer, forwarding: Option<Forwarding>, selection: Option<Selection>) {
    let forwarded = match forwarding {
        Some(forwarding) => forwarding.outcome().await,
        None => Forwarded::default(),
    };
    body.forwarded = forwarded.accepted;
    body.forward = Some(forwarded);
    body.selection = selection.map(Box::new);
}

/// The origin of a wave with `select` that did not choose itself: the data is checked here (so a bad body is
/// one 400, not one per chosen agent), the copies go to the chosen agents, and nothing runs here.
async fn delegate(
    state: &Arc<AgentState>,
    admitted: Admitted,
    resolved: crate::agent::registry::Resolved,
    data: Value,
    copies: Vec<axum::body::Bytes>,
) -> Result<Answer, ApiError> {
    resolved.command.parse(data)?;
    let forwarding = state.swarm.forward(Route::Exec, &admitted, copies, None);
    let mut body = ExecAnswer::new(admitted.wave_id, state.name.clone(), resolved.name, None, Status::Delegated);
    note_forwarding(&mut body, forwarding, admitted.selection).await;
    Ok(Answer { status: StatusCode::OK, body })
}

/// A job's end: already there, or in a task of its own.
enum Finishing {
    Done(Result<Answer, ApiError>),
    Running(tokio::task::JoinHandle<Answer>),
}

/// Polls a job once where the request is, and gives it a task of its own only if it is not done then. Why:
/// most control commands (a zero sleep, a stats read) finish at their first poll, and a task of their own
/// cost an allocation, maybe a wake-up of another worker thread, and a join per request. A job that waits
/// goes on in its task as before, so a client that hangs up does not cut it short.
// PERF(control): the job is polled once in place; only one that waits gets a task of its own.
async fn run_job(finish: impl Future<Output = Answer> + Send + 'static) -> Finishing {
    let mut finish = Box::pin(finish);
    // A panic in the first poll is the job's failure, as it would be in its own task, not the connection's.
    let first = std::future::poll_fn(|cx| {
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| finish.as_mut().poll(cx)));
        Poll::Ready(polled)
    })
    .await;
    match first {
        Ok(Poll::Ready(answer)) => Finishing::Done(Ok(answer)),
        Ok(Poll::Pending) => Finishing::Running(tokio::spawn(finish)),
        Err(_) => Finishing::Done(Err(job_failed("it panicked"))),
    }
}

fn job_failed(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the job's task failed: {why}"))
}

struct RunningJob {
    state: Arc<AgentState>,
    job_id: u64,
    command: Arc<str>,
    cancel: Cancel,
    admitted: Admitted,
}

impl RunningJob {
    fn answer_base(&self) -> ExecAnswer {
        let (wave_id, agent, command) = (self.admitted.wave_id.clone(), self.state.name.clone(), self.command.clone());
        ExecAnswer::new(wave_id, agent, command, Some(self.job_id), Status::Running)
    }

    async fn finish(self, job: tarsier_plugin::JobFuture) -> Answer {
        let started = Instant::now();
        let outcome = job.await;
        let elapsed = started.elapsed();
        let (status, http, result, error) = match outcome {
            // A command that stopped early but said what it did (a cut-short sleep or load) was cancelled.
            Ok(result) if self.cancel.is_cancelled() => (Status::Cancelled, StatusCode::OK, result, None),
            Ok(result) => (Status::Ok, StatusCode::OK, result, None),
            Err(err) => {
                let (status, http) = Status::of_error(&err);
                let field = match &err {
                    CommandError::Invalid(data) => data.field.clone(),
                    _ => None,
                };
                let message = crate::wire::error::capped(err.to_string());
                (status, http, Value::Null, Some((message, field.map(crate::wire::error::capped))))
            }
        };
        let metrics = &self.state.metrics;
        metrics.commands.with_label_values(&[&*self.command, status.as_str()]).inc();
        metrics.command_duration.with_label_values(&[&*self.command]).observe(elapsed.as_secs_f64());
        let elapsed_ms = elapsed.as_millis() as u64;
        let mut answer = self.answer_base();
        answer.status = status;
        answer.elapsed_ms = Some(elapsed_ms);
        let wave_id = &self.admitted.wave_id;
        if let Some((message, field)) = &error {
            answer.error = Some(message.clone());
            answer.field = Some(field.clone());
            tracing::warn!(activity = "command_ended", command = %self.command, %wave_id, job = self.job_id, elapsed_ms, %status, error = %message, "command ended");
        } else {
            tracing::info!(activity = "command_ended", command = %self.command, %wave_id, job = self.job_id, elapsed_ms, %status, "command ended");
        }
        // Serialized once, for the job list and the wave report; the client's answer takes the value itself.
        let stored = match &error {
            Some((message, _)) => raw_json(&json!({ "error": message })),
            None => raw_json(&result),
        };
        self.state.swarm.report(&self.admitted, status, elapsed_ms, &stored).await;
        if let (Some(remote), "net/http_load", Value::Object(_)) = (&self.state.remote_write, &*self.command, &result) {
            // Pushed from its own task: a slow receiver never holds up the answer or the job list.
            let (remote, agent, wave) = (remote.clone(), self.state.name.clone(), self.admitted.wave_id.clone());
            let (result, now) = (result.clone(), crate::remote_write::now_ms());
            tokio::spawn(async move {
                let mut batch = crate::remote_write::Batch::default();
                batch.http_load(&result, &[("agent", &agent), ("wave", &wave)], now);
                let _ = remote.push(batch).await;
            });
        }
        self.state.jobs.finish(self.job_id, status, elapsed_ms, stored);
        answer.result = Some(result);
        Answer { status: http, body: answer }
    }
}
