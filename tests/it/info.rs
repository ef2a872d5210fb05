//! `pulse info` as a doctor: the model folders it finds, what each holds, and the next command
//! when something is missing; and an installed copy of the binary that finds libtorch alone.
use crate::common::{pulse, s, TestDir};
use std::path::Path;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn info_in(dir: &Path, args: &[&str], env_model: Option<&Path>) -> String {
    let (code, text) = info_code(dir, args, env_model);
    assert_eq!(code, Some(0), "{text}");
    text
}

/// `pulse info` in `dir`: its exit code and stdout.
fn info_code(dir: &Path, args: &[&str], env_model: Option<&Path>) -> (Option<i32>, String) {
    let mut cmd = pulse();
    cmd.current_dir(dir).arg("info").args(args);
    if let Some(m) = env_model {
        cmd.env("PULSE_MODEL", m);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    (out.status.code(), format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
}

/// A StyleGAN (v1) folder that loads: the 128x128 fixture network and PULSE's Gaussian fit, as
/// a user lays them out by hand.
fn v1_folder(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(crate::common::fixture("synthesis_128_c32.pt"), dir.join("synthesis.pt"))
        .unwrap();
    std::fs::copy(crate::common::fixture("gaussian_fit_ffhq.pt"), dir.join("gaussian_fit.pt"))
        .unwrap();
    dir.to_path_buf()
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
    // Outside pulse's checkout (here) there is no models/test-1024 to suggest: the last line
    // says how to get a model instead.
    assert!(!text.contains("models/test-1024"), "{text}");
    assert!(text.trim_end().lines().last().unwrap().contains("--model DIR"), "{text}");
}

#[test]
fn with_models_it_reports_architecture_licence_and_gaussian_fit() {
    let dir = TestDir::new();
    let root = dir.path("");
    // The default folder: a StyleGAN2 model (the tiny test generator, imported) with its
    // licence and no Gaussian fit.
    let ffhq = root.join("models/ffhq");
    pulse()
        .args(["import", s(&crate::common::fixture("sg2_tiny_ada.pkl")), "-o", s(&ffhq), "-q"])
        .assert()
        .success();
    // Another folder in models/, found by the scan: synthesis only, no model.json.
    let other = root.join("models/other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(crate::common::fixture("synthesis_128_c32.pt"), other.join("synthesis.pt"))
        .unwrap();
    let test_model = repo("models/test-1024");
    // A folder named with --model that does not exist: said, and the exit code says so.
    let (code, text) = info_code(&root, &["--model", "missing-folder"], Some(&test_model));
    assert_eq!(code, Some(2), "{text}");

    let ffhq_block = block(&text, "models/ffhq");
    assert!(ffhq_block.contains("(default): stylegan2, 16x16"), "{ffhq_block}");
    assert!(ffhq_block.contains("licence: NVIDIA Source Code License-NC"), "{ffhq_block}");
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
    v1_folder(&root.join("models/ffhq"));
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

/// "ready" only for a folder that loads as the commands load it; every other folder names its
/// problem, and a folder named with `--model` that cannot be used exits 2.
#[test]
fn a_folder_is_ready_only_when_it_loads() {
    let dir = TestDir::new();
    let root = dir.path("");
    let good = v1_folder(&root.join("good"));
    let text = info_in(&root, &["--model", "good"], None);
    assert!(block(&text, "good").contains("ready: `pulse upsample IMAGE --model good`"), "{text}");

    let synthesis = std::fs::read(good.join("synthesis.pt")).unwrap();
    type Damage = Box<dyn Fn(&Path)>;
    let broken: Vec<(&str, Damage)> = vec![
        ("empty-json", Box::new(|d: &Path| std::fs::write(d.join("model.json"), b"").unwrap())),
        (
            "corrupt-json",
            Box::new(|d: &Path| std::fs::write(d.join("model.json"), b"{\"format").unwrap()),
        ),
        (
            "unknown-arch",
            Box::new(|d: &Path| {
                std::fs::write(d.join("model.json"), br#"{"architecture": "stylegan9"}"#).unwrap()
            }),
        ),
        (
            "contradictory-arch",
            Box::new(|d: &Path| {
                std::fs::write(d.join("model.json"), br#"{"architecture": "stylegan2"}"#).unwrap()
            }),
        ),
        (
            "truncated",
            Box::new(move |d: &Path| {
                std::fs::write(d.join("synthesis.pt"), &synthesis[..synthesis.len() / 2]).unwrap()
            }),
        ),
        (
            "nan-weights",
            Box::new(|d: &Path| {
                let sd = pulse::weights::load(&d.join("synthesis.pt")).unwrap();
                let pairs: Vec<(String, tch::Tensor)> = sd
                    .iter()
                    .enumerate()
                    .map(|(i, (k, t))| {
                        let t = if i == 3 { t.fill(f64::NAN) } else { t.shallow_clone() };
                        (k.to_string(), t)
                    })
                    .collect();
                std::fs::remove_file(d.join("synthesis.pt")).unwrap();
                let to = d.join("synthesis.safetensors");
                pulse::weights::save_safetensors(
                    &pulse::weights::StateDict::from_pairs(pairs),
                    &to,
                    None,
                )
                .unwrap();
            }),
        ),
    ];
    for (name, damage) in &broken {
        let d = v1_folder(&root.join(name));
        damage(&d);
        let (code, text) = info_code(&root, &["--model", name], None);
        let b = block(&text, name);
        assert_eq!(code, Some(2), "{name}: {text}");
        assert!(b.contains("cannot load: ") && !b.contains("ready:"), "{name}: {b}");
    }

    // A file that no longer holds what model.json recorded for it.
    let imported = root.join("imported");
    pulse()
        .args([
            "import",
            s(&crate::common::fixture("synthesis_128_c32.pt")),
            "-o",
            s(&imported),
            "-q",
        ])
        .args([s(&crate::common::fixture("gaussian_fit_ffhq.pt"))])
        .assert()
        .success();
    assert!(block(&info_in(&root, &["--model", "imported"], None), "imported").contains("ready:"));
    let sd = pulse::weights::load(&imported.join("synthesis.safetensors")).unwrap();
    let pairs: Vec<(String, tch::Tensor)> =
        sd.iter().map(|(k, t)| (k.to_string(), t * 1.0001)).collect();
    pulse::weights::save_safetensors(
        &pulse::weights::StateDict::from_pairs(pairs),
        &imported.join("synthesis.safetensors"),
        None,
    )
    .unwrap();
    let (code, text) = info_code(&root, &["--model", "imported"], None);
    assert_eq!(code, Some(2), "{text}");
    let b = block(&text, "imported");
    assert!(b.contains("does not hold what pulse wrote") && !b.contains("ready:"), "{b}");
}
