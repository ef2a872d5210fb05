//! The PULSE search (Menon et al., CVPR 2020): find a latent whose StyleGAN image, downscaled,
//! matches a low-resolution target, while staying on the sphere where the latent prior lives.
//! docs/pulse-spec.md section 4 states what each part computes.
pub mod downscale;
pub mod gaussian_fit;
pub mod loss;
pub mod optim;
pub mod schedule;
pub mod search;

pub use downscale::Downscaler;
pub use gaussian_fit::GaussianFit;
pub use loss::{LossSpec, LossTarget, Term};
pub use optim::{OptimizerKind, SphericalOptimizer};
pub use schedule::Schedule;
pub use search::{NoiseMode, SearchConfig, SearchOutcome, Start};
