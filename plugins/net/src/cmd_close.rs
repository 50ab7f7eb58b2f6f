use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, CommandError, DataError, ExecContext, JobFuture, Limits};

use crate::Connections;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CloseData {
    /// Connection to close, as listed by `net/stats`; -1 closes all.
    pub index: i64,
}

impl Default for CloseData {
    fn default() -> Self {
        Self { index: -1 }
    }
}

pub struct Close(pub Arc<Connections>);

impl Command for Close {
    type Data = CloseData;
    const NAME: &'static str = "close";
    const DESCRIPTION: &'static str = "Closes connection `index`, or every connection with -1.";

    fn check(&self, data: &CloseData, _: &Limits) -> Result<(), DataError> {
        if data.index < -1 {
            return Err(DataError::field("index", format!("{} is not an index; use -1 for all", data.index)));
        }
        Ok(())
    }

    fn execute(&self, data: CloseData, _: ExecContext) -> JobFuture {
        let conns = self.0.clone();
        Box::pin(async move {
            let closed = if data.index == -1 {
                conns.close_all()
            } else if conns.close(data.index as u64) {
                1
            } else {
                return Err(CommandError::Invalid(DataError::field(
                    "index",
                    format!("no connection {} is open (open: {:?})", data.index, conns.indexes()),
                )));
            };
            Ok(json!({ "closed": closed, "held": conns.count() }))
        })
    }
}
