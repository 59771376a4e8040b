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
//!
//! * `adam`: the optimizer, its step counter and its saveable state;
//! * `settings`: the hyper-parameters;
//! * `tensor_update`: the update as tensor operations (every backend);
//! * `host_update`: the update as one host pass per parameter
//!   ([`synthsae_host::AdamRule`]), on the CPU autodiff backends;
//! * `param_path`: parameters keyed by their path in the module.

mod adam;
mod host_update;
mod param_path;
mod settings;
mod tensor_update;

pub use adam::{Adam, AdamState};
pub use settings::AdamSettings;
