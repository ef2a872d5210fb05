//! The JSON report of `upsample --report` (README, "The report"): the settings, the model, one
//! entry per image and sample with its loss history. It describes the whole output folder: a
//! resumed run keeps the entries of earlier runs for the images it did not redo.
use crate::files::escaped;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The report's `kind`, which `pulse report merge` reads.
pub const KIND: &str = "upsample";

/// The outcome of a run, also written as the JSON report.
#[derive(Debug, Serialize)]
pub struct UpsampleReport {
    /// Always [`KIND`].
    pub kind: &'static str,
    /// The shard this run worked on, and where it came from (`null` for a whole run).
    pub shard: Option<crate::pipelines::shard::ShardInfo>,
    /// The input files this run was given (its shard's), accepted or not: what `pulse report
    /// merge` checks every shard accounted for.
    #[serde(serialize_with = "escaped_paths")]
    pub assigned: Vec<PathBuf>,
    pub settings: UpsampleSettings,
    pub model: ModelInfo,
    /// This run's images; [`UpsampleReport::to_json`] adds earlier runs' entries.
    pub images: Vec<ImageRecord>,
    pub refused: Vec<RefusedInput>,
    #[serde(serialize_with = "escaped_paths")]
    pub skipped: Vec<PathBuf>,
    /// Inputs all of whose samples were finished by an earlier run.
    #[serde(serialize_with = "escaped_paths")]
    pub skipped_inputs: Vec<PathBuf>,
    pub interrupted: bool,
    /// Entries of an earlier report at the same path, for images this run has not redone.
    #[serde(skip)]
    pub earlier: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct UpsampleSettings {
    /// `pulse` or `ilo`.
    pub method: &'static str,
    /// ILO: the steps of each round (absent for PULSE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ilo_steps: Option<Vec<usize>>,
    /// ILO's l1-ball radii when given (`--ilo-radius`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ilo_radius: Option<String>,
    pub steps: usize,
    pub lr: f64,
    pub optimizer: &'static str,
    pub schedule: &'static str,
    pub loss: String,
    pub eps: f64,
    pub noise: &'static str,
    pub trainable_noise: usize,
    pub bad_noise_layers: Vec<usize>,
    pub tile_latent: bool,
    pub seed: u64,
    pub samples: usize,
    pub batch_size: usize,
    pub restarts: usize,
    pub device: String,
    pub precision: &'static str,
    /// False only with `--nondeterministic` on CUDA (the CPU repeats its results anyway).
    pub deterministic: bool,
    /// Whether the steps were replayed from a CUDA graph (`--cuda-graph` on CUDA).
    pub cuda_graph: bool,
}

impl UpsampleSettings {
    /// The settings of a run searching with `search` as `run` says on `device`.
    pub fn new(
        search: &crate::pulse::SearchConfig,
        layout: &crate::stylegan::Layout,
        run: &super::super::RunConfig,
        device: tch::Device,
    ) -> Self {
        let ilo = search.method == crate::pulse::Method::Ilo;
        Self {
            method: search.method.name(),
            ilo_steps: ilo.then(|| search.ilo.steps.clone()),
            ilo_radius: if ilo { search.ilo.radius.as_ref().map(|r| r.to_string()) } else { None },
            steps: if ilo { search.ilo.steps.iter().sum() } else { search.steps },
            lr: search.lr,
            optimizer: search.optimizer.name(),
            schedule: search.schedule.name(),
            loss: search.loss.to_string(),
            eps: search.eps,
            noise: search.noise.name(),
            trainable_noise: search.trainable_noise,
            bad_noise_layers: search.bad_noise(layout).to_vec(),
            tile_latent: search.tile_latent,
            seed: run.seed,
            samples: run.samples,
            batch_size: run.batch_size,
            restarts: run.restarts,
            device: crate::device::device_name(device),
            precision: run.precision.name(),
            deterministic: run.deterministic,
            cuda_graph: search.cuda_graph && device.is_cuda(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ModelInfo {
    #[serde(serialize_with = "escaped_path")]
    pub dir: PathBuf,
    pub sha256: String,
    pub resolution: i64,
}

#[derive(Debug, Serialize)]
pub struct RefusedInput {
    #[serde(serialize_with = "escaped_path")]
    pub input: PathBuf,
    pub error: String,
}

/// One finished image (one sample of one input).
#[derive(Debug, Clone, Serialize)]
pub struct ImageRecord {
    #[serde(serialize_with = "escaped_path")]
    pub input: PathBuf,
    #[serde(serialize_with = "escaped_paths")]
    pub outputs: Vec<PathBuf>,
    pub sample: usize,
    /// The seed that drew this image's starting latent and noise (of the winning attempt).
    pub seed: u64,
    /// 0 for the first search, k for the k-th restart.
    pub attempt: usize,
    pub converged: bool,
    pub best_step: usize,
    /// Best TOTAL and each loss term at that step, named as in the loss string.
    pub best: BTreeMap<String, serde_json::Value>,
    /// Wall time of the searches, shared equally among the images of each batch.
    pub seconds: f64,
    /// One entry per step: `step`, `lr`, `total` and each loss term, before that step's update.
    pub history: Vec<BTreeMap<String, serde_json::Value>>,
}

impl UpsampleReport {
    /// Images that converged, this run's and the earlier ones kept in the report.
    pub fn converged(&self) -> usize {
        self.converged_flags().into_iter().filter(|&c| c).count()
    }

    /// Images in the report (this run's and the earlier ones kept).
    pub fn total(&self) -> usize {
        self.converged_flags().len()
    }

    /// Whether every image in the report converged.
    pub fn all_converged(&self) -> bool {
        self.converged_flags().into_iter().all(|c| c)
    }

    fn converged_flags(&self) -> Vec<bool> {
        let earlier = self.earlier_kept().map(|v| v.get("converged").and_then(|c| c.as_bool()));
        self.images.iter().map(|r| r.converged).chain(earlier.map(|c| c == Some(true))).collect()
    }

    /// The earlier entries that no entry of this run replaces.
    fn earlier_kept(&self) -> impl Iterator<Item = &serde_json::Value> {
        let current: std::collections::HashSet<String> =
            self.images.iter().map(|r| record_key(&escaped(&r.input), r.sample)).collect();
        self.earlier.iter().filter(move |v| value_key(v).is_some_and(|k| !current.contains(&k)))
    }

    /// The report as JSON: the earlier entries this run did not replace, then this run's.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut value = serde_json::to_value(self)?;
        let mut images: Vec<serde_json::Value> = self.earlier_kept().cloned().collect();
        images.extend(value["images"].as_array().cloned().unwrap_or_default());
        value["images"] = serde_json::Value::Array(images);
        serde_json::to_vec_pretty(&value)
    }

    /// Writes the report atomically.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let json = self.to_json()?;
        crate::files::write_bytes_atomic(path, &json)
            .map_err(|e| anyhow::anyhow!("{}: cannot write the report: {e}", escaped(path)))
    }
}

/// Reads the image entries of an earlier report at `path` made with the model `sha256` (none
/// when there is no file, or it was made with another model). A file there that is not a pulse
/// report is refused rather than overwritten.
pub(super) fn read_earlier(path: &Path, sha256: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => anyhow::bail!("{}: cannot read the earlier report: {e}", escaped(path)),
    };
    let not_a_report = || {
        crate::Invalid(format!(
            "{}: exists and is not a pulse report; choose another report file",
            escaped(path)
        ))
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| not_a_report())?;
    let images = value.get("images").and_then(|i| i.as_array()).ok_or_else(not_a_report)?;
    if value.pointer("/model/sha256").and_then(|s| s.as_str()) != Some(sha256) {
        return Ok(vec![]);
    }
    Ok(images.iter().filter(|v| value_key(v).is_some()).cloned().collect())
}

fn record_key(input: &str, sample: usize) -> String {
    format!("{sample}:{input}")
}

fn value_key(v: &serde_json::Value) -> Option<String> {
    Some(record_key(v.get("input")?.as_str()?, v.get("sample")?.as_u64()? as usize))
}

fn escaped_path<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&escaped(p))
}

fn escaped_paths<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(paths.iter().map(|p| escaped(p)))
}
