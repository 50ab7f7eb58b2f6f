use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{run_on_thread, Command, CommandError, DataError, ExecContext, JobFuture, Target};

use crate::Files;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CloseFdData {
    /// File to close, as listed by `fs_stats`; -1 closes all.
    pub index: Target,
    /// Delete the file after closing it (tarsier never leaves its files behind unless told to).
    pub delete: bool,
}

impl Default for CloseFdData {
    fn default() -> Self {
        Self { index: Target::All, delete: true }
    }
}

pub struct CloseFd(pub Arc<Files>);

impl Command for CloseFd {
    type Data = CloseFdData;
    type Plan = CloseFdData;
    const NAME: &'static str = "close_fd";
    const DESCRIPTION: &'static str = "Closes held file `index` (-1: all) and deletes it unless `delete: false`.";

    fn check(&self, data: CloseFdData, _: &ExecContext) -> Result<CloseFdData, DataError> {
        Ok(data)
    }

    fn execute(&self, data: CloseFdData, ctx: ExecContext) -> JobFuture {
        let files = self.0.clone();
        Box::pin(async move {
            // Deleting thousands of files blocks: off the async workers.
            run_on_thread("storage/close_fd", &ctx.cancel, move || {
                let (closed, bytes) = files.close(data.index, data.delete).ok_or_else(|| {
                    CommandError::Invalid(DataError::field(
                        "index",
                        format!("no file {} is held (held: {:?})", data.index, files.indexes()),
                    ))
                })?;
                Ok(json!({ "closed": closed, "released_bytes": bytes, "deleted": data.delete, "held": files.totals().0 }))
            })
            .await
        })
    }
}
