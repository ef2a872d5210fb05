//! safetensors, the project's canonical weight format (docs/design.md, "Weight files"): an 8-byte little-endian
//! header length, a JSON header, then raw little-endian tensor data. Read and written through
//! the `safetensors` crate, which validates every offset against the buffer.
use super::dtype::{tensor_from_bytes, Dtype};
use super::error::{malformed, ErrorKind};
use ::safetensors::tensor::{SafeTensorError, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// Header sizes above this are refused by the `safetensors` crate; used to tell a safetensors
/// header apart from arbitrary bytes.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Whether the first bytes look like a safetensors header: a plausible length, then `{`.
pub(crate) fn looks_like_safetensors(bytes: &[u8]) -> bool {
    match (bytes.get(..8), bytes.get(8)) {
        (Some(len), Some(b'{')) => {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(len);
            (2..=MAX_HEADER_BYTES).contains(&u64::from_le_bytes(buf))
        }
        _ => false,
    }
}

/// Tensors loaded from a safetensors file, plus its `__metadata__` string map.
pub(crate) type Loaded = (Vec<(String, tch::Tensor)>, Option<HashMap<String, String>>);

/// Loads every tensor, in the order of their data in the file.
pub(crate) fn load(bytes: &[u8]) -> Result<Loaded, ErrorKind> {
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(|e| st_error(bytes, e))?;
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| st_error(bytes, e))?;
    let infos = metadata.tensors();
    let mut names: Vec<&String> = infos.keys().collect();
    names.sort_by(|a, b| (infos[*a].data_offsets, a).cmp(&(infos[*b].data_offsets, b)));
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let view = tensors.tensor(name).map_err(|e| st_error(bytes, e))?;
        let dtype = Dtype::from_safetensors(view.dtype())?;
        let shape: Vec<i64> = view
            .shape()
            .iter()
            .map(|&d| i64::try_from(d))
            .collect::<Result<_, _>>()
            .map_err(|_| malformed("tensor dimension too large"))?;
        let flat = tensor_from_bytes(view.data(), dtype)?;
        let tensor = flat.f_reshape(shape.as_slice()).map_err(malformed)?;
        out.push((name.clone(), tensor));
    }
    Ok((out, metadata.metadata().clone()))
}

/// Maps the crate's errors; a header or data that runs past the end of the file is a
/// truncated file.
fn st_error(bytes: &[u8], e: SafeTensorError) -> ErrorKind {
    match e {
        SafeTensorError::InvalidHeaderLength | SafeTensorError::HeaderTooSmall => {
            ErrorKind::Truncated
        }
        SafeTensorError::MetadataIncompleteBuffer if data_end(bytes) > bytes.len() as u64 => {
            ErrorKind::Truncated
        }
        SafeTensorError::MetadataIncompleteBuffer => {
            malformed("safetensors data does not end where the header says")
        }
        SafeTensorError::HeaderTooLarge => {
            ErrorKind::LimitExceeded("safetensors header larger than 100 MB".into())
        }
        SafeTensorError::IoError(e) => ErrorKind::Io(e),
        SafeTensorError::InvalidHeader => malformed("the safetensors header is not UTF-8 text"),
        SafeTensorError::InvalidHeaderStart => {
            malformed("the safetensors header does not start with '{'")
        }
        SafeTensorError::InvalidHeaderDeserialization | SafeTensorError::JsonError(_) => {
            malformed("the safetensors header is not the JSON the format defines")
        }
        SafeTensorError::TensorNotFound(name) => {
            malformed(format!("tensor '{}' is not in the file", super::error::one_line(&name)))
        }
        SafeTensorError::TensorInvalidInfo => {
            malformed("a tensor's shape and dtype do not match the bytes its offsets give it")
        }
        SafeTensorError::InvalidOffset(name) => malformed(format!(
            "the data offsets of tensor '{}' are out of order, overlap or leave gaps",
            super::error::one_line(&name)
        )),
        SafeTensorError::InvalidTensorView(_, shape, len) => {
            malformed(format!("a tensor of shape {shape:?} cannot be made of {len} bytes"))
        }
        SafeTensorError::ValidationOverflow => {
            ErrorKind::LimitExceeded("a tensor's shape overflows when multiplied out".into())
        }
    }
}

/// Where the header says the tensor data ends (0 when the header cannot be read).
fn data_end(bytes: &[u8]) -> u64 {
    let Some(len) = bytes.get(..8) else { return 0 };
    let mut buf = [0u8; 8];
    buf.copy_from_slice(len);
    let n = u64::from_le_bytes(buf);
    let Some(header) = usize::try_from(n).ok().and_then(|n| bytes.get(8..8usize.checked_add(n)?))
    else {
        return 0;
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(header) else {
        return 0;
    };
    let max_end =
        map.values().filter_map(|v| v.get("data_offsets")?.get(1)?.as_u64()).max().unwrap_or(0);
    max_end.saturating_add(8).saturating_add(n)
}

/// Writes `tensors` (floating ones as float32) to `path`, atomically
/// ([`crate::files::write_atomic`]). The header is written by hand rather than by the
/// `safetensors` crate, whose metadata map serialises in hash order: here tensors keep their
/// order and metadata keys are sorted, so the same content always gives the same bytes.
pub(crate) fn save(
    tensors: &[(String, tch::Tensor)],
    path: &Path,
    metadata: Option<&HashMap<String, String>>,
) -> Result<(), ErrorKind> {
    let mut header = serde_json::Map::new();
    if let Some(meta) = metadata {
        let sorted: std::collections::BTreeMap<&String, &String> = meta.iter().collect();
        header.insert("__metadata__".into(), serde_json::json!(sorted));
    }
    let mut buffers = Vec::with_capacity(tensors.len());
    let mut offset = 0usize;
    for (name, tensor) in tensors {
        let dtype = Dtype::from_kind(tensor.kind())?;
        let (dtype, t) = if dtype.is_floating() {
            (Dtype::F32, tensor.f_to_kind(tch::Kind::Float))
        } else {
            (dtype, Ok(tensor.shallow_clone()))
        };
        let t = t
            .and_then(|t| t.f_to_device(tch::Device::Cpu))
            .and_then(|t| t.f_contiguous())
            .map_err(malformed)?;
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let numel: usize = shape.iter().product();
        let mut raw = vec![0u8; numel * dtype.size()];
        t.f_copy_data_u8(&mut raw, numel).map_err(malformed)?;
        let dtype_name = serde_json::to_value(dtype.to_safetensors())
            .map_err(|e| malformed(format!("safetensors dtype: {e}")))?;
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": dtype_name,
                "shape": shape,
                "data_offsets": [offset, offset + raw.len()],
            }),
        );
        offset += raw.len();
        buffers.push(raw);
    }
    let mut json = serde_json::to_vec(&header).map_err(|e| malformed(e.to_string()))?;
    // The format pads the header with spaces to a multiple of 8 bytes.
    json.resize(json.len().next_multiple_of(8), b' ');
    crate::files::write_atomic(path, |f| {
        use std::io::Write;
        let mut out = std::io::BufWriter::new(f);
        out.write_all(&(json.len() as u64).to_le_bytes())?;
        out.write_all(&json)?;
        for raw in &buffers {
            out.write_all(raw)?;
        }
        out.flush()
    })?;
    Ok(())
}
