//! The element types a weight file may hold, and how PyTorch and safetensors name them.
use super::error::ErrorKind;
use tch::Kind;

/// A storage element type that the loader can turn into a tensor (docs/design.md, "Weight files": tensors keep
/// their dtype on load; callers convert).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dtype {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    /// Bytes per element, as stored in the file.
    pub(crate) fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            Dtype::F32 => Kind::Float,
            Dtype::F64 => Kind::Double,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            Dtype::I64 => Kind::Int64,
            Dtype::I32 => Kind::Int,
            Dtype::I16 => Kind::Int16,
            Dtype::I8 => Kind::Int8,
            Dtype::U8 => Kind::Uint8,
            Dtype::Bool => Kind::Bool,
        }
    }

    /// The dtype of a PyTorch storage class (`torch.FloatStorage`, ...). `UntypedStorage` holds
    /// raw bytes. Other storage classes (complex, quantized, float8) are reported as unsupported.
    pub(crate) fn from_storage_class(module: &str, name: &str) -> Result<Dtype, ErrorKind> {
        Ok(match name {
            "FloatStorage" => Dtype::F32,
            "DoubleStorage" => Dtype::F64,
            "HalfStorage" => Dtype::F16,
            "BFloat16Storage" => Dtype::BF16,
            "LongStorage" => Dtype::I64,
            "IntStorage" => Dtype::I32,
            "ShortStorage" => Dtype::I16,
            "CharStorage" => Dtype::I8,
            "ByteStorage" | "UntypedStorage" => Dtype::U8,
            "BoolStorage" => Dtype::Bool,
            _ => {
                return Err(ErrorKind::UnsupportedDtype(super::error::one_line(&format!(
                    "{module}.{name}"
                ))))
            }
        })
    }

    pub(crate) fn from_safetensors(dtype: ::safetensors::Dtype) -> Result<Dtype, ErrorKind> {
        use ::safetensors::Dtype as S;
        Ok(match dtype {
            S::F32 => Dtype::F32,
            S::F64 => Dtype::F64,
            S::F16 => Dtype::F16,
            S::BF16 => Dtype::BF16,
            S::I64 => Dtype::I64,
            S::I32 => Dtype::I32,
            S::I16 => Dtype::I16,
            S::I8 => Dtype::I8,
            S::U8 => Dtype::U8,
            S::BOOL => Dtype::Bool,
            other => return Err(ErrorKind::UnsupportedDtype(format!("{other:?} (safetensors)"))),
        })
    }

    pub(crate) fn from_kind(kind: Kind) -> Result<Dtype, ErrorKind> {
        Ok(match kind {
            Kind::Float => Dtype::F32,
            Kind::Double => Dtype::F64,
            Kind::Half => Dtype::F16,
            Kind::BFloat16 => Dtype::BF16,
            Kind::Int64 => Dtype::I64,
            Kind::Int => Dtype::I32,
            Kind::Int16 => Dtype::I16,
            Kind::Int8 => Dtype::I8,
            Kind::Uint8 => Dtype::U8,
            Kind::Bool => Dtype::Bool,
            other => return Err(ErrorKind::UnsupportedDtype(format!("{other:?} (tensor kind)"))),
        })
    }

    pub(crate) fn to_safetensors(self) -> ::safetensors::Dtype {
        use ::safetensors::Dtype as S;
        match self {
            Dtype::F32 => S::F32,
            Dtype::F64 => S::F64,
            Dtype::F16 => S::F16,
            Dtype::BF16 => S::BF16,
            Dtype::I64 => S::I64,
            Dtype::I32 => S::I32,
            Dtype::I16 => S::I16,
            Dtype::I8 => S::I8,
            Dtype::U8 => S::U8,
            Dtype::Bool => S::BOOL,
        }
    }

    pub(crate) fn is_floating(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64 | Dtype::F16 | Dtype::BF16)
    }
}

/// Builds a 1-D CPU tensor from raw little-endian element bytes (copied). Bool bytes are
/// normalised to 0/1 first: any other byte value in a bool tensor is undefined behaviour in
/// libtorch, and the bytes come from an untrusted file.
pub(crate) fn tensor_from_bytes(bytes: &[u8], dtype: Dtype) -> Result<tch::Tensor, ErrorKind> {
    let numel = bytes.len() / dtype.size();
    if numel * dtype.size() != bytes.len() {
        return Err(super::error::malformed(format!(
            "{} bytes is not a whole number of {dtype:?} elements",
            bytes.len()
        )));
    }
    let numel = i64::try_from(numel).map_err(|_| super::error::limit("storage too large"))?;
    let result = if dtype == Dtype::Bool && bytes.iter().any(|&b| b > 1) {
        let clean: Vec<u8> = bytes.iter().map(|&b| u8::from(b != 0)).collect();
        tch::Tensor::f_from_data_size(&clean, &[numel], dtype.kind())
    } else {
        tch::Tensor::f_from_data_size(bytes, &[numel], dtype.kind())
    };
    result.map_err(super::error::malformed)
}
