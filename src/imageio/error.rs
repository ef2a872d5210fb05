//! The one error type of this module: which file, and what is wrong with it, on one line.
use std::fmt;
use std::path::{Path, PathBuf};

/// An image that could not be read or written. Displays as one line: `<path>: <problem>`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct ImageError {
    pub path: PathBuf,
    pub kind: ImageErrorKind,
}

impl ImageError {
    pub fn new(path: &Path, kind: ImageErrorKind) -> Self {
        ImageError {
            path: path.to_path_buf(),
            kind,
        }
    }
}

/// What went wrong. Messages are lower-case fragments meant to follow `<path>: `.
#[derive(Debug, thiserror::Error)]
pub enum ImageErrorKind {
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(std::io::Error),
    /// A zero-byte file (often an interrupted download or copy).
    #[error("the file is empty (0 bytes)")]
    Empty,
    /// The content is none of the formats we decode (the extension is not consulted).
    #[error("not a recognised image (expected PNG, JPEG, WebP, BMP or GIF)")]
    UnknownFormat,
    /// The data ends early.
    #[error("the image is truncated: {0}")]
    Truncated(String),
    /// The decoder rejected the data.
    #[error("the image is corrupt: {0}")]
    Corrupt(String),
    /// Not a size this reader accepts; detected from the header, before decoding pixels.
    #[error("{width}x{height} is not accepted: {}", Accepted(accepted))]
    UnsupportedSize {
        width: u32,
        height: u32,
        accepted: Vec<i64>,
    },
    /// Beyond [`MAX_SIDE`](super::MAX_SIDE) on either side; detected from the header.
    #[error("{width}x{height} is too large (at most {max}x{max} is read)", max = super::MAX_SIDE)]
    TooLarge { width: u32, height: u32 },
    /// The file itself is beyond [`MAX_FILE_BYTES`](super::MAX_FILE_BYTES); refused before reading.
    #[error(
        "the file is {bytes} bytes (at most {} are read)",
        super::MAX_FILE_BYTES
    )]
    FileTooLarge { bytes: u64 },
    /// A pixel format the decoder cannot convert (e.g. 1-bit PNG variants it lacks).
    #[error("unsupported colour format: {0}")]
    UnsupportedColour(String),
    /// A format feature the decoder does not implement.
    #[error("unsupported image feature: {0}")]
    Unsupported(String),
    /// Writing failed (or the tensor to write had the wrong shape); nothing was left under the path.
    #[error("cannot write: {0}")]
    Write(String),
}

/// Formats the accepted sides: one side reads "must be 32x32", several read as the 2^k rule.
struct Accepted<'a>(&'a [i64]);

impl fmt::Display for Accepted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => write!(f, "no size is accepted"),
            [s] => write!(f, "the image must be {s}x{s}"),
            [first, ..] => {
                let list: Vec<String> = self.0.iter().map(|s| s.to_string()).collect();
                write!(
                    f,
                    "the input must be square with side {first}/2^k ({})",
                    list.join(", ")
                )
            }
        }
    }
}

/// Turns an `image` crate error into ours, keeping its text on one line.
pub(crate) fn from_image(path: &Path, e: image::ImageError) -> ImageError {
    use image::error::{ImageError as E, UnsupportedErrorKind};
    let kind = match e {
        E::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImageErrorKind::Truncated(one_line(&io.to_string()))
        }
        E::IoError(io) => ImageErrorKind::Io(io),
        E::Decoding(d) => {
            let text = one_line(&d.to_string());
            if looks_truncated(&text) {
                ImageErrorKind::Truncated(text)
            } else {
                ImageErrorKind::Corrupt(text)
            }
        }
        E::Unsupported(u) => match u.kind() {
            UnsupportedErrorKind::Color(_) => {
                ImageErrorKind::UnsupportedColour(one_line(&u.to_string()))
            }
            UnsupportedErrorKind::Format(_) => ImageErrorKind::UnknownFormat,
            _ => ImageErrorKind::Unsupported(one_line(&u.to_string())),
        },
        E::Limits(l) => ImageErrorKind::Corrupt(one_line(&format!("exceeds decoding limits: {l}"))),
        other => ImageErrorKind::Corrupt(one_line(&other.to_string())),
    };
    ImageError::new(path, kind)
}

/// Decoders report early ends in their own words; these are the ones seen in practice.
fn looks_truncated(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "eof",
        "end of file",
        "unexpected end",
        "truncated",
        "no more bytes",
        "not enough",
    ]
    .iter()
    .any(|w| t.contains(w))
}

/// Error texts from decoders may span lines; ours must not.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
