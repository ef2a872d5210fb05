//! Facts about this machine and process that libtorch does not expose: GPU models and memory
//! (from the NVIDIA driver and `nvidia-smi`), this process's memory use, and malloc tuning.

/// GPU model names, read from the NVIDIA driver's /proc entries; empty where there is no NVIDIA
/// driver.
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

/// Free memory of GPU `index` in bytes, from `nvidia-smi` (tch does not expose
/// cudaMemGetInfo); `None` when it cannot be asked.
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

/// Keeps freed memory in the process for reuse. glibc's malloc serves every block over its mmap
/// threshold (at most 32 MiB) with a fresh mmap and unmaps it on free, so each of the many
/// full-resolution activations of a step (64 MiB at 1024x1024x16) was page-faulted and zeroed by
/// the kernel again on every step; that cost more than the arithmetic (docs/performance.md).
/// Call once at start-up, before other threads exist. No effect outside glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_MAX: std::ffi::c_int = -4;
        // SAFETY: mallopt only changes malloc's tuning parameters; it takes no pointers.
        unsafe {
            mallopt(M_MMAP_MAX, 0);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}

/// Hands memory the process has freed back to the system (glibc's `malloc_trim`): with
/// [`tune_allocator`] nothing freed ever goes back by itself, so a phase that needs large
/// blocks after one that used many smaller ones (restore's 8192-pixel paste-back after its
/// searches) would add their peaks. No effect outside glibc.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: malloc_trim only returns free pages of malloc's own heap to the system.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// Lets a closed standard output end the process quietly, as it does `head` or `grep`'s
/// writers: Rust ignores SIGPIPE, so `println!` to a closed pipe (`pulse info | head -1`)
/// would panic instead. Call once at start, before any thread is spawned.
pub fn default_sigpipe() {
    #[cfg(unix)]
    {
        extern "C" {
            fn signal(signum: std::ffi::c_int, handler: usize) -> usize;
        }
        const SIGPIPE: std::ffi::c_int = 13;
        const SIG_DFL: usize = 0;
        // SAFETY: restores the default disposition of one signal; no handler code is installed.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
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

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process_memory() {
        let peak = super::peak_rss_mb().unwrap();
        let now = super::rss_mb().unwrap();
        assert!(peak > 1.0 && now > 1.0 && peak >= now * 0.99, "peak {peak} MiB, now {now} MiB");
    }
}
