//! The one error type of the HTTP API: a status and a JSON body `{"error": ..., "field": ...}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tarsier_plugin::DataError;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
}

/// The most characters of an error message, or of a field's name, an answer carries. Messages quote what the
/// request said (a command name, a field, a value), and a request can say a megabyte: an error never echoes
/// more than this, so answers and logs stay small whatever was sent.
pub const MAX_ECHO_CHARS: usize = 512;

/// `text` cut to [`MAX_ECHO_CHARS`], saying how much was left out.
pub fn capped(text: String) -> String {
    capped_to(text, MAX_ECHO_CHARS)
}

/// `text` cut to `max_chars` characters, saying how many bytes were left out.
pub fn capped_to(text: String, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text,
        Some((at, _)) => format!("{}... ({} more bytes not shown)", &text[..at], text.len() - at),
    }
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: capped(message.into()), field: None }
    }

    pub fn bad_request(field: Option<String>, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: capped(message.into()), field: field.map(capped) }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// The answer for a refusal at the gate: the JSON error, and `Connection: close`, so a client refused
    /// before its request was read cannot go on writing on the same connection.
    pub fn into_closing_response(self) -> Response {
        let mut response = self.into_response();
        response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        response
    }

    /// Names the field the error is about.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(capped(field.to_owned()));
        self
    }
}

impl From<DataError> for ApiError {
    fn from(err: DataError) -> Self {
        Self::bad_request(err.field, err.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message, "field": self.field }))).into_response()
    }
}
