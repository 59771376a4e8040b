//! The scalar results of one training step, read back from the device in
//! one small transfer per step (the only host sync of a step: the loss,
//! its terms, the gradient norm and the batch L0 are needed on the host to
//! check they are finite and to feed the progress display and the L0 tuner).

use burn::prelude::*;
use synthsae_host::to_vec;

/// The parts of the explained variance of a batch (log steps only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct VarianceParts {
    /// Mean over rows of `‖x̂ − x‖²`.
    pub(super) error: f32,
    /// Mean over rows of `‖x − mean(x)‖²`.
    pub(super) total: f32,
}

impl VarianceParts {
    /// `1 − error / total`, or 0 when the batch has no variance.
    pub(super) fn explained_variance(&self) -> f64 {
        let (err, var) = (self.error as f64, self.total as f64);
        if var > 0.0 {
            1.0 - err / var
        } else {
            0.0
        }
    }
}

/// The scalars of one step on the host.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StepScalars {
    /// Sum of the loss terms.
    pub(super) overall_loss: f32,
    /// Every loss term by its sae-lens name.
    pub(super) terms: Vec<(String, f32)>,
    /// Global gradient norm before clipping.
    pub(super) grad_norm: f32,
    /// Mean number of latents firing per row of the batch.
    pub(super) batch_l0: f32,
    /// Explained-variance parts, on log steps.
    pub(super) variance: Option<VarianceParts>,
}

impl StepScalars {
    /// What is not finite, if anything: the first non-finite loss term (or
    /// `overall_loss` when every term is finite but their sum is not), else
    /// the gradient norm.
    pub(super) fn non_finite(&self) -> Option<String> {
        if !self.overall_loss.is_finite() {
            Some(
                self.terms
                    .iter()
                    .find(|(_, v)| !v.is_finite())
                    .map(|(n, _)| n.clone())
                    .unwrap_or_else(|| "overall_loss".into()),
            )
        } else if !self.grad_norm.is_finite() {
            Some("gradient norm".to_string())
        } else {
            None
        }
    }
}

/// [`StepScalars`] while still on the device, each `[1]`.
pub(super) struct ScalarTensors<B: Backend> {
    pub(super) overall_loss: Tensor<B, 1>,
    pub(super) terms: Vec<(String, Tensor<B, 1>)>,
    pub(super) grad_norm: Tensor<B, 1>,
    pub(super) batch_l0: Tensor<B, 1>,
    /// `(error, total)` of [`VarianceParts`].
    pub(super) variance: Option<(Tensor<B, 1>, Tensor<B, 1>)>,
}

impl<B: Backend> ScalarTensors<B> {
    /// Reads every scalar back in one transfer: the tensors are joined as
    /// `[overall_loss, terms…, grad_norm, batch_l0, (error, total)]` and
    /// split again in that order.
    pub(super) fn read_back(self) -> StepScalars {
        let n_terms = self.terms.len();
        let (names, terms): (Vec<String>, Vec<Tensor<B, 1>>) = self.terms.into_iter().unzip();
        let mut joined = Vec::with_capacity(n_terms + 5);
        joined.push(self.overall_loss);
        joined.extend(terms);
        joined.push(self.grad_norm);
        joined.push(self.batch_l0);
        let has_variance = self.variance.is_some();
        if let Some((error, total)) = self.variance {
            joined.push(error);
            joined.push(total);
        }
        let values = to_vec(Tensor::cat(joined, 0));
        let mut it = values.into_iter();
        let mut next = || it.next().expect("one value per scalar read back");
        StepScalars {
            overall_loss: next(),
            terms: names.into_iter().map(|n| (n, next())).collect(),
            grad_norm: next(),
            batch_l0: next(),
            variance: has_variance.then(|| VarianceParts {
                error: next(),
                total: next(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn read_back_names_every_scalar() {
        let device = Default::default();
        let s = |v: f32| Tensor::<NdArray, 1>::from_floats([v], &device);
        let scalars = ScalarTensors {
            overall_loss: s(3.0),
            terms: vec![("mse_loss".into(), s(2.0)), ("l1_loss".into(), s(1.0))],
            grad_norm: s(0.5),
            batch_l0: s(4.0),
            variance: Some((s(1.0), s(4.0))),
        }
        .read_back();
        assert_eq!(scalars.overall_loss, 3.0);
        assert_eq!(
            scalars.terms,
            vec![("mse_loss".into(), 2.0), ("l1_loss".into(), 1.0)]
        );
        assert_eq!((scalars.grad_norm, scalars.batch_l0), (0.5, 4.0));
        assert_eq!(scalars.variance.unwrap().explained_variance(), 0.75);
        assert_eq!(scalars.non_finite(), None);

        let bad = StepScalars {
            overall_loss: f32::NAN,
            terms: vec![("mse_loss".into(), 1.0), ("l1_loss".into(), f32::INFINITY)],
            variance: None,
            ..scalars.clone()
        };
        assert_eq!(bad.non_finite().as_deref(), Some("l1_loss"));
        let bad = StepScalars {
            grad_norm: f32::NAN,
            ..scalars
        };
        assert_eq!(bad.non_finite().as_deref(), Some("gradient norm"));
    }
}
