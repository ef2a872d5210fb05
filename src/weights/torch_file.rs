//! The two containers `torch.save` writes (docs/design.md, "Weight files"): the legacy stream of pickles
//! followed by raw storages, and the zip archive of `data.pkl` plus one record per storage.
//! Both end in the same step: flatten the unpickled dict and cut every tensor out of its storage.
use super::dtype::{tensor_from_bytes, Dtype};
use super::error::{limit, malformed, one_line, ErrorKind};
use super::pickle::{
    short_text, unpickle, DeclaredStorage, Limits, Obj, ObjId, Pickle, TensorSpec, LEGACY_MAGIC,
    LEGACY_PROTOCOL_VERSION, MAX_STORAGE_KEY_BYTES,
};
use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read};

/// Deflate cannot expand data by more than about 1032:1, so a deflated record of `n` bytes
/// cannot hold more than this many times `n` bytes (plus a little slack).
const MAX_DEFLATE_RATIO: u64 = 1032;
/// Flattened keys longer than this are refused (real keys are a few dozen bytes).
const MAX_KEY_BYTES: usize = 4096;
/// Nested dicts deeper than this are refused (a state dict has one level, a checkpoint two).
const MAX_DICT_DEPTH: usize = 32;
/// Upper bound on the tensors of one file (large checkpoints hold a few thousand): a small
/// hostile pickle can name one tensor many times, and each costs a libtorch view.
const MAX_TENSORS: usize = 1 << 20;
/// Upper bound on the total length of the dictionary keys read and of the flattened keys.
const MAX_TOTAL_KEY_BYTES: usize = 64 << 20;

/// Storage bytes by key, borrowed from the file when possible.
pub(crate) type StorageData<'a> = HashMap<String, Cow<'a, [u8]>>;

/// Reads a legacy (pre-1.6) `torch.save` file:
/// pickle(magic) pickle(1001) pickle(sys info) pickle(object) pickle(storage keys), then for each
/// key: little-endian u64 element count and the raw little-endian elements.
pub(crate) fn load_legacy(bytes: &[u8]) -> Result<Vec<(String, tch::Tensor)>, ErrorKind> {
    // Storage sizes are checked when their data is read, against the bytes left (`Truncated`).
    let limits = Limits { max_storage_bytes: u64::MAX };
    let next = |pos: usize| unpickle(bytes, pos, 0, limits);

    // A pickle that is not the magic number is some other pickle file, not a weight file; but
    // a refused global is reported as such whatever the file was meant to be.
    let (magic, pos) = next(0).map_err(|e| match e {
        ErrorKind::UnsupportedOpcode { .. } | ErrorKind::Malformed(_) => ErrorKind::NotAWeightFile,
        other => other,
    })?;
    if !matches!(magic.root(), Obj::BigInt(b) if b[..] == LEGACY_MAGIC) {
        return Err(ErrorKind::NotAWeightFile);
    }
    let (version, pos) = next(pos)?;
    if !matches!(version.root(), Obj::Int(LEGACY_PROTOCOL_VERSION)) {
        return Err(malformed(
            "unknown legacy format version (expected 1001 after the magic number)",
        ));
    }
    let (_sys_info, pos) = next(pos)?;
    let (object, pos) = next(pos)?;
    let (keys, mut pos) = next(pos)?;

    let declared: HashMap<&str, &DeclaredStorage> =
        object.storages.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut data: StorageData = HashMap::new();
    for key in storage_keys(&keys)? {
        let storage = declared.get(&*key).ok_or_else(|| {
            malformed(format!("storage '{}' has data but no tensor", one_line(&key)))
        })?;
        let count = read_u64(bytes, &mut pos)?;
        if count != storage.numel {
            return Err(malformed(format!(
                "storage '{}' holds {count} elements but {} were declared",
                one_line(&key),
                storage.numel
            )));
        }
        // `count * size` was checked for overflow when the storage was declared.
        let n = usize::try_from(count * storage.dtype.size() as u64)
            .map_err(|_| ErrorKind::Truncated)?;
        let end = pos.checked_add(n).ok_or(ErrorKind::Truncated)?;
        let raw = bytes.get(pos..end).ok_or(ErrorKind::Truncated)?;
        if data.insert(storage.key.clone(), Cow::Borrowed(raw)).is_some() {
            return Err(malformed(format!("storage '{}' is listed twice", one_line(&key))));
        }
        pos = end;
    }
    // Data after the last storage is ignored, as torch.load does.
    build_tensors(&object, &data)
}

/// The keys of the storage list pickle, in order (borrowed: a hostile list may repeat one long
/// string many times through the memo).
fn storage_keys(keys: &Pickle) -> Result<Vec<Cow<'_, str>>, ErrorKind> {
    let items = match keys.root() {
        Obj::List(v) | Obj::Tuple(v) => v,
        other => return Err(malformed(format!("the storage key list is a {}", other.type_name()))),
    };
    items.iter().map(|&id| short_text(keys.get(id), MAX_STORAGE_KEY_BYTES, "storage key")).collect()
}

fn read_u64(bytes: &[u8], pos: &mut usize) -> Result<u64, ErrorKind> {
    let end = pos.checked_add(8).ok_or(ErrorKind::Truncated)?;
    let raw = bytes.get(*pos..end).ok_or(ErrorKind::Truncated)?;
    *pos = end;
    let mut buf = [0u8; 8];
    buf.copy_from_slice(raw);
    Ok(u64::from_le_bytes(buf))
}

/// Reads a zip `torch.save` file (torch >= 1.6): `<prefix>/data.pkl` whose persistent ids name
/// `<prefix>/data/<key>` records, stored or deflated, little-endian unless `<prefix>/byteorder`
/// says `big`.
pub(crate) fn load_zip(bytes: &[u8]) -> Result<Vec<(String, tch::Tensor)>, ErrorKind> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| zip_open_error(bytes, e))?;
    let pkl_name = zip
        .file_names()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| (n.len(), n.to_string()))
        .map(str::to_owned)
        .ok_or(ErrorKind::NotAWeightFile)?;
    let prefix = &pkl_name[..pkl_name.len() - "data.pkl".len()];

    let big_endian = match read_record(&mut zip, &format!("{prefix}byteorder"), None)? {
        None => false,
        Some(order) => match String::from_utf8_lossy(&order).trim() {
            "little" => false,
            "big" => true,
            other => return Err(malformed(format!("unknown byte order '{}'", one_line(other)))),
        },
    };
    let pkl = read_record(&mut zip, &pkl_name, None)?.ok_or(ErrorKind::NotAWeightFile)?;
    let limits =
        Limits { max_storage_bytes: (bytes.len() as u64).saturating_mul(MAX_DEFLATE_RATIO) };
    let (object, _) = unpickle(&pkl, 0, 0, limits)?;

    let mut data: StorageData = HashMap::new();
    for storage in &object.storages {
        let name = format!("{prefix}data/{}", storage.key);
        let nbytes = storage.numel * storage.dtype.size() as u64;
        let mut raw = read_record(&mut zip, &name, Some(nbytes))?.ok_or_else(|| {
            malformed(format!("storage '{}' is missing from the archive", one_line(&storage.key)))
        })?;
        if big_endian {
            swap_bytes(&mut raw, storage.dtype);
        }
        data.insert(storage.key.clone(), Cow::Owned(raw));
    }
    build_tensors(&object, &data)
}

/// Reads one record, `None` when absent. With `expected`, the record must hold exactly that many
/// bytes, and a deflated record that could not possibly expand to it is refused before reading.
fn read_record(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    expected: Option<u64>,
) -> Result<Option<Vec<u8>>, ErrorKind> {
    let record = match zip.by_name(name) {
        Ok(r) => r,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(zip_error(e)),
    };
    let declared = record.size();
    let possible = match record.compression() {
        zip::CompressionMethod::Stored => record.compressed_size(),
        _ => record.compressed_size().saturating_mul(MAX_DEFLATE_RATIO).saturating_add(1024),
    };
    let wanted = expected.unwrap_or(declared);
    if wanted != declared {
        return Err(malformed(format!(
            "record '{}' holds {declared} bytes but {wanted} were declared",
            one_line(name)
        )));
    }
    if wanted > possible {
        return Err(limit(format!(
            "record '{}' declares {wanted} bytes but stores only {}",
            one_line(name),
            record.compressed_size()
        )));
    }
    // Grows with the bytes actually decompressed; `take` stops a record that lies about its size.
    let mut out = Vec::new();
    record.take(wanted.saturating_add(1)).read_to_end(&mut out).map_err(io_error)?;
    if out.len() as u64 != wanted {
        return Err(malformed(format!(
            "record '{}' holds {} bytes but {wanted} were declared",
            one_line(name),
            out.len()
        )));
    }
    Ok(Some(out))
}

/// A zip whose end-of-central-directory record is missing is what a cut-off download looks
/// like: report it as truncated. Other damage is malformed.
fn zip_open_error(bytes: &[u8], e: zip::result::ZipError) -> ErrorKind {
    const EOCD: &[u8] = b"PK\x05\x06";
    const EOCD_LEN: usize = 22;
    // The EOCD record sits in the last 22 bytes plus a comment of at most 65 535 bytes.
    let start = bytes.len().saturating_sub(EOCD_LEN + 65_535);
    let found = bytes[start..].windows(EOCD.len()).rposition(|w| w == EOCD).map(|p| start + p);
    let complete = found.is_some_and(|p| match bytes.get(p + 20..p + 22) {
        Some(c) => p + EOCD_LEN + usize::from(u16::from_le_bytes([c[0], c[1]])) <= bytes.len(),
        None => false,
    });
    if complete {
        zip_error(e)
    } else {
        ErrorKind::Truncated
    }
}

fn zip_error(e: zip::result::ZipError) -> ErrorKind {
    match e {
        zip::result::ZipError::Io(e) => io_error(e),
        other => malformed(format!("zip archive: {other}")),
    }
}

/// Reading from memory fails only on bad data: running out of bytes means truncation.
fn io_error(e: std::io::Error) -> ErrorKind {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        ErrorKind::Truncated
    } else {
        malformed(format!("zip archive: {e}"))
    }
}

/// Converts big-endian elements to the machine's little-endian order.
fn swap_bytes(raw: &mut [u8], dtype: Dtype) {
    let size = dtype.size();
    if size > 1 {
        raw.chunks_exact_mut(size).for_each(|c| c.reverse());
    }
}

/// Flattens the unpickled dict and builds its tensors; storages shared by several tensors are
/// built once and shared, as torch.load does.
fn build_tensors(
    object: &Pickle,
    data: &StorageData,
) -> Result<Vec<(String, tch::Tensor)>, ErrorKind> {
    build_named(object, flatten(object)?, data)
}

/// The storages a pickle holds itself ([`super::pickle::Inline`]), by key; `input` is the
/// pickle's input.
pub(crate) fn inline_data<'a>(object: &Pickle, input: &'a [u8]) -> StorageData<'a> {
    use super::pickle::Inline;
    let mut data = StorageData::new();
    for s in &object.storages {
        let bytes = match &s.inline {
            // The unpickler checked the range against the input.
            Some(Inline::Range { start, len }) => Cow::Borrowed(&input[*start..*start + *len]),
            Some(Inline::Owned(v)) => Cow::Owned(v.clone()),
            None => continue,
        };
        data.insert(s.key.clone(), bytes);
    }
    data
}

/// Builds named tensors of `object`, sharing each storage among its views.
pub(crate) fn build_named(
    object: &Pickle,
    specs: Vec<(String, &TensorSpec)>,
    data: &StorageData,
) -> Result<Vec<(String, tch::Tensor)>, ErrorKind> {
    let mut bases: HashMap<usize, tch::Tensor> = HashMap::new();
    let mut out = Vec::with_capacity(specs.len());
    for (key, spec) in specs {
        let storage = &spec.storage;
        let base = match bases.entry(storage.index) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let declared = object
                    .storages
                    .get(storage.index)
                    .ok_or_else(|| malformed("tensor refers to an unknown storage"))?;
                let raw = data.get(&declared.key).ok_or_else(|| {
                    malformed(format!("storage '{}' has no data", one_line(&declared.key)))
                })?;
                e.insert(tensor_from_bytes(raw, storage.dtype)?)
            }
        };
        // The view was checked against its storage when unpickled (`pickle::check_view`).
        let offset = storage
            .offset
            .checked_add(spec.offset)
            .and_then(|o| i64::try_from(o).ok())
            .ok_or_else(|| malformed("tensor offset overflows"))?;
        let tensor = base
            .f_as_strided(spec.size.as_slice(), spec.stride.as_slice(), offset)
            .map_err(malformed)?;
        out.push((key, tensor));
    }
    Ok(out)
}

/// The tensors of the top dict, with nested dicts flattened to `outer.inner` keys. Values that
/// are neither tensors nor dicts (an `epoch` number, a note) are skipped.
fn flatten(object: &Pickle) -> Result<Vec<(String, &TensorSpec)>, ErrorKind> {
    match object.root() {
        Obj::Dict(_) => {}
        Obj::Tensor(_) => {
            return Err(malformed("the file holds a single tensor, not a dictionary of tensors"))
        }
        _ => return Err(malformed("the file holds no dictionary of tensors at its top level")),
    }
    let mut walk = Flatten {
        object,
        out: Vec::new(),
        seen_keys: HashSet::new(),
        key_bytes: 0,
        seen_dicts: HashSet::new(),
    };
    walk.dict(object.root, "", 0)?;
    Ok(walk.out)
}

struct Flatten<'p> {
    object: &'p Pickle,
    out: Vec<(String, &'p TensorSpec)>,
    seen_keys: HashSet<String>,
    /// Total length of the keys read and written, checked against [`MAX_TOTAL_KEY_BYTES`].
    key_bytes: usize,
    /// Each dict is walked once: a dict reachable twice (or from itself) would repeat keys or
    /// loop, and could multiply the output exponentially.
    seen_dicts: HashSet<ObjId>,
}

impl<'p> Flatten<'p> {
    fn charge_key_bytes(&mut self, n: usize) -> Result<(), ErrorKind> {
        self.key_bytes = self.key_bytes.saturating_add(n);
        if self.key_bytes > MAX_TOTAL_KEY_BYTES {
            return Err(limit(format!("more than {MAX_TOTAL_KEY_BYTES} bytes of dictionary keys")));
        }
        Ok(())
    }

    fn dict(&mut self, id: ObjId, prefix: &str, depth: usize) -> Result<(), ErrorKind> {
        if depth > MAX_DICT_DEPTH {
            return Err(limit(format!(
                "dictionaries nested more than {MAX_DICT_DEPTH} levels deep"
            )));
        }
        if !self.seen_dicts.insert(id) {
            return Err(malformed("a dictionary appears twice in the file"));
        }
        let object = self.object;
        let Obj::Dict(pairs) = object.get(id) else {
            return Ok(());
        };
        // Within one dict a repeated key replaces the earlier value, as in Python.
        let mut entries: Vec<(&'p str, ObjId)> = Vec::new();
        let mut index: HashMap<&'p str, usize> = HashMap::new();
        for &(k, v) in pairs {
            let key = match object.get(k) {
                Obj::Str(s) => s.as_str(),
                other => {
                    return Err(malformed(format!(
                        "a dictionary key is a {} instead of a string",
                        other.type_name()
                    )))
                }
            };
            // Hashing keys costs their length: a hostile pickle may repeat a long one.
            self.charge_key_bytes(key.len())?;
            match index.get(key) {
                Some(&i) => entries[i].1 = v,
                None => {
                    index.insert(key, entries.len());
                    entries.push((key, v));
                }
            }
        }
        for (key, v) in entries {
            let value = object.get(v);
            if !matches!(value, Obj::Tensor(_) | Obj::Dict(_)) {
                continue;
            }
            if prefix.len() + 1 + key.len() > MAX_KEY_BYTES {
                return Err(limit(format!("a key is longer than {MAX_KEY_BYTES} bytes")));
            }
            let full = if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
            match value {
                Obj::Tensor(spec) => {
                    self.charge_key_bytes(full.len())?;
                    if self.out.len() >= MAX_TENSORS {
                        return Err(limit(format!("more than {MAX_TENSORS} tensors")));
                    }
                    if !self.seen_keys.insert(full.clone()) {
                        return Err(malformed(format!(
                            "key '{}' appears twice after flattening nested dictionaries",
                            one_line(&full)
                        )));
                    }
                    self.out.push((full, spec));
                }
                Obj::Dict(_) => self.dict(v, &full, depth + 1)?,
                _ => {}
            }
        }
        Ok(())
    }
}
