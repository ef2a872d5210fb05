//! `pulse downscale IN -o OUT --size S`: an image shrunk the way PULSE's loss shrinks (see
//! `pulse::pipelines::downscale`). With it, a face the model made (`pulse generate`) becomes a
//! target the search can reach exactly: what the demo shows.
use super::exit::Exit;
use super::setup::check_outputs;
use clap::Args;
use pulse::files::escaped;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DownscaleArgs {
    /// A square image (PNG, JPEG, WebP, BMP, GIF); an alpha channel is dropped.
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// The image to write (.png, .jpg, .bmp or .webp).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub out: PathBuf,
    /// The side to shrink to: the input's side divided by a power of two (1024 -> 512, ..., 2).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(i64).range(1..))]
    pub size: i64,
}

pub fn downscale(a: DownscaleArgs) -> anyhow::Result<Exit> {
    check_outputs(&[&a.input], &[&a.out])?;
    pulse::imageio::OutputFormat::from_path(&a.out)?;
    let small = pulse::pipelines::downscale::downscale_file(&a.input, a.size)?;
    pulse::imageio::write_image(&small, &a.out)?;
    eprintln!("pulse: wrote {} ({}x{})", escaped(&a.out), a.size, a.size);
    Ok(Exit::Success)
}
