//! `pulse report merge|summary`, and the shard arguments of the commands that take folders
//! (`--shard I/N|auto`, `--shards N`, per-shard report names).
use super::args::ShardArgs;
use super::exit::Exit;
use clap::{Args, Subcommand};
use pulse::files::escaped;
use pulse::pipelines::report::{self, ShardReport, Summary, Verdict};
use pulse::pipelines::shard::{self, ShardInfo};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Join the reports of a job's shards into one report; prints the one-line summary and exits
    /// with the code of the whole job.
    Merge(MergeArgs),
    /// The one-line summary and exit code of the job whose shard reports are in DIR.
    Summary(SummaryArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' reports (`upsample --report`, `align --report`).
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
    /// Write the merged report here.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// A folder holding the shards' reports (merged reports in it are left out).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn report(command: ReportCommand) -> anyhow::Result<Exit> {
    match command {
        ReportCommand::Merge(a) => merge(a),
        ReportCommand::Summary(a) => summary(a),
    }
}

fn merge(a: MergeArgs) -> anyhow::Result<Exit> {
    if let Some(out) = &a.out {
        if out.is_dir() {
            return Err(pulse::Invalid(format!(
                "{}: is a folder; -o takes the file name of the merged report",
                escaped(out)
            ))
            .into());
        }
        let inputs: Vec<&Path> = a.reports.iter().map(PathBuf::as_path).collect();
        super::commands::check_outputs(&inputs, &[out])?;
    }
    let reports =
        a.reports.iter().map(|p| ShardReport::read(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let (merged, summary) = report::merge(&reports)?;
    if let Some(out) = &a.out {
        report::check_merge_output(&merged, out)?;
        report::write(&merged, out)?;
    }
    print_summary(&summary);
    if let Some(out) = &a.out {
        eprintln!("pulse: wrote {}", escaped(out));
    }
    Ok(summary.verdict.into())
}

fn summary(a: SummaryArgs) -> anyhow::Result<Exit> {
    // One line per command whose reports are there; the exit code of the worst.
    let mut worst: Option<Verdict> = None;
    let (kinds, unreadable) = report::reports_in(&a.dir)?;
    for why in &unreadable {
        eprintln!("pulse: warning: {why}; left out of the summary");
    }
    for reports in kinds.values() {
        let (_, summary) = report::merge(reports)?;
        print_summary(&summary);
        worst = Some(worst.map_or(summary.verdict, |w| w.worst(summary.verdict)));
    }
    Ok(worst.map_or(Exit::Success, Exit::from))
}

/// The summary line on stdout (scripts read it), the missing inputs on stderr.
fn print_summary(summary: &Summary) {
    println!("{}", summary.line());
    for input in summary.missing_inputs.iter().take(20) {
        eprintln!("pulse: missing: {input}");
    }
    if summary.missing_inputs.len() > 20 {
        eprintln!("pulse: ... and {} more missing", summary.missing_inputs.len() - 20);
    }
}

/// Resolves `--shard`/`--shards` from the command line and the environment; a shard read from a
/// job array is named on stderr (even with `-q`: a task's log should say what it did).
pub(super) fn shard_of(args: &ShardArgs) -> anyhow::Result<Option<ShardInfo>> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let info = shard::resolve(args.shard, args.shards, &env)?;
    if let Some(s) = info.as_ref().filter(|s| !s.detail.is_empty()) {
        eprintln!("pulse: {}", s.describe());
    }
    Ok(info)
}

/// The report file of this run ([`shard::report_path`]).
pub(super) fn report_file(report: &Path, shard: Option<&ShardInfo>, stem: &str) -> PathBuf {
    shard::report_path(report, shard.map(ShardInfo::shard), stem)
}

/// [`report_file`], refused (exit 2) when that file is the report of another shard or split:
/// runs that share one plain `--report` file would take each other's entries for their own.
pub(super) fn checked_report_file(
    report: &Path,
    shard: Option<&ShardInfo>,
    stem: &str,
) -> anyhow::Result<PathBuf> {
    let path = report_file(report, shard, stem);
    report::check_report_owner(&path, shard.map(ShardInfo::shard))?;
    Ok(path)
}
