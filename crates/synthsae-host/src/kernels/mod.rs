//! SIMD kernels on host buffers, compiled per vector width and chosen at
//! run time.
//!
//! * [`dense`]: dot products, axpy, gathered axpy / dot, row norms, tiled
//!   transpose, f64 sums of squares (the SAE fast paths and host Adam);
//! * [`sampling`]: the sampler's gather-sum and low-rank copula kernels with
//!   their `Φ̄` tables.

pub mod dense;
pub mod sampling;
