//! Embedding a real photo into W+ (Image2StyleGAN, Abdal et al., ICCV 2019; docs/design.md,
//! "Editing"):
//! Adam on W+ [1,L,512] directly, starting from the mean w on every layer, so that the
//! full-resolution synthesis matches the photo: pixel MSE on images in [0,1] (a rendering beyond
//! a saturated pixel of the photo counts as a match), plus a VGG16 perceptual term when its
//! weights are given. The noise is fixed (not optimized) and saved with
//! the latent, so `edit`, `render` and `direction` see the same face.
use super::vgg::Vgg16Features;
use crate::latent::LatentFile;
use crate::model::Model;
use crate::pulse::Outcome;
use crate::stylegan::{leaky_relu, Layout, LATENT_DIM};
use anyhow::{bail, ensure};
use std::path::PathBuf;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

/// The fixed noise inputs of an embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedNoise {
    Zero,
    /// N(0,1) drawn from this seed.
    Random {
        seed: u64,
    },
}

#[derive(Debug, Clone)]
pub struct EmbedOptions {
    pub steps: usize,
    /// Adam learning rate (Image2StyleGAN: 0.01).
    pub lr: f64,
    /// A torchvision `vgg16` state dict: adds the perceptual term.
    pub perceptual: Option<PathBuf>,
    /// Weight of the perceptual term (the MSE term has weight 1).
    pub perceptual_weight: f64,
    pub noise: EmbedNoise,
    /// Samples of z whose mapped mean is the start (when the model has a mapping network).
    pub mean_samples: i64,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            steps: 1000,
            lr: 0.01,
            perceptual: None,
            perceptual_weight: 1.0,
            noise: EmbedNoise::Random { seed: 0 },
            mean_samples: 10_000,
        }
    }
}

/// One step's values, before that step's update.
#[derive(Debug, Clone, Copy)]
pub struct EmbedStep {
    pub step: usize,
    pub steps: usize,
    pub mse: f64,
    /// MSE plus the weighted perceptual term.
    pub total: f64,
}

/// Where the start came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeanSource {
    /// Mean of the mapping network's output over `mean_samples` draws.
    Mapping,
    /// `leaky_relu(fit.mean, 0.2)`: the Gaussian fit's mean through the final activation.
    GaussianFit,
}

#[derive(Debug)]
pub struct EmbedOutcome {
    /// W+ (the best iterate), the fixed noise, metadata (`source` = `embed`, settings, MSE).
    pub latent: LatentFile,
    /// Its rendering [3,R,R] in [0,1] on the CPU.
    pub image: Tensor,
    /// MSE and PSNR (dB, peak 1) of `image` against the photo, and of the start.
    pub mse: f64,
    pub psnr: f64,
    pub initial_mse: f64,
    pub initial_psnr: f64,
    pub best_step: usize,
    pub start: MeanSource,
    pub history: Vec<EmbedStep>,
}

/// PSNR in dB of a mean squared error on values in [0,1].
pub fn psnr(mse: f64) -> f64 {
    10.0 * (1.0 / mse.max(1e-12)).log10()
}

/// The mean w [512]: from the mapping network when there is one, else from the Gaussian fit.
pub fn mean_w(model: &Model, samples: i64, seed: i64) -> anyhow::Result<(Tensor, MeanSource)> {
    if let Some(mapping) = &model.mapping {
        ensure!(samples > 0, "the mean w needs at least one sample");
        return Ok((mapping.mean_w(samples, seed, model.device)?, MeanSource::Mapping));
    }
    match &model.fit {
        Some(fit) => {
            Ok((leaky_relu(&fit.mean.to_device(model.device), 0.2)?, MeanSource::GaussianFit))
        }
        None => bail!(
            "{}: embedding starts from the mean w, which needs the mapping network or a gaussian_fit file; the model folder has neither",
            model.dir.display()
        ),
    }
}

/// Noise maps [1,1,S,S] for every noise input of `layout`, on the CPU.
pub fn fixed_noise(layout: &Layout, noise: EmbedNoise) -> Vec<Tensor> {
    match noise {
        EmbedNoise::Zero => layout.zero_noise(1, Device::Cpu),
        EmbedNoise::Random { seed } => crate::rng::seeded(seed as i64, || layout.random_noise()),
    }
}

/// `gen - photo`, except where the photo is saturated: a pixel at 1 only says "at least 1" (and
/// at 0 "at most 0"), so a rendering beyond it is no error. This is the MSE of the clamped
/// rendering, which is what the user sees, with gradients kept for every pixel that is off.
fn saturated_error(gen: &Tensor, photo: &Tensor) -> Tensor {
    let err = gen - photo;
    let free = (photo.ge(1.0).logical_and(&err.gt(0.0)))
        .logical_or(&photo.le(0.0).logical_and(&err.lt(0.0)));
    err.masked_fill(&free, 0.0)
}

/// The optional VGG16 perceptual term's network, from its weights file.
fn load_vgg(opts: &EmbedOptions, device: Device) -> anyhow::Result<Option<Vgg16Features>> {
    let Some(path) = &opts.perceptual else { return Ok(None) };
    let vgg = Vgg16Features::load(path, device).map_err(|e| {
        crate::Invalid(format!(
            "{}: not usable as VGG16 weights: {e:#}",
            crate::files::escaped(path)
        ))
    })?;
    Ok(Some(vgg))
}

/// What the Adam loop found: the best W+ [1,L,512] (lowest total), its step, the history.
struct Optimized {
    best_w: Tensor,
    best_step: usize,
    history: Vec<EmbedStep>,
}

/// Adam on W+ from `start` [1,L,512]; `loss(w)` gives (total, mse). One extra pass after the last
/// update scores the final W+. `None` when `on_step` said stop.
fn optimize(
    start: &Tensor,
    opts: &EmbedOptions,
    loss: &dyn Fn(&Tensor) -> anyhow::Result<(Tensor, Tensor)>,
    on_step: &mut dyn FnMut(&EmbedStep) -> bool,
) -> anyhow::Result<Option<Optimized>> {
    let vs = nn::VarStore::new(start.device());
    let w = vs.root().var_copy("w_plus", start);
    let mut adam = nn::Adam::default().build(&vs, opts.lr)?;
    let mut history = vec![];
    let mut best: Option<(f64, usize, Tensor)> = None;
    for step in 0..=opts.steps {
        let (total, mse) = if step < opts.steps { loss(&w)? } else { tch::no_grad(|| loss(&w))? };
        let values = EmbedStep {
            step,
            steps: opts.steps,
            mse: mse.double_value(&[]),
            total: total.double_value(&[]),
        };
        ensure!(
            values.total.is_finite(),
            "the loss became {} at step {step}; try a lower learning rate",
            values.total
        );
        if best.as_ref().is_none_or(|(b, _, _)| values.total < *b) {
            best = Some((values.total, step, tch::no_grad(|| w.detach().copy())));
        }
        if step == opts.steps {
            break;
        }
        history.push(values);
        if !on_step(&values) {
            return Ok(None);
        }
        adam.zero_grad();
        total.backward();
        adam.step();
    }
    let (_, best_step, best_w) = best.expect("at least one step");
    Ok(Some(Optimized { best_w, best_step, history }))
}

/// The latent file's provenance metadata of an embedding.
fn embed_metadata(
    opts: &EmbedOptions,
    best_step: usize,
    mse: f64,
    start: MeanSource,
) -> Vec<(&'static str, String)> {
    vec![
        ("source", "embed".to_string()),
        ("embed_steps", opts.steps.to_string()),
        ("embed_lr", opts.lr.to_string()),
        ("embed_best_step", best_step.to_string()),
        ("embed_mse", format!("{mse:.6e}")),
        ("embed_psnr", format!("{:.2}", psnr(mse))),
        (
            "embed_start",
            match start {
                MeanSource::Mapping => "mapping",
                MeanSource::GaussianFit => "gaussian_fit",
            }
            .to_string(),
        ),
        (
            "embed_noise",
            match opts.noise {
                EmbedNoise::Zero => "zero".to_string(),
                EmbedNoise::Random { seed } => format!("random seed {seed}"),
            },
        ),
        (
            "embed_perceptual",
            match &opts.perceptual {
                Some(p) => format!("{} weight {}", p.display(), opts.perceptual_weight),
                None => "none".to_string(),
            },
        ),
    ]
}

/// Embeds `photo` [3,R,R] (values in [0,1], R the model's resolution). `on_step` sees each step
/// and returns whether to go on; when it says stop, the result is [`Outcome::Interrupted`].
pub fn embed(
    model: &Model,
    photo: &Tensor,
    opts: &EmbedOptions,
    on_step: &mut dyn FnMut(&EmbedStep) -> bool,
) -> anyhow::Result<Outcome<EmbedOutcome>> {
    let layout = model.layout();
    let (resolution, layers) = (layout.resolution, layout.w_rows as i64);
    let device = model.device;
    ensure!(
        photo.size() == [3, resolution, resolution],
        "the photo is {:?}, the model renders [3, {resolution}, {resolution}]",
        photo.size()
    );
    ensure!(opts.steps > 0, "embedding needs at least one step");
    let vgg = load_vgg(opts, device)?;
    let (mean, start) = mean_w(model, opts.mean_samples, 0)?;
    let noise: Vec<Tensor> = fixed_noise(layout, opts.noise);
    let noise_dev: Vec<Tensor> = noise.iter().map(|n| n.to_device(device)).collect();
    let target = photo.to_kind(Kind::Float).unsqueeze(0).to_device(device);
    let target_features = vgg.as_ref().map(|v| tch::no_grad(|| v.features(&target)));
    let start_w = mean.view([1, 1, LATENT_DIM]).expand([1, layers, LATENT_DIM], false);

    // Loss at the current W+: (total, mse) as tensors.
    let loss = |w: &Tensor| -> anyhow::Result<(Tensor, Tensor)> {
        let gen = (model.synthesis.forward(w, &noise_dev)? + 1.0) / 2.0;
        let mse = saturated_error(&gen, &target).square().mean(Kind::Float);
        let total = match (&vgg, &target_features) {
            (Some(vgg), Some(tf)) => {
                &mse + Vgg16Features::distance(&vgg.features(&gen), tf) * opts.perceptual_weight
            }
            _ => mse.shallow_clone(),
        };
        Ok((total, mse))
    };
    let Some(Optimized { best_w, best_step, history }) =
        optimize(&start_w.contiguous(), opts, &loss, on_step)?
    else {
        return Ok(Outcome::Interrupted);
    };

    let image = model.synthesize(&best_w, &noise)?;
    let mse_of = |img: &Tensor| {
        f64::try_from((img - photo.to_kind(Kind::Float)).square().mean(Kind::Double))
            .unwrap_or(f64::NAN)
    };
    let mse = mse_of(&image);
    let initial_mse = mse_of(&model.synthesize(&start_w, &noise)?);

    let mut latent =
        LatentFile::new(best_w.squeeze_dim(0).to_device(Device::Cpu), None, noise, &model.sha256);
    latent.set_architecture(model.architecture());
    for (k, v) in embed_metadata(opts, best_step, mse, start) {
        latent.metadata.insert(k.to_string(), v);
    }
    Ok(Outcome::Completed(EmbedOutcome {
        latent,
        image,
        mse,
        psnr: psnr(mse),
        initial_mse,
        initial_psnr: psnr(initial_mse),
        best_step,
        start,
        history,
    }))
}
