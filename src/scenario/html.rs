//! A scenario run as HTML: one self-contained page (`scenario run --html FILE`: styles inline, charts as
//! inline SVG drawn by plotters, no script, nothing fetched), readable offline and printable; and the same
//! run as a fragment the console shows while it runs. Every text that came from a file or an agent is
//! escaped here; plotters escapes the texts of its SVG.

use std::fmt::Write as _;

use super::report::{Outcome, RunReport, StepResult};

/// The environment a run's report names.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Environment {
    pub tarsier: String,
    pub host: String,
    pub kernel: String,
    pub command: String,
}

impl Environment {
    /// This process's: its version, the machine's name and kernel, the command line it was started with.
    pub fn here() -> Self {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|release| format!("Linux {}", release.trim()))
            .unwrap_or_default();
        Self {
            tarsier: env!("CARGO_PKG_VERSION").to_owned(),
            host: crate::sys::hostname(),
            kernel,
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }
    }
}

/// `&`, `<`, `>`, `"` and `'` as entities: for text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The styles of the report and of the console's run view: light, printable, readable on a phone.
pub const STYLE: &str = r#"
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d232b;
       margin: 0 auto; max-width: 1200px; padding: 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px; }
h3 { font-size: 16px; margin: 20px 0 6px; }
.meta { color: #5a6572; margin: 0 0 12px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; font-weight: 600; color: #fff; }
.passed, .ok { background: #1f7a3f; } .failed { background: #b42318; } .broken { background: #b45309; }
.skipped { background: #8a939d; } .running { background: #1d5fb4; } .not-started { background: #b45309; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 12px; min-width: 50%; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #dde2e8; vertical-align: top; }
th { background: #f2f4f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.detail { color: #3b4550; max-width: 560px; word-break: break-word; }
tr.group td { font-weight: 600; }
.depth-1 { padding-left: 1.8em; } .depth-2 { padding-left: 3em; } .depth-3 { padding-left: 4.2em; }
.depth-4 { padding-left: 5.4em; } .depth-5 { padding-left: 6.6em; } .depth-6 { padding-left: 7.8em; }
.badge { display: inline-block; min-width: 58px; text-align: center; padding: 0 6px; border-radius: 3px;
         color: #fff; font-size: 13px; }
.alert { border-left: 4px solid #b42318; background: #fdf0ef; padding: 8px 12px; margin: 10px 0; }
.chart svg { max-width: 100%; height: auto; border: 1px solid #dde2e8; }
dl.env { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }
dl.env dt { color: #5a6572; } dl.env dd { margin: 0; word-break: break-all; }
footer { color: #5a6572; margin-top: 32px; font-size: 13px; }
@media print { body { max-width: none; padding: 0; } .chart, table, tr { break-inside: avoid; }
               .verdict, .badge { print-color-adjust: exact; -webkit-print-color-adjust: exact; } }
"#;

/// A whole report: every scenario of the run, self-contained.
pub fn page(reports: &[RunReport], environment: &Environment) -> String {
    let mut out = String::new();
    let title = match reports {
        [one] => format!("{}: tarsier scenario report", one.name),
        _ => format!("{} scenarios: tarsier scenario report", reports.len()),
    };
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    for report in reports {
        out.push_str(&run(report, &[]));
    }
    let _ = writeln!(
        out,
        "<h2>Environment</h2><dl class=\"env\"><dt>tarsier</dt><dd>{}</dd><dt>host</dt><dd>{}</dd>\
         <dt>kernel</dt><dd>{}</dd><dt>command</dt><dd><code>{}</code></dd></dl>\
         <footer>Written by tarsier {} at {}.</footer></body></html>",
        escape(&environment.tarsier),
        escape(&environment.host),
        escape(&environment.kernel),
        escape(&environment.command),
        escape(&environment.tarsier),
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
    );
    out
}

/// The word and class of a run as a whole.
fn verdict(report: &RunReport, running: bool) -> (&'static str, &'static str) {
    if running {
        ("running", "running")
    } else if report.not_started.is_some() {
        ("not started", "not-started")
    } else if report.broken {
        ("broken setup", "broken")
    } else if report.failures() > 0 {
        ("failed", "failed")
    } else {
        ("passed", "passed")
    }
}

fn outcome_class(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "ok",
        Outcome::Failed => "failed",
        Outcome::Broken => "broken",
        Outcome::Skipped => "skipped",
    }
}

/// One scenario's run: its verdict, steps, guards, sweeps and figures. `running` are the steps that have
/// started and not ended (a live run in the console); a finished run has none.
pub fn run(report: &RunReport, running: &[usize]) -> String {
    let mut out = String::new();
    let live = !running.is_empty();
    let (word, class) = verdict(report, live);
    let passed = report.steps.iter().filter(|s| s.outcome == Outcome::Passed).count();
    let skipped = report.steps.iter().filter(|s| s.outcome == Outcome::Skipped).count();
    let _ = write!(
        out,
        "<section class=\"run\"><h1>{} <span class=\"verdict {class}\">{word}</span></h1>\
         <p class=\"meta\">{} · target {} · started {} · {} · {} steps: {passed} ok, {} failed, {} skipped</p>",
        escape(&report.name),
        escape(&report.file),
        escape(&report.target),
        humantime::format_rfc3339_seconds(report.started_at),
        crate::client::output::seconds((report.seconds * 1000.0) as u64),
        report.steps.len(),
        report.failures(),
        skipped.saturating_sub(running.len()),
    );
    if !report.params.is_empty() {
        let _ = write!(out, "<p class=\"meta\">parameters: {}</p>", escape(&report.params.join(", ")));
    }
    if let Some(why) = &report.not_started {
        let _ = write!(out, "<p class=\"alert\">Not started: {}</p>", escape(why));
    }
    if let Some(trip) = &report.guard_trip {
        let _ = write!(out, "<p class=\"alert\">{}: the swarm was aborted.</p>", escape(&trip.message()));
    }
    out.push_str(
        "<h2>Steps</h2><div class=\"scroll\"><table><thead><tr><th>step</th><th>round</th><th>result</th>\
                  <th>time</th><th>detail</th></tr></thead><tbody>",
    );
    for (i, step) in report.steps.iter().enumerate() {
        out.push_str(&step_row(step, running.contains(&i)));
    }
    out.push_str("</tbody></table></div>");
    if !report.guards.is_empty() {
        out.push_str("<h2>Guards</h2><div class=\"scroll\"><table><thead><tr><th>guard</th><th>must hold</th>\
                      <th>every</th><th>readings</th><th>broken</th><th>last reading</th><th>result</th></tr></thead><tbody>");
        for guard in &report.guards {
            let (word, class) = if guard.tripped { ("tripped", "failed") } else { ("held", "ok") };
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{} s</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"detail\">{}</td><td><span class=\"badge {class}\">{word}</span></td></tr>",
                escape(&guard.name),
                escape(&guard.threshold),
                guard.interval_s,
                guard.readings,
                guard.broken_readings,
                escape(guard.last_reading.as_deref().unwrap_or("never read")),
            );
        }
        out.push_str("</tbody></table></div>");
    }
    for sweep in &report.sweeps {
        let _ = write!(out, "<h2>Sweep: {}</h2><div class=\"scroll\"><table><thead><tr>", escape(&sweep.name));
        let figures = sweep.figure_names();
        for name in sweep.params.iter().chain(&sweep.shown_names()) {
            let _ = write!(out, "<th>{}</th>", escape(name));
        }
        out.push_str("</tr></thead><tbody>");
        for point in sweep.points() {
            out.push_str("<tr>");
            for value in &point.values {
                let _ = write!(out, "<td>{}</td>", escape(&super::sweep::plain(value)));
            }
            for figure in &figures {
                let spread = point.figures.get(figure).and_then(|runs| super::sweep_table::Spread::of(runs));
                let shown = spread.map_or("-".to_owned(), |s| s.shown());
                let _ = write!(out, "<td class=\"num\">{}</td>", escape(&shown));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
        match sweep.chart_svg() {
            // Plotters' SVG, drawn here: its texts are escaped by plotters, and the XML prolog is dropped.
            Ok(svg) => {
                let body = svg.find("<svg").map_or(svg.as_str(), |at| &svg[at..]);
                let _ = write!(out, "<div class=\"chart\">{body}</div>");
            }
            Err(why) => {
                let _ = write!(out, "<p class=\"alert\">The chart could not be drawn: {}</p>", escape(&why));
            }
        }
    }
    if !report.figures.is_empty() {
        out.push_str(
            "<h2>Figures</h2><div class=\"scroll\"><table><thead><tr><th>step</th><th>figure</th>\
                      <th>value</th></tr></thead><tbody>",
        );
        for figure in &report.figures {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                escape(&figure.step),
                escape(&figure.figure),
                escape(&crate::guard::short_number(figure.value)),
            );
        }
        out.push_str("</tbody></table></div>");
    }
    if let Some(push) = &report.remote_write {
        let _ = write!(
            out,
            "<p class=\"meta\">Remote write to {}: {} series pushed, {} failed.</p>",
            escape(&push.url),
            push.pushed,
            push.failed
        );
    }
    out.push_str("</section>");
    out
}

fn step_row(step: &StepResult, running: bool) -> String {
    let (word, class) =
        if running { ("running", "running") } else { (step.outcome.word(), outcome_class(step.outcome)) };
    // A class per depth, not a style attribute: the console's policy allows no inline style.
    format!(
        "<tr{}><td class=\"depth-{}\">{}</td><td>{}</td><td><span class=\"badge {class}\">{}</span></td>\
         <td class=\"num\">{}</td><td class=\"detail\">{}</td></tr>",
        if step.group { " class=\"group\"" } else { "" },
        step.depth.min(6),
        escape(&step.title),
        escape(step.round.as_deref().unwrap_or("")),
        escape(word),
        if running { String::new() } else { crate::client::output::seconds((step.seconds * 1000.0) as u64) },
        escape(&step.detail),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_escapes_what_came_from_files_and_says_how_the_run_went() {
        let report: RunReport = serde_json::from_value(serde_json::json!({
            "file": "s.yaml", "name": "<script>alert(1)</script>", "target": "http://127.0.0.1:1",
            "started_at": "2026-12-06T01:00:00Z", "seconds": 2.5, "broken": false,
            "steps": [
                {"title": "load \"x\"", "depth": 0, "group": false, "outcome": "passed", "seconds": 1.25, "detail": "ok <b>"},
                {"title": "check", "depth": 1, "group": false, "outcome": "failed", "seconds": 0.5, "detail": "p99 12 ms > 10 ms", "round": "concurrency=8"},
            ],
            "figures": [{"step": "load", "figure": "result.req_per_s", "value": 812.4}],
            "sweeps": [], "guards": [], "guard_trip": null, "not_started": null, "remote_write": null,
        }))
        .unwrap();
        let html = page(&[report], &Environment::default());
        assert!(!html.contains("<script>") && !html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        for shown in ["verdict failed\">failed", "concurrency=8", "1.25 s", "812.4", "default-src 'none'"] {
            assert!(html.contains(shown), "{shown} in {html}");
        }
    }
}
