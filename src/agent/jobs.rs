//! Every command runs as a job: listed at `GET /jobs`, cancellable by `DELETE /jobs/{id}` and `/abort`.
//! Finished jobs are kept for a while so a detached job's result can be fetched.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tarsier_plugin::{Cancel, Progress};

use crate::agent::wave::WaveKey;
use crate::wire::status::Status;

/// How many finished jobs `/jobs` remembers.
const FINISHED_KEPT: usize = 100;
/// The largest result a finished job keeps (a `fs_stats` of 100,000 files is megabytes); a larger one is
/// replaced by a note of its size. The client that waited got it whole.
const RESULT_KEPT_BYTES: usize = 64 * 1024;

#[derive(Clone, Serialize)]
pub struct JobView {
    pub id: u64,
    /// Shared with the registry: a finished job's record allocates nothing for its names.
    #[serde(serialize_with = "crate::wire::answer::as_str")]
    pub command: Arc<str>,
    pub wave_id: WaveKey,
    pub detached: bool,
    /// RFC 3339 on the wire; formatted only when listed, not on every command.
    #[serde(serialize_with = "rfc3339_millis")]
    pub started: SystemTime,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    /// The result's JSON text: not a tree, and a small one (most are) without an allocation of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<KeptJson>,
    /// The `Tarsier-Request-Id` header of the request that started it, so a client can find its job while it
    /// waits for the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// How far a running command got, if it says (`net/http_load` does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Value>,
    /// How long it was asked to run, when its data says (`duration`): what `elapsed_ms` is counted against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

/// A JSON value's text as a finished job keeps it: up to [`KeptJson::INLINE`] bytes in place, a larger one
/// boxed. Why: a record kept after a wave is allocated while the wave's transient state fills the heap, and
/// every such small allocation can keep a page of it from being given back (a 1,000-agent swarm in one
/// process held tens of MiB so); `{"slept_ms":0}` needs none.
#[derive(Clone)]
// PERF(wave): a kept result is its JSON text, not a tree of small allocations.
pub enum KeptJson {
    Inline { len: u8, bytes: [u8; KeptJson::INLINE] },
    Boxed(Box<RawValue>),
}

impl KeptJson {
    const INLINE: usize = 22;

    fn new(value: Box<RawValue>) -> Self {
        let text = value.get().as_bytes();
        if text.len() > Self::INLINE {
            return Self::Boxed(value);
        }
        let mut bytes = [0; Self::INLINE];
        bytes[..text.len()].copy_from_slice(text);
        Self::Inline { len: text.len() as u8, bytes }
    }

    pub fn get(&self) -> &str {
        match self {
            // Copied from a `str` at a character boundary (its end), so it is UTF-8.
            Self::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("null"),
            Self::Boxed(value) => value.get(),
        }
    }
}

impl Serialize for KeptJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Boxed(value) => value.serialize(serializer),
            // The text was a valid JSON value when it was kept; as a RawValue it is written as it is.
            Self::Inline { .. } => {
                let raw: &RawValue = serde_json::from_str(self.get()).map_err(serde::ser::Error::custom)?;
                raw.serialize(serializer)
            }
        }
    }
}

fn rfc3339_millis<S: serde::Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*at))
}

struct Running {
    view: JobView,
    cancel: Cancel,
    progress: Progress,
}

impl Running {
    /// The view with the latest progress in it, and how long it has run so far.
    fn view(&self) -> JobView {
        let elapsed = self.view.started.elapsed().map(|d| d.as_millis() as u64).unwrap_or(0);
        JobView { progress: self.progress.get(), elapsed_ms: Some(elapsed), ..self.view.clone() }
    }
}

#[derive(Default)]
struct Table {
    next_id: u64,
    running: BTreeMap<u64, Running>,
    finished: VecDeque<JobView>,
}

impl Table {
    /// Takes a job out of the running ones. An emptied map is replaced by a new one: a `BTreeMap` keeps its
    /// last node (about 2 KiB here) after its last entry goes, allocated during the first command, maybe
    /// amid a wave's transient state, where it would keep a page from being given back.
    fn remove_running(&mut self, id: u64) -> Option<Running> {
        let removed = self.running.remove(&id);
        if self.running.is_empty() {
            self.running = BTreeMap::new();
        }
        removed
    }
}

/// A job just registered: its id, its cancellation and where it reports progress.
pub struct Started {
    pub id: u64,
    pub cancel: Cancel,
    pub progress: Progress,
}

#[derive(Default)]
pub struct Jobs {
    table: Mutex<Table>,
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Registers a job and returns its id and cancellation.
    pub fn start(
        &self,
        command: &Arc<str>,
        wave_id: &str,
        detached: bool,
        request_id: Option<String>,
        duration_ms: Option<u64>,
    ) -> Started {
        let mut table = self.lock();
        table.next_id += 1;
        let id = table.next_id;
        let cancel = Cancel::default();
        let view = JobView {
            id,
            command: command.clone(),
            wave_id: WaveKey::of(wave_id),
            detached,
            started: SystemTime::now(),
            status: Status::Running,
            elapsed_ms: None,
            result: None,
            request_id,
            progress: None,
            duration_ms,
        };
        let progress = Progress::default();
        table.running.insert(id, Running { view, cancel: cancel.clone(), progress: progress.clone() });
        Started { id, cancel, progress }
    }

    /// Moves a job to the finished list with its outcome.
    pub fn finish(&self, id: u64, status: Status, elapsed_ms: u64, result: Box<RawValue>) {
        let size = result.get().len();
        let result = if size > RESULT_KEPT_BYTES {
            let note = serde_json::json!({ "not_kept": format!("a result of {size} bytes; /jobs keeps up to {RESULT_KEPT_BYTES}") });
            raw_json(&note)
        } else {
            result
        };
        let mut table = self.lock();
        if let Some(Running { mut view, .. }) = table.remove_running(id) {
            view.status = status;
            view.elapsed_ms = Some(elapsed_ms);
            view.result = Some(KeptJson::new(result));
            if table.finished.len() == FINISHED_KEPT {
                table.finished.pop_front();
            }
            table.finished.push_back(view);
        }
    }

    /// Forgets a job that never ran (its data was refused).
    pub fn discard(&self, id: u64) {
        self.lock().remove_running(id);
    }

    pub fn running_count(&self) -> usize {
        self.lock().running.len()
    }

    pub fn list(&self) -> (Vec<JobView>, Vec<JobView>) {
        let table = self.lock();
        (table.running.values().map(Running::view).collect(), table.finished.iter().rev().cloned().collect())
    }

    /// The running jobs, and how many finished ones are kept (for `/status`, which lists no finished one).
    pub fn running(&self) -> (Vec<JobView>, usize) {
        let table = self.lock();
        (table.running.values().map(Running::view).collect(), table.finished.len())
    }

    pub fn get(&self, id: u64) -> Option<JobView> {
        let table = self.lock();
        table.running.get(&id).map(Running::view).or_else(|| table.finished.iter().find(|v| v.id == id).cloned())
    }

    /// Cancels one running job; `None` if unknown, `Some(false)` if it already finished.
    pub fn cancel(&self, id: u64) -> Option<bool> {
        let table = self.lock();
        if let Some(running) = table.running.get(&id) {
            running.cancel.cancel();
            return Some(true);
        }
        table.finished.iter().any(|v| v.id == id).then_some(false)
    }

    /// Cancels every running job and returns the ids this call cancelled: jobs already cancelled (by a
    /// concurrent abort, say) are not counted twice.
    pub fn cancel_all(&self) -> Vec<u64> {
        let table = self.lock();
        table.running.iter().filter(|(_, r)| r.cancel.cancel()).map(|(id, _)| *id).collect()
    }

    /// True while any of `ids` is still running.
    pub fn any_running(&self, ids: &[u64]) -> bool {
        let table = self.lock();
        ids.iter().any(|id| table.running.contains_key(id))
    }
}

/// `value` as JSON text, for the job list and wave reports. What cannot be written (a map with keys that are
/// not strings) is kept as an `error` saying so, and logged: never an empty or `null` result that reads as
/// a command that answered nothing.
pub fn raw_json(value: &impl serde::Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|err| {
        tracing::error!(%err, "cannot write a result as JSON");
        let message = serde_json::Value::String(format!("the result cannot be written as JSON: {err}"));
        RawValue::from_string(format!("{{\"error\":{message}}}")).unwrap_or_else(|_| RawValue::NULL.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::KeptJson;

    #[test]
    fn a_kept_result_reads_back_as_it_was_small_or_large() {
        for text in [r#"{"slept_ms":0}"#, "null", r#""ünïcödé""#, r#"{"error":"a longer message than fits"}"#] {
            let kept = KeptJson::new(serde_json::value::RawValue::from_string(text.to_owned()).unwrap());
            assert_eq!(kept.get(), text);
            assert_eq!(serde_json::to_string(&kept).unwrap(), text);
            assert_eq!(matches!(kept, KeptJson::Inline { .. }), text.len() <= KeptJson::INLINE, "{text}");
        }
    }
}
