//! `pulse`: PULSE face super-resolution (Menon et al., CVPR 2020) by searching the latent space of
//! a pretrained StyleGAN (v1), on libtorch through `tch`.
//!
//! Layout: `stylegan` (the networks), `pulse` (the search: losses, optimizer, schedule,
//! downscaler), `weights` (file formats), `model` (a model folder), `model_info` (its `model.json`), `latent` (the latent file
//! format), `pipelines` (the jobs users run), `editing` (hair-colour targets, W+ directions,
//! photo embedding), `imageio` (image files), `http` (resumable downloads). Nothing here prints: the
//! command line in `src/cli/` is the edge.
pub mod align;
pub mod device;
pub mod editing;
pub mod files;
pub mod http;
pub mod imageio;
pub mod latent;
pub mod model;
pub mod model_info;
pub mod ops;
pub mod pipelines;
pub mod precision;
pub mod pulse;
pub mod stylegan;
pub mod system;
pub mod weights;

/// A request that cannot be carried out as asked (a setting out of range for this model, a
/// combination of options that does not make sense): the command line reports it as a usage
/// error (exit code 2), like a bad flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Returns early with an [`Invalid`] error: `invalid!("eps must be positive, got {eps}")`.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => {
        return Err($crate::Invalid(format!($($arg)*)).into())
    };
}
