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
