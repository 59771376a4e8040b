//! Ground-truth feature directions (sae-lens `FeatureDictionary`).
//!
//! `hidden = acts · F + b` with `F: [N, D]` unit-norm rows and `b: [D]`.
//! Two forward paths exist for sparse batches: [`FeatureDictionary::forward_sparse`]
//! runs on the Burn device (gather rows, scale, scatter-add), and
//! [`HostFeatureDictionary::forward_sparse`] is a rayon gather-sum on the CPU,
//! `O(nnz · D)` work, which is what CPU backends should use.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{bad_shape, invalid, Result};
use crate::orthogonalize::{
    orthogonalize_embeddings, OrthogonalizationConfig, OrthogonalizationReport,
};
use crate::rng::{ChaChaSource, RandomSource};
use synthsae_host::kernels::gather_sum;
use synthsae_host::{try_to_vec, Csr, Precision};

/// The bias setting as written in sae-lens configs: a bool or a norm.
///
/// `false` / `0` → no bias (zeros, not trainable); `true` → a random bias of
/// norm 1; `x > 0` → a random bias of norm `x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bias {
    /// Written as `true` / `false`.
    Flag(bool),
    /// Written as a number: the norm.
    Norm(f64),
}

impl Default for Bias {
    fn default() -> Self {
        Self::Flag(false)
    }
}

impl Bias {
    /// The norm of the bias vector; 0 means no bias.
    pub fn norm(&self) -> f64 {
        match *self {
            Self::Flag(b) => f64::from(u8::from(b)),
            Self::Norm(x) => x,
        }
    }

    /// Rejects negative or non-finite norms.
    pub fn validate(&self) -> Result<()> {
        let x = self.norm();
        if !(x >= 0.0 && x.is_finite()) {
            return Err(invalid(
                "bias",
                format!("the bias norm must be finite and >= 0, got {x}"),
            ));
        }
        Ok(())
    }
}

impl Serialize for Bias {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match *self {
            Self::Flag(b) => s.serialize_bool(b),
            Self::Norm(x) => s.serialize_f64(x),
        }
    }
}

impl<'de> Deserialize<'de> for Bias {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(b) => Ok(Self::Flag(b)),
            serde_json::Value::Number(n) => n
                .as_f64()
                .map(Self::Norm)
                .ok_or_else(|| serde::de::Error::custom("bias must be a finite number")),
            other => Err(serde::de::Error::custom(format!(
                "bias must be a bool or a number, got {other}"
            ))),
        }
    }
}

/// How to build a [`FeatureDictionary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDictionaryConfig {
    /// `N`.
    pub num_features: usize,
    /// `D`.
    pub hidden_dim: usize,
    /// Bias setting.
    #[serde(default)]
    pub bias: Bias,
    /// Seed of the construction draws (`None`: OS entropy).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Orthogonalise the random vectors (`None`: keep them as drawn).
    #[serde(default)]
    pub orthogonalization: Option<OrthogonalizationConfig>,
}

impl FeatureDictionaryConfig {
    /// `N` random unit vectors of dimension `D`, no bias, no orthogonalisation.
    pub fn new(num_features: usize, hidden_dim: usize) -> Self {
        Self {
            num_features,
            hidden_dim,
            bias: Bias::default(),
            seed: None,
            orthogonalization: None,
        }
    }

    /// Sets the bias.
    pub fn with_bias(mut self, bias: Bias) -> Self {
        self.bias = bias;
        self
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: Option<u64>) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the orthogonalisation.
    pub fn with_orthogonalization(mut self, o: Option<OrthogonalizationConfig>) -> Self {
        self.orthogonalization = o;
        self
    }

    /// Builds the dictionary on `device`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<FeatureDictionary<B>> {
        Ok(self.init_with_report(device, None)?.0)
    }

    /// Builds the dictionary and returns the orthogonalisation report (if it
    /// ran). `progress(step, loss)` is forwarded to the optimiser.
    pub fn init_with_report<B: Backend>(
        &self,
        device: &B::Device,
        progress: Option<&mut dyn FnMut(usize, f64)>,
    ) -> Result<(FeatureDictionary<B>, Option<OrthogonalizationReport>)> {
        self.init_with_source(&mut ChaChaSource::new(self.seed), device, progress)
    }

    /// Like [`init_with_report`](Self::init_with_report), drawing from `rng`:
    /// `N·D` normals for the vectors, then (with a bias) `D` normals.
    pub fn init_with_source<B: Backend>(
        &self,
        rng: &mut dyn RandomSource,
        device: &B::Device,
        progress: Option<&mut dyn FnMut(usize, f64)>,
    ) -> Result<(FeatureDictionary<B>, Option<OrthogonalizationReport>)> {
        let (n, d) = (self.num_features, self.hidden_dim);
        if n == 0 {
            return Err(invalid("num_features", "must be at least 1"));
        }
        if d == 0 {
            return Err(invalid("hidden_dim", "must be at least 1"));
        }
        self.bias.validate()?;
        if let Some(o) = &self.orthogonalization {
            o.validate()?;
        }
        let mut vectors = vec![0.0f32; n * d];
        rng.fill_normal(&mut vectors);
        vectors.par_chunks_mut(d).for_each(normalize_in_place);
        let norm = self.bias.norm();
        let bias = if norm != 0.0 {
            let mut b = vec![0.0f32; d];
            rng.fill_normal(&mut b);
            normalize_in_place(&mut b);
            b.iter_mut().for_each(|x| *x *= norm as f32);
            Some(b)
        } else {
            None
        };
        let mut f = Tensor::<B, 2>::from_data(TensorData::new(vectors, [n, d]), device);
        let mut report = None;
        if let Some(o) = &self.orthogonalization {
            let (e, r) = orthogonalize_embeddings(f, o, progress)?;
            f = e;
            report = Some(r);
        }
        let host_bias = bias.as_ref();
        let b = match host_bias {
            Some(b) => Tensor::from_data(TensorData::new(b.clone(), [d]), device),
            None => Tensor::zeros([d], device),
        };
        Ok((
            FeatureDictionary::from_tensors(f, b, bias.is_some())?,
            report,
        ))
    }
}

fn normalize_in_place(row: &mut [f32]) {
    let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-8);
    row.iter_mut().for_each(|v| *v /= norm);
}

/// Feature vectors `[N, D]` and bias `[D]` on a Burn device.
#[derive(Module, Debug)]
pub struct FeatureDictionary<B: Backend> {
    /// `F`, `[N, D]`, unit-norm rows.
    pub feature_vectors: Param<Tensor<B, 2>>,
    /// `b`, `[D]` (zeros and not trainable when the bias is off).
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> FeatureDictionary<B> {
    /// Wraps existing tensors `F: [N, D]` and `b: [D]`.
    pub fn from_tensors(
        feature_vectors: Tensor<B, 2>,
        bias: Tensor<B, 1>,
        trainable_bias: bool,
    ) -> Result<Self> {
        let [_, d] = feature_vectors.dims();
        if bias.dims() != [d] {
            return Err(bad_shape("bias", format!("[D] = [{d}]"), &bias.dims()));
        }
        Ok(Self {
            feature_vectors: Param::from_tensor(feature_vectors),
            bias: Param::from_tensor(bias).set_require_grad(trainable_bias),
        })
    }

    /// `N`.
    pub fn num_features(&self) -> usize {
        self.feature_vectors.dims()[0]
    }

    /// `D`.
    pub fn hidden_dim(&self) -> usize {
        self.feature_vectors.dims()[1]
    }

    /// Dense forward: `[B, N] → [B, D]`.
    pub fn forward(&self, acts: Tensor<B, 2>) -> Tensor<B, 2> {
        acts.matmul(self.feature_vectors.val()) + self.bias.val().unsqueeze::<2>()
    }

    /// Checked dense forward: errors if `acts` is not `[B, N]`.
    pub fn try_forward(&self, acts: Tensor<B, 2>) -> Result<Tensor<B, 2>> {
        let [_, n] = acts.dims();
        if n != self.num_features() {
            return Err(bad_shape(
                "feature_activations",
                format!("[batch, N] = [batch, {}]", self.num_features()),
                &acts.dims(),
            ));
        }
        Ok(self.forward(acts))
    }

    /// Sparse forward on the device: gathers the `nnz` firing rows of `F`,
    /// scales them and scatter-adds them into `[B, D]`. `O(nnz · D)` work.
    pub fn forward_sparse(&self, batch: &Csr) -> Result<Tensor<B, 2>> {
        self.forward_sparse_at(batch, Precision::F32)
    }

    /// [`FeatureDictionary::forward_sparse`] as the product `a F` in
    /// `precision`: at bf16 the rows of `F` and the magnitudes are rounded
    /// to bf16, their products summed in float32 and the sum rounded to
    /// bf16 before `+ b`, which is what sae-lens's dense `a @ F + b` gives
    /// under bf16 autocast (`autocast_data`).
    pub fn forward_sparse_at(&self, batch: &Csr, precision: Precision) -> Result<Tensor<B, 2>> {
        self.check_batch(batch)?;
        let device = self.feature_vectors.device();
        let (bsz, d) = (batch.n_rows(), self.hidden_dim());
        let bias = self.bias.val().unsqueeze::<2>().repeat_dim(0, bsz);
        if batch.nnz() == 0 {
            return Ok(bias);
        }
        let nnz = batch.nnz();
        let feats: Vec<i64> = batch.indices().iter().map(|&f| f as i64).collect();
        let mut rows = Vec::with_capacity(nnz);
        for (r, w) in batch.offsets().windows(2).enumerate() {
            rows.extend(std::iter::repeat_n(r as i64, w[1] - w[0]));
        }
        let feats = Tensor::<B, 1, Int>::from_data(TensorData::new(feats, [nnz]), &device);
        let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [nnz]), &device);
        let vals =
            Tensor::<B, 1>::from_data(TensorData::new(batch.values().to_vec(), [nnz]), &device);
        let gathered = precision.round(self.feature_vectors.val().select(0, feats));
        let contrib = gathered * precision.round(vals).unsqueeze_dim::<2>(1);
        debug_assert_eq!(contrib.dims(), [nnz, d]);
        let add = burn::tensor::IndexingUpdateOp::Add;
        Ok(match precision {
            Precision::F32 => bias.select_assign(0, rows, contrib, add),
            Precision::Bf16 => {
                let sum = Tensor::zeros([bsz, d], &device).select_assign(0, rows, contrib, add);
                precision.round(sum) + bias
            }
        })
    }

    /// A host copy for the CPU gather-sum path.
    pub fn to_host(&self) -> Result<HostFeatureDictionary> {
        HostFeatureDictionary::new(
            try_to_vec(self.feature_vectors.val(), "feature_vectors")?,
            try_to_vec(self.bias.val(), "bias")?,
            self.num_features(),
            self.hidden_dim(),
        )
    }

    fn check_batch(&self, batch: &Csr) -> Result<()> {
        if batch.n_cols() != self.num_features() {
            return Err(bad_shape(
                "feature_activations",
                format!("[batch, N] = [batch, {}]", self.num_features()),
                &[batch.n_rows(), batch.n_cols()],
            ));
        }
        Ok(())
    }
}

/// Feature vectors and bias in host memory, for the CPU sparse forward.
#[derive(Debug, Clone, PartialEq)]
pub struct HostFeatureDictionary {
    num_features: usize,
    hidden_dim: usize,
    feature_vectors: Vec<f32>,
    bias: Vec<f32>,
}

/// Rows of the output handled by one rayon task.
const HIDDEN_ROW_BLOCK: usize = 16;

impl HostFeatureDictionary {
    /// Wraps row-major `F: [N, D]` and `b: [D]`. On Linux, an `F` of
    /// 32 MiB or more is moved onto 2 MiB pages in place where the kernel
    /// allows it (fewer TLB misses in the gather-sum; values unchanged).
    pub fn new(
        feature_vectors: Vec<f32>,
        bias: Vec<f32>,
        num_features: usize,
        hidden_dim: usize,
    ) -> Result<Self> {
        if feature_vectors.len() != num_features * hidden_dim {
            return Err(bad_shape(
                "feature_vectors",
                format!("[N, D] = [{num_features}, {hidden_dim}]"),
                &[feature_vectors.len()],
            ));
        }
        if bias.len() != hidden_dim {
            return Err(bad_shape(
                "bias",
                format!("[D] = [{hidden_dim}]"),
                &[bias.len()],
            ));
        }
        crate::huge_pages::advise_huge_pages(&feature_vectors);
        Ok(Self {
            num_features,
            hidden_dim,
            feature_vectors,
            bias,
        })
    }

    /// `N`.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// `D`.
    pub fn hidden_dim(&self) -> usize {
        self.hidden_dim
    }

    /// Row-major `F`, `[N, D]`.
    pub fn feature_vectors(&self) -> &[f32] {
        &self.feature_vectors
    }

    /// `b`, `[D]`.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Hidden activations `[B, D]` (row-major) of a sparse batch.
    pub fn forward_sparse(&self, batch: &Csr) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; batch.n_rows() * self.hidden_dim];
        self.forward_sparse_into(batch, &mut out)?;
        Ok(out)
    }

    /// Writes the hidden activations of `batch` into `out` `[B * D]`.
    pub fn forward_sparse_into(&self, batch: &Csr, out: &mut [f32]) -> Result<()> {
        let d = self.hidden_dim;
        if batch.n_cols() != self.num_features {
            return Err(bad_shape(
                "feature_activations",
                format!("[batch, N] = [batch, {}]", self.num_features),
                &[batch.n_rows(), batch.n_cols()],
            ));
        }
        if out.len() != batch.n_rows() * d {
            return Err(bad_shape(
                "hidden output",
                format!("[{} * {d}]", batch.n_rows()),
                &[out.len()],
            ));
        }
        out.par_chunks_mut(d * HIDDEN_ROW_BLOCK)
            .enumerate()
            .for_each(|(blk, chunk)| {
                let r0 = blk * HIDDEN_ROW_BLOCK;
                for (k, h) in chunk.chunks_exact_mut(d).enumerate() {
                    let (idx, vals) = batch.row(r0 + k);
                    // The next row's first features are requested while
                    // this row's last ones are summed.
                    let next = if r0 + k + 1 < batch.n_rows() {
                        batch.row(r0 + k + 1).0
                    } else {
                        &[]
                    };
                    gather_sum(h, &self.bias, idx, vals, next, &self.feature_vectors);
                }
            });
        Ok(())
    }

    /// Moves the dictionary to a device.
    pub fn to_device<B: Backend>(
        &self,
        device: &B::Device,
        trainable_bias: bool,
    ) -> Result<FeatureDictionary<B>> {
        FeatureDictionary::from_tensors(
            Tensor::from_data(
                TensorData::new(
                    self.feature_vectors.clone(),
                    [self.num_features, self.hidden_dim],
                ),
                device,
            ),
            Tensor::from_data(
                TensorData::new(self.bias.clone(), [self.hidden_dim]),
                device,
            ),
            trainable_bias,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::ActivationGenerator;
    use crate::rng::sample_rng;
    use burn::backend::{Flex, NdArray};

    fn check_paths_agree<B: Backend>() {
        let device = Default::default();
        let cfg = FeatureDictionaryConfig::new(300, 24)
            .with_bias(Bias::Norm(0.5))
            .with_seed(Some(5));
        let fd = cfg.init::<B>(&device).unwrap();
        let g = ActivationGenerator::new(300, 0.05f32, 0.5f32, 2.0f32).unwrap();
        let batch = g.sample(70, &mut sample_rng(Some(1)));
        let dense = try_to_vec(fd.forward(batch.to_tensor::<B>(&device)), "dense").unwrap();
        let device_sparse = try_to_vec(fd.forward_sparse(&batch).unwrap(), "sparse").unwrap();
        let host = fd.to_host().unwrap().forward_sparse(&batch).unwrap();
        for ((a, b), c) in dense.iter().zip(&device_sparse).zip(&host) {
            assert!((a - b).abs() < 1e-4 && (a - c).abs() < 1e-4, "{a} {b} {c}");
        }
    }

    #[test]
    fn forward_paths_agree_ndarray() {
        check_paths_agree::<NdArray>();
    }

    #[test]
    fn forward_paths_agree_flex() {
        check_paths_agree::<Flex>();
    }

    #[test]
    fn vectors_are_unit_norm_and_bias_has_norm() {
        let fd = FeatureDictionaryConfig::new(50, 8)
            .with_bias(Bias::Norm(0.5))
            .with_seed(Some(0))
            .init::<NdArray>(&Default::default())
            .unwrap();
        let h = fd.to_host().unwrap();
        for row in h.feature_vectors().chunks(8) {
            let n: f32 = row.iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-5);
        }
        let bn: f32 = h.bias().iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((bn - 0.5).abs() < 1e-5);
        // Same seed, same dictionary.
        let again = FeatureDictionaryConfig::new(50, 8)
            .with_bias(Bias::Norm(0.5))
            .with_seed(Some(0))
            .init::<NdArray>(&Default::default())
            .unwrap()
            .to_host()
            .unwrap();
        assert_eq!(h, again);
        let nob = FeatureDictionaryConfig::new(5, 3)
            .init::<NdArray>(&Default::default())
            .unwrap();
        assert!(nob.to_host().unwrap().bias().iter().all(|&x| x == 0.0));
        assert!(!nob.bias.is_require_grad());
    }

    #[test]
    fn bias_json_forms() {
        for (s, want) in [
            ("true", Bias::Flag(true)),
            ("false", Bias::Flag(false)),
            ("0.5", Bias::Norm(0.5)),
        ] {
            let b: Bias = serde_json::from_str(s).unwrap();
            assert_eq!(b, want);
            assert_eq!(serde_json::to_string(&b).unwrap(), s);
        }
        assert!(serde_json::from_str::<Bias>("\"x\"").is_err());
    }

    #[test]
    fn bad_inputs_are_errors() {
        let d = Default::default();
        let e = FeatureDictionaryConfig::new(0, 3)
            .init::<NdArray>(&d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("num_features"), "{e}");
        let e = FeatureDictionaryConfig::new(3, 0)
            .init::<NdArray>(&d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hidden_dim"), "{e}");
        let e = FeatureDictionaryConfig::new(3, 2)
            .with_bias(Bias::Norm(-1.0))
            .init::<NdArray>(&d)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bias"), "{e}");
        let fd = FeatureDictionaryConfig::new(4, 2)
            .init::<NdArray>(&d)
            .unwrap();
        let e = fd
            .forward_sparse(&Csr::zeros(2, 5))
            .unwrap_err()
            .to_string();
        assert!(e.contains("feature_activations"), "{e}");
        let e = fd
            .try_forward(Tensor::zeros([2, 3], &d))
            .unwrap_err()
            .to_string();
        assert!(e.contains("feature_activations"), "{e}");
        let e = HostFeatureDictionary::new(vec![0.0; 5], vec![0.0; 2], 2, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("feature_vectors"), "{e}");
    }
}

#[cfg(test)]
mod torch_stream_tests {
    use super::*;
    use crate::torch_rng::TorchGenerator;
    use burn::backend::NdArray;

    #[test]
    #[allow(clippy::excessive_precision)] // golden values verbatim from the reference
    fn seeded_dictionary_matches_saelens_golden() {
        // sae-lens: FeatureDictionary(8, 4, bias=True, initializer=None, seed=0).
        let cfg = FeatureDictionaryConfig::new(8, 4).with_bias(Bias::Flag(true));
        let (fd, _) = cfg
            .init_with_source::<NdArray>(
                &mut TorchGenerator::manual_seed(0),
                &Default::default(),
                None,
            )
            .unwrap();
        let h = fd.to_host().unwrap();
        let want_rows = [
            [-0.667301, -0.68302, -0.148521, -0.257166],
            [0.353225, 0.288007, -0.131521, -0.880333],
        ];
        for (r, want) in want_rows.iter().enumerate() {
            for (a, b) in h.feature_vectors()[r * 4..(r + 1) * 4].iter().zip(want) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "row {r}: {:?}",
                    &h.feature_vectors()[r * 4..(r + 1) * 4]
                );
            }
        }
        for (a, b) in h
            .bias()
            .iter()
            .zip([-0.301293, 0.198505, -0.47456, -0.802877])
        {
            assert!((a - b).abs() < 1e-5, "bias {:?}", h.bias());
        }
    }
}
