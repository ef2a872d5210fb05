//! Exit codes, in one place (README, "Exit codes"). Scripts depend on them.
use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done (for `upsample`: every image converged).
    Success,
    /// Something failed while working: a file could not be written, libtorch failed, the
    /// network was unreachable.
    Failure,
    /// The request was refused: a bad command line, a setting this model or machine cannot
    /// take, or an input that cannot be used (for `upsample`: some input was refused).
    Refused,
    /// `upsample`: some image did not converge (its result was still written).
    NotConverged,
    /// Ctrl-C: stopped between steps; everything written is complete.
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Refused => 2,
            Exit::NotConverged => 3,
            Exit::Interrupted => 130,
        }
    }

    /// The exit code of an error: [`Exit::Refused`] when the first error of its chain that says
    /// which it is ([`refusal`]) refuses the request or an input, [`Exit::Failure`] otherwise.
    /// Where the error was made decides, by its type; call sites add context, never a verdict.
    pub fn of_error(err: &anyhow::Error) -> Exit {
        match err.chain().find_map(refusal) {
            Some(true) => Exit::Refused,
            _ => Exit::Failure,
        }
    }
}

/// Whether one error (a link of a chain) refuses the request or an input: `Some(true)` refused,
/// `Some(false)` a failure while working, `None` when its type says neither (a context message,
/// a plain error). The only place that classifies errors: a new error type that can refuse
/// goes here.
fn refusal(e: &(dyn std::error::Error + 'static)) -> Option<bool> {
    use pulse::imageio::{ImageError, ImageErrorKind};
    use pulse::pipelines::download::DownloadError;
    use pulse::pipelines::import::ImportError;
    use pulse::weights::{ErrorKind, WeightError};
    if e.is::<pulse::Invalid>()
        || e.is::<pulse::device::DeviceError>()
        || e.is::<pulse::latent::LatentError>()
    {
        return Some(true);
    }
    if let Some(e) = e.downcast_ref::<WeightError>() {
        return Some(!matches!(e.kind, ErrorKind::Write(_)));
    }
    if let Some(e) = e.downcast_ref::<ImageError>() {
        return Some(!matches!(e.kind, ImageErrorKind::Write(_)));
    }
    if let Some(e) = e.downcast_ref::<ImportError>() {
        return match e {
            ImportError::Refused(_)
            | ImportError::Usage(_)
            | ImportError::OtherModel(_)
            | ImportError::NotAModelFolder(_) => Some(true),
            ImportError::Interrupted => Some(false),
            ImportError::Other(_) => None,
        };
    }
    if let Some(e) = e.downcast_ref::<DownloadError>() {
        return match e {
            DownloadError::Usage(_)
            | DownloadError::OtherModel(_)
            | DownloadError::OtherFile(_)
            | DownloadError::Busy(_) => Some(true),
            DownloadError::AllFailed { .. } | DownloadError::Interrupted { .. } => Some(false),
            DownloadError::Other(_) => None,
        };
    }
    None
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// An error message in plain words: what Rust's number parsing and the operating system say
/// ("invalid digit found in string", "File exists (os error 17)") replaced by what a user
/// reads, any other "(os error N)" dropped.
pub fn plain(message: &str) -> String {
    const WORDS: [(&str, &str); 14] = [
        ("invalid digit found in string", "not a whole number"),
        ("cannot parse integer from empty string", "empty, expected a whole number"),
        ("number too large to fit in target type", "too large"),
        ("number too small to fit in target type", "too small"),
        ("invalid float literal", "not a number"),
        ("File exists (os error 17)", "a file of that name is in the way"),
        ("Not a directory (os error 20)", "a part of the path is a file, not a folder"),
        ("Is a directory (os error 21)", "is a folder, not a file"),
        ("No such file or directory (os error 2)", "no such file or folder"),
        ("Permission denied (os error 13)", "permission denied"),
        ("No space left on device (os error 28)", "no space left on the device"),
        ("Read-only file system (os error 30)", "the filesystem is read-only"),
        ("Directory not empty (os error 39)", "the folder is not empty"),
        ("Disk quota exceeded (os error 122)", "disk quota exceeded"),
    ];
    let mut text = message.to_string();
    for (from, to) in WORDS {
        text = text.replace(from, to);
    }
    // Any other "(os error N)": the number says nothing to a user.
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find(" (os error ") {
        let tail = &rest[i + " (os error ".len()..];
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && tail[digits..].starts_with(')') {
            out.push_str(&rest[..i]);
            rest = &tail[digits + 1..];
        } else {
            out.push_str(&rest[..i + 1]);
            rest = &rest[i + 1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_no_rust_or_os_jargon() {
        assert_eq!(
            plain("invalid value 'x' for '--steps <N>': invalid digit found in string"),
            "invalid value 'x' for '--steps <N>': not a whole number"
        );
        assert_eq!(
            plain("out/a.png: cannot write there: File exists (os error 17)"),
            "out/a.png: cannot write there: a file of that name is in the way"
        );
        assert_eq!(
            plain("x: Broken pipe (os error 32); y (os error z)"),
            "x: Broken pipe; y (os error z)"
        );
    }

    #[test]
    fn errors_are_classified_by_their_type_wherever_they_are_in_the_chain() {
        use std::path::Path;
        let plain = anyhow::anyhow!("disk on fire");
        assert_eq!(Exit::of_error(&plain), Exit::Failure);
        let invalid: anyhow::Error = pulse::Invalid("eps must be positive".into()).into();
        assert_eq!(Exit::of_error(&invalid.context("upsample")), Exit::Refused);
        // A weight file that cannot be read is refused; one that cannot be written is a failure.
        let bad = pulse::weights::load(Path::new("/nonexistent/pnet.pt")).unwrap_err();
        let bad = anyhow::Error::from(bad).context("cannot load the MTCNN weights");
        assert_eq!(Exit::of_error(&bad), Exit::Refused);
        let io = || std::io::Error::from(std::io::ErrorKind::StorageFull);
        let write = pulse::weights::ErrorKind::Write(Box::new(io().into()));
        let write = pulse::weights::WeightError::new(Path::new("out.safetensors"), write);
        assert_eq!(Exit::of_error(&anyhow::Error::from(write)), Exit::Failure);
        use pulse::imageio::{ImageError, ImageErrorKind};
        let unreadable = ImageError::new(Path::new("a.png"), ImageErrorKind::Io(io()));
        assert_eq!(Exit::of_error(&anyhow::Error::from(unreadable)), Exit::Refused);
        let unwritable = ImageError::new(Path::new("a.png"), ImageErrorKind::Write("full".into()));
        assert_eq!(Exit::of_error(&anyhow::Error::from(unwritable)), Exit::Failure);
        use pulse::pipelines::import::ImportError;
        let other_model = ImportError::OtherModel("models/ffhq".into());
        assert_eq!(Exit::of_error(&anyhow::Error::from(other_model)), Exit::Refused);
        let other = ImportError::Other(anyhow::anyhow!("disk on fire"));
        assert_eq!(Exit::of_error(&anyhow::Error::from(other)), Exit::Failure);
        let device: anyhow::Error = pulse::device::DeviceError::Unknown("tpu".into()).into();
        assert_eq!(Exit::of_error(&device), Exit::Refused);
        assert_eq!(
            [Exit::Success, Exit::Failure, Exit::Refused, Exit::NotConverged, Exit::Interrupted]
                .map(Exit::code),
            [0, 1, 2, 3, 130]
        );
    }
}
