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

/// The name `--device` takes for a device: `cpu` or `cuda:N`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(n) => format!("cuda:{n}"),
        _ => "cpu".to_string(),
    }
}

/// GPU model names, read from the NVIDIA driver's /proc entries (libtorch does not expose them);
/// empty where there is no NVIDIA driver.
pub fn gpu_names() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc/driver/nvidia/gpus") else { return vec![] };
    let mut gpus: Vec<(String, String)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let info = std::fs::read_to_string(e.path().join("information")).ok()?;
            let model = info.lines().find_map(|l| l.strip_prefix("Model:"))?.trim().to_string();
            Some((e.file_name().to_string_lossy().into_owned(), model))
        })
        .collect();
    gpus.sort();
    gpus.into_iter().map(|(_, m)| m).collect()
}

/// Free memory of GPU `index` in bytes, from `nvidia-smi` (libtorch does not expose
/// cudaMemGetInfo through tch); `None` when it cannot be asked.
pub fn cuda_free_bytes(index: usize) -> Option<u64> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=memory.free",
            "--format=csv,noheader,nounits",
            &format!("--id={index}"),
        ])
        .output()
        .ok()?;
    let mib: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(mib * 1024 * 1024)
}

/// Rough GPU memory of one search image: float32 activations kept for the backward pass, about
/// 12 tensors of the block's size per layer (conv, blur, noise, activation, norm, style), plus 50%.
pub fn search_bytes_per_image(config: &crate::stylegan::SynthesisConfig) -> u64 {
    let per_block: u64 = config
        .channels
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let side = 4u64 << i;
            12 * c as u64 * side * side * 4
        })
        .sum();
    per_block * 3 / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(parse_device("cuda").unwrap(), Device::Cuda(0));
        assert_eq!(parse_device("cuda:3").unwrap(), Device::Cuda(3));
        assert!(parse_device("gpu").is_err());
        assert!(parse_device("cuda:x").is_err());
        assert_eq!(device_name(parse_device("cuda:2").unwrap()), "cuda:2");
        assert_eq!(device_name(Device::Cpu), "cpu");
    }
}
