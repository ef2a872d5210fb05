//! The weight files `pulse import` accepts, recognised by their content (never the extension):
//! NVIDIA's TensorFlow pickles (StyleGAN and StyleGAN2), NVIDIA's stylegan2-ada-pytorch
//! pickles, lernapparat's `for_g_all.pt`, rosinality's StyleGAN2 checkpoints, PULSE's
//! `synthesis.pt` / `mapping.pt` / `gaussian_fit.pt` (legacy or zip `torch.save`) and
//! safetensors in the project's layouts. Each is split into the networks it holds: StyleGAN
//! (v1) with PULSE's keys and layouts, StyleGAN2 with NVIDIA's stylegan2-ada-pytorch names
//! (`synthesis.*`, `mapping.*`); which family the keys are is the family module's to say
//! ([`Architecture::detect`]).
use super::error::{malformed, ErrorKind, WeightError};
use super::{ada, detect, lernapparat, nvidia, parse, rosinality, Format, StateDict};
use crate::stylegan::Architecture;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// How a source file was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    /// NVIDIA's `(G, D, Gs)` dnnlib pickle (TensorFlow StyleGAN or StyleGAN2).
    NvidiaPickle,
    /// NVIDIA's stylegan2-ada-pytorch pickle (`G_ema` of `torch_utils.persistence` objects).
    AdaPickle,
    /// rosinality's stylegan2-pytorch checkpoint (`g_ema`, `latent_avg`).
    Rosinality,
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
            SourceFormat::AdaPickle => "nvidia-ada-pytorch-pickle",
            SourceFormat::Rosinality => "rosinality-pt",
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
    /// The generator family; `None` for a file with only a Gaussian fit.
    pub architecture: Option<Architecture>,
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
        architecture: None,
        synthesis: None,
        mapping: None,
        fit: None,
        w_avg: None,
        tf_trainables: None,
        dropped: 0,
    };
    if format == Format::LegacyPickle
        && nvidia::is_dnnlib_pickle(bytes)
        && ada::is_persistence_pickle(bytes)
    {
        let g = ada::load(bytes)?;
        source.format = SourceFormat::AdaPickle;
        source.dropped = g.dropped;
        split(&mut source, g.tensors, path);
        return Ok(source);
    }
    if format == Format::LegacyPickle && nvidia::is_dnnlib_pickle(bytes) {
        let g = nvidia::load(bytes)?;
        source.format = SourceFormat::NvidiaPickle;
        source.tf_trainables = Some(g.tf_trainables);
        source.dropped = g.dropped;
        if !g.stylegan2 {
            source.w_avg = g.w_avg;
        }
        split(&mut source, g.synthesis.into_iter().chain(g.mapping).collect(), path);
        return Ok(source);
    }
    if format == Format::Safetensors {
        source.format = SourceFormat::Safetensors;
    }
    let (entries, _) = parse(bytes)?;
    if rosinality::is_rosinality(entries.iter().map(|(k, _)| k.as_str())) {
        let (tensors, dropped) = rosinality::convert(entries)?;
        source.format = SourceFormat::Rosinality;
        source.dropped = dropped;
        split(&mut source, tensors, path);
        return Ok(source);
    }
    let family = Architecture::detect(entries.iter().map(|(k, _)| k.as_str()));
    if family.is_none() && lernapparat::is_lernapparat(entries.iter().map(|(k, _)| k.as_str())) {
        let (synthesis, mapping) = lernapparat::split(entries)?;
        source.format = SourceFormat::Lernapparat;
        split(&mut source, synthesis.into_iter().chain(mapping).collect(), path);
        return Ok(source);
    }
    split(&mut source, entries, path);
    if source.synthesis.is_none() && source.mapping.is_none() && source.fit.is_none() {
        return Err(malformed(
            "no StyleGAN network in this file (expected PULSE's keys blocks.*/torgb.*, dense0..7.*, mean/std, lernapparat's g_synthesis.*/g_mapping.*, or NVIDIA's pickle)",
        ));
    }
    Ok(source)
}

/// Splits tensors under a family's own names by network (the family their keys say), plus a
/// Gaussian fit (`mean`, `std`); anything else is counted as dropped.
fn split(source: &mut Source, tensors: Vec<(String, Tensor)>, path: &Path) {
    let family = Architecture::detect(tensors.iter().map(|(k, _)| k.as_str()));
    let (mut synthesis, mut mapping, mut fit) = (Vec::new(), Vec::new(), Vec::new());
    for (key, t) in tensors {
        if family.is_some_and(|f| f.is_synthesis_key(&key)) {
            synthesis.push((key, t));
        } else if family.is_some_and(|f| f.is_mapping_key(&key)) {
            mapping.push((key, t));
        } else if key == "mean" || key == "std" {
            fit.push((key, t));
        } else {
            source.dropped += 1;
        }
    }
    if !synthesis.is_empty() || !mapping.is_empty() {
        source.architecture = family;
    }
    source.synthesis = dict(path, synthesis);
    source.mapping = dict(path, mapping);
    source.fit = dict(path, fit);
}
