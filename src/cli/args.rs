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
    Upsample(Box<UpsampleArgs>),
    /// Find the faces in photos and align them as FFHQ was (MTCNN landmarks), at low resolution.
    Align(super::align::AlignArgs),
    /// Render random faces (z -> w -> truncation -> synthesis).
    Generate(GenerateArgs),
    /// Render a latent file exactly.
    Render(RenderArgs),
    /// Convert any supported weight file to safetensors (same keys, float32).
    Convert(ConvertArgs),
    /// Compute the model's Gaussian fit from its mapping network and save it in the folder.
    FitGaussian(FitGaussianArgs),
    /// Direction in W+ from latent FROM to latent TO (the mean difference over several pairs).
    Direction(DirectionArgs),
    /// Render a latent moved along a direction at several scales, side by side.
    Edit(EditArgs),
    /// Embed a photo into W+ (Image2StyleGAN) and write its latent file.
    Embed(EmbedArgs),
    /// Build an RGBA target from a region map and a colour per region.
    Target(TargetArgs),
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
    /// fp32, tf32 (CUDA) or bf16/fp16 autocast of the synthesis (fp16: CUDA only); the loss and
    /// the optimizer stay float32. docs/performance.md gives each mode's speed and error.
    #[arg(long, default_value = "fp32")]
    pub precision: String,
    /// No progress bars or summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Inputs are photos: find and align the largest face of each first (as `pulse align`),
    /// keep those 32x32 faces as <OUT>/aligned/<stem>.png, and upsample them.
    #[arg(long)]
    pub align: bool,
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
pub struct DirectionArgs {
    /// Latent files in pairs: FROM TO [FROM TO ...]; the direction points from FROM to TO.
    #[arg(value_name = "LATENT")]
    pub latents: Vec<PathBuf>,
    /// Text file of pairs, one "FROM TO" per line (tab-separated if paths have spaces; # starts
    /// a comment); relative paths are relative to the file's folder.
    #[arg(long, value_name = "FILE")]
    pub pairs: Option<PathBuf>,
    #[arg(short = 'o', long = "output", value_name = "DIR.safetensors")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// A pulse-latent/1 file.
    pub latent: PathBuf,
    /// A direction file made by `pulse direction`.
    #[arg(long, value_name = "DIR.safetensors")]
    pub direction: PathBuf,
    /// Scales s of w_plus + s * v, comma-separated (negative ones too: --scale=-1,0,1).
    #[arg(long, default_value = "0,0.5,1,1.5", allow_hyphen_values = true, value_name = "LIST")]
    pub scale: String,
    /// Layers the edit touches: all, or a list of layers and ranges like 0-17, 0-7 or 0-3,8.
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub layers: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The side-by-side sheet.
    #[arg(short = 'o', long = "output", value_name = "OUT.png")]
    pub out: PathBuf,
    /// Also write one PNG per scale: <OUT stem>_scale<S>.png.
    #[arg(long)]
    pub separate: bool,
    /// Also write each edited latent: <OUT stem>_scale<S>.latent.safetensors.
    #[arg(long)]
    pub save_latent: bool,
    /// Side of each face in the sheet (default: the model's resolution, at most 512).
    #[arg(long, value_name = "PIXELS")]
    pub tile: Option<i64>,
}

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The photo: an aligned face, resolution x resolution (others are centre-cropped and resized).
    pub photo: PathBuf,
    /// The latent file to write.
    #[arg(short = 'o', long = "output", value_name = "LATENT")]
    pub out: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Adam steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// A torchvision vgg16 state dict: adds the perceptual term (conv1_1, conv1_2, conv3_2, conv4_2).
    #[arg(long, value_name = "VGG16_WEIGHTS")]
    pub perceptual: Option<PathBuf>,
    /// Weight of the perceptual term (the pixel MSE has weight 1).
    #[arg(long, default_value_t = 1.0)]
    pub perceptual_weight: f64,
    /// Fixed noise inputs: random (drawn from --seed) or zero.
    #[arg(long, default_value = "random")]
    pub noise: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the embedded face as a PNG.
    #[arg(long, value_name = "OUT.png")]
    pub image: Option<PathBuf>,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Region map PNG: red = hair, green = skin, blue = background, black = unconstrained.
    pub regions: PathBuf,
    /// Hair colour: #rrggbb, a name (black, brown, blond, red, blue, ...; see docs/editing.md) or none.
    #[arg(long, value_name = "COLOR")]
    pub hair: String,
    /// Skin colour (default: sampled from --face, else #e0ac8a).
    #[arg(long, value_name = "COLOR")]
    pub skin: Option<String>,
    /// Background colour (default: sampled from --face, else #808080).
    #[arg(long, value_name = "COLOR")]
    pub background: Option<String>,
    /// Reference face whose skin and background colours are used where none is given.
    #[arg(long, value_name = "FILE")]
    pub face: Option<PathBuf>,
    /// The RGBA target to write.
    #[arg(short = 'o', long = "output", value_name = "OUT.png")]
    pub out: PathBuf,
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
