//! The `pulse` command line: parse the arguments, run the command, print an error once.
//! Exit codes (src/cli/exit.rs): 0 success; 1 error; 2 refused (bad usage, a setting or an input
//! that cannot be used); 3 an image did not converge (`upsample`); 130 interrupted.
mod cli;

use clap::Parser;
use cli::exit::Exit;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before anything can start CUDA (cuBLAS reads it once), and while this is the only thread.
    pulse::device::set_cublas_workspace_config();
    pulse::system::tune_allocator();
    pulse::system::default_sigpipe();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(exit) => exit.into(),
        Err(err) => {
            eprintln!("pulse: error: {err:#}");
            Exit::of_error(&err).into()
        }
    }
}
