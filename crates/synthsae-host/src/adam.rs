//! One Adam update of one parameter on host buffers: the CPU backends'
//! one-pass form of the optimizer step (`synthsae_train::optim`, taken when
//! [`crate::is_cpu_autodiff`] holds; every other backend runs the same rule
//! as tensor operations).
//!
//! Rule (PyTorch's Adam, no weight decay, no amsgrad), per element, with the
//! raw gradient `g` and the global clipping factor `scale`:
//!
//! ```text
//! g ← g · scale
//! m ← β₁ m + (1 − β₁) g
//! v ← β₂ v + (1 − β₂) g²
//! p ← p − m / (√v / √(1 − β₂ᵗ) + ε) · lr / (1 − β₁ᵗ)
//! ```
//!
//! in `f32`, in the tensor formulation's operation order, without fused
//! multiply-adds: the same bits on every vector width.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// The constants of one Adam step in `f32`, shared by every parameter of
/// the step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamRule {
    /// Global gradient-clipping factor `min(1, max_norm / (‖g‖ + 1e-6))`
    /// (1 when clipping is off).
    pub scale: f32,
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// `1 − β₁`, rounded from `f64`.
    pub one_minus_beta1: f32,
    /// `1 − β₂`, rounded from `f64`.
    pub one_minus_beta2: f32,
    /// `√(1 − β₂ᵗ)` at step `t`.
    pub bias2_sqrt: f32,
    /// ε added to the denominator.
    pub epsilon: f32,
    /// `lr / (1 − β₁ᵗ)` at step `t`.
    pub step_size: f32,
}

/// A parameter and its moments after one update, `[numel]` each, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamUpdate {
    /// The updated parameter.
    pub param: Vec<f32>,
    /// The new first moment.
    pub m: Vec<f32>,
    /// The new second moment.
    pub v: Vec<f32>,
}

impl AdamRule {
    /// The constants of step `t ≥ 1` (1-based) from the `f64`
    /// hyper-parameters, with the clipping factor `scale`.
    pub fn at_step(lr: f64, beta1: f64, beta2: f64, epsilon: f64, t: i32, scale: f32) -> Self {
        Self {
            scale,
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            bias2_sqrt: (1.0 - beta2.powi(t)).sqrt() as f32,
            epsilon: epsilon as f32,
            step_size: (lr / (1.0 - beta1.powi(t))) as f32,
        }
    }

    /// The updated parameter and moments from the parameter `p`, its raw
    /// gradient `g` and its moments `m`, `v` (all `[numel]`). The results
    /// are new buffers: the old ones may be shared with a saved state.
    ///
    /// # Panics
    /// When the four inputs differ in length.
    pub fn apply(&self, p: &[f32], g: &[f32], m: &[f32], v: &[f32]) -> AdamUpdate {
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
        // Written without zero-filling first (three parameter-sized buffers
        // per parameter and step).
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
        AdamUpdate {
            param: po,
            m: mo,
            v: vo,
        }
    }
}

/// `x`, or 0 when `|x|` is below the smallest normal `f32`.
///
/// A parameter whose gradient is zero for many steps (a latent that does not
/// fire) has its first moment decay by `β₁` per step into the subnormal
/// range, where every x86 multiply costs a microcode assist, which made the
/// update several times slower in BatchTopK runs until the aux-k loss
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

crate::multiversioned! {
    /// [`AdamRule::apply`] on one chunk, compiled for the host's vector width
    /// (the workspace targets baseline x86-64). No fused multiply-adds: the
    /// same bits on every target.
    fn adam_chunk(rule: &AdamRule, out: [&mut [MaybeUninit<f32>]; 3], inp: [&[f32]; 4]) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_moments_are_never_subnormal() {
        let rule = AdamRule {
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
        let AdamUpdate {
            param: po,
            m: mo,
            v: vo,
        } = rule.apply(&p, &g, &m, &v);
        assert_eq!((mo[0], vo[0]), (0.0, 0.0));
        assert_eq!(mo[1], 1e-30f32 * 0.9);
        assert!(mo.iter().chain(&vo).all(|x| *x == 0.0 || x.is_normal()));
        assert_eq!(po[0], 0.5);
        assert!(po[2] < 0.5);
    }

    #[test]
    fn constants_round_from_f64() {
        let r = AdamRule::at_step(0.1, 0.9, 0.999, 1e-8, 2, 0.5);
        assert_eq!(r.step_size, (0.1 / (1.0 - 0.9f64.powi(2))) as f32);
        assert_eq!(r.bias2_sqrt, (1.0 - 0.999f64.powi(2)).sqrt() as f32);
        assert_eq!(r.one_minus_beta1, (1.0 - 0.9f64) as f32);
        assert_eq!(r.scale, 0.5);
    }
}
