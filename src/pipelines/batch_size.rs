//! `--batch-size auto`: how many searches run together. On CUDA, the fastest batch per image
//! that fits in free GPU memory (by a per-image estimate of the search's activations): as many as
//! fit, but at most [`AUTO_BATCH_MAX`]; 1 on the CPU, where batching gains nothing
//! (docs/performance.md).
use crate::precision::Precision;
use crate::stylegan::Layout;
use tch::Device;

/// The largest batch `auto` picks. On an H200 (docs/performance.md, "GPU") the time per image fell from
/// batch 1 to 4 to 16 in every precision (fp32 25.5, 11.2, 8.2 ms; fp16 19.1, 6.2, 4.5 ms), by
/// 1.3-1.5x from 4 to 16: the step was then compute-bound, and a larger batch only adds memory
/// and the wait for the first result. Nothing larger has been measured; scripts/gpu-check.sh
/// prints the table this bound should be revised from.
pub const AUTO_BATCH_MAX: usize = 16;

/// The batch size for a search on a network of this layout, device and precision.
pub fn auto_batch_size(config: &Layout, device: Device, precision: Precision) -> usize {
    let Device::Cuda(index) = device else { return 1 };
    let Some(free) = crate::system::cuda_free_bytes(index) else { return 1 };
    batch_that_fits(free, config, precision)
}

/// Searches that fit in `free` bytes, keeping 20% spare, between 1 and [`AUTO_BATCH_MAX`].
/// Half-precision activations take about 60% of the float32 memory.
pub fn batch_that_fits(free: u64, config: &Layout, precision: Precision) -> usize {
    let mut per_image = search_bytes_per_image(config);
    if precision.autocast_kind().is_some() {
        per_image = per_image * 6 / 10;
    }
    ((free as f64 * 0.8 / per_image as f64) as usize).clamp(1, AUTO_BATCH_MAX)
}

/// Rough GPU memory of one search image: float32 activations kept for the backward pass, about
/// 12 tensors of the block's size per layer (conv, blur, noise, activation, norm, style), plus 50%.
pub fn search_bytes_per_image(config: &Layout) -> u64 {
    let per_block: u64 = config
        .channels
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let side = 4u64 << i;
            12 * c as u64 * side * side * 4
        })
        .sum();
    per_block * 3 / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stylegan::stylegan1::SynthesisConfig;

    /// The CPU never batches automatically, and the FFHQ estimate stays above what a search
    /// really took (1.79 GiB per image measured at batch 2, docs/performance.md) without
    /// wasting more than about 2x of it.
    #[test]
    fn one_on_the_cpu_and_the_ffhq_estimate_is_safe() {
        let ffhq = SynthesisConfig::ffhq().layout();
        assert_eq!(auto_batch_size(&ffhq, Device::Cpu, Precision::Fp32), 1);
        let gib = search_bytes_per_image(&ffhq) as f64 / (1u64 << 30) as f64;
        assert!((1.79..4.0).contains(&gib), "FFHQ estimate {gib} GiB per image");
        let small = SynthesisConfig::with_fmap_max(128, 512).layout();
        let ratio = search_bytes_per_image(&ffhq) as f64 / search_bytes_per_image(&small) as f64;
        assert!(ratio > 5.0, "a 128x128 network should need far less memory ({ratio}x)");
    }

    #[test]
    fn fits_what_free_memory_allows() {
        let ffhq = SynthesisConfig::ffhq().layout();
        let per = search_bytes_per_image(&ffhq);
        assert_eq!(batch_that_fits(0, &ffhq, Precision::Fp32), 1);
        assert_eq!(batch_that_fits(per * 10, &ffhq, Precision::Fp32), 8);
        assert_eq!(batch_that_fits(per * 10, &ffhq, Precision::Fp16), 13);
        assert_eq!(batch_that_fits(u64::MAX / 2, &ffhq, Precision::Fp32), AUTO_BATCH_MAX);
    }
}
