//! `pulse upsample`: its arguments, the run (`--align` first aligns the photos' faces with
//! `align`'s job), the summary and the exit code.
use super::align::run_with_bar;
use super::exit::Exit;
use super::progress::SearchBars;
use super::setup::{
    checked_report_file, fit_with_bar, interrupt_flag, load_model, run_config, search_config,
    shard_of,
};
use super::shared_args::{at_least_one, ModelArgs, SearchArgs, ShardArgs};
use clap::Args;
use pulse::align::{mtcnn, DetectConfig, Mtcnn};
use pulse::device::parse_device;
use pulse::files::escaped;
use pulse::pipelines;
use pulse::pipelines::align::{AlignOptions, Status};
use pulse::pipelines::upsample::{AlignedPhotos, UpsampleOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct UpsampleArgs {
    /// Image files (PNG, JPEG, WebP, BMP, GIF) or folders of them; square, side = resolution / 2^k.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output folder.
    #[arg(short = 'o', long = "output", default_value = "out", value_name = "DIR")]
    pub out_dir: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub search: SearchArgs,
    /// Results per input.
    #[arg(long, default_value = "1", value_parser = at_least_one)]
    pub samples: usize,
    /// Start from a latent file (one input) or a folder of <stem>.latent.safetensors.
    #[arg(long, value_name = "PATH")]
    pub init: Option<PathBuf>,
    /// Also write an animated GIF of the best image as the search went (at most 128 frames).
    #[arg(long)]
    pub save_intermediate: bool,
    /// Also write input | result | result downscaled, side by side.
    #[arg(long)]
    pub compare: bool,
    /// Write a JSON report here (merged with the report of an earlier run in the same place).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Greyscale weight image for RGB targets (0 = unconstrained).
    #[arg(long, value_name = "FILE")]
    pub mask: Option<PathBuf>,
    /// Ignore the alpha channel of RGBA targets.
    #[arg(long)]
    pub ignore_alpha: bool,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Redo images whose outputs already exist.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bars or summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Inputs are photos: find and align the largest face of each first (as `pulse align`),
    /// keep those 32x32 faces as <OUT>/aligned/<stem>.png, and upsample them.
    #[arg(long)]
    pub align: bool,
}

pub fn upsample(a: UpsampleArgs) -> anyhow::Result<Exit> {
    if a.align {
        return upsample_aligned(a);
    }
    let shard = shard_of(&a.shard)?;
    upsample_run(a, shard, None)
}

/// Upsamples the inputs of `a` (of `shard`, already resolved). With `aligned` (from
/// `upsample --align`) the inputs are this shard's aligned faces and the report is already named.
fn upsample_run(
    mut a: UpsampleArgs,
    shard: Option<pipelines::shard::ShardInfo>,
    aligned: Option<pipelines::upsample::AlignedPhotos>,
) -> anyhow::Result<Exit> {
    if aligned.is_none() {
        a.report =
            a.report.map(|r| checked_report_file(&r, shard.as_ref(), "report")).transpose()?;
    }
    let mut model = load_model(&a.model)?;
    let search = search_config(&a.search, model.layout(), a.save_intermediate)?;
    let run = run_config(&a.search, a.samples, &a.model, &model);
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
    if a.search.cuda_graph && !model.device.is_cuda() {
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

/// `upsample --align`: align every input first, writing the largest face of each as
/// `<OUT>/aligned/<stem>.png` (32x32, kept there), then upsample those into `<OUT>` as usual, so
/// results keep the photos' names (`<OUT>/<stem>.png`). Every output name (aligned faces,
/// results, latents, sheets, the report) is planned against the photos before any work; a photo
/// whose outputs clash, that cannot be read or has no face is refused (named, listed under
/// `refused` in the report, exit code 2) and the others go on.
fn upsample_aligned(mut a: UpsampleArgs) -> anyhow::Result<Exit> {
    let device = parse_device(&a.model.device)?;
    let shard = shard_of(&a.shard)?;
    a.report = a.report.map(|r| checked_report_file(&r, shard.as_ref(), "report")).transpose()?;
    let photos = pulse::pipelines::collect_inputs(&a.inputs)?;
    if photos.is_empty() {
        return Err(pulse::Invalid(format!(
            "nothing to do: no photo in {} (photos are {})",
            a.inputs.iter().map(|p| escaped(p)).collect::<Vec<_>>().join(", "),
            pulse::imageio::INPUT_EXTENSIONS.join(", ")
        ))
        .into());
    }
    let aligned_dir = a.out_dir.join("aligned");
    let planned = plan_photos(&a, &photos, &aligned_dir)?;
    // The same settings `upsample` then applies (and announces) when it loads the model.
    let determinism =
        pulse::device::Determinism::from_nondeterministic_flag(a.model.nondeterministic);
    pulse::device::configure(device, determinism)?;
    let mtcnn = Mtcnn::load(&mtcnn::default_dir(), device)?;
    let opts = AlignOptions {
        inputs: photos.clone(),
        out_dir: aligned_dir,
        size: 32,
        all_faces: false,
        detect: DetectConfig::default(),
        save_aligned: false,
        report: None,
        shard: shard.clone(),
        refuse: planned,
        overwrite: a.overwrite,
        device,
    };
    // The same Ctrl-C flag as the searches that follow: interrupted here, nothing is upsampled.
    let report = run_with_bar(&mtcnn, &opts, a.quiet, &interrupt_flag())?;
    drop(mtcnn);
    if report.interrupted {
        return Ok(Exit::Interrupted);
    }
    let refused = report
        .inputs
        .iter()
        .filter(|r| matches!(r.status, Status::NoFace | Status::Refused))
        .map(|r| (r.input.clone(), r.error.clone().unwrap_or_default()))
        .collect();
    a.inputs = report.outputs();
    a.align = false;
    upsample_run(a, shard, Some(AlignedPhotos { photos, refused }))
}

/// Plans the names of every photo's outputs (all shards) before any work, with the settings
/// `upsample` will run with; returns the photos refused.
fn plan_photos(
    a: &UpsampleArgs,
    photos: &[PathBuf],
    aligned_dir: &Path,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let opts = UpsampleOptions {
        inputs: vec![],
        out_dir: a.out_dir.clone(),
        search: pulse::pulse::SearchConfig::default(),
        run: pulse::pipelines::RunConfig {
            seed: 0,
            samples: a.samples,
            batch_size: 1,
            restarts: 0,
            precision: a.search.precision,
            deterministic: true,
        },
        init: a.init.clone(),
        save_intermediate: a.save_intermediate,
        compare: a.compare,
        report: a.report.clone(),
        shard: None,
        aligned: None,
        overwrite: a.overwrite,
        mask: a.mask.clone(),
        ignore_alpha: a.ignore_alpha,
    };
    let refused = pulse::pipelines::upsample::plan_photos(&opts, photos, aligned_dir)?;
    let mut refused: Vec<(PathBuf, String)> =
        refused.into_iter().map(|(p, e)| (p, format!("{e:#}"))).collect();
    refused.sort();
    Ok(refused)
}
