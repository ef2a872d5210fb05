//! The structure of a StyleGAN2 generator under NVIDIA's stylegan2-ada-pytorch names, checked
//! from the tensors alone (what `pulse import` asks before it writes anything): every block from `b4` to `bR` with all its layers, shapes that chain
//! (each layer's input channels are the previous layer's output, every style has `w_dim`
//! inputs), and a mapping network from z to w. This is what the network's constructor will
//! ask of the files, said before anything is written (NVlabs/stylegan2-ada-pytorch
//! `training/networks.py`: `SynthesisBlock`, `SynthesisLayer`, `ToRGBLayer`, `MappingNetwork`).
use super::SynthesisConfig;
use crate::weights::StateDict;

/// What the tensors say about the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    pub resolution: i64,
    /// Output channels of each block, `b4` first.
    pub channels: Vec<i64>,
    pub w_dim: i64,
    pub z_dim: i64,
    pub mapping_layers: i64,
    pub synthesis_params: i64,
    pub mapping_params: i64,
}

impl Schema {
    /// NVIDIA's FFHQ config-f generator ([`SynthesisConfig::ffhq`]) with an eight-layer
    /// 512-wide mapping network.
    pub fn is_ffhq(&self) -> bool {
        let ffhq = SynthesisConfig::ffhq();
        self.resolution == ffhq.resolution
            && self.channels == ffhq.channels
            && self.w_dim == 512
            && self.z_dim == 512
            && self.mapping_layers == 8
    }
}

/// Parameters of FFHQ config-f (G_ema, `mapping.w_avg` excluded), from the shapes
/// of [`Schema::is_ffhq`]: the synthesis network and the mapping network.
pub fn ffhq_params() -> (i64, i64) {
    let mut synthesis = 0;
    let mut cin = 0;
    for (i, &c) in SynthesisConfig::ffhq().channels.iter().enumerate() {
        let layer = |cin: i64, cout: i64| cout * cin * 9 + cout + 1 + cin * 512 + cin;
        if i == 0 {
            synthesis += c * 16 + layer(c, c);
        } else {
            synthesis += layer(cin, c) + layer(c, c);
        }
        synthesis += 3 * c + 3 + c * 512 + c; // torgb
        cin = c;
    }
    (synthesis, 8 * (512 * 512 + 512))
}

/// Checks the networks; an error names the first key that is missing or has a wrong shape.
pub fn check(synthesis: &StateDict, mapping: Option<&StateDict>) -> Result<Schema, String> {
    let shape = |sd: &StateDict, key: &str| -> Result<Vec<i64>, String> {
        sd.get(key).map(|t| t.size()).ok_or_else(|| format!("missing '{key}'"))
    };
    let expect = |sd: &StateDict, key: &str, want: &[i64]| -> Result<(), String> {
        let got = shape(sd, key)?;
        if got != want {
            return Err(format!("'{key}' has shape {got:?}, expected {want:?}"));
        }
        Ok(())
    };
    let c4 = match &shape(synthesis, "synthesis.b4.const")?[..] {
        [c, 4, 4] => *c,
        other => {
            return Err(format!("'synthesis.b4.const' has shape {other:?}, expected [C, 4, 4]"))
        }
    };
    let w_dim = match &shape(synthesis, "synthesis.b4.conv1.affine.weight")?[..] {
        [_, w] => *w,
        other => return Err(format!("'synthesis.b4.conv1.affine.weight' has shape {other:?}")),
    };
    // One modulated layer: affine [cin, w_dim] and bias [cin], weight [cout, cin, k, k], bias.
    let layer = |name: &str, cin: i64, cout: i64, k: i64, noise: bool| -> Result<(), String> {
        expect(synthesis, &format!("{name}.affine.weight"), &[cin, w_dim])?;
        expect(synthesis, &format!("{name}.affine.bias"), &[cin])?;
        expect(synthesis, &format!("{name}.weight"), &[cout, cin, k, k])?;
        expect(synthesis, &format!("{name}.bias"), &[cout])?;
        if noise {
            expect(synthesis, &format!("{name}.noise_strength"), &[])?;
        }
        Ok(())
    };
    let mut channels = vec![c4];
    layer("synthesis.b4.conv1", c4, c4, 3, true)?;
    layer("synthesis.b4.torgb", c4, 3, 1, false)?;
    let mut res = 8i64;
    while synthesis.get(&format!("synthesis.b{res}.conv0.weight")).is_some() {
        if res > 1024 {
            return Err(format!("blocks beyond 1024x1024 (b{res})"));
        }
        let cin = *channels.last().expect("b4");
        let cout = shape(synthesis, &format!("synthesis.b{res}.conv0.weight"))?[0];
        layer(&format!("synthesis.b{res}.conv0"), cin, cout, 3, true)?;
        layer(&format!("synthesis.b{res}.conv1"), cout, cout, 3, true)?;
        layer(&format!("synthesis.b{res}.torgb"), cout, 3, 1, false)?;
        channels.push(cout);
        res *= 2;
    }
    let resolution = res / 2;
    if let Some(extra) = synthesis.keys().find(|k| !is_known_synthesis_key(k, resolution)) {
        return Err(format!(
            "unexpected '{extra}' (not a StyleGAN2 generator with the skip architecture up to {resolution}x{resolution})"
        ));
    }
    let synthesis_params = synthesis.iter().map(|(_, t)| t.numel() as i64).sum();

    let (mut z_dim, mut mapping_layers, mut mapping_params) = (0, 0, 0);
    if let Some(m) = mapping {
        let mut width = None;
        while let Some(t) = m.get(&format!("mapping.fc{mapping_layers}.weight")) {
            let name = format!("mapping.fc{mapping_layers}");
            let [out, inp] = t.size()[..] else {
                return Err(format!(
                    "'{name}.weight' has shape {:?}, expected [out, in]",
                    t.size()
                ));
            };
            if let Some(w) = width {
                if w != inp {
                    return Err(format!(
                        "'{name}.weight' has {inp} inputs, the layer before gives {w}"
                    ));
                }
            } else {
                z_dim = inp;
            }
            expect(m, &format!("{name}.bias"), &[out])?;
            width = Some(out);
            mapping_layers += 1;
        }
        match width {
            None => return Err("missing 'mapping.fc0.weight'".into()),
            Some(w) if w != w_dim => {
                return Err(format!(
                    "the mapping network gives {w} features, the styles take {w_dim}"
                ))
            }
            Some(_) => {}
        }
        expect(m, "mapping.w_avg", &[w_dim])?;
        if let Some(extra) = m.keys().find(|k| {
            *k != "mapping.w_avg"
                && !k.strip_prefix("mapping.fc").and_then(|r| r.split_once('.')).is_some_and(
                    |(i, p)| {
                        i.parse::<i64>().is_ok_and(|i| i < mapping_layers)
                            && matches!(p, "weight" | "bias")
                    },
                )
        }) {
            return Err(format!("unexpected '{extra}' in the mapping network"));
        }
        mapping_params =
            m.iter().filter(|(k, _)| *k != "mapping.w_avg").map(|(_, t)| t.numel() as i64).sum();
    }
    Ok(Schema {
        resolution,
        channels,
        w_dim,
        z_dim,
        mapping_layers,
        synthesis_params,
        mapping_params,
    })
}

/// Whether a key belongs to a skip-architecture synthesis network up to `resolution`.
fn is_known_synthesis_key(key: &str, resolution: i64) -> bool {
    let Some((block, rest)) = key.strip_prefix("synthesis.b").and_then(|r| r.split_once('.'))
    else {
        return false;
    };
    let Ok(res) = block.parse::<i64>() else { return false };
    if !(4..=resolution).contains(&res) {
        return false;
    }
    if rest == "const" {
        return res == 4;
    }
    let Some((layer, param)) = rest.split_once('.') else { return false };
    let layer_ok = match layer {
        "conv0" => res > 4,
        "conv1" | "torgb" => true,
        _ => false,
    };
    let param_ok = match param {
        "weight" | "bias" | "affine.weight" | "affine.bias" => true,
        "noise_strength" => layer != "torgb",
        _ => false,
    };
    layer_ok && param_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffhq_config_f_counts() {
        // stylegan2-ada-pytorch's G_ema of config-f: 30,370,060 parameters in all.
        let (s, m) = ffhq_params();
        assert_eq!(m, 2_101_248);
        assert_eq!(s + m, 30_370_060);
    }
}
