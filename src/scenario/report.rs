//! The end of a run: the summary table on the terminal, and JUnit XML for CI.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    Skipped,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Passed => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StepResult {
    pub title: String,
    /// Nesting in parallel or repeated groups, for the table's indentation.
    pub depth: usize,
    pub outcome: Outcome,
    pub seconds: f64,
    pub detail: String,
}

/// One scenario file's run.
pub struct RunReport {
    pub file: String,
    pub name: String,
    pub steps: Vec<StepResult>,
    pub seconds: f64,
    /// A step found the setup broken (see `Runner::broken`).
    pub broken: bool,
}

impl RunReport {
    pub fn failures(&self) -> usize {
        self.steps.iter().filter(|s| s.outcome == Outcome::Failed).count()
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
                "  {title:<title_width$}  {:<7}  {:>7.2}s  {}",
                step.outcome.word(),
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
        out
    }
}

fn escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&apos;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit XML: a testsuite per scenario, a testcase per step.
pub fn junit(reports: &[RunReport]) -> String {
    let tests: usize = reports.iter().map(|r| r.steps.len()).sum();
    let failures: usize = reports.iter().map(RunReport::failures).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(xml, "<testsuites name=\"tarsier\" tests=\"{tests}\" failures=\"{failures}\">");
    for report in reports {
        let skipped = report.steps.iter().filter(|s| s.outcome == Outcome::Skipped).count();
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{skipped}\" time=\"{:.3}\">",
            escape(&report.name),
            report.steps.len(),
            report.failures(),
            report.seconds
        );
        for (i, step) in report.steps.iter().enumerate() {
            let _ = write!(
                xml,
                "    <testcase classname=\"{}\" name=\"{:02} {}\" time=\"{:.3}\"",
                escape(&report.file),
                i + 1,
                escape(&step.title),
                step.seconds
            );
            match step.outcome {
                Outcome::Passed => {
                    let _ = writeln!(xml, "><system-out>{}</system-out></testcase>", escape(&step.detail));
                }
                Outcome::Failed => {
                    let _ = writeln!(xml, "><failure message=\"{}\"/></testcase>", escape(&step.detail));
                }
                Outcome::Skipped => {
                    let _ = writeln!(xml, "><skipped/></testcase>");
                }
            }
        }
        let _ = writeln!(xml, "  </testsuite>");
    }
    xml.push_str("</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junit_escapes_and_counts() {
        let report = RunReport {
            file: "s.yaml".into(),
            broken: false,
            name: "a <b> & \"c\"".into(),
            steps: vec![
                StepResult {
                    title: "one".into(),
                    depth: 0,
                    outcome: Outcome::Passed,
                    seconds: 1.0,
                    detail: "x".into(),
                },
                StepResult {
                    title: "two".into(),
                    depth: 0,
                    outcome: Outcome::Failed,
                    seconds: 0.5,
                    detail: "p99 = 9 > 5".into(),
                },
            ],
            seconds: 1.5,
        };
        let xml = junit(&[report]);
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
        assert!(xml.contains("a &lt;b&gt; &amp; &quot;c&quot;"), "{xml}");
        assert!(xml.contains("<failure message=\"p99 = 9 &gt; 5\"/>"), "{xml}");
    }
}
