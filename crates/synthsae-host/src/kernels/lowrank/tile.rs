//! The shape of one call of the low-rank gap kernel: the tile and row
//! block constants, and the kernel's inputs and outputs as two structs.

/// Features whose standardised gaps one call of
/// [`lowrank_gaps`](super::lowrank_gaps) computes.
pub const GAP_TILE: usize = 64;
/// Rows whose gaps one call of [`lowrank_gaps`](super::lowrank_gaps)
/// computes (each factor column loaded once serves all of them: 16 AVX-512
/// accumulators).
pub const GAP_ROWS: usize = 4;
/// Features sharing one thinning bound: [`lowrank_gaps`](super::lowrank_gaps)
/// returns the minimum gap of each run of `GAP_SUB` features.
pub const GAP_SUB: usize = 16;

/// Per row of a block, a value per sub-block of `GAP_SUB` features of a
/// tile: `[GAP_ROWS, GAP_TILE / GAP_SUB]`.
pub type SubMins = [[f32; GAP_TILE / GAP_SUB]; GAP_ROWS];
/// The thinning hazards of [`SubMins`], `[GAP_ROWS, GAP_TILE / GAP_SUB]`.
pub type SubHazards = [[f64; GAP_TILE / GAP_SUB]; GAP_ROWS];

/// The inputs of one call of [`lowrank_gaps`](super::lowrank_gaps): the
/// shared factors of `GAP_ROWS` rows and one tile of `GAP_TILE` features.
#[derive(Debug, Clone, Copy)]
pub struct GapTile<'a> {
    /// `[GAP_ROWS, rank]` row-major shared factors `ε` of the rows.
    pub eps: &'a [f32],
    /// `R`, the factor rank.
    pub rank: usize,
    /// The factor columns of the tile, `ft[r * stride + k]` for rank `r`
    /// and feature `k` (so `ft` starts at the tile's first column of a
    /// `[R, stride]` array).
    pub ft: &'a [f32],
    /// Row stride of `ft`, in values.
    pub stride: usize,
    /// `[GAP_TILE]` thresholds `τ` of the tile's features.
    pub tau: &'a [f32; GAP_TILE],
    /// `[GAP_TILE]` values `1/√d` of the tile's features.
    pub inv_s: &'a [f32; GAP_TILE],
}

/// The outputs of one call of [`lowrank_gaps`](super::lowrank_gaps).
#[derive(Debug)]
pub struct GapOut<'a> {
    /// The standardised gaps, row `g` at `gaps[g * stride..g * stride +
    /// GAP_TILE]`.
    pub gaps: &'a mut [f32],
    /// Row stride of `gaps`, in values.
    pub stride: usize,
    /// `mins[g][j]`: the smallest gap of row `g` over features
    /// `j·GAP_SUB..(j+1)·GAP_SUB`.
    pub mins: &'a mut SubMins,
    /// `hz[g][j]`: the hazard of that sub-block's thinning bound,
    /// `tails().bound(mins[g][j] as f64).0`.
    pub hz: &'a mut SubHazards,
}

impl<'a> GapTile<'a> {
    /// `(eps, rank, ft, stride, tau, inv_s)`, for the kernels' bodies.
    #[allow(clippy::type_complexity)]
    #[inline(always)]
    pub(super) fn parts(
        &self,
    ) -> (
        &'a [f32],
        usize,
        &'a [f32],
        usize,
        &'a [f32; GAP_TILE],
        &'a [f32; GAP_TILE],
    ) {
        (
            self.eps,
            self.rank,
            self.ft,
            self.stride,
            self.tau,
            self.inv_s,
        )
    }
}

impl GapOut<'_> {
    /// `(gaps, stride, mins, hz)`, for the kernels' bodies.
    #[inline(always)]
    pub(super) fn parts(&mut self) -> (&mut [f32], usize, &mut SubMins, &mut SubHazards) {
        (&mut *self.gaps, self.stride, &mut *self.mins, &mut *self.hz)
    }
}
