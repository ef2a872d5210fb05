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

/// The arithmetic a synthesis forward pass runs in. The loss, the latent and the optimizer
/// state stay float32 in every mode.
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

/// Whether a speed rewrite is switched off by `PULSE_TUNING_OFF` (a comma-separated list of
/// `alloc`, `epilogue`, `leaky`, `convt`, `blurbias`), for measuring each one's effect
/// (docs/performance.md). Every rewrite computes the same function.
pub fn tuning_off(name: &str) -> bool {
    static OFF: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    OFF.get_or_init(|| {
        std::env::var("PULSE_TUNING_OFF")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .collect()
    })
    .iter()
    .any(|s| s == name)
}

/// Keeps freed memory in the process for reuse. glibc's malloc serves every block over its mmap
/// threshold (at most 32 MiB) with a fresh mmap and unmaps it on free, so each of the many
/// full-resolution activations of a step (64 MiB at 1024x1024x16) was page-faulted and zeroed by
/// the kernel again on every step; that cost more than the arithmetic. Call once at start-up,
/// before other threads exist. No effect outside glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if tuning_off("alloc") {
            return;
        }
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_MAX: std::ffi::c_int = -4;
        // SAFETY: mallopt only changes malloc's tuning parameters.
        unsafe {
            mallopt(M_MMAP_MAX, 0);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}

/// Peak resident memory of this process (VmHWM), in MiB; `None` where /proc is not there.
pub fn peak_rss_mb() -> Option<f64> {
    proc_status_kb("VmHWM:").map(|kb| kb as f64 / 1024.0)
}

/// Current resident memory (VmRSS), in MiB.
pub fn rss_mb() -> Option<f64> {
    proc_status_kb("VmRSS:").map(|kb| kb as f64 / 1024.0)
}

fn proc_status_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Used GPU memory of this process on GPU `index` in bytes (what libtorch's caching allocator
/// holds, i.e. about its peak), from `nvidia-smi`; `None` when it cannot be asked.
pub fn cuda_used_bytes_by_self(index: usize) -> Option<u64> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-compute-apps=pid,used_memory",
            "--format=csv,noheader,nounits",
            &format!("--id={index}"),
        ])
        .output()
        .ok()?;
    let me = std::process::id().to_string();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let (pid, mib) = l.split_once(',')?;
        (pid.trim() == me).then(|| mib.trim().parse::<u64>().ok().map(|m| m * 1024 * 1024))?
    })
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

    #[test]
    fn parses_precisions_and_reads_peak_rss() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
        }
        assert!("fp8".parse::<Precision>().is_err());
        assert!(peak_rss_mb().unwrap() > 1.0);
    }
}
