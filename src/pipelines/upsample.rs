//! `pulse upsample`: PULSE on every input image (and several samples each), batched, resumable,
//! one bad file never stopping the rest (docs/pulse-spec.md section 4).
use crate::device::Precision;
use crate::imageio;
use crate::latent::LatentFile;
use crate::model::Model;
use crate::pulse::search::{self, from_w_plus, Progress, SearchOutcome, StepValues};
use crate::pulse::{LossTarget, SearchConfig, Start};
use crate::stylegan::SynthesisConfig;
use anyhow::{bail, Context};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::{Device, Tensor};

/// File extensions picked up when a folder is given (files named explicitly are always tried).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "webp", "bmp"];

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
}

/// What a run reports as it goes; the command line draws progress bars from it.
pub trait Observer {
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

/// The outcome of a whole run, also written as the JSON report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub model: ModelInfo,
    pub images: Vec<ImageRecord>,
    pub refused: Vec<Refusal>,
    pub skipped: Vec<PathBuf>,
    pub interrupted: bool,
}

#[derive(Debug, Serialize)]
pub struct Settings {
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
}

#[derive(Debug, Serialize)]
pub struct ModelInfo {
    pub dir: PathBuf,
    pub sha256: String,
    pub resolution: i64,
}

#[derive(Debug, Serialize)]
pub struct Refusal {
    pub input: PathBuf,
    pub error: String,
}

/// One finished image (one sample of one input).
#[derive(Debug, Clone, Serialize)]
pub struct ImageRecord {
    pub input: PathBuf,
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

impl Report {
    /// 0: every image converged; 2: some input was refused; 3: some image did not converge;
    /// 130: interrupted.
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            130
        } else if !self.refused.is_empty() {
            2
        } else if self.images.iter().any(|i| !i.converged) {
            3
        } else {
            0
        }
    }

    pub fn converged(&self) -> usize {
        self.images.iter().filter(|i| i.converged).count()
    }
}

/// One accepted input image.
struct Input {
    path: PathBuf,
    stem: String,
    target: imageio::Target,
    weight: Option<Tensor>,
    init: Option<LatentFile>,
}

/// One search to run: a sample of an input, with its best result so far over attempts.
struct Job {
    input: usize,
    sample: usize,
    attempt: usize,
    best: Option<(SearchOutcome, usize, u64)>,
    seconds: f64,
}

/// Lists the inputs: files as given, folders expanded to their image files; sorted, deduplicated.
pub fn collect_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = vec![];
    for input in inputs {
        if input.is_dir() {
            let entries = std::fs::read_dir(input)
                .with_context(|| format!("{}: cannot list folder", input.display()))?;
            for entry in entries {
                let path = entry?.path();
                let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
                if path.is_file() && ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str())) {
                    files.push(path);
                }
            }
        } else {
            files.push(input.clone());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn file_stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into())
}

/// Output file names of one sample: `<stem>.png` or `<stem>_<k>.png` with several samples.
fn output_base(opts: &UpsampleOptions, stem: &str, sample: usize) -> String {
    if opts.samples > 1 {
        format!("{stem}_{sample}")
    } else {
        stem.to_string()
    }
}

/// Runs PULSE on every input. Refused inputs are reported and skipped; `stop` (Ctrl-C) ends
/// the run between steps, keeping every output already written and writing nothing partial.
pub fn run(
    model: &mut Model,
    opts: &UpsampleOptions,
    observer: &mut dyn Observer,
    stop: &AtomicBool,
) -> anyhow::Result<Report> {
    if opts.samples == 0 || opts.batch_size == 0 {
        bail!("--samples and --batch-size must be at least 1");
    }
    let device = model.device;
    if opts.precision == Precision::Fp16 && device == Device::Cpu {
        bail!("--precision fp16 needs CUDA (float16 autocast on the CPU is partial); use fp32 or bf16");
    }
    if model.synthesis.precision() != opts.precision {
        model.synthesis.set_precision(opts.precision);
    }
    let resolution = model.config().resolution;
    let layers = model.config().num_layers();
    model.ensure_fit(&mut |_, _| {})?;
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("{}: cannot create output folder", opts.out_dir.display()))?;

    let mut files = collect_inputs(&opts.inputs)?;
    if let Some((i, n)) = opts.shard {
        files = files.into_iter().enumerate().filter(|(p, _)| p % n == i).map(|(_, f)| f).collect();
    }
    let mut report = Report {
        settings: settings(opts, device),
        model: ModelInfo { dir: model.dir.clone(), sha256: model.sha256.clone(), resolution },
        images: vec![],
        refused: vec![],
        skipped: vec![],
        interrupted: false,
    };
    let init_dir = opts.init.as_ref().filter(|p| p.is_dir());
    if opts.init.is_some() && init_dir.is_none() && files.len() > 1 {
        bail!("--init with a single latent file takes one input; give a folder of <stem>.latent.safetensors for several");
    }

    // Read and check every input first; a bad one is refused, the rest go on.
    let mut inputs: Vec<Input> = vec![];
    let mut seen_stems = BTreeMap::new();
    for path in files {
        let stem = file_stem(&path);
        match prepare_input(model, opts, &path, &stem, init_dir.map(PathBuf::as_path), layers) {
            Err(e) => {
                observer.refused(&path, &e);
                report.refused.push(Refusal { input: path, error: format!("{e:#}") });
            }
            Ok(input) => {
                if let Some(first) = seen_stems.insert(stem.clone(), path.clone()) {
                    let e = anyhow::anyhow!(
                        "{}: same file name as {} (outputs would collide); rename one",
                        path.display(),
                        first.display()
                    );
                    observer.refused(&path, &e);
                    report.refused.push(Refusal { input: path, error: format!("{e:#}") });
                    continue;
                }
                inputs.push(input);
            }
        }
    }

    // Resume: a sample whose image and latent both exist is done, unless --overwrite.
    let mut queue = VecDeque::new();
    for (i, input) in inputs.iter().enumerate() {
        for sample in 0..opts.samples {
            let base = output_base(opts, &input.stem, sample);
            let png = opts.out_dir.join(format!("{base}.png"));
            let latent = opts.out_dir.join(format!("{base}.latent.safetensors"));
            if !opts.overwrite && png.exists() && latent.exists() {
                observer.skipped(&input.path, &png);
                report.skipped.push(png);
                continue;
            }
            queue.push_back(Job { input: i, sample, attempt: 0, best: None, seconds: 0.0 });
        }
    }
    observer.started(inputs.len(), queue.len());

    let fit = model.fit.as_ref().expect("ensured above").to_device(device);
    while let Some(first) = queue.pop_front() {
        // A batch holds jobs whose targets have the same side and weighting.
        let key = batch_key(&inputs[first.input]);
        let mut batch = vec![first];
        while batch.len() < opts.batch_size {
            match queue.iter().position(|j| batch_key(&inputs[j.input]) == key) {
                Some(p) => batch.push(queue.remove(p).expect("position is valid")),
                None => break,
            }
        }
        let names: Vec<String> =
            batch.iter().map(|j| output_base(opts, &inputs[j.input].stem, j.sample)).collect();
        observer.batch_started(&names, opts.search.steps);

        let seeds: Vec<u64> = batch
            .iter()
            .map(|j| {
                crate::pipelines::item_seed(opts.seed, &inputs[j.input].stem, j.sample, j.attempt)
            })
            .collect();
        let starts: Vec<Start> = batch
            .iter()
            .zip(&seeds)
            .map(|(j, &seed)| {
                start_for(
                    &inputs[j.input],
                    j.attempt,
                    seed,
                    model.config(),
                    opts.search.tile_latent,
                    &fit,
                )
            })
            .collect::<anyhow::Result<_>>()?;
        let target = LossTarget {
            image: Tensor::stack(
                &batch
                    .iter()
                    .map(|j| inputs[j.input].target.rgb.shallow_clone())
                    .collect::<Vec<_>>(),
                0,
            )
            .to_device(device),
            weight: inputs[batch[0].input].weight.as_ref().map(|_| {
                Tensor::stack(
                    &batch
                        .iter()
                        .map(|j| inputs[j.input].weight.as_ref().expect("same key").shallow_clone())
                        .collect::<Vec<_>>(),
                    0,
                )
                .to_device(device)
            }),
        };

        let started = Instant::now();
        let outcomes = search::search(
            &model.synthesis,
            &fit,
            &opts.search,
            &target,
            Start::batch(&starts),
            device,
            &mut |p: Progress| {
                observer.step(p.step, p.steps, &|| {
                    Vec::try_from(p.values.to_device(Device::Cpu).to_kind(tch::Kind::Double))
                        .unwrap_or_default()
                });
                !stop.load(Ordering::SeqCst)
            },
        );
        let outcomes = match outcomes {
            Err(e) if e.is::<search::Interrupted>() => {
                report.interrupted = true;
                break;
            }
            other => other?,
        };
        let share = started.elapsed().as_secs_f64() / batch.len() as f64;

        for ((mut job, outcome), seed) in batch.into_iter().zip(outcomes).zip(seeds) {
            job.seconds += share;
            let better = match &job.best {
                None => true,
                Some((b, _, _)) => {
                    (outcome.converged && !b.converged)
                        || (outcome.converged == b.converged && l2(&outcome, opts) < l2(b, opts))
                }
            };
            if better {
                job.best = Some((outcome, job.attempt, seed));
            }
            let converged = job.best.as_ref().is_some_and(|b| b.0.converged);
            if !converged && job.attempt < opts.restarts {
                job.attempt += 1;
                queue.push_back(job);
                continue;
            }
            let record = finish(model, opts, &inputs[job.input], job)?;
            observer.finished(&record);
            report.images.push(record);
            if let Some(path) = &opts.report {
                write_report(&report, path)?;
            }
        }
    }
    if let Some(path) = &opts.report {
        write_report(&report, path)?;
    }
    Ok(report)
}

/// The value attempts are compared by: the best step's L2 (TOTAL when the loss has no L2).
fn l2(o: &SearchOutcome, opts: &UpsampleOptions) -> f64 {
    match opts.search.loss.terms.iter().position(|(_, t)| *t == crate::pulse::Term::L2) {
        Some(i) => o.best.terms[i],
        None => o.best.total,
    }
}

fn batch_key(input: &Input) -> (i64, bool) {
    (input.target.rgb.size()[2], input.weight.is_some())
}

fn settings(opts: &UpsampleOptions, device: Device) -> Settings {
    let s = &opts.search;
    Settings {
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
    }
}

/// Reads one input: target image, its weighting (alpha, --mask or none) and its --init latent.
fn prepare_input(
    model: &Model,
    opts: &UpsampleOptions,
    path: &Path,
    stem: &str,
    init_dir: Option<&Path>,
    layers: usize,
) -> anyhow::Result<Input> {
    let resolution = model.config().resolution;
    let out_png = opts.out_dir.join(format!("{}.png", output_base(opts, stem, 0)));
    if same_file(path, &out_png) {
        bail!(
            "{}: the output {} would overwrite this input; choose another -o folder",
            path.display(),
            out_png.display()
        );
    }
    let mut target = imageio::read_target(path, resolution)?;
    let side = target.rgb.size()[2];
    let weight = if opts.ignore_alpha {
        None
    } else if let Some(mask) = &opts.mask {
        Some(imageio::read_mask(mask, side)?)
    } else {
        target.alpha.take()
    };
    let init = match (&opts.init, init_dir) {
        (_, Some(dir)) => {
            let p = dir.join(format!("{stem}.latent.safetensors"));
            if !p.is_file() {
                bail!("{}: no init latent {} in the --init folder", path.display(), p.display());
            }
            Some(read_checked_latent(&p, model, layers)?)
        }
        (Some(file), None) => Some(read_checked_latent(file, model, layers)?),
        (None, None) => None,
    };
    Ok(Input { path: path.to_path_buf(), stem: stem.to_string(), target, weight, init })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn read_checked_latent(path: &Path, model: &Model, layers: usize) -> anyhow::Result<LatentFile> {
    let latent = LatentFile::read(path)?;
    latent.check_layers(path, layers)?;
    if latent.model_sha256() != model.sha256 {
        bail!(
            "{}: made with another model (model_sha256 {}, this model {}); start from a latent of this model",
            path.display(),
            latent.model_sha256(),
            model.sha256
        );
    }
    Ok(latent)
}

/// The starting point of one job: its --init latent on the first attempt, else a seeded draw.
fn start_for(
    input: &Input,
    attempt: usize,
    seed: u64,
    config: &SynthesisConfig,
    tile: bool,
    fit: &crate::pulse::GaussianFit,
) -> anyhow::Result<Start> {
    match (&input.init, attempt) {
        (Some(init), 0) => {
            let cpu_fit = fit.to_device(Device::Cpu);
            let latent = init
                .latent
                .as_ref()
                .map(|l| l.shallow_clone())
                .unwrap_or_else(|| from_w_plus(&init.w_plus, &cpu_fit));
            let latent = match (tile, latent.size()[0]) {
                (true, 1) | (false, _) => {
                    latent.expand([config.num_layers() as i64, -1], false).contiguous()
                }
                (true, _) => bail!(
                    "{}: --tile-latent needs a [1,512] latent in the --init file",
                    input.path.display()
                ),
            };
            let latent = if tile { latent.narrow(0, 0, 1) } else { latent };
            Ok(Start {
                latent: latent.unsqueeze(0),
                noise: init.noise.iter().map(|n| n.shallow_clone()).collect(),
            })
        }
        _ => Ok(Start::random(seed, config, tile)),
    }
}

/// Writes one job's outputs (each atomically) and returns its report entry.
fn finish(
    model: &Model,
    opts: &UpsampleOptions,
    input: &Input,
    job: Job,
) -> anyhow::Result<ImageRecord> {
    let (outcome, attempt, seed) = job.best.expect("a finished job has a result");
    let base = output_base(opts, &input.stem, job.sample);
    let resolution = model.config().resolution;
    let mut outputs = vec![];
    let png = opts.out_dir.join(format!("{base}.png"));
    imageio::write_png(&outcome.image, &png)?;
    outputs.push(png);

    let mut latent = outcome.latent_file(&model.sha256, seed);
    latent.metadata.insert("source".into(), input.path.display().to_string());
    let latent_path = opts.out_dir.join(format!("{base}.latent.safetensors"));
    latent.write(&latent_path)?;
    outputs.push(latent_path);

    if opts.compare {
        let factor = resolution / input.target.rgb.size()[2];
        let down = crate::pulse::Downscaler::new(factor, Device::Cpu)
            .forward(&outcome.image.unsqueeze(0))
            .squeeze_dim(0);
        let row = Tensor::cat(
            &[
                imageio::upscale_nearest(&input.target.rgb, resolution),
                outcome.image.shallow_clone(),
                imageio::upscale_nearest(&down.clamp(0.0, 1.0), resolution),
            ],
            2,
        );
        let path = opts.out_dir.join(format!("{base}.compare.png"));
        imageio::write_png(&row, &path)?;
        outputs.push(path);
    }
    if opts.save_intermediate && !outcome.intermediate.is_empty() {
        let path = opts.out_dir.join(format!("{base}.steps.gif"));
        imageio::write_animation(&outcome.intermediate, &path, 80)?;
        outputs.push(path);
    }

    let names: Vec<&str> = opts.search.loss.terms.iter().map(|(_, t)| t.name()).collect();
    let row = |v: &StepValues| -> BTreeMap<String, serde_json::Value> {
        let mut m: BTreeMap<String, serde_json::Value> =
            names.iter().map(|n| n.to_string()).zip(v.terms.iter().map(|&x| x.into())).collect();
        m.insert("total".into(), v.total.into());
        m
    };
    let history = outcome
        .history
        .iter()
        .map(|v| {
            let mut m = row(v);
            m.insert("step".into(), v.step.into());
            m.insert("lr".into(), v.lr.into());
            m
        })
        .collect();
    Ok(ImageRecord {
        input: input.path.clone(),
        outputs,
        sample: job.sample,
        seed,
        attempt,
        converged: outcome.converged,
        best_step: outcome.best_step,
        best: row(&outcome.best),
        seconds: job.seconds,
        history,
    })
}

fn write_report(report: &Report, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(report)?;
    Ok(imageio::write_atomic(path, |f| std::io::Write::write_all(f, &json))?)
}
