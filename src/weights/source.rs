//! The weight files `pulse import` accepts, recognised by their content (never the extension):
//! NVIDIA's TensorFlow pickles (StyleGAN and StyleGAN2), NVIDIA's stylegan2-ada-pytorch
//! pickles, lernapparat's `for_g_all.pt`, rosinality's StyleGAN2 checkpoints, PULSE's
//! `synthesis.pt` / `mapping.pt` / `gaussian_fit.pt` (legacy or zip `torch.save`) and
//! safetensors in the project's layouts. Each is split into the networks it holds: StyleGAN
//! (v1) with PULSE's keys and layouts, StyleGAN2 with NVIDIA's stylegan2-ada-pytorch names
//! (`synthesis.*`, `mapping.*`).
use super::error::{malformed, ErrorKind, WeightError};
use super::{ada, detect, lernapparat, nvidia, parse, rosinality, Format, StateDict};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// The generator families `pulse` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// StyleGAN (v1), Karras et al., CVPR 2019, as PULSE's PyTorch port computes it.
    StyleGan1,
    /// StyleGAN2 (config-f, skip generator), Karras et al., CVPR 2020, as NVIDIA's
    /// stylegan2-ada-pytorch computes it.
    StyleGan2,
}

impl Architecture {
    /// The name `model.json` and latent files record.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::StyleGan1 => "stylegan1",
            Architecture::StyleGan2 => "stylegan2",
        }
    }

    /// The family a recorded name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "stylegan1" => Some(Architecture::StyleGan1),
            "stylegan2" => Some(Architecture::StyleGan2),
            _ => None,
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
        split_stylegan2(&mut source, g.tensors, path);
        return Ok(source);
    }
    if format == Format::LegacyPickle && nvidia::is_dnnlib_pickle(bytes) {
        let g = nvidia::load(bytes)?;
        source.format = SourceFormat::NvidiaPickle;
        if g.stylegan2 {
            source.tf_trainables = Some(g.tf_trainables);
            source.dropped = g.dropped;
            split_stylegan2(&mut source, g.synthesis.into_iter().chain(g.mapping).collect(), path);
            return Ok(source);
        }
        source.architecture = Some(Architecture::StyleGan1);
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
    if rosinality::is_rosinality(entries.iter().map(|(k, _)| k.as_str())) {
        let (tensors, dropped) = rosinality::convert(entries)?;
        source.format = SourceFormat::Rosinality;
        source.dropped = dropped;
        split_stylegan2(&mut source, tensors, path);
        return Ok(source);
    }
    if entries.iter().any(|(k, _)| is_stylegan2_key(k)) {
        let mut rest = Vec::new();
        let mut sg2 = Vec::new();
        for (k, t) in entries {
            if k.starts_with("synthesis.") || k.starts_with("mapping.") {
                sg2.push((k, t));
            } else {
                rest.push((k, t));
            }
        }
        split_stylegan2(&mut source, sg2, path);
        let fit: Vec<_> = rest.into_iter().filter(|(k, _)| k == "mean" || k == "std").collect();
        source.fit = dict(path, fit);
        return Ok(source);
    }
    if lernapparat::is_lernapparat(entries.iter().map(|(k, _)| k.as_str())) {
        let (synthesis, mapping) = lernapparat::split(entries)?;
        source.format = SourceFormat::Lernapparat;
        source.architecture = Some(Architecture::StyleGan1);
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
    if !synthesis.is_empty() || !mapping.is_empty() {
        source.architecture = Some(Architecture::StyleGan1);
    }
    source.synthesis = dict(path, synthesis);
    source.mapping = dict(path, mapping);
    source.fit = dict(path, fit);
    Ok(source)
}

/// A key of the project's StyleGAN2 layout (NVIDIA's stylegan2-ada-pytorch names).
fn is_stylegan2_key(key: &str) -> bool {
    key.starts_with("synthesis.b") || key.starts_with("mapping.fc") || key == "mapping.w_avg"
}

/// Splits StyleGAN2 tensors under NVIDIA's names by network; the names keep their prefix, as
/// the network's `nn::Path`s do.
fn split_stylegan2(source: &mut Source, tensors: Vec<(String, Tensor)>, path: &Path) {
    let (mut synthesis, mut mapping) = (Vec::new(), Vec::new());
    for (key, t) in tensors {
        if key.starts_with("synthesis.") {
            synthesis.push((key, t));
        } else if key.starts_with("mapping.") {
            mapping.push((key, t));
        } else {
            source.dropped += 1;
        }
    }
    source.architecture = Some(Architecture::StyleGan2);
    source.synthesis = dict(path, synthesis);
    source.mapping = dict(path, mapping);
}
