//! Command-line arguments. Names and flags here are the interface users script against.
//!
//! Every enumerated or structured flag is parsed by clap itself (the value parsers below, built
//! on the library's `FromStr` impls), so `--help` lists the choices and a bad value is a usage
//! error (exit code 2) with clap's message, before anything runs.
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use pulse::precision::Precision;
use pulse::pulse::{IloConfig, IloRadius, LossSpec, Method, NoiseMode, OptimizerKind, Schedule};
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
    /// Print the libtorch version, CUDA, GPUs and CPU threads, and check the model folders
    /// (what each holds, and the next command to run when something is missing).
    Info(super::info::InfoArgs),
    /// Upscale low-resolution faces to the generator's resolution with PULSE.
    Upsample(Box<UpsampleArgs>),
    /// Find the faces in photos and align them as FFHQ was (MTCNN landmarks), at low resolution.
    Align(super::align::AlignArgs),
    /// Restore every face of photos: each photo enlarged (--upscale), its faces upsampled by
    /// PULSE and pasted back in place; the result, downscaled, is the photo again.
    #[command(
        mut_arg("inputs", |a| a
            .value_name("PHOTO")
            .help("Photos (PNG, JPEG, WebP, BMP, GIF; EXIF orientation applied) or folders of them")),
        mut_arg("out_dir", |a| a.default_value("restored")),
        mut_arg("compare", |a| a.help("Also write the plain enlargement | the restored photo, side by side")),
        mut_arg("samples", |a| a.help("Restored versions of each photo (each face searched from its own seed)")),
        mut_arg("overwrite", |a| a.help("Redo photos whose outputs already exist")),
        mut_arg("report", |a| a.help("Write a JSON report here: per photo, its faces and their searches")),
        mut_arg("align", |a| a.hide(true)),
        mut_arg("mask", |a| a.hide(true)),
        mut_arg("ignore_alpha", |a| a.hide(true)),
        mut_arg("init", |a| a.hide(true)),
        mut_arg("save_intermediate", |a| a.hide(true)),
    )]
    Restore(Box<super::restore::RestoreArgs>),
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
    /// Import weight files (NVIDIA's .pkl, lernapparat's .pt, PULSE's .pt, safetensors) into a
    /// model folder.
    Import(super::import::ImportArgs),
    /// Download a real model (ffhq: StyleGAN, CC BY-NC 4.0; ffhq-stylegan2: StyleGAN2, NVIDIA
    /// Source Code License-NC), verify it and import it; or torchvision's VGG16 (vgg16) for
    /// LPIPS.
    Download(super::import::DownloadArgs),
    /// Measure fidelity: shrink high-resolution faces (yours, or --generated ones the model
    /// draws), upsample them with each --method and compare with the truth (PSNR, SSIM, LPIPS,
    /// success, time, diversity); writes eval.json, eval.csv, eval.png and sheet.png.
    Eval(Box<super::eval::EvalArgs>),
    /// Join the reports of a job's shards into one, with the verdict for the whole job.
    #[command(subcommand)]
    Report(super::report::ReportCommand),
    /// Shrink an image the way PULSE's loss does (bicubic, by a power of two), e.g. a generated
    /// face to a 32x32 target.
    Downscale(super::downscale::DownscaleArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(super::completions::CompletionsArgs),
    /// Print the man page (roff), or write every page into a folder.
    Man(super::completions::ManArgs),
}

/// A parser accepting exactly `names` (listed by `--help`), each parsed by `T::from_str`.
pub(super) fn one_of<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).map(|s| s.parse::<T>().expect("every listed name parses"))
}

/// A finite number greater than zero.
pub(super) fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a positive finite number, got '{s}'")),
    }
}

/// A finite number (zero and negative ones too).
pub(super) fn finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("expected a finite number, got '{s}'")),
    }
}

/// A finite number, zero or more.
fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected a finite number >= 0, got '{s}'")),
    }
}

/// A whole number of at least 1.
pub(super) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number of at least 1, got '{s}'")),
    }
}

/// A device name: auto, cpu, cuda or cuda:N (whether the machine has it is checked when used).
fn device(s: &str) -> Result<String, String> {
    pulse::device::parse_device_name(s).map(|_| s.to_string()).map_err(|e| e.to_string())
}

use pulse::pipelines::shard::ShardRequest;

/// `--batch-size N|auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    /// As many as fit in free GPU memory (1 on the CPU).
    Auto,
    Fixed(usize),
}

impl std::str::FromStr for BatchSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            n => match n.parse() {
                Ok(n) if n > 0 => Ok(Self::Fixed(n)),
                _ => Err(format!("expected a positive number or auto, got '{n}'")),
            },
        }
    }
}

/// A list of layer numbers like "17" or "16,17" (PULSE writes "16.17").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerList(pub Vec<usize>);

impl std::str::FromStr for LayerList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.split([',', '.'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().map_err(|_| format!("'{p}' is not a layer number")))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// `--ilo-steps`: the steps of each of ILO's rounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IloSteps(pub Vec<usize>);

/// A comma-separated list of edit scales (negative ones too: `--scale=-1,0,1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Scales(pub Vec<f64>);

impl std::str::FromStr for Scales {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        pulse::editing::edit::parse_scales(s).map(Self).map_err(|e| e.to_string())
    }
}

/// A value parser that parses with `parse` and offers `values` to shell completion (and help),
/// so that completion suggests them rather than file names; other values `parse` accepts are
/// taken too.
pub fn offering<T: Clone + Send + Sync + 'static>(
    parse: fn(&str) -> Result<T, String>,
    values: &'static [&'static str],
) -> Offering<T> {
    Offering { parse, values }
}

/// See [`offering`].
#[derive(Clone)]
pub struct Offering<T> {
    parse: fn(&str) -> Result<T, String>,
    values: &'static [&'static str],
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Offering<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        let arg = arg.map_or_else(|| "the value".to_string(), |a| format!("'{a}'"));
        (self.parse)(&text).map_err(|e| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value '{text}' for {arg}: {e}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(self.values.iter().map(|v| clap::builder::PossibleValue::new(*v))))
    }
}

/// `--shard` and `--shards`, shared by the commands that take folders.
#[derive(Debug, Clone, Args)]
pub struct ShardArgs {
    /// Process only inputs at sorted position p with p % N == I (many machines share one output
    /// folder); "auto" reads I and N from a Slurm, Kubernetes Indexed Job or AWS Batch array.
    #[arg(long, value_name = "I/N|auto", hide_possible_values = true,
          value_parser = offering(|s| s.parse::<ShardRequest>(), &["auto"]))]
    pub shard: Option<ShardRequest>,
    /// With --shard auto in a Kubernetes Indexed Job (which gives no total): the number of
    /// shards, the Job's completions [default: $PULSE_SHARDS].
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub shards: Option<usize>,
}

/// Model folder and device, shared by the commands that run a network.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Model folder (synthesis, mapping, gaussian_fit).
    #[arg(long, value_name = "DIR", env = "PULSE_MODEL", default_value = pulse::model::DEFAULT_DIR)]
    pub model: PathBuf,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = device)]
    pub device: String,
    /// CUDA: allow nondeterministic kernels and cuDNN autotuning (faster; the same command may
    /// then give slightly different results each run). No effect on the CPU.
    #[arg(long)]
    pub nondeterministic: bool,
}

#[derive(Debug, Args)]
pub struct UpsampleArgs {
    /// Image files (PNG, JPEG, WebP, BMP, GIF) or folders of them; square, side = resolution / 2^k.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output folder.
    #[arg(short = 'o', long = "output", default_value = "out", value_name = "DIR")]
    pub out_dir: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The search: pulse (PULSE, the latent and noise on their spheres) or ilo (Intermediate
    /// Layer Optimization: PULSE's start, then round by round also the input of a later
    /// synthesis block; matches the input more closely, may look less like a real face).
    #[arg(long, default_value = "pulse", value_parser = one_of::<Method>(Method::NAMES))]
    pub method: Method,
    /// Optimization steps per search [default: 100] (PULSE; ILO's rounds are --ilo-steps).
    #[arg(long, value_parser = at_least_one)]
    pub steps: Option<usize>,
    /// ILO: the steps of each round, round k starting at synthesis block k [default:
    /// 50,50,25,25].
    #[arg(long, value_name = "LIST", value_parser = |s: &str| IloConfig::parse_steps(s).map(IloSteps))]
    pub ilo_steps: Option<IloSteps>,
    /// ILO: l1-ball projections of each round's change (off unless given), radii per round
    /// separated by ':', e.g. latent=100:1000:6000,noise=1000:1000:6000,feature=1000:1000:6000
    /// (a part left out keeps that value, ILO's).
    #[arg(long, value_name = "latent=..,noise=..,feature=..", value_parser = clap::value_parser!(IloRadius))]
    pub ilo_radius: Option<IloRadius>,
    /// Peak learning rate [default: 0.4; 0.1 with --method ilo].
    #[arg(long, value_parser = positive, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// The optimizer whose steps are projected back onto the sphere [default: adam] (PULSE;
    /// ILO uses Adam).
    #[arg(long, value_parser = one_of::<OptimizerKind>(OptimizerKind::NAMES))]
    pub optimizer: Option<OptimizerKind>,
    /// Learning-rate schedule over the steps [default: linear1cycledrop] (PULSE; ILO ramps
    /// each round as StyleGAN2's projector).
    #[arg(long, value_parser = one_of::<Schedule>(Schedule::NAMES))]
    pub schedule: Option<Schedule>,
    /// Sum of weight*TERM with terms L2, L1, MSE, GEOCROSS, LPIPS (weights positive; LPIPS for
    /// targets of at least 256x256, with VGG16 weights: `pulse download vgg16`) [default:
    /// 100*L2+0.05*GEOCROSS; 1*MSE+0.01*GEOCROSS with --method ilo, which takes MSE, GEOCROSS
    /// and LPIPS only].
    #[arg(long, value_parser = clap::value_parser!(LossSpec), allow_hyphen_values = true)]
    pub loss: Option<LossSpec>,
    /// An image succeeds when its L2 reaches eps (ILO: its MSE/4, and the search stops there).
    #[arg(long, default_value = "2e-3", value_parser = positive, allow_negative_numbers = true)]
    pub eps: f64,
    /// How the per-layer noise inputs behave [default: trainable] (PULSE).
    #[arg(long, value_parser = one_of::<NoiseMode>(NoiseMode::NAMES))]
    pub noise: Option<NoiseMode>,
    /// Number of noise maps optimized in trainable mode (the first ones, in synthesis order)
    /// [default: 5] (PULSE; ILO trains maps 0..5+2k-1 in round k).
    #[arg(long)]
    pub trainable_noise: Option<usize>,
    /// Noise maps kept at zero, e.g. "17" or "16,17" [default: the model's: 17 for StyleGAN v1
    /// (PULSE's, where the network has it), the last map for StyleGAN2 (16 at 1024)] (PULSE).
    #[arg(long, value_name = "LIST", value_parser = clap::value_parser!(LayerList))]
    pub bad_noise_layers: Option<LayerList>,
    /// Optimize one 512-vector tiled over all layers.
    #[arg(long)]
    pub tile_latent: bool,
    /// Seed of the run (each image derives its own from it); random and recorded when omitted.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Results per input.
    #[arg(long, default_value = "1", value_parser = at_least_one)]
    pub samples: usize,
    /// Searches run together; "auto" picks from free GPU memory (1 on the CPU).
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(BatchSize))]
    pub batch_size: BatchSize,
    /// Search again from a new seed, up to N times, when an image does not converge.
    #[arg(long, default_value_t = 0)]
    pub restarts: usize,
    /// Start from a latent file (one input) or a folder of <stem>.latent.safetensors.
    #[arg(long, value_name = "PATH")]
    pub init: Option<PathBuf>,
    /// Also write an animated GIF of the best image as the search went (at most 128 frames).
    #[arg(long)]
    pub save_intermediate: bool,
    /// Also write input | result | result downscaled, side by side.
    #[arg(long)]
    pub compare: bool,
    /// Write a JSON report here (merged with the report of an earlier run in the same place).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Greyscale weight image for RGB targets (0 = unconstrained).
    #[arg(long, value_name = "FILE")]
    pub mask: Option<PathBuf>,
    /// Ignore the alpha channel of RGBA targets.
    #[arg(long)]
    pub ignore_alpha: bool,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Redo images whose outputs already exist.
    #[arg(long)]
    pub overwrite: bool,
    /// fp32, tf32 (CUDA) or bf16/fp16 autocast of the synthesis (fp16: CUDA only); the loss and
    /// the optimizer stay float32. docs/performance.md gives each mode's speed and error.
    #[arg(long, default_value = "fp32", value_parser = one_of::<Precision>(&Precision::NAMES))]
    pub precision: Precision,
    /// CUDA: capture one search step in a CUDA graph and replay it (same results, fewer kernel
    /// launches from the CPU). No effect on the CPU.
    #[arg(long)]
    pub cuda_graph: bool,
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
    /// Seed of the faces (face k draws from the seed and k).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Truncation psi (1 = none): on layers 0..7 of a StyleGAN (v1), on every layer of a
    /// StyleGAN2.
    #[arg(long, default_value = "0.7", value_parser = finite, allow_negative_numbers = true)]
    pub truncation: f64,
    /// Number of faces.
    #[arg(long, default_value = "1", value_parser = at_least_one)]
    pub count: usize,
    /// Output image file (.png, .jpg, .bmp, .webp; with --count > 1, <stem>_<k> beside it) or
    /// folder (seed<S>_<k>.png).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub out: PathBuf,
    /// Redo faces whose files already exist.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

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

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// A .pt (legacy or zip) or .safetensors weight file.
    pub input: PathBuf,
    /// The safetensors file to write.
    #[arg(short = 'o', long = "output", value_name = "OUT.safetensors")]
    pub out: PathBuf,
}

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

#[derive(Debug, Args)]
pub struct DirectionArgs {
    /// Latent files in pairs: FROM TO [FROM TO ...]; the direction points from FROM to TO.
    #[arg(value_name = "LATENT")]
    pub latents: Vec<PathBuf>,
    /// Text file of pairs, one "FROM TO" per line (tab-separated if paths have spaces; # starts
    /// a comment); relative paths are relative to the file's folder.
    #[arg(long, value_name = "FILE")]
    pub pairs: Option<PathBuf>,
    /// The direction file to write.
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
    #[arg(long, default_value = "0,0.5,1,1.5", allow_hyphen_values = true, value_name = "LIST", value_parser = clap::value_parser!(Scales))]
    pub scale: Scales,
    /// Layers the edit touches: all, or a list of layers and ranges like 0-17, 0-7 or 0-3,8.
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub layers: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The side-by-side sheet (.png, .jpg, .bmp or .webp).
    #[arg(short = 'o', long = "output", value_name = "OUT.png")]
    pub out: PathBuf,
    /// Also write one image per scale: <OUT stem>_scale<S>.<OUT extension>.
    #[arg(long)]
    pub separate: bool,
    /// Also write each edited latent: <OUT stem>_scale<S>.latent.safetensors.
    #[arg(long)]
    pub save_latent: bool,
    /// Side of each face in the sheet (default: the model's resolution, at most 512).
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(i64).range(8..=4096))]
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
    #[arg(long, default_value = "1000", value_parser = at_least_one)]
    pub steps: usize,
    /// Adam learning rate.
    #[arg(long, default_value = "0.01", value_parser = positive, allow_negative_numbers = true)]
    pub lr: f64,
    /// A torchvision vgg16 state dict: adds the perceptual term (conv1_1, conv1_2, conv3_2, conv4_2).
    #[arg(long, value_name = "VGG16_WEIGHTS")]
    pub perceptual: Option<PathBuf>,
    /// Weight of the perceptual term (the pixel MSE has weight 1).
    #[arg(long, default_value = "1", value_parser = non_negative, allow_negative_numbers = true)]
    pub perceptual_weight: f64,
    /// Fixed noise inputs: random (drawn from --seed) or zero.
    #[arg(long, default_value = "random", value_parser = PossibleValuesParser::new(["random", "zero"]))]
    pub noise: String,
    /// Seed of the random noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the embedded face as an image (.png, .jpg, .bmp or .webp).
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
    /// The RGBA target to write (.png or .webp, which keep its alpha).
    #[arg(short = 'o', long = "output", value_name = "OUT.png")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Also describe this model folder: family, resolution, W+ rows, noise maps, files.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
}

/// A generator family by name.
fn architecture(s: &str) -> Result<pulse::stylegan::Architecture, String> {
    pulse::stylegan::Architecture::from_name(s)
        .ok_or_else(|| format!("unknown architecture '{s}' (expected stylegan1 or stylegan2)"))
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A model folder to time instead of the FFHQ-size network with random weights.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// The family of the random FFHQ-size network: stylegan1 or stylegan2 (without --model).
    #[arg(long, default_value = "stylegan1", value_parser = architecture, conflicts_with = "model")]
    pub architecture: pulse::stylegan::Architecture,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = device)]
    pub device: String,
    /// Searches run together, or "auto" (from free GPU memory; 1 on the CPU).
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(BatchSize))]
    pub batch_size: BatchSize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value = "3", value_parser = at_least_one)]
    pub steps: usize,
    /// Untimed steps before them.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// fp32, tf32 (CUDA), bf16 or fp16 (autocast; loss and optimizer stay float32).
    #[arg(long, default_value = "fp32", value_parser = one_of::<Precision>(&Precision::NAMES))]
    pub precision: Precision,
    /// CPU threads (0 = libtorch's default).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
    pub threads: i32,
    /// CUDA: allow nondeterministic kernels and cuDNN autotuning (measures the speed that
    /// reproducibility costs). No effect on the CPU.
    #[arg(long)]
    pub nondeterministic: bool,
    /// CUDA: capture one step in a CUDA graph and replay it. No effect on the CPU.
    #[arg(long)]
    pub cuda_graph: bool,
    /// Speed rewrites of the synthesis to switch off, to measure each: epilogue, leaky, convt,
    /// blurbias (comma-separated) or all.
    #[arg(long, value_name = "LIST", default_value = "", hide_default_value = true, value_parser = |s: &str| pulse::stylegan::Tuning::without(s))]
    pub untuned: pulse::stylegan::Tuning,
    /// The search step timed: pulse, or ilo (its rounds of equal length, each from its own
    /// synthesis block).
    #[arg(long, default_value = "pulse", value_parser = one_of::<Method>(Method::NAMES))]
    pub method: Method,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use pulse::pipelines::shard::Shard;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// `--help` shows a line for every flag and argument of every command.
    #[test]
    fn every_argument_has_help() {
        for sub in Cli::command().get_subcommands() {
            for arg in sub.get_arguments() {
                if arg.get_id() == "help" || arg.get_id() == "version" {
                    continue;
                }
                assert!(
                    arg.get_help().is_some_and(|h| !h.to_string().trim().is_empty()),
                    "pulse {} {}: no help text",
                    sub.get_name(),
                    arg.get_id()
                );
            }
        }
    }

    #[test]
    fn structured_flags_parse_and_refuse() {
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard { index: 2, count: 3 });
        for bad in ["3/2", "0/0", "1", "a/b", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!("auto".parse::<BatchSize>().unwrap(), BatchSize::Auto);
        assert_eq!("4".parse::<BatchSize>().unwrap(), BatchSize::Fixed(4));
        assert!("0".parse::<BatchSize>().is_err());
        assert_eq!("16.17".parse::<LayerList>().unwrap(), LayerList(vec![16, 17]));
        assert!("x".parse::<LayerList>().is_err());
        for bad in ["nan", "inf", "-1", "0", "1e400"] {
            assert!(positive(bad).is_err(), "{bad}");
        }
        assert!(finite("-0.5").is_ok() && finite("nan").is_err());
    }

    /// Every bad value of an enumerated or numeric flag is clap's usage error (exit code 2).
    #[test]
    fn bad_values_are_usage_errors() {
        let cases: [&[&str]; 12] = [
            &["upsample", "x.png", "--optimizer", "foo"],
            &["upsample", "x.png", "--shard", "3/2"],
            &["upsample", "x.png", "--precision", "fp8"],
            &["upsample", "x.png", "--lr", "nan"],
            &["upsample", "x.png", "--eps", "-1"],
            &["upsample", "x.png", "--loss", "1e400*L2"],
            &["upsample", "x.png", "--loss", "0*L2"],
            &["upsample", "x.png", "--schedule", "cosine"],
            &["upsample", "x.png", "--device", "gpu"],
            &["upsample", "x.png", "--batch-size", "0"],
            &["generate", "-o", "x.png", "--truncation", "inf"],
            &["embed", "p.png", "-o", "l", "--noise", "pink"],
        ];
        for args in cases {
            let e = Cli::try_parse_from(std::iter::once("pulse").chain(args.iter().copied()))
                .expect_err(&args.join(" "));
            assert_eq!(e.exit_code(), 2, "{}: {e}", args.join(" "));
        }
        let ok = Cli::try_parse_from(["pulse", "upsample", "x.png", "--precision", "tf32"]);
        assert!(ok.is_ok());
    }
}
