//! NVIDIA's StyleGAN (v1) TensorFlow pickle (`karras2019stylegan-ffhq-1024x1024.pkl`) read
//! without Python or TensorFlow, and converted to PULSE's state-dict keys and layouts.
//!
//! The file is `pickle.dump((G, D, Gs))` of `dnnlib.tflib.network.Network` objects, each stored
//! as its `__getstate__` dict: `name`, `build_func_name`, `static_kwargs`, `build_module_src`
//! (Python source: never executed, never needed), `components` (Gs: `synthesis`, `mapping`) and
//! `variables`, a list of (name relative to the network, numpy array) (NVlabs/stylegan
//! `dnnlib/tflib/network.py` `__getstate__`). Only Gs, the long-term average generator, is used,
//! as PULSE's and lernapparat's conversions do.
//!
//! TF stores raw variables and PULSE's layers apply the same runtime scales (equalized learning
//! rate, `lrmul`), so values are copied, never rescaled; only layouts change: dense `[in, out]`
//! is transposed, conv `[kh, kw, in, out]` becomes `[out, in, kh, kw]` (permute(3, 2, 0, 1)),
//! with no spatial flip (that is StyleGAN2's convention). The table of every variable is in
//! models/README.md (the import table) and this module's `synthesis_key`.
use super::dtype::tensor_from_bytes;
use super::error::{malformed, one_line, ErrorKind};
use super::pickle::{unpickle_as, Flavour, Limits, Obj, ObjId, Pickle};
use tch::Tensor;

/// Gs's trainable parameters in NVIDIA's FFHQ-1024 pickle (NVlabs/stylegan README, "Gs ...
/// Total 26219627").
pub const FFHQ_TF_TRAINABLES: i64 = 26_219_627;

/// The generator of a dnnlib pickle, converted to PULSE's keys.
pub struct TfGenerator {
    /// PULSE `synthesis.pt` keys, the blur kernels included.
    pub synthesis: Vec<(String, Tensor)>,
    /// PULSE `mapping.pt` keys.
    pub mapping: Vec<(String, Tensor)>,
    /// `dlatent_avg`, the running mean of w that StyleGAN's truncation trick uses.
    pub w_avg: Option<Tensor>,
    /// Gs's trainable parameters as TensorFlow counts them (every ToRGB_lod layer included).
    pub tf_trainables: i64,
    /// TF variables left out: `lod`, `noiseN` (PULSE passes noise at call time) and
    /// `ToRGB_lod1..8` (only the full-resolution output is used).
    pub dropped: usize,
    /// A StyleGAN2 generator (`G_main`): `synthesis` and `mapping` then hold NVIDIA's
    /// stylegan2-ada-pytorch names (`synthesis.b4.const`, `mapping.fc0.weight`, and
    /// `mapping.w_avg` from `dlatent_avg`), as its `legacy.convert_tf_generator` makes them.
    pub stylegan2: bool,
}

/// What a variable becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transform {
    Copy,
    /// Dense `[in, out]` to `[out, in]`.
    Transpose,
    /// Conv `[kh, kw, in, out]` to `[out, in, kh, kw]`.
    Permute,
}

/// Whether bytes that start like a pickle are a dnnlib pickle rather than a legacy
/// `torch.save` file, whose first pickle is the magic number (a LONG1).
pub(crate) fn is_dnnlib_pickle(bytes: &[u8]) -> bool {
    let mut pos = 0;
    if bytes.first() == Some(&0x80) {
        pos = 2;
    }
    if bytes.get(pos) == Some(&0x95) {
        pos += 9; // FRAME and its 8-byte length
    }
    bytes.get(pos).is_some_and(|&op| op != 0x8a)
}

/// Reads a dnnlib pickle and converts its Gs.
pub(crate) fn load(bytes: &[u8]) -> Result<TfGenerator, ErrorKind> {
    let limits = Limits { max_storage_bytes: bytes.len() as u64 };
    let (pickle, _) = unpickle_as(bytes, 0, 0, limits, Flavour::Dnnlib)?;
    let r = Reader { p: &pickle, bytes };
    let gs = r.generator()?;
    let gs_state = r.state(gs)?;
    let stylegan2 = match r.text_field(gs_state, "build_func_name")?.as_deref() {
        Some("G_style") => false,
        Some(f) if f == "G_main" || f.ends_with(".G_main") => true,
        Some(other) => {
            return Err(malformed(format!(
                "Gs is built by '{}', neither StyleGAN's G_style nor StyleGAN2's G_main",
                one_line(other)
            )))
        }
        None => return Err(malformed("Gs has no build_func_name")),
    };
    if stylegan2 {
        match r.field(gs_state, "version").map(|v| r.p.get(v)) {
            Some(Obj::Int(v)) if *v >= 4 => {}
            _ => return Err(malformed("a StyleGAN2 (G_main) network pickle older than version 4")),
        }
    }
    let components =
        r.field(gs_state, "components").ok_or_else(|| malformed("Gs has no components"))?;
    let Obj::Dict(components) = r.p.get(components) else {
        return Err(malformed("Gs's components are not a dict"));
    };
    let component = |name: &str| -> Result<ObjId, ErrorKind> {
        let id = r
            .lookup(components, name)
            .ok_or_else(|| malformed(format!("Gs has no '{name}' component")))?;
        match r.p.get(id) {
            Obj::Network(Some(_)) => Ok(id),
            other => Err(malformed(format!("Gs's '{name}' is a {}", other.type_name()))),
        }
    };
    let (synthesis_net, mapping_net) = (component("synthesis")?, component("mapping")?);

    let mut out = TfGenerator {
        synthesis: Vec::new(),
        mapping: Vec::new(),
        w_avg: None,
        tf_trainables: 0,
        dropped: 0,
        stylegan2,
    };
    if stylegan2 {
        convert_stylegan2(&r, gs, synthesis_net, mapping_net, &mut out)?;
        return Ok(out);
    }
    for (name, array) in r.variables(gs)? {
        match name.as_str() {
            "lod" => out.dropped += 1,
            "dlatent_avg" => out.w_avg = Some(r.tensor(array, &name)?),
            other => return Err(unexpected("Gs", other)),
        }
    }
    for (name, array) in r.variables(synthesis_net)? {
        match synthesis_key(&name) {
            Some(Some((key, transform))) => {
                let t = r.tensor(array, &name)?;
                out.tf_trainables += t.numel() as i64;
                out.synthesis.push((key, convert(t, transform, &name)?));
            }
            Some(None) => {
                if name.starts_with("ToRGB_lod") {
                    out.tf_trainables += r.tensor(array, &name)?.numel() as i64;
                }
                out.dropped += 1;
            }
            None => return Err(unexpected("G_synthesis", &name)),
        }
    }
    for (name, array) in r.variables(mapping_net)? {
        let (key, transform) = mapping_key(&name).ok_or_else(|| unexpected("G_mapping", &name))?;
        let t = r.tensor(array, &name)?;
        out.tf_trainables += t.numel() as i64;
        out.mapping.push((key, convert(t, transform, &name)?));
    }
    if out.synthesis.is_empty() || out.mapping.is_empty() {
        return Err(malformed("Gs has an empty synthesis or mapping network"));
    }
    out.synthesis.extend(super::pulse_layout::blur_kernels(&out.synthesis));
    Ok(out)
}

/// StyleGAN2's Gs, converted as NVIDIA's `legacy.convert_tf_generator` does (see
/// [`sg2_synthesis_key`]); the noise inputs are left out.
fn convert_stylegan2(
    r: &Reader,
    gs: ObjId,
    synthesis_net: ObjId,
    mapping_net: ObjId,
    out: &mut TfGenerator,
) -> Result<(), ErrorKind> {
    let unexpected = |net: &str, name: &str| {
        malformed(format!(
            "unexpected variable '{}' in {net} (not a StyleGAN2 generator with the skip architecture)",
            one_line(name)
        ))
    };
    let mut w_avg = None;
    for (name, array) in r.variables(gs)? {
        match name.as_str() {
            "dlatent_avg" => w_avg = Some(r.tensor(array, &name)?),
            "lod" => out.dropped += 1,
            other => return Err(unexpected("Gs", other)),
        }
    }
    for (name, array) in r.variables(mapping_net)? {
        let (key, transform) = mapping_key(&name).ok_or_else(|| unexpected("G_mapping", &name))?;
        let t = r.tensor(array, &name)?;
        out.tf_trainables += t.numel() as i64;
        out.mapping.push((
            format!("mapping.{}", key.replacen("dense", "fc", 1)),
            convert(t, transform, &name)?,
        ));
    }
    for (name, array) in r.variables(synthesis_net)? {
        match sg2_synthesis_key(&name) {
            Some(Some((key, transform))) => {
                let t = r.tensor(array, &name)?;
                out.tf_trainables += t.numel() as i64;
                out.synthesis.push((key, convert_sg2(t, transform, &name)?));
            }
            Some(None) => out.dropped += 1,
            None => return Err(unexpected("G_synthesis", &name)),
        }
    }
    let w_avg = w_avg.ok_or_else(|| malformed("Gs has no dlatent_avg"))?;
    out.mapping.push(("mapping.w_avg".into(), w_avg));
    if out.synthesis.is_empty() || out.mapping.len() < 2 {
        return Err(malformed("Gs has an empty synthesis or mapping network"));
    }
    Ok(())
}

/// What a StyleGAN2 TF variable becomes (NVIDIA's `legacy.py`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sg2Transform {
    Copy,
    /// `mod_weight` `[in, out]` to `affine.weight` `[out, in]`.
    Transpose,
    /// Conv `[kh, kw, in, out]` to `[out, in, kh, kw]`.
    Permute,
    /// The up-sampling conv: flipped in both spatial axes, then permuted. TF's
    /// `conv2d_transpose` correlates with the flipped kernel, PyTorch's does not.
    FlipPermute,
    /// `Const/const` `[1, C, 4, 4]` to `[C, 4, 4]`.
    First,
    /// `mod_bias` + 1: TF adds the 1 at run time, PyTorch initialises the bias with it.
    PlusOne,
}

/// The stylegan2-ada-pytorch key of a StyleGAN2 `G_synthesis` variable; `Some(None)` for the
/// noise inputs, `None` for names the skip architecture never has.
fn sg2_synthesis_key(name: &str) -> Option<Option<(String, Sg2Transform)>> {
    use Sg2Transform::*;
    if name.strip_prefix("noise").is_some_and(is_number) {
        return Some(None);
    }
    let [res, layer, param] = name.split('/').collect::<Vec<_>>()[..] else {
        return None;
    };
    let (a, b) = res.split_once('x')?;
    if !is_number(a) || a != b {
        return None;
    }
    let block = format!("synthesis.b{a}");
    let first = a == "4";
    let (layer, up) = match layer {
        "Const" if first => {
            return (param == "const").then(|| Some((format!("{block}.const"), First)))
        }
        "Conv" if first => ("conv1", false),
        "Conv0_up" if !first => ("conv0", true),
        "Conv1" if !first => ("conv1", false),
        "ToRGB" => ("torgb", false),
        _ => return None,
    };
    let found = match param {
        "weight" => ("weight", if up { FlipPermute } else { Permute }),
        "bias" => ("bias", Copy),
        "noise_strength" if layer != "torgb" => ("noise_strength", Copy),
        "mod_weight" => ("affine.weight", Transpose),
        "mod_bias" => ("affine.bias", PlusOne),
        _ => return None,
    };
    Some(Some((format!("{block}.{layer}.{}", found.0), found.1)))
}

fn convert_sg2(t: Tensor, transform: Sg2Transform, name: &str) -> Result<Tensor, ErrorKind> {
    let dims = match transform {
        Sg2Transform::Copy => return Ok(t),
        Sg2Transform::PlusOne => return Ok(t + 1.0),
        Sg2Transform::Transpose => 2,
        Sg2Transform::Permute | Sg2Transform::FlipPermute | Sg2Transform::First => 4,
    };
    if t.dim() != dims || (transform == Sg2Transform::First && t.size()[0] != 1) {
        return Err(malformed(format!(
            "variable '{}' has shape {:?}, which StyleGAN2 does not give it",
            one_line(name),
            t.size()
        )));
    }
    let out = match transform {
        Sg2Transform::Transpose => t.tr(),
        Sg2Transform::Permute => t.permute([3, 2, 0, 1]),
        Sg2Transform::FlipPermute => t.flip([0, 1]).permute([3, 2, 0, 1]),
        _ => t.select(0, 0),
    };
    Ok(out.contiguous())
}

fn unexpected(network: &str, name: &str) -> ErrorKind {
    malformed(format!(
        "unexpected variable '{}' in {network} (not a StyleGAN v1 generator)",
        one_line(name)
    ))
}

/// The PULSE key and transform of a `G_synthesis` variable; `Some(None)` for the variables
/// PULSE does not use, `None` for names StyleGAN v1 never has.
fn synthesis_key(name: &str) -> Option<Option<(String, Transform)>> {
    if name == "lod" || name.strip_prefix("noise").is_some_and(is_number) {
        return Some(None);
    }
    if let Some(rest) = name.strip_prefix("ToRGB_lod") {
        let (lod, param) = rest.split_once('/')?;
        if !is_number(lod) || !matches!(param, "weight" | "bias") {
            return None;
        }
        if lod != "0" {
            return Some(None);
        }
        let t = if param == "weight" { Transform::Permute } else { Transform::Copy };
        return Some(Some((format!("torgb.{param}"), t)));
    }
    let parts: Vec<&str> = name.split('/').collect();
    let (res, layer, rest) = (parts.first()?, parts.get(1)?, parts.get(2..)?);
    let (a, b) = res.split_once('x')?;
    if !is_number(a) || a != b {
        return None;
    }
    let block = format!("blocks.{res}");
    let (conv, epi) = match *layer {
        "Const" if *res == "4x4" => ("", "epi1"),
        "Conv" if *res == "4x4" => ("conv", "epi2"),
        "Conv0_up" if *res != "4x4" => ("conv0_up", "epi1"),
        "Conv1" if *res != "4x4" => ("conv1", "epi2"),
        _ => return None,
    };
    let found = match (rest, conv) {
        (["const"], "") => (format!("{block}.const"), Transform::Copy),
        (["bias"], "") => (format!("{block}.bias"), Transform::Copy),
        (["weight"], c) if !c.is_empty() => (format!("{block}.{c}.weight"), Transform::Permute),
        (["bias"], c) => (format!("{block}.{c}.bias"), Transform::Copy),
        (["Noise", "weight"], _) => (format!("{block}.{epi}.noise.weight"), Transform::Copy),
        (["StyleMod", "weight"], _) => {
            (format!("{block}.{epi}.style_mod.lin.weight"), Transform::Transpose)
        }
        (["StyleMod", "bias"], _) => (format!("{block}.{epi}.style_mod.lin.bias"), Transform::Copy),
        _ => return None,
    };
    Some(Some(found))
}

/// `DenseN/weight` and `DenseN/bias` of `G_mapping`.
fn mapping_key(name: &str) -> Option<(String, Transform)> {
    let (layer, param) = name.strip_prefix("Dense")?.split_once('/')?;
    if !is_number(layer) {
        return None;
    }
    match param {
        "weight" => Some((format!("dense{layer}.weight"), Transform::Transpose)),
        "bias" => Some((format!("dense{layer}.bias"), Transform::Copy)),
        _ => None,
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit())
}

fn convert(t: Tensor, transform: Transform, name: &str) -> Result<Tensor, ErrorKind> {
    let want = match transform {
        Transform::Copy => return Ok(t),
        Transform::Transpose => 2,
        Transform::Permute => 4,
    };
    if t.dim() != want {
        return Err(malformed(format!(
            "variable '{}' has shape {:?}, a {want}-D weight was expected",
            one_line(name),
            t.size()
        )));
    }
    let out = match transform {
        Transform::Transpose => t.tr(),
        _ => t.permute([3, 2, 0, 1]),
    };
    Ok(out.contiguous())
}

/// Typed access to the unpickled objects.
struct Reader<'a> {
    p: &'a Pickle,
    bytes: &'a [u8],
}

impl Reader<'_> {
    /// Gs: the third network of `(G, D, Gs)`, or a lone pickled network.
    fn generator(&self) -> Result<ObjId, ErrorKind> {
        let id = match self.p.root() {
            Obj::Tuple(items) if items.len() == 3 => items[2],
            Obj::Network(_) => self.p.root,
            Obj::Tuple(items) => {
                return Err(malformed(format!(
                    "the pickle holds {} objects, not NVIDIA's (G, D, Gs)",
                    items.len()
                )))
            }
            other => {
                return Err(malformed(format!(
                    "the pickle holds a {}, not NVIDIA's (G, D, Gs) networks",
                    other.type_name()
                )))
            }
        };
        match self.p.get(id) {
            Obj::Network(Some(_)) => Ok(id),
            other => Err(malformed(format!("Gs is a {}, not a dnnlib network", other.type_name()))),
        }
    }

    fn state(&self, net: ObjId) -> Result<&[(ObjId, ObjId)], ErrorKind> {
        match self.p.get(net) {
            Obj::Network(Some(state)) => match self.p.get(*state) {
                Obj::Dict(pairs) => Ok(pairs),
                _ => Err(malformed("a network's state is not a dict")),
            },
            _ => Err(malformed("a network has no state")),
        }
    }

    /// The value of `key` in a dict (the last one, as in Python).
    fn lookup(&self, pairs: &[(ObjId, ObjId)], key: &str) -> Option<ObjId> {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| matches!(self.p.get(*k), Obj::Str(s) if s == key))
            .map(|&(_, v)| v)
    }

    fn field(&self, state: &[(ObjId, ObjId)], key: &str) -> Option<ObjId> {
        self.lookup(state, key)
    }

    fn text_field(&self, state: &[(ObjId, ObjId)], key: &str) -> Result<Option<String>, ErrorKind> {
        match self.field(state, key).map(|id| self.p.get(id)) {
            None => Ok(None),
            Some(Obj::Str(s)) => Ok(Some(s.clone())),
            Some(other) => Err(malformed(format!("'{key}' is a {}", other.type_name()))),
        }
    }

    /// The `variables` list of a network: (name, array) pairs.
    fn variables(&self, net: ObjId) -> Result<Vec<(String, ObjId)>, ErrorKind> {
        let state = self.state(net)?;
        let list = self
            .field(state, "variables")
            .ok_or_else(|| malformed("a network has no variables"))?;
        let (Obj::List(items) | Obj::Tuple(items)) = self.p.get(list) else {
            return Err(malformed("a network's variables are not a list"));
        };
        let mut out = Vec::with_capacity(items.len());
        for &item in items {
            let pair = match self.p.get(item) {
                Obj::Tuple(v) | Obj::List(v) if v.len() == 2 => v,
                _ => return Err(malformed("a network variable is not a (name, array) pair")),
            };
            let Obj::Str(name) = self.p.get(pair[0]) else {
                return Err(malformed("a network variable's name is not a string"));
            };
            if name.len() > 256 {
                return Err(malformed("a network variable's name is longer than 256 bytes"));
            }
            if out.iter().any(|(n, _)| n == name) {
                return Err(malformed(format!("variable '{}' appears twice", one_line(name))));
            }
            out.push((name.clone(), pair[1]));
        }
        Ok(out)
    }

    /// A float32 numpy array as a tensor of its shape (values copied).
    fn tensor(&self, id: ObjId, name: &str) -> Result<Tensor, ErrorKind> {
        let Obj::Array(a) = self.p.get(id) else {
            return Err(malformed(format!(
                "variable '{}' is a {}, not a numpy array",
                one_line(name),
                self.p.get(id).type_name()
            )));
        };
        if a.dtype != super::dtype::Dtype::F32 {
            return Err(ErrorKind::UnsupportedDtype(format!(
                "{:?} in variable '{}' (StyleGAN's variables are float32)",
                a.dtype,
                one_line(name)
            )));
        }
        let raw: &[u8] = match a.data.map(|d| self.p.get(d)) {
            Some(Obj::Bytes(b)) => b,
            // The unpickler recorded the range after checking it lies inside the input.
            Some(Obj::BytesRef { start, len }) => self
                .bytes
                .get(*start..*start + *len)
                .ok_or_else(|| malformed("array data outside the file"))?,
            _ => return Err(malformed(format!("array '{}' has no data", one_line(name)))),
        };
        let flat = tensor_from_bytes(raw, a.dtype)?;
        let t = if a.fortran {
            let reversed: Vec<i64> = a.shape.iter().rev().copied().collect();
            let dims: Vec<i64> = (0..a.shape.len() as i64).rev().collect();
            flat.f_reshape(reversed.as_slice()).and_then(|t| t.f_permute(dims.as_slice()))
        } else {
            flat.f_reshape(a.shape.as_slice())
        };
        t.and_then(|t| t.f_contiguous()).map_err(malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conversion_table() {
        let k = |n: &str| synthesis_key(n).unwrap();
        assert_eq!(k("4x4/Const/const"), Some(("blocks.4x4.const".into(), Transform::Copy)));
        assert_eq!(k("4x4/Const/bias"), Some(("blocks.4x4.bias".into(), Transform::Copy)));
        assert_eq!(
            k("4x4/Const/Noise/weight"),
            Some(("blocks.4x4.epi1.noise.weight".into(), Transform::Copy))
        );
        assert_eq!(
            k("4x4/Const/StyleMod/weight"),
            Some(("blocks.4x4.epi1.style_mod.lin.weight".into(), Transform::Transpose))
        );
        assert_eq!(
            k("4x4/Conv/weight"),
            Some(("blocks.4x4.conv.weight".into(), Transform::Permute))
        );
        assert_eq!(
            k("4x4/Conv/StyleMod/bias"),
            Some(("blocks.4x4.epi2.style_mod.lin.bias".into(), Transform::Copy))
        );
        assert_eq!(
            k("64x64/Conv0_up/weight"),
            Some(("blocks.64x64.conv0_up.weight".into(), Transform::Permute))
        );
        assert_eq!(
            k("64x64/Conv0_up/Noise/weight"),
            Some(("blocks.64x64.epi1.noise.weight".into(), Transform::Copy))
        );
        assert_eq!(
            k("1024x1024/Conv1/bias"),
            Some(("blocks.1024x1024.conv1.bias".into(), Transform::Copy))
        );
        assert_eq!(
            k("1024x1024/Conv1/StyleMod/weight"),
            Some(("blocks.1024x1024.epi2.style_mod.lin.weight".into(), Transform::Transpose))
        );
        assert_eq!(k("ToRGB_lod0/weight"), Some(("torgb.weight".into(), Transform::Permute)));
        assert_eq!(k("ToRGB_lod3/bias"), None);
        assert_eq!(k("noise17"), None);
        assert_eq!(k("lod"), None);
        for bad in
            ["4x4/Conv0_up/weight", "8x8/Const/const", "8x16/Conv1/weight", "ToRGB/weight", "x"]
        {
            assert!(synthesis_key(bad).is_none(), "{bad}");
        }
        assert_eq!(
            mapping_key("Dense7/weight"),
            Some(("dense7.weight".into(), Transform::Transpose))
        );
        assert_eq!(mapping_key("Dense0/bias"), Some(("dense0.bias".into(), Transform::Copy)));
        assert!(mapping_key("Dense/weight").is_none());
    }

    #[test]
    fn layouts_move_elements_as_tf_to_pulse() {
        // pt[o][i] = tf[i][o]
        let tf = Tensor::arange(6, (tch::Kind::Float, tch::Device::Cpu)).reshape([2, 3]);
        let pt = convert(tf.copy(), Transform::Transpose, "w").unwrap();
        assert_eq!(pt.size(), [3, 2]);
        assert_eq!(pt.double_value(&[2, 1]), tf.double_value(&[1, 2]));
        // pt[o][i][y][x] = tf[y][x][i][o]
        let tf = Tensor::arange(2 * 3 * 4 * 5, (tch::Kind::Float, tch::Device::Cpu))
            .reshape([2, 3, 4, 5]);
        let pt = convert(tf.copy(), Transform::Permute, "w").unwrap();
        assert_eq!(pt.size(), [5, 4, 2, 3]);
        assert_eq!(pt.double_value(&[4, 1, 0, 2]), tf.double_value(&[0, 2, 1, 4]));
        assert!(convert(tf, Transform::Transpose, "w").is_err());
    }

    #[test]
    fn tells_dnnlib_pickles_from_legacy_torch_files() {
        assert!(!is_dnnlib_pickle(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."));
        assert!(is_dnnlib_pickle(b"\x80\x02cdnnlib.tflib.network\nNetwork\n"));
        assert!(is_dnnlib_pickle(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x06dnnlib"));
    }
}
