//! `pulse`: PULSE face super-resolution (Menon et al., CVPR 2020) by searching the latent space of
//! a pretrained StyleGAN (v1), on libtorch through `tch`.
//!
//! Layout: `stylegan` (the networks), `pulse` (the search: losses, optimizer, schedule,
//! downscaler), `weights` (file formats), `model` (a model folder), `latent` (the latent file
//! format), `pipelines` (the jobs users run), `editing` (hair-colour targets, W+ directions,
//! photo embedding), `imageio` (image files). Nothing here prints: the
//! command line in `src/cli/` is the edge.
pub mod align;
pub mod device;
pub mod editing;
pub mod imageio;
pub mod latent;
pub mod model;
pub mod ops;
pub mod pipelines;
pub mod pulse;
pub mod stylegan;
pub mod weights;
