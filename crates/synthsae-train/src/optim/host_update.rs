//! The Adam update as one host pass per parameter
//! ([`synthsae_host::AdamRule`]): the path of the CPU autodiff backends,
//! where it replaces a dozen element-wise tensor operations (each allocating
//! a parameter-sized buffer) with the same rule in the same `f32` operation
//! order per element.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::Arc;

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use synthsae_host::kernels::dense::sum_squares;
use synthsae_host::{host_values, AdamRule, AdamUpdate, HostF32};

use super::param_path::{key, PathMapper, UpdateParam};
use super::settings::AdamSettings;

/// Host first and second moments of one parameter, `[numel]` each.
/// Shared buffers: cloning the optimizer (the trainer keeps the last good
/// state every step) copies no moments; an update writes new ones.
pub(super) type HostMoments = (Arc<Vec<f32>>, Arc<Vec<f32>>);

/// Step `t ≥ 1` (1-based) on the host: gradients and parameters read in
/// place (Flex) or copied out once, the global norm summed in `f64`, the
/// update in one pass per parameter. Returns what
/// [`super::tensor_update::step`] returns.
pub(super) fn step<B: AutodiffBackend, M: AutodiffModule<B>>(
    settings: &AdamSettings,
    t: i32,
    lr: f64,
    module: M,
    grads: B::Gradients,
    moments: &mut BTreeMap<String, HostMoments>,
) -> (M, Tensor<B::InnerBackend, 1>) {
    let grads = GradientsParams::from_grads(grads, &module);
    let mut collect = HostGradVisitor::<B> {
        grads: &grads,
        host: HashMap::new(),
        sum_sq: 0.0,
        _b: PhantomData,
    };
    module.visit(&mut collect);
    let norm = collect.sum_sq.sqrt() as f32;
    let scale = match settings.max_grad_norm {
        Some(max) => ((norm + 1e-6).recip() * max as f32).min(1.0),
        None => 1.0,
    };
    let s = settings;
    let mut mapper = PathMapper::new(HostAdam::<B> {
        rule: AdamRule::at_step(lr, s.beta1, s.beta2, s.epsilon, t, scale),
        grads: collect.host,
        moments,
        _b: PhantomData,
    });
    let device = module
        .devices()
        .into_iter()
        .next()
        .expect("an SAE has at least one parameter");
    let module = module.map(&mut mapper);
    let norm = Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(vec![norm], [1]), &device);
    (module, norm)
}

/// Host copies of every parameter's gradient, by parameter id, and the sum
/// of their squares.
struct HostGradVisitor<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    host: HashMap<ParamId, HostF32>,
    sum_sq: f64,
    _b: PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for HostGradVisitor<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            // Borrowed from the gradient's buffer on Flex (no copy).
            let g = host_values(g);
            self.sum_sq += sum_squares(&g);
            self.host.insert(param.id, g);
        }
    }
}

/// The [`AdamRule`] update of one parameter.
struct HostAdam<'a, B: AutodiffBackend> {
    rule: AdamRule,
    grads: HashMap<ParamId, HostF32>,
    moments: &'a mut BTreeMap<String, HostMoments>,
    _b: PhantomData<B>,
}

impl<B: AutodiffBackend> UpdateParam<B> for HostAdam<'_, B> {
    fn update<const D: usize>(
        &mut self,
        path: &[String],
        id: ParamId,
        tensor: Tensor<B, D>,
    ) -> Result<Tensor<B::InnerBackend, D>, Tensor<B, D>> {
        let Some(g) = self.grads.remove(&id) else {
            return Err(tensor);
        };
        let shape = tensor.shape();
        let device = tensor.device();
        let numel = g.len();
        // Read in place (Flex); the update writes a new buffer, which the
        // caller's copies of the old parameters (the last good state) need.
        let p = host_values(tensor.inner());
        let key = key(path);
        let (m, v) = match self.moments.remove(&key) {
            Some((m, v)) if m.len() == numel && v.len() == numel => (m, v),
            _ => (Arc::new(vec![0.0; numel]), Arc::new(vec![0.0; numel])),
        };
        let AdamUpdate { param, m, v } = self.rule.apply(&p, &g, &m, &v);
        self.moments.insert(key, (Arc::new(m), Arc::new(v)));
        Ok(Tensor::from_data(TensorData::new(param, shape), &device))
    }
}
