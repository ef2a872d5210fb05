//! Writing a model folder: every file is written into a temporary folder beside the target,
//! then moved in. A new or empty target is replaced by the whole folder in one rename; an
//! existing model folder has only the files pulse writes replaced, one rename each
//! (`model.json` last), and only with `force`. Nothing pulse did not write is ever deleted:
//! not the user's other files, not the source being imported, and a symbolic link given as
//! the target is refused rather than followed.
use super::{ImportError, ImportOptions, ImportReport};
use crate::files::escaped;
use crate::model_info::{self, ModelInfo};
use crate::weights::{self, StateDict};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// One file of the new folder: its name, tensors and safetensors metadata.
pub(super) struct OutputFile {
    pub name: &'static str,
    pub tensors: Vec<(String, Tensor)>,
    pub meta: Vec<(&'static str, String)>,
}

/// The new folder's files, written and hashed, waiting in a temporary folder.
pub(super) struct Staged {
    tmp: tempfile::TempDir,
    /// (name, sha256) in writing order; `model.json` is not among them.
    pub files: Vec<(String, String)>,
}

fn io(what: &Path, e: &dyn std::fmt::Display) -> ImportError {
    ImportError::Other(anyhow::anyhow!("{}: {e}", escaped(what)))
}

/// Checks the target: no symbolic link, no file.
pub(super) fn check_target(out: &Path) -> Result<(), ImportError> {
    let meta = std::fs::symlink_metadata(out);
    if meta.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(ImportError::Usage(format!(
            "{}: is a symbolic link; give the folder itself",
            escaped(out)
        )));
    }
    if meta.is_ok_and(|m| !m.is_dir()) {
        return Err(ImportError::Usage(format!("{}: exists and is not a folder", escaped(out))));
    }
    if out.file_name().is_none() {
        return Err(ImportError::Usage(format!("{}: not a folder name", escaped(out))));
    }
    Ok(())
}

fn parent_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes the files into a temporary folder beside `out`.
pub(super) fn stage(out: &Path, files: Vec<OutputFile>) -> Result<Staged, ImportError> {
    let parent = parent_of(out);
    let name = out.file_name().expect("checked").to_string_lossy().into_owned();
    std::fs::create_dir_all(&parent)
        .map_err(|e| io(&parent, &format!("cannot create folder: {e}")))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.import-"))
        .tempdir_in(&parent)
        .map_err(|e| io(&parent, &e))?;
    let mut written = Vec::new();
    for file in files {
        let path = tmp.path().join(file.name);
        let sd = StateDict::from_pairs(file.tensors);
        let meta: HashMap<String, String> =
            file.meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        weights::save_safetensors(&sd, &path, Some(&meta))
            .map_err(|e| ImportError::Other(e.into()))?;
        let sha = weights::sha256_file(&path).map_err(|e| io(&path, &e))?;
        written.push((file.name.to_string(), sha));
    }
    Ok(Staged { tmp, files: written })
}

/// Moves a staged folder into place (see the module doc). `info` is the new `model.json`.
pub(super) fn install(
    opts: &ImportOptions,
    report: &mut ImportReport,
    staged: Staged,
    info: &ModelInfo,
) -> Result<(), ImportError> {
    let out = &opts.out;
    let json_path = staged.tmp.path().join(model_info::FILE);
    let write_json = |info: &ModelInfo| {
        std::fs::write(&json_path, info.to_json()).map_err(|e| io(&json_path, &e))
    };
    report.files =
        staged.files.iter().map(|(f, _)| f.clone()).chain([model_info::FILE.to_string()]).collect();
    if is_absent_or_empty(out) {
        write_json(info)?;
        if out.exists() {
            std::fs::remove_dir(out).map_err(|e| io(out, &e))?;
        }
        std::fs::rename(staged.tmp.path(), out).map_err(|e| io(out, &e))?;
        let _ = staged.tmp.keep();
        return Ok(());
    }
    let old = ModelInfo::read(out);
    write_json(info)?;
    if already_installed(out, old.as_ref(), &staged, &opts.sources) && !opts.force {
        report.unchanged = true;
        return Ok(());
    }
    let is_model = old.is_some() || crate::model::find_file(out, "synthesis").is_some();
    if !opts.force {
        return Err(if is_model {
            ImportError::OtherModel(out.to_path_buf())
        } else {
            ImportError::NotAModelFolder(out.to_path_buf())
        });
    }
    // The previous network's files that pulse may not remove are recorded, so that they are
    // refused rather than used with the new network (`Model::load`).
    let mut info = info.clone();
    info.superseded = superseded(out, old.as_ref(), &report.files, &opts.sources);
    // Those a file pulse writes shadows (`gaussian_fit.pt` beside a new
    // `gaussian_fit.safetensors`) are never read, so never in the way.
    let shadowed = |name: &str| {
        name.strip_suffix(".pt").is_some_and(|stem| {
            report.files.iter().any(|f| f.strip_suffix(".safetensors") == Some(stem))
        })
    };
    report.superseded = info.superseded.keys().filter(|n| !shadowed(n)).cloned().collect();
    write_json(&info)?;
    replace_files(opts, report, &staged, old.as_ref())
}

/// The network files in `out` (`synthesis`, `mapping`, `gaussian_fit`, `w_avg`, as `.pt` or
/// `.safetensors`) that a forced import neither writes nor removes: not among `new_names`, not
/// a source of the import, and not a file pulse wrote that still holds what it wrote. File
/// name -> sha256.
fn superseded(
    out: &Path,
    old: Option<&ModelInfo>,
    new_names: &[String],
    sources: &[PathBuf],
) -> std::collections::BTreeMap<String, String> {
    let sources: Vec<PathBuf> = sources.iter().filter_map(|s| s.canonicalize().ok()).collect();
    let mut kept = std::collections::BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(out) else { return kept };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else { continue };
        let network = ["synthesis", "mapping", "gaussian_fit", "w_avg"]
            .iter()
            .any(|stem| [".pt", ".safetensors"].iter().any(|ext| name == format!("{stem}{ext}")));
        let path = entry.path();
        if !network
            || new_names.contains(&name)
            || !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file())
            || path.canonicalize().is_ok_and(|c| sources.contains(&c))
        {
            continue;
        }
        let Ok(sha) = weights::sha256_file(&path) else { continue };
        if old.and_then(|o| o.file_sha(&name)).is_some_and(|s| s == sha) {
            continue; // pulse's own: removed by replace_files
        }
        kept.insert(name, sha);
    }
    kept
}

/// `--force` on an existing folder: each file pulse writes is renamed over its old version;
/// files the old `model.json` lists that this import does not write are removed if they still
/// hold what pulse wrote. Nothing else is touched.
fn replace_files(
    opts: &ImportOptions,
    report: &mut ImportReport,
    staged: &Staged,
    old: Option<&ModelInfo>,
) -> Result<(), ImportError> {
    let out = &opts.out;
    let new_names: Vec<String> = report.files.clone();
    let sources: Vec<PathBuf> = opts.sources.iter().filter_map(|s| s.canonicalize().ok()).collect();
    let is_source = |p: &Path| p.canonicalize().is_ok_and(|c| sources.contains(&c));
    for name in &new_names {
        let target = out.join(name);
        if is_source(&target) {
            return Err(ImportError::Usage(format!(
                "{}: the source would be replaced by the model's file of that name; import into another folder",
                escaped(&target)
            )));
        }
    }
    let mut replaced = Vec::new();
    for name in &new_names {
        let target = out.join(name);
        if target.exists() {
            replaced.push(name.clone());
        }
        std::fs::rename(staged.tmp.path().join(name), &target).map_err(|e| io(&target, &e))?;
    }
    if let Some(old) = old {
        for (name, sha) in &old.files {
            let path = out.join(name);
            let plain = Path::new(name).file_name().is_some_and(|f| f == name.as_str());
            if !plain || new_names.contains(name) || is_source(&path) {
                continue;
            }
            // Only a file that still holds what pulse wrote there is pulse's to remove.
            if weights::sha256_file(&path).is_ok_and(|s| &s == sha) {
                std::fs::remove_file(&path).map_err(|e| io(&path, &e))?;
                replaced.push(name.clone());
            }
        }
    }
    report.replaced = true;
    report.replaced_files = replaced;
    Ok(())
}

/// Whether the folder already holds these weights: its `model.json` records the same
/// synthesis file, or it holds a file byte-identical to the new synthesis file or to a source.
fn already_installed(
    out: &Path,
    old: Option<&ModelInfo>,
    staged: &Staged,
    sources: &[PathBuf],
) -> bool {
    let new_sha = &staged.files[0].1;
    if old.and_then(|o| o.file_sha(&staged.files[0].0)).is_some_and(|s| s == new_sha) {
        return true;
    }
    let mut wanted: Vec<(u64, String)> = Vec::new();
    let synthesis = staged.tmp.path().join(&staged.files[0].0);
    if let Ok(m) = std::fs::metadata(&synthesis) {
        wanted.push((m.len(), new_sha.clone()));
    }
    for s in sources {
        if let (Ok(m), Ok(sha)) = (std::fs::metadata(s), weights::sha256_file(s)) {
            wanted.push((m.len(), sha));
        }
    }
    let Ok(entries) = std::fs::read_dir(out) else { return false };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if !meta.is_file() || !wanted.iter().any(|(len, _)| *len == meta.len()) {
            continue;
        }
        if let Ok(sha) = weights::sha256_file(&path) {
            // A source that is in the folder is the model's own weight file only if the folder
            // is a model folder: `synthesis.*` itself.
            if wanted.iter().any(|(len, s)| *len == meta.len() && *s == sha)
                && path.file_stem().is_some_and(|s| s == "synthesis")
            {
                return true;
            }
        }
    }
    false
}

/// Whether `dir` is missing or an empty folder.
fn is_absent_or_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => !dir.exists(),
    }
}
