//! Activation modifiers: post-processing steps applied to every sampled batch
//! (hierarchies are one). They work on the native sparse form.

use std::fmt::Debug;

use crate::error::Result;
use crate::generator::ActivationGenerator;
use crate::rng::SampleRng;
use synthsae_host::Csr;

/// A step applied to each batch after firing and magnitudes are drawn.
///
/// The generator is passed in so a modifier can read its per-feature vectors
/// (for example `mean_firing_magnitudes`). A modifier may change values and
/// set them to zero; entries that are not `> 0` after the whole chain are
/// removed. Randomness must come from `rng` so sampling stays reproducible.
pub trait ActivationModifier: Debug + Send + Sync {
    /// Checks, once when attached, that the modifier fits the generator
    /// (feature indices in range, required magnitudes positive, ...).
    fn check(&self, _generator: &ActivationGenerator) -> Result<()> {
        Ok(())
    }

    /// For each feature, a parent feature that must be active for the feature
    /// to survive this modifier (`u32::MAX`: none), if the modifier has such
    /// a rule. When the first modifier of the chain provides it, the copula
    /// sampler does not draw features whose parent did not fire: they would
    /// be zeroed anyway, so the distribution is unchanged and the work drops.
    fn required_parents(&self) -> Option<&[u32]> {
        None
    }

    /// For each feature `f` (with [`required_parents`](Self::required_parents)),
    /// whether this modifier keeps at most one of `f`'s children: when `f`
    /// is active and several of its children are active (value `> 0`), one
    /// of them, chosen uniformly at random, survives and the others become
    /// zero (and so do their own children). The sampler then resolves this
    /// choice while drawing, and draws the children of the survivor only.
    fn exclusive_children(&self) -> Option<&[bool]> {
        None
    }

    /// Modifies `batch` in place.
    fn modify(&self, batch: &mut Csr, generator: &ActivationGenerator, rng: &mut SampleRng);
}

/// Signature of a closure usable as a modifier.
pub type ModifierFn = dyn Fn(&mut Csr, &ActivationGenerator, &mut SampleRng) + Send + Sync;

/// Wraps a closure as an [`ActivationModifier`].
pub struct FnModifier {
    name: String,
    f: Box<ModifierFn>,
}

impl FnModifier {
    /// A modifier named `name` (shown in debug output) running `f`.
    pub fn new(
        name: impl Into<String>,
        f: impl Fn(&mut Csr, &ActivationGenerator, &mut SampleRng) + Send + Sync + 'static,
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
    fn modify(&self, batch: &mut Csr, generator: &ActivationGenerator, rng: &mut SampleRng) {
        (self.f)(batch, generator, rng)
    }
}
