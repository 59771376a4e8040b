//! # synthsae-eval
//!
//! How well did an SAE recover the ground truth? Evaluation of any
//! [`synthsae_sae::Sae`] against the known features of a
//! [`synthsae_data::SyntheticModel`] (sae-lens 6.54.12's
//! `eval_sae_on_synthetic_data`, same metrics and `eval_stats.json`), the
//! statistics behind it (MCC with an exact, sparse-certified assignment
//! solver; uniqueness; streaming L0, dead latents, shrinkage, explained
//! variance, classification with integer counts), initialisation of SAE
//! weights to the true features, and plots (PNG/SVG).
//!
//! Shapes: `D` input dimension, `S` SAE latents, `N` true features.
//! Nothing here depends on the trainer.
//!
//! Embedding the evaluator in another crate (any type implementing `Sae`):
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::prelude::*;
//! use synthsae_data::{preset, sample_rng, SyntheticModel};
//! use synthsae_eval::{eval_sae_on_synthetic_data, EvalOptions};
//! use synthsae_sae::Sae;
//!
//! /// A ReLU SAE with given weights: `z = relu(x W_enc)`, `x̂ = z W_dec`.
//! struct MySae { w_enc: Tensor<NdArray, 2>, w_dec: Tensor<NdArray, 2> }
//!
//! impl Sae<NdArray> for MySae {
//!     fn d_in(&self) -> usize { self.w_enc.dims()[0] }
//!     fn d_sae(&self) -> usize { self.w_enc.dims()[1] }
//!     fn encode(&self, x: Tensor<NdArray, 2>) -> Tensor<NdArray, 2> {
//!         burn::tensor::activation::relu(x.matmul(self.w_enc.clone()))
//!     }
//!     fn decode(&self, z: Tensor<NdArray, 2>) -> Tensor<NdArray, 2> { z.matmul(self.w_dec.clone()) }
//!     fn decoder_weights(&self) -> Tensor<NdArray, 2> { self.w_dec.clone() }
//!     fn encoder_weights(&self) -> Tensor<NdArray, 2> { self.w_enc.clone() }
//! }
//!
//! let device = Default::default();
//! let model = SyntheticModel::<NdArray>::new(preset("tutorial")?, &device)?;
//! let f = model.feature_dictionary().feature_vectors.val(); // [16, 32]
//! let sae = MySae { w_enc: f.clone().transpose(), w_dec: f };
//! let options = EvalOptions::new(10_000).with_batch_size(2048);
//! let result = eval_sae_on_synthetic_data(&sae, &model, &options, &mut sample_rng(Some(0)))?;
//! assert!((result.mcc - 1.0).abs() < 1e-5);
//! println!("{}", result.to_json_pretty()); // eval_stats.json
//! for (key, value) in result.to_log_dict("synthetic/") {
//!     println!("{key} = {value}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
pub mod assignment;
pub mod cosine;
pub mod error;
pub mod evaluate;
pub mod firing_rates;
pub mod init;
pub mod mcc;
pub mod metrics;
pub mod plot;
pub mod readback;
pub mod result;

pub use assignment::{linear_sum_assignment, Assignment};
pub use cosine::{cosine_similarities, normalize_rows, SimilarityMatrix};
pub use error::{EvalError, Result};
pub use evaluate::{
    eval_sae_on_synthetic_data, eval_sae_on_synthetic_data_with_progress, evaluate_sae,
    EvalOptions, EvalReport, Evaluator,
};
pub use firing_rates::{measure_firing_rates, FiringRates};
pub use init::{init_weights_to_match_features, InitOptions, SaeWeights};
pub use mcc::{
    best_feature_ordering, feature_uniqueness, mcc_from_similarity, mean_correlation_coefficient,
    uniqueness_from_best_matches,
};
pub use metrics::{
    compute_classification_metrics, splitting, AbsorptionCalculator, AbsorptionMetrics,
    ClassificationCalculator, ClassificationMetrics, DeadLatentsCalculator,
    ExplainedVarianceCalculator, HierarchyMetrics, HierarchyOptions, L0Calculator,
    ParentAbsorption, ShrinkageCalculator, SplittingMetrics,
};
pub use result::SyntheticDataEvalResult;
