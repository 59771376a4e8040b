//! The optimizer: settings, step counter and per-parameter moments, with a
//! host copy of its state for checkpoints.

use std::collections::BTreeMap;
use std::sync::Arc;

use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::host_update::{self, HostMoments};
use super::param_path::param_sizes;
use super::settings::AdamSettings;
use super::tensor_update::{self, DeviceMoments, Moments};

/// Host copy of the optimizer state, for checkpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamState {
    /// Number of optimizer steps taken.
    pub step: u64,
    /// `(parameter path, m, v)`, moments flattened row-major.
    pub moments: Vec<(String, Vec<f32>, Vec<f32>)>,
}

/// Per-parameter moments, by parameter path, where the update keeps them.
#[derive(Debug, Clone)]
enum MomentStore<B: AutodiffBackend> {
    /// Tensors on the device, for the tensor-operation update.
    Device(DeviceMoments<B>),
    /// Host buffers, for the one-pass host update.
    Host(BTreeMap<String, HostMoments>),
}

/// The optimizer: settings, step counter and per-parameter moments, on the
/// device, or on the host for the CPU backends (see [`Adam::new`]).
#[derive(Debug, Clone)]
pub struct Adam<B: AutodiffBackend> {
    settings: AdamSettings,
    step: u64,
    moments: MomentStore<B>,
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
        let moments = if synthsae_host::is_cpu_autodiff::<B>() {
            MomentStore::Host(BTreeMap::new())
        } else {
            MomentStore::Device(BTreeMap::new())
        };
        Self {
            settings,
            step: 0,
            moments,
        }
    }

    /// The same optimizer running the tensor-operation update (the path of
    /// non-CPU backends), for tests.
    #[cfg(test)]
    fn on_device(mut self) -> Self {
        self.moments = MomentStore::Device(BTreeMap::new());
        self
    }

    /// Whether the update runs as the host pass.
    #[cfg(test)]
    fn is_host(&self) -> bool {
        matches!(self.moments, MomentStore::Host(_))
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
        self.step += 1;
        let t = self.step as i32;
        match &mut self.moments {
            MomentStore::Host(moments) => {
                host_update::step(&self.settings, t, lr, module, grads, moments)
            }
            MomentStore::Device(moments) => {
                tensor_update::step(&self.settings, t, lr, module, grads, moments)
            }
        }
    }

    /// Copies the state to the host.
    pub fn state(&self) -> AdamState {
        let moments = match &self.moments {
            MomentStore::Host(moments) => moments
                .iter()
                .map(|(k, (m, v))| (k.clone(), m.to_vec(), v.to_vec()))
                .collect(),
            MomentStore::Device(moments) => moments
                .iter()
                .map(|(k, mo)| {
                    (
                        k.clone(),
                        synthsae_host::to_vec(mo.m.clone()),
                        synthsae_host::to_vec(mo.v.clone()),
                    )
                })
                .collect(),
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
        let sizes = param_sizes(module);
        for (k, m, v) in &state.moments {
            match sizes.get(k) {
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
        let saved = state.moments.iter();
        self.moments = match self.moments {
            MomentStore::Host(_) => MomentStore::Host(
                saved
                    .map(|(k, m, v)| (k.clone(), (Arc::new(m.clone()), Arc::new(v.clone()))))
                    .collect(),
            ),
            MomentStore::Device(_) => MomentStore::Device(
                saved
                    .map(|(k, m, v)| {
                        let m = Tensor::from_data(TensorData::new(m.clone(), [m.len()]), device);
                        let v = Tensor::from_data(TensorData::new(v.clone(), [v.len()]), device);
                        (k.clone(), Moments { m, v })
                    })
                    .collect(),
            ),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::module::Param;

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
        assert!(host.is_host() && !dev.is_host());
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
