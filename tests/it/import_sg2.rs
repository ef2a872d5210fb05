//! `pulse import` of StyleGAN2 generators: NVIDIA's stylegan2-ada-pytorch pickles, NVIDIA's
//! TensorFlow StyleGAN2 pickles, rosinality's checkpoints and the project's own layout, each
//! to exactly the tensors it was made from, under NVIDIA's stylegan2-ada-pytorch names; and the
//! refusal of hostile StyleGAN2 pickles with nothing run.
//!
//! The files (tests/fixtures/README.md): a tiny generator written by
//! tests/fixtures/make_sg2_import_fixtures.py as stylegan2-ada-pytorch and rosinality write
//! theirs; TensorFlow pickles built here from the same tensors by the inverse of NVIDIA's
//! `legacy.convert_tf_generator`; and, when the shared reference fixtures are on this machine,
//! the pickles NVIDIA's own code wrote (they are too big to commit).

use crate::common::pickle::{network_v, values, TfVar, Writer, MARKER};
use crate::common::{fixture, pulse, s, TestDir};
use pulse::weights::{self, StateDict};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// What make_sg2_import_fixtures.py's hostile files would create if anything ran them.
const PWNED: &str = "PULSE_PWNED";
/// The shared reference fixtures (NVIDIA-made pickles), when present.
const SHARED: &str = "../shared/fixtures/reference-sg2";

fn tensors(path: &Path) -> BTreeMap<String, Tensor> {
    weights::load(path).unwrap().iter().map(|(k, t)| (k.to_string(), t.shallow_clone())).collect()
}

/// The model folder's two files together, checked to hold exactly `expected` (names, shapes,
/// values bit for bit), with each key in the file its prefix names.
fn assert_folder_holds(out: &Path, expected: &BTreeMap<String, Tensor>, what: &str) {
    let synthesis = tensors(&out.join("synthesis.safetensors"));
    let mapping = tensors(&out.join("mapping.safetensors"));
    assert!(
        synthesis.keys().all(|k| k.starts_with("synthesis.")),
        "{what}: {:?}",
        synthesis.keys()
    );
    assert!(mapping.keys().all(|k| k.starts_with("mapping.")), "{what}: {:?}", mapping.keys());
    let got: BTreeMap<String, Tensor> = synthesis.into_iter().chain(mapping).collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{what}: keys");
    let mut max = 0f64;
    for (k, want) in expected {
        let t = &got[k];
        assert_eq!(t.size(), want.size(), "{what}: shape of {k}");
        let d =
            (t.to_kind(Kind::Double) - want.to_kind(Kind::Double)).abs().max().double_value(&[]);
        max = max.max(d);
        assert!(
            t.to_kind(Kind::Float).equal(&want.to_kind(Kind::Float)),
            "{what}: {k} differs by {d}"
        );
    }
    println!("{what}: {} tensors, max |difference| {max:e}", expected.len());
}

fn import(dir: &TestDir, sources: &[&Path], out: &str) -> (PathBuf, String) {
    let out = dir.path(out);
    let mut cmd = pulse();
    cmd.current_dir(dir.path("")).arg("import");
    for p in sources {
        cmd.arg(s(p));
    }
    let output = cmd.args(["-o", s(&out)]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "import failed: {stderr}");
    assert!(!dir.path(MARKER).exists() && !dir.path(PWNED).exists(), "source code was run");
    (out, stderr)
}

fn assert_refused(dir: &TestDir, file: &Path, expect: &str) {
    let out = dir.path("refused-model");
    let output = pulse()
        .current_dir(dir.path(""))
        .args(["import", s(file), "-o", s(&out)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "not one line: {stderr}");
    assert!(stderr.contains(expect), "{stderr} does not say '{expect}'");
    assert!(!out.exists(), "a model folder was written");
    assert!(!dir.path(MARKER).exists() && !dir.path(PWNED).exists(), "source code was run");
}

fn tiny_expected() -> BTreeMap<String, Tensor> {
    tensors(&fixture("sg2_tiny_expected.pt"))
}

#[test]
fn ada_pytorch_pickle_imports_g_ema_exactly() {
    let dir = TestDir::new();
    let (out, stderr) = import(&dir, &[&fixture("sg2_tiny_ada.pkl")], "ada");
    assert_folder_holds(&out, &tiny_expected(), "ada pickle");
    let json = crate::common::read_json(&out.join("model.json"));
    assert_eq!(json["architecture"], "stylegan2");
    assert_eq!(json["sources"][0]["format"], "nvidia-ada-pytorch-pickle");
    assert_eq!(json["resolution"], 16);
    assert!(json["licence"].as_str().unwrap().contains("NVIDIA Source Code License-NC"));
    // No fit in the sources: left to the first command that needs it.
    assert!(!out.join("gaussian_fit.safetensors").exists());
    assert!(stderr.contains("StyleGAN2 16x16"), "{stderr}");
    assert!(stderr.contains("first needs it"), "{stderr}");
}

#[test]
fn rosinality_checkpoint_imports_g_ema_and_latent_avg() {
    let dir = TestDir::new();
    let (out, _) = import(&dir, &[&fixture("sg2_tiny_rosinality.pt")], "ros");
    assert_folder_holds(&out, &tiny_expected(), "rosinality");
    let json = crate::common::read_json(&out.join("model.json"));
    assert_eq!(json["sources"][0]["format"], "rosinality-pt");
}

#[test]
fn project_layout_imports_as_is_and_a_gaussian_fit_is_read() {
    let dir = TestDir::new();
    let (out, _) =
        import(&dir, &[&fixture("sg2_tiny_expected.pt"), &fixture("gaussian_fit_ffhq.pt")], "pt");
    assert_folder_holds(&out, &tiny_expected(), "project layout (.pt)");
    let fit = tensors(&out.join("gaussian_fit.safetensors"));
    let published = tensors(&fixture("gaussian_fit_ffhq.pt"));
    assert!(fit["mean"].equal(&published["mean"].to_kind(Kind::Float)));
    // The folder's own safetensors files import again to the same tensors.
    let (again, _) = import(
        &dir,
        &[&out.join("synthesis.safetensors"), &out.join("mapping.safetensors")],
        "again",
    );
    assert_folder_holds(&again, &tiny_expected(), "project layout (safetensors)");
}

/// NVIDIA's TensorFlow names and layouts of a generator in stylegan2-ada-pytorch's names: the
/// inverse of `legacy.convert_tf_generator` (and of src/weights/nvidia.rs).
fn tf_stylegan2(sd: &BTreeMap<String, Tensor>) -> (Vec<TfVar>, Vec<TfVar>, Vec<TfVar>) {
    let var = |name: String, t: Tensor| -> TfVar { (name, t.size(), values(&t)) };
    let (mut mapping, mut synthesis, mut own) = (Vec::new(), Vec::new(), Vec::new());
    for (k, t) in sd {
        let parts: Vec<&str> = k.split('.').collect();
        match parts[..] {
            ["mapping", "w_avg"] => own.push(var("dlatent_avg".into(), t.shallow_clone())),
            ["mapping", fc, p] => {
                let i = fc.strip_prefix("fc").unwrap();
                let t = if p == "weight" { t.tr() } else { t.shallow_clone() };
                mapping.push(var(format!("Dense{i}/{p}"), t));
            }
            ["synthesis", "b4", "const"] => {
                synthesis.push(var("4x4/Const/const".into(), t.unsqueeze(0)))
            }
            ["synthesis", b, layer, ref p @ ..] => {
                let r = b.strip_prefix('b').unwrap();
                let tf_layer = match (layer, r) {
                    ("conv1", "4") => "Conv",
                    ("conv0", _) => "Conv0_up",
                    ("conv1", _) => "Conv1",
                    _ => "ToRGB",
                };
                let (name, t) = match p {
                    ["weight"] => {
                        let w = t.permute([2, 3, 1, 0]);
                        ("weight", if layer == "conv0" { w.flip([0, 1]) } else { w })
                    }
                    ["affine", "weight"] => ("mod_weight", t.tr()),
                    ["affine", "bias"] => ("mod_bias", t - 1.0),
                    [p] => (*p, t.shallow_clone()),
                    _ => panic!("{k}"),
                };
                synthesis.push(var(format!("{r}x{r}/{tf_layer}/{name}"), t.contiguous()));
            }
            _ => panic!("{k}"),
        }
    }
    for i in 0..5 {
        synthesis.push((format!("noise{i}"), vec![1, 1, 4, 4], vec![0.5; 16]));
    }
    (mapping, synthesis, own)
}

fn tf_pickle(proto: u8, sd: &BTreeMap<String, Tensor>) -> Vec<u8> {
    let (mapping, synthesis, own) = tf_stylegan2(sd);
    let mut w = Writer::new(proto);
    w.mark();
    let func = "training.networks_stylegan2.G_main";
    network_v(&mut w, 4, "G", func, &own, &[]);
    network_v(&mut w, 4, "D", "training.networks_stylegan2.D_stylegan2", &[], &[]);
    let syn =
        |w: &mut Writer| network_v(w, 4, "G_synthesis", "G_synthesis_stylegan2", &synthesis, &[]);
    let map = |w: &mut Writer| network_v(w, 4, "G_mapping", "G_mapping", &mapping, &[]);
    network_v(&mut w, 4, "Gs", func, &own, &[("mapping", &map), ("synthesis", &syn)]);
    w.tuple();
    w.stop()
}

#[test]
fn tensorflow_stylegan2_pickle_converts_as_nvidia_legacy_does() {
    let dir = TestDir::new();
    let expected = tiny_expected();
    for proto in [4, 2] {
        let pkl = dir.path(&format!("tf_p{proto}.pkl"));
        std::fs::write(&pkl, tf_pickle(proto, &expected)).unwrap();
        let (out, _) = import(&dir, &[&pkl], &format!("tf{proto}"));
        assert_folder_holds(&out, &expected, &format!("TensorFlow pickle, protocol {proto}"));
        let json = crate::common::read_json(&out.join("model.json"));
        assert_eq!(json["architecture"], "stylegan2");
        assert_eq!(json["sources"][0]["format"], "nvidia-tf-pickle");
    }
}

/// The pickles NVIDIA's own code wrote (shared fixtures, not committed): both must convert to
/// exactly the weights file.
#[test]
#[ignore = "needs ../shared/fixtures/reference-sg2"]
fn shared_nvidia_made_pickles_convert_exactly() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join(SHARED);
    let weights_file = shared.join("sg2_v64m2_weights.safetensors");
    assert!(
        weights_file.exists(),
        "needs the shared reference fixtures: {} is absent",
        weights_file.display()
    );
    let expected = tensors(&weights_file);
    let dir = TestDir::new();
    for file in ["sg2_v64m2_ada.pkl", "sg2_v64m2_tf.pkl"] {
        let (out, _) = import(&dir, &[&shared.join(file)], file);
        assert_folder_holds(&out, &expected, file);
    }
}

#[test]
fn hostile_stylegan2_pickles_are_refused_and_run_nothing() {
    let dir = TestDir::new();
    // Shell code as the persistent class's source, defining no class.
    assert_refused(&dir, &fixture("sg2_hostile_source.pkl"), "not defined by the source");
    // A `__reduce__` calling os.system inside G_ema's state.
    assert_refused(&dir, &fixture("sg2_hostile_reduce.pkl"), "posix.system");
    // A TensorFlow StyleGAN2 pickle's build_module_src (code that writes MARKER) is never run.
    let pkl = dir.path("tf.pkl");
    std::fs::write(&pkl, tf_pickle(4, &tiny_expected())).unwrap();
    import(&dir, &[&pkl], "tf");
    // A builtins.exec global anywhere in an ada pickle.
    let mut bytes = std::fs::read(fixture("sg2_tiny_ada.pkl")).unwrap();
    let at = find(&bytes, b"dnnlib.util").unwrap();
    bytes.splice(at..at + 11, b"builtins.ex".iter().copied());
    let evil = dir.path("evil.pkl");
    std::fs::write(&evil, bytes).unwrap();
    assert_refused(&dir, &evil, "refused global");
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn broken_layouts_and_mixed_families_are_refused() {
    let dir = TestDir::new();
    let mut sd = tiny_expected();
    sd.remove("synthesis.b8.conv1.weight");
    let file = dir.path("broken.safetensors");
    let pairs: Vec<(String, Tensor)> = sd.into_iter().collect();
    weights::save_safetensors(&StateDict::from_pairs(pairs), &file, None).unwrap();
    assert_refused(&dir, &file, "synthesis.b8.conv1.weight");
    // A StyleGAN (v1) synthesis with a StyleGAN2 mapping network.
    let output = pulse()
        .current_dir(dir.path(""))
        .args([
            "import",
            s(&fixture("synthesis_128_c32.pt")),
            s(&fixture("sg2_tiny_rosinality.pt")),
        ])
        .args(["-o", s(&dir.path("mixed"))])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("stylegan1") && stderr.contains("stylegan2"), "{stderr}");
}

#[test]
fn loading_an_ada_pickle_as_a_state_dict_points_to_import() {
    let err = weights::load(&fixture("sg2_tiny_ada.pkl")).unwrap_err().to_string();
    assert!(err.contains("pulse import"), "{err}");
}

#[test]
fn mutated_stylegan2_files_never_panic() {
    let tf = tf_pickle(4, &tiny_expected());
    for (name, original) in [
        ("ada", std::fs::read(fixture("sg2_tiny_ada.pkl")).unwrap()),
        ("rosinality", std::fs::read(fixture("sg2_tiny_rosinality.pt")).unwrap()),
        ("tf", tf),
    ] {
        let mut n = 0;
        crate::common::pickle::mutations(&original, 300, 0x5851f42d4c957f2d, |bytes| {
            weights::fuzz_load_bytes(bytes);
            n += 1;
        });
        assert_eq!(n, 300, "{name}");
    }
}

/// A longer run of [`mutated_stylegan2_files_never_panic`] for a fuzzing session without
/// cargo-fuzz: `PULSE_MUTATION_SECONDS=180 cargo test --test it import_sg2:: -- --ignored
/// --nocapture` (also on the shared NVIDIA-made pickles when present). Prints what it ran.
#[test]
#[ignore]
fn mutation_run_for_a_while() {
    let seconds: u64 =
        std::env::var("PULSE_MUTATION_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let mut inputs = vec![
        std::fs::read(fixture("sg2_tiny_ada.pkl")).unwrap(),
        std::fs::read(fixture("sg2_tiny_rosinality.pt")).unwrap(),
        tf_pickle(4, &tiny_expected()),
        tf_pickle(2, &tiny_expected()),
    ];
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join(SHARED);
    for f in ["sg2_v64m2_ada.pkl", "sg2_v64m2_tf.pkl"] {
        if let Ok(b) = std::fs::read(shared.join(f)) {
            inputs.push(b);
        }
    }
    let start = std::time::Instant::now();
    let (mut runs, mut round) = (0u64, 0u64);
    while start.elapsed().as_secs() < seconds {
        for input in &inputs {
            crate::common::pickle::mutations(input, 50, 0x9e3779b97f4a7c15 ^ round, |bytes| {
                weights::fuzz_load_bytes(bytes);
                runs += 1;
            });
        }
        round += 1;
    }
    println!("{runs} mutated inputs of {} files in {:?}, no panic", inputs.len(), start.elapsed());
}

/// pulse searches a 512-dimensional latent space (the Gaussian fit, latents, the search): a
/// StyleGAN2 generator whose styles or mapping take another size is refused at import, before
/// anything is written, saying why.
#[test]
fn latent_sizes_other_than_512_are_refused_before_writing() {
    let dir = TestDir::new();
    let save = |name: &str, sd: BTreeMap<String, Tensor>| {
        let file = dir.path(name);
        let pairs: Vec<(String, Tensor)> = sd.into_iter().collect();
        weights::save_safetensors(&StateDict::from_pairs(pairs), &file, None).unwrap();
        file
    };
    // Styles of 8 features: every affine layer narrowed, no mapping network.
    let narrow_w: BTreeMap<String, Tensor> = tiny_expected()
        .into_iter()
        .filter(|(k, _)| k.starts_with("synthesis."))
        .map(|(k, t)| {
            let t = if k.ends_with(".affine.weight") { t.narrow(1, 0, 8).contiguous() } else { t };
            (k, t)
        })
        .collect();
    assert_refused(&dir, &save("w8.safetensors", narrow_w), "512");
    // A mapping network taking z of 8 values.
    let narrow_z: BTreeMap<String, Tensor> = tiny_expected()
        .into_iter()
        .map(|(k, t)| {
            let t = if k == "mapping.fc0.weight" { t.narrow(1, 0, 8).contiguous() } else { t };
            (k, t)
        })
        .collect();
    assert_refused(&dir, &save("z8.safetensors", narrow_z), "512");
}
