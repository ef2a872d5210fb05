//! Output names of a run, planned before any search: every output of every job is named first,
//! so a name that would overwrite an input, the report or another job's output is refused up
//! front, and a rerun knows which jobs are finished (every output the command asks for exists,
//! made from the same input by the same model).
use super::inputs::Input;
use super::UpsampleOptions;
use crate::files::{canonical, escaped};
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The files one job (one sample of one input) writes.
#[derive(Debug, Clone)]
pub(super) struct Outputs {
    /// `<base>`: the stem, or `<stem>_<k>` with several samples.
    pub base: OsString,
    pub png: PathBuf,
    pub latent: PathBuf,
    pub compare: Option<PathBuf>,
    pub gif: Option<PathBuf>,
}

impl Outputs {
    pub fn new(opts: &UpsampleOptions, stem: &OsStr, sample: usize) -> Self {
        let mut base = stem.to_os_string();
        if opts.run.samples > 1 {
            base.push(format!("_{sample}"));
        }
        let file = |suffix: &str| {
            let mut name = base.clone();
            name.push(suffix);
            opts.out_dir.join(name)
        };
        Self {
            png: file(".png"),
            latent: file(".latent.safetensors"),
            compare: opts.compare.then(|| file(".compare.png")),
            gif: opts.save_intermediate.then(|| file(".steps.gif")),
            base,
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &PathBuf> {
        [Some(&self.png), Some(&self.latent), self.compare.as_ref(), self.gif.as_ref()]
            .into_iter()
            .flatten()
    }

    /// The base name for progress messages.
    pub fn name(&self) -> String {
        crate::files::escaped_name(&self.base)
    }
}

/// Files that must never be written: the inputs (images, mask, init latents, the model's files),
/// by canonical path and by inode (a hard link is the same file under another name).
pub struct Protected {
    paths: HashMap<PathBuf, PathBuf>,
    inodes: HashMap<(u64, u64), PathBuf>,
}

impl Protected {
    pub fn new<'a>(files: impl IntoIterator<Item = &'a Path>) -> Self {
        let mut p = Self { paths: HashMap::new(), inodes: HashMap::new() };
        for f in files {
            if let Some(c) = canonical(f) {
                p.paths.insert(c, f.to_path_buf());
            }
            if let Ok(m) = std::fs::metadata(f) {
                p.inodes.insert((m.dev(), m.ino()), f.to_path_buf());
            }
        }
        p
    }

    /// The input `path` (whose canonical form is `canonical`) would overwrite, if any.
    pub fn clash(&self, path: &Path, canonical: &Path) -> Option<&Path> {
        if let Some(input) = self.paths.get(canonical) {
            return Some(input);
        }
        let m = std::fs::metadata(path).ok()?;
        self.inodes.get(&(m.dev(), m.ino())).map(PathBuf::as_path)
    }
}

/// What a run does with each sample of each input.
pub(super) enum Decision {
    /// Search and write these outputs.
    Run(Outputs),
    /// Every requested output exists, made from this input by this model.
    Done(Outputs),
}

/// Every output path of an input named `stem` (all samples), as [`Outputs`] names them: the
/// names a run plans before any work. `upsample --align` plans the photos with these.
pub fn output_paths(opts: &UpsampleOptions, stem: &OsStr) -> Vec<PathBuf> {
    (0..opts.run.samples)
        .flat_map(|k| Outputs::new(opts, stem, k).all().cloned().collect::<Vec<_>>())
        .collect()
}

/// Plans the output names of every input of the job (`files`, sorted; every shard's, so that
/// the refusals do not depend on the split), by name only, before anything is read: an input
/// whose output (or one of `extra(stem)`, e.g. its aligned face) would overwrite a protected
/// file, or is also an output of an earlier input, is refused (keyed by its path). An output that
/// is the report stops the run.
pub fn check_names(
    files: &[PathBuf],
    opts: &UpsampleOptions,
    protected: &Protected,
    extra: &dyn Fn(&OsStr) -> Vec<PathBuf>,
) -> anyhow::Result<HashMap<PathBuf, anyhow::Error>> {
    let report = opts.report.as_deref().and_then(canonical);
    let mut claimed: HashMap<PathBuf, &Path> = HashMap::new();
    let mut refused = HashMap::new();
    for input in files {
        let stem = crate::files::output_stem(input);
        let mut outputs = extra(&stem);
        outputs.extend(output_paths(opts, &stem));
        let named: Vec<(PathBuf, PathBuf)> =
            outputs.into_iter().filter_map(|out| Some((canonical(&out)?, out))).collect();
        if let Some((_, out)) = named.iter().find(|(c, _)| Some(c) == report.as_ref()) {
            let path = opts.report.as_deref().expect("a report");
            crate::invalid!(
                "{}: the report file is also the output {}",
                escaped(path),
                escaped(out)
            );
        }
        let clash = named.iter().find_map(|(c, out)| {
            if let Some(inp) = protected.clash(out, c) {
                return Some(format!(
                    "its output {} would overwrite the input {}",
                    escaped(out),
                    escaped(inp)
                ));
            }
            claimed.get(c).map(|other| {
                format!(
                    "its output {} is also an output of {}; rename one of them",
                    escaped(out),
                    escaped(other)
                )
            })
        });
        match clash {
            Some(why) => {
                refused.insert(input.clone(), anyhow::anyhow!("{}: {why}", escaped(input)));
            }
            None => claimed.extend(named.into_iter().map(|(c, _)| (c, input.as_path()))),
        }
    }
    Ok(refused)
}

/// Decides, for every sample of each input (whose names [`check_names`] cleared), whether to run
/// it or whether it is finished. `Err`: the reason the whole input is refused.
pub(super) fn plan(
    inputs: &[Input],
    opts: &UpsampleOptions,
    model_sha256: &str,
) -> Vec<Result<Vec<Decision>, anyhow::Error>> {
    inputs
        .iter()
        .map(|input| {
            (0..opts.run.samples)
                .map(|k| Outputs::new(opts, &input.stem, k))
                .map(|o| decide(o, &input.path, opts.overwrite, model_sha256))
                .collect()
        })
        .collect()
}

/// Finished when every requested output exists and the latent says it was made from an input of
/// this name by this model; outputs that exist but were made from something else are not taken
/// for a result (nor overwritten without `--overwrite`).
fn decide(
    outputs: Outputs,
    input: &Path,
    overwrite: bool,
    model_sha256: &str,
) -> anyhow::Result<Decision> {
    if overwrite || !outputs.all().all(|p| p.is_file()) {
        return Ok(Decision::Run(outputs));
    }
    let meta = crate::latent::read_metadata(&outputs.latent)?;
    // `source` holds the input's path as given, escaped; compare file names, so a rerun from
    // another working folder still finds its results.
    let source_name = meta.get("source").and_then(|s| Path::new(s).file_name());
    let input_name = input.file_name().map(crate::files::escaped_name);
    let same_source = source_name.and_then(OsStr::to_str) == input_name.as_deref();
    let same_model = meta.get("model_sha256").map(String::as_str) == Some(model_sha256);
    if same_source && same_model {
        return Ok(Decision::Done(outputs));
    }
    anyhow::bail!(
        "{}: {} exists but was made {}; overwrite it on purpose, or write to another folder",
        escaped(input),
        escaped(&outputs.latent),
        if same_source { "by another model" } else { "from another input" }
    )
}

/// The file names of every planned output (and the report), for cleaning up their stale
/// temporary files.
pub(super) fn output_names<'a>(
    outputs: impl Iterator<Item = &'a Outputs>,
    report: Option<&Path>,
) -> HashSet<OsString> {
    outputs
        .flat_map(|o| {
            o.all().filter_map(|p| p.file_name().map(OsStr::to_os_string)).collect::<Vec<_>>()
        })
        .chain(report.and_then(|r| r.file_name()).map(OsStr::to_os_string))
        .collect()
}
