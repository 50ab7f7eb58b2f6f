//! The public port: `POST /exec`, `POST /abort`, `GET /jobs`, `GET|DELETE /jobs/{id}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::Held;

use crate::body::{BodyFormat, CommandBody, WaveSpec, MAX_REMAIN};
use crate::error::ApiError;
use crate::exec::execute;
use crate::http_common::{count_requests, method_not_allowed, no_such_route};
use crate::outcome::Status;
use crate::state::AgentState;
use crate::wave::{now_ms, Entry, Forwarded, ReportEntry, Route};

pub fn router(state: Arc<AgentState>, max_body: usize) -> Router {
    Router::new()
        .route("/exec", post(exec))
        .route("/abort", post(abort))
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/waves/{id}", get(wave_summary))
        .route("/waves/{id}/report", post(wave_report))
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state((state.clone(), "public"), count_requests))
        .with_state(state)
}

/// The body, or a JSON error for a body too large or unreadable.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the body is larger than this agent accepts (max_body in the config)".to_owned()
        } else {
            rejection.body_text()
        };
        ApiError::new(status, message)
    })
}

fn body_format(headers: &HeaderMap) -> BodyFormat {
    BodyFormat::from_content_type(headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()))
}

async fn exec(
    State(state): State<Arc<AgentState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body_bytes(body)?;
    let body = CommandBody::parse(&bytes, body_format(&headers))?;
    let answer = execute(&state, body).await?;
    Ok((answer.status, Json(answer.body)).into_response())
}

/// `POST /abort`: releases everything here, then floods the abort to the whole swarm as a dedupe wave that
/// reports back, so `GET /waves/{id}` on this agent tells how many agents aborted. `{local: true}` stops here.
async fn abort(
    State(state): State<Arc<AgentState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AbortAnswer>, ApiError> {
    let bytes = body_bytes(body)?;
    let request = AbortBody::parse(&bytes, body_format(&headers))?;
    let mut wave = request.wave.unwrap_or_default();
    if wave.hop == 0 {
        // A client's abort: whatever its wave said, it floods every agent once and reports back.
        let remain = if request.local { 0 } else { MAX_REMAIN };
        wave = WaveSpec { remain, buddies: ABORT_BUDDIES, dedupe: true, report: true, ..wave };
    }
    let admitted = match state.swarm.enter(Some(wave), "abort")? {
        Entry::Duplicate { wave_id } => return Ok(Json(AbortAnswer::duplicate(&state.name, wave_id))),
        Entry::Run(admitted) => admitted,
    };
    let started_ms = now_ms();
    let aborted = state.abort_local().await;
    let elapsed_ms = now_ms().saturating_sub(started_ms);
    let result = json!({ "cancelled_jobs": aborted.cancelled_jobs, "released": aborted.released });
    let (swarm, reported) = (state.swarm.clone(), admitted.clone());
    tokio::spawn(async move { swarm.report(&reported, Status::Ok, elapsed_ms, result).await });
    let forwarding = admitted
        .next
        .as_ref()
        .map(|next| state.swarm.forward(Route::Abort, &AbortBody { wave: Some(next.clone()), local: false }, next));
    // The origin waits for its first hop so its answer can say how far the abort went; peers do not.
    let forwarded = match (admitted.is_origin, forwarding) {
        (true, Some(task)) => task.await.unwrap_or_default(),
        _ => Forwarded::default(),
    };
    Ok(Json(AbortAnswer {
        agent: state.name.clone(),
        wave_id: admitted.wave_id,
        status: if admitted.is_origin { Status::Ok } else { Status::Accepted },
        cancelled_jobs: Some(aborted.cancelled_jobs),
        released: Some(aborted.released),
        forwarded: forwarded.accepted,
        forward: Some(forwarded),
    }))
}

/// The answer of `/abort`.
#[derive(Debug, Serialize)]
struct AbortAnswer {
    agent: String,
    wave_id: String,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancelled_jobs: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    released: Option<Held>,
    forwarded: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    forward: Option<Forwarded>,
}

impl AbortAnswer {
    fn duplicate(agent: &str, wave_id: String) -> Self {
        Self {
            agent: agent.to_owned(),
            wave_id,
            status: Status::Duplicate,
            cancelled_jobs: None,
            released: None,
            forwarded: 0,
            forward: None,
        }
    }
}

/// How many peers each agent sends the abort flood to; dedupe rounds reach everyone whatever this is.
const ABORT_BUDDIES: u32 = 3;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct AbortBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wave: Option<WaveSpec>,
    /// Abort this agent only, without flooding the swarm.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    local: bool,
}

impl AbortBody {
    fn parse(bytes: &[u8], format: BodyFormat) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let parsed = match format {
            BodyFormat::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
            BodyFormat::Yaml => serde_norway::from_slice(bytes).map_err(|e| e.to_string()),
        };
        parsed.map_err(|message| ApiError::bad_request(None, format!("invalid abort body: {message}")))
    }
}

#[derive(Deserialize)]
struct SummaryQuery {
    #[serde(default)]
    entries: bool,
}

async fn wave_summary(
    State(state): State<Arc<AgentState>>,
    Path(id): Path<String>,
    Query(query): Query<SummaryQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let records = &state.swarm.records;
    let mut summary = records.summary(&id, query.entries).ok_or_else(|| {
        ApiError::not_found(format!("no report for wave {id} here: only its origin keeps one, with wave.report: true"))
    })?;
    // The command itself knows how its results add up across agents (net/http_load merges histograms).
    if let Some((command, results)) = records.results(&id) {
        if let Some(merged) = state.registry.resolve(&command).ok().and_then(|r| r.command.merge(&results)) {
            summary["merged"] = merged;
        }
    }
    Ok(Json(summary))
}

async fn wave_report(
    State(state): State<Arc<AgentState>>,
    Path(id): Path<String>,
    Json(entry): Json<ReportEntry>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if state.swarm.records.add_report(&id, entry) {
        Ok(Json(json!({ "recorded": true })))
    } else {
        Err(ApiError::not_found(format!("wave {id} did not start here")))
    }
}

async fn list_jobs(State(state): State<Arc<AgentState>>) -> Json<serde_json::Value> {
    let (running, finished) = state.jobs.list();
    Json(json!({ "running": running, "finished": finished }))
}

fn parse_id(id: &str) -> Result<u64, ApiError> {
    id.parse().map_err(|_| ApiError::bad_request(Some("id".into()), format!("job id `{id}` is not a number")))
}

async fn get_job(
    State(state): State<Arc<AgentState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let job = state.jobs.get(id).ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    Ok(Json(json!(job)))
}

async fn cancel_job(
    State(state): State<Arc<AgentState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    match state.jobs.cancel(id) {
        Some(true) => Ok(Json(json!({ "job_id": id, "cancelled": true }))),
        Some(false) => Err(ApiError::new(StatusCode::CONFLICT, format!("job {id} has already finished"))),
        None => Err(ApiError::not_found(format!("no job {id}"))),
    }
}
