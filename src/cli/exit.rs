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

    /// The exit code of an error: [`Exit::Refused`] when the error says the request or an
    /// input was refused, [`Exit::Failure`] otherwise.
    pub fn of_error(err: &anyhow::Error) -> Exit {
        let refused = err.chain().any(|e| {
            e.is::<Refusal>() || e.is::<pulse::Invalid>() || e.is::<pulse::device::DeviceError>()
        });
        if refused {
            Exit::Refused
        } else {
            Exit::Failure
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// Marks an error as the refusal of an input (a file that cannot be used as given): the command
/// exits with [`Exit::Refused`]. Displays as the error it wraps.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct Refusal(pub anyhow::Error);

/// `result`, with its error marked as a [`Refusal`]: for reading the inputs a command was given.
pub fn input<T, E: Into<anyhow::Error>>(result: Result<T, E>) -> anyhow::Result<T> {
    result.map_err(|e| Refusal(e.into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_anywhere_in_the_chain_exit_2() {
        let plain = anyhow::anyhow!("disk on fire");
        assert_eq!(Exit::of_error(&plain), Exit::Failure);
        let invalid: anyhow::Error = pulse::Invalid("eps must be positive".into()).into();
        assert_eq!(Exit::of_error(&invalid.context("upsample")), Exit::Refused);
        let refused = input::<(), _>(Err(anyhow::anyhow!("bad.png: not an image"))).unwrap_err();
        assert_eq!(Exit::of_error(&refused), Exit::Refused);
        assert_eq!(refused.to_string(), "bad.png: not an image");
        assert_eq!(
            [Exit::Success, Exit::Failure, Exit::Refused, Exit::NotConverged, Exit::Interrupted]
                .map(Exit::code),
            [0, 1, 2, 3, 130]
        );
    }
}
