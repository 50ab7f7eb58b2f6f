//! The swarm secret. Every agent of a swarm and every client that commands it share one token, read from a
//! file (`auth.token_file`, `--token-file`, `TARSIER_TOKEN_FILE`; a Kubernetes Secret mounted as a file) and
//! sent as `Authorization: Bearer <token>`. Agents send it on the copies and reports they send each other.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq as _;

use crate::error::ApiError;

/// Shorter secrets are refused: a token is all that stands between the network and `faults/segfault`.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longer ones are refused too (a header of that size is a mistake, not a secret).
pub const MAX_TOKEN_LEN: usize = 4096;

/// The swarm's shared secret.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// Reads the token from a file; surrounding white space (a trailing newline) is not part of it.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the token file {}", path.display()))?;
        Self::new(text.trim()).with_context(|| format!("the token in {}", path.display()))
    }

    pub fn new(text: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&text.len()),
            "must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters long (it has {}); `openssl rand -hex 32` makes one",
            text.len()
        );
        anyhow::ensure!(
            text.bytes().all(|b| b.is_ascii_graphic()),
            "must be printable ASCII without spaces (it goes into an HTTP header)"
        );
        Ok(Self(text.into()))
    }

    /// The `Authorization` header value, marked sensitive so it never shows in debug output.
    pub fn bearer(&self) -> HeaderValue {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0)).unwrap_or(HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }

    /// True when `header` is `Bearer <this token>`, compared in constant time.
    fn accepts(&self, header: Option<&HeaderValue>) -> bool {
        let Some(given) = header.and_then(|h| h.as_bytes().strip_prefix(b"Bearer ")) else { return false };
        given.ct_eq(self.0.as_bytes()).into()
    }
}

/// Middleware: the request must carry the token (when the agent has one). A refusal is a `401` JSON error
/// that closes the connection, logged with the client's address.
pub async fn require_token(State(token): State<Option<Token>>, request: Request, next: Next) -> Response {
    match token_refusal(token.as_ref(), &request) {
        None => next.run(request).await,
        Some(refusal) => refusal,
    }
}

/// The 401 for a request without the swarm's token, when the agent has one.
pub fn token_refusal(token: Option<&Token>, request: &Request) -> Option<Response> {
    let token = token?;
    if token.accepts(request.headers().get(header::AUTHORIZATION)) {
        return None;
    }
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let given = if request.headers().contains_key(header::AUTHORIZATION) { "a wrong token" } else { "no token" };
    tracing::warn!(client = ?client, method = %request.method(), path = %request.uri().path().escape_debug(), "refused: {given}");
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        format!("{given}: send the swarm's token as `Authorization: Bearer <token>` (tarsier --token-file)"),
    )
    .into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_whole_and_weak_ones_refused() {
        let token = Token::new("0123456789abcdef0123").unwrap();
        assert!(token.accepts(Some(&HeaderValue::from_static("Bearer 0123456789abcdef0123"))));
        for wrong in [
            "Bearer 0123456789abcdef012",
            "Bearer 0123456789abcdef01234",
            "bearer 0123456789abcdef0123",
            "0123456789abcdef0123",
            "",
        ] {
            assert!(!token.accepts(Some(&HeaderValue::from_static(wrong))), "{wrong}");
        }
        assert!(!token.accepts(None));
        assert!(Token::new("short").is_err());
        assert!(Token::new("has a space in it, sadly").is_err());
        assert_eq!(format!("{token:?}"), "Token(***)");
    }
}
