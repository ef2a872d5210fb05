//! `pulse bench`: times full PULSE steps (synthesis forward and backward, downscale, loss, Adam,
//! projection) on an FFHQ-size network with random weights (or a model folder), so users can size
//! a job before they start it. Returns a report; the command line prints it.
use crate::device::Determinism;
use crate::precision::Precision;
use crate::pulse::search::{search, SearchConfig, Start, GRAPH_WARMUP_STEPS};
use crate::pulse::{GaussianFit, LossTarget};
use crate::stylegan::{Synthesis, SynthesisConfig, Tuning, LATENT_DIM};
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
    /// A model folder; `None` builds the FFHQ-size network with random weights.
    pub model: Option<PathBuf>,
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
            target_side: 32,
            parity: true,
            tuning: Tuning::ALL_ON,
            determinism: Determinism::Deterministic,
            cuda_graph: false,
        }
    }
}

/// The measured figures; `--json` prints this object.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Median wall time of one step of the whole batch, in milliseconds.
    pub ms_per_step: f64,
    /// Every timed step, in milliseconds.
    pub step_ms: Vec<f64>,
    pub batch_size: usize,
    pub device: String,
    pub precision: String,
    pub resolution: i64,
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
    /// "random FFHQ-size" or the model folder.
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

/// An FFHQ-size (or any `config`) synthesis network with random weights, like
/// `torch_baseline_step.py`'s: weights N(0,1), biases N(0,0.01), noise strengths U(0,0.1).
pub fn random_synthesis(
    config: &SynthesisConfig,
    device: Device,
    seed: i64,
) -> (Synthesis, nn::VarStore) {
    let mut vs = nn::VarStore::new(device);
    let mut synthesis = Synthesis::new(vs.root(), config);
    tch::manual_seed(seed);
    tch::no_grad(|| {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, mut t) in vars {
            let r = if name.ends_with("noise.weight") {
                t.rand_like() * 0.1
            } else if name.ends_with("bias") {
                t.randn_like() * 0.1
            } else {
                t.randn_like()
            };
            t.copy_(&r);
        }
    });
    vs.freeze();
    synthesis.prepare();
    (synthesis, vs)
}

/// A plausible random Gaussian fit (as the baseline script draws it).
pub fn random_fit(device: Device) -> GaussianFit {
    let mean = Tensor::randn([LATENT_DIM], (Kind::Float, Device::Cpu)) * 0.3;
    let std = Tensor::rand([LATENT_DIM], (Kind::Float, Device::Cpu)) * 0.5 + 0.2;
    GaussianFit { mean: mean.to_device(device), std: std.to_device(device) }
}

/// Runs the benchmark; `progress(step, total)` sees every step.
pub fn run(
    opts: &BenchOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(opts.batch_size > 0 && opts.steps > 0, "batch size and steps must be positive");
    let dev = opts.device;
    crate::device::configure(dev, opts.determinism)?;
    let mut notes = vec![];
    let (mut model, mut random) = (None, None);
    let (fit, network) = match &opts.model {
        Some(dir) => {
            let m = crate::model::Model::load(dir, dev)?;
            let fit = m.fit.as_ref().map(|f| f.to_device(dev)).unwrap_or_else(|| random_fit(dev));
            model = Some(m);
            (fit, dir.display().to_string())
        }
        None => {
            random = Some(random_synthesis(&SynthesisConfig::ffhq(), dev, 0));
            (random_fit(dev), "random FFHQ-size".to_string())
        }
    };
    let synthesis: &mut Synthesis = match (&mut model, &mut random) {
        (Some(m), _) => &mut m.synthesis,
        (_, Some((s, _))) => s,
        _ => unreachable!("one network was built above"),
    };
    let config = synthesis.config().clone();
    synthesis.set_tuning(opts.tuning);
    match (opts.precision, dev) {
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
    let cuda_graph = opts.cuda_graph && dev.is_cuda();
    if opts.cuda_graph && !cuda_graph {
        notes.push("cuda graph has no effect on the CPU".into());
    }
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

    // Parity of the forward pass against float32, on one fixed input.
    let (parity_max_abs, parity_rel) = if opts.parity && opts.precision != Precision::Fp32 {
        let layers = config.num_layers();
        tch::manual_seed(1);
        let w_plus = (Tensor::randn([1, layers as i64, LATENT_DIM], (Kind::Float, Device::Cpu)))
            .to_device(dev);
        let noise: Vec<Tensor> =
            Start::random(1, &config, false).noise.iter().map(|n| n.to_device(dev)).collect();
        synthesis.set_precision(Precision::Fp32);
        let want = tch::no_grad(|| synthesis.forward(&w_plus, &noise))?;
        synthesis.set_precision(opts.precision);
        let got = tch::no_grad(|| synthesis.forward(&w_plus, &noise))?;
        let d = (&got - &want).abs().max().double_value(&[]);
        let m = want.abs().max().double_value(&[]);
        (Some(d), Some(d / m.max(1e-12)))
    } else {
        synthesis.set_precision(opts.precision);
        if opts.precision == Precision::Fp32 {
            (Some(0.0), Some(0.0))
        } else {
            (None, None)
        }
    };

    let batch = opts.batch_size;
    let starts: Vec<Start> =
        (0..batch).map(|b| Start::random(b as u64 + 10, &config, false)).collect();
    let start = Start::batch(&starts);
    tch::manual_seed(2);
    let target = LossTarget {
        image: Tensor::rand(
            [batch as i64, 3, opts.target_side, opts.target_side],
            (Kind::Float, Device::Cpu),
        )
        .to_device(dev),
        weight: None,
    };
    let total = warmup + opts.steps + 1;
    let search_config = SearchConfig { steps: total, cuda_graph, ..SearchConfig::default() };
    let steps_per_face = SearchConfig::default().steps;
    let rss_before = system::rss_mb().unwrap_or(0.0);
    let mut stamps: Vec<Instant> = Vec::with_capacity(total);
    let cuda_index = match dev {
        Device::Cuda(i) => Some(i),
        _ => None,
    };
    let outcome = search(synthesis, &fit, &search_config, &target, start, dev, &mut |p| {
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
        ms_per_step,
        step_ms,
        batch_size: batch,
        device: crate::device::describe(dev),
        precision: opts.precision.name().to_string(),
        resolution: config.resolution,
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
        network,
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
