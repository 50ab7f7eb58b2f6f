//! A load's chart, drawn here as SVG with plotters (no script library in the page): throughput, latency
//! (p50 and p99) and errors, one panel each on its own scale, against the seconds since the load started.

use plotters::prelude::*;

use super::feed::{Point, Series};

/// The widths a chart is drawn at: the page asks for its figure's width, so the texts keep their size on a
/// phone as on a desktop (a wide SVG shrunk to a phone's width has unreadable labels).
pub const MIN_WIDTH: u32 = 300;
pub const MAX_WIDTH: u32 = 1200;
/// Text sizes, in pixels of the drawn chart (which is shown at 1:1).
const TITLE: u32 = 17;
const CAPTION: u32 = 14;
const LABEL: u32 = 12;

/// The series as an SVG document `width` pixels wide. Plotters escapes every text it writes (the label came
/// from an agent).
pub fn load_svg(series: &Series, width: u32) -> Result<String, String> {
    let width = width.clamp(MIN_WIDTH, MAX_WIDTH);
    let height = (width * 2 / 3).clamp(540, 720);
    let error = |e: &dyn std::fmt::Display| e.to_string();
    let points: Vec<Point> = series.points.iter().copied().collect();
    let t_max = points.iter().map(|p| p.t).fold(1.0f64, f64::max);
    let t_min = points.first().map_or(0.0, |p| p.t).min(t_max - 1.0).max(0.0);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| error(&e))?;
        let mut title = format!("http_load: {}", series.label);
        if let Some(stage) = &series.stage {
            title += &format!(" ({stage})");
        }
        if !series.running {
            title += " (ended)";
        }
        let root = root.titled(&title, ("sans-serif", TITLE)).map_err(|e| error(&e))?;
        let panels = root.split_evenly((3, 1));
        let x_desc = "time since the load started (s)";
        let throughput: Vec<(f64, f64)> = points.iter().map(|p| (p.t, p.req_per_s)).collect();
        panel(&panels[0], "throughput", "req/s", x_desc, (t_min, t_max), &[("req/s", &throughput, BLUE)])?;
        let p50: Vec<(f64, f64)> = points.iter().filter_map(|p| Some((p.t, p.p50_ms?))).collect();
        let p99: Vec<(f64, f64)> = points.iter().filter_map(|p| Some((p.t, p.p99_ms?))).collect();
        let latency = [("p50", &p50, GREEN), ("p99", &p99, RED)];
        let with_data: Vec<_> = latency.iter().filter(|(_, line, _)| !line.is_empty()).cloned().collect();
        panel(&panels[1], "latency", "ms", x_desc, (t_min, t_max), &with_data)?;
        let errors: Vec<(f64, f64)> = points.iter().filter_map(|p| Some((p.t, p.error_rate? * 100.0))).collect();
        panel(&panels[2], "errors", "% of requests", x_desc, (t_min, t_max), &[("errors", &errors, MAGENTA)])?;
        root.present().map_err(|e| error(&e))?;
    }
    Ok(svg)
}

type Line<'a> = (&'a str, &'a Vec<(f64, f64)>, RGBColor);

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    unit: &str,
    x_desc: &str,
    (t_min, t_max): (f64, f64),
    lines: &[Line<'_>],
) -> Result<(), String> {
    let error = |e: &dyn std::fmt::Display| e.to_string();
    let y_max = lines.iter().flat_map(|(_, l, _)| l.iter().map(|p| p.1)).fold(0.0f64, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", CAPTION))
        .margin(8)
        .x_label_area_size(38)
        .y_label_area_size(58)
        .build_cartesian_2d(t_min..t_max, 0f64..y_max)
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(unit)
        .x_labels(if area.dim_in_pixel().0 < 500 { 5 } else { 10 })
        .y_labels(4)
        .label_style(("sans-serif", LABEL))
        .axis_desc_style(("sans-serif", LABEL))
        .y_label_formatter(&|y| axis_number(*y))
        .draw()
        .map_err(|e| error(&e))?;
    for (name, line, colour) in lines {
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(line.iter().copied(), colour.stroke_width(2)))
            .map_err(|e| error(&e))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
    }
    if lines.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| error(&e))?;
    }
    Ok(())
}

/// An axis label: whole numbers from 10 up, one decimal below (`0.5`, not `0.500`).
fn axis_number(y: f64) -> String {
    if y.abs() >= 10.0 || y == y.trunc() {
        format!("{y:.0}")
    } else {
        format!("{y:.1}")
    }
}
