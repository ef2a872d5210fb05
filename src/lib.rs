//! `pulse`: PULSE face super-resolution (Menon et al., CVPR 2020) by searching the latent space of
//! a pretrained StyleGAN, on libtorch through `tch`. Nothing here prints: the command line in
//! `src/cli/` is the edge. The modules, from the networks up (docs/design.md, "Architecture"):
//!
//! - [`stylegan`]: the generator concept (`SynthesisNetwork`, `MappingNetwork`, `Layout`) and its
//!   two families, StyleGAN v1 and StyleGAN2, built from checkpoint key names, with their speed
//!   rewrites.
//! - [`pulse`]: the search: losses, the spherical optimizer, schedules, the bicubic downscaler,
//!   the Gaussian fit, the step and the loop.
//! - [`align`]: MTCNN face detection and FFHQ's alignment.
//! - [`editing`]: hair-colour targets, directions in W+, edits, photo embedding, VGG16.
//! - [`weights`]: weight file formats (restricted unpickler, `.pt`, safetensors, NVIDIA's,
//!   stylegan2-ada-pytorch's, rosinality's and lernapparat's layouts).
//! - [`model`]: a model folder; [`model_info`]: its `model.json`; [`latent`]: the latent file
//!   format.
//! - [`metrics`]: PSNR, SSIM and LPIPS for `pulse eval` (LPIPS is also a loss term).
//! - [`imageio`]: image files in and out, contact sheets.
//! - [`pipelines`]: the jobs users run (upsample, align, restore, generate, downscale, bench,
//!   import, download, report merging, shards), each from a plain options struct, reporting through an observer.
//! - [`http`]: HTTP downloads (resume, proxies, backoff) for `pulse download`.
//! - [`files`]: atomic writes, same-file checks, the output-folder lock, path escaping.
//! - [`rng`]: seeded draws from libtorch's global generator, one thread at a time.
//! - [`device`] (`--device`), [`precision`] (`--precision`), [`system`] (GPU and process
//!   facts), [`ops`] (libtorch entry points tch lacks, from `csrc/`), [`parallel`] (scoped
//!   threads for the CPU loops written in Rust).
pub mod align;
pub mod device;
pub mod editing;
pub mod files;
pub mod http;
pub mod imageio;
pub mod latent;
pub mod metrics;
pub mod model;
pub mod model_info;
pub mod ops;
pub mod parallel;
pub mod pipelines;
pub mod precision;
pub mod pulse;
pub mod rng;
pub mod stylegan;
pub mod system;
pub mod weights;

/// A request that cannot be carried out as asked (a setting out of range for this model, a
/// combination of options that does not make sense) or an input that cannot be used: the one
/// way to say "refused". The command line reports it as a usage error (exit code 2), like a
/// bad flag, wherever it is in an error's chain.
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

/// One table of names for the variants of a plain enum, from which `NAMES`, `name()` and
/// `FromStr` are all made, so the three cannot disagree: the command line lists and parses the
/// names, reports write them.
///
/// `named_variants!(Schedule, "schedule", { Fixed => "fixed", Linear1Cycle => "linear1cycle" });`
#[macro_export]
macro_rules! named_variants {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every name `FromStr` accepts, in the order `--help` lists them.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name the command line and the reports use.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(format!(
                        "unknown {} '{s}' (expected one of: {})",
                        $what,
                        Self::NAMES.join(", ")
                    )),
                }
            }
        }
    };
}
