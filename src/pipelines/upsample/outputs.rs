//! Writing one finished job: the best image, its latent file, and the comparison sheet and search
//! animation when asked for, each atomically; then its report entry.
use super::batch::Job;
use super::inputs::Input;
use super::report::ImageRecord;
use super::UpsampleOptions;
use crate::imageio;
use crate::pipelines::engine::Best;
use crate::pulse::search::StepValues;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// Writes the outputs of one finished job (its best attempt, its searches' `seconds`) and
/// returns its report entry.
pub(super) fn write(
    model: &crate::model::Model,
    opts: &UpsampleOptions,
    input: &Input,
    job: Job,
    best: Best,
    seconds: f64,
) -> anyhow::Result<ImageRecord> {
    let Job { sample, outputs, .. } = job;
    let Best { outcome, attempt, seed } = best;
    let (model_sha256, resolution) = (&model.sha256, model.layout().resolution);
    imageio::write_png(&outcome.image, &outputs.png)?;

    let mut latent = outcome.latent_file(model_sha256, model.architecture(), seed);
    latent.metadata.insert("source".into(), crate::files::escaped(&input.path));
    latent.write(&outputs.latent)?;

    if let Some(path) = &outputs.compare {
        imageio::write_png(&comparison(&outcome.image, &input.target.rgb, resolution)?, path)?;
    }
    if let Some(path) = &outputs.gif {
        if !outcome.intermediate.is_empty() {
            imageio::write_animation(&outcome.intermediate, path, 80)?;
        }
    }

    let names: Vec<&str> = opts.search.loss.terms.iter().map(|(_, t)| t.name()).collect();
    let row = |v: &StepValues| -> BTreeMap<String, serde_json::Value> {
        let mut m: BTreeMap<String, serde_json::Value> =
            names.iter().map(|n| n.to_string()).zip(v.terms.iter().map(|&x| x.into())).collect();
        m.insert("total".into(), v.total.into());
        m
    };
    let history = outcome
        .history
        .iter()
        .map(|v| {
            let mut m = row(v);
            m.insert("step".into(), v.step.into());
            m.insert("lr".into(), v.lr.into());
            if let Some(round) = v.round {
                m.insert("round".into(), round.into());
            }
            m
        })
        .collect();
    Ok(ImageRecord {
        input: input.path.clone(),
        outputs: outputs.all().filter(|p| p.is_file()).cloned().collect(),
        sample,
        seed,
        attempt,
        converged: outcome.converged,
        best_step: outcome.best_step,
        best: row(&outcome.best),
        seconds,
        history,
    })
}

/// Input (blown up without smoothing) | result | result downscaled to the input's side and blown
/// up: what the search matched, side by side.
fn comparison(image: &Tensor, target: &Tensor, resolution: i64) -> anyhow::Result<Tensor> {
    let factor = resolution / target.size()[2];
    let down = crate::pulse::Downscaler::new(factor, Device::Cpu)?
        .forward(&image.to_kind(Kind::Float).unsqueeze(0))?
        .squeeze_dim(0);
    Ok(Tensor::cat(
        &[
            imageio::upscale_nearest(target, resolution),
            image.shallow_clone(),
            imageio::upscale_nearest(&down.clamp(0.0, 1.0), resolution),
        ],
        2,
    ))
}
