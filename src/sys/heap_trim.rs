//! Gives freed heap memory back to the kernel. glibc's malloc keeps what a burst freed (a wave through
//! 1,000 agents, the connections it opened) for reuse, and returns only the top of each heap: whatever a
//! long-lived allocation pins above freed memory stays resident, so RSS stayed at the burst's peak for good.
//! `malloc_trim` releases every free page wherever it is. Only glibc has it; elsewhere this does nothing.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often the free heap is looked at.
const EVERY: Duration = Duration::from_secs(5);
/// Below this much free heap a trim is not worth its walk over the allocator's arenas (an idle agent's
/// whole heap is about 1 MiB).
const WORTH_TRIMMING: usize = 8 << 20;
/// The heap in use moved less than this over one look: the process is quiet. A trim in the middle of a
/// burst costs the burst a page fault for every released page it uses again (a 1,000-agent wave took ~10 %
/// longer with a trim every 5 s), so only a quiet process is trimmed.
const QUIET: usize = 1 << 20;

/// The allocator's counts at one look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Heap {
    in_use: usize,
    free: usize,
}

/// Trims, until `shutdown`, whenever the process is quiet and holds enough free heap that changed since
/// the last trim.
pub async fn trim_freed_heap(shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut before, mut at_last_trim) = (None, None);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let Some(now) = heap() else { return };
        if worth_trimming(now, before, at_last_trim) {
            trim();
            at_last_trim = Some(now);
        }
        before = Some(now);
    }
}

/// A trim releases the pages that were free at the time; a heap that has not changed since holds no new
/// pages to release, so trimming again would only walk the arenas for nothing.
// PERF(wave): a quiet process gives its freed heap back (the swarm's RSS after waves and a rest).
fn worth_trimming(now: Heap, before: Option<Heap>, at_last_trim: Option<Heap>) -> bool {
    let quiet = before.is_some_and(|b| b.in_use.abs_diff(now.in_use) < QUIET);
    quiet && now.free >= WORTH_TRIMMING && at_last_trim != Some(now)
}

/// What malloc holds in use and free (in every arena), or `None` where that cannot be known.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap() -> Option<Heap> {
    // SAFETY: mallinfo2 reads the allocator's statistics under its own locks and has no preconditions.
    let info = unsafe { libc::mallinfo2() };
    Some(Heap { in_use: info.uordblks, free: info.fordblks })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap() -> Option<Heap> {
    None
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases pages malloc holds free, under its own locks.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn at(in_use: usize, free: usize) -> Heap {
        Heap { in_use: in_use * MIB, free: free * MIB }
    }

    #[test]
    fn trims_a_quiet_process_with_a_large_free_heap_that_changed() {
        let quiet = Some(at(10, 64));
        assert!(worth_trimming(at(10, 64), quiet, None));
        assert!(!worth_trimming(at(1, 1), Some(at(1, 1)), None), "an idle agent's heap is left alone");
        assert!(!worth_trimming(at(10, 64), None, None), "no earlier look: not known to be quiet");
        assert!(!worth_trimming(at(10, 64), Some(at(40, 30)), None), "busy: the heap in use moved");
        assert!(!worth_trimming(at(10, 64), quiet, Some(at(10, 64))), "nothing new to release");
        assert!(worth_trimming(at(10, 65), Some(at(10, 65)), Some(at(10, 64))));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_small_allocations_show_as_free_heap() {
        // Every tenth block stays, so the freed ones cannot merge into the top of the heap (which glibc
        // would give back by itself): the case a trim is for.
        let blocks: Vec<Vec<u8>> = (0..40_000).map(|_| vec![1u8; 1024]).collect();
        let kept: Vec<Vec<u8>> = blocks.into_iter().step_by(10).collect();
        let free = heap().map_or(0, |h| h.free);
        assert!(free >= 32 << 20, "{free} bytes free");
        trim();
        assert_eq!(kept.len(), 4_000);
    }
}
