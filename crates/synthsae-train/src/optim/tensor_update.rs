//! The Adam update as tensor operations on the parameters' device: the
//! path of every backend without a host fast path (and the reference the
//! host pass is tested against).

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::param_path::{key, PathMapper, UpdateParam};
use super::settings::AdamSettings;

/// First and second moments of one parameter, flattened to `[numel]`.
#[derive(Debug, Clone)]
pub(super) struct Moments<B: Backend> {
    pub(super) m: Tensor<B, 1>,
    pub(super) v: Tensor<B, 1>,
}

/// Moments by parameter path.
pub(super) type DeviceMoments<B> = BTreeMap<String, Moments<<B as AutodiffBackend>::InnerBackend>>;

/// Step `t ≥ 1` (1-based) of every parameter of `module` that has a
/// gradient. Returns the updated module and the global gradient norm before
/// clipping (`[1]`, on the device; not read back).
pub(super) fn step<B: AutodiffBackend, M: AutodiffModule<B>>(
    settings: &AdamSettings,
    t: i32,
    lr: f64,
    module: M,
    grads: B::Gradients,
    moments: &mut DeviceMoments<B>,
) -> (M, Tensor<B::InnerBackend, 1>) {
    let mut grads = GradientsParams::from_grads(grads, &module);
    let device = module
        .devices()
        .into_iter()
        .next()
        .expect("an SAE has at least one parameter");
    let mut norm = NormVisitor::<B> {
        grads: &grads,
        sum_sq: Tensor::zeros([1], &device),
    };
    module.visit(&mut norm);
    let grad_norm = norm.sum_sq.sqrt();
    let scale = match settings.max_grad_norm {
        Some(max) => (grad_norm.clone().add_scalar(1e-6).recip() * max).clamp_max(1.0),
        None => Tensor::ones([1], &device),
    };
    let mut mapper = PathMapper::new(TensorAdam::<B> {
        lr,
        settings: *settings,
        bias1: 1.0 - settings.beta1.powi(t),
        bias2_sqrt: (1.0 - settings.beta2.powi(t)).sqrt(),
        scale,
        grads: &mut grads,
        moments,
    });
    let module = module.map(&mut mapper);
    (module, grad_norm)
}

/// Sums the squares of every parameter's gradient.
struct NormVisitor<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    sum_sq: Tensor<B::InnerBackend, 1>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for NormVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let s = g.powi_scalar(2).sum();
            self.sum_sq = self.sum_sq.clone() + s;
        }
    }
}

/// The Adam update of one parameter as tensor operations.
struct TensorAdam<'a, B: AutodiffBackend> {
    lr: f64,
    settings: AdamSettings,
    bias1: f64,
    bias2_sqrt: f64,
    scale: Tensor<B::InnerBackend, 1>,
    grads: &'a mut GradientsParams,
    moments: &'a mut DeviceMoments<B>,
}

impl<B: AutodiffBackend> UpdateParam<B> for TensorAdam<'_, B> {
    fn update<const D: usize>(
        &mut self,
        path: &[String],
        id: ParamId,
        tensor: Tensor<B, D>,
    ) -> Result<Tensor<B::InnerBackend, D>, Tensor<B, D>> {
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(id) else {
            return Err(tensor);
        };
        let shape = tensor.shape();
        let numel = shape.num_elements();
        let key = key(path);
        let s = &self.settings;
        let g = grad.reshape([numel]) * self.scale.clone();
        let prev = self.moments.remove(&key);
        let (m, v) = match prev {
            Some(Moments { m, v }) if m.dims()[0] == numel => (
                m * s.beta1 + g.clone() * (1.0 - s.beta1),
                v * s.beta2 + g.powi_scalar(2) * (1.0 - s.beta2),
            ),
            _ => (
                g.clone() * (1.0 - s.beta1),
                g.powi_scalar(2) * (1.0 - s.beta2),
            ),
        };
        let denom = v
            .clone()
            .sqrt()
            .div_scalar(self.bias2_sqrt)
            .add_scalar(s.epsilon);
        let update = (m.clone() / denom).mul_scalar(self.lr / self.bias1);
        let inner = tensor.inner().reshape([numel]) - update;
        self.moments.insert(key, Moments { m, v });
        Ok(inner.reshape(shape))
    }
}
