//! [`Firing`]: how often each latent fired in one batch, and the smallest
//! positive activation.

/// Firing summary of one batch's latents `[batch, d_sae]`: per latent the
/// number of rows where it is non-zero, and the smallest positive
/// activation. The host training paths compute it while they select; it
/// equals what the dense latents give.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// `[d_sae]`: rows of the batch in which each latent is non-zero.
    pub counts: Vec<u32>,
    /// The smallest positive latent (`None` if none is positive).
    pub min_positive: Option<f32>,
}
