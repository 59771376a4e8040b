//! Tests across modules: every architecture's loss by hand, and the CPU
//! fast paths against the generic formulation.

mod cpu_paths;
mod losses;
