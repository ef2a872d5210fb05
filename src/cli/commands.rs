//! One function per command: turn parsed arguments into the library's options, run, report.
use super::args::*;
use super::progress::{self, UpsampleProgress};
use anyhow::{bail, Context};
use pulse::device::{parse_device, Precision};
use pulse::latent::{short_sha, LatentFile};
use pulse::model::{self, Model};
use pulse::pipelines::{self, upsample::UpsampleOptions};
use pulse::pulse::{LossSpec, NoiseMode, OptimizerKind, Schedule, SearchConfig};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub fn info() -> anyhow::Result<ExitCode> {
    println!("pulse {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch: {}", option_env!("PULSE_LIBTORCH_VERSION").unwrap_or("unknown"));
    let cuda = tch::Cuda::is_available();
    println!("cuda: {}", if cuda { "available" } else { "not available" });
    println!("gpus: {}", tch::Cuda::device_count());
    for (i, name) in pulse::device::gpu_names().iter().enumerate() {
        println!("  cuda:{i}: {name}");
    }
    println!("cpu threads: {}", tch::get_num_threads());
    Ok(ExitCode::SUCCESS)
}

/// Loads the model folder named by `--model`, `$PULSE_MODEL` or the default.
pub(super) fn load_model(args: &ModelArgs) -> anyhow::Result<Model> {
    let device = parse_device(&args.device)?;
    let dir = args.model.clone().unwrap_or_else(model::default_dir);
    Model::load(&dir, device)
}

pub(super) fn parse<T: std::str::FromStr<Err = String>>(
    flag: &str,
    value: &str,
) -> anyhow::Result<T> {
    value.parse().map_err(|e: String| anyhow::anyhow!("--{flag}: {e}"))
}

/// `I/N` with I < N.
fn parse_shard(s: &str) -> anyhow::Result<(usize, usize)> {
    let parsed =
        s.split_once('/').and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((i, n)) if n > 0 && i < n => Ok((i, n)),
        _ => bail!("--shard: expected I/N with 0 <= I < N, got '{s}'"),
    }
}

/// A list like "17" or "16,17" (PULSE writes "16.17").
fn parse_layers(s: &str) -> anyhow::Result<Vec<usize>> {
    s.split([',', '.'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse()
                .map_err(|_| anyhow::anyhow!("--bad-noise-layers: '{p}' is not a layer number"))
        })
        .collect()
}

/// `--batch-size`: a positive number, or `auto` (what `auto_size` picks).
pub(super) fn parse_batch_size(
    s: &str,
    auto_size: impl FnOnce() -> usize,
) -> anyhow::Result<usize> {
    match s {
        "auto" => Ok(auto_size()),
        n => n.parse().ok().filter(|&n| n > 0).with_context(|| {
            format!("--batch-size: expected a positive number or auto, got '{n}'")
        }),
    }
}

/// Creates the folder `path` goes in, if it names one.
pub(super) fn create_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("{}: cannot create folder", parent.display()))?;
    }
    Ok(())
}

/// Ctrl-C sets a flag the search checks after every step.
pub(super) fn interrupt_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    // A second handler cannot be installed (tests call this once per process); ignore that.
    let _ = ctrlc::set_handler(move || s.store(true, Ordering::SeqCst));
    stop
}

pub fn upsample(a: UpsampleArgs) -> anyhow::Result<ExitCode> {
    if a.align {
        return super::align::upsample_aligned(a);
    }
    let mut model = load_model(&a.model)?;
    let search = SearchConfig {
        steps: a.steps,
        lr: a.lr,
        optimizer: parse::<OptimizerKind>("optimizer", &a.optimizer)?,
        schedule: parse::<Schedule>("schedule", &a.schedule)?,
        loss: parse::<LossSpec>("loss", &a.loss)?,
        eps: a.eps,
        noise: parse::<NoiseMode>("noise", &a.noise)?,
        trainable_noise: a.trainable_noise,
        bad_noise_layers: parse_layers(&a.bad_noise_layers)?,
        tile_latent: a.tile_latent,
        keep_intermediate: a.save_intermediate,
    };
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_000)
            .unwrap_or(0)
    });
    let batch_size = parse_batch_size(&a.batch_size, || pipelines::auto_batch_size(&model))?;
    let opts = UpsampleOptions {
        inputs: a.inputs,
        out_dir: a.out_dir,
        search,
        seed,
        samples: a.samples,
        batch_size,
        restarts: a.restarts,
        init: a.init,
        save_intermediate: a.save_intermediate,
        compare: a.compare,
        report: a.report,
        shard: a.shard.as_deref().map(parse_shard).transpose()?,
        overwrite: a.overwrite,
        mask: a.mask,
        ignore_alpha: a.ignore_alpha,
        precision: parse::<Precision>("precision", &a.precision)?,
    };
    if model.fit.is_none() {
        fit_with_bar(&mut model, a.quiet)?;
    }
    let stop = interrupt_flag();
    let mut progress = UpsampleProgress::new(a.quiet, opts.search.eps);
    let started = Instant::now();
    let report = pipelines::upsample::run(&mut model, &opts, &mut progress, &stop)?;
    progress.finish();
    if !progress.quiet() {
        eprintln!(
            "pulse: converged {} of {} images ({} refused, {} skipped) in {:.1} s, seed {seed}{}",
            report.converged(),
            report.images.len(),
            report.refused.len(),
            report.skipped.len(),
            started.elapsed().as_secs_f64(),
            if report.interrupted { "; interrupted, rerun to resume" } else { "" },
        );
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// Computes the Gaussian fit with a progress bar (first use of a model without one).
fn fit_with_bar(model: &mut Model, quiet: bool) -> anyhow::Result<()> {
    let bar = progress::bar(model::FIT_SAMPLES as u64, "fit", quiet);
    bar.set_message("Gaussian fit (once per model)");
    model.ensure_fit(&mut |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    Ok(())
}

pub fn fit_gaussian(a: FitGaussianArgs) -> anyhow::Result<ExitCode> {
    let model = load_model(&a.model)?;
    let bar = progress::bar(a.samples as u64, "fit", false);
    let path =
        model::save_fit(&model, a.samples, a.seed, &mut |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    eprintln!("pulse: wrote {} ({} samples, seed {})", path.display(), a.samples, a.seed);
    Ok(ExitCode::SUCCESS)
}

pub fn generate(a: GenerateArgs) -> anyhow::Result<ExitCode> {
    let model = load_model(&a.model)?;
    let outputs = output_paths(&a.out, a.count, a.seed)?;
    let faces = pipelines::generate::generate(&model, a.seed, a.truncation, a.count)?;
    for ((image, latent), path) in faces.into_iter().zip(outputs) {
        pulse::imageio::write_png(&image, &path)?;
        latent.write(&path.with_extension("latent.safetensors"))?;
        eprintln!("pulse: wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `OUT.png` (one face, or `OUT_<k>.png` for several) or a folder of `seed<S>_<k>.png`.
fn output_paths(out: &Path, count: usize, seed: u64) -> anyhow::Result<Vec<PathBuf>> {
    let is_png = out.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if is_png {
        create_parent(out)?;
        if count == 1 {
            return Ok(vec![out.to_path_buf()]);
        }
        let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        return Ok((0..count).map(|k| out.with_file_name(format!("{stem}_{k}.png"))).collect());
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create folder", out.display()))?;
    Ok((0..count).map(|k| out.join(format!("seed{seed}_{k}.png"))).collect())
}

pub fn render(a: RenderArgs) -> anyhow::Result<ExitCode> {
    let model = load_model(&a.model)?;
    let latent = LatentFile::read(&a.latent)?;
    warn_if_other_model(&a.latent, &latent, &model);
    let image = pipelines::render(&model, &a.latent, &latent)?;
    pulse::imageio::write_png(&image, &a.out)?;
    eprintln!("pulse: wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// `render` and `edit` draw a latent of another model anyway (the shapes fit), with a warning.
pub(super) fn warn_if_other_model(path: &Path, latent: &LatentFile, model: &Model) {
    if latent.model_sha256() != model.sha256 {
        eprintln!(
            "pulse: warning: {} was made with another model (sha256 {}), rendering with {}",
            path.display(),
            short_sha(latent.model_sha256()),
            short_sha(&model.sha256)
        );
    }
}

pub fn convert(a: ConvertArgs) -> anyhow::Result<ExitCode> {
    if a.input.canonicalize().ok() == a.out.canonicalize().ok() && a.out.exists() {
        bail!("{}: output and input are the same file", a.out.display());
    }
    let sd = pulse::weights::load(&a.input)?;
    let meta = [("source".to_string(), a.input.display().to_string())].into();
    pulse::weights::save_safetensors(&sd, &a.out, Some(&meta))?;
    eprintln!("pulse: wrote {} ({} tensors)", a.out.display(), sd.len());
    Ok(ExitCode::SUCCESS)
}
