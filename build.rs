//! Link-time settings that torch-sys cannot make for the final binary:
//! an rpath to libtorch's lib folder (so `pulse` runs without LD_LIBRARY_PATH) and
//! `--no-as-needed` around libtorch_cuda (so CUDA is not silently dropped by the linker).
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(libtorch) = std::env::var("LIBTORCH") else { return };
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
