//! The generator concept every family implements (docs/design.md, "The generator concept"): a
//! synthesis network that states its [`Layout`] (W+ rows, noise maps, resolution, truncation) and
//! maps W+ and noise to an image, and a mapping network z -> w. The search, embedding, editing,
//! latent files and commands ask these, never a family's own types, so a new family is one new
//! module.
use super::Tuning;
use crate::precision::Precision;
use tch::{Device, Kind, Tensor};

/// The generator families `pulse` runs; defined with the weight formats, which are read
/// below the networks, and named here for everything above.
pub use crate::weights::Architecture;

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

/// A synthesis network of any family: W+ [B, w_rows, 512] and one noise map per
/// `layout().noise_sides` entry, [B,1,S,S], to the raw image [B,3,R,R] (nominally in [-1,1]).
pub trait SynthesisNetwork: std::fmt::Debug + Send {
    fn layout(&self) -> &Layout;
    fn forward(&self, w_plus: &Tensor, noise: &[Tensor]) -> anyhow::Result<Tensor>;
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
            tch::manual_seed(seed);
            let z = Tensor::randn([samples, super::LATENT_DIM], (Kind::Float, Device::Cpu));
            Ok(self.forward(&z.to_device(device))?.mean_dim(0, false, Kind::Float))
        })
    }
}
