//! The JSON report of `restore --report` (README, *Restoring photos*): the settings, the model,
//! and per photo its status, outputs and one entry per face and sample.
use super::RestoreOptions;
use crate::align::Face;
use crate::files::escaped;
use crate::pipelines::upsample::ModelInfo;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Device;

/// The report's `kind`, which `pulse report merge` reads.
pub const KIND: &str = "restore";

/// The outcome of a run, also written as the JSON report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Always [`KIND`].
    pub kind: &'static str,
    /// The shard this run worked on, and where it came from (`null` for a whole run).
    pub shard: Option<crate::pipelines::shard::ShardInfo>,
    /// The photos this run was given (its shard's): what `pulse report merge` checks every
    /// shard accounted for.
    #[serde(serialize_with = "escaped_paths")]
    pub assigned: Vec<PathBuf>,
    pub settings: Settings,
    pub model: ModelInfo,
    pub photos: Vec<PhotoRecord>,
    pub interrupted: bool,
    /// The earlier report's entries at the same path: a photo this run skips keeps its entry
    /// ([`PhotoRecord::earlier`]), and one of this run's photos it did not reach (Ctrl-C) keeps
    /// its entry as it was.
    #[serde(skip)]
    pub earlier: Earlier,
}

/// `upsample`'s search settings plus restore's own.
#[derive(Debug, Serialize)]
pub struct Settings {
    #[serde(flatten)]
    pub search: crate::pipelines::upsample::UpsampleSettings,
    pub upscale: i64,
    pub only_center_face: bool,
    pub max_faces: Option<usize>,
    pub min_face: f64,
}

/// What happened to one photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its faces were restored and the photo written.
    Restored,
    /// No face found: the plain enlargement was written.
    NoFace,
    /// Its outputs existed, so it was not read again.
    Skipped,
    /// Not usable (unreadable, too small or too large, an output clash): no output.
    Refused,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhotoRecord {
    #[serde(serialize_with = "escaped_path")]
    pub input: PathBuf,
    pub status: Status,
    /// The refusal, or the note that no face was found, on one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The photo's size as displayed (EXIF orientation applied); absent when not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    /// The restored photos (one per sample).
    #[serde(serialize_with = "escaped_paths")]
    pub outputs: Vec<PathBuf>,
    #[serde(serialize_with = "escaped_paths", skip_serializing_if = "Vec::is_empty")]
    pub compare: Vec<PathBuf>,
    #[serde(serialize_with = "escaped_opt", skip_serializing_if = "Option::is_none")]
    pub faces_dir: Option<PathBuf>,
    /// One entry per face and sample, faces largest first.
    pub faces: Vec<FaceRecord>,
    pub seconds: f64,
    /// A skipped photo's entry in the earlier report at the same path (the run that made its
    /// outputs): written in its place, with `status` `skipped` and `earlier_status`.
    #[serde(skip)]
    pub earlier: Option<Map<String, Value>>,
}

impl PhotoRecord {
    pub fn new(input: &Path, status: Status) -> Self {
        Self {
            input: input.to_path_buf(),
            status,
            error: None,
            width: None,
            height: None,
            outputs: vec![],
            compare: vec![],
            faces_dir: None,
            faces: vec![],
            seconds: 0.0,
            earlier: None,
        }
    }
}

/// One restored face (one sample of it).
#[derive(Debug, Clone, Serialize)]
pub struct FaceRecord {
    /// Its number in the photo (0 = the largest restored).
    pub face: usize,
    pub sample: usize,
    /// MTCNN's `box`, `score` and `landmarks`, in photo pixels.
    #[serde(flatten)]
    pub detection: Face,
    /// The side of FFHQ's crop in photo pixels (what sets `input_size`).
    pub quad_size: f64,
    /// The side of the low-resolution target PULSE matched.
    pub input_size: i64,
    #[serde(serialize_with = "escaped_path")]
    pub crop: PathBuf,
    #[serde(serialize_with = "escaped_path")]
    pub result: PathBuf,
    #[serde(serialize_with = "escaped_path")]
    pub latent: PathBuf,
    pub seed: u64,
    pub attempt: usize,
    pub converged: bool,
    pub best_step: usize,
    /// Best TOTAL and each loss term at that step, named as in the loss string.
    pub loss: BTreeMap<String, serde_json::Value>,
    /// Wall time of its searches, shared equally among the faces of each batch.
    pub seconds: f64,
}

impl Report {
    pub fn count(&self, status: Status) -> usize {
        self.photos.iter().filter(|r| r.status == status).count()
    }

    /// Faces in the report, and how many of them converged: this run's, and those of the
    /// earlier entries kept for the photos it skipped (so a rerun's exit code is the first
    /// run's).
    pub fn faces(&self) -> (usize, usize) {
        let converged = |e: &Map<String, Value>| -> Vec<bool> {
            let faces = e.get("faces").and_then(Value::as_array).into_iter().flatten();
            faces.map(|f| f.get("converged") == Some(&Value::Bool(true))).collect()
        };
        let mut flags = vec![];
        for p in &self.photos {
            match &p.earlier {
                Some(e) => flags.extend(converged(e)),
                None => flags.extend(p.faces.iter().map(|f| f.converged)),
            }
        }
        flags.extend(self.unreached().flat_map(converged));
        (flags.len(), flags.into_iter().filter(|&c| c).count())
    }

    /// The earlier entries of this run's photos that it has not reached.
    fn unreached(&self) -> impl Iterator<Item = &Map<String, Value>> {
        let reached: std::collections::BTreeSet<String> =
            self.photos.iter().map(|p| escaped(&p.input)).collect();
        self.assigned
            .iter()
            .map(|p| escaped(p))
            .filter(move |p| !reached.contains(p))
            .filter_map(|p| self.earlier.get(&p))
    }

    /// The report as JSON: a skipped photo's entry is its earlier one, where there is one.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        let mut value = serde_json::to_value(self)?;
        if let Some(entries) = value.get_mut("photos").and_then(Value::as_array_mut) {
            for (entry, record) in entries.iter_mut().zip(&self.photos) {
                if let Some(earlier) = &record.earlier {
                    let mut kept = earlier.clone();
                    let first = kept.get("earlier_status").or(kept.get("status")).cloned();
                    kept.insert("earlier_status".into(), first.unwrap_or(Value::Null));
                    kept.insert("status".into(), "skipped".into());
                    *entry = Value::Object(kept);
                }
            }
            entries.extend(self.unreached().cloned().map(Value::Object));
        }
        serde_json::to_vec_pretty(&value)
    }

    /// Writes the report atomically.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let json = self.to_json()?;
        crate::files::write_bytes_atomic(path, &json)
            .map_err(|e| anyhow::anyhow!("{}: cannot write the report: {e}", escaped(path)))
    }
}

/// The entries of the photos an earlier report at `path` says were restored or had no face,
/// by their `input`, when it was made with the model `sha256` (none when there is no file).
/// A file there that is not a restore report is refused: it is not overwritten.
pub(super) fn read_earlier(path: &Path, sha256: &str) -> anyhow::Result<Earlier> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Earlier::new()),
        Err(e) => anyhow::bail!("{}: cannot read the earlier report: {e}", escaped(path)),
    };
    let value: Option<Value> = serde_json::from_slice(&bytes).ok();
    let Some(photos) = value.as_ref().and_then(|v| v.get("photos")).and_then(Value::as_array)
    else {
        crate::invalid!(
            "{}: exists and is not a pulse restore report; choose another report file",
            escaped(path)
        );
    };
    if value.as_ref().and_then(|v| v.pointer("/model/sha256")).and_then(Value::as_str)
        != Some(sha256)
    {
        return Ok(Earlier::new());
    }
    let done = |e: &Map<String, Value>| {
        let status = e.get("earlier_status").or(e.get("status")).and_then(Value::as_str);
        matches!(status, Some("restored" | "no_face"))
    };
    Ok(photos
        .iter()
        .filter_map(Value::as_object)
        .filter(|e| done(e))
        .filter_map(|e| Some((e.get("input")?.as_str()?.to_string(), e.clone())))
        .collect())
}

/// Earlier report entries by input (escaped, as written).
pub type Earlier = BTreeMap<String, Map<String, Value>>;

/// The earlier entry of a photo skipped now, if it names the same outputs.
pub(super) fn earlier_entry(
    earlier: &Earlier,
    input: &Path,
    outputs: &[PathBuf],
) -> Option<Map<String, Value>> {
    let entry = earlier.get(&escaped(input))?;
    let named: Vec<String> = outputs.iter().map(|p| escaped(p)).collect();
    let listed: Vec<&str> =
        entry.get("outputs")?.as_array()?.iter().filter_map(Value::as_str).collect();
    (listed == named).then(|| entry.clone())
}

pub(super) fn settings(
    opts: &RestoreOptions,
    layout: &crate::stylegan::Layout,
    device: Device,
) -> Settings {
    Settings {
        search: crate::pipelines::upsample::UpsampleSettings::new(
            &opts.search,
            layout,
            &opts.run,
            device,
        ),
        upscale: opts.upscale,
        only_center_face: opts.only_center_face,
        max_faces: opts.max_faces,
        min_face: opts.detect.min_face,
    }
}

fn escaped_path<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&escaped(p))
}

fn escaped_paths<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(paths.iter().map(|p| escaped(p)))
}

fn escaped_opt<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(&escaped(p)),
        None => s.serialize_none(),
    }
}
