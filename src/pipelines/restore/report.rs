//! The JSON report of `restore --report` (README, *Restoring photos*): the settings, the model,
//! and per photo its status, outputs and one entry per face and sample.
use super::RestoreOptions;
use crate::align::Face;
use crate::files::escaped;
use crate::pipelines::upsample::ModelInfo;
use serde::{Serialize, Serializer};
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

    /// Faces restored in this run, and how many of them converged.
    pub fn faces(&self) -> (usize, usize) {
        let faces = self.photos.iter().flat_map(|p| &p.faces);
        faces.fold((0, 0), |(n, c), f| (n + 1, c + usize::from(f.converged)))
    }

    /// Writes the report atomically.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        crate::files::write_bytes_atomic(path, &json)
            .map_err(|e| anyhow::anyhow!("{}: cannot write the report: {e}", escaped(path)))
    }
}

/// Refuses a file at the report's path that is not a restore report: it is not overwritten.
pub(super) fn check_earlier(path: &Path) -> anyhow::Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => anyhow::bail!("{}: cannot read the earlier report: {e}", escaped(path)),
    };
    let value: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    if value.as_ref().and_then(|v| v.get("photos")).is_none_or(|p| !p.is_array()) {
        crate::invalid!(
            "{}: exists and is not a pulse restore report; choose another report file",
            escaped(path)
        );
    }
    Ok(())
}

pub(super) fn settings(opts: &RestoreOptions, device: Device) -> Settings {
    Settings {
        search: crate::pipelines::upsample::UpsampleSettings::new(&opts.search, &opts.run, device),
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
