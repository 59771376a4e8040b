//! Shared pieces of the backend-conformance suite: the backend under test
//! ([`Target`]), tolerances, read-back and comparison helpers, a seeded test
//! RNG and temporary folders.
//!
//! Every check reads device values back to the host (`into_data`) before
//! comparing them: wgpu reports errors lazily, at the next read-back, so a
//! value is only trusted once it has been read.

pub mod eval;
pub mod sae;
pub mod sampling;
pub mod train;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::prelude::*;

/// Tolerances of one backend against the CPU reference.
///
/// Values and gradients are compared per tensor, normwise:
/// `max_i |got_i − ref_i| ≤ rel · max(SCALE_FLOOR, max_i |ref_i|)`; scalars
/// (losses, metrics) the same way with their own magnitude. Discontinuous
/// selections (TopK, thresholds) are compared through their values; the
/// fixtures keep every selection margin far above these tolerances.
#[derive(Debug, Clone, Copy)]
pub struct Tol {
    /// One forward / backward pass (encode, decode, losses, gradients,
    /// sampled hidden activations, evaluation metrics).
    pub rel: f32,
    /// Quantities after many device steps: orthogonalised feature vectors
    /// (Adam on the device), the loss trajectory of a short training run.
    pub drift: f32,
}

impl Tol {
    /// One CPU backend against the other. Looser than float rounding
    /// (~1e-7 here) because burn-ndarray 0.21's `recip` is a SIMD
    /// approximation (~5e-5 relative error) that Burn's autodiff uses in the
    /// backward pass of every division: ndarray gradients through decoder-norm
    /// rescaling differ from flex's by up to ~2.5e-5.
    pub const CPU: Tol = Tol {
        rel: 1e-4,
        drift: 1e-3,
    };
    /// A GPU backend (wgpu, CUDA) against flex. wgpu on lavapipe stays within
    /// ~1e-6 (one pass) and ~1e-5 (after many steps); the margin is for
    /// other drivers' reduction orders and fused kernels.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    pub const GPU: Tol = Tol {
        rel: 1e-4,
        drift: 1e-3,
    };
}

/// Magnitude below which errors are measured absolutely (`rel · SCALE_FLOOR`).
pub const SCALE_FLOOR: f32 = 1e-2;

/// The backend under test: a name for messages, its device and tolerances.
#[derive(Debug, Clone)]
pub struct Target<B: Backend> {
    /// `flex`, `ndarray`, `wgpu`, `cuda`.
    pub name: &'static str,
    /// The device the checks run on.
    pub device: B::Device,
    /// Tolerances against the reference backend.
    pub tol: Tol,
}

/// A float tensor read back to the host (panics with `what` if that fails:
/// on wgpu this is where a deferred device error surfaces).
pub fn host<B: Backend, const D: usize>(what: &str, t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap_or_else(|e| panic!("{what}: read-back failed: {e:?}"))
}

/// Compares `got` (backend under test) with `want` (reference), normwise
/// (see [`Tol`]); every value must be finite. Returns the relative error.
pub fn compare(what: &str, got: &[f32], want: &[f32], rel: f32) -> f32 {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} values, reference has {}",
        got.len(),
        want.len()
    );
    let scale = want.iter().fold(SCALE_FLOOR, |m, v| m.max(v.abs()));
    let (mut worst, mut at) = (0f32, 0usize);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.is_finite(),
            "{what}[{i}] = {g} is not finite (reference {w})"
        );
        assert!(
            w.is_finite(),
            "{what}[{i}]: reference value {w} is not finite"
        );
        let e = (g - w).abs();
        if e > worst {
            (worst, at) = (e, i);
        }
    }
    let err = worst / scale;
    assert!(
        err <= rel,
        "{what}: max |Δ| = {worst:.3e} at [{at}] ({} vs reference {}); relative to scale \
         {scale:.3e} that is {err:.3e} > tolerance {rel:.0e}",
        got.get(at).copied().unwrap_or(f32::NAN),
        want.get(at).copied().unwrap_or(f32::NAN),
    );
    err
}

/// Compares two scalars with the same normwise rule as [`compare`].
pub fn compare_scalar(what: &str, got: f64, want: f64, rel: f64) -> f64 {
    assert!(
        got.is_finite(),
        "{what} = {got} is not finite (reference {want})"
    );
    let err = (got - want).abs() / want.abs().max(SCALE_FLOOR as f64);
    assert!(
        err <= rel,
        "{what}: {got} vs reference {want}: relative error {err:.3e} > tolerance {rel:.0e}"
    );
    err
}

/// Largest errors seen by one test, printed at its end (`--nocapture`).
#[derive(Debug, Default)]
pub struct Report {
    worst: Vec<(String, f64)>,
}

impl Report {
    /// Records the error of one comparison under `category`.
    pub fn add(&mut self, category: &str, err: f64) {
        match self.worst.iter_mut().find(|(c, _)| c == category) {
            Some((_, e)) => *e = e.max(err),
            None => self.worst.push((category.to_string(), err)),
        }
    }

    /// Prints `backend test: category max-error, ...` on stderr.
    pub fn print(&self, backend: &str, test: &str) {
        let parts: Vec<String> = self
            .worst
            .iter()
            .map(|(c, e)| format!("{c} {e:.1e}"))
            .collect();
        eprintln!(
            "conformance[{backend}] {test}: max relative error {}",
            parts.join(", ")
        );
    }
}

/// A small deterministic generator for fixtures (SplitMix64, Box–Muller):
/// the same numbers on every machine, no extra dependency.
#[derive(Debug, Clone)]
pub struct TestRng(u64);

impl TestRng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// A temporary folder, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty folder whose name contains `tag`.
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "synthsae-conformance-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temporary folder");
        Self(p)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Tensor `[rows, cols]` from host values.
pub fn tensor2<B: Backend>(v: &[f32], shape: [usize; 2], device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
}

/// The wgpu device of the suite, set up once: the adapter is chosen as
/// Burn's default device does (Vulkan on Linux, high-performance preference;
/// `CUBECL_WGPU_DEFAULT_DEVICE=Cpu` forces a CPU adapter such as Mesa's
/// lavapipe), printed, and checked against `SYNTHSAE_WGPU_ADAPTER` when that
/// is set (a substring of the adapter name, e.g. `llvmpipe`). A tiny kernel
/// is read back before any test trusts the device.
#[cfg(feature = "wgpu")]
pub fn wgpu_device() -> burn::backend::wgpu::WgpuDevice {
    use burn::backend::wgpu::{graphics::AutoGraphicsApi, init_setup, RuntimeOptions, WgpuDevice};
    use std::sync::OnceLock;

    static DEVICE: OnceLock<WgpuDevice> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let device = WgpuDevice::default();
            let setup = init_setup::<AutoGraphicsApi>(&device, RuntimeOptions::default());
            let info = setup.adapter.get_info();
            let limits = setup.device.limits();
            eprintln!(
                "conformance[wgpu]: adapter {:?} ({:?}, {:?}, driver {:?} {:?}); \
                 max storage buffer binding {} MiB, max buffer {} MiB",
                info.name,
                info.device_type,
                info.backend,
                info.driver,
                info.driver_info,
                limits.max_storage_buffer_binding_size >> 20,
                limits.max_buffer_size >> 20,
            );
            if let Ok(want) = std::env::var("SYNTHSAE_WGPU_ADAPTER") {
                assert!(
                    info.name.to_lowercase().contains(&want.to_lowercase()),
                    "wgpu picked adapter {:?}, SYNTHSAE_WGPU_ADAPTER asks for {want:?}",
                    info.name
                );
            }
            type W = burn::backend::Wgpu;
            let t = Tensor::<W, 1>::from_floats([1.0, 2.0, 3.0], &device).add_scalar(1.0);
            assert_eq!(host("wgpu smoke test", t), vec![2.0, 3.0, 4.0]);
            device
        })
        .clone()
}
