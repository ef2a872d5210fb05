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

use crate::files::{escaped, DirLock};
use crate::invalid;
use crate::model::Model;
use crate::precision::Precision;
use crate::pulse::search::{self, Progress};
use crate::pulse::{Outcome, SearchConfig};
use batch::Job;
use plan::Decision;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::Device;

/// Everything `upsample` needs besides the model; filled from the command line.
#[derive(Debug, Clone)]
pub struct UpsampleOptions {
    pub inputs: Vec<PathBuf>,
    pub out_dir: PathBuf,
    pub search: SearchConfig,
    pub seed: u64,
    pub samples: usize,
    pub batch_size: usize,
    pub restarts: usize,
    pub init: Option<PathBuf>,
    pub save_intermediate: bool,
    pub compare: bool,
    pub report: Option<PathBuf>,
    /// `(I, N)`: only inputs at sorted position p with p % N == I.
    pub shard: Option<(usize, usize)>,
    pub overwrite: bool,
    /// Greyscale weights for RGB targets (same side as the targets).
    pub mask: Option<PathBuf>,
    /// Treat RGBA targets as RGB (no alpha weighting).
    pub ignore_alpha: bool,
    /// Arithmetic of the synthesis forward pass (the loss and the optimizer stay float32).
    pub precision: Precision,
    /// Whether the device was set up to repeat results exactly (`crate::device::configure`);
    /// recorded in the report. Always true on the CPU.
    pub deterministic: bool,
}

/// What a run reports as it goes; the command line draws progress bars from it.
pub trait UpsampleObserver {
    /// `images` inputs accepted, `jobs` searches to run (after skipping finished ones).
    fn started(&mut self, _images: usize, _jobs: usize) {}
    fn refused(&mut self, _input: &Path, _error: &anyhow::Error) {}
    fn skipped(&mut self, _input: &Path, _output: &Path) {}
    fn batch_started(&mut self, _names: &[String], _steps: usize) {}
    /// Called after each step; `l2()` reads each item's L2 back from the device (a sync, so
    /// call it only when it is shown).
    fn step(&mut self, _step: usize, _steps: usize, _l2: &dyn Fn() -> Vec<f64>) {}
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
    check_options(opts, model.device, model.config().num_layers())?;
    if model.synthesis.precision() != opts.precision {
        model.synthesis.set_precision(opts.precision);
    }
    let files = list_inputs(opts)?;
    let protected = check_output_places(model, opts, &files)?;
    let _lock = DirLock::try_acquire(&opts.out_dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot lock the output folder: {e}", escaped(&opts.out_dir)))?
        .ok_or_else(|| {
            crate::Invalid(format!(
                "{}: another pulse run is writing to this folder (it holds {}); wait for it to finish or write to another folder",
                escaped(&opts.out_dir),
                crate::files::LOCK_FILE
            ))
        })?;
    model.ensure_fit(&mut |_, _| {})?;
    let mut report = UpsampleReport {
        settings: settings(opts, model.device),
        model: ModelInfo {
            dir: model.dir.clone(),
            sha256: model.sha256.clone(),
            resolution: model.config().resolution,
        },
        images: vec![],
        refused: vec![],
        skipped: vec![],
        interrupted: false,
        earlier: match &opts.report {
            Some(path) => report::read_earlier(path, &model.sha256)?,
            None => vec![],
        },
    };
    let (inputs, queue) = plan_jobs(model, opts, files, &protected, &mut report, observer)?;
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

/// The input files of this run (this shard's), or why there are none to work on.
fn list_inputs(opts: &UpsampleOptions) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = super::collect_inputs(&opts.inputs)?;
    if files.is_empty() {
        invalid!(
            "nothing to do: no image in {} (images are {})",
            opts.inputs.iter().map(|p| escaped(p)).collect::<Vec<_>>().join(", "),
            crate::imageio::INPUT_EXTENSIONS.join(", ")
        );
    }
    if let Some((i, n)) = opts.shard {
        files = files.into_iter().enumerate().filter(|(p, _)| p % n == i).map(|(_, f)| f).collect();
    }
    if opts.init.as_ref().is_some_and(|p| !p.is_dir()) && files.len() > 1 {
        invalid!("a single init latent file starts one input; give a folder of <stem>.latent.safetensors for several");
    }
    Ok(files)
}

/// Checks, before any work, that the output folder and the report can be written and that the
/// report is not an input; returns every file no output may overwrite.
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
    if let Some(report) = &opts.report {
        crate::files::check_writable_dir(crate::files::parent_dir(report)).map_err(|e| {
            crate::Invalid(format!("{}: cannot write the report there: {e}", escaped(report)))
        })?;
        crate::files::check_no_clobber(&protected, &[report])?;
    }
    Ok(plan::Protected::new(protected))
}

/// Reads every input, names every output, and queues the samples still to do. A bad input, or
/// one whose outputs clash or whose old outputs are not its own, is refused (reported, and the
/// rest go on); finished samples are skipped; the report colliding with an output stops the run.
/// Removes the temporary files an interrupted run left for the planned outputs.
fn plan_jobs(
    model: &Model,
    opts: &UpsampleOptions,
    files: Vec<PathBuf>,
    protected: &plan::Protected,
    report: &mut UpsampleReport,
    observer: &mut dyn UpsampleObserver,
) -> anyhow::Result<(Vec<inputs::Input>, VecDeque<Job>)> {
    let init_dir = opts.init.as_deref().filter(|p| p.is_dir());
    let mut refused: Vec<(PathBuf, anyhow::Error)> = vec![];
    let mut accepted = vec![];
    for path in files {
        match inputs::read(model, opts, &path, init_dir) {
            Ok(input) => accepted.push(input),
            Err(e) => refused.push((path, e)),
        }
    }
    let mut inputs = vec![];
    let mut queue = VecDeque::new();
    let plans = plan::plan(&accepted, opts, protected, &model.sha256);
    for (input, decisions) in accepted.into_iter().zip(plans) {
        let decisions = match decisions {
            Ok(d) => d,
            Err(e) => {
                refused.push((input.path, e));
                continue;
            }
        };
        if let Some(path) = &opts.report {
            let outputs = decisions.iter().flat_map(|d| {
                let (Decision::Run(o) | Decision::Done(o)) = d;
                o.all()
            });
            if let Some(out) = outputs.into_iter().find(|p| crate::files::same_file(p, path)) {
                invalid!("{}: the report file is also the output {}", escaped(path), escaped(out));
            }
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
        let batch = batch::next_batch(&mut queue, inputs, opts.batch_size);
        if batch.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = batch.iter().map(|j| j.outputs.name()).collect();
        observer.batch_started(&names, opts.search.steps);
        let seeds: Vec<u64> = batch.iter().map(|j| j.seed(opts, inputs)).collect();
        let starts = batch
            .iter()
            .zip(&seeds)
            .map(|(j, &seed)| {
                let tile = opts.search.tile_latent;
                batch::start(&inputs[j.input], j.attempt, seed, model.config(), tile, &fit)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let target = batch::target(&batch, inputs, device);
        let started = Instant::now();
        let outcome = search::search(
            &model.synthesis,
            &fit,
            &opts.search,
            &target,
            crate::pulse::Start::batch(&starts),
            device,
            &mut |p: Progress| {
                observer.step(p.step, p.steps, &|| {
                    Vec::try_from(p.values.to_device(Device::Cpu).to_kind(tch::Kind::Double))
                        .unwrap_or_default()
                });
                !stop.load(Ordering::SeqCst)
            },
        )?;
        let Outcome::Completed(outcomes) = outcome else {
            report.interrupted = true;
            return Ok(());
        };
        let share = started.elapsed().as_secs_f64() / batch.len() as f64;
        for ((mut job, outcome), seed) in batch.into_iter().zip(outcomes).zip(seeds) {
            job.seconds += share;
            job.offer(outcome, seed, opts);
            if !job.converged() && job.attempt < opts.restarts {
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
fn check_options(opts: &UpsampleOptions, device: Device, layers: usize) -> anyhow::Result<()> {
    if opts.samples == 0 || opts.batch_size == 0 {
        invalid!("the number of samples and the batch size must be at least 1");
    }
    if opts.precision == Precision::Fp16 && device == Device::Cpu {
        invalid!("fp16 needs CUDA (float16 autocast on the CPU is partial); use fp32 or bf16");
    }
    if let Some((i, n)) = opts.shard {
        if n == 0 || i >= n {
            invalid!("shard {i}/{n}: expected I/N with 0 <= I < N");
        }
    }
    opts.search.check(layers)?;
    Ok(())
}

fn settings(opts: &UpsampleOptions, device: Device) -> UpsampleSettings {
    let s = &opts.search;
    UpsampleSettings {
        steps: s.steps,
        lr: s.lr,
        optimizer: s.optimizer.name(),
        schedule: s.schedule.name(),
        loss: s.loss.to_string(),
        eps: s.eps,
        noise: s.noise.name(),
        trainable_noise: s.trainable_noise,
        bad_noise_layers: s.bad_noise_layers.clone(),
        tile_latent: s.tile_latent,
        seed: opts.seed,
        samples: opts.samples,
        batch_size: opts.batch_size,
        restarts: opts.restarts,
        device: crate::device::device_name(device),
        precision: opts.precision.name(),
        deterministic: opts.deterministic,
        cuda_graph: s.cuda_graph && device.is_cuda(),
    }
}
