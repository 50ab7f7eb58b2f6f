use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{run_on_thread, Command, CommandError, DataError, ExecContext, JobFuture, Target};

use crate::RamRegions;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FreeRamData {
    /// Region to unmap, as listed by `ram_stats`; -1 unmaps all.
    pub index: Target,
}

pub struct FreeRam(pub Arc<RamRegions>);

impl Command for FreeRam {
    type Data = FreeRamData;
    type Plan = FreeRamData;
    const NAME: &'static str = "free_ram";
    const DESCRIPTION: &'static str = "Unmaps the RAM region `index`, or every region with -1.";

    fn check(&self, data: FreeRamData, _: &ExecContext) -> Result<FreeRamData, DataError> {
        Ok(data)
    }

    fn execute(&self, data: FreeRamData, ctx: ExecContext) -> JobFuture {
        let regions = self.0.clone();
        Box::pin(async move {
            // Unmapping gibibytes takes a while: off the async workers.
            run_on_thread("free_ram", &ctx.cancel, move || {
                let (freed_regions, freed_bytes) = regions.free(data.index).ok_or_else(|| {
                    CommandError::Invalid(DataError::field(
                        "index",
                        format!("no RAM region {} is held (held: {:?})", data.index, regions.indexes()),
                    ))
                })?;
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
