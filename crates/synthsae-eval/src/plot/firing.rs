//! Histogram of firing rates, true features vs SAE latents, on a log10 axis.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::render::{plot_err, render_to, FONT};
use crate::error::{invalid, Result};

/// Options of [`plot_firing_rate_histogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct FiringOptions {
    /// Figure title (default "Firing rates: true features vs SAE latents").
    pub title: Option<String>,
    /// Image size in pixels (default 1000 × 600).
    pub size: (u32, u32),
    /// Number of bins over the log10 range (default 50).
    pub bins: usize,
}

impl Default for FiringOptions {
    fn default() -> Self {
        Self {
            title: None,
            size: (1000, 600),
            bins: 50,
        }
    }
}

/// Counts of `log10(rate)` in `bins` equal bins over `[lo, hi]`; rates `≤ 0`
/// are not binned (returned separately as the number that never fired).
pub fn log10_histogram(rates: &[f64], lo: f64, hi: f64, bins: usize) -> (Vec<u64>, u64) {
    let mut counts = vec![0u64; bins.max(1)];
    let mut zero = 0;
    let width = (hi - lo) / counts.len() as f64;
    for &r in rates {
        if r > 0.0 && r.is_finite() {
            let k = (((r.log10() - lo) / width).floor().max(0.0) as usize).min(counts.len() - 1);
            counts[k] += 1;
        } else {
            zero += 1;
        }
    }
    (counts, zero)
}

/// Draws overlaid histograms of per-feature (`[N]`) and per-latent (`[S]`)
/// firing rates (fractions of samples in `[0, 1]`) against `log10(rate)`.
/// Features or latents that never fired cannot sit on a log axis: their
/// number is given in the legend.
pub fn plot_firing_rate_histogram(
    true_rates: &[f64],
    sae_rates: &[f64],
    path: &Path,
    options: &FiringOptions,
) -> Result<()> {
    if true_rates.is_empty() && sae_rates.is_empty() {
        return Err(invalid("firing rates", "both sets are empty"));
    }
    let positive = true_rates
        .iter()
        .chain(sae_rates)
        .copied()
        .filter(|r| *r > 0.0 && r.is_finite());
    let min = positive.fold(f64::INFINITY, f64::min);
    let lo = if min.is_finite() {
        min.log10().floor()
    } else {
        -6.0
    };
    let hi = 0.0f64.max(lo + 1.0);
    let bins = options.bins.max(1);
    let (t, tz) = log10_histogram(true_rates, lo, hi, bins);
    let (s, sz) = log10_histogram(sae_rates, lo, hi, bins);
    let labels = [
        format!(
            "true features (N = {}, never fired: {tz})",
            true_rates.len()
        ),
        format!("SAE latents (S = {}, never fired: {sz})", sae_rates.len()),
    ];
    render_to!(path, options.size, "firing-rate histogram", |root| draw(
        &root,
        [&t, &s],
        &labels,
        lo,
        hi,
        options
    ))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    hists: [&Vec<u64>; 2],
    labels: &[String; 2],
    lo: f64,
    hi: f64,
    o: &FiringOptions,
) -> Result<()> {
    let e = |x| plot_err("firing-rate histogram", x);
    root.fill(&WHITE).map_err(e)?;
    let ymax = hists
        .iter()
        .flat_map(|h| h.iter())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let title = o
        .title
        .clone()
        .unwrap_or_else(|| "Firing rates: true features vs SAE latents".into());
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 24))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(lo..hi, 0f64..ymax)
        .map_err(e)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(235, 235, 235))
        .x_desc("log10(firing rate)")
        .y_desc("count")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(e)?;
    let colors = [RGBColor(31, 119, 180), RGBColor(214, 39, 40)];
    for ((h, label), color) in hists.iter().zip(labels).zip(colors) {
        let width = (hi - lo) / h.len() as f64;
        chart
            .draw_series(h.iter().enumerate().filter(|(_, &c)| c > 0).map(|(k, &c)| {
                let x0 = lo + k as f64 * width;
                Rectangle::new(
                    [(x0, 0.0), (x0 + width, c as f64)],
                    color.mix(0.45).filled(),
                )
            }))
            .map_err(e)?
            .label(label.as_str())
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.mix(0.6).filled())
            });
    }
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

    #[test]
    fn histogram_bins_and_zeros() {
        let (h, z) = log10_histogram(&[1.0, 0.1, 0.011, 0.0, 0.5], -2.0, 0.0, 2);
        assert_eq!(z, 1);
        // log10: 0 → last bin (clamped), −1 → bin 1, −1.96 → bin 0, −0.3 → bin 1.
        assert_eq!(h, vec![1, 3]);
    }
}
