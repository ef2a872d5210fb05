//! Applying a direction (docs/design.md, "Editing"): `w_plus + s * v` on the chosen layers only,
//! rendered with the latent's own noise so the face stays the same face.
use super::Direction;
use crate::latent::LatentFile;
use crate::model::Model;
use anyhow::{bail, ensure, Context};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Which style layers an edit touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerMask(Vec<bool>);

impl LayerMask {
    /// Every one of `layers` layers.
    pub fn all(layers: usize) -> Self {
        Self(vec![true; layers])
    }

    /// `all`, or a comma-separated list of layers and inclusive ranges: `0-17`, `0-7`, `0-3,8`.
    /// Layers must be below `layers`.
    pub fn parse(spec: &str, layers: usize) -> anyhow::Result<Self> {
        let spec = spec.trim();
        if spec == "all" {
            return Ok(Self::all(layers));
        }
        let mut mask = vec![false; layers];
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let number = |s: &str| -> anyhow::Result<usize> {
                s.trim().parse().with_context(|| {
                    format!(
                        "layers: '{s}' is not a layer number (expected e.g. 0-17, 0-3,8 or all)"
                    )
                })
            };
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => (number(part)?, number(part)?),
            };
            ensure!(a <= b, "layers: range '{part}' is reversed");
            ensure!(
                b < layers,
                "layers: layer {b} does not exist (the model has layers 0-{})",
                layers - 1
            );
            mask[a..=b].iter_mut().for_each(|m| *m = true);
        }
        ensure!(mask.iter().any(|&m| m), "layers: '{spec}' selects no layer");
        Ok(Self(mask))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, layer: usize) -> bool {
        self.0.get(layer).copied().unwrap_or(false)
    }

    /// [L,1] float: 1 on the chosen layers, 0 elsewhere.
    pub fn to_tensor(&self, device: Device) -> Tensor {
        let v: Vec<f32> = self.0.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
        Tensor::from_slice(&v).view([-1, 1]).to_device(device)
    }
}

/// The compact form: `0-17`, `0-3,8`.
impl std::fmt::Display for LayerMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        let mut i = 0;
        while i < self.0.len() {
            if !self.0[i] {
                i += 1;
                continue;
            }
            let start = i;
            while i + 1 < self.0.len() && self.0[i + 1] {
                i += 1;
            }
            parts.push(if start == i { format!("{i}") } else { format!("{start}-{i}") });
            i += 1;
        }
        write!(f, "{}", parts.join(","))
    }
}

/// `w_plus + scale * direction` on the layers of `mask`, the other layers unchanged. `w_plus` is
/// [L,512] or [B,L,512], `direction` [L,512]. Scale 0 returns `w_plus` exactly.
pub fn apply(w_plus: &Tensor, direction: &Tensor, scale: f64, mask: &LayerMask) -> Tensor {
    let masked = direction.to_device(w_plus.device()).to_kind(w_plus.kind())
        * mask.to_tensor(w_plus.device());
    w_plus + masked * scale
}

/// Parses `0,0.5,1,1.5` (negative scales allowed).
pub fn parse_scales(s: &str) -> anyhow::Result<Vec<f64>> {
    let scales: Vec<f64> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => bail!("scale: '{p}' is not a number (expected e.g. 0,0.5,1,1.5)"),
        })
        .collect::<anyhow::Result<_>>()?;
    ensure!(!scales.is_empty(), "scale: no scale given");
    Ok(scales)
}

/// A scale as it appears in labels and file names: `0`, `+0.5`, `-1`.
pub fn scale_label(s: f64) -> String {
    if s > 0.0 {
        format!("+{s}")
    } else if s == 0.0 {
        "0".to_string()
    } else {
        format!("{s}")
    }
}

/// One rendered edit.
#[derive(Debug)]
pub struct Edited {
    pub scale: f64,
    /// [3,R,R] in [0,1] on the CPU.
    pub image: Tensor,
    /// The edited latent: W+ moved, the same noise, no sphere-side latent; metadata names the
    /// edit (`edit_direction`, `edit_scale`, `edit_layers`, `edit_of`).
    pub latent: LatentFile,
}

/// Renders `latent` moved along `direction` at each scale, on the layers of `mask`, with the
/// latent's own noise. Refuses a direction of another model or layer count.
pub fn edit(
    model: &Model,
    latent: &LatentFile,
    latent_path: &Path,
    direction: &Direction,
    direction_path: &Path,
    scales: &[f64],
    mask: &LayerMask,
) -> anyhow::Result<Vec<Edited>> {
    latent.check_layout(latent_path, model.layout())?;
    direction.check_latent(direction_path, latent, latent_path)?;
    if mask.len() != latent.layers() {
        crate::invalid!("the layer mask has {} layers, the latent {}", mask.len(), latent.layers());
    }
    let mut out = vec![];
    for &scale in scales {
        let w_plus = apply(&latent.w_plus.to_kind(Kind::Float), &direction.vector, scale, mask);
        if !crate::latent::all_finite(&w_plus) {
            crate::invalid!("scale {scale} takes w_plus beyond float32's range");
        }
        let noise: Vec<Tensor> = latent.noise.iter().map(|n| n.shallow_clone()).collect();
        let image = model.synthesize(&w_plus.unsqueeze(0), &noise)?;
        let mut edited = LatentFile::new(w_plus, None, noise, latent.model_sha256());
        for (k, v) in &latent.metadata {
            edited.metadata.entry(k.clone()).or_insert_with(|| v.clone());
        }
        edited.metadata.insert("edit_of".into(), latent_path.display().to_string());
        edited.metadata.insert("edit_direction".into(), direction_path.display().to_string());
        edited.metadata.insert("edit_scale".into(), scale.to_string());
        edited.metadata.insert("edit_layers".into(), mask.to_string());
        out.push(Edited { scale, image, latent: edited });
    }
    Ok(out)
}
