//! Per-feature firing probabilities (sae-lens `firing_probabilities.py`).
//!
//! Every generator returns a float32 vector `[N]`; values are computed with
//! the same float32 operations, in the same order, as the reference.

use std::fmt::Debug;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{invalid, Result};
use crate::registry::{parse_params, split_tagged, tagged_value, Registry};
use crate::rng::{ChaChaSource, RandomSource};

/// A user-defined firing-probability distribution.
///
/// Register a factory with [`register_firing_probability`] to read and write
/// configs that name it.
pub trait FiringProbabilityGenerator: Debug + Send + Sync {
    /// The `generator_name` written to JSON.
    fn generator_name(&self) -> &str;
    /// The parameters written to JSON (without `generator_name`).
    fn params(&self) -> Map<String, Value>;
    /// Firing probabilities `[num_features]`, each in `(0, 1]`.
    fn generate(&self, num_features: usize, rng: &mut dyn RandomSource) -> Result<Vec<f32>>;
}

static REGISTRY: Registry<dyn FiringProbabilityGenerator> = Registry::new(
    "firing probability",
    &["zipfian", "linear", "random", "constant"],
);

/// Registers a user-defined firing-probability distribution under `name`.
pub fn register_firing_probability(
    name: &str,
    factory: crate::registry::Factory<dyn FiringProbabilityGenerator>,
) -> Result<()> {
    REGISTRY.register(name, factory)
}

/// Every known firing-probability `generator_name`.
pub fn firing_probability_names() -> Vec<String> {
    REGISTRY.names()
}

/// Zipf-shaped probabilities: `1/k^exponent` rescaled to `[min_prob, max_prob]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZipfianFiringProbabilityConfig {
    /// Exponent of the rank (> 0).
    pub exponent: f64,
    /// Probability of the first (most frequent) feature.
    pub max_prob: f64,
    /// Probability of the last feature.
    pub min_prob: f64,
}

impl Default for ZipfianFiringProbabilityConfig {
    fn default() -> Self {
        Self {
            exponent: 1.0,
            max_prob: 0.3,
            min_prob: 0.01,
        }
    }
}

/// Linearly spaced probabilities from `max_prob` (feature 0) to `min_prob`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinearFiringProbabilityConfig {
    /// Probability of feature 0.
    pub max_prob: f64,
    /// Probability of the last feature.
    pub min_prob: f64,
}

impl Default for LinearFiringProbabilityConfig {
    fn default() -> Self {
        Self {
            max_prob: 0.3,
            min_prob: 0.01,
        }
    }
}

/// Uniformly random probabilities in `[min_prob, max_prob)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomFiringProbabilityConfig {
    /// Upper bound.
    pub max_prob: f64,
    /// Lower bound.
    pub min_prob: f64,
}

impl Default for RandomFiringProbabilityConfig {
    fn default() -> Self {
        Self {
            max_prob: 0.5,
            min_prob: 0.01,
        }
    }
}

/// The same probability for every feature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConstantFiringProbabilityConfig {
    /// The probability.
    pub probability: f64,
}

impl Default for ConstantFiringProbabilityConfig {
    fn default() -> Self {
        Self { probability: 0.1 }
    }
}

/// A firing-probability distribution, tagged by `generator_name` in JSON.
#[derive(Debug, Clone)]
pub enum FiringProbabilityConfig {
    /// `"zipfian"`.
    Zipfian(ZipfianFiringProbabilityConfig),
    /// `"linear"`.
    Linear(LinearFiringProbabilityConfig),
    /// `"random"`.
    Random(RandomFiringProbabilityConfig),
    /// `"constant"`.
    Constant(ConstantFiringProbabilityConfig),
    /// A registered user-defined distribution.
    Custom(Arc<dyn FiringProbabilityGenerator>),
}

impl Default for FiringProbabilityConfig {
    fn default() -> Self {
        Self::Zipfian(ZipfianFiringProbabilityConfig::default())
    }
}

impl FiringProbabilityConfig {
    /// The `generator_name` of this distribution.
    pub fn generator_name(&self) -> &str {
        match self {
            Self::Zipfian(_) => "zipfian",
            Self::Linear(_) => "linear",
            Self::Random(_) => "random",
            Self::Constant(_) => "constant",
            Self::Custom(c) => c.generator_name(),
        }
    }

    /// Checks the parameters of built-in distributions.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Zipfian(c) => {
                if c.exponent.is_nan() || c.exponent <= 0.0 {
                    return Err(invalid(
                        "exponent",
                        format!("must be positive, got {}", c.exponent),
                    ));
                }
                check_prob_range(c.max_prob, c.min_prob, false)
            }
            Self::Linear(c) => check_prob_range(c.max_prob, c.min_prob, true),
            Self::Random(c) => check_prob_range(c.max_prob, c.min_prob, false),
            Self::Constant(c) => {
                if !(c.probability > 0.0 && c.probability <= 1.0) {
                    return Err(invalid(
                        "probability",
                        format!("{} is outside (0, 1]", c.probability),
                    ));
                }
                Ok(())
            }
            Self::Custom(_) => Ok(()),
        }
    }

    /// Probabilities `[num_features]`; `seed` is used by `random` only.
    pub fn generate(&self, num_features: usize, seed: Option<u64>) -> Result<Vec<f32>> {
        self.generate_with(num_features, &mut ChaChaSource::new(seed))
    }

    /// Like [`generate`](Self::generate), drawing from the given source.
    pub fn generate_with(
        &self,
        num_features: usize,
        rng: &mut dyn RandomSource,
    ) -> Result<Vec<f32>> {
        match self {
            Self::Zipfian(c) => {
                zipfian_firing_probabilities(num_features, c.exponent, c.max_prob, c.min_prob)
            }
            Self::Linear(c) => linear_firing_probabilities(num_features, c.max_prob, c.min_prob),
            Self::Random(c) => {
                random_firing_probabilities_with(num_features, c.max_prob, c.min_prob, rng)
            }
            Self::Constant(c) => {
                check_num_features(num_features)?;
                Ok(vec![c.probability as f32; num_features])
            }
            Self::Custom(c) => {
                let p = c.generate(num_features, rng)?;
                if p.len() != num_features {
                    return Err(crate::error::bad_shape(
                        "firing_probability",
                        format!("[{num_features}]"),
                        &[p.len()],
                    ));
                }
                Ok(p)
            }
        }
    }

    fn to_value(&self) -> Value {
        let name = self.generator_name();
        match self {
            Self::Zipfian(c) => tagged_value(c, name),
            Self::Linear(c) => tagged_value(c, name),
            Self::Random(c) => tagged_value(c, name),
            Self::Constant(c) => tagged_value(c, name),
            Self::Custom(c) => tagged_value(&c.params(), name),
        }
    }

    /// Parses the sae-lens JSON form (`{..., "generator_name": "zipfian"}`).
    pub fn from_value(value: Value) -> Result<Self> {
        let what = "firing_probability";
        let (name, params) = split_tagged(value, what)?;
        let cfg = match name.as_str() {
            "zipfian" => Self::Zipfian(parse_params(params, what)?),
            "linear" => Self::Linear(parse_params(params, what)?),
            "random" => Self::Random(parse_params(params, what)?),
            "constant" => Self::Constant(parse_params(params, what)?),
            other => Self::Custom(REGISTRY.build(other, params)?),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

crate::registry::tagged_config_serde!(FiringProbabilityConfig);

fn check_num_features(n: usize) -> Result<()> {
    if n < 1 {
        return Err(invalid("num_features", "must be at least 1"));
    }
    Ok(())
}

fn check_prob_range(max_prob: f64, min_prob: f64, allow_equal: bool) -> Result<()> {
    let ok = if allow_equal {
        0.0 < min_prob && min_prob <= max_prob && max_prob <= 1.0
    } else {
        0.0 < min_prob && min_prob < max_prob && max_prob <= 1.0
    };
    if !ok {
        let rel = if allow_equal { "<=" } else { "<" };
        return Err(invalid(
            "min_prob/max_prob",
            format!("must have 0 < min_prob {rel} max_prob <= 1, got min_prob={min_prob}, max_prob={max_prob}"),
        ));
    }
    Ok(())
}

/// `1/k^exponent` for ranks `k = 1..N`, affinely rescaled so feature 0 has
/// `max_prob` and feature `N-1` has `min_prob` (float32, as the reference).
pub fn zipfian_firing_probabilities(
    num_features: usize,
    exponent: f64,
    max_prob: f64,
    min_prob: f64,
) -> Result<Vec<f32>> {
    check_num_features(num_features)?;
    if exponent.is_nan() || exponent <= 0.0 {
        return Err(invalid(
            "exponent",
            format!("must be positive, got {exponent}"),
        ));
    }
    check_prob_range(max_prob, min_prob, false)?;
    if num_features == 1 {
        return Ok(vec![max_prob as f32]);
    }
    let raw: Vec<f32> = (1..=num_features)
        .map(|k| 1.0f32 / torch_pow_scalar(k as f32, exponent))
        .collect();
    let (lo, hi) = raw
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &q| {
            (lo.min(q), hi.max(q))
        });
    let span = (max_prob - min_prob) as f32;
    let min = min_prob as f32;
    Ok(raw
        .iter()
        .map(|&q| min + span * (q - lo) / (hi - lo))
        .collect())
}

/// `x^e` as torch evaluates a float32 tensor to a scalar power: exponents
/// 0.5, 2, 3, −0.5, −1, −2 take exact special paths (`sqrt`, products,
/// reciprocals), everything else `powf`. Matching them keeps the values
/// bit-identical to sae-lens's.
fn torch_pow_scalar(x: f32, e: f64) -> f32 {
    match e {
        0.5 => x.sqrt(),
        2.0 => x * x,
        3.0 => x * x * x,
        -0.5 => 1.0 / x.sqrt(),
        -1.0 => 1.0 / x,
        -2.0 => 1.0 / (x * x),
        _ => x.powf(e as f32),
    }
}

/// `linspace(max_prob, min_prob, N)` in float32.
pub fn linear_firing_probabilities(
    num_features: usize,
    max_prob: f64,
    min_prob: f64,
) -> Result<Vec<f32>> {
    check_num_features(num_features)?;
    check_prob_range(max_prob, min_prob, true)?;
    Ok(linspace_f32(max_prob, min_prob, num_features))
}

/// `min_prob + (max_prob - min_prob) * U`, `U` uniform float32, from `seed`.
pub fn random_firing_probabilities(
    num_features: usize,
    max_prob: f64,
    min_prob: f64,
    seed: Option<u64>,
) -> Result<Vec<f32>> {
    random_firing_probabilities_with(
        num_features,
        max_prob,
        min_prob,
        &mut ChaChaSource::new(seed),
    )
}

/// [`random_firing_probabilities`] drawing from the given source.
pub fn random_firing_probabilities_with(
    num_features: usize,
    max_prob: f64,
    min_prob: f64,
    rng: &mut dyn RandomSource,
) -> Result<Vec<f32>> {
    check_num_features(num_features)?;
    check_prob_range(max_prob, min_prob, false)?;
    let mut u = vec![0.0f32; num_features];
    rng.fill_uniform(&mut u);
    let span = (max_prob - min_prob) as f32;
    let min = min_prob as f32;
    Ok(u.into_iter().map(|x| min + span * x).collect())
}

/// torch's float32 `linspace(start, end, steps)`: the first half counts up
/// from `start`, the second half counts down from `end`, with a float32 step.
pub(crate) fn linspace_f32(start: f64, end: f64, steps: usize) -> Vec<f32> {
    match steps {
        0 => Vec::new(),
        1 => vec![start as f32],
        _ => {
            let (s, e) = (start as f32, end as f32);
            let step = (e - s) / (steps - 1) as f32;
            let half = steps / 2;
            (0..steps)
                .map(|i| {
                    if i < half {
                        step.mul_add(i as f32, s)
                    } else {
                        (-step).mul_add((steps - 1 - i) as f32, e)
                    }
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    #[allow(clippy::excessive_precision)] // golden values verbatim from the reference
    fn zipfian_golden() {
        close(
            &zipfian_firing_probabilities(10, 1.0, 0.3, 0.01).unwrap(),
            &[
                0.3,
                0.138888896,
                0.085185193,
                0.05833333,
                0.042222224,
                0.031481482,
                0.023809526,
                0.018055554,
                0.013580247,
                0.01,
            ],
            3e-8, // the spec prints 8-9 digits; 1 ulp at 0.3 is 3e-8
        );
        close(
            &zipfian_firing_probabilities(5, 2.0, 0.3, 0.01).unwrap(),
            &[0.3, 0.073437497, 0.031481482, 0.016796876, 0.01],
            3e-8, // the spec prints 8-9 digits; 1 ulp at 0.3 is 3e-8
        );
        close(
            &zipfian_firing_probabilities(8, 1.0, 0.3, 0.01).unwrap(),
            &[
                0.3,
                0.134285718,
                0.07904762,
                0.051428571,
                0.034857143,
                0.023809526,
                0.015918368,
                0.01,
            ],
            3e-8, // the spec prints 8-9 digits; 1 ulp at 0.3 is 3e-8
        );
        assert_eq!(
            zipfian_firing_probabilities(1, 1.0, 0.3, 0.01).unwrap(),
            vec![0.3]
        );
    }

    #[test]
    fn linear_golden() {
        close(
            &linear_firing_probabilities(5, 0.3, 0.01).unwrap(),
            &[0.3, 0.2275, 0.155, 0.0825, 0.01],
            3e-8, // the spec prints 8-9 digits; 1 ulp at 0.3 is 3e-8
        );
        assert_eq!(
            linear_firing_probabilities(1, 0.3, 0.01).unwrap(),
            vec![0.3]
        );
        // Equal bounds are allowed for linear only.
        assert!(linear_firing_probabilities(3, 0.2, 0.2).is_ok());
        assert!(zipfian_firing_probabilities(3, 1.0, 0.2, 0.2).is_err());
    }

    #[test]
    fn random_is_seeded_and_in_range() {
        let a = random_firing_probabilities(1000, 0.5, 0.01, Some(0)).unwrap();
        let b = random_firing_probabilities(1000, 0.5, 0.01, Some(0)).unwrap();
        assert_eq!(a, b);
        assert!(a.iter().all(|&p| (0.01..0.5).contains(&p)));
        assert_ne!(
            a,
            random_firing_probabilities(1000, 0.5, 0.01, Some(1)).unwrap()
        );
    }

    #[test]
    fn invalid_parameters_name_the_field() {
        let e = zipfian_firing_probabilities(0, 1.0, 0.3, 0.01).unwrap_err();
        assert!(e.to_string().contains("num_features"), "{e}");
        let e = zipfian_firing_probabilities(4, 0.0, 0.3, 0.01).unwrap_err();
        assert!(e.to_string().contains("exponent"), "{e}");
        let e = zipfian_firing_probabilities(4, 1.0, 1.5, 0.01).unwrap_err();
        assert!(e.to_string().contains("max_prob"), "{e}");
        let e = random_firing_probabilities(4, 0.3, 0.0, None).unwrap_err();
        assert!(e.to_string().contains("min_prob"), "{e}");
    }

    #[test]
    fn json_round_trip_in_saelens_layout() {
        let cfg = FiringProbabilityConfig::default();
        let s = serde_json::to_string(&cfg).unwrap();
        assert_eq!(
            s,
            r#"{"exponent":1.0,"max_prob":0.3,"min_prob":0.01,"generator_name":"zipfian"}"#
        );
        let back: FiringProbabilityConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(back, cfg);
        let c: FiringProbabilityConfig =
            serde_json::from_str(r#"{"generator_name":"constant","probability":0.2}"#).unwrap();
        assert_eq!(c.generate(3, None).unwrap(), vec![0.2; 3]);
        // Missing fields take their defaults, as the dataclass does.
        let l: FiringProbabilityConfig =
            serde_json::from_str(r#"{"generator_name":"linear"}"#).unwrap();
        assert_eq!(l, FiringProbabilityConfig::Linear(Default::default()));
    }

    #[test]
    fn json_errors() {
        let e = serde_json::from_str::<FiringProbabilityConfig>(r#"{"exponent":1.0}"#).unwrap_err();
        assert!(e.to_string().contains("generator_name required"), "{e}");
        let e = serde_json::from_str::<FiringProbabilityConfig>(r#"{"generator_name":"nope"}"#)
            .unwrap_err();
        assert!(
            e.to_string().contains("nope") && e.to_string().contains("zipfian"),
            "{e}"
        );
        let e = serde_json::from_str::<FiringProbabilityConfig>(
            r#"{"generator_name":"zipfian","exponnt":2}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("exponnt"), "{e}");
    }

    #[derive(Debug)]
    struct Halves {
        p: f64,
    }
    impl FiringProbabilityGenerator for Halves {
        fn generator_name(&self) -> &str {
            "test_halves"
        }
        fn params(&self) -> Map<String, Value> {
            let mut m = Map::new();
            m.insert("p".into(), Value::from(self.p));
            m
        }
        fn generate(&self, n: usize, _rng: &mut dyn RandomSource) -> Result<Vec<f32>> {
            Ok((0..n)
                .map(|i| if i % 2 == 0 { self.p as f32 } else { 0.5 })
                .collect())
        }
    }

    #[test]
    fn user_defined_distribution_round_trips() {
        register_firing_probability("test_halves", |m| {
            let p = m
                .get("p")
                .and_then(Value::as_f64)
                .ok_or_else(|| invalid("p", "missing"))?;
            Ok(Arc::new(Halves { p }))
        })
        .unwrap();
        assert!(register_firing_probability("test_halves", |_| unreachable!()).is_err());
        assert!(register_firing_probability("zipfian", |_| unreachable!()).is_err());
        let cfg: FiringProbabilityConfig =
            serde_json::from_str(r#"{"p":0.25,"generator_name":"test_halves"}"#).unwrap();
        assert_eq!(cfg.generate(3, None).unwrap(), vec![0.25, 0.5, 0.25]);
        assert_eq!(
            serde_json::to_string(&cfg).unwrap(),
            r#"{"p":0.25,"generator_name":"test_halves"}"#
        );
    }
}
