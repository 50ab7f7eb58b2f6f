use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{run_on_thread, Command, CommandError, DataError, ExecContext, JobFuture, Reservation};

use crate::files::CreateError;
use crate::Files;

const MAX_COUNT: u64 = 100_000;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OpenFdData {
    /// How many empty files to create in the storage dir and keep open.
    #[serde(alias = "amount", alias = "files")]
    pub count: u64,
}

impl Default for OpenFdData {
    fn default() -> Self {
        Self { count: 1 }
    }
}

pub struct OpenFd(pub Arc<Files>);

impl Command for OpenFd {
    type Data = OpenFdData;
    type Plan = OpenFdData;
    const NAME: &'static str = "open_fd";
    const DESCRIPTION: &'static str = "Creates `count` files in the storage dir and keeps their descriptors open.";

    fn check(&self, data: OpenFdData, _: &ExecContext) -> Result<OpenFdData, DataError> {
        if data.count > MAX_COUNT {
            return Err(DataError::field("count", format!("{} must be at most {MAX_COUNT}", data.count)));
        }
        Ok(data)
    }

    fn execute(&self, data: OpenFdData, ctx: ExecContext) -> JobFuture {
        let files = self.0.clone();
        let cancel = ctx.cancel.clone();
        Box::pin(async move {
            let flag = ctx.cancel_flag();
            // Up to 100,000 files: created on a thread of its own, not on the async workers.
            run_on_thread("storage/open_fd", &cancel, move || {
                let mut indexes = Vec::new();
                let mut stopped_by = None;
                for _ in 0..data.count {
                    match files.create("fd", &flag, Reservation::none()) {
                        Ok((index, _, _)) => indexes.push(index),
                        Err(CreateError::Cancelled) => break,
                        // Running out of descriptors is a result worth reporting, not a reason to drop what was opened.
                        Err(CreateError::Io(err)) if !indexes.is_empty() => {
                            stopped_by = Some(err.to_string());
                            break;
                        }
                        Err(CreateError::Io(err)) => {
                            return Err(CommandError::Refused(format!(
                                "cannot create a file in {}: {err}",
                                files.dir.display()
                            )))
                        }
                    }
                }
                if flag.is_raised() {
                    files.discard(&indexes);
                    return Err(CommandError::Cancelled);
                }
                let mut answer = json!({ "opened": indexes.len(), "ids": indexes, "held": files.totals().0 });
                if let Some(why) = stopped_by {
                    answer["stopped_by"] = json!(why);
                }
                Ok(answer)
            })
            .await
        })
    }
}
