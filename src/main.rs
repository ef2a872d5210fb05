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
