//! The console's routes: the page and its assets, the sign-in form, the live stream and snapshot, the load
//! charts, a scenario run's view, the runs `scenario run --console` posts, and the two controls.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::feed::LiveRun;
use super::Console;
use crate::client::swarm_view::Reach;
use crate::wire::error::ApiError;

const PAGE: &str = include_str!("page/index.html");
const SIGN_IN: &str = include_str!("page/sign-in.html");
const SCRIPT: &str = include_str!("page/console.js");
const STYLE: &str = include_str!("page/console.css");

/// Only what the console serves itself: its script, its styles, its charts; no inline script, no frame.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                      form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// A posted run's report (every step, sweep and figure) at most.
const MAX_RUN_BYTES: usize = 4 << 20;
/// A control's or the sign-in form's body at most.
const MAX_SMALL_BODY: usize = 16 << 10;
/// How long a control may wait for the agent.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(15);

pub(super) fn router(console: Arc<Console>) -> Router {
    let small = DefaultBodyLimit::max(MAX_SMALL_BODY);
    Router::new()
        .route("/", get(index))
        .route("/console.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/console.css", get(styles))
        .route("/sign-in", post(sign_in).layer(small))
        .route("/sign-out", post(sign_out).layer(small))
        .route("/api/snapshot", get(snapshot))
        .route("/api/events", get(events))
        .route("/api/cancel", post(cancel).layer(small))
        .route("/api/abort", post(abort).layer(small))
        .route("/api/runs/{id}", post(post_run).layer(DefaultBodyLimit::max(MAX_RUN_BYTES)))
        .route("/runs/{id}", get(run_view))
        .route("/charts/load.svg", get(load_chart))
        .fallback(|| async { ApiError::not_found("no such page in the console") })
        .layer(axum::middleware::from_fn_with_state(console.clone(), gate))
        .with_state(console)
}

/// Every request: the browser rule first (a foreign page or a rebinding host name gets a 403), then the
/// sign-in for everything but the page's shell; and the security headers on every answer.
async fn gate(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    if let Some(refusal) = console.browsers.refusal(&request) {
        return with_headers(refusal.into_response());
    }
    let path = request.uri().path();
    let public = matches!(path, "/" | "/console.js" | "/console.css" | "/sign-in");
    if !public && !console.access.admits(request.headers()) {
        let refusal =
            ApiError::new(StatusCode::UNAUTHORIZED, "sign in first (the swarm's token), or send it as Bearer");
        return with_headers(refusal.into_response());
    }
    with_headers(next.run(request).await)
}

fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Not `no-referrer`: with it Chromium sends `Origin: null` on the page's own form posts.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The console's own styles, then the report's (a run is shown as its report).
async fn styles() -> Response {
    let text = format!("{STYLE}\n{}", crate::scenario::html::STYLE);
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], text).into_response()
}

async fn index(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let page = if console.access.admits(&headers) { PAGE } else { SIGN_IN };
    Html(page.replace("{{entry}}", &crate::scenario::html::escape(&console.entry))).into_response()
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
}

async fn sign_in(State(console): State<Arc<Console>>, form: Result<Form<SignIn>, FormRejection>) -> Response {
    let cookie = form.ok().and_then(|Form(form)| console.access.sign_in(&form.token));
    match cookie {
        Some(cookie) => {
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        None => {
            tracing::warn!("console: a sign-in with a wrong token");
            let page = SIGN_IN
                .replace("{{entry}}", &crate::scenario::html::escape(&console.entry))
                .replace("<!--error-->", "<p class=\"alert\">That is not the swarm's token.</p>");
            (StatusCode::UNAUTHORIZED, Html(page)).into_response()
        }
    }
}

async fn sign_out(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(header::SET_COOKIE, console.access.sign_out(&headers));
    response
}

async fn snapshot(State(console): State<Arc<Console>>) -> Json<Value> {
    Json(serde_json::to_value(&*console.feed.snapshot()).unwrap_or_default())
}

/// The snapshot at once, then again each time it changes (about once a second), until the page goes.
async fn events(
    State(console): State<Arc<Console>>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let changes = console.feed.subscribe();
    let stream = futures_util::stream::unfold((console, changes, true), |(console, mut changes, first)| async move {
        if !first && changes.changed().await.is_err() {
            return None;
        }
        let data = serde_json::to_string(&*console.feed.snapshot()).unwrap_or_default();
        Some((Ok(Event::default().event("snapshot").data(data)), (console, changes, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize)]
struct ChartQuery {
    series: String,
    /// The width the page shows it at, in CSS pixels.
    #[serde(default = "default_chart_width")]
    w: u32,
}

fn default_chart_width() -> u32 {
    720
}

async fn load_chart(State(console): State<Arc<Console>>, query: Result<Query<ChartQuery>, QueryRejection>) -> Response {
    let Ok(Query(query)) = query else {
        return ApiError::bad_request(Some("series".into()), "which series: ?series=KEY").into_response();
    };
    let Some(series) = console.feed.series(&query.series) else {
        return ApiError::not_found("no such load series (it may have been forgotten: 48 are kept)").into_response();
    };
    match super::charts::load_svg(&series, query.w) {
        Ok(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Err(why) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot draw the chart: {why}")).into_response()
        }
    }
}

/// A run id: 1 to 64 of `A-Za-z0-9_-`.
fn check_run_id(id: &str) -> Result<(), ApiError> {
    if (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        Ok(())
    } else {
        Err(ApiError::bad_request(Some("id".into()), "a run id is 1 to 64 of A-Za-z0-9_-"))
    }
}

async fn post_run(
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_run_id(&id)?;
    let run: LiveRun = crate::wire::body::parse_json(&body, "run")?;
    console.feed.post_run(id.clone(), run);
    Ok(Json(json!({ "run": id, "recorded": true })))
}

async fn run_view(State(console): State<Arc<Console>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    check_run_id(&id)?;
    let run = console.feed.live_run(&id).ok_or_else(|| ApiError::not_found(format!("no run {id} here")))?;
    let running = if run.finished { Vec::new() } else { run.running.clone() };
    Ok(Html(crate::scenario::html::run(&run.report, &running)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    /// The agent's public `host:port`, as the snapshot names it.
    agent: String,
    job: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AbortBody {
    /// One agent (`host:port`) only; the whole swarm when absent.
    #[serde(default)]
    agent: Option<String>,
}

/// The base URL of an agent the latest snapshot shows up (and so proven): the only ones a control reaches.
fn known_agent(console: &Console, agent: &str) -> Result<String, ApiError> {
    let snapshot = console.feed.snapshot();
    let up = snapshot.swarm.agents.iter().any(|a| a.address == agent && matches!(a.reach, Reach::Up { .. }));
    if !up {
        return Err(ApiError::bad_request(
            Some("agent".into()),
            format!("{:?} is not an agent the console sees up", agent.chars().take(100).collect::<String>()),
        ));
    }
    let scheme = crate::client::swarm_view::scheme_of(&console.entry);
    Ok(format!("{scheme}://{agent}"))
}

async fn cancel(State(console): State<Arc<Console>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let body: CancelBody = crate::wire::body::parse_json(&body, "cancel")?;
    let base = known_agent(&console, &body.agent)?;
    let url = format!("{base}/jobs/{}", body.job);
    tracing::info!(agent = %body.agent, job = body.job, "console: cancel");
    let answer = send(console.feed.surveyor().trusted_client().delete(&url)).await?;
    Ok(Json(answer))
}

async fn abort(State(console): State<Arc<Console>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let body: AbortBody = crate::wire::body::parse_json(&body, "abort")?;
    let (url, request) = match &body.agent {
        Some(agent) => (format!("{}/abort", known_agent(&console, agent)?), r#"{"local": true}"#),
        None => (format!("{}/abort", console.entry), "{}"),
    };
    tracing::warn!(agent = ?body.agent, "console: abort");
    let client = console.feed.surveyor().trusted_client();
    let answer = send(client.post(&url).header(header::CONTENT_TYPE, "application/json").body(request)).await?;
    Ok(Json(answer))
}

/// Sends a control's request; the agent's JSON answer with its status, or a 502 saying why not.
async fn send(request: reqwest::RequestBuilder) -> Result<Value, ApiError> {
    let response = request.timeout(CONTROL_TIMEOUT).send().await.map_err(|err| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the agent could not be reached: {}", crate::client::with_causes(&err)),
        )
    })?;
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    Ok(json!({ "agent_status": status, "answer": answer }))
}
