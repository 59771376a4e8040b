//! # synthsae-eval
//!
//! How well did an SAE recover the ground truth? Evaluation against the
//! known features of a synthetic model, the statistics behind it and plots.
pub mod assignment;
pub mod cosine;
pub mod error;
pub mod evaluate;
pub mod firing_rates;
pub mod host;
pub mod init;
pub mod mcc;
pub mod metrics;
pub mod plot;
pub mod result;

pub use assignment::{linear_sum_assignment, Assignment};
pub use cosine::{cosine_similarities, normalize_rows, SimilarityMatrix};
pub use error::{EvalError, Result};
pub use evaluate::{
    eval_sae_on_synthetic_data, eval_sae_on_synthetic_data_with_progress, EvalOptions, Evaluator,
};
pub use firing_rates::{measure_firing_rates, FiringRates};
pub use init::{init_weights_to_match_features, InitOptions, SaeWeights};
pub use mcc::{
    best_feature_ordering, feature_uniqueness, mcc_from_similarity, mean_correlation_coefficient,
    uniqueness_from_best_matches,
};
pub use metrics::{
    compute_classification_metrics, ClassificationCalculator, ClassificationMetrics,
    DeadLatentsCalculator, ExplainedVarianceCalculator, L0Calculator, ShrinkageCalculator,
};
pub use result::SyntheticDataEvalResult;
