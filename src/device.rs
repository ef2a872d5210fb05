//! Which device a command runs on: `--device auto|cpu|cuda|cuda:N`, checked once, up front, so a
//! missing GPU is one clear error instead of a panic deep inside libtorch.
use tch::Device;

/// A device the user asked for that this machine cannot give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device '{0}' (expected auto, cpu, cuda or cuda:N)")]
    Unknown(String),
    #[error("device '{0}': CUDA is not available on this machine (libtorch sees no GPU); use cpu or auto")]
    NoCuda(String),
    #[error("device '{name}': this machine has {count} GPU(s), cuda:0 to cuda:{}", count.saturating_sub(1))]
    NoSuchGpu { name: String, count: usize },
}

/// Parses a device name without checking that the machine has it; `auto` is the first CUDA
/// device when present, else the CPU.
pub fn parse_device_name(s: &str) -> Result<Device, DeviceError> {
    match s {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => match s.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Ok(Device::Cuda(n)),
            None => Err(DeviceError::Unknown(s.to_string())),
        },
    }
}

/// Parses a device name and checks that this machine has that device.
pub fn parse_device(s: &str) -> Result<Device, DeviceError> {
    let device = parse_device_name(s)?;
    check_available(device, s)?;
    Ok(device)
}

/// Refuses a CUDA device that libtorch cannot reach (`name` is what the user wrote).
pub fn check_available(device: Device, name: &str) -> Result<(), DeviceError> {
    if let Device::Cuda(n) = device {
        if !tch::Cuda::is_available() {
            return Err(DeviceError::NoCuda(name.to_string()));
        }
        let count = tch::Cuda::device_count().max(0) as usize;
        if n >= count {
            return Err(DeviceError::NoSuchGpu { name: name.to_string(), count });
        }
    }
    Ok(())
}

/// The name `--device` takes for a device: `cpu` or `cuda:N`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".to_string(),
    }
}

/// Whether CUDA runs give the same bits every time (the default) or may differ in the last
/// digits from run to run for speed (`--nondeterministic`). The CPU is reproducible either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Determinism {
    /// Deterministic algorithms, cuDNN deterministic and not autotuned, cuBLAS with a fixed
    /// workspace: the same command, seed and GPU model give byte-identical outputs.
    #[default]
    Deterministic,
    /// cuDNN autotuning and libtorch's fastest (possibly atomics-based) kernels.
    Nondeterministic,
}

impl Determinism {
    pub fn from_nondeterministic_flag(nondeterministic: bool) -> Self {
        if nondeterministic {
            Self::Nondeterministic
        } else {
            Self::Deterministic
        }
    }

    pub fn is_deterministic(self) -> bool {
        self == Self::Deterministic
    }
}

/// The environment variable cuBLAS reads, once, when its first handle is created: with
/// `:4096:8` (8 buffers of 4 MiB per stream) its reductions split work the same way every time,
/// so matmuls repeat exactly (NVIDIA's cuBLAS documentation, "Results reproducibility").
pub const CUBLAS_WORKSPACE_CONFIG: &str = "CUBLAS_WORKSPACE_CONFIG";

/// Sets [`CUBLAS_WORKSPACE_CONFIG`] to `:4096:8` unless the user set it. It only takes effect
/// before cuBLAS starts, so `main` calls this first thing (before any other thread exists);
/// [`configure`] calls it too, for library users and tests. Returns whether it set it.
pub fn set_cublas_workspace_config() -> bool {
    if std::env::var_os(CUBLAS_WORKSPACE_CONFIG).is_some() {
        return false;
    }
    std::env::set_var(CUBLAS_WORKSPACE_CONFIG, ":4096:8");
    true
}

/// Sets up libtorch for runs on `device`, once per process before any work on it
/// (docs/design.md, "Determinism"). On CUDA: deterministic algorithms, cuDNN deterministic and
/// no cuDNN autotuning (or the opposite for [`Determinism::Nondeterministic`]), and strict
/// float32 (TF32 off in cuDNN and cuBLAS; `--precision tf32` turns it on around the synthesis).
/// On the CPU nothing changes: the kernels used there are deterministic already, and libtorch's
/// deterministic mode would fill every new tensor with NaN first (a cost for nothing).
///
/// With deterministic algorithms on, libtorch refuses an op without a deterministic CUDA
/// implementation with an error; no op of a PULSE step, an embedding or a render is one (the
/// downscaler pads by slicing instead of `reflection_pad2d`, whose backward is such an op).
pub fn configure(device: Device, determinism: Determinism) -> anyhow::Result<()> {
    if !device.is_cuda() {
        return Ok(());
    }
    static CUBLAS_ENV: std::sync::Once = std::sync::Once::new();
    CUBLAS_ENV.call_once(|| {
        set_cublas_workspace_config();
    });
    let on = determinism.is_deterministic();
    crate::ops::set_determinism(crate::ops::DeterminismFlags {
        algorithms: on,
        cudnn_deterministic: on,
        cudnn_benchmark: !on,
    })?;
    crate::ops::set_allow_tf32(false)
}

/// [`device_name`] with the GPU's model where known: "cpu", or "cuda:N (GPU name)".
pub fn describe(device: Device) -> String {
    let name = device_name(device);
    let gpu = match device {
        Device::Cuda(i) => crate::system::gpu_names().get(i).cloned(),
        _ => None,
    };
    match gpu {
        Some(gpu) => format!("{name} ({gpu})"),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!(parse_device_name("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device_name("cuda").unwrap(), Device::Cuda(0));
        assert_eq!(parse_device_name("cuda:3").unwrap(), Device::Cuda(3));
        assert!(parse_device_name("gpu").is_err());
        assert!(parse_device_name("cuda:x").is_err());
        assert_eq!(device_name(parse_device_name("cuda:2").unwrap()), "cuda:2");
        assert_eq!(device_name(Device::Cpu), "cpu");
        assert_eq!(describe(Device::Cpu), "cpu");
    }

    /// The CPU's libtorch state is left alone (no NaN filling, no changed kernels), and a
    /// user's own cuBLAS setting is kept.
    #[test]
    fn configure_leaves_the_cpu_alone_and_keeps_the_users_cublas_setting() {
        let before = crate::ops::determinism().unwrap();
        configure(Device::Cpu, Determinism::Deterministic).unwrap();
        configure(Device::Cpu, Determinism::Nondeterministic).unwrap();
        assert_eq!(crate::ops::determinism().unwrap(), before);
        if let Some(v) = std::env::var_os(CUBLAS_WORKSPACE_CONFIG) {
            assert!(!set_cublas_workspace_config());
            assert_eq!(std::env::var_os(CUBLAS_WORKSPACE_CONFIG), Some(v));
        }
        assert!(Determinism::default().is_deterministic());
        assert!(!Determinism::from_nondeterministic_flag(true).is_deterministic());
    }

    #[test]
    fn refuses_gpus_the_machine_does_not_have() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        let count = tch::Cuda::device_count() as usize;
        let e = parse_device(&format!("cuda:{count}")).unwrap_err();
        if tch::Cuda::is_available() {
            assert_eq!(e, DeviceError::NoSuchGpu { name: format!("cuda:{count}"), count });
        } else {
            assert_eq!(e, DeviceError::NoCuda(format!("cuda:{count}")));
            assert!(e.to_string().contains("CUDA is not available"), "{e}");
        }
    }
}
