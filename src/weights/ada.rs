//! NVIDIA's stylegan2-ada-pytorch network pickles (`network-snapshot-*.pkl`, `ffhq.pkl`):
//! `pickle.dump(dict(training_set_kwargs, G, D, G_ema, augment_pipe))` of
//! `torch_utils.persistence` objects (NVlabs/stylegan2-ada-pytorch `torch_utils/persistence.py`).
//! Each such object pickles as `_reconstruct_persistent_obj(meta)`, `meta` holding its module's
//! Python source, its class name and its `__dict__`; the tensors inside are `torch.save` byte
//! strings (`torch.storage._load_from_bytes`). The source is text: it is checked to define the
//! class it names and is never run. Only `G_ema`, the long-term average generator NVIDIA's
//! tools use, is read; its parameters and its `mapping.w_avg` buffer keep their names.
use super::error::{limit, malformed, one_line, ErrorKind};
use super::pickle::{unpickle_as, Flavour, Limits, Obj, ObjId, Pickle, TensorSpec};
use super::torch_file::{build_named, inline_data};
use std::collections::HashSet;
use tch::Tensor;

/// The classes of NVIDIA's `training/networks.py` a StyleGAN2 generator is made of.
const GENERATOR_CLASSES: &[&str] = &[
    "Generator",
    "MappingNetwork",
    "SynthesisNetwork",
    "SynthesisBlock",
    "SynthesisLayer",
    "ToRGBLayer",
    "FullyConnectedLayer",
    "Conv2dLayer",
];
/// The buffers a generator needs; the others (`noise_const`, `resample_filter`) are
/// constants the network builds itself or inputs the search supplies.
const KEPT_BUFFERS: &[&str] = &["w_avg"];
/// Modules nested deeper than this are refused (a generator has four levels).
const MAX_DEPTH: usize = 16;

/// Whether bytes that start like a pickle name `torch_utils.persistence` early on: NVIDIA's
/// pickles name it for the first network, after the small `training_set_kwargs`.
pub(crate) fn is_persistence_pickle(bytes: &[u8]) -> bool {
    const NAME: &[u8] = b"torch_utils.persistence";
    bytes[..bytes.len().min(1 << 20)].windows(NAME.len()).any(|w| w == NAME)
}

/// `G_ema`'s tensors under NVIDIA's names (`mapping.fc0.weight`, `synthesis.b4.const`, ...).
pub(crate) struct AdaGenerator {
    pub tensors: Vec<(String, Tensor)>,
    /// Buffers left out.
    pub dropped: usize,
}

/// Reads an stylegan2-ada-pytorch pickle and takes `G_ema`.
pub(crate) fn load(bytes: &[u8]) -> Result<AdaGenerator, ErrorKind> {
    let limits = Limits { max_storage_bytes: bytes.len() as u64 };
    let (pickle, _) = unpickle_as(bytes, 0, 0, limits, Flavour::Persistence)?;
    let Obj::Dict(top) = pickle.root() else {
        return Err(malformed(format!(
            "the pickle holds a {}, not stylegan2-ada-pytorch's dict of networks",
            pickle.root().type_name()
        )));
    };
    // Every persistent object of the file, not only those read: a source that does not define
    // the class it names is no NVIDIA network.
    for obj in &pickle.objs {
        if let Obj::Persistent(meta) = obj {
            Meta::read(&pickle, *meta)?;
        }
    }
    let g = lookup(&pickle, top, "G_ema").ok_or_else(|| {
        malformed("no G_ema in the pickle (stylegan2-ada-pytorch writes G, D and G_ema)")
    })?;
    let mut walk = Walk { p: &pickle, specs: Vec::new(), dropped: 0, seen: HashSet::new() };
    walk.module(g, "", 0)?;
    if walk.specs.is_empty() {
        return Err(malformed("G_ema has no parameters"));
    }
    let data = inline_data(&pickle, bytes);
    let tensors = build_named(&pickle, walk.specs, &data)?;
    Ok(AdaGenerator { tensors, dropped: walk.dropped })
}

/// The value of a string key in a dict (the last one, as in Python).
fn lookup(p: &Pickle, pairs: &[(ObjId, ObjId)], key: &str) -> Option<ObjId> {
    pairs.iter().rev().find(|(k, _)| matches!(p.get(*k), Obj::Str(s) if s == key)).map(|&(_, v)| v)
}

/// What `_reconstruct_persistent_obj` is given.
struct Meta<'p> {
    class_name: &'p str,
    state: &'p [(ObjId, ObjId)],
}

impl<'p> Meta<'p> {
    fn read(p: &'p Pickle, meta: ObjId) -> Result<Meta<'p>, ErrorKind> {
        let Obj::Dict(pairs) = p.get(meta) else {
            return Err(malformed("a persistent object's description is not a dict"));
        };
        let text = |key: &str| match lookup(p, pairs, key).map(|id| p.get(id)) {
            Some(Obj::Str(s)) => Ok(s.as_str()),
            _ => Err(malformed(format!("a persistent object has no text '{key}'"))),
        };
        if text("type")? != "class" {
            return Err(malformed("a persistent object of a type other than 'class'"));
        }
        let class_name = text("class_name")?;
        let source = text("module_src")?;
        if !defines_class(source, class_name) {
            return Err(malformed(format!(
                "persistent class '{}' is not defined by the source stored with it (not NVIDIA's network code)",
                one_line(class_name)
            )));
        }
        let state = match lookup(p, pairs, "state").map(|id| p.get(id)) {
            Some(Obj::Dict(state)) => state.as_slice(),
            _ => return Err(malformed(format!("'{}' has no state dict", one_line(class_name)))),
        };
        Ok(Meta { class_name, state })
    }
}

/// Whether Python source text has a line `class NAME(` or `class NAME:` (read as text only).
fn defines_class(source: &str, name: &str) -> bool {
    source.lines().any(|line| {
        line.strip_prefix("class ")
            .and_then(|rest| rest.strip_prefix(name))
            .is_some_and(|rest| rest.starts_with('(') || rest.starts_with(':'))
    })
}

/// Collects the tensors of a module tree, as `module.state_dict()` names them.
struct Walk<'p> {
    p: &'p Pickle,
    specs: Vec<(String, &'p TensorSpec)>,
    dropped: usize,
    seen: HashSet<ObjId>,
}

impl<'p> Walk<'p> {
    fn module(&mut self, id: ObjId, prefix: &str, depth: usize) -> Result<(), ErrorKind> {
        if depth > MAX_DEPTH {
            return Err(limit(format!("modules nested more than {MAX_DEPTH} levels deep")));
        }
        if !self.seen.insert(id) {
            return Err(malformed("a module appears twice in G_ema"));
        }
        let Obj::Persistent(meta) = self.p.get(id) else {
            return Err(malformed(format!(
                "G_ema's '{}' is a {}, not one of NVIDIA's persistent network classes",
                one_line(prefix.trim_end_matches('.')),
                self.p.get(id).type_name()
            )));
        };
        let meta = Meta::read(self.p, *meta)?;
        if !GENERATOR_CLASSES.contains(&meta.class_name) {
            return Err(malformed(format!(
                "G_ema holds a '{}', which is not a class of StyleGAN2's generator",
                one_line(meta.class_name)
            )));
        }
        for (field, kept) in [("_parameters", None), ("_buffers", Some(KEPT_BUFFERS))] {
            for (name, value) in self.entries(meta.state, field)? {
                match self.p.get(value) {
                    Obj::None => {}
                    Obj::Tensor(spec) if kept.is_none_or(|k| k.contains(&name)) => {
                        self.specs.push((format!("{prefix}{name}"), spec))
                    }
                    Obj::Tensor(_) => self.dropped += 1,
                    other => {
                        return Err(malformed(format!(
                            "'{prefix}{name}' is a {} instead of a tensor",
                            other.type_name()
                        )))
                    }
                }
            }
        }
        for (name, value) in self.entries(meta.state, "_modules")? {
            if !matches!(self.p.get(value), Obj::None) {
                self.module(value, &format!("{prefix}{name}."), depth + 1)?;
            }
        }
        Ok(())
    }

    /// The (name, value) pairs of a module's `_parameters`, `_buffers` or `_modules` dict.
    fn entries(
        &self,
        state: &[(ObjId, ObjId)],
        field: &str,
    ) -> Result<Vec<(&'p str, ObjId)>, ErrorKind> {
        let pairs = match lookup(self.p, state, field).map(|id| self.p.get(id)) {
            None => return Ok(Vec::new()),
            Some(Obj::Dict(pairs)) => pairs,
            Some(other) => {
                return Err(malformed(format!("a module's {field} is a {}", other.type_name())))
            }
        };
        let mut out: Vec<(&'p str, ObjId)> = Vec::with_capacity(pairs.len());
        for &(k, v) in pairs {
            let name = match self.p.get(k) {
                Obj::Str(s) if is_identifier(s) => s.as_str(),
                _ => return Err(malformed(format!("a name in a module's {field} is not a name"))),
            };
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some(entry) => entry.1 = v,
                None => out.push((name, v)),
            }
        }
        Ok(out)
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_is_defined_only_by_a_class_line() {
        let src = "import os\nclass Generator(torch.nn.Module):\n    pass\n";
        assert!(defines_class(src, "Generator"));
        assert!(!defines_class(src, "Gen"));
        assert!(!defines_class("os.system('x') # class Generator(", "Generator"));
        assert!(defines_class("class A:\n", "A"));
    }
}
