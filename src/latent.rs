//! The latent file format `pulse-latent/1` (stable; users' scripts depend on it), documented in
//! the README: safetensors with `w_plus` [L,512] float32 (what the synthesis consumed), optional
//! `latent` [L,512] or [1,512] (PULSE's sphere-side latent), `noise.0..noise.{L-1}` [1,1,S,S], and
//! string metadata: `format`, `model_sha256` of the synthesis file, and provenance.
use crate::stylegan::{SynthesisConfig, LATENT_DIM};
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
    /// [1,1,S,S] per layer
    pub noise: Vec<Tensor>,
    /// `format` and `model_sha256` included.
    pub metadata: BTreeMap<String, String>,
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
        Self { w_plus, latent, noise, metadata }
    }

    pub fn model_sha256(&self) -> &str {
        self.metadata.get("model_sha256").map(String::as_str).unwrap_or("")
    }

    pub fn layers(&self) -> usize {
        self.w_plus.size()[0] as usize
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
        if ws.len() != 2 || ws[1] != LATENT_DIM || ws[0] < 2 || ws[0] % 2 != 0 {
            return Err(err(format!(
                "'w_plus' has shape {ws:?}, expected [L, {LATENT_DIM}] with L even"
            )));
        }
        let layers = ws[0] as usize;
        let latent = get("latent")?;
        if let Some(l) = &latent {
            let s = l.size();
            if s.len() != 2 || (s[0] != 1 && s[0] != layers as i64) || s[1] != LATENT_DIM {
                return Err(err(format!("'latent' has shape {s:?}, expected [{layers}, {LATENT_DIM}] or [1, {LATENT_DIM}]")));
            }
        }
        let mut noise = vec![];
        for l in 0..layers {
            let n = get(&format!("noise.{l}"))?.ok_or_else(|| {
                err(format!("missing 'noise.{l}' ({layers} layers need {layers} noise maps)"))
            })?;
            let side = SynthesisConfig::noise_side(l);
            if n.size() != [1, 1, side, side] {
                return Err(err(format!(
                    "'noise.{l}' has shape {:?}, expected [1, 1, {side}, {side}]",
                    n.size()
                )));
            }
            noise.push(n);
        }
        Ok(Self { w_plus, latent, noise, metadata })
    }

    /// Writes the file atomically; the same latent always gives the same bytes.
    pub fn write(&self, path: &Path) -> Result<(), LatentError> {
        let mut named: Vec<(String, Tensor)> = vec![("w_plus".into(), self.w_plus.shallow_clone())];
        if let Some(l) = &self.latent {
            named.push(("latent".into(), l.shallow_clone()));
        }
        for (i, n) in self.noise.iter().enumerate() {
            named.push((format!("noise.{i}"), n.to_kind(Kind::Float)));
        }
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        crate::weights::save_safetensors(
            &crate::weights::StateDict::from_pairs(named),
            path,
            Some(&meta),
        )
        .map_err(|e| LatentError {
            path: path.to_path_buf(),
            reason: format!("cannot write: {}", e.kind),
        })
    }

    /// Checks that this latent fits a network with `layers` style layers.
    pub fn check_layers(&self, path: &Path, layers: usize) -> Result<(), LatentError> {
        if self.layers() != layers {
            return Err(LatentError {
                path: path.to_path_buf(),
                reason: format!(
                    "latent has {} layers but the model has {layers} (made for another resolution)",
                    self.layers()
                ),
            });
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
