//! The `pulse` command line: parse the arguments, run the command, print an error once.
//! Exit codes: 0 success; 1 error; 2 an input was refused (or bad usage); 3 an image did not
//! converge (`upsample`); 130 interrupted.
mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    pulse::device::tune_allocator();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("pulse: error: {err:#}");
            ExitCode::from(1)
        }
    }
}
