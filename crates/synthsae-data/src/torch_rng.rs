//! torch's CPU random streams (MT19937-based), for building a model with the
//! values sae-lens draws from the same seed (spec §11.2).
//!
//! * `manual_seed(s)`: MT19937 `init_genrand` with the low 32 bits of `s`; a
//!   never-seeded generator uses torch's default seed 67280421310721.
//! * float32 uniform: `(r & 0xFFFFFF) · 2⁻²⁴` per element.
//! * float64 uniform: `((r₁ << 32) | r₂) & (2⁵³ − 1)) · 2⁻⁵³`.
//! * float32 `randn(n)`, `n ≥ 16`: `n` float32 uniforms, Box–Muller in blocks
//!   of 16 (`ρ = √(−2 ln(1 − u_j))`, `θ = 2π u_{j+8}`, outputs `ρ cos θ` at
//!   `j` and `ρ sin θ` at `j + 8`); if `16 ∤ n`, 16 more uniforms recompute
//!   the last 16 outputs.
//! * `randn(n)`, `n < 16`: double-precision Box–Muller per element from two
//!   float64 uniforms; the sine half is cached in the generator and returned
//!   by the next such draw.
//!
//! Uniform streams are bit-exact; normals match torch to float rounding
//! (torch evaluates `log`/`sin`/`cos` with vectorised approximations).

use crate::mt19937::Mt19937;
use crate::rng::RandomSource;

/// torch's default seed for a generator that was never seeded.
pub const TORCH_DEFAULT_SEED: u64 = 67_280_421_310_721;

/// A torch-compatible CPU generator.
#[derive(Debug, Clone)]
pub struct TorchGenerator {
    mt: Mt19937,
    next_double_normal: Option<f64>,
}

impl TorchGenerator {
    /// `torch.Generator().manual_seed(seed)`.
    pub fn manual_seed(seed: u64) -> Self {
        Self {
            mt: Mt19937::new(seed as u32),
            next_double_normal: None,
        }
    }

    /// `torch.Generator()` never seeded.
    pub fn unseeded() -> Self {
        Self::manual_seed(TORCH_DEFAULT_SEED)
    }

    /// One float32 uniform in `[0, 1)`.
    pub fn uniform_f32(&mut self) -> f32 {
        (self.mt.next_u32() & 0x00FF_FFFF) as f32 * (1.0 / 16_777_216.0)
    }

    /// One float64 uniform in `[0, 1)`.
    pub fn uniform_f64(&mut self) -> f64 {
        let hi = self.mt.next_u32() as u64;
        let lo = self.mt.next_u32() as u64;
        (((hi << 32) | lo) & ((1u64 << 53) - 1)) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// One standard normal from the double-precision scalar path.
    pub fn normal_f64(&mut self) -> f64 {
        if let Some(v) = self.next_double_normal.take() {
            return v;
        }
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        let r = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u1;
        self.next_double_normal = Some(r * theta.sin());
        r * theta.cos()
    }
}

fn box_muller_16(block: &mut [f32]) {
    for j in 0..8 {
        let (u1, u2) = (block[j] as f64, block[j + 8] as f64);
        let rho = (-2.0 * (1.0 - u1).ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        block[j] = (rho * theta.cos()) as f32;
        block[j + 8] = (rho * theta.sin()) as f32;
    }
}

impl RandomSource for TorchGenerator {
    fn fill_uniform(&mut self, out: &mut [f32]) {
        for v in out {
            *v = self.uniform_f32();
        }
    }

    fn fill_normal(&mut self, out: &mut [f32]) {
        let n = out.len();
        if n < 16 {
            for v in out {
                *v = self.normal_f64() as f32;
            }
            return;
        }
        self.fill_uniform(out);
        for start in (0..=n - 16).step_by(16) {
            box_muller_16(&mut out[start..start + 16]);
        }
        if !n.is_multiple_of(16) {
            let tail = &mut out[n - 16..];
            self.fill_uniform(tail);
            box_muller_16(tail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::excessive_precision)] // golden values verbatim from the reference
    fn random_probabilities_golden() {
        // random_firing_probabilities(5, seed=0) and with seed=None (torch's default seed).
        use crate::firing::random_firing_probabilities_with;
        let p = random_firing_probabilities_with(5, 0.5, 0.01, &mut TorchGenerator::manual_seed(0))
            .unwrap();
        let want = [0.25316572, 0.38642868, 0.05335394, 0.07469494, 0.16063718];
        for (a, b) in p.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{p:?}");
        }
        let p = random_firing_probabilities_with(5, 0.5, 0.01, &mut TorchGenerator::unseeded())
            .unwrap();
        let want = [0.14097467, 0.43753886, 0.17429154, 0.20747778, 0.39568865];
        for (a, b) in p.iter().zip(want) {
            assert!((a - b).abs() < 1e-7, "{p:?}");
        }
    }

    #[test]
    fn normal_consumption_matches_torch() {
        // Outputs consumed by float32 randn(n) (spec §11.2).
        for (n, used) in [
            (1, 4),
            (2, 4),
            (3, 8),
            (5, 12),
            (15, 32),
            (16, 16),
            (17, 33),
            (20, 36),
            (31, 47),
            (32, 32),
            (33, 49),
        ] {
            let mut g = TorchGenerator::manual_seed(3);
            let mut out = vec![0.0f32; n];
            g.fill_normal(&mut out);
            let mut reference = Mt19937::new(3);
            for _ in 0..used {
                reference.next_u32();
            }
            assert_eq!(g.mt.next_u32(), reference.next_u32(), "n = {n}");
        }
    }
}
