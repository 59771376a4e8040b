//! A sweep's metrics against one swept value (L0 in SynthSAEBench's
//! figures): one panel per metric, one line per series (architecture), each
//! point the mean over seeds with an error bar of ± one standard deviation,
//! and optional reference points (published values) as crosses.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::curves::fmt_tick;
use super::render::{plot_err, render_to, FONT};
use crate::error::{invalid, Result};

/// One line of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSeries {
    /// Legend label.
    pub label: String,
    /// `(x, mean, std)`, any order (drawn sorted by x).
    pub points: Vec<(f64, f64, f64)>,
    /// Reference points `(x, value)` drawn as crosses in the series' colour.
    pub reference: Vec<(f64, f64)>,
}

/// One metric's panel.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPanel {
    /// The metric's name (panel caption).
    pub metric: String,
    /// Its lines.
    pub series: Vec<SweepSeries>,
}

/// Draws `panels` (3 per row) into `path` (`.png` or `.svg`), x axis
/// labelled `x_label`.
pub fn plot_sweep_metrics(
    panels: &[SweepPanel],
    x_label: &str,
    title: &str,
    path: &Path,
) -> Result<()> {
    if panels.is_empty() {
        return Err(invalid("panels", "no metric to plot"));
    }
    let cols = panels.len().min(3);
    let rows = panels.len().div_ceil(cols);
    let size = (480 * cols as u32, 360 * rows as u32 + 50);
    render_to!(path, size, "sweep metrics", |root| draw(
        &root, panels, rows, cols, x_label, title
    ))
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[SweepPanel],
    rows: usize,
    cols: usize,
    x_label: &str,
    title: &str,
) -> Result<()> {
    let e = |x| plot_err("sweep metrics", x);
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, (FONT, 24)).map_err(e)?;
    for (panel, area) in panels.iter().zip(root.split_evenly((rows, cols)).iter()) {
        draw_panel(area, panel, x_label).map_err(e)?;
    }
    Ok(())
}

fn bounds(panel: &SweepPanel) -> (f64, f64, f64, f64) {
    let mut b = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    let mut add = |x: f64, lo: f64, hi: f64| {
        if x.is_finite() && lo.is_finite() && hi.is_finite() {
            b = (b.0.min(x), b.1.max(x), b.2.min(lo), b.3.max(hi));
        }
    };
    for s in &panel.series {
        for &(x, m, sd) in &s.points {
            add(x, m - sd.max(0.0), m + sd.max(0.0));
        }
        for &(x, v) in &s.reference {
            add(x, v, v);
        }
    }
    if !b.0.is_finite() {
        return (0.0, 1.0, 0.0, 1.0);
    }
    let (mut x0, mut x1, mut y0, mut y1) = b;
    let xpad = if x1 > x0 { 0.05 * (x1 - x0) } else { 1.0 };
    (x0, x1) = (x0 - xpad, x1 + xpad);
    let ypad = if y1 > y0 {
        0.08 * (y1 - y0)
    } else {
        0.5 * y0.abs().max(1e-3)
    };
    (y0, y1) = (y0 - ypad, y1 + ypad);
    (x0, x1, y0, y1)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &SweepPanel,
    x_label: &str,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (x0, x1, y0, y1) = bounds(panel);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.metric, (FONT, 18))
        .margin(10)
        .x_label_area_size(38)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .x_desc(x_label)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .x_label_formatter(&|x| fmt_tick(*x))
        .y_label_formatter(&|y| fmt_tick(*y))
        .draw()?;
    for (i, s) in panel.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let mut pts: Vec<(f64, f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                color.stroke_width(2),
            ))?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&(x, m, sd)| {
                ErrorBar::new_vertical(x, m - sd, m, m + sd, color.filled(), 6)
            }))?;
        chart.draw_series(
            pts.iter()
                .map(|&(x, m, _)| Circle::new((x, m), 3, color.filled())),
        )?;
        chart.draw_series(
            s.reference
                .iter()
                .map(|&(x, v)| Cross::new((x, v), 6, color.stroke_width(2))),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font((FONT, 12))
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_png_and_svg_and_rejects_nothing_to_plot() {
        let dir = std::env::temp_dir().join(format!("synthsae-sweep-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let panel = SweepPanel {
            metric: "mcc".into(),
            series: vec![SweepSeries {
                label: "batchtopk".into(),
                points: vec![(25.0, 0.7, 0.01), (15.0, 0.6, 0.02)],
                reference: vec![(25.0, 0.75)],
            }],
        };
        for f in ["m.png", "m.svg"] {
            plot_sweep_metrics(std::slice::from_ref(&panel), "L0", "t", &dir.join(f)).unwrap();
            assert!(std::fs::metadata(dir.join(f)).unwrap().len() > 1000);
        }
        assert!(plot_sweep_metrics(&[], "L0", "t", &dir.join("x.png")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
