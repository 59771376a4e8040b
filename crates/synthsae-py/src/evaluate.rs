//! `synthsae.evaluate`: an SAE against a model's ground truth, the numbers
//! `synthsae eval --json` prints.

use std::path::PathBuf;

use pyo3::prelude::*;
use synthsae::eval::{evaluate_sae, EvalOptions};
use synthsae::sae::any::AnySae;

use crate::errors::PyResultExt;
use crate::json::value_to_py;
use crate::model::{check_rows, rng, PySyntheticModel, B};

/// Evaluates the SAE at `sae` (a folder in sae-lens's layout or a hub
/// reference) against `model` on `samples` fresh samples drawn with `seed`
/// in batches of `batch_size`: a dict with sae-lens's `eval_stats.json` keys
/// plus `hierarchy` (absorption, splitting), as `synthsae eval --json`.
#[pyfunction]
#[pyo3(signature = (sae, model, samples=100_000, seed=0, batch_size=4096))]
pub fn evaluate<'py>(
    py: Python<'py>,
    sae: PathBuf,
    model: &PySyntheticModel,
    samples: usize,
    seed: u64,
    batch_size: usize,
) -> PyResult<Bound<'py, PyAny>> {
    check_rows("samples", samples)?;
    check_rows("batch_size", batch_size)?;
    let model = model.inner.clone();
    let report = py.detach(move || -> PyResult<serde_json::Value> {
        let dir = match sae.to_str() {
            Some(s) => synthsae::sources::resolve(s, synthsae::sources::SAE_FILES).py()?,
            None => sae.clone(),
        };
        let sae = AnySae::<B>::load(&dir, &Default::default()).py()?;
        let options = EvalOptions::new(samples).with_batch_size(batch_size);
        let r = evaluate_sae(&sae, &model, &options, &mut rng(Some(seed)), |_| {}).py()?;
        Ok(r.to_json())
    })?;
    value_to_py(py, &report)
}
