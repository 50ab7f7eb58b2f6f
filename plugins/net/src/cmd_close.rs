use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, CommandError, DataError, ExecContext, Index, JobFuture, Target};

use crate::Connections;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CloseData {
    /// Position in the list `net/stats` shows (0 is the oldest held; it shifts when one before it goes, as in
    /// the reference); -1 closes all. The default when neither `index` nor `id` is given.
    pub index: Option<Index>,
    /// The stable id the command that took it answered (never reused): safe when several clients close connections at once.
    pub id: Option<u64>,
}

pub struct Close(pub Arc<Connections>);

impl Command for Close {
    type Data = CloseData;
    type Plan = Target;
    const NAME: &'static str = "close";
    const DESCRIPTION: &'static str = "Closes the connection at `index` or with `id`, or every one (-1, the default).";

    fn check(&self, data: CloseData, _: &ExecContext) -> Result<Target, DataError> {
        Target::pick(data.index, data.id)
    }

    fn execute(&self, target: Target, _: ExecContext) -> JobFuture {
        let conns = self.0.clone();
        Box::pin(async move {
            let closed = conns.close(target).ok_or_else(|| CommandError::Invalid(conns.not_held(target)))?;
            Ok(json!({ "closed": closed, "held": conns.count() }))
        })
    }
}
