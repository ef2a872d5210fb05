//! The integration tests: one test crate (one executable linking libtorch once), a module per
//! area. Tests that need the reference fixtures in `../shared` are `#[ignore]`d with the reason;
//! `scripts/test.sh` runs them with `--ignored` when that folder is there.
mod common;

mod align;
mod cli_commands;
mod cli_completions;
mod cli_edit;
mod cli_sg2;
mod cli_upsample;
mod cluster;
mod demo;
mod determinism;
mod download;
mod editing;
mod eval;
mod exit_codes;
mod hair_colour_example;
mod ilo;
mod imageio;
mod import;
mod import_sg2;
mod info;
mod metrics;
mod parity;
mod parity_sg2;
mod refusals;
mod refusals_align;
mod refusals_import;
mod restore;
mod robustness;
mod weights;
