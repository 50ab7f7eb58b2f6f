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

/// A sweep's results: one row per round, the parameters' values and the figures its steps recorded. Read
/// back from its JSON by `tarsier scenario chart`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SweepTable {
    /// The sweep step's title.
    pub name: String,
    pub params: Vec<String>,
    pub rows: Vec<SweepRow>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SweepRow {
    pub values: Vec<serde_json::Value>,
    /// Figure (dotted path) -> value; the last one recorded in the round when a path was recorded twice.
    pub figures: std::collections::BTreeMap<String, f64>,
}

impl SweepTable {
    /// The figures recorded in any round, in name order: the table's columns after the parameters.
    pub fn figure_names(&self) -> Vec<String> {
        let names: std::collections::BTreeSet<&String> = self.rows.iter().flat_map(|r| r.figures.keys()).collect();
        names.into_iter().cloned().collect()
    }

    /// The figures as headers and captions show them: without the `result.` most start with, unless another
    /// figure has that shorter name (the CSV and JSON keep whole paths).
    fn shown_names(&self) -> Vec<String> {
        let figures = self.figure_names();
        figures
            .iter()
            .map(|f| match f.strip_prefix("result.") {
                Some(short) if !figures.iter().any(|other| other == short) => short.to_owned(),
                _ => f.clone(),
            })
            .collect()
    }

    /// The table for a person: parameters then figures, one row per round (comfy-table, fitted to the
    /// terminal, 120 columns when piped).
    pub fn render(&self) -> String {
        let figures = self.figure_names();
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::UTF8_HORIZONTAL_ONLY);
        table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        table.set_header(self.params.iter().cloned().chain(self.shown_names()).collect::<Vec<_>>());
        for row in &self.rows {
            let values = row.values.iter().map(super::sweep::plain);
            let figures = figures.iter().map(|f| row.figures.get(f).map_or("-".to_owned(), |x| short_number(*x)));
            table.add_row(values.chain(figures).collect::<Vec<_>>());
        }
        if table.width().is_none() {
            table.set_width(120);
        }
        format!("sweep: {}\n{table}\n", self.name)
    }

    /// The table as CSV: the parameters, then the figures.
    pub fn csv(&self) -> Result<Vec<u8>, csv::Error> {
        let figures = self.figure_names();
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(self.params.iter().chain(&figures))?;
        for row in &self.rows {
            let values = row.values.iter().map(super::sweep::plain);
            let figures = figures.iter().map(|f| row.figures.get(f).map_or(String::new(), |x| x.to_string()));
            out.write_record(values.chain(figures).collect::<Vec<_>>())?;
        }
        out.into_inner().map_err(|err| csv::Error::from(err.into_error()))
    }
}

impl SweepTable {
    /// An SVG chart with one panel per figure (each on its own scale: req/s and milliseconds do not share an
    /// axis), the figure against the first parameter: one line per combination of the other parameters. A
    /// first parameter that is not a number is drawn as categories, in the order of the rounds. Plotters.
    pub fn chart_svg(&self) -> Result<String, String> {
        use plotters::prelude::*;
        let first_is_number = self.rows.iter().all(|r| r.values.first().is_some_and(|v| v.is_number()));
        let mut categories: Vec<String> = Vec::new();
        let xs: Vec<f64> = self
            .rows
            .iter()
            .map(|row| {
                let value = row.values.first().map(super::sweep::plain).unwrap_or_default();
                if first_is_number {
                    return row.values.first().and_then(|v| v.as_f64()).unwrap_or_default();
                }
                let at = categories.iter().position(|c| *c == value).unwrap_or_else(|| {
                    categories.push(value);
                    categories.len() - 1
                });
                at as f64
            })
            .collect();
        let x_name = self.params.first().cloned().unwrap_or_else(|| "round".into());
        let figures = self.figure_names();
        // Per figure: one line per combination of the parameters after the first.
        let mut panels: Vec<std::collections::BTreeMap<String, Vec<(f64, f64)>>> =
            vec![Default::default(); figures.len()];
        for (row, x) in self.rows.iter().zip(&xs) {
            let rest: Vec<String> = self
                .params
                .iter()
                .zip(&row.values)
                .skip(1)
                .map(|(p, v)| format!("{p}={}", super::sweep::plain(v)))
                .collect();
            for (panel, figure) in panels.iter_mut().zip(&figures) {
                if let Some(y) = row.figures.get(figure) {
                    panel.entry(rest.join(", ")).or_default().push((*x, *y));
                }
            }
        }
        let columns = figures.len().clamp(1, 3);
        let rows = figures.len().div_ceil(columns).max(1);
        let (width, height) = (440 * columns as u32, 40 + 280 * rows as u32);
        let (x_min, x_max) = if first_is_number {
            let max = xs.iter().copied().fold(1.0f64, f64::max);
            (xs.iter().copied().fold(max, f64::min).min(0.0), max * 1.05)
        } else {
            (-0.5, categories.len() as f64 - 0.5)
        };
        let label_of = |x: &f64| {
            if first_is_number {
                short_number(*x)
            } else {
                let at = x.round();
                if (x - at).abs() < 0.01 && at >= 0.0 {
                    categories.get(at as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            }
        };
        let mut svg = String::new();
        {
            let error = |e: &dyn std::fmt::Display| e.to_string();
            let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| error(&e))?;
            let root = root.titled(&self.name, ("sans-serif", 20)).map_err(|e| error(&e))?;
            let captions = self.shown_names();
            for (area, (caption, lines)) in root.split_evenly((rows, columns)).iter().zip(captions.iter().zip(&panels))
            {
                let y_max = lines.values().flatten().map(|p| p.1).fold(0.0f64, f64::max);
                let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
                let mut chart = ChartBuilder::on(area)
                    .caption(caption, ("sans-serif", 15))
                    .margin(12)
                    .x_label_area_size(32)
                    .y_label_area_size(56)
                    .build_cartesian_2d(x_min..x_max, 0f64..y_max)
                    .map_err(|e| error(&e))?;
                let x_labels = if first_is_number { 8 } else { categories.len().max(1) * 2 + 1 };
                chart
                    .configure_mesh()
                    .x_desc(&x_name)
                    .x_labels(x_labels)
                    .x_label_formatter(&label_of)
                    .draw()
                    .map_err(|e| error(&e))?;
                for (i, (label, points)) in lines.iter().enumerate() {
                    let mut points = points.clone();
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let colour = Palette99::pick(i).to_rgba();
                    let series = chart
                        .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                        .map_err(|e| error(&e))?;
                    if !label.is_empty() {
                        series.label(label).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
                    }
                    chart
                        .draw_series(points.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                        .map_err(|e| error(&e))?;
                }
                if lines.len() > 1 {
                    chart
                        .configure_series_labels()
                        .background_style(WHITE.mix(0.8))
                        .border_style(BLACK)
                        .draw()
                        .map_err(|e| error(&e))?;
                }
            }
            root.present().map_err(|e| error(&e))?;
        }
        Ok(svg)
    }

    /// A file name for this sweep's outputs: its title in lowercase letters, digits and dashes.
    pub fn slug(&self) -> String {
        let slug: String =
            self.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
        let slug = slug.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-");
        if slug.is_empty() {
            "sweep".into()
        } else {
            slug.chars().take(60).collect()
        }
    }
}

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

    #[test]
    fn charts_give_each_figure_a_panel_and_name_categories() {
        let row = |how: &str, n: f64, p99: f64, lost: f64| SweepRow {
            values: vec![how.into(), n.into()],
            figures: [("result.latency_ms.p99".to_owned(), p99), ("lost".to_owned(), lost)].into(),
        };
        let table = SweepTable {
            name: "kills".into(),
            params: vec!["how".into(), "n".into()],
            rows: vec![
                row("docker-kill", 1.0, 1800.0, 0.0),
                row("segfault", 1.0, 75.0, 2.0),
                row("segfault", 2.0, 70.0, 1.0),
            ],
        };
        let svg = table.chart_svg().unwrap();
        if let Some(dir) = std::env::var_os("TARSIER_CHART_DIR") {
            std::fs::write(std::path::Path::new(&dir).join("categories.svg"), &svg).unwrap();
        }
        // One panel per figure, captioned without `result.`; the categories label the x axis.
        assert!(svg.contains(">\nlatency_ms.p99\n<") && svg.contains(">\nlost\n<"), "{svg}");
        assert!(svg.contains("docker-kill") && svg.contains("segfault"));
        assert!(svg.contains("n=1") && svg.contains("n=2"), "a line per value of the other parameter");
    }

    /// A run of `s.yaml` named `name`, with these steps and nothing else.
    fn run_report(name: &str, steps: Vec<StepResult>) -> RunReport {
        RunReport {
            file: "s.yaml".into(),
            broken: false,
            name: name.into(),
            target: "http://127.0.0.1:8080".into(),
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
