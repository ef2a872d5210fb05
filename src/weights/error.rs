//! Typed errors of the weight loader. Every message fits on one line, so that a CLI can print
//! `<path>: <reason>` and a log stays greppable.
use std::fmt;
use std::path::{Path, PathBuf};

/// A failure to read, parse or apply a weight file, with the file it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", escape_controls(&path.display().to_string()))]
pub struct WeightError {
    /// The file that was being read (empty for a [`super::StateDict::from_pairs`] dict).
    pub path: PathBuf,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl WeightError {
    pub fn new(path: &Path, kind: ErrorKind) -> Self {
        WeightError { path: path.to_path_buf(), kind }
    }
}

/// What went wrong, in words a user can act on (the file name is added by [`WeightError`]).
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    #[error("{}", one_line(&.0.to_string()))]
    Io(std::io::Error),
    #[error(
        "not a weight file (expected a PyTorch .pt file, legacy or zip, or a safetensors file)"
    )]
    NotAWeightFile,
    #[error("the file is truncated (it ends before the data it declares)")]
    Truncated,
    /// `offset` counts bytes from the start of the file (legacy format) or of the archive's
    /// `data.pkl` record (zip format).
    #[error("unsupported pickle opcode 0x{opcode:02x} at byte {offset} (only the opcodes torch.save writes are read)")]
    UnsupportedOpcode { opcode: u8, offset: u64 },
    #[error(
        "refused global '{module}.{name}' (only tensor data may be loaded from a weight file)"
    )]
    RefusedGlobal { module: String, name: String },
    #[error("missing key '{key}'")]
    MissingKey { key: String },
    #[error("shape mismatch for '{key}': the model expects {expected:?}, the file has {found:?}")]
    ShapeMismatch { key: String, expected: Vec<i64>, found: Vec<i64> },
    /// NaN or infinite values: a network holding them renders black or noise, never a face.
    #[error("'{key}' holds NaN or infinite values")]
    NonFinite { key: String },
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("malformed weight file: {0}")]
    Malformed(String),
    #[error("unsupported dtype {0}")]
    UnsupportedDtype(String),
    /// Writing a weight file failed (a full disk, a folder that cannot be written): a failure
    /// while working, unlike every other kind, which is a file that cannot be used.
    #[error("cannot write: {0}")]
    Write(Box<ErrorKind>),
}

impl From<std::io::Error> for ErrorKind {
    fn from(e: std::io::Error) -> Self {
        ErrorKind::Io(e)
    }
}

/// Makes text taken from a file safe to print on one line: control characters (newlines
/// included) are escaped and very long text is cut, so a crafted key cannot forge log lines.
pub(crate) fn one_line(s: &str) -> String {
    const MAX_CHARS: usize = 200;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}...", escape_controls(&s[..cut])),
        None => escape_controls(s),
    }
}

/// Escapes control characters (a file name may contain a newline), keeping everything else.
fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Shorthand for `Err(ErrorKind::Malformed(...))` with a formatted, one-line message.
pub(crate) fn malformed(msg: impl fmt::Display) -> ErrorKind {
    ErrorKind::Malformed(one_line(&msg.to_string()))
}

/// Shorthand for `ErrorKind::LimitExceeded` with a one-line message.
pub(crate) fn limit(msg: impl fmt::Display) -> ErrorKind {
    ErrorKind::LimitExceeded(one_line(&msg.to_string()))
}
