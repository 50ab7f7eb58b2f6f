use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{run_on_thread, Command, CommandError, DataError, ExecContext, Index, JobFuture, Target};

use crate::RamRegions;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FreeRamData {
    /// Position in the list `ram_stats` shows (0 is the oldest held; it shifts when one before it goes, as in
    /// the reference); -1 unmaps all. The default when neither `index` nor `id` is given.
    pub index: Option<Index>,
    /// The stable id the command that took it answered (never reused): safe when several clients free regions at once.
    pub id: Option<u64>,
}

pub struct FreeRam(pub Arc<RamRegions>);

impl Command for FreeRam {
    type Data = FreeRamData;
    type Plan = Target;
    const NAME: &'static str = "free_ram";
    const DESCRIPTION: &'static str =
        "Unmaps the RAM region at `index` or with `id`, or every region (-1, the default).";

    fn check(&self, data: FreeRamData, _: &ExecContext) -> Result<Target, DataError> {
        Target::pick(data.index, data.id)
    }

    fn execute(&self, target: Target, ctx: ExecContext) -> JobFuture {
        let regions = self.0.clone();
        Box::pin(async move {
            // Unmapping gibibytes takes a while: off the async workers.
            run_on_thread("free_ram", &ctx.cancel, move || {
                let (freed_regions, freed_bytes) =
                    regions.free(target).ok_or_else(|| CommandError::Invalid(regions.not_held(target)))?;
                let (count, bytes) = regions.totals();
                Ok(json!({
                    "freed_regions": freed_regions,
                    "freed_bytes": freed_bytes,
                    "held_regions": count,
                    "held_bytes": bytes,
                }))
            })
            .await
        })
    }
}
