"""Type stubs of the synthsae package."""

import os
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, "os.PathLike[str]"]
_F32 = npt.NDArray[np.float32]
_I64 = npt.NDArray[np.int64]

class SyntheticModel:
    """A synthetic model: feature vectors [N, D], bias [D], firing
    probabilities and magnitudes, optional correlation and hierarchy."""

    @staticmethod
    def load(source: _Path) -> "SyntheticModel":
        """A saved model: a local folder (sae-lens layout) or a hub reference
        ``namespace/name[:subfolder]``. Raises ``OSError`` for missing or
        unreadable files, ``ValueError`` for invalid contents."""
    @staticmethod
    def from_config(config: Dict[str, Any]) -> "SyntheticModel":
        """A model built from a sae-lens ``SyntheticModelConfig`` dict (a
        ``seed`` builds the same model as sae-lens). ``ValueError`` names a
        bad field."""
    def save(self, path: _Path) -> None:
        """Writes the model to folder ``path`` in sae-lens's layout."""
    @property
    def config(self) -> Dict[str, Any]:
        """The model's config, as ``from_config`` takes it."""
    @property
    def num_features(self) -> int:
        """Number of features N."""
    @property
    def hidden_dim(self) -> int:
        """Hidden dimension D."""
    @property
    def feature_vectors(self) -> _F32:
        """Feature vectors, float32 [N, D]."""
    @property
    def firing_probabilities(self) -> _F32:
        """Firing probabilities, float32 [N]."""
    def sample(self, batch_size: int, seed: Optional[int] = None) -> _F32:
        """Hidden activations, float32 [batch_size, D]: the rows
        ``synthsae sample --samples batch_size --seed seed`` writes.
        ``seed=None`` draws from OS entropy."""
    def sample_with_features(
        self, batch_size: int, seed: Optional[int] = None
    ) -> Tuple[_F32, Tuple[_I64, _I64, _F32]]:
        """``(hidden [B, D], (indptr [B + 1], indices [nnz], values [nnz]))``:
        ``scipy.sparse.csr_matrix((values, indices, indptr), shape=(B, N))``
        is the true feature activations of the same rows."""
    def batches(
        self, batch_size: int, seed: Optional[int] = None, prefetch: int = 2
    ) -> "Batches":
        """An endless iterator of float32 [batch_size, D] batches sampled on
        a background thread ``prefetch`` batches ahead."""

class Batches(Iterator[_F32]):
    """The iterator ``SyntheticModel.batches`` returns."""

    def __iter__(self) -> "Batches": ...
    def __next__(self) -> _F32: ...
    def close(self) -> None:
        """Stops the background producer; the iterator then ends."""

def preset(name: str) -> Dict[str, Any]:
    """The config of an embedded preset (``tutorial``, ``quickstart``,
    ``synthsaebench-16k``), for ``SyntheticModel.from_config``.
    ``ValueError`` lists the presets for an unknown name."""

def evaluate(
    sae: _Path,
    model: SyntheticModel,
    samples: int = 100_000,
    seed: int = 0,
    batch_size: int = 4096,
) -> Dict[str, Any]:
    """Evaluates the SAE at ``sae`` (sae-lens folder or hub reference)
    against ``model``: sae-lens's ``eval_stats.json`` keys plus
    ``hierarchy``, as ``synthsae eval --json``."""

def train(
    runner_config: Dict[str, Any], resume: Optional[_Path] = None
) -> Dict[str, Any]:
    """Trains a sae-lens runner config (plus synthsae's keys) as
    ``synthsae train`` does and returns its report (the keys of
    ``synthsae train --json``). Progress goes to stderr; Ctrl-C raises
    ``KeyboardInterrupt`` between two steps, leaving the latest checkpoint
    usable for ``resume``."""
