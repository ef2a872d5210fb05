//! `pulse eval` and `pulse eval merge`: arguments and commands (the protocol itself is
//! `pulse::pipelines::eval`).
use super::exit::Exit;
use super::progress::SearchBars;
use super::setup::{
    batch_size, fit_with_bar, interrupt_flag, load_model, shard_of, ILO_LOSS, ILO_LR,
};
use super::shared_args::{
    at_least_one, finite, one_of, positive, BatchSize, LayerList, ModelArgs, ShardArgs,
};
use clap::{Args, Subcommand};
use pulse::files::escaped;
use pulse::pipelines::batches::SearchObserver;
use pulse::pipelines::eval::{self, EvalObserver, EvalOptions, Truths};
use pulse::pipelines::upsample::{ImageRecord, UpsampleObserver};
use pulse::precision::Precision;
use pulse::pulse::{LossSpec, Method, NoiseMode, OptimizerKind, Schedule, SearchConfig};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: Option<EvalCommand>,
    /// High-resolution aligned faces (files or folders), square; resized to the model's
    /// resolution when another size. Not with --generated.
    #[arg(value_name = "HR", required_unless_present = "generated", conflicts_with = "generated")]
    pub inputs: Vec<PathBuf>,
    /// Evaluate on N faces the model draws itself (from --seed): the truth is then reachable.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub generated: Option<usize>,
    /// Truncation psi of the --generated faces (1 = none: faces as the prior draws them).
    #[arg(long, default_value = "1", value_parser = finite, allow_negative_numbers = true)]
    pub truncation: f64,
    /// The inputs are photos: find and align the largest face of each first (as `pulse align`,
    /// at the model's resolution, kept in <OUT>/aligned/).
    #[arg(long, conflicts_with = "generated")]
    pub align: bool,
    /// Output folder.
    #[arg(short = 'o', long = "output", default_value = "eval", value_name = "DIR")]
    pub out_dir: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The methods to compare, in order (pulse, ilo), each with the same seeds.
    #[arg(long = "method", default_value = "pulse,ilo", value_delimiter = ',', value_parser = one_of::<Method>(Method::NAMES))]
    pub methods: Vec<Method>,
    /// Side of the low-resolution inputs (the model's resolution / 2^k).
    #[arg(long, default_value_t = 32)]
    pub scale: i64,
    /// Results per face and method (diversity needs 2 or more).
    #[arg(long, default_value = "1", value_parser = at_least_one)]
    pub samples: usize,
    /// Seed of the run: of the --generated faces and of every search (the same for each method).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// torchvision's vgg16-397923af.pth for LPIPS [default: $PULSE_VGG16, models/vgg16/, or
    /// torchvision's cache; without it, no LPIPS and diversity by pixel distance].
    #[arg(long, value_name = "FILE")]
    pub vgg: Option<PathBuf>,
    /// PULSE: optimization steps per search (ILO's are --ilo-steps).
    #[arg(long, default_value = "100", value_parser = at_least_one)]
    pub steps: usize,
    /// ILO: steps of each round, comma-separated.
    #[arg(long, default_value = "50,50,25,25", value_delimiter = ',', value_parser = at_least_one)]
    pub ilo_steps: Vec<usize>,
    /// ILO: l1-ball projections of each round's change (off unless given), as for `upsample`.
    #[arg(long, value_name = "latent=..,noise=..,feature=..", value_parser = clap::value_parser!(pulse::pulse::IloRadius))]
    pub ilo_radius: Option<pulse::pulse::IloRadius>,
    /// Peak learning rate [default: 0.4 for pulse, 0.1 for ilo].
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// The optimizer whose steps are projected back onto the sphere.
    #[arg(long, default_value = "adam", value_parser = one_of::<OptimizerKind>(OptimizerKind::NAMES))]
    pub optimizer: OptimizerKind,
    /// Learning-rate schedule over the steps.
    #[arg(long, default_value = "linear1cycledrop", value_parser = one_of::<Schedule>(Schedule::NAMES))]
    pub schedule: Schedule,
    /// Sum of weight*TERM with terms L2, L1, MSE, GEOCROSS, LPIPS (weights positive), for
    /// every method [default: 100*L2+0.05*GEOCROSS for pulse, 1*MSE+0.01*GEOCROSS for ilo].
    #[arg(long, value_parser = clap::value_parser!(LossSpec), allow_hyphen_values = true)]
    pub loss: Option<LossSpec>,
    /// A search succeeds when its L2 reaches eps.
    #[arg(long, default_value = "2e-3", value_parser = positive, allow_negative_numbers = true)]
    pub eps: f64,
    /// How the per-layer noise inputs behave.
    #[arg(long, default_value = "trainable", value_parser = one_of::<NoiseMode>(NoiseMode::NAMES))]
    pub noise: NoiseMode,
    /// Number of noise maps optimized in trainable mode.
    #[arg(long, default_value_t = 5)]
    pub trainable_noise: usize,
    /// Noise maps kept at zero [default: the model's].
    #[arg(long, value_name = "LIST", value_parser = clap::value_parser!(LayerList))]
    pub bad_noise_layers: Option<LayerList>,
    /// Optimize one 512-vector tiled over all layers.
    #[arg(long)]
    pub tile_latent: bool,
    /// Searches run together; "auto" picks from free GPU memory (1 on the CPU).
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(BatchSize))]
    pub batch_size: BatchSize,
    /// Search again from a new seed, up to N times, when a search does not converge.
    #[arg(long, default_value_t = 0)]
    pub restarts: usize,
    /// fp32, tf32 (CUDA) or bf16/fp16 autocast of the synthesis.
    #[arg(long, default_value = "fp32", value_parser = one_of::<Precision>(&Precision::NAMES))]
    pub precision: Precision,
    /// CUDA: capture one search step in a CUDA graph and replay it.
    #[arg(long)]
    pub cuda_graph: bool,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Redo everything (truths, inputs, searches) instead of resuming.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bars (the summary table is still printed).
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Join the shards of an eval (its eval.<I>-of-<N>.json files) into eval.json, eval.csv,
    /// eval.png and sheet.png, and print the summary.
    Merge(EvalMergeArgs),
}

#[derive(Debug, Args)]
pub struct EvalMergeArgs {
    /// The eval's output folder (every shard's).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The shard reports to join [default: every eval.<I>-of-<N>.json in DIR].
    #[arg(value_name = "SHARD_JSON")]
    pub files: Vec<PathBuf>,
}

/// The search settings of `method` from the flags: each flag applies to the method it concerns
/// (`--steps`, `--optimizer`, `--schedule`, the noise flags, `--tile-latent` and `--cuda-graph`
/// to PULSE; `--ilo-steps` and `--ilo-radius` to ILO), with `upsample`'s defaults per method
/// (ILO: its loss `1*MSE+0.01*GEOCROSS`, lr 0.1, no zeroed noise map).
fn search_config(a: &EvalArgs, method: Method, layout: &pulse::stylegan::Layout) -> SearchConfig {
    let ilo = method == Method::Ilo;
    let defaults = SearchConfig::default();
    let loss = match (&a.loss, ilo) {
        (Some(loss), _) => loss.clone(),
        (None, true) => ILO_LOSS.parse().expect("ILO's loss parses"),
        (None, false) => defaults.loss.clone(),
    };
    let pulse_only = |on: bool| on && !ilo;
    SearchConfig {
        method,
        ilo: pulse::pulse::IloConfig { steps: a.ilo_steps.clone(), radius: a.ilo_radius.clone() },
        steps: a.steps,
        lr: a.lr.unwrap_or(if ilo { ILO_LR } else { defaults.lr }),
        optimizer: if ilo { defaults.optimizer } else { a.optimizer },
        schedule: if ilo { defaults.schedule } else { a.schedule },
        loss,
        eps: a.eps,
        noise: if ilo { defaults.noise } else { a.noise },
        trainable_noise: if ilo { defaults.trainable_noise } else { a.trainable_noise },
        bad_noise_layers: Some(match (&a.bad_noise_layers, ilo) {
            (_, true) => vec![],
            (Some(list), false) => list.0.clone(),
            (None, false) => layout.default_bad_noise.clone(),
        }),
        tile_latent: pulse_only(a.tile_latent),
        keep_intermediate: false,
        keep_final: false,
        cuda_graph: pulse_only(a.cuda_graph),
    }
}

pub fn eval(a: EvalArgs) -> anyhow::Result<Exit> {
    if let Some(EvalCommand::Merge(m)) = a.command {
        return merge(m);
    }
    let shard = shard_of(&a.shard)?;
    let vgg16 = pulse::metrics::lpips::find_vgg16(a.vgg.as_deref())?;
    match &vgg16 {
        Some(p) => eprintln!("pulse: LPIPS with {}", escaped(p)),
        None => eprintln!(
            "pulse: no LPIPS ({}); diversity is measured as pixel distance",
            pulse::metrics::lpips::missing_vgg16_help()
        ),
    }
    let mut model = load_model(&a.model)?;
    let truths = match (a.generated, a.align) {
        (Some(count), _) => Truths::Generated { count, psi: a.truncation },
        (None, false) => Truths::Files(a.inputs.clone()),
        (None, true) => Truths::Files(align_photos(&a, model.layout().resolution)?),
    };
    let methods = a.methods.iter().map(|&m| search_config(&a, m, model.layout())).collect();
    let run = pulse::pipelines::RunConfig {
        seed: a.seed,
        samples: a.samples,
        batch_size: batch_size(a.batch_size, model.layout(), model.device, a.precision),
        restarts: a.restarts,
        precision: a.precision,
        deterministic: !a.model.nondeterministic || !model.device.is_cuda(),
    };
    let opts = EvalOptions {
        truths,
        scale: a.scale,
        methods,
        run,
        out_dir: a.out_dir.clone(),
        vgg16,
        shard,
        overwrite: a.overwrite,
    };
    if model.fit.is_none() {
        fit_with_bar(&mut model, a.quiet)?;
    }
    let stop = interrupt_flag();
    let mut progress = Progress { bars: SearchBars::upsample(a.quiet, a.eps), quiet: a.quiet };
    let started = Instant::now();
    let report = eval::run(&mut model, &opts, &mut progress, &stop)?;
    progress.bars.finish();
    if report.interrupted {
        eprintln!("pulse: interrupted; run the same command again to resume");
        return Ok(Exit::Interrupted);
    }
    print_summary(&report, &a.out_dir, opts.shard.is_some());
    eprintln!("pulse: eval done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(Exit::Success)
}

fn print_summary(report: &eval::EvalReport, out: &Path, shard: bool) {
    println!("{}", report.table().trim_end());
    let out = escaped(out);
    if shard {
        eprintln!("pulse: this shard's results are in {out}; `pulse eval merge {out}` joins the shards once all have run");
    } else {
        eprintln!(
            "pulse: wrote {out}/{{{},{},{},{}}}",
            eval::JSON,
            eval::CSV,
            eval::PLOT,
            eval::SHEET
        );
    }
}

fn merge(m: EvalMergeArgs) -> anyhow::Result<Exit> {
    let report = eval::merge(&m.dir, &m.files)?;
    print_summary(&report, &m.dir, false);
    Ok(Exit::Success)
}

/// `eval --align`: the photos' largest faces, aligned at the model's resolution into
/// `<OUT>/aligned/` (as `pulse align --size R`).
fn align_photos(a: &EvalArgs, resolution: i64) -> anyhow::Result<Vec<PathBuf>> {
    super::align::align_for_eval(
        &a.inputs,
        &a.out_dir.join("aligned"),
        resolution,
        &a.model,
        a.overwrite,
        a.quiet,
    )
}

struct Progress {
    bars: SearchBars,
    quiet: bool,
}

impl SearchObserver for Progress {
    fn refused(&mut self, input: &Path, error: &anyhow::Error) {
        self.bars.refused(input, error)
    }
    fn skipped(&mut self, input: &Path, output: &Path) {
        self.bars.skipped(input, output)
    }
    fn batch_started(&mut self, names: &[String], steps: usize) {
        self.bars.batch_started(names, steps)
    }
    fn step(&mut self, step: usize, steps: usize, l2: &dyn Fn() -> Vec<f64>) {
        self.bars.step(step, steps, l2)
    }
}

impl UpsampleObserver for Progress {
    fn started(&mut self, images: usize, jobs: usize) {
        self.bars.started(images, jobs)
    }
    fn finished(&mut self, record: &ImageRecord) {
        self.bars.finished(record)
    }
}

impl EvalObserver for Progress {
    fn preparing(&mut self, count: usize) {
        if !self.quiet {
            self.bars.println(&format!("pulse: {count} faces: writing truth/ and input/"));
        }
    }
    fn method_started(&mut self, method: Method) {
        if !self.quiet {
            self.bars.println(&format!("pulse: method {}", method.name()));
        }
    }
    fn measuring(&mut self, rows: usize) {
        if !self.quiet {
            self.bars.println(&format!("pulse: measuring {rows} faces"));
        }
    }
}
