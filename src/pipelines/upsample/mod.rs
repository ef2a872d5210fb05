//! `pulse upsample`: PULSE on every input image (and several samples each), batched, resumable,
//! one bad file never stopping the rest (docs/design.md, "Data flow").
//!
//! A run goes: collect the inputs ([`inputs`]), read and check each, name every output and refuse
//! clashes ([`plan`]), lock the output folder, then search batch by batch ([`batch`]) and write
//! each finished image's outputs ([`outputs`]) and the report ([`report`]) as it goes.
mod batch;
mod inputs;
mod outputs;
mod plan;
mod report;

pub use report::{ImageRecord, ModelInfo, RefusedInput, UpsampleReport, UpsampleSettings};

use super::batches::{self, SearchObserver};
use super::shard::ShardInfo;
use super::RunConfig;
use crate::files::escaped;
use crate::invalid;
use crate::model::Model;
use crate::pulse::SearchConfig;
use crate::stylegan::Layout;
use batch::Job;
use plan::Decision;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use tch::Device;

/// Everything `upsample` needs besides the model; filled from the command line.
#[derive(Debug, Clone)]
pub struct UpsampleOptions {
    pub inputs: Vec<PathBuf>,
    pub out_dir: PathBuf,
    pub search: SearchConfig,
    pub run: RunConfig,
    pub init: Option<PathBuf>,
    pub save_intermediate: bool,
    pub compare: bool,
    /// The report file (for a shard, already named after it: [`super::shard::report_path`]).
    pub report: Option<PathBuf>,
    /// Only the inputs at sorted position p with p % N == I; also names the output folder's lock.
    pub shard: Option<ShardInfo>,
    /// Set by `upsample --align`: the inputs are faces aligned from these photos.
    pub aligned: Option<AlignedPhotos>,
    pub overwrite: bool,
    /// Greyscale weights for RGB targets (same side as the targets).
    pub mask: Option<PathBuf>,
    /// Treat RGBA targets as RGB (no alpha weighting).
    pub ignore_alpha: bool,
}

/// `upsample --align`: the inputs are this shard's faces aligned from photos (already one
/// shard's: they are not split again), whose names were planned with every photo of the job.
#[derive(Debug, Clone, Default)]
pub struct AlignedPhotos {
    /// Every photo of the job: no output may overwrite one.
    pub photos: Vec<PathBuf>,
    /// Photos of this shard refused before or while aligning (an output clash, unreadable, no
    /// face), with the reason: listed under `refused` in the report.
    pub refused: Vec<(PathBuf, String)>,
}

/// What a run reports as it goes; the command line draws progress bars from it.
pub trait UpsampleObserver: SearchObserver {
    /// `images` inputs accepted, `jobs` searches to run (after skipping finished ones).
    fn started(&mut self, _images: usize, _jobs: usize) {}
    fn finished(&mut self, _record: &ImageRecord) {}
}

/// Runs PULSE on every input. Refused inputs are reported and skipped; `stop` (Ctrl-C) ends
/// the run between steps, keeping every output already written and writing nothing partial.
/// Errors of type [`crate::Invalid`] mean the request itself cannot be carried out (settings out
/// of range, no input, an output that would overwrite an input, the folder locked by another run).
pub fn run(
    model: &mut Model,
    opts: &UpsampleOptions,
    observer: &mut dyn UpsampleObserver,
    stop: &AtomicBool,
) -> anyhow::Result<UpsampleReport> {
    check_options(opts, model.device, model.layout())?;
    if model.synthesis.precision() != opts.run.precision {
        model.synthesis.set_precision(opts.run.precision);
    }
    let (all, files) = list_inputs(opts)?;
    let protected = check_output_places(model, opts, &all)?;
    // Names are planned over every input of the job (all shards), so that no two shards write
    // the same file and a clash is refused the same way whatever the split.
    let clashes = plan::check_names(&all, opts, &protected, &|_| vec![])?;
    let _lock =
        super::shard::lock_output_dir(&opts.out_dir, opts.shard.as_ref().map(|s| s.shard()))?;
    model.ensure_fit(&mut |_, _| {})?;
    let mut report = UpsampleReport {
        kind: report::KIND,
        shard: opts.shard.clone(),
        assigned: files.clone(),
        settings: UpsampleSettings::new(&opts.search, model.layout(), &opts.run, model.device),
        model: ModelInfo {
            dir: model.dir.clone(),
            sha256: model.sha256.clone(),
            resolution: model.layout().resolution,
        },
        images: vec![],
        refused: vec![],
        skipped: vec![],
        skipped_inputs: vec![],
        interrupted: false,
        earlier: match &opts.report {
            Some(path) => report::read_earlier(path, &model.sha256)?,
            None => vec![],
        },
    };
    if let Some(aligned) = &opts.aligned {
        report.assigned.extend(aligned.refused.iter().map(|(p, _)| p.clone()));
        report.assigned.sort();
    }
    let (inputs, queue) = plan_jobs(model, opts, files, clashes, &mut report, observer)?;
    observer.started(inputs.len(), queue.len());
    if let Some(path) = &opts.report {
        report.write(path)?;
    }
    search_all(model, opts, &inputs, queue, &mut report, observer, stop)?;
    if let Some(path) = &opts.report {
        report.write(path)?;
    }
    Ok(report)
}

/// `upsample --align`, before any work: plans the names of every photo of the job (`photos`,
/// sorted, all shards): its aligned face `<aligned_dir>/<stem>.png` and its results in the output
/// folder, against the photos, `--mask`, `--init`, the report and each other, exactly as a run
/// plans its inputs. Returns the photos refused, with the reason.
pub fn plan_photos(
    opts: &UpsampleOptions,
    photos: &[PathBuf],
    aligned_dir: &Path,
) -> anyhow::Result<std::collections::HashMap<PathBuf, anyhow::Error>> {
    let mut protected: Vec<&Path> = photos.iter().map(PathBuf::as_path).collect();
    protected.extend(opts.mask.as_deref());
    protected.extend(opts.init.as_deref().filter(|p| p.is_file()));
    let protected = plan::Protected::new(protected);
    if let Some(report) = &opts.report {
        crate::files::check_no_clobber(
            &photos.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
            &[report],
        )?;
    }
    let aligned = |stem: &std::ffi::OsStr| {
        let mut name = stem.to_os_string();
        name.push(".png");
        vec![aligned_dir.join(name)]
    };
    plan::check_names(photos, opts, &protected, &aligned)
}

/// Every input file of the job, and this run's (its shard's), or why there are none to work on.
fn list_inputs(opts: &UpsampleOptions) -> anyhow::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let all = super::collect_inputs(&opts.inputs)?;
    if all.is_empty() && opts.aligned.is_none() {
        invalid!(
            "nothing to do: no image in {} (images are {})",
            opts.inputs.iter().map(|p| escaped(p)).collect::<Vec<_>>().join(", "),
            crate::imageio::INPUT_EXTENSIONS.join(", ")
        );
    }
    let files = match (&opts.shard, &opts.aligned) {
        (Some(shard), None) => shard.shard().select(all.clone()),
        _ => all.clone(),
    };
    if opts.init.as_ref().is_some_and(|p| !p.is_dir()) && all.len() > 1 {
        invalid!("a single init latent file starts one input; give a folder of <stem>.latent.safetensors for several");
    }
    Ok((all, files))
}

/// Checks, before any work, that the output folder and the report can be written and that the
/// report is not an input; returns every file no output may overwrite (the inputs of every
/// shard, and with `--align` the photos).
fn check_output_places(
    model: &Model,
    opts: &UpsampleOptions,
    files: &[PathBuf],
) -> anyhow::Result<plan::Protected> {
    crate::files::check_writable_dir(&opts.out_dir).map_err(|e| {
        crate::Invalid(format!(
            "{}: cannot write in the output folder: {e}",
            escaped(&opts.out_dir)
        ))
    })?;
    let mut protected: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    protected.extend(opts.mask.as_deref());
    protected.extend(opts.init.as_deref().filter(|p| p.is_file()));
    protected.extend(model.files.iter().map(PathBuf::as_path));
    if let Some(aligned) = &opts.aligned {
        protected.extend(aligned.photos.iter().map(PathBuf::as_path));
    }
    if let Some(report) = &opts.report {
        crate::files::check_writable_dir(crate::files::parent_dir(report)).map_err(|e| {
            crate::Invalid(format!("{}: cannot write the report there: {e}", escaped(report)))
        })?;
        crate::files::check_no_clobber(&protected, &[report])?;
    }
    Ok(plan::Protected::new(protected))
}

/// Reads every input, and queues the samples still to do. An input whose outputs clash
/// (`clashes`), a bad input, or one whose old outputs are not its own, is refused (reported, and
/// the rest go on); finished samples are skipped. Removes the temporary files an interrupted run
/// left for the planned outputs.
fn plan_jobs(
    model: &Model,
    opts: &UpsampleOptions,
    files: Vec<PathBuf>,
    mut clashes: std::collections::HashMap<PathBuf, anyhow::Error>,
    report: &mut UpsampleReport,
    observer: &mut dyn UpsampleObserver,
) -> anyhow::Result<(Vec<inputs::Input>, VecDeque<Job>)> {
    let init_dir = opts.init.as_deref().filter(|p| p.is_dir());
    let mut refused: Vec<(PathBuf, anyhow::Error)> = vec![];
    let mut accepted = vec![];
    for path in files {
        if let Some(e) = clashes.remove(&path) {
            refused.push((path, e));
            continue;
        }
        match inputs::read(model, opts, &path, init_dir) {
            Ok(input) => accepted.push(input),
            Err(e) => refused.push((path, e)),
        }
    }
    let mut inputs = vec![];
    let mut queue = VecDeque::new();
    let plans = plan::plan(&accepted, opts, &model.sha256);
    for (input, decisions) in accepted.into_iter().zip(plans) {
        let decisions = match decisions {
            Ok(d) => d,
            Err(e) => {
                refused.push((input.path, e));
                continue;
            }
        };
        if decisions.iter().all(|d| matches!(d, Decision::Done(_))) {
            report.skipped_inputs.push(input.path.clone());
        }
        for (sample, decision) in decisions.into_iter().enumerate() {
            match decision {
                Decision::Done(o) => {
                    observer.skipped(&input.path, &o.png);
                    report.skipped.push(o.png);
                }
                Decision::Run(o) => queue.push_back(Job::new(inputs.len(), sample, o)),
            }
        }
        inputs.push(input);
    }
    refused.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, e) in refused {
        observer.refused(&path, &e);
        report.refused.push(RefusedInput { error: format!("{e:#}"), input: path });
    }
    // With --align, the photos refused before the search (already named on stderr).
    if let Some(aligned) = &opts.aligned {
        let photos = aligned
            .refused
            .iter()
            .map(|(p, e)| RefusedInput { input: p.clone(), error: e.clone() });
        report.refused.splice(0..0, photos);
        report.refused.sort_by(|a, b| a.input.cmp(&b.input));
    }
    let names = plan::output_names(queue.iter().map(|j| &j.outputs), opts.report.as_deref());
    crate::files::remove_stale_temporaries(&opts.out_dir, &names)?;
    if let Some(path) = &opts.report {
        crate::files::remove_stale_temporaries(crate::files::parent_dir(path), &names)?;
    }
    Ok((inputs, queue))
}

/// Searches the queued jobs batch by batch; a job that did not converge goes back in the queue
/// for another attempt while it has restarts left; each finished job's outputs and report entry
/// are written as soon as it is done. Ctrl-C marks the report interrupted and returns.
fn search_all(
    model: &Model,
    opts: &UpsampleOptions,
    inputs: &[inputs::Input],
    mut queue: VecDeque<Job>,
    report: &mut UpsampleReport,
    observer: &mut dyn UpsampleObserver,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let device = model.device;
    let fit = model.fit.as_ref().expect("ensured by run").to_device(device);
    loop {
        let batch = batch::next_batch(&mut queue, inputs, opts.run.batch_size);
        if batch.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = batch.iter().map(|j| j.outputs.name()).collect();
        observer.batch_started(&names, opts.search.total_steps());
        let seeds: Vec<u64> = batch.iter().map(|j| j.seed(opts, inputs)).collect();
        let starts = batch
            .iter()
            .zip(&seeds)
            .map(|(j, &seed)| {
                let tile = opts.search.tile_latent;
                batch::start(&inputs[j.input], j.attempt, seed, model.layout(), tile, &fit)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let target = batch::target(&batch, inputs, device);
        let searched =
            batches::search_batch(model, &fit, &opts.search, &target, &starts, stop, observer)?;
        let Some((outcomes, share)) = searched else {
            report.interrupted = true;
            return Ok(());
        };
        for ((mut job, outcome), seed) in batch.into_iter().zip(outcomes).zip(seeds) {
            job.seconds += share;
            job.offer(outcome, seed, opts);
            if !job.converged() && job.attempt < opts.run.restarts {
                job.attempt += 1;
                queue.push_back(job);
                continue;
            }
            let record = outputs::write(model, opts, &inputs[job.input], job)?;
            observer.finished(&record);
            report.images.push(record);
            if let Some(path) = &opts.report {
                report.write(path)?;
            }
        }
    }
}

/// Refuses settings that cannot run on this model and device, before anything is read.
fn check_options(opts: &UpsampleOptions, device: Device, layout: &Layout) -> anyhow::Result<()> {
    opts.run.check(device)?;
    if let Some(s) = &opts.shard {
        super::shard::Shard::new(s.index, s.count)?;
    }
    opts.search.check(layout)?;
    Ok(())
}
