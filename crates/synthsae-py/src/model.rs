//! `synthsae.SyntheticModel`: a sae-lens synthetic model, built, loaded,
//! saved and sampled from Python.

use std::path::PathBuf;
use std::sync::Arc;

use burn::backend::Flex;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::exceptions::PyMemoryError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use synthsae::data::{sample_rng, Csr, SampleRng, SyntheticModel, SyntheticModelConfig};

use crate::batches::Batches;
use crate::errors::{bad_argument, PyResultExt};
use crate::json::{from_py, to_py};

/// The CPU backend the package computes on.
pub type B = Flex;

/// Rows per draw, as `synthsae sample` (`--batch-size` default): a call with
/// seed `s` draws the same rows as `synthsae sample --seed s`.
pub const DRAW_ROWS: usize = 1024;

/// A synthetic model: feature vectors `[N, D]`, a bias `[D]`, firing
/// probabilities and magnitudes, optional correlation and hierarchy.
#[pyclass(name = "SyntheticModel", module = "synthsae", frozen)]
pub struct PySyntheticModel {
    pub(crate) inner: Arc<SyntheticModel<B>>,
}

/// The config of an embedded preset (`tutorial`, `quickstart`,
/// `synthsaebench-16k`) as a dict for `SyntheticModel.from_config`.
#[pyfunction]
pub fn preset<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let cfg = synthsae::data::preset(name).py()?;
    to_py(py, &cfg.to_json())
}

/// `seed` as a sampling stream (`None`: OS entropy).
pub fn rng(seed: Option<u64>) -> SampleRng {
    sample_rng(seed)
}

/// `rows` rows of `model` drawn from `rng` in draws of [`DRAW_ROWS`]:
/// hidden activations `[rows · D]` and the features of each row. A size
/// that cannot be allocated is a `MemoryError`, not an abort.
pub fn draw(
    model: &SyntheticModel<B>,
    rows: usize,
    rng: &mut SampleRng,
    with_features: bool,
) -> PyResult<(Vec<f32>, Option<Csr>)> {
    let dict = model.host_dictionary();
    let d = dict.hidden_dim();
    let too_big = || {
        PyMemoryError::new_err(format!(
            "batch_size: {rows} rows × {d} dimensions do not fit in memory"
        ))
    };
    let len = rows
        .checked_mul(d)
        .filter(|&n| n <= isize::MAX as usize / 4)
        .ok_or_else(too_big)?;
    let mut hidden = Vec::new();
    hidden.try_reserve_exact(len).map_err(|_| too_big())?;
    hidden.resize(len, 0f32);
    let mut features = with_features.then(|| Csr::empty(dict.num_features()));
    let mut done = 0;
    while done < rows {
        let b = DRAW_ROWS.min(rows - done);
        let f = model.sample_features(b, rng);
        dict.forward_sparse_into(&f, &mut hidden[done * d..(done + b) * d])
            .py()?;
        if let Some(all) = features.as_mut() {
            for (idx, val) in f.rows() {
                all.push_row(idx.iter().copied().zip(val.iter().copied()));
            }
        }
        done += b;
    }
    Ok((hidden, features))
}

/// `[rows, cols]` as a NumPy array that owns the Rust buffer (no copy).
pub fn matrix<'py>(
    py: Python<'py>,
    data: Vec<f32>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let a = Array2::from_shape_vec((rows, cols), data)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    Ok(a.into_pyarray(py))
}

/// CSR parts `(indptr int64 [B + 1], indices int64 [nnz], values float32 [nnz])`.
pub type CsrParts<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f32>>,
);

/// `c` as [`CsrParts`].
pub fn csr_parts<'py>(py: Python<'py>, c: &Csr) -> CsrParts<'py> {
    let indptr: Vec<i64> = c.offsets().iter().map(|&o| o as i64).collect();
    let indices: Vec<i64> = c.indices().iter().map(|&i| i64::from(i)).collect();
    (
        indptr.into_pyarray(py),
        indices.into_pyarray(py),
        c.values().to_vec().into_pyarray(py),
    )
}

pub fn check_rows(name: &str, rows: usize) -> PyResult<()> {
    if rows == 0 {
        return Err(bad_argument(name, "must be at least 1"));
    }
    Ok(())
}

#[pymethods]
impl PySyntheticModel {
    /// Loads a saved model: a local folder (sae-lens layout) or a hub
    /// reference `namespace/name[:subfolder]`, downloaded into the Hugging
    /// Face cache like `synthsae` does.
    #[staticmethod]
    fn load(py: Python<'_>, source: PathBuf) -> PyResult<Self> {
        let model = py.detach(|| -> PyResult<SyntheticModel<B>> {
            let dir = match source.to_str() {
                Some(s) => synthsae::sources::resolve(s, synthsae::sources::MODEL_FILES).py()?,
                None => source.clone(),
            };
            SyntheticModel::<B>::load(&dir, &Default::default()).py()
        })?;
        Ok(Self {
            inner: Arc::new(model),
        })
    }

    /// Builds a model from a sae-lens `SyntheticModelConfig` as a dict (the
    /// keys of `synthetic_model_config.json`). A `seed` builds the same model
    /// as sae-lens.
    #[staticmethod]
    fn from_config(py: Python<'_>, config: &Bound<'_, PyDict>) -> PyResult<Self> {
        let json = from_py(config)?.to_string();
        let model = py.detach(|| -> PyResult<SyntheticModel<B>> {
            let cfg = SyntheticModelConfig::from_json(&json).py()?;
            SyntheticModel::<B>::new(cfg, &Default::default()).py()
        })?;
        Ok(Self {
            inner: Arc::new(model),
        })
    }

    /// Saves the model to folder `path` in sae-lens's layout.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let model = self.inner.clone();
        py.detach(move || model.save(&path).py())
    }

    /// The model's config, as the dict `from_config` takes.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.inner.config().to_json())
    }

    /// Number of features `N`.
    #[getter]
    fn num_features(&self) -> usize {
        self.inner.host_dictionary().num_features()
    }

    /// Hidden dimension `D`.
    #[getter]
    fn hidden_dim(&self) -> usize {
        self.inner.host_dictionary().hidden_dim()
    }

    /// Feature vectors, float32 `[N, D]` (a copy).
    #[getter]
    fn feature_vectors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let d = self.inner.host_dictionary();
        matrix(
            py,
            d.feature_vectors().to_vec(),
            d.num_features(),
            d.hidden_dim(),
        )
    }

    /// Firing probabilities, float32 `[N]` (after any hierarchy
    /// compensation, as saved).
    #[getter]
    fn firing_probabilities<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f32>> {
        self.inner
            .generator()
            .firing_probabilities()
            .to_vec()
            .into_pyarray(py)
    }

    /// `batch_size` hidden activations, float32 `[batch_size, D]`: the rows
    /// `synthsae sample --samples batch_size --seed seed` writes (drawn 1024
    /// rows at a time from one stream). `seed=None` draws from OS entropy.
    #[pyo3(signature = (batch_size, seed=None))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        batch_size: usize,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        check_rows("batch_size", batch_size)?;
        let model = self.inner.clone();
        let hidden =
            py.detach(move || draw(&model, batch_size, &mut rng(seed), false).map(|(h, _)| h))?;
        matrix(py, hidden, batch_size, self.hidden_dim())
    }

    /// [`sample`] plus the true feature activations of the same rows:
    /// `(hidden [B, D], (indptr [B + 1], indices [nnz], values [nnz]))`, the
    /// parts of a `scipy.sparse.csr_matrix((values, indices, indptr),
    /// shape=(B, N))`.
    #[pyo3(signature = (batch_size, seed=None))]
    fn sample_with_features<'py>(
        &self,
        py: Python<'py>,
        batch_size: usize,
        seed: Option<u64>,
    ) -> PyResult<(Bound<'py, PyArray2<f32>>, CsrParts<'py>)> {
        check_rows("batch_size", batch_size)?;
        let model = self.inner.clone();
        let (hidden, features) =
            py.detach(move || draw(&model, batch_size, &mut rng(seed), true))?;
        let features = features.expect("asked for");
        Ok((
            matrix(py, hidden, batch_size, self.hidden_dim())?,
            csr_parts(py, &features),
        ))
    }

    /// An iterator of `[batch_size, D]` batches, endless, produced on a
    /// background thread `prefetch` batches ahead (at least 1). Batch `i` is
    /// rows `i·batch_size …` of one stream seeded by `seed`: the batches of
    /// seed `s` concatenated are `sample(n · batch_size, s)` when
    /// `batch_size` is a multiple of 1024.
    #[pyo3(signature = (batch_size, seed=None, prefetch=2))]
    fn batches(&self, batch_size: usize, seed: Option<u64>, prefetch: usize) -> PyResult<Batches> {
        check_rows("batch_size", batch_size)?;
        check_rows("prefetch", prefetch)?;
        Ok(Batches::start(
            self.inner.clone(),
            batch_size,
            rng(seed),
            prefetch,
        ))
    }

    fn __repr__(&self) -> String {
        format!(
            "SyntheticModel(num_features={}, hidden_dim={}, hierarchy={})",
            self.num_features(),
            self.hidden_dim(),
            if self.inner.hierarchy().is_some() {
                "True"
            } else {
                "False"
            }
        )
    }
}
