//! StyleGAN2's mapping network z -> w (stylegan2-ada-pytorch `MappingNetwork`): z normalised by
//! its root mean square, then dense layers with equalized learning rate at multiplier 0.01, each
//! followed by leaky ReLU 0.2 times sqrt(2). `w_avg`, the running mean of w tracked in training,
//! is stored beside them and is what truncation pulls towards.
use crate::stylegan::layers::ScaledWeight;
use crate::stylegan::network::MappingNetwork;
use crate::stylegan::LATENT_DIM;
use anyhow::bail;
use tch::{nn, Tensor};

/// Learning-rate multiplier of the mapping network (`lr_multiplier`).
const LR_MUL: f64 = 0.01;

/// Shape of a mapping network: each dense layer's (in, out) features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingConfig {
    pub layers: Vec<(i64, i64)>,
}

impl MappingConfig {
    /// `depth` layers of 512 features (FFHQ config-f has 8).
    pub fn with_depth(depth: usize) -> Self {
        Self { layers: vec![(LATENT_DIM, LATENT_DIM); depth] }
    }

    /// Reads the layers from `mapping.fc{i}.weight` shapes; they must be contiguous from fc0,
    /// take z and give w of 512 features.
    pub fn from_shapes<'a>(
        shapes: impl Iterator<Item = (&'a str, Vec<i64>)>,
    ) -> anyhow::Result<Self> {
        let mut found: Vec<(usize, Vec<i64>)> = shapes
            .filter_map(|(k, s)| {
                let i = k.strip_prefix("mapping.fc")?.strip_suffix(".weight")?.parse().ok()?;
                Some((i, s))
            })
            .collect();
        found.sort();
        if found.is_empty() {
            bail!("no mapping layers found (expected keys like 'mapping.fc0.weight')");
        }
        let mut layers = vec![];
        for (n, (i, s)) in found.into_iter().enumerate() {
            if i != n {
                bail!("mapping layers are not contiguous: 'mapping.fc{n}.weight' missing");
            }
            if s.len() != 2 {
                bail!("'mapping.fc{i}.weight' has shape {s:?}, expected [out, in]");
            }
            layers.push((s[1], s[0]));
        }
        if layers[0].0 != LATENT_DIM || layers.last().map(|l| l.1) != Some(LATENT_DIM) {
            bail!("the mapping network must take z and give w of {LATENT_DIM} features");
        }
        Ok(Self { layers })
    }
}

#[derive(Debug)]
struct Dense {
    weight: ScaledWeight,
    bias: ScaledWeight,
}

/// The mapping network; keys `mapping.fc{i}.{weight,bias}` and `mapping.w_avg`.
#[derive(Debug)]
pub struct Mapping {
    dense: Vec<Dense>,
    w_avg: Tensor,
}

impl Mapping {
    /// `vs` is the root: the names start with `mapping.`.
    pub fn new(vs: nn::Path, config: &MappingConfig) -> Self {
        let vs = &vs / "mapping";
        let dense = config
            .layers
            .iter()
            .enumerate()
            .map(|(i, &(fin, fout))| {
                let p = &vs / format!("fc{i}");
                Dense {
                    weight: ScaledWeight::new(
                        p.clone(),
                        "weight",
                        &[fout, fin],
                        LR_MUL / (fin as f64).sqrt(),
                    ),
                    bias: ScaledWeight::new(p, "bias", &[fout], LR_MUL),
                }
            })
            .collect();
        Self { dense, w_avg: vs.zeros_no_train("w_avg", &[LATENT_DIM]) }
    }

    /// A network of shape `config` with random weights drawn as NVIDIA initialises them
    /// (weights N(0,1) / lr multiplier), plus small random biases and `w_avg`; for tests.
    pub fn random(config: &MappingConfig, device: tch::Device, seed: i64) -> (Self, nn::VarStore) {
        let mut vs = nn::VarStore::new(device);
        let mut mapping = Self::new(vs.root(), config);
        crate::stylegan::layers::fill_random(&vs, seed, |name, t| {
            if name.ends_with("weight") {
                t.randn_like() / LR_MUL
            } else {
                t.randn_like() * 0.1
            }
        });
        vs.freeze();
        mapping.prepare();
        (mapping, vs)
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
            bail!("z has shape {size:?}, expected [B, {LATENT_DIM}]");
        }
        let mut x = z * (z.square().mean_dim(-1, true, z.kind()) + 1e-8).rsqrt();
        for d in &self.dense {
            let y = x.f_linear(&d.weight.get(), Some(&d.bias.get()))?;
            x = crate::stylegan::leaky_relu(&y, 0.2)? * std::f64::consts::SQRT_2;
        }
        Ok(x)
    }

    pub fn w_avg(&self) -> &Tensor {
        &self.w_avg
    }
}

impl MappingNetwork for Mapping {
    fn forward(&self, z: &Tensor) -> anyhow::Result<Tensor> {
        Mapping::forward(self, z)
    }

    fn stored_w_avg(&self) -> Option<Tensor> {
        Some(self.w_avg.shallow_clone())
    }
}
