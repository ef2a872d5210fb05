//! Directions in W+ (docs/design.md, "Editing"): `v = w_plus(TO) - w_plus(FROM)`, or the mean of
//! that difference over several pairs, saved as the file format `pulse-direction/1`: safetensors
//! with `direction` [L,512] float32 and string metadata `format`, `model_sha256` (the synthesis
//! file the latents were made with), `layers`, `pairs` and `sources` (a JSON list of
//! `{"from": ..., "to": ...}`).
use crate::latent::{all_finite, check_format, short_sha, LatentFile};
use crate::stylegan::LATENT_DIM;
use crate::weights::{self, StateDict};
use anyhow::Context;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

pub const FORMAT: &str = "pulse-direction/1";

/// A direction in W+ and where it came from.
#[derive(Debug)]
pub struct Direction {
    /// [L,512] on the CPU.
    pub vector: Tensor,
    /// `format`, `model_sha256`, `layers`, `pairs`, `sources`.
    pub metadata: BTreeMap<String, String>,
}

impl Direction {
    /// The mean of `to.w_plus - from.w_plus` over `pairs` (latents already read). `sources`
    /// names each pair's files for the metadata. Every latent must come from the same model
    /// (same `model_sha256`) and have the same number of layers.
    pub fn from_latents(
        pairs: &[(&LatentFile, &LatentFile)],
        sources: &[(String, String)],
    ) -> anyhow::Result<Self> {
        if pairs.is_empty() {
            crate::invalid!("a direction needs at least one FROM TO pair");
        }
        assert_eq!(pairs.len(), sources.len(), "one source name per pair");
        let first = pairs[0].0;
        let (model, layers) = (first.model_sha256(), first.layers());
        for ((from, to), (from_name, to_name)) in pairs.iter().zip(sources) {
            for (latent, name) in [(from, from_name), (to, to_name)] {
                if latent.model_sha256() != model {
                    crate::invalid!(
                        "{name}: made with another model (model_sha256 {}) than {} ({}); a direction needs latents of one model",
                        short_sha(latent.model_sha256()),
                        sources[0].0,
                        short_sha(model)
                    );
                }
                if latent.layers() != layers {
                    crate::invalid!(
                        "{name}: has {} layers but {} has {layers}",
                        latent.layers(),
                        sources[0].0
                    );
                }
            }
        }
        let sum = pairs
            .iter()
            .map(|(from, to)| to.w_plus.to_kind(Kind::Double) - from.w_plus.to_kind(Kind::Double))
            .reduce(|a, b| a + b)
            .expect("at least one pair");
        let vector = (sum / pairs.len() as f64).to_kind(Kind::Float).to_device(Device::Cpu);
        if vector.abs().max().double_value(&[]) == 0.0 {
            return Err(crate::Invalid(
                "the direction is zero: every TO latent has the same w_plus as its FROM".into(),
            )
            .into());
        }
        let list: Vec<serde_json::Value> =
            sources.iter().map(|(f, t)| serde_json::json!({"from": f, "to": t})).collect();
        let metadata = [
            ("format", FORMAT.to_string()),
            ("model_sha256", model.to_string()),
            ("layers", layers.to_string()),
            ("pairs", pairs.len().to_string()),
            ("sources", serde_json::Value::Array(list).to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(Self { vector, metadata })
    }

    /// Reads the latent files of each `(FROM, TO)` pair and computes the direction.
    pub fn between(pairs: &[(PathBuf, PathBuf)]) -> anyhow::Result<Self> {
        let mut read = vec![];
        for (from, to) in pairs {
            if crate::files::same_file(from, to) {
                return Err(crate::Invalid(format!(
                    "{}: FROM and TO are the same latent file (the direction would be zero)",
                    crate::files::escaped(from)
                ))
                .into());
            }
            let (f, t) = (LatentFile::read(from)?, LatentFile::read(to)?);
            f.require_w_plus(from)?;
            t.require_w_plus(to)?;
            read.push((f, t));
        }
        let refs: Vec<(&LatentFile, &LatentFile)> = read.iter().map(|(a, b)| (a, b)).collect();
        let names: Vec<(String, String)> =
            pairs.iter().map(|(a, b)| (a.display().to_string(), b.display().to_string())).collect();
        Self::from_latents(&refs, &names)
    }

    pub fn model_sha256(&self) -> &str {
        self.metadata.get("model_sha256").map(String::as_str).unwrap_or("")
    }

    pub fn layers(&self) -> usize {
        self.vector.size()[0] as usize
    }

    /// Number of pairs averaged.
    pub fn pairs(&self) -> usize {
        self.metadata.get("pairs").and_then(|p| p.parse().ok()).unwrap_or(1)
    }

    /// Writes the file (atomically).
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let sd =
            StateDict::from_pairs(vec![("direction".to_string(), self.vector.shallow_clone())]);
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        weights::save_safetensors(&sd, path, Some(&meta))?;
        Ok(())
    }

    /// Reads and checks a direction file (format tag, shape, finite values).
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let sd = weights::load(path)
            .with_context(|| format!("{}: not a direction file", path.display()))?;
        let metadata: BTreeMap<String, String> =
            sd.metadata().cloned().unwrap_or_default().into_iter().collect();
        check_format(&metadata, FORMAT, "direction")
            .map_err(|reason| crate::Invalid(format!("{}: {reason}", path.display())))?;
        let vector = sd
            .get("direction")
            .ok_or_else(|| crate::Invalid(format!("{}: missing 'direction'", path.display())))?;
        let size = vector.size();
        if size.len() != 2 || size[1] != LATENT_DIM || size[0] < 2 {
            crate::invalid!(
                "{}: 'direction' has shape {size:?}, expected [L, {LATENT_DIM}]",
                path.display()
            );
        }
        let vector = vector.to_kind(Kind::Float);
        if !all_finite(&vector) {
            crate::invalid!("{}: 'direction' holds NaN or infinite values", path.display());
        }
        Ok(Self { vector, metadata })
    }

    /// Refuses to apply this direction (read from `path`) to a latent of another model or of
    /// another number of layers.
    pub fn check_latent(
        &self,
        path: &Path,
        latent: &LatentFile,
        latent_path: &Path,
    ) -> anyhow::Result<()> {
        if latent.model_sha256() != self.model_sha256() {
            crate::invalid!(
                "{}: made with another model (model_sha256 {}) than {} ({}); find the direction again with latents of this model",
                path.display(),
                short_sha(self.model_sha256()),
                latent_path.display(),
                short_sha(latent.model_sha256())
            );
        }
        if latent.layers() != self.layers() {
            crate::invalid!(
                "{}: has {} layers but {} has {}",
                path.display(),
                self.layers(),
                latent_path.display(),
                latent.layers()
            );
        }
        Ok(())
    }
}
