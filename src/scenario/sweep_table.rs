//! A sweep's results: one row per run of a round (a round run `rounds:` times has as many rows), the
//! parameters in the order the file writes them and the figures in the order they were recorded. Read back
//! from its JSON by `tarsier scenario chart`. The terminal table and the CSV are here; the chart is
//! `sweep_chart`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::ChartSpec;
use super::sweep::plain;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepTable {
    /// The sweep step's title.
    pub name: String,
    /// In the order written.
    pub params: Vec<String>,
    pub rows: Vec<SweepRow>,
    /// How its chart is drawn (the sweep's `chart:`).
    #[serde(default)]
    pub chart: ChartSpec,
    /// Where the figures come from, for a reader of the chart: tarsier's version and commit, the machine, the
    /// date, the rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRow {
    pub values: Vec<Value>,
    /// Figure (dotted path) -> value, in the order recorded; the last one recorded in the run when a path was
    /// recorded twice.
    pub figures: IndexMap<String, f64>,
    /// What a run recorded that is not a number (an `error` a command printed, saying why a round could not be
    /// measured): shown as a column of its own.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub notes: IndexMap<String, String>,
}

/// A column of the Markdown table.
enum Column {
    Figure(String),
    VsFirst(String),
    Share(f64, Option<f64>),
}

/// The runs of one round: its parameters' values and, per figure, every value its runs recorded.
#[derive(Debug, Clone)]
pub struct Point {
    pub values: Vec<Value>,
    pub figures: IndexMap<String, Vec<f64>>,
    /// Per note, the different texts its runs recorded.
    pub notes: IndexMap<String, Vec<String>>,
}

impl Point {
    /// A note's texts in one cell: each different one once.
    fn note(&self, name: &str) -> String {
        self.notes.get(name).map_or_else(|| "-".to_owned(), |texts| texts.join("; "))
    }
}

/// The median, lowest and highest of a round's runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
        Some(Self { median, min: sorted[0], max: sorted[n - 1], runs: n })
    }

    /// `812.4` or, over several runs, `812.4 (790.2-830.0)`.
    pub fn shown(&self) -> String {
        if self.runs > 1 && self.min != self.max {
            format!("{} ({}-{})", table_number(self.median), table_number(self.min), table_number(self.max))
        } else {
            table_number(self.median)
        }
    }
}

/// A figure in a table, to about four significant digits: `2,374`, `113.6`, `2.87`, `0.031`.
pub fn table_number(x: f64) -> String {
    let magnitude = x.abs();
    if magnitude >= 1000.0 {
        let whole = format!("{:.0}", x.abs());
        let mut grouped = String::new();
        for (i, digit) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        return if x < 0.0 { format!("-{grouped}") } else { grouped };
    }
    let decimals = if magnitude >= 100.0 {
        1
    } else if magnitude >= 1.0 || magnitude == 0.0 {
        2
    } else {
        3
    };
    let text = format!("{x:.decimals$}");
    if x == x.trunc() && magnitude < 1000.0 {
        return format!("{x:.0}");
    }
    text
}

/// Each name once, in the order first met.
fn first_seen<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for name in names {
        if !seen.contains(name) {
            seen.push(name.clone());
        }
    }
    seen
}

impl SweepTable {
    /// The figures recorded in any round, in the order first recorded (those the chart names come first, in
    /// its order): the table's columns after the parameters, the chart's panels.
    pub fn figure_names(&self) -> Vec<String> {
        let recorded = first_seen(self.rows.iter().flat_map(|r| r.figures.keys()));
        let mut names: Vec<String> = self.chart.names.keys().filter(|n| recorded.contains(n)).cloned().collect();
        names.extend(recorded.into_iter().filter(|n| !self.chart.names.contains_key(n)));
        names
    }

    /// The notes recorded in any round (texts, not numbers), in the order first recorded: columns after the
    /// figures.
    pub fn note_names(&self) -> Vec<String> {
        first_seen(self.rows.iter().flat_map(|r| r.notes.keys()))
    }

    /// Figures that are 0 in every run of every round: named under a chart or table, not given a column.
    pub fn all_zero(&self) -> Vec<String> {
        self.figure_names()
            .into_iter()
            .filter(|f| self.rows.iter().all(|r| r.figures.get(f).is_none_or(|v| *v == 0.0)))
            .collect()
    }

    /// The figures as headers and captions show them: without the `result.` most start with, unless another
    /// figure has that shorter name (the CSV and JSON keep whole paths).
    pub fn shown_names(&self) -> Vec<String> {
        let figures = self.figure_names();
        figures
            .iter()
            .map(|f| match f.strip_prefix("result.") {
                Some(short) if !figures.iter().any(|other| other == short) => short.to_owned(),
                _ => f.clone(),
            })
            .collect()
    }

    /// The rows of each round together, rounds in the order they ran.
    pub fn points(&self) -> Vec<Point> {
        let mut points: Vec<Point> = Vec::new();
        for row in &self.rows {
            let at = match points.iter().position(|p| p.values == row.values) {
                Some(at) => at,
                None => {
                    points.push(Point { values: row.values.clone(), figures: IndexMap::new(), notes: IndexMap::new() });
                    points.len() - 1
                }
            };
            for (name, value) in &row.figures {
                points[at].figures.entry(name.clone()).or_default().push(*value);
            }
            for (name, text) in &row.notes {
                let texts = points[at].notes.entry(name.clone()).or_default();
                if !texts.contains(text) {
                    texts.push(text.clone());
                }
            }
        }
        points
    }

    /// The indices of the parameters whose value changes between rounds, in the order written: the chart's
    /// x axis and lines, the Markdown table's columns.
    pub fn varying(&self, points: &[Point]) -> Vec<usize> {
        (0..self.params.len())
            .filter(|i| points.iter().any(|p| points.first().is_some_and(|first| p.values[*i] != first.values[*i])))
            .collect()
    }

    /// The most runs any round had.
    pub fn runs_per_round(&self) -> usize {
        self.points().iter().map(|p| p.figures.values().map(Vec::len).max().unwrap_or(1)).max().unwrap_or(1)
    }

    /// The table for a person: parameters then figures, one row per round, a figure over several runs as its
    /// median and range (comfy-table, fitted to the terminal, 120 columns when piped).
    pub fn render(&self) -> String {
        let figures = self.figure_names();
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::UTF8_HORIZONTAL_ONLY);
        table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        let notes = self.note_names();
        table
            .set_header(self.params.iter().cloned().chain(self.shown_names()).chain(notes.clone()).collect::<Vec<_>>());
        for point in self.points() {
            let values = point.values.iter().map(plain);
            let figures = figures
                .iter()
                .map(|f| point.figures.get(f).and_then(|runs| Spread::of(runs)).map_or("-".to_owned(), |s| s.shown()));
            let texts = notes.iter().map(|n| point.note(n));
            table.add_row(values.chain(figures).chain(texts).collect::<Vec<_>>());
        }
        if table.width().is_none() {
            table.set_width(120);
        }
        let runs = self.runs_per_round();
        let note = if runs > 1 { format!(" (median and range of {runs} runs per round)") } else { String::new() };
        format!("sweep: {}{note}\n{table}\n", self.name)
    }

    /// The table as CSV: every run of every round (one line each), the parameters, then the figures.
    pub fn csv(&self) -> Result<Vec<u8>, csv::Error> {
        let figures = self.figure_names();
        let notes = self.note_names();
        let mut out = csv::Writer::from_writer(Vec::new());
        out.write_record(self.params.iter().chain(&figures).chain(&notes))?;
        for row in &self.rows {
            let values = row.values.iter().map(plain);
            let figures = figures.iter().map(|f| row.figures.get(f).map_or(String::new(), |x| x.to_string()));
            let texts = notes.iter().map(|n| row.notes.get(n).cloned().unwrap_or_default());
            out.write_record(values.chain(figures).chain(texts).collect::<Vec<_>>())?;
        }
        out.into_inner().map_err(|err| csv::Error::from(err.into_error()))
    }

    /// The table as Markdown, for a document: the parameters that vary, then each figure under its chart
    /// name with its unit, a figure over several runs as its median and range; for an `ideal` figure its
    /// ratio to the first round, and for a `shares` figure the fair share. Generated, never typed: a test
    /// holds docs/experiments.md to it.
    pub fn markdown(&self) -> String {
        let points = self.points();
        let varying = self.varying(&points);
        let params: Vec<usize> = if varying.is_empty() { (0..self.params.len()).collect() } else { varying };
        let figures = self.figure_names();
        let zero = self.all_zero();
        let mut header: Vec<String> = params.iter().map(|i| self.params[*i].clone()).collect();
        let mut columns: Vec<Column> = Vec::new();
        for (figure, short) in figures.iter().zip(self.shown_names()) {
            if zero.contains(figure) {
                continue;
            }
            let name = self.chart.names.get(figure).cloned().unwrap_or(short);
            header.push(format!("{name} ({})", super::sweep_chart::unit_of(figure)));
            columns.push(Column::Figure(figure.clone()));
            if self.chart.ideal.contains(figure) {
                header.push(format!("{name} vs the first"));
                columns.push(Column::VsFirst(figure.clone()));
            }
            for share in self.chart.shares.iter().filter(|share| share.figure == *figure) {
                if header.contains(&share.label) {
                    continue;
                }
                header.push(share.label.clone());
                columns.push(Column::Share(share.total, share.cap));
            }
        }
        let notes = self.note_names();
        header.extend(notes.iter().cloned());
        let mut out = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
        let first = |figure: &str| points.first().and_then(|p| p.figures.get(figure)).and_then(|r| Spread::of(r));
        for point in &points {
            let mut cells: Vec<String> = params.iter().map(|i| plain(&point.values[*i])).collect();
            for column in &columns {
                let spread = |figure: &str| point.figures.get(figure).and_then(|runs| Spread::of(runs));
                cells.push(match column {
                    Column::Figure(figure) => spread(figure).map_or("-".into(), |s| s.shown()),
                    Column::VsFirst(figure) => match (spread(figure), first(figure)) {
                        (Some(now), Some(base)) if base.median != 0.0 => format!("{:.2}x", now.median / base.median),
                        _ => "-".into(),
                    },
                    Column::Share(total, cap) => {
                        let x = params.first().and_then(|i| point.values[*i].as_f64()).filter(|x| *x > 0.0);
                        x.map_or("-".into(), |x| table_number((total / x).min(cap.unwrap_or(f64::INFINITY))))
                    }
                });
            }
            // A note is text a command wrote: its `|` would end the cell.
            cells.extend(notes.iter().map(|n| point.note(n).replace('|', "\\|")));
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        let runs = self.runs_per_round();
        if runs > 1 {
            out.push_str(&format!("\nMedian (lowest-highest) of {runs} runs per round.\n"));
        }
        if !zero.is_empty() {
            // Named as the chart names them, as the columns are.
            let names: Vec<&str> = zero
                .iter()
                .map(|f| self.chart.names.get(f).map_or(f.strip_prefix("result.").unwrap_or(f), String::as_str))
                .collect();
            out.push_str(&format!("\n0 in every round: {}.\n", names.join(", ")));
        }
        // Where the figures come from (and, when `--param` changed the service under test, which one).
        if let Some(source) = &self.source {
            out.push_str(&format!("\nSource: {source}.\n"));
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_run_several_times_show_their_median_and_range_and_keep_every_run() {
        let row = |rate: u64, rps: f64| SweepRow {
            values: vec![rate.into()],
            figures: [("result.req_per_s".to_owned(), rps), ("result.errors".to_owned(), 0.0)].into_iter().collect(),
            notes: Default::default(),
        };
        let table = SweepTable {
            name: "s".into(),
            params: vec!["rate".into()],
            rows: vec![row(100, 99.0), row(100, 101.0), row(100, 100.0), row(200, 180.0)],
            chart: ChartSpec::default(),
            source: None,
        };
        assert_eq!(table.figure_names(), ["result.req_per_s", "result.errors"], "the order recorded");
        let points = table.points();
        assert_eq!(points.len(), 2);
        let spread = Spread::of(&points[0].figures["result.req_per_s"]).unwrap();
        assert_eq!((spread.median, spread.min, spread.max, spread.runs), (100.0, 99.0, 101.0, 3));
        let shown = table.render();
        assert!(shown.contains("100 (99-101)") && shown.contains("median and range of 3 runs"), "{shown}");
        assert_eq!(
            [
                table_number(2373.836),
                table_number(113.563),
                table_number(2.868),
                table_number(0.031),
                table_number(4.0)
            ],
            ["2,374", "113.6", "2.87", "0.031", "4"]
        );
        let markdown = table.markdown();
        assert!(markdown.starts_with("| rate | req_per_s (requests/s) |"), "{markdown}");
        assert!(
            markdown.contains("| 100 | 100 (99-101) |") && markdown.contains("0 in every round: errors."),
            "{markdown}"
        );
        let csv = String::from_utf8(table.csv().unwrap()).unwrap();
        assert_eq!(csv.lines().count(), 5, "every run: {csv}");
    }

    #[test]
    fn a_round_that_could_not_be_measured_says_why_in_a_column_of_its_own() {
        let row = |tech: &str, ran: f64, note: Option<&str>| SweepRow {
            values: vec![tech.into()],
            figures: [("ran".to_owned(), ran)].into_iter().collect(),
            notes: note.map(|n| ("error".to_owned(), n.to_owned())).into_iter().collect(),
        };
        let why = "KVM internal error | emulation failure";
        let table = SweepTable {
            name: "s".into(),
            params: vec!["tech".into()],
            rows: vec![row("lxc", 4.0, None), row("kvm", 0.0, Some(why)), row("kvm", 0.0, Some(why))],
            chart: ChartSpec::default(),
            source: None,
        };
        let markdown = table.markdown();
        assert!(markdown.starts_with("| tech | ran (count) | error |"), "{markdown}");
        assert!(markdown.contains("| lxc | 4 | - |"), "{markdown}");
        // Each different text once, and a `|` in it cannot end the cell.
        assert!(markdown.contains("| kvm | 0 | KVM internal error \\| emulation failure |"), "{markdown}");
        let csv = String::from_utf8(table.csv().unwrap()).unwrap();
        assert!(
            csv.starts_with("tech,ran,error\n") && csv.contains("kvm,0,KVM internal error | emulation failure"),
            "{csv}"
        );
        assert!(table.render().contains("emulation failure"));
    }
}
