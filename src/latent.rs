//! The latent file format `pulse-latent/1` (stable; users' scripts depend on it), documented in
//! the README: safetensors with `w_plus` [L,512] float32 (what the synthesis consumed), optional
//! `latent` [L,512] or [1,512] (PULSE's sphere-side latent), `noise.0..noise.{N-1}` [1,1,S,S]
//! (one per noise map of the model, in synthesis order), and string metadata: `format`,
//! `model_sha256` of the synthesis file, `architecture` (absent in files of v1 models written
//! before StyleGAN2 came) and provenance.
//!
//! An ILO result whose best iterate came from a round k >= 1 is not a W+ latent: it also holds
//! what entered synthesis block k, `features` [1,C,S,S] and (StyleGAN2) the RGB `skip`
//! [1,3,S,S], with metadata `block` = k and `method` = `ilo`; its image is the synthesis from
//! block k on. Only `render` (and `upsample --init`, which takes its latent and noise) read it.
use crate::stylegan::{Architecture, BlockInput, Layout, LATENT_DIM};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

pub const FORMAT: &str = "pulse-latent/1";

/// Why a latent file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct LatentError {
    pub path: PathBuf,
    pub reason: String,
}

/// A face: W+, optionally its sphere-side latent, and the noise it was rendered with.
#[derive(Debug)]
pub struct LatentFile {
    /// [L,512]
    pub w_plus: Tensor,
    /// [L,512] or [1,512]
    pub latent: Option<Tensor>,
    /// [1,1,S,S] per noise map
    pub noise: Vec<Tensor>,
    /// `format` and `model_sha256` included.
    pub metadata: BTreeMap<String, String>,
    /// ILO's intermediate state (batch dim 1): the image is the synthesis from this block on.
    pub block_input: Option<BlockInput>,
}

impl LatentFile {
    pub fn new(
        w_plus: Tensor,
        latent: Option<Tensor>,
        noise: Vec<Tensor>,
        model_sha256: &str,
    ) -> Self {
        let metadata = [
            ("format".to_string(), FORMAT.to_string()),
            ("model_sha256".to_string(), model_sha256.to_string()),
        ]
        .into();
        Self { w_plus, latent, noise, metadata, block_input: None }
    }

    /// Attaches ILO's intermediate state (and its `block` metadata).
    pub fn set_block_input(&mut self, input: BlockInput) {
        self.metadata.insert("block".into(), input.block.to_string());
        self.block_input = Some(input);
    }

    /// Refuses a file that holds ILO's intermediate state, for the commands that need a W+
    /// latent (`edit`, `direction`): one line naming the file and why.
    pub fn require_w_plus(&self, path: &Path) -> Result<(), LatentError> {
        match &self.block_input {
            None => Ok(()),
            Some(input) => Err(LatentError {
                path: path.to_path_buf(),
                reason: format!(
                    "holds ILO's intermediate state (the feature map entering synthesis block {}), not a W+ latent alone: only render reads it",
                    input.block
                ),
            }),
        }
    }

    pub fn model_sha256(&self) -> &str {
        self.metadata.get("model_sha256").map(String::as_str).unwrap_or("")
    }

    pub fn layers(&self) -> usize {
        self.w_plus.size()[0] as usize
    }

    /// Records the generator family the latent belongs to (`architecture` metadata).
    pub fn set_architecture(&mut self, architecture: Architecture) {
        self.metadata.insert("architecture".into(), architecture.name().into());
    }

    /// The family the latent belongs to: its `architecture` metadata, StyleGAN (v1) when it has
    /// none (files written before StyleGAN2), `None` when it names an unknown one.
    pub fn architecture(&self) -> Option<Architecture> {
        match self.metadata.get("architecture") {
            None => Some(Architecture::default()),
            Some(name) => Architecture::from_name(name),
        }
    }

    /// Reads and validates a latent file (format tag, shapes, one noise map per layer).
    pub fn read(path: &Path) -> Result<Self, LatentError> {
        let err = |reason: String| LatentError { path: path.to_path_buf(), reason };
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| err(format!("not a latent file (not safetensors: {e})")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| err(format!("bad safetensors header: {e}")))?;
        let metadata: BTreeMap<String, String> =
            header.metadata().clone().unwrap_or_default().into_iter().collect();
        check_format(&metadata, FORMAT, "latent").map_err(err)?;
        let get = |name: &str| -> Result<Option<Tensor>, LatentError> {
            let Ok(view) = st.tensor(name) else { return Ok(None) };
            if view.dtype() != Dtype::F32 {
                return Err(err(format!("'{name}' is {:?}, expected F32", view.dtype())));
            }
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let t = Tensor::from_slice(&values).view(shape.as_slice());
            if !all_finite(&t) {
                return Err(err(format!("'{name}' holds NaN or infinite values")));
            }
            Ok(Some(t))
        };
        let w_plus = get("w_plus")?.ok_or_else(|| err("missing 'w_plus'".into()))?;
        let ws = w_plus.size();
        if ws.len() != 2 || ws[1] != LATENT_DIM || ws[0] < 1 {
            return Err(err(format!("'w_plus' has shape {ws:?}, expected [L, {LATENT_DIM}]")));
        }
        let layers = ws[0] as usize;
        let latent = get("latent")?;
        if let Some(l) = &latent {
            let s = l.size();
            if s.len() != 2 || (s[0] != 1 && s[0] != layers as i64) || s[1] != LATENT_DIM {
                return Err(err(format!("'latent' has shape {s:?}, expected [{layers}, {LATENT_DIM}] or [1, {LATENT_DIM}]")));
            }
        }
        // One map per noise input, numbered from 0 without gaps; which sides the model wants is
        // checked against its layout (`check_layout`).
        let mut noise = vec![];
        while let Some(n) = get(&format!("noise.{}", noise.len()))? {
            let s = n.size();
            if s.len() != 4 || s[0] != 1 || s[1] != 1 || s[2] != s[3] || s[2] < 1 {
                return Err(err(format!(
                    "'noise.{}' has shape {s:?}, expected [1, 1, S, S]",
                    noise.len()
                )));
            }
            noise.push(n);
        }
        if noise.is_empty() {
            return Err(err("missing 'noise.0' (a latent carries its noise maps)".into()));
        }
        if st.names().iter().any(|n| {
            n.strip_prefix("noise.")
                .and_then(|i| i.parse::<usize>().ok())
                .is_some_and(|i| i > noise.len())
        }) {
            return Err(err(format!(
                "missing 'noise.{}' (noise maps are numbered without gaps)",
                noise.len()
            )));
        }
        let block_input = match get("features")? {
            None => {
                if get("skip")?.is_some() || metadata.contains_key("block") {
                    return Err(err("has ILO's 'skip' or 'block' without its 'features'".into()));
                }
                None
            }
            Some(features) => {
                let block = metadata
                    .get("block")
                    .and_then(|b| b.parse::<usize>().ok())
                    .filter(|&b| b >= 1)
                    .ok_or_else(|| {
                        err("has ILO's 'features' without a 'block' number (1 or more)".into())
                    })?;
                let fs = features.size();
                if fs.len() != 4 || fs[0] != 1 || fs[2] != fs[3] {
                    return Err(err(format!("'features' has shape {fs:?}, expected [1, C, S, S]")));
                }
                let skip = get("skip")?;
                if let Some(sk) = &skip {
                    if sk.size() != [1, 3, fs[2], fs[3]] {
                        return Err(err(format!(
                            "'skip' has shape {:?}, expected [1, 3, {}, {}]",
                            sk.size(),
                            fs[2],
                            fs[3]
                        )));
                    }
                }
                Some(BlockInput { block, features, skip })
            }
        };
        Ok(Self { w_plus, latent, noise, metadata, block_input })
    }

    /// Writes the file atomically; the same latent always gives the same bytes.
    pub fn write(&self, path: &Path) -> Result<(), crate::weights::WeightError> {
        let mut named: Vec<(String, Tensor)> = vec![("w_plus".into(), self.w_plus.shallow_clone())];
        if let Some(l) = &self.latent {
            named.push(("latent".into(), l.shallow_clone()));
        }
        for (i, n) in self.noise.iter().enumerate() {
            named.push((format!("noise.{i}"), n.to_kind(Kind::Float)));
        }
        if let Some(input) = &self.block_input {
            named.push(("features".into(), input.features.to_kind(Kind::Float)));
            if let Some(skip) = &input.skip {
                named.push(("skip".into(), skip.to_kind(Kind::Float)));
            }
        }
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        crate::weights::save_safetensors(
            &crate::weights::StateDict::from_pairs(named),
            path,
            Some(&meta),
        )
    }

    /// Checks that this latent fits a generator of `layout`: the same family, its W+ rows and
    /// its noise maps.
    pub fn check_layout(&self, path: &Path, layout: &Layout) -> Result<(), LatentError> {
        let err = |reason: String| LatentError { path: path.to_path_buf(), reason };
        match self.architecture() {
            Some(a) if a == layout.architecture => {}
            Some(a) => {
                return Err(err(format!(
                    "latent made by a {a} model, this model is {}",
                    layout.architecture
                )))
            }
            None => {
                return Err(err(format!(
                    "latent of unknown architecture '{}' (this model is {})",
                    self.metadata.get("architecture").map(String::as_str).unwrap_or(""),
                    layout.architecture
                )))
            }
        }
        if self.layers() != layout.w_rows {
            return Err(err(format!(
                "latent has {} layers but the model has {} (made for another resolution)",
                self.layers(),
                layout.w_rows
            )));
        }
        let sides: Vec<i64> = self.noise.iter().map(|n| n.size()[2]).collect();
        if sides != layout.noise_sides {
            return Err(err(format!(
                "latent has {} noise maps of sides {sides:?}, the model takes {} of sides {:?}",
                sides.len(),
                layout.noise_maps(),
                layout.noise_sides
            )));
        }
        if let Some(input) = &self.block_input {
            let blocks = layout.channels.len();
            if input.block >= blocks {
                return Err(err(format!(
                    "holds the input of synthesis block {}, the model has blocks 0 to {}",
                    input.block,
                    blocks - 1
                )));
            }
            let side = 4i64 << (input.block - 1);
            let c = layout.channels[input.block - 1];
            if input.features.size() != [1, c, side, side] {
                return Err(err(format!(
                    "'features' has shape {:?}, block {} of this model takes [1, {c}, {side}, {side}]",
                    input.features.size(),
                    input.block
                )));
            }
            let wants_skip = layout.architecture.has_skip();
            if input.skip.is_some() != wants_skip {
                return Err(err(format!(
                    "ILO state {} an RGB 'skip', which a {} model {}",
                    if wants_skip { "without" } else { "with" },
                    layout.architecture,
                    if wants_skip { "carries" } else { "does not have" }
                )));
            }
        }
        Ok(())
    }

    /// W+ as a batch of one, [1,L,512], and the noise maps on `device`.
    pub fn batch_of_one(&self, device: Device) -> (Tensor, Vec<Tensor>) {
        (
            self.w_plus.unsqueeze(0).to_device(device),
            self.noise.iter().map(|n| n.to_device(device)).collect(),
        )
    }
}

/// The string metadata of a latent file, read from its header only (a few hundred bytes, not the
/// tensors): enough to tell which input and model made it.
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>, LatentError> {
    use std::io::Read;
    let err = |reason: String| LatentError { path: path.to_path_buf(), reason };
    let mut file = std::fs::File::open(path).map_err(|e| err(format!("cannot read: {e}")))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|_| err("not a latent file (too short)".into()))?;
    let len = u64::from_le_bytes(len);
    if len > 1 << 20 {
        return Err(err(format!("not a latent file (header of {len} bytes)")));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(|_| err("not a latent file (truncated header)".into()))?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| err(format!("not a latent file (bad header: {e})")))?;
    let metadata: BTreeMap<String, String> = json
        .get("__metadata__")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    check_format(&metadata, FORMAT, "latent").map_err(err)?;
    Ok(metadata)
}

/// Checks the `format` metadata of one of pulse's safetensors files (`what`: "latent",
/// "direction") against `expected`; the error is the reason, for the caller to prefix.
pub fn check_format(
    metadata: &BTreeMap<String, String>,
    expected: &str,
    what: &str,
) -> Result<(), String> {
    match metadata.get("format") {
        Some(f) if f == expected => Ok(()),
        Some(f) => Err(format!("unsupported {what} format '{f}' (expected {expected})")),
        None => Err(format!("not a {what} file (no 'format' metadata; expected {expected})")),
    }
}

/// No NaN or infinite value in `t`.
pub fn all_finite(t: &Tensor) -> bool {
    t.isfinite().all().int64_value(&[]) != 0
}

/// The first 12 hex digits of a sha256, or "unknown".
pub fn short_sha(sha: &str) -> &str {
    if sha.is_empty() {
        "unknown"
    } else {
        &sha[..sha.len().min(12)]
    }
}
