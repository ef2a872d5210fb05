//! Argument parsing (clap) into plain options, and one function per command. This is the edge:
//! the only place that prints. Exit codes: [`exit::Exit`].
mod align;
mod args;
mod bench;
mod commands;
mod completions;
mod downscale;
mod edit_commands;
mod eval;
pub mod exit;
mod import;
mod info;
mod progress;
mod report;
mod restore;

pub use args::Cli;
use args::Command;
use exit::Exit;

pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Info(a) => info::info(a),
        Command::Upsample(a) => commands::upsample(*a),
        Command::Align(a) => align::align(a),
        Command::Restore(a) => restore::restore(*a),
        Command::Generate(a) => commands::generate(a),
        Command::Render(a) => commands::render(a),
        Command::Convert(a) => commands::convert(a),
        Command::FitGaussian(a) => commands::fit_gaussian(a),
        Command::Direction(a) => edit_commands::direction(a),
        Command::Edit(a) => edit_commands::edit(a),
        Command::Embed(a) => edit_commands::embed(a),
        Command::Target(a) => edit_commands::target(a),
        Command::Bench(a) => bench::bench(a),
        Command::Import(a) => import::import(a),
        Command::Download(a) => import::download(a),
        Command::Eval(a) => eval::eval(*a),
        Command::Report(c) => report::report(c),
        Command::Downscale(a) => downscale::downscale(a),
        Command::Completions(a) => completions::completions(a),
        Command::Man(a) => completions::man(a),
    }
}
