//! Synthesis network W+ and noise -> image (docs/design.md, "The networks").
//!
//! Blocks `4x4 .. RxR`, two style layers (epilogues) per block; block `SxS` upsamples with a
//! nearest-neighbour 2x upsample and a 3x3 conv below 128, and with a fused transposed conv from
//! 128 on, then blurs. The architecture (resolution, channels per block) is read off the weights.
use crate::precision::Precision;
use crate::stylegan::layers::ScaledWeight;
use crate::stylegan::network::{BlockInput, Layout, SynthesisNetwork};
use crate::stylegan::{Architecture, Tuning, LATENT_DIM};
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

    /// What the rest of the code asks of a generator: one W+ row and one noise map per style
    /// layer; truncation on layers 0-7; PULSE's bad noise layer 17 where the network has one.
    pub fn layout(&self) -> Layout {
        let layers = self.num_layers();
        Layout {
            architecture: Architecture::StyleGan1,
            resolution: self.resolution,
            channels: self.channels.clone(),
            w_rows: layers,
            noise_sides: (0..layers).map(Self::noise_side).collect(),
            truncation_cutoff: TRUNCATION_LAYERS.min(layers),
            default_bad_noise: [17].into_iter().filter(|&l| l < layers).collect(),
        }
    }
}

/// Layers that truncation applies to (StyleGAN's `truncation_cutoff`).
pub const TRUNCATION_LAYERS: usize = 8;

/// A frozen bias vector (equalized learning rate applies no bias multiplier except in the mapping
/// network, whose caller scales it).
fn bias(vs: &nn::Path, name: &str, n: i64) -> Tensor {
    vs.zeros_no_train(name, &[n])
}

/// Per-layer epilogue: noise, leaky ReLU, instance norm, style modulation (docs/design.md,
/// "The networks").
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
    fn forward(&self, x: &Tensor, w: &Tensor, noise: &Tensor, t: Tuning) -> anyhow::Result<Tensor> {
        let size = x.size();
        let (b, c) = (size[0], size[1]);
        let style = w.f_linear(&self.style_weight.get(), Some(&self.style_bias))?;
        if !t.epilogue {
            let x = x + self.noise_weight.view([1, c, 1, 1]) * noise;
            let x = t.leaky_relu(&x, 0.2)?;
            let x = x.f_instance_norm(None::<Tensor>, None, None, None, true, 0.0, 1e-5, false)?;
            let style = style.view([-1, 2, c, 1, 1]);
            return Ok(x * (style.select(1, 0) + 1.0) + style.select(1, 1));
        }
        // One pass for the noise: x + noise_weight[C] * noise.
        let (strength, noise) = match x.kind() {
            Kind::Float | Kind::Double => {
                (self.noise_weight.view([1, c, 1, 1]), noise.shallow_clone())
            }
            k => (self.noise_weight.view([1, c, 1, 1]).to_kind(k), noise.to_kind(k)),
        };
        let x = x.f_addcmul(&strength, &noise)?;
        let x = t.leaky_relu(&x, 0.2)?;
        // Instance norm and style modulation in one kernel: instance norm is batch norm over the
        // [1, B*C, H, W] view, and its affine weight and bias per (sample, channel) are the
        // style's scale `s[:, :C] + 1` and shift `s[:, C:]`.
        let style = match style.kind() {
            Kind::Double => style.view([b, 2, c]),
            _ => style.to_kind(Kind::Float).view([b, 2, c]),
        };
        let scale = (style.select(1, 0) + 1.0).reshape([b * c]);
        let shift = style.select(1, 1).reshape([b * c]);
        Ok(x.reshape([1, b * c, size[2], size[3]])
            .f_batch_norm(
                Some(&scale),
                Some(&shift),
                None::<&Tensor>,
                None::<&Tensor>,
                true,
                0.0,
                1e-5,
                true,
            )?
            .view([b, c, size[2], size[3]]))
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

    fn forward(&self, x: &Tensor) -> anyhow::Result<Tensor> {
        Ok(x.f_conv2d(&self.weight.get(), Some(&self.bias), [1, 1], [1, 1], [1, 1], 1)?)
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

    fn forward(&self, x: &Tensor, t: Tuning) -> anyhow::Result<Tensor> {
        let x = if self.fused || t.convt {
            let kernel = match &self.fused_kernel {
                Some(k) => k.shallow_clone(),
                None if self.fused => fuse_upsample_kernel(&self.conv.weight.get()),
                None => fuse_upsample_kernel(&self.conv.weight.get().flip([2, 3])),
            };
            x.f_conv_transpose2d(&kernel, None::<Tensor>, [2, 2], [1, 1], [0, 0], 1, [1, 1])?
        } else {
            let (h, w) = (x.size()[2], x.size()[3]);
            x.f_upsample_nearest2d([2 * h, 2 * w], None, None)?.f_conv2d(
                &self.conv.weight.get(),
                None::<Tensor>,
                [1, 1],
                [1, 1],
                [1, 1],
                1,
            )?
        };
        let c = x.size()[1];
        let kernel = match &self.blur_kernel {
            Some(k) if k.kind() == x.kind() => k.shallow_clone(),
            _ => blur_kernel(c, x.kind(), x.device()),
        };
        if !t.blurbias {
            return Ok(x.f_conv2d(&kernel, None::<Tensor>, [1, 1], [1, 1], [1, 1], c)?
                + self.conv.bias.to_kind(x.kind()).view([1, c, 1, 1]));
        }
        // The bias rides along in the blur's conv (one pass fewer).
        let bias = match &self.bias {
            Some(b) if b.kind() == x.kind() => b.shallow_clone(),
            _ => self.conv.bias.to_kind(x.kind()),
        };
        Ok(x.f_conv2d(&kernel, Some(&bias), [1, 1], [1, 1], [1, 1], c)?)
    }
}

/// docs/design.md, "fused upsampling": transpose the scaled weight to [Cin,Cout,3,3], zero-pad to 5x5 and
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
    layout: Layout,
    blocks: Vec<(Block, Epilogue, Epilogue)>,
    torgb: ScaledWeight,
    torgb_bias: Tensor,
    precision: Precision,
    tuning: Tuning,
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
            layout: config.layout(),
            blocks,
            torgb: ScaledWeight::new(
                rgb.clone(),
                "weight",
                &[3, cin, 1, 1],
                1.0 / (cin as f64).sqrt(),
            ),
            torgb_bias: bias(&rgb, "bias", 3),
            precision: Precision::Fp32,
            tuning: Tuning::default(),
        }
    }

    pub fn config(&self) -> &SynthesisConfig {
        &self.config
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// A network of shape `config` with random weights, like the baseline script's
    /// (`benches/baseline/`): weights N(0,1), biases N(0,0.01), noise strengths U(0,0.1); for
    /// benchmarks and tests.
    pub fn random(
        config: &SynthesisConfig,
        device: tch::Device,
        seed: i64,
    ) -> (Self, nn::VarStore) {
        let mut vs = nn::VarStore::new(device);
        let mut synthesis = Self::new(vs.root(), config);
        crate::stylegan::layers::fill_random(&vs, seed, |name, t| {
            if name.ends_with("noise.weight") {
                t.rand_like() * 0.1
            } else if name.ends_with("bias") {
                t.randn_like() * 0.1
            } else {
                t.randn_like()
            }
        });
        vs.freeze();
        synthesis.prepare();
        (synthesis, vs)
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
            // Styles stay float32 under autocast (they feed the norm's affine parameters).
            let style_kind = if kind == Kind::Double { Kind::Double } else { Kind::Float };
            e1.prepare(style_kind);
            e2.prepare(style_kind);
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

    /// Switches speed rewrites on or off (all on by default); see [`Tuning`].
    pub fn set_tuning(&mut self, tuning: Tuning) {
        self.tuning = tuning;
    }

    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    /// w_plus [B,L,512] and `noise[l]` [B,1,S_l,S_l] -> raw image [B,3,R,R] (nominally in [-1,1]).
    pub fn forward(&self, w_plus: &Tensor, noise: &[Tensor]) -> anyhow::Result<Tensor> {
        self.run(w_plus, noise, None, None).map(|(img, _)| img.expect("runs to the end"))
    }

    /// The synthesis from `from` (the constant when `None`) to the image, or (with `until`) up
    /// to the input of block `until`. Block i reads W+ rows and noise maps `2i` and `2i+1`.
    fn run(
        &self,
        w_plus: &Tensor,
        noise: &[Tensor],
        from: Option<&BlockInput>,
        until: Option<usize>,
    ) -> anyhow::Result<(Option<Tensor>, Option<BlockInput>)> {
        let layers = self.config.num_layers();
        let size = w_plus.size();
        if size.len() != 3 || size[1] != layers as i64 || size[2] != LATENT_DIM {
            bail!("w_plus has shape {size:?}, expected [B, {layers}, {LATENT_DIM}]");
        }
        if noise.len() != layers {
            bail!("{} noise maps given, the network has {layers} layers", noise.len());
        }
        let batch = size[0];
        let blocks = self.blocks.len();
        let start = from.map_or(0, |f| f.block);
        if let Some(f) = from {
            if f.block == 0 || f.block >= blocks {
                bail!(
                    "a block input enters block {} of {blocks}: expected 1 to {}",
                    f.block,
                    blocks - 1
                );
            }
            let side = 4i64 << (f.block - 1);
            let c = self.config.channels[f.block - 1];
            let fs = f.features.size();
            if fs != [batch, c, side, side] {
                bail!("the feature map has shape {fs:?}, expected [{batch}, {c}, {side}, {side}]");
            }
            if f.skip.is_some() {
                bail!("StyleGAN (v1) block inputs carry no RGB skip (only its last layer draws)");
            }
        }
        if let Some(u) = until {
            if u <= start || u >= blocks {
                bail!("cannot stop before block {u}: the run starts at block {start} of {blocks}");
            }
        }
        let _autocast = crate::precision::PrecisionGuard::new(w_plus.device(), self.precision)?;
        let t = self.tuning;
        let mut x = from.map_or_else(Tensor::new, |f| f.features.shallow_clone());
        for (i, (block, e1, e2)) in self.blocks.iter().enumerate().skip(start) {
            if until == Some(i) {
                let features = match x.kind() {
                    Kind::Double | Kind::Float => x,
                    _ => x.to_kind(Kind::Float),
                };
                return Ok((None, Some(BlockInput { block: i, features, skip: None })));
            }
            let (l0, l1) = (2 * i, 2 * i + 1);
            x = match block {
                Block::Initial { constant, bias, .. } => {
                    let c = bias.size()[0];
                    constant.expand([batch, c, 4, 4], true) + bias.view([1, c, 1, 1])
                }
                Block::Up { up, .. } => up.forward(&x, t)?,
            };
            x = e1.forward(&x, &w_plus.select(1, l0 as i64), &noise[l0], t)?;
            x = match block {
                Block::Initial { conv, .. } => conv.forward(&x)?,
                Block::Up { conv1, .. } => conv1.forward(&x)?,
            };
            x = e2.forward(&x, &w_plus.select(1, l1 as i64), &noise[l1], t)?;
        }
        let rgb =
            x.f_conv2d(&self.torgb.get(), Some(&self.torgb_bias), [1, 1], [0, 0], [1, 1], 1)?;
        Ok((
            Some(match rgb.kind() {
                Kind::Double => rgb,
                _ => rgb.to_kind(Kind::Float),
            }),
            None,
        ))
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

impl SynthesisNetwork for Synthesis {
    fn layout(&self) -> &Layout {
        &self.layout
    }
    fn forward(&self, w_plus: &Tensor, noise: &[Tensor]) -> anyhow::Result<Tensor> {
        Synthesis::forward(self, w_plus, noise)
    }
    fn block_input(
        &self,
        w_plus: &Tensor,
        noise: &[Tensor],
        from: Option<&BlockInput>,
        block: usize,
    ) -> anyhow::Result<BlockInput> {
        let (_, input) = self.run(w_plus, noise, from, Some(block))?;
        Ok(input.expect("stops at `until`"))
    }
    fn forward_from(
        &self,
        w_plus: &Tensor,
        noise: &[Tensor],
        from: &BlockInput,
    ) -> anyhow::Result<Tensor> {
        let (img, _) = self.run(w_plus, noise, Some(from), None)?;
        Ok(img.expect("runs to the end"))
    }
    fn set_precision(&mut self, precision: Precision) {
        Synthesis::set_precision(self, precision)
    }
    fn precision(&self) -> Precision {
        self.precision
    }
    fn set_tuning(&mut self, tuning: Tuning) {
        self.tuning = tuning
    }
    fn tuning(&self) -> Tuning {
        self.tuning
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device};

    /// A 256x256 network with random weights in float64: blocks below 128 take the plain
    /// upsample path, 128 and up the fused one, so every rewrite is exercised.
    fn random_network() -> (Synthesis, nn::VarStore) {
        let _seed = crate::rng::seed(11);
        let config = SynthesisConfig { resolution: 256, channels: vec![8; 7] };
        let mut vs = nn::VarStore::new(Device::Cpu);
        let mut synthesis = Synthesis::new(vs.root(), &config);
        tch::no_grad(|| {
            for (_, mut v) in vs.variables() {
                v.copy_(&v.randn_like());
            }
        });
        vs.double();
        synthesis.prepare_kind(Kind::Double);
        (synthesis, vs)
    }

    /// Output and the gradients with respect to W+ and every noise map, for one tuning.
    fn output_and_gradients(synthesis: &mut Synthesis, tuning: Tuning) -> Vec<Tensor> {
        synthesis.set_tuning(tuning);
        let _seed = crate::rng::seed(5);
        let layers = synthesis.config().num_layers();
        let w = Tensor::randn([2, layers as i64, LATENT_DIM], (Kind::Double, Device::Cpu))
            .set_requires_grad(true);
        let noise: Vec<Tensor> = (0..layers)
            .map(|l| {
                let s = SynthesisConfig::noise_side(l);
                Tensor::randn([2, 1, s, s], (Kind::Double, Device::Cpu)).set_requires_grad(true)
            })
            .collect();
        let out = synthesis.forward(&w, &noise).unwrap();
        assert_eq!(out.kind(), Kind::Double);
        let probe = Tensor::randn(out.size(), (Kind::Double, Device::Cpu));
        (&out * probe).sum(Kind::Double).backward();
        let mut all = vec![out.detach(), w.grad()];
        all.extend(noise.iter().map(|n| n.grad()));
        all
    }

    fn max_rel_diff(a: &[Tensor], b: &[Tensor]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| {
                let scale = x.abs().max().double_value(&[]).max(1e-300);
                (x - y).abs().max().double_value(&[]) / scale
            })
            .fold(0.0, f64::max)
    }

    /// Each speed rewrite computes the same function as the form it replaced, forward and
    /// backward: in float64 they agree to rounding (measured below 1e-13 relative).
    #[test]
    fn every_rewrite_matches_its_reference_form_forward_and_backward() {
        let (mut synthesis, _vs) = random_network();
        let tuned = output_and_gradients(&mut synthesis, Tuning::ALL_ON);
        for name in Tuning::NAMES.into_iter().chain(["all"]) {
            let reference = output_and_gradients(&mut synthesis, Tuning::without(name).unwrap());
            let diff = max_rel_diff(&tuned, &reference);
            println!("rewrite {name}: max relative difference {diff:.1e}");
            assert!(diff < 1e-10, "rewrite {name} differs from its reference form by {diff:e}");
        }
        // The comparison can fail: a real change of function (no noise) is seen.
        synthesis.set_tuning(Tuning::ALL_ON);
        let layers = synthesis.config().num_layers();
        let w = Tensor::zeros([1, layers as i64, LATENT_DIM], (Kind::Double, Device::Cpu));
        let zero = synthesis.zero_noise(1, Device::Cpu);
        let zero: Vec<Tensor> = zero.iter().map(|n| n.to_kind(Kind::Double)).collect();
        let ones: Vec<Tensor> = zero.iter().map(|n| n.ones_like()).collect();
        let a = synthesis.forward(&w, &zero).unwrap();
        let b = synthesis.forward(&w, &ones).unwrap();
        assert!(max_rel_diff(&[a], &[b]) > 1e-3);
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics() {
        let (synthesis, _vs) = random_network();
        let layers = synthesis.config().num_layers();
        let noise = synthesis.zero_noise(1, Device::Cpu);
        let w = Tensor::zeros([1, layers as i64 - 1, LATENT_DIM], (Kind::Double, Device::Cpu));
        assert!(synthesis.forward(&w, &noise).is_err());
        let w = Tensor::zeros([1, layers as i64, LATENT_DIM], (Kind::Double, Device::Cpu));
        assert!(synthesis.forward(&w, &noise[1..]).is_err());
    }
}
