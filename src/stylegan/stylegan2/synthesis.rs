//! StyleGAN2's synthesis network (stylegan2-ada-pytorch `SynthesisNetwork`, architecture `skip`;
//! docs/design.md, "StyleGAN2"). Block 4x4: a learned constant and one modulated 3x3 conv; block
//! SxS (S >= 8): an up-sampling modulated conv and a plain one. Every block ends in a ToRGB
//! (modulated 1x1, no demodulation) whose output is added to the up-sampled image so far.
//!
//! A modulated conv is computed as NVIDIA's non-fused path computes it: scale the input by the
//! style, convolve with the shared weight, scale the output by the demodulation coefficients.
//! The weight is frozen, so no weight gradient is ever computed, only the style's.
use crate::precision::Precision;
use crate::stylegan::layers::{leaky_relu, leaky_relu_reference, ScaledWeight};
use crate::stylegan::network::{BlockInput, Layout, SynthesisNetwork};
use crate::stylegan::{Architecture, Tuning, LATENT_DIM};
use anyhow::bail;
use std::f64::consts::SQRT_2;
use tch::{nn, Kind, Tensor};

/// Shape of a StyleGAN2 synthesis network, read off the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthesisConfig {
    /// Output side, a power of two from 4 up.
    pub resolution: i64,
    /// Feature maps of each block, from 4x4 up to `resolution`.
    pub channels: Vec<i64>,
}

impl SynthesisConfig {
    /// NVIDIA's channel rule: `min(channel_base / S, channel_max)` at side S (config-f FFHQ:
    /// `channel_base` 32768, `channel_max` 512).
    pub fn with_channels(resolution: i64, channel_base: i64, channel_max: i64) -> Self {
        let k = resolution.trailing_zeros() as i64;
        let channels = (2..=k).map(|r| (channel_base >> r).min(channel_max)).collect();
        Self { resolution, channels }
    }

    /// The FFHQ 1024x1024 config-f network.
    pub fn ffhq() -> Self {
        Self::with_channels(1024, 32768, 512)
    }

    /// Reads the architecture from the keys `synthesis.b<S>.conv1.weight` (channels of block S).
    pub fn from_shapes<'a>(
        shapes: impl Iterator<Item = (&'a str, Vec<i64>)>,
    ) -> anyhow::Result<Self> {
        let mut blocks: Vec<(i64, i64)> = shapes
            .filter_map(|(k, s)| {
                let side = k.strip_prefix("synthesis.b")?.strip_suffix(".conv1.weight")?;
                Some((side.parse::<i64>().ok()?, *s.first()?))
            })
            .collect();
        blocks.sort();
        if blocks.is_empty() {
            bail!("no synthesis blocks found (expected keys like 'synthesis.b4.conv1.weight')");
        }
        for (i, (s, _)) in blocks.iter().enumerate() {
            if *s != 4 << i {
                bail!("synthesis blocks are not contiguous: block b{s} without its predecessors");
            }
        }
        let resolution = blocks.last().map(|b| b.0).unwrap_or(4);
        Ok(Self { resolution, channels: blocks.into_iter().map(|b| b.1).collect() })
    }

    /// W+ rows: one per conv (1 + 2 per later block) and one for the last ToRGB; each block's
    /// ToRGB shares its row with the next block's first conv.
    pub fn w_rows(&self) -> usize {
        2 * self.channels.len()
    }

    /// Noise map sides in synthesis order: `b4.conv1`, then `conv0` and `conv1` of each block.
    pub fn noise_sides(&self) -> Vec<i64> {
        let mut sides = vec![4];
        for i in 1..self.channels.len() {
            sides.extend([4 << i, 4 << i]);
        }
        sides
    }

    /// NVIDIA truncates every row (`truncation_cutoff=None`); the last noise map is PULSE's bad
    /// layer (the one at full resolution, as v1's layer 17).
    pub fn layout(&self) -> Layout {
        let noise_sides = self.noise_sides();
        Layout {
            architecture: Architecture::StyleGan2,
            resolution: self.resolution,
            channels: self.channels.clone(),
            w_rows: self.w_rows(),
            truncation_cutoff: self.w_rows(),
            default_bad_noise: vec![noise_sides.len() - 1],
            noise_sides,
        }
    }
}

/// NVIDIA's `[1,3,3,1]` resampling filter as a 4x4 kernel normalised to sum `gain`, repeated
/// for `c` depthwise channels: [c,1,4,4].
fn resample_kernel(c: i64, gain: f64, kind: Kind, device: tch::Device) -> Tensor {
    let f = Tensor::from_slice(&[1f64, 3., 3., 1.]);
    (f.view([4, 1]) * f.view([1, 4]) * (gain / 64.0))
        .view([1, 1, 4, 4])
        .repeat([c, 1, 1, 1])
        .to_kind(kind)
        .to_device(device)
}

/// A modulated convolution with its affine style layer, bias and (for the 3x3 layers) noise
/// strength: stylegan2-ada-pytorch's `SynthesisLayer` (demodulated, leaky ReLU gain sqrt 2) or
/// `ToRGBLayer` (not demodulated, linear).
#[derive(Debug)]
struct ModConv {
    affine_weight: ScaledWeight,
    affine_bias: Tensor,
    weight: Tensor,
    bias: Tensor,
    noise_strength: Option<Tensor>,
    up: bool,
    /// ToRGB: the style's gain `1/sqrt(fan_in)` and no demodulation.
    torgb: bool,
    /// Cached in the compute kind by `prepare`: the weight, its squares summed over the kernel
    /// [O,I] (demodulation is then one matrix product), the transposed weight [I,O,3,3] for the
    /// up-sampling conv, and the blur kernel.
    cached: Option<Cached>,
}

#[derive(Debug)]
struct Cached {
    weight: Tensor,
    weight_sq: Tensor,
    weight_t: Option<Tensor>,
    blur: Option<Tensor>,
}

impl ModConv {
    fn new(vs: nn::Path, cin: i64, cout: i64, up: bool, torgb: bool) -> Self {
        let k = if torgb { 1 } else { 3 };
        let affine = &vs / "affine";
        Self {
            affine_weight: ScaledWeight::new(
                affine.clone(),
                "weight",
                &[cin, LATENT_DIM],
                1.0 / (LATENT_DIM as f64).sqrt(),
            ),
            affine_bias: affine.zeros_no_train("bias", &[cin]),
            weight: vs.zeros_no_train("weight", &[cout, cin, k, k]),
            bias: vs.zeros_no_train("bias", &[cout]),
            noise_strength: (!torgb).then(|| vs.zeros_no_train("noise_strength", &[])),
            up,
            torgb,
            cached: None,
        }
    }

    fn prepare(&mut self, kind: Kind) {
        self.affine_weight.prepare(if kind == Kind::Double { kind } else { Kind::Float });
        self.cached = Some(tch::no_grad(|| {
            let weight = self.weight.to_kind(kind);
            let cout = weight.size()[0];
            Cached {
                weight_sq: self
                    .weight
                    .to_kind(Kind::Double)
                    .square()
                    .sum_dim_intlist([2i64, 3].as_slice(), false, Kind::Double)
                    .to_kind(if kind == Kind::Double { kind } else { Kind::Float }),
                weight_t: self.up.then(|| weight.transpose(0, 1).contiguous()),
                blur: self.up.then(|| resample_kernel(cout, 4.0, kind, weight.device())),
                weight,
            }
        }));
    }

    fn cached(&self) -> Cached {
        match &self.cached {
            Some(c) => Cached {
                weight: c.weight.shallow_clone(),
                weight_sq: c.weight_sq.shallow_clone(),
                weight_t: c.weight_t.as_ref().map(|t| t.shallow_clone()),
                blur: c.blur.as_ref().map(|t| t.shallow_clone()),
            },
            None => Cached {
                weight: self.weight.shallow_clone(),
                weight_sq: self.weight.square().sum_dim_intlist(
                    [2i64, 3].as_slice(),
                    false,
                    None::<Kind>,
                ),
                weight_t: self.up.then(|| self.weight.transpose(0, 1)),
                blur: self.up.then(|| {
                    resample_kernel(
                        self.weight.size()[0],
                        4.0,
                        self.weight.kind(),
                        self.weight.device(),
                    )
                }),
            },
        }
    }

    /// x [B,I,H,W], w [B,512], noise [B,1,H',W'] (3x3 layers); `input_gain` is the previous
    /// layer's activation gain when that layer left it to this one (tuned form, see
    /// [`Tuning::epilogue`]). Returns the output and the gain it leaves to its consumer.
    fn forward(
        &self,
        x: &Tensor,
        w: &Tensor,
        noise: Option<&Tensor>,
        input_gain: f64,
        t: Tuning,
    ) -> anyhow::Result<(Tensor, f64)> {
        let c = self.cached();
        let (b, cin) = (x.size()[0], x.size()[1]);
        let mut styles = w.f_linear(&self.affine_weight.get(), Some(&self.affine_bias))?;
        if self.torgb {
            styles *= 1.0 / ((cin * c.weight.size()[2] * c.weight.size()[3]) as f64).sqrt();
        }
        let scale = if input_gain == 1.0 { styles.shallow_clone() } else { &styles * input_gain };
        let x = x * scale.to_kind(x.kind()).view([b, cin, 1, 1]);
        let x = match (&c.weight_t, &c.blur) {
            (Some(wt), Some(blur)) => {
                let y =
                    x.f_conv_transpose2d(wt, None::<Tensor>, [2, 2], [0, 0], [0, 0], 1, [1, 1])?;
                let cout = y.size()[1];
                y.f_conv2d(blur, None::<Tensor>, [1, 1], [1, 1], [1, 1], cout)?
            }
            _ => {
                let pad = c.weight.size()[2] / 2;
                x.f_conv2d(&c.weight, None::<Tensor>, [1, 1], [pad, pad], [1, 1], 1)?
            }
        };
        let cout = x.size()[1];
        let bias = self.bias.to_kind(x.kind()).view([1, cout, 1, 1]);
        if self.torgb {
            return Ok((x + bias, 1.0));
        }
        // Demodulation: rsqrt(sum over I,kh,kw of (weight * style)^2 + 1e-8), [B,O].
        let d = (styles.square().f_matmul(&c.weight_sq.transpose(0, 1))? + 1e-8)
            .rsqrt()
            .to_kind(x.kind())
            .view([b, cout, 1, 1]);
        let strength = self.noise_strength.as_ref().expect("3x3 layers have noise");
        let noise = noise.expect("3x3 layers take noise").to_kind(x.kind());
        if !t.epilogue {
            let strength = strength.to_kind(x.kind());
            let x = x * d + noise * strength + bias;
            return Ok((t_leaky(t, &x)? * SQRT_2, 1.0));
        }
        // (noise * strength + bias) + x * d in one fused multiply-add; the activation's gain
        // sqrt 2 is left to the consumer, which scales its (much smaller) style by it.
        let base = (noise * strength.to_kind(x.kind())).f_add(&bias)?;
        let x = base.f_addcmul(&x, &d)?;
        Ok((t_leaky(t, &x)?, SQRT_2))
    }
}

fn t_leaky(t: Tuning, x: &Tensor) -> anyhow::Result<Tensor> {
    if t.leaky {
        leaky_relu(x, 0.2)
    } else {
        leaky_relu_reference(x, 0.2)
    }
}

#[derive(Debug)]
struct Block {
    /// 4x4 only: the learned constant [C,4,4].
    constant: Option<Tensor>,
    /// 8x8 and up: the up-sampling conv.
    conv0: Option<ModConv>,
    conv1: ModConv,
    torgb: ModConv,
}

/// The synthesis network; keys `synthesis.b<S>.{const, conv0.*, conv1.*, torgb.*}`.
#[derive(Debug)]
pub struct Synthesis {
    config: SynthesisConfig,
    layout: Layout,
    blocks: Vec<Block>,
    /// The image skip's up-sampling kernel [3,1,4,4].
    skip_kernel: Option<Tensor>,
    precision: Precision,
    tuning: Tuning,
}

impl Synthesis {
    /// `vs` is the root: the names start with `synthesis.`.
    pub fn new(vs: nn::Path, config: &SynthesisConfig) -> Self {
        let vs = &vs / "synthesis";
        let mut blocks = vec![];
        let mut cin = config.channels[0];
        for (i, &c) in config.channels.iter().enumerate() {
            let p = &vs / format!("b{}", 4 << i);
            blocks.push(Block {
                constant: (i == 0).then(|| p.zeros_no_train("const", &[c, 4, 4])),
                conv0: (i > 0).then(|| ModConv::new(&p / "conv0", cin, c, true, false)),
                conv1: ModConv::new(&p / "conv1", c, c, false, false),
                torgb: ModConv::new(&p / "torgb", c, 3, false, true),
            });
            cin = c;
        }
        Self {
            config: config.clone(),
            layout: config.layout(),
            blocks,
            skip_kernel: None,
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

    /// A network of shape `config` with random weights drawn as NVIDIA initialises them
    /// (weights N(0,1), affine biases 1), plus small random biases and noise strengths so every
    /// path carries signal; for benchmarks and tests.
    pub fn random(
        config: &SynthesisConfig,
        device: tch::Device,
        seed: i64,
    ) -> (Self, nn::VarStore) {
        let mut vs = nn::VarStore::new(device);
        let mut synthesis = Self::new(vs.root(), config);
        crate::stylegan::layers::fill_random(&vs, seed, |name, t| {
            if name.ends_with("affine.bias") {
                t.randn_like() * 0.1 + 1.0
            } else if name.ends_with("noise_strength") {
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

    pub(crate) fn prepare_kind(&mut self, kind: Kind) {
        let mut device = tch::Device::Cpu;
        for b in &mut self.blocks {
            for conv in b.conv0.iter_mut().chain([&mut b.conv1, &mut b.torgb]) {
                conv.prepare(kind);
                device = conv.weight.device();
            }
        }
        self.skip_kernel = Some(resample_kernel(3, 4.0, kind, device));
    }

    /// W+ [B,L,512] and noise [B,1,S,S] per map -> raw image [B,3,R,R].
    pub fn forward(&self, w_plus: &Tensor, noise: &[Tensor]) -> anyhow::Result<Tensor> {
        match self.run(w_plus, noise, None, None)? {
            Ran::Image(img) => Ok(img),
            Ran::Entering(_) => unreachable!("runs to the end without `until`"),
        }
    }

    fn check_inputs(&self, w_plus: &Tensor, noise: &[Tensor]) -> anyhow::Result<()> {
        let layout = &self.layout;
        let size = w_plus.size();
        if size.len() != 3 || size[1] != layout.w_rows as i64 || size[2] != LATENT_DIM {
            bail!("w_plus has shape {size:?}, expected [B, {}, {LATENT_DIM}]", layout.w_rows);
        }
        if noise.len() != layout.noise_maps() {
            bail!("{} noise maps given, the network has {}", noise.len(), layout.noise_maps());
        }
        for (i, (n, &side)) in noise.iter().zip(&layout.noise_sides).enumerate() {
            let s = n.size();
            let batch_ok = s.first().is_some_and(|&b| b == size[0] || b == 1);
            if s.len() != 4 || !batch_ok || s[1] != 1 || s[2] != side || s[3] != side {
                bail!("noise map {i} has shape {s:?}, expected [{}, 1, {side}, {side}]", size[0]);
            }
        }
        Ok(())
    }

    /// The synthesis from `from` (the constant when `None`) to the image, or up to the input of
    /// block `until`. Block i reads W+ rows `2i-1 ..= 2i+1` (rows 0 and 1 for the 4x4 block) and
    /// noise maps `2i-1, 2i` (map 0 for the 4x4 block).
    fn run(
        &self,
        w_plus: &Tensor,
        noise: &[Tensor],
        from: Option<&BlockInput>,
        until: Option<usize>,
    ) -> anyhow::Result<Ran> {
        self.check_inputs(w_plus, noise)?;
        let blocks = self.blocks.len();
        let start = from.map_or(0, |f| f.block);
        if let Some(f) = from {
            check_block_input(f, &self.config, w_plus.size()[0])?;
        }
        if let Some(u) = until {
            if u <= start || u >= blocks {
                bail!("cannot stop before block {u}: the run starts at block {start} of {blocks}");
            }
        }
        let batch = w_plus.size()[0];
        let _autocast = crate::precision::PrecisionGuard::new(w_plus.device(), self.precision)?;
        let t = self.tuning;
        let row = |i: usize| w_plus.select(1, i as i64);
        let (mut x, mut gain) = (Tensor::new(), 1.0);
        let mut img: Option<Tensor> = None;
        if let Some(f) = from {
            x = f.features.shallow_clone();
            img = f.skip.as_ref().map(|s| s.shallow_clone());
        }
        let (mut wi, mut ni) = ((2 * start).saturating_sub(1), (2 * start).saturating_sub(1));
        for (i, block) in self.blocks.iter().enumerate().skip(start) {
            if until == Some(i) {
                let features = if gain == 1.0 { x } else { x * gain };
                return Ok(Ran::Entering(BlockInput {
                    block: i,
                    features: float(features),
                    skip: img.map(float),
                }));
            }
            if let Some(constant) = &block.constant {
                let s = constant.size();
                x = constant.unsqueeze(0).expand([batch, s[0], 4, 4], true);
            }
            if let Some(conv0) = &block.conv0 {
                (x, gain) = conv0.forward(&x, &row(wi), Some(&noise[ni]), gain, t)?;
                wi += 1;
                ni += 1;
            }
            (x, gain) = block.conv1.forward(&x, &row(wi), Some(&noise[ni]), gain, t)?;
            wi += 1;
            ni += 1;
            let (y, _) = block.torgb.forward(&x, &row(wi), None, gain, t)?;
            img = Some(match img {
                None => y,
                Some(img) => {
                    let kernel = match &self.skip_kernel {
                        Some(k) if k.kind() == img.kind() => k.shallow_clone(),
                        _ => resample_kernel(3, 4.0, img.kind(), img.device()),
                    };
                    img.f_conv_transpose2d(
                        &kernel,
                        None::<Tensor>,
                        [2, 2],
                        [1, 1],
                        [0, 0],
                        3,
                        [1, 1],
                    )? + y
                }
            });
        }
        Ok(Ran::Image(float(img.expect("at least one block"))))
    }
}

/// Float32 unless the network runs in float64.
fn float(t: Tensor) -> Tensor {
    match t.kind() {
        Kind::Double | Kind::Float => t,
        _ => t.to_kind(Kind::Float),
    }
}

/// What [`Synthesis::run`] returns: the image, or the state entering a block.
enum Ran {
    Image(Tensor),
    Entering(BlockInput),
}

/// Checks a block input's shapes against the network (features [B,C,S,S] of block
/// `block - 1`, skip [B,3,S,S]).
fn check_block_input(f: &BlockInput, config: &SynthesisConfig, batch: i64) -> anyhow::Result<()> {
    let blocks = config.channels.len();
    if f.block == 0 || f.block >= blocks {
        bail!("a block input enters block {} of {blocks}: expected 1 to {}", f.block, blocks - 1);
    }
    let side = 4i64 << (f.block - 1);
    let c = config.channels[f.block - 1];
    let fs = f.features.size();
    if fs != [batch, c, side, side] {
        bail!("the feature map has shape {fs:?}, expected [{batch}, {c}, {side}, {side}]");
    }
    match &f.skip {
        Some(s) if s.size() == [batch, 3, side, side] => Ok(()),
        Some(s) => {
            bail!("the RGB skip has shape {:?}, expected [{batch}, 3, {side}, {side}]", s.size())
        }
        None => bail!("a StyleGAN2 block input carries the RGB skip of the blocks before it"),
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
        match self.run(w_plus, noise, from, Some(block))? {
            Ran::Entering(input) => Ok(input),
            Ran::Image(_) => unreachable!("stops at `until`"),
        }
    }
    fn forward_from(
        &self,
        w_plus: &Tensor,
        noise: &[Tensor],
        from: &BlockInput,
    ) -> anyhow::Result<Tensor> {
        match self.run(w_plus, noise, Some(from), None)? {
            Ran::Image(img) => Ok(img),
            Ran::Entering(_) => unreachable!("runs to the end without `until`"),
        }
    }
    fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }
    fn precision(&self) -> Precision {
        self.precision
    }
    fn set_tuning(&mut self, tuning: Tuning) {
        self.tuning = tuning;
    }
    fn tuning(&self) -> Tuning {
        self.tuning
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn reads_its_shape_off_nvidia_names() {
        let config = SynthesisConfig::with_channels(32, 256, 32);
        assert_eq!(config.channels, [32, 32, 16, 8]);
        let (net, vs) = Synthesis::random(&config, Device::Cpu, 1);
        let shapes: Vec<(String, Vec<i64>)> =
            vs.variables().into_iter().map(|(k, t)| (k, t.size())).collect();
        let read =
            SynthesisConfig::from_shapes(shapes.iter().map(|(k, s)| (k.as_str(), s.clone())));
        assert_eq!(read.unwrap(), config);
        assert!(shapes.iter().any(|(k, _)| k == "synthesis.b8.conv0.affine.weight"));
        assert_eq!(net.layout().noise_sides, [4, 8, 8, 16, 16, 32, 32]);
        assert_eq!(net.layout().w_rows, 8);
        let broken = shapes.iter().filter(|(k, _)| !k.starts_with("synthesis.b8."));
        assert!(SynthesisConfig::from_shapes(broken.map(|(k, s)| (k.as_str(), s.clone()))).is_err());
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics() {
        let (net, _vs) =
            Synthesis::random(&SynthesisConfig::with_channels(16, 64, 8), Device::Cpu, 2);
        let layout = net.layout().clone();
        let w = Tensor::zeros([1, layout.w_rows as i64, LATENT_DIM], (Kind::Float, Device::Cpu));
        let noise = layout.zero_noise(1, Device::Cpu);
        assert!(net.forward(&w, &noise).is_ok());
        assert!(net.forward(&w.narrow(1, 0, 5), &noise).is_err());
        assert!(net.forward(&w, &noise[1..]).is_err());
        let mut swapped = layout.zero_noise(1, Device::Cpu);
        swapped.swap(0, 1);
        assert!(net.forward(&w, &swapped).is_err());
    }
}
