//! Argument groups that several commands flatten into theirs (`#[command(flatten)]`), and the
//! value parsers every command uses. A leaf: it uses no other module of `cli/`, so any command
//! file can use it.
//!
//! Every enumerated or structured flag is parsed by clap itself (the value parsers below, built
//! on the library's `FromStr` impls), so `--help` lists the choices and a bad value is a usage
//! error (exit code 2) with clap's message, before anything runs.
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use pulse::pipelines::shard::ShardRequest;
use pulse::precision::Precision;
use pulse::pulse::{IloConfig, IloRadius, LossSpec, Method, NoiseMode, OptimizerKind, Schedule};
use std::path::PathBuf;

/// A parser accepting exactly `names` (listed by `--help`), each parsed by `T::from_str`.
pub fn one_of<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).map(|s| s.parse::<T>().expect("every listed name parses"))
}

/// A finite number greater than zero.
pub fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a positive finite number, got '{s}'")),
    }
}

/// A finite number (zero and negative ones too).
pub fn finite(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("expected a finite number, got '{s}'")),
    }
}

/// A finite number, zero or more.
pub fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected a finite number >= 0, got '{s}'")),
    }
}

/// A whole number of at least 1.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number of at least 1, got '{s}'")),
    }
}

/// A device name: auto, cpu, cuda or cuda:N (whether the machine has it is checked when used).
pub fn device(s: &str) -> Result<String, String> {
    pulse::device::parse_device_name(s).map(|_| s.to_string()).map_err(|e| e.to_string())
}

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

/// Smallest face searched for (`align`, `restore`): a size in pixels of at least 1.
pub fn min_face(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v >= 1.0 && v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a size in pixels (at least 1)")),
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

/// Where an imported model goes, shared by `import` and `download`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The model folder to write.
    #[arg(short = 'o', long = "output", default_value = pulse::model::DEFAULT_DIR, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a folder that holds another model.
    #[arg(long)]
    pub force: bool,
    /// Samples of z when the Gaussian fit must be computed from the mapping network (at
    /// least 2).
    #[arg(long, default_value_t = pulse::model::FIT_SAMPLES, value_name = "N",
          value_parser = clap::value_parser!(i64).range(pulse::pipelines::import::MIN_FIT_SAMPLES..))]
    pub fit_samples: i64,
    /// No progress display.
    #[arg(short, long)]
    pub quiet: bool,
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

/// The search and how the searches run, shared by `upsample` and `restore` (each face of a
/// photo is one search): every flag means the same in both.
#[derive(Debug, Args)]
pub struct SearchArgs {
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
    /// A search (an image; for restore, a face) succeeds when its L2 reaches eps (ILO: its
    /// MSE/4, and the search stops there).
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
    /// Seed of the run (each search derives its own from it); random and recorded when omitted.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Searches run together; "auto" picks from free GPU memory (1 on the CPU).
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(BatchSize))]
    pub batch_size: BatchSize,
    /// Search again from a new seed, up to N times, when a search does not converge.
    #[arg(long, default_value_t = 0)]
    pub restarts: usize,
    /// fp32, tf32 (CUDA) or bf16/fp16 autocast of the synthesis (fp16: CUDA only); the loss and
    /// the optimizer stay float32. docs/performance.md gives each mode's speed and error.
    #[arg(long, default_value = "fp32", value_parser = one_of::<Precision>(&Precision::NAMES))]
    pub precision: Precision,
    /// CUDA: capture one search step in a CUDA graph and replay it (same results, fewer kernel
    /// launches from the CPU). No effect on the CPU.
    #[arg(long)]
    pub cuda_graph: bool,
}
