use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ByteSize, DataError, HumanDuration};

/// Safety limits from the agent config (`limits:`). A request over a limit is refused with `400`
/// before anything is taken. An absent limit means no limit beyond each command's own sanity bounds.
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
    /// Hosts and CIDRs `net/http_load` may target. Absent: loopback only (127.0.0.0/8, ::1, localhost).
    pub http_load_targets: Option<Vec<String>>,
}

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

    /// Refuses taking `asked` more of a resource when `held` is already taken and `limit` is the cap.
    pub fn check_budget(
        field: &str,
        what: &str,
        limit_name: &str,
        limit: Option<u64>,
        held: u64,
        asked: u64,
        show: impl Fn(u64) -> String,
    ) -> Result<(), DataError> {
        match limit {
            Some(max) if held.saturating_add(asked) > max => Err(DataError::field(
                field,
                format!(
                    "{} of {what} asked, but {limit_name} is {} and {} is already held",
                    show(asked),
                    show(max),
                    show(held)
                ),
            )),
            _ => Ok(()),
        }
    }
}
