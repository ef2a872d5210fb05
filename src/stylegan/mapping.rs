//! Mapping network z -> w (docs/pulse-spec.md section 2): pixel norm, then eight dense layers
//! with equalized learning rate at multiplier 0.01 and leaky ReLU 0.2.
use super::layers::{leaky_relu, ScaledWeight};
use super::LATENT_DIM;
use tch::{nn, Tensor};

const LAYERS: usize = 8;
/// Learning-rate multiplier of the mapping network (StyleGAN `mapping_lrmul`).
const LR_MUL: f64 = 0.01;

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
    pub fn forward(&self, z: &Tensor) -> Tensor {
        let norm = (z.square().mean_dim(-1, true, z.kind()) + 1e-8).rsqrt();
        let mut x = z * norm;
        for d in &self.dense {
            x = leaky_relu(&x.linear(&d.weight.get(), Some(&d.bias.get())), 0.2);
        }
        x
    }
}
