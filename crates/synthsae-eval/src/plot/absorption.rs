//! Per-parent absorption against the parent's firing probability (log10
//! axis): one point per measured parent for the absorption (full + partial)
//! and one for the full absorption.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::render::{plot_err, render_to, FONT};
use crate::error::{invalid, Result};
use crate::metrics::AbsorptionMetrics;

/// Options of [`plot_absorption`].
#[derive(Debug, Clone, PartialEq)]
pub struct AbsorptionPlotOptions {
    /// Figure title (default "Absorption per parent feature").
    pub title: Option<String>,
    /// Image size in pixels (default 1000 × 600).
    pub size: (u32, u32),
}

impl Default for AbsorptionPlotOptions {
    fn default() -> Self {
        Self {
            title: None,
            size: (1000, 600),
        }
    }
}

/// `(log10 firing probability, absorption, full absorption)` of every
/// measured parent with a positive probability.
pub fn absorption_points(m: &AbsorptionMetrics) -> Vec<(f64, f64, f64)> {
    m.per_parent
        .iter()
        .filter(|p| p.firing_probability > 0.0)
        .filter_map(|p| {
            Some((
                p.firing_probability.log10(),
                p.absorption?,
                p.full_absorption?,
            ))
        })
        .collect()
}

/// Draws the per-parent absorption of `m` against each parent's firing
/// probability into `path` (`.png` or `.svg`). An error when no parent was
/// measured.
pub fn plot_absorption(
    m: &AbsorptionMetrics,
    path: &Path,
    options: &AbsorptionPlotOptions,
) -> Result<()> {
    let points = absorption_points(m);
    if points.is_empty() {
        return Err(invalid(
            "absorption",
            "no parent was measured (none fired with a child while its latent existed)",
        ));
    }
    render_to!(path, options.size, "absorption", |root| draw(
        &root, &points, m, options
    ))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    points: &[(f64, f64, f64)],
    m: &AbsorptionMetrics,
    o: &AbsorptionPlotOptions,
) -> Result<()> {
    let e = |x| plot_err("absorption", x);
    root.fill(&WHITE).map_err(e)?;
    let lo = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = ((lo - 0.1).floor().min(hi - 1.0), (hi + 0.1).ceil());
    let title = o
        .title
        .clone()
        .unwrap_or_else(|| "Absorption per parent feature".into());
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 24))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(lo..hi, -0.02f64..1.02)
        .map_err(e)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .x_desc("log10(parent firing probability)")
        .y_desc("share of rows where a child fires")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()
        .map_err(e)?;
    let blue = RGBColor(31, 119, 180);
    let red = RGBColor(214, 39, 40);
    chart
        .draw_series(
            points
                .iter()
                .map(|&(x, a, _)| Circle::new((x, a), 4, blue.mix(0.6).filled())),
        )
        .map_err(e)?
        .label(format!(
            "absorption, full + partial (mean {:.3}, {} parents)",
            m.absorption, m.parents_measured
        ))
        .legend(move |(x, y)| Circle::new((x + 8, y), 4, blue.mix(0.6).filled()));
    chart
        .draw_series(
            points
                .iter()
                .map(|&(x, _, f)| Cross::new((x, f), 4, red.stroke_width(2))),
        )
        .map_err(e)?
        .label(format!("full absorption (mean {:.3})", m.full_absorption))
        .legend(move |(x, y)| Cross::new((x + 8, y), 4, red.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ParentAbsorption;

    fn parent(p: f64, a: Option<f64>) -> ParentAbsorption {
        ParentAbsorption {
            feature: 0,
            latent: a.map(|_| 0),
            firing_probability: p,
            firing_rate: p,
            rows_with_children: 10,
            rows_without_children: 10,
            absorption: a,
            full_absorption: a.map(|v| v / 2.0),
            partial_absorption: a.map(|v| v / 2.0),
            recall_with_children: a,
            recall_without_children: a,
            mean_activation_without_children: a,
        }
    }

    fn metrics(per_parent: Vec<ParentAbsorption>) -> AbsorptionMetrics {
        AbsorptionMetrics {
            parents: per_parent.len(),
            parents_measured: per_parent.iter().filter(|p| p.absorption.is_some()).count(),
            parents_without_latent: 0,
            absorption: 0.5,
            full_absorption: 0.25,
            partial_absorption: 0.25,
            absorption_weighted: 0.5,
            full_absorption_weighted: 0.25,
            partial_absorption_weighted: 0.25,
            recall_with_children: 0.5,
            recall_without_children: 0.5,
            per_parent,
        }
    }

    #[test]
    fn writes_png_and_svg_of_measured_parents_only() {
        let m = metrics(vec![
            parent(0.1, Some(0.5)),
            parent(0.01, Some(0.2)),
            parent(0.3, None),
        ]);
        assert_eq!(absorption_points(&m).len(), 2);
        let dir = std::env::temp_dir().join(format!("synthsae-abs-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["a.png", "a.svg"] {
            let path = dir.join(name);
            plot_absorption(&m, &path, &AbsorptionPlotOptions::default()).unwrap();
            assert!(std::fs::metadata(&path).unwrap().len() > 1000);
        }
        let none = metrics(vec![parent(0.3, None)]);
        assert!(plot_absorption(&none, &dir.join("b.png"), &Default::default()).is_err());
        assert!(!dir.join("b.png").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
