//! Spreading feature vectors apart (sae-lens `orthogonalize_embeddings`).
//!
//! The objective is the reference's
//!
//! ```text
//! L(E) = Σ_{i≠j} (e_i·e_j)² + N · Σ_i (‖e_i‖² − 1)²        E: [N, D]
//! ```
//!
//! minimised with Adam (β 0.9/0.999, ε 1e-8), one step per full pass. Instead
//! of autodiff over `[chunk, N]` Gram blocks, the gradient is computed in
//! closed form and re-associated so no `N × N` product is ever formed:
//!
//! ```text
//! ∇L = 4 · ( E (EᵀE) − s ⊙ E + N (s − 1) ⊙ E ),   s_i = ‖e_i‖²
//! ```
//!
//! since `(G − diag G) E = E (EᵀE) − s ⊙ E` with `G = E Eᵀ`. A step costs two
//! `N × D × D` products (`O(N·D²)` instead of `O(N²·D)`) and `O(N·D + D²)`
//! memory. The loss is `‖EᵀE‖²_F − Σ s² + N Σ (s − 1)²` by the same identity.
//! The final report (mean and max |cos| over pairs) is computed in row
//! chunks of `chunk_size`, `O(chunk·N)` memory.

use burn::tensor::{backend::Backend, Bool, Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use synthsae_host::try_to_vec;

/// Orthogonalisation settings (the keys of sae-lens `OrthogonalizationConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrthogonalizationConfig {
    /// Adam steps (each one full pass over all vectors).
    pub num_steps: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Row chunk for the pairwise |cos| report.
    pub chunk_size: usize,
}

impl Default for OrthogonalizationConfig {
    fn default() -> Self {
        Self {
            num_steps: 200,
            lr: 0.01,
            chunk_size: 1024,
        }
    }
}

impl OrthogonalizationConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(invalid(
                "orthogonalization.lr",
                format!("must be positive, got {}", self.lr),
            ));
        }
        if self.chunk_size == 0 {
            return Err(invalid(
                "orthogonalization.chunk_size",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// What orthogonalisation achieved: the superposition a user got.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OrthogonalizationReport {
    /// Steps run.
    pub num_steps: usize,
    /// Objective at the start of the last step (NaN when no step ran).
    pub final_loss: f64,
    /// Mean |cos| over unordered pairs of the returned unit vectors.
    pub mean_abs_cos: f64,
    /// Max |cos| over pairs of the returned unit vectors.
    pub max_abs_cos: f64,
}

/// Rows divided by `max(‖row‖, 1e-8)`. `[N, D] → [N, D]`.
pub fn normalize_rows<B: Backend>(e: Tensor<B, 2>) -> Tensor<B, 2> {
    let norms = e.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-8);
    e / norms
}

/// Runs the optimisation on `embeddings` `[N, D]` and returns unit-norm rows
/// `[N, D]` with a report. `progress(step, loss)` is called after each step
/// when given (computing the loss then costs one host sync per step).
pub fn orthogonalize_embeddings<B: Backend>(
    embeddings: Tensor<B, 2>,
    config: &OrthogonalizationConfig,
    progress: Option<&mut dyn FnMut(usize, f64)>,
) -> Result<(Tensor<B, 2>, OrthogonalizationReport)> {
    let (e, final_loss) = optimize(embeddings, config, progress)?;
    let (mean_abs_cos, max_abs_cos) = pairwise_abs_cos(e.clone(), config.chunk_size)?;
    Ok((
        e,
        OrthogonalizationReport {
            num_steps: config.num_steps,
            final_loss,
            mean_abs_cos,
            max_abs_cos,
        },
    ))
}

/// The optimisation alone: `[N, D] → [N, D]` unit rows, and the objective at
/// the start of the last step (NaN when no step ran).
///
/// The two products run on the backend's device; the rest of a step (row
/// norms, gradient, Adam moments, update) is one fused, parallel pass over
/// host memory, where unfused tensor ops would make ~18 passes over `[N, D]`.
/// The moments live on the host; each step moves `E` and `E (EᵀE)` across
/// once, which costs little next to the products on any backend.
pub fn optimize<B: Backend>(
    embeddings: Tensor<B, 2>,
    config: &OrthogonalizationConfig,
    mut progress: Option<&mut dyn FnMut(usize, f64)>,
) -> Result<(Tensor<B, 2>, f64)> {
    config.validate()?;
    let device = embeddings.device();
    let [n, d] = embeddings.dims();
    if n == 0 || d == 0 {
        return Ok((embeddings, f64::NAN));
    }
    let nf = n as f32;
    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f32);
    let mut e = try_to_vec(embeddings, "embeddings")?;
    e.par_chunks_mut(d).for_each(normalize_row);
    let mut m = vec![0.0f32; n * d];
    let mut v = vec![0.0f32; n * d];
    let mut last_loss = f64::NAN;
    for step in 1..=config.num_steps {
        let et = Tensor::<B, 2>::from_data(TensorData::new(e.clone(), [n, d]), &device);
        let gram = et.clone().transpose().matmul(et.clone()); // [D, D]
        let prod = try_to_vec(et.matmul(gram.clone()), "E (EᵀE)")?; // [N, D]
        let frob: f64 = try_to_vec(gram, "EᵀE")?
            .iter()
            .map(|&g| (g as f64) * (g as f64))
            .sum();
        let (bc1, bc2) = (1.0 - beta1.powi(step as i32), 1.0 - beta2.powi(step as i32));
        let step_size = (config.lr / bc1) as f32;
        let sqrt_bc2 = bc2.sqrt() as f32;
        let (b1, b2) = (beta1 as f32, beta2 as f32);
        // Per row: s = ‖e‖², ∇ = 4 (E EᵀE + ((N − 1) s − N) e), Adam update.
        let (sum_s2, sum_diag) = e
            .par_chunks_mut(d)
            .zip(m.par_chunks_mut(d))
            .zip(v.par_chunks_mut(d))
            .zip(prod.par_chunks(d))
            .map(|(((er, mr), vr), pr)| {
                let s: f32 = er.iter().map(|x| x * x).sum();
                let coef = (nf - 1.0) * s - nf;
                for k in 0..d {
                    let g = 4.0 * (pr[k] + coef * er[k]);
                    mr[k] = b1 * mr[k] + (1.0 - b1) * g;
                    vr[k] = b2 * vr[k] + (1.0 - b2) * g * g;
                    er[k] -= step_size * mr[k] / (vr[k].sqrt() / sqrt_bc2 + eps);
                }
                let s = s as f64;
                (s * s, (s - 1.0) * (s - 1.0))
            })
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        // The off-diagonal part is a difference of large terms; it cannot be
        // negative, so clamp the cancellation error.
        last_loss = (frob - sum_s2).max(0.0) + n as f64 * sum_diag;
        if let Some(cb) = progress.as_mut() {
            cb(step, last_loss);
        }
    }
    e.par_chunks_mut(d).for_each(normalize_row);
    Ok((
        Tensor::from_data(TensorData::new(e, [n, d]), &device),
        last_loss,
    ))
}

fn normalize_row(row: &mut [f32]) {
    let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-8);
    row.iter_mut().for_each(|x| *x /= norm);
}

/// Mean and max of `|e_i · e_j|` over unordered pairs `i < j` of the rows of
/// `e` `[N, D]`, in row chunks (`O(chunk · N)` memory, half the products).
/// Returns `(0, 0)` for `N < 2`.
pub fn pairwise_abs_cos<B: Backend>(e: Tensor<B, 2>, chunk_size: usize) -> Result<(f64, f64)> {
    let [n, _] = e.dims();
    if n < 2 {
        return Ok((0.0, 0.0));
    }
    let chunk = chunk_size.max(1);
    let device = e.device();
    let (mut sum, mut max) = (0.0f64, 0.0f64);
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let rows = e.clone().narrow(0, start, end - start);
        let rest = e.clone().narrow(0, start, n - start);
        let g = rows.matmul(rest.transpose()).abs(); // [c, n - start]
                                                     // Keep only pairs j > i (strictly upper triangle of the block).
        let mask = Tensor::<B, 2, Bool>::triu_mask([end - start, n - start], 1, &device);
        let g = g.mask_fill(mask, 0.0);
        let stats = Tensor::cat(vec![g.clone().sum().reshape([1]), g.max().reshape([1])], 0);
        let v = try_to_vec(stats, "pairwise |cos|")?;
        sum += v[0] as f64;
        max = max.max(v[1] as f64);
        start = end;
    }
    Ok((sum / (n as f64 * (n as f64 - 1.0) / 2.0), max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    type B = NdArray;

    fn random(n: usize, d: usize, seed: u64) -> Tensor<B, 2> {
        use crate::rng::{ChaChaSource, RandomSource};
        let mut v = vec![0.0f32; n * d];
        ChaChaSource::new(Some(seed)).fill_normal(&mut v);
        Tensor::from_data(TensorData::new(v, [n, d]), &Default::default())
    }

    /// The objective and gradient computed directly from `G = E Eᵀ` (f64).
    fn direct_loss_grad(e: &[f32], n: usize, d: usize) -> (f64, Vec<f64>) {
        let dot = |i: usize, j: usize| -> f64 {
            (0..d)
                .map(|k| e[i * d + k] as f64 * e[j * d + k] as f64)
                .sum()
        };
        let mut loss = 0.0;
        let mut grad = vec![0.0; n * d];
        for i in 0..n {
            for j in 0..n {
                let g = dot(i, j);
                if i != j {
                    loss += g * g;
                    for k in 0..d {
                        grad[i * d + k] += 4.0 * g * e[j * d + k] as f64;
                    }
                } else {
                    loss += n as f64 * (g - 1.0).powi(2);
                    for k in 0..d {
                        grad[i * d + k] += 4.0 * n as f64 * (g - 1.0) * e[i * d + k] as f64;
                    }
                }
            }
        }
        (loss, grad)
    }

    #[test]
    fn first_step_follows_the_direct_gradient() {
        // Adam's first step moves every entry by lr · g/(|g| + ε) ≈ lr · sign(g),
        // so the step taken by `optimize` reveals the sign of its gradient and
        // its reported loss must equal the directly computed objective.
        let (n, d) = (9, 4);
        let e0 = normalize_rows(random(n, d, 1));
        let host = try_to_vec(e0.clone(), "e").unwrap();
        let (want_loss, want_grad) = direct_loss_grad(&host, n, d);
        let lr = 1e-3;
        let cfg = OrthogonalizationConfig {
            num_steps: 1,
            lr,
            chunk_size: 4,
        };
        let mut loss = 0.0;
        let mut cb = |_: usize, l: f64| loss = l;
        // `optimize` renormalises rows at the end: compare with the
        // normalised direct update.
        let (e1, _) = optimize(e0, &cfg, Some(&mut cb)).unwrap();
        let e1 = try_to_vec(e1, "e1").unwrap();
        assert!(
            (loss - want_loss).abs() < 1e-4 * want_loss.max(1.0),
            "{loss} vs {want_loss}"
        );
        for i in 0..n {
            let raw: Vec<f64> = (0..d)
                .map(|k| host[i * d + k] as f64 - lr * want_grad[i * d + k].signum())
                .collect();
            let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
            for k in 0..d {
                if want_grad[i * d + k].abs() > 1e-3 {
                    assert!(
                        (e1[i * d + k] as f64 - raw[k] / norm).abs() < 1e-5,
                        "row {i} col {k}"
                    );
                }
            }
        }
    }

    #[test]
    fn reduces_interference_and_reports_it() {
        let (n, d) = (64, 16);
        let e0 = normalize_rows(random(n, d, 2));
        let (m0, x0) = pairwise_abs_cos(e0.clone(), 7).unwrap();
        let mut losses = Vec::new();
        let mut cb = |_: usize, l: f64| losses.push(l);
        let cfg = OrthogonalizationConfig {
            num_steps: 60,
            lr: 0.01,
            chunk_size: 10,
        };
        let (e, report) = orthogonalize_embeddings(e0, &cfg, Some(&mut cb)).unwrap();
        assert_eq!(losses.len(), 60);
        assert!(
            losses[59] < 0.8 * losses[0],
            "{:?}",
            (losses[0], losses[59])
        );
        assert!(report.mean_abs_cos < m0, "{} vs {m0}", report.mean_abs_cos);
        assert!(report.max_abs_cos <= x0 + 1e-6);
        // Rows are unit norm.
        let norms = try_to_vec(e.clone().powi_scalar(2).sum_dim(1), "n").unwrap();
        assert!(norms.iter().all(|x| (x - 1.0).abs() < 1e-5));
        // The report equals a direct computation.
        let h = try_to_vec(e, "e").unwrap();
        let (mut sum, mut max) = (0.0f64, 0.0f64);
        for i in 0..n {
            for j in i + 1..n {
                let c: f64 = (0..d)
                    .map(|k| h[i * d + k] as f64 * h[j * d + k] as f64)
                    .sum::<f64>()
                    .abs();
                sum += c;
                max = max.max(c);
            }
        }
        let mean = sum / (n * (n - 1) / 2) as f64;
        assert!((report.mean_abs_cos - mean).abs() < 1e-5);
        assert!((report.max_abs_cos - max).abs() < 1e-5);
    }

    #[test]
    fn orthogonalises_when_n_le_d() {
        let cfg = OrthogonalizationConfig {
            num_steps: 300,
            lr: 0.01,
            chunk_size: 4,
        };
        let (_, report) = orthogonalize_embeddings(random(8, 16, 3), &cfg, None).unwrap();
        assert!(report.max_abs_cos < 0.05, "{report:?}");
    }

    #[test]
    fn bad_config_is_rejected() {
        let cfg = OrthogonalizationConfig {
            lr: 0.0,
            ..Default::default()
        };
        let e = orthogonalize_embeddings(random(4, 2, 0), &cfg, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("orthogonalization.lr"), "{e}");
    }
}
