//! StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020),
//! as NVIDIA's stylegan2-ada-pytorch computes it (`training/networks.py` with its reference ops;
//! docs/design.md, "StyleGAN2"): the skip generator with modulated, demodulated 3x3 convolutions.
//!
//! Parameter names equal NVIDIA's (`mapping.fc0.weight`, `mapping.w_avg`, `synthesis.b4.const`,
//! `synthesis.b8.conv0.affine.weight`, ...), and the values are stored as NVIDIA stores them: the
//! run-time gains are applied here. Resolution, channels and mapping depth are read off the
//! weights.
pub mod mapping;
pub mod synthesis;

pub use mapping::{Mapping, MappingConfig};
pub use synthesis::{Synthesis, SynthesisConfig};

/// The key that tells a StyleGAN2 synthesis file from a v1 one.
pub const MARKER_KEY: &str = "synthesis.b4.const";
