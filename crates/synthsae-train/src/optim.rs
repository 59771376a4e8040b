//! Adam with global gradient-norm clipping, with a state that can be saved
//! and restored exactly.
//!
//! Written here rather than taken from `burn::optim` because a resumed run must
//! continue bit-identically: Burn's optimizer records are keyed by parameter
//! ids that change when an SAE is reloaded from its sae-lens files, while this
//! state is keyed by the parameter's path in the module (`Standard.W_enc`),
//! which is stable. It also needs the *global* gradient norm (all parameters
//! together, as `torch.nn.utils.clip_grad_norm_`), while Burn clips each
//! tensor separately.
//!
//! Update rule (PyTorch's Adam, no weight decay, no amsgrad), at step `t ≥ 1`:
//!
//! ```text
//! g ← g · min(1, max_norm / (‖g‖₂ + 1e-6))      (‖g‖ over all parameters)
//! m ← β₁ m + (1 − β₁) g
//! v ← β₂ v + (1 − β₂) g²
//! p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::Arc;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use multiversion::multiversion;
use rayon::prelude::*;
use synthsae_host::kernels::dense::sum_squares;
use synthsae_host::{host_values, HostF32};

/// Adam hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamSettings {
    /// β₁ (sae-lens `adam_beta1`, default 0.9).
    pub beta1: f64,
    /// β₂ (sae-lens `adam_beta2`, default 0.999).
    pub beta2: f64,
    /// ε added to the denominator (PyTorch default 1e-8).
    pub epsilon: f64,
    /// Global L2 gradient-norm bound (sae-lens: 1.0, fixed); `None` disables.
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamSettings {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            max_grad_norm: Some(1.0),
        }
    }
}

/// Host first and second moments of one parameter, `[numel]` each.
type HostMoments = (Arc<Vec<f32>>, Arc<Vec<f32>>);

/// First and second moments of one parameter, flattened to `[numel]`.
#[derive(Debug, Clone)]
struct Moments<B: Backend> {
    m: Tensor<B, 1>,
    v: Tensor<B, 1>,
}

/// Host copy of the optimizer state, for checkpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamState {
    /// Number of optimizer steps taken.
    pub step: u64,
    /// `(parameter path, m, v)`, moments flattened row-major.
    pub moments: Vec<(String, Vec<f32>, Vec<f32>)>,
}

/// The optimizer: settings, step counter and per-parameter moments, on the
/// device, or on the host for the CPU backends (see [`Adam::new`]).
#[derive(Debug, Clone)]
pub struct Adam<B: AutodiffBackend> {
    settings: AdamSettings,
    step: u64,
    moments: BTreeMap<String, Moments<B::InnerBackend>>,
    /// Host mode: `(m, v)` per parameter path.
    /// Shared buffers: cloning the optimizer (the trainer keeps the last
    /// good state every step) copies no moments; an update writes new ones.
    host_moments: BTreeMap<String, HostMoments>,
    host: bool,
}

impl<B: AutodiffBackend> Adam<B> {
    /// A fresh optimizer (step 0, zero moments created on first use).
    ///
    /// On the CPU autodiff backends (those with synthsae's fused operations,
    /// [`synthsae_host::is_cpu_autodiff`]) the update runs as one host pass
    /// per parameter instead of a dozen element-wise tensor operations, each
    /// allocating a parameter-sized buffer; same rule, same f32 operation
    /// order per element.
    pub fn new(settings: AdamSettings) -> Self {
        Self {
            settings,
            step: 0,
            moments: BTreeMap::new(),
            host_moments: BTreeMap::new(),
            host: synthsae_host::is_cpu_autodiff::<B>(),
        }
    }

    /// The same optimizer running the tensor-operation update (the path of
    /// non-CPU backends), for tests.
    #[cfg(test)]
    fn on_device(mut self) -> Self {
        self.host = false;
        self
    }

    /// Number of steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// One update of every parameter of `module` that has a gradient.
    ///
    /// Returns the updated module and the global gradient norm *before*
    /// clipping (`[1]`, on the device; not read back, so no host sync).
    pub fn step<M: AutodiffModule<B>>(
        &mut self,
        lr: f64,
        module: M,
        grads: B::Gradients,
    ) -> (M, Tensor<B::InnerBackend, 1>) {
        if self.host {
            return self.step_host(lr, module, grads);
        }
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
        let scale = match self.settings.max_grad_norm {
            Some(max) => (grad_norm.clone().add_scalar(1e-6).recip() * max).clamp_max(1.0),
            None => Tensor::ones([1], &device),
        };
        self.step += 1;
        let t = self.step as i32;
        let mut mapper = AdamMapper::<B> {
            lr,
            settings: self.settings,
            bias1: 1.0 - self.settings.beta1.powi(t),
            bias2_sqrt: (1.0 - self.settings.beta2.powi(t)).sqrt(),
            scale,
            grads: &mut grads,
            moments: &mut self.moments,
            path: Vec::new(),
        };
        let module = module.map(&mut mapper);
        (module, grad_norm)
    }

    /// [`Adam::step`] on the host: gradients and parameters copied out once,
    /// the global norm summed in f64, the update in one pass per parameter.
    fn step_host<M: AutodiffModule<B>>(
        &mut self,
        lr: f64,
        module: M,
        grads: B::Gradients,
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
        let scale = match self.settings.max_grad_norm {
            Some(max) => ((norm + 1e-6).recip() * max as f32).min(1.0),
            None => 1.0,
        };
        self.step += 1;
        let t = self.step as i32;
        let s = self.settings;
        let mut mapper = HostAdamMapper::<B> {
            rule: HostRule {
                scale,
                beta1: s.beta1 as f32,
                beta2: s.beta2 as f32,
                one_minus_beta1: (1.0 - s.beta1) as f32,
                one_minus_beta2: (1.0 - s.beta2) as f32,
                bias2_sqrt: (1.0 - s.beta2.powi(t)).sqrt() as f32,
                epsilon: s.epsilon as f32,
                step_size: (lr / (1.0 - s.beta1.powi(t))) as f32,
            },
            grads: collect.host,
            moments: &mut self.host_moments,
            path: Vec::new(),
            _b: PhantomData,
        };
        let device = module
            .devices()
            .into_iter()
            .next()
            .expect("an SAE has at least one parameter");
        let module = module.map(&mut mapper);
        let norm =
            Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(vec![norm], [1]), &device);
        (module, norm)
    }

    /// Copies the state to the host.
    pub fn state(&self) -> AdamState {
        let moments = if self.host {
            self.host_moments
                .iter()
                .map(|(k, (m, v))| (k.clone(), m.to_vec(), v.to_vec()))
                .collect()
        } else {
            self.moments
                .iter()
                .map(|(k, mo)| (k.clone(), to_vec(&mo.m), to_vec(&mo.v)))
                .collect()
        };
        AdamState {
            step: self.step,
            moments,
        }
    }

    /// Restores a state saved by [`Adam::state`] for `module`. Every saved
    /// moment must belong to a parameter of `module` with the same number of
    /// entries; otherwise nothing changes and the error names the parameter
    /// (a checkpoint of a different SAE must not silently restart Adam).
    pub fn load_state<M: AutodiffModule<B>>(
        &mut self,
        state: &AdamState,
        module: &M,
        device: &burn::tensor::Device<B::InnerBackend>,
    ) -> Result<(), String> {
        let mut sizes = SizeVisitor {
            path: Vec::new(),
            sizes: BTreeMap::new(),
        };
        module.visit(&mut sizes);
        for (k, m, v) in &state.moments {
            match sizes.sizes.get(k) {
                None => {
                    return Err(format!(
                        "Adam moments for `{k}`, which the SAE does not have"
                    ))
                }
                Some(&n) if m.len() != n || v.len() != n => {
                    return Err(format!(
                        "Adam moments for `{k}` have {} / {} entries, the parameter has {n}",
                        m.len(),
                        v.len()
                    ))
                }
                Some(_) => {}
            }
        }
        self.step = state.step;
        if self.host {
            self.host_moments = state
                .moments
                .iter()
                .map(|(k, m, v)| (k.clone(), (Arc::new(m.clone()), Arc::new(v.clone()))))
                .collect();
            return Ok(());
        }
        self.moments = state
            .moments
            .iter()
            .map(|(k, m, v)| {
                let m = Tensor::from_data(TensorData::new(m.clone(), [m.len()]), device);
                let v = Tensor::from_data(TensorData::new(v.clone(), [v.len()]), device);
                (k.clone(), Moments { m, v })
            })
            .collect();
        Ok(())
    }
}

/// Number of entries of every float parameter, keyed by the same path as
/// the moments.
struct SizeVisitor {
    path: Vec<String>,
    sizes: BTreeMap<String, usize>,
}

impl<B: Backend> ModuleVisitor<B> for SizeVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.sizes
            .insert(self.path.join("."), param.shape().num_elements());
    }
}

fn to_vec<B: Backend>(t: &Tensor<B, 1>) -> Vec<f32> {
    t.to_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 data after convert")
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

/// The per-element update in f32, in the device path's operation order.
#[derive(Debug, Clone, Copy)]
struct HostRule {
    scale: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    bias2_sqrt: f32,
    epsilon: f32,
    step_size: f32,
}

impl HostRule {
    /// The updated parameter and moments from `p`, the raw gradient `g` and
    /// the moments `m`, `v` (new buffers: the old ones may be shared with
    /// a saved state).
    fn apply(&self, p: &[f32], g: &[f32], m: &[f32], v: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        const CHUNK: usize = 1 << 14;
        let n = p.len();
        assert!(
            g.len() == n && m.len() == n && v.len() == n,
            "Adam: lengths"
        );
        let (mut po, mut mo, mut vo) = (
            Vec::<f32>::with_capacity(n),
            Vec::<f32>::with_capacity(n),
            Vec::<f32>::with_capacity(n),
        );
        // Written without zero-filling first (three fresh 1 MB buffers per
        // 256k-entry parameter and step).
        po.spare_capacity_mut()[..n]
            .par_chunks_mut(CHUNK)
            .zip(
                mo.spare_capacity_mut()[..n]
                    .par_chunks_mut(CHUNK)
                    .zip(vo.spare_capacity_mut()[..n].par_chunks_mut(CHUNK)),
            )
            .zip(p.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(((po, (mo, vo)), (p, g)), (m, v))| {
                adam_chunk(self, [po, mo, vo], [p, g, m, v]);
            });
        // SAFETY: the chunks above cover the first `n` slots of each
        // buffer, and `adam_chunk` writes every slot of its chunks (the
        // four inputs have `n` entries, asserted above, so the zipped
        // chunks have equal lengths).
        unsafe {
            po.set_len(n);
            mo.set_len(n);
            vo.set_len(n);
        }
        (po, mo, vo)
    }
}

/// `x`, or 0 when `|x|` is below the smallest normal `f32`.
///
/// A parameter whose gradient is zero for many steps (a latent that does not
/// fire) has its first moment decay by `β₁` per step into the subnormal
/// range, where every x86 multiply costs a microcode assist: in a BatchTopK
/// run the update took 4–5× longer for the 200 steps before the aux-k loss
/// revived the dead latents. Stored moments are therefore never subnormal.
/// The update this drops is below `1e-38 / ε · lr`, far under the rounding
/// of any parameter.
#[inline(always)]
fn flush_subnormal(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE {
        0.0
    } else {
        x
    }
}

/// [`HostRule::apply`] on one chunk, compiled for the host's vector width
/// (the workspace targets baseline x86-64). No fused multiply-adds: the
/// same bits on every target.
#[multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2",
    "aarch64+neon"
))]
fn adam_chunk(rule: &HostRule, out: [&mut [MaybeUninit<f32>]; 3], inp: [&[f32]; 4]) {
    let r = *rule;
    let [po, mo, vo] = out;
    let [p, g, m, v] = inp;
    let outs = po.iter_mut().zip(mo.iter_mut().zip(vo.iter_mut()));
    let ins = p.iter().zip(g).zip(m.iter().zip(v));
    for ((po, (mo, vo)), ((&p, &g), (&m, &v))) in outs.zip(ins) {
        let g = g * r.scale;
        let m = flush_subnormal(m * r.beta1 + g * r.one_minus_beta1);
        let v = flush_subnormal(v * r.beta2 + g * g * r.one_minus_beta2);
        let denom = v.sqrt() / r.bias2_sqrt + r.epsilon;
        po.write(p - m / denom * r.step_size);
        mo.write(m);
        vo.write(v);
    }
}

/// Applies [`HostRule`] while walking the module, keyed by path.
struct HostAdamMapper<'a, B: AutodiffBackend> {
    rule: HostRule,
    grads: HashMap<ParamId, HostF32>,
    moments: &'a mut BTreeMap<String, HostMoments>,
    path: Vec<String>,
    _b: PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for HostAdamMapper<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(g) = self.grads.remove(&id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let shape = tensor.shape();
        let device = tensor.device();
        let numel = g.len();
        // Read in place (Flex); the update writes a new buffer, which the
        // caller's copies of the old parameters (the last good state) need.
        let p = host_values(tensor.inner());
        let key = self.path.join(".");
        let (m, v) = match self.moments.remove(&key) {
            Some((m, v)) if m.len() == numel && v.len() == numel => (m, v),
            _ => (Arc::new(vec![0.0; numel]), Arc::new(vec![0.0; numel])),
        };
        let (p, m, v) = self.rule.apply(&p, &g, &m, &v);
        self.moments.insert(key, (Arc::new(m), Arc::new(v)));
        let inner = Tensor::<B::InnerBackend, D>::from_data(TensorData::new(p, shape), &device);
        let mut tensor = Tensor::from_inner(inner);
        if require_grad {
            tensor = tensor.require_grad();
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
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

/// Applies the Adam update while walking the module, keyed by path.
struct AdamMapper<'a, B: AutodiffBackend> {
    lr: f64,
    settings: AdamSettings,
    bias1: f64,
    bias2_sqrt: f64,
    scale: Tensor<B::InnerBackend, 1>,
    grads: &'a mut GradientsParams,
    moments: &'a mut BTreeMap<String, Moments<B::InnerBackend>>,
    path: Vec<String>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for AdamMapper<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let shape = tensor.shape();
        let numel = shape.num_elements();
        let key = self.path.join(".");
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
        let mut tensor = Tensor::from_inner(inner.reshape(shape));
        if require_grad {
            tensor = tensor.require_grad();
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    type B = Autodiff<NdArray>;

    #[derive(Module, Debug)]
    struct Two<B: Backend> {
        a: Param<Tensor<B, 2>>,
        b: Param<Tensor<B, 1>>,
    }

    fn module(device: &burn::tensor::Device<B>) -> Two<B> {
        Two {
            a: Param::from_tensor(Tensor::from_floats([[1.0, -2.0], [0.5, 3.0]], device)),
            b: Param::from_tensor(Tensor::from_floats([0.25, -0.75], device)),
        }
    }

    fn loss(m: &Two<B>) -> Tensor<B, 1> {
        // L = Σ a² / 2 + 3 Σ b  →  ∂L/∂a = a, ∂L/∂b = 3.
        m.a.val().powi_scalar(2).sum().div_scalar(2.0) + m.b.val().sum().mul_scalar(3.0)
    }

    /// Hand-computed Adam steps (no clipping): the first step moves every
    /// coordinate by `lr · sign(g)` up to ε.
    #[test]
    fn first_steps_match_the_pytorch_rule() {
        let device = Default::default();
        let settings = AdamSettings {
            max_grad_norm: None,
            ..AdamSettings::default()
        };
        let mut adam = Adam::<B>::new(settings);
        let m = module(&device);
        let grads = loss(&m).backward();
        let (m, norm) = adam.step(0.1, m, grads);
        let a = m.a.val().into_data().into_vec::<f32>().unwrap();
        let b = m.b.val().into_data().into_vec::<f32>().unwrap();
        for (got, want) in a.iter().zip([0.9, -1.9, 0.4, 2.9]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        for (got, want) in b.iter().zip([0.15, -0.85]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        // ‖g‖ = sqrt(1 + 4 + 0.25 + 9 + 9 + 9).
        let n = norm.into_scalar();
        assert!((n - 32.25f32.sqrt()).abs() < 1e-5, "{n}");

        // Second step on a: g₂ = a₁, m = 0.09 g₁ + 0.1 g₂, v = 0.000999 g₁² + 0.001 g₂².
        let grads = loss(&m).backward();
        let (m, _) = adam.step(0.1, m, grads);
        let a2 = m.a.val().into_data().into_vec::<f32>().unwrap();
        for ((g1, g2), got) in [1.0f64, -2.0, 0.5, 3.0].iter().zip(&a).zip(&a2) {
            let g2 = *g2 as f64;
            let mm = 0.09 * g1 + 0.1 * g2;
            let vv = 0.000999 * g1 * g1 + 0.001 * g2 * g2;
            let upd = (0.1 / (1.0 - 0.81)) * mm / (vv.sqrt() / (1.0 - 0.998001f64).sqrt() + 1e-8);
            let want = g2 - upd;
            assert!((*got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        }
    }

    #[test]
    fn global_norm_clipping_scales_all_gradients_together() {
        let device = Default::default();
        let mut clipped = Adam::<B>::new(AdamSettings::default());
        let mut raw = Adam::<B>::new(AdamSettings {
            max_grad_norm: None,
            ..AdamSettings::default()
        });
        // Two steps: the first Adam step is scale-invariant, the second is not.
        let (mut m1, mut m2) = (module(&device), module(&device));
        for _ in 0..2 {
            let g1 = loss(&m1).backward();
            m1 = clipped.step(0.1, m1, g1).0;
            let g2 = loss(&m2).backward();
            m2 = raw.step(0.1, m2, g2).0;
        }
        let s1 = clipped.state();
        let s2 = raw.state();
        // m of the first step is (1 − β₁)·g·scale, with scale = 1/‖g‖.
        let ratio = s1.moments[0].1[0] / s2.moments[0].1[0];
        assert!(ratio < 0.5, "clipping had no effect: {ratio}");
        assert_eq!(s1.moments.len(), 2);
        assert_eq!(s1.moments[0].0, "a");
        assert_eq!(s1.moments[1].0, "b");
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let device = Default::default();
        let mut a1 = Adam::<B>::new(AdamSettings::default());
        let mut m1 = module(&device);
        for _ in 0..3 {
            let g = loss(&m1).backward();
            m1 = a1.step(0.05, m1, g).0;
        }
        let mut a2 = Adam::<B>::new(AdamSettings::default());
        a2.load_state(&a1.state(), &m1, &device).unwrap();
        let mut m2 = Two {
            a: Param::from_tensor(m1.a.val().inner().pipe_autodiff()),
            b: Param::from_tensor(m1.b.val().inner().pipe_autodiff()),
        };
        for _ in 0..3 {
            let g = loss(&m1).backward();
            m1 = a1.step(0.05, m1, g).0;
            let g = loss(&m2).backward();
            m2 = a2.step(0.05, m2, g).0;
        }
        assert_eq!(m1.a.val().into_data(), m2.a.val().into_data());
        assert_eq!(m1.b.val().into_data(), m2.b.val().into_data());
        assert_eq!(a1.state(), a2.state());
    }

    /// The host pass and the tensor-operation update agree (same f32 rule;
    /// only the global norm is summed in a different order, so ≤ a few ulp).
    #[test]
    fn host_update_equals_device_update() {
        let device = Default::default();
        let mut host = Adam::<B>::new(AdamSettings::default());
        let mut dev = Adam::<B>::new(AdamSettings::default()).on_device();
        assert!(host.host && !dev.host);
        let (mut m1, mut m2) = (module(&device), module(&device));
        for _ in 0..4 {
            let g = loss(&m1).backward();
            m1 = host.step(0.05, m1, g).0;
            let g = loss(&m2).backward();
            m2 = dev.step(0.05, m2, g).0;
        }
        let close = |a: Vec<f32>, b: Vec<f32>| {
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= 1e-6 * (1.0 + y.abs()), "{a:?} vs {b:?}");
            }
        };
        close(
            m1.a.val().into_data().into_vec().unwrap(),
            m2.a.val().into_data().into_vec().unwrap(),
        );
        close(
            m1.b.val().into_data().into_vec().unwrap(),
            m2.b.val().into_data().into_vec().unwrap(),
        );
        let (s1, s2) = (host.state(), dev.state());
        assert_eq!(s1.step, s2.step);
        for ((k1, m1, v1), (k2, m2, v2)) in s1.moments.into_iter().zip(s2.moments) {
            assert_eq!(k1, k2);
            close(m1, m2);
            close(v1, v2);
        }
    }

    #[test]
    fn host_moments_are_never_subnormal() {
        let rule = HostRule {
            scale: 1.0,
            beta1: 0.9,
            beta2: 0.999,
            one_minus_beta1: 0.1,
            one_minus_beta2: 0.001,
            bias2_sqrt: 1.0,
            epsilon: 1e-8,
            step_size: 1e-3,
        };
        let p = vec![0.5f32; 3];
        let g = vec![0.0f32, 0.0, 1e-3];
        // Decaying with a zero gradient: 0.9 · 1.2e-38 and 0.999 · 1.1e-38 are
        // subnormal; 0.9 · 1e-30 is not.
        let m = vec![1.2e-38f32, 1e-30, 1e-3];
        let v = vec![1.1e-38f32, 1e-20, 1e-6];
        let (po, mo, vo) = rule.apply(&p, &g, &m, &v);
        assert_eq!((mo[0], vo[0]), (0.0, 0.0));
        assert_eq!(mo[1], 1e-30f32 * 0.9);
        assert!(mo.iter().chain(&vo).all(|x| *x == 0.0 || x.is_normal()));
        assert_eq!(po[0], 0.5);
        assert!(po[2] < 0.5);
    }

    #[test]
    fn mismatched_moments_are_an_error() {
        let device = Default::default();
        let mut a1 = Adam::<B>::new(AdamSettings::default());
        let m1 = module(&device);
        let g = loss(&m1).backward();
        let m1 = a1.step(0.05, m1, g).0;
        let mut state = a1.state();
        state.moments[0].1.pop();
        let mut a2 = Adam::<B>::new(AdamSettings::default());
        let err = a2.load_state(&state, &m1, &device).unwrap_err();
        assert!(err.contains("`a`"), "{err}");
        state.moments[0].0 = "nope".into();
        let err = a2.load_state(&state, &m1, &device).unwrap_err();
        assert!(err.contains("`nope`"), "{err}");
        assert_eq!(a2.step_count(), 0, "a failed load changes nothing");
    }

    trait PipeAutodiff<const D: usize> {
        fn pipe_autodiff(self) -> Tensor<B, D>;
    }
    impl<const D: usize> PipeAutodiff<D> for Tensor<NdArray, D> {
        fn pipe_autodiff(self) -> Tensor<B, D> {
            Tensor::from_inner(self).require_grad()
        }
    }
}
