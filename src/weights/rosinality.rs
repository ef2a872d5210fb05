//! rosinality's StyleGAN2 checkpoints (rosinality/stylegan2-pytorch `model.py`; the format ILO
//! and most PyTorch forks use): `torch.save({"g_ema": state_dict, "latent_avg": w, ...})`,
//! converted to NVIDIA's stylegan2-ada-pytorch names. Both were converted from the same
//! TensorFlow weights with the same conventions (raw weights, run-time gains, the up-sampling
//! conv already flipped), so values are copied and only names and shapes change:
//!
//! | rosinality | NVIDIA |
//! | --- | --- |
//! | `style.{i+1}.weight/bias` | `mapping.fc{i}.weight/bias` |
//! | `latent_avg` | `mapping.w_avg` |
//! | `input.input` `[1,C,4,4]` | `synthesis.b4.const` `[C,4,4]` |
//! | `conv1.*`, `to_rgb1.*` | `synthesis.b4.conv1.*`, `synthesis.b4.torgb.*` |
//! | `convs.{2k}.*`, `convs.{2k+1}.*`, `to_rgbs.{k}.*` | `synthesis.b{8·2^k}.conv0.*`, `.conv1.*`, `.torgb.*` |
//! | `*.conv.weight` `[1,O,I,k,k]` | `*.weight` `[O,I,k,k]` |
//! | `*.conv.modulation.weight/bias` | `*.affine.weight/bias` |
//! | `*.noise.weight` `[1]` | `*.noise_strength` `[]` |
//! | `*.activate.bias` (conv), `*.bias` `[1,3,1,1]` (to_rgb) | `*.bias` `[O]`, `[3]` |
//!
//! Noise buffers (`noises.noise_*`) and blur kernels are left out.
use super::error::{malformed, one_line, ErrorKind};
use tch::Tensor;

const G_EMA: &str = "g_ema.";

/// Whether flattened keys are a rosinality checkpoint (`g_ema.*`) or a bare generator state
/// dict of that layout.
pub(crate) fn is_rosinality<'a>(keys: impl Iterator<Item = &'a str> + Clone) -> bool {
    keys.clone().any(|k| k.starts_with("g_ema.style.") || k.starts_with("g_ema.input.input"))
        || (keys.clone().any(|k| k == "input.input")
            && keys.clone().any(|k| k.starts_with("to_rgb1.")))
}

/// The generator of a rosinality checkpoint under NVIDIA's names, and the keys left out.
pub(crate) fn convert(
    entries: Vec<(String, Tensor)>,
) -> Result<(Vec<(String, Tensor)>, usize), ErrorKind> {
    let checkpoint = entries.iter().any(|(k, _)| k.starts_with(G_EMA));
    let (mut out, mut dropped) = (Vec::new(), 0);
    for (key, t) in entries {
        let name = if checkpoint {
            match key.strip_prefix(G_EMA) {
                Some(rest) => rest.to_string(),
                None if key == "latent_avg" => {
                    out.push(("mapping.w_avg".to_string(), t));
                    continue;
                }
                None => {
                    dropped += 1; // g, d, optimizer states of a training checkpoint
                    continue;
                }
            }
        } else {
            key
        };
        match nvidia_key(&name) {
            Some(Some((nv, shape))) => out.push((nv, reshape(t, shape, &name)?)),
            Some(None) => dropped += 1,
            None => {
                return Err(malformed(format!(
                    "unexpected key '{}' in a rosinality StyleGAN2 generator",
                    one_line(&name)
                )))
            }
        }
    }
    Ok((out, dropped))
}

/// How a tensor's shape changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Keep,
    /// Drops a leading dimension of 1 (`[1,O,I,k,k]`, `[1,C,4,4]`).
    DropFirst,
    /// To a 1-D vector (`[1,3,1,1]` -> `[3]`).
    Flat,
    /// `[1]` to a scalar.
    Scalar,
}

/// NVIDIA's key for a rosinality generator key; `Some(None)` for buffers left out.
fn nvidia_key(name: &str) -> Option<Option<(String, Shape)>> {
    use Shape::*;
    if name.starts_with("noises.") || name.ends_with(".kernel") {
        return Some(None);
    }
    if let Some(rest) = name.strip_prefix("style.") {
        let (i, param) = rest.split_once('.')?;
        let i: usize = i.parse().ok().filter(|i| (1..=64).contains(i))?;
        return matches!(param, "weight" | "bias")
            .then(|| Some((format!("mapping.fc{}.{param}", i - 1), Keep)));
    }
    if name == "input.input" {
        return Some(Some(("synthesis.b4.const".into(), DropFirst)));
    }
    let (layer, rest) = if let Some(rest) = name.strip_prefix("conv1.") {
        ("synthesis.b4.conv1".to_string(), rest)
    } else if let Some(rest) = name.strip_prefix("to_rgb1.") {
        ("synthesis.b4.torgb".to_string(), rest)
    } else if let Some(rest) = name.strip_prefix("convs.") {
        let (i, rest) = rest.split_once('.')?;
        let i: u32 = i.parse().ok().filter(|&i| i < 32)?;
        (format!("synthesis.b{}.conv{}", 8u64 << (i / 2), i % 2), rest)
    } else if let Some(rest) = name.strip_prefix("to_rgbs.") {
        let (i, rest) = rest.split_once('.')?;
        let i: u32 = i.parse().ok().filter(|&i| i < 16)?;
        (format!("synthesis.b{}.torgb", 8u64 << i), rest)
    } else {
        return None;
    };
    let torgb = layer.ends_with("torgb");
    let (param, shape) = match rest {
        "conv.weight" => ("weight", DropFirst),
        "conv.modulation.weight" => ("affine.weight", Keep),
        "conv.modulation.bias" => ("affine.bias", Keep),
        "noise.weight" if !torgb => ("noise_strength", Scalar),
        "activate.bias" if !torgb => ("bias", Keep),
        "bias" if torgb => ("bias", Flat),
        _ => return None,
    };
    Some(Some((format!("{layer}.{param}"), shape)))
}

fn reshape(t: Tensor, shape: Shape, name: &str) -> Result<Tensor, ErrorKind> {
    let size = t.size();
    let bad = || {
        malformed(format!(
            "'{}' has shape {size:?}, which rosinality's layout does not give it",
            one_line(name)
        ))
    };
    Ok(match shape {
        Shape::Keep => t,
        Shape::DropFirst if size.first() == Some(&1) && size.len() >= 2 => t.select(0, 0),
        Shape::Flat if t.numel() == *size.get(1).unwrap_or(&0) as usize => t.flatten(0, -1),
        Shape::Scalar if t.numel() == 1 => t.reshape([] as [i64; 0]),
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_table() {
        let k = |n: &str| nvidia_key(n).unwrap().map(|(k, _)| k);
        assert_eq!(k("style.1.weight").unwrap(), "mapping.fc0.weight");
        assert_eq!(k("input.input").unwrap(), "synthesis.b4.const");
        assert_eq!(k("conv1.conv.modulation.bias").unwrap(), "synthesis.b4.conv1.affine.bias");
        assert_eq!(k("convs.0.conv.weight").unwrap(), "synthesis.b8.conv0.weight");
        assert_eq!(k("convs.3.noise.weight").unwrap(), "synthesis.b16.conv1.noise_strength");
        assert_eq!(k("to_rgbs.2.bias").unwrap(), "synthesis.b32.torgb.bias");
        assert_eq!(k("convs.15.activate.bias").unwrap(), "synthesis.b1024.conv1.bias");
        assert_eq!(k("noises.noise_0"), None);
        assert!(nvidia_key("convs.0.conv.blur.kernel").unwrap().is_none());
        assert!(nvidia_key("style.0.weight").is_none());
        assert!(nvidia_key("other").is_none());
    }
}
