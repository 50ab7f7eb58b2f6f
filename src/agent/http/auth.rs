//! The token check of both ports: a request must carry the swarm's token (`credentials::Token`) when the
//! agent has one. Agents send it on the copies and reports they send each other.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use crate::credentials::Token;
use crate::wire::error::ApiError;

/// The 401 for a request without the swarm's token, when the agent has one: a JSON error that closes the
/// connection, logged with the client's address. The gate (`gate.rs`) asks it for every route that needs the
/// token.
pub fn token_refusal(token: Option<&Token>, request: &Request) -> Option<Response> {
    // Two `Authorization` headers are refused whatever they hold: which one counts would be a guess, and a
    // proxy and the agent could guess differently.
    if request.headers().get_all(header::AUTHORIZATION).iter().nth(1).is_some() {
        let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        tracing::warn!(activity = "request_refused", client = ?client, path = %request.uri().path().escape_debug(), "refused: two Authorization headers");
        return Some(
            ApiError::bad_request(
                Some("Authorization".into()),
                "the request has more than one `Authorization` header; send one",
            )
            .into_closing_response(),
        );
    }
    let token = token?;
    if token.accepts(request.headers().get(header::AUTHORIZATION)) {
        return None;
    }
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let given = if request.headers().contains_key(header::AUTHORIZATION) { "a wrong token" } else { "no token" };
    tracing::warn!(activity = "request_refused", client = ?client, method = %request.method(), path = %request.uri().path().escape_debug(), "refused: {given}");
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        format!("{given}: send the swarm's token as `Authorization: Bearer <token>` (tarsier --token-file)"),
    )
    .into_closing_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Some(response)
}
