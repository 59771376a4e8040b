//! Backend conformance: the same checks instantiated once per Burn backend.
//!
//! Each backend under test is compared with a CPU reference backend on
//! identical inputs and weights (see `conformance/`):
//!
//! * sampling on the device: model construction (orthogonalisation on the
//!   device), hidden activations by the device path against the host
//!   gather-sum, dense features, save/load through the device;
//! * every SAE architecture (standard, topk, abstopk, batchtopk,
//!   matryoshka_batchtopk, jumprelu, gated, matching_pursuit, plus variants
//!   for the sparse decode, per-sample normalisation and the tanh loss):
//!   training forward, every loss term, every parameter gradient, the state
//!   update, the exported inference SAE's tensors, `encode`, `decode`;
//! * short training runs through the runner, with hidden activations by the
//!   device path (standard, batchtopk) and by the host path (batchtopk):
//!   finite, decreasing loss; the trajectory, final evaluation and output
//!   folder against the reference (host path);
//! * bf16 autocast: what the runner resolves it to on the backend, and on
//!   backends with bf16 arithmetic a BatchTopK run with bf16 products
//!   against the reference's float32 run (bf16 tolerance, 5e-2);
//! * an evaluation (`eval_sae_on_synthetic_data`: MCC and every metric), by
//!   both hidden paths.
//!
//! Instances (each compared with a reference backend): `flex` (reference:
//! ndarray) and `ndarray` (reference: flex) always; `wgpu` and `cuda`
//! (reference: flex) with the package features of the same names:
//!
//! ```sh
//! cargo test --test backend_conformance                    # flex, ndarray
//! cargo test --features wgpu --test backend_conformance -- wgpu::
//! cargo test --release --features cuda --test backend_conformance -- cuda::
//! ```
//!
//! Tolerances (`conformance::Tol`), relative to each tensor's largest
//! reference magnitude (at least 1e-2): 1e-4 for one pass (forward, losses,
//! gradients, evaluation metrics), 1e-3 for quantities after many device steps
//! (orthogonalised features, a training trajectory). Pass `--nocapture` to see
//! the largest error of every check; the wgpu instance also prints the adapter
//! it runs on. Every device buffer is far below 128 MiB (Mesa lavapipe's
//! binding limit): the largest is a few MiB.

#![cfg(feature = "flex")]

mod conformance;

/// Instantiates every conformance check for one backend.
///
/// `suite!(module, Backend, Reference, device expression, tolerances)`.
macro_rules! suite {
    (@sae $($case:ident),+) => {
        mod sae_arch {
            use super::*;
            $(
                #[test]
                fn $case() {
                    sae::check_case::<B, R>(&target(), stringify!($case));
                }
            )+
        }
    };
    ($name:ident, $backend:ty, $reference:ty, $device:expr, $tol:expr) => {
        mod $name {
            use crate::conformance::{eval, sae, sampling, train, Target};
            use synthsae::data::HiddenPath;

            type B = $backend;
            type R = $reference;

            fn target() -> Target<B> {
                Target {
                    name: stringify!($name),
                    device: $device,
                    tol: $tol,
                }
            }

            #[test]
            fn sampling_device_hidden() {
                sampling::device_hidden_matches_host::<B>(&target());
            }

            #[test]
            fn sampling_construction() {
                sampling::construction_matches_reference::<B, R>(&target());
            }

            #[test]
            fn sampling_save_load() {
                sampling::save_load_round_trip::<B, R>(&target());
            }

            suite!(@sae standard, standard_lp2_norm_rescale, topk, topk_sparse,
                   abstopk, batchtopk, batchtopk_sparse, matryoshka_batchtopk, jumprelu,
                   jumprelu_tanh, gated, matching_pursuit);

            #[test]
            fn train_standard() {
                train::short_run::<B, R>(&target(), "standard", HiddenPath::Device);
            }

            #[test]
            fn train_batchtopk() {
                train::short_run::<B, R>(&target(), "batchtopk", HiddenPath::Device);
            }

            #[test]
            fn train_batchtopk_host_path() {
                train::short_run::<B, R>(&target(), "batchtopk", HiddenPath::Host);
            }

            #[test]
            fn train_batchtopk_bf16() {
                train::bf16_autocast::<B, R>(&target());
            }

            #[test]
            fn eval_matches_reference() {
                eval::matches_reference::<B, R>(&target());
            }
        }
    };
}

#[cfg(all(feature = "flex", feature = "ndarray"))]
suite!(
    flex,
    burn::backend::Flex,
    burn::backend::NdArray,
    Default::default(),
    crate::conformance::Tol::CPU
);

#[cfg(all(feature = "flex", feature = "ndarray"))]
suite!(
    ndarray,
    burn::backend::NdArray,
    burn::backend::Flex,
    Default::default(),
    crate::conformance::Tol::CPU
);

#[cfg(all(feature = "wgpu", feature = "flex"))]
suite!(
    wgpu,
    burn::backend::Wgpu,
    burn::backend::Flex,
    crate::conformance::wgpu_device(),
    crate::conformance::Tol::GPU
);

#[cfg(all(feature = "cuda", feature = "flex"))]
suite!(
    cuda,
    burn::backend::Cuda,
    burn::backend::Flex,
    Default::default(),
    crate::conformance::Tol::GPU
);
