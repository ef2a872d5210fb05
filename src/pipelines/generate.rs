//! `pulse generate` and `pulse render`: plain StyleGAN sampling (z -> w -> truncation ->
//! synthesis, docs/design.md "The networks") and exact rendering of latent files.
use crate::latent::LatentFile;
use crate::model::Model;
use crate::stylegan::LATENT_DIM;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Samples used to estimate `w_avg`, the mean mapping output, where the mapping file stores
/// none (StyleGAN v1's).
pub const W_AVG_SAMPLES: i64 = 10_000;

/// Random faces from one seed: the mean w is computed once, then each face is drawn on demand,
/// so a caller can write every face as soon as it is made (and skip those already written).
pub struct Generator<'a> {
    model: &'a Model,
    seed: u64,
    psi: f64,
    w_avg: Tensor,
}

impl<'a> Generator<'a> {
    /// Needs the model's mapping network; `psi` is the truncation (1 = none).
    pub fn new(model: &'a Model, seed: u64, psi: f64) -> anyhow::Result<Self> {
        let mapping = model.mapping()?;
        let w_avg = match mapping.stored_w_avg() {
            Some(w) => w.to_device(model.device),
            None => mapping.mean_w(W_AVG_SAMPLES, seed as i64, model.device)?,
        };
        Ok(Self { model, seed, psi, w_avg })
    }

    /// The seed face `k` is drawn from (recorded in its latent file).
    pub fn face_seed(&self, k: usize) -> u64 {
        super::item_seed(self.seed, "generate", k, 0)
    }

    /// Face `k`: z and noise drawn from its own seed, derived from (`seed`, k), so face k is
    /// the same whatever the count. Returns the [3,R,R] image in [0,1] and the latent file that
    /// reproduces it.
    pub fn face(&self, k: usize) -> anyhow::Result<(Tensor, LatentFile)> {
        let model = self.model;
        let layout = model.layout();
        let device = model.device;
        let item_seed = self.face_seed(k);
        let (z, noise) = crate::rng::seeded(item_seed as i64, || {
            (Tensor::randn([1, LATENT_DIM], (Kind::Float, Device::Cpu)), layout.random_noise())
        });
        let w = tch::no_grad(|| model.mapping()?.forward(&z.to_device(device)))?;
        let w_plus = truncate(
            &w,
            &self.w_avg,
            self.psi,
            layout.w_rows as i64,
            layout.truncation_cutoff as i64,
        );
        if !crate::latent::all_finite(&w_plus) {
            crate::invalid!("truncation {} takes w_plus beyond float32's range", self.psi);
        }
        let image = model.synthesize(&w_plus, &noise)?;
        let mut latent = LatentFile::new(
            w_plus.squeeze_dim(0).to_device(Device::Cpu),
            None,
            noise,
            &model.sha256,
        );
        latent.set_architecture(layout.architecture);
        latent.metadata.insert("seed".into(), item_seed.to_string());
        latent.metadata.insert("truncation".into(), self.psi.to_string());
        Ok((image, latent))
    }
}

/// W+ [B,L,512] from w [B,512]: `w_avg + psi * (w - w_avg)` on the first `cutoff` rows, `w`
/// itself on the others (StyleGAN's truncation trick; the cutoff is the model's
/// [`crate::stylegan::Layout::truncation_cutoff`]).
pub fn truncate(w: &Tensor, w_avg: &Tensor, psi: f64, layers: i64, cutoff: i64) -> Tensor {
    let truncated = w_avg + (w - w_avg) * psi;
    let cut = cutoff.min(layers);
    Tensor::cat(
        &[
            truncated.unsqueeze(1).expand([-1, cut, LATENT_DIM], false),
            w.unsqueeze(1).expand([-1, layers - cut, LATENT_DIM], false),
        ],
        1,
    )
}

/// Renders a latent file with its own noise, exactly as the search saw it.
pub fn render(model: &Model, path: &Path, latent: &LatentFile) -> anyhow::Result<Tensor> {
    latent.check_layout(path, model.layout())?;
    let (w_plus, noise) = latent.batch_of_one(model.device);
    match &latent.block_input {
        None => model.synthesize(&w_plus, &noise),
        // ILO's result: the synthesis from the block its best iterate's round started at.
        Some(input) => tch::no_grad(|| {
            let img =
                model.synthesis.forward_from(&w_plus, &noise, &input.to_device(model.device))?;
            Ok(((img + 1.0) / 2.0).clamp(0.0, 1.0).to_device(tch::Device::Cpu).squeeze_dim(0))
        }),
    }
}
