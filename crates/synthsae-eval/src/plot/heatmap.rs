//! Heatmap of cosine similarity between SAE latents (rows) and true
//! features (columns), rows in the best ordering of spec §9.8.
//!
//! Large matrices are **max-|cos| pooled**: rows and columns are cut into
//! blocks of `⌈rows / max_cells⌉ × ⌈cols / max_cells⌉` entries and each block
//! is drawn as one cell holding the entry of largest `|cos|` in it (sign
//! kept), so a single well-matched latent stays visible at any size. The cell
//! budget is about one cell per pixel of the plot area for PNG (≤ 1000) and
//! 200 per axis for SVG (file size); 16 × 16 draws every entry as a big cell.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::render::{plot_err, render_to, FONT};
use crate::cosine::SimilarityMatrix;
use crate::error::{invalid, Result};
use crate::mcc::best_feature_ordering;

/// Options of [`plot_feature_similarity`].
#[derive(Debug, Clone, PartialEq)]
pub struct HeatmapOptions {
    /// Figure title (default "Cosine similarity with true features").
    pub title: Option<String>,
    /// Plot `|cos|` (white → red) instead of signed cos (blue–white–red).
    pub absolute: bool,
    /// Sort rows by each latent's best-matching feature (spec §9.8).
    pub reorder: bool,
    /// Image size in pixels (default 1100 × 950).
    pub size: (u32, u32),
    /// Maximum cells per axis after pooling (default: 1000 for PNG, bounded
    /// by the plot area's pixels; 200 for SVG).
    pub max_cells: Option<usize>,
}

impl Default for HeatmapOptions {
    fn default() -> Self {
        Self {
            title: None,
            absolute: false,
            reorder: true,
            size: (1100, 950),
            max_cells: None,
        }
    }
}

/// A pooled matrix: `rows × cols` cells, each covering `row_block ×
/// col_block` entries of the original (the last ones may be smaller).
#[derive(Debug, Clone, PartialEq)]
pub struct PooledMatrix {
    /// Cell rows.
    pub rows: usize,
    /// Cell columns.
    pub cols: usize,
    /// Original rows per cell row.
    pub row_block: usize,
    /// Original columns per cell column.
    pub col_block: usize,
    /// Row-major cell values: the entry of largest magnitude in the block.
    pub data: Vec<f32>,
}

/// Max-|value| pooling of `sim` with its rows taken in `row_order` (a
/// permutation of `0..rows`) into at most `max_rows × max_cols` cells.
pub fn pool_max_abs(
    sim: &SimilarityMatrix,
    row_order: &[usize],
    max_rows: usize,
    max_cols: usize,
) -> Result<PooledMatrix> {
    let (n_rows, n_cols) = (sim.rows(), sim.cols());
    if row_order.len() != n_rows || row_order.iter().any(|&r| r >= n_rows) {
        return Err(invalid(
            "row_order",
            format!("must index the {n_rows} rows"),
        ));
    }
    let row_block = n_rows.div_ceil(max_rows.max(1)).max(1);
    let col_block = n_cols.div_ceil(max_cols.max(1)).max(1);
    let rows = n_rows.div_ceil(row_block);
    let cols = n_cols.div_ceil(col_block);
    let mut data = vec![0.0f32; rows * cols];
    for (rank, &r) in row_order.iter().enumerate() {
        let out = &mut data[(rank / row_block) * cols..(rank / row_block + 1) * cols];
        for (j, &x) in sim.data()[r * n_cols..(r + 1) * n_cols].iter().enumerate() {
            let cell = &mut out[j / col_block];
            if x.abs() > cell.abs() {
                *cell = x;
            }
        }
    }
    Ok(PooledMatrix {
        rows,
        cols,
        row_block,
        col_block,
        data,
    })
}

/// Diverging blue–white–red (ColorBrewer RdBu stops) for `v ∈ [−1, 1]`.
pub(crate) fn rdbu(v: f32) -> RGBColor {
    const STOPS: [(f32, [f32; 3]); 5] = [
        (-1.0, [33.0, 102.0, 172.0]),
        (-0.5, [146.0, 197.0, 222.0]),
        (0.0, [247.0, 247.0, 247.0]),
        (0.5, [244.0, 165.0, 130.0]),
        (1.0, [178.0, 24.0, 43.0]),
    ];
    let v = v.clamp(-1.0, 1.0);
    let k = STOPS.windows(2).position(|w| v <= w[1].0).unwrap_or(3);
    let ((a, ca), (b, cb)) = (STOPS[k], STOPS[k + 1]);
    let t = (v - a) / (b - a);
    let c = |i: usize| (ca[i] + t * (cb[i] - ca[i])).round() as u8;
    RGBColor(c(0), c(1), c(2))
}

/// Draws the heatmap of a signed similarity matrix `[S, N]` (rows = SAE
/// latents, columns = true features) into `path` (`.png` or `.svg`).
pub fn plot_feature_similarity(
    sim: &SimilarityMatrix,
    path: &Path,
    options: &HeatmapOptions,
) -> Result<()> {
    if sim.rows() == 0 || sim.cols() == 0 {
        return Err(invalid("similarity matrix", "has no rows or no columns"));
    }
    let order = if options.reorder {
        best_feature_ordering(&sim.row_argmax_abs())
    } else {
        (0..sim.rows()).collect()
    };
    let svg = super::render::PlotFormat::from_path(path)? == super::render::PlotFormat::Svg;
    let budget = options
        .max_cells
        .unwrap_or(if svg { 200 } else { 1000 })
        .max(1);
    let (w, h) = options.size;
    let px_cols = (w as usize).saturating_sub(260).max(50);
    let px_rows = (h as usize).saturating_sub(170).max(50);
    let pooled = pool_max_abs(sim, &order, budget.min(px_rows), budget.min(px_cols))?;
    render_to!(path, options.size, "similarity heatmap", |root| draw(
        &root, sim, &pooled, options
    ))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    sim: &SimilarityMatrix,
    p: &PooledMatrix,
    o: &HeatmapOptions,
) -> Result<()> {
    let e = |x| plot_err("similarity heatmap", x);
    root.fill(&WHITE).map_err(e)?;
    let (w, _) = root.dim_in_pixel();
    let (main, bar) = root.split_horizontally(w.saturating_sub(130));
    let mut title = o
        .title
        .clone()
        .unwrap_or_else(|| "Cosine similarity with true features".into());
    if p.row_block > 1 || p.col_block > 1 {
        title.push_str(&format!(
            " (max-|cos| pooled {}×{} blocks)",
            p.row_block, p.col_block
        ));
    }
    let (n_rows, n_cols) = (sim.rows() as f64, sim.cols() as f64);
    let mut chart = ChartBuilder::on(&main)
        .caption(title, (FONT, 24))
        .margin(15)
        .x_label_area_size(55)
        .y_label_area_size(75)
        .build_cartesian_2d(0f64..n_cols, 0f64..n_rows)
        .map_err(e)?;
    let ylabel = if o.reorder {
        "SAE latent (sorted by best-matching feature)"
    } else {
        "SAE latent"
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("True feature")
        .y_desc(ylabel)
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(e)?;
    let (rb, cb) = (p.row_block as f64, p.col_block as f64);
    chart
        .draw_series((0..p.rows).flat_map(|i| {
            (0..p.cols).map(move |j| {
                let v = p.data[i * p.cols + j];
                let color = if o.absolute { rdbu(v.abs()) } else { rdbu(v) };
                let (x0, y0) = (j as f64 * cb, i as f64 * rb);
                Rectangle::new(
                    [(x0, y0), ((x0 + cb).min(n_cols), (y0 + rb).min(n_rows))],
                    color.filled(),
                )
            })
        }))
        .map_err(e)?;
    draw_colorbar(&bar, o.absolute).map_err(e)
}

fn draw_colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    absolute: bool,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let lo = if absolute { 0.0 } else { -1.0 };
    let mut chart = ChartBuilder::on(area)
        .margin_top(60)
        .margin_bottom(70)
        .margin_right(15)
        .y_label_area_size(60)
        .caption(if absolute { "|cos|" } else { "cos" }, (FONT, 18))
        .build_cartesian_2d(0f64..1.0, lo..1.0f64)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(if absolute { 6 } else { 9 })
        .label_style((FONT, 15))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()?;
    let steps = 200;
    chart.draw_series((0..steps).map(|k| {
        let a = lo + (1.0 - lo) * k as f64 / steps as f64;
        let b = lo + (1.0 - lo) * (k + 1) as f64 / steps as f64;
        Rectangle::new([(0.0, a), (1.0, b)], rdbu(((a + b) / 2.0) as f32).filled())
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_keeps_the_largest_magnitude_with_sign() {
        let sim = SimilarityMatrix::from_vec(
            3,
            4,
            vec![
                0.1, -0.9, 0.2, 0.3, /**/ 0.5, 0.0, 0.0, -0.4, /**/ 0.0, 0.0, 0.8, 0.0,
            ],
        )
        .unwrap();
        let p = pool_max_abs(&sim, &[2, 0, 1], 2, 2).unwrap();
        assert_eq!((p.rows, p.cols, p.row_block, p.col_block), (2, 2, 2, 2));
        // Cell rows: ranks {0, 1} = original rows {2, 0}; {2} = row 1.
        assert_eq!(p.data, vec![-0.9, 0.8, 0.5, -0.4]);
        assert!(pool_max_abs(&sim, &[0, 1], 2, 2).is_err());
    }

    #[test]
    fn colormap_endpoints() {
        assert_eq!(rdbu(-1.0), RGBColor(33, 102, 172));
        assert_eq!(rdbu(0.0), RGBColor(247, 247, 247));
        assert_eq!(rdbu(2.0), RGBColor(178, 24, 43));
    }
}
