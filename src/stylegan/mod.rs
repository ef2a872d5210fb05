//! StyleGAN (v1) generator: the mapping network z -> w and the synthesis network W+ -> image,
//! as PULSE's PyTorch port computes them (docs/design.md, "The networks").
//!
//! Every struct is built from a `tch::nn::Path` whose variable names equal the checkpoint keys,
//! so a state dict loads with one call and a missing key names itself. Weights are frozen: the
//! equalized-learning-rate scaling and the fused upsample kernels are computed once in
//! `prepare()`, not on every forward pass.
mod layers;
pub mod mapping;
pub mod synthesis;

pub use layers::leaky_relu;
pub use mapping::Mapping;
pub use synthesis::{Synthesis, SynthesisConfig, Tuning};

/// Width of z, w and each W+ row.
pub const LATENT_DIM: i64 = 512;
