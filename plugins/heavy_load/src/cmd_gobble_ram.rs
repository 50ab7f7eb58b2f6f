use std::sync::Arc;

use memmap2::MmapMut;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{ByteSize, CancelFlag, Command, CommandError, DataError, ExecContext, JobFuture, Limits};

use crate::RamRegions;

/// Sanity bound: nobody has a pebibyte of RAM to fill.
const ABSURD_SIZE: u64 = 1 << 50;
/// Pages are written this far apart; 4 KiB is the smallest page Linux uses.
const PAGE: usize = 4096;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GobbleRamData {
    /// How much anonymous memory to map and make resident.
    #[serde(alias = "amount")]
    pub size: ByteSize,
    /// When the kernel refuses the mapping, retry with `size × ratio` until it fits.
    pub resize: bool,
    /// Shrink factor between retries, strictly between 0 and 1 (the reference's 0.5).
    pub ratio: f64,
    /// Write every page so RSS really grows (false: map only, RSS stays flat).
    pub touch: bool,
}

impl Default for GobbleRamData {
    fn default() -> Self {
        Self { size: ByteSize::mib(64), resize: true, ratio: 0.5, touch: true }
    }
}

pub struct GobbleRam(pub Arc<RamRegions>);

impl Command for GobbleRam {
    type Data = GobbleRamData;
    const NAME: &'static str = "gobble_ram";
    const DESCRIPTION: &'static str = "Maps `size` of anonymous memory and writes every page so RSS grows by it; \
        when the kernel refuses, retries with size × ratio (resize). Answers the bytes held.";

    fn check(&self, data: &GobbleRamData, limits: &Limits) -> Result<(), DataError> {
        if data.size.0 == 0 {
            return Err(DataError::field("size", "must be more than 0 bytes"));
        }
        if data.size.0 > ABSURD_SIZE {
            return Err(DataError::field("size", format!("{} is more memory than any machine has", data.size)));
        }
        if !(data.ratio > 0.0 && data.ratio < 1.0) {
            return Err(DataError::field("ratio", format!("{} must be strictly between 0 and 1", data.ratio)));
        }
        let (_, held) = self.0.totals();
        Limits::check_budget("size", "RAM", "limits.max_ram", limits.max_ram.map(|m| m.0), held, data.size.0, |b| {
            ByteSize(b).to_string()
        })
    }

    fn execute(&self, data: GobbleRamData, ctx: ExecContext) -> JobFuture {
        let regions = self.0.clone();
        let cancel = ctx.cancel_flag();
        Box::pin(async move {
            let asked = data.size.0;
            let (map, attempts) = tokio::task::spawn_blocking(move || map_and_touch(&data, &cancel))
                .await
                .map_err(|err| CommandError::Failed(format!("gobble_ram worker died: {err}")))??;
            let size = map.len() as u64;
            let index = regions.hold(map);
            let (regions_held, bytes_held) = regions.totals();
            Ok(json!({
                "index": index,
                "asked": asked,
                "size": size,
                "attempts": attempts,
                "held_bytes": bytes_held,
                "held_regions": regions_held,
            }))
        })
    }
}

/// Maps (shrinking on refusal when allowed) and writes one byte per page.
fn map_and_touch(data: &GobbleRamData, cancel: &CancelFlag) -> Result<(MmapMut, u32), CommandError> {
    let mut size = data.size.0;
    let mut attempts = 0u32;
    let mut map = loop {
        attempts += 1;
        let len =
            usize::try_from(size).map_err(|_| CommandError::Refused(format!("{size} bytes do not fit in memory")))?;
        // With touch, MAP_POPULATE has the kernel fault every page in at once, far faster than one fault per
        // page from user space; the writes below then only make sure each page is really the process's own.
        let mut options = memmap2::MmapOptions::new();
        options.len(len);
        if data.touch {
            options.populate();
        }
        match options.map_anon() {
            Ok(map) => break map,
            Err(err) => {
                let smaller = (size as f64 * data.ratio) as u64;
                if !data.resize || smaller < PAGE as u64 {
                    return Err(CommandError::Refused(format!(
                        "the kernel refused to map {} after {attempts} attempt(s): {err}",
                        ByteSize(size)
                    )));
                }
                tracing::debug!(size, smaller, %err, "mmap refused, shrinking");
                size = smaller;
            }
        }
    };
    if data.touch {
        for (n, offset) in (0..map.len()).step_by(PAGE).enumerate() {
            // A non-zero write: the kernel must give the page a real frame (a zero page would stay shared).
            map[offset] = 1;
            if n % 16_384 == 0 && cancel.is_raised() {
                return Err(CommandError::Failed("cancelled while touching pages; nothing is held".into()));
            }
        }
    }
    Ok((map, attempts))
}
