//! Link-time settings that torch-sys cannot make for the final binary:
//! an rpath to libtorch's lib folder (so `pulse` runs without LD_LIBRARY_PATH, also once
//! installed elsewhere) and
//! `--no-as-needed` around libtorch_cuda (so CUDA is not silently dropped by the linker).
//! Also compiles the C++ shim in `csrc/`: `pulse_ops.cpp` always, `pulse_graph.cpp` (CUDA
//! graphs) against the CUDA runtime headers when this libtorch has CUDA and the headers are
//! found, else as a stub that reports "CUDA graphs unavailable in this build".
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    for var in ["PULSE_CUDA_GRAPHS", "PULSE_CUDA_INCLUDE", "CUDA_HOME", "CUDA_PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        panic!("set LIBTORCH to the libtorch folder (its include/ is needed to compile csrc/pulse_ops.cpp)");
    };
    let libtorch = PathBuf::from(&libtorch);
    let libtorch = libtorch.canonicalize().unwrap_or(libtorch);
    let has_cuda = libtorch.join("lib/libtorch_cuda.so").exists();
    let forced_off = matches!(std::env::var("PULSE_CUDA_GRAPHS").as_deref(), Ok("0"));
    let cuda = match (has_cuda, forced_off) {
        (true, false) => cuda_includes(&libtorch),
        _ => None,
    };
    if has_cuda && cuda.is_none() && !forced_off {
        println!("cargo:warning=CUDA runtime headers not found (set PULSE_CUDA_INCLUDE): building without CUDA graphs");
    }
    let mut objects = vec![compile(&libtorch, "pulse_ops", &[], &[])];
    objects.push(match &cuda {
        Some(dirs) => compile(&libtorch, "pulse_graph", &["PULSE_CUDA_GRAPHS"], dirs),
        None => compile(&libtorch, "pulse_graph", &[], &[]),
    });
    archive(&objects);
    // `pulse info` reports the libtorch version it was built against.
    let version_py = libtorch.join("version.py");
    if let Ok(text) = std::fs::read_to_string(&version_py) {
        let version =
            text.lines().find_map(|l| l.strip_prefix("__version__ = ")).unwrap_or("unknown");
        println!(
            "cargo:rustc-env=PULSE_LIBTORCH_VERSION={}",
            version.trim_matches(|c| c == '\'' || c == '"')
        );
    }
    let lib = libtorch.join("lib");
    // Resolve symlinks so the rpath is absolute and survives the venv symlink being replaced:
    // an installed binary (`cargo install`, scripts/install.sh) finds libtorch where it was built
    // against, with no environment variables. When that folder is gone (the binary was taken to
    // another machine), `<bin>/../lib/pulse/torch/lib` is tried next: where
    // `scripts/install.sh --bundle` copies the wheel's libraries (README, "Installing").
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../lib/pulse/torch/lib");
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        // The CUDA graph shim calls c10::cuda's stream functions directly.
        if lib.join("libc10_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-lc10_cuda");
        }
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// Folders that make the CUDA runtime headers compile on the host (no nvcc): one with
/// `cuda_runtime_api.h`, plus one with `crt/host_config.h` where the first lacks it (PyPI's
/// nvidia-cuda-runtime wheel ships the API headers without `crt/`, which the CUDA compiler's
/// wheel, or triton's, has). `PULSE_CUDA_INCLUDE` (folders separated by ':') overrides the search.
fn cuda_includes(libtorch: &Path) -> Option<Vec<PathBuf>> {
    if let Ok(list) = std::env::var("PULSE_CUDA_INCLUDE") {
        return Some(std::env::split_paths(&list).collect());
    }
    let site = libtorch.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut candidates: Vec<PathBuf> = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(std::env::var_os)
        .map(|d| PathBuf::from(d).join("include"))
        .collect();
    candidates.push(PathBuf::from("/usr/local/cuda/include"));
    // The nvidia wheels beside torch: nvidia/cu13/include (CUDA 13), nvidia/cuda_runtime/include
    // (CUDA 12), newest first.
    let mut wheels: Vec<PathBuf> = std::fs::read_dir(site.join("nvidia"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("include")).collect())
        .unwrap_or_default();
    wheels.sort();
    wheels.reverse();
    candidates.extend(wheels);
    let api = candidates.into_iter().find(|d| d.join("cuda_runtime_api.h").is_file())?;
    if api.join("crt/host_config.h").is_file() {
        return Some(vec![api]);
    }
    let crt = [
        api.parent().map(|p| p.join("cuda_nvcc/include")).unwrap_or_default(),
        site.join("nvidia/cuda_nvcc/include"),
        site.join("triton/backends/nvidia/include"),
    ]
    .into_iter()
    .find(|d| d.join("crt/host_config.h").is_file())?;
    Some(vec![api, crt])
}

/// Compiles `csrc/<name>.cpp` (libtorch entry points tch does not expose) with the given
/// macros and extra include folders (searched after libtorch's); returns the object file.
/// Plain `c++`: no build dependency needed.
fn compile(libtorch: &Path, name: &str, defines: &[&str], extra: &[PathBuf]) -> PathBuf {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let obj = out.join(format!("{name}.o"));
    let include = libtorch.join("include");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    // The same ABI switch torch-sys compiles its own wrapper with (default on, as in the
    // PyPI wheels since torch 2.7); both objects must agree to link.
    let abi = match std::env::var("LIBTORCH_CXX11_ABI").as_deref() {
        Ok("0") | Ok("false") => "0",
        _ => "1",
    };
    let mut cmd = std::process::Command::new(&cxx);
    cmd.args([
        "-c",
        "-O2",
        "-fPIC",
        "-std=c++17",
        &format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"),
        "-DGLOG_USE_GLOG_EXPORT",
    ])
    .arg(format!("-I{}", include.display()))
    .arg(format!("-I{}", include.join("torch/csrc/api/include").display()));
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    // After libtorch's own headers, and as system headers (no warnings from them).
    for (i, dir) in extra.iter().enumerate() {
        cmd.arg(if i == 0 { "-isystem" } else { "-idirafter" }).arg(dir);
    }
    let src = format!("csrc/{name}.cpp");
    let status =
        cmd.arg(&src).arg("-o").arg(&obj).status().unwrap_or_else(|e| panic!("running {cxx}: {e}"));
    assert!(status.success(), "compiling {src} failed");
    obj
}

/// Archives the shim's objects into one static library linked into the crate.
fn archive(objects: &[PathBuf]) {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let lib = out.join("libpulse_ops.a");
    let _ = std::fs::remove_file(&lib);
    let status = std::process::Command::new("ar")
        .arg("crs")
        .arg(&lib)
        .args(objects)
        .status()
        .expect("running ar");
    assert!(status.success(), "ar failed");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=pulse_ops");
}
