//! What commands share when they set a run up: the device, the model, the output checks,
//! Ctrl-C, the search settings from [`SearchArgs`], the shard and its report file. Uses only
//! the leaves `shared_args` and `progress`, never a command.
use super::progress;
use super::shared_args::{BatchSize, ModelArgs, SearchArgs, ShardArgs};
use anyhow::Context;
use pulse::files::{check_no_clobber, escaped};
use pulse::latent::{short_sha, LatentFile};
use pulse::model::{self, Model};
use pulse::pipelines::shard::{self, ShardInfo};
use pulse::pipelines::{self, report};
use pulse::pulse::{Method, SearchConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Sets libtorch up for `device` (reproducible unless `--nondeterministic`), saying so on stderr
/// when reproducibility is traded for speed.
pub fn configure_device(device: tch::Device, nondeterministic: bool) -> anyhow::Result<()> {
    use pulse::device::Determinism;
    pulse::device::configure(device, Determinism::from_nondeterministic_flag(nondeterministic))?;
    if nondeterministic {
        eprintln!(
            "pulse: --nondeterministic: {}",
            if device.is_cuda() {
                "cuDNN autotuning and nondeterministic kernels on: faster, but the same command may give slightly different results each run"
            } else {
                "no effect on the CPU (its results repeat anyway)"
            }
        );
    }
    Ok(())
}

/// Loads the model folder of `--model` (or `$PULSE_MODEL`, or the default) on `--device`.
pub fn load_model(args: &ModelArgs) -> anyhow::Result<Model> {
    let device = pulse::device::parse_device(&args.device)?;
    configure_device(device, args.nondeterministic)?;
    Model::load(&args.model, device).with_context(|| {
        if args.model == Path::new(model::DEFAULT_DIR) && !args.model.exists() {
            "no model: run `pulse download ffhq`, or name a model folder with --model DIR or $PULSE_MODEL (see models/README.md)"
        } else {
            "cannot load the model (see models/README.md)"
        }
    })
}

/// Checks, before any work, that no output is one of the inputs and that each output's folder
/// can be created and written.
pub fn check_outputs(inputs: &[&Path], outputs: &[&Path]) -> anyhow::Result<()> {
    check_no_clobber(inputs, outputs)?;
    for out in outputs {
        let dir = pulse::files::parent_dir(out);
        pulse::files::check_writable_dir(dir)
            .map_err(|e| pulse::Invalid(format!("{}: cannot write there: {e}", escaped(out))))?;
    }
    Ok(())
}

/// Ctrl-C sets this flag, which long loops check between steps. The handler is installed on
/// the first call (only commands that check the flag call it, so Ctrl-C still ends the others
/// at once); every later call, like `upsample --align`'s second stage, gets the same flag.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        // Fails only if another handler exists (an embedding program's): then Ctrl-C keeps
        // its default action, which writes nothing partial either.
        let _ = ctrlc::set_handler(move || s.store(true, Ordering::SeqCst));
        stop
    })
    .clone()
}

/// `--batch-size`: a number, or what `auto` picks for this network, device and precision.
pub fn batch_size(
    b: BatchSize,
    layout: &pulse::stylegan::Layout,
    device: tch::Device,
    precision: pulse::precision::Precision,
) -> usize {
    match b {
        BatchSize::Fixed(n) => n,
        BatchSize::Auto => pipelines::auto_batch_size(layout, device, precision),
    }
}

/// The search settings of the flags `upsample` and `restore` share, for a network of `layout`
/// (`keep_intermediate`: `upsample --save-intermediate`). With `--method ilo`, the flags of
/// PULSE's own search are refused by name, not ignored.
pub fn search_config(
    a: &SearchArgs,
    layout: &pulse::stylegan::Layout,
    keep_intermediate: bool,
) -> anyhow::Result<SearchConfig> {
    let ilo = a.method == Method::Ilo;
    if ilo {
        let pulse_only = [
            ("--steps", a.steps.is_some(), "give the rounds' steps with --ilo-steps"),
            ("--optimizer", a.optimizer.is_some(), "ILO uses Adam"),
            ("--schedule", a.schedule.is_some(), "ILO ramps each round as StyleGAN2's projector"),
            ("--noise", a.noise.is_some(), "ILO trains noise maps 0..5+2k-1 in round k"),
            (
                "--trainable-noise",
                a.trainable_noise.is_some(),
                "ILO trains noise maps 0..5+2k-1 in round k",
            ),
            ("--bad-noise-layers", a.bad_noise_layers.is_some(), "ILO zeroes no noise map"),
            ("--tile-latent", a.tile_latent, "ILO optimizes one latent row per W+ row"),
            ("--cuda-graph", a.cuda_graph, "ILO's rounds change the graph"),
        ];
        if let Some((flag, _, why)) = pulse_only.iter().find(|(_, given, _)| *given) {
            return Err(
                pulse::Invalid(format!("{flag} does not apply to --method ilo ({why})")).into()
            );
        }
    } else {
        let ilo_only =
            [("--ilo-steps", a.ilo_steps.is_some()), ("--ilo-radius", a.ilo_radius.is_some())];
        if let Some((flag, _)) = ilo_only.iter().find(|(_, given)| *given) {
            return Err(pulse::Invalid(format!("{flag} needs --method ilo")).into());
        }
    }
    let defaults = SearchConfig::default();
    let loss = match (&a.loss, ilo) {
        (Some(loss), _) => loss.clone(),
        (None, true) => ILO_LOSS.parse().expect("ILO's loss parses"),
        (None, false) => defaults.loss.clone(),
    };
    let mut ilo_config = pulse::pulse::IloConfig::default();
    if let Some(steps) = &a.ilo_steps {
        ilo_config.steps = steps.0.clone();
    }
    ilo_config.radius = a.ilo_radius.clone();
    Ok(SearchConfig {
        method: a.method,
        ilo: ilo_config,
        steps: a.steps.unwrap_or(defaults.steps),
        lr: a.lr.unwrap_or(if ilo { ILO_LR } else { defaults.lr }),
        optimizer: a.optimizer.unwrap_or(defaults.optimizer),
        schedule: a.schedule.unwrap_or(defaults.schedule),
        loss,
        eps: a.eps,
        noise: a.noise.unwrap_or(defaults.noise),
        trainable_noise: a.trainable_noise.unwrap_or(defaults.trainable_noise),
        bad_noise_layers: Some(match (&a.bad_noise_layers, ilo) {
            (Some(list), _) => list.0.clone(),
            (None, true) => vec![],
            (None, false) => layout.default_bad_noise.clone(),
        }),
        tile_latent: a.tile_latent,
        keep_intermediate,
        keep_final: false,
        cuda_graph: a.cuda_graph,
    })
}

/// ILO's loss and learning rate (Daras et al.'s defaults; issue 29).
pub const ILO_LOSS: &str = "1*MSE+0.01*GEOCROSS";
pub const ILO_LR: f64 = 0.1;

/// How the searches run with `model`, from the shared flags and `--samples`: the seed (drawn
/// and printed if not given) and `--batch-size auto` resolved.
pub fn run_config(
    a: &SearchArgs,
    samples: usize,
    model_args: &ModelArgs,
    model: &Model,
) -> pipelines::RunConfig {
    pipelines::RunConfig {
        seed: run_seed(a.seed),
        samples,
        batch_size: batch_size(a.batch_size, model.layout(), model.device, a.precision),
        restarts: a.restarts,
        precision: a.precision,
        deterministic: !model_args.nondeterministic || !model.device.is_cuda(),
    }
}

/// `--seed`, or one drawn now and printed (even with -q: without it a run cannot be repeated).
pub fn run_seed(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_000)
            .unwrap_or(0);
        // Printed before any work, even with -q: without it a run cannot be repeated.
        eprintln!("pulse: seed {seed} (drawn; pass --seed {seed} to repeat this run)");
        seed
    })
}

/// Computes the Gaussian fit with a progress bar (first use of a model without one).
pub fn fit_with_bar(model: &mut Model, quiet: bool) -> anyhow::Result<()> {
    let bar = progress::bar(model::FIT_SAMPLES as u64, "fit", quiet);
    bar.set_message("Gaussian fit (once per model)");
    model.ensure_fit(&mut |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    Ok(())
}

/// `render` and `edit` draw a latent of another model anyway (the shapes fit), with a warning;
/// a latent of the other family or layout is refused first (exit 2), before any warning.
pub fn warn_if_other_model(path: &Path, latent: &LatentFile, model: &Model) -> anyhow::Result<()> {
    latent.check_layout(path, model.layout())?;
    if latent.model_sha256() != model.sha256 {
        eprintln!(
            "pulse: warning: {} was made with another model (sha256 {}), rendering with {}",
            escaped(path),
            short_sha(latent.model_sha256()),
            short_sha(&model.sha256)
        );
    }
    Ok(())
}

/// Resolves `--shard`/`--shards` from the command line and the environment; a shard read from a
/// job array is named on stderr (even with `-q`: a task's log should say what it did).
pub fn shard_of(args: &ShardArgs) -> anyhow::Result<Option<ShardInfo>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let info = shard::resolve(args.shard, args.shards, &env)?;
    if let Some(s) = info.as_ref().filter(|s| !s.detail.is_empty()) {
        eprintln!("pulse: {}", s.describe());
    }
    Ok(info)
}

/// The report file of this run ([`shard::report_path`]).
pub fn report_file(report: &Path, shard: Option<&ShardInfo>, stem: &str) -> PathBuf {
    shard::report_path(report, shard.map(ShardInfo::shard), stem)
}

/// [`report_file`], refused (exit 2) when that file is the report of another shard or split:
/// runs that share one plain `--report` file would take each other's entries for their own.
pub fn checked_report_file(
    report: &Path,
    shard: Option<&ShardInfo>,
    stem: &str,
) -> anyhow::Result<PathBuf> {
    let path = report_file(report, shard, stem);
    report::check_report_owner(&path, shard.map(ShardInfo::shard))?;
    Ok(path)
}
