//! StyleGAN (v1; Karras et al., "A Style-Based Generator Architecture for Generative Adversarial
//! Networks", CVPR 2019) as PULSE's PyTorch port computes it (docs/design.md, "The networks").
//!
//! Parameter names are PULSE's (`blocks.4x4.conv.weight`, `torgb.weight`, `dense0.weight`, ...)
//! and the values are stored at unit scale, as NVIDIA trained them: the equalized-learning-rate
//! gains are applied here. Resolution and channels are read off the weights.
pub mod mapping;
pub mod synthesis;

pub use mapping::Mapping;
pub use synthesis::{Synthesis, SynthesisConfig, TRUNCATION_LAYERS};

use crate::weights::{self, StateDict};
use anyhow::Context;
use std::path::Path;
use tch::Tensor;
use tch::{nn, Device};

/// Parameters of the FFHQ-1024 networks, blur buffers excluded. Gs has 26,219,627 trainables
/// (NVlabs/stylegan README); mapping is 8 x (512 x 512 + 512); the synthesis is the rest less
/// the eight low-resolution ToRGB layers PULSE drops (7,608 parameters).
pub const FFHQ_SYNTHESIS_PARAMS: i64 = 24_110_771;
pub const FFHQ_MAPPING_PARAMS: i64 = 2_101_248;

/// Whether `key` is one of a v1 synthesis network's (`blocks.*`, `torgb.*`).
pub fn is_synthesis_key(key: &str) -> bool {
    key.starts_with("blocks.") || key.starts_with("torgb.")
}

/// Whether `key` is one of a v1 mapping network's (`dense0.*` .. `dense7.*`).
pub fn is_mapping_key(key: &str) -> bool {
    key.strip_prefix("dense").is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
}

/// Builds the synthesis network whose shape the state dict (read from `path`) describes.
pub fn build_synthesis(
    sd: &StateDict,
    path: &Path,
    device: Device,
) -> anyhow::Result<(Synthesis, nn::VarStore)> {
    let config = SynthesisConfig::from_shapes(sd.iter().map(|(k, t)| (k, t.size())))
        .with_context(|| format!("{}: not a StyleGAN synthesis network", path.display()))?;
    let mut vs = nn::VarStore::new(device);
    let mut synthesis = Synthesis::new(vs.root(), &config);
    weights::load_into(&mut vs, sd)?;
    vs.freeze();
    synthesis.prepare();
    Ok((synthesis, vs))
}

/// Builds the mapping network from its state dict.
pub fn build_mapping(
    sd: &StateDict,
    device: Device,
) -> Result<(Mapping, nn::VarStore), weights::WeightError> {
    let mut vs = nn::VarStore::new(device);
    let mut mapping = Mapping::new(vs.root());
    weights::load_into(&mut vs, sd)?;
    vs.freeze();
    mapping.prepare();
    Ok((mapping, vs))
}

/// The tensors a network built in `vs` really uses, as float32 in the file's key order (plus
/// PULSE's constant blur buffers for a synthesis network): extra keys of a file are left out.
pub(crate) fn used_tensors(
    sd: &StateDict,
    vs: &nn::VarStore,
    synthesis: bool,
) -> Vec<(String, Tensor)> {
    let names: std::collections::HashSet<String> = vs.variables().into_keys().collect();
    sd.iter()
        .filter(|(k, _)| names.contains(*k) || (synthesis && is_blur_buffer(k)))
        .map(|(k, t)| (k.to_string(), t.to_kind(tch::Kind::Float).contiguous()))
        .collect()
}

/// PULSE's constant blur kernels, stored in its files beside the parameters.
fn is_blur_buffer(key: &str) -> bool {
    key.ends_with(".intermediate.kernel")
}

/// Parameters, PULSE's constant blur buffers excluded.
pub(crate) fn count_params(tensors: &[(String, Tensor)]) -> i64 {
    tensors.iter().filter(|(k, _)| !is_blur_buffer(k)).map(|(_, t)| t.numel() as i64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffhq_totals_add_up_to_nvidia_count() {
        // The eight dropped ToRGB_lod layers: 4 at 512 channels, then 256, 128, 64, 32.
        let torgb: i64 = [512, 512, 512, 512, 256, 128, 64, 32].iter().map(|c| c * 3 + 3).sum();
        assert_eq!(
            FFHQ_SYNTHESIS_PARAMS + FFHQ_MAPPING_PARAMS + torgb,
            crate::weights::nvidia::FFHQ_TF_TRAINABLES
        );
        assert_eq!(FFHQ_MAPPING_PARAMS, 8 * (512 * 512 + 512));
    }
}
