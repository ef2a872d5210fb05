//! Command-line arguments. Names and flags here are the interface users script against.
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "pulse",
    version,
    about = "PULSE face super-resolution: search a StyleGAN's latent space for a face that downscales to your image"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run; boxing buys nothing
pub enum Command {
    /// Print the libtorch version, CUDA availability, GPUs and CPU threads.
    Info,
    /// Upscale low-resolution faces to the generator's resolution with PULSE.
    Upsample(UpsampleArgs),
    /// Render random faces (z -> w -> truncation -> synthesis).
    Generate(GenerateArgs),
    /// Render a latent file exactly.
    Render(RenderArgs),
    /// Convert any supported weight file to safetensors (same keys, float32).
    Convert(ConvertArgs),
    /// Compute the model's Gaussian fit from its mapping network and save it in the folder.
    FitGaussian(FitGaussianArgs),
    /// Time PULSE steps (FFHQ-size random network unless --model): ms per step, faces per hour,
    /// peak memory.
    Bench(BenchArgs),
}

/// Model folder and device, shared by the commands that run a network.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Model folder (synthesis, mapping, gaussian_fit); default $PULSE_MODEL, else models/ffhq.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

#[derive(Debug, Args)]
pub struct UpsampleArgs {
    /// Image files (PNG, JPEG, WebP, BMP) or folders of them; square, side = resolution / 2^k.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output folder.
    #[arg(short = 'o', long = "output", default_value = "out", value_name = "DIR")]
    pub out_dir: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Optimization steps per search.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 0.4)]
    pub lr: f64,
    /// adam, sgd, sgdm or adamax.
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// fixed, linear1cycle or linear1cycledrop.
    #[arg(long, default_value = "linear1cycledrop")]
    pub schedule: String,
    /// Sum of weight*TERM with terms L2, L1, GEOCROSS.
    #[arg(long, default_value = "100*L2+0.05*GEOCROSS")]
    pub loss: String,
    /// An image succeeds when its L2 reaches eps.
    #[arg(long, default_value_t = 2e-3)]
    pub eps: f64,
    /// trainable, fixed or zero.
    #[arg(long, default_value = "trainable")]
    pub noise: String,
    /// Number of noise layers optimized in trainable mode.
    #[arg(long, default_value_t = 5)]
    pub trainable_noise: usize,
    /// Noise layers kept at zero, e.g. "17" or "16,17".
    #[arg(long, default_value = "17")]
    pub bad_noise_layers: String,
    /// Optimize one 512-vector tiled over all layers.
    #[arg(long)]
    pub tile_latent: bool,
    /// Seed of the run (each image derives its own from it); random and recorded when omitted.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Results per input.
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// Searches run together; "auto" picks from free GPU memory (1 on the CPU).
    #[arg(long, default_value = "1")]
    pub batch_size: String,
    /// Search again from a new seed, up to N times, when an image does not converge.
    #[arg(long, default_value_t = 0)]
    pub restarts: usize,
    /// Start from a latent file (one input) or a folder of <stem>.latent.safetensors.
    #[arg(long, value_name = "PATH")]
    pub init: Option<PathBuf>,
    /// Also write the best image of every step as an animated GIF.
    #[arg(long)]
    pub save_intermediate: bool,
    /// Also write input | result | result downscaled, side by side.
    #[arg(long)]
    pub compare: bool,
    /// Write a JSON report here.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Greyscale weight image for RGB targets (0 = unconstrained).
    #[arg(long, value_name = "FILE")]
    pub mask: Option<PathBuf>,
    /// Ignore the alpha channel of RGBA targets.
    #[arg(long)]
    pub ignore_alpha: bool,
    /// Process only inputs at sorted position p with p % N == I.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Redo images whose outputs already exist.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bars or summary.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Truncation psi on layers 0..7 (1 = none).
    #[arg(long, default_value_t = 0.7)]
    pub truncation: f64,
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Output PNG file (with --count > 1, <stem>_<k>.png beside it) or folder.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// A pulse-latent/1 file.
    pub latent: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(short = 'o', long = "output", value_name = "OUT.png")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// A .pt (legacy or zip) or .safetensors weight file.
    pub input: PathBuf,
    #[arg(short = 'o', long = "output", value_name = "OUT.safetensors")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct FitGaussianArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Samples of z (the published fit uses 1,000,000).
    #[arg(long, default_value_t = pulse::model::FIT_SAMPLES)]
    pub samples: i64,
    #[arg(long, default_value_t = pulse::model::FIT_SEED)]
    pub seed: i64,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A model folder to time instead of the FFHQ-size network with random weights.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Searches run together, or "auto" (from free GPU memory; 1 on the CPU).
    #[arg(long, default_value = "1")]
    pub batch_size: String,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Untimed steps before them.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// fp32, tf32 (CUDA), bf16 or fp16 (autocast; loss and optimizer stay float32).
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// CPU threads (0 = libtorch's default).
    #[arg(long, default_value_t = 0)]
    pub threads: i32,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
