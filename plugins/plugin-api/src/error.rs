use serde::Serialize;

/// A problem with a command's data, found before anything runs: the agent answers `400`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct DataError {
    /// Dotted path of the offending field, for example `data.duration`.
    pub field: Option<String>,
    pub message: String,
}

impl DataError {
    /// An error about one field of the command's `data` (`field` is given without the `data.` prefix).
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let field = if field.is_empty() { "data".to_owned() } else { format!("data.{field}") };
        let message = format!("{field}: {}", message.into());
        Self { field: Some(field), message }
    }
}

/// How a command that was accepted can still end badly.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The data names something that does not exist (a region or fd index): `400`.
    #[error(transparent)]
    Invalid(#[from] DataError),
    /// The machine refused a resource (memory, disk, file descriptors) even after the allowed retries: `507`.
    #[error("{0}")]
    Refused(String),
    /// A network target could not be reached or did not answer: `502`.
    #[error("{0}")]
    Unreachable(String),
    /// The agent lacks a privilege the command needs (a capability such as `CAP_NET_ADMIN`): `403`.
    #[error("{0}")]
    Forbidden(String),
    /// The kernel or the machine lacks a piece the command needs (a qdisc, a netfilter module, a tool): `501`.
    #[error("{0}")]
    Unsupported(String),
    /// What the command would change is taken by something else (a device another fault shapes): `409`.
    #[error("{0}")]
    Conflict(String),
    /// Cancelled (`/abort`, `DELETE /jobs/{id}`, shutdown) before it could say what it did; nothing is held.
    #[error("cancelled before it finished; nothing it took is held")]
    Cancelled,
    /// Anything else that went wrong while running: `500`.
    #[error("{0}")]
    Failed(String),
}
