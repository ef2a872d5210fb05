//! `pulse upsample`: PULSE on every input image (and several samples each), batched, resumable,
//! one bad file never stopping the rest (docs/design.md, "Data flow").
//!
//! A run goes: the search engine's preamble ([`super::engine`]: settings, inputs, output checks,
//! lock, fit); read and check each input ([`inputs`]), name every output and refuse clashes
//! ([`plan`]); then the engine searches batch by batch what the jobs contribute ([`batch`]),
//! and each finished image's outputs ([`outputs`]) and the report ([`report`]) are written as
//! it goes.
mod batch;
mod inputs;
mod outputs;
mod plan;
mod report;

pub use report::{ImageRecord, ModelInfo, RefusedInput, UpsampleReport, UpsampleSettings, KIND};

use super::engine::{self, SearchObserver, Searched};
use super::shard::ShardInfo;
use super::RunConfig;
use crate::invalid;
use crate::model::Model;
use crate::pulse::SearchConfig;
use batch::{Job, Searches};
use plan::Decision;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

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
    engine::prepare_model(model, &opts.run, &opts.search, opts.shard.as_ref())?;
    let (all, files) = list_inputs(opts)?;
    let protected = check_output_places(model, opts, &all)?;
    // Names are planned over every input of the job (all shards), so that no two shards write
    // the same file and a clash is refused the same way whatever the split.
    let clashes = plan::check_names(&all, opts, &protected, &|_| vec![])?;
    let _lock = engine::lock_and_fit(model, &opts.out_dir, opts.shard.as_ref())?;
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
    let mut searches = Searches { model, opts, inputs: &inputs, report: &mut report };
    let searched =
        engine::search_all(model, &opts.search, &opts.run, &mut searches, queue, observer, stop)?;
    report.interrupted = searched == Searched::Interrupted;
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
        return Err(engine::nothing_to_do(&opts.inputs, "image"));
    }
    // With --align the inputs are this shard's faces already.
    let shard = opts.shard.as_ref().filter(|_| opts.aligned.is_none());
    let files = engine::shard_inputs(&all, shard);
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
    let mut protected: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    protected.extend(opts.mask.as_deref());
    protected.extend(opts.init.as_deref().filter(|p| p.is_file()));
    protected.extend(model.files.iter().map(PathBuf::as_path));
    if let Some(aligned) = &opts.aligned {
        protected.extend(aligned.photos.iter().map(PathBuf::as_path));
    }
    engine::check_output_places(&opts.out_dir, opts.report.as_deref(), &protected)?;
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
) -> anyhow::Result<(Vec<inputs::Input>, Vec<Job>)> {
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
    let mut queue = vec![];
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
                Decision::Run(o) => queue.push(Job { input: inputs.len(), sample, outputs: o }),
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
