//! A minimal ReLU SAE implementing the trainer's traits, so the trainer can be
//! tested independently of the architectures crate.

#![allow(dead_code)]

use std::path::Path;

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde_json::Value;
use synthsae_data::{ActivationGenerator, HostFeatureDictionary};
use synthsae_sae::{
    Coefficient, NormalizeActivations, Sae, TrainStepInput, TrainStepOutput, TrainingSae,
};
use synthsae_train::{BatchSampler, CheckpointSae, Result, TrainError};

/// `z = relu(x W_enc + b_enc)`, `x̂ = z W_dec + b_dec`, loss = MSE + λ Σ z ‖W_dec‖.
#[derive(Module, Debug)]
pub struct ToySae<B: Backend> {
    pub w_enc: Param<Tensor<B, 2>>,
    pub w_dec: Param<Tensor<B, 2>>,
    pub b_enc: Param<Tensor<B, 1>>,
    pub b_dec: Param<Tensor<B, 1>>,
    #[module(skip)]
    pub l1: f64,
    #[module(skip)]
    pub normalize: String,
}

impl<B: Backend> ToySae<B> {
    pub fn new(d_in: usize, d_sae: usize, l1: f64, device: &B::Device) -> Self {
        let w: Vec<f32> = (0..d_in * d_sae)
            .map(|i| ((i * 7919 % 101) as f32 / 101.0 - 0.5) * 0.2)
            .collect();
        let w_dec = Tensor::<B, 2>::from_data(TensorData::new(w, [d_sae, d_in]), device);
        Self {
            w_enc: Param::from_tensor(w_dec.clone().transpose()),
            w_dec: Param::from_tensor(w_dec),
            b_enc: Param::from_tensor(Tensor::zeros([d_sae], device)),
            b_dec: Param::from_tensor(Tensor::zeros([d_in], device)),
            l1,
            normalize: "none".into(),
        }
    }

    fn encode_pre(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = x - self.b_dec.val().unsqueeze();
        x.matmul(self.w_enc.val()) + self.b_enc.val().unsqueeze()
    }
}

impl<B: Backend> Sae<B> for ToySae<B> {
    fn d_in(&self) -> usize {
        self.w_dec.dims()[1]
    }
    fn d_sae(&self) -> usize {
        self.w_dec.dims()[0]
    }
    fn encode(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        burn::tensor::activation::relu(self.encode_pre(x))
    }
    fn decode(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
        z.matmul(self.w_dec.val()) + self.b_dec.val().unsqueeze()
    }
    fn decoder_weights(&self) -> Tensor<B, 2> {
        self.w_dec.val()
    }
    fn encoder_weights(&self) -> Tensor<B, 2> {
        self.w_enc.val()
    }
}

impl<B: AutodiffBackend> TrainingSae<B> for ToySae<B> {
    type Inference = ToySae<B::InnerBackend>;

    fn d_in(&self) -> usize {
        Sae::d_in(self)
    }
    fn d_sae(&self) -> usize {
        Sae::d_sae(self)
    }
    fn architecture(&self) -> &'static str {
        "toy"
    }
    fn coefficients(&self) -> Vec<Coefficient> {
        vec![Coefficient {
            name: "l1".into(),
            value: self.l1,
            warm_up_steps: 5,
        }]
    }
    fn training_forward(&self, input: &TrainStepInput<B>) -> TrainStepOutput<B> {
        let pre = self.encode_pre(input.x.clone());
        let z = burn::tensor::activation::relu(pre.clone());
        let out = self.decode(z.clone());
        let mse = (out.clone() - input.x.clone())
            .powi_scalar(2)
            .sum_dim(1)
            .mean();
        let norms = self
            .w_dec
            .val()
            .powi_scalar(2)
            .sum_dim(1)
            .sqrt()
            .reshape([1, Sae::d_sae(self)]);
        let lambda = input.coefficient("l1").unwrap_or(0.0);
        let l1 = (z.clone() * norms).sum_dim(1).mean().mul_scalar(lambda);
        TrainStepOutput {
            sae_out: out,
            feature_acts: z.into(),
            hidden_pre: pre,
            loss: mse.clone() + l1.clone(),
            losses: vec![("mse_loss".into(), mse), ("l1_loss".into(), l1)],
            firing: None,
        }
    }
    fn fold_activation_norm_scaling_factor(self, c: f64) -> Self {
        Self {
            w_enc: self.w_enc.map(|t| t.mul_scalar(c)),
            w_dec: self.w_dec.map(|t| t.div_scalar(c)),
            b_dec: self.b_dec.map(|t| t.div_scalar(c)),
            b_enc: self.b_enc,
            l1: self.l1,
            normalize: "none".into(),
        }
    }
    fn to_inference(&self) -> Self::Inference {
        use burn::module::AutodiffModule;
        self.valid()
    }
}

fn save_vec(dir: &Path, name: &str, t: Vec<f32>) -> Result<()> {
    let bytes: Vec<u8> = t.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join(name), bytes).map_err(|e| TrainError::io(dir.join(name), e))
}

fn load_vec(dir: &Path, name: &str) -> Result<Vec<f32>> {
    let b = std::fs::read(dir.join(name)).map_err(|e| TrainError::io(dir.join(name), e))?;
    Ok(b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().into_vec::<f32>().unwrap()
}

impl<B: AutodiffBackend> CheckpointSae<B> for ToySae<B> {
    fn save_training(&self, dir: &Path) -> Result<()> {
        let meta = serde_json::json!({"d_in": Sae::d_in(self), "d_sae": Sae::d_sae(self), "l1": self.l1, "normalize": self.normalize});
        std::fs::write(dir.join("cfg.json"), meta.to_string())
            .map_err(|e| TrainError::io(dir, e))?;
        save_vec(dir, "w_enc", host(self.w_enc.val()))?;
        save_vec(dir, "w_dec", host(self.w_dec.val()))?;
        save_vec(dir, "b_enc", host(self.b_enc.val()))?;
        save_vec(dir, "b_dec", host(self.b_dec.val()))
    }
    fn load_training(dir: &Path, device: &B::Device) -> Result<Self> {
        let cfg: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("cfg.json")).map_err(|e| TrainError::io(dir, e))?,
        )
        .unwrap();
        let d_in = cfg["d_in"].as_u64().unwrap() as usize;
        let d_sae = cfg["d_sae"].as_u64().unwrap() as usize;
        let t2 = |v: Vec<f32>, s: [usize; 2]| {
            Param::from_tensor(Tensor::from_data(TensorData::new(v, s), device))
        };
        let t1 = |v: Vec<f32>| {
            let n = v.len();
            Param::from_tensor(Tensor::from_data(TensorData::new(v, [n]), device))
        };
        Ok(Self {
            w_enc: t2(load_vec(dir, "w_enc")?, [d_in, d_sae]),
            w_dec: t2(load_vec(dir, "w_dec")?, [d_sae, d_in]),
            b_enc: t1(load_vec(dir, "b_enc")?),
            b_dec: t1(load_vec(dir, "b_dec")?),
            l1: cfg["l1"].as_f64().unwrap(),
            normalize: cfg["normalize"].as_str().unwrap().to_string(),
        })
    }
    fn normalize_activations(&self) -> NormalizeActivations {
        NormalizeActivations::parse(&self.normalize).expect("a sae-lens normalisation name")
    }
    fn set_metadata(&mut self, _key: &str, _value: Value) {}
}

/// 64 features in 16 dimensions, each firing with probability 0.05.
pub fn sampler(seed: u64, batch: usize) -> BatchSampler {
    let generator = ActivationGenerator::new(64, 0.05f32, 0.1f32, 1.0f32).unwrap();
    let vectors = (0..64 * 16)
        .map(|i| (((i * 2654435761usize) >> 7) % 97) as f32 / 97.0 - 0.5)
        .collect();
    let dictionary = HostFeatureDictionary::new(vectors, vec![0.0; 16], 64, 16).unwrap();
    BatchSampler::new(generator, dictionary, seed, batch)
}
