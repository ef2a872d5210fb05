//! One job split over many machines (docs/design.md, "Shards"): shard I of N takes the inputs at
//! sorted positions p with p % N == I (round-robin, as GoogleTest's sharding protocol and
//! datatrove split their work), so shards are disjoint, together cover every input, and with the
//! per-item seeds ([`super::item_seed`]) a result does not depend on the shard that made it.
//!
//! Shards share one output folder: each holds its own lock there ([`lock_output_dir`]), every
//! file is written whole by temp + rename, and a shard that runs twice finds its finished work
//! and skips it. `--shard auto` reads the shard from the job array of Slurm, a Kubernetes Indexed
//! Job or AWS Batch ([`resolve`]). Commands that take folders (`upsample`, `align`, `restore`)
//! share these functions.
use crate::files::{escaped, DirLock};
use crate::Invalid;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Shard `index` of `count` (0 <= index < count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub fn new(index: usize, count: usize) -> Result<Self, Invalid> {
        if count == 0 || index >= count {
            return Err(Invalid(format!("shard {index}/{count}: expected I/N with 0 <= I < N")));
        }
        Ok(Self { index, count })
    }

    /// `I-of-N`: the shard's part of lock and report file names.
    pub fn tag(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }

    /// Whether the item at sorted position `position` belongs to this shard.
    pub fn contains(&self, position: usize) -> bool {
        position % self.count == self.index
    }

    /// This shard's items of a sorted list.
    pub fn select<T>(&self, items: Vec<T>) -> Vec<T> {
        items.into_iter().enumerate().filter(|(p, _)| self.contains(*p)).map(|(_, x)| x).collect()
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Self { index, count }),
            _ => Err(format!("expected I/N with 0 <= I < N, or auto; got '{s}'")),
        }
    }
}

/// `--shard I/N` or `--shard auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardRequest {
    Fixed(Shard),
    /// From the job array's environment variables ([`resolve`]).
    Auto,
}

impl std::str::FromStr for ShardRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "auto" {
            return Ok(Self::Auto);
        }
        s.parse().map(Self::Fixed)
    }
}

/// The shard a run works on and where it came from; recorded in reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardInfo {
    pub index: usize,
    pub count: usize,
    /// `command line`, `slurm`, `kubernetes` or `aws-batch`.
    pub source: &'static str,
    /// The variables it was read from, e.g. `SLURM_ARRAY_TASK_ID=7 ...`; empty for `--shard I/N`.
    pub detail: String,
}

impl ShardInfo {
    pub fn shard(&self) -> Shard {
        Shard { index: self.index, count: self.count }
    }

    /// One line for stderr: `shard 3/16 (slurm: SLURM_ARRAY_TASK_ID=3, ...)`.
    pub fn describe(&self) -> String {
        if self.detail.is_empty() {
            format!("shard {}/{}", self.index, self.count)
        } else {
            format!("shard {}/{} ({}: {})", self.index, self.count, self.source, self.detail)
        }
    }
}

/// The environment variable that gives the number of shards where the job array does not
/// (Kubernetes), when `--shards` is not given.
pub const SHARDS_VAR: &str = "PULSE_SHARDS";

/// The variables whose presence says which job array a task belongs to (Slurm, Kubernetes,
/// AWS Batch).
const ARRAY_VARS: [&str; 3] =
    ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"];

/// Resolves `--shard` and `--shards` into this run's shard (`None`: the whole input list).
/// `env` reads an environment variable (`std::env::var` in the program; a map in tests).
///
/// `auto` looks, in this order, for a Slurm job array (`SLURM_ARRAY_TASK_ID` with `_MIN`,
/// `_STEP`, `_COUNT`, and `_MAX` when set: shard `(ID - MIN) / STEP` of `COUNT`; index lists that
/// are not evenly spaced ranges cannot be mapped and are refused), a Kubernetes Indexed Job
/// (`JOB_COMPLETION_INDEX`, which has no total: `total` or `PULSE_SHARDS` gives it) and an AWS
/// Batch array job (`AWS_BATCH_JOB_ARRAY_INDEX` of `AWS_BATCH_JOB_ARRAY_SIZE`).
pub fn resolve(
    request: Option<ShardRequest>,
    total: Option<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ShardInfo>, Invalid> {
    let fixed = |shard: Shard, source, detail| ShardInfo {
        index: shard.index,
        count: shard.count,
        source,
        detail,
    };
    match request {
        None if total.is_some() => {
            Err(Invalid("--shards N goes with --shard auto (a Kubernetes Indexed Job)".into()))
        }
        None => Ok(None),
        Some(ShardRequest::Fixed(shard)) => {
            if let Some(n) = total.filter(|&n| n != shard.count) {
                return Err(Invalid(format!("--shard {shard} and --shards {n} disagree")));
            }
            Ok(Some(fixed(shard, "command line", String::new())))
        }
        Some(ShardRequest::Auto) => {
            let total = match total {
                Some(n) => Some(n),
                None => match env(SHARDS_VAR) {
                    Some(v) => Some(number(SHARDS_VAR, &v)?),
                    None => None,
                },
            };
            // Two schedulers at once (a Slurm job inside a Kubernetes pod, a leftover export)
            // give two answers: which one numbers this task is not for pulse to guess.
            let set: Vec<String> = ARRAY_VARS
                .iter()
                .filter_map(|var| env(var).map(|v| format!("{var}={v}")))
                .collect();
            if set.len() > 1 {
                return Err(Invalid(format!(
                    "--shard auto: the variables of more than one job array are set ({}), so which one numbers this task is unclear; unset the others, or pass --shard I/N",
                    set.join(", ")
                )));
            }
            let (shard, source, detail) = if env("SLURM_ARRAY_TASK_ID").is_some() {
                slurm(env)?
            } else if let Some(index) = env("JOB_COMPLETION_INDEX") {
                kubernetes(&index, total)?
            } else if let Some(index) = env("AWS_BATCH_JOB_ARRAY_INDEX") {
                aws_batch(&index, env("AWS_BATCH_JOB_ARRAY_SIZE"), total)?
            } else {
                return Err(Invalid(
                    "--shard auto: no job array found in the environment (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX); outside a job array, pass --shard I/N".into(),
                ));
            };
            if let Some(n) = total.filter(|&n| n != shard.count && source != "kubernetes") {
                return Err(Invalid(format!(
                    "--shard auto: the {source} job array has {} tasks, but --shards or {SHARDS_VAR} says {n}",
                    shard.count
                )));
            }
            Ok(Some(fixed(shard, source, detail)))
        }
    }
}

fn number(var: &str, value: &str) -> Result<usize, Invalid> {
    value.trim().parse().map_err(|_| {
        Invalid(format!("--shard auto: {var}={value} is not a whole number of at least 0"))
    })
}

type Resolved = (Shard, &'static str, String);

fn slurm(env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved, Invalid> {
    let get = |name: &str| -> Result<Option<usize>, Invalid> {
        let var = format!("SLURM_ARRAY_TASK_{name}");
        env(&var).map(|v| number(&var, &v)).transpose()
    };
    let id = get("ID")?.expect("checked by the caller");
    let (Some(count), Some(min)) = (get("COUNT")?, get("MIN")?) else {
        return Err(Invalid(format!(
            "--shard auto: SLURM_ARRAY_TASK_ID={id} is set but SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MIN is not (Slurm sets both in a job array); pass --shard I/N"
        )));
    };
    let step = get("STEP")?.unwrap_or(1);
    if step == 0 {
        return Err(Invalid(format!(
            "--shard auto: SLURM_ARRAY_TASK_STEP=0 (SLURM_ARRAY_TASK_ID={id}), but a Slurm array's step is at least 1; pass --shard I/N"
        )));
    }
    if count == 0 {
        return Err(Invalid(format!(
            "--shard auto: SLURM_ARRAY_TASK_COUNT=0 (SLURM_ARRAY_TASK_ID={id}), but an array holding this task has at least one task; pass --shard I/N"
        )));
    }
    let max = get("MAX")?;
    let mut detail = format!("SLURM_ARRAY_TASK_ID={id}, MIN={min}, STEP={step}, COUNT={count}");
    if let Some(max) = max {
        detail.push_str(&format!(", MAX={max}"));
    }
    let spaced = count > 0 && max.is_none_or(|max| min + step * (count - 1) == max);
    if !spaced || id < min || (id - min) % step != 0 || (id - min) / step >= count {
        return Err(Invalid(format!(
            "--shard auto: this Slurm array's task ids ({detail}) are not the evenly spaced range MIN, MIN+STEP, ..., MAX, so they cannot be numbered as shards; submit it as --array=A-B or A-B:S, or pass --shard I/N"
        )));
    }
    Ok((Shard { index: (id - min) / step, count }, "slurm", detail))
}

fn kubernetes(index: &str, total: Option<usize>) -> Result<Resolved, Invalid> {
    let i = number("JOB_COMPLETION_INDEX", index)?;
    if total == Some(0) {
        return Err(Invalid(format!(
            "--shard auto: JOB_COMPLETION_INDEX={i} with 0 shards (--shards or {SHARDS_VAR}); give the Job's completions, at least 1"
        )));
    }
    let Some(count) = total else {
        return Err(Invalid(format!(
            "--shard auto: a Kubernetes Indexed Job (JOB_COMPLETION_INDEX={i}) does not say how many shards there are; pass --shards N (the Job's completions) or set {SHARDS_VAR}"
        )));
    };
    let shard = Shard::new(i, count).map_err(|_| {
        Invalid(format!(
            "--shard auto: JOB_COMPLETION_INDEX={i} is not below the number of shards {count} (--shards or {SHARDS_VAR})"
        ))
    })?;
    Ok((shard, "kubernetes", format!("JOB_COMPLETION_INDEX={i}, shards={count}")))
}

fn aws_batch(index: &str, size: Option<String>, total: Option<usize>) -> Result<Resolved, Invalid> {
    let i = number("AWS_BATCH_JOB_ARRAY_INDEX", index)?;
    let count = match size {
        Some(s) => number("AWS_BATCH_JOB_ARRAY_SIZE", &s)?,
        None => total.ok_or_else(|| {
            Invalid(format!(
                "--shard auto: AWS_BATCH_JOB_ARRAY_INDEX={i} is set but AWS_BATCH_JOB_ARRAY_SIZE is not; pass --shards N"
            ))
        })?,
    };
    if count == 0 {
        return Err(Invalid(format!(
            "--shard auto: AWS_BATCH_JOB_ARRAY_INDEX={i} with an array size of 0; an array holding this task has at least one task"
        )));
    }
    let shard = Shard::new(i, count).map_err(|_| {
        Invalid(format!(
            "--shard auto: AWS_BATCH_JOB_ARRAY_INDEX={i} is not below AWS_BATCH_JOB_ARRAY_SIZE={count}"
        ))
    })?;
    Ok((
        shard,
        "aws-batch",
        format!("AWS_BATCH_JOB_ARRAY_INDEX={i}, AWS_BATCH_JOB_ARRAY_SIZE={count}"),
    ))
}

/// The name of the lock file a run of `shard` keeps in its output folder: `.pulse.lock` for a
/// whole run, `.pulse.lock.<I>-of-<N>` for a shard, so shards of one job write side by side
/// while two runs of the same shard refuse each other.
pub fn lock_name(shard: Option<Shard>) -> String {
    match shard {
        None => crate::files::LOCK_FILE.to_string(),
        Some(s) => format!("{}.{}", crate::files::LOCK_FILE, s.tag()),
    }
}

/// The shard a lock file name belongs to: `Some(None)` for a whole run's `.pulse.lock`,
/// `Some(Some(shard))` for `.pulse.lock.<I>-of-<N>`, `None` for any other name.
fn shard_of_lock(name: &str) -> Option<Option<Shard>> {
    let rest = name.strip_prefix(crate::files::LOCK_FILE)?;
    if rest.is_empty() {
        return Some(None);
    }
    let (i, n) = rest.strip_prefix('.')?.split_once("-of-")?;
    Shard::new(i.parse().ok()?, n.parse().ok()?).ok().map(Some)
}

/// A live lock in `dir` of a run that may not write beside a run of `shard`: only the shards of
/// one split (the same N) share a folder; a whole run shares it with nothing.
fn conflicting_lock(
    dir: &Path,
    shard: Option<Shard>,
) -> std::io::Result<Option<(String, Option<Shard>, crate::files::LockHolder)>> {
    let ours = lock_name(shard);
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| *n != ours)
        .collect();
    names.sort();
    for name in names {
        let Some(theirs) = shard_of_lock(&name) else { continue };
        let compatible = matches!((shard, theirs), (Some(a), Some(b)) if a.count == b.count);
        if compatible {
            continue;
        }
        if let Some(holder) = crate::files::live_holder(dir, &name)? {
            return Ok(Some((name, theirs, holder)));
        }
    }
    Ok(None)
}

/// Takes the output folder's lock for `shard` ([`DirLock`]), or refuses (an [`Invalid`] error,
/// exit code 2) naming the run that holds it. Only shards of one split run side by side: while
/// a live run holds the folder's lock, a whole run or a shard of another split is refused too
/// (their outputs are the same files).
pub fn lock_output_dir(dir: &Path, shard: Option<Shard>) -> anyhow::Result<DirLock> {
    let name = lock_name(shard);
    match DirLock::acquire(dir, &name) {
        Ok(Ok(lock)) => {
            // Checked once ours is held: of two runs starting together, at least one sees the
            // other (both may refuse; neither writes).
            let conflict = conflicting_lock(dir, shard).map_err(|e| {
                anyhow::anyhow!("{}: cannot list the output folder: {e}", escaped(dir))
            })?;
            let Some((their_name, theirs, holder)) = conflict else { return Ok(lock) };
            drop(lock);
            let them = match theirs {
                Some(t) => format!("a pulse run of shard {t}"),
                None => "another pulse run (of the whole folder)".to_string(),
            };
            let allowed = match shard {
                Some(s) => {
                    format!("only shards of one split (--shard I/{}) write side by side", s.count)
                }
                None => "a run of the whole folder shares it with no other run".to_string(),
            };
            Err(Invalid(format!(
                "{}: {them} is writing to this folder ({holder}, holding {their_name}); {allowed}: wait for it to finish or write to another folder",
                escaped(dir)
            ))
            .into())
        }
        Ok(Err(holder)) => {
            let what = match shard {
                Some(s) => format!("another pulse run of shard {s} is writing to this folder"),
                None => "another pulse run is writing to this folder".to_string(),
            };
            Err(Invalid(format!(
                "{}: {what} ({holder}, holding {name}); wait for it to finish or write to another folder",
                escaped(dir)
            ))
            .into())
        }
        Err(e) => {
            Err(anyhow::anyhow!("{}: cannot lock the output folder: {e}", escaped(&dir.join(name))))
        }
    }
}

/// The report file of a run: `--report` as given, except that a `{shard}` in it becomes the
/// shard's `I-of-N` (`0-of-1` for a whole run), and a folder (an existing one, or a path ending
/// in `/`) gets `<stem>.<I>-of-<N>.json` (`<stem>.json` for a whole run), so the shards of one
/// job can share one `--report` argument.
pub fn report_path(report: &Path, shard: Option<Shard>, stem: &str) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let tag = shard.unwrap_or(Shard { index: 0, count: 1 }).tag();
    let text = report.as_os_str().as_bytes();
    if let Some(p) = text.windows(7).position(|w| w == b"{shard}") {
        let mut bytes = text[..p].to_vec();
        bytes.extend_from_slice(tag.as_bytes());
        bytes.extend_from_slice(&text[p + 7..]);
        return PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
    }
    if report.is_dir() || text.ends_with(b"/") {
        return match shard {
            Some(s) => report.join(format!("{stem}.{}.json", s.tag())),
            None => report.join(format!("{stem}.json")),
        };
    }
    report.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn auto(vars: &[(&str, &str)], total: Option<usize>) -> Result<Option<ShardInfo>, Invalid> {
        resolve(Some(ShardRequest::Auto), total, &with(vars))
    }

    #[test]
    fn round_robin_selection_covers_every_item_once() {
        let items: Vec<usize> = (0..10).collect();
        let mut all: Vec<usize> =
            (0..3).flat_map(|i| Shard::new(i, 3).unwrap().select(items.clone())).collect();
        all.sort();
        assert_eq!(all, items);
        assert_eq!(Shard::new(1, 3).unwrap().select(items), [1, 4, 7]);
        assert!(Shard::new(3, 3).is_err() && Shard::new(0, 0).is_err());
    }

    #[test]
    fn slurm_ranges_map_to_shards_and_lists_are_refused() {
        let s = auto(
            &[
                ("SLURM_ARRAY_TASK_ID", "7"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
                ("SLURM_ARRAY_TASK_STEP", "2"),
                ("SLURM_ARRAY_TASK_COUNT", "8"),
                ("SLURM_ARRAY_TASK_MAX", "15"),
            ],
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!((s.index, s.count, s.source), (3, 8, "slurm"));
        assert!(s.describe().contains("SLURM_ARRAY_TASK_ID=7"), "{}", s.describe());
        // --array=0,1,5: COUNT 3, MIN 0, MAX 5 is no range.
        let e = auto(
            &[
                ("SLURM_ARRAY_TASK_ID", "5"),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
                ("SLURM_ARRAY_TASK_MAX", "5"),
            ],
            None,
        )
        .unwrap_err();
        assert!(e.0.contains("evenly spaced"), "{e}");
        let e = auto(&[("SLURM_ARRAY_TASK_ID", "5")], None).unwrap_err();
        assert!(e.0.contains("SLURM_ARRAY_TASK_COUNT"), "{e}");
    }

    #[test]
    fn kubernetes_needs_a_total_and_aws_batch_has_one() {
        let e = auto(&[("JOB_COMPLETION_INDEX", "2")], None).unwrap_err();
        assert!(e.0.contains("--shards") && e.0.contains(SHARDS_VAR), "{e}");
        let s = auto(&[("JOB_COMPLETION_INDEX", "2")], Some(4)).unwrap().unwrap();
        assert_eq!((s.index, s.count, s.source), (2, 4, "kubernetes"));
        let s = auto(&[("JOB_COMPLETION_INDEX", "2"), (SHARDS_VAR, "3")], None).unwrap().unwrap();
        assert_eq!((s.index, s.count), (2, 3));
        assert!(auto(&[("JOB_COMPLETION_INDEX", "3"), (SHARDS_VAR, "3")], None).is_err());
        let s =
            auto(&[("AWS_BATCH_JOB_ARRAY_INDEX", "9"), ("AWS_BATCH_JOB_ARRAY_SIZE", "10")], None)
                .unwrap()
                .unwrap();
        assert_eq!((s.index, s.count, s.source), (9, 10, "aws-batch"));
        let e = auto(&[], None).unwrap_err();
        assert!(e.0.contains("no job array") && e.0.contains("--shard I/N"), "{e}");
    }

    #[test]
    fn contradictory_or_empty_job_arrays_are_refused_naming_the_variables() {
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        // Two schedulers: both named, neither picked.
        let mut two = slurm.to_vec();
        two.push(("AWS_BATCH_JOB_ARRAY_INDEX", "3"));
        two.push(("AWS_BATCH_JOB_ARRAY_SIZE", "4"));
        let e = auto(&two, None).unwrap_err();
        assert!(
            e.0.contains("SLURM_ARRAY_TASK_ID=1") && e.0.contains("AWS_BATCH_JOB_ARRAY_INDEX=3"),
            "{e}"
        );
        let e = auto(&[("JOB_COMPLETION_INDEX", "0"), ("SLURM_ARRAY_TASK_ID", "0")], Some(2))
            .unwrap_err();
        assert!(e.0.contains("JOB_COMPLETION_INDEX=0") && e.0.contains("SLURM_ARRAY_TASK_ID=0"));
        // STEP=0 is said as it is, not shown as STEP=1.
        let mut step0 = slurm.to_vec();
        step0.push(("SLURM_ARRAY_TASK_STEP", "0"));
        let e = auto(&step0, None).unwrap_err();
        assert!(e.0.contains("SLURM_ARRAY_TASK_STEP=0") && !e.0.contains("STEP=1"), "{e}");
        // COUNT=0 is an empty array, not an unevenly spaced one.
        let e = auto(
            &[
                ("SLURM_ARRAY_TASK_ID", "0"),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_COUNT", "0"),
            ],
            None,
        )
        .unwrap_err();
        assert!(e.0.contains("SLURM_ARRAY_TASK_COUNT=0") && !e.0.contains("evenly"), "{e}");
        let e =
            auto(&[("AWS_BATCH_JOB_ARRAY_INDEX", "0"), ("AWS_BATCH_JOB_ARRAY_SIZE", "0")], None)
                .unwrap_err();
        assert!(e.0.contains("size of 0"), "{e}");
        let e = auto(&[("JOB_COMPLETION_INDEX", "0")], Some(0)).unwrap_err();
        assert!(e.0.contains("0 shards"), "{e}");
        // One scheduler still resolves.
        assert_eq!(auto(&slurm, None).unwrap().unwrap().index, 1);
    }

    #[test]
    fn fixed_shards_and_totals_must_agree() {
        let two = ShardRequest::Fixed(Shard::new(1, 2).unwrap());
        assert_eq!(resolve(Some(two), None, &with(&[])).unwrap().unwrap().source, "command line");
        assert!(resolve(Some(two), Some(3), &with(&[])).is_err());
        assert!(resolve(None, Some(3), &with(&[])).is_err());
        assert_eq!(resolve(None, None, &with(&[])).unwrap(), None);
        assert_eq!("auto".parse::<ShardRequest>().unwrap(), ShardRequest::Auto);
        assert!("2/2".parse::<ShardRequest>().is_err());
    }

    #[test]
    fn only_shards_of_one_split_share_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let shard = |i, n| Some(Shard::new(i, n).unwrap());
        let refused = |r: anyhow::Result<DirLock>| -> String {
            let e = r.expect_err("refused while a live lock is there");
            assert!(e.is::<Invalid>(), "exit 2: {e}");
            e.to_string()
        };
        let a = lock_output_dir(d, shard(0, 2)).unwrap();
        let b = lock_output_dir(d, shard(1, 2)).unwrap();
        // An unsharded run, or a shard of another split, would write the same outputs.
        let e = refused(lock_output_dir(d, None));
        assert!(e.contains("shard") && e.contains("/2"), "{e}");
        let e = refused(lock_output_dir(d, shard(0, 3)));
        assert!(e.contains(".pulse.lock.") && e.contains("of-2"), "{e}");
        assert!(!d.join(".pulse.lock").exists() && !d.join(".pulse.lock.0-of-3").exists());
        drop((a, b));
        let whole = lock_output_dir(d, None).unwrap();
        let e = refused(lock_output_dir(d, shard(1, 2)));
        assert!(e.contains("another pulse run"), "{e}");
        drop(whole);
        // A lock left by a dead run blocks nothing.
        std::fs::write(
            d.join(".pulse.lock.0-of-3"),
            format!("pulse-lock/1 host={} pid=1 started=0 token=x\n", crate::files::host_name()),
        )
        .unwrap();
        drop(lock_output_dir(d, None).unwrap());
        drop(lock_output_dir(d, shard(0, 2)).unwrap());
    }

    #[test]
    fn report_names_follow_the_shard() {
        let dir = tempfile::tempdir().unwrap();
        let s = Some(Shard::new(3, 16).unwrap());
        assert_eq!(report_path(dir.path(), s, "report"), dir.path().join("report.3-of-16.json"));
        assert_eq!(report_path(dir.path(), None, "report"), dir.path().join("report.json"));
        assert_eq!(report_path(Path::new("r/{shard}.json"), s, "x"), Path::new("r/3-of-16.json"));
        assert_eq!(report_path(Path::new("new/"), s, "a"), Path::new("new/a.3-of-16.json"));
        assert_eq!(report_path(Path::new("r.json"), s, "a"), Path::new("r.json"));
        assert_eq!(lock_name(s), ".pulse.lock.3-of-16");
        assert_eq!(lock_name(None), ".pulse.lock");
    }
}
