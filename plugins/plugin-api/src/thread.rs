//! Blocking work on threads of its own, never on tokio's shared blocking pool: a deadlock, a long write or a
//! `read` of a slow device must not take the slots DNS look-ups and file work of other requests need.

use std::time::Duration;

use tokio::sync::oneshot;

use crate::{Cancel, CommandError};

/// How long a cancelled command waits for its thread to notice and hand back what it did.
pub const CANCEL_GRACE: Duration = Duration::from_millis(50);

/// Runs `work` on a new OS thread named `name` and awaits its result. When `cancel` fires, waits at most
/// [`CANCEL_GRACE`] more and then answers [`CommandError::Cancelled`] without it: `work` must watch the
/// cancel flag itself and drop (so release) whatever it took when it sees it, because its result may be
/// dropped unseen.
pub async fn run_on_thread<T: Send + 'static>(
    name: &str,
    cancel: &Cancel,
    work: impl FnOnce() -> Result<T, CommandError> + Send + 'static,
) -> Result<T, CommandError> {
    let (done, result) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            // The receiver is gone only when the command was cancelled and stopped waiting: the result is
            // dropped here, which releases it.
            let _ = done.send(work());
        })
        .map_err(|err| CommandError::Failed(format!("cannot start a {name} thread: {err}")))?;
    let died = |_| CommandError::Failed(format!("the {name} thread panicked"));
    tokio::pin!(result);
    tokio::select! {
        outcome = &mut result => outcome.map_err(died)?,
        _ = cancel.cancelled() => match tokio::time::timeout(CANCEL_GRACE, result).await {
            Ok(outcome) => outcome.map_err(died)?,
            Err(_) => Err(CommandError::Cancelled),
        },
    }
}
