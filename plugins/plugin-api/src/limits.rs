use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ByteSize, DataError, HumanDuration};

/// Safety limits from the agent config (`limits:`). A request over a limit is refused with `400`
/// before anything is taken; the capped resources are reserved (see [`crate::Budgets`]), so concurrent
/// requests cannot pass a limit together. An absent limit means no limit beyond each command's own bounds.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most anonymous memory the agent may hold at once.
    pub max_ram: Option<ByteSize>,
    /// Most bytes the agent may hold in files at once.
    pub max_disk: Option<ByteSize>,
    /// Longest duration any command may ask for.
    pub max_duration: Option<HumanDuration>,
    /// Most network connections the agent may hold at once.
    pub max_connections: Option<u64>,
    /// Most OS threads `faults/deadlock` may keep blocked at once, across requests (default 2,048).
    pub max_blocked_threads: Option<u64>,
    /// Hosts and CIDRs `net/http_load` may target. Absent: loopback only (127.0.0.0/8, ::1, localhost).
    pub http_load_targets: Option<Vec<String>>,
    /// Hosts and CIDRs `net/dial` may connect to, and a fault proxy's upstreams. Absent: loopback only, like
    /// `http_load_targets`.
    pub dial_targets: Option<Vec<String>>,
    /// IPs and CIDRs a fault proxy (`net/proxy_create`) may listen on. Absent: loopback only.
    pub proxy_listen: Option<Vec<String>>,
    /// Executions a wave without dedupe may cause in the whole swarm, whatever its `remain` and `buddies`
    /// (default 10,000). Dedupe waves are bounded by the swarm's size instead.
    pub max_wave_executions: Option<u64>,
    /// After an `/abort`, copies of waves that started before it are refused for this long (default 1m).
    pub abort_window: Option<HumanDuration>,
}

/// The default of `limits.max_wave_executions`.
pub const DEFAULT_MAX_WAVE_EXECUTIONS: u64 = 10_000;
/// The default of `limits.abort_window`.
pub const DEFAULT_ABORT_WINDOW: Duration = Duration::from_secs(60);

/// Sanity bound on every duration, limit or not: a year is a typo, not a test.
pub const ABSURD_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

impl Limits {
    /// Refuses a duration over `limits.max_duration` (or over a week, which is never meant).
    pub fn check_duration(&self, field: &str, asked: HumanDuration) -> Result<(), DataError> {
        if asked.0 > ABSURD_DURATION {
            return Err(DataError::field(field, format!("{asked} is longer than the 7-day bound on any command")));
        }
        match self.max_duration {
            Some(max) if asked > max => {
                Err(DataError::field(field, format!("{asked} is over limits.max_duration ({max})")))
            }
            _ => Ok(()),
        }
    }
}
