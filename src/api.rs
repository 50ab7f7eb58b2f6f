//! The public port: `POST /exec`, `POST /abort`, `GET /jobs`, `GET|DELETE /jobs/{id}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::agent::AgentState;
use crate::body::{BodyFormat, CommandBody};
use crate::error::ApiError;
use crate::exec::execute;
use crate::http_common::{count_requests, method_not_allowed, no_such_route};

pub fn router(state: Arc<AgentState>, max_body: usize) -> Router {
    Router::new()
        .route("/exec", post(exec))
        .route("/abort", post(abort))
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(get_job).delete(cancel_job))
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state((state.clone(), "public"), count_requests))
        .with_state(state)
}

async fn exec(
    State(state): State<Arc<AgentState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the body is larger than this agent accepts (max_body in the config)".to_owned()
        } else {
            rejection.body_text()
        };
        ApiError::new(status, message)
    })?;
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let body = CommandBody::parse(&bytes, BodyFormat::from_content_type(content_type))?;
    let answer = execute(&state, body).await?;
    Ok((answer.status, Json(answer.body)).into_response())
}

async fn abort(State(state): State<Arc<AgentState>>) -> Json<serde_json::Value> {
    let (cancelled, released) = state.abort_local();
    Json(json!({ "agent": state.name, "cancelled_jobs": cancelled, "released": released }))
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
