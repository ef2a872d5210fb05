//! `pulse`: PULSE face super-resolution (Menon et al., CVPR 2020) by searching the latent space of
//! a pretrained StyleGAN (v1), on libtorch through `tch`.
pub mod device;
pub mod weights;
