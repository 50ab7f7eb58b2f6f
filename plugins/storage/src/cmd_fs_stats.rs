use std::sync::Arc;

use serde_json::json;
use tarsier_plugin::{run_on_thread, Command, DataError, ExecContext, JobFuture, NoData};

use crate::Files;

pub struct FsStats(pub Arc<Files>);

impl Command for FsStats {
    type Data = NoData;
    type Plan = NoData;
    const NAME: &'static str = "fs_stats";
    const ALIASES: &'static [&'static str] = &["fd_stats"];
    const DESCRIPTION: &'static str =
        "Lists the files held open, oldest first: index (position), id, path, size, since.";

    fn check(&self, data: NoData, _: &ExecContext) -> Result<NoData, DataError> {
        Ok(data)
    }

    fn execute(&self, _: NoData, ctx: ExecContext) -> JobFuture {
        let files = self.0.clone();
        Box::pin(async move {
            // One stat per file, up to 100,000 of them: off the async workers.
            run_on_thread("storage/fs_stats", &ctx.cancel, move || {
                let (count, bytes) = files.totals();
                Ok(json!({ "files": files.list(), "held_files": count, "held_bytes": bytes, "dir": files.dir }))
            })
            .await
        })
    }
}
