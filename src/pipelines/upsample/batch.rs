//! Grouping jobs into batches and giving each its start: a batch holds jobs whose targets have
//! the same side and weighting; each job starts from its own seed (or its `--init` latent), so
//! its result does not depend on the batch it runs in.
use super::inputs::Input;
use super::outputs::Best;
use super::plan::Outputs;
use super::UpsampleOptions;
use crate::pipelines::batches::{beats, take_batch};
use crate::pulse::search::{from_w_plus, SearchOutcome};
use crate::pulse::{GaussianFit, LossTarget, Start};
use crate::stylegan::Layout;
use anyhow::bail;
use std::collections::VecDeque;
use tch::{Device, Tensor};

/// One search to run: a sample of an input, with its best result so far over attempts.
pub(super) struct Job {
    pub input: usize,
    pub sample: usize,
    pub outputs: Outputs,
    pub attempt: usize,
    pub best: Option<Best>,
    pub seconds: f64,
}

impl Job {
    pub fn new(input: usize, sample: usize, outputs: Outputs) -> Self {
        Self { input, sample, outputs, attempt: 0, best: None, seconds: 0.0 }
    }

    /// The seed of this job's current attempt.
    pub fn seed(&self, opts: &UpsampleOptions, inputs: &[Input]) -> u64 {
        crate::pipelines::item_seed(
            opts.run.seed,
            &inputs[self.input].name(),
            self.sample,
            self.attempt,
        )
    }

    /// Keeps `outcome` if it beats the best so far ([`crate::pipelines::batches::beats`]).
    pub fn offer(&mut self, outcome: SearchOutcome, seed: u64, opts: &UpsampleOptions) {
        let loss = &opts.search.loss;
        if self.best.as_ref().is_none_or(|b| beats(&outcome, &b.outcome, loss)) {
            self.best = Some(Best { outcome, attempt: self.attempt, seed });
        }
    }

    pub fn converged(&self) -> bool {
        self.best.as_ref().is_some_and(|b| b.outcome.converged)
    }
}

fn batch_key(input: &Input) -> (i64, bool) {
    (input.target.rgb.size()[2], input.weight.is_some())
}

/// Takes the next batch from the queue: its first job and up to `size - 1` more that fit with it.
pub(super) fn next_batch(queue: &mut VecDeque<Job>, inputs: &[Input], size: usize) -> Vec<Job> {
    take_batch(queue, size, |j| batch_key(&inputs[j.input]))
}

/// The stacked targets (and weights) of a batch, on `device`.
pub(super) fn target(batch: &[Job], inputs: &[Input], device: Device) -> LossTarget {
    let stack = |t: &dyn Fn(&Input) -> Tensor| {
        Tensor::stack(&batch.iter().map(|j| t(&inputs[j.input])).collect::<Vec<_>>(), 0)
            .to_device(device)
    };
    LossTarget {
        image: stack(&|i| i.target.rgb.shallow_clone()),
        weight: inputs[batch[0].input].weight.is_some().then(|| {
            stack(&|i| i.weight.as_ref().expect("a batch shares its weighting").shallow_clone())
        }),
    }
}

/// The starting point of one job: its `--init` latent on the first attempt, else a seeded draw.
pub(super) fn start(
    input: &Input,
    attempt: usize,
    seed: u64,
    layout: &Layout,
    tile: bool,
    fit: &GaussianFit,
) -> anyhow::Result<Start> {
    let init = match (&input.init, attempt) {
        (Some(init), 0) => init,
        _ => return Ok(Start::random(seed, layout, tile)),
    };
    let latent = match &init.latent {
        Some(l) => l.shallow_clone(),
        None => from_w_plus(&init.w_plus, &fit.to_device(Device::Cpu))?,
    };
    let latent = match (tile, latent.size()[0]) {
        (true, 1) => latent,
        (false, 1) => latent.expand([layout.w_rows as i64, -1], false).contiguous(),
        (false, _) => latent,
        (true, _) => bail!(
            "{}: a tiled search needs a [1,512] latent in the init file",
            crate::files::escaped(&input.path)
        ),
    };
    Ok(Start {
        latent: latent.unsqueeze(0),
        noise: init.noise.iter().map(|n| n.shallow_clone()).collect(),
    })
}
