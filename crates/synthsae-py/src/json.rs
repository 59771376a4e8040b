//! JSON between Rust and Python through Python's own `json` module: configs
//! come in as dicts, reports go out as dicts with the same keys as the
//! CLI's `--json` output.

use pyo3::prelude::*;
use serde_json::Value;

use crate::errors::bad_argument;

/// A JSON text as the Python object `json.loads` makes of it.
pub fn to_py<'py>(py: Python<'py>, json: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (json,))
}

/// A JSON value as a Python object.
pub fn value_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    to_py(py, &v.to_string())
}

/// A Python object (dict, list, str, numbers, bools, None) as JSON; a
/// `ValueError` when it is not JSON-serialisable.
pub fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let text: String = obj
        .py()
        .import("json")?
        .call_method1("dumps", (obj,))
        .map_err(|e| bad_argument("config", format!("not JSON-serialisable: {e}")))?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| bad_argument("config", e))
}
