//! Scoped-thread loops for the CPU work done in plain Rust (restore's paste-back and
//! enlargement), sized like libtorch's own: as many threads as it uses (`OMP_NUM_THREADS`, or
//! the cores), fewer where the work is too small to be worth starting one.

/// Multiply-adds below which a thread is not worth starting.
const WORK_PER_THREAD: usize = 1 << 20;

/// How many threads `work` multiply-adds over `items` items are worth: as many as libtorch uses
/// for its own work (`OMP_NUM_THREADS`, or the cores), fewer for small work.
fn threads_for(work: usize, items: usize) -> usize {
    (tch::get_num_threads().max(1) as usize).min(work / WORK_PER_THREAD + 1).min(items.max(1))
}

/// Calls `f` on every item, the items split in order among scoped threads ([`threads_for`]).
pub fn parallel<T: Send>(items: Vec<T>, work: usize, f: impl Fn(T) + Sync) {
    let threads = threads_for(work, items.len());
    if threads <= 1 {
        items.into_iter().for_each(f);
        return;
    }
    let per = items.len().div_ceil(threads);
    let mut items = items.into_iter();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let chunk: Vec<T> = items.by_ref().take(per).collect();
            let f = &f;
            scope.spawn(move || chunk.into_iter().for_each(f));
        }
    });
}

/// `items.iter().map(f)` on scoped threads ([`threads_for`]), each taking every n-th item so
/// that items of unequal cost share out evenly; the results in the items' order.
pub fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    work: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads_for(work, items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                scope.spawn(move || {
                    items
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, x)| (i, f(x)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a worker thread panicked")).collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_visits_every_item_once() {
        let mut seen = vec![0u8; 1000];
        parallel(seen.iter_mut().collect(), usize::MAX, |v| *v += 1);
        assert!(seen.iter().all(|&v| v == 1));
        let items: Vec<usize> = (0..1001).collect();
        let squares = parallel_map(&items, usize::MAX, |i| i * i);
        assert!(squares.iter().enumerate().all(|(i, &v)| v == i * i));
    }
}
