//! Run-time choice of a Burn backend among those compiled in.
//!
//! Backends are cargo features of this package: `flex` (default) and
//! `ndarray` on the CPU, `wgpu` and `cuda` on GPUs. Library code is generic
//! over `B: Backend`; a [`BackendJob`] is the bridge from a run-time
//! [`BackendKind`] to a monomorphised call.

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::Backend;

/// A backend that may be selected with `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// `burn-flex`, CPU (default: faster than ndarray on our workloads).
    Flex,
    /// `burn-ndarray`, CPU.
    Ndarray,
    /// `burn-wgpu` (Vulkan / Metal / DX12, or Mesa's software Vulkan).
    Wgpu,
    /// `burn-cuda`, NVIDIA GPUs.
    Cuda,
}

impl BackendKind {
    /// Every kind, compiled in or not.
    pub const ALL: [BackendKind; 4] = [Self::Flex, Self::Ndarray, Self::Wgpu, Self::Cuda];

    /// The name used on the command line and in cargo features.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// Whether this binary was built with the backend's cargo feature.
    pub fn is_compiled(self) -> bool {
        match self {
            Self::Flex => cfg!(feature = "flex"),
            Self::Ndarray => cfg!(feature = "ndarray"),
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The default: the first compiled-in kind of flex, ndarray, wgpu, cuda.
    pub fn default_compiled() -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.is_compiled())
    }

    /// Runs `job` on this backend's default device.
    pub fn run<J: BackendJob>(self, job: J) -> Result<J::Output, BackendUnavailable> {
        match self {
            #[cfg(feature = "flex")]
            Self::Flex => Ok(job.run::<burn::backend::Flex>(Default::default(), self)),
            #[cfg(feature = "ndarray")]
            Self::Ndarray => Ok(job.run::<burn::backend::NdArray>(Default::default(), self)),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => Ok(job.run::<burn::backend::Wgpu>(Default::default(), self)),
            #[cfg(feature = "cuda")]
            Self::Cuda => Ok(job.run::<burn::backend::Cuda>(Default::default(), self)),
            #[allow(unreachable_patterns)]
            other => Err(BackendUnavailable(other)),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown backend `{s}`; expected one of flex, ndarray, wgpu, cuda")
            })
    }
}

/// A backend the binary was not built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("backend `{0}` is not compiled into this binary; rebuild with `--features {0}`")]
pub struct BackendUnavailable(pub BackendKind);

/// Work that is generic over the backend.
pub trait BackendJob {
    /// What the job returns.
    type Output;
    /// Runs on backend `B`, device `device`; `kind` says which one it is.
    fn run<B: Backend>(self, device: B::Device, kind: BackendKind) -> Self::Output;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dims;
    impl BackendJob for Dims {
        type Output = usize;
        fn run<B: Backend>(self, device: B::Device, _kind: BackendKind) -> usize {
            burn::tensor::Tensor::<B, 2>::zeros([3, 4], &device).dims()[1]
        }
    }

    #[test]
    fn parses_names_and_runs_compiled_backends() {
        assert_eq!("FLEX".parse::<BackendKind>().unwrap(), BackendKind::Flex);
        assert!("tpu"
            .parse::<BackendKind>()
            .unwrap_err()
            .contains("unknown backend"));
        for k in BackendKind::ALL {
            match k.run(Dims) {
                Ok(d) => {
                    assert!(k.is_compiled());
                    assert_eq!(d, 4);
                }
                Err(e) => {
                    assert!(!k.is_compiled());
                    assert!(e.to_string().contains("--features"));
                }
            }
        }
        assert!(BackendKind::default_compiled().is_some());
    }
}
