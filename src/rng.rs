//! libtorch's global random generator. Every seeded draw in `pulse` (a search's start, a generated
//! face, an embedding's noise, the random networks of tests and benchmarks, the Gaussian fit) is
//! "seed the global generator, then draw"; two threads of one process doing that at once
//! interleave and draw each other's numbers. [`seeded`] makes the pair one critical section, so a
//! library user with several threads (and the test crate, whose tests share one process) gets
//! the same numbers as a lone run.
use std::cell::Cell;
use std::sync::{Mutex, MutexGuard};

static GLOBAL_GENERATOR: Mutex<()> = Mutex::new(());

thread_local! {
    /// Whether this thread is inside [`seeded`] already (a nested call must not wait for itself).
    static HELD: Cell<bool> = const { Cell::new(false) };
}

/// Seeds libtorch's global generator with `seed`, then runs `draw` while no other thread seeds
/// or draws through this module. A nested call on the same thread re-seeds and runs at once.
pub fn seeded<T>(seed: i64, draw: impl FnOnce() -> T) -> T {
    let _seeded = self::seed(seed);
    draw()
}

/// Seeds libtorch's global generator with `seed` and keeps it to this thread until the returned
/// guard is dropped: for a test or a loop whose draws are spread over many lines.
pub fn seed(seed: i64) -> Seeded {
    let lock = if HELD.with(Cell::get) {
        None
    } else {
        // A panic in another thread's draw leaves nothing half-done that matters here.
        let lock = GLOBAL_GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        HELD.with(|h| h.set(true));
        Some(lock)
    };
    tch::manual_seed(seed);
    Seeded { lock }
}

/// The global generator, seeded and held by this thread (see [`seed`]).
#[must_use = "the generator is only this thread's while the guard lives"]
pub struct Seeded {
    /// `None` for a nested guard: the outer one releases the lock.
    lock: Option<MutexGuard<'static, ()>>,
}

impl Drop for Seeded {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            HELD.with(|h| h.set(false));
            drop(lock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    fn draw(seed: i64) -> Vec<f32> {
        seeded(seed, || {
            let a = Tensor::randn([64], (Kind::Float, Device::Cpu));
            std::thread::yield_now();
            let b = Tensor::randn([64], (Kind::Float, Device::Cpu));
            Vec::<f32>::try_from(Tensor::cat(&[a, b], 0)).unwrap()
        })
    }

    /// Many threads drawing with their own seeds at once get what a lone draw gets.
    #[test]
    fn concurrent_seeded_draws_do_not_interleave() {
        let lone: Vec<Vec<f32>> = (0..8).map(draw).collect();
        let threads: Vec<_> = (0..8)
            .map(|s| std::thread::spawn(move || (0..20).map(|_| draw(s)).collect::<Vec<_>>()))
            .collect();
        for (s, t) in threads.into_iter().enumerate() {
            for got in t.join().unwrap() {
                assert_eq!(got, lone[s], "seed {s} drew another thread's numbers");
            }
        }
    }

    /// A nested call on one thread neither deadlocks nor keeps the outer seed's sequence.
    #[test]
    fn nested_calls_reseed() {
        let outer = seeded(1, || seeded(2, || Tensor::randn([4], (Kind::Float, Device::Cpu))));
        let plain = seeded(2, || Tensor::randn([4], (Kind::Float, Device::Cpu)));
        assert!(outer.equal(&plain));
    }

    /// Nothing in the library or its tests seeds the global generator except through [`seeded`].
    #[test]
    fn every_manual_seed_goes_through_seeded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut offenders = Vec::new();
        let mut dirs =
            vec![root.join("src"), root.join("tests"), root.join("benches"), root.join("examples")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("src/rng.rs")
                {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (i, line) in text.lines().enumerate() {
                        if line.contains("manual_seed(") {
                            offenders.push(format!(
                                "{}:{}: {}",
                                path.display(),
                                i + 1,
                                line.trim()
                            ));
                        }
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "seed through pulse::rng::seeded:\n{}", offenders.join("\n"));
    }
}
