//! The arithmetic of the synthesis forward pass (`--precision`): strict float32, TF32 on CUDA,
//! or bf16/fp16 autocast. The loss, the latent and the optimizer state stay float32 in every mode.
use tch::Device;

/// The arithmetic a synthesis forward pass runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Strict float32 (TF32 switched off on CUDA, where libtorch allows it in cuDNN by default).
    #[default]
    Fp32,
    /// Float32 tensors, TF32 tensor-core arithmetic in convolutions and matmuls (CUDA only; the
    /// same as fp32 on the CPU).
    Tf32,
    /// Autocast to bfloat16 (CUDA and CPU).
    Bf16,
    /// Autocast to float16 (CUDA; on the CPU libtorch's autocast supports it only partly).
    Fp16,
}

impl Precision {
    pub const ALL: [Precision; 4] =
        [Precision::Fp32, Precision::Tf32, Precision::Bf16, Precision::Fp16];
    /// The names `FromStr` accepts (besides aliases such as `float32`).
    pub const NAMES: [&'static str; 4] = ["fp32", "tf32", "bf16", "fp16"];

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// The dtype autocast runs in, for the two autocast modes.
    pub fn autocast_kind(self) -> Option<tch::Kind> {
        match self {
            Precision::Bf16 => Some(tch::Kind::BFloat16),
            Precision::Fp16 => Some(tch::Kind::Half),
            _ => None,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fp32" | "float32" => Ok(Self::Fp32),
            "tf32" => Ok(Self::Tf32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "fp16" | "float16" | "half" => Ok(Self::Fp16),
            _ => Err(format!("unknown precision '{s}' (expected fp32, tf32, bf16 or fp16)")),
        }
    }
}

/// Sets the TF32 switches for `precision` on CUDA and turns autocast on for the autocast modes;
/// dropping it turns autocast off again.
pub struct PrecisionGuard {
    device: Option<Device>,
}

impl PrecisionGuard {
    pub fn new(device: Device, precision: Precision) -> anyhow::Result<Self> {
        if device.is_cuda() {
            crate::ops::set_allow_tf32(precision != Precision::Fp32)?;
        }
        match precision.autocast_kind() {
            Some(kind) => {
                crate::ops::set_autocast(device, Some(kind))?;
                Ok(Self { device: Some(device) })
            }
            None => Ok(Self { device: None }),
        }
    }
}

impl Drop for PrecisionGuard {
    fn drop(&mut self) {
        if let Some(device) = self.device {
            let _ = crate::ops::set_autocast(device, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_precisions() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
        }
        assert!("fp8".parse::<Precision>().is_err());
    }
}
