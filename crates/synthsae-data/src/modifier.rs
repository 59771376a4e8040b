//! Activation modifiers: batch transforms applied to every sampled batch
//! (a hierarchy is one). They work on the native sparse form and read the
//! generator's per-feature parameters only.

use std::fmt::Debug;

use crate::error::Result;
use crate::per_feature::FeatureParams;
use crate::rng::SampleRng;
use synthsae_host::Csr;

/// A step applied to each batch `[B, N]` after firing and magnitudes are
/// drawn.
///
/// The generator's per-feature parameters are passed in so a modifier can
/// read them (for example `mean_firing_magnitudes`). A modifier may change
/// values and set them to zero; entries that are not `> 0` after the whole
/// chain are removed. Randomness must come from `rng` so sampling stays
/// reproducible.
pub trait ActivationModifier: Debug + Send + Sync {
    /// Checks, once when attached, that the modifier fits the generator's
    /// features (feature indices in range, required magnitudes positive, ...).
    fn check(&self, _features: &FeatureParams) -> Result<()> {
        Ok(())
    }

    /// Modifies `batch` in place.
    fn modify(&self, batch: &mut Csr, features: &FeatureParams, rng: &mut SampleRng);
}

/// Signature of a closure usable as a modifier.
pub type ModifierFn = dyn Fn(&mut Csr, &FeatureParams, &mut SampleRng) + Send + Sync;

/// Wraps a closure as an [`ActivationModifier`].
pub struct FnModifier {
    name: String,
    f: Box<ModifierFn>,
}

impl FnModifier {
    /// A modifier named `name` (shown in debug output) running `f`.
    pub fn new(
        name: impl Into<String>,
        f: impl Fn(&mut Csr, &FeatureParams, &mut SampleRng) + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            f: Box::new(f),
        }
    }
}

impl Debug for FnModifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FnModifier({})", self.name)
    }
}

impl ActivationModifier for FnModifier {
    fn modify(&self, batch: &mut Csr, features: &FeatureParams, rng: &mut SampleRng) {
        (self.f)(batch, features, rng)
    }
}
