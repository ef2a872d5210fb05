//! `pulse info` as a doctor: the model folders it finds, what each holds, and the next command
//! when something is missing; and an installed copy of the binary that finds libtorch alone.
mod common;
use common::{pulse, s, TestDir};
use std::path::Path;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn info_in(dir: &Path, args: &[&str], env_model: Option<&Path>) -> String {
    let mut cmd = pulse();
    cmd.current_dir(dir).arg("info").args(args);
    if let Some(m) = env_model {
        cmd.env("PULSE_MODEL", m);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The lines `pulse info` prints for the folder shown as `name`: its own line (two spaces in)
/// and the detail lines under it (four spaces in).
fn block(text: &str, name: &str) -> String {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(&format!("  {name} (")));
    let first = lines.next().unwrap_or_else(|| panic!("no folder {name}:\n{text}"));
    let details = lines.take_while(|l| l.starts_with("    "));
    std::iter::once(first).chain(details).collect::<Vec<_>>().join("\n")
}

#[test]
fn without_models_it_says_what_to_run() {
    let dir = TestDir::new();
    let text = info_in(&dir.path(""), &[], None);
    assert!(text.contains("libtorch: ") && text.contains("cpu threads: "), "{text}");
    assert!(text.contains("models/ffhq (default): not found"), "{text}");
    assert!(text.contains("next: `pulse download ffhq`"), "{text}");
    // Nothing usable anywhere: the last line offers the bundled test model too.
    assert!(text.trim_end().lines().last().unwrap().contains("--model models/test-1024"), "{text}");
}

#[test]
fn with_models_it_reports_architecture_licence_and_gaussian_fit() {
    let dir = TestDir::new();
    let root = dir.path("");
    // The default folder: a StyleGAN2 model with its licence and no Gaussian fit. Only names and
    // model.json are read, so any bytes stand in for the weights.
    let ffhq = root.join("models/ffhq");
    std::fs::create_dir_all(&ffhq).unwrap();
    std::fs::write(ffhq.join("synthesis.safetensors"), b"not read").unwrap();
    std::fs::write(ffhq.join("mapping.safetensors"), b"not read").unwrap();
    std::fs::write(
        ffhq.join("model.json"),
        r#"{"format": "pulse-model/1", "architecture": "stylegan2", "licence": "CC BY-NC 4.0", "resolution": 1024}"#,
    )
    .unwrap();
    // Another folder in models/, found by the scan: synthesis only, no model.json.
    let other = root.join("models/other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("synthesis.pt"), b"not read").unwrap();
    let test_model = repo("models/test-1024");
    let text = info_in(&root, &["--model", "missing-folder"], Some(&test_model));

    let ffhq_block = block(&text, "models/ffhq");
    assert!(ffhq_block.contains("(default): stylegan2, 1024x1024"), "{ffhq_block}");
    assert!(ffhq_block.contains("licence: CC BY-NC 4.0"), "{ffhq_block}");
    assert!(ffhq_block.contains("gaussian fit: missing"), "{ffhq_block}");
    assert!(ffhq_block.contains("next: `pulse fit-gaussian`"), "{ffhq_block}");

    let env_block = block(&text, s(&test_model));
    assert!(env_block.contains("($PULSE_MODEL): stylegan1"), "{env_block}");
    assert!(env_block.contains("licence: unknown (no model.json"), "{env_block}");
    assert!(env_block.contains("gaussian fit: gaussian_fit.pt"), "{env_block}");
    assert!(
        env_block.contains(&format!("ready: `pulse upsample IMAGE --model {}`", s(&test_model)))
    );

    let other_block = block(&text, "models/other");
    assert!(other_block.contains("(in models/): stylegan1"), "{other_block}");
    assert!(other_block.contains("mapping: missing"), "{other_block}");
    assert!(other_block.contains("next: add a gaussian_fit.pt"), "{other_block}");

    let missing = block(&text, "missing-folder");
    assert!(missing.contains("(--model): not found") && missing.contains("check the path"));
    // A usable model exists: no closing hint about the test model.
    assert!(!text.contains("to try everything first"), "{text}");
}

/// The same folder found two ways is listed once, with both ways.
#[test]
fn a_folder_found_twice_is_listed_once() {
    let dir = TestDir::new();
    let root = dir.path("");
    std::fs::create_dir_all(root.join("models/ffhq")).unwrap();
    std::fs::write(root.join("models/ffhq/synthesis.pt"), b"x").unwrap();
    let text = info_in(&root, &["--model", "models/ffhq"], Some(Path::new("models/ffhq")));
    assert_eq!(text.matches("  models/ffhq (").count(), 1, "{text}");
    assert!(text.contains("models/ffhq (default, $PULSE_MODEL, --model)"), "{text}");
}

/// What `cargo install` and scripts/install.sh do: the binary copied to another folder finds
/// libtorch from there, with no LD_LIBRARY_PATH or LIBTORCH, from a clean working folder.
#[test]
fn an_installed_copy_runs_without_environment_variables() {
    let dir = TestDir::new();
    let bin = dir.path("root/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let installed = bin.join("pulse");
    std::fs::copy(env!("CARGO_BIN_EXE_pulse"), &installed).unwrap();
    let work = dir.path("elsewhere");
    std::fs::create_dir_all(&work).unwrap();
    let out = std::process::Command::new(&installed)
        .arg("info")
        .current_dir(&work)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LIBTORCH")
        .env_remove("PULSE_MODEL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{}", text, String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("libtorch: ") && text.contains("models/ffhq (default): not found"));
}
