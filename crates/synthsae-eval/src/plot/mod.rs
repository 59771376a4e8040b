//! Plots with `plotters`, PNG or SVG by the output file's extension.
//!
//! Text uses DejaVu Sans embedded in the crate (`assets/`, registered with
//! plotters' `ab_glyph` font registry on first use), so no system font is
//! looked up at run time. Files are written to a temporary name beside the
//! target and renamed, so a half-written plot is never visible.

pub mod absorption;
pub mod curves;
pub mod firing;
pub mod heatmap;
mod render;
pub mod sweep;

pub use absorption::{absorption_points, plot_absorption, AbsorptionPlotOptions};
pub use curves::{plot_training_curves, read_metrics_log, CurvesOptions, MetricsLog};
pub use firing::{plot_firing_rate_histogram, FiringOptions};
pub use heatmap::{plot_feature_similarity, pool_max_abs, HeatmapOptions, PooledMatrix};
pub use render::PlotFormat;
pub use sweep::{plot_sweep_metrics, SweepPanel, SweepSeries};
