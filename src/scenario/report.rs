//! The end of a run: the summary table on the terminal, and for CI JUnit XML (quick-junit), a JSON summary
//! and a CSV of the recorded figures.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

use crate::guard::{GuardSummary, Trip};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    /// An expectation did not hold.
    Failed,
    /// The step could not ask: the setup is broken (see `runner::StepError::Broken`).
    Broken,
    Skipped,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Passed => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Broken => "BROKEN",
            Outcome::Skipped => "skipped",
        }
    }

    /// The word padded to `width`, then coloured (green ok, red FAILED): the escape codes go around the
    /// padding so columns stay aligned. anstream drops them when the output is no terminal or NO_COLOR is set.
    pub fn styled(self, width: usize) -> String {
        let padded = format!("{:<width$}", self.word());
        match self {
            Outcome::Passed => crate::client::output::styled(crate::client::output::GOOD, padded),
            Outcome::Failed | Outcome::Broken => crate::client::output::styled(crate::client::output::BAD, padded),
            Outcome::Skipped => crate::client::output::styled(crate::client::output::DIM, padded),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepResult {
    pub title: String,
    /// Nesting in parallel or repeated groups, for the table's indentation.
    pub depth: usize,
    /// A parallel or repeated group: a row of the table, not a test case of its own (unless it `compares`).
    pub group: bool,
    pub outcome: Outcome,
    pub seconds: f64,
    pub detail: String,
    /// Within a sweep's round, that round's parameters (`concurrency=8`), or a repeat's `round 2 of 3`: what
    /// tells the same step of two rounds apart in a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<String>,
    /// A sweep with `compare:`: a test case of its own, failed when a comparison does not hold.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compares: bool,
}

/// How a sweep's row says a step of one of its rounds failed (its comparisons were then not checked).
pub const A_ROUND_FAILED: &str = "a step failed";

impl StepResult {
    /// A step of the run's own (a steady state's check), not of the file's steps.
    pub fn leaf(title: &str, outcome: Outcome, took: Duration, detail: String) -> Self {
        Self {
            title: title.to_owned(),
            depth: 0,
            group: false,
            outcome,
            seconds: took.as_secs_f64(),
            detail,
            round: None,
            compares: false,
        }
    }
}

/// A number an exec step recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    pub step: String,
    /// The dotted path of the answer it came from.
    pub figure: String,
    pub value: f64,
}

pub use super::sweep_table::{SweepRow, SweepTable};

pub use crate::guard::short_number;

/// A run as `scenario run --console` posts it while it goes (`tarsier console` shows it step by step).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LiveRun {
    pub report: RunReport,
    /// The steps (indices into `report.steps`) that have started and not ended.
    #[serde(default)]
    pub running: Vec<usize>,
    pub finished: bool,
}

/// One scenario file's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub file: String,
    pub name: String,
    /// The agent the run was aimed at (its public URL).
    #[serde(default)]
    pub target: String,
    /// The scenario's parameters given on the command line (`--param image=...`), `name=value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
    #[serde(serialize_with = "rfc3339", deserialize_with = "from_rfc3339")]
    pub started_at: SystemTime,
    pub seconds: f64,
    /// A step found the setup broken (an `Outcome::Broken` step): the run exits 2, not 1.
    pub broken: bool,
    pub steps: Vec<StepResult>,
    pub figures: Vec<Figure>,
    pub sweeps: Vec<SweepTable>,
    /// What each guard saw while the steps ran.
    pub guards: Vec<GuardSummary>,
    /// The guard that stopped the run, if one did.
    pub guard_trip: Option<Trip>,
    /// Why the run did not start (its steady state did not hold before it): it exits 2.
    pub not_started: Option<String>,
    /// `--remote-write`: how the pushes went.
    pub remote_write: Option<crate::remote_write::PushReport>,
}

fn rfc3339<S: serde::Serializer>(at: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*at))
}

fn from_rfc3339<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
}

impl RunReport {
    pub fn failures(&self) -> usize {
        self.steps.iter().filter(|s| matches!(s.outcome, Outcome::Failed | Outcome::Broken)).count()
    }

    pub fn table(&self) -> String {
        let title_width =
            self.steps.iter().map(|s| s.title.chars().count() + 2 * s.depth).max().unwrap_or(4).clamp(4, 60);
        let mut out = String::new();
        let _ = writeln!(out, "\n{} ({})", self.name, self.file);
        if !self.params.is_empty() {
            let _ = writeln!(out, "  --param {}", self.params.join(" --param "));
        }
        let _ = writeln!(out, "  {:<title_width$}  {:<7}  {:>8}  detail", "step", "result", "time");
        let _ =
            writeln!(out, "  {}  {}  {}  {}", "-".repeat(title_width), "-".repeat(7), "-".repeat(8), "-".repeat(30));
        for step in &self.steps {
            let title = format!("{}{}", "  ".repeat(step.depth), step.title);
            let title: String = title.chars().take(title_width).collect();
            let _ = writeln!(
                out,
                "  {title:<title_width$}  {}  {:>7.2}s  {}",
                step.outcome.styled(7),
                step.seconds,
                step.detail
            );
        }
        let passed = self.steps.iter().filter(|s| s.outcome == Outcome::Passed).count();
        let skipped = self.steps.iter().filter(|s| s.outcome == Outcome::Skipped).count();
        let _ = writeln!(
            out,
            "  {} steps: {passed} ok, {} failed, {skipped} skipped in {:.1}s",
            self.steps.len(),
            self.failures(),
            self.seconds
        );
        for guard in &self.guards {
            let outcome = if guard.tripped { Outcome::Failed } else { Outcome::Passed };
            let last = guard.last_reading.as_deref().unwrap_or("never read");
            let _ = writeln!(
                out,
                "  guard {:?} ({}): {}  {} readings, {} broken; last: {last}",
                guard.name,
                guard.threshold,
                outcome.styled(7).trim_end(),
                guard.readings,
                guard.broken_readings
            );
        }
        if let Some(trip) = &self.guard_trip {
            let _ = writeln!(out, "  {}", crate::client::output::styled(crate::client::output::BAD, trip.message()));
        }
        out
    }
}

/// JUnit XML: a testsuite per scenario, a testcase per step.
/// JUnit XML, one suite per scenario file and one case per step that is not a group, in the shape CI tools
/// read (counts of failures, errors and skipped; timestamp; hostname; the failure's text). Every step has a
/// case whether it ran or not, so a file reports the same cases when it passes and when it stops early. A
/// failure is a `failure` (an expectation did not hold), or an `error` for the step that found the setup
/// broken (that step only: the steps after it that failed on their own stay failures).
pub fn junit(reports: &[RunReport]) -> Result<String, quick_junit::SerializeError> {
    let mut junit = Report::new("tarsier");
    let host = crate::sys::hostname();
    for run in reports {
        let mut suite = TestSuite::new(run.name.as_str());
        suite.set_timestamp(chrono::DateTime::<chrono::Utc>::from(run.started_at));
        suite.set_time(Duration::from_secs_f64(run.seconds));
        suite.extra.insert("hostname".into(), host.as_str().into());
        suite.add_property(Property::new("file", run.file.as_str()));
        let mut names = std::collections::HashMap::<String, usize>::new();
        for step in run.steps.iter().filter(|s| !s.group || s.compares) {
            let status = match step.outcome {
                Outcome::Passed => TestCaseStatus::success(),
                Outcome::Failed if step.compares && step.detail == A_ROUND_FAILED => {
                    let mut status = TestCaseStatus::skipped();
                    status.set_message("comparisons not checked: a step of a round failed");
                    status
                }
                Outcome::Failed if step.compares => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status.set_message(step.detail.as_str()).set_type("compare");
                    status
                }
                Outcome::Failed | Outcome::Broken => {
                    let (kind, ty) = if step.outcome == Outcome::Broken {
                        (NonSuccessKind::Error, "broken setup")
                    } else {
                        (NonSuccessKind::Failure, "expectation")
                    };
                    let mut status = TestCaseStatus::non_success(kind);
                    status.set_message(step.detail.lines().next().unwrap_or("failed")).set_type(ty);
                    status.set_description(step.detail.as_str());
                    status
                }
                Outcome::Skipped => {
                    let mut status = TestCaseStatus::skipped();
                    status.set_message("not run: an earlier step failed, or the run was interrupted");
                    status
                }
            };
            // Named by the step and its round, not by a position: a name stays the same when steps are added.
            let mut name = match &step.round {
                Some(round) => format!("{} [{round}]", step.title),
                None => step.title.clone(),
            };
            let seen = names.entry(name.clone()).or_insert(0);
            *seen += 1;
            if *seen > 1 {
                name = format!("{name} ({seen})");
            }
            let mut case = TestCase::new(name, status);
            case.set_classname(run.file.as_str()).set_time(Duration::from_secs_f64(step.seconds));
            if step.outcome == Outcome::Passed && !step.detail.is_empty() {
                case.set_system_out(step.detail.as_str());
            }
            suite.add_test_case(case);
        }
        // A case per guard: a CI report names the guard that stopped the run, not only the step it stopped.
        for guard in &run.guards {
            let status = match (&run.guard_trip, guard.tripped) {
                (Some(trip), true) => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status.set_message(trip.message()).set_type("guard");
                    status
                }
                _ => TestCaseStatus::success(),
            };
            let mut case = TestCase::new(format!("guard {}", guard.name), status);
            case.set_classname(run.file.as_str());
            case.set_system_out(format!(
                "{} readings, {} broken; last: {}",
                guard.readings,
                guard.broken_readings,
                guard.last_reading.as_deref().unwrap_or("-")
            ));
            suite.add_test_case(case);
        }
        junit.add_test_suite(suite);
    }
    junit.to_string()
}

/// The whole run as JSON, like k6's summary export: every scenario, step and recorded figure.
pub fn summary_json(reports: &[RunReport]) -> serde_json::Result<String> {
    serde_json::to_string_pretty(&serde_json::json!({ "scenarios": reports }))
}

/// The recorded figures as CSV: scenario, step, figure, value; one row each.
pub fn figures_csv(reports: &[RunReport]) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(["scenario", "file", "step", "figure", "value"])?;
    for run in reports {
        for figure in &run.figures {
            let value = figure.value.to_string();
            out.write_record([&run.name, &run.file, &figure.step, &figure.figure, &value])?;
        }
    }
    out.into_inner().map_err(|err| csv::Error::from(err.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(title: &str, group: bool, outcome: Outcome, detail: &str) -> StepResult {
        StepResult {
            title: title.into(),
            depth: 0,
            group,
            outcome,
            seconds: 0.5,
            detail: detail.into(),
            round: None,
            compares: false,
        }
    }

    /// A run of `s.yaml` named `name`, with these steps and nothing else.
    fn run_report(name: &str, steps: Vec<StepResult>) -> RunReport {
        RunReport {
            file: "s.yaml".into(),
            broken: false,
            name: name.into(),
            target: "http://127.0.0.1:8080".into(),
            params: Vec::new(),
            started_at: SystemTime::UNIX_EPOCH,
            steps,
            seconds: 1.5,
            figures: Vec::new(),
            sweeps: Vec::new(),
            guards: Vec::new(),
            guard_trip: None,
            not_started: None,
            remote_write: None,
        }
    }

    #[test]
    fn junit_names_a_round_s_steps_by_its_parameters_and_fails_a_comparison_that_does_not_hold() {
        let mut first = step("load", false, Outcome::Passed, "");
        first.round = Some("concurrency=8".into());
        let mut second = step("load", false, Outcome::Passed, "");
        second.round = Some("concurrency=16".into());
        let mut sweep = step("knee", true, Outcome::Failed, "req_per_s grows by 2% from concurrency=8, want > 10%");
        sweep.compares = true;
        let same = || step("same", false, Outcome::Passed, "");
        let report = run_report("s", vec![sweep, first, second, same(), same()]);
        let xml = junit(std::slice::from_ref(&report)).unwrap();
        assert!(
            xml.contains("name=\"load [concurrency=8]\"") && xml.contains("name=\"load [concurrency=16]\""),
            "{xml}"
        );
        assert!(xml.contains("name=\"same\"") && xml.contains("name=\"same (2)\""), "{xml}");
        assert!(
            xml.contains("tests=\"5\"") && xml.contains("failures=\"1\"") && xml.contains("type=\"compare\""),
            "{xml}"
        );
    }

    #[test]
    fn junit_escapes_counts_leaves_and_keeps_the_failure_text() {
        let mut report = run_report(
            "a <b> & \"c\"",
            vec![
                step("one", false, Outcome::Passed, "x"),
                step("group", true, Outcome::Failed, "a step failed"),
                step("two", false, Outcome::Failed, "p99 = 9 > 5"),
                step("three", false, Outcome::Skipped, ""),
            ],
        );
        report.figures = vec![Figure { step: "one, with a comma".into(), figure: "result.x".into(), value: 2.5 }];
        let xml = junit(std::slice::from_ref(&report)).unwrap();
        assert!(
            xml.contains("tests=\"3\"") && xml.contains("failures=\"1\"") && xml.contains("skipped=\"1\""),
            "{xml}"
        );
        assert!(xml.contains("errors=\"0\"") && xml.contains("hostname=") && xml.contains("timestamp=\"1970"), "{xml}");
        assert!(xml.contains("a &lt;b&gt; &amp; &quot;c&quot;"), "{xml}");
        assert!(xml.contains("message=\"p99 = 9 &gt; 5\"") && xml.contains(">p99 = 9 &gt; 5</failure>"), "{xml}");
        assert!(!xml.contains("group"), "a group is no test case: {xml}");
        assert!(xml.contains("name=\"one\"") && !xml.contains("name=\"01 "), "named without a position: {xml}");
        let csv = String::from_utf8(figures_csv(std::slice::from_ref(&report)).unwrap()).unwrap();
        assert!(csv.contains("\"one, with a comma\",result.x,2.5"), "{csv}");
        let json: serde_json::Value = serde_json::from_str(&summary_json(&[report]).unwrap()).unwrap();
        assert_eq!(json["scenarios"][0]["steps"][2]["outcome"], "failed");
    }
}
