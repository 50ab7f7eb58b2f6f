//! A lock-order inversion that can be broken from outside.
//!
//! A std `Mutex` deadlock can never be undone, so the two locks here are built on one condition variable:
//! a thread that waits for a lock sleeps in the kernel (a futex wait) exactly like a thread stuck on a mutex,
//! but the agent can set `released` and wake everyone when the time is up or on abort.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use tarsier_plugin::Reservation;

/// The agent itself, as the owner of the lock a lone waiter blocks on.
const AGENT: u32 = u32::MAX;

#[derive(Default)]
struct TrapState {
    owner: [Option<u32>; 2],
    /// Threads that have taken their first lock (if any) and are about to wait.
    ready: u32,
    released: bool,
}

/// One deadlock: two locks, their owners and the waiters. Every thread holds the trap, so its share of
/// `limits.max_blocked_threads` is given back when the last thread has woken and ended.
pub struct Trap {
    state: Mutex<TrapState>,
    wake: Condvar,
    _reserved: Reservation,
    /// Threads of this trap that have not ended yet.
    alive: AtomicU64,
}

impl Trap {
    fn lock_state(&self) -> MutexGuard<'_, TrapState> {
        self.state.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Takes lock `which` for `me` when it is free; false if another thread owns it.
    fn try_take(&self, which: usize, me: u32) -> bool {
        let mut state = self.lock_state();
        if state.owner[which].is_none() {
            state.owner[which] = Some(me);
            true
        } else {
            false
        }
    }

    /// Waits until all `total` threads hold their first lock, so no waiter can slip into a lock before its
    /// owner has taken it (a Barrier could not be broken if a thread failed to start).
    fn all_ready(&self, total: u32) {
        let mut state = self.lock_state();
        state.ready += 1;
        self.wake.notify_all();
        while state.ready < total && !state.released {
            state = self.wake.wait(state).unwrap_or_else(|poison| poison.into_inner());
        }
    }

    /// Lets the agent own lock `which`, so a single waiter has something to block on.
    fn take_for_agent(&self, which: usize) {
        self.lock_state().owner[which] = Some(AGENT);
    }

    /// Blocks until lock `which` is free (never, in a deadlock), the deadline passes or the trap is released.
    fn wait_for(&self, which: usize, me: u32, deadline: Instant) {
        let mut state = self.lock_state();
        loop {
            if state.released {
                return;
            }
            if state.owner[which].is_none() {
                state.owner[which] = Some(me);
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            state = match self.wake.wait_timeout(state, deadline - now) {
                Ok((state, _)) => state,
                Err(poison) => poison.into_inner().0,
            };
        }
    }

    /// True once every thread of the trap has ended (so no longer counts as blocked).
    pub fn all_ended(&self) -> bool {
        self.alive.load(Ordering::Acquire) == 0
    }

    pub fn release(&self) {
        self.lock_state().released = true;
        self.wake.notify_all();
    }
}

/// Every live trap, so `/abort` can break them all, and a count of the threads blocked in them.
#[derive(Default)]
pub struct Traps {
    live: Mutex<Vec<Arc<Trap>>>,
    blocked: Arc<AtomicU64>,
}

impl Traps {
    pub fn blocked(&self) -> u64 {
        self.blocked.load(Ordering::Relaxed)
    }

    /// Starts `threads` detached OS threads deadlocked until `deadline` or release.
    pub fn spring(&self, threads: u32, deadline: Instant, reserved: Reservation) -> std::io::Result<Arc<Trap>> {
        let trap = Arc::new(Trap {
            state: Mutex::default(),
            wake: Condvar::new(),
            _reserved: reserved,
            alive: AtomicU64::new(u64::from(threads)),
        });
        self.live.lock().unwrap_or_else(|p| p.into_inner()).push(trap.clone());
        if threads == 1 {
            // A lone thread takes the first lock and then waits for the second, which the agent holds.
            trap.take_for_agent(1);
        }
        for me in 0..threads {
            let (mine, blocked) = (trap.clone(), self.blocked.clone());
            let spawned =
                std::thread::Builder::new().name(format!("deadlock-{me}")).stack_size(64 * 1024).spawn(move || {
                    let (first, second) = match me {
                        0 => (Some(0), 1),
                        1 => (Some(1), 0),
                        _ => (None, 0),
                    };
                    if let Some(first) = first {
                        mine.try_take(first, me);
                    }
                    mine.all_ready(threads);
                    blocked.fetch_add(1, Ordering::Relaxed);
                    mine.wait_for(second, me, deadline);
                    blocked.fetch_sub(1, Ordering::Relaxed);
                    mine.alive.fetch_sub(1, Ordering::Release);
                });
            if let Err(err) = spawned {
                trap.release();
                self.forget(&trap);
                return Err(err);
            }
        }
        Ok(trap)
    }

    pub fn forget(&self, trap: &Arc<Trap>) {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).retain(|t| !Arc::ptr_eq(t, trap));
    }

    /// Releases every trap and says how many threads were blocked.
    pub fn release_all(&self) -> u64 {
        let blocked = self.blocked();
        for trap in self.live.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            trap.release();
        }
        blocked
    }
}
