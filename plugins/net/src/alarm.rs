//! A precise alarm: a timerfd armed for an absolute time on the monotonic clock `Instant` reads, awaited through
//! tokio's reactor, so the kernel's high-resolution timer wakes the task, not tokio's 1 ms wheel (which rings
//! up to 2 ms late: the wheel rounds up, and so does the poll's timeout). Rate mode's workers pace requests on
//! it; the fault proxy's toxics wait on it.

use std::io;
use std::os::fd::{AsFd as _, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use nix::time::{clock_gettime, ClockId as Clock};
use tokio::io::unix::AsyncFd;

/// A timerfd as tokio's `AsyncFd` takes it.
pub(crate) struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// One task's alarm: when it rings (on a grid or not, how long ahead) and what rings it.
pub(crate) struct Alarm {
    ringer: Ringer,
    /// `pacing: ticks`: due times rounded down to this grid, shared by every worker of the load, so the
    /// requests due within one cell ring together at its start, in one wake-up of the runtime.
    grid: Option<Grid>,
    /// How long before its time the alarm rings (then rounded down to the grid): rate mode's send-ahead; zero
    /// for the fault proxy's toxics, which must never ring early.
    ahead: Duration,
}

/// What rings: a timerfd; or tokio's timer when no timerfd can be had (the process is out of file descriptors:
/// a timerfd is one more per rate-mode connection, or per proxied pipe a toxic makes wait).
enum Ringer {
    Timerfd {
        fd: AsyncFd<Timer>,
        /// The same moment as an `Instant` and as the monotonic clock's reading, to convert one to the other.
        anchor: (Instant, Duration),
    },
    Tokio,
}

/// Ticks every `grain` from `start` (a rate-mode schedule's).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    pub(crate) start: Instant,
    pub(crate) grain: Duration,
}

impl Grid {
    /// The last tick at or before `due`.
    fn round_down(&self, due: Instant) -> Instant {
        let since = due.saturating_duration_since(self.start).as_nanos();
        let grain = self.grain.as_nanos().max(1);
        let ticks = since / grain;
        self.start + Duration::from_nanos(u64::try_from(ticks * grain).unwrap_or(u64::MAX))
    }
}

/// Below this a due time is waited for by yielding to the runtime until it comes, not by sleeping: the sleep
/// and the wake-up cost the thread more than the wait, and going early would date a request before it left.
const YIELD_BELOW: Duration = Duration::from_micros(50);

impl Alarm {
    /// A precise alarm ringing `ahead` of its times (rounded down to `grid` first, when given), or tokio's
    /// timer (said once in the log) when the timerfd cannot be made.
    pub(crate) fn new(grid: Option<Grid>, ahead: Duration) -> Self {
        let ringer = Self::timerfd().unwrap_or_else(|err| {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(
                || tracing::warn!(%err, "no timerfd: rate mode and the fault proxy's toxics wait on tokio's 1 ms timer"),
            );
            Ringer::Tokio
        });
        Alarm { ringer, grid, ahead }
    }

    /// The same alarm on tokio's timer from now on, which cannot fail (for a timerfd that did).
    pub(crate) fn fall_back_to_tokio(&mut self) {
        self.ringer = Ringer::Tokio;
    }

    fn timerfd() -> io::Result<Ringer> {
        let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC)?;
        let reading = clock_gettime(Clock::CLOCK_MONOTONIC)?;
        let anchor = (Instant::now(), Duration::from(reading));
        // SAFETY: the `Timer` owns its timerfd (an `OwnedFd` inside), so the descriptor stays open and the same
        // for as long as the `AsyncFd` holds it, and `as_raw_fd` always returns it.
        let fd = unsafe { AsyncFd::register_with_interest(Timer(timer), tokio::io::Interest::READABLE) }
            .map_err(|err| io::Error::other(err.to_string()))?;
        Ok(Ringer::Timerfd { fd, anchor })
    }

    /// Returns `ahead` of `due`, on a grid at the last tick at or before that (which may be now); at once when
    /// that time has passed. Going ahead before rounding sends a request due less than `ahead` after a tick on
    /// the tick before, up to a tick and `ahead` early and dated from when it left, rather than on its own tick
    /// where the wake-up's lateness would make it late (A/B, rounding first instead, 500/s, 5 interleaved
    /// rounds: p90 0.153 -> 0.162 ms on bare axum, 0.196 -> 0.244 ms on nginx).
    pub(crate) async fn until(&mut self, due: Instant) -> io::Result<()> {
        let ring = due.checked_sub(self.ahead).unwrap_or(due);
        let ring = self.grid.map_or(ring, |grid| grid.round_down(ring));
        loop {
            let left = ring.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            if left < YIELD_BELOW {
                tokio::task::yield_now().await;
                continue;
            }
            let Ringer::Timerfd { fd, anchor: (anchor, monotonic) } = &mut self.ringer else {
                tokio::time::sleep_until(ring.into()).await;
                return Ok(());
            };
            let at = TimeSpec::from_duration(*monotonic + ring.duration_since(*anchor));
            fd.get_ref().0.set(Expiration::OneShot(at), TimerSetTimeFlags::TFD_TIMER_ABSTIME)?;
            // The expiration is never read: arming the timer again zeroes its count, and tokio registers it
            // edge-triggered, so each expiration is an event of its own. What woke the task is told by the
            // clock instead: a readiness left from a wait that was dropped before it rang (a toxic's pipe
            // stopped), or a ring a conversion's nanoseconds before `ring`, goes round the loop and arms again.
            // PERF(rate_matrix): one syscall fewer per request in rate mode (a read of the timerfd, 2,300 of
            // them for 2,500 requests at 500/s in `strace -c`).
            fd.readable().await?.clear_ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_rounds_a_due_time_down_to_its_tick() {
        let start = Instant::now();
        let grid = Grid { start, grain: Duration::from_millis(1) };
        assert_eq!(grid.round_down(start), start);
        assert_eq!(grid.round_down(start + Duration::from_micros(1)), start);
        assert_eq!(grid.round_down(start + Duration::from_micros(1_000)), start + Duration::from_millis(1));
        assert_eq!(grid.round_down(start + Duration::from_micros(2_999)), start + Duration::from_millis(2));
    }

    #[tokio::test]
    async fn a_gridded_alarm_rings_on_the_tick_before_the_due_time() {
        let start = Instant::now();
        let grain = Duration::from_millis(20);
        let mut alarm = Alarm::new(Some(Grid { start, grain }), Duration::ZERO);
        alarm.until(start + Duration::from_millis(50)).await.unwrap();
        assert!(Instant::now() >= start + 2 * grain, "rang before its cell's tick");
    }

    #[tokio::test]
    async fn an_alarm_ahead_rings_its_lead_before_the_due_time_and_on_a_grid_on_the_tick_before_that() {
        let start = Instant::now();
        let (grain, ahead) = (Duration::from_millis(20), Duration::from_millis(5));
        let mut alarm = Alarm::new(Some(Grid { start, grain }), ahead);
        // Due at 50 ms: 5 ms ahead is 45 ms, whose tick is at 40 ms.
        alarm.until(start + Duration::from_millis(50)).await.unwrap();
        assert!(Instant::now() >= start + 2 * grain, "rang before the tick");
        let mut alarm = Alarm::new(None, ahead);
        let due = Instant::now() + Duration::from_millis(30);
        alarm.until(due).await.unwrap();
        assert!(Instant::now() >= due - ahead, "rang more than its lead before the due time");
    }

    #[tokio::test]
    async fn an_alarm_wakes_at_its_time_not_before() {
        let mut alarm = Alarm::new(None, Duration::ZERO);
        assert!(matches!(alarm.ringer, Ringer::Timerfd { .. }), "this kernel has timerfd");
        for wait in [Duration::from_micros(300), Duration::from_millis(3), Duration::ZERO] {
            let due = Instant::now() + wait;
            alarm.until(due).await.unwrap();
            assert!(Instant::now() >= due, "woke before its time");
        }
        for _ in 0..100 {
            // Closer than a sleep is worth: waited for all the same, never gone early.
            let due = Instant::now() + Duration::from_micros(10);
            alarm.until(due).await.unwrap();
            assert!(Instant::now() >= due, "went before a due time 10 µs ahead");
        }
        let past = Instant::now() - Duration::from_millis(5);
        alarm.until(past).await.unwrap();
        let due = Instant::now() + Duration::from_millis(2);
        alarm.fall_back_to_tokio();
        alarm.until(due).await.unwrap();
        assert!(Instant::now() >= due, "the alarm on tokio's timer does not ring early either");
    }
}
