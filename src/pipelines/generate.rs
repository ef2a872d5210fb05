//! `pulse generate` and `pulse render`: plain StyleGAN sampling (z -> w -> truncation ->
//! synthesis, docs/pulse-spec.md sections 2-3) and exact rendering of latent files.
use crate::latent::LatentFile;
use crate::model::Model;
use crate::stylegan::{Mapping, SynthesisConfig, LATENT_DIM};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Layers that truncation applies to (StyleGAN's `truncation_cutoff`).
const TRUNCATION_LAYERS: i64 = 8;
/// Samples used to estimate `w_avg`, the mean mapping output.
const W_AVG_SAMPLES: i64 = 10_000;

/// StyleGAN's `w_avg` [512]: the mean mapping output over `samples` draws of z seeded with
/// `seed`, the centre truncation pulls towards and where a photo embedding starts.
pub fn mean_w(mapping: &Mapping, samples: i64, seed: i64, device: Device) -> Tensor {
    tch::no_grad(|| {
        tch::manual_seed(seed);
        let z = Tensor::randn([samples, LATENT_DIM], (Kind::Float, Device::Cpu)).to_device(device);
        mapping.forward(&z).mean_dim(0, false, Kind::Float)
    })
}

/// Renders `count` random faces; each face k draws z and noise from its own seed, derived from
/// (`seed`, k). Returns the [3,R,R] image in [0,1] and the latent file that reproduces it.
pub fn generate(
    model: &Model,
    seed: u64,
    psi: f64,
    count: usize,
) -> anyhow::Result<Vec<(Tensor, LatentFile)>> {
    let mapping = model.mapping()?;
    let config = model.config();
    let layers = config.num_layers() as i64;
    let device = model.device;
    let w_avg = mean_w(mapping, W_AVG_SAMPLES, seed as i64, device);
    let mut faces = vec![];
    for k in 0..count {
        let item_seed = super::item_seed(seed, "generate", k, 0);
        tch::manual_seed(item_seed as i64);
        let z = Tensor::randn([1, LATENT_DIM], (Kind::Float, Device::Cpu));
        let noise: Vec<Tensor> = (0..layers as usize)
            .map(|l| {
                let s = SynthesisConfig::noise_side(l);
                Tensor::randn([1, 1, s, s], (Kind::Float, Device::Cpu))
            })
            .collect();
        let w_plus = tch::no_grad(|| {
            let w = mapping.forward(&z.to_device(device));
            let truncated = &w_avg + (&w - &w_avg) * psi;
            let cut = TRUNCATION_LAYERS.min(layers);
            Tensor::cat(
                &[
                    truncated.unsqueeze(1).expand([1, cut, LATENT_DIM], false),
                    w.unsqueeze(1).expand([1, layers - cut, LATENT_DIM], false),
                ],
                1,
            )
        });
        let image = synthesize(model, &w_plus, &noise)?;
        let mut latent = LatentFile::new(
            w_plus.squeeze_dim(0).to_device(Device::Cpu),
            None,
            noise,
            &model.sha256,
        );
        latent.metadata.insert("seed".into(), item_seed.to_string());
        latent.metadata.insert("truncation".into(), psi.to_string());
        faces.push((image, latent));
    }
    Ok(faces)
}

/// Renders a latent file with its own noise, exactly as the search saw it.
pub fn render(model: &Model, path: &Path, latent: &LatentFile) -> anyhow::Result<Tensor> {
    latent.check_layers(path, model.config().num_layers())?;
    let (w_plus, noise) = latent.batch_of_one(model.device);
    synthesize(model, &w_plus, &noise)
}

/// Synthesis of a batch of one: W+ [1,L,512] and noise -> [3,R,R] image in [0,1] on the CPU.
pub fn synthesize(model: &Model, w_plus: &Tensor, noise: &[Tensor]) -> anyhow::Result<Tensor> {
    let noise: Vec<Tensor> = noise.iter().map(|n| n.to_device(model.device)).collect();
    let raw = tch::no_grad(|| model.synthesis.forward(&w_plus.to_device(model.device), &noise))?;
    Ok(((raw + 1.0) / 2.0).clamp(0.0, 1.0).squeeze_dim(0).to_device(Device::Cpu))
}
