//! Link-time settings that torch-sys cannot make for the final binary:
//! an rpath to libtorch's lib folder (so `pulse` runs without LD_LIBRARY_PATH) and
//! `--no-as-needed` around libtorch_cuda (so CUDA is not silently dropped by the linker).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/pulse_ops.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let Ok(libtorch) = std::env::var("LIBTORCH") else {
        panic!("set LIBTORCH to the libtorch folder (its include/ is needed to compile csrc/pulse_ops.cpp)");
    };
    compile_ops(&PathBuf::from(&libtorch));
    // `pulse info` reports the libtorch version it was built against.
    let version_py = PathBuf::from(&libtorch).join("version.py");
    if let Ok(text) = std::fs::read_to_string(&version_py) {
        let version =
            text.lines().find_map(|l| l.strip_prefix("__version__ = ")).unwrap_or("unknown");
        println!(
            "cargo:rustc-env=PULSE_LIBTORCH_VERSION={}",
            version.trim_matches(|c| c == '\'' || c == '"')
        );
    }
    let lib = PathBuf::from(libtorch).join("lib");
    // Resolve symlinks so the rpath survives the venv symlink being replaced.
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

/// Compiles `csrc/pulse_ops.cpp` (libtorch entry points tch does not expose) into a static
/// library linked into the crate. Plain `c++` and `ar`: no build dependency needed.
fn compile_ops(libtorch: &std::path::Path) {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let obj = out.join("pulse_ops.o");
    let include = libtorch.join("include");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    // The same ABI switch torch-sys compiles its own wrapper with (default on, as in the
    // PyPI wheels since torch 2.7); both objects must agree to link.
    let abi = match std::env::var("LIBTORCH_CXX11_ABI").as_deref() {
        Ok("0") | Ok("false") => "0",
        _ => "1",
    };
    let status = std::process::Command::new(&cxx)
        .args([
            "-c",
            "-O2",
            "-fPIC",
            "-std=c++17",
            &format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"),
            "-DGLOG_USE_GLOG_EXPORT",
        ])
        .arg(format!("-I{}", include.display()))
        .arg(format!("-I{}", include.join("torch/csrc/api/include").display()))
        .arg("csrc/pulse_ops.cpp")
        .arg("-o")
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("running {cxx}: {e}"));
    assert!(status.success(), "compiling csrc/pulse_ops.cpp failed");
    let lib = out.join("libpulse_ops.a");
    let _ = std::fs::remove_file(&lib);
    let status = std::process::Command::new("ar")
        .arg("crs")
        .arg(&lib)
        .arg(&obj)
        .status()
        .expect("running ar");
    assert!(status.success(), "ar failed");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=pulse_ops");
}
