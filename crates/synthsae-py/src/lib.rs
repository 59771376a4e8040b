//! The `synthsae` Python package's extension module (`synthsae._synthsae`):
//! synthetic models and their samplers, evaluation and training, computed
//! by synthsae on the CPU (Flex backend) with the interpreter released.
//! The Python-facing docs are the docstrings here and `python/synthsae/*.pyi`.

mod batches;
mod errors;
mod evaluate;
mod json;
mod model;
mod train;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _synthsae(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::PySyntheticModel>()?;
    m.add_class::<batches::Batches>()?;
    m.add_function(wrap_pyfunction!(model::preset, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
