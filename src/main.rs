//! The `pulse` command line: parse the arguments, run the command, print an error once.
//! Exit codes (src/cli/exit.rs): 0 success; 1 error (a panic included); 2 refused (bad usage, a
//! setting or an input that cannot be used); 3 an image did not converge (`upsample`); 130
//! interrupted.
mod cli;

use clap::Parser;
use cli::exit::Exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    exit_on_panic();
    // Before anything can start CUDA (cuBLAS reads it once), and while this is the only thread.
    pulse::device::set_cublas_workspace_config();
    pulse::system::tune_allocator();
    pulse::system::default_sigpipe();
    if std::env::var_os(TEST_PANIC_VAR).is_some() {
        // As libtorch's errors come unwrapped: the rest after an escaped newline.
        panic!("{TEST_PANIC_VAR} is set\\nException raised from f at x.cpp:1\n(not printed)");
    }
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // Help and version go to stdout as clap writes them; errors in plain words.
            if !e.use_stderr() {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            let text = e.render().to_string();
            eprint!("{}", cli::exit::plain(&text));
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match cli::run(args) {
        Ok(exit) => exit.into(),
        Err(err) => {
            eprintln!("pulse: error: {}", cli::exit::plain(&format!("{err:#}")));
            Exit::of_error(&err).into()
        }
    }
}

/// Set (to anything), `pulse` panics before parsing its arguments: how tests check
/// [`exit_on_panic`] without a bug to trigger it. Undocumented for users.
const TEST_PANIC_VAR: &str = "PULSE_TEST_PANIC";

/// A panic (libtorch out of memory, a bug) prints one line and exits 1 like any failure, not
/// Rust's multi-line report and exit code 101. Libtorch's messages carry a C++ backtrace after
/// the first line (as a real newline, or as `\n` when an error was unwrapped): only that first
/// line is kept.
fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with no message".into());
        let first = message.split("\\n").next().unwrap_or("");
        let first = first.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        let at = info.location().map(|l| format!(" (at {}:{})", l.file(), l.line()));
        eprintln!("pulse: error: internal error: {first}{}", at.unwrap_or_default());
        std::process::exit(Exit::Failure.code().into());
    }));
}
