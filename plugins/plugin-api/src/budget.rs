//! Agent-wide budgets (`limits.max_ram`, `max_disk`, `max_connections`, `max_blocked_threads`) that commands
//! reserve from before they take anything. A reservation is a guard: it lives as long as what it pays for (a
//! mapped region, a file, a socket, a blocked thread) and gives its amount back when dropped, so a command that
//! fails or is cancelled returns what it reserved without any code path having to remember to. Reserving is one
//! atomic compare-and-swap, so concurrent requests can never hold more than a limit together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{ByteSize, DataError, Limits};

/// Threads `faults/deadlock` may keep blocked at once, across all requests, when the config does not say.
pub const DEFAULT_MAX_BLOCKED_THREADS: u64 = 2_048;

/// One capped resource.
pub struct Budget {
    /// What is counted, for messages: `RAM`, `disk`, `connections`.
    what: &'static str,
    /// The config key of the cap, for messages: `limits.max_ram`.
    limit_name: &'static str,
    limit: Option<u64>,
    used: AtomicU64,
    show: fn(u64) -> String,
}

impl Budget {
    pub fn new(what: &'static str, limit_name: &'static str, limit: Option<u64>, show: fn(u64) -> String) -> Self {
        Self { what, limit_name, limit, used: AtomicU64::new(0), show }
    }

    /// Reserves `asked`, or refuses naming `field` (of the command's data) and the limit.
    pub fn reserve(self: &Arc<Self>, field: &str, asked: u64) -> Result<Reservation, DataError> {
        let limit = self.limit.unwrap_or(u64::MAX);
        match self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(asked).filter(|total| *total <= limit)
        }) {
            Ok(_) => Ok(Reservation { budget: Some(self.clone()), amount: asked }),
            Err(used) => Err(DataError::field(
                field,
                format!(
                    "{} of {} asked, but {} is {} and {} is already held or reserved",
                    (self.show)(asked),
                    self.what,
                    self.limit_name,
                    (self.show)(limit),
                    (self.show)(used)
                ),
            )),
        }
    }

    /// What is reserved now (held plus being taken).
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    fn give_back(&self, amount: u64) {
        self.used.fetch_sub(amount, Ordering::AcqRel);
    }
}

/// Part of a budget, given back when dropped.
#[must_use = "a reservation is given back as soon as it is dropped"]
pub struct Reservation {
    budget: Option<Arc<Budget>>,
    amount: u64,
}

impl Reservation {
    /// A reservation of nothing, from no budget.
    pub fn none() -> Self {
        Self { budget: None, amount: 0 }
    }

    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// Gives back everything above `keep` (a region that was mapped smaller than asked).
    pub fn shrink_to(&mut self, keep: u64) {
        if keep < self.amount {
            if let Some(budget) = &self.budget {
                budget.give_back(self.amount - keep);
            }
            self.amount = keep;
        }
    }

    /// Moves `part` (at most what is left) into a reservation of its own, for one item of many.
    pub fn split(&mut self, part: u64) -> Reservation {
        let part = part.min(self.amount);
        self.amount -= part;
        Reservation { budget: self.budget.clone(), amount: part }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(self.amount);
        }
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reservation({})", self.amount)
    }
}

/// Every budget of one agent.
pub struct Budgets {
    pub ram: Arc<Budget>,
    pub disk: Arc<Budget>,
    pub connections: Arc<Budget>,
    pub blocked_threads: Arc<Budget>,
}

fn bytes(n: u64) -> String {
    ByteSize(n).to_string()
}

fn count(n: u64) -> String {
    n.to_string()
}

impl Budgets {
    pub fn from_limits(limits: &Limits) -> Self {
        let budget = |what, name, limit, show| Arc::new(Budget::new(what, name, limit, show));
        Self {
            ram: budget("RAM", "limits.max_ram", limits.max_ram.map(|b| b.0), bytes),
            disk: budget("disk", "limits.max_disk", limits.max_disk.map(|b| b.0), bytes),
            connections: budget("connections", "limits.max_connections", limits.max_connections, count),
            blocked_threads: budget(
                "blocked threads",
                "limits.max_blocked_threads",
                Some(limits.max_blocked_threads.unwrap_or(DEFAULT_MAX_BLOCKED_THREADS)),
                count,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: u64) -> Arc<Budget> {
        Arc::new(Budget::new("RAM", "limits.max_ram", Some(limit), count))
    }

    #[test]
    fn reservations_never_add_up_past_the_limit_and_give_back_on_drop() {
        let ram = budget(100);
        let a = ram.reserve("size", 60).unwrap();
        let refused = ram.reserve("size", 60).unwrap_err();
        assert_eq!(refused.field.as_deref(), Some("data.size"));
        assert!(refused.message.contains("limits.max_ram is 100 and 60 is already"), "{}", refused.message);
        drop(a);
        assert_eq!(ram.used(), 0);
        let _b = ram.reserve("size", 100).unwrap();
    }

    #[test]
    fn shrink_and_split_keep_the_books_straight() {
        let conns = budget(10);
        let mut all = conns.reserve("count", 10).unwrap();
        let one = all.split(1);
        let two = all.split(2);
        all.shrink_to(3);
        assert_eq!(conns.used(), 6);
        drop((one, two));
        assert_eq!(conns.used(), 3);
        drop(all);
        assert_eq!(conns.used(), 0);
    }

    #[test]
    fn concurrent_reservations_hold_the_limit() {
        let ram = budget(1_000);
        let held: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16).map(|_| s.spawn(|| ram.reserve("size", 300).ok())).collect();
            handles.into_iter().filter_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(held.len(), 3);
        assert_eq!(ram.used(), 900);
    }
}
