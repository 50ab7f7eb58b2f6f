use std::sync::Arc;

use serde_json::json;
use tarsier_plugin::{Command, DataError, ExecContext, JobFuture, NoData};

use crate::RamRegions;

pub struct RamStats(pub Arc<RamRegions>);

impl Command for RamStats {
    type Data = NoData;
    type Plan = NoData;
    const NAME: &'static str = "ram_stats";
    const DESCRIPTION: &'static str = "Lists the RAM regions held, oldest first: index (position), id, size, since.";

    fn check(&self, data: NoData, _: &ExecContext) -> Result<NoData, DataError> {
        Ok(data)
    }

    fn execute(&self, _: NoData, _: ExecContext) -> JobFuture {
        let regions = self.0.clone();
        Box::pin(async move {
            let (count, bytes) = regions.totals();
            Ok(json!({ "regions": regions.list(), "held_regions": count, "held_bytes": bytes }))
        })
    }
}
