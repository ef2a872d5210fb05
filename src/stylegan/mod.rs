//! The generators: the family-independent concept ([`SynthesisNetwork`], [`MappingNetwork`],
//! [`Layout`]; docs/design.md, "The generator concept"), the families ([`stylegan1`],
//! [`stylegan2`]), the one place that tells them apart for everything else ([`family`]), and the
//! speed rewrites they share ([`Tuning`]).
//!
//! Every struct is built from a `tch::nn::Path` whose variable names equal the checkpoint keys,
//! so a state dict loads with one call and a missing key names itself. Weights are frozen: the
//! equalized-learning-rate scaling and the fused upsample kernels are computed once in
//! `prepare()`, not on every forward pass.
pub mod family;
mod layers;
pub mod network;
pub mod stylegan1;
pub mod stylegan2;
mod tuning;

pub use family::Architecture;
pub use layers::leaky_relu;
pub use network::{BlockInput, Layout, MappingNetwork, SynthesisNetwork};
pub use tuning::Tuning;

/// Width of z, w and each W+ row.
pub const LATENT_DIM: i64 = 512;
