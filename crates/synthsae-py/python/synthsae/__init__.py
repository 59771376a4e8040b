"""synthsae from Python: sae-lens-compatible synthetic models with known
ground-truth features, sampled fast and exactly; SAE evaluation against the
truth; training from a sae-lens runner config.

The work runs in Rust (synthsae) with the interpreter released.
"""

from ._synthsae import Batches, SyntheticModel, __version__, evaluate, preset, train

__all__ = ["Batches", "SyntheticModel", "__version__", "evaluate", "preset", "train"]
