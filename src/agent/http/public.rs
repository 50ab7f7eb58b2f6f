//! The public port: `POST /exec`, `POST /abort`, `GET /status`, `GET /jobs`, `GET|DELETE /jobs/{id}`.

use std::sync::Arc;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::agent::exec::execute;
use crate::agent::http::body::body_bytes;
use crate::agent::http::gate::{method_not_allowed, no_such_route, GateLayer, Listener, MEMBERSHIP_ROUTE};
use crate::agent::jobs::raw_json;
use crate::agent::state::AgentState;
use crate::agent::wave::{now_ms, Entry, ReportEntry, Route};
use crate::sys::runtime_stats::ProcessStats;
use crate::wire::agent_status::{AgentStatus, RunningJob, StatusPeer};
use crate::wire::answer::{AbortAnswer, Forwarded, MembershipAnswer};
use crate::wire::body::{check_wave_id, BodyFormat, CommandBody, WaveSpec, MAX_REMAIN};
use crate::wire::error::ApiError;
use crate::wire::status::Status;
use crate::wire::REQUEST_ID;

/// Every public route requires the swarm token (when the agent has one); the request bounds are checked
/// before the token, so an oversized request is refused without reading it.
pub fn router(state: Arc<AgentState>) -> Router {
    Router::new()
        .route("/exec", post(exec))
        .route("/abort", post(abort))
        .route("/status", get(status))
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(get_job).delete(cancel_job))
        .route("/waves/{id}", get(wave_summary))
        .route("/waves/{id}/report", post(wave_report))
        .route(MEMBERSHIP_ROUTE, get(membership))
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(GateLayer::new(state.clone(), Listener::Public))
        .with_state(state)
}

#[derive(Deserialize)]
struct Challenge {
    nonce: String,
}

/// `GET /membership?nonce=N`: this agent's answer to a peer's challenge (`wave::membership`).
async fn membership(
    State(state): State<Arc<AgentState>>,
    query: Result<Query<Challenge>, QueryRejection>,
) -> Result<Json<MembershipAnswer>, ApiError> {
    let Query(challenge) =
        query.map_err(|rejection| ApiError::bad_request(Some("nonce".into()), rejection.body_text()))?;
    if !(16..=64).contains(&challenge.nonce.len()) || !challenge.nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(Some("nonce".into()), "nonce: 16 to 64 hex digits"));
    }
    let Some(key) = state.swarm.key() else {
        return Err(ApiError::not_found("this agent has no token, so no swarm key to prove membership with"));
    };
    let address = state.swarm.advertised_public.clone();
    let proof = key.challenge_answer(&challenge.nonce, &address);
    Ok(Json(MembershipAnswer { address, proof }))
}

/// A path parameter, or a JSON error (axum's own rejection is plain text).
fn path_param(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id).map_err(|rejection| ApiError::bad_request(None, rejection.body_text()))
}

/// The body's parser from its `Content-Type`, or a 415 naming the header: only YAML, JSON or none is read.
fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let given = headers.get(axum::http::header::CONTENT_TYPE);
    let text = given.map(|v| v.to_str().unwrap_or("(not text)"));
    BodyFormat::from_content_type(text).ok_or_else(|| {
        let shown: String = text.unwrap_or_default().chars().take(100).collect();
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "a body of type {shown:?} is not read: send application/yaml or application/json (curl: -H \
                 'Content-Type: application/yaml')"
            ),
        )
        .with_field("Content-Type")
    })
}

async fn exec(State(state): State<Arc<AgentState>>, request: axum::extract::Request) -> Result<Response, ApiError> {
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let (parts, body) = request.into_parts();
    let request_id = parts.headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).filter(|id| check_wave_id(id).is_ok());
    let request_id = request_id.map(str::to_owned);
    let answer = async {
        let format = body_format(&parts.headers)?;
        let bytes = body_bytes(&state, body).await?;
        let body = CommandBody::parse(&bytes, format)?;
        execute(&state, body, request_id).await
    }
    .await;
    match answer {
        Err(err) => {
            log_refused(client, err.status, err.field.as_deref(), &err.message);
            Err(err)
        }
        Ok(answer) => {
            if answer.status.is_client_error() {
                let field = answer.body.field.clone().flatten();
                log_refused(client, answer.status, field.as_deref(), answer.body.error.as_deref().unwrap_or_default());
            }
            Ok(json_response(answer.status, &answer.body))
        }
    }
}

/// A JSON answer in one buffer sized for a typical `/exec` answer. Why not `axum::Json`: it writes through
/// a `BytesMut` that starts at 128 bytes, so every answer grew it, and each of its many small writes went
/// through `BufMut`'s checks.
// PERF(control): one buffer sized for an answer, not axum::Json's growing BytesMut.
fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    let mut buffer = Vec::with_capacity(512);
    if let Err(err) = serde_json::to_writer(&mut buffer, body) {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot write the answer: {err}"))
            .into_response();
    }
    let mut response = Response::new(Body::from(buffer));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// One line per refused body: who sent it, the status, the field and why (Debug-quoted and cut short, so no
/// body can forge or flood a log line).
fn log_refused(client: Option<SocketAddr>, status: StatusCode, field: Option<&str>, message: &str) {
    let message: String = message.chars().take(300).collect();
    tracing::warn!(activity = "request_refused", client = ?client, status = status.as_u16(), field = ?field, error = ?message, "refused a command body");
}

/// `POST /abort`: releases everything here, then floods the abort to the whole swarm as a dedupe wave that
/// reports back, so `GET /waves/{id}` on this agent tells how many agents aborted. `{local: true}` stops here.
async fn abort(
    State(state): State<Arc<AgentState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AbortAnswer>, ApiError> {
    let format = body_format(&headers)?;
    let bytes = body_bytes(&state, body).await?;
    let request = AbortBody::parse(&bytes, format)?;
    let mut wave = request.wave.unwrap_or_default();
    if wave.hop == 0 {
        // A client's abort: whatever its wave said, it floods every agent once and reports back.
        let remain = if request.local { 0 } else { MAX_REMAIN };
        wave = WaveSpec { remain, buddies: ABORT_BUDDIES, dedupe: true, report: true, select: None, ..wave };
    }
    let admitted = match state.swarm.enter(Some(wave), Route::Abort, "abort")? {
        Entry::Duplicate { wave_id } => return Ok(Json(AbortAnswer::duplicate(&state.name, wave_id))),
        Entry::Run(admitted) => admitted,
    };
    // First: no copy of an older wave is taken or sent on from here.
    state.swarm.note_abort(admitted.started_at_ms.unwrap_or_else(now_ms));
    // Then the abort goes on, before this agent's own jobs are let go: releasing waits for them to stop
    // (up to half a second), and the flood should not wait that long at every hop.
    // A copy that cannot be written stops the flood here, never the local abort.
    let copies = admitted.copies(|wave| AbortBody { wave: Some(wave), local: false }).unwrap_or_else(|err| {
        tracing::error!(%err, "cannot write the abort's copy as JSON; it goes no further than this agent");
        Vec::new()
    });
    // The abort's origin sends its copy to every peer it knows, not to 3: an agent too busy to pass the flood
    // on (the very storm being aborted) cannot keep it from the rest. The dedupe flood goes on from each of
    // them as a second path.
    let fan_out = admitted.is_origin.then(|| u32::try_from(state.swarm.peers.peers().len()).unwrap_or(u32::MAX));
    let forwarding = state.swarm.forward(Route::Abort, &admitted, copies, fan_out);
    let started_ms = now_ms();
    let aborted = state.abort_local().await;
    let elapsed_ms = now_ms().saturating_sub(started_ms);
    let result = json!({ "cancelled_jobs": aborted.cancelled_jobs, "released": aborted.released });
    let result = raw_json(&result);
    let (swarm, reported) = (state.swarm.clone(), admitted.clone());
    tokio::spawn(async move { swarm.report(&reported, Status::Ok, elapsed_ms, &result).await });
    // The origin waits for its first hop so its answer can say how far the abort went; peers do not.
    let forwarded = match (admitted.is_origin, forwarding) {
        (true, Some(forwarding)) => forwarding.outcome().await,
        _ => Forwarded::default(),
    };
    Ok(Json(AbortAnswer {
        agent: state.name.to_string(),
        wave_id: admitted.wave_id,
        status: if admitted.is_origin { Status::Ok } else { Status::Accepted },
        cancelled_jobs: Some(aborted.cancelled_jobs),
        released: Some(aborted.released),
        forwarded: forwarded.accepted,
        forward: Some(forwarded),
    }))
}

/// One agent's report entry, at most (an `http_load` result with its histogram is a few KiB).
const MAX_REPORT_BYTES: usize = 64 * 1024;

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
        crate::wire::body::parse_document(bytes, format, "abort body")
    }
}

#[derive(Deserialize)]
struct SummaryQuery {
    #[serde(default)]
    entries: bool,
}

async fn wave_summary(
    State(state): State<Arc<AgentState>>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<SummaryQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = path_param(id)?;
    check_wave_id(&id)?;
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(None, rejection.body_text()))?;
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

/// A peer's result for a wave this agent started. Only a known peer may report (by name, and by address
/// where its address is an IP), only for a wave that started here, and only up to a bounded size.
async fn wave_report(
    State(state): State<Arc<AgentState>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    id: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = path_param(id)?;
    check_wave_id(&id)?;
    let bytes = body_bytes(&state, body).await?;
    if bytes.len() > MAX_REPORT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a report entry is at most {MAX_REPORT_BYTES} bytes; this one has {}", bytes.len()),
        ));
    }
    let entry: ReportEntry = crate::wire::body::parse_json(&bytes, "report entry")?;
    state.swarm.check_reporter(&entry.address, client.ip())?;
    if state.swarm.records.add_report(&id, entry, bytes.len()) {
        Ok(Json(json!({ "recorded": true })))
    } else {
        Err(ApiError::not_found(format!("wave {id} did not start here")))
    }
}

/// Waves `/status` names, newest last.
const STATUS_WAVES: usize = 5;

/// `GET /status`: this agent at a glance (`wire::agent_status`).
async fn status(State(state): State<Arc<AgentState>>) -> Json<AgentStatus> {
    let (running, finished) = state.jobs.running();
    let running = running
        .into_iter()
        .map(|job| RunningJob {
            id: job.id,
            command: job.command.to_string(),
            wave_id: job.wave_id.to_string(),
            elapsed_ms: job.elapsed_ms.unwrap_or(0),
            duration_ms: job.duration_ms,
            progress: job.progress,
        })
        .collect();
    let peers = state
        .swarm
        .peers
        .peers()
        .iter()
        .map(|peer| StatusPeer { id: peer.id.clone(), public: peer.public.clone(), labels: peer.labels.clone() })
        .collect();
    Json(AgentStatus {
        agent: state.name.to_string(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        address: state.swarm.advertised_public.clone(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        restarts: state.restarts,
        labels: state.swarm.labels().clone(),
        process: ProcessStats::read(),
        held: state.registry.held(),
        running,
        finished,
        waves: state.swarm.records.recent(STATUS_WAVES),
        peers,
    })
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
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&path_param(id)?)?;
    let job = state.jobs.get(id).ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    Ok(Json(json!(job)))
}

async fn cancel_job(
    State(state): State<Arc<AgentState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&path_param(id)?)?;
    match state.jobs.cancel(id) {
        Some(true) => Ok(Json(json!({ "job_id": id, "cancelled": true }))),
        Some(false) => Err(ApiError::new(StatusCode::CONFLICT, format!("job {id} has already finished"))),
        None => Err(ApiError::not_found(format!("no job {id}"))),
    }
}
