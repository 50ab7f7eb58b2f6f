use std::sync::Arc;

use serde_json::json;
use tarsier_plugin::{Command, ExecContext, JobFuture, NoData};

use crate::Files;

pub struct FsStats(pub Arc<Files>);

impl Command for FsStats {
    type Data = NoData;
    const NAME: &'static str = "fs_stats";
    const ALIASES: &'static [&'static str] = &["fd_stats"];
    const DESCRIPTION: &'static str = "Lists the files held open: index, path, size, since.";

    fn execute(&self, _: NoData, _: ExecContext) -> JobFuture {
        let files = self.0.clone();
        Box::pin(async move {
            let (count, bytes) = files.totals();
            Ok(json!({ "files": files.list(), "held_files": count, "held_bytes": bytes, "dir": files.dir }))
        })
    }
}
