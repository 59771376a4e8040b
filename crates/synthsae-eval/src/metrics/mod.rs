//! Streaming metric calculators (spec §9.4): feed batches with `add_*`, read
//! the result with `compute`. Counts are integers (`u64`), sums of squares
//! `f64`, so nothing degrades with the number of samples.

pub mod absorption;
pub mod classification;
pub mod dead_latents;
pub mod explained_variance;
pub mod l0;
pub mod shrinkage;

pub use absorption::{
    splitting, AbsorptionCalculator, AbsorptionMetrics, HierarchyMetrics, HierarchyOptions,
    ParentAbsorption, SplittingMetrics,
};
pub use classification::{
    compute_classification_metrics, ClassificationCalculator, ClassificationMetrics,
};
pub use dead_latents::DeadLatentsCalculator;
pub use explained_variance::ExplainedVarianceCalculator;
pub use l0::L0Calculator;
pub use shrinkage::ShrinkageCalculator;
