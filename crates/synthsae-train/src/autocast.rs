//! [`Autocast`]: what a run's `autocast_sae` / `autocast_data` give on its
//! backend.
//!
//! sae-lens runs the SAE's training forward pass (`autocast_sae`) and the
//! data generation (`autocast_data`) under bf16 autocast. synthsae honours
//! both where the backend has accelerated bf16 products (CUDA tensor
//! cores): the SAE's matrix products and the device gather-sum of the
//! hidden activations in bf16 ([`Precision::Bf16`]), master weights and
//! optimizer state in float32. Elsewhere the run is float32 and says so in
//! one line: on the CPU backends a bf16 GEMM widens its operands to float32
//! and is slower than the float32 one (`cargo bench --bench bf16_autocast`,
//! figures in `docs/benchmarks.md`); a GPU device that reports no
//! accelerated bf16 (`Precision::bf16_accelerated`) gets the same line.

use burn::prelude::Backend;
use synthsae_data::HiddenPath;
use synthsae_host::Precision;

/// The arithmetic of a run's products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Autocast {
    /// The SAE's training forward pass (encoder, decoder, aux products).
    pub sae: Precision,
    /// The hidden activations computed on the device from sparse features
    /// (the device path; the host path is float32).
    pub data: Precision,
}

/// An [`Autocast`] and the line to print about it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// What the run computes in.
    pub autocast: Autocast,
    /// A warning when a request is not honoured.
    pub warning: Option<String>,
}

impl Autocast {
    /// What `autocast_sae` / `autocast_data` give on `B` at `device`, with
    /// the hidden activations computed by `hidden` (already resolved for
    /// `B`).
    pub fn resolve<B: Backend>(
        autocast_sae: bool,
        autocast_data: bool,
        hidden: HiddenPath,
        device: &B::Device,
    ) -> Resolved {
        Self::decide(
            autocast_sae,
            autocast_data,
            hidden,
            Precision::bf16_accelerated::<B>(device),
            synthsae_host::backend::is_cpu::<B>(),
            &B::name(device),
        )
    }

    /// [`Autocast::resolve`] given what it asks of the backend: whether it
    /// has accelerated bf16 on the device, whether it is a CPU backend, and
    /// its name (for the warning).
    fn decide(
        autocast_sae: bool,
        autocast_data: bool,
        hidden: HiddenPath,
        accelerated: bool,
        cpu: bool,
        name: &str,
    ) -> Resolved {
        if !(autocast_sae || autocast_data) {
            return Resolved {
                autocast: Self::default(),
                warning: None,
            };
        }
        if !accelerated {
            let why = if cpu {
                format!(
                    "on the CPU backend `{name}` (its bf16 GEMM widens to float32 and is slower \
                     there)"
                )
            } else {
                format!("on `{name}`: it has no accelerated bf16 on this device")
            };
            return Resolved {
                autocast: Self::default(),
                warning: Some(format!(
                    "autocast_sae / autocast_data: this run computes in float32 {why}"
                )),
            };
        }
        let bf16 = |on: bool| if on { Precision::Bf16 } else { Precision::F32 };
        let device_path = hidden == HiddenPath::Device;
        let warning = (autocast_data && !device_path).then(|| {
            "autocast_data: the hidden activations are computed on the host (hidden_path host), \
             in float32"
                .to_string()
        });
        Resolved {
            autocast: Self {
                sae: bf16(autocast_sae),
                data: bf16(autocast_data && device_path),
            },
            warning,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex, NdArray};

    #[test]
    fn nothing_requested_is_float32_without_a_line() {
        let r = Autocast::resolve::<Flex>(false, false, HiddenPath::Host, &Default::default());
        assert_eq!(r.autocast, Autocast::default());
        assert_eq!(r.warning, None);
    }

    #[test]
    fn cpu_backends_run_float32_and_say_so() {
        for (sae, data) in [(true, false), (false, true), (true, true)] {
            let r = Autocast::resolve::<Autodiff<Flex>>(
                sae,
                data,
                HiddenPath::Device,
                &Default::default(),
            );
            assert_eq!(r.autocast, Autocast::default());
            let w = r.warning.unwrap();
            assert!(w.starts_with("autocast_sae / autocast_data: this run computes in float32"));
            assert!(w.contains("CPU backend"), "{w}");
        }
        let r = Autocast::resolve::<NdArray>(true, true, HiddenPath::Host, &Default::default());
        assert_eq!(r.autocast, Autocast::default());
        assert!(r.warning.is_some());
    }

    /// A GPU device without accelerated bf16: float32, and the line says why.
    #[test]
    fn unaccelerated_gpu_runs_float32_and_says_so() {
        let r = Autocast::decide(true, false, HiddenPath::Device, false, false, "wgpu");
        assert_eq!(r.autocast, Autocast::default());
        let w = r.warning.unwrap();
        assert!(w.contains("`wgpu`: it has no accelerated bf16"), "{w}");
    }

    /// With accelerated bf16: each request is honoured on its own;
    /// `autocast_data` needs the device path, and says so otherwise.
    #[test]
    fn accelerated_backends_honour_each_request() {
        use Precision::{Bf16, F32};
        let decide = |sae, data, hidden| Autocast::decide(sae, data, hidden, true, false, "cuda");
        for (sae, data, hidden, want, warns) in [
            (true, true, HiddenPath::Device, (Bf16, Bf16), false),
            (true, false, HiddenPath::Device, (Bf16, F32), false),
            (false, true, HiddenPath::Device, (F32, Bf16), false),
            (true, true, HiddenPath::Host, (Bf16, F32), true),
            (false, false, HiddenPath::Device, (F32, F32), false),
        ] {
            let r = decide(sae, data, hidden);
            let case = format!("sae {sae}, data {data}, {hidden:?}");
            assert_eq!((r.autocast.sae, r.autocast.data), want, "{case}");
            assert_eq!(r.warning.is_some(), warns, "{case}: {:?}", r.warning);
            if let Some(w) = r.warning {
                assert!(
                    w.starts_with("autocast_data: the hidden activations"),
                    "{w}"
                );
            }
        }
    }
}
