//! Rate mode's schedule: the due time of every request, handed out by a thread of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tarsier_plugin::CommandError;

/// The due times of a rate-mode load's requests, each handed out when it comes.
pub(crate) type Tickets = tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Instant>>;

/// Hands out the requests' due times (`start + n / rate`) from a thread of its own: a thread's
/// sleep with a 1 ns timer slack wakes within tens of microseconds, where tokio's timer has a 1 ms grain that
/// would add up to a millisecond to every latency. A worker picks a ticket up when it is free; one that waited
/// counts the wait as latency (the schedule is the start). Stops at `total`, at the window's end, on cancel,
/// or when every worker is gone. The channel holds a few tickets per worker, so a load that cannot keep up
/// queues nothing unbounded: what was due but not handed out when the window closed is `unreleased`.
pub(crate) struct Pacer {
    pub(crate) start: Instant,
    pub(crate) rate: f64,
    pub(crate) total: Option<u64>,
    pub(crate) end: Option<Instant>,
    pub(crate) cancel: tarsier_plugin::CancelFlag,
    pub(crate) unreleased: Arc<AtomicU64>,
}

impl Pacer {
    pub(crate) fn start(self, workers: usize) -> Result<tokio::sync::mpsc::Receiver<Instant>, CommandError> {
        let (sender, receiver) = tokio::sync::mpsc::channel(workers.clamp(1, 1024) * 2);
        std::thread::Builder::new()
            .name("http-load-pacer".into())
            .spawn(move || self.pace(&sender))
            .map_err(|e| CommandError::Failed(format!("cannot start the pacing thread: {e}")))?;
        Ok(receiver)
    }

    fn pace(self, sender: &tokio::sync::mpsc::Sender<Instant>) {
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer and changes only this thread's timer slack.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        let mut n: u64 = 0;
        while !self.cancel.is_raised() && !sender.is_closed() && self.total.is_none_or(|total| n < total) {
            let due = self.start + Duration::from_secs_f64(n as f64 / self.rate);
            if let Some(end) = self.end {
                if due >= end {
                    break;
                }
                if Instant::now() >= end {
                    // The window closed with requests still due in it: never handed out, dropped.
                    let due_in_window = ((end - self.start).as_secs_f64() * self.rate).ceil() as u64;
                    let planned = self.total.map_or(due_in_window, |total| total.min(due_in_window));
                    self.unreleased.store(planned.saturating_sub(n), Ordering::Relaxed);
                    break;
                }
            }
            let now = Instant::now();
            if due > now {
                // In slices, so a cancel is seen within 10 ms.
                std::thread::sleep((due - now).min(Duration::from_millis(10)));
                continue;
            }
            // Waits while every worker is busy and the channel full: the load is behind its schedule.
            if sender.blocking_send(due).is_err() {
                break;
            }
            n += 1;
        }
    }
}
