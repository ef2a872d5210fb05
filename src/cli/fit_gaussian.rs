//! `pulse fit-gaussian`: the model folder's Gaussian fit computed anew.
use super::exit::Exit;
use super::progress;
use super::setup::configure_device;
use super::shared_args::ModelArgs;
use anyhow::Context;
use clap::Args;
use pulse::files::escaped;
use pulse::model::{self, Model};

#[derive(Debug, Args)]
pub struct FitGaussianArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Samples of z (the published fit uses 1,000,000).
    #[arg(long, default_value_t = pulse::model::FIT_SAMPLES, value_parser = clap::value_parser!(i64).range(2..))]
    pub samples: i64,
    /// Seed of the samples.
    #[arg(long, default_value_t = pulse::model::FIT_SEED)]
    pub seed: i64,
}

pub fn fit_gaussian(a: FitGaussianArgs) -> anyhow::Result<Exit> {
    // The folder's present fit is not read: it is what this command replaces (it may be one
    // left from a previous network, which loading refuses).
    let device = pulse::device::parse_device(&a.model.device)?;
    configure_device(device, a.model.nondeterministic)?;
    let model = Model::load_without_fit(&a.model.model, device)
        .context("cannot load the model (see models/README.md)")?;
    let bar = progress::bar(a.samples as u64, "fit", false);
    let path =
        model::save_fit(&model, a.samples, a.seed, &mut |done, _| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    eprintln!("pulse: wrote {} ({} samples, seed {})", escaped(&path), a.samples, a.seed);
    Ok(Exit::Success)
}
