//! The jobs users run, built from the networks (`stylegan`), the search (`pulse`) and the file
//! formats. Each takes a plain options struct and reports through an observer; none prints.
pub mod align;
pub mod batch_size;
pub mod bench;
pub mod download;
pub mod downscale;
pub mod engine;
pub mod eval;
pub mod generate;
pub mod import;
pub mod report;
pub mod restore;
pub mod shard;
pub mod upsample;

pub use batch_size::auto_batch_size;
pub use generate::render;

use crate::precision::Precision;
use tch::Device;

/// How a search command runs its searches, besides the search's own settings
/// ([`crate::pulse::SearchConfig`]): what `upsample` and `restore` share.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub seed: u64,
    /// Results per input, each from its own seed.
    pub samples: usize,
    pub batch_size: usize,
    /// Further attempts (new seeds) for a search that did not converge.
    pub restarts: usize,
    /// Arithmetic of the synthesis forward pass (the loss and the optimizer stay float32).
    pub precision: Precision,
    /// Whether the device was set up to repeat results exactly (`crate::device::configure`);
    /// recorded in the report. Always true on the CPU.
    pub deterministic: bool,
}

impl RunConfig {
    /// Refuses settings that cannot run on `device`, before anything is read.
    pub fn check(&self, device: Device) -> anyhow::Result<()> {
        if self.samples == 0 || self.batch_size == 0 {
            crate::invalid!("the number of samples and the batch size must be at least 1");
        }
        if self.precision == Precision::Fp16 && device == Device::Cpu {
            crate::invalid!(
                "fp16 needs CUDA (float16 autocast on the CPU is partial); use fp32 or bf16"
            );
        }
        Ok(())
    }
}

/// Lists the inputs: files as given, folders expanded to their entries with an image extension
/// ([`crate::imageio::INPUT_EXTENSIONS`]); sorted, deduplicated. An entry that cannot be read is
/// refused when it is read, like a bad file given directly.
pub fn collect_inputs(inputs: &[std::path::PathBuf]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut files = vec![];
    for input in inputs {
        if !input.is_dir() {
            files.push(input.clone());
            continue;
        }
        let entries = std::fs::read_dir(input).map_err(|e| {
            anyhow::anyhow!("{}: cannot list folder: {e}", crate::files::escaped(input))
        })?;
        for entry in entries {
            let path = entry?.path();
            if crate::imageio::has_input_extension(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
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
}
