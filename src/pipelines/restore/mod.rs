//! `pulse restore`: photos in, each photo back enlarged with every face restored by PULSE and
//! pasted in place, and the guarantee made visible: the restored photo, downscaled by PULSE's
//! downscaler, is the input photo again (docs/design.md, *Restoring photos*).
//!
//! A run goes: list the photos, and for each read it, find its faces (MTCNN), align each
//! (FFHQ's recipe) and make its low-resolution target at the side its crop resolves
//! ([`crate::align::paste::input_side`]); then search every face of the run, batched by target
//! side; as soon as a photo's faces are all found, paste them into the enlarged photo
//! ([`crate::align::paste`]), project onto the photo's consistency set ([`enlarge`]) and write.
//! Photos whose outputs exist are skipped; one bad photo never stops the rest.
pub mod enlarge;
mod made;
mod report;

pub use report::{FaceRecord, PhotoRecord, Report, Settings, Status};

use super::batches::{self, SearchObserver};
use super::RunConfig;
use crate::align::ffhq::{self, Quad};
use crate::align::paste::{self, Canvas, Placement};
use crate::align::{DetectConfig, Face, Mtcnn};
use crate::files::escaped;
use crate::imageio;
use crate::invalid;
use crate::model::Model;
use crate::pulse::search::SearchOutcome;
use crate::pulse::{SearchConfig, Start};
use enlarge::{Enlargement, Rows};
use made::Made;
use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::{Device, Tensor};

/// The enlargement factors `--upscale` takes: PULSE's downscaler works by powers of two, and
/// the guarantee is stated through it.
pub const UPSCALES: [i64; 3] = [2, 4, 8];

/// Everything `restore` needs besides the networks; filled from the command line.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub inputs: Vec<PathBuf>,
    pub out_dir: PathBuf,
    pub search: SearchConfig,
    /// `samples` is the number of restored versions of each photo (each face searched from
    /// another seed).
    pub run: RunConfig,
    /// The output is this many times the photo's size: 2, 4 or 8.
    pub upscale: i64,
    /// Only the face nearest the photo's centre.
    pub only_center_face: bool,
    /// At most this many faces per photo, the largest.
    pub max_faces: Option<usize>,
    pub detect: DetectConfig,
    /// Also write the plain enlargement and the restored photo side by side.
    pub compare: bool,
    pub report: Option<PathBuf>,
    /// `(I, N)`: only photos at sorted position p with p % N == I.
    pub shard: Option<super::shard::ShardInfo>,
    pub overwrite: bool,
}

/// What a run reports as it goes; the command line draws progress bars from it.
pub trait Observer: SearchObserver {
    /// `photos` to look at.
    fn started(&mut self, _photos: usize) {}
    /// Face detection in `photo` has done `done` of `total` parts (a large photo takes seconds).
    fn detecting(&mut self, _photo: &Path, _done: usize, _total: usize) {}
    /// Every photo has been read: `faces` searches to run (faces times samples).
    fn searching(&mut self, _faces: usize) {}
    /// One face search is done (converged or out of restarts).
    fn face_done(&mut self) {}
    /// A photo is done, whatever its status.
    fn finished(&mut self, _record: &PhotoRecord) {}
}

/// The files one photo gives.
#[derive(Debug, Clone)]
struct Outputs {
    /// `<stem>.png`, or `<stem>_<k>.png` per sample.
    photos: Vec<PathBuf>,
    /// `<stem>.compare.png` (`<stem>_<k>.compare.png`), with `compare`.
    compare: Vec<PathBuf>,
    /// `<stem>.faces/`.
    faces_dir: PathBuf,
}

impl Outputs {
    fn new(opts: &RestoreOptions, stem: &OsString) -> Self {
        let file = |sample: usize, suffix: &str| {
            let mut name = stem.clone();
            if opts.run.samples > 1 {
                name.push(format!("_{sample}"));
            }
            name.push(suffix);
            opts.out_dir.join(name)
        };
        let mut faces = stem.clone();
        faces.push(".faces");
        Self {
            photos: (0..opts.run.samples).map(|k| file(k, ".png")).collect(),
            compare: if opts.compare {
                (0..opts.run.samples).map(|k| file(k, ".compare.png")).collect()
            } else {
                vec![]
            },
            faces_dir: opts.out_dir.join(faces),
        }
    }

    fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.photos.iter().chain(&self.compare)
    }

    /// `<stem>.faces/face<k>_input.png`, the target PULSE matched.
    fn crop(&self, face: usize) -> PathBuf {
        self.faces_dir.join(format!("face{face}_input.png"))
    }

    /// `<stem>.faces/face<k>.png` (`face<k>_<j>.png` per sample) and its latent file.
    fn result(&self, face: usize, sample: usize, samples: usize) -> (PathBuf, PathBuf) {
        let base = if samples > 1 { format!("face{face}_{sample}") } else { format!("face{face}") };
        (
            self.faces_dir.join(format!("{base}.png")),
            self.faces_dir.join(format!("{base}.latent.safetensors")),
        )
    }
}

/// A face found, aligned, and waiting for its searches.
struct PendingFace {
    face: Face,
    quad: Quad,
    placement: Placement,
    target: Tensor,
    /// One finished search per sample.
    results: Vec<Option<Tensor>>,
}

/// A photo whose faces are being searched.
struct Pending {
    path: PathBuf,
    outputs: Outputs,
    /// What its outputs record of how they were made.
    made: Made,
    record: PhotoRecord,
    faces: Vec<PendingFace>,
    started: Instant,
}

/// One search to run: a sample of a face of a photo, with its best result over attempts.
struct Job {
    photo: usize,
    face: usize,
    sample: usize,
    attempt: usize,
    best: Option<(SearchOutcome, u64, usize)>,
    seconds: f64,
}

/// Restores every photo. Refused photos are reported and skipped; `stop` (Ctrl-C) ends the run
/// between steps, keeping every output already written and writing nothing partial. Errors of
/// type [`crate::Invalid`] mean the request itself cannot be carried out.
pub fn run(
    model: &mut Model,
    mtcnn: &Mtcnn,
    opts: &RestoreOptions,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> anyhow::Result<Report> {
    check_options(opts, model)?;
    if model.synthesis.precision() != opts.run.precision {
        model.synthesis.set_precision(opts.run.precision);
    }
    let mut files = collect_photos(opts)?;
    if files.is_empty() {
        invalid!(
            "nothing to do: no photo in {} (photos are {})",
            opts.inputs.iter().map(|p| escaped(p)).collect::<Vec<_>>().join(", "),
            imageio::INPUT_EXTENSIONS.join(", ")
        );
    }
    if let Some(shard) = &opts.shard {
        files = shard.shard().select(files);
    }
    crate::files::check_writable_dir(&opts.out_dir).map_err(|e| {
        crate::Invalid(format!(
            "{}: cannot write in the output folder: {e}",
            escaped(&opts.out_dir)
        ))
    })?;
    let protected: Vec<PathBuf> = files.iter().chain(&model.files).cloned().collect();
    let protected: Vec<&Path> = protected.iter().map(PathBuf::as_path).collect();
    if let Some(report) = &opts.report {
        crate::files::check_writable_dir(crate::files::parent_dir(report)).map_err(|e| {
            crate::Invalid(format!("{}: cannot write the report there: {e}", escaped(report)))
        })?;
        crate::files::check_no_clobber(&protected, &[report])?;
    }
    // The earlier report's entries, kept for the photos this run skips (README, resuming).
    let earlier = match &opts.report {
        Some(path) => report::read_earlier(path, &model.sha256)?,
        None => report::Earlier::new(),
    };
    // One lock per shard, as upsample and align take (docs/design.md, "Shards").
    let _lock =
        super::shard::lock_output_dir(&opts.out_dir, opts.shard.as_ref().map(|s| s.shard()))?;
    model.ensure_fit(&mut |_, _| {})?;
    let mut report = Report {
        kind: report::KIND,
        shard: opts.shard.clone(),
        assigned: files.clone(),
        settings: report::settings(opts, model.layout(), model.device),
        model: super::upsample::ModelInfo {
            dir: model.dir.clone(),
            sha256: model.sha256.clone(),
            resolution: model.layout().resolution,
        },
        photos: vec![],
        interrupted: false,
        earlier,
    };
    observer.started(files.len());
    let mut pending: Vec<Option<Pending>> = vec![];
    let mut queue = VecDeque::new();
    let mut stems = BTreeMap::new();
    for path in files {
        if stop.load(Ordering::SeqCst) {
            report.interrupted = true;
            break;
        }
        let started = Instant::now();
        let stem = path.file_stem().map(|s| s.to_os_string()).unwrap_or_else(|| "photo".into());
        let outputs = Outputs::new(opts, &stem);
        let clash = stems.insert(stem.clone(), path.clone()).map(|first| {
            anyhow::anyhow!(
                "{}: same file name as {} (outputs would collide); rename one",
                escaped(&path),
                escaped(&first)
            )
        });
        let clash = clash.or_else(|| overwrites_input(&path, &outputs, &protected, opts));
        if let Some(e) = clash {
            finish(&mut report, refusal(&path, e), observer, opts)?;
            continue;
        }
        let made = Made::new(opts, model, &path);
        if let Err(e) = check_existing(&path, &outputs, &made, opts) {
            finish(&mut report, refusal(&path, e), observer, opts)?;
            continue;
        }
        if !opts.overwrite && outputs.files().all(|p| p.is_file()) {
            observer.skipped(&path, &outputs.photos[0]);
            let mut record = PhotoRecord::new(&path, Status::Skipped);
            record.outputs = outputs.photos.clone();
            record.earlier = report::earlier_entry(&report.earlier, &path, &outputs.photos);
            finish(&mut report, record, observer, opts)?;
            continue;
        }
        match prepare(model, mtcnn, opts, &path, outputs, made, observer, stop) {
            Err(e) => finish(&mut report, refusal(&path, e), observer, opts)?,
            Ok(Prepared::Stopped) => {
                report.interrupted = true;
                break;
            }
            Ok(Prepared::Done(mut record)) => {
                record.seconds = started.elapsed().as_secs_f64();
                finish(&mut report, *record, observer, opts)?;
            }
            Ok(Prepared::Faces(mut p)) => {
                p.started = started;
                for face in 0..p.faces.len() {
                    for sample in 0..opts.run.samples {
                        let photo = pending.len();
                        queue.push_back(Job {
                            photo,
                            face,
                            sample,
                            attempt: 0,
                            best: None,
                            seconds: 0.0,
                        });
                    }
                }
                pending.push(Some(*p));
            }
        }
    }
    observer.searching(queue.len());
    if !report.interrupted {
        search_all(model, opts, &mut pending, queue, &mut report, observer, stop)?;
    }
    // Ctrl-C after the last search (while the last photo was pasted together, which is
    // finished and written) still ends the run as interrupted: exit 130, whatever converged.
    if stop.load(Ordering::SeqCst) {
        report.interrupted = true;
    }
    if let Some(path) = &opts.report {
        report.write(path)?;
    }
    Ok(report)
}

/// Records a finished photo, tells the observer, and rewrites the report.
fn finish(
    report: &mut Report,
    record: PhotoRecord,
    observer: &mut dyn Observer,
    opts: &RestoreOptions,
) -> anyhow::Result<()> {
    if let Some(e) = &record.error {
        if record.status == Status::Refused {
            observer.refused(&record.input, &anyhow::anyhow!("{e}"));
        }
    }
    observer.finished(&record);
    report.photos.push(record);
    if let Some(path) = &opts.report {
        report.write(path)?;
    }
    Ok(())
}

fn refusal(path: &Path, e: anyhow::Error) -> PhotoRecord {
    let mut r = PhotoRecord::new(path, Status::Refused);
    r.error = Some(format!("{e:#}"));
    r
}

/// The photos: files as given, folders' entries with an image extension, less the outputs of
/// an earlier restore into the output folder (`-o` naming the photos' own folder: its restored
/// photos and compare sheets carry [`made::KEY`] and are never photos to restore).
fn collect_photos(opts: &RestoreOptions) -> anyhow::Result<Vec<PathBuf>> {
    let files = super::collect_inputs(&opts.inputs)?;
    let in_output_dir = |p: &Path| {
        let dir = crate::files::parent_dir(p);
        crate::files::same_file(dir, &opts.out_dir)
    };
    Ok(files.into_iter().filter(|p| !(in_output_dir(p) && Made::read(p).is_some())).collect())
}

/// Without `--overwrite`, every existing output must have been made from this photo by this
/// model at this enlargement with these settings: anything else is refused, saying what.
fn check_existing(
    path: &Path,
    outputs: &Outputs,
    made: &Made,
    opts: &RestoreOptions,
) -> anyhow::Result<()> {
    if opts.overwrite {
        return Ok(());
    }
    for out in outputs.files().filter(|p| p.exists()) {
        made::check(path, out, made)?;
    }
    Ok(())
}

/// The refusal when an output of `path` would replace an input, the report or a model file.
fn overwrites_input(
    path: &Path,
    outputs: &Outputs,
    protected: &[&Path],
    opts: &RestoreOptions,
) -> Option<anyhow::Error> {
    let report = opts.report.as_deref();
    for out in outputs.files().map(PathBuf::as_path).chain([outputs.faces_dir.as_path()]) {
        if let Some(input) = protected.iter().find(|i| crate::files::same_file(i, out)) {
            return Some(anyhow::anyhow!(
                "{}: the output {} would overwrite the input {}; choose another output folder",
                escaped(path),
                escaped(out),
                escaped(input)
            ));
        }
        if report.is_some_and(|r| crate::files::same_file(r, out)) {
            return Some(anyhow::anyhow!(
                "{}: the output {} is the report file",
                escaped(path),
                escaped(out)
            ));
        }
    }
    None
}

enum Prepared {
    /// Nothing to search: the photo has no face (its enlargement is written).
    Done(Box<PhotoRecord>),
    Faces(Box<Pending>),
    /// Ctrl-C during detection: nothing of the photo was written.
    Stopped,
}

/// Reads a photo, finds and aligns its faces and writes their targets; a photo without a face
/// gets its plain enlargement at once. Errors are the photo's refusal. Detection checks `stop`
/// after each of its bands, as `align` does, so Ctrl-C ends even a large photo's at once.
// The photo, its outputs and what they record, the run's options, networks and Ctrl-C flag.
#[allow(clippy::too_many_arguments)]
fn prepare(
    model: &Model,
    mtcnn: &Mtcnn,
    opts: &RestoreOptions,
    path: &Path,
    outputs: Outputs,
    made: Made,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> anyhow::Result<Prepared> {
    let device = model.device;
    let photo = read_photo(path, opts.upscale)?.to_device(device);
    let (height, width) = (photo.size()[1], photo.size()[2]);
    // A smallest face the detector cannot search this photo for is refused, as align does.
    crate::align::check_min_face(height, width, &opts.detect)
        .map_err(|e| anyhow::anyhow!("{}: {e}", escaped(path)))?;
    let mut record = PhotoRecord::new(path, Status::Restored);
    record.width = Some(width);
    record.height = Some(height);
    let mut progress = |done, total| {
        observer.detecting(path, done, total);
        !stop.load(Ordering::SeqCst)
    };
    let Some(found) = crate::align::find_faces_with(mtcnn, &photo, &opts.detect, &mut progress)
    else {
        return Ok(Prepared::Stopped);
    };
    let faces = select_faces(found, opts, width, height);
    let resolution = model.layout().resolution;
    let mut pending = vec![];
    for face in faces {
        let Ok(quad) = ffhq::quad(&face.landmarks) else { continue };
        let placement = Placement::new(&quad, opts.upscale, width, height);
        if placement.is_empty() {
            continue;
        }
        let aligned = ffhq::align(&photo, &face.landmarks)?;
        let side = paste::input_side(quad.size, resolution);
        let target = crate::align::downscale(&aligned, side)?.to_device(Device::Cpu);
        pending.push(PendingFace {
            face,
            quad,
            placement,
            target,
            results: (0..opts.run.samples).map(|_| None).collect(),
        });
    }
    if pending.is_empty() {
        record.status = Status::NoFace;
        record.error = Some(format!("{}: no face found; wrote the enlarged photo", escaped(path)));
        let enlargement = Enlargement::new(&photo, opts.upscale)?;
        drop(photo);
        let plain = enlargement.plain_rows();
        for sample in 0..opts.run.samples {
            write_outputs(&plain, &plain, sample, &outputs, &made, &mut record)?;
        }
        return Ok(Prepared::Done(Box::new(record)));
    }
    std::fs::create_dir_all(&outputs.faces_dir).map_err(|e| {
        anyhow::anyhow!("{}: cannot create the folder: {e}", escaped(&outputs.faces_dir))
    })?;
    for (k, f) in pending.iter().enumerate() {
        imageio::write_png(&f.target, &outputs.crop(k))?;
    }
    Ok(Prepared::Faces(Box::new(Pending {
        path: path.to_path_buf(),
        outputs,
        made: Made { faces: pending.len(), ..made },
        record,
        faces: pending,
        started: Instant::now(),
    })))
}

/// Reads a photo and checks that it can be enlarged: at least 2 pixels a side (the downscaler's
/// smallest), and at most [`imageio::MAX_SIDE`] a side once enlarged.
fn read_photo(path: &Path, upscale: i64) -> anyhow::Result<Tensor> {
    let photo = imageio::read_rgb(path)?;
    let (h, w) = (photo.size()[1], photo.size()[2]);
    if h.min(w) < crate::pulse::downscale::MIN_SIDE {
        anyhow::bail!(
            "{}: {w}x{h} is too small to restore (at least {m}x{m})",
            escaped(path),
            m = crate::pulse::downscale::MIN_SIDE
        );
    }
    if h.max(w) * upscale > imageio::MAX_SIDE {
        anyhow::bail!(
            "{}: {w}x{h} enlarged {upscale}x would be {}x{}, over the {} px limit; use a smaller enlargement or a smaller photo",
            escaped(path),
            w * upscale,
            h * upscale,
            imageio::MAX_SIDE
        );
    }
    Ok(photo)
}

/// The faces to restore, largest first: the one nearest the centre only, or the largest few.
fn select_faces(mut faces: Vec<Face>, opts: &RestoreOptions, width: i64, height: i64) -> Vec<Face> {
    if opts.only_center_face && faces.len() > 1 {
        let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
        let distance = |f: &Face| {
            let (x, y) = ((f.bbox[0] + f.bbox[2]) / 2.0, (f.bbox[1] + f.bbox[3]) / 2.0);
            (x - cx).hypot(y - cy)
        };
        let nearest = (0..faces.len())
            .min_by(|&a, &b| distance(&faces[a]).total_cmp(&distance(&faces[b])))
            .expect("at least one face");
        faces = vec![faces[nearest]];
    }
    if let Some(n) = opts.max_faces {
        faces.truncate(n);
    }
    faces
}

/// Searches every queued face, batch by batch (faces whose targets have one side go together);
/// a face that did not converge goes back in the queue while it has restarts left; each photo
/// is assembled and written as soon as its last face is done.
fn search_all(
    model: &Model,
    opts: &RestoreOptions,
    pending: &mut [Option<Pending>],
    mut queue: VecDeque<Job>,
    report: &mut Report,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let device = model.device;
    let fit = model.fit.as_ref().expect("ensured by run").to_device(device);
    let side = |j: &Job, pending: &[Option<Pending>]| {
        pending[j.photo].as_ref().expect("queued photos are pending").faces[j.face].target.size()[2]
    };
    loop {
        let batch = batches::take_batch(&mut queue, opts.run.batch_size, |j| side(j, pending));
        if batch.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = batch
            .iter()
            .map(|j| {
                let p = pending[j.photo].as_ref().expect("pending");
                format!("{} face {}", escaped(&p.path), j.face)
            })
            .collect();
        observer.batch_started(&names, opts.search.total_steps());
        let seeds: Vec<u64> = batch.iter().map(|j| job_seed(j, opts, pending)).collect();
        let starts: Vec<Start> = seeds
            .iter()
            .map(|&s| Start::random(s, model.layout(), opts.search.tile_latent))
            .collect();
        let image = Tensor::stack(
            &batch
                .iter()
                .map(|j| {
                    pending[j.photo].as_ref().expect("pending").faces[j.face].target.shallow_clone()
                })
                .collect::<Vec<_>>(),
            0,
        )
        .to_device(device);
        let target = crate::pulse::LossTarget { image, weight: None };
        let searched =
            batches::search_batch(model, &fit, &opts.search, &target, &starts, stop, observer)?;
        let Some((outcomes, share)) = searched else {
            report.interrupted = true;
            return Ok(());
        };
        for ((mut job, outcome), seed) in batch.into_iter().zip(outcomes).zip(seeds) {
            job.seconds += share;
            let loss = &opts.search.loss;
            if job.best.as_ref().is_none_or(|(old, ..)| batches::beats(&outcome, old, loss)) {
                job.best = Some((outcome, seed, job.attempt));
            }
            let converged = job.best.as_ref().is_some_and(|b| b.0.converged);
            if !converged && job.attempt < opts.run.restarts {
                job.attempt += 1;
                queue.push_back(job);
                continue;
            }
            observer.face_done();
            let photo = job.photo;
            let done = {
                let p = pending[photo].as_mut().expect("pending");
                face_finished(model, opts, p, job)?;
                p.faces.iter().all(|f| f.results.iter().all(Option::is_some))
            };
            if done {
                let p = pending[photo].take().expect("pending");
                let record = assemble(opts, p)?;
                finish(report, record, observer, opts)?;
            }
        }
    }
}

/// The seed of a job's current attempt: from the run's seed, the photo's file name, the face
/// and the sample, so a face's result does not depend on the batch or the order of the photos.
fn job_seed(job: &Job, opts: &RestoreOptions, pending: &[Option<Pending>]) -> u64 {
    let p = pending[job.photo].as_ref().expect("pending");
    let name = p.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    super::item_seed(opts.run.seed, &format!("{name}#face{}", job.face), job.sample, job.attempt)
}

/// Writes a face's result and latent file and records it.
fn face_finished(
    model: &Model,
    opts: &RestoreOptions,
    p: &mut Pending,
    job: Job,
) -> anyhow::Result<()> {
    let (outcome, seed, attempt) = job.best.expect("a finished job has a result");
    let (png, latent_path) = p.outputs.result(job.face, job.sample, opts.run.samples);
    imageio::write_png(&outcome.image, &png)?;
    let mut latent = outcome.latent_file(&model.sha256, model.architecture(), seed);
    latent.metadata.insert("source".into(), escaped(&p.path));
    latent.metadata.insert("face".into(), job.face.to_string());
    latent.write(&latent_path)?;
    let names: Vec<&str> = opts.search.loss.terms.iter().map(|(_, t)| t.name()).collect();
    let mut loss: BTreeMap<String, serde_json::Value> = names
        .iter()
        .map(|n| n.to_string())
        .zip(outcome.best.terms.iter().map(|&x| x.into()))
        .collect();
    loss.insert("total".into(), outcome.best.total.into());
    let f = &mut p.faces[job.face];
    p.record.faces.push(FaceRecord {
        face: job.face,
        sample: job.sample,
        detection: f.face,
        quad_size: f.quad.size,
        input_size: f.target.size()[2],
        crop: p.outputs.crop(job.face),
        result: png,
        latent: latent_path,
        seed,
        attempt,
        converged: outcome.converged,
        best_step: outcome.best_step,
        loss,
        seconds: job.seconds,
    });
    f.results[job.sample] = Some(outcome.image);
    Ok(())
}

/// Pastes a photo's restored faces into its enlargement and writes the outputs, one sample at
/// a time (an 8192-pixel photo's samples are never in memory together).
fn assemble(opts: &RestoreOptions, mut p: Pending) -> anyhow::Result<PhotoRecord> {
    // What the searches freed goes back first: the enlargement needs large blocks.
    crate::system::release_free_memory();
    // Read again rather than kept: a large folder's photos never sit in memory together.
    let photo = read_photo(&p.path, opts.upscale)?;
    let enlargement = Enlargement::new(&photo, opts.upscale)?;
    drop(photo);
    p.record.faces.sort_by_key(|f| (f.face, f.sample));
    let plain = enlargement.plain_rows();
    for sample in 0..opts.run.samples {
        let restored = compose(&enlargement, &p.faces, sample)?;
        write_outputs(&restored, &plain, sample, &p.outputs, &p.made, &mut p.record)?;
    }
    p.record.faces_dir = Some(p.outputs.faces_dir.clone());
    p.record.seconds = p.started.elapsed().as_secs_f64();
    Ok(p.record)
}

/// Writes one sample's restored photo and, where asked, its compare sheet (the plain
/// enlargement beside it), row by row, each recording how it was made ([`made::KEY`]).
fn write_outputs(
    image: &Rows,
    plain: &Rows,
    sample: usize,
    outputs: &Outputs,
    made: &Made,
    record: &mut PhotoRecord,
) -> anyhow::Result<()> {
    let text = made.text();
    let tag = [(made::KEY, text.as_str())];
    let path = &outputs.photos[sample];
    let (w, h) = (image.width(), image.height());
    imageio::write_png_rows(path, w, h, &tag, |y, row| image.rgb8(y, row))?;
    record.outputs.push(path.clone());
    if let Some(cmp) = outputs.compare.get(sample) {
        imageio::write_png_rows(cmp, 2 * w, h, &tag, |y, row| {
            let (left, right) = row.split_at_mut(3 * w);
            plain.rgb8(y, left);
            image.rgb8(y, right);
        })?;
        record.compare.push(cmp.clone());
    }
    Ok(())
}

/// One sample's restored photo: its faces pasted over the photo's plain enlargement, then
/// projected so that their downscale is the photo (docs/design.md, *Restoring photos*). The
/// paste-back runs on the CPU, whatever device searched.
fn compose<'a>(
    enlargement: &'a Enlargement,
    faces: &[PendingFace],
    sample: usize,
) -> anyhow::Result<Rows<'a>> {
    let placements: Vec<Placement> = faces.iter().map(|f| f.placement).collect();
    let groups = paste::overlap_groups(&placements);
    // Each face shrunk once, then drawn band by band over its group's bounds.
    let shrunk: Vec<Tensor> = faces
        .iter()
        .map(|f| {
            let image = f.results[sample].as_ref().expect("every face is done");
            paste::shrink_to_footprint(&image.to_device(Device::Cpu), f.placement.side)
        })
        .collect();
    let bounds: Vec<[i64; 4]> = groups.iter().map(|(_, b)| *b).collect();
    enlargement.with_patches_by(&bounds, |k, band| {
        let mut canvas = Canvas::new(band);
        for &i in &groups[k].0 {
            canvas.add(&shrunk[i], &faces[i].placement)?;
        }
        canvas.composite(&enlargement.background(band)?)
    })
}

/// Pastes restored faces (`[3,R,R]` each, with the landmarks they were aligned from) into
/// `photo` enlarged `upscale` times: the whole of `restore`'s work after the search, for
/// callers that have their own faces (and for the benchmark).
pub fn paste_faces(
    photo: &Tensor,
    upscale: i64,
    faces: &[(crate::align::Landmarks, Tensor)],
) -> anyhow::Result<Tensor> {
    let enlargement = Enlargement::new(photo, upscale)?;
    Ok(paste_into(&enlargement, faces)?.to_tensor())
}

/// [`paste_faces`] into an enlargement made already, row by row (what restore writes).
pub fn paste_into<'a>(
    enlargement: &'a Enlargement,
    faces: &[(crate::align::Landmarks, Tensor)],
) -> anyhow::Result<Rows<'a>> {
    let upscale = enlargement.factor();
    let rows = enlargement.plain_rows();
    let (h, w) = (rows.height() as i64 / upscale, rows.width() as i64 / upscale);
    let pending = faces
        .iter()
        .map(|(landmarks, image)| {
            let quad = ffhq::quad(landmarks)?;
            Ok(PendingFace {
                face: Face { bbox: [0.0; 4], score: 1.0, landmarks: *landmarks },
                quad,
                placement: Placement::new(&quad, upscale, w, h),
                target: Tensor::new(),
                results: vec![Some(image.shallow_clone())],
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    compose(enlargement, &pending, 0)
}

/// Writes `image` as an 8-bit PNG row by row (restore's way of writing its largest outputs).
pub fn write_rows(image: &Rows, path: &Path) -> anyhow::Result<()> {
    let (w, h) = (image.width(), image.height());
    Ok(imageio::write_png_rows(path, w, h, &[], |y, row| image.rgb8(y, row))?)
}

/// Refuses settings that cannot run, before anything is read.
fn check_options(opts: &RestoreOptions, model: &Model) -> anyhow::Result<()> {
    if !UPSCALES.contains(&opts.upscale) {
        invalid!("the enlargement must be 2, 4 or 8 (a power of two), got {}", opts.upscale);
    }
    if opts.max_faces == Some(0) {
        invalid!("the number of faces per photo must be at least 1");
    }
    if opts.detect.min_face.is_nan() || opts.detect.min_face < 1.0 {
        invalid!("the smallest face size must be at least 1 pixel");
    }
    opts.run.check(model.device)?;
    if let Some(shard) = &opts.shard {
        super::shard::Shard::new(shard.index, shard.count)?;
    }
    opts.search.check(model.layout())?;
    Ok(())
}
