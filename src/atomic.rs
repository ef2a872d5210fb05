//! Every output goes through a temporary file in the destination folder and a rename, so a
//! crash, a full disk or Ctrl-C never leaves a half-written file under the final name.
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically (same-folder temporary file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".pulse-").suffix(".tmp").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
