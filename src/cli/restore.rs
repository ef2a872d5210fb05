//! `pulse restore`: arguments (upsample's search flags plus restore's own), progress bars,
//! summary, exit code.
use super::args::UpsampleArgs;
use super::commands::{self, interrupt_flag};
use super::exit::Exit;
use super::progress::SearchBars;
use clap::Args;
use pulse::align::{mtcnn, DetectConfig, Mtcnn};
use pulse::files::escaped;
use pulse::pipelines::restore::{self, RestoreOptions, Status};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Photos, output folder and every search setting, as for `upsample`.
    #[command(flatten)]
    pub search: UpsampleArgs,
    /// The restored photo is this many times the photo's size: 2, 4 or 8.
    #[arg(long, default_value_t = 4, value_parser = super::args::offering(parse_upscale, &["2", "4", "8"]))]
    pub upscale: i64,
    /// Restore only the face nearest the photo's centre.
    #[arg(long)]
    pub only_center_face: bool,
    /// Restore at most this many faces per photo (the largest).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub max_faces: Option<usize>,
    /// Smallest face searched for, in pixels (MTCNN finds some down to about half of it).
    #[arg(long, default_value_t = 20.0, value_name = "PX", value_parser = super::align::parse_min_face)]
    pub min_face: f64,
}

fn parse_upscale(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(n) if restore::UPSCALES.contains(&n) => Ok(n),
        _ => Err(format!(
            "expected 2, 4 or 8 (PULSE's downscaler works by powers of two), got '{s}'"
        )),
    }
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number of at least 1, got '{s}'")),
    }
}

/// Upsample's flags that mean nothing for whole photos: refused by name (usage error).
fn refuse_upsample_only(a: &UpsampleArgs) -> anyhow::Result<()> {
    let given = [
        ("--align", a.align),
        ("--mask", a.mask.is_some()),
        ("--ignore-alpha", a.ignore_alpha),
        ("--init", a.init.is_some()),
        ("--save-intermediate", a.save_intermediate),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
        return Err(pulse::Invalid(format!(
            "{flag} does not apply to restore (it finds and aligns the faces itself)"
        ))
        .into());
    }
    Ok(())
}

pub fn restore(a: RestoreArgs) -> anyhow::Result<Exit> {
    let RestoreArgs { search: u, upscale, only_center_face, max_faces, min_face } = a;
    refuse_upsample_only(&u)?;
    let shard = super::report::shard_of(&u.shard)?;
    let report = u
        .report
        .as_ref()
        .map(|r| super::report::checked_report_file(r, shard.as_ref(), "restore"))
        .transpose()?;
    let mut model = commands::load_model(&u.model)?;
    let mtcnn = Mtcnn::load(&mtcnn::default_dir(), model.device)?;
    let search = commands::search_config(&u, model.layout())?;
    let run = commands::run_config(&u, &model);
    let seed = run.seed;
    let opts = RestoreOptions {
        inputs: u.inputs,
        out_dir: u.out_dir,
        search,
        run,
        upscale,
        only_center_face,
        max_faces,
        detect: DetectConfig { min_face, ..DetectConfig::default() },
        compare: u.compare,
        report,
        shard,
        overwrite: u.overwrite,
    };
    if u.cuda_graph && !model.device.is_cuda() {
        eprintln!("pulse: --cuda-graph: no effect on the CPU");
    }
    if model.fit.is_none() {
        commands::fit_with_bar(&mut model, u.quiet)?;
    }
    let stop = interrupt_flag();
    let mut progress = SearchBars::restore(u.quiet, opts.search.eps);
    let started = Instant::now();
    let report = restore::run(&mut model, &mtcnn, &opts, &mut progress, &stop)?;
    progress.finish();
    let (faces, converged) = report.faces();
    if !u.quiet {
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
    Ok(report.verdict().into())
}
