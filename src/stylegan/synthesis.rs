//! Synthesis network W+ and noise -> image (docs/pulse-spec.md section 3).
//!
//! Blocks `4x4 .. RxR`, two style layers (epilogues) per block; block `SxS` upsamples with a
//! nearest-neighbour 2x upsample and a 3x3 conv below 128, and with a fused transposed conv from
//! 128 on, then blurs. The architecture (resolution, channels per block) is read off the weights.
use super::layers::{bias, leaky_relu, ScaledWeight};
use super::LATENT_DIM;
use crate::device::{tuning_off, Precision};
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

    fn prepare(&mut self, kind: Kind) {
        self.style_weight.prepare(kind);
    }

    /// x [B,C,H,W], w [B,512], noise [B,1,H,W].
    fn forward(&self, x: &Tensor, w: &Tensor, noise: &Tensor) -> Tensor {
        let size = x.size();
        let (b, c) = (size[0], size[1]);
        let style = w.linear(&self.style_weight.get(), Some(&self.style_bias));
        if tuning_off("epilogue") {
            let x = x + self.noise_weight.view([1, c, 1, 1]) * noise;
            let x = leaky_relu(&x, 0.2);
            let x = x.instance_norm(None::<Tensor>, None, None, None, true, 0.0, 1e-5, false);
            let style = style.view([-1, 2, c, 1, 1]);
            return x * (style.select(1, 0) + 1.0) + style.select(1, 1);
        }
        // One pass for the noise: x + noise_weight[C] * noise.
        let (strength, noise) = match x.kind() {
            Kind::Float => (self.noise_weight.view([1, c, 1, 1]), noise.shallow_clone()),
            k => (self.noise_weight.view([1, c, 1, 1]).to_kind(k), noise.to_kind(k)),
        };
        let x = x.addcmul(&strength, &noise);
        let x = leaky_relu(&x, 0.2);
        // Instance norm and style modulation in one kernel: instance norm is batch norm over the
        // [1, B*C, H, W] view, and its affine weight and bias per (sample, channel) are the
        // style's scale `s[:, :C] + 1` and shift `s[:, C:]`.
        let style = style.to_kind(Kind::Float).view([b, 2, c]);
        let scale = (style.select(1, 0) + 1.0).reshape([b * c]);
        let shift = style.select(1, 1).reshape([b * c]);
        x.reshape([1, b * c, size[2], size[3]])
            .batch_norm(Some(&scale), Some(&shift), None, None, true, 0.0, 1e-5, true)
            .view([b, c, size[2], size[3]])
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
    /// The 4x4 transposed-conv kernel, [Cin,Cout,4,4]; built by `prepare`.
    fused_kernel: Option<Tensor>,
    /// The blur's depthwise kernel [Cout,1,3,3] and the bias, in the compute dtype.
    blur_kernel: Option<Tensor>,
    bias: Option<Tensor>,
}

impl UpConv {
    fn prepare(&mut self, kind: Kind) {
        self.conv.weight.prepare(kind);
        let w = self.conv.weight.get();
        self.fused_kernel = Some(tch::no_grad(|| {
            if self.fused {
                fuse_upsample_kernel(&w)
            } else {
                // Nearest 2x upsample then a 3x3 conv equals a stride-2 transposed conv whose
                // 4x4 kernel is the fused kernel of the spatially flipped weight (an exact
                // rewrite: 4/9 of the multiply-adds and no upsampled tensor).
                fuse_upsample_kernel(&w.flip([2, 3]))
            }
        }));
        let c = w.size()[0];
        self.blur_kernel = Some(blur_kernel(c, kind, w.device()));
        self.bias = Some(self.conv.bias.to_kind(kind));
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let x = if self.fused || !tuning_off("convt") {
            let kernel = match &self.fused_kernel {
                Some(k) => k.shallow_clone(),
                None if self.fused => fuse_upsample_kernel(&self.conv.weight.get()),
                None => fuse_upsample_kernel(&self.conv.weight.get().flip([2, 3])),
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
        let kernel = match &self.blur_kernel {
            Some(k) if k.kind() == x.kind() => k.shallow_clone(),
            _ => blur_kernel(c, x.kind(), x.device()),
        };
        if tuning_off("blurbias") {
            return x.conv2d(&kernel, None::<Tensor>, [1, 1], [1, 1], [1, 1], c)
                + self.conv.bias.view([1, c, 1, 1]);
        }
        // The bias rides along in the blur's conv (one pass fewer).
        let bias = match &self.bias {
            Some(b) if b.kind() == x.kind() => b.shallow_clone(),
            _ => self.conv.bias.to_kind(x.kind()),
        };
        x.conv2d(&kernel, Some(&bias), [1, 1], [1, 1], [1, 1], c)
    }
}

/// Spec section 3, "fused": transpose the scaled weight to [Cin,Cout,3,3], zero-pad to 5x5 and
/// sum the four 4x4 windows at offsets (0,0),(0,1),(1,0),(1,1).
fn fuse_upsample_kernel(w: &Tensor) -> Tensor {
    let w = w.transpose(0, 1).constant_pad_nd([1, 1, 1, 1]);
    let win = |dy: i64, dx: i64| w.narrow(2, dy, 4).narrow(3, dx, 4);
    win(0, 0) + win(0, 1) + win(1, 0) + win(1, 1)
}

/// The depthwise blur kernel `[1,2,1]^T [1,2,1] / 16` for `c` channels, [c,1,3,3].
fn blur_kernel(c: i64, kind: Kind, device: tch::Device) -> Tensor {
    let k = Tensor::from_slice(&[1f32, 2., 1.]);
    (k.view([3, 1]) * k.view([1, 3]) / 16.0)
        .view([1, 1, 3, 3])
        .repeat([c, 1, 1, 1])
        .to_kind(kind)
        .to_device(device)
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
    precision: Precision,
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
                        blur_kernel: None,
                        bias: None,
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
            precision: Precision::Fp32,
        }
    }

    pub fn config(&self) -> &SynthesisConfig {
        &self.config
    }

    /// Caches every weight-only product; call once after the weights are loaded.
    pub fn prepare(&mut self) {
        self.prepare_kind(Kind::Float);
    }

    /// Caches every weight-only product in `kind` (float32, or the half type autocast runs in).
    fn prepare_kind(&mut self, kind: Kind) {
        for (block, e1, e2) in &mut self.blocks {
            match block {
                Block::Initial { conv, .. } => conv.weight.prepare(kind),
                Block::Up { up, conv1 } => {
                    up.prepare(kind);
                    conv1.weight.prepare(kind);
                }
            }
            e1.prepare(Kind::Float);
            e2.prepare(Kind::Float);
        }
        self.torgb.prepare(kind);
    }

    /// The arithmetic the forward pass runs in; see [`Precision`]. Re-prepares the cached
    /// weights in the autocast dtype, so autocast does not cast them on every step.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
        self.prepare_kind(precision.autocast_kind().unwrap_or(Kind::Float));
    }

    pub fn precision(&self) -> Precision {
        self.precision
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
        let _autocast = crate::device::PrecisionGuard::new(w_plus.device(), self.precision)?;
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
        let rgb = x.conv2d(&self.torgb.get(), Some(&self.torgb_bias), [1, 1], [0, 0], [1, 1], 1);
        Ok(rgb.to_kind(Kind::Float))
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
