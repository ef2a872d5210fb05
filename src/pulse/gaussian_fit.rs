//! The Gaussian fit of PULSE (docs/pulse-spec.md section 4, "Gaussian fit"): mean and std of
//! `leaky_relu(mapping(z), 5.0)`, the mapping output with its last leaky ReLU undone. The search
//! runs in this whitened space and maps back with `leaky_relu(latent * std + mean, 0.2)`.
use crate::stylegan::{Mapping, LATENT_DIM};
use tch::{Device, Kind, Tensor};

/// Mean and std [512] of the un-activated mapping output.
#[derive(Debug)]
pub struct GaussianFit {
    pub mean: Tensor,
    pub std: Tensor,
}

impl GaussianFit {
    pub fn to_device(&self, device: Device) -> Self {
        Self { mean: self.mean.to_device(device), std: self.std.to_device(device) }
    }

    /// Fits `samples` draws of z ~ N(0, I) seeded with `seed`, in chunks of `chunk`; `progress`
    /// is called with the number of samples done. Sums are kept in float64.
    pub fn compute(
        mapping: &Mapping,
        samples: i64,
        chunk: i64,
        seed: i64,
        device: Device,
        progress: &mut dyn FnMut(i64),
    ) -> Self {
        tch::manual_seed(seed);
        let opts = (Kind::Double, device);
        let mut sum = Tensor::zeros([LATENT_DIM], opts);
        let mut sum_sq = Tensor::zeros([LATENT_DIM], opts);
        let mut done = 0;
        tch::no_grad(|| {
            while done < samples {
                let n = chunk.min(samples - done);
                let z = Tensor::randn([n, LATENT_DIM], (Kind::Float, Device::Cpu)).to_device(device);
                let x = crate::stylegan::leaky_relu(&mapping.forward(&z), 5.0).to_kind(Kind::Double);
                sum += x.sum_dim_intlist(0, false, Kind::Double);
                sum_sq += x.square().sum_dim_intlist(0, false, Kind::Double);
                done += n;
                progress(done);
            }
        });
        let n = samples as f64;
        let mean = &sum / n;
        let var = (sum_sq - &mean.square() * n) / (n - 1.0);
        Self { mean: mean.to_kind(Kind::Float), std: var.clamp_min(0.0).sqrt().to_kind(Kind::Float) }
    }
}
