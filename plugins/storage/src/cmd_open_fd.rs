use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, CommandError, DataError, ExecContext, JobFuture, Limits};

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
    const NAME: &'static str = "open_fd";
    const DESCRIPTION: &'static str = "Creates `count` files in the storage dir and keeps their descriptors open.";

    fn check(&self, data: &OpenFdData, _: &Limits) -> Result<(), DataError> {
        if data.count == 0 || data.count > MAX_COUNT {
            return Err(DataError::field("count", format!("{} must be between 1 and {MAX_COUNT}", data.count)));
        }
        Ok(())
    }

    fn execute(&self, data: OpenFdData, ctx: ExecContext) -> JobFuture {
        let files = self.0.clone();
        Box::pin(async move {
            let mut indexes = Vec::new();
            for _ in 0..data.count {
                if ctx.cancel.is_cancelled() {
                    break;
                }
                match files.create("fd") {
                    Ok((index, _, _)) => indexes.push(index),
                    // Running out of descriptors is a result worth reporting, not a reason to drop what was opened.
                    Err(err) if !indexes.is_empty() => {
                        return Ok(
                            json!({ "opened": indexes.len(), "indexes": indexes, "stopped_by": err.to_string() }),
                        )
                    }
                    Err(err) => {
                        return Err(CommandError::Refused(format!(
                            "cannot create a file in {}: {err}",
                            files.dir.display()
                        )))
                    }
                }
            }
            Ok(json!({ "opened": indexes.len(), "indexes": indexes, "held": files.totals().0 }))
        })
    }
}
