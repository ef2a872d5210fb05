//! The jobs users run, built from the networks (`stylegan`), the search (`pulse`) and the file
//! formats. Each takes a plain options struct and reports through an observer; none prints.
pub mod align;
pub mod bench;
pub mod generate;
pub mod upsample;

pub use generate::render;

/// `--batch-size auto`: on CUDA, as many searches as fit in free GPU memory (measured per image
/// for this network at about 1.5x the activations of one forward+backward); 1 on the CPU, where
/// batching gains nothing.
pub fn auto_batch_size(model: &crate::model::Model) -> usize {
    auto_batch_size_for(model.config(), model.device, model.synthesis.precision())
}

/// [`auto_batch_size`] for a network shape, device and precision (half-precision activations
/// take about half the memory).
pub fn auto_batch_size_for(
    config: &crate::stylegan::SynthesisConfig,
    device: tch::Device,
    precision: crate::device::Precision,
) -> usize {
    let tch::Device::Cuda(index) = device else { return 1 };
    let Some(free) = crate::device::cuda_free_bytes(index) else { return 1 };
    let mut per_image = crate::device::search_bytes_per_image(config);
    if precision.autocast_kind().is_some() {
        per_image = per_image * 6 / 10;
    }
    ((free as f64 * 0.8 / per_image as f64) as usize).clamp(1, 64)
}

/// A stable per-item seed from the run's seed and the item's identity, so that a result does not
/// depend on the batch it ran in, the order of the files, or the shard that ran it.
pub fn item_seed(seed: u64, name: &str, sample: usize, attempt: usize) -> u64 {
    use sha2::{Digest, Sha256};
    let digest =
        Sha256::digest(format!("pulse-seed/1:{seed}:{name}:{sample}:{attempt}").as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) >> 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn item_seeds_differ_by_every_part_and_are_stable() {
        let s = super::item_seed(1, "a", 0, 0);
        assert_eq!(s, super::item_seed(1, "a", 0, 0));
        assert_ne!(s, super::item_seed(2, "a", 0, 0));
        assert_ne!(s, super::item_seed(1, "b", 0, 0));
        assert_ne!(s, super::item_seed(1, "a", 1, 0));
        assert_ne!(s, super::item_seed(1, "a", 0, 1));
        assert!(s < 1 << 63);
    }

    /// The CPU never batches automatically, and the FFHQ estimate stays above what a search
    /// really took (1.79 GiB per image measured at batch 2, docs/performance.md) without
    /// wasting more than about 2x of it.
    #[test]
    fn auto_batch_size_is_one_on_the_cpu_and_the_ffhq_estimate_is_safe() {
        use crate::stylegan::SynthesisConfig;
        let ffhq = SynthesisConfig::ffhq();
        let cpu = tch::Device::Cpu;
        assert_eq!(super::auto_batch_size_for(&ffhq, cpu, crate::device::Precision::Fp32), 1);
        let gib = crate::device::search_bytes_per_image(&ffhq) as f64 / (1u64 << 30) as f64;
        assert!((1.79..4.0).contains(&gib), "FFHQ estimate {gib} GiB per image");
        let small = SynthesisConfig::with_fmap_max(128, 512);
        let ratio = crate::device::search_bytes_per_image(&ffhq) as f64
            / crate::device::search_bytes_per_image(&small) as f64;
        assert!(ratio > 5.0, "a 128x128 network should need far less memory ({ratio}x)");
    }
}
