//! Synthesis network W+ and noise -> image (docs/pulse-spec.md section 3).
//!
//! Blocks `4x4 .. RxR`, two style layers (epilogues) per block; block `SxS` upsamples with a
//! nearest-neighbour 2x upsample and a 3x3 conv below 128, and with a fused transposed conv from
//! 128 on, then blurs. The architecture (resolution, channels per block) is read off the weights.
use super::layers::{bias, leaky_relu, ScaledWeight};
use super::LATENT_DIM;
use anyhow::bail;
use tch::{nn, Kind, Tensor};

/// Shape of a synthesis network, read off a state dict's keys and shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthesisConfig {
    /// Output side, a power of two (1024 for FFHQ).
    pub resolution: i64,
    /// Feature maps of each block, from 4x4 up to `resolution`.
    pub channels: Vec<i64>,
}

impl SynthesisConfig {
    /// The FFHQ 1024x1024 network: `min(8192 / 2^(r-1), 512)` channels at 2^r.
    pub fn ffhq() -> Self {
        Self::with_fmap_max(1024, 512)
    }

    /// The StyleGAN channel rule at any resolution, capped at `fmap_max`.
    pub fn with_fmap_max(resolution: i64, fmap_max: i64) -> Self {
        let k = resolution.trailing_zeros() as i64;
        let channels = (2..=k).map(|r| (8192 >> (r - 1)).min(fmap_max)).collect();
        Self { resolution, channels }
    }

    /// Reads the architecture from checkpoint keys: blocks `NxN`, channels from each block's
    /// `conv1` (or the 4x4 block's `conv`) weight shape.
    pub fn from_shapes<'a>(
        shapes: impl Iterator<Item = (&'a str, Vec<i64>)>,
    ) -> anyhow::Result<Self> {
        let mut blocks: Vec<(i64, i64)> = vec![];
        for (key, shape) in shapes {
            let Some(rest) = key.strip_prefix("blocks.") else { continue };
            let Some((name, param)) = rest.split_once('.') else { continue };
            if param != "conv1.weight" && param != "conv.weight" {
                continue;
            }
            let side = name.split_once('x').and_then(|(a, _)| a.parse::<i64>().ok());
            match side {
                Some(s) if s >= 4 && s.count_ones() == 1 => blocks.push((s, shape[0])),
                _ => bail!("unexpected block name '{name}' in key '{key}'"),
            }
        }
        blocks.sort();
        if blocks.is_empty() {
            bail!("no synthesis blocks found (expected keys like 'blocks.4x4.conv.weight')");
        }
        for (i, (s, _)) in blocks.iter().enumerate() {
            if *s != 4 << i {
                bail!(
                    "synthesis blocks are not contiguous: block {s}x{s} missing its predecessors"
                );
            }
        }
        let resolution = blocks.last().map(|b| b.0).unwrap_or(4);
        Ok(Self { resolution, channels: blocks.into_iter().map(|b| b.1).collect() })
    }

    /// Number of style layers (= noise inputs): two per block, 18 at 1024.
    pub fn num_layers(&self) -> usize {
        2 * self.channels.len()
    }

    /// Side of noise input `layer`: `2^(layer/2 + 2)`.
    pub fn noise_side(layer: usize) -> i64 {
        1 << (layer / 2 + 2)
    }
}

/// Per-layer epilogue: noise, leaky ReLU, instance norm, style modulation (spec section 3).
#[derive(Debug)]
struct Epilogue {
    noise_weight: Tensor,
    style_weight: ScaledWeight,
    style_bias: Tensor,
}

impl Epilogue {
    fn new(vs: nn::Path, c: i64) -> Self {
        let style = &vs / "style_mod" / "lin";
        Self {
            noise_weight: (&vs / "noise").zeros_no_train("weight", &[c]),
            // Style linear layer: gain 1, fan_in 512.
            style_weight: ScaledWeight::new(
                style.clone(),
                "weight",
                &[2 * c, LATENT_DIM],
                1.0 / (LATENT_DIM as f64).sqrt(),
            ),
            style_bias: bias(&style, "bias", 2 * c),
        }
    }

    fn prepare(&mut self) {
        self.style_weight.prepare();
    }

    /// x [B,C,H,W], w [B,512], noise [B,1,H,W].
    fn forward(&self, x: &Tensor, w: &Tensor, noise: &Tensor) -> Tensor {
        let c = self.noise_weight.size()[0];
        let x = x + self.noise_weight.view([1, c, 1, 1]) * noise;
        let x = leaky_relu(&x, 0.2);
        let x = x.instance_norm(None::<Tensor>, None, None, None, true, 0.0, 1e-5, false);
        let style =
            w.linear(&self.style_weight.get(), Some(&self.style_bias)).view([-1, 2, c, 1, 1]);
        x * (style.select(1, 0) + 1.0) + style.select(1, 1)
    }
}

/// 3x3 conv with equalized learning rate (gain sqrt 2) and a bias.
#[derive(Debug)]
struct Conv3x3 {
    weight: ScaledWeight,
    bias: Tensor,
}

impl Conv3x3 {
    fn new(vs: nn::Path, cin: i64, cout: i64) -> Self {
        let scale = (2.0 / (cin * 9) as f64).sqrt();
        Self {
            weight: ScaledWeight::new(vs.clone(), "weight", &[cout, cin, 3, 3], scale),
            bias: bias(&vs, "bias", cout),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(&self.weight.get(), Some(&self.bias), [1, 1], [1, 1], [1, 1], 1)
    }
}

/// Upsampling conv of blocks 8x8 and up (`conv0_up`): upsample + 3x3 conv, then blur, then bias.
#[derive(Debug)]
struct UpConv {
    conv: Conv3x3,
    /// From 128x128 on, StyleGAN fuses the upsample into a stride-2 transposed conv.
    fused: bool,
    /// The fused 4x4 transposed-conv kernel, [Cin,Cout,4,4]; built by `prepare`.
    fused_kernel: Option<Tensor>,
}

impl UpConv {
    fn prepare(&mut self) {
        self.conv.weight.prepare();
        if self.fused {
            self.fused_kernel =
                Some(tch::no_grad(|| fuse_upsample_kernel(&self.conv.weight.get())));
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = if self.fused {
            let kernel = match &self.fused_kernel {
                Some(k) => k.shallow_clone(),
                None => fuse_upsample_kernel(&self.conv.weight.get()),
            };
            x.conv_transpose2d(&kernel, None::<Tensor>, [2, 2], [1, 1], [0, 0], 1, [1, 1])
        } else {
            let (h, w) = (x.size()[2], x.size()[3]);
            x.upsample_nearest2d([2 * h, 2 * w], None, None).conv2d(
                &self.conv.weight.get(),
                None::<Tensor>,
                [1, 1],
                [1, 1],
                [1, 1],
                1,
            )
        };
        let c = x.size()[1];
        blur(&x) + self.conv.bias.view([1, c, 1, 1])
    }
}

/// Spec section 3, "fused": transpose the scaled weight to [Cin,Cout,3,3], zero-pad to 5x5 and
/// sum the four 4x4 windows at offsets (0,0),(0,1),(1,0),(1,1).
fn fuse_upsample_kernel(w: &Tensor) -> Tensor {
    let w = w.transpose(0, 1).constant_pad_nd([1, 1, 1, 1]);
    let win = |dy: i64, dx: i64| w.narrow(2, dy, 4).narrow(3, dx, 4);
    win(0, 0) + win(0, 1) + win(1, 0) + win(1, 1)
}

/// Depthwise 3x3 blur with `[1,2,1]^T [1,2,1] / 16`, zero padding 1.
fn blur(x: &Tensor) -> Tensor {
    let c = x.size()[1];
    let k = Tensor::from_slice(&[1f32, 2., 1.]).to_kind(x.kind()).to_device(x.device());
    let k = (k.view([3, 1]) * k.view([1, 3]) / 16.0).view([1, 1, 3, 3]).expand([c, 1, 3, 3], true);
    x.conv2d(&k, None::<Tensor>, [1, 1], [1, 1], [1, 1], c)
}

#[derive(Debug)]
enum Block {
    /// 4x4: learned constant plus bias, then a plain 3x3 conv.
    Initial { constant: Tensor, bias: Tensor, conv: Conv3x3 },
    /// 8x8 and up: upsampling conv, then a plain 3x3 conv.
    Up { up: UpConv, conv1: Conv3x3 },
}

/// The synthesis network; keys `blocks.<S>x<S>.*` and `torgb.*`.
#[derive(Debug)]
pub struct Synthesis {
    config: SynthesisConfig,
    blocks: Vec<(Block, Epilogue, Epilogue)>,
    torgb: ScaledWeight,
    torgb_bias: Tensor,
}

impl Synthesis {
    pub fn new(vs: nn::Path, config: &SynthesisConfig) -> Self {
        let mut blocks = vec![];
        let mut cin = config.channels[0];
        for (i, &c) in config.channels.iter().enumerate() {
            let side = 4i64 << i;
            let p = &vs / "blocks" / format!("{side}x{side}");
            let block = if i == 0 {
                Block::Initial {
                    constant: p.zeros_no_train("const", &[1, c, 4, 4]),
                    bias: bias(&p, "bias", c),
                    conv: Conv3x3::new(&p / "conv", c, c),
                }
            } else {
                Block::Up {
                    up: UpConv {
                        conv: Conv3x3::new(&p / "conv0_up", cin, c),
                        fused: side >= 128,
                        fused_kernel: None,
                    },
                    conv1: Conv3x3::new(&p / "conv1", c, c),
                }
            };
            blocks.push((block, Epilogue::new(&p / "epi1", c), Epilogue::new(&p / "epi2", c)));
            cin = c;
        }
        let rgb = &vs / "torgb";
        Self {
            config: config.clone(),
            blocks,
            torgb: ScaledWeight::new(
                rgb.clone(),
                "weight",
                &[3, cin, 1, 1],
                1.0 / (cin as f64).sqrt(),
            ),
            torgb_bias: bias(&rgb, "bias", 3),
        }
    }

    pub fn config(&self) -> &SynthesisConfig {
        &self.config
    }

    /// Caches every weight-only product; call once after the weights are loaded.
    pub fn prepare(&mut self) {
        for (block, e1, e2) in &mut self.blocks {
            match block {
                Block::Initial { conv, .. } => conv.weight.prepare(),
                Block::Up { up, conv1 } => {
                    up.prepare();
                    conv1.weight.prepare();
                }
            }
            e1.prepare();
            e2.prepare();
        }
        self.torgb.prepare();
    }

    /// w_plus [B,L,512] and `noise[l]` [B,1,S_l,S_l] -> raw image [B,3,R,R] (nominally in [-1,1]).
    pub fn forward(&self, w_plus: &Tensor, noise: &[Tensor]) -> anyhow::Result<Tensor> {
        let layers = self.config.num_layers();
        let size = w_plus.size();
        if size.len() != 3 || size[1] != layers as i64 || size[2] != LATENT_DIM {
            bail!("w_plus has shape {size:?}, expected [B, {layers}, {LATENT_DIM}]");
        }
        if noise.len() != layers {
            bail!("{} noise maps given, the network has {layers} layers", noise.len());
        }
        let batch = size[0];
        let mut x = Tensor::new();
        for (i, (block, e1, e2)) in self.blocks.iter().enumerate() {
            let (l0, l1) = (2 * i, 2 * i + 1);
            x = match block {
                Block::Initial { constant, bias, .. } => {
                    let c = bias.size()[0];
                    constant.expand([batch, c, 4, 4], true) + bias.view([1, c, 1, 1])
                }
                Block::Up { up, .. } => up.forward(&x),
            };
            x = e1.forward(&x, &w_plus.select(1, l0 as i64), &noise[l0]);
            x = match block {
                Block::Initial { conv, .. } => conv.forward(&x),
                Block::Up { conv1, .. } => conv1.forward(&x),
            };
            x = e2.forward(&x, &w_plus.select(1, l1 as i64), &noise[l1]);
        }
        Ok(x.conv2d(&self.torgb.get(), Some(&self.torgb_bias), [1, 1], [0, 0], [1, 1], 1))
    }

    /// Zero noise for every layer, for plain renders that want none.
    pub fn zero_noise(&self, batch: i64, device: tch::Device) -> Vec<Tensor> {
        (0..self.config.num_layers())
            .map(|l| {
                let s = SynthesisConfig::noise_side(l);
                Tensor::zeros([batch, 1, s, s], (Kind::Float, device))
            })
            .collect()
    }
}
