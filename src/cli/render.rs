//! `pulse render`: a latent file's image, exactly as the search saw it.
use super::exit::Exit;
use super::setup::{check_outputs, load_model, warn_if_other_model};
use super::shared_args::ModelArgs;
use clap::Args;
use pulse::files::escaped;
use pulse::latent::LatentFile;
use pulse::pipelines;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// A pulse-latent/1 file.
    pub latent: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The image to write (.png, .jpg, .bmp or .webp).
    #[arg(short = 'o', long = "output", value_name = "OUT.png")]
    pub out: PathBuf,
}

pub fn render(a: RenderArgs) -> anyhow::Result<Exit> {
    check_outputs(&[&a.latent, &a.model.model], &[&a.out])?;
    pulse::imageio::OutputFormat::from_path(&a.out)?;
    let latent = LatentFile::read(&a.latent)?;
    let model = load_model(&a.model)?;
    warn_if_other_model(&a.latent, &latent, &model)?;
    let image = pipelines::render(&model, &a.latent, &latent)?;
    pulse::imageio::write_image(&image, &a.out)?;
    eprintln!("pulse: wrote {}", escaped(&a.out));
    Ok(Exit::Success)
}
