//! Mapping network z -> w (docs/design.md, "The networks"): pixel norm, then eight dense layers
//! with equalized learning rate at multiplier 0.01 and leaky ReLU 0.2.
use crate::stylegan::layers::{leaky_relu, ScaledWeight};
use crate::stylegan::LATENT_DIM;
use tch::{nn, Device, Kind, Tensor};

const LAYERS: usize = 8;
/// Learning-rate multiplier of the mapping network (StyleGAN `mapping_lrmul`).
const LR_MUL: f64 = 0.01;

impl crate::stylegan::MappingNetwork for Mapping {
    fn forward(&self, z: &Tensor) -> anyhow::Result<Tensor> {
        Mapping::forward(self, z)
    }
}

#[derive(Debug)]
struct Dense {
    weight: ScaledWeight,
    bias: ScaledWeight,
}

/// The eight-layer MLP; keys `dense0..dense7.{weight,bias}`.
#[derive(Debug)]
pub struct Mapping {
    dense: Vec<Dense>,
}

impl Mapping {
    pub fn new(vs: nn::Path) -> Self {
        let wm = 2f64.sqrt() / (LATENT_DIM as f64).sqrt() * LR_MUL;
        let dense = (0..LAYERS)
            .map(|i| {
                let p = &vs / format!("dense{i}");
                Dense {
                    weight: ScaledWeight::new(p.clone(), "weight", &[LATENT_DIM, LATENT_DIM], wm),
                    bias: ScaledWeight::new(p, "bias", &[LATENT_DIM], LR_MUL),
                }
            })
            .collect();
        Self { dense }
    }

    /// Caches the scaled weights; call once after loading.
    pub fn prepare(&mut self) {
        for d in &mut self.dense {
            d.weight.prepare(tch::Kind::Float);
            d.bias.prepare(tch::Kind::Float);
        }
    }

    /// z [B,512] -> w [B,512].
    pub fn forward(&self, z: &Tensor) -> anyhow::Result<Tensor> {
        let size = z.size();
        if size.len() != 2 || size[1] != LATENT_DIM {
            anyhow::bail!("z has shape {size:?}, expected [B, {LATENT_DIM}]");
        }
        let norm = (z.square().mean_dim(-1, true, z.kind()) + 1e-8).rsqrt();
        let mut x = z * norm;
        for d in &self.dense {
            x = leaky_relu(&x.f_linear(&d.weight.get(), Some(&d.bias.get()))?, 0.2)?;
        }
        Ok(x)
    }

    /// StyleGAN's `w_avg` [512]: the mean mapping output over `samples` draws of z seeded with
    /// `seed` (drawn on the CPU, so the same on every device); the centre truncation pulls
    /// towards and where a photo embedding starts.
    pub fn mean_w(&self, samples: i64, seed: i64, device: Device) -> anyhow::Result<Tensor> {
        tch::no_grad(|| {
            let z = crate::rng::seeded(seed, || {
                Tensor::randn([samples, LATENT_DIM], (Kind::Float, Device::Cpu))
            });
            Ok(self.forward(&z.to_device(device))?.mean_dim(0, false, Kind::Float))
        })
    }
}
