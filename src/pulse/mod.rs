//! The PULSE search (Menon et al., CVPR 2020): find a latent whose StyleGAN image, downscaled,
//! matches a low-resolution target, while staying on the sphere where the latent prior lives.
//! docs/design.md ("The search") states what each part computes.
pub mod downscale;
pub mod gaussian_fit;
pub mod ilo;
pub mod loss;
pub mod method;
pub mod optim;
pub mod schedule;
pub mod search;
mod step;

pub use downscale::Downscaler;
pub use gaussian_fit::GaussianFit;
pub use loss::{LossSpec, LossTarget, Term};
pub use method::{IloConfig, IloRadius, Method};
pub use optim::{OptimizerKind, SphericalOptimizer};
pub use schedule::Schedule;
pub use search::{NoiseMode, SearchConfig, SearchOutcome, Start};

/// How a run that its caller can stop ended: with its result, or stopped between two steps
/// because the caller said so (Ctrl-C), in which case there is no result to write.
#[derive(Debug)]
pub enum Outcome<T> {
    Completed(T),
    Interrupted,
}

impl<T> Outcome<T> {
    /// The result, or `None` when interrupted.
    pub fn completed(self) -> Option<T> {
        match self {
            Outcome::Completed(t) => Some(t),
            Outcome::Interrupted => None,
        }
    }
}
