//! Latent editing (docs/design.md, "Editing"; docs/editing.md): RGBA targets from a region map
//! ([`target`]), directions in W+ between pairs of latents ([`direction`]), applying them to
//! other faces ([`edit`]), and embedding real photos into W+ the Image2StyleGAN way ([`embed`],
//! with the optional VGG16 perceptual term in [`vgg`]).
pub mod direction;
pub mod edit;
pub mod embed;
pub mod target;
pub mod vgg;

pub use direction::Direction;
pub use edit::{apply, LayerMask};
pub use embed::{embed, EmbedNoise, EmbedOptions, EmbedOutcome};
pub use target::{RegionMap, TargetColours};

use crate::latent::LatentFile;
use crate::model::Model;
use crate::pulse::search::{self, Progress};
use crate::pulse::{LossTarget, Outcome, SearchConfig, Start};
use tch::Tensor;

/// Runs PULSE on one target (`rgb` [3,s,s], optional `alpha` [1,s,s] weights) from the start that
/// `seed` draws: the same seed on two targets gives "the same person" under both (docs/design.md,
/// "Editing"). Returns the best image [3,R,R] and the latent file (with its noise) that renders
/// it. `on_step(step, steps)` returns whether to go on.
pub fn search_target(
    model: &mut Model,
    rgb: &Tensor,
    alpha: Option<&Tensor>,
    seed: u64,
    config: &SearchConfig,
    on_step: &mut dyn FnMut(usize, usize) -> bool,
) -> anyhow::Result<Outcome<(Tensor, LatentFile)>> {
    let device = model.device;
    model.ensure_fit(&mut |_, _| {})?;
    let fit = model.fit.as_ref().expect("ensured above").to_device(device);
    let target = LossTarget {
        image: rgb.unsqueeze(0).to_device(device),
        weight: alpha.map(|a| a.unsqueeze(0).to_device(device)),
    };
    let start = Start::random(seed, model.layout(), config.tile_latent);
    let outcomes = search::search(
        model.synthesis.as_ref(),
        &fit,
        config,
        &target,
        start,
        device,
        &mut |p: Progress| on_step(p.step, p.steps),
    )?;
    let Some(outcome) = outcomes.completed().and_then(|mut o| o.pop()) else {
        return Ok(Outcome::Interrupted);
    };
    let latent = outcome.latent_file(&model.sha256, model.architecture(), seed);
    Ok(Outcome::Completed((outcome.image, latent)))
}
