//! The sweep spec (JSON) and its expansion into named runs and groups.
//!
//! ```json
//! {
//!   "name": "tutorial-grid",
//!   "base": { "...": "a runner config, as `synthsae train --config` reads" },
//!   "axes": { "sae.architecture": ["standard", "jumprelu"], "seed": [0, 1] },
//!   "runs": [ { "name": "wide", "set": { "sae.d_sae": 64 } } ],
//!   "seeds_share_stream": false,
//!   "checkpoints": 10,
//!   "keep_checkpoints": false
//! }
//! ```
//!
//! Instead of `base`, `recipe` names a recipe (`{"name": "synthsaebench",
//! "model": ..., "architecture": ..., "l0": ...}`); key paths `recipe.<field>`
//! then set the recipe's fields before it builds the runner config, and
//! other key paths set the runner config it built. The grid is the product
//! of the axes (first axis slowest); `runs` adds runs of their own (base +
//! `set`, no axes). A run's name is `<last key segment>-<value>` per axis,
//! joined by `_`, unless given.
//!
//! Runs that read the same training batches (same model, data seed and batch
//! size) form a group, trained on one stream. A run's data seed is its
//! `seed` unless `seeds_share_stream` (then every run's is the base's) or a
//! key path sets `data_seed`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};
use synthsae_train::recipe::SynthSaeBenchRecipe;
use synthsae_train::{ModelSpec, RunnerConfig};

use crate::error::{Result, SweepError};
use crate::keypath;

/// Format tag of `sweep.json`.
pub const PLAN_FORMAT: &str = "synthsae-sweep/1";

/// Checkpoints per run when neither the spec nor the base config asks for
/// any: a killed sweep loses at most a tenth of each interrupted run.
pub const DEFAULT_CHECKPOINTS: u64 = 10;

/// What every run starts from.
#[derive(Debug, Clone, PartialEq)]
pub enum Base {
    /// A runner config object.
    Config(Value),
    /// A recipe object: `name`, `model` and the recipe's fields.
    Recipe(Value),
}

/// A run listed in the spec's `runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplicitRun {
    /// The run's name (default: from its keys).
    pub name: Option<String>,
    /// Key path → value, applied to the base.
    pub set: Vec<(String, Value)>,
}

/// A parsed sweep spec.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSpec {
    /// The sweep's name.
    pub name: String,
    /// What every run starts from.
    pub base: Base,
    /// `(key path, values)`, in the spec's order.
    pub axes: Vec<(String, Vec<Value>)>,
    /// Runs of their own.
    pub runs: Vec<ExplicitRun>,
    /// Whether runs that differ in `seed` share one data stream.
    pub seeds_share_stream: bool,
    /// `n_checkpoints` of every run (`None`: the base's, or
    /// [`DEFAULT_CHECKPOINTS`] when that is 0).
    pub checkpoints: Option<u64>,
    /// Keep a finished run's checkpoints (default: deleted once its outputs
    /// are written).
    pub keep_checkpoints: bool,
    /// The spec as given.
    pub source: Value,
}

const SPEC_KEYS: [&str; 8] = [
    "name",
    "base",
    "recipe",
    "axes",
    "runs",
    "seeds_share_stream",
    "checkpoints",
    "keep_checkpoints",
];

impl SweepSpec {
    /// Reads a spec file; `name` defaults to the file stem.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| SweepError::io(path, e))?;
        let mut value: Value = serde_json::from_str(&text).map_err(|e| {
            SweepError::spec("spec", format!("{}: not valid JSON: {e}", path.display()))
        })?;
        if let (Value::Object(m), Some(stem)) = (&mut value, path.file_stem()) {
            m.entry("name")
                .or_insert_with(|| stem.to_string_lossy().into_owned().into());
        }
        Self::from_value(value)
    }

    /// Parses a spec object.
    pub fn from_value(value: Value) -> Result<Self> {
        let Value::Object(m) = &value else {
            return Err(SweepError::spec("spec", "must be a JSON object"));
        };
        if let Some(k) = m.keys().find(|k| !SPEC_KEYS.contains(&k.as_str())) {
            return Err(SweepError::spec(
                k.clone(),
                format!("is not a spec key (keys: {})", SPEC_KEYS.join(", ")),
            ));
        }
        let name = match m.get("name") {
            None => "sweep".to_string(),
            Some(Value::String(s)) => check_name("name", s)?,
            Some(_) => return Err(SweepError::spec("name", "must be a string")),
        };
        let base = match (m.get("base"), m.get("recipe")) {
            (Some(b @ Value::Object(_)), None) => Base::Config(b.clone()),
            (None, Some(r @ Value::Object(_))) => Base::Recipe(r.clone()),
            (Some(_), Some(_)) => {
                return Err(SweepError::spec(
                    "base",
                    "give `base` or `recipe`, not both",
                ))
            }
            (None, None) => {
                return Err(SweepError::spec(
                    "base",
                    "is required (a runner config), or `recipe`",
                ))
            }
            (Some(_), None) => return Err(SweepError::spec("base", "must be an object")),
            (None, Some(_)) => return Err(SweepError::spec("recipe", "must be an object")),
        };
        let axes = parse_axes(m.get("axes"))?;
        let runs = parse_runs(m.get("runs"))?;
        let flag = |k: &str| match m.get(k) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(SweepError::spec(k, "must be true or false")),
        };
        let checkpoints = match m.get("checkpoints") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| SweepError::spec("checkpoints", "must be a whole number"))?,
            ),
        };
        Ok(Self {
            name,
            base,
            axes,
            runs,
            seeds_share_stream: flag("seeds_share_stream")?,
            checkpoints,
            keep_checkpoints: flag("keep_checkpoints")?,
            source: value,
        })
    }

    /// Expands the spec into its runs and groups, building and checking every
    /// run's config: any error names the run and the field.
    pub fn expand(&self) -> Result<Plan> {
        let base = BaseJson::new(&self.base)?;
        let mut runs = Vec::new();
        for sets in grid(&self.axes) {
            let name = generated_name(&sets);
            runs.push((name, sets));
        }
        for (i, r) in self.runs.iter().enumerate() {
            let name = match &r.name {
                Some(n) => n.clone(),
                None if r.set.is_empty() => format!("run-{i}"),
                None => generated_name(&r.set),
            };
            runs.push((name, r.set.clone()));
        }
        if runs.is_empty() {
            runs.push(("base".to_string(), Vec::new()));
        }
        let mut seen = BTreeMap::new();
        for (i, (name, _)) in runs.iter().enumerate() {
            if let Some(j) = seen.insert(name.clone(), i) {
                return Err(SweepError::spec(
                    "runs",
                    format!("runs {j} and {i} are both named `{name}`"),
                ));
            }
        }
        let mut planned: Vec<PlannedRun> = Vec::with_capacity(runs.len());
        let mut group_keys: Vec<String> = Vec::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (name, sets) in runs {
            let config = self.build_run(&base, &name, &sets)?;
            let key = stream_key(&config);
            let group = match group_keys.iter().position(|k| *k == key) {
                Some(g) => g,
                None => {
                    group_keys.push(key);
                    groups.push(Vec::new());
                    groups.len() - 1
                }
            };
            groups[group].push(planned.len());
            planned.push(PlannedRun {
                name,
                values: sets.into_iter().collect(),
                group,
                config,
            });
        }
        Ok(Plan {
            name: self.name.clone(),
            spec: self.source.clone(),
            runs: planned,
            groups,
            keep_checkpoints: self.keep_checkpoints,
        })
    }

    /// The full runner config JSON of run `name` (paths relative to the
    /// sweep folder).
    fn build_run(&self, base: &BaseJson, name: &str, sets: &[(String, Value)]) -> Result<Value> {
        let err = |reason: String| SweepError::run(name, reason);
        let (recipe_sets, cfg_sets): (Vec<_>, Vec<_>) =
            sets.iter().partition(|(k, _)| k.starts_with("recipe."));
        let mut cfg = match &base.recipe {
            None => {
                if let Some((k, _)) = recipe_sets.first() {
                    return Err(SweepError::spec(
                        k.clone(),
                        "sets a recipe field, but the spec has `base`, not `recipe`",
                    ));
                }
                base.config.clone()
            }
            Some(recipe) => {
                let mut r = recipe.clone();
                for (k, v) in &recipe_sets {
                    let path = &k["recipe.".len()..];
                    keypath::set(&mut r, path, v.clone())
                        .map_err(|e| err(format!("`{k}`: {e}")))?;
                }
                recipe_config(&r).map_err(|e| err(e.to_string()))?.to_json()
            }
        };
        match self.checkpoints {
            Some(n) => cfg["n_checkpoints"] = n.into(),
            None if cfg["n_checkpoints"].as_u64() == Some(0) => {
                cfg["n_checkpoints"] = DEFAULT_CHECKPOINTS.into()
            }
            None => {}
        }
        for (k, v) in &cfg_sets {
            keypath::set(&mut cfg, k, v.clone()).map_err(|e| err(format!("`{k}`: {e}")))?;
        }
        if self.seeds_share_stream && !cfg_sets.iter().any(|(k, _)| k == "data_seed") {
            cfg["data_seed"] = base.data_seed.into();
        }
        cfg["output_path"] = format!("runs/{name}").into();
        cfg["checkpoint_path"] = format!("checkpoints/{name}").into();
        if let Some(logger) = cfg.get_mut("logger").and_then(Value::as_object_mut) {
            logger.insert("run_name".into(), name.into());
        }
        let parsed = RunnerConfig::from_value(cfg).map_err(|e| err(e.to_string()))?;
        let full = parsed.to_json();
        for (k, _) in &cfg_sets {
            if keypath::get(&full, k).is_none() {
                return Err(err(format!(
                    "`{k}` is not a key of this run's config (unknown key path{})",
                    if k.starts_with("sae.") {
                        format!(" for architecture {}", parsed.sae.architecture())
                    } else {
                        String::new()
                    }
                )));
            }
        }
        Ok(full)
    }
}

/// The base as JSON: the full runner config (defaults written out), or the
/// recipe object; and the base's data seed.
struct BaseJson {
    config: Value,
    recipe: Option<Value>,
    data_seed: u64,
}

impl BaseJson {
    fn new(base: &Base) -> Result<Self> {
        match base {
            Base::Config(v) => {
                let cfg = RunnerConfig::from_value(v.clone())
                    .map_err(|e| SweepError::spec("base", e.to_string()))?;
                Ok(Self {
                    config: cfg.to_json(),
                    recipe: None,
                    data_seed: cfg.data_seed(),
                })
            }
            Base::Recipe(r) => {
                let cfg =
                    recipe_config(r).map_err(|e| SweepError::spec("recipe", e.to_string()))?;
                Ok(Self {
                    config: Value::Null,
                    recipe: Some(r.clone()),
                    data_seed: cfg.data_seed(),
                })
            }
        }
    }
}

const RECIPE_KEYS: [&str; 10] = [
    "name",
    "model",
    "architecture",
    "l0",
    "d_in",
    "width",
    "training_samples",
    "seed",
    "eval_samples",
    "eval_frequency",
];

/// The runner config a recipe object builds. Errors name `recipe.<field>`.
pub fn recipe_config(r: &Value) -> Result<RunnerConfig> {
    let bad = |k: &str, reason: &str| SweepError::spec(format!("recipe.{k}"), reason);
    let m = r
        .as_object()
        .ok_or_else(|| SweepError::spec("recipe", "must be an object"))?;
    if let Some(k) = m.keys().find(|k| !RECIPE_KEYS.contains(&k.as_str())) {
        return Err(bad(
            k,
            &format!("is not a recipe field (fields: {})", RECIPE_KEYS.join(", ")),
        ));
    }
    match m.get("name").and_then(Value::as_str) {
        Some("synthsaebench") => {}
        Some(other) => {
            return Err(bad(
                "name",
                &format!("`{other}` is not a recipe (recipes: synthsaebench)"),
            ))
        }
        None => return Err(bad("name", "is required (\"synthsaebench\")")),
    }
    let model = match m.get("model") {
        Some(Value::String(s)) => ModelSpec::Source(s.clone()),
        Some(v @ Value::Object(_)) => ModelSpec::Config(Box::new(
            serde_json::from_value(v.clone()).map_err(|e| bad("model", &e.to_string()))?,
        )),
        _ => {
            return Err(bad(
                "model",
                "is required: a model source (path or hub id) or a model config object",
            ))
        }
    };
    let mut recipe = SynthSaeBenchRecipe::default();
    if let ModelSpec::Config(c) = &model {
        recipe.d_in = c.hidden_dim;
    }
    let uint = |k: &str| -> Result<Option<u64>> {
        match m.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(k, "must be a whole number")),
        }
    };
    if let Some(v) = m.get("architecture") {
        recipe.architecture = v
            .as_str()
            .ok_or_else(|| bad("architecture", "must be a string"))?
            .to_string();
    }
    if let Some(v) = uint("l0")? {
        recipe.l0 = u32::try_from(v).map_err(|_| bad("l0", "is too large"))?;
    }
    if let Some(v) = uint("d_in")? {
        recipe.d_in = v as usize;
    }
    if let Some(v) = uint("width")? {
        recipe.width = v as usize;
    }
    if let Some(v) = uint("training_samples")? {
        recipe.training_samples = v;
    }
    if let Some(v) = uint("seed")? {
        recipe.seed = v;
    }
    if let Some(v) = uint("eval_samples")? {
        recipe.eval_samples = v as usize;
    }
    if let Some(v) = uint("eval_frequency")? {
        recipe.eval_frequency = v;
    }
    recipe.check().map_err(|e| match e {
        synthsae_train::TrainError::Config { field, reason } => {
            SweepError::spec(format!("recipe.{field}"), reason)
        }
        other => SweepError::spec("recipe", other.to_string()),
    })?;
    recipe
        .runner_config(&model, None)
        .map_err(|e| SweepError::spec("recipe", e.to_string()))
}

fn parse_axes(v: Option<&Value>) -> Result<Vec<(String, Vec<Value>)>> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let m = v
        .as_object()
        .ok_or_else(|| SweepError::spec("axes", "must be an object of key path → values"))?;
    let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, vals) in m {
        let values = vals
            .as_array()
            .ok_or_else(|| SweepError::spec(format!("axes.{k}"), "must be an array of values"))?;
        if values.is_empty() {
            return Err(SweepError::spec(format!("axes.{k}"), "is empty"));
        }
        if let Some((other, _)) = axes.iter().find(|(o, _)| keypath::overlaps(o, k)) {
            return Err(SweepError::spec(
                format!("axes.{k}"),
                format!("sets the same key as axis `{other}`"),
            ));
        }
        for (i, a) in values.iter().enumerate() {
            if values[..i].contains(a) {
                return Err(SweepError::spec(
                    format!("axes.{k}"),
                    format!("lists {a} twice"),
                ));
            }
        }
        axes.push((k.clone(), values.clone()));
    }
    Ok(axes)
}

fn parse_runs(v: Option<&Value>) -> Result<Vec<ExplicitRun>> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let list = v.as_array().ok_or_else(|| {
        SweepError::spec("runs", "must be an array of {\"name\", \"set\"} objects")
    })?;
    let mut runs = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let field = format!("runs[{i}]");
        let m = r
            .as_object()
            .ok_or_else(|| SweepError::spec(&field, "must be an object"))?;
        if let Some(k) = m.keys().find(|k| *k != "name" && *k != "set") {
            return Err(SweepError::spec(
                format!("{field}.{k}"),
                "is not a run key (keys: name, set)",
            ));
        }
        let name = match m.get("name") {
            None => None,
            Some(Value::String(s)) => Some(check_name(&format!("{field}.name"), s)?),
            Some(_) => {
                return Err(SweepError::spec(
                    format!("{field}.name"),
                    "must be a string",
                ))
            }
        };
        let set = match m.get("set") {
            None => Vec::new(),
            Some(Value::Object(s)) => {
                let mut set: Vec<(String, Value)> = Vec::new();
                for (k, v) in s {
                    if let Some((o, _)) = set.iter().find(|(o, _)| keypath::overlaps(o, k)) {
                        return Err(SweepError::spec(
                            format!("{field}.set.{k}"),
                            format!("sets the same key as `{o}`"),
                        ));
                    }
                    set.push((k.clone(), v.clone()));
                }
                set
            }
            Some(_) => {
                return Err(SweepError::spec(
                    format!("{field}.set"),
                    "must be an object of key path → value",
                ))
            }
        };
        runs.push(ExplicitRun { name, set });
    }
    Ok(runs)
}

/// Every combination of the axes' values, first axis slowest.
fn grid(axes: &[(String, Vec<Value>)]) -> Vec<Vec<(String, Value)>> {
    if axes.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (key, values) in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((key.clone(), v.clone()));
                    p
                })
            })
            .collect();
    }
    out
}

fn generated_name(sets: &[(String, Value)]) -> String {
    sets.iter()
        .map(|(k, v)| {
            format!(
                "{}-{}",
                keypath::leaf(k).replace('_', "-"),
                keypath::name_fragment(v)
            )
        })
        .collect::<Vec<_>>()
        .join("_")
}

fn check_name(field: &str, name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(SweepError::spec(
            field,
            format!("`{name}`: use letters, digits, `.`, `-` and `_` (it names a folder)"),
        ))
    }
}

/// The key of a run's training stream: runs with equal keys read the same
/// batches.
fn stream_key(cfg: &Value) -> String {
    serde_json::json!([
        cfg["synthetic_model"],
        cfg.get("data_seed").unwrap_or(&cfg["seed"]),
        cfg["batch_size"],
    ])
    .to_string()
}

/// One expanded run.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// Its name (a folder name).
    pub name: String,
    /// The key paths its axes (or `set`) gave it, and their values.
    pub values: Map<String, Value>,
    /// Index of its group.
    pub group: usize,
    /// The full runner config, output and checkpoint paths relative to the
    /// sweep folder.
    pub config: Value,
}

impl PlannedRun {
    /// The run's config with its paths inside the sweep folder `dir`.
    pub fn runner_config(&self, dir: &Path) -> Result<RunnerConfig> {
        let mut cfg = RunnerConfig::from_value(self.config.clone())
            .map_err(|e| SweepError::run(&self.name, e.to_string()))?;
        cfg.output_path = Some(dir.join("runs").join(&self.name));
        cfg.checkpoint_path = Some(dir.join("checkpoints").join(&self.name));
        Ok(cfg)
    }
}

/// An expanded spec: what `sweep.json` holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The sweep's name.
    pub name: String,
    /// The spec it was expanded from.
    pub spec: Value,
    /// Every run, in order.
    pub runs: Vec<PlannedRun>,
    /// Run indices of each group (one stream each).
    pub groups: Vec<Vec<usize>>,
    /// Keep a finished run's checkpoints.
    pub keep_checkpoints: bool,
}

impl Plan {
    /// The run named `name`.
    pub fn run(&self, name: &str) -> Option<&PlannedRun> {
        self.runs.iter().find(|r| r.name == name)
    }

    /// `sweep.json`'s content.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "format": PLAN_FORMAT,
            "name": self.name,
            "keep_checkpoints": self.keep_checkpoints,
            "groups": self.groups,
            "runs": self.runs.iter().map(|r| serde_json::json!({
                "name": r.name,
                "group": r.group,
                "values": r.values,
                "config": r.config,
            })).collect::<Vec<_>>(),
            "spec": self.spec,
        })
    }

    /// Reads what [`Plan::to_json`] wrote.
    pub fn from_json(v: &Value) -> std::result::Result<Self, String> {
        if v["format"] != PLAN_FORMAT {
            return Err(format!("not a {PLAN_FORMAT} file (format {})", v["format"]));
        }
        let name = v["name"].as_str().ok_or("no `name`")?.to_string();
        let groups: Vec<Vec<usize>> =
            serde_json::from_value(v["groups"].clone()).map_err(|e| format!("`groups`: {e}"))?;
        let mut runs = Vec::new();
        for r in v["runs"].as_array().ok_or("no `runs`")? {
            runs.push(PlannedRun {
                name: r["name"]
                    .as_str()
                    .ok_or("a run without `name`")?
                    .to_string(),
                values: r["values"].as_object().cloned().unwrap_or_default(),
                group: r["group"].as_u64().ok_or("a run without `group`")? as usize,
                config: r["config"].clone(),
            });
        }
        Ok(Self {
            name,
            spec: v["spec"].clone(),
            runs,
            groups,
            keep_checkpoints: v["keep_checkpoints"].as_bool().unwrap_or(false),
        })
    }
}
