use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, CommandError, DataError, ExecContext, JobFuture, Limits};

use crate::Files;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CloseFdData {
    /// File to close, as listed by `fs_stats`; -1 closes all.
    pub index: i64,
    /// Delete the file after closing it (tarsier never leaves its files behind unless told to).
    pub delete: bool,
}

impl Default for CloseFdData {
    fn default() -> Self {
        Self { index: -1, delete: true }
    }
}

pub struct CloseFd(pub Arc<Files>);

impl Command for CloseFd {
    type Data = CloseFdData;
    const NAME: &'static str = "close_fd";
    const DESCRIPTION: &'static str = "Closes held file `index` (-1: all) and deletes it unless `delete: false`.";

    fn check(&self, data: &CloseFdData, _: &Limits) -> Result<(), DataError> {
        if data.index < -1 {
            return Err(DataError::field("index", format!("{} is not an index; use -1 for all", data.index)));
        }
        Ok(())
    }

    fn execute(&self, data: CloseFdData, _: ExecContext) -> JobFuture {
        let files = self.0.clone();
        Box::pin(async move {
            let (closed, bytes) = if data.index == -1 {
                files.close_all(data.delete)
            } else {
                let bytes = files.close(data.index as u64, data.delete).ok_or_else(|| {
                    CommandError::Invalid(DataError::field(
                        "index",
                        format!("no file {} is held (held: {:?})", data.index, files.indexes()),
                    ))
                })?;
                (1, bytes)
            };
            Ok(json!({ "closed": closed, "released_bytes": bytes, "deleted": data.delete, "held": files.totals().0 }))
        })
    }
}
