//! Where the hidden activations `h = f · F + b` of a sparse batch are
//! computed: on the host (rayon gather-sum, then `[B, D]` floats uploaded)
//! or on the device (the CSR batch uploaded, rows of `F` selected, scaled
//! and scatter-added there).
//!
//! Both give the same values up to the order of the float sums. The host
//! path is the fast one on CPU backends, where "uploading" is a copy. On a
//! GPU backend the device path uploads `12 · nnz` bytes instead of `4 · B · D`
//! (for the SynthSAEBench-16k model about 420 bytes per row instead of 3 072)
//! and takes the gather-sum off the host cores, which then only sample;
//! [`HiddenPath::Auto`] picks it there. `scripts/gpu-check.sh` times both.

use std::fmt;
use std::str::FromStr;

use burn::prelude::Backend;
use serde::{Deserialize, Serialize};

/// Where hidden activations of sparse batches are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HiddenPath {
    /// [`HiddenPath::Host`] on CPU backends, [`HiddenPath::Device`] on others.
    #[default]
    Auto,
    /// Rayon gather-sum on the host, then `[B, D]` uploaded.
    Host,
    /// CSR batch uploaded; select / scale / scatter-add on the device.
    Device,
}

impl HiddenPath {
    /// Every name, as written in configs and on the command line.
    pub const NAMES: [&'static str; 3] = ["auto", "host", "device"];

    /// The path taken on backend `B`: `Host` or `Device`, never `Auto`.
    pub fn resolve<B: Backend>(self) -> HiddenPath {
        match self {
            HiddenPath::Auto if synthsae_host::is_cpu::<B>() => HiddenPath::Host,
            HiddenPath::Auto => HiddenPath::Device,
            other => other,
        }
    }

    /// The name used in configs (`auto`, `host`, `device`).
    pub fn name(self) -> &'static str {
        match self {
            HiddenPath::Auto => "auto",
            HiddenPath::Host => "host",
            HiddenPath::Device => "device",
        }
    }
}

impl fmt::Display for HiddenPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HiddenPath {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(HiddenPath::Auto),
            "host" => Ok(HiddenPath::Host),
            "device" => Ok(HiddenPath::Device),
            _ => Err(format!(
                "unknown hidden path `{s}` (expected one of: {})",
                HiddenPath::NAMES.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn auto_is_host_on_cpu_backends_and_names_round_trip() {
        assert_eq!(HiddenPath::Auto.resolve::<NdArray>(), HiddenPath::Host);
        assert_eq!(HiddenPath::Device.resolve::<NdArray>(), HiddenPath::Device);
        for name in HiddenPath::NAMES {
            let p: HiddenPath = name.parse().unwrap();
            assert_eq!(p.name(), name);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<HiddenPath>(&json).unwrap(), p);
        }
        let err = "gpu".parse::<HiddenPath>().unwrap_err();
        assert!(
            err.contains("`gpu`") && err.contains("auto, host, device"),
            "{err}"
        );
    }
}
