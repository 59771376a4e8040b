//! The per-feature parameters of an activation generator: the input form
//! [`PerFeature`] (one value for all features, or one per feature) and the
//! validated `[N]` vectors [`FeatureParams`], with the one magnitude law of
//! a firing, `relu(mean_f + std_f · n)`.
//!
//! Both the generator and the modifiers read them (a modifier gets
//! [`FeatureParams`], not the generator), so they sit below both.

use rayon::prelude::*;

use crate::error::{bad_shape, invalid, Result};
use crate::rng::{block_rng, normal, SampleRng};
use synthsae_host::Csr;

/// Entries handled by one task of [`FeatureParams::draw_magnitudes`].
const ENTRY_BLOCK: usize = 8192;

/// A per-feature parameter: one value for all features, or one per feature.
#[derive(Debug, Clone, PartialEq)]
pub enum PerFeature {
    /// Broadcast to every feature.
    Scalar(f32),
    /// `[N]` values.
    Vector(Vec<f32>),
}

impl From<f32> for PerFeature {
    fn from(v: f32) -> Self {
        Self::Scalar(v)
    }
}

impl From<Vec<f32>> for PerFeature {
    fn from(v: Vec<f32>) -> Self {
        Self::Vector(v)
    }
}

impl From<&[f32]> for PerFeature {
    fn from(v: &[f32]) -> Self {
        Self::Vector(v.to_vec())
    }
}

impl PerFeature {
    fn resolve(self, n: usize, field: &str) -> Result<Vec<f32>> {
        match self {
            Self::Scalar(v) => Ok(vec![v; n]),
            Self::Vector(v) if v.len() == n => Ok(v),
            Self::Vector(v) => Err(bad_shape(
                field,
                format!("[N] = [{n}] or a scalar"),
                &[v.len()],
            )),
        }
    }
}

/// The validated per-feature parameters of a generator, `[N]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureParams {
    firing_probabilities: Vec<f32>,
    std_firing_magnitudes: Vec<f32>,
    mean_firing_magnitudes: Vec<f32>,
    /// `ln(1 − p_j)`, for geometric skips.
    log_q: Vec<f64>,
}

impl FeatureParams {
    /// Parameters of `num_features` features:
    ///
    /// * `firing_probabilities`: each in `(0, 1]`;
    /// * `std_firing_magnitudes`: each `>= 0` (0: every firing has exactly the mean);
    /// * `mean_firing_magnitudes`: each `> 0`.
    ///
    /// Each may be a scalar or a vector `[N]`.
    pub fn new(
        num_features: usize,
        firing_probabilities: impl Into<PerFeature>,
        std_firing_magnitudes: impl Into<PerFeature>,
        mean_firing_magnitudes: impl Into<PerFeature>,
    ) -> Result<Self> {
        let n = num_features;
        if n == 0 {
            return Err(invalid("num_features", "must be at least 1"));
        }
        let p = firing_probabilities
            .into()
            .resolve(n, "firing_probabilities")?;
        let std = std_firing_magnitudes
            .into()
            .resolve(n, "std_firing_magnitudes")?;
        let mean = mean_firing_magnitudes
            .into()
            .resolve(n, "mean_firing_magnitudes")?;
        if let Some((i, v)) = p.iter().enumerate().find(|(_, &v)| !(v > 0.0 && v <= 1.0)) {
            return Err(invalid(
                format!("firing_probabilities[{i}]"),
                format!("{v} is outside (0, 1]"),
            ));
        }
        if let Some((i, v)) = std
            .iter()
            .enumerate()
            .find(|(_, &v)| !(v >= 0.0 && v.is_finite()))
        {
            return Err(invalid(
                format!("std_firing_magnitudes[{i}]"),
                format!("{v} must be finite and >= 0"),
            ));
        }
        if let Some((i, v)) = mean
            .iter()
            .enumerate()
            .find(|(_, &v)| !(v > 0.0 && v.is_finite()))
        {
            return Err(invalid(
                format!("mean_firing_magnitudes[{i}]"),
                format!("{v} must be finite and > 0"),
            ));
        }
        let log_q = p.iter().map(|&x| (-(x as f64)).ln_1p()).collect();
        Ok(Self {
            firing_probabilities: p,
            std_firing_magnitudes: std,
            mean_firing_magnitudes: mean,
            log_q,
        })
    }

    /// `N`.
    pub fn num_features(&self) -> usize {
        self.firing_probabilities.len()
    }

    /// Firing probabilities `[N]`.
    pub fn firing_probabilities(&self) -> &[f32] {
        &self.firing_probabilities
    }

    /// Standard deviations of the firing magnitudes `[N]`.
    pub fn std_firing_magnitudes(&self) -> &[f32] {
        &self.std_firing_magnitudes
    }

    /// Means of the firing magnitudes `[N]`.
    pub fn mean_firing_magnitudes(&self) -> &[f32] {
        &self.mean_firing_magnitudes
    }

    /// `ln(1 − p_j)` `[N]` (`−∞` where `p_j = 1`).
    pub(crate) fn log_q(&self) -> &[f64] {
        &self.log_q
    }

    /// A firing magnitude of feature `f` from a fresh standard normal `n`:
    /// `relu(mean_f + std_f · n)`. Always draws `n`; the reference sampler
    /// uses it as is, the fast paths through [`magnitude`](Self::magnitude).
    #[inline(always)]
    pub(crate) fn drawn_magnitude(&self, f: u32, rng: &mut SampleRng) -> f32 {
        let (m, s) = (
            self.mean_firing_magnitudes[f as usize],
            self.std_firing_magnitudes[f as usize],
        );
        relu_magnitude(m, s, rng)
    }

    /// A firing magnitude of feature `f`: exactly `mean_f` without a draw
    /// when `std_f = 0` (the value [`drawn_magnitude`](Self::drawn_magnitude)
    /// would give, as `mean_f > 0`), else the drawn one.
    #[inline(always)]
    pub(crate) fn magnitude(&self, f: u32, rng: &mut SampleRng) -> f32 {
        let (m, s) = (
            self.mean_firing_magnitudes[f as usize],
            self.std_firing_magnitudes[f as usize],
        );
        if s == 0.0 {
            m
        } else {
            relu_magnitude(m, s, rng)
        }
    }

    /// Gives every entry of `batch` its [`magnitude`](Self::magnitude), in
    /// blocks of `ENTRY_BLOCK` entries, each with its own stream derived
    /// from `key` (so the values do not depend on the number of threads).
    pub(crate) fn draw_magnitudes(&self, batch: &mut Csr, key: u64) {
        let (indices, values) = batch.indices_and_values_mut();
        values
            .par_chunks_mut(ENTRY_BLOCK)
            .zip(indices.par_chunks(ENTRY_BLOCK))
            .enumerate()
            .for_each(|(blk, (vals, idx))| {
                let mut rng = block_rng(key, blk as u64);
                for (v, &f) in vals.iter_mut().zip(idx) {
                    *v = self.magnitude(f, &mut rng);
                }
            });
    }
}

/// The magnitude law of a firing, `relu(mean + std · n)` with a fresh
/// standard normal `n` (the one place it is written).
#[inline(always)]
fn relu_magnitude(mean: f32, std: f32, rng: &mut SampleRng) -> f32 {
    (mean + std * normal(rng)).max(0.0)
}
