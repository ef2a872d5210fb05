//! The weight files `pulse import` accepts, recognised by their content (never the extension):
//! NVIDIA's TensorFlow pickle, lernapparat's `for_g_all.pt`, PULSE's `synthesis.pt` /
//! `mapping.pt` / `gaussian_fit.pt` (legacy or zip `torch.save`) and safetensors with PULSE's
//! keys. Each is split into the networks it holds, with PULSE's keys and layouts.
use super::error::{malformed, ErrorKind, WeightError};
use super::{detect, lernapparat, nvidia, parse, Format, StateDict};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// How a source file was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    /// NVIDIA's `(G, D, Gs)` dnnlib pickle (TensorFlow StyleGAN).
    NvidiaPickle,
    /// lernapparat's `for_g_all.pt` (`g_mapping.*`, `g_synthesis.*`).
    Lernapparat,
    /// A `torch.save` file with PULSE's keys.
    Pytorch,
    /// A safetensors file with PULSE's keys.
    Safetensors,
}

impl SourceFormat {
    /// The name `model.json` records.
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::NvidiaPickle => "nvidia-tf-pickle",
            SourceFormat::Lernapparat => "lernapparat-pt",
            SourceFormat::Pytorch => "pytorch",
            SourceFormat::Safetensors => "safetensors",
        }
    }
}

/// The networks one source file holds, with PULSE's keys.
pub struct Source {
    pub path: PathBuf,
    pub format: SourceFormat,
    pub synthesis: Option<StateDict>,
    pub mapping: Option<StateDict>,
    /// A Gaussian fit (`mean`, `std`), as PULSE's `gaussian_fit.pt`.
    pub fit: Option<StateDict>,
    /// NVIDIA's `dlatent_avg`.
    pub w_avg: Option<Tensor>,
    /// Gs's trainable parameters as TensorFlow counts them (NVIDIA's pickle only).
    pub tf_trainables: Option<i64>,
    /// Variables or keys left out (`lod`, noise inputs, low-resolution ToRGB layers).
    pub dropped: usize,
}

/// Reads a source file of any supported format (see the module doc).
pub fn load_source(path: &Path) -> Result<Source, WeightError> {
    let err = |kind| WeightError::new(path, kind);
    let bytes = std::fs::read(path).map_err(|e| err(ErrorKind::Io(e)))?;
    parse_source(&bytes, path).map_err(err)
}

fn dict(path: &Path, entries: Vec<(String, Tensor)>) -> Option<StateDict> {
    if entries.is_empty() {
        return None;
    }
    let mut sd = StateDict::from_pairs(entries);
    sd.path = path.to_path_buf();
    Some(sd)
}

pub(crate) fn parse_source(bytes: &[u8], path: &Path) -> Result<Source, ErrorKind> {
    let format = detect(bytes)?;
    let mut source = Source {
        path: path.to_path_buf(),
        format: SourceFormat::Pytorch,
        synthesis: None,
        mapping: None,
        fit: None,
        w_avg: None,
        tf_trainables: None,
        dropped: 0,
    };
    if format == Format::LegacyPickle && nvidia::is_dnnlib_pickle(bytes) {
        let g = nvidia::load(bytes)?;
        source.format = SourceFormat::NvidiaPickle;
        source.synthesis = dict(path, g.synthesis);
        source.mapping = dict(path, g.mapping);
        source.w_avg = g.w_avg;
        source.tf_trainables = Some(g.tf_trainables);
        source.dropped = g.dropped;
        return Ok(source);
    }
    if format == Format::Safetensors {
        source.format = SourceFormat::Safetensors;
    }
    let (entries, _) = parse(bytes)?;
    if lernapparat::is_lernapparat(entries.iter().map(|(k, _)| k.as_str())) {
        let (synthesis, mapping) = lernapparat::split(entries)?;
        source.format = SourceFormat::Lernapparat;
        source.synthesis = dict(path, synthesis);
        source.mapping = dict(path, mapping);
        return Ok(source);
    }
    let (mut synthesis, mut mapping, mut fit) = (Vec::new(), Vec::new(), Vec::new());
    for (key, tensor) in entries {
        if key.starts_with("blocks.") || key.starts_with("torgb.") {
            synthesis.push((key, tensor));
        } else if key
            .strip_prefix("dense")
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        {
            mapping.push((key, tensor));
        } else if key == "mean" || key == "std" {
            fit.push((key, tensor));
        } else {
            source.dropped += 1;
        }
    }
    if synthesis.is_empty() && mapping.is_empty() && fit.is_empty() {
        return Err(malformed(
            "no StyleGAN network in this file (expected PULSE's keys blocks.*/torgb.*, dense0..7.*, mean/std, lernapparat's g_synthesis.*/g_mapping.*, or NVIDIA's pickle)",
        ));
    }
    source.synthesis = dict(path, synthesis);
    source.mapping = dict(path, mapping);
    source.fit = dict(path, fit);
    Ok(source)
}
