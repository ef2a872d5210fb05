//! One function per command: turn parsed arguments into the library's options, run, report.
use super::args::*;
use super::exit::{input, Exit};
use super::progress::{self, SearchBars};
use anyhow::Context;
use pulse::files::{check_no_clobber, escaped};
use pulse::latent::{short_sha, LatentFile};
use pulse::model::{self, Model};
use pulse::pipelines::generate::Generator;
use pulse::pipelines::{self, upsample::UpsampleOptions};
use pulse::pulse::{Method, SearchConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Sets libtorch up for `device` (reproducible unless `--nondeterministic`), saying so on stderr
/// when reproducibility is traded for speed.
pub(super) fn configure_device(device: tch::Device, nondeterministic: bool) -> anyhow::Result<()> {
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
pub(super) fn load_model(args: &ModelArgs) -> anyhow::Result<Model> {
    let device = pulse::device::parse_device(&args.device)?;
    configure_device(device, args.nondeterministic)?;
    input(Model::load(&args.model, device)).with_context(|| {
        if args.model == Path::new(model::DEFAULT_DIR) && !args.model.exists() {
            "no model: run `pulse download ffhq`, or name a model folder with --model DIR or $PULSE_MODEL (see models/README.md)"
        } else {
            "cannot load the model (see models/README.md)"
        }
    })
}

/// Checks, before any work, that no output is one of the inputs and that each output's folder
/// can be created and written.
pub(super) fn check_outputs(inputs: &[&Path], outputs: &[&Path]) -> anyhow::Result<()> {
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
pub(super) fn interrupt_flag() -> Arc<AtomicBool> {
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
pub(super) fn batch_size(
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

pub fn upsample(a: UpsampleArgs) -> anyhow::Result<Exit> {
    if a.align {
        return super::align::upsample_aligned(a);
    }
    let shard = super::report::shard_of(&a.shard)?;
    upsample_run(a, shard, None)
}

/// Upsamples the inputs of `a` (of `shard`, already resolved). With `aligned` (from
/// `upsample --align`) the inputs are this shard's aligned faces and the report is already named.
pub(super) fn upsample_run(
    mut a: UpsampleArgs,
    shard: Option<pipelines::shard::ShardInfo>,
    aligned: Option<pipelines::upsample::AlignedPhotos>,
) -> anyhow::Result<Exit> {
    if aligned.is_none() {
        a.report = a
            .report
            .map(|r| super::report::checked_report_file(&r, shard.as_ref(), "report"))
            .transpose()?;
    }
    let mut model = load_model(&a.model)?;
    let search = search_config(&a, model.layout())?;
    let run = run_config(&a, &model);
    let seed = run.seed;
    let opts = UpsampleOptions {
        inputs: a.inputs,
        out_dir: a.out_dir,
        search,
        run,
        init: a.init,
        save_intermediate: a.save_intermediate,
        compare: a.compare,
        report: a.report,
        shard,
        aligned,
        overwrite: a.overwrite,
        mask: a.mask,
        ignore_alpha: a.ignore_alpha,
    };
    if a.cuda_graph && !model.device.is_cuda() {
        eprintln!("pulse: --cuda-graph: no effect on the CPU");
    }
    if model.fit.is_none() {
        fit_with_bar(&mut model, a.quiet)?;
    }
    let stop = interrupt_flag();
    let mut progress = SearchBars::upsample(a.quiet, opts.search.eps);
    let started = Instant::now();
    let report = pipelines::upsample::run(&mut model, &opts, &mut progress, &stop)?;
    progress.finish();
    if !progress.quiet() {
        eprintln!(
            "pulse: converged {} of {} images ({} refused, {} skipped) in {:.1} s, seed {seed}{}",
            report.converged(),
            report.total(),
            report.refused.len(),
            report.skipped.len(),
            started.elapsed().as_secs_f64(),
            if report.interrupted { "; interrupted, rerun to resume" } else { "" },
        );
    }
    Ok(if report.interrupted {
        Exit::Interrupted
    } else if !report.refused.is_empty() {
        Exit::Refused
    } else if !report.all_converged() {
        Exit::NotConverged
    } else {
        Exit::Success
    })
}

/// The search settings `upsample`'s flags give (`restore` takes the same flags), for a network
/// of `layout`. With `--method ilo`, the flags of PULSE's own search are refused by name, not
/// ignored.
pub(super) fn search_config(
    a: &UpsampleArgs,
    layout: &pulse::stylegan::Layout,
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
        keep_intermediate: a.save_intermediate,
        keep_final: false,
        cuda_graph: a.cuda_graph,
    })
}

/// ILO's loss and learning rate (Daras et al.'s defaults; issue 29).
pub const ILO_LOSS: &str = "1*MSE+0.01*GEOCROSS";
pub const ILO_LR: f64 = 0.1;

/// How `upsample`'s flags say to run the searches (`restore` takes the same flags) with `model`:
/// the seed (drawn and printed if not given) and `--batch-size auto` resolved.
pub(super) fn run_config(a: &UpsampleArgs, model: &Model) -> pipelines::RunConfig {
    pipelines::RunConfig {
        seed: run_seed(a.seed),
        samples: a.samples,
        batch_size: batch_size(a.batch_size, model.layout(), model.device, a.precision),
        restarts: a.restarts,
        precision: a.precision,
        deterministic: !a.model.nondeterministic || !model.device.is_cuda(),
    }
}

/// `--seed`, or one drawn now and printed (even with -q: without it a run cannot be repeated).
pub(super) fn run_seed(seed: Option<u64>) -> u64 {
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
pub(super) fn fit_with_bar(model: &mut Model, quiet: bool) -> anyhow::Result<()> {
    let bar = progress::bar(model::FIT_SAMPLES as u64, "fit", quiet);
    bar.set_message("Gaussian fit (once per model)");
    model.ensure_fit(&mut |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    Ok(())
}

pub fn fit_gaussian(a: FitGaussianArgs) -> anyhow::Result<Exit> {
    // The folder's present fit is not read: it is what this command replaces (it may be one
    // left from a previous network, which loading refuses).
    let device = pulse::device::parse_device(&a.model.device)?;
    configure_device(device, a.model.nondeterministic)?;
    let model = input(Model::load_without_fit(&a.model.model, device))
        .context("cannot load the model (see models/README.md)")?;
    let bar = progress::bar(a.samples as u64, "fit", false);
    let path =
        model::save_fit(&model, a.samples, a.seed, &mut |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    eprintln!("pulse: wrote {} ({} samples, seed {})", escaped(&path), a.samples, a.seed);
    Ok(Exit::Success)
}

/// Faces are written one by one as they are made (memory stays flat for any `--count`), each
/// with its latent; faces whose two files exist from the same seed and model are skipped, so an
/// interrupted run resumes.
pub fn generate(a: GenerateArgs) -> anyhow::Result<Exit> {
    let outputs = output_paths(&a.out, a.count, a.seed)?;
    let model = load_model(&a.model)?;
    let stop = interrupt_flag();
    let generator = Generator::new(&model, a.seed, a.truncation)?;
    let bar = progress::bar(a.count as u64, "faces", a.quiet);
    let (mut written, mut skipped) = (0, 0);
    for (k, path) in outputs.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            bar.finish_and_clear();
            eprintln!("pulse: interrupted after {written} faces; rerun to resume");
            return Ok(Exit::Interrupted);
        }
        let latent_path = path.with_extension("latent.safetensors");
        if !a.overwrite && path.is_file() && latent_path.is_file() {
            let meta = input(pulse::latent::read_metadata(&latent_path))?;
            let same = meta.get("model_sha256") == Some(&model.sha256)
                && meta.get("truncation") == Some(&a.truncation.to_string())
                && meta.get("seed") == Some(&generator.face_seed(k).to_string());
            if !same {
                return Err(pulse::Invalid(format!(
                    "{}: exists from another run (other seed, truncation or model); use --overwrite or another -o",
                    escaped(path)
                ))
                .into());
            }
            skipped += 1;
            bar.inc(1);
            continue;
        }
        let (image, latent) = generator.face(k)?;
        pulse::imageio::write_image(&image, path)?;
        latent.write(&latent_path)?;
        written += 1;
        bar.inc(1);
        if !a.quiet && a.count <= 10 {
            bar.suspend(|| eprintln!("pulse: wrote {}", escaped(path)));
        }
    }
    bar.finish_and_clear();
    if !a.quiet {
        eprintln!("pulse: {written} faces written, {skipped} already there");
    }
    Ok(Exit::Success)
}

/// `OUT.png` (one face, or `OUT_<k>.png` for several; any image extension) or a folder of
/// `seed<S>_<k>.png`. Checked before any work.
fn output_paths(out: &Path, count: usize, seed: u64) -> anyhow::Result<Vec<PathBuf>> {
    let image_name = pulse::imageio::OutputFormat::from_path(out).is_ok();
    if !image_name && out.is_file() {
        return Err(pulse::Invalid(format!(
            "{}: is a file; give an image name (.png, .jpg, .bmp, .webp) or a folder",
            escaped(out)
        ))
        .into());
    }
    let dir = if image_name { pulse::files::parent_dir(out) } else { out };
    pulse::files::check_writable_dir(dir).map_err(|e| {
        pulse::Invalid(format!("{}: cannot write in this folder: {e}", escaped(dir)))
    })?;
    if !image_name {
        return Ok((0..count).map(|k| out.join(format!("seed{seed}_{k}.png"))).collect());
    }
    if count == 1 {
        return Ok(vec![out.to_path_buf()]);
    }
    let stem = out.file_stem().unwrap_or_default();
    let ext = out.extension().unwrap_or_default().to_string_lossy().into_owned();
    Ok((0..count)
        .map(|k| {
            let mut name = stem.to_os_string();
            name.push(format!("_{k}.{ext}"));
            out.with_file_name(name)
        })
        .collect())
}

pub fn render(a: RenderArgs) -> anyhow::Result<Exit> {
    check_outputs(&[&a.latent, &a.model.model], &[&a.out])?;
    input(pulse::imageio::OutputFormat::from_path(&a.out))?;
    let latent = input(LatentFile::read(&a.latent))?;
    let model = load_model(&a.model)?;
    warn_if_other_model(&a.latent, &latent, &model)?;
    let image = input(pipelines::render(&model, &a.latent, &latent))?;
    pulse::imageio::write_image(&image, &a.out)?;
    eprintln!("pulse: wrote {}", escaped(&a.out));
    Ok(Exit::Success)
}

/// `render` and `edit` draw a latent of another model anyway (the shapes fit), with a warning;
/// a latent of the other family or layout is refused first (exit 2), before any warning.
pub(super) fn warn_if_other_model(
    path: &Path,
    latent: &LatentFile,
    model: &Model,
) -> anyhow::Result<()> {
    input(latent.check_layout(path, model.layout()))?;
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

pub fn convert(a: ConvertArgs) -> anyhow::Result<Exit> {
    check_outputs(&[&a.input], &[&a.out])?;
    let sd = input(pulse::weights::load(&a.input))?;
    let meta = [("source".to_string(), escaped(&a.input))].into();
    pulse::weights::save_safetensors(&sd, &a.out, Some(&meta))?;
    eprintln!("pulse: wrote {} ({} tensors)", escaped(&a.out), sd.len());
    Ok(Exit::Success)
}
