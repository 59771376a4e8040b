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

use burn::tensor::{backend::Backend, Bool, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};
use crate::sparse::tensor_to_vec;

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
    mut progress: Option<&mut dyn FnMut(usize, f64)>,
) -> Result<(Tensor<B, 2>, OrthogonalizationReport)> {
    config.validate()?;
    let [n, _d] = embeddings.dims();
    let nf = n as f64;
    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut e = normalize_rows(embeddings);
    let mut m = e.zeros_like();
    let mut v = e.zeros_like();
    let mut last_loss = f64::NAN;
    for step in 1..=config.num_steps {
        let s = e.clone().powi_scalar(2).sum_dim(1); // [N, 1]
        let gram = e.clone().transpose().matmul(e.clone()); // [D, D]
        let want_loss = progress.is_some() || step == config.num_steps;
        if want_loss {
            let frob = gram.clone().powi_scalar(2).sum();
            let s2 = s.clone().powi_scalar(2).sum();
            let diag = (s.clone() - 1.0).powi_scalar(2).sum() * nf;
            let loss = frob - s2 + diag;
            last_loss = tensor_to_vec(loss, "orthogonalization loss")?[0] as f64;
        }
        // ∇L = 4 (E G' + ((N − 1) s − N) ⊙ E), G' = EᵀE.
        let coef = s * (nf - 1.0) - nf;
        let grad = (e.clone().matmul(gram) + e.clone() * coef) * 4.0;
        m = m * beta1 + grad.clone() * (1.0 - beta1);
        v = v * beta2 + grad.powi_scalar(2) * (1.0 - beta2);
        let bc1 = 1.0 - beta1.powi(step as i32);
        let bc2 = 1.0 - beta2.powi(step as i32);
        let denom = v.clone().sqrt() / bc2.sqrt() + eps;
        e = e - m.clone() / denom * (config.lr / bc1);
        if let Some(cb) = progress.as_mut() {
            cb(step, last_loss);
        }
    }
    let e = normalize_rows(e);
    let (mean_abs_cos, max_abs_cos) = pairwise_abs_cos(e.clone(), config.chunk_size)?;
    Ok((
        e,
        OrthogonalizationReport {
            num_steps: config.num_steps,
            final_loss: last_loss,
            mean_abs_cos,
            max_abs_cos,
        },
    ))
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
        let rows = e.clone().slice([start..end]);
        let rest = e.clone().slice([start..n]);
        let g = rows.matmul(rest.transpose()).abs(); // [c, n - start]
                                                     // Keep only pairs j > i (strictly upper triangle of the block).
        let mask = Tensor::<B, 2, Bool>::triu_mask([end - start, n - start], 1, &device);
        let g = g.mask_fill(mask, 0.0);
        let stats = Tensor::cat(vec![g.clone().sum().reshape([1]), g.max().reshape([1])], 0);
        let v = tensor_to_vec(stats, "pairwise |cos|")?;
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
    fn closed_form_gradient_matches_direct() {
        let (n, d) = (9, 4);
        let e = random(n, d, 1) * 0.7;
        let host = tensor_to_vec(e.clone(), "e").unwrap();
        let (want_loss, want_grad) = direct_loss_grad(&host, n, d);
        let s = e.clone().powi_scalar(2).sum_dim(1);
        let gram = e.clone().transpose().matmul(e.clone());
        let loss = gram.clone().powi_scalar(2).sum() - s.clone().powi_scalar(2).sum()
            + (s.clone() - 1.0).powi_scalar(2).sum() * n as f64;
        let grad = (e.clone().matmul(gram) + e.clone() * (s * (n as f64 - 1.0) - n as f64)) * 4.0;
        let loss = tensor_to_vec(loss, "loss").unwrap()[0] as f64;
        assert!(
            (loss - want_loss).abs() < 1e-4 * want_loss.abs().max(1.0),
            "{loss} vs {want_loss}"
        );
        for (a, b) in tensor_to_vec(grad, "grad").unwrap().iter().zip(&want_grad) {
            assert!(
                (*a as f64 - b).abs() < 1e-4 * b.abs().max(1.0),
                "{a} vs {b}"
            );
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
        let norms = tensor_to_vec(e.clone().powi_scalar(2).sum_dim(1), "n").unwrap();
        assert!(norms.iter().all(|x| (x - 1.0).abs() < 1e-5));
        // The report equals a direct computation.
        let h = tensor_to_vec(e, "e").unwrap();
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
