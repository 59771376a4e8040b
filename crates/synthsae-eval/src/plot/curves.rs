//! Training curves from a metrics log (`metrics.jsonl`): one panel per key.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::render::{plot_err, render_to, FONT};
use crate::error::{invalid, EvalError, Result};

/// A parsed metrics log: for every numeric key (first-seen order), its
/// `(step, value)` points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsLog {
    /// `(key, points)`, points in file order.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

impl MetricsLog {
    /// Parses JSON lines: each non-empty line an object with a numeric
    /// `step` and any numeric keys (others are ignored).
    pub fn parse(text: &str) -> Result<Self> {
        let mut log = MetricsLog::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let bad = |reason: String| invalid("metrics log", format!("line {}: {reason}", n + 1));
            let value: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            let obj = value
                .as_object()
                .ok_or_else(|| bad("not a JSON object".into()))?;
            let step = obj
                .get("step")
                .and_then(|s| s.as_f64())
                .ok_or_else(|| bad("no numeric `step`".into()))?;
            for (k, v) in obj {
                if k == "step" {
                    continue;
                }
                if let Some(v) = v.as_f64() {
                    match log.series.iter_mut().find(|(name, _)| name == k) {
                        Some((_, pts)) => pts.push((step, v)),
                        None => log.series.push((k.clone(), vec![(step, v)])),
                    }
                }
            }
        }
        Ok(log)
    }

    /// The points of `key`.
    pub fn get(&self, key: &str) -> Option<&[(f64, f64)]> {
        self.series
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, p)| p.as_slice())
    }

    /// Every key, in first-seen order.
    pub fn keys(&self) -> Vec<&str> {
        self.series.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Reads and parses a `metrics.jsonl` file.
pub fn read_metrics_log(path: &Path) -> Result<MetricsLog> {
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    MetricsLog::parse(&text).map_err(|e| EvalError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Options of [`plot_training_curves`].
#[derive(Debug, Clone, PartialEq)]
pub struct CurvesOptions {
    /// Figure title (default "Training curves").
    pub title: Option<String>,
    /// Panels per row (default 2; 1 when there is a single key).
    pub columns: usize,
    /// Size of one panel in pixels (default 620 × 380).
    pub panel_size: (u32, u32),
}

impl Default for CurvesOptions {
    fn default() -> Self {
        Self {
            title: None,
            columns: 2,
            panel_size: (620, 380),
        }
    }
}

/// Counters that are not worth a panel by default.
const NOT_CURVES: [&str; 2] = ["n_training_samples", "n_training_steps"];

/// Most panels drawn when no keys are chosen.
const DEFAULT_MAX_PANELS: usize = 12;

/// Plots `keys` of `log` over steps, one panel each, into `path` (`.png` or
/// `.svg`). Empty `keys`: the first 12 keys of the log (sample/step counters skipped). An unknown key is an
/// error that lists the keys present.
pub fn plot_training_curves(
    log: &MetricsLog,
    keys: &[String],
    path: &Path,
    options: &CurvesOptions,
) -> Result<()> {
    let chosen: Vec<(&str, &[(f64, f64)])> = if keys.is_empty() {
        log.series
            .iter()
            .filter(|(k, _)| !NOT_CURVES.contains(&k.as_str()))
            .take(DEFAULT_MAX_PANELS)
            .map(|(k, p)| (k.as_str(), p.as_slice()))
            .collect()
    } else {
        keys.iter()
            .map(|k| {
                log.get(k).map(|p| (k.as_str(), p)).ok_or_else(|| {
                    invalid(
                        "keys",
                        format!(
                            "`{k}` is not in the metrics log (present: {})",
                            log.keys().join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<_>>()?
    };
    if chosen.is_empty() {
        return Err(invalid("metrics log", "has no numeric keys besides `step`"));
    }
    let cols = if chosen.len() == 1 {
        1
    } else {
        options.columns.max(1)
    };
    let rows = chosen.len().div_ceil(cols);
    let (pw, ph) = options.panel_size;
    let size = (pw * cols as u32, ph * rows as u32 + 50);
    render_to!(path, size, "training curves", |root| draw(
        &root, &chosen, rows, cols, options
    ))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chosen: &[(&str, &[(f64, f64)])],
    rows: usize,
    cols: usize,
    o: &CurvesOptions,
) -> Result<()> {
    let e = |x| plot_err("training curves", x);
    root.fill(&WHITE).map_err(e)?;
    let title = o.title.clone().unwrap_or_else(|| "Training curves".into());
    let root = root.titled(&title, (FONT, 26)).map_err(e)?;
    let panels = root.split_evenly((rows, cols));
    for ((key, pts), panel) in chosen.iter().zip(panels.iter()) {
        draw_panel(panel, key, pts).map_err(e)?;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    key: &str,
    pts: &[(f64, f64)],
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let finite: Vec<(f64, f64)> = pts
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let (mut x0, mut x1) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let (mut y0, mut y1) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    if finite.is_empty() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = if y1 > y0 {
        0.05 * (y1 - y0)
    } else {
        0.5 * y0.abs().max(1e-3)
    };
    (y0, y1) = (y0 - pad, y1 + pad);
    let span = y1 - y0;
    let mut chart = ChartBuilder::on(area)
        .caption(key, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .x_desc("step")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| fmt_tick(if y.abs() < 1e-9 * span { 0.0 } else { *y }))
        .draw()?;
    let color = RGBColor(31, 119, 180);
    chart.draw_series(LineSeries::new(
        finite.iter().copied(),
        color.stroke_width(2),
    ))?;
    if finite.len() <= 60 {
        chart.draw_series(finite.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    Ok(())
}

/// Compact tick label: plain for ordinary magnitudes, scientific otherwise.
pub(crate) fn fmt_tick(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || (1e-3..1e5).contains(&a) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".into()
        } else {
            s.to_string()
        }
    } else {
        format!("{v:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_jsonl_and_rejects_lines_without_step() {
        let log = MetricsLog::parse(
            "{\"step\": 0, \"a\": 1.5, \"s\": \"x\"}\n\n{\"step\": 10, \"a\": 2, \"b\": 3}\n",
        )
        .unwrap();
        assert_eq!(log.keys(), vec!["a", "b"]);
        assert_eq!(log.get("a").unwrap(), &[(0.0, 1.5), (10.0, 2.0)]);
        let e = MetricsLog::parse("{\"a\": 1}").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("step"), "{e}");
        assert!(MetricsLog::parse("not json").is_err());
    }

    #[test]
    fn tick_labels() {
        assert_eq!(fmt_tick(0.25), "0.25");
        assert_eq!(fmt_tick(2.0), "2");
        assert_eq!(fmt_tick(1.5e-6), "1.50e-6");
    }
}
