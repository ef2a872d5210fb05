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

/// Writing paths into reports [`escaped`], for `#[serde(serialize_with = ...)]`: serde's own
/// way fails on a name that is not UTF-8, which would lose the whole report.
pub mod as_escaped {
    use serde::Serializer;
    use std::path::{Path, PathBuf};

    pub fn path<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::escaped(p))
    }

    pub fn paths<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(paths.iter().map(|p| super::escaped(p)))
    }

    pub fn option<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_str(&super::escaped(p)),
            None => s.serialize_none(),
        }
    }
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

/// The lock of an output folder (or of one shard's share of it, see
/// [`crate::pipelines::shard::lock_name`]), held while a run writes there, so that two runs of
/// the same work never run side by side.
///
/// The lock is the file `<dir>/<name>`, created with `O_EXCL` (atomic on local filesystems and
/// on NFS v3+ and Lustre) and holding its owner (`host`, `pid`, start time), plus a `flock` on
/// it. Correctness never rests on the lock: outputs are whole because each is renamed into place
/// complete, and a task that runs twice skips finished work. The lock only keeps a second run of
/// the same work from starting, and must not block a rerun after a crash:
/// - a lock left by a dead process on this machine is taken over (the system released its
///   `flock`, which is dependable between processes of one machine);
/// - a lock of another machine is taken over once it is stale: its holder rewrites it every
///   [`LOCK_HEARTBEAT`] seconds, and one untouched for [`LOCK_STALE`] seconds (compared with the
///   folder's own clock, the time stamp of a file written there now) belongs to a run that died.
///
/// Released on drop: the file is removed (when it is still this run's).
#[derive(Debug)]
pub struct DirLock {
    file: File,
    path: PathBuf,
    token: String,
    heartbeat: Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

/// The name of the lock file [`DirLock`] keeps in an output folder for a whole (unsharded) run.
pub const LOCK_FILE: &str = ".pulse.lock";

/// Seconds between two rewrites of a held lock file.
pub const LOCK_HEARTBEAT: u64 = 30;

/// Seconds after which a lock file of another machine that was not rewritten is stale.
pub const LOCK_STALE: u64 = 300;

/// Who holds a lock, as its file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub host: String,
    pub pid: u32,
    /// Unix time the run started.
    pub started: u64,
    token: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.is_empty() {
            write!(f, "holder unknown")
        } else {
            write!(f, "pid {} on {}", self.pid, self.host)
        }
    }
}

impl LockHolder {
    fn line(&self) -> String {
        format!(
            "pulse-lock/1 host={} pid={} started={} token={}\n",
            self.host, self.pid, self.started, self.token
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split(' ');
        if parts.next()? != "pulse-lock/1" {
            return None;
        }
        let mut field = |key: &str| parts.next()?.strip_prefix(key).map(str::to_string);
        Some(Self {
            host: field("host=")?,
            pid: field("pid=")?.parse().ok()?,
            started: field("started=")?.parse().ok()?,
            token: field("token=")?,
        })
    }

    fn ours() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Self {
            host: host_name(),
            pid: std::process::id(),
            started: now,
            token: format!("{:x}{:08x}", std::process::id(), nanos),
        }
    }
}

/// This machine's name, as lock files record it (no spaces).
pub fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = name.trim().chars().filter(|c| !c.is_whitespace()).collect();
    if name.is_empty() {
        "unknown".into()
    } else {
        name
    }
}

impl DirLock {
    /// Takes the whole-folder lock ([`LOCK_FILE`]), or returns `Ok(None)` when another live run
    /// holds it.
    pub fn try_acquire(dir: &Path) -> std::io::Result<Option<Self>> {
        Ok(Self::acquire(dir, LOCK_FILE)?.ok())
    }

    /// Takes the lock `<dir>/<name>`, or returns `Ok(Err(holder))` when a live run holds it.
    pub fn acquire(dir: &Path, name: &str) -> std::io::Result<Result<Self, LockHolder>> {
        let path = dir.join(name);
        let ours = LockHolder::ours();
        // A few rounds: another run may remove or replace the file between our steps.
        for _ in 0..8 {
            match std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path) {
                Ok(file) => {
                    // New, so nobody else can hold it; the flock only marks it live on this machine.
                    let _ = file.try_lock();
                    return Self::own(file, path, ours).map(Ok);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            let mut file = match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let holder = read_holder(&mut file);
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Ok(Err(holder.unwrap_or_else(unknown_holder)));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            // The file may have been removed (its holder finished) before our flock: start over.
            if !same_inode(&file, &path) {
                continue;
            }
            let holder = read_holder(&mut file).or(holder);
            let foreign = holder.as_ref().is_some_and(|h| h.host != ours.host);
            if foreign && !is_stale(&file, dir) {
                return Ok(Err(holder.expect("foreign means known")));
            }
            // Ours to take over: a dead run of this machine, a stale one of another, or a file
            // without a holder (left by an older pulse).
            return Self::own(file, path, ours).map(Ok);
        }
        Err(std::io::Error::other("the lock file keeps changing under us"))
    }

    /// Writes our holder line into the lock file and starts the heartbeat.
    fn own(mut file: File, path: PathBuf, ours: LockHolder) -> std::io::Result<Self> {
        use std::io::{Seek, Write};
        let line = ours.line();
        file.set_len(0)?;
        file.seek(std::io::SeekFrom::Start(0))?;
        file.write_all(line.as_bytes())?;
        file.sync_data()?;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let beat = file.try_clone()?;
        let handle = std::thread::Builder::new().name("pulse-lock".into()).spawn(move || {
            use std::os::unix::fs::FileExt;
            let period = std::time::Duration::from_secs(LOCK_HEARTBEAT);
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(period) {
                // Rewriting the same bytes moves the file's time stamp on (the server's clock on
                // a network filesystem), which is what [`is_stale`] reads.
                let _ = beat.write_at(line.as_bytes(), 0);
                let _ = beat.sync_data();
            }
        })?;
        Ok(Self { file, path, token: ours.token, heartbeat: Some((tx, handle)) })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if let Some((tx, handle)) = self.heartbeat.take() {
            drop(tx);
            let _ = handle.join();
        }
        // Remove the file while still holding the flock, and only if it is still ours (a run of
        // another machine may have taken over a lock it found stale).
        let still_ours = File::open(&self.path)
            .ok()
            .and_then(|mut f| read_holder(&mut f))
            .is_some_and(|h| h.token == self.token);
        if still_ours && same_inode(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The live run holding the lock `<dir>/<name>`, if any: the file is there and its holder is
/// alive (its `flock` is held on this machine, or another machine's holder has rewritten it
/// within [`LOCK_STALE`] seconds). Takes nothing over and changes nothing.
pub fn live_holder(dir: &Path, name: &str) -> std::io::Result<Option<LockHolder>> {
    let path = dir.join(name);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let holder = read_holder(&mut file);
    match file.try_lock_shared() {
        Err(std::fs::TryLockError::WouldBlock) => {
            return Ok(Some(holder.unwrap_or_else(unknown_holder)))
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
        Ok(()) => {}
    }
    let foreign = holder.as_ref().filter(|h| h.host != host_name());
    Ok(foreign.filter(|_| !is_stale(&file, dir)).cloned())
}

fn unknown_holder() -> LockHolder {
    LockHolder { host: String::new(), pid: 0, started: 0, token: String::new() }
}

fn read_holder(file: &mut File) -> Option<LockHolder> {
    use std::io::{Read, Seek};
    file.seek(std::io::SeekFrom::Start(0)).ok()?;
    let mut text = String::new();
    file.by_ref().take(4096).read_to_string(&mut text).ok()?;
    LockHolder::parse(&text)
}

fn same_inode(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Whether the lock file was last written more than [`LOCK_STALE`] seconds ago, by the clock of
/// the filesystem that holds it: the time stamp of a file written in `dir` now, not this
/// machine's clock, which may disagree with the file server's.
fn is_stale(file: &File, dir: &Path) -> bool {
    let Ok(written) = file.metadata().and_then(|m| m.modified()) else { return false };
    let now = tempfile::Builder::new()
        .prefix(".pulse-clock")
        .tempfile_in(dir)
        .and_then(|mut t| {
            std::io::Write::write_all(&mut t, b"x")?;
            t.as_file().sync_data()?;
            t.as_file().metadata()?.modified()
        })
        .unwrap_or_else(|_| std::time::SystemTime::now());
    now.duration_since(written).is_ok_and(|age| age.as_secs() > LOCK_STALE)
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
        let holder = DirLock::acquire(dir.path(), LOCK_FILE).unwrap().unwrap_err();
        assert_eq!((holder.pid, holder.host.clone()), (std::process::id(), host_name()));
        // Another name (another shard) is another lock.
        let other = DirLock::acquire(dir.path(), ".pulse.lock.1-of-2").unwrap().expect("free");
        drop(first);
        assert!(!dir.path().join(LOCK_FILE).exists(), "removed on release");
        assert!(DirLock::try_acquire(dir.path()).unwrap().is_some());
        drop(other);
    }

    #[test]
    fn dead_and_stale_holders_are_taken_over_live_foreign_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        // Left by a dead run of this machine (no flock held): taken over.
        let dead = LockHolder { pid: 1, ..LockHolder::ours() };
        std::fs::write(&path, dead.line()).unwrap();
        drop(DirLock::try_acquire(dir.path()).unwrap().expect("a dead holder's lock is free"));
        // An empty file from an older pulse: taken over.
        std::fs::write(&path, b"").unwrap();
        drop(DirLock::try_acquire(dir.path()).unwrap().expect("no holder"));
        // Another machine's, fresh: refused whatever flock says.
        let foreign = LockHolder { host: "node-7".into(), ..LockHolder::ours() };
        std::fs::write(&path, foreign.line()).unwrap();
        let holder = DirLock::acquire(dir.path(), LOCK_FILE).unwrap().unwrap_err();
        assert_eq!(holder.host, "node-7");
        assert_eq!(holder.to_string(), format!("pid {} on node-7", holder.pid));
        // ... and once it has not been rewritten for longer than LOCK_STALE, taken over.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(LOCK_STALE + 60);
        File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        let lock = DirLock::try_acquire(dir.path()).unwrap().expect("stale");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("pid={}", std::process::id())), "{text}");
        drop(lock);
        assert!(!path.exists());
    }
}
