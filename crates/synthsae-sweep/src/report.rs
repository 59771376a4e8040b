//! A sweep's report: for each combination of its non-seed values
//! (architecture, L0, width, ...), the mean ± standard deviation over seeds
//! of each metric of the runs' final evaluations, as markdown, CSV and
//! JSON; the published rows beside it where they exist; a figure of each
//! metric against the swept L0 (PNG and SVG). A partial sweep reports the
//! runs that are done and lists the others.
//!
//! The standard deviation is the sample one (`n − 1`); 0 with one seed.
//! Seed keys are the key paths whose last segment is `seed` or `data_seed`.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use synthsae_eval::plot::{plot_sweep_metrics, SweepPanel, SweepSeries};
use synthsae_eval::{HierarchyMetrics, SyntheticDataEvalResult};
use synthsae_train::recipe::{published, PublishedRow, PUBLISHED_MODEL};

use crate::error::{Result, SweepError};
use crate::folder::{write_atomic, RunStatus, SweepFolder};
use crate::keypath;

/// Number of reported metrics.
pub const N_METRICS: usize = 11;

/// `(key, label)` of each reported metric, in the table's order. The last
/// two come from the run's `hierarchy_stats.json`: absorption (NaN, shown
/// as `-`, when the model has no hierarchy or the file is missing) and
/// split features.
pub const METRICS: [(&str, &str); N_METRICS] = [
    ("mcc", "MCC"),
    ("f1", "F1"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("uniqueness", "uniqueness"),
    ("explained_variance", "explained variance"),
    ("l0", "L0"),
    ("dead_latents", "dead latents"),
    ("shrinkage", "shrinkage"),
    ("absorption", "absorption"),
    ("split_features", "split features"),
];

fn metric_values(e: &SyntheticDataEvalResult, h: Option<&HierarchyMetrics>) -> [f64; N_METRICS] {
    let c = &e.classification;
    let absorption = h
        .and_then(|h| h.absorption.as_ref())
        .map_or(f64::NAN, |a| a.absorption);
    let split = h.map_or(f64::NAN, |h| h.splitting.split_features as f64);
    [
        e.mcc,
        c.f1_score,
        c.precision,
        c.recall,
        e.uniqueness,
        e.explained_variance,
        e.sae_l0,
        e.dead_latents as f64,
        e.shrinkage,
        absorption,
        split,
    ]
}

/// The run's `hierarchy_stats.json`, if it has a readable one.
fn read_hierarchy(dir: &Path) -> Option<HierarchyMetrics> {
    let text = std::fs::read_to_string(dir.join("hierarchy_stats.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// One row: a combination of non-seed values and its seeds' statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    /// The row's value of each column (`Null` where a run has none).
    pub values: Vec<Value>,
    /// The runs averaged (one per seed).
    pub runs: Vec<String>,
    /// Mean of each metric ([`METRICS`] order).
    pub mean: [f64; N_METRICS],
    /// Sample standard deviation of each metric.
    pub std: [f64; N_METRICS],
    /// The published row of the same recipe, if there is one.
    pub published: Option<PublishedRow>,
}

/// A run that is not in the table, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingRun {
    /// The run.
    pub run: String,
    /// `not done`, `failed: ...`, or what is wrong with its outputs.
    pub why: String,
}

/// A sweep's report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The sweep's name.
    pub sweep: String,
    /// Runs in the sweep.
    pub total_runs: usize,
    /// The key paths that tell rows apart.
    pub columns: Vec<String>,
    /// The rows, in the order of their first run.
    pub rows: Vec<ReportRow>,
    /// The runs not reported.
    pub missing: Vec<MissingRun>,
}

/// A row being collected: its values, `(run, metrics)` per seed, and its
/// published row.
type PendingRow = (
    Vec<Value>,
    Vec<(String, [f64; N_METRICS])>,
    Option<PublishedRow>,
);

fn is_seed_key(k: &str) -> bool {
    matches!(keypath::leaf(k), "seed" | "data_seed")
}

impl Report {
    /// Reads the runs of `folder` that are done.
    pub fn build(folder: &SweepFolder) -> Result<Self> {
        let plan = folder.plan();
        let mut columns: Vec<String> = Vec::new();
        for r in &plan.runs {
            for k in r.values.keys() {
                if !is_seed_key(k) && !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
        let mut rows: Vec<PendingRow> = Vec::new();
        let mut missing = Vec::new();
        for r in &plan.runs {
            match folder.status(&r.name) {
                Some(RunStatus::Done { .. }) => {}
                Some(RunStatus::Failed { error }) => {
                    missing.push(MissingRun {
                        run: r.name.clone(),
                        why: format!("failed: {error}"),
                    });
                    continue;
                }
                None => {
                    missing.push(MissingRun {
                        run: r.name.clone(),
                        why: "not done".into(),
                    });
                    continue;
                }
            }
            let path = folder.run_dir(&r.name).join("eval_stats.json");
            let eval: SyntheticDataEvalResult = match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            {
                Ok(e) => e,
                Err(e) => {
                    missing.push(MissingRun {
                        run: r.name.clone(),
                        why: format!("done, but {}: {e}", path.display()),
                    });
                    continue;
                }
            };
            let values: Vec<Value> = columns
                .iter()
                .map(|c| r.values.get(c).cloned().unwrap_or(Value::Null))
                .collect();
            let hierarchy = read_hierarchy(&folder.run_dir(&r.name));
            let metrics = metric_values(&eval, hierarchy.as_ref());
            match rows.iter_mut().find(|(v, _, _)| *v == values) {
                Some((_, runs, _)) => runs.push((r.name.clone(), metrics)),
                None => rows.push((
                    values,
                    vec![(r.name.clone(), metrics)],
                    published_for(&plan.spec, &r.values),
                )),
            }
        }
        let rows = rows
            .into_iter()
            .map(|(values, runs, published)| {
                let (mean, std) = mean_std(&runs.iter().map(|(_, m)| *m).collect::<Vec<_>>());
                ReportRow {
                    values,
                    runs: runs.into_iter().map(|(n, _)| n).collect(),
                    mean,
                    std,
                    published,
                }
            })
            .collect();
        Ok(Self {
            sweep: plan.name.clone(),
            total_runs: plan.runs.len(),
            columns,
            rows,
            missing,
        })
    }

    /// Runs in the table.
    pub fn done(&self) -> usize {
        self.rows.iter().map(|r| r.runs.len()).sum()
    }

    /// Column headers: each key path's last segment, or the whole path where
    /// two columns share a last segment.
    fn headers(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| {
                let leaf = keypath::leaf(c);
                let shared = self
                    .columns
                    .iter()
                    .filter(|o| keypath::leaf(o) == leaf)
                    .count()
                    > 1;
                if shared {
                    c.clone()
                } else {
                    leaf.to_string()
                }
            })
            .collect()
    }

    /// The report as markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "# Sweep `{}`: {} of {} runs done\n\nMean ± standard deviation over seeds of each run's \
             final evaluation.\n\n",
            self.sweep,
            self.done(),
            self.total_runs
        );
        let mut header: Vec<String> = self.headers();
        header.push("seeds".into());
        header.extend(METRICS.iter().map(|(_, l)| l.to_string()));
        s.push_str(&format!("| {} |\n", header.join(" | ")));
        s.push_str(&format!("|{}\n", "---|".repeat(header.len())));
        for r in &self.rows {
            let mut cells: Vec<String> = r.values.iter().map(cell).collect();
            cells.push(r.runs.len().to_string());
            for (i, (k, _)) in METRICS.iter().enumerate() {
                cells.push(fmt_stat(k, r.mean[i], r.std[i]));
            }
            s.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        let with_published: Vec<&ReportRow> =
            self.rows.iter().filter(|r| r.published.is_some()).collect();
        if !with_published.is_empty() {
            s.push_str(&format!(
                "\n## Beside the published rows\n\nPublished: {PUBLISHED_MODEL}, width 4096, 200M \
                 samples, mean of 5 seeds. This sweep's values are for its own model, width and \
                 sample count.\n\n| architecture | L0 | MCC | MCC published | F1 | F1 published | \
                 uniqueness | uniqueness published | explained variance | EV published |\n\
                 |---|---|---|---|---|---|---|---|---|---|\n"
            ));
            for r in with_published {
                let p = r.published.expect("filtered");
                s.push_str(&format!(
                    "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |\n",
                    p.architecture,
                    p.l0,
                    r.mean[0],
                    p.mcc,
                    r.mean[1],
                    p.f1,
                    r.mean[4],
                    p.uniqueness,
                    r.mean[5],
                    p.explained_variance
                ));
            }
        }
        if !self.missing.is_empty() {
            s.push_str(&format!(
                "\n## Not in the table ({})\n\n",
                self.missing.len()
            ));
            for m in &self.missing {
                s.push_str(&format!("- `{}`: {}\n", m.run, m.why));
            }
        }
        s
    }

    /// The report as CSV: the columns, `seeds`, then `<metric>_mean` and
    /// `<metric>_std` of each metric.
    pub fn to_csv(&self) -> String {
        let mut header: Vec<String> = self.columns.clone();
        header.push("seeds".into());
        for (k, _) in METRICS {
            header.push(format!("{k}_mean"));
            header.push(format!("{k}_std"));
        }
        let mut s = header
            .iter()
            .map(|h| csv_field(h))
            .collect::<Vec<_>>()
            .join(",");
        s.push('\n');
        for r in &self.rows {
            let mut cells: Vec<String> = r.values.iter().map(|v| csv_field(&cell(v))).collect();
            cells.push(r.runs.len().to_string());
            for i in 0..METRICS.len() {
                for v in [r.mean[i], r.std[i]] {
                    cells.push(if v.is_nan() {
                        String::new()
                    } else {
                        v.to_string()
                    });
                }
            }
            s.push_str(&cells.join(","));
            s.push('\n');
        }
        s
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "sweep": self.sweep,
            "runs_total": self.total_runs,
            "runs_done": self.done(),
            "columns": self.columns,
            "rows": self.rows.iter().map(|r| {
                let values: Map<String, Value> =
                    self.columns.iter().cloned().zip(r.values.iter().cloned()).collect();
                let metrics: Map<String, Value> = METRICS.iter().enumerate().map(|(i, (k, _))| {
                    (k.to_string(), json!({"mean": r.mean[i], "std": r.std[i]}))
                }).collect();
                json!({
                    "values": values,
                    "seeds": r.runs.len(),
                    "runs": r.runs,
                    "metrics": metrics,
                    "published": r.published.map(|p| json!({
                        "model": p.model, "architecture": p.architecture, "l0": p.l0,
                        "mcc": p.mcc, "f1": p.f1, "uniqueness": p.uniqueness,
                        "explained_variance": p.explained_variance,
                    })),
                })
            }).collect::<Vec<_>>(),
            "missing": self.missing.iter().map(|m| json!({"run": m.run, "why": m.why})).collect::<Vec<_>>(),
        })
    }

    /// The column plotted on the x axis: `x` if given (it must be a
    /// column), else the one whose last segment is `l0`, then `k`, then the
    /// first numeric column. `None`: nothing numeric to plot against.
    pub fn x_column(&self, x: Option<&str>) -> Result<Option<usize>> {
        if let Some(x) = x {
            return self
                .columns
                .iter()
                .position(|c| c == x || keypath::leaf(c) == x)
                .map(Some)
                .ok_or_else(|| {
                    SweepError::spec(
                        "x",
                        format!(
                            "`{x}` is not a column of this sweep (columns: {})",
                            self.columns.join(", ")
                        ),
                    )
                });
        }
        let numeric = |i: usize| self.rows.iter().all(|r| r.values[i].is_number());
        let by_leaf = |leaf: &str| {
            (0..self.columns.len()).find(|&i| keypath::leaf(&self.columns[i]) == leaf && numeric(i))
        };
        Ok(by_leaf("l0")
            .or_else(|| by_leaf("k"))
            .or_else(|| (0..self.columns.len()).find(|&i| numeric(i))))
    }

    /// One panel per metric that some row has: a line per combination of
    /// the other columns, against column `x`.
    pub fn panels(&self, x: usize) -> Vec<SweepPanel> {
        let mut labels: Vec<String> = Vec::new();
        let label_of = |r: &ReportRow| -> String {
            let parts: Vec<String> = r
                .values
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != x)
                .map(|(_, v)| cell(v))
                .collect();
            if parts.is_empty() {
                "runs".into()
            } else {
                parts.join(", ")
            }
        };
        for r in &self.rows {
            let l = label_of(r);
            if !labels.contains(&l) {
                labels.push(l);
            }
        }
        METRICS
            .iter()
            .enumerate()
            .map(|(m, (key, label))| SweepPanel {
                metric: label.to_string(),
                series: labels
                    .iter()
                    .map(|l| {
                        let rows: Vec<&ReportRow> =
                            self.rows.iter().filter(|r| label_of(r) == *l).collect();
                        SweepSeries {
                            label: l.clone(),
                            points: rows
                                .iter()
                                .filter(|r| r.mean[m].is_finite())
                                .filter_map(|r| Some((r.values[x].as_f64()?, r.mean[m], r.std[m])))
                                .collect(),
                            reference: rows
                                .iter()
                                .filter_map(|r| {
                                    Some((
                                        r.values[x].as_f64()?,
                                        published_metric(r.published?, key)?,
                                    ))
                                })
                                .collect(),
                        }
                    })
                    .collect(),
            })
            // A metric no run has (absorption without a hierarchy) gets no panel.
            .filter(|p| p.series.iter().any(|s| !s.points.is_empty()))
            .collect()
    }

    /// Writes `report.md`, `report.csv`, `report.json` and, when there is
    /// a numeric column to plot against, `metrics.png` and `metrics.svg`
    /// into `out`; returns the files written.
    pub fn write(&self, out: &Path, x: Option<&str>) -> Result<Vec<PathBuf>> {
        let x = self.x_column(x)?;
        let mut written = Vec::new();
        for (name, text) in [
            ("report.md", self.to_markdown()),
            ("report.csv", self.to_csv()),
            (
                "report.json",
                serde_json::to_string_pretty(&self.to_json()).expect("report serialises"),
            ),
        ] {
            let p = out.join(name);
            write_atomic(&p, text.as_bytes())?;
            written.push(p);
        }
        if let (Some(x), false) = (x, self.rows.is_empty()) {
            let panels = self.panels(x);
            let title = format!(
                "{}: {} of {} runs",
                self.sweep,
                self.done(),
                self.total_runs
            );
            for f in ["metrics.png", "metrics.svg"] {
                let p = out.join(f);
                plot_sweep_metrics(&panels, keypath::leaf(&self.columns[x]), &title, &p)?;
                written.push(p);
            }
        }
        Ok(written)
    }
}

/// The published row of a run of a `synthsaebench` recipe spec.
fn published_for(spec: &Value, values: &Map<String, Value>) -> Option<PublishedRow> {
    let mut recipe = spec.get("recipe")?.clone();
    if recipe["name"] != "synthsaebench" {
        return None;
    }
    for (k, v) in values {
        if let Some(path) = k.strip_prefix("recipe.") {
            keypath::set(&mut recipe, path, v.clone()).ok()?;
        }
    }
    let arch = recipe["architecture"].as_str().unwrap_or("batchtopk");
    let l0 = recipe["l0"].as_u64().unwrap_or(25) as u32;
    published(arch, l0).copied()
}

fn published_metric(p: PublishedRow, key: &str) -> Option<f64> {
    match key {
        "mcc" => Some(p.mcc),
        "f1" => Some(p.f1),
        "uniqueness" => Some(p.uniqueness),
        "explained_variance" => Some(p.explained_variance),
        _ => None,
    }
}

/// Mean and sample standard deviation per metric; NaN where a run has no
/// value.
fn mean_std(runs: &[[f64; N_METRICS]]) -> ([f64; N_METRICS], [f64; N_METRICS]) {
    let n = runs.len() as f64;
    let mut mean = [0.0; N_METRICS];
    let mut std = [0.0; N_METRICS];
    for i in 0..N_METRICS {
        mean[i] = runs.iter().map(|r| r[i]).sum::<f64>() / n;
        if runs.len() > 1 {
            let ss: f64 = runs.iter().map(|r| (r[i] - mean[i]).powi(2)).sum();
            std[i] = (ss / (n - 1.0)).sqrt();
        }
    }
    (mean, std)
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn fmt_stat(key: &str, mean: f64, std: f64) -> String {
    if mean.is_nan() {
        return "-".into();
    }
    match key {
        "split_features" => format!("{mean:.1} ± {std:.1}"),
        "l0" => format!("{mean:.2} ± {std:.2}"),
        "dead_latents" => format!("{mean:.1} ± {std:.1}"),
        _ => format!("{mean:.4} ± {std:.4}"),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_std_and_formatting() {
        let (m, s) = mean_std(&[[1.0; N_METRICS], [3.0; N_METRICS]]);
        assert_eq!(m[0], 2.0);
        assert!((s[0] - 2f64.sqrt()).abs() < 1e-12);
        let (_, s) = mean_std(&[[1.0; N_METRICS]]);
        assert_eq!(s[0], 0.0);
        let mut none = [1.0; N_METRICS];
        none[9] = f64::NAN;
        let (m, _) = mean_std(&[[1.0; N_METRICS], none]);
        assert!(m[9].is_nan() && m[0] == 1.0);
        assert_eq!(fmt_stat("absorption", m[9], 0.0), "-");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(fmt_stat("mcc", 0.5, 0.01), "0.5000 ± 0.0100");
    }

    #[test]
    fn published_rows_follow_the_recipe_values() {
        let spec = json!({"recipe": {"name": "synthsaebench", "l0": 20}});
        let mut v = Map::new();
        v.insert("recipe.architecture".into(), "jumprelu".into());
        assert_eq!(published_for(&spec, &v).unwrap().l0, 20);
        v.insert("recipe.l0".into(), 45.into());
        assert!(published_for(&spec, &v).is_none());
        assert!(published_for(&json!({"base": {}}), &v).is_none());
    }
}
