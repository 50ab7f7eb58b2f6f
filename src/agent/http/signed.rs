//! Requests from peers: signed with the swarm key (`credentials::SwarmKey`) instead of carrying the token.
//! Only a wave's copy (`POST /exec`), an abort's copy (`POST /abort`) and a report (`POST
//! /waves/{id}/report`) may come signed. The gate reads such a request's body (within the body bounds),
//! checks the signature over the method, the path and the body, refuses a nonce it has seen (a captured copy
//! sent again), and hands the route the body it read.

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::agent::http::nonces::Unseen;
use crate::agent::state::AgentState;
use crate::agent::wave::now_ms;
use crate::credentials::SIGNATURE_HEADER;
use crate::wire::error::ApiError;

/// The routes a peer may call with a signature instead of the token.
pub const SIGNED_ROUTES: [&str; 3] = ["/exec", "/abort", "/waves/{id}/report"];

/// True when `request` asks to be let in by its signature: it carries one and no `Authorization`.
pub fn is_signed(request: &Request) -> bool {
    request.headers().contains_key(SIGNATURE_HEADER) && !request.headers().contains_key(header::AUTHORIZATION)
}

/// Reads the body of a signed request, checks the signature and the nonce, and gives back the request with
/// its body in memory; or the 401 (or 503 when the nonce table is full) to answer instead.
pub async fn admit(state: &AgentState, request: Request) -> Result<Request, Response> {
    let Some(key) = state.swarm.key() else {
        return Err(refusal(StatusCode::UNAUTHORIZED, "this agent has no token, so it takes no signed requests"));
    };
    let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str);
    if request.method() != Method::POST || !route.is_some_and(|r| SIGNED_ROUTES.contains(&r)) {
        return Err(refusal(StatusCode::UNAUTHORIZED, "only wave copies, aborts and reports may come signed"));
    }
    let (parts, body) = request.into_parts();
    let header = parts.headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let bytes = crate::agent::http::body::body_bytes(state, body).await.map_err(IntoResponse::into_response)?;
    let signed = key
        .verify(header, parts.method.as_str(), parts.uri.path(), &bytes, now_ms())
        .map_err(|err| refusal(StatusCode::UNAUTHORIZED, &format!("refused a peer's signature: {err}")))?;
    state.seen_nonces.first_time(signed, now_ms()).map_err(|why| match why {
        Unseen::Replayed => refusal(StatusCode::UNAUTHORIZED, "this signed request was already taken (a replay)"),
        Unseen::Full => refusal(StatusCode::SERVICE_UNAVAILABLE, "too many signed requests at once; try again"),
    })?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn refusal(status: StatusCode, message: &str) -> Response {
    tracing::warn!(activity = "request_refused", status = status.as_u16(), error = ?message, "refused a signed request");
    ApiError::new(status, message).into_closing_response()
}
