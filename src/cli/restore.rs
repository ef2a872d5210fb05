//! `pulse restore`: arguments (the search flags `upsample` has, restore's own), progress bars,
//! summary, exit code.
use super::exit::Exit;
use super::progress::SearchBars;
use super::setup::{
    checked_report_file, fit_with_bar, interrupt_flag, load_model, run_config, search_config,
    shard_of,
};
use super::shared_args::{at_least_one, min_face, offering, ModelArgs, SearchArgs, ShardArgs};
use clap::Args;
use pulse::align::{mtcnn, DetectConfig, Mtcnn};
use pulse::files::escaped;
use pulse::pipelines::restore::{self, RestoreOptions, Status};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Photos (PNG, JPEG, WebP, BMP, GIF; EXIF orientation applied) or folders of them.
    #[arg(required = true, value_name = "PHOTO")]
    pub inputs: Vec<PathBuf>,
    /// Output folder.
    #[arg(short = 'o', long = "output", default_value = "restored", value_name = "DIR")]
    pub out_dir: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Every face's search, as for `upsample`.
    #[command(flatten)]
    pub search: SearchArgs,
    /// Restored versions of each photo (each face searched from its own seed).
    #[arg(long, default_value = "1", value_parser = at_least_one)]
    pub samples: usize,
    /// The restored photo is this many times the photo's size: 2, 4 or 8.
    #[arg(long, default_value_t = 4, value_parser = offering(parse_upscale, &["2", "4", "8"]))]
    pub upscale: i64,
    /// Restore only the face nearest the photo's centre.
    #[arg(long)]
    pub only_center_face: bool,
    /// Restore at most this many faces per photo (the largest).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub max_faces: Option<usize>,
    /// Smallest face searched for, in pixels (MTCNN finds some down to about half of it).
    #[arg(long, default_value_t = 20.0, value_name = "PX", value_parser = min_face)]
    pub min_face: f64,
    /// Also write the plain enlargement | the restored photo, side by side.
    #[arg(long)]
    pub compare: bool,
    /// Write a JSON report here: per photo, its faces and their searches.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Redo photos whose outputs already exist.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bars or summary.
    #[arg(short, long)]
    pub quiet: bool,
}

fn parse_upscale(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(n) if restore::UPSCALES.contains(&n) => Ok(n),
        _ => Err(format!(
            "expected 2, 4 or 8 (PULSE's downscaler works by powers of two), got '{s}'"
        )),
    }
}

pub fn restore(a: RestoreArgs) -> anyhow::Result<Exit> {
    let shard = shard_of(&a.shard)?;
    let report =
        a.report.as_ref().map(|r| checked_report_file(r, shard.as_ref(), "restore")).transpose()?;
    let mut model = load_model(&a.model)?;
    let mtcnn = Mtcnn::load(&mtcnn::default_dir(), model.device)?;
    let search = search_config(&a.search, model.layout(), false)?;
    let run = run_config(&a.search, a.samples, &a.model, &model);
    let seed = run.seed;
    let opts = RestoreOptions {
        inputs: a.inputs,
        out_dir: a.out_dir,
        search,
        run,
        upscale: a.upscale,
        only_center_face: a.only_center_face,
        max_faces: a.max_faces,
        detect: DetectConfig { min_face: a.min_face, ..DetectConfig::default() },
        compare: a.compare,
        report,
        shard,
        overwrite: a.overwrite,
    };
    if a.search.cuda_graph && !model.device.is_cuda() {
        eprintln!("pulse: --cuda-graph: no effect on the CPU");
    }
    if model.fit.is_none() {
        fit_with_bar(&mut model, a.quiet)?;
    }
    let stop = interrupt_flag();
    let mut progress = SearchBars::restore(a.quiet, opts.search.eps);
    let started = Instant::now();
    let report = restore::run(&mut model, &mtcnn, &opts, &mut progress, &stop)?;
    progress.finish();
    let (faces, converged) = report.faces();
    if !a.quiet {
        eprintln!(
            "pulse: {} photo(s) restored into {} ({faces} face(s), {converged} converged; {} without a face, {} refused, {} skipped) in {:.1} s, seed {seed}{}",
            report.count(Status::Restored),
            escaped(&opts.out_dir),
            report.count(Status::NoFace),
            report.count(Status::Refused),
            report.count(Status::Skipped),
            started.elapsed().as_secs_f64(),
            if report.interrupted { "; interrupted, rerun to resume" } else { "" },
        );
    }
    Ok(if report.interrupted {
        Exit::Interrupted
    } else if report.count(Status::Refused) > 0 {
        Exit::Refused
    } else if converged < faces {
        Exit::NotConverged
    } else {
        Exit::Success
    })
}
