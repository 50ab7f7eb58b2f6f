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
    /// The system refused the resource even after the allowed retries (mmap, dial, disk): `507`/`502`.
    #[error("{0}")]
    Refused(String),
    /// Anything else that went wrong while running: `500`.
    #[error("{0}")]
    Failed(String),
}
