//! How the CLI shows answers: a table for people (coloured on a terminal, plain when piped or with
//! `NO_COLOR`, both decided by anstream), or JSON for programs. Writes never panic on a closed pipe
//! (`tarsier exec ... | head`).

use std::io::Write as _;

use std::time::Duration;

use anstyle::{AnsiColor, Style};
use serde::Deserialize as _;
use serde_json::Value;
use tarsier_net::HttpLoadResult;

use crate::wire::status::Status;

pub use crate::cli::OutputFormat;

pub const GOOD: Style = AnsiColor::Green.on_default();
pub const BAD: Style = AnsiColor::Red.on_default().bold();
pub const DIM: Style = Style::new().dimmed();

/// `println!` that never panics: through [`line`]. For output a person or a pipe reads.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::client::output::line(format!($($arg)*)) };
}

/// `eprintln!` that never panics: through [`error_line`].
#[macro_export]
macro_rules! say_err {
    ($($arg:tt)*) => { $crate::client::output::error_line(format!($($arg)*)) };
}

/// One line to stderr; a closed pipe is ignored.
pub fn error_line(text: impl std::fmt::Display) {
    let _ = writeln!(anstream::stderr(), "{text}");
}

/// One line to stdout; a closed pipe ends the output quietly.
pub fn line(text: impl std::fmt::Display) {
    let _ = writeln!(anstream::stdout(), "{text}");
}

/// `text` in `style`, where colour is on.
pub fn styled(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

pub fn json_line(value: &Value) {
    line(value);
}

/// A running job as one short line: its progress where it has one, else how long it ran of how long it
/// was asked to (`3.00 s / 10.00 s, 7.00 s left`).
pub fn job_line(job: &Value) -> String {
    if job["progress"].is_object() {
        return progress_line(&job["progress"]);
    }
    elapsed_of(job["elapsed_ms"].as_u64().unwrap_or(0), job["duration_ms"].as_u64(), true)
}

/// How long something ran, of how long it was asked to when that is known (`7.25 s / 30.00 s`), and with
/// `left` how long is left (`, 22.75 s left`).
pub fn elapsed_of(elapsed_ms: u64, total_ms: Option<u64>, left: bool) -> String {
    match total_ms {
        Some(total) if left => {
            format!("{} / {}, {} left", seconds(elapsed_ms), seconds(total), seconds(total.saturating_sub(elapsed_ms)))
        }
        Some(total) => format!("{} / {}", seconds(elapsed_ms), seconds(total)),
        None => seconds(elapsed_ms),
    }
}

/// A running job's progress as one short line: `1234 sent, 1200 done, 3 errors, 812.4 req/s, mean 1.20 ms,
/// p99 3.10 ms`.
pub fn progress_line(progress: &Value) -> String {
    let mut parts = Vec::new();
    // How far in time, of how long, and how long is left: `7.0 s / 30.0 s, 23.0 s left`.
    if let Some(elapsed) = progress["elapsed_s"].as_f64() {
        let total = progress["asked"]["duration_s"].as_f64().map(|total| (total * 1000.0) as u64);
        parts.push(elapsed_of((elapsed * 1000.0) as u64, total, true));
    }
    let stage = &progress["stage"];
    if let (Some(at), Some(of), Some(target)) =
        (stage["stage"].as_u64(), stage["stages"].as_u64(), stage["target"].as_f64())
    {
        let target = match stage["of"].as_str() {
            Some("rate") => format!("{target:.0} req/s asked"),
            _ => format!("{target:.0} in flight"),
        };
        parts.push(format!("stage {at}/{of} ({target})"));
    }
    // A command that fills something: `96.0 MiB of 256.0 MiB (37 %)`.
    let done = progress["populated_bytes"].as_u64().or(progress["written_bytes"].as_u64());
    if let (Some(done), Some(size)) = (done, progress["size_bytes"].as_u64().filter(|s| *s > 0)) {
        let verb = if progress.get("written_bytes").is_some() { "written" } else { "in RAM" };
        parts.push(format!("{} of {} {verb} ({} %)", human_bytes(done), human_bytes(size), done * 100 / size));
    }
    let count = |key: &str| progress[key].as_u64();
    if let Some(sent) = count("sent") {
        parts.push(format!("{sent} sent"));
    }
    if let Some(done) = count("completed") {
        parts.push(format!("{done} done"));
    }
    if let Some(errors) = count("errors") {
        let text = format!("{errors} errors");
        parts.push(if errors > 0 { styled(BAD, text) } else { text });
    }
    if let Some(rate) = progress["req_per_s"].as_f64() {
        match progress["asked"]["rate"].as_f64() {
            Some(asked) => parts.push(format!("{rate:.1} of {asked:.0} req/s asked")),
            None => parts.push(format!("{rate:.1} req/s")),
        }
    }
    if let Some(mean) = progress["mean_ms"].as_f64() {
        parts.push(format!("mean {mean:.2} ms"));
    }
    if let Some(p99) = progress["p99_ms"].as_f64() {
        parts.push(format!("p99 {p99:.2} ms"));
    }
    parts.join(", ")
}

/// The answer of `/exec` as a summary: what ran where and how it ended, then its result as aligned
/// key/value rows, an `http_load` table where there is one, and how the wave went on.
pub fn exec_answer(http_status: u16, answer: &Value, swarm_table_follows: bool) {
    let status = answer["status"].as_str().unwrap_or("");
    let command = answer["command"].as_str().unwrap_or("the command");
    let agent = answer["agent"].as_str().unwrap_or("the agent");
    if let Some(error) = answer["error"].as_str() {
        let what = if status.is_empty() { http_status.to_string() } else { format!("{http_status} {status}") };
        line(format!("{} ({what}): {error}", styled(BAD, "FAILED")));
        if !status.is_empty() {
            line(styled(DIM, format!("  {command} on {agent}")));
        }
        return;
    }
    let shown = match Status::of_answer(answer) {
        Some(ran @ (Status::Ok | Status::Running | Status::Accepted | Status::Delegated)) => styled(GOOD, ran.as_str()),
        Some(other) => styled(BAD, other.as_str().to_uppercase()),
        None => styled(BAD, status.to_uppercase()),
    };
    let elapsed = answer["elapsed_ms"].as_u64().map(|ms| format!(" in {}", seconds(ms))).unwrap_or_default();
    line(format!("{command} on {agent}: {shown}{elapsed}"));
    let ids = match (answer["job_id"].as_u64(), answer["wave_id"].as_str()) {
        (Some(job), Some(wave)) => format!("  job {job}, wave {wave}"),
        _ => String::new(),
    };
    if !ids.is_empty() {
        line(styled(DIM, ids));
    }
    selection(&answer["selection"]);
    if is_http_load(&answer["result"]) {
        // Its table says it all; the fields (`--output json` has them) would bury it. With `--report` the
        // swarm's table comes first once the agents have reported, this agent's among them.
        if swarm_table_follows {
            line(styled(DIM, "  http_load: the swarm's table follows when every agent has reported"));
        } else {
            http_load_table(&answer["result"], "this agent");
        }
    } else {
        key_values(&answer["result"]);
    }
    let forward = &answer["forward"];
    let sent = ["accepted", "duplicates", "failed"].map(|k| forward[k].as_u64().unwrap_or(0));
    if sent.iter().any(|n| *n > 0) {
        line(format!("  wave: {} peers took it, {} had it already, {} failed", sent[0], sent[1], sent[2]));
    }
}

/// A wave's `select`: what was asked, how many matched, which were chosen.
fn selection(selection: &Value) {
    let Some(chosen) = selection["chosen"].as_array() else { return };
    let names: Vec<&str> = chosen.iter().filter_map(Value::as_str).collect();
    let shown = if names.len() > 10 { format!("{}, ...", names[..10].join(", ")) } else { names.join(", ") };
    line(format!(
        "  selected {} of {} matching agents ({}): {shown}",
        names.len(),
        selection["matched"].as_u64().unwrap_or(0),
        selection["asked"].as_str().unwrap_or("?")
    ));
}

/// A wave report as a summary: what was measured, said as such.
pub fn wave_report(summary: &Value, expected: Option<u64>) {
    let n = |key: &str| summary[key].as_u64().unwrap_or(0);
    // A load's figures lead: what the swarm did, then how the wave went.
    let load = is_http_load(&summary["merged"]);
    if load {
        http_load_table(&summary["merged"], &format!("the swarm ({} agents)", n("agents_reached")));
        line("");
    }
    let reached = match expected.or(summary["expected_agents"].as_u64()) {
        Some(total) => format!("{} of {total} agents", n("agents_reached")),
        None => format!("{} agents", n("agents_reached")),
    };
    let failed = n("failed");
    let failed = if failed > 0 { styled(BAD, format!("{failed} failed")) } else { "0 failed".into() };
    line(format!(
        "wave {}: reached {reached}; {} executions, {} ok, {failed}",
        summary["wave_id"].as_str().unwrap_or("?"),
        n("executions"),
        n("succeeded")
    ));
    if let (Some(first), Some(last)) = (summary["first_arrival_ms"].as_u64(), summary["last_arrival_ms"].as_u64()) {
        line(format!("  the command reached its agents {first} to {last} ms after the wave started (their clocks)"));
    }
    if let Some(hops) = summary["per_hop"].as_object() {
        let hops: Vec<String> = hops.iter().map(|(hop, count)| format!("{hop}: {count}")).collect();
        line(format!("  executions per hop: {}", hops.join(", ")));
    }
    if let Some(missing) = summary["selected_not_reported"].as_array().filter(|m| !m.is_empty()) {
        let missing: Vec<&str> = missing.iter().filter_map(Value::as_str).collect();
        line(styled(BAD, format!("  selected but not reported: {}", missing.join(", "))));
    }
}

/// Agents shown in a swarm's `http_load` table unless `--agents` asks for all.
const AGENTS_SHOWN: usize = 10;

/// A row per agent of a swarm's `http_load` (a wave report's entries), the slowest p99 first: which agent
/// was slow. The first [`AGENTS_SHOWN`] unless `all`.
pub fn http_load_agents(entries: &[Value], all: bool) {
    let mut rows: Vec<(String, HttpLoadResult)> = entries
        .iter()
        .filter_map(|entry| {
            let result = HttpLoadResult::deserialize(&entry["result"]).ok().filter(|r| r.latency_ms.is_some())?;
            let name: String = entry["agent"].as_str().unwrap_or("?").chars().take(20).collect();
            Some((name, result))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let p99 = |r: &HttpLoadResult| r.latency_ms.as_ref().map_or(0.0, |l| l.p99);
    rows.sort_by(|a, b| p99(&b.1).total_cmp(&p99(&a.1)));
    let shown = if all { rows.len() } else { rows.len().min(AGENTS_SHOWN) };
    let more = if shown < rows.len() { "; --agents shows all" } else { "" };
    line(format!("\nhttp_load per agent ({shown} of {}, the slowest p99 first{more}):", rows.len()));
    load_header();
    for (name, result) in rows.iter().take(shown) {
        load_row(name, result);
    }
}

/// Whether `result` is an `http_load` result with latencies.
pub fn is_http_load(result: &Value) -> bool {
    HttpLoadResult::deserialize(result).is_ok_and(|r| r.latency_ms.is_some())
}

/// How to call this binary in a printed hint: `tarsier` when that is what PATH finds, else its full path
/// (after `cargo build`, `tarsier` is not on PATH until `cargo install --path .`).
pub fn self_command() -> String {
    let me = std::env::current_exe().ok().and_then(|p| p.canonicalize().ok());
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .any(|dir| dir.join("tarsier").canonicalize().ok().is_some_and(|found| Some(found) == me));
    match me {
        Some(path) if !on_path => path.display().to_string(),
        _ => "tarsier".into(),
    }
}

/// `tarsier abort`'s answer for a person: what this agent cancelled and released, and how far the abort went.
pub fn abort_summary(answer: &Value, local: bool) {
    let agent = answer["agent"].as_str().unwrap_or("the agent");
    let scope = if local { "this agent" } else { "the swarm" };
    line(format!("aborted {scope} from {agent} (wave {})", answer["wave_id"].as_str().unwrap_or("-")));
    let cancelled = answer["cancelled_jobs"].as_u64().unwrap_or(0);
    let held = &answer["released"];
    let count = |key: &str| held[key].as_u64().unwrap_or(0);
    let mut released = Vec::new();
    if count("ram_bytes") > 0 {
        released.push(format!("{} of RAM", human_bytes(count("ram_bytes"))));
    }
    if count("files") > 0 || count("disk_bytes") > 0 {
        released.push(format!("{} files ({} on disk)", count("files"), human_bytes(count("disk_bytes"))));
    }
    for (key, what) in [
        ("connections", "connections"),
        ("blocked_threads", "blocked threads"),
        ("busy_threads", "busy threads"),
        ("net_faults", "network faults"),
        ("proxies", "fault proxies"),
    ] {
        if count(key) > 0 {
            released.push(format!("{} {what}", count(key)));
        }
    }
    let released = if released.is_empty() { "nothing held".to_owned() } else { released.join(", ") };
    line(format!("  here: {cancelled} job(s) cancelled; released {released}"));
    if !local {
        let forward = &answer["forward"];
        let number = |key: &str| forward[key].as_u64().unwrap_or(0);
        line(format!(
            "  flooded to {} peer(s): {} took it, {} had it already, {} failed",
            answer["forwarded"].as_u64().unwrap_or(0),
            number("accepted"),
            number("duplicates"),
            number("failed")
        ));
    }
}

/// `256.0 MiB` for a person (binary units).
pub fn human_bytes(bytes: u64) -> String {
    tarsier_plugin::ByteSize(bytes).to_string()
}

/// `64MiB` for 67108864: the largest binary unit that divides it, as a body would write it.
fn whole_bytes(bytes: u64) -> String {
    for (unit, name) in [(1u64 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes >= unit && bytes % unit == 0 {
            return format!("{}{name}", bytes / unit);
        }
    }
    bytes.to_string()
}

/// `250 ms`, `7.25 s`, `3 min 20 s`, `2 h 05 min`: a time for a person.
pub fn seconds(ms: u64) -> String {
    if ms >= 3_600_000 {
        return format!("{} h {:02} min", ms / 3_600_000, ms % 3_600_000 / 60_000);
    }
    if ms >= 60_000 {
        return format!("{} min {:02} s", ms / 60_000, ms % 60_000 / 1_000);
    }
    if ms < 1_000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

/// A result's fields as `key  value` rows, nested objects with dotted keys; long arrays and histograms are
/// summed up instead of dumped (`--output json` has them whole).
fn key_values(result: &Value) {
    let mut rows = Vec::new();
    flatten("", result, &mut rows);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in rows {
        line(format!("  {key:<width$}  {value}"));
    }
}

/// A result in one line of at most `max` characters, its fields in human units (`asked 256.0 MiB, attempts
/// 1, ...`): for tables with a column per job.
pub fn fields_line(value: &Value, max: usize) -> String {
    let mut rows = Vec::new();
    flatten("", value, &mut rows);
    let text = rows
        .iter()
        .filter(|(key, _)| !key.ends_with("histogram"))
        .map(|(key, value)| format!("{key} {value}"))
        .collect::<Vec<_>>()
        .join(", ");
    let text = if rows.is_empty() { value.to_string() } else { text };
    if text.chars().count() <= max {
        text
    } else {
        format!("{}…", text.chars().take(max.saturating_sub(1)).collect::<String>())
    }
}

fn flatten(prefix: &str, value: &Value, rows: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&key, v, rows);
            }
        }
        Value::Null => {}
        Value::String(text) if prefix.ends_with("histogram") => {
            rows.push((prefix.to_owned(), format!("<HDR histogram, {} bytes of base64>", text.len())));
        }
        Value::String(text) => rows.push((prefix.to_owned(), text.clone())),
        Value::Number(n) => rows.push((prefix.to_owned(), human(prefix, n))),
        other => {
            let text = other.to_string();
            let text = if text.len() > 80 { format!("[{} items]", other.as_array().map_or(0, Vec::len)) } else { text };
            rows.push((prefix.to_owned(), text));
        }
    }
}

/// A number for a person, in the unit its name says: `268435456` under `asked_bytes` is `256.0 MiB`,
/// `7250` under `elapsed_ms` is `7.25 s`, `0.42` under `mean_ms` stays `0.42 ms`. `--output json` keeps the
/// numbers as the agent wrote them.
fn human(key: &str, n: &serde_json::Number) -> String {
    let name = key.rsplit('.').next().unwrap_or(key);
    let Some(x) = n.as_f64().filter(|x| x.is_finite() && *x >= 0.0) else { return number(n) };
    // gobble_ram's `asked` and `size` are bytes that their names do not say (kept as the reference had them).
    if name.ends_with("_bytes") || matches!(name, "bytes" | "asked" | "size") {
        return human_bytes(x as u64);
    }
    if name.ends_with("_ms") || name == "ms" {
        return if x >= 1000.0 || n.is_u64() { seconds(x as u64) } else { format!("{} ms", number(n)) };
    }
    let per_second = name.ends_with("per_s") || name.ends_with("_per_second");
    if !per_second && (name.ends_with("_s") || name.ends_with("_seconds") || name == "seconds") {
        return seconds((x * 1000.0) as u64);
    }
    number(n)
}

fn number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => format!("{f:.3}").trim_end_matches('0').trim_end_matches('.').to_owned(),
        _ => n.to_string(),
    }
}

/// A wrk-like table of an http_load result, if `result` is one.
pub fn http_load_table(result: &Value, whose: &str) {
    let Ok(result) = HttpLoadResult::deserialize(result) else { return };
    if result.latency_ms.is_none() {
        return;
    }
    line(format!("\nhttp_load, {whose}:"));
    load_header();
    for stage in result.stages.iter().flatten() {
        load_row(&format!("stage {} {:.0}->{:.0}", stage.info.stage, stage.info.from, stage.info.to), &stage.figures);
        late_row(&stage.figures);
    }
    load_row(if result.stages.is_some() { "all stages" } else { "" }, &result);
    late_row(&result);
}

/// Rate mode: the part of each latency spent before the request left (every connection busy, or the agent's
/// own wake-up late), under the latency columns it is part of. Nothing in closed mode.
fn late_row(result: &HttpLoadResult) {
    let Some(late) = result.late_ms else { return };
    line(format!(
        "  {:>20} {:>10} {:>10} {:>8} {:>6} {:>6} {:>10} |    late ms {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        "sent after due", "", "", "", "", "", "", late.min, late.p50, late.p90, late.p99, late.p999, late.max
    ));
}

fn load_header() {
    line(format!(
        "  {:>20} {:>10} {:>10} {:>8} {:>6} {:>6} {:>10} | latency ms {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "", "requests", "completed", "errors", "4xx", "5xx", "req/s", "min", "p50", "p90", "p99", "p99.9", "max"
    ));
}

/// One row of the `http_load` table.
fn load_row(label: &str, result: &HttpLoadResult) {
    let Some(latency) = result.latency_ms else {
        line(format!("  {label:>20} {:>10} {:>10}  (no answer)", result.requests_sent, result.completed));
        return;
    };
    let errors = &result.errors;
    line(format!(
        "  {label:>20} {:>10} {:>10} {:>8} {:>6} {:>6} {:>10.1} |            {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        result.requests_sent,
        result.completed,
        errors.connect + errors.timeout + errors.other,
        errors.status_4xx,
        errors.status_5xx,
        result.req_per_s,
        latency.min,
        latency.p50,
        latency.p90,
        latency.p99,
        latency.p999,
        latency.max,
    ));
}

/// The catalogue as a table: command (and aliases), its fields with their defaults, what it does. Wrapped to
/// the terminal's width; plain when piped.
pub fn catalogue(catalogue: &Value) {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_HORIZONTAL_ONLY);
    table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    table.set_header(["command", "fields (default)", "does"]);
    for entry in catalogue["commands"].as_array().into_iter().flatten() {
        let mut name = entry["command"].as_str().unwrap_or("?").to_owned();
        if let Some(aliases) = entry["aliases"].as_array().filter(|a| !a.is_empty()) {
            let aliases: Vec<&str> = aliases.iter().filter_map(Value::as_str).collect();
            // No colour inside the table: comfy-table would count the escape codes as width.
            name = format!("{name}\n  also {}", aliases.join("\n  also "));
        }
        let fields: Vec<String> = entry["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|field| {
                let name = field["name"].as_str().unwrap_or("?");
                match (&field["default"], field["type"].as_str()) {
                    (Value::Null, _) => name.to_owned(),
                    (Value::String(text), _) => format!("{name} ({text})"),
                    (Value::Number(n), Some("ByteSize")) => {
                        format!("{name} ({})", whole_bytes(n.as_u64().unwrap_or(0)))
                    }
                    (other, _) => format!("{name} ({other})"),
                }
            })
            .collect();
        table.add_row([name, fields.join("\n"), entry["description"].as_str().unwrap_or("").to_owned()]);
    }
    if table.width().is_none() {
        // Not a terminal: wrap to a width that reads well in a file or a CI log.
        table.set_width(120);
    }
    line(table);
}

/// A live line on stderr while the CLI waits (what runs, how long so far, a job's progress), for people:
/// hidden when stderr is no terminal (indicatif decides) and when the caller does not show it.
pub struct LiveLine(Option<indicatif::ProgressBar>);

impl LiveLine {
    /// A spinner saying `what` and the time so far; nothing unless `shown`.
    pub fn start(shown: bool, what: String) -> Self {
        if !shown {
            return Self(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar.set_message(what);
        bar.enable_steady_tick(Duration::from_millis(100));
        Self(Some(bar))
    }

    /// A line that shows nothing (for callers without a terminal user).
    pub fn hidden() -> Self {
        Self(None)
    }

    pub fn set_message(&self, message: String) {
        if let Some(bar) = &self.0 {
            bar.set_message(message);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }

    /// Polls the agent's running jobs for the one this request started and shows its progress on the line
    /// (requests, req/s, errors for an `http_load`), until aborted. Nothing when there is no line.
    pub fn watch(
        &self,
        client: reqwest::Client,
        jobs: String,
        request_id: String,
        command: String,
    ) -> Option<tokio::task::JoinHandle<()>> {
        // No terminal to draw on (CI, a pipe): no polling either.
        let bar = self.0.clone().filter(|bar| !bar.is_hidden())?;
        Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let Ok(response) = client.get(&jobs).send().await else { continue };
                let Ok(listed) = response.json::<Value>().await else { continue };
                let mine = listed["running"].as_array().and_then(|jobs| {
                    jobs.iter().find(|job| job["request_id"].as_str() == Some(request_id.as_str())).cloned()
                });
                if let Some(job) = &mine {
                    // The job's line has its own time (`7.00 s / 30.00 s, 23.00 s left`): the spinner's goes.
                    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}") {
                        bar.set_style(style);
                    }
                    bar.set_message(format!("{command}: {}", job_line(job)));
                }
            }
        }))
    }
    /// A bar filling up over `duration` (a scenario's `wait:`).
    pub fn bar(duration: Duration) -> Self {
        let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template("  wait [{bar:30}] {elapsed} / {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(humantime::format_duration(duration).to_string());
        Self(Some(bar))
    }

    pub fn set_position(&self, done: Duration) {
        if let Some(bar) = &self.0 {
            bar.set_position(done.as_millis() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_flatten_into_rows() {
        let mut rows = Vec::new();
        let result = serde_json::json!({"a": 1, "b": {"c": 0.5, "histogram": "QUJD"}, "ids": [1, 2], "none": null});
        flatten("", &result, &mut rows);
        let rows: Vec<(&str, &str)> = rows.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            rows,
            vec![("a", "1"), ("b.c", "0.5"), ("b.histogram", "<HDR histogram, 4 bytes of base64>"), ("ids", "[1,2]")]
        );
        assert_eq!(
            (whole_bytes(64 << 20), whole_bytes(1536), whole_bytes(1000)),
            ("64MiB".into(), "1536".into(), "1000".into())
        );
    }

    #[test]
    fn numbers_are_shown_in_the_unit_their_name_says() {
        let mut rows = Vec::new();
        let result = serde_json::json!({
            "asked_bytes": 268435456u64, "elapsed_ms": 7250, "mean_ms": 0.42, "uptime_seconds": 75.5,
            "req_per_s": 812.4, "count": 3, "stage": {"duration_s": 30.0},
        });
        flatten("", &result, &mut rows);
        let shown: std::collections::BTreeMap<&str, &str> =
            rows.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(shown["asked_bytes"], "256.0 MiB");
        assert_eq!(shown["elapsed_ms"], "7.25 s");
        assert_eq!(shown["mean_ms"], "0.42 ms");
        assert_eq!(shown["uptime_seconds"], "1 min 15 s");
        assert_eq!(shown["req_per_s"], "812.4");
        assert_eq!(shown["count"], "3");
        assert_eq!(shown["stage.duration_s"], "30.00 s");
    }

    #[test]
    fn the_live_line_says_how_far_of_how_long_and_the_rate_asked() {
        let progress = serde_json::json!({
            "elapsed_s": 7.0, "sent": 10, "completed": 9, "errors": 0, "req_per_s": 812.4,
            "asked": {"duration_s": 30.0, "rate": 1000},
        });
        let line = progress_line(&progress);
        assert!(line.starts_with("7.00 s / 30.00 s, 23.00 s left"), "{line}");
        assert!(line.contains("812.4 of 1000 req/s asked"), "{line}");
    }
}
