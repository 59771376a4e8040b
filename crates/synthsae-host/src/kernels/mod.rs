//! SIMD kernels on host buffers, each compiled per vector width and chosen
//! at run time, behind safe functions (the unsafe intrinsics stay private
//! and check the CPU's features first).
//!
//! * [`targets`]: the instruction sets of every multiversioned kernel,
//!   stated once ([`multiversioned!`](crate::multiversioned));
//! * [`dense`]: dot products, `axpy`, gathered axpy / dot, row norms, tiled
//!   transpose, `f64` sums of squares (the SAE fast paths and host Adam);
//! * [`gather`]: the sampler's hidden-activation gather-sum;
//! * [`lowrank`]: the low-rank copula's gap kernel and dot products;
//! * [`tails`]: the tables of the normal upper tail `Φ̄` the copula sampler
//!   decides firings with.
//!
//! Every kernel gives the same bits on every target: no fused multiply-add
//! unless written (`mul_add`, IEEE fma everywhere), fixed summation order.

pub mod dense;
pub mod gather;
pub mod lowrank;
pub mod tails;
pub mod targets;

pub use gather::gather_sum;
pub use lowrank::{
    lowrank_dot, lowrank_dots, lowrank_gaps, GapOut, GapTile, SubHazards, SubMins, DOT_LANES,
    GAP_ROWS, GAP_SUB, GAP_TILE,
};
pub use tails::{tails, upper_tail, TailTables};
