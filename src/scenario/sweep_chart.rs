//! A sweep's chart, for a reader of a report or a paper (plotters, SVG): the title is the question the sweep
//! answers; the x axis is the first parameter that varies, in the order the file writes them (a log2 axis
//! where its values double), with a line per combination of the other varying parameters; one panel per
//! figure that is not all zero (those are named in the caption), its axis labelled with the unit its name
//! says; over several runs per round the median with an error bar from the lowest to the highest run;
//! categories as dots, never joined; reference lines (ideal scaling, a target); legends beside the panels,
//! never over the data; and a source line (tarsier, machine, date, runs).

use plotters::prelude::*;
use serde_json::Value;

use super::sweep::plain;
use super::sweep_table::{Spread, SweepTable};
use crate::guard::short_number;

const PANEL_WIDTH: u32 = 560;
const PANEL_HEIGHT: u32 = 330;
const LEGEND_WIDTH: u32 = 190;
const TITLE_HEIGHT: u32 = 44;
const FOOT_HEIGHT: u32 = 44;

/// Where the x values come from and how they are placed.
struct Axis {
    /// The parameter on the x axis (its index in the table's parameters).
    param: usize,
    /// Categories (strings, or numbers that do not all parse): their names in the order they ran.
    categories: Option<Vec<String>>,
    /// Numbers that double from one to the next: drawn on a log2 axis.
    log2: bool,
}

/// One line of a panel: its label (the other varying parameters) and its points (x, spread).
type Line = (String, Vec<(f64, Spread)>);

impl SweepTable {
    /// The chart as an SVG document.
    pub fn chart_svg(&self) -> Result<String, String> {
        let points = self.points();
        let axis = self.axis(&points);
        let figures = self.figure_names();
        let shown = self.shown_names();
        // Per figure: a line per combination of the varying parameters besides the x axis.
        let varying = self.varying(&points);
        let mut panels: Vec<(String, String, Vec<Line>)> = Vec::new();
        let zero = self.all_zero();
        let mut all_zero: Vec<String> = Vec::new();
        for (figure, short) in figures.iter().zip(&shown) {
            let name = self.chart.names.get(figure).unwrap_or(short);
            if zero.contains(figure) {
                all_zero.push(name.clone());
                continue;
            }
            let mut lines: Vec<Line> = Vec::new();
            for point in &points {
                let Some(spread) = point.figures.get(figure).and_then(|runs| Spread::of(runs)) else { continue };
                let x = axis.x_of(&point.values[axis.param]);
                let label = varying
                    .iter()
                    .filter(|i| **i != axis.param)
                    .map(|i| format!("{}={}", self.params[*i], plain(&point.values[*i])))
                    .collect::<Vec<_>>()
                    .join(", ");
                match lines.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, line)) => line.push((x, spread)),
                    None => lines.push((label, vec![(x, spread)])),
                }
            }
            panels.push((figure.clone(), name.clone(), lines));
        }
        let constant: Vec<String> = (0..self.params.len())
            .filter(|i| !varying.contains(i) && *i != axis.param)
            .filter_map(|i| points.first().map(|p| format!("{}={}", self.params[i], plain(&p.values[i]))))
            .collect();
        let legend = panels.iter().any(|(figure, _, lines)| lines.len() > 1 || self.has_references(figure));
        let columns = panels.len().clamp(1, 2) as u32;
        let rows = panels.len().div_ceil(2).max(1) as u32;
        let panel_width = PANEL_WIDTH + if legend { LEGEND_WIDTH } else { 0 };
        let (width, height) = (panel_width * columns, TITLE_HEIGHT + PANEL_HEIGHT * rows + FOOT_HEIGHT);
        let error = |e: &dyn std::fmt::Display| e.to_string();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| error(&e))?;
            let title = self.chart.title.clone().unwrap_or_else(|| self.name.clone());
            let (head, rest) = root.split_vertically(TITLE_HEIGHT);
            head.draw(&Text::new(title, (12, 12), ("sans-serif", 19).into_font().style(FontStyle::Bold)))
                .map_err(|e| error(&e))?;
            let (body, foot) = rest.split_vertically(PANEL_HEIGHT * rows);
            let areas = body.split_evenly((rows as usize, columns as usize));
            for (area, (figure, name, lines)) in areas.iter().zip(&panels) {
                self.panel(area, figure, name, lines, &axis, legend).map_err(|e| error(&e))?;
            }
            if panels.is_empty() {
                body.draw(&Text::new("no figure was recorded, or every one was 0", (20, 20), ("sans-serif", 15)))
                    .map_err(|e| error(&e))?;
            }
            let mut notes = Vec::new();
            if !constant.is_empty() {
                notes.push(format!("at {}", constant.join(", ")));
            }
            if !all_zero.is_empty() {
                notes.push(format!("0 in every round: {}", all_zero.join(", ")));
            }
            let runs = self.runs_per_round();
            if runs > 1 {
                notes.push(format!("median of {runs} runs per round, bars from the lowest to the highest"));
            }
            let style = ("sans-serif", 13).into_font().color(&RGBColor(60, 68, 78));
            foot.draw(&Text::new(notes.join("; "), (12, 4), style.clone())).map_err(|e| error(&e))?;
            let source = self.source.clone().unwrap_or_else(|| format!("tarsier {}", env!("CARGO_PKG_VERSION")));
            foot.draw(&Text::new(source, (12, 22), style)).map_err(|e| error(&e))?;
            root.present().map_err(|e| error(&e))?;
        }
        Ok(svg)
    }

    /// The x axis: the first parameter that varies (the first one when none does). Text, or a single
    /// value (nothing varies: a number axis from 0 would put its one dot at the edge), is a category axis.
    fn axis(&self, points: &[super::sweep_table::Point]) -> Axis {
        let param = self.varying(points).first().copied().unwrap_or(0);
        let xs: Vec<&Value> = points.iter().filter_map(|p| p.values.get(param)).collect();
        let single = xs.windows(2).all(|pair| pair[0] == pair[1]);
        if single || !xs.iter().all(|v| v.is_number()) {
            let mut names: Vec<String> = Vec::new();
            for x in xs {
                let name = plain(x);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            return Axis { param, categories: Some(names), log2: false };
        }
        let mut numbers: Vec<f64> = xs.iter().filter_map(|v| v.as_f64()).collect();
        numbers.sort_by(f64::total_cmp);
        numbers.dedup();
        let doubles = numbers.len() >= 3
            && numbers[0] > 0.0
            && numbers.windows(2).all(|pair| ((pair[1] / pair[0]) - 2.0).abs() < 1e-9);
        Axis { param, categories: None, log2: doubles }
    }

    fn has_references(&self, figure: &str) -> bool {
        self.chart.ideal.iter().any(|f| f == figure)
            || self.chart.lines.iter().any(|l| l.figure == figure)
            || self.chart.shares.iter().any(|l| l.figure == figure)
    }

    /// One figure's panel (with its legend on the right when there is one to show).
    fn panel(
        &self,
        area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
        figure: &str,
        name: &str,
        lines: &[Line],
        axis: &Axis,
        legend: bool,
    ) -> Result<(), String> {
        let error = |e: &dyn std::fmt::Display| e.to_string();
        let (plot, legend_area) = if legend {
            let (plot, legend_area) = area.split_horizontally(PANEL_WIDTH);
            (plot, Some(legend_area))
        } else {
            (area.clone(), None)
        };
        let references: Vec<(String, f64)> =
            self.chart.lines.iter().filter(|l| l.figure == figure).map(|l| (l.label.clone(), l.value)).collect();
        let ideal = axis.categories.is_none() && self.chart.ideal.iter().any(|f| f == figure);
        let mut ideal_lines: Vec<(String, Vec<(f64, f64)>)> = if ideal {
            lines.iter().filter_map(|(_, points)| ideal_line(points)).map(|l| ("ideal scaling".to_owned(), l)).collect()
        } else {
            Vec::new()
        };
        // A fair share: the total split evenly over x, at every x the sweep ran.
        if axis.categories.is_none() {
            let mut xs: Vec<f64> =
                lines.iter().flat_map(|(_, l)| l.iter().map(|(x, _)| *x)).filter(|x| *x > 0.0).collect();
            xs.sort_by(f64::total_cmp);
            xs.dedup();
            for share in self.chart.shares.iter().filter(|s| s.figure == figure) {
                let cap = share.cap.unwrap_or(f64::INFINITY);
                ideal_lines.push((share.label.clone(), xs.iter().map(|x| (*x, (share.total / x).min(cap))).collect()));
            }
        }
        let y_max = lines
            .iter()
            .flat_map(|(_, l)| l.iter().map(|(_, s)| s.max))
            .chain(references.iter().map(|(_, v)| *v))
            .chain(ideal_lines.iter().flat_map(|(_, l)| l.iter().map(|(_, y)| *y)))
            .fold(0.0f64, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.12 } else { 1.0 };
        let xs: Vec<f64> = lines.iter().flat_map(|(_, l)| l.iter().map(|(x, _)| *x)).collect();
        let x_desc = self.params.get(axis.param).cloned().unwrap_or_else(|| "round".into());
        let y_desc = match self.chart.names.get(figure) {
            Some(given) => format!("{given} ({})", unit_of(figure)),
            None => axis_label(name),
        };
        let colour = |i: usize| Palette99::pick(i).to_rgba();
        let mut legend_rows: Vec<(String, RGBAColor, bool)> = Vec::new();
        match &axis.categories {
            Some(names) => {
                let mut chart = ChartBuilder::on(&plot)
                    .caption(name, ("sans-serif", 15))
                    .margin(10)
                    .x_label_area_size(40)
                    .y_label_area_size(64)
                    .build_cartesian_2d(-0.5..(names.len() as f64 - 0.5), 0f64..y_max)
                    .map_err(|e| error(&e))?;
                let label_of = |x: &f64| {
                    let at = x.round();
                    if (x - at).abs() < 0.01 && at >= 0.0 {
                        names.get(at as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                };
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .x_desc(&x_desc)
                    .y_desc(&y_desc)
                    .x_labels(names.len() * 2 + 1)
                    .x_label_formatter(&label_of)
                    .y_label_formatter(&|y| tick(*y))
                    .label_style(("sans-serif", 12))
                    .axis_desc_style(("sans-serif", 13))
                    .draw()
                    .map_err(|e| error(&e))?;
                // Categories: dots (shifted a little per line so they do not hide each other), never joined.
                let shift = 0.5 / (lines.len().max(1) as f64 + 1.0);
                for (i, (label, points)) in lines.iter().enumerate() {
                    let offset = (i as f64 + 1.0) * shift - 0.25;
                    draw_points(&mut chart, points, offset, colour(i), false).map_err(|e| error(&e))?;
                    legend_rows.push((label.clone(), colour(i), false));
                }
                draw_references(&mut chart, &references, (-0.5, names.len() as f64 - 0.5), &mut legend_rows)
                    .map_err(|e| error(&e))?;
            }
            None => {
                // A doubling sweep is drawn on log2 of its values, each of its values labelled as written.
                let place = |x: f64| if axis.log2 { x.log2() } else { x };
                let placed: Vec<(String, Vec<(f64, Spread)>)> = lines
                    .iter()
                    .map(|(label, points)| (label.clone(), points.iter().map(|(x, s)| (place(*x), *s)).collect()))
                    .collect();
                let ideal_placed: Vec<(String, Vec<(f64, f64)>)> = ideal_lines
                    .iter()
                    .map(|(label, line)| (label.clone(), line.iter().map(|(x, y)| (place(*x), *y)).collect()))
                    .collect();
                let xs: Vec<f64> = xs.iter().map(|x| place(*x)).collect();
                let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
                let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let (min, max) = if min.is_finite() { (min, max) } else { (0.0, 1.0) };
                let (low, high) = if axis.log2 {
                    (min - 0.35, max + 0.35)
                } else {
                    let low = if min >= 0.0 { 0.0 } else { min * 1.1 };
                    (low, if max > low { max + (max - low) * 0.06 } else { low + 1.0 })
                };
                // PERF(none): 400 candidate labels on a log2 axis, each shown only at a sweep value.
                let step = (high - low) / 400.0;
                let sweep_values: Vec<f64> = lines.iter().flat_map(|(_, l)| l.iter().map(|(x, _)| *x)).collect();
                let label_of = |x: &f64| {
                    if axis.log2 {
                        sweep_values
                            .iter()
                            .find(|v| (v.log2() - x).abs() < step / 2.0)
                            .map(|v| tick(*v))
                            .unwrap_or_default()
                    } else {
                        tick(*x)
                    }
                };
                let mut builder = ChartBuilder::on(&plot);
                builder.caption(name, ("sans-serif", 15)).margin(10).x_label_area_size(40).y_label_area_size(64);
                if axis.log2 {
                    builder.set_label_area_size(LabelAreaPosition::Bottom, 40);
                }
                let mut chart = builder.build_cartesian_2d(low..high, 0f64..y_max).map_err(|e| error(&e))?;
                let x_desc = if axis.log2 { format!("{x_desc} (log2 scale)") } else { x_desc.clone() };
                let mut mesh = chart.configure_mesh();
                mesh.x_desc(x_desc)
                    .y_desc(&y_desc)
                    .x_label_formatter(&label_of)
                    .y_label_formatter(&|y| tick(*y))
                    .label_style(("sans-serif", 12))
                    .axis_desc_style(("sans-serif", 13));
                if axis.log2 {
                    mesh.x_labels(400).disable_x_mesh().set_tick_mark_size(LabelAreaPosition::Bottom, 0);
                }
                mesh.draw().map_err(|e| error(&e))?;
                for (i, (label, points)) in placed.iter().enumerate() {
                    draw_points(&mut chart, points, 0.0, colour(i), true).map_err(|e| error(&e))?;
                    legend_rows.push((label.clone(), colour(i), false));
                }
                for (label, line) in &ideal_placed {
                    draw_ideal(&mut chart, line).map_err(|e| error(&e))?;
                    if !legend_rows.iter().any(|(known, _, _)| known == label) {
                        legend_rows.push((label.clone(), RGBAColor(110, 110, 110, 1.0), true));
                    }
                }
                draw_references(&mut chart, &references, (low, high), &mut legend_rows).map_err(|e| error(&e))?;
            }
        }
        if let Some(legend_area) = legend_area {
            let rows: Vec<&(String, RGBAColor, bool)> =
                legend_rows.iter().filter(|(label, _, _)| !label.is_empty()).collect();
            for (i, (label, colour, dashed)) in rows.iter().enumerate() {
                let y = 40 + i as i32 * 20;
                let stroke = colour.stroke_width(2);
                if *dashed {
                    for dash in 0..3 {
                        let x = 6 + dash * 7;
                        legend_area.draw(&PathElement::new(vec![(x, y), (x + 4, y)], stroke)).map_err(|e| error(&e))?;
                    }
                } else {
                    legend_area.draw(&PathElement::new(vec![(6, y), (26, y)], stroke)).map_err(|e| error(&e))?;
                }
                let text: String = label.chars().take(28).collect();
                legend_area.draw(&Text::new(text, (32, y - 7), ("sans-serif", 12))).map_err(|e| error(&e))?;
            }
        }
        Ok(())
    }
}

impl Axis {
    /// Where a parameter's value goes on the axis: its number, or its category's place.
    fn x_of(&self, value: &Value) -> f64 {
        match &self.categories {
            Some(names) => names.iter().position(|n| *n == plain(value)).unwrap_or(0) as f64,
            None => value.as_f64().unwrap_or(0.0),
        }
    }
}

/// The medians, joined when `joined` (numbers) or not (categories), each with its error bar when the round
/// ran more than once.
fn draw_points<DB: DrawingBackend, X>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    points: &[(f64, Spread)],
    offset: f64,
    colour: RGBAColor,
    joined: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    X: Ranged<ValueType = f64>,
{
    let mut sorted: Vec<(f64, Spread)> = points.iter().map(|(x, s)| (x + offset, *s)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    if joined {
        chart.draw_series(LineSeries::new(sorted.iter().map(|(x, s)| (*x, s.median)), colour.stroke_width(2)))?;
    }
    chart.draw_series(sorted.iter().map(|(x, s)| Circle::new((*x, s.median), 4, colour.filled())))?;
    chart.draw_series(
        sorted
            .iter()
            .filter(|(_, s)| s.runs > 1)
            .map(|(x, s)| ErrorBar::new_vertical(*x, s.min, s.median, s.max, colour.stroke_width(1), 8)),
    )?;
    Ok(())
}

/// Ideal scaling: the first point's value grown in proportion to x.
fn ideal_line(points: &[(f64, Spread)]) -> Option<Vec<(f64, f64)>> {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (x0, first) = sorted.first()?;
    if *x0 <= 0.0 {
        return None;
    }
    Some(sorted.iter().map(|(x, _)| (*x, first.median * x / x0)).collect())
}

fn draw_ideal<DB: DrawingBackend, X>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    line: &[(f64, f64)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    X: Ranged<ValueType = f64>,
{
    let grey = RGBColor(110, 110, 110);
    chart.draw_series(DashedLineSeries::new(line.iter().copied(), 6, 5, grey.stroke_width(1)))?;
    Ok(())
}

/// A target or limit: a dashed horizontal line across the panel.
fn draw_references<DB: DrawingBackend, X>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<X, plotters::coord::types::RangedCoordf64>>,
    references: &[(String, f64)],
    (from, to): (f64, f64),
    legend: &mut Vec<(String, RGBAColor, bool)>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    X: Ranged<ValueType = f64>,
{
    for (label, value) in references {
        let colour = RGBColor(180, 35, 24);
        chart.draw_series(DashedLineSeries::new(vec![(from, *value), (to, *value)], 8, 5, colour.stroke_width(2)))?;
        legend.push((format!("{label} ({})", short_number(*value)), RGBAColor(180, 35, 24, 1.0), true));
    }
    Ok(())
}

/// A tick's label: `2.5`, `0.25`, `1200`, `1.5e+06`; no trailing zeros.
fn tick(x: f64) -> String {
    if x != 0.0 && (x.abs() >= 1e6 || x.abs() < 1e-3) {
        return format!("{x:.2e}");
    }
    let text = format!("{x:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A figure's axis label with the unit its name says: `latency_ms.p99 (ms)`, `req_per_s (requests/s)`.
pub fn axis_label(name: &str) -> String {
    format!("{name} ({})", unit_of(name))
}

/// The unit a figure's path says.
pub fn unit_of(name: &str) -> &'static str {
    let last = name.rsplit('.').next().unwrap_or(name);
    let whole = name.to_ascii_lowercase();
    if whole.contains("_ms") || last == "ms" {
        "ms"
    } else if whole.contains("req_per_s") || whole.contains("requests_per_s") {
        "requests/s"
    } else if last.contains("gbit_per_s") {
        "Gbit/s"
    } else if last.contains("mbit_per_s") {
        "Mbit/s"
    } else if last.ends_with("per_s") || last.ends_with("per_second") {
        "per second"
    } else if whole.contains("_bytes") || last == "bytes" {
        "bytes"
    } else if last.ends_with("_mib") || last == "mib" {
        "MiB"
    } else if last.ends_with("_s") || last.ends_with("seconds") || last == "s" {
        "s"
    } else if last.ends_with("percent") || last.ends_with("_pct") {
        "%"
    } else if whole.contains("cpu_share")
        || whole.contains("cpu_asked")
        || whole.contains("cpu_got")
        || last.ends_with("_cores")
    {
        "cores"
    } else if last.contains("ratio") || last.contains("fraction") || last == "availability" {
        "ratio, 1 = all"
    } else {
        "count"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::model::{ChartSpec, ReferenceLine};
    use crate::scenario::sweep_table::SweepRow;

    /// A round's values and the figures one run of it recorded.
    type Run<'a> = (Vec<Value>, Vec<(&'a str, f64)>);

    fn table(params: &[&str], rows: Vec<Run<'_>>) -> SweepTable {
        SweepTable {
            name: "rate sweep".into(),
            params: params.iter().map(|p| p.to_string()).collect(),
            rows: rows
                .into_iter()
                .map(|(values, figures)| SweepRow {
                    values,
                    figures: figures.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                    notes: Default::default(),
                })
                .collect(),
            chart: ChartSpec::default(),
            source: Some("tarsier 0.1.0, test".into()),
        }
    }

    #[test]
    fn units_come_from_the_figures_names() {
        for (name, unit) in [
            ("result.latency_ms.p99", "ms"),
            ("result.req_per_s", "requests/s"),
            ("gbit_per_s", "Gbit/s"),
            ("memory_per_container_mib", "MiB"),
            ("cpu_asked_mean", "cores"),
            ("cpu_share_min", "cores"),
            ("down_s", "s"),
            ("result.availability", "ratio, 1 = all"),
            ("left", "count"),
        ] {
            assert_eq!(unit_of(name), unit, "{name}");
        }
    }

    #[test]
    fn the_x_axis_is_the_first_parameter_that_varies_and_doubling_values_get_a_log2_axis() {
        // The case: `concurrency` sorts first by name and has one value; `rate` varies.
        let rows = [100, 200, 400, 800]
            .into_iter()
            .map(|rate| {
                (
                    vec![Value::from(rate), Value::from(2)],
                    vec![("result.req_per_s", rate as f64), ("result.errors", 0.0)],
                )
            })
            .collect();
        let mut sweep = table(&["rate", "concurrency"], rows);
        sweep.chart = ChartSpec {
            title: Some("Does throughput follow the rate asked?".into()),
            ideal: vec!["result.req_per_s".into()],
            lines: vec![ReferenceLine { figure: "result.req_per_s".into(), value: 500.0, label: "target".into() }],
            names: Default::default(),
            shares: Vec::new(),
        };
        let axis = sweep.axis(&sweep.points());
        assert_eq!((axis.param, axis.log2, axis.categories.is_none()), (0, true, true));
        let svg = sweep.chart_svg().unwrap();
        if let Some(dir) = std::env::var_os("TARSIER_CHART_DIR") {
            std::fs::write(std::path::Path::new(&dir).join("doubling.svg"), &svg).unwrap();
        }
        for shown in [
            "Does throughput follow the rate asked?",
            "rate (log2 scale)",
            "req_per_s (requests/s)",
            "at concurrency=2",
            "0 in every round: errors",
            "ideal scaling",
            "target (500)",
            "tarsier 0.1.0, test",
        ] {
            assert!(svg.contains(shown), "{shown} in the chart");
        }
        assert!(!svg.contains(">errors<"), "an all-zero figure has no panel");
    }

    #[test]
    fn categories_are_dots_and_runs_have_error_bars() {
        let rows = vec![
            (vec![Value::from("docker-kill")], vec![("seconds", 2.0)]),
            (vec![Value::from("docker-kill")], vec![("seconds", 3.0)]),
            (vec![Value::from("segfault")], vec![("seconds", 1.0)]),
            (vec![Value::from("segfault")], vec![("seconds", 1.5)]),
        ];
        let sweep = table(&["fault"], rows);
        let axis = sweep.axis(&sweep.points());
        assert_eq!(axis.categories.as_deref(), Some(&["docker-kill".to_owned(), "segfault".to_owned()][..]));
        let svg = sweep.chart_svg().unwrap();
        assert!(svg.contains("seconds (s)") && svg.contains("median of 2 runs per round"), "labels");
        if let Some(dir) = std::env::var_os("TARSIER_CHART_DIR") {
            std::fs::write(std::path::Path::new(&dir).join("runs.svg"), &svg).unwrap();
        }
        assert_eq!(axis_label("result.latency_ms.p99"), "result.latency_ms.p99 (ms)");
        assert_eq!(axis_label("availability"), "availability (ratio, 1 = all)");
    }

    #[test]
    fn a_sweep_of_one_value_is_drawn_as_one_category() {
        let rows = (0..3).map(|i| (vec![Value::from(3), Value::from(60)], vec![("seconds", 13.0 + f64::from(i))]));
        let sweep = table(&["replicas", "load_s"], rows.collect());
        let axis = sweep.axis(&sweep.points());
        assert_eq!((axis.param, axis.categories.as_deref()), (0, Some(&["3".to_owned()][..])));
    }

    #[test]
    fn charts_give_each_figure_a_panel_and_name_categories() {
        let row = |how: &str, n: f64, p99: f64, lost: f64| SweepRow {
            values: vec![how.into(), n.into()],
            figures: [("result.latency_ms.p99".to_owned(), p99), ("lost".to_owned(), lost)].into(),
            notes: Default::default(),
        };
        let table = SweepTable {
            name: "kills".into(),
            params: vec!["how".into(), "n".into()],
            rows: vec![
                row("docker-kill", 1.0, 1800.0, 0.0),
                row("segfault", 1.0, 75.0, 2.0),
                row("segfault", 2.0, 70.0, 1.0),
            ],
            chart: ChartSpec::default(),
            source: None,
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
}
