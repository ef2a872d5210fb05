//! `pulse align` and `pulse upsample --align`: arguments, progress bar, summary.
use super::args::UpsampleArgs;
use super::commands::interrupt_flag;
use super::exit::Exit;
use super::progress;
use clap::Args;
use indicatif::ProgressBar;
use pulse::align::{mtcnn, DetectConfig, Mtcnn};
use pulse::device::parse_device;
use pulse::files::escaped;
use pulse::pipelines::align::{self as job, AlignOptions, InputRecord, Observer, Report, Status};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct AlignArgs {
    /// Photos (PNG, JPEG, WebP, BMP; EXIF orientation applied) or folders of them.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output folder: <stem>.png per photo (<stem>_<k>.png with --all-faces).
    #[arg(short = 'o', long = "output", default_value = "aligned", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Side of the low-resolution faces: a power of two from 8 to 1024.
    #[arg(long, default_value_t = 32, value_parser = parse_size)]
    pub size: i64,
    /// Every face of each photo, largest first (<stem>_0.png, <stem>_1.png, ...), not only the
    /// largest.
    #[arg(long)]
    pub all_faces: bool,
    /// Smallest face searched for, in pixels (MTCNN finds some down to about half of it).
    #[arg(long, default_value_t = 20.0, value_name = "PX", value_parser = parse_min_face)]
    pub min_face: f64,
    /// Write a JSON report here: per photo, every face's box, score, landmarks and output file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
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

/// How a run ended: interrupted, some photo refused or without a face, or every photo done.
fn exit_of(report: &Report) -> Exit {
    if report.interrupted {
        Exit::Interrupted
    } else if report.count(Status::NoFace) + report.count(Status::Refused) > 0 {
        Exit::Refused
    } else {
        Exit::Success
    }
}

pub fn align(a: AlignArgs) -> anyhow::Result<Exit> {
    let device = parse_device(&a.device)?;
    // Deterministic CUDA kernels, strict float32: the same photo gives the same landmarks.
    super::commands::configure_device(device, false)?;
    let mtcnn = Mtcnn::load(&a.mtcnn.unwrap_or_else(mtcnn::default_dir), device)?;
    let opts = AlignOptions {
        inputs: a.inputs,
        out_dir: a.out_dir,
        size: a.size,
        all_faces: a.all_faces,
        detect: DetectConfig { min_face: a.min_face, ..DetectConfig::default() },
        save_aligned: a.save_aligned,
        report: a.report,
        overwrite: a.overwrite,
        device,
    };
    let report = run_with_bar(&mtcnn, &opts, a.quiet, &interrupt_flag())?;
    Ok(exit_of(&report))
}

/// `upsample --align`: align every input first, writing the largest face of each as
/// `<OUT>/aligned/<stem>.png` (32x32, kept there), then upsample those into `<OUT>` as usual, so
/// results keep the photos' names (`<OUT>/<stem>.png`). Photos without a face are reported and
/// make the exit code 2; the others go on.
pub(super) fn upsample_aligned(mut a: UpsampleArgs) -> anyhow::Result<Exit> {
    let device = parse_device(&a.model.device)?;
    // The same settings `upsample` then applies (and announces) when it loads the model.
    let determinism =
        pulse::device::Determinism::from_nondeterministic_flag(a.model.nondeterministic);
    pulse::device::configure(device, determinism)?;
    let mtcnn = Mtcnn::load(&mtcnn::default_dir(), device)?;
    let opts = AlignOptions {
        inputs: std::mem::take(&mut a.inputs),
        out_dir: a.out_dir.join("aligned"),
        size: 32,
        all_faces: false,
        detect: DetectConfig::default(),
        save_aligned: false,
        report: None,
        overwrite: a.overwrite,
        device,
    };
    // The same Ctrl-C flag as the searches that follow: interrupted here, nothing is upsampled.
    let report = run_with_bar(&mtcnn, &opts, a.quiet, &interrupt_flag())?;
    drop(mtcnn);
    let aligned = exit_of(&report);
    if aligned == Exit::Interrupted {
        return Ok(aligned);
    }
    a.inputs = report.outputs();
    if a.inputs.is_empty() {
        eprintln!("pulse: no face to upsample");
        return Ok(Exit::Refused);
    }
    a.align = false;
    let upsampled = super::commands::upsample(a)?;
    Ok(if upsampled == Exit::Interrupted || aligned == Exit::Success { upsampled } else { aligned })
}

/// Runs the job with a progress bar over the photos and prints the summary.
fn run_with_bar(
    mtcnn: &Mtcnn,
    opts: &AlignOptions,
    quiet: bool,
    stop: &AtomicBool,
) -> anyhow::Result<Report> {
    let mut bar = AlignProgress { bar: progress::bar(0, "align", quiet), quiet };
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
}

impl Observer for AlignProgress {
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

    fn finished(&mut self, record: &InputRecord) {
        self.bar.inc(1);
        self.bar.set_message(escaped(&record.input));
        if self.bar.is_hidden() && !self.quiet && record.status == Status::Aligned {
            let outputs: Vec<String> = record.outputs.iter().map(|p| escaped(p)).collect();
            eprintln!("pulse: {} -> {}", escaped(&record.input), outputs.join(", "));
        }
    }
}
