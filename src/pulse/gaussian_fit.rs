//! The Gaussian fit of PULSE (docs/design.md, "The latent space"): mean and std of
//! `leaky_relu(mapping(z), 5.0)`, the mapping output with its last leaky ReLU undone. The search
//! runs in this whitened space and maps back with `leaky_relu(latent * std + mean, 0.2)`.
use crate::stylegan::{MappingNetwork, LATENT_DIM};
use tch::{Device, Kind, Tensor};

/// Mean and std [512] of the un-activated mapping output.
#[derive(Debug)]
pub struct GaussianFit {
    pub mean: Tensor,
    pub std: Tensor,
}

impl GaussianFit {
    /// A plausible random fit (as the baseline script draws it), for benchmarks and tests.
    pub fn random(device: Device) -> Self {
        let mean = Tensor::randn([LATENT_DIM], (Kind::Float, Device::Cpu)) * 0.3;
        let std = Tensor::rand([LATENT_DIM], (Kind::Float, Device::Cpu)) * 0.5 + 0.2;
        Self { mean: mean.to_device(device), std: std.to_device(device) }
    }

    pub fn to_device(&self, device: Device) -> Self {
        Self { mean: self.mean.to_device(device), std: self.std.to_device(device) }
    }

    /// Fits `samples` draws of z ~ N(0, I) seeded with `seed`, in chunks of `chunk`; `progress`
    /// is called with the number of samples done. Moments are merged chunk by chunk in float64
    /// (Chan et al.'s pairwise update), which stays exact where the spread is tiny next to the
    /// mean, as with random mapping weights.
    pub fn compute(
        mapping: &dyn MappingNetwork,
        samples: i64,
        chunk: i64,
        seed: i64,
        device: Device,
        progress: &mut dyn FnMut(i64),
    ) -> anyhow::Result<Self> {
        let never = std::sync::atomic::AtomicBool::new(false);
        let fit = Self::compute_until(mapping, samples, chunk, seed, device, progress, &never)?;
        Ok(fit.expect("never stopped"))
    }

    /// [`compute`](Self::compute) that checks `stop` between chunks: `None` once it is set.
    pub fn compute_until(
        mapping: &dyn MappingNetwork,
        samples: i64,
        chunk: i64,
        seed: i64,
        device: Device,
        progress: &mut dyn FnMut(i64),
        stop: &std::sync::atomic::AtomicBool,
    ) -> anyhow::Result<Option<Self>> {
        let mut moments = Moments::new(device);
        // Seeded once, drawn chunk by chunk: the whole loop is one seeded draw.
        crate::rng::seeded(seed, || {
            tch::no_grad(|| -> anyhow::Result<()> {
                while moments.count < samples {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        return Ok(());
                    }
                    let n = chunk.min(samples - moments.count);
                    let z = Tensor::randn([n, LATENT_DIM], (Kind::Float, Device::Cpu))
                        .to_device(device);
                    let w = crate::stylegan::leaky_relu(&mapping.forward(&z)?, 5.0)?;
                    moments.add(&w.to_kind(Kind::Double));
                    progress(moments.count);
                }
                Ok(())
            })
        })?;
        if moments.count < samples {
            return Ok(None);
        }
        let (mean, std) = moments.mean_std();
        Ok(Some(Self { mean: mean.to_kind(Kind::Float), std: std.to_kind(Kind::Float) }))
    }
}

/// Running count, mean and sum of squared deviations of rows.
struct Moments {
    count: i64,
    mean: Tensor,
    m2: Tensor,
}

impl Moments {
    fn new(device: Device) -> Self {
        let zeros = || Tensor::zeros([LATENT_DIM], (Kind::Double, device));
        Self { count: 0, mean: zeros(), m2: zeros() }
    }

    /// Merges a chunk of rows [n, D].
    fn add(&mut self, x: &Tensor) {
        let n = x.size()[0];
        let mean_b = x.mean_dim(0, false, Kind::Double);
        let m2_b = (x - &mean_b).square().sum_dim_intlist(0, false, Kind::Double);
        let total = (self.count + n) as f64;
        let delta = &mean_b - &self.mean;
        self.mean = &self.mean + &delta * (n as f64 / total);
        self.m2 = &self.m2 + m2_b + delta.square() * (self.count as f64 * n as f64 / total);
        self.count += n;
    }

    /// Mean and unbiased standard deviation.
    fn mean_std(&self) -> (Tensor, Tensor) {
        (self.mean.shallow_clone(), (&self.m2 / (self.count as f64 - 1.0)).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_moments_equal_one_pass_moments() {
        let _seed = crate::rng::seed(3);
        let x = Tensor::randn([1000, LATENT_DIM], (Kind::Double, Device::Cpu)) * 1e-6 + 5.0;
        let mut m = Moments::new(Device::Cpu);
        for chunk in x.split(300, 0) {
            m.add(&chunk);
        }
        let (mean, std) = m.mean_std();
        let want_std = x.std_dim(0, true, false);
        assert!((mean - x.mean_dim(0, false, Kind::Double)).abs().max().double_value(&[]) < 1e-12);
        assert!(((std - &want_std) / want_std).abs().max().double_value(&[]) < 1e-6);
    }
}
