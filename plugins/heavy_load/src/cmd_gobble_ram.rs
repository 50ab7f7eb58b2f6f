use std::sync::Arc;
use std::time::SystemTime;

use memmap2::MmapMut;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{
    run_on_thread, ByteSize, CancelFlag, Command, CommandError, DataError, ExecContext, JobFuture, Progress,
    Reservation,
};

use crate::cgroup;
use crate::ram::Region;
use crate::RamRegions;

/// Sanity bound: nobody has a pebibyte of RAM to fill.
const ABSURD_SIZE: u64 = 1 << 50;
/// Pages are written this far apart; 4 KiB is the smallest page Linux uses.
const PAGE: usize = 4096;
/// Pages are made resident this much at a time, with a look at the cancel flag in between: populating 1 GiB
/// in one call takes about half a second, which `/abort` could not interrupt.
const POPULATE_CHUNK: usize = 32 << 20;
/// The shrink loop tries at most this many sizes, whatever `ratio` is.
pub const MAX_ATTEMPTS: u32 = 100;
/// `ratio` above this would make the shrink loop crawl (0.9999999 meant millions of tries).
pub const MAX_RATIO: f64 = 0.95;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GobbleRamData {
    /// How much anonymous memory to map and make resident.
    #[serde(alias = "amount")]
    pub size: ByteSize,
    /// When the kernel (or the cgroup memory limit) refuses, retry with `size × ratio` until it fits.
    pub resize: bool,
    /// Shrink factor between retries, more than 0 and at most 0.95 (the reference's 0.5); at most 100 sizes
    /// are tried. `ration` is the reference's help text's spelling.
    #[serde(alias = "ration")]
    pub ratio: f64,
    /// Write every page so RSS really grows (false: map only, RSS stays flat).
    pub touch: bool,
}

impl Default for GobbleRamData {
    fn default() -> Self {
        Self { size: ByteSize::mib(64), resize: true, ratio: 0.5, touch: true }
    }
}

/// A checked request and its share of `limits.max_ram`.
pub struct GobblePlan {
    data: GobbleRamData,
    reserved: Reservation,
}

pub struct GobbleRam(pub Arc<RamRegions>);

impl Command for GobbleRam {
    type Data = GobbleRamData;
    type Plan = GobblePlan;
    const NAME: &'static str = "gobble_ram";
    const DESCRIPTION: &'static str = "Maps `size` of anonymous memory and writes every page so RSS grows by it; \
        when the kernel or the cgroup memory limit refuses, retries with size × ratio (resize). Answers the \
        bytes held.";

    fn check(&self, data: GobbleRamData, ctx: &ExecContext) -> Result<GobblePlan, DataError> {
        if data.size.0 == 0 {
            return Err(DataError::field("size", "must be more than 0 bytes"));
        }
        if data.size.0 > ABSURD_SIZE {
            return Err(DataError::field("size", format!("{} is more memory than any machine has", data.size)));
        }
        if !(data.ratio > 0.0 && data.ratio <= MAX_RATIO) {
            return Err(DataError::field(
                "ratio",
                format!("{} must be more than 0 and at most {MAX_RATIO}", data.ratio),
            ));
        }
        let reserved = ctx.budgets.ram.reserve("size", data.size.0)?;
        Ok(GobblePlan { data, reserved })
    }

    fn execute(&self, plan: GobblePlan, ctx: ExecContext) -> JobFuture {
        let regions = self.0.clone();
        let cancel = ctx.cancel.clone();
        Box::pin(async move {
            let asked = plan.data.size.0;
            let flag = ctx.cancel_flag();
            let worker = regions.clone();
            let progress = ctx.progress.clone();
            let (index, size, attempts) = run_on_thread("gobble_ram", &cancel, move || {
                let (map, attempts) = map_and_touch(&plan.data, &worker, &flag, &progress)?;
                let mut reserved = plan.reserved;
                reserved.shrink_to(map.len() as u64);
                let size = map.len() as u64;
                let region = Region { map, since: SystemTime::now(), reserved };
                // Cancelled after the pages were in: the region is unmapped right here, not kept.
                let index = worker.hold(&flag, region).map_err(|_| CommandError::Cancelled)?;
                Ok((index, size, attempts))
            })
            .await?;
            let (regions_held, bytes_held) = regions.totals();
            Ok(json!({
                "id": index,
                "asked": asked,
                "size": size,
                "attempts": attempts,
                "held_bytes": bytes_held,
                "held_regions": regions_held,
            }))
        })
    }
}

/// Maps (shrinking on refusal when allowed) and makes every page resident.
fn map_and_touch(
    data: &GobbleRamData,
    regions: &RamRegions,
    cancel: &CancelFlag,
    progress: &Progress,
) -> Result<(MmapMut, u32), CommandError> {
    let mut size = data.size.0;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        if cancel.is_raised() {
            return Err(CommandError::Cancelled);
        }
        let refusal = match try_map(size, data.touch, regions, cancel, progress) {
            Ok(map) => return Ok((map, attempts)),
            Err(MapError::Cancelled) => return Err(CommandError::Cancelled),
            Err(MapError::Refused(why)) => why,
        };
        let smaller = (size as f64 * data.ratio) as u64;
        if !data.resize || smaller < PAGE as u64 || attempts >= MAX_ATTEMPTS {
            return Err(CommandError::Refused(format!(
                "{refusal} (after {attempts} attempt(s); the last asked for {})",
                ByteSize(size)
            )));
        }
        tracing::debug!(size, smaller, refusal, "memory refused, shrinking");
        size = smaller;
    }
}

enum MapError {
    Refused(String),
    Cancelled,
}

/// One attempt at `size`: room in the cgroup, the mapping, then its pages made resident chunk by chunk.
fn try_map(
    size: u64,
    touch: bool,
    regions: &RamRegions,
    cancel: &CancelFlag,
    progress: &Progress,
) -> Result<MmapMut, MapError> {
    let len = usize::try_from(size).map_err(|_| MapError::Refused(format!("{size} bytes do not fit in memory")))?;
    // Untouched pages cost the cgroup nothing, so only a touching request has to fit in its room.
    let _populating = if touch { Some(admit(size, regions)?) } else { None };
    let mut map = memmap2::MmapOptions::new()
        .len(len)
        .map_anon()
        .map_err(|err| MapError::Refused(format!("the kernel refused to map {}: {err}", ByteSize(size))))?;
    if touch {
        for start in (0..len).step_by(POPULATE_CHUNK) {
            if cancel.is_raised() {
                return Err(MapError::Cancelled);
            }
            let end = (start + POPULATE_CHUNK).min(len);
            populate(&mut map[start..end])
                .map_err(|err| MapError::Refused(format!("the kernel refused pages of {}: {err}", ByteSize(size))))?;
            // How far the pages are in (`GET /jobs`, the CLI's live line): 1 GiB takes about half a second.
            progress.set(json!({ "populated_bytes": end, "size_bytes": size }));
        }
    }
    Ok(map)
}

/// Admits `size` into the room the cgroup memory limit leaves, minus what other requests are still making
/// resident and a margin for the agent itself; the reservation is dropped once this request's pages are in.
fn admit(size: u64, regions: &RamRegions) -> Result<Reservation, MapError> {
    let _one_at_a_time = regions.admission.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(room) = cgroup::room() {
        let margin = (16 << 20) + room.limit / 16;
        let free = room.available.saturating_sub(regions.populating.used()).saturating_sub(margin);
        if size > free {
            return Err(MapError::Refused(format!(
                "{} does not fit under the cgroup memory limit ({} in {}, {} in use, {} kept for the agent \
                 itself and requests in progress)",
                ByteSize(size),
                ByteSize(room.limit),
                room.source.display(),
                ByteSize(room.usage),
                ByteSize(room.available.saturating_sub(free)),
            )));
        }
    }
    regions.populating.reserve("size", size).map_err(|err| MapError::Refused(err.message))
}

/// Makes every page of `chunk` resident and the process's own: MADV_POPULATE_WRITE (Linux 5.14) faults them
/// in with one call; older kernels get one write per page. A non-zero write, since a zero page would stay
/// shared.
fn populate(chunk: &mut [u8]) -> std::io::Result<()> {
    // SAFETY: the range is a live, writable mapping we own for the whole call.
    let rc = unsafe { libc::madvise(chunk.as_mut_ptr().cast(), chunk.len(), libc::MADV_POPULATE_WRITE) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EINVAL) {
        return Err(err);
    }
    for offset in (0..chunk.len()).step_by(PAGE) {
        chunk[offset] = 1;
    }
    Ok(())
}
