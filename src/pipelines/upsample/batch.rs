//! What `upsample`'s jobs contribute to the search engine ([`crate::pipelines::engine`]): a
//! batch holds jobs whose targets have the same side and weighting; each job starts from its
//! own seed (or its `--init` latent), so its result does not depend on the batch it runs in;
//! a finished job's outputs and report entry are written at once.
use super::inputs::Input;
use super::plan::Outputs;
use super::report::UpsampleReport;
use super::{UpsampleObserver, UpsampleOptions};
use crate::model::Model;
use crate::pipelines::engine::{Best, Jobs, Target};
use crate::pulse::search::from_w_plus;
use crate::pulse::{GaussianFit, Start};
use crate::stylegan::Layout;
use anyhow::bail;
use tch::Device;

/// One search to run: a sample of an input, and the files it gives.
pub(super) struct Job {
    pub input: usize,
    pub sample: usize,
    pub outputs: Outputs,
}

/// A run's searches: its inputs, and the report their results go in.
pub(super) struct Searches<'a> {
    pub model: &'a Model,
    pub opts: &'a UpsampleOptions,
    pub inputs: &'a [Input],
    pub report: &'a mut UpsampleReport,
}

impl<'a> Jobs for Searches<'a> {
    type Job = Job;
    type Key = (i64, bool);
    type Observer = dyn UpsampleObserver + 'a;

    fn key(&self, job: &Job) -> (i64, bool) {
        let input = &self.inputs[job.input];
        (input.target.rgb.size()[2], input.weight.is_some())
    }

    fn name(&self, job: &Job) -> String {
        job.outputs.name()
    }

    fn seed(&self, job: &Job, attempt: usize) -> u64 {
        let name = self.inputs[job.input].name();
        crate::pipelines::item_seed(self.opts.run.seed, &name, job.sample, attempt)
    }

    fn start(
        &self,
        job: &Job,
        attempt: usize,
        seed: u64,
        fit: &GaussianFit,
    ) -> anyhow::Result<Start> {
        let (layout, tile) = (self.model.layout(), self.opts.search.tile_latent);
        start(&self.inputs[job.input], attempt, seed, layout, tile, fit)
    }

    fn target(&self, job: &Job) -> Target {
        let input = &self.inputs[job.input];
        Target {
            image: input.target.rgb.shallow_clone(),
            weight: input.weight.as_ref().map(|w| w.shallow_clone()),
        }
    }

    fn finish(
        &mut self,
        job: Job,
        best: Best,
        seconds: f64,
        observer: &mut Self::Observer,
    ) -> anyhow::Result<()> {
        let input = &self.inputs[job.input];
        let record = super::outputs::write(self.model, self.opts, input, job, best, seconds)?;
        observer.finished(&record);
        self.report.images.push(record);
        if let Some(path) = &self.opts.report {
            self.report.write(path)?;
        }
        Ok(())
    }
}

/// The starting point of one job: its `--init` latent on the first attempt, else a seeded draw.
fn start(
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
