//! `pulse align`: every photo in, FFHQ-aligned low-resolution faces out, ready for `upsample`
//! (PULSE's `align_face.py`, with MTCNN's landmarks instead of dlib's). Resumable, one bad file
//! never stopping the rest, every output written atomically.
use super::shard::ShardInfo;
use crate::align::{self, DetectConfig, Face, Mtcnn};
use crate::files::{as_escaped, escaped};
use crate::imageio;
use crate::invalid;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::Device;

/// Everything `align` needs besides the networks; filled from the command line.
#[derive(Debug, Clone)]
pub struct AlignOptions {
    pub inputs: Vec<PathBuf>,
    pub out_dir: PathBuf,
    /// Side of the low-resolution faces: a power of two from 8 to 1024.
    pub size: i64,
    /// Every face (`<stem>_<k>.png`, largest first) instead of the largest (`<stem>.png`).
    pub all_faces: bool,
    pub detect: DetectConfig,
    /// Also write the 1024x1024 aligned faces (`<name>.aligned.png`).
    pub save_aligned: bool,
    /// The report file (for a shard, already named after it: [`super::shard::report_path`]).
    pub report: Option<PathBuf>,
    /// Only the inputs at sorted position p with p % N == I; also names the output folder's lock.
    pub shard: Option<ShardInfo>,
    /// Inputs the caller refused by its own planning before any work (`upsample --align`: an
    /// output of the search would overwrite a photo), with the reason: recorded, not read.
    pub refuse: Vec<(PathBuf, String)>,
    /// Redo inputs whose outputs already exist.
    pub overwrite: bool,
    /// Where the images are processed (the networks' device).
    pub device: Device,
}

/// The sides `--size` accepts.
pub fn check_size(size: i64) -> Result<(), String> {
    if (8..=align::ffhq::OUTPUT_SIZE).contains(&size) && size.count_ones() == 1 {
        Ok(())
    } else {
        Err(format!("{size} is not a power of two from 8 to 1024"))
    }
}

/// What a run reports as it goes; the command line draws its progress bar from it.
pub trait AlignObserver {
    /// `inputs` files to look at.
    fn started(&mut self, _inputs: usize) {}
    /// An input that was refused (unreadable, or no face): it gets no output.
    fn refused(&mut self, _input: &Path, _error: &anyhow::Error) {}
    /// An output that exists already (kept; `--overwrite` redoes it).
    fn skipped(&mut self, _input: &Path, _output: &Path) {}
    /// Detection in a photo has done `done` of `total` steps (large photos take seconds).
    fn progress(&mut self, _input: &Path, _done: usize, _total: usize) {}
    /// An input is done (whatever its status).
    fn finished(&mut self, _record: &InputRecord) {}
}

/// The report's `kind`, which `pulse report merge` reads.
pub const KIND: &str = "align";

/// The outcome of a run, also written as the JSON report.
#[derive(Debug, Serialize)]
pub struct AlignReport {
    /// Always [`KIND`].
    pub kind: &'static str,
    /// The shard this run worked on, and where it came from (`null` for a whole run).
    pub shard: Option<ShardInfo>,
    /// The photos this run was given (its shard's): what `pulse report merge` checks every
    /// shard accounted for.
    #[serde(serialize_with = "as_escaped::paths")]
    pub assigned: Vec<PathBuf>,
    pub settings: AlignSettings,
    pub inputs: Vec<InputRecord>,
    pub interrupted: bool,
}

#[derive(Debug, Serialize)]
pub struct AlignSettings {
    pub size: i64,
    pub all_faces: bool,
    pub min_face: f64,
    pub thresholds: [f32; 3],
    pub factor: f64,
    pub save_aligned: bool,
    pub device: String,
}

/// What happened to one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Faces found and written (or found and already there).
    Aligned,
    /// Its outputs existed, so it was not read again.
    Skipped,
    /// Read, but MTCNN found no face.
    NoFace,
    /// Not readable as a photo (or not alignable).
    Refused,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputRecord {
    #[serde(serialize_with = "as_escaped::path")]
    pub input: PathBuf,
    pub status: Status,
    /// The refusal, on one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Size as displayed (after EXIF orientation); absent when not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    /// Every face found, largest first, with the files written for it.
    pub faces: Vec<FaceRecord>,
    /// The low-resolution faces of this input, written now or (skipped) found from before.
    #[serde(serialize_with = "as_escaped::paths")]
    pub outputs: Vec<PathBuf>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FaceRecord {
    #[serde(flatten)]
    pub face: Face,
    /// The low-resolution face; `None` for faces not output (all but the largest without
    /// `--all-faces`).
    #[serde(serialize_with = "as_escaped::option")]
    pub output: Option<PathBuf>,
    /// The 1024x1024 aligned face, with `--save-aligned`.
    #[serde(serialize_with = "as_escaped::option", skip_serializing_if = "Option::is_none")]
    pub aligned: Option<PathBuf>,
}

impl InputRecord {
    /// Marks the input refused (its faces and any outputs already written stay listed).
    fn refuse(&mut self, e: anyhow::Error) {
        self.status = Status::Refused;
        self.error = Some(format!("{e:#}"));
    }
}

impl AlignReport {
    /// The low-resolution faces of this run, written now or found from an earlier run.
    pub fn outputs(&self) -> Vec<PathBuf> {
        self.inputs.iter().flat_map(|r| r.outputs.iter().cloned()).collect()
    }

    pub fn count(&self, status: Status) -> usize {
        self.inputs.iter().filter(|r| r.status == status).count()
    }

    /// How the run ended: a photo without a face counts as refused (it has no output).
    pub fn verdict(&self) -> super::report::Verdict {
        let refused = self.count(Status::NoFace) + self.count(Status::Refused) > 0;
        super::report::Verdict::of_run(self.interrupted, refused, false)
    }
}

/// Output names of face `k`: `<stem>.png` (the largest face) or `<stem>_<k>.png` (`--all-faces`),
/// and the aligned face beside it as `<name>.aligned.png`.
fn output_paths(opts: &AlignOptions, stem: &OsStr, k: usize) -> (PathBuf, PathBuf) {
    let with = |suffix: &str| {
        let mut name = stem.to_os_string();
        if opts.all_faces {
            name.push(format!("_{k}"));
        }
        name.push(suffix);
        opts.out_dir.join(name)
    };
    (with(".png"), with(".aligned.png"))
}

/// Aligns the faces of every input. Inputs that cannot be read or have no face are reported
/// and skipped; `stop` (Ctrl-C) ends the run, within a photo too, keeping what was written
/// (whole files only). Errors of type [`crate::Invalid`] mean the request itself cannot be
/// carried out (settings out of range, no input, an unusable output folder, another run of the
/// same shard there).
pub fn run(
    mtcnn: &Mtcnn,
    opts: &AlignOptions,
    observer: &mut dyn AlignObserver,
    stop: &AtomicBool,
) -> anyhow::Result<AlignReport> {
    check_size(opts.size).map_err(|e| crate::Invalid(format!("output size: {e}")))?;
    if opts.detect.min_face.is_nan() || opts.detect.min_face < 1.0 {
        invalid!("the smallest face size must be at least 1 pixel");
    }
    let all = super::collect_inputs(&opts.inputs)?;
    if all.is_empty() {
        invalid!(
            "nothing to do: no photo in {} (photos are {})",
            opts.inputs.iter().map(|p| escaped(p)).collect::<Vec<_>>().join(", "),
            crate::imageio::INPUT_EXTENSIONS.join(", ")
        );
    }
    crate::files::check_writable_dir(&opts.out_dir).map_err(|e| {
        crate::Invalid(format!(
            "{}: cannot write in the output folder: {e}",
            escaped(&opts.out_dir)
        ))
    })?;
    if let Some(report) = &opts.report {
        crate::files::check_writable_dir(crate::files::parent_dir(report)).map_err(|e| {
            crate::Invalid(format!("{}: cannot write the report there: {e}", escaped(report)))
        })?;
        let inputs: Vec<&Path> = all.iter().map(PathBuf::as_path).collect();
        crate::files::check_no_clobber(&inputs, &[report])?;
    }
    let mut clashes = plan_names(opts, &all);
    for (path, why) in &opts.refuse {
        clashes.insert(path.clone(), anyhow::anyhow!("{why}"));
    }
    let files = match &opts.shard {
        Some(shard) => shard.shard().select(all.clone()),
        None => all.clone(),
    };
    let _lock =
        super::shard::lock_output_dir(&opts.out_dir, opts.shard.as_ref().map(|s| s.shard()))?;
    // No output may replace an input of any shard (e.g. `-o` naming the photos' own folder).
    let inputs_set: BTreeSet<PathBuf> = all.iter().filter_map(|f| f.canonicalize().ok()).collect();
    let mut report = AlignReport {
        kind: KIND,
        shard: opts.shard.clone(),
        assigned: files.clone(),
        settings: AlignSettings {
            size: opts.size,
            all_faces: opts.all_faces,
            min_face: opts.detect.min_face,
            thresholds: opts.detect.thresholds,
            factor: opts.detect.factor,
            save_aligned: opts.save_aligned,
            device: crate::device::device_name(opts.device),
        },
        inputs: vec![],
        interrupted: false,
    };
    observer.started(files.len());
    for path in files {
        if stop.load(Ordering::SeqCst) {
            report.interrupted = true;
            break;
        }
        let started = Instant::now();
        let stem = crate::files::output_stem(&path);
        let mut record = match clashes.remove(&path) {
            Some(e) => refusal(&path, e),
            None => match align_one(mtcnn, opts, &path, &stem, &inputs_set, observer, stop)? {
                Some(record) => record,
                None => {
                    report.interrupted = true;
                    break;
                }
            },
        };
        if let Some(e) = &record.error {
            observer.refused(&path, &anyhow::anyhow!("{e}"));
        }
        record.seconds = started.elapsed().as_secs_f64();
        observer.finished(&record);
        report.inputs.push(record);
        if let Some(path) = &opts.report {
            write_report(&report, path)?;
        }
    }
    if let Some(path) = &opts.report {
        write_report(&report, path)?;
    }
    Ok(report)
}

/// Plans the output names of every photo of the job (all shards, sorted) before any work: a
/// photo whose outputs would have the names of an earlier photo's is refused, naming it. (With
/// `--all-faces` that happens only for equal stems: `<stem>_<k>` ends in digits.) Outputs over
/// inputs are refused when written ([`overwrites_input`]), since with `--all-faces` the number
/// of faces is known only then.
fn plan_names(opts: &AlignOptions, all: &[PathBuf]) -> HashMap<PathBuf, anyhow::Error> {
    let mut claimed: HashMap<OsString, &PathBuf> = HashMap::new();
    let mut refused = HashMap::new();
    for path in all {
        let stem = crate::files::output_stem(path);
        let with = |suffix: &str| {
            let mut name = stem.clone();
            name.push(suffix);
            name
        };
        let names = if opts.all_faces {
            vec![with("_<k>")]
        } else if opts.save_aligned {
            vec![with(".png"), with(".aligned.png")]
        } else {
            vec![with(".png")]
        };
        match names.iter().find_map(|n| claimed.get(n).copied()) {
            Some(other) => {
                let e = anyhow::anyhow!(
                    "{}: same output name as {} (outputs would collide); rename one",
                    escaped(path),
                    escaped(other)
                );
                refused.insert(path.clone(), e);
            }
            None => claimed.extend(names.into_iter().map(|n| (n, path))),
        }
    }
    refused
}

fn record(path: &Path, status: Status, error: Option<String>) -> InputRecord {
    InputRecord {
        input: path.to_path_buf(),
        status,
        error,
        width: None,
        height: None,
        faces: vec![],
        outputs: vec![],
        seconds: 0.0,
    }
}

fn refusal(path: &Path, e: anyhow::Error) -> InputRecord {
    record(path, Status::Refused, Some(format!("{e:#}")))
}

/// One input: read, detect, align and write each face to output. Errors reading the photo or
/// aligning a face are the input's refusal; errors writing are the run's. `None`: stopped
/// (Ctrl-C) before anything of this input was written.
fn align_one(
    mtcnn: &Mtcnn,
    opts: &AlignOptions,
    path: &Path,
    stem: &OsStr,
    inputs: &BTreeSet<PathBuf>,
    observer: &mut dyn AlignObserver,
    stop: &AtomicBool,
) -> anyhow::Result<Option<InputRecord>> {
    // Resume without reading: the largest face's outputs are all there.
    if !opts.all_faces && !opts.overwrite {
        let (png, aligned) = output_paths(opts, stem, 0);
        if let Some(e) = overwrites_input(path, &[&png, &aligned], inputs) {
            return Ok(Some(refusal(path, e)));
        }
        if png.exists() && (!opts.save_aligned || aligned.exists()) {
            observer.skipped(path, &png);
            let mut r = record(path, Status::Skipped, None);
            r.outputs.push(png);
            return Ok(Some(r));
        }
    }
    let image = match imageio::read_rgb(path) {
        Ok(t) => t.to_device(opts.device),
        Err(e) => return Ok(Some(refusal(path, e.into()))),
    };
    let (height, width) = (image.size()[1], image.size()[2]);
    if let Err(e) = align::check_min_face(height, width, &opts.detect) {
        return Ok(Some(refusal(path, anyhow::anyhow!("{}: {e}", escaped(path)))));
    }
    let mut progress = |done, total| {
        observer.progress(path, done, total);
        !stop.load(Ordering::SeqCst)
    };
    let Some(faces) = align::find_faces_with(mtcnn, &image, &opts.detect, &mut progress) else {
        return Ok(None);
    };
    let mut record = record(path, Status::Aligned, None);
    record.width = Some(width);
    record.height = Some(height);
    record.faces =
        faces.iter().map(|&face| FaceRecord { face, output: None, aligned: None }).collect();
    if faces.is_empty() {
        record.status = Status::NoFace;
        record.error = Some(format!("{}: no face found", escaped(path)));
        return Ok(Some(record));
    }
    let count = if opts.all_faces { faces.len() } else { 1 };
    for (k, face) in faces.iter().enumerate().take(count) {
        let (png, aligned_png) = output_paths(opts, stem, k);
        if let Some(e) = overwrites_input(path, &[&png, &aligned_png], inputs) {
            record.refuse(e);
            break;
        }
        let done = png.exists() && (!opts.save_aligned || aligned_png.exists());
        if done && !opts.overwrite {
            observer.skipped(path, &png);
        } else {
            let aligned = match align::ffhq::align(&image, &face.landmarks) {
                Ok(a) => a,
                Err(e) => {
                    record.refuse(e.context(format!("{}: face {k}", escaped(path))));
                    break;
                }
            };
            if opts.save_aligned {
                imageio::write_png(&aligned, &aligned_png)?;
            }
            imageio::write_png(&align::downscale(&aligned, opts.size)?, &png)?;
        }
        record.faces[k].output = Some(png.clone());
        record.faces[k].aligned = opts.save_aligned.then_some(aligned_png);
        record.outputs.push(png);
    }
    Ok(Some(record))
}

/// The refusal when one of `outputs` is an input of the run (e.g. `-o` naming the photos' own
/// folder): outputs never replace inputs.
fn overwrites_input(
    path: &Path,
    outputs: &[&PathBuf],
    inputs: &BTreeSet<PathBuf>,
) -> Option<anyhow::Error> {
    let out = outputs.iter().find(|o| o.canonicalize().is_ok_and(|c| inputs.contains(&c)))?;
    Some(anyhow::anyhow!(
        "{}: the output {} would overwrite an input; choose another -o folder",
        escaped(path),
        escaped(out)
    ))
}

fn write_report(report: &AlignReport, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(report)?;
    crate::files::write_bytes_atomic(path, &json)
        .map_err(|e| anyhow::anyhow!("{}: cannot write the report: {e}", escaped(path)))
}
