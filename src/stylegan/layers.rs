//! Equalized-learning-rate layers (Karras et al. 2018, section 4.1): weights are stored at unit
//! scale and multiplied at run time by `gain / sqrt(fan_in)` (times a learning-rate multiplier
//! for the mapping network). The weights are frozen, so the product is computed once.
use tch::{nn, Kind, Tensor};

/// A weight tensor stored in the VarStore plus its run-time scale; `scaled` caches the product.
#[derive(Debug)]
pub(crate) struct ScaledWeight {
    raw: Tensor,
    scale: f64,
    scaled: Option<Tensor>,
}

impl ScaledWeight {
    pub(crate) fn new(vs: nn::Path, name: &str, shape: &[i64], scale: f64) -> Self {
        Self { raw: vs.zeros_no_train(name, shape), scale, scaled: None }
    }

    /// Recomputes the cached product in `kind`; call after the weights are loaded.
    pub(crate) fn prepare(&mut self, kind: Kind) {
        self.scaled = Some(tch::no_grad(|| (&self.raw * self.scale).to_kind(kind)));
    }

    /// The scaled weight. Before `prepare` it is computed on the fly.
    pub(crate) fn get(&self) -> Tensor {
        match &self.scaled {
            Some(t) => t.shallow_clone(),
            None => &self.raw * self.scale,
        }
    }
}

/// `leaky_relu(x, slope)`. tch exposes leaky ReLU only at its default slope 0.01; this calls
/// libtorch's own through `crate::ops`.
pub fn leaky_relu(x: &Tensor, slope: f64) -> anyhow::Result<Tensor> {
    crate::ops::leaky_relu(x, slope)
}

/// The same function as PReLU with a one-element weight: the form [`leaky_relu`] replaced, kept
/// as the reference it is tested against (its backward also computes a weight gradient).
pub(crate) fn leaky_relu_reference(x: &Tensor, slope: f64) -> anyhow::Result<Tensor> {
    // Filled on the device (no host copy, so a CUDA graph can capture it).
    let weight = Tensor::full([1], slope, (x.kind(), x.device()));
    Ok(x.f_prelu(&weight)?)
}

/// Fills every variable of `vs` (in name order, after seeding the global generator with `seed`)
/// with `draw(name, variable)`: the random networks of the benchmarks and tests.
pub(crate) fn fill_random(vs: &nn::VarStore, seed: i64, draw: impl Fn(&str, &Tensor) -> Tensor) {
    crate::rng::seeded(seed, || {
        tch::no_grad(|| {
            let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, mut t) in vars {
                let r = draw(&name, &t);
                t.copy_(&r);
            }
        })
    });
}
