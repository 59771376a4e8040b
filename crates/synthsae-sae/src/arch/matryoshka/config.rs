//! `matryoshka_batchtopk` training fields (sae-lens
//! `MatryoshkaBatchTopKTrainingSAEConfig`): BatchTopK's, then the nesting.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::arch::batchtopk::config::BatchTopKConfig;
use crate::config::fields::{read, read_field};
use crate::error::{invalid, Result};

/// `matryoshka_batchtopk` training fields, in file order (BatchTopK's
/// first); missing keys take the defaults of their types.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct MatryoshkaConfig {
    /// The BatchTopK fields.
    #[serde(flatten)]
    pub batch_topk: BatchTopKConfig,
    /// Strictly increasing prefix widths, the last one `d_sae` (appended if missing).
    pub matryoshka_widths: Vec<usize>,
    /// Per-level aux-k loss instead of the plain one.
    pub use_matryoshka_aux_loss: bool,
}

/// `matryoshka_widths` as a field of its own (its elements have their own
/// rule, [`crate::config::fields::widths`]).
#[derive(Deserialize)]
struct Widths(#[serde(deserialize_with = "crate::config::fields::widths")] Vec<usize>);

impl MatryoshkaConfig {
    /// Reads the fields from a `cfg.json` object: the widths, the BatchTopK
    /// fields, the aux switch.
    pub(crate) fn from_map(m: &Map<String, Value>) -> Result<Self> {
        let d = Self::default();
        let matryoshka_widths =
            read_field::<Widths>(m, "matryoshka_widths")?.map_or(d.matryoshka_widths, |w| w.0);
        Ok(Self {
            batch_topk: read(m)?,
            matryoshka_widths,
            use_matryoshka_aux_loss: read_field(m, "use_matryoshka_aux_loss")?
                .unwrap_or(d.use_matryoshka_aux_loss),
        })
    }

    /// Checks the fields against `d_sae`, appending `d_sae` to the widths
    /// when the last one differs (as sae-lens).
    pub(crate) fn validate(&mut self, d_sae: usize) -> Result<()> {
        self.batch_topk.validate()?;
        let w = &mut self.matryoshka_widths;
        if w.is_empty() {
            return Err(invalid("matryoshka_widths", "must not be empty"));
        }
        if w.contains(&0) {
            return Err(invalid(
                "matryoshka_widths",
                "must contain only positive widths",
            ));
        }
        if *w.last().unwrap_or(&0) != d_sae {
            log::warn!("the final matryoshka width is not d_sae = {d_sae}; appending it");
            w.push(d_sae);
        }
        if w.windows(2).any(|p| p[0] >= p[1]) {
            return Err(invalid("matryoshka_widths", "must be strictly increasing"));
        }
        if w.len() == 1 {
            log::warn!("only one matryoshka level: equivalent to BatchTopK");
        }
        Ok(())
    }
}
