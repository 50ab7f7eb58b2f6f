//! Toxiproxy's REST API, served on a port of its own (`proxy.api_listen`, off by default), so an existing
//! Toxiproxy client drives the agent's fault proxies unchanged: `GET/POST /proxies`, `POST /populate`,
//! `GET/POST/DELETE /proxies/{name}`, `GET/POST /proxies/{name}/toxics`, `GET/POST/DELETE
//! /proxies/{name}/toxics/{toxic}`, `POST /reset`, `GET /version`. Each call runs the matching `net/proxy_*`
//! or `net/toxic_*` command through `exec` (the same checks, jobs and metrics as a body sent to `/exec`) and
//! answers in Toxiproxy's shapes and statuses. The gate in front is the public port's: the token applies.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::agent::exec::execute;
use crate::agent::http::gate::{method_not_allowed, no_such_route, GateLayer, Listener};
use crate::agent::state::AgentState;
use crate::wire::body::CommandBody;
use crate::wire::status::Status;

/// How long a proxy made through this API lives (Toxiproxy's live until deleted): a day, or the agent's
/// `limits.max_duration` when that is shorter.
const API_PROXY_DURATION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

pub fn router(state: Arc<AgentState>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/reset", post(reset))
        .route("/populate", post(populate))
        .route("/proxies", get(list).post(create))
        .route("/proxies/{proxy}", get(show).post(update).delete(delete))
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route("/proxies/{proxy}/toxics/{toxic}", get(show_toxic).post(update_toxic).delete(remove_toxic))
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(GateLayer::new(state.clone(), Listener::ToxiproxyApi))
        .with_state(state)
}

/// A Toxiproxy error: `{"error": ..., "status": ...}` (and the field, where one is at fault).
struct Refusal {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "status": self.status.as_u16(), "field": self.field });
        (self.status, Json(body)).into_response()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal { status, message: message.into(), field: None }
}

/// Runs `command` with `data` here; its result, or the error as Toxiproxy would answer it (a proxy or toxic
/// that does not exist is a 404, a name taken a 409, bad data a 400).
async fn run(state: &Arc<AgentState>, command: &str, data: Value) -> Result<Value, Refusal> {
    let body = CommandBody { command: command.into(), data, wave: None, detach: false };
    let answer = match execute(state, body, None).await {
        Ok(answer) => answer,
        Err(refused) => return Err(Refusal { status: refused.status, message: refused.message, field: refused.field }),
    };
    if answer.body.status == Status::Ok {
        return Ok(answer.body.result.unwrap_or(Value::Null));
    }
    let message = answer.body.error.clone().unwrap_or_else(|| answer.body.status.to_string());
    let status = if tarsier_net::fault_proxy::is_missing(&message) { StatusCode::NOT_FOUND } else { answer.status };
    Err(error(status, message))
}

fn parse(body: &Bytes) -> Result<Value, Refusal> {
    // Toxiproxy's bodies are small JSON; the gate has bounded the size already.
    serde_json::from_slice(body).map_err(|e| error(StatusCode::BAD_REQUEST, format!("the body is not JSON: {e}")))
}

fn object(value: Value) -> Result<Map<String, Value>, Refusal> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(error(StatusCode::BAD_REQUEST, "the body must be a JSON object")),
    }
}

async fn version() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], concat!("tarsier-", env!("CARGO_PKG_VERSION")))
}

async fn reset(State(state): State<Arc<AgentState>>) -> Response {
    match run(&state, "net/proxy_reset", json!({})).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn all_proxies(state: &Arc<AgentState>) -> Result<Vec<Value>, Refusal> {
    let listed = run(state, "net/proxies", json!({})).await?;
    Ok(listed["proxies"].as_array().cloned().unwrap_or_default())
}

async fn list(State(state): State<Arc<AgentState>>) -> Response {
    match all_proxies(&state).await {
        Ok(proxies) => {
            let by_name: Map<String, Value> =
                proxies.into_iter().map(|p| (p["name"].as_str().unwrap_or_default().to_owned(), p)).collect();
            Json(Value::Object(by_name)).into_response()
        }
        Err(refused) => refused.into_response(),
    }
}

/// A proxy's create body as `net/proxy_create` takes it: Toxiproxy's fields, and a day to live.
fn create_data(state: &AgentState, mut fields: Map<String, Value>) -> Value {
    fields.entry("listen").or_insert_with(|| json!("127.0.0.1:0"));
    let lasts = state.limits.max_duration.map_or(API_PROXY_DURATION, |max| max.0.min(API_PROXY_DURATION));
    fields.insert("duration".into(), json!(tarsier_plugin::HumanDuration(lasts).to_string()));
    Value::Object(fields)
}

async fn create(State(state): State<Arc<AgentState>>, body: Bytes) -> Response {
    let made = async {
        let fields = object(parse(&body)?)?;
        run(&state, "net/proxy_create", create_data(&state, fields)).await
    };
    match made.await {
        Ok(proxy) => (StatusCode::CREATED, Json(proxy)).into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// Creates each proxy of the list, or updates the one of that name (Toxiproxy's `populate`).
async fn populate(State(state): State<Arc<AgentState>>, body: Bytes) -> Response {
    let done = async {
        let Value::Array(wanted) = parse(&body)? else {
            return Err(error(StatusCode::BAD_REQUEST, "the body must be a JSON array of proxies"));
        };
        let existing = all_proxies(&state).await?;
        let mut proxies = Vec::new();
        for proxy in wanted {
            let fields = object(proxy)?;
            let name = fields.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
            let made = if existing.iter().any(|p| p["name"] == name.as_str()) {
                run(&state, "net/proxy_update", proxy_change(&name, &fields)).await?
            } else {
                run(&state, "net/proxy_create", create_data(&state, fields)).await?
            };
            proxies.push(made);
        }
        Ok(proxies)
    };
    match done.await {
        Ok(proxies) => (StatusCode::CREATED, Json(json!({ "proxies": proxies }))).into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// A Toxiproxy proxy update as `net/proxy_update` takes it: what it may change of the proxy `name`.
fn proxy_change(name: &str, fields: &Map<String, Value>) -> Value {
    let mut change = json!({ "name": name });
    for key in ["enabled", "upstream"] {
        if let Some(value) = fields.get(key) {
            change[key] = value.clone();
        }
    }
    change
}

async fn find(state: &Arc<AgentState>, name: &str) -> Result<Value, Refusal> {
    let proxies = all_proxies(state).await?;
    proxies
        .into_iter()
        .find(|p| p["name"] == name)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no proxy `{name}`")))
}

async fn show(State(state): State<Arc<AgentState>>, Path(proxy): Path<String>) -> Response {
    match find(&state, &proxy).await {
        Ok(found) => Json(found).into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn update(State(state): State<Arc<AgentState>>, Path(proxy): Path<String>, body: Bytes) -> Response {
    let changed = async {
        let fields = object(parse(&body)?)?;
        let current = find(&state, &proxy).await?;
        if let Some(listen) = fields.get("listen").filter(|l| **l != current["listen"]) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("listen: moving a proxy to {listen} is not supported; delete it and create it again"),
            ));
        }
        run(&state, "net/proxy_update", proxy_change(&proxy, &fields)).await
    };
    match changed.await {
        Ok(proxy) => Json(proxy).into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn delete(State(state): State<Arc<AgentState>>, Path(proxy): Path<String>) -> Response {
    match run(&state, "net/proxy_delete", json!({ "name": proxy })).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn toxics(State(state): State<Arc<AgentState>>, Path(proxy): Path<String>) -> Response {
    match find(&state, &proxy).await {
        Ok(found) => Json(found["toxics"].clone()).into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn add_toxic(State(state): State<Arc<AgentState>>, Path(proxy): Path<String>, body: Bytes) -> Response {
    let added = async {
        let mut fields = object(parse(&body)?)?;
        fields.insert("proxy".into(), json!(proxy));
        run(&state, "net/toxic_add", Value::Object(fields)).await
    };
    match added.await {
        Ok(toxic) => Json(toxic).into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn show_toxic(State(state): State<Arc<AgentState>>, Path((proxy, toxic)): Path<(String, String)>) -> Response {
    let found = async {
        let proxy_found = find(&state, &proxy).await?;
        let toxics = proxy_found["toxics"].as_array().cloned().unwrap_or_default();
        toxics
            .into_iter()
            .find(|t| t["name"] == toxic.as_str())
            .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no toxic `{toxic}` on `{proxy}`")))
    };
    match found.await {
        Ok(toxic) => Json(toxic).into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn update_toxic(
    State(state): State<Arc<AgentState>>,
    Path((proxy, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let changed = async {
        let fields = object(parse(&body)?)?;
        let mut change = json!({ "proxy": proxy, "name": toxic });
        for key in ["toxicity", "attributes"] {
            if let Some(value) = fields.get(key) {
                change[key] = value.clone();
            }
        }
        run(&state, "net/toxic_update", change).await
    };
    match changed.await {
        Ok(toxic) => Json(toxic).into_response(),
        Err(refused) => refused.into_response(),
    }
}

async fn remove_toxic(State(state): State<Arc<AgentState>>, Path((proxy, toxic)): Path<(String, String)>) -> Response {
    match run(&state, "net/toxic_remove", json!({ "proxy": proxy, "name": toxic })).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(refused) => refused.into_response(),
    }
}
