//! Seeded weight initialisation (spec §10.1).
//!
//! `W_dec` `[S, D]` ~ Kaiming-uniform with fan-in `D` and gain √2, i.e.
//! `U(−sqrt(6/D), +sqrt(6/D))`, drawn row-major from a ChaCha8 stream seeded
//! with `seed`; then, if `decoder_init_norm` is set, every row is rescaled to
//! that norm. Callers set `W_enc = W_decᵀ` and zero biases.
//! (sae-lens draws from torch's global generator; synthsae does not
//! reproduce that stream, only the distribution.)

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Uniform};

/// The initial decoder `[S, D]`, row-major.
pub fn init_decoder(
    d_in: usize,
    d_sae: usize,
    decoder_init_norm: Option<f64>,
    seed: u64,
) -> Vec<f32> {
    let bound = (6.0 / d_in.max(1) as f64).sqrt() as f32;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w: Vec<f32> = match Uniform::new_inclusive(-bound, bound) {
        Ok(dist) => (0..d_sae * d_in).map(|_| dist.sample(&mut rng)).collect(),
        Err(_) => vec![0.0; d_sae * d_in],
    };
    if let Some(target) = decoder_init_norm {
        for row in w.chunks_exact_mut(d_in.max(1)) {
            let norm = row.iter().map(|&x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                let s = target as f32 / norm;
                row.iter_mut().for_each(|x| *x *= s);
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_have_the_init_norm_and_draws_are_seeded() {
        let w = init_decoder(16, 10, Some(0.1), 3);
        for row in w.chunks_exact(16) {
            let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((n - 0.1).abs() < 1e-6);
        }
        assert_eq!(w, init_decoder(16, 10, Some(0.1), 3));
        assert_ne!(w, init_decoder(16, 10, Some(0.1), 4));
        let raw = init_decoder(6, 200, None, 1);
        let bound = 1.0f32;
        assert!(raw.iter().all(|x| x.abs() <= bound));
        assert!(raw.iter().any(|x| x.abs() > 0.9 * bound));
    }
}
