//! `SyntheticModel.batches(...)`: an endless iterator of hidden-activation
//! batches, sampled on a background thread a few batches ahead of the
//! consumer, so that a Python training loop does not wait for sampling.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use numpy::PyArray2;
use pyo3::prelude::*;
use synthsae::data::{SampleRng, SyntheticModel};

use crate::model::{draw, matrix, B};

/// One produced batch: hidden activations `[rows · D]`, or why sampling failed.
type Produced = PyResult<Vec<f32>>;

/// The iterator `SyntheticModel.batches` returns; `next()` gives float32
/// `[batch_size, D]` arrays, and `close()` (or dropping it) stops the
/// producer.
#[pyclass(name = "Batches", module = "synthsae")]
pub struct Batches {
    /// In a mutex only so that the class is `Sync`, as Python objects must
    /// be: one consumer at a time waits on it.
    rx: Option<Mutex<Receiver<Produced>>>,
    producer: Option<JoinHandle<()>>,
    rows: usize,
    dim: usize,
}

impl Batches {
    /// Starts the producer: batches of `rows` rows from `rng`, at most
    /// `prefetch` waiting.
    pub fn start(
        model: Arc<SyntheticModel<B>>,
        rows: usize,
        mut rng: SampleRng,
        prefetch: usize,
    ) -> Self {
        let dim = model.host_dictionary().hidden_dim();
        let (tx, rx) = sync_channel(prefetch);
        let producer = std::thread::spawn(move || loop {
            let batch = draw(&model, rows, &mut rng, false).map(|(h, _)| h);
            let failed = batch.is_err();
            // A closed receiver (the iterator is gone) ends the producer.
            if tx.send(batch).is_err() || failed {
                return;
            }
        });
        Self {
            rx: Some(Mutex::new(rx)),
            producer: Some(producer),
            rows,
            dim,
        }
    }

    fn stop(&mut self) {
        // Dropping the receiver makes the producer's next send fail.
        self.rx = None;
        if let Some(p) = self.producer.take() {
            let _ = p.join();
        }
    }
}

#[pymethods]
impl Batches {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArray2<f32>>>> {
        let Some(rx) = self.rx.as_ref() else {
            return Ok(None);
        };
        // Wait for the producer without holding the interpreter.
        let next = py.detach(|| rx.lock().ok().and_then(|r| r.recv().ok()));
        match next {
            Some(batch) => Ok(Some(matrix(py, batch?, self.rows, self.dim)?)),
            None => Ok(None),
        }
    }

    /// Stops the background producer; the iterator then ends.
    fn close(&mut self, py: Python<'_>) {
        py.detach(|| self.stop());
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        self.stop();
    }
}
