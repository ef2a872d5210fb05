//! `pulse align`: arguments, progress bar, summary; the MTCNN loading and the aligning run
//! that `upsample --align` and `eval --align` share.
use super::exit::Exit;
use super::progress;
use super::setup::{checked_report_file, configure_device, interrupt_flag, shard_of};
use super::shared_args::{device, min_face, ModelArgs, ShardArgs};
use clap::Args;
use indicatif::ProgressBar;
use pulse::align::{mtcnn, DetectConfig, Mtcnn};
use pulse::device::parse_device;
use pulse::files::escaped;
use pulse::pipelines::align::{
    self as job, AlignObserver, AlignOptions, AlignReport, InputRecord, Status,
};
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
    #[arg(long, default_value_t = 20.0, value_name = "PX", value_parser = min_face, allow_negative_numbers = true)]
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
    #[arg(long, default_value = "auto", value_parser = device)]
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

/// How a run ended: interrupted, some photo refused or without a face, or every photo done.
fn exit_of(report: &AlignReport) -> Exit {
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
    let shard = shard_of(&a.shard)?;
    // Deterministic CUDA kernels, strict float32: the same photo gives the same landmarks.
    configure_device(device, false)?;
    let mtcnn = Mtcnn::load(&a.mtcnn.unwrap_or_else(mtcnn::default_dir), device)?;
    let opts = AlignOptions {
        inputs: a.inputs,
        out_dir: a.out_dir,
        size: a.size,
        all_faces: a.all_faces,
        detect: DetectConfig { min_face: a.min_face, ..DetectConfig::default() },
        save_aligned: a.save_aligned,
        report: a.report.map(|r| checked_report_file(&r, shard.as_ref(), "align")).transpose()?,
        shard,
        refuse: vec![],
        overwrite: a.overwrite,
        device,
    };
    let report = run_with_bar(&mtcnn, &opts, a.quiet, &interrupt_flag())?;
    Ok(exit_of(&report))
}

/// Runs the job with a progress bar over the photos and prints the summary.
pub(super) fn run_with_bar(
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
    model: &ModelArgs,
    overwrite: bool,
    quiet: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let device = parse_device(&model.device)?;
    let photos = pulse::pipelines::collect_inputs(photos)?;
    if photos.is_empty() {
        return Err(pulse::Invalid("nothing to do: no photo given".into()).into());
    }
    let mtcnn = Mtcnn::load(&mtcnn::default_dir(), device)?;
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
