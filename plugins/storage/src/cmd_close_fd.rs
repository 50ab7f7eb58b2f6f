use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{run_on_thread, Command, CommandError, DataError, ExecContext, Index, JobFuture, Target};

use crate::Files;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CloseFdData {
    /// Position in the list `fs_stats` shows (0 is the oldest held; it shifts when one before it goes, as in
    /// the reference); -1 closes all. The default when neither `index` nor `id` is given.
    pub index: Option<Index>,
    /// The stable id the command that took it answered (never reused): safe when several clients close files at once.
    pub id: Option<u64>,
    /// Delete the file after closing it (tarsier never leaves its files behind unless told to).
    pub delete: bool,
}

impl Default for CloseFdData {
    fn default() -> Self {
        Self { index: None, id: None, delete: true }
    }
}

pub struct CloseFd(pub Arc<Files>);

impl Command for CloseFd {
    type Data = CloseFdData;
    type Plan = (Target, bool);
    const NAME: &'static str = "close_fd";
    const DESCRIPTION: &'static str =
        "Closes the held file at `index` or with `id` (default: all) and deletes it unless `delete: false`.";

    fn check(&self, data: CloseFdData, _: &ExecContext) -> Result<(Target, bool), DataError> {
        Ok((Target::pick(data.index, data.id)?, data.delete))
    }

    fn execute(&self, (target, delete): (Target, bool), ctx: ExecContext) -> JobFuture {
        let files = self.0.clone();
        Box::pin(async move {
            // Deleting thousands of files blocks: off the async workers.
            run_on_thread("storage/close_fd", &ctx.cancel, move || {
                let (closed, bytes) =
                    files.close(target, delete).ok_or_else(|| CommandError::Invalid(files.not_held(target)))?;
                Ok(json!({ "closed": closed, "released_bytes": bytes, "deleted": delete, "held": files.totals().0 }))
            })
            .await
        })
    }
}
