//! lernapparat's converted FFHQ generator (`karras2019stylegan-ffhq-1024x1024.for_g_all.pt`):
//! the state dict of `nn.Sequential(g_mapping, g_synthesis)`, so keys start with `g_mapping.`
//! and `g_synthesis.`, and its layer epilogues keep the noise layer inside `top_epi`
//! (lernapparat/lernapparat `style_gan/pytorch_style_gan.ipynb`). PULSE's `stylegan.py` is
//! "modified from lernapparat": the same modules, with the noise weight at `epiN.noise.weight`.
use super::error::{malformed, one_line, ErrorKind};
use tch::Tensor;

const MAPPING: &str = "g_mapping.";
const SYNTHESIS: &str = "g_synthesis.";

/// Whether a state dict is lernapparat's (any key under `g_mapping.` or `g_synthesis.`).
pub(crate) fn is_lernapparat<'a>(mut keys: impl Iterator<Item = &'a str>) -> bool {
    keys.any(|k| k.starts_with(MAPPING) || k.starts_with(SYNTHESIS))
}

/// Splits lernapparat's dict into PULSE's synthesis and mapping dicts (the blur kernels are
/// added when missing). Any key outside the two networks is refused by name.
pub(crate) type Split = (Vec<(String, Tensor)>, Vec<(String, Tensor)>);

pub(crate) fn split(entries: Vec<(String, Tensor)>) -> Result<Split, ErrorKind> {
    let (mut synthesis, mut mapping) = (Vec::new(), Vec::new());
    for (key, tensor) in entries {
        if let Some(rest) = key.strip_prefix(SYNTHESIS) {
            synthesis.push((rest.replace(".top_epi.noise.", ".noise."), tensor));
        } else if let Some(rest) = key.strip_prefix(MAPPING) {
            mapping.push((rest.to_string(), tensor));
        } else {
            return Err(malformed(format!(
                "key '{}' is neither under g_mapping. nor g_synthesis. (lernapparat's layout)",
                one_line(&key)
            )));
        }
    }
    synthesis.extend(super::pulse_layout::blur_kernels(&synthesis));
    Ok((synthesis, mapping))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_to_pulse_keys() {
        let t = || Tensor::from(1f32);
        let (s, m) = split(vec![
            ("g_mapping.dense0.weight".into(), t()),
            ("g_synthesis.blocks.4x4.epi1.top_epi.noise.weight".into(), t()),
            ("g_synthesis.blocks.8x8.conv0_up.weight".into(), t()),
        ])
        .unwrap();
        let keys: Vec<&str> = s.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "blocks.4x4.epi1.noise.weight",
                "blocks.8x8.conv0_up.weight",
                "blocks.8x8.conv0_up.intermediate.kernel"
            ]
        );
        assert_eq!(m[0].0, "dense0.weight");
        assert!(split(vec![("other.weight".into(), t())]).is_err());
    }
}
