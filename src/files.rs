//! Output files: every output is written to a temporary file in its destination folder, synced,
//! then renamed over the final name, so a reader, a crash, a full disk or Ctrl-C never leaves half
//! a file under an output name, and a failed write leaves whatever was there before untouched.
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Temporary files end with this; a run cleans up its own stale ones
/// ([`remove_stale_temporaries`]).
pub const TEMP_SUFFIX: &str = ".tmp";

/// The prefix of the temporary files [`write_atomic`] makes for `name`: `.<name>.`, followed by
/// random characters and [`TEMP_SUFFIX`].
pub fn temporary_prefix(name: &OsStr) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    prefix
}

/// The output a temporary file of [`write_atomic`] was made for: `.<name>.<random><TEMP_SUFFIX>`
/// gives `<name>` (the random part has no dot).
pub fn output_of_temporary(file_name: &OsStr) -> Option<&OsStr> {
    let f = file_name.as_bytes();
    let inner = f.strip_prefix(b".")?.strip_suffix(TEMP_SUFFIX.as_bytes())?;
    let dot = inner.iter().rposition(|&b| b == b'.')?;
    let (name, random) = (&inner[..dot], &inner[dot + 1..]);
    (!name.is_empty() && !random.is_empty()).then(|| OsStr::from_bytes(name))
}

/// Removes the temporary files that an interrupted earlier run left in `dir` for any of
/// `outputs` (file names). Call only while holding the folder's [`DirLock`], so a live run's
/// temporary file is never taken. Returns how many were removed.
pub fn remove_stale_temporaries(
    dir: &Path,
    outputs: &std::collections::HashSet<OsString>,
) -> std::io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if output_of_temporary(&name).is_some_and(|o| outputs.contains(o))
            && entry.file_type()?.is_file()
        {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// A path for messages and reports, lossless: valid UTF-8 as it is, any other byte as `\xNN`
/// (and a backslash as `\\`, so the escaping can be undone).
pub fn escaped(path: &Path) -> String {
    escaped_bytes(path.as_os_str().as_bytes())
}

/// [`escaped`] for any name.
pub fn escaped_name(name: &OsStr) -> String {
    escaped_bytes(name.as_bytes())
}

fn escaped_bytes(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// Whether two paths name the same file: the same canonical path (an output that does not exist
/// yet is compared through its folder's canonical path), or the same inode (hard links).
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    match (canonical(a), canonical(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// The canonical form of a path that may not exist yet: its folder canonicalised, then its name.
pub fn canonical(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let name = path.file_name()?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(dir.canonicalize().ok()?.join(name))
}

/// Refuses (with one line naming both) any output that is one of the inputs.
pub fn check_no_clobber(inputs: &[&Path], outputs: &[&Path]) -> Result<(), crate::Invalid> {
    for out in outputs {
        if let Some(input) = inputs.iter().find(|i| same_file(i, out)) {
            return Err(crate::Invalid(format!(
                "{}: this output is the input {}; choose another output name",
                escaped(out),
                escaped(input)
            )));
        }
    }
    Ok(())
}

/// Checks that files can be created in `dir` (creating it if needed), by making and removing a
/// temporary file: an unwritable output folder is found before any work, not after it.
pub fn check_writable_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    tempfile::Builder::new().prefix(".pulse-write-check").tempfile_in(dir).map(drop)
}

/// The stem of the outputs made from an input: its file name without the extension, any bytes
/// kept (`image` for a path without a file name).
pub fn output_stem(path: &Path) -> OsString {
    path.file_stem().map(|s| s.to_os_string()).unwrap_or_else(|| "image".into())
}

/// The folder an output path goes in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// An advisory lock on an output folder (`flock` on `<dir>/.pulse.lock`), held while a run
/// writes there, so two runs never mix their results in one folder. Released on drop, and by
/// the system when the process dies (kill -9 included), so a stale lock never blocks a rerun.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// The name of the lock file [`DirLock`] keeps in an output folder.
pub const LOCK_FILE: &str = ".pulse.lock";

impl DirLock {
    /// Takes the lock, or returns `Ok(None)` when another process holds it.
    pub fn try_acquire(dir: &Path) -> std::io::Result<Option<Self>> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Writes whatever `f` writes into `path`, atomically: a temporary file next to `path`, fsync,
/// then rename. On any error the temporary file is removed and `path` is left as it was. The
/// parent folder must exist. New files get the usual permissions (0666 less the umask).
pub fn write_atomic(
    path: &Path,
    f: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path has no file name")
    })?;
    let dir = parent_dir(path);
    let prefix = temporary_prefix(name);
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(TEMP_SUFFIX);
    // tempfile defaults to 0600; ask for the usual 0666 and let the umask narrow it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    f(tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Make the rename itself durable; not every filesystem supports syncing a folder.
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The hex digest of `prefix` followed by a file's bytes, read in chunks (model files are large).
pub fn digest_file<D: sha2::Digest>(path: &Path, prefix: &[u8]) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut hasher = D::new();
    hasher.update(prefix);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// [`write_atomic`] of a byte buffer.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic(path, |f| std::io::Write::write_all(f, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_match_only_their_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.png");
        // A temporary file that is left behind (the writer fails) is removed; look at one made by
        // the same builder settings instead.
        let tmp = tempfile::Builder::new()
            .prefix(&temporary_prefix(OsStr::new("a.png")))
            .suffix(TEMP_SUFFIX)
            .tempfile_in(dir.path())
            .unwrap();
        let name = tmp.path().file_name().unwrap().to_owned();
        assert_eq!(output_of_temporary(&name), Some(OsStr::new("a.png")));
        assert_eq!(
            output_of_temporary(OsStr::new(".a.png.compare.png.x.tmp")),
            Some(OsStr::new("a.png.compare.png"))
        );
        assert_eq!(output_of_temporary(OsStr::new("a.png")), None);
        write_bytes_atomic(&path, b"x").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        let outputs: std::collections::HashSet<OsString> = [OsString::from("a.png")].into();
        assert_eq!(remove_stale_temporaries(dir.path(), &outputs).unwrap(), 1);
        assert!(!tmp.path().exists());
        assert!(path.exists(), "the output itself stays");
    }

    #[test]
    fn escaping_is_lossless_and_leaves_utf8_alone() {
        assert_eq!(escaped(Path::new("faces/é.png")), "faces/é.png");
        let name = OsStr::from_bytes(b"a\xffb\\c.png");
        assert_eq!(escaped_name(name), "a\\xFFb\\\\c.png");
    }

    #[test]
    fn same_file_sees_links_and_outputs_to_be() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.png");
        std::fs::write(&a, b"x").unwrap();
        let link = dir.path().join("b.png");
        std::fs::hard_link(&a, &link).unwrap();
        assert!(same_file(&a, &link));
        assert!(same_file(&a, &dir.path().join(".").join("a.png")));
        assert!(same_file(&dir.path().join("new.png"), &dir.path().join(".").join("new.png")));
        assert!(!same_file(&a, &dir.path().join("new.png")));
        assert!(check_no_clobber(&[&a], &[&link]).is_err());
        assert!(check_no_clobber(&[&a], &[&dir.path().join("c.png")]).is_ok());
    }

    #[test]
    fn a_held_lock_is_seen_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::try_acquire(dir.path()).unwrap().expect("free");
        assert!(DirLock::try_acquire(dir.path()).unwrap().is_none());
        drop(first);
        assert!(DirLock::try_acquire(dir.path()).unwrap().is_some());
    }
}
