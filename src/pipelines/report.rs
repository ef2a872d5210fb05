//! One report for a job run in shards (`pulse report merge`, `pulse report summary`): the
//! reports of its shards, read back and joined into the report one unsharded run would have
//! written, with a verdict for the whole job (docs/design.md, "Shards").
//!
//! A report is read into its kind's type ([`Entries`]): what every kind has (`kind`, `shard`,
//! `assigned`, `interrupted`), its entries (`upsample`'s `images`, `refused`, `skipped`,
//! `skipped_inputs`; `align`'s `inputs`; `restore`'s `photos`), and the job's settings, which
//! must agree between shards. Each kind joins its own entries and counts its own summary; an
//! entry's fields that merging does not need are carried through as they are.
use crate::files::escaped;
use crate::Invalid;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Settings that may differ between the shards of one job: where each ran and how it batched.
const PER_MACHINE: [&str; 2] = ["device", "batch_size"];

/// A report's `shard`: which shard of how many, and where that came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardTag {
    pub index: u64,
    pub count: u64,
    /// `source`, `detail`, and in a merged report's `shards` the `report` file.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One image of an `upsample` report (one sample of an input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageEntry {
    pub input: String,
    pub sample: u64,
    pub converged: bool,
    /// Outputs, seed, loss history...: carried as written.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// An input an `upsample` run refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedEntry {
    pub input: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One photo of an `align` report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlignEntry {
    pub input: String,
    pub status: super::align::Status,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One photo of a `restore` report, with its faces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhotoEntry {
    pub input: String,
    pub status: super::restore::Status,
    #[serde(default)]
    pub faces: Vec<FaceEntry>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// One face (one sample of it) of a restored photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceEntry {
    pub converged: bool,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A report's entries, by its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Entries {
    Upsample {
        images: Vec<ImageEntry>,
        refused: Vec<RefusedEntry>,
        /// Outputs found finished.
        skipped: Vec<String>,
        /// Inputs all of whose samples an earlier run finished.
        skipped_inputs: Vec<String>,
    },
    Align {
        inputs: Vec<AlignEntry>,
    },
    Restore {
        photos: Vec<PhotoEntry>,
    },
    /// A kind merging does not know entries of (`eval`'s shard files): its arrays, joined as
    /// they are.
    Other(BTreeMap<String, Vec<Value>>),
}

/// A report written by a pulse command, by its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFile {
    pub kind: String,
    /// Absent, `null` for a whole run (or a merged report), or the shard it worked on.
    pub shard: Option<Option<ShardTag>>,
    /// The inputs the run was given (its shard's), as written (escaped).
    pub assigned: Option<Vec<String>>,
    pub interrupted: bool,
    /// A merged report's shards, each with its `report` file.
    pub shards: Option<Vec<ShardTag>>,
    pub entries: Entries,
    /// Everything else: the job's settings, model...; the same in every shard of one job
    /// ([`PER_MACHINE`] settings aside).
    pub job: Map<String, Value>,
}

/// Removes `key` from `map` and reads it as a `T` (`None` when absent).
fn take<T: DeserializeOwned>(map: &mut Map<String, Value>, key: &str) -> Result<Option<T>, String> {
    map.remove(key)
        .map(|v| serde_json::from_value(v).map_err(|e| format!("`{key}`: {e}")))
        .transpose()
}

impl ReportFile {
    /// Reads a report's object into its kind's type.
    fn from_map(mut map: Map<String, Value>) -> Result<Self, String> {
        let kind: String = take(&mut map, "kind")?.ok_or("no kind")?;
        let shard = match map.remove("shard") {
            None => None,
            Some(v) => Some(serde_json::from_value(v).map_err(|e| format!("`shard`: {e}"))?),
        };
        let assigned = take(&mut map, "assigned")?;
        let interrupted = take(&mut map, "interrupted")?.unwrap_or(false);
        let shards = take(&mut map, "shards")?;
        let entries = match kind.as_str() {
            super::upsample::KIND => Entries::Upsample {
                images: take(&mut map, "images")?.unwrap_or_default(),
                refused: take(&mut map, "refused")?.unwrap_or_default(),
                skipped: take(&mut map, "skipped")?.unwrap_or_default(),
                skipped_inputs: take(&mut map, "skipped_inputs")?.unwrap_or_default(),
            },
            super::align::KIND => {
                Entries::Align { inputs: take(&mut map, "inputs")?.unwrap_or_default() }
            }
            super::restore::KIND => {
                Entries::Restore { photos: take(&mut map, "photos")?.unwrap_or_default() }
            }
            _ => {
                let arrays: Vec<String> =
                    map.iter().filter(|(_, v)| v.is_array()).map(|(k, _)| k.clone()).collect();
                let mut other = BTreeMap::new();
                for key in arrays {
                    other.insert(key.clone(), take(&mut map, &key)?.unwrap_or_default());
                }
                Entries::Other(other)
            }
        };
        Ok(Self { kind, shard, assigned, interrupted, shards, entries, job: map })
    }

    /// The report as JSON (fields in alphabetical order, as every report is read back).
    pub fn to_value(&self) -> Value {
        fn json<T: Serialize>(v: &T) -> Value {
            serde_json::to_value(v).unwrap_or(Value::Null)
        }
        let mut map = self.job.clone();
        let mut put = |key: &str, v: Value| {
            map.insert(key.to_string(), v);
        };
        put("kind", Value::String(self.kind.clone()));
        if let Some(shard) = &self.shard {
            put("shard", json(shard));
        }
        if let Some(a) = &self.assigned {
            put("assigned", json(a));
        }
        put("interrupted", Value::Bool(self.interrupted));
        if let Some(s) = &self.shards {
            put("shards", json(s));
        }
        match &self.entries {
            Entries::Upsample { images, refused, skipped, skipped_inputs } => {
                put("images", json(images));
                put("refused", json(refused));
                put("skipped", json(skipped));
                put("skipped_inputs", json(skipped_inputs));
            }
            Entries::Align { inputs } => put("inputs", json(inputs)),
            Entries::Restore { photos } => put("photos", json(photos)),
            Entries::Other(arrays) => {
                for (k, v) in arrays {
                    put(k, json(v));
                }
            }
        }
        Value::Object(map)
    }
}

/// A report read from a file.
#[derive(Debug, Clone)]
pub struct ShardReport {
    pub path: PathBuf,
    pub report: ReportFile,
}

impl ShardReport {
    /// Reads a report written by a pulse command; anything else is refused, naming the file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .map_err(|e| Invalid(format!("{}: cannot read: {e}", escaped(path))))?;
        let not_one = |why: &str| Invalid(format!("{}: not a pulse report ({why})", escaped(path)));
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| not_one("not JSON"))?;
        let Value::Object(value) = value else { return Err(not_one("not a JSON object").into()) };
        if !value.get("kind").is_some_and(Value::is_string) {
            return Err(not_one("no kind").into());
        }
        let report = ReportFile::from_map(value).map_err(|e| not_one(&e))?;
        Ok(Self { path: path.to_path_buf(), report })
    }

    pub fn kind(&self) -> &str {
        &self.report.kind
    }

    /// A report made by [`merge`] (it lists its `shards`).
    pub fn is_merged(&self) -> bool {
        self.report.shards.is_some()
    }

    fn shard(&self) -> Option<(u64, u64)> {
        self.report.shard.as_ref()?.as_ref().map(|s| (s.index, s.count))
    }
}

/// The pulse reports of a folder by kind, and one line for each `*.json` file there that
/// cannot be read as one (naming the file and why).
pub type ReportsIn = (BTreeMap<String, Vec<ShardReport>>, Vec<String>);

/// The pulse reports in a folder (its `*.json` files that are reports, merged ones left out),
/// grouped by kind, sorted by file name; and the files that could not be read as reports (a
/// damaged shard report must not pass for a missing one unnoticed).
pub fn reports_in(dir: &Path) -> anyhow::Result<ReportsIn> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Invalid(format!("{}: cannot list the folder: {e}", escaped(dir))))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    paths.sort();
    let mut kinds: BTreeMap<String, Vec<ShardReport>> = BTreeMap::new();
    let mut unreadable = vec![];
    for path in paths {
        match ShardReport::read(&path) {
            Ok(r) if !r.is_merged() && r.report.shard.is_some() => {
                kinds.entry(r.kind().to_string()).or_default().push(r)
            }
            Ok(_) => {}
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    if kinds.is_empty() {
        let mut why = format!("{}: no pulse report in this folder", escaped(dir));
        if !unreadable.is_empty() {
            why.push_str(&format!(" ({})", unreadable.join("; ")));
        }
        return Err(Invalid(why).into());
    }
    Ok((kinds, unreadable))
}

/// Refuses (an [`Invalid`] error, exit 2) a report file that already holds the report of
/// another shard, another split or a whole run: a run reads its earlier entries back from its
/// report (to resume), so two runs sharing one file would absorb each other's.
pub fn check_report_owner(
    path: &Path,
    shard: Option<crate::pipelines::shard::Shard>,
) -> anyhow::Result<()> {
    let Ok(existing) = ShardReport::read(path) else { return Ok(()) };
    if existing.is_merged() {
        return Ok(());
    }
    let ours = shard.map(|s| (s.index as u64, s.count as u64));
    let theirs = existing.shard();
    if theirs == ours {
        return Ok(());
    }
    let whose = match theirs {
        Some((i, n)) => format!("shard {i}/{n}'s report"),
        None => "the report of a whole (unsharded) run".to_string(),
    };
    let fix = if shard.is_some() {
        "give the shards a folder (--report DIR/) or a name with {shard} in it, so each writes its own"
    } else {
        "give this run another report file"
    };
    Err(Invalid(format!("{}: is {whose}; {fix}", escaped(path))).into())
}

/// Whether two reports (or a report and a merged one) are of one job: the same kind and the same
/// settings, model and other fields ([`PER_MACHINE`] settings aside).
fn same_job(a: &ReportFile, b: &ReportFile) -> bool {
    a.kind == b.kind
        && a.job.len() == b.job.len()
        && a.job.iter().all(|(k, v)| same_job_field(k, v, b.job.get(k)))
}

/// Every string of a report (its inputs, outputs, the reports it was merged from, ...).
fn strings_in(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| strings_in(i, out)),
        Value::Object(o) => o.values().for_each(|i| strings_in(i, out)),
        _ => {}
    }
}

/// Refuses (an [`Invalid`] error, exit 2) to write the merged report `merged` to `out` when that
/// would replace anything but an earlier merged report of the same job: a file the reports name
/// (an input, an output, a shard's report), a user's file, another job's report.
pub fn check_merge_output(merged: &ReportFile, out: &Path) -> anyhow::Result<()> {
    let mut named = vec![];
    strings_in(&merged.to_value(), &mut named);
    if let Some(s) = named.iter().find(|s| crate::files::same_file(Path::new(s.as_str()), out)) {
        return Err(Invalid(format!(
            "{}: the reports name this file ({s}); choose another name for the merged report",
            escaped(out)
        ))
        .into());
    }
    if std::fs::symlink_metadata(out).is_err() {
        return Ok(());
    }
    let refuse = |what: &str| -> anyhow::Result<()> {
        Err(Invalid(format!(
            "{}: exists and is {what}; choose another name for the merged report",
            escaped(out)
        ))
        .into())
    };
    let Ok(existing) = ShardReport::read(out) else { return refuse("not a pulse report") };
    if !existing.is_merged() {
        return refuse("a report of one run (merge it, don't replace it)");
    }
    if same_job(&existing.report, merged) {
        Ok(())
    } else {
        refuse("the merged report of another job")
    }
}

/// How a run, or a whole job, ended: what every report computes of itself, and what the
/// command line turns into the exit code (in one place, `cli/exit.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every input done (and, for the searches, converged).
    Success,
    /// Some image (or face) did not converge; its result was still written.
    NotConverged,
    /// Some input was refused (or, for `align`, had no face).
    Refused,
    /// A job whose shard's report is missing, or some input has no entry: a task failed or has
    /// not run yet. Rerun it: finished work is skipped.
    Incomplete,
    /// Stopped by Ctrl-C (or a signal) before the end; everything written is complete.
    Interrupted,
}

impl Verdict {
    /// A run's verdict from what it counted: interrupted first, then refusals, then searches
    /// that did not converge.
    pub fn of_run(interrupted: bool, refused: bool, not_converged: bool) -> Self {
        if interrupted {
            Verdict::Interrupted
        } else if refused {
            Verdict::Refused
        } else if not_converged {
            Verdict::NotConverged
        } else {
            Verdict::Success
        }
    }

    /// Worse first: incomplete or interrupted, refused, not converged, success (the exit codes'
    /// precedence in a single run); of two as bad, the first.
    pub fn worst(self, other: Self) -> Self {
        let rank = |v: Self| match v {
            Verdict::Success => 0,
            Verdict::NotConverged => 1,
            Verdict::Refused => 2,
            Verdict::Incomplete | Verdict::Interrupted => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// What a merged report says about the whole job.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub kind: String,
    pub reports: usize,
    /// The number of shards the job was split into (1 for an unsharded run).
    pub shards: u64,
    pub missing_shards: Vec<u64>,
    /// Inputs given to the shards that reported.
    pub inputs: usize,
    /// Samples (`upsample`) or photos (`align`) finished, now or by an earlier run.
    pub done: usize,
    pub converged: usize,
    pub not_converged: usize,
    /// Inputs refused (for `align`, with those without a face).
    pub refused: usize,
    /// Inputs of reporting shards with no entry (or fewer samples than asked).
    pub missing_inputs: Vec<String>,
    /// Some shard was stopped by Ctrl-C (or a signal) before it finished.
    pub interrupted: bool,
    pub verdict: Verdict,
}

impl Summary {
    /// One line: `upsample: 3 of 3 shards, 12 inputs: 10 done (8 converged), 1 refused, 1 missing`.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{}: {} of {} shard{}, {} input{}: {} done",
            self.kind,
            self.shards - self.missing_shards.len() as u64,
            self.shards,
            if self.shards == 1 { "" } else { "s" },
            self.inputs,
            if self.inputs == 1 { "" } else { "s" },
            self.done
        );
        if self.converged + self.not_converged > 0 {
            line.push_str(&format!(" ({} converged)", self.converged));
        }
        line.push_str(&format!(
            ", {} refused, {} missing inputs",
            self.refused,
            self.missing_inputs.len()
        ));
        if !self.missing_shards.is_empty() {
            let list: Vec<String> = self.missing_shards.iter().map(u64::to_string).collect();
            line.push_str(&format!(", missing shards {}", list.join(",")));
        }
        if self.interrupted {
            line.push_str(", interrupted");
        }
        line
    }
}

/// Joins the reports of one job's shards (or one unsharded run) into one report: entries in
/// input order, the job's settings, `shards` listing where each came from. Refuses reports of
/// different kinds, of different splits, or of different jobs (settings or model differ).
pub fn merge(reports: &[ShardReport]) -> anyhow::Result<(ReportFile, Summary)> {
    let Some(first) = reports.first() else {
        return Err(Invalid("no report to merge".into()).into());
    };
    let kind = first.kind().to_string();
    let count = first.shard().map_or(1, |(_, n)| n);
    let mut seen_shards = BTreeSet::new();
    for r in reports {
        if r.is_merged() {
            return Err(Invalid(format!(
                "{}: already a merged report; merge the shards' own reports",
                escaped(&r.path)
            ))
            .into());
        }
        if r.kind() != kind {
            return Err(Invalid(format!(
                "{} is a report of `{}`, {} of `{kind}`: merge the reports of one job",
                escaped(&r.path),
                r.kind(),
                escaped(&first.path)
            ))
            .into());
        }
        let (index, n) = r.shard().unwrap_or((0, 1));
        if n != count {
            return Err(Invalid(format!(
                "{} is shard {index}/{n}, {} is of a job split {count} ways: merge the reports of one job",
                escaped(&r.path),
                escaped(&first.path)
            ))
            .into());
        }
        seen_shards.insert(index);
        for (key, value) in &r.report.job {
            if !same_job_field(key, value, first.report.job.get(key)) {
                return Err(Invalid(format!(
                    "{} and {} are reports of different jobs (their `{key}` differ)",
                    escaped(&first.path),
                    escaped(&r.path)
                ))
                .into());
            }
        }
    }
    let assigned = first.report.assigned.as_ref().map(|_| {
        let all = reports.iter().flat_map(|r| r.report.assigned.iter().flatten());
        all.cloned().collect::<BTreeSet<String>>().into_iter().collect()
    });
    let shards = reports
        .iter()
        .map(|r| {
            let mut s = match &r.report.shard {
                Some(Some(s)) => s.clone(),
                _ => ShardTag { index: 0, count: 1, rest: Map::new() },
            };
            s.rest.insert("report".into(), Value::String(escaped(&r.path)));
            s
        })
        .collect();
    let merged = ReportFile {
        kind: kind.clone(),
        shard: Some(None),
        assigned,
        interrupted: reports.iter().any(|r| r.report.interrupted),
        shards: Some(shards),
        entries: Entries::joined(reports.iter().map(|r| &r.report)),
        job: first.report.job.clone(),
    };
    let missing_shards: Vec<u64> = (0..count).filter(|i| !seen_shards.contains(i)).collect();
    let summary = merged.summary(count, missing_shards, reports.len());
    Ok((merged, summary))
}

/// Whether a field of the job agrees with the first report's: `settings` may differ only in
/// [`PER_MACHINE`] fields.
fn same_job_field(key: &str, value: &Value, first: Option<&Value>) -> bool {
    let Some(first) = first else { return false };
    match (key, value, first) {
        ("settings", Value::Object(a), Value::Object(b)) => {
            let strip = |o: &Map<String, Value>| -> Map<String, Value> {
                o.iter()
                    .filter(|(k, _)| !PER_MACHINE.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            strip(a) == strip(b)
        }
        _ => value == first,
    }
}

/// Entries of all reports in input order, one per key (a later report's entry replaces an
/// earlier one: a shard that ran twice reports its work once).
fn joined<T, K: Ord>(items: impl IntoIterator<Item = T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut by_key = BTreeMap::new();
    for item in items {
        by_key.insert(key(&item), item);
    }
    by_key.into_values().collect()
}

/// The key an entry of a kind this merge does not know is told apart by: `(input, sample)` for
/// objects with an input, the text itself for anything else.
fn value_key(v: &Value) -> (String, u64, String) {
    match v {
        Value::String(s) => (s.clone(), 0, String::new()),
        Value::Object(o) if o.get("input").is_some_and(Value::is_string) => (
            o["input"].as_str().unwrap_or_default().to_string(),
            o.get("sample").and_then(Value::as_u64).unwrap_or(0),
            String::new(),
        ),
        other => (String::new(), 0, other.to_string()),
    }
}

impl Entries {
    /// The entries of one job's reports joined: each report's own entries only (a run reports on
    /// the inputs it was assigned; an entry of another input, read back from a report file
    /// another shard wrote, is that shard's to report), one per input (and sample), in input
    /// order.
    fn joined<'a>(reports: impl Iterator<Item = &'a ReportFile> + Clone) -> Entries {
        let own = |r: &ReportFile, input: &str| {
            r.assigned.as_ref().is_none_or(|a| a.iter().any(|i| i == input))
        };
        let first = reports.clone().next().map(|r| &r.entries);
        macro_rules! each {
            ($variant:ident, $field:ident) => {
                reports.clone().flat_map(move |r| match &r.entries {
                    Entries::$variant { $field, .. } => {
                        $field.iter().filter(|e| own(r, e.input.as_str())).cloned().collect()
                    }
                    _ => vec![],
                })
            };
        }
        match first {
            Some(Entries::Upsample { .. }) => Entries::Upsample {
                images: joined(each!(Upsample, images), |e| (e.input.clone(), e.sample)),
                refused: joined(each!(Upsample, refused), |e| (e.input.clone(), 0)),
                skipped: joined(
                    reports.clone().flat_map(|r| match &r.entries {
                        Entries::Upsample { skipped, .. } => skipped.clone(),
                        _ => vec![],
                    }),
                    String::clone,
                ),
                skipped_inputs: joined(
                    reports.clone().flat_map(|r| match &r.entries {
                        Entries::Upsample { skipped_inputs, .. } => {
                            skipped_inputs.iter().filter(|i| own(r, i)).cloned().collect()
                        }
                        _ => vec![],
                    }),
                    String::clone,
                ),
            },
            Some(Entries::Align { .. }) => {
                Entries::Align { inputs: joined(each!(Align, inputs), |e| e.input.clone()) }
            }
            Some(Entries::Restore { .. }) => {
                Entries::Restore { photos: joined(each!(Restore, photos), |e| e.input.clone()) }
            }
            _ => {
                let mut arrays: BTreeMap<String, Vec<Value>> = BTreeMap::new();
                for r in reports {
                    let Entries::Other(other) = &r.entries else { continue };
                    for (key, items) in other {
                        let mine = items.iter().filter(|i| match i.get("input") {
                            Some(Value::String(input)) => own(r, input),
                            _ => true,
                        });
                        arrays.entry(key.clone()).or_default().extend(mine.cloned());
                    }
                }
                Entries::Other(
                    arrays.into_iter().map(|(k, items)| (k, joined(items, value_key))).collect(),
                )
            }
        }
    }
}

impl ReportFile {
    /// What a merged report says about the whole job: each kind counts its own entries.
    fn summary(&self, shards: u64, missing_shards: Vec<u64>, reports: usize) -> Summary {
        let assigned = self.assigned.clone().unwrap_or_default();
        let mut summary = Summary {
            kind: self.kind.clone(),
            reports,
            shards,
            missing_shards,
            inputs: assigned.len(),
            done: 0,
            converged: 0,
            not_converged: 0,
            refused: 0,
            missing_inputs: vec![],
            interrupted: self.interrupted,
            verdict: Verdict::Success,
        };
        let mut count_converged = |converged: bool| {
            if converged {
                summary.converged += 1
            } else {
                summary.not_converged += 1
            }
        };
        let mut complete: BTreeSet<&str> = BTreeSet::new();
        let (mut done, mut refused) = (0, 0);
        match &self.entries {
            Entries::Upsample { images, refused: refusals, skipped_inputs, .. } => {
                // One entry per sample: an input is done with all its samples, or skipped as
                // finished.
                let samples = self.job.get("settings").and_then(|s| s.get("samples"));
                let samples = samples.and_then(Value::as_u64).unwrap_or(1) as usize;
                let mut accounted: BTreeMap<&str, usize> = BTreeMap::new();
                for image in images {
                    *accounted.entry(&image.input).or_default() += 1;
                    count_converged(image.converged);
                }
                for skipped in skipped_inputs {
                    let n = accounted.entry(skipped).or_default();
                    *n = (*n).max(samples);
                }
                let refused_inputs: BTreeSet<&str> =
                    refusals.iter().map(|r| r.input.as_str()).collect();
                refused = refused_inputs.len();
                complete = refused_inputs;
                done = accounted.values().sum();
                complete.extend(accounted.into_iter().filter(|(_, n)| *n >= samples).map(|e| e.0));
            }
            Entries::Align { inputs } => {
                // A photo without a face is a refusal: it has no output.
                use super::align::Status;
                for input in inputs {
                    match input.status {
                        Status::Refused | Status::NoFace => refused += 1,
                        Status::Aligned | Status::Skipped => done += 1,
                    }
                    complete.insert(&input.input);
                }
            }
            Entries::Restore { photos } => {
                // A photo without a face is done: its enlargement was written.
                for photo in photos {
                    match photo.status {
                        super::restore::Status::Refused => refused += 1,
                        _ => done += 1,
                    }
                    photo.faces.iter().for_each(|f| count_converged(f.converged));
                    complete.insert(&photo.input);
                }
            }
            Entries::Other(_) => {}
        }
        summary.done = done;
        summary.refused = refused;
        summary.missing_inputs =
            assigned.iter().filter(|i| !complete.contains(i.as_str())).cloned().collect();
        let missing = !summary.missing_shards.is_empty() || !summary.missing_inputs.is_empty();
        summary.verdict = match Verdict::of_run(
            summary.interrupted,
            summary.refused > 0,
            summary.not_converged > 0,
        ) {
            Verdict::Interrupted => Verdict::Interrupted,
            _ if missing => Verdict::Incomplete,
            v => v,
        };
        summary
    }
}

/// Writes a merged report atomically.
pub fn write(report: &ReportFile, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(&report.to_value())?;
    crate::files::write_bytes_atomic(path, &json)
        .map_err(|e| anyhow::anyhow!("{}: cannot write the report: {e}", escaped(path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(v: Value) -> ShardReport {
        let name = format!("r{}.json", v["shard"]["index"]);
        let report = ReportFile::from_map(v.as_object().unwrap().clone()).unwrap();
        ShardReport { path: PathBuf::from(name), report }
    }

    /// `report`'s JSON with `key` set to `value`, read back.
    fn with(r: &ShardReport, key: &str, value: Value) -> ShardReport {
        let mut v = r.report.to_value();
        v[key] = value;
        ShardReport {
            path: r.path.clone(),
            report: ReportFile::from_map(v.as_object().unwrap().clone()).unwrap(),
        }
    }

    fn upsample(index: u64, images: Value, assigned: Value) -> ShardReport {
        report(json!({
            "kind": "upsample",
            "shard": {"index": index, "count": 2, "source": "slurm", "detail": ""},
            "assigned": assigned,
            "settings": {"seed": 1, "samples": 1, "device": format!("cuda:{index}")},
            "model": {"sha256": "ab"},
            "images": images,
            "refused": [],
            "skipped": [],
            "skipped_inputs": [],
            "interrupted": false,
        }))
    }

    #[test]
    fn shards_join_in_input_order_and_the_verdict_counts_every_input() {
        let a = upsample(
            0,
            json!([{"input": "c.png", "sample": 0, "converged": true},
                                   {"input": "a.png", "sample": 0, "converged": true}]),
            json!(["a.png", "c.png"]),
        );
        let b = upsample(
            1,
            json!([{"input": "b.png", "sample": 0, "converged": false}]),
            json!(["b.png", "d.png"]),
        );
        let (merged, summary) = merge(&[b.clone(), a.clone()]).unwrap();
        let merged = merged.to_value();
        let inputs: Vec<&str> = merged["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["input"].as_str().unwrap())
            .collect();
        assert_eq!(inputs, ["a.png", "b.png", "c.png"]);
        assert_eq!(merged["shards"].as_array().unwrap().len(), 2);
        assert_eq!((summary.done, summary.converged, summary.not_converged), (3, 2, 1));
        assert_eq!(summary.missing_inputs, ["d.png"]);
        assert_eq!(summary.verdict, Verdict::Incomplete);
        assert!(
            summary.line().contains("2 of 2 shards, 4 inputs: 3 done (2 converged)"),
            "{}",
            summary.line()
        );
        // Only shard 0: shard 1 is missing.
        let (_, one) = merge(&[a]).unwrap();
        assert_eq!(one.missing_shards, [1]);
        assert!(one.line().contains("missing shards 1"), "{}", one.line());
    }

    #[test]
    fn reports_of_other_jobs_kinds_or_splits_are_refused() {
        let a = upsample(0, json!([]), json!([]));
        let one = upsample(1, json!([]), json!([]));
        let b = with(&one, "settings", json!({"seed": 2, "samples": 1, "device": "cpu"}));
        assert!(merge(&[a.clone(), b]).unwrap_err().to_string().contains("different jobs"));
        // Where each shard ran may differ.
        let here = with(&one, "settings", json!({"seed": 1, "samples": 1, "device": "cpu"}));
        assert!(merge(&[a.clone(), here]).is_ok());
        let c = with(&one, "kind", json!("align"));
        assert!(merge(&[a.clone(), c]).is_err());
        let d = with(&one, "shard", json!({"index": 1, "count": 3}));
        assert!(merge(&[a.clone(), d]).unwrap_err().to_string().contains("split"));
        // The same shard twice: its entries once.
        let (m, s) = merge(&[a.clone(), a]).unwrap();
        assert_eq!(m.shards.as_ref().unwrap().len(), 2);
        assert_eq!(s.missing_shards, [1]);
    }

    #[test]
    fn align_reports_count_statuses() {
        let r = report(json!({
            "kind": "align", "shard": null, "assigned": ["a.jpg", "b.jpg", "c.jpg"],
            "settings": {"size": 32},
            "inputs": [{"input": "a.jpg", "status": "aligned"}, {"input": "b.jpg", "status": "no_face"}],
            "interrupted": true,
        }));
        let (_, s) = merge(&[r]).unwrap();
        assert_eq!((s.done, s.refused, s.shards), (1, 1, 1));
        assert_eq!(s.missing_inputs, ["c.jpg"]);
        assert!(s.interrupted && s.verdict == Verdict::Interrupted);
    }

    #[test]
    fn restore_reports_count_photos_and_faces() {
        let shard = |index: u64, photos: Value, assigned: Value| {
            report(json!({
                "kind": "restore", "shard": {"index": index, "count": 2, "source": "slurm", "detail": ""},
                "assigned": assigned, "settings": {"upscale": 4},
                "photos": photos, "interrupted": false,
            }))
        };
        let a = shard(
            0,
            json!([{"input": "a.jpg", "status": "restored", "faces": [{"converged": true}, {"converged": false}]}]),
            json!(["a.jpg"]),
        );
        let b = shard(
            1,
            json!([{"input": "b.jpg", "status": "no_face", "faces": []}]),
            json!(["b.jpg"]),
        );
        let (merged, s) = merge(&[a, b]).unwrap();
        assert_eq!(merged.to_value()["photos"].as_array().unwrap().len(), 2);
        // A photo without a face is done (its enlargement was written), not refused.
        assert_eq!((s.done, s.refused, s.converged, s.not_converged), (2, 0, 1, 1));
        assert!(s.missing_inputs.is_empty() && s.verdict == Verdict::NotConverged);
    }
}
