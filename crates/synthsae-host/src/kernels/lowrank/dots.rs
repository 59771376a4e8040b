//! Scalar and gathered low-rank dot products `F_i · ε`, in the fixed
//! operation orders the sampler's draws depend on.

crate::multiversioned! {
    fma:
    /// `Σ_r eps_r · f_r` accumulated from 0 in rank order with fused
    /// multiply-adds: the same operations, in the same order, as one lane of
    /// [`lowrank_gaps`](super::lowrank_gaps), so a feature's gap is the same
    /// number on every path.
    /// (`mul_add` is IEEE fma: targets without the instruction compute it in
    /// software, with the same result.)
    pub fn lowrank_dot(f: &[f32], eps: &[f32]) -> f32 {
        let mut acc = 0.0f32;
        for (&x, &e) in f.iter().zip(eps) {
            acc = e.mul_add(x, acc);
        }
        acc
    }
}

/// Lanes of the partial sums of [`lowrank_dots`]; its rows and `ε` are
/// zero-padded to a multiple of this.
pub const DOT_LANES: usize = 8;

crate::multiversioned! {
    fma:
    /// `out[j] = Σ_r eps_r · rows[s·P + r]` with `s = slots[j]`, where
    /// `P = eps.len()` is a multiple of [`DOT_LANES`] (`rows`: `[_, P]`
    /// row-major; the caller pads ranks `R < P` with zeros in both).
    ///
    /// Fixed order, vectorised along `r`: lane `l` accumulates the terms
    /// `r ≡ l (mod DOT_LANES)` from 0 in rank order with fused multiply-adds,
    /// then the lanes are added in a fixed tree. Rust never reassociates
    /// floating-point operations, so every target returns the same bits (the
    /// zero padding only adds `0·0` terms). Used for the children of a
    /// hierarchy, whose gaps come from this one function only.
    pub fn lowrank_dots(rows: &[f32], eps: &[f32], slots: &[u32], out: &mut [f32]) {
        let p = eps.len();
        // `chunks_exact` below would drop a remainder.
        assert_eq!(p % DOT_LANES, 0, "lowrank_dots: unpadded rank {p}");
        for (o, &s) in out.iter_mut().zip(slots) {
            let row = &rows[s as usize * p..(s as usize + 1) * p];
            let mut acc = [0.0f32; DOT_LANES];
            for (f, e) in row.chunks_exact(DOT_LANES).zip(eps.chunks_exact(DOT_LANES)) {
                for ((a, &x), &e) in acc.iter_mut().zip(f).zip(e) {
                    *a = e.mul_add(x, *a);
                }
            }
            let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
            *o = ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowrank_dots_use_the_fixed_lane_order() {
        // Rank 25 padded to 32: three full lane chunks and a padded one.
        let (r, p) = (25, 32);
        let eps: Vec<f32> = (0..p)
            .map(|i| {
                if i < r {
                    ((i * 11 % 23) as f32 - 11.0) / 7.0
                } else {
                    0.0
                }
            })
            .collect();
        let rows: Vec<f32> = (0..13 * p)
            .map(|i| {
                if i % p < r {
                    ((i * 5 % 17) as f32 - 8.0) / 9.0
                } else {
                    0.0
                }
            })
            .collect();
        let slots: Vec<u32> = (0..11).map(|j| (j * 7 % 13) as u32).collect();
        let mut many = vec![0.0f32; slots.len()];
        lowrank_dots(&rows, &eps, &slots, &mut many);
        for (m, &s) in many.iter().zip(&slots) {
            let s = s as usize;
            // The fixed lane order, written out term by term (unpadded).
            let f = &rows[s * p..s * p + r];
            let mut lanes = [0.0f32; DOT_LANES];
            for k in 0..r {
                lanes[k % DOT_LANES] = eps[k].mul_add(f[k], lanes[k % DOT_LANES]);
            }
            let want = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6]))
                + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]));
            // Equal (the padding can only turn a −0 into +0).
            assert_eq!(*m, want);
            // And the rank-order dot's value, to rounding.
            let exact = lowrank_dot(f, &eps[..r]);
            assert!((m - exact).abs() <= 1e-5 * (1.0 + exact.abs()));
        }
    }
}
