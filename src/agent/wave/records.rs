//! What an agent remembers of waves: the dedupe ids it has seen, and the reports of the waves it started.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::wire::status::Status;

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

/// A wave id as kept in records that outlive the wave, without a heap allocation for the ids agents make
/// (16 lowercase hex digits, `new_wave_id`), which are the number they spell; ids a client chose stay text.
/// Why: records kept after a wave are many small allocations made while the wave's transient state fills the
/// heap, and each can keep a page of it from being given back (a 1,000-agent swarm in one process).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WaveKey {
    Generated(u64),
    Chosen(Box<str>),
}

impl WaveKey {
    pub fn of(id: &str) -> Self {
        let generated = id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match u64::from_str_radix(id, 16) {
            Ok(number) if generated => Self::Generated(number),
            _ => Self::Chosen(id.into()),
        }
    }
}

impl std::fmt::Display for WaveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Generated(number) => write!(f, "{number:016x}"),
            Self::Chosen(text) => f.write_str(text),
        }
    }
}

impl Serialize for WaveKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Recent dedupe wave ids: bounded in count and age.
#[derive(Default)]
struct Seen {
    ids: HashSet<WaveKey>,
    order: VecDeque<(Instant, WaveKey)>,
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
        let key = WaveKey::of(id);
        if self.ids.contains(&key) {
            return false;
        }
        self.ids.insert(key.clone());
        self.order.push_back((now, key));
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
    /// As received, not parsed into a tree; the origin copies it into its wave's text buffer.
    #[serde(default)]
    pub result: Box<RawValue>,
}

struct WaveRecord {
    command: String,
    started_at_ms: u64,
    entries: Vec<KeptEntry>,
    /// The texts of every entry (agent, address, result), one after the other: a report kept costs no
    /// allocation of its own. Small allocations that outlive a wave, made while its transient state fills
    /// the heap, each keep a page of it from being given back; a 1,000-agent wave brought 3,000 of them here.
    text: String,
    /// Entries refused because the byte budget was spent.
    dropped: u64,
    /// A dedupe wave: how many agents the origin expected to report (see `Swarm::enter`).
    expected: Option<u64>,
    /// A wave with `select`: the agents chosen (public addresses); empty otherwise.
    selected: Vec<String>,
}

/// One report as the origin keeps it: its numbers, and where its texts are in the record's `text`.
struct KeptEntry {
    hop: u32,
    status: Status,
    received_at_ms: u64,
    elapsed_ms: u64,
    /// The entry's size as received, counted against the byte budget.
    size: usize,
    /// `text[start..agent_end]` is the agent, then the address up to `address_end`, then the result.
    start: usize,
    agent_end: usize,
    address_end: usize,
    result_end: usize,
}

/// A kept report as it is answered: the fields of [`ReportEntry`], in its order.
#[derive(Serialize)]
struct EntryView<'a> {
    agent: &'a str,
    address: &'a str,
    hop: u32,
    status: Status,
    received_at_ms: u64,
    elapsed_ms: u64,
    result: &'a RawValue,
}

impl WaveRecord {
    fn keep(&mut self, entry: ReportEntry, size: usize) {
        let start = self.text.len();
        self.text.push_str(&entry.agent);
        let agent_end = self.text.len();
        self.text.push_str(&entry.address);
        let address_end = self.text.len();
        self.text.push_str(entry.result.get());
        let result_end = self.text.len();
        self.entries.push(KeptEntry {
            hop: entry.hop,
            status: entry.status,
            received_at_ms: entry.received_at_ms,
            elapsed_ms: entry.elapsed_ms,
            size,
            start,
            agent_end,
            address_end,
            result_end,
        });
    }

    fn agent(&self, e: &KeptEntry) -> &str {
        &self.text[e.start..e.agent_end]
    }

    fn address(&self, e: &KeptEntry) -> &str {
        &self.text[e.agent_end..e.address_end]
    }

    fn result_text(&self, e: &KeptEntry) -> &str {
        &self.text[e.address_end..e.result_end]
    }

    fn view<'a>(&'a self, e: &KeptEntry) -> EntryView<'a> {
        // The text was a valid JSON value when it was received; a null stands in should it not parse.
        let result = serde_json::from_str::<&RawValue>(self.result_text(e)).unwrap_or(RawValue::NULL);
        EntryView {
            agent: self.agent(e),
            address: self.address(e),
            hop: e.hop,
            status: e.status,
            received_at_ms: e.received_at_ms,
            elapsed_ms: e.elapsed_ms,
            result,
        }
    }

    fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.size).sum()
    }
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
            self.bytes -= record.bytes();
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
    pub fn open_report(&self, id: &str, command: &str, expected: Option<u64>, selected: Vec<String>) {
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
            text: String::new(),
            dropped: 0,
            expected,
            selected,
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
            record.keep(entry, size);
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
            .map(|e| serde_json::from_str(record.result_text(e)).unwrap_or(Value::Null))
            .collect();
        Some((record.command.clone(), ok))
    }

    /// The origin's summary of a wave: reach, results, timing, per-hop counts.
    /// The ids of the latest `count` waves whose reports are kept here, newest last.
    pub fn recent(&self, count: usize) -> Vec<String> {
        let reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        reports.order.iter().rev().take(count).rev().cloned().collect()
    }

    pub fn summary(&self, id: &str, with_entries: bool) -> Option<Value> {
        let reports = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        let record = reports.records.get(id)?;
        let agents: HashSet<&str> = record.entries.iter().map(|e| record.agent(e)).collect();
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
        if !record.selected.is_empty() {
            // Which agents were chosen, and which of them have not reported (yet): a selection is exact.
            let reported: HashSet<&str> = record.entries.iter().map(|e| record.address(e)).collect();
            let missing: Vec<&String> =
                record.selected.iter().filter(|address| !reported.contains(address.as_str())).collect();
            summary["selected"] = json!(record.selected);
            summary["selected_not_reported"] = json!(missing);
        }
        if with_entries {
            let mut budget = ANSWER_ENTRIES_BYTES_MAX;
            let shown = record
                .entries
                .iter()
                .take_while(|e| budget.checked_sub(e.size).map(|left| budget = left).is_some())
                .count();
            let views: Vec<EntryView> = record.entries[..shown].iter().map(|e| record.view(e)).collect();
            summary["entries"] = json!(views);
            if shown < record.entries.len() {
                summary["entries_not_shown"] = json!(record.entries.len() - shown);
            }
        }
        Some(summary)
    }
}

/// Unix time in milliseconds (the activity log stamps its records with the same clock).
pub use crate::logs::record::now_ms;

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

    #[test]
    fn a_wave_key_reads_back_as_the_id_it_was_made_from() {
        use super::WaveKey;
        for id in [
            "5dfdbf27219fb4aa",
            "0000000000000000",
            "ffffffffffffffff",
            "5DFDBF27219FB4AA",
            "5dfdbf27219fb4a",
            "nightly-run_7",
        ] {
            assert_eq!(WaveKey::of(id).to_string(), id);
        }
        assert_eq!(WaveKey::of("00000000000000ff"), WaveKey::Generated(255));
        assert!(matches!(WaveKey::of("00000000000000FF"), WaveKey::Chosen(_)), "upper case is not what agents make");
        assert_ne!(WaveKey::of("00000000000000ff"), WaveKey::of("ff"));
    }
}
