//! `pulse report merge|summary`: one report and exit code for a job run in shards.
use super::exit::Exit;
use super::setup::check_outputs;
use clap::{Args, Subcommand};
use pulse::files::escaped;
use pulse::pipelines::report::{self, ShardReport, Summary, Verdict};
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

/// The exit code of a whole job: as a single run's (0, 2 refused, 3 not converged), and for a
/// job with a shard or input missing 1 (a task failed or has not run), or 130 when a shard was
/// interrupted.
fn exit_of(summary: &Summary) -> Exit {
    match summary.verdict {
        Verdict::Success => Exit::Success,
        Verdict::NotConverged => Exit::NotConverged,
        Verdict::Refused => Exit::Refused,
        Verdict::Incomplete if summary.interrupted => Exit::Interrupted,
        Verdict::Incomplete => Exit::Failure,
    }
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
        check_outputs(&inputs, &[out])?;
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
    Ok(exit_of(&summary))
}

fn summary(a: SummaryArgs) -> anyhow::Result<Exit> {
    // One line per command whose reports are there; the exit code of the worst.
    let mut worst: Option<(Verdict, Exit)> = None;
    let (kinds, unreadable) = report::reports_in(&a.dir)?;
    for why in &unreadable {
        eprintln!("pulse: warning: {why}; left out of the summary");
    }
    for reports in kinds.values() {
        let (_, summary) = report::merge(reports)?;
        print_summary(&summary);
        worst = Some(match worst {
            Some((v, e)) if v.worst(summary.verdict) == v => (v, e),
            _ => (summary.verdict, exit_of(&summary)),
        });
    }
    Ok(worst.map_or(Exit::Success, |(_, e)| e))
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
