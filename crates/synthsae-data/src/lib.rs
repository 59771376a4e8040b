//! # synthsae-data
//!
//! Synthetic sparse feature activations with a known ground truth: firing
//! probabilities, magnitudes, correlations (Gaussian copula), modifiers, the
//! feature dictionary that maps them to dense hidden activations, and
//! superposition statistics. Behaviour follows sae-lens 6.54.12
//! (`sae_lens.synthetic`), with a sparse-first sampler.
//!
//! Shapes: `N` features, hidden dimension `D`, batch size `B`.

pub mod correlation;
pub mod error;
pub mod feature_dictionary;
pub mod firing;
pub mod generator;
pub mod hidden_path;
pub mod hierarchy;
pub mod hierarchy_modifier;
mod huge_pages;
pub mod magnitude;
pub mod modifier;
pub mod mt19937;
pub mod orthogonalize;
pub mod per_feature;
pub mod presets;
pub mod py_random;
pub mod registry;
pub mod rng;
pub mod superposition;
pub mod synthetic_model;
pub mod torch_rng;

pub use correlation::{
    create_correlation_matrix_from_correlations, generate_random_correlation_matrix,
    generate_random_correlations, generate_random_low_rank_correlation_matrix, CorrelationMatrix,
    CorrelationStats, LowRankCorrelation, RandomCorrelationParams,
};
pub use error::{DataError, Result};
pub use feature_dictionary::{
    Bias, FeatureDictionary, FeatureDictionaryConfig, HostFeatureDictionary,
};
pub use firing::{
    linear_firing_probabilities, random_firing_probabilities, register_firing_probability,
    zipfian_firing_probabilities, FiringProbabilityConfig, FiringProbabilityGenerator,
};
pub use generator::{correlation_threshold, ActivationGenerator, Correlation};
pub use hidden_path::HiddenPath;
pub use hierarchy::{
    generate_hierarchy, validate_hierarchy, BranchingFactor, Hierarchy, HierarchyConfig,
    HierarchyNode,
};
pub use hierarchy_modifier::HierarchyModifier;
pub use magnitude::{register_magnitude, Magnitude, MagnitudeConfig, MagnitudeGenerator};
pub use modifier::{ActivationModifier, FnModifier};
pub use orthogonalize::{
    orthogonalize_embeddings, OrthogonalizationConfig, OrthogonalizationReport,
};
pub use per_feature::{FeatureParams, PerFeature};
pub use presets::{preset, PRESETS};
pub use rng::{sample_rng, ChaChaSource, RandomSource, SampleRng};
pub use superposition::{compute_superposition_stats, SuperpositionStats};
pub use synthetic_model::{LowRankCorrelationConfig, SyntheticModel, SyntheticModelConfig};
pub use synthsae_host::Csr;
pub use torch_rng::TorchGenerator;
