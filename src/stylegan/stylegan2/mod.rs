//! StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020),
//! as NVIDIA's stylegan2-ada-pytorch computes it (`training/networks.py` with its reference ops;
//! docs/design.md, "StyleGAN2"): the skip generator with modulated, demodulated 3x3 convolutions.
//!
//! Parameter names equal NVIDIA's (`mapping.fc0.weight`, `mapping.w_avg`, `synthesis.b4.const`,
//! `synthesis.b8.conv0.affine.weight`, ...), and the values are stored as NVIDIA stores them: the
//! run-time gains are applied here. Resolution, channels and mapping depth are read off the
//! weights; [`schema`] checks a file's structure before an import writes it.
pub mod mapping;
pub mod schema;
pub mod synthesis;

pub use mapping::{Mapping, MappingConfig};
pub use synthesis::{Synthesis, SynthesisConfig};

use crate::weights::{self, StateDict};
use anyhow::Context;
use std::path::Path;
use tch::{nn, Device};

/// Whether `key` names a StyleGAN2 parameter (NVIDIA's names): what tells a StyleGAN2 file
/// from a v1 one.
pub fn is_stylegan2_key(key: &str) -> bool {
    key.starts_with("synthesis.b") || key.starts_with("mapping.fc") || key == "mapping.w_avg"
}

/// Whether `key` belongs to the synthesis network (`synthesis.*`).
pub fn is_synthesis_key(key: &str) -> bool {
    key.starts_with("synthesis.")
}

/// Whether `key` belongs to the mapping network (`mapping.*`).
pub fn is_mapping_key(key: &str) -> bool {
    key.starts_with("mapping.")
}

/// Builds the synthesis network whose shape the state dict (read from `path`) describes.
pub fn build_synthesis(
    sd: &StateDict,
    path: &Path,
    device: Device,
) -> anyhow::Result<(Synthesis, nn::VarStore)> {
    let config = SynthesisConfig::from_shapes(sd.iter().map(|(k, t)| (k, t.size())))
        .with_context(|| format!("{}: not a StyleGAN2 synthesis network", path.display()))?;
    let mut vs = nn::VarStore::new(device);
    let mut synthesis = Synthesis::new(vs.root(), &config);
    weights::load_into(&mut vs, sd)?;
    vs.freeze();
    synthesis.prepare();
    Ok((synthesis, vs))
}

/// Builds the mapping network whose depth the state dict (read from `path`) describes.
pub fn build_mapping(
    sd: &StateDict,
    path: &Path,
    device: Device,
) -> anyhow::Result<(Mapping, nn::VarStore)> {
    let config = MappingConfig::from_shapes(sd.iter().map(|(k, t)| (k, t.size())))
        .with_context(|| format!("{}: not a StyleGAN2 mapping network", path.display()))?;
    let mut vs = nn::VarStore::new(device);
    let mut mapping = Mapping::new(vs.root(), &config);
    weights::load_into(&mut vs, sd)?;
    vs.freeze();
    mapping.prepare();
    Ok((mapping, vs))
}
