//! `pulse`: PULSE face super-resolution (Menon et al., CVPR 2020) by searching the latent space of
//! a pretrained StyleGAN (v1), on libtorch through `tch`.
//!
//! Layout: `stylegan` (the networks), `pulse` (the search: losses, optimizer, schedule,
//! downscaler), `weights` (file formats), `model` (a model folder), `imageio` and `cli` at the edge.
pub mod device;
pub mod pulse;
pub mod stylegan;
