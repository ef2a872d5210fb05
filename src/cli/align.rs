//! `pulse align` and `pulse upsample --align`: arguments, progress bar, summary.
use super::args::{ShardArgs, UpsampleArgs};
use super::commands::interrupt_flag;
use super::exit::{input, Exit};
use super::progress;
use clap::Args;
use indicatif::ProgressBar;
use pulse::align::{mtcnn, DetectConfig, Mtcnn};
use pulse::device::parse_device;
use pulse::files::escaped;
use pulse::pipelines::align::{
    self as job, AlignObserver, AlignOptions, AlignReport, InputRecord, Status,
};
use pulse::pipelines::upsample::AlignedPhotos;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct AlignArgs {
    /// Photos (PNG, JPEG, WebP, BMP, GIF; EXIF orientation applied) or folders of them.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output folder: <stem>.png per photo (<stem>_<k>.png with --all-faces).
    #[arg(short = 'o', long = "output", default_value = "aligned", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Side of the low-resolution faces: a power of two from 8 to 1024.
    #[arg(long, default_value_t = 32, value_parser = parse_size, allow_negative_numbers = true)]
    pub size: i64,
    /// Every face of each photo, largest first (<stem>_0.png, <stem>_1.png, ...), not only the
    /// largest.
    #[arg(long)]
    pub all_faces: bool,
    /// Smallest face searched for, in pixels (MTCNN finds some down to about half of it).
    #[arg(long, default_value_t = 20.0, value_name = "PX", value_parser = parse_min_face, allow_negative_numbers = true)]
    pub min_face: f64,
    /// Write a JSON report here: per photo, every face's box, score, landmarks and output file.
    /// A folder, or a name with {shard} in it, gets one report per shard (align.<I>-of-<N>.json).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Also write each 1024x1024 aligned face (<name>.aligned.png).
    #[arg(long)]
    pub save_aligned: bool,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = device_name)]
    pub device: String,
    /// Folder of the MTCNN weights (pnet.pt, rnet.pt, onet.pt); default $PULSE_MTCNN, else
    /// models/mtcnn.
    #[arg(long, value_name = "DIR")]
    pub mtcnn: Option<PathBuf>,
    /// Redo photos whose outputs already exist.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bar or summary.
    #[arg(short, long)]
    pub quiet: bool,
}

fn parse_size(s: &str) -> Result<i64, String> {
    let size: i64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    job::check_size(size).map(|()| size)
}

fn device_name(s: &str) -> Result<String, String> {
    pulse::device::parse_device_name(s).map(|_| s.to_string()).map_err(|e| e.to_string())
}

pub(super) fn parse_min_face(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v >= 1.0 && v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a size in pixels (at least 1)")),
    }
}

pub fn align(a: AlignArgs) -> anyhow::Result<Exit> {
    let device = parse_device(&a.device)?;
    let shard = super::report::shard_of(&a.shard)?;
    // Deterministic CUDA kernels, strict float32: the same photo gives the same landmarks.
    super::commands::configure_device(device, false)?;
    let mtcnn = load_mtcnn(&a.mtcnn.unwrap_or_else(mtcnn::default_dir), device)?;
    let opts = AlignOptions {
        inputs: a.inputs,
        out_dir: a.out_dir,
        size: a.size,
        all_faces: a.all_faces,
        detect: DetectConfig { min_face: a.min_face, ..DetectConfig::default() },
        save_aligned: a.save_aligned,
        report: a
            .report
            .map(|r| super::report::checked_report_file(&r, shard.as_ref(), "align"))
            .transpose()?,
        shard,
        refuse: vec![],
        overwrite: a.overwrite,
        device,
    };
    let report = run_with_bar(&mtcnn, &opts, a.quiet, &interrupt_flag())?;
    Ok(report.verdict().into())
}

/// The MTCNN weights; a folder or file that cannot be used is refused like any weight file
/// (exit code 2).
fn load_mtcnn(dir: &Path, device: tch::Device) -> anyhow::Result<Mtcnn> {
    input(Mtcnn::load(dir, device))
}

/// `upsample --align`: align every input first, writing the largest face of each as
/// `<OUT>/aligned/<stem>.png` (32x32, kept there), then upsample those into `<OUT>` as usual, so
/// results keep the photos' names (`<OUT>/<stem>.png`). Every output name (aligned faces,
/// results, latents, sheets, the report) is planned against the photos before any work; a photo
/// whose outputs clash, that cannot be read or has no face is refused (named, listed under
/// `refused` in the report, exit code 2) and the others go on.
pub(super) fn upsample_aligned(mut a: UpsampleArgs) -> anyhow::Result<Exit> {
    let device = parse_device(&a.model.device)?;
    let shard = super::report::shard_of(&a.shard)?;
    a.report = a
        .report
        .map(|r| super::report::checked_report_file(&r, shard.as_ref(), "report"))
        .transpose()?;
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
    let mtcnn = load_mtcnn(&mtcnn::default_dir(), device)?;
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
    super::commands::upsample_run(a, shard, Some(AlignedPhotos { photos, refused }))
}

/// Plans the names of every photo's outputs (all shards) before any work, with the settings
/// `upsample` will run with; returns the photos refused.
fn plan_photos(
    a: &UpsampleArgs,
    photos: &[PathBuf],
    aligned_dir: &Path,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let opts = pulse::pipelines::upsample::UpsampleOptions {
        inputs: vec![],
        out_dir: a.out_dir.clone(),
        search: pulse::pulse::SearchConfig::default(),
        run: pulse::pipelines::RunConfig {
            seed: 0,
            samples: a.samples,
            batch_size: 1,
            restarts: 0,
            precision: a.precision,
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

/// Runs the job with a progress bar over the photos and prints the summary.
fn run_with_bar(
    mtcnn: &Mtcnn,
    opts: &AlignOptions,
    quiet: bool,
    stop: &AtomicBool,
) -> anyhow::Result<AlignReport> {
    let mut bar = AlignProgress { bar: progress::bar(0, "align", quiet), quiet, last_line: None };
    let started = Instant::now();
    let report = job::run(mtcnn, opts, &mut bar, stop)?;
    bar.bar.finish_and_clear();
    if !quiet {
        let faces: usize = report.inputs.iter().map(|r| r.outputs.len()).sum();
        eprintln!(
            "pulse: {faces} face(s) from {} photo(s) in {} ({} without a face, {} refused, {} skipped) in {:.1} s{}",
            report.inputs.len(),
            escaped(&opts.out_dir),
            report.count(Status::NoFace),
            report.count(Status::Refused),
            report.count(Status::Skipped),
            started.elapsed().as_secs_f64(),
            if report.interrupted { "; interrupted, rerun to resume" } else { "" },
        );
    }
    Ok(report)
}

/// A bar over the photos; refusals are printed above it (always, even with `-q`).
struct AlignProgress {
    bar: ProgressBar,
    quiet: bool,
    /// When the last progress line was printed without a bar.
    last_line: Option<Instant>,
}

impl AlignObserver for AlignProgress {
    fn started(&mut self, inputs: usize) {
        self.bar.set_length(inputs as u64);
    }

    fn refused(&mut self, _input: &Path, error: &anyhow::Error) {
        self.bar.suspend(|| eprintln!("pulse: refused: {error:#}"));
    }

    fn skipped(&mut self, input: &Path, output: &Path) {
        if !self.quiet {
            self.bar.suspend(|| {
                eprintln!(
                    "pulse: skipping {} ({} exists; --overwrite redoes it)",
                    escaped(input),
                    escaped(output)
                )
            });
        }
    }

    fn progress(&mut self, input: &Path, done: usize, total: usize) {
        // Only large photos take long enough to show (several bands of P-Net rows).
        if total <= 8 || self.quiet {
            return;
        }
        let percent = 100 * done / total.max(1);
        if !self.bar.is_hidden() {
            self.bar.set_message(format!("{} (finding faces: {percent}%)", escaped(input)));
        } else if done == 1 || self.last_line.is_none_or(|t| t.elapsed().as_secs() >= 5) {
            // No bar (stderr is not a terminal): a line now and then, for logs.
            eprintln!("pulse: finding faces in {}: {percent}%", escaped(input));
            self.last_line = Some(Instant::now());
        }
    }

    fn finished(&mut self, record: &InputRecord) {
        self.bar.inc(1);
        self.bar.set_message(escaped(&record.input));
        if self.bar.is_hidden() && !self.quiet && record.status == Status::Aligned {
            let outputs: Vec<String> = record.outputs.iter().map(|p| escaped(p)).collect();
            eprintln!("pulse: {} -> {}", escaped(&record.input), outputs.join(", "));
        }
    }
}

/// `eval --align`: aligns every photo's largest face at `size` (the model's resolution) into
/// `dir` and returns the faces written (and those an earlier run wrote).
pub(super) fn align_for_eval(
    photos: &[PathBuf],
    dir: &Path,
    size: i64,
    model: &super::args::ModelArgs,
    overwrite: bool,
    quiet: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let device = parse_device(&model.device)?;
    let photos = pulse::pipelines::collect_inputs(photos)?;
    if photos.is_empty() {
        return Err(pulse::Invalid("nothing to do: no photo given".into()).into());
    }
    let mtcnn = load_mtcnn(&mtcnn::default_dir(), device)?;
    let opts = AlignOptions {
        inputs: photos,
        out_dir: dir.to_path_buf(),
        size,
        all_faces: false,
        detect: DetectConfig::default(),
        save_aligned: false,
        report: None,
        shard: None,
        refuse: vec![],
        overwrite,
        device,
    };
    let report = run_with_bar(&mtcnn, &opts, quiet, &interrupt_flag())?;
    if report.interrupted {
        anyhow::bail!("interrupted while aligning; run the same command again to resume");
    }
    let faces = report.outputs();
    if faces.is_empty() {
        return Err(pulse::Invalid("no face found in the photos".into()).into());
    }
    Ok(faces)
}
