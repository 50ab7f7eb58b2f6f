//! How a command ended or stands, as one enum for answers, `/jobs`, wave reports and metric labels.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tarsier_plugin::CommandError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A detached job, or a job listed while it runs.
    Running,
    /// A copy a peer forwarded: taken, and running here.
    Accepted,
    /// A dedupe wave this agent had already run.
    Duplicate,
    /// A wave with `select` this agent started but was not chosen for: it sent the copies to the chosen
    /// agents and ran nothing itself.
    Delegated,
    Ok,
    /// Stopped by `/abort`, `DELETE /jobs/{id}` or shutdown; whatever it took is released.
    Cancelled,
    /// The data named something that does not exist (`400`).
    Invalid,
    /// The machine refused memory, disk or file descriptors (`507`).
    Refused,
    /// A network target could not be reached (`502`).
    Unreachable,
    /// The agent lacks a privilege the command needs (`403`).
    Forbidden,
    /// The kernel or machine lacks a piece the command needs (`501`).
    Unsupported,
    /// What the command would change is taken by something else (`409`).
    Conflict,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Accepted => "accepted",
            Status::Duplicate => "duplicate",
            Status::Delegated => "delegated",
            Status::Ok => "ok",
            Status::Cancelled => "cancelled",
            Status::Invalid => "invalid",
            Status::Refused => "refused",
            Status::Unreachable => "unreachable",
            Status::Forbidden => "forbidden",
            Status::Unsupported => "unsupported",
            Status::Conflict => "conflict",
            Status::Failed => "failed",
        }
    }

    /// The status an answer (of `/exec`, `/abort`, a job) states, if it states one this side knows.
    pub fn of_answer(answer: &serde_json::Value) -> Option<Status> {
        Status::deserialize(&answer["status"]).ok()
    }

    /// The command ran, or runs, as asked: finished `ok`, still running, taken by a peer, a dedupe wave
    /// this agent had already run, or sent on to the agents a selection chose.
    pub fn ran(self) -> bool {
        matches!(self, Status::Ok | Status::Running | Status::Accepted | Status::Duplicate | Status::Delegated)
    }

    /// The status and HTTP status of a command that ended with `error`.
    pub fn of_error(error: &CommandError) -> (Status, StatusCode) {
        match error {
            CommandError::Invalid(_) => (Status::Invalid, StatusCode::BAD_REQUEST),
            CommandError::Refused(_) => (Status::Refused, StatusCode::INSUFFICIENT_STORAGE),
            CommandError::Unreachable(_) => (Status::Unreachable, StatusCode::BAD_GATEWAY),
            CommandError::Forbidden(_) => (Status::Forbidden, StatusCode::FORBIDDEN),
            CommandError::Unsupported(_) => (Status::Unsupported, StatusCode::NOT_IMPLEMENTED),
            CommandError::Conflict(_) => (Status::Conflict, StatusCode::CONFLICT),
            CommandError::Cancelled => (Status::Cancelled, StatusCode::OK),
            CommandError::Failed(_) => (Status::Failed, StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
