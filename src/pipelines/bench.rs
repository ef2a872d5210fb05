//! `pulse bench`: times full PULSE steps (synthesis forward and backward, downscale, loss, Adam,
//! projection) on an FFHQ-size network with random weights (or a model folder), so users can size
//! a job before they start it. Returns a report; the command line prints it.
use crate::device::Determinism;
use crate::model::Model;
use crate::precision::Precision;
use crate::pulse::search::{search, SearchConfig, Start, GRAPH_WARMUP_STEPS};
use crate::pulse::{GaussianFit, LossTarget, Method};
use crate::stylegan::{Architecture, SynthesisNetwork, Tuning, LATENT_DIM};
use crate::system;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub device: Device,
    pub batch_size: usize,
    /// Timed steps (the report gives their median).
    pub steps: usize,
    /// Untimed steps first (allocator, cuDNN autotuning).
    pub warmup: usize,
    pub precision: Precision,
    /// A model folder; `None` builds the FFHQ-size network of `architecture` with random
    /// weights.
    pub model: Option<PathBuf>,
    /// The family of the random network (ignored with a model folder).
    pub architecture: Architecture,
    /// Target side of the search (32 in PULSE's experiments).
    pub target_side: i64,
    /// Measure the forward pass's difference to float32 (for the faster modes).
    pub parity: bool,
    /// Which speed rewrites of the synthesis are on (all by default).
    pub tuning: Tuning,
    /// Reproducible kernels (the default) or the fastest ones (CUDA only).
    pub determinism: Determinism,
    /// Replay the steps from a CUDA graph (CUDA only).
    pub cuda_graph: bool,
    /// The search timed: PULSE's step, or ILO's (its rounds of equal length, so every round's
    /// partial synthesis is in the median).
    pub method: Method,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            batch_size: 1,
            steps: 3,
            warmup: 1,
            precision: Precision::Fp32,
            model: None,
            architecture: Architecture::default(),
            target_side: 32,
            parity: true,
            tuning: Tuning::ALL_ON,
            determinism: Determinism::Deterministic,
            cuda_graph: false,
            method: Method::Pulse,
        }
    }
}

/// The measured figures; `--json` prints this object.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// `pulse` or `ilo`.
    pub method: &'static str,
    /// Median wall time of one step of the whole batch, in milliseconds.
    pub ms_per_step: f64,
    /// Every timed step, in milliseconds.
    pub step_ms: Vec<f64>,
    pub batch_size: usize,
    pub device: String,
    pub precision: String,
    pub resolution: i64,
    /// The generator family (`stylegan1`, `stylegan2`).
    pub architecture: String,
    /// Faces per hour and per minute at `steps_per_face` steps each.
    pub faces_per_hour: f64,
    pub faces_per_minute: f64,
    pub steps_per_face: usize,
    /// Peak resident memory of the process (VmHWM), MiB.
    pub peak_rss_mb: f64,
    /// Resident memory the search added, per image, MiB.
    pub rss_mb_per_image: f64,
    /// GPU memory this process held at the end (libtorch's cache, about its peak), MiB.
    pub gpu_mb: Option<f64>,
    pub gpu_mb_per_image: Option<f64>,
    /// Max |image - float32 image| of one forward pass in this precision, in the raw output's
    /// units (nominally [-1, 1]); 0 for float32 itself.
    pub parity_max_abs: Option<f64>,
    /// The same as a fraction of the float32 image's largest magnitude.
    pub parity_rel: Option<f64>,
    pub threads: i32,
    /// "random FFHQ-size StyleGAN" (or StyleGAN2), or the model folder.
    pub network: String,
    /// Speed rewrites switched off for this run (`--untuned`), empty normally.
    pub untuned: Vec<&'static str>,
    /// Whether the device ran reproducible kernels (always true on the CPU).
    pub deterministic: bool,
    /// Whether the timed steps were replayed from a CUDA graph.
    pub cuda_graph: bool,
    /// Anything the user should know about this mode on this device.
    pub notes: Vec<String>,
}

/// The network a benchmark times: a model folder's, or a random one with its weights.
enum Network {
    Model(Model),
    /// The VarStore keeps the random weights alive.
    Random {
        synthesis: Box<dyn SynthesisNetwork>,
        _weights: nn::VarStore,
    },
}

impl Network {
    fn synthesis(&mut self) -> &mut dyn SynthesisNetwork {
        match self {
            Network::Model(m) => m.synthesis.as_mut(),
            Network::Random { synthesis, .. } => synthesis.as_mut(),
        }
    }
}

/// The model folder's generator, or the FFHQ-size one of `architecture` with random weights,
/// with its Gaussian fit (the folder's, else a random one) and its name for the report.
fn network(opts: &BenchOptions) -> anyhow::Result<(Network, GaussianFit, String)> {
    let dev = opts.device;
    if let Some(dir) = &opts.model {
        let m = Model::load(dir, dev)?;
        let fit =
            m.fit.as_ref().map(|f| f.to_device(dev)).unwrap_or_else(|| GaussianFit::random(dev));
        return Ok((Network::Model(m), fit, dir.display().to_string()));
    }
    let (synthesis, vs) = opts.architecture.random_ffhq(dev, 0);
    let name = format!("random FFHQ-size {}", opts.architecture.title());
    Ok((Network::Random { synthesis, _weights: vs }, GaussianFit::random(dev), name))
}

/// What the user should know about this precision and CUDA graph setting on this device.
fn mode_notes(opts: &BenchOptions, cuda_graph: bool) -> Vec<String> {
    let mut notes = vec![];
    match (opts.precision, opts.device) {
        (Precision::Tf32, Device::Cpu) => {
            notes.push("tf32 has no effect on the CPU (same as fp32)".into())
        }
        (Precision::Fp16, Device::Cpu) => {
            notes.push("fp16 autocast on the CPU is partial and slow; it is meant for CUDA".into())
        }
        (Precision::Bf16, Device::Cpu) => {
            notes.push("bf16 on the CPU is only fast with AMX/AVX512-BF16 hardware".into())
        }
        _ => {}
    }
    if opts.cuda_graph && !cuda_graph {
        notes.push("cuda graph has no effect on the CPU".into());
    }
    notes
}

/// Sets the precision; with `parity`, first measures one forward pass in it against float32 on a
/// fixed input: (max abs difference, that relative to the image's largest magnitude).
fn set_precision_measured(
    synthesis: &mut dyn SynthesisNetwork,
    opts: &BenchOptions,
) -> anyhow::Result<(Option<f64>, Option<f64>)> {
    let dev = opts.device;
    if !opts.parity || opts.precision == Precision::Fp32 {
        synthesis.set_precision(opts.precision);
        return Ok(match opts.precision {
            Precision::Fp32 => (Some(0.0), Some(0.0)),
            _ => (None, None),
        });
    }
    let layout = synthesis.layout().clone();
    let w_plus = crate::rng::seeded(1, || {
        Tensor::randn([1, layout.w_rows as i64, LATENT_DIM], (Kind::Float, Device::Cpu))
    })
    .to_device(dev);
    let noise: Vec<Tensor> =
        Start::random(1, &layout, false).noise.iter().map(|n| n.to_device(dev)).collect();
    synthesis.set_precision(Precision::Fp32);
    let want = tch::no_grad(|| synthesis.forward(&w_plus, &noise))?;
    synthesis.set_precision(opts.precision);
    let got = tch::no_grad(|| synthesis.forward(&w_plus, &noise))?;
    let d = (&got - &want).abs().max().double_value(&[]);
    let m = want.abs().max().double_value(&[]);
    Ok((Some(d), Some(d / m.max(1e-12))))
}

/// Runs the benchmark; `progress(step, total)` sees every step.
pub fn run(
    opts: &BenchOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(opts.batch_size > 0 && opts.steps > 0, "batch size and steps must be positive");
    let dev = opts.device;
    crate::device::configure(dev, opts.determinism)?;
    let (mut net, fit, network_name) = network(opts)?;
    let layout = net.synthesis().layout().clone();
    net.synthesis().set_tuning(opts.tuning);
    let cuda_graph = opts.cuda_graph && dev.is_cuda();
    let mut notes = mode_notes(opts, cuda_graph);
    // The graph is captured after GRAPH_WARMUP_STEPS ordinary steps; the capture is not timed.
    let warmup = match cuda_graph {
        true if opts.warmup <= GRAPH_WARMUP_STEPS => {
            notes.push(format!(
                "{} warm-up steps (the graph is captured after {GRAPH_WARMUP_STEPS})",
                GRAPH_WARMUP_STEPS + 1
            ));
            GRAPH_WARMUP_STEPS + 1
        }
        _ => opts.warmup,
    };
    let (parity_max_abs, parity_rel) = set_precision_measured(net.synthesis(), opts)?;

    let batch = opts.batch_size;
    let starts: Vec<Start> =
        (0..batch).map(|b| Start::random(b as u64 + 10, &layout, false)).collect();
    let start = Start::batch(&starts);
    let target = LossTarget {
        image: crate::rng::seeded(2, || {
            Tensor::rand(
                [batch as i64, 3, opts.target_side, opts.target_side],
                (Kind::Float, Device::Cpu),
            )
        })
        .to_device(dev),
        weight: None,
    };
    let total = warmup + opts.steps + 1;
    let search_config = match opts.method {
        Method::Pulse => SearchConfig { steps: total, cuda_graph, ..SearchConfig::default() },
        Method::Ilo => {
            if cuda_graph {
                return Err(crate::Invalid(
                    "--cuda-graph does not apply to --method ilo (its rounds change the graph)"
                        .into(),
                )
                .into());
            }
            // ILO's four rounds (fewer on a network with fewer blocks), of equal length.
            let rounds = 4.min(layout.channels.len());
            let mut config = SearchConfig {
                method: Method::Ilo,
                lr: 0.1,
                loss: "1*MSE+0.01*GEOCROSS".parse().expect("ILO's loss parses"),
                eps: 1e-12,
                ..SearchConfig::default()
            };
            config.ilo.steps = vec![total.div_ceil(rounds); rounds];
            config
        }
    };
    let steps_per_face = SearchConfig::default().steps;
    let rss_before = system::rss_mb().unwrap_or(0.0);
    let mut stamps: Vec<Instant> = Vec::with_capacity(total);
    let cuda_index = match dev {
        Device::Cuda(i) => Some(i),
        _ => None,
    };
    let synthesis: &dyn SynthesisNetwork = net.synthesis();
    let mut seen = 0;
    let outcome = search(synthesis, &fit, &search_config, &target, start, dev, &mut |p| {
        seen += 1;
        if seen > total {
            return true; // ILO's last round may run a few steps past the timed ones
        }
        // The callback comes once per step, after the forward pass; wait for the GPU so the
        // stamps measure finished work (the baseline script synchronizes every step too).
        if let Some(i) = cuda_index {
            tch::Cuda::synchronize(i as i64);
        }
        stamps.push(Instant::now());
        progress(p.step + 1, p.steps);
        true
    })?;
    anyhow::ensure!(outcome.completed().is_some(), "the benchmark was interrupted");
    let step_ms: Vec<f64> =
        stamps.windows(2).skip(warmup).map(|w| (w[1] - w[0]).as_secs_f64() * 1000.0).collect();
    let ms_per_step = median(&step_ms);
    let peak_rss_mb = system::peak_rss_mb().unwrap_or(0.0);
    let gpu_mb =
        cuda_index.and_then(system::cuda_used_bytes_by_self).map(|b| b as f64 / (1024.0 * 1024.0));
    let faces_per_hour = batch as f64 * 3_600_000.0 / (ms_per_step * steps_per_face as f64);
    Ok(BenchReport {
        method: opts.method.name(),
        ms_per_step,
        step_ms,
        batch_size: batch,
        device: crate::device::describe(dev),
        precision: opts.precision.name().to_string(),
        resolution: layout.resolution,
        architecture: layout.architecture.name().to_string(),
        faces_per_hour,
        faces_per_minute: faces_per_hour / 60.0,
        steps_per_face,
        peak_rss_mb,
        rss_mb_per_image: (peak_rss_mb - rss_before).max(0.0) / batch as f64,
        gpu_mb,
        gpu_mb_per_image: gpu_mb.map(|m| m / batch as f64),
        parity_max_abs,
        parity_rel,
        threads: tch::get_num_threads(),
        network: network_name,
        untuned: untuned_names(opts.tuning),
        deterministic: opts.determinism.is_deterministic() || !dev.is_cuda(),
        cuda_graph,
        notes,
    })
}

/// The names of the rewrites `tuning` switches off.
fn untuned_names(t: Tuning) -> Vec<&'static str> {
    let on = [t.epilogue, t.leaky, t.convt, t.blurbias];
    Tuning::NAMES.into_iter().zip(on).filter(|(_, on)| !on).map(|(n, _)| n).collect()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    /// The bundled test model is part of the repository; its absence is a broken checkout.
    #[test]
    fn benches_a_small_network() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/test-1024");
        assert!(dir.is_dir(), "{} is missing from the checkout", dir.display());
        let opts = BenchOptions {
            model: Some(dir),
            steps: 2,
            tuning: Tuning::without("convt").unwrap(),
            ..BenchOptions::default()
        };
        let r = run(&opts, &mut |_, _| {}).unwrap();
        assert_eq!(r.step_ms.len(), 2);
        assert!(r.ms_per_step > 0.0 && r.faces_per_hour > 0.0 && r.peak_rss_mb > 0.0);
        assert_eq!(r.parity_max_abs, Some(0.0));
        assert_eq!(r.untuned, ["convt"]);
    }
}
