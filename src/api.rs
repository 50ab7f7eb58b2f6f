//! The public port: `POST /exec`, `POST /abort`, `GET /jobs`, `GET|DELETE /jobs/{id}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::agent::AgentState;
use crate::body::{BodyFormat, CommandBody, WaveSpec, MAX_REMAIN};
use crate::error::ApiError;
use crate::exec::{execute, new_wave_id};
use crate::http_common::{count_requests, method_not_allowed, no_such_route};
use crate::wave::{forward, now_ms, report, Forwarded, ReportEntry};
use serde::Deserialize;

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
) -> Result<Json<serde_json::Value>, ApiError> {
    let bytes = body_bytes(body)?;
    let request = AbortBody::parse(&bytes, body_format(&headers))?;
    let received_at_ms = now_ms();
    let mut wave = request.wave.unwrap_or_default();
    let is_origin = wave.hop == 0;
    let wave_id = wave.id.get_or_insert_with(new_wave_id).clone();
    if is_origin {
        wave = WaveSpec {
            remain: if request.local { 0 } else { MAX_REMAIN },
            buddies: ABORT_BUDDIES,
            dedupe: true,
            report: true,
            origin: Some(state.advertised_public.clone()),
            ..wave
        };
        state.waves.open_report(&wave_id, "abort");
    } else {
        state.metrics.waves_received.inc();
    }
    if !state.waves.first_time(&wave_id) {
        state.metrics.waves_deduped.inc();
        return Ok(Json(json!({ "agent": state.name, "wave_id": wave_id, "status": "duplicate" })));
    }
    let (cancelled, released) = state.abort_local();
    let result = json!({ "cancelled_jobs": cancelled, "released": released });
    if let Some(origin) = wave.origin.clone() {
        let entry = ReportEntry {
            agent: state.name.clone(),
            hop: wave.hop,
            status: "ok".into(),
            received_at_ms,
            elapsed_ms: now_ms().saturating_sub(received_at_ms),
            result: result.clone(),
        };
        let (state, wave_id) = (state.clone(), wave_id.clone());
        tokio::spawn(async move { report(&state, &origin, &wave_id, entry).await });
    }
    let forwarding = (wave.remain > 0).then(|| {
        let copy = json!({ "wave": wave.next_hop() });
        let state = state.clone();
        tokio::spawn(async move { forward(&state, "/abort", &copy, ABORT_BUDDIES, true).await })
    });
    // The origin waits for its first hop so its answer can say how far the abort went; peers do not.
    let forwarded = match (is_origin, forwarding) {
        (true, Some(task)) => task.await.unwrap_or_default(),
        _ => Forwarded::default(),
    };
    Ok(Json(json!({
        "agent": state.name,
        "wave_id": wave_id,
        "status": if is_origin { "ok" } else { "accepted" },
        "cancelled_jobs": cancelled,
        "released": released,
        "forwarded": forwarded.accepted,
        "forward": forwarded,
    })))
}

/// How many peers each agent sends the abort flood to; dedupe rounds reach everyone whatever this is.
const ABORT_BUDDIES: u32 = 3;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AbortBody {
    #[serde(default)]
    wave: Option<WaveSpec>,
    /// Abort this agent only, without flooding the swarm.
    #[serde(default)]
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
    let mut summary = state.waves.summary(&id, query.entries).ok_or_else(|| {
        ApiError::not_found(format!("no report for wave {id} here: only its origin keeps one, with wave.report: true"))
    })?;
    // The command itself knows how its results add up across agents (net/http_load merges histograms).
    if let Some((command, results)) = state.waves.results(&id) {
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
    if state.waves.add_report(&id, entry) {
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
