//! safetensors, the project's canonical weight format (spec section 1): an 8-byte little-endian
//! header length, a JSON header, then raw little-endian tensor data. Read and written through
//! the `safetensors` crate, which validates every offset against the buffer.
use super::dtype::{tensor_from_bytes, Dtype};
use super::error::{malformed, ErrorKind};
use ::safetensors::tensor::{SafeTensorError, SafeTensors, TensorView};
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
pub(crate) type Loaded = (
    Vec<(String, tch::Tensor)>,
    Option<HashMap<String, String>>,
);

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
        other => malformed(format!("safetensors: {other:?}")),
    }
}

/// Where the header says the tensor data ends (0 when the header cannot be read).
fn data_end(bytes: &[u8]) -> u64 {
    let Some(len) = bytes.get(..8) else { return 0 };
    let mut buf = [0u8; 8];
    buf.copy_from_slice(len);
    let n = u64::from_le_bytes(buf);
    let Some(header) = usize::try_from(n)
        .ok()
        .and_then(|n| bytes.get(8..8usize.checked_add(n)?))
    else {
        return 0;
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(header) else {
        return 0;
    };
    let max_end = map
        .values()
        .filter_map(|v| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    max_end.saturating_add(8).saturating_add(n)
}

/// Writes `tensors` (floating ones as float32) to `path` through a temporary file in the same
/// folder, renamed over `path` only once complete and synced.
pub(crate) fn save(
    tensors: &[(String, tch::Tensor)],
    path: &Path,
    metadata: Option<&HashMap<String, String>>,
) -> Result<(), ErrorKind> {
    let mut buffers = Vec::with_capacity(tensors.len());
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
        buffers.push((name.as_str(), dtype, shape, raw));
    }
    let mut views = Vec::with_capacity(buffers.len());
    for (name, dtype, shape, raw) in &buffers {
        let view = TensorView::new(dtype.to_safetensors(), shape.clone(), raw)
            .map_err(|e| malformed(format!("safetensors: {e:?}")))?;
        views.push((*name, view));
    }

    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".pulse-weights-")
        .suffix(".tmp")
        .tempfile_in(folder)?;
    ::safetensors::tensor::serialize_to_file(views, &metadata.cloned(), tmp.path()).map_err(|e| {
        match e {
            SafeTensorError::IoError(e) => ErrorKind::Io(e),
            other => malformed(format!("safetensors: {other:?}")),
        }
    })?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| ErrorKind::Io(e.error))?;
    Ok(())
}
