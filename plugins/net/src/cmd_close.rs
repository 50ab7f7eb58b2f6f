use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, CommandError, DataError, ExecContext, JobFuture, Target};

use crate::Connections;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CloseData {
    /// Connection to close, as listed by `net/stats`; -1 closes all.
    pub index: Target,
}

pub struct Close(pub Arc<Connections>);

impl Command for Close {
    type Data = CloseData;
    type Plan = CloseData;
    const NAME: &'static str = "close";
    const DESCRIPTION: &'static str = "Closes connection `index`, or every connection with -1.";

    fn check(&self, data: CloseData, _: &ExecContext) -> Result<CloseData, DataError> {
        Ok(data)
    }

    fn execute(&self, data: CloseData, _: ExecContext) -> JobFuture {
        let conns = self.0.clone();
        Box::pin(async move {
            let closed = conns.close(data.index).ok_or_else(|| {
                CommandError::Invalid(DataError::field(
                    "index",
                    format!("no connection {} is open (open: {:?})", data.index, conns.indexes()),
                ))
            })?;
            Ok(json!({ "closed": closed, "held": conns.count() }))
        })
    }
}
