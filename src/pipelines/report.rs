//! One report for a job run in shards (`pulse report merge`, `pulse report summary`): the
//! reports of its shards, read back and joined into the report one unsharded run would have
//! written, with a verdict for the whole job (docs/design.md, "Shards").
//!
//! A report this reads is a JSON object with `kind` (`upsample`, `align`, or another command's),
//! `shard` (`null` or `{index, count, ...}`), `assigned` (the inputs the run was given) and its
//! entries: `images` (one per sample, with `input`, `sample`, `converged`), `refused` (`input`,
//! `error`) and `skipped_inputs`, or `inputs` (one per input, with `input` and `status`). Every
//! other array is joined too; every other field must agree (they are the job's settings).
use crate::files::escaped;
use crate::Invalid;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Settings that may differ between the shards of one job: where each ran and how it batched.
const PER_MACHINE: [&str; 2] = ["device", "batch_size"];

/// A report read from a file.
#[derive(Debug, Clone)]
pub struct ShardReport {
    pub path: PathBuf,
    pub value: Map<String, Value>,
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
        Ok(Self { path: path.to_path_buf(), value })
    }

    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    /// A report made by [`merge`] (it lists its `shards`).
    pub fn is_merged(&self) -> bool {
        self.value.get("shards").is_some_and(Value::is_array)
    }

    fn shard(&self) -> Option<(u64, u64)> {
        let s = self.value.get("shard")?;
        Some((s.get("index")?.as_u64()?, s.get("count")?.as_u64()?))
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
            Ok(r) if !r.is_merged() && r.value.contains_key("shard") => {
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

/// Fields of a report that are not the job's settings: where and how one run of it went.
const NOT_SETTINGS: [&str; 4] = ["shard", "interrupted", "kind", "shards"];

/// Whether two reports (or a report and a merged one) are of one job: the same kind and the same
/// settings, model and other non-array fields ([`PER_MACHINE`] settings aside).
fn same_job(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let fields = |m: &Map<String, Value>| -> BTreeSet<String> {
        m.iter()
            .filter(|(k, v)| !v.is_array() && !NOT_SETTINGS.contains(&k.as_str()))
            .map(|(k, _)| k.clone())
            .collect()
    };
    a.get("kind") == b.get("kind")
        && fields(a) == fields(b)
        && fields(a).iter().all(|k| same_job_field(k, &a[k], b.get(k)))
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
pub fn check_merge_output(merged: &Value, out: &Path) -> anyhow::Result<()> {
    let mut named = vec![];
    strings_in(merged, &mut named);
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
    match merged.as_object() {
        Some(m) if same_job(&existing.value, m) => Ok(()),
        _ => refuse("the merged report of another job"),
    }
}

/// How a whole job ended, from its reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every input done (and, for `upsample`, converged).
    Success,
    /// Some image did not converge.
    NotConverged,
    /// Some input was refused (or had no face).
    Refused,
    /// A shard's report is missing, or some input has no entry: a task failed, was interrupted
    /// or has not run yet. Rerun it: finished work is skipped.
    Incomplete,
}

impl Verdict {
    /// Worse first: incomplete, refused, not converged, success (the order of the exit codes'
    /// precedence in a single run).
    pub fn worst(self, other: Self) -> Self {
        let rank = |v: Self| match v {
            Verdict::Success => 0,
            Verdict::NotConverged => 1,
            Verdict::Refused => 2,
            Verdict::Incomplete => 3,
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
pub fn merge(reports: &[ShardReport]) -> anyhow::Result<(Value, Summary)> {
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
        for (key, value) in &r.value {
            if value.is_array() || ["shard", "interrupted", "kind"].contains(&key.as_str()) {
                continue;
            }
            if !same_job_field(key, value, first.value.get(key)) {
                return Err(Invalid(format!(
                    "{} and {} are reports of different jobs (their `{key}` differ)",
                    escaped(&first.path),
                    escaped(&r.path)
                ))
                .into());
            }
        }
    }
    let mut merged = Map::new();
    for (key, value) in &first.value {
        if !value.is_array() {
            merged.insert(key.clone(), value.clone());
        }
    }
    let mut arrays: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in reports {
        // A run reports on the inputs it was assigned; an entry of another input (one it read
        // back from a report file another shard wrote) is that shard's to report.
        let assigned: Option<BTreeSet<&str>> = r
            .value
            .get("assigned")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect());
        let own = |item: &Value| -> bool {
            let Some(assigned) = &assigned else { return true };
            match item {
                Value::Object(o) => {
                    o.get("input").and_then(Value::as_str).is_none_or(|i| assigned.contains(i))
                }
                _ => true,
            }
        };
        for (key, value) in &r.value {
            if let Value::Array(items) = value {
                let items = items.iter().filter(|i| {
                    own(i)
                        && (key != "skipped_inputs"
                            || i.as_str()
                                .is_none_or(|s| assigned.as_ref().is_none_or(|a| a.contains(s))))
                });
                arrays.entry(key.clone()).or_default().extend(items.cloned());
            }
        }
    }
    for (key, items) in arrays {
        merged.insert(key, Value::Array(joined(items)));
    }
    let interrupted =
        reports.iter().any(|r| r.value.get("interrupted") == Some(&Value::Bool(true)));
    merged.insert("interrupted".into(), Value::Bool(interrupted));
    merged.insert("shard".into(), Value::Null);
    let shards: Vec<Value> = reports
        .iter()
        .map(|r| {
            let mut s = match r.value.get("shard") {
                Some(Value::Object(o)) => o.clone(),
                _ => Map::from_iter([("index".into(), 0.into()), ("count".into(), 1.into())]),
            };
            s.insert("report".into(), Value::String(escaped(&r.path)));
            Value::Object(s)
        })
        .collect();
    merged.insert("shards".into(), Value::Array(shards));
    let missing_shards: Vec<u64> = (0..count).filter(|i| !seen_shards.contains(i)).collect();
    let merged = Value::Object(merged);
    let summary = summarise(&merged, kind, count, missing_shards, reports.len());
    Ok((merged, summary))
}

/// Whether a non-array field agrees with the first report's: `settings` may differ only in
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

/// The key entries are ordered and told apart by: `(input, sample)` for objects with an input,
/// the text itself for strings.
fn entry_key(v: &Value) -> (String, u64, String) {
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

/// Entries of all reports in input order, one per key (a later report's entry replaces an
/// earlier one: a shard that ran twice reports its work once).
fn joined(items: Vec<Value>) -> Vec<Value> {
    let mut by_key: BTreeMap<(String, u64, String), Value> = BTreeMap::new();
    for item in items {
        by_key.insert(entry_key(&item), item);
    }
    by_key.into_values().collect()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn entries<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn input_of(v: &Value) -> Option<String> {
    v.get("input").and_then(Value::as_str).map(str::to_string)
}

fn summarise(
    merged: &Value,
    kind: String,
    shards: u64,
    missing_shards: Vec<u64>,
    reports: usize,
) -> Summary {
    let assigned = strings(merged, "assigned");
    let refused_inputs: BTreeSet<String> =
        entries(merged, "refused").iter().filter_map(input_of).collect();
    let mut summary = Summary {
        kind,
        reports,
        shards,
        missing_shards,
        inputs: assigned.len(),
        done: 0,
        converged: 0,
        not_converged: 0,
        refused: refused_inputs.len(),
        missing_inputs: vec![],
        interrupted: merged.get("interrupted") == Some(&Value::Bool(true)),
        verdict: Verdict::Success,
    };
    let mut accounted: BTreeMap<String, usize> = BTreeMap::new();
    let mut complete: BTreeSet<String> = refused_inputs;
    if let Some(images) = merged.get("images").and_then(Value::as_array) {
        // One entry per sample: an input is done with all its samples, or skipped as finished.
        let samples = merged.pointer("/settings/samples").and_then(Value::as_u64).unwrap_or(1);
        for image in images {
            let Some(input) = input_of(image) else { continue };
            *accounted.entry(input).or_default() += 1;
            match image.get("converged").and_then(Value::as_bool) {
                Some(true) => summary.converged += 1,
                Some(false) => summary.not_converged += 1,
                None => {}
            }
        }
        for skipped in strings(merged, "skipped_inputs") {
            let n = accounted.entry(skipped).or_default();
            *n = (*n).max(samples as usize);
        }
        summary.done = accounted.values().sum();
        complete
            .extend(accounted.into_iter().filter(|(_, n)| *n as u64 >= samples).map(|(i, _)| i));
    } else {
        // align's `inputs` and restore's `photos`: one record per input with its status. A photo
        // without a face is a refusal for align (no output) but done for restore (its
        // enlargement is written); restore's faces carry `converged`.
        let restore = summary.kind == "restore";
        let records = if restore { "photos" } else { "inputs" };
        for record in entries(merged, records) {
            let Some(input) = input_of(record) else { continue };
            match record.get("status").and_then(Value::as_str) {
                Some("refused") => summary.refused += 1,
                Some("no_face") if !restore => summary.refused += 1,
                _ => summary.done += 1,
            }
            for face in entries(record, "faces") {
                match face.get("converged").and_then(Value::as_bool) {
                    Some(true) => summary.converged += 1,
                    Some(false) => summary.not_converged += 1,
                    None => {}
                }
            }
            complete.insert(input);
        }
    }
    summary.missing_inputs = assigned.into_iter().filter(|i| !complete.contains(i)).collect();
    summary.verdict = if !summary.missing_shards.is_empty()
        || !summary.missing_inputs.is_empty()
        || summary.interrupted
    {
        Verdict::Incomplete
    } else if summary.refused > 0 {
        Verdict::Refused
    } else if summary.not_converged > 0 {
        Verdict::NotConverged
    } else {
        Verdict::Success
    };
    summary
}

/// Writes a merged report atomically.
pub fn write(report: &Value, path: &Path) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(report)?;
    crate::files::write_bytes_atomic(path, &json)
        .map_err(|e| anyhow::anyhow!("{}: cannot write the report: {e}", escaped(path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(v: Value) -> ShardReport {
        let name = format!("r{}.json", v["shard"]["index"]);
        ShardReport { path: PathBuf::from(name), value: v.as_object().unwrap().clone() }
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
        let mut b = upsample(1, json!([]), json!([]));
        b.value.insert("settings".into(), json!({"seed": 2, "samples": 1, "device": "cpu"}));
        assert!(merge(&[a.clone(), b]).unwrap_err().to_string().contains("different jobs"));
        let mut c = upsample(1, json!([]), json!([]));
        c.value.insert("kind".into(), json!("align"));
        assert!(merge(&[a.clone(), c]).is_err());
        let mut d = upsample(1, json!([]), json!([]));
        d.value.insert("shard".into(), json!({"index": 1, "count": 3}));
        assert!(merge(&[a.clone(), d]).unwrap_err().to_string().contains("split"));
        // The same shard twice: its entries once.
        let (m, s) = merge(&[a.clone(), a]).unwrap();
        assert_eq!(m["shards"].as_array().unwrap().len(), 2);
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
        assert!(s.interrupted && s.verdict == Verdict::Incomplete);
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
        assert_eq!(merged["photos"].as_array().unwrap().len(), 2);
        // A photo without a face is done (its enlargement was written), not refused.
        assert_eq!((s.done, s.refused, s.converged, s.not_converged), (2, 0, 1, 1));
        assert!(s.missing_inputs.is_empty() && s.verdict == Verdict::NotConverged);
    }
}
