//! The generators: the family-independent concept ([`SynthesisNetwork`], [`MappingNetwork`],
//! [`Layout`]; docs/design.md, "The generator concept"), StyleGAN (v1) here as PULSE's PyTorch
//! port computes it (docs/design.md, "The networks"), and StyleGAN2 in [`stylegan2`].
//!
//! Every struct is built from a `tch::nn::Path` whose variable names equal the checkpoint keys,
//! so a state dict loads with one call and a missing key names itself. Weights are frozen: the
//! equalized-learning-rate scaling and the fused upsample kernels are computed once in
//! `prepare()`, not on every forward pass.
mod layers;
pub mod mapping;
pub mod network;
pub mod stylegan2;
pub mod synthesis;

pub use layers::leaky_relu;
pub use mapping::Mapping;
pub use network::{Architecture, BlockInput, Layout, MappingNetwork, SynthesisNetwork};
pub use synthesis::{Synthesis, SynthesisConfig, Tuning};

/// Width of z, w and each W+ row.
pub const LATENT_DIM: i64 = 512;
