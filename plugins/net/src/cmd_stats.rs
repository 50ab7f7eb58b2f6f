use std::sync::Arc;

use serde_json::json;
use tarsier_plugin::{Command, DataError, ExecContext, JobFuture, NoData};

use crate::Connections;

pub struct Stats(pub Arc<Connections>);

impl Command for Stats {
    type Data = NoData;
    type Plan = NoData;
    const NAME: &'static str = "stats";
    const DESCRIPTION: &'static str =
        "Lists the open connections, oldest first: index (position), id, protocol, peer, local address, since.";

    fn check(&self, data: NoData, _: &ExecContext) -> Result<NoData, DataError> {
        Ok(data)
    }

    fn execute(&self, _: NoData, _: ExecContext) -> JobFuture {
        let conns = self.0.clone();
        Box::pin(async move { Ok(json!({ "connections": conns.list(), "held": conns.count() })) })
    }
}
