//! What an agent remembers of waves: the dedupe ids it has seen, and the reports of the waves it started.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::outcome::Status;

/// How long a dedupe wave id is remembered, and how many ids at most.
const SEEN_TTL: Duration = Duration::from_secs(15 * 60);
const SEEN_MAX: usize = 100_000;
/// Waves whose reports the origin keeps, and entries per wave.
const REPORTS_KEPT: usize = 200;
const ENTRIES_MAX: usize = 100_000;
/// Bytes of report entries kept over all waves: past it the oldest waves' records go first.
const REPORT_BYTES_MAX: usize = 64 << 20;
/// Bytes of entries one `?entries=true` answer carries at most.
const ANSWER_ENTRIES_BYTES_MAX: usize = 8 << 20;

/// Recent dedupe wave ids: bounded in count and age.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<(Instant, String)>,
}

impl Seen {
    fn first_time(&mut self, id: &str) -> bool {
        let now = Instant::now();
        while let Some((at, old)) = self.order.front() {
            if now.duration_since(*at) < SEEN_TTL && self.order.len() < SEEN_MAX {
                break;
            }
            self.ids.remove(old);
            self.order.pop_front();
        }
        if self.ids.contains(id) {
            return false;
        }
        self.ids.insert(id.to_owned());
        self.order.push_back((now, id.to_owned()));
        true
    }
}

/// One agent's report of one execution, sent to the origin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportEntry {
    pub agent: String,
    /// The reporter's public `host:port`, by which the origin knows it for a peer.
    #[serde(default)]
    pub address: String,
    pub hop: u32,
    pub status: Status,
    /// When the agent received the command (Unix ms).
    pub received_at_ms: u64,
    pub elapsed_ms: u64,
    /// Kept as received: one allocation per entry, not a tree (a 1,000-agent wave has 1,000 of them).
    #[serde(default)]
    pub result: Box<RawValue>,
}

struct WaveRecord {
    command: String,
    started_at_ms: u64,
    entries: Vec<ReportEntry>,
    /// The size of each entry as received, in the order of `entries`.
    sizes: Vec<usize>,
    /// Entries refused because the byte budget was spent.
    dropped: u64,
    /// A dedupe wave: how many agents the origin expected to report (see `Swarm::enter`).
    expected: Option<u64>,
}

/// The origin's records of the waves it started, oldest first, with their size.
#[derive(Default)]
struct Reports {
    records: HashMap<String, WaveRecord>,
    order: VecDeque<String>,
    bytes: usize,
}

impl Reports {
    fn forget_oldest(&mut self) -> bool {
        let Some(old) = self.order.pop_front() else { return false };
        if let Some(record) = self.records.remove(&old) {
            self.bytes -= record.sizes.iter().sum::<usize>();
        }
        true
    }
}

/// What the agent knows of waves: ids seen, and the reports of the waves it started.
#[derive(Default)]
pub struct WaveRecords {
    seen: Mutex<Seen>,
    reports: Mutex<Reports>,
}

impl WaveRecords {
    /// True the first time a dedupe wave id arrives here.
    pub fn first_time(&self, id: &str) -> bool {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).first_time(id)
    }

    /// The origin opens a report for a wave it starts; `expected` is how many agents it can reach (a dedupe
    /// wave: the swarm it knows, within what `remain` and `buddies` allow).
    pub fn open_report(&self, id: &str, command: &str, expected: Option<u64>) {
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        if reports.records.contains_key(id) {
            return;
        }
        if reports.order.len() == REPORTS_KEPT {
            reports.forget_oldest();
        }
        let record = WaveRecord {
            command: command.to_owned(),
            started_at_ms: now_ms(),
            entries: Vec::new(),
            sizes: Vec::new(),
            dropped: 0,
            expected,
        };
        reports.records.insert(id.to_owned(), record);
        reports.order.push_back(id.to_owned());
    }

    /// Adds an entry; false when this agent did not start that wave.
    /// `size` is the entry's size as received. Past the byte budget the oldest waves' records are
    /// forgotten first; an entry that still does not fit is counted as dropped.
    pub fn add_report(&self, id: &str, entry: ReportEntry, size: usize) -> bool {
        let mut reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        if !reports.records.contains_key(id) {
            return false;
        }
        while reports.bytes + size > REPORT_BYTES_MAX && reports.order.front().is_some_and(|oldest| oldest != id) {
            reports.forget_oldest();
        }
        let fits = reports.bytes + size <= REPORT_BYTES_MAX;
        let Some(record) = reports.records.get_mut(id) else { return false };
        if fits && record.entries.len() < ENTRIES_MAX {
            record.entries.push(entry);
            record.sizes.push(size);
            reports.bytes += size;
        } else {
            record.dropped += 1;
        }
        true
    }

    /// The command of a wave and the results of the agents that ran it without error, for merging.
    pub fn results(&self, id: &str) -> Option<(String, Vec<Value>)> {
        let reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        let record = reports.records.get(id)?;
        // Parsed again here, where a merge needs it: the text was valid JSON when it was received.
        let ok = record
            .entries
            .iter()
            .filter(|e| e.status == Status::Ok)
            .map(|e| serde_json::from_str(e.result.get()).unwrap_or(Value::Null))
            .collect();
        Some((record.command.clone(), ok))
    }

    /// The origin's summary of a wave: reach, results, timing, per-hop counts.
    pub fn summary(&self, id: &str, with_entries: bool) -> Option<Value> {
        let reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        let record = reports.records.get(id)?;
        let agents: HashSet<&str> = record.entries.iter().map(|e| e.agent.as_str()).collect();
        let mut per_hop: BTreeMap<u32, u64> = BTreeMap::new();
        let mut by_status: BTreeMap<Status, u64> = BTreeMap::new();
        for e in &record.entries {
            *per_hop.entry(e.hop).or_default() += 1;
            *by_status.entry(e.status).or_default() += 1;
        }
        let arrivals = record.entries.iter().map(|e| e.received_at_ms.saturating_sub(record.started_at_ms));
        let succeeded = record.entries.iter().filter(|e| e.status == Status::Ok).count();
        let mut summary = json!({
            "wave_id": id,
            "command": record.command,
            "started_at_ms": record.started_at_ms,
            "agents_reached": agents.len(),
            "executions": record.entries.len(),
            "succeeded": succeeded,
            "failed": record.entries.len() - succeeded,
            "by_status": by_status,
            "first_arrival_ms": arrivals.clone().min(),
            "last_arrival_ms": arrivals.max(),
            "per_hop": per_hop,
        });
        if record.dropped > 0 {
            summary["entries_dropped"] = json!(record.dropped);
        }
        // Reached and reported are one count here (an agent is counted when its report arrives); what is
        // still expected tells a reader whether that count is final.
        if let Some(expected) = record.expected {
            summary["expected_agents"] = json!(expected);
            summary["still_expected"] = json!(expected.saturating_sub(agents.len() as u64));
            summary["complete"] = json!(agents.len() as u64 >= expected);
        }
        if with_entries {
            let mut budget = ANSWER_ENTRIES_BYTES_MAX;
            let shown = record
                .sizes
                .iter()
                .take_while(|size| budget.checked_sub(**size).map(|left| budget = left).is_some())
                .count();
            summary["entries"] = json!(record.entries[..shown]);
            if shown < record.entries.len() {
                summary["entries_not_shown"] = json!(record.entries.len() - shown);
            }
        }
        Some(summary)
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// How many agents a wave can reach at most: itself and `buddies` copies per hop for `remain` hops
/// (1 + b + ... + b^r), saturating.
pub fn reach_bound(remain: u32, buddies: u32) -> u64 {
    let (mut level, mut total) = (1u64, 1u64);
    for _ in 0..remain {
        level = level.saturating_mul(u64::from(buddies));
        total = total.saturating_add(level);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::reach_bound;

    #[test]
    fn a_wave_reaches_at_most_one_plus_buddies_per_hop() {
        assert_eq!(reach_bound(0, 5), 1);
        assert_eq!(reach_bound(3, 10), 1111);
        assert_eq!(reach_bound(5, 1), 6);
        assert_eq!(reach_bound(32, 1000), u64::MAX, "saturates");
    }
}
