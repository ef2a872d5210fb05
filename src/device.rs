//! Device selection and runtime facts (`pulse info`).
use tch::Device;

/// Parses `auto|cpu|cuda|cuda:N`; `auto` is the first CUDA device when present, else the CPU.
pub fn parse_device(s: &str) -> anyhow::Result<Device> {
    match s {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => match s.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Ok(Device::Cuda(n)),
            None => anyhow::bail!("unknown device '{s}' (expected auto, cpu, cuda or cuda:N)"),
        },
    }
}
