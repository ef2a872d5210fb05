//! What `upsample` and `restore` share to search their jobs batch by batch: taking a batch of
//! jobs whose targets fit together, searching it with progress and Ctrl-C, and keeping the
//! better of two attempts.
use crate::model::Model;
use crate::pulse::search::{self, Progress, SearchOutcome};
use crate::pulse::{GaussianFit, LossSpec, LossTarget, Outcome, SearchConfig, Start, Term};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::{Device, Kind};

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
pub fn take_batch<J, K: PartialEq>(
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
pub fn search_batch<O: SearchObserver + ?Sized>(
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
pub fn beats(new: &SearchOutcome, old: &SearchOutcome, loss: &LossSpec) -> bool {
    let l2 = loss.terms.iter().position(|(_, t)| matches!(t, Term::L2 | Term::Mse));
    let value = |o: &SearchOutcome| l2.map_or(o.best.total, |i| o.best.terms[i]);
    (new.converged && !old.converged) || (new.converged == old.converged && value(new) < value(old))
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
