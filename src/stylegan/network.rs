//! The generator concept every family implements (docs/design.md, "The generator concept"): a
//! synthesis network that states its [`Layout`] (W+ rows, noise maps, resolution, truncation) and
//! maps W+ and noise to an image, and a mapping network z -> w. The search, embedding, editing,
//! latent files and commands ask these, never a family's own types, so a new family is one new
//! module.
use super::{Architecture, Tuning};
use crate::precision::Precision;
use tch::{Device, Kind, Tensor};

/// What the rest of the code needs to know about a synthesis network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub architecture: Architecture,
    /// Output side, a power of two.
    pub resolution: i64,
    /// Feature maps of each block, from 4x4 up to `resolution` (what memory estimates need).
    pub channels: Vec<i64>,
    /// Rows of W+ the synthesis consumes (18 at 1024 for both families).
    pub w_rows: usize,
    /// Side of each noise map, in synthesis order (v1: 18 at 1024, two per block; StyleGAN2: 17,
    /// one for the 4x4 block and two per later block).
    pub noise_sides: Vec<i64>,
    /// Rows of W+ that truncation pulls towards the mean w (StyleGAN's `truncation_cutoff`).
    pub truncation_cutoff: usize,
    /// Noise maps a search keeps at zero unless told otherwise (PULSE zeroes the last one).
    pub default_bad_noise: Vec<usize>,
}

impl Layout {
    /// Number of noise maps.
    pub fn noise_maps(&self) -> usize {
        self.noise_sides.len()
    }

    /// Zero noise for every map, [batch,1,S,S] float32, for renders that want none.
    pub fn zero_noise(&self, batch: i64, device: Device) -> Vec<Tensor> {
        self.noise_sides
            .iter()
            .map(|&s| Tensor::zeros([batch, 1, s, s], (Kind::Float, device)))
            .collect()
    }

    /// N(0,1) noise for every map, [1,1,S,S] float32 on the CPU, from the global generator in
    /// map order (the caller seeds it).
    pub fn random_noise(&self) -> Vec<Tensor> {
        self.noise_sides
            .iter()
            .map(|&s| Tensor::randn([1, 1, s, s], (Kind::Float, Device::Cpu)))
            .collect()
    }
}

/// What enters synthesis block `block` (block 0 is the 4x4 block, block k >= 1 the one at
/// 2^(k+2)): the feature map the blocks before it computed and, on a skip generator
/// (StyleGAN2), the RGB image their ToRGB layers drew so far. ILO optimizes `features` and
/// carries `skip` (docs/design.md, "ILO").
#[derive(Debug)]
pub struct BlockInput {
    /// The block it enters, >= 1.
    pub block: usize,
    /// [B,C,S,S], S the side of block `block - 1`: the activation as the next layer reads it.
    pub features: Tensor,
    /// [B,3,S,S], StyleGAN2 only (v1 draws with its last layer alone).
    pub skip: Option<Tensor>,
}

impl BlockInput {
    /// The same state, detached, on `device`.
    pub fn to_device(&self, device: Device) -> Self {
        Self {
            block: self.block,
            features: self.features.detach().to_device(device),
            skip: self.skip.as_ref().map(|s| s.detach().to_device(device)),
        }
    }

    /// Batch item `b` as a batch of one.
    pub fn item(&self, b: i64) -> Self {
        Self {
            block: self.block,
            features: self.features.narrow(0, b, 1),
            skip: self.skip.as_ref().map(|s| s.narrow(0, b, 1)),
        }
    }
}

/// A synthesis network of any family: W+ [B, w_rows, 512] and one noise map per
/// `layout().noise_sides` entry, [B,1,S,S], to the raw image [B,3,R,R] (nominally in [-1,1]).
///
/// The partial forms split that pass at a block boundary, for ILO: `forward` equals
/// `forward_from(block_input(.., None, k))` for every block k >= 1 (to float rounding; exactly
/// with every [`Tuning`] rewrite off).
pub trait SynthesisNetwork: std::fmt::Debug + Send {
    fn layout(&self) -> &Layout;
    fn forward(&self, w_plus: &Tensor, noise: &[Tensor]) -> anyhow::Result<Tensor>;
    /// Number of blocks (4x4 up to the output side).
    fn blocks(&self) -> usize {
        self.layout().channels.len()
    }
    /// Runs the blocks from `from` (the learned constant when `None`) up to, not including,
    /// `block`, and returns what enters it. Noise and W+ are the full sets; the rows and maps
    /// of the blocks not run are not read.
    fn block_input(
        &self,
        w_plus: &Tensor,
        noise: &[Tensor],
        from: Option<&BlockInput>,
        block: usize,
    ) -> anyhow::Result<BlockInput>;
    /// The image from `from` on: blocks `from.block ..` with `from`'s feature map and skip.
    fn forward_from(
        &self,
        w_plus: &Tensor,
        noise: &[Tensor],
        from: &BlockInput,
    ) -> anyhow::Result<Tensor>;
    /// The arithmetic the forward pass runs in; see [`Precision`].
    fn set_precision(&mut self, precision: Precision);
    fn precision(&self) -> Precision;
    /// Switches speed rewrites on or off (all on by default); see [`Tuning`].
    fn set_tuning(&mut self, tuning: Tuning);
    fn tuning(&self) -> Tuning;
    /// Zero noise for every map, on `device`.
    fn zero_noise(&self, batch: i64, device: Device) -> Vec<Tensor> {
        self.layout().zero_noise(batch, device)
    }
}

/// A mapping network of any family: z [B,512] -> w [B,512].
pub trait MappingNetwork: std::fmt::Debug + Send {
    fn forward(&self, z: &Tensor) -> anyhow::Result<Tensor>;

    /// The mean w the network was trained to track, when its file stores one (StyleGAN2's
    /// `mapping.w_avg`); truncation pulls towards it.
    fn stored_w_avg(&self) -> Option<Tensor> {
        None
    }

    /// The mean mapping output over `samples` draws of z seeded with `seed` (drawn on the CPU,
    /// so the same on every device).
    fn mean_w(&self, samples: i64, seed: i64, device: Device) -> anyhow::Result<Tensor> {
        tch::no_grad(|| {
            let z = crate::rng::seeded(seed, || {
                Tensor::randn([samples, super::LATENT_DIM], (Kind::Float, Device::Cpu))
            });
            Ok(self.forward(&z.to_device(device))?.mean_dim(0, false, Kind::Float))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stylegan::{stylegan1, stylegan2};

    fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    /// The continuity ILO relies on (issue 29), on both families: the full forward pass equals
    /// "what enters block k" followed by "the forward pass from block k with that feature map
    /// and skip", for every k; bit for bit with the speed rewrites off, to float rounding with
    /// them on. Chaining (block k-1's input run up to block k) gives the same state, so the
    /// image at the start of ILO's round k is the image its round k-1 ended with.
    #[test]
    fn full_forward_equals_features_entering_block_k_then_forward_from_k() {
        let v1 = stylegan1::Synthesis::random(
            &stylegan1::SynthesisConfig { resolution: 256, channels: vec![8; 7] },
            Device::Cpu,
            3,
        );
        let sg2 = stylegan2::Synthesis::random(
            &stylegan2::SynthesisConfig::with_channels(64, 256, 16),
            Device::Cpu,
            4,
        );
        let mut nets: Vec<Box<dyn SynthesisNetwork>> = vec![Box::new(v1.0), Box::new(sg2.0)];
        for net in &mut nets {
            let layout = net.layout().clone();
            let _seed = crate::rng::seed(7);
            let w = Tensor::randn([2, layout.w_rows as i64, 512], (Kind::Float, Device::Cpu));
            let noise: Vec<Tensor> = layout
                .noise_sides
                .iter()
                .map(|&s| Tensor::randn([2, 1, s, s], (Kind::Float, Device::Cpu)))
                .collect();
            for tuning in [Tuning::ALL_OFF, Tuning::ALL_ON] {
                net.set_tuning(tuning);
                let full = net.forward(&w, &noise).unwrap();
                let scale = full.abs().max().double_value(&[]);
                let mut previous: Option<BlockInput> = None;
                for k in 1..net.blocks() {
                    let entering = net.block_input(&w, &noise, None, k).unwrap();
                    assert_eq!(entering.block, k);
                    assert_eq!(
                        entering.skip.is_some(),
                        layout.architecture == Architecture::StyleGan2
                    );
                    let img = net.forward_from(&w, &noise, &entering).unwrap();
                    let diff = max_abs(&img, &full) / scale;
                    println!(
                        "{:?} {tuning:?} block {k}: relative difference {diff:.1e}",
                        layout.architecture
                    );
                    if tuning == Tuning::ALL_OFF {
                        assert!(img.equal(&full), "block {k}: differs by {diff:e}");
                    } else {
                        assert!(diff < 1e-5, "block {k}: differs by {diff:e}");
                    }
                    if let Some(prev) = &previous {
                        let chained = net.block_input(&w, &noise, Some(prev), k).unwrap();
                        let from_prev = net.forward_from(&w, &noise, prev).unwrap();
                        let from_here = net.forward_from(&w, &noise, &chained).unwrap();
                        if tuning == Tuning::ALL_OFF {
                            assert!(chained.features.equal(&entering.features), "block {k}");
                            assert!(from_prev.equal(&from_here), "block {k}: not continuous");
                        } else {
                            let diff = max_abs(&from_prev, &from_here) / scale;
                            assert!(diff < 1e-5, "block {k}: not continuous ({diff:e})");
                        }
                    }
                    // The comparison can fail: another feature map gives another image.
                    let moved = BlockInput {
                        block: k,
                        features: &entering.features * 1.01,
                        skip: entering.skip.as_ref().map(|s| s.shallow_clone()),
                    };
                    let other = net.forward_from(&w, &noise, &moved).unwrap();
                    assert!(max_abs(&other, &full) / scale > 1e-4, "block {k}: features unused");
                    previous = Some(entering);
                }
                // A feature map that does not fit is an error, not a panic.
                let wrong = BlockInput {
                    block: 2,
                    features: Tensor::zeros([2, 3, 4, 4], (Kind::Float, Device::Cpu)),
                    skip: None,
                };
                assert!(net.forward_from(&w, &noise, &wrong).is_err());
            }
        }
    }
}
