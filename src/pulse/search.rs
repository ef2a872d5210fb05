//! The PULSE loop (docs/design.md, "One step"): transform the sphere latent into
//! W+, synthesize, downscale, score, keep each image's best iterate, step, project.
//!
//! Every batch item is independent (its loss terms, its best iterate, its success), so a result
//! does not depend on the batch it ran in. Two defects of the published code are fixed here: it
//! returned the last step's image and judged a batch by its summed L2.
use super::loss::{LossSpec, LossTarget, Term};
use super::method::{IloConfig, Method};
use super::optim::OptimizerKind;
use super::schedule::Schedule;
use super::step::{Inputs, State};
use super::Downscaler;
use super::GaussianFit;
use super::Outcome;
use crate::latent::LatentFile;
use crate::stylegan::{Architecture, BlockInput, Layout, SynthesisNetwork, LATENT_DIM};
use anyhow::{ensure, Context};
use tch::{Device, Kind, Tensor};

/// How the per-layer noise inputs behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseMode {
    /// All zero.
    Zero,
    /// Random, not optimized.
    Fixed,
    /// Random; the first `trainable_noise` layers are optimized.
    #[default]
    Trainable,
}

crate::named_variants!(NoiseMode, "noise mode", {
    Trainable => "trainable",
    Fixed => "fixed",
    Zero => "zero",
});

/// Search settings; the defaults are PULSE's published ones.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// PULSE or ILO; with ILO, `ilo` says the rounds, and `steps`, `optimizer`, `schedule`,
    /// `noise`, `trainable_noise`, `bad_noise_layers`, `tile_latent` and `cuda_graph` are unused
    /// (ILO's own rules: Adam, its ramp, noise maps `0..5+2k-1` trained, none zeroed).
    pub method: Method,
    pub ilo: IloConfig,
    pub steps: usize,
    pub lr: f64,
    pub optimizer: OptimizerKind,
    pub schedule: Schedule,
    pub loss: LossSpec,
    /// L2 level at which an image counts as a success; also the floor of the L2/L1 terms.
    pub eps: f64,
    pub noise: NoiseMode,
    /// Noise maps i < this are optimized (trainable mode).
    pub trainable_noise: usize,
    /// Noise maps that are always zero and never optimized (checked first); `None` (the
    /// default) zeroes the generator's own ([`Layout::default_bad_noise`]: PULSE's map 17 on a
    /// 1024 StyleGAN, the last map on a StyleGAN2), so one configuration suits every model.
    pub bad_noise_layers: Option<Vec<usize>>,
    /// Optimize one 512-vector per image, tiled over all layers.
    pub tile_latent: bool,
    /// Keep the best image after every step (for an animation of the search).
    pub keep_intermediate: bool,
    /// Also return the latent and noise after the last update (what PULSE's published code
    /// leaves behind, which the parity fixtures record); off for ordinary runs.
    pub keep_final: bool,
    /// On CUDA, capture one step in a CUDA graph after [`GRAPH_WARMUP_STEPS`] ordinary ones and
    /// replay it for the rest (docs/design.md, "CUDA graphs"): the same arithmetic, without
    /// launching each of the step's kernels from the host. Ignored on the CPU. Off by default
    /// until measured on a GPU (docs/performance.md).
    pub cuda_graph: bool,
}

impl SearchConfig {
    /// The noise maps kept at zero on the generator of `layout`.
    pub fn bad_noise<'a>(&'a self, layout: &'a Layout) -> &'a [usize] {
        self.bad_noise_layers.as_deref().unwrap_or(&layout.default_bad_noise)
    }

    /// Steps a search runs (ILO: the rounds' steps together), unless it stops early.
    pub fn total_steps(&self) -> usize {
        match self.method {
            Method::Pulse => self.steps,
            Method::Ilo => self.ilo.steps.iter().sum(),
        }
    }

    /// Checks every setting against the generator's layout; the message names the setting and
    /// the accepted range.
    pub fn check(&self, layout: &Layout) -> Result<(), crate::Invalid> {
        if self.method == Method::Ilo {
            return super::ilo::check(self, layout.channels.len());
        }
        let layers = layout.noise_maps();
        let bad = |m: String| Err(crate::Invalid(m));
        if self.steps == 0 {
            return bad("steps must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "the learning rate must be a positive finite number, got {}",
                self.lr
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad(format!("eps must be a positive finite number, got {}", self.eps));
        }
        if self.loss.terms.is_empty() {
            return bad("the loss has no terms".into());
        }
        if self.trainable_noise > layers {
            return bad(format!(
                "{} trainable noise layers asked for, the network has {layers} noise maps (0 to {layers})",
                self.trainable_noise
            ));
        }
        if let Some(l) = self.bad_noise(layout).iter().find(|&&l| l >= layers) {
            return bad(format!(
                "noise layer {l} does not exist: the network has noise maps 0 to {}",
                layers - 1
            ));
        }
        Ok(())
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            method: Method::Pulse,
            ilo: IloConfig::default(),
            steps: 100,
            lr: 0.4,
            optimizer: OptimizerKind::Adam,
            schedule: Schedule::Linear1CycleDrop,
            loss: LossSpec::default(),
            eps: 2e-3,
            noise: NoiseMode::Trainable,
            trainable_noise: 5,
            bad_noise_layers: None,
            tile_latent: false,
            keep_intermediate: false,
            keep_final: false,
            cuda_graph: false,
        }
    }
}

/// Ordinary steps a search runs before it captures a CUDA graph (`SearchConfig::cuda_graph`):
/// libtorch creates its per-stream workspaces (cuBLAS, cuDNN plans) and the gradients' buffers
/// on first use, which must not happen inside a capture (PyTorch's CUDA graph notes warm up 3).
pub const GRAPH_WARMUP_STEPS: usize = 3;

/// The starting point of a search: the sphere-side latent [B,L,512] (or [B,1,512] tiled) and
/// one noise map per noise input [B,1,S,S], as drawn (the noise mode is applied by the search).
#[derive(Debug)]
pub struct Start {
    pub latent: Tensor,
    pub noise: Vec<Tensor>,
}

impl Start {
    /// Draws one item's start from the global generator after seeding it with `seed`, on the
    /// CPU, so the draw is the same whatever the device and whatever else is in the batch.
    pub fn random(seed: u64, layout: &Layout, tile_latent: bool) -> Self {
        let rows = if tile_latent { 1 } else { layout.w_rows as i64 };
        crate::rng::seeded(seed as i64, || {
            let latent = Tensor::randn([1, rows, LATENT_DIM], (Kind::Float, Device::Cpu));
            Self { latent, noise: layout.random_noise() }
        })
    }

    /// Stacks single-item starts into one batch.
    pub fn batch(items: &[Start]) -> Self {
        let latent =
            Tensor::cat(&items.iter().map(|s| s.latent.shallow_clone()).collect::<Vec<_>>(), 0);
        let noise = (0..items[0].noise.len())
            .map(|l| {
                Tensor::cat(
                    &items.iter().map(|s| s.noise[l].shallow_clone()).collect::<Vec<_>>(),
                    0,
                )
            })
            .collect();
        Self { latent, noise }
    }
}

/// One row of history: the values before that step's update.
#[derive(Debug, Clone, PartialEq)]
pub struct StepValues {
    pub step: usize,
    /// ILO's round (`None` for PULSE).
    pub round: Option<usize>,
    pub lr: f64,
    pub total: f64,
    /// One value per loss term, in the loss string's order.
    pub terms: Vec<f64>,
}

/// What the search found for one batch item.
#[derive(Debug)]
pub struct SearchOutcome {
    /// Best iterate (lowest TOTAL), [3,R,R] in [0,1] (clamped), on the CPU.
    pub image: Tensor,
    pub best_step: usize,
    pub best: StepValues,
    /// Its L2 came within eps at some step.
    pub converged: bool,
    pub history: Vec<StepValues>,
    /// The sphere-side latent, W+ and noise that produced `image` (CPU, batch dim 1).
    pub latent: Tensor,
    pub w_plus: Tensor,
    pub noise: Vec<Tensor>,
    /// ILO: what entered the synthesis block the best iterate's round started at (`None` when
    /// it came from round 0, or from PULSE); the image is rendered from it
    /// ([`SynthesisNetwork::forward_from`]).
    pub block_input: Option<BlockInput>,
    /// The best image as the search went (only with `keep_intermediate`): 8-bit [3,S,S] frames,
    /// S at most 256, at most [`MAX_FRAMES`] of them, evenly spaced over the steps.
    pub intermediate: Vec<Tensor>,
    /// The latent and noise after the last update (only with `keep_final`), on the CPU.
    pub final_state: Option<(Tensor, Vec<Tensor>)>,
}

impl SearchOutcome {
    /// The latent file that renders `image` exactly: W+, the sphere-side latent and the noise,
    /// with the start's `seed` and the best step in its metadata.
    pub fn latent_file(
        &self,
        model_sha256: &str,
        architecture: Architecture,
        seed: u64,
    ) -> LatentFile {
        let mut latent = LatentFile::new(
            self.w_plus.squeeze_dim(0),
            Some(self.latent.squeeze_dim(0)),
            self.noise.iter().map(|n| n.shallow_clone()).collect(),
            model_sha256,
        );
        latent.set_architecture(architecture);
        latent.metadata.insert("seed".into(), seed.to_string());
        latent.metadata.insert("best_step".into(), self.best_step.to_string());
        // ILO's results say so (`method` absent: PULSE, as in files written before ILO came).
        if let Some(round) = self.best.round {
            latent.metadata.insert("method".into(), Method::Ilo.name().into());
            latent.metadata.insert("round".into(), round.to_string());
        }
        if let Some(input) = &self.block_input {
            latent.set_block_input(input.to_device(Device::Cpu));
        }
        latent
    }
}

/// Per-step progress, for a progress bar: the step and each item's L2 (or first image term).
pub struct Progress<'a> {
    pub step: usize,
    pub steps: usize,
    pub values: &'a Tensor,
}

/// `w_plus = leaky_relu(latent * std + mean, 0.2)`, tiled to `layers` rows when the latent has
/// one (docs/design.md, "The latent space").
pub fn to_w_plus(latent: &Tensor, fit: &GaussianFit, layers: usize) -> anyhow::Result<Tensor> {
    let latent = if latent.size()[1] == 1 {
        latent.expand([-1, layers as i64, -1], false)
    } else {
        latent.shallow_clone()
    };
    crate::stylegan::leaky_relu(&(latent * &fit.std + &fit.mean), 0.2)
}

/// Inverse of `to_w_plus` (leaky ReLU 0.2 is invertible by slope 5): recovers the sphere-side
/// latent from a W+ that has none (an embedded photo).
pub fn from_w_plus(w_plus: &Tensor, fit: &GaussianFit) -> anyhow::Result<Tensor> {
    Ok((crate::stylegan::leaky_relu(w_plus, 5.0)? - &fit.mean) / &fit.std)
}

/// Runs the search for a batch. `target.image` is [B,3,s,s] on `device`; `on_step` sees each
/// step and returns whether to go on (else the search ends as [`Outcome::Interrupted`]).
pub fn search(
    synthesis: &dyn SynthesisNetwork,
    fit: &GaussianFit,
    config: &SearchConfig,
    target: &LossTarget,
    start: Start,
    device: Device,
    on_step: &mut dyn FnMut(Progress) -> bool,
) -> anyhow::Result<Outcome<Vec<SearchOutcome>>> {
    // Both methods: LPIPS needs its network, and a target it can see (docs/design.md, "LPIPS as
    // a loss term").
    if config.loss.terms.iter().any(|(_, t)| *t == Term::Lpips) {
        if target.weight.is_some() {
            return Err(crate::Invalid(
                "the LPIPS loss term cannot be weighted by a mask or alpha; use L2, L1 or MSE"
                    .into(),
            )
            .into());
        }
        crate::metrics::lpips::prepare_loss(target.image.size()[3], device)?;
    }
    if config.method == Method::Ilo {
        return super::ilo::search(synthesis, fit, config, target, start, device, on_step);
    }
    let layout = synthesis.layout();
    let (layers, resolution) = (layout.w_rows, layout.resolution);
    let batch = start.latent.size()[0];
    ensure!(
        start.noise.len() == layout.noise_maps(),
        "start has {} noise maps, the network has {}",
        start.noise.len(),
        layout.noise_maps()
    );
    ensure!(config.steps > 0, "the search needs at least one step");
    ensure!(!config.loss.terms.is_empty(), "the loss has no terms");
    let graph = config.cuda_graph && device.is_cuda();
    if graph && !crate::ops::cuda_graphs_built() {
        return Err(crate::Invalid(
            "CUDA graphs unavailable in this build (pulse was compiled without the CUDA runtime headers); search without them".into(),
        )
        .into());
    }
    let down = Downscaler::for_target(resolution, target.image.size()[3], device)?;
    let lrs: Vec<f64> = (0..config.steps)
        .map(|step| config.lr * config.schedule.factor(step, config.steps))
        .collect();
    let mut state = State::new(config, config.bad_noise(layout), &start, &lrs, resolution, device)?;
    let inputs = Inputs { synthesis, fit, config, target, down: &down, layers };
    let image_term = config.loss.terms.iter().position(|(_, t)| *t == Term::L2).unwrap_or(0);
    let mut intermediate = Frames::default();
    let mut after_step = |step: usize, state: &State| {
        if config.keep_intermediate {
            tch::no_grad(|| intermediate.offer(step, || preview(&state.best_image)));
        }
        let values = state.history.get(step as i64).get(1 + image_term as i64);
        on_step(Progress { step, steps: config.steps, values: &values })
    };
    let completed = if graph {
        run_with_graph(&mut state, &inputs, device, &mut after_step)?
    } else {
        run_eager(&mut state, &inputs, &mut after_step)?
    };
    if !completed {
        return Ok(Outcome::Interrupted);
    }
    let State { best_step, best_image, best_latent, best_noise, history, latent, noise, .. } =
        state;

    // One host transfer for the whole history: [steps, 1 + terms, B].
    let history = history.to_device(Device::Cpu).to_kind(Kind::Double);
    let best_step: Vec<i64> = Vec::try_from(best_step.to_device(Device::Cpu))?;
    let l2_col = config.loss.terms.iter().position(|(_, t)| *t == Term::L2);
    let best_image = best_image.to_device(Device::Cpu).clamp(0.0, 1.0);
    let best_latent = best_latent.to_device(Device::Cpu);
    let best_w_plus =
        tch::no_grad(|| to_w_plus(&best_latent, &fit.to_device(Device::Cpu), layers))?;
    let best_noise: Vec<Tensor> = best_noise.iter().map(|n| n.to_device(Device::Cpu)).collect();

    let final_state = config.keep_final.then(|| {
        let latent = latent.detach().to_device(Device::Cpu);
        let noise: Vec<Tensor> = noise.iter().map(|n| n.detach().to_device(Device::Cpu)).collect();
        (latent, noise)
    });
    let mut outcomes = vec![];
    for b in 0..batch {
        let item: Vec<StepValues> = (0..config.steps)
            .map(|s| {
                let v: Vec<f64> =
                    Vec::try_from(history.get(s as i64).select(1, b)).expect("history row");
                StepValues { step: s, round: None, lr: lrs[s], total: v[0], terms: v[1..].to_vec() }
            })
            .collect();
        let converged = match l2_col {
            Some(c) => item.iter().any(|v| v.terms[c] <= config.eps * (1.0 + 1e-6)),
            None => false,
        };
        let bs = best_step[b as usize] as usize;
        outcomes.push(SearchOutcome {
            image: best_image.get(b),
            best_step: bs,
            best: item[bs].clone(),
            converged,
            latent: best_latent.narrow(0, b, 1),
            w_plus: best_w_plus.narrow(0, b, 1),
            noise: best_noise.iter().map(|n| n.narrow(0, b, 1)).collect(),
            block_input: None,
            intermediate: intermediate.frames.iter().map(|t| t.get(b)).collect(),
            history: item,
            final_state: final_state.as_ref().map(|(latent, noise)| {
                (latent.narrow(0, b, 1), noise.iter().map(|n| n.narrow(0, b, 1)).collect())
            }),
        });
    }
    Ok(Outcome::Completed(outcomes))
}

/// Runs every step as ordinary libtorch calls; false when `after_step` said stop.
fn run_eager(
    state: &mut State,
    inputs: &Inputs,
    after_step: &mut dyn FnMut(usize, &State) -> bool,
) -> anyhow::Result<bool> {
    for step in 0..inputs.config.steps {
        state.step(inputs)?;
        if !after_step(step, state) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Runs [`GRAPH_WARMUP_STEPS`] ordinary steps, captures the next one in a CUDA graph and replays
/// it for that step and every later one, all on a side stream; false when `after_step` said
/// stop. A capture records the step's kernels without running them, and the step keeps its
/// step number and per-step scalars on the device, so each replay is the next step.
fn run_with_graph(
    state: &mut State,
    inputs: &Inputs,
    device: Device,
    after_step: &mut dyn FnMut(usize, &State) -> bool,
) -> anyhow::Result<bool> {
    use crate::ops::{CaptureMode, CudaGraph, SideStream};
    // Declared before the stream: dropped after it, once the stream's work has finished.
    let mut graph: Option<CudaGraph> = None;
    let stream = SideStream::enter(device)?;
    for step in 0..inputs.config.steps {
        if step < GRAPH_WARMUP_STEPS {
            state.step(inputs)?;
        } else {
            if graph.is_none() {
                let mut g = CudaGraph::new()?;
                g.capture_begin(CaptureMode::Global)?;
                let captured = state.step(inputs);
                let ended = g.capture_end();
                captured.and(ended).context("capturing a PULSE step in a CUDA graph")?;
                graph = Some(g);
            }
            graph.as_mut().expect("captured above").replay()?;
        }
        if !after_step(step, state) {
            return Ok(false);
        }
    }
    stream.exit()?;
    Ok(true)
}

/// The most frames an animation of a search keeps (memory stays bounded on long searches).
pub const MAX_FRAMES: usize = 128;

/// Per-step previews, thinned as they come: every `stride`-th step is kept, and when
/// [`MAX_FRAMES`] are held every other one is dropped and the stride doubles.
#[derive(Default)]
pub(super) struct Frames {
    pub(super) frames: Vec<Tensor>,
    stride: usize,
}

impl Frames {
    pub(super) fn offer(&mut self, step: usize, frame: impl FnOnce() -> Tensor) {
        let stride = self.stride.max(1);
        if !step.is_multiple_of(stride) {
            return;
        }
        let f = frame();
        self.frames.push(
            (f * 255.0).round().clamp(0.0, 255.0).to_kind(Kind::Uint8).to_device(Device::Cpu),
        );
        if self.frames.len() == MAX_FRAMES {
            self.frames = std::mem::take(&mut self.frames).into_iter().step_by(2).collect();
            self.stride = stride * 2;
        }
    }
}

/// Shrinks images to at most 256 px for per-step previews (average pooling keeps them faithful).
pub(super) fn preview(images: &Tensor) -> Tensor {
    let side = images.size()[3];
    if side <= 256 {
        return images.shallow_clone();
    }
    let k = side / 256;
    images.avg_pool2d([k, k], [k, k], [0, 0], false, true, None::<i64>)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SearchConfig::default()` zeroes the generator's own bad noise map, from its layout: map
    /// 17 of a 1024 StyleGAN (v1), map 16 of a 1024 StyleGAN2, which has no map 17 (a default
    /// search used to be refused there). Small channel counts keep the 1024 networks cheap.
    #[test]
    fn the_default_search_zeroes_the_generators_own_bad_noise_map() {
        use crate::stylegan::{stylegan1, stylegan2};
        let v1 = stylegan1::Synthesis::random(
            &stylegan1::SynthesisConfig::with_fmap_max(1024, 4),
            Device::Cpu,
            1,
        );
        let sg2 = stylegan2::Synthesis::random(
            &stylegan2::SynthesisConfig::with_channels(1024, 4096, 4),
            Device::Cpu,
            2,
        );
        let nets: [(&dyn SynthesisNetwork, usize, usize); 2] = [(&v1.0, 18, 17), (&sg2.0, 17, 16)];
        let config = SearchConfig { steps: 2, ..SearchConfig::default() };
        let fit = GaussianFit::random(Device::Cpu);
        for (net, maps, bad) in nets {
            let layout = net.layout();
            assert_eq!(layout.noise_maps(), maps);
            config.check(layout).unwrap_or_else(|e| panic!("{:?}: {e}", layout.architecture));
            assert_eq!(config.bad_noise(layout), [bad]);
            let _seed = crate::rng::seed(3);
            let target = LossTarget {
                image: Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu)),
                weight: None,
            };
            let start = Start::random(4, layout, false);
            let found = search(net, &fit, &config, &target, start, Device::Cpu, &mut |_| true)
                .unwrap()
                .completed()
                .unwrap();
            let noise = &found[0].noise;
            let largest = |l: usize| noise[l].abs().max().double_value(&[]);
            assert_eq!(largest(bad), 0.0, "{:?}: map {bad} not zeroed", layout.architecture);
            for l in (0..maps).filter(|&l| l != bad) {
                assert!(largest(l) > 0.0, "{:?}: map {l} zeroed", layout.architecture);
            }
        }
        // Named maps are kept as given.
        let named = SearchConfig { bad_noise_layers: Some(vec![3]), ..SearchConfig::default() };
        assert_eq!(named.bad_noise(v1.0.layout()), [3]);
    }

    /// However long the search, the animation keeps at most MAX_FRAMES frames, 8-bit, evenly
    /// spaced and starting at the first step.
    #[test]
    fn animation_frames_stay_bounded_and_evenly_spaced() {
        for steps in [3, MAX_FRAMES, 1000, 5000] {
            let mut frames = Frames::default();
            for step in 0..steps {
                frames.offer(step, || {
                    Tensor::full([1, 3, 2, 2], step as f64 / 1e4, (Kind::Float, Device::Cpu))
                });
            }
            let n = frames.frames.len();
            assert!(n <= MAX_FRAMES && n >= MAX_FRAMES.min(steps) / 2, "{steps} steps: {n} frames");
            assert!(frames.frames.iter().all(|f| f.kind() == Kind::Uint8));
            let firsts: Vec<i64> =
                frames.frames.iter().map(|f| f.int64_value(&[0, 0, 0, 0])).collect();
            assert_eq!(firsts[0], 0);
            let stride = frames.stride.max(1);
            let want: Vec<i64> =
                (0..n).map(|i| ((i * stride) as f64 / 1e4 * 255.0).round() as i64).collect();
            assert_eq!(firsts, want, "{steps} steps: frames every {stride} steps");
        }
    }
}
