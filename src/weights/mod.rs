//! Loading and saving network weights (docs/design.md, "Weight files").
//!
//! [`load`] reads PyTorch `torch.save` files, legacy (pre-1.6) or zip, and safetensors files,
//! telling them apart by their first bytes, never by the extension. PyTorch files are read by a
//! restricted unpickler that executes nothing and resolves only an allow-list of globals
//! ([`pickle`]), like `torch.load(weights_only=True)`; every length in the file is checked
//! against the bytes really there before anything is allocated. [`save_safetensors`] writes the
//! project's canonical format; [`load_into`] copies a [`StateDict`] into a `tch` `VarStore`.
//!
//! The library never prints: every failure is a [`WeightError`] naming the file.
mod ada;
mod dtype;
mod error;
mod lernapparat;
pub mod nvidia;
mod pickle;
mod pulse_layout;
mod rosinality;
mod safetensors;
mod source;
mod torch_file;

use error::malformed;
pub use error::{ErrorKind, WeightError};
pub use source::{load_source, Source, SourceFormat};

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Named tensors in file order, all on the CPU, each with the dtype it had in the file.
pub struct StateDict {
    entries: Vec<(String, Tensor)>,
    index: HashMap<String, usize>,
    path: PathBuf,
    metadata: Option<HashMap<String, String>>,
}

impl StateDict {
    /// Builds a state dict from pairs (a later duplicate key replaces the earlier value).
    /// Its [`path`](Self::path) is empty.
    pub fn from_pairs(v: Vec<(String, Tensor)>) -> Self {
        let mut sd = StateDict {
            entries: Vec::with_capacity(v.len()),
            index: HashMap::with_capacity(v.len()),
            path: PathBuf::new(),
            metadata: None,
        };
        for (key, tensor) in v {
            match sd.index.get(&key) {
                Some(&i) => sd.entries[i].1 = tensor,
                None => {
                    sd.index.insert(key.clone(), sd.entries.len());
                    sd.entries.push((key, tensor));
                }
            }
        }
        sd
    }

    /// The same dict, reporting errors against `path`.
    pub fn with_path(mut self, path: &Path) -> Self {
        self.path = path.to_path_buf();
        self
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.entries.iter().map(|(k, t)| (k.as_str(), t))
    }

    /// The file this state dict was loaded from (empty for [`from_pairs`](Self::from_pairs)).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `__metadata__` strings of a safetensors file (`None` for PyTorch files).
    pub fn metadata(&self) -> Option<&HashMap<String, String>> {
        self.metadata.as_ref()
    }
}

impl std::fmt::Debug for StateDict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut m = f.debug_map();
        for (k, t) in self.iter() {
            m.entry(&k, &(t.kind(), t.size()));
        }
        m.finish()
    }
}

/// Loads a weight file, detecting its format from its first bytes: a zip archive
/// (`PK\x03\x04`, torch >= 1.6), a pickle (`\x80` protocol byte: legacy torch.save) or a
/// safetensors header. Any storage location (`cuda:0`, ...) loads onto the CPU.
pub fn load(path: &Path) -> Result<StateDict, WeightError> {
    let err = |kind| WeightError::new(path, kind);
    // Look at the head first, so that a large file of another kind is rejected unread.
    let mut head = [0u8; 16];
    let head_len = read_head(path, &mut head).map_err(|e| err(ErrorKind::Io(e)))?;
    if head_len == head.len() {
        detect(&head).map_err(err)?;
    }
    let bytes = std::fs::read(path).map_err(|e| err(ErrorKind::Io(e)))?;
    let (entries, metadata) = parse(&bytes).map_err(err)?;
    let mut sd = StateDict::from_pairs(entries);
    sd.path = path.to_path_buf();
    sd.metadata = metadata;
    Ok(sd)
}

/// [`load`] of bytes already in memory; `name` is the file name errors report.
pub fn load_bytes(bytes: &[u8], name: &Path) -> Result<StateDict, WeightError> {
    let (entries, metadata) = parse(bytes).map_err(|k| WeightError::new(name, k))?;
    let mut sd = StateDict::from_pairs(entries);
    sd.path = name.to_path_buf();
    sd.metadata = metadata;
    Ok(sd)
}

/// Reads up to `buf.len()` bytes from the start of the file.
fn read_head(path: &Path, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut file = std::fs::File::open(path)?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The containers [`load`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Zip,
    LegacyPickle,
    Safetensors,
}

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

fn detect(bytes: &[u8]) -> Result<Format, ErrorKind> {
    if bytes.is_empty() {
        return Err(ErrorKind::NotAWeightFile);
    }
    if bytes.starts_with(ZIP_MAGIC) {
        return Ok(Format::Zip);
    }
    // Safetensors first: its 8-byte header length can begin with 0x80 too (a 1408-byte header
    // is `80 05 00 ..`), which would pass for a pickle's PROTO opcode.
    if self::safetensors::looks_like_safetensors(bytes) {
        return Ok(Format::Safetensors);
    }
    // A pickle starts with PROTO (0x80) and its protocol; torch.save writes 2 to 5.
    if bytes[0] == 0x80 && bytes.get(1).is_none_or(|p| (2..=5).contains(p)) {
        return Ok(Format::LegacyPickle);
    }
    // The first bytes of a zip, cut short.
    if bytes.len() < ZIP_MAGIC.len() && ZIP_MAGIC.starts_with(bytes) {
        return Err(ErrorKind::Truncated);
    }
    Err(ErrorKind::NotAWeightFile)
}

type Parsed = (Vec<(String, Tensor)>, Option<HashMap<String, String>>);

fn parse(bytes: &[u8]) -> Result<Parsed, ErrorKind> {
    let format = detect(bytes)?;
    // NVIDIA's pickle is no state dict: say what to do with it rather than refuse its class.
    let head = &bytes[..bytes.len().min(256)];
    if format == Format::LegacyPickle
        && nvidia::is_dnnlib_pickle(bytes)
        && head.windows(20).any(|w| w == b"dnnlib.tflib.network")
    {
        return Err(malformed(
            "this is NVIDIA's TensorFlow StyleGAN pickle: `pulse import FILE -o DIR` converts it to a model folder",
        ));
    }
    if format == Format::LegacyPickle
        && nvidia::is_dnnlib_pickle(bytes)
        && ada::is_persistence_pickle(bytes)
    {
        return Err(malformed(
            "this is NVIDIA's stylegan2-ada-pytorch pickle: `pulse import FILE -o DIR` converts it to a model folder",
        ));
    }
    match format {
        Format::Zip => Ok((torch_file::load_zip(bytes)?, None)),
        Format::LegacyPickle => Ok((torch_file::load_legacy(bytes)?, None)),
        Format::Safetensors => self::safetensors::load(bytes),
    }
}

/// Runs the whole parsing path (format detection, containers, unpickler, tensor building) on
/// in-memory bytes and ignores the result: the entry point of a `cargo fuzz` target, which
/// checks that no input makes the loader panic, hang or allocate without bound.
#[doc(hidden)]
pub fn fuzz_load_bytes(bytes: &[u8]) {
    let _ = parse(bytes);
    let _ = source::parse_source(bytes, Path::new("fuzz"));
}

/// Writes `sd` as safetensors, floating tensors converted to float32, other dtypes kept, same
/// keys, with optional `__metadata__` strings. The data goes to a temporary file in the same
/// folder that is renamed over `path` once complete, so `path` never holds a half-written file.
pub fn save_safetensors(
    sd: &StateDict,
    path: &Path,
    metadata: Option<&HashMap<String, String>>,
) -> Result<(), WeightError> {
    // A dtype safetensors cannot hold is the tensors' problem, not the disk's.
    self::safetensors::save(&sd.entries, path, metadata).map_err(|k| {
        let kind = match k {
            ErrorKind::UnsupportedDtype(_) => k,
            k => ErrorKind::Write(Box::new(k)),
        };
        WeightError::new(path, kind)
    })
}

/// Copies a state dict into every variable of `vs`, matched by name (tch joins path
/// components with '.', so names are the checkpoint keys), converting dtype and device.
/// Keys of the file that the model lacks are ignored. Every variable is checked first, so on a
/// missing key or a shape mismatch `vs` is left untouched.
pub fn load_into(vs: &mut tch::nn::VarStore, sd: &StateDict) -> Result<(), WeightError> {
    let err = |kind| WeightError::new(sd.path(), kind);
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut sources = Vec::with_capacity(vars.len());
    for (name, var) in &vars {
        let src = sd
            .get(name)
            .ok_or_else(|| err(ErrorKind::MissingKey { key: error::one_line(name) }))?;
        if src.size() != var.size() {
            return Err(err(ErrorKind::ShapeMismatch {
                key: error::one_line(name),
                expected: var.size(),
                found: src.size(),
            }));
        }
        // A hand-made or damaged file may hold NaN or infinite values that every shape check
        // lets through; the network would then render black with no error.
        if src.is_floating_point() && !bool::try_from(src.isfinite().all()).unwrap_or(false) {
            return Err(err(ErrorKind::NonFinite { key: error::one_line(name) }));
        }
        sources.push(src);
    }
    tch::no_grad(|| {
        for ((_, var), src) in vars.iter_mut().zip(sources) {
            var.f_copy_(src).map_err(|e| err(error::malformed(e)))?;
        }
        Ok(())
    })
}

/// SHA-256 of a file's bytes as lowercase hex, used to tag latents with the model that made
/// them.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    crate::files::digest_file::<sha2::Sha256>(path, b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats_from_first_bytes() {
        assert_eq!(detect(b"PK\x03\x04rest").unwrap(), Format::Zip);
        assert_eq!(detect(b"\x80\x02\x8a\x0a").unwrap(), Format::LegacyPickle);
        assert_eq!(
            detect(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":1}").unwrap(),
            Format::Safetensors
        );
        assert!(matches!(detect(b""), Err(ErrorKind::NotAWeightFile)));
        assert!(matches!(detect(b"PK"), Err(ErrorKind::Truncated)));
        assert!(matches!(detect(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Err(ErrorKind::NotAWeightFile)));
        assert!(matches!(detect(b"\x80\x09"), Err(ErrorKind::NotAWeightFile)));
    }

    #[test]
    fn non_finite_weights_are_refused_at_load_naming_the_tensor() {
        let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _ = (vs.root() / "layer").zeros("weight", &[2, 2]);
        let _ = (vs.root() / "layer").zeros("bias", &[2]);
        let good = || Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).view([2, 2]);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let sd = StateDict::from_pairs(vec![
                ("layer.weight".into(), good()),
                ("layer.bias".into(), Tensor::from_slice(&[0.0f32, bad])),
            ]);
            let e = load_into(&mut vs, &sd).unwrap_err();
            assert!(matches!(&e.kind, ErrorKind::NonFinite { key } if key == "layer.bias"), "{e}");
            assert!(e.to_string().contains("'layer.bias'"), "{e}");
        }
        let sd = StateDict::from_pairs(vec![
            ("layer.weight".into(), good()),
            ("layer.bias".into(), Tensor::from_slice(&[0.0f32, 1.0])),
        ]);
        load_into(&mut vs, &sd).unwrap();
    }

    #[test]
    fn from_pairs_replaces_duplicates_in_place() {
        let sd = StateDict::from_pairs(vec![
            ("a".into(), Tensor::from(1.0f32)),
            ("b".into(), Tensor::from(2.0f32)),
            ("a".into(), Tensor::from(3.0f32)),
        ]);
        assert_eq!(sd.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(sd.get("a").unwrap().double_value(&[]), 3.0);
        assert_eq!(sd.path(), Path::new(""));
    }

    #[test]
    fn errors_display_on_one_line() {
        let e = WeightError::new(
            Path::new("evil\nname.pt"),
            ErrorKind::RefusedGlobal { module: "posix".into(), name: "system".into() },
        );
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("refused global 'posix.system'"), "{text}");
    }
}
