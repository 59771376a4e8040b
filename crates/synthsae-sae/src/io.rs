//! Files in sae-lens's layout: `cfg.json` + `sae_weights.safetensors`,
//! written atomically (temporary file, then rename).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::error::{Result, SaeError};
use crate::ops::to_vec;

/// Name of the config file.
pub const SAE_CFG_FILENAME: &str = "cfg.json";
/// Name of the weights file.
pub const SAE_WEIGHTS_FILENAME: &str = "sae_weights.safetensors";

/// Host values of a tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    /// float32 values.
    F32(Vec<f32>),
    /// float64 values (BatchTopK's `topk_threshold`).
    F64(Vec<f64>),
}

/// A tensor on the host: shape and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Values.
    pub data: HostData,
}

impl HostTensor {
    /// Copies a float tensor to the host as float32.
    pub fn from_tensor<B: Backend, const D: usize>(t: Tensor<B, D>) -> Self {
        let shape = t.dims().to_vec();
        Self {
            shape,
            data: HostData::F32(to_vec(t)),
        }
    }

    /// A float64 scalar (shape `[]`).
    pub fn f64_scalar(v: f64) -> Self {
        Self {
            shape: vec![],
            data: HostData::F64(vec![v]),
        }
    }

    fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            HostData::F32(v) => v.clone(),
            HostData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}

/// The tensors of a weights file, by name.
#[derive(Debug)]
pub struct TensorFile {
    /// The file (for error messages).
    pub path: PathBuf,
    /// Tensors by name.
    pub tensors: HashMap<String, HostTensor>,
}

impl TensorFile {
    /// Reads a safetensors file (float32/64/16, bfloat16 tensors).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| SaeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file_err = |reason: String| SaeError::File {
            path: path.to_path_buf(),
            reason,
        };
        let st = SafeTensors::deserialize(&bytes).map_err(|e| file_err(e.to_string()))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let raw = view.data();
            let data = match view.dtype() {
                Dtype::F32 => HostData::F32(
                    raw.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ),
                Dtype::F64 => HostData::F64(
                    raw.chunks_exact(8)
                        .map(|c| {
                            f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                        })
                        .collect(),
                ),
                Dtype::F16 => HostData::F32(
                    raw.chunks_exact(2)
                        .map(|c| burn::tensor::f16::from_le_bytes([c[0], c[1]]).to_f32())
                        .collect(),
                ),
                Dtype::BF16 => HostData::F32(
                    raw.chunks_exact(2)
                        .map(|c| burn::tensor::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                        .collect(),
                ),
                other => {
                    return Err(file_err(format!(
                        "tensor `{name}` has unsupported dtype {other:?}"
                    )))
                }
            };
            tensors.insert(name, HostTensor { shape, data });
        }
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// Whether the file has a tensor of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<&HostTensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| SaeError::MissingTensor {
                path: self.path.clone(),
                name: name.into(),
            })?;
        // A legacy scalar stored as `[1]` is accepted where `[]` is expected.
        let ok = t.shape == shape || (shape.is_empty() && t.shape == [1]);
        if !ok {
            return Err(SaeError::Shape {
                name: name.into(),
                expected: shape.to_vec(),
                actual: t.shape.clone(),
            });
        }
        Ok(t)
    }

    /// A `[rows, cols]` tensor on `device`.
    pub fn tensor2<B: Backend>(
        &self,
        device: &B::Device,
        name: &str,
        shape: [usize; 2],
    ) -> Result<Tensor<B, 2>> {
        let t = self.get(name, &shape)?;
        Ok(Tensor::from_data(
            TensorData::new(t.to_f32(), shape),
            device,
        ))
    }

    /// A `[n]` tensor on `device`.
    pub fn tensor1<B: Backend>(
        &self,
        device: &B::Device,
        name: &str,
        n: usize,
    ) -> Result<Tensor<B, 1>> {
        let t = self.get(name, &[n])?;
        Ok(Tensor::from_data(TensorData::new(t.to_f32(), [n]), device))
    }

    /// A scalar as float64 (exact for float64 and float32 files).
    pub fn scalar_f64(&self, name: &str) -> Result<f64> {
        let t = self.get(name, &[])?;
        Ok(match &t.data {
            HostData::F64(v) => v[0],
            HostData::F32(v) => v[0] as f64,
        })
    }
}

/// Writes tensors to a safetensors file atomically.
pub fn write_tensors(path: &Path, tensors: &[(String, HostTensor)]) -> Result<()> {
    let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let (dtype, raw) = match &t.data {
                HostData::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                HostData::F64(v) => (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            };
            (name.clone(), dtype, t.shape.clone(), raw)
        })
        .collect();
    let file_err = |reason: String| SaeError::File {
        path: path.to_path_buf(),
        reason,
    };
    let views = bytes
        .iter()
        .map(|(name, dt, shape, raw)| {
            TensorView::new(*dt, shape.clone(), raw)
                .map(|v| (name.clone(), v))
                .map_err(|e| file_err(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let out = safetensors::serialize(views, None).map_err(|e| file_err(e.to_string()))?;
    write_atomic(path, &out)
}

/// Writes a JSON value (no indentation, as sae-lens) atomically.
pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string(value).map_err(|e| SaeError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|source| SaeError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| SaeError::File {
        path: path.to_path_buf(),
        reason: format!("invalid JSON: {e}"),
    })
}

/// Creates `dir` (and parents).
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| SaeError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, so readers never see a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|source| SaeError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        SaeError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_round_trip_bit_exact_and_errors_name_the_tensor() {
        let dir = std::env::temp_dir().join(format!("synthsae-sae-io-{}", std::process::id()));
        create_dir(&dir).unwrap();
        let path = dir.join("w.safetensors");
        let a = HostTensor {
            shape: vec![2, 3],
            data: HostData::F32(vec![1.0, -2.5, f32::MIN_POSITIVE, 3.0, 4.0, 1e-30]),
        };
        let th = HostTensor::f64_scalar(0.123_456_789_012_345_67);
        write_tensors(&path, &[("a".into(), a.clone()), ("t".into(), th)]).unwrap();
        let f = TensorFile::read(&path).unwrap();
        assert_eq!(f.tensors["a"], a);
        assert_eq!(f.scalar_f64("t").unwrap(), 0.123_456_789_012_345_67);
        assert!(matches!(
            f.scalar_f64("missing"),
            Err(SaeError::MissingTensor { name, .. }) if name == "missing"
        ));
        let dev = Default::default();
        assert!(matches!(
            f.tensor2::<burn::backend::NdArray>(&dev, "a", [3, 2]),
            Err(SaeError::Shape { .. })
        ));
        std::fs::write(dir.join("bad.safetensors"), b"garbage").unwrap();
        assert!(matches!(
            TensorFile::read(&dir.join("bad.safetensors")),
            Err(SaeError::File { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
