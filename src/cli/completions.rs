//! `pulse completions SHELL`: the shell completion script, generated from the same clap
//! definition that parses the command line, so it lists exactly the commands and flags this
//! binary has (README, "Shell completions and the man page").
use super::exit::Exit;
use clap::Args;
use std::io::Write;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for (printed on stdout).
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `cli` is the whole command line's definition (`Cli::command()`, handed down so that this
/// file does not use the module that uses it).
pub fn completions(a: CompletionsArgs, mut cli: clap::Command) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut cli, "pulse", &mut out);
    out.flush()?;
    Ok(Exit::Success)
}
