//! The search engine of every command that searches (`upsample`, and through it `eval`;
//! `restore`; PULSE and ILO alike, which differ only inside [`search::search`]): the preamble
//! (settings, inputs and this shard's share of them, output checks, the folder's lock, the
//! Gaussian fit), then the batch and restart loop. A pipeline says what its jobs contribute
//! ([`Jobs`]: a job's batch key, seed, start, target and what to do when it is finished); the
//! engine does the rest, the same way for all.
use super::shard::ShardInfo;
use super::RunConfig;
use crate::files::{escaped, DirLock};
use crate::model::Model;
use crate::pulse::search::{self, Progress, SearchOutcome};
use crate::pulse::{GaussianFit, LossSpec, LossTarget, Outcome, SearchConfig, Start, Term};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// What a search command reports of its inputs and batches as it goes (the command line draws
/// progress bars from it); `upsample`'s and `restore`'s observers add what they count.
pub trait SearchObserver {
    fn refused(&mut self, _input: &Path, _error: &anyhow::Error) {}
    fn skipped(&mut self, _input: &Path, _output: &Path) {}
    fn batch_started(&mut self, _names: &[String], _steps: usize) {}
    /// Called after each step; `l2()` reads each item's L2 back from the device (a sync, so
    /// call it only when it is shown).
    fn step(&mut self, _step: usize, _steps: usize, _l2: &dyn Fn() -> Vec<f64>) {}
}

/// Takes the next batch from `queue`: its first job and up to `size - 1` more with the same
/// `key` (the target's side, its weighting), in queue order.
fn take_batch<J, K: PartialEq>(
    queue: &mut VecDeque<J>,
    size: usize,
    key: impl Fn(&J) -> K,
) -> Vec<J> {
    let Some(first) = queue.pop_front() else { return vec![] };
    let first_key = key(&first);
    let mut batch = vec![first];
    while batch.len() < size {
        match queue.iter().position(|j| key(j) == first_key) {
            Some(p) => batch.extend(queue.remove(p)),
            None => break,
        }
    }
    batch
}

/// Searches one batch from `starts` towards `target`, telling `observer` of each step (its
/// `l2()` reads each item's L2 back from the device). `None` when Ctrl-C (`stop`) ended it;
/// otherwise each item's outcome and its share of the seconds.
fn search_batch<O: SearchObserver + ?Sized>(
    model: &Model,
    fit: &GaussianFit,
    search: &SearchConfig,
    target: &LossTarget,
    starts: &[Start],
    stop: &AtomicBool,
    observer: &mut O,
) -> anyhow::Result<Option<(Vec<SearchOutcome>, f64)>> {
    let started = Instant::now();
    let outcome = search::search(
        model.synthesis.as_ref(),
        fit,
        search,
        target,
        Start::batch(starts),
        model.device,
        &mut |p: Progress| {
            observer.step(p.step, p.steps, &|| {
                Vec::try_from(p.values.to_device(Device::Cpu).to_kind(Kind::Double))
                    .unwrap_or_default()
            });
            !stop.load(Ordering::SeqCst)
        },
    )?;
    let Outcome::Completed(outcomes) = outcome else { return Ok(None) };
    let share = started.elapsed().as_secs_f64() / starts.len().max(1) as f64;
    Ok(Some((outcomes, share)))
}

/// Whether attempt `new` beats `old`: a converged result beats one that is not, then the lower
/// best-step L2 (ILO: MSE) wins (the total where the loss has neither).
fn beats(new: &SearchOutcome, old: &SearchOutcome, loss: &LossSpec) -> bool {
    let l2 = loss.terms.iter().position(|(_, t)| matches!(t, Term::L2 | Term::Mse));
    let value = |o: &SearchOutcome| l2.map_or(o.best.total, |i| o.best.terms[i]);
    (new.converged && !old.converged) || (new.converged == old.converged && value(new) < value(old))
}

/// Refuses settings that cannot run on this model and device, before anything is read, and
/// sets the synthesis to the run's precision.
pub fn prepare_model(
    model: &mut Model,
    run: &RunConfig,
    search: &SearchConfig,
    shard: Option<&ShardInfo>,
) -> anyhow::Result<()> {
    run.check(model.device)?;
    if let Some(s) = shard {
        super::shard::Shard::new(s.index, s.count)?;
    }
    search.check(model.layout())?;
    if model.synthesis.precision() != run.precision {
        model.synthesis.set_precision(run.precision);
    }
    Ok(())
}

/// The refusal of a run given nothing to work on: `what` (`image`, `photo`) named with the
/// files and folders given.
pub fn nothing_to_do(given: &[PathBuf], what: &str) -> anyhow::Error {
    crate::Invalid(format!(
        "nothing to do: no {what} in {} ({what}s are {})",
        given.iter().map(|p| escaped(p)).collect::<Vec<_>>().join(", "),
        crate::imageio::INPUT_EXTENSIONS.join(", ")
    ))
    .into()
}

/// This run's share of the job's inputs (`all`, sorted): its shard's, or all of them.
pub fn shard_inputs(all: &[PathBuf], shard: Option<&ShardInfo>) -> Vec<PathBuf> {
    match shard {
        Some(s) => s.shard().select(all.to_vec()),
        None => all.to_vec(),
    }
}

/// Checks, before any work, that the output folder and the report can be written and that the
/// report is none of `protected` (inputs, model files).
pub fn check_output_places(
    out_dir: &Path,
    report: Option<&Path>,
    protected: &[&Path],
) -> anyhow::Result<()> {
    crate::files::check_writable_dir(out_dir).map_err(|e| {
        crate::Invalid(format!("{}: cannot write in the output folder: {e}", escaped(out_dir)))
    })?;
    if let Some(report) = report {
        crate::files::check_writable_dir(crate::files::parent_dir(report)).map_err(|e| {
            crate::Invalid(format!("{}: cannot write the report there: {e}", escaped(report)))
        })?;
        crate::files::check_no_clobber(protected, &[report])?;
    }
    Ok(())
}

/// Takes the output folder's lock (one per shard, docs/design.md, "Shards") and makes sure the
/// model has its Gaussian fit; the lock is held until the returned value is dropped.
pub fn lock_and_fit(
    model: &mut Model,
    out_dir: &Path,
    shard: Option<&ShardInfo>,
) -> anyhow::Result<DirLock> {
    let lock = super::shard::lock_output_dir(out_dir, shard.map(ShardInfo::shard))?;
    model.ensure_fit(&mut |_, _| {})?;
    Ok(lock)
}

/// The winning search of a job: its outcome, the attempt that found it and that attempt's seed.
pub struct Best {
    pub outcome: SearchOutcome,
    pub attempt: usize,
    pub seed: u64,
}

/// One job's low-resolution target: `[3,H,W]` on any device, and its per-pixel weight.
pub struct Target {
    pub image: Tensor,
    pub weight: Option<Tensor>,
}

/// What a pipeline's jobs contribute to the engine. A job is one search to run (a sample of an
/// input, a sample of a face of a photo); the engine batches them, restarts those that did not
/// converge and hands each back with its best attempt.
pub trait Jobs {
    /// One search to run.
    type Job;
    /// What the jobs of one batch share (the target's side, its weighting).
    type Key: PartialEq;
    /// The observer the pipeline reports to; the engine tells it of batches and steps.
    type Observer: SearchObserver + ?Sized;

    fn key(&self, job: &Self::Job) -> Self::Key;
    /// Its name in progress messages.
    fn name(&self, job: &Self::Job) -> String;
    /// The seed of its `attempt`: from the run's seed and the job's identity, so a result does not
    /// depend on the batch it ran in ([`super::item_seed`]).
    fn seed(&self, job: &Self::Job, attempt: usize) -> u64;
    /// Where its `attempt` starts.
    fn start(
        &self,
        job: &Self::Job,
        attempt: usize,
        seed: u64,
        fit: &GaussianFit,
    ) -> anyhow::Result<Start>;
    fn target(&self, job: &Self::Job) -> Target;
    /// The job is done (converged, or out of restarts): write what it gives.
    fn finish(
        &mut self,
        job: Self::Job,
        best: Best,
        seconds: f64,
        observer: &mut Self::Observer,
    ) -> anyhow::Result<()>;
}

/// A job in the engine's queue, with its attempts so far.
struct Queued<J> {
    job: J,
    attempt: usize,
    best: Option<Best>,
    seconds: f64,
}

/// How a [`search_all`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Searched {
    /// Every job finished.
    Done,
    /// Ctrl-C (`stop`) ended a batch; the jobs not finished are not written.
    Interrupted,
}

/// Searches `queue` batch by batch (jobs of one key together, in queue order); a job that did
/// not converge goes back in the queue for another attempt (a new seed) while it has
/// `run.restarts` left, keeping the better attempt ([`beats`]); each job is finished as soon as
/// it is done.
pub fn search_all<J: Jobs>(
    model: &Model,
    search: &SearchConfig,
    run: &RunConfig,
    jobs: &mut J,
    queue: impl IntoIterator<Item = J::Job>,
    observer: &mut J::Observer,
    stop: &AtomicBool,
) -> anyhow::Result<Searched> {
    let device = model.device;
    let fit = model.fit.as_ref().expect("fitted by lock_and_fit").to_device(device);
    let mut queue: VecDeque<Queued<J::Job>> =
        queue.into_iter().map(|job| Queued { job, attempt: 0, best: None, seconds: 0.0 }).collect();
    loop {
        let batch = take_batch(&mut queue, run.batch_size, |q| jobs.key(&q.job));
        if batch.is_empty() {
            return Ok(Searched::Done);
        }
        let names: Vec<String> = batch.iter().map(|q| jobs.name(&q.job)).collect();
        observer.batch_started(&names, search.total_steps());
        let seeds: Vec<u64> = batch.iter().map(|q| jobs.seed(&q.job, q.attempt)).collect();
        let starts = batch
            .iter()
            .zip(&seeds)
            .map(|(q, &seed)| jobs.start(&q.job, q.attempt, seed, &fit))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let target = stack_targets(batch.iter().map(|q| jobs.target(&q.job)).collect(), device);
        let searched = search_batch(model, &fit, search, &target, &starts, stop, observer)?;
        let Some((outcomes, share)) = searched else { return Ok(Searched::Interrupted) };
        for ((mut q, outcome), seed) in batch.into_iter().zip(outcomes).zip(seeds) {
            q.seconds += share;
            if q.best.as_ref().is_none_or(|b| beats(&outcome, &b.outcome, &search.loss)) {
                q.best = Some(Best { outcome, attempt: q.attempt, seed });
            }
            let converged = q.best.as_ref().is_some_and(|b| b.outcome.converged);
            if !converged && q.attempt < run.restarts {
                q.attempt += 1;
                queue.push_back(q);
                continue;
            }
            let best = q.best.expect("a searched job has a result");
            jobs.finish(q.job, best, q.seconds, observer)?;
        }
    }
}

/// A batch's targets stacked on `device`; weighted when its first is (a batch shares its
/// weighting: it is part of the key).
fn stack_targets(targets: Vec<Target>, device: Device) -> LossTarget {
    let stack = |t: Vec<Tensor>| Tensor::stack(&t, 0).to_device(device);
    let weighted = targets.first().is_some_and(|t| t.weight.is_some());
    let (images, weights): (Vec<Tensor>, Vec<Option<Tensor>>) =
        targets.into_iter().map(|t| (t.image, t.weight)).unzip();
    LossTarget {
        image: stack(images),
        weight: weighted.then(|| {
            stack(weights.into_iter().map(|w| w.expect("a batch shares its weighting")).collect())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_take_jobs_of_the_first_key_in_order() {
        let mut queue: VecDeque<(u32, &str)> =
            [(1, "a"), (2, "b"), (1, "c"), (1, "d"), (1, "e")].into_iter().collect();
        assert_eq!(take_batch(&mut queue, 3, |j| j.0), [(1, "a"), (1, "c"), (1, "d")]);
        assert_eq!(take_batch(&mut queue, 3, |j| j.0), [(2, "b")]);
        assert_eq!(take_batch(&mut queue, 3, |j| j.0), [(1, "e")]);
        assert!(take_batch(&mut queue, 3, |j| j.0).is_empty());
    }
}
