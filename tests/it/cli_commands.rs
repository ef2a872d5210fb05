//! `pulse info`, `generate`, `render`, `convert` and `fit-gaussian` driven as users run them.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn info_reports_libtorch_cuda_and_threads() {
    pulse()
        .arg("info")
        .assert()
        .success()
        .stdout(predicate::str::contains("libtorch: 2.11.0"))
        .stdout(predicate::str::contains("cuda: "))
        .stdout(predicate::str::contains("gpus: "))
        .stdout(predicate::str::contains("cpu threads: "));
}

#[test]
fn generate_then_render_gives_the_same_image() {
    let t = TestDir::new();
    let model = t.model("m", "synthesis_128_c32.pt", true);
    let out = t.path("faces/face.png");
    pulse()
        .args(["generate", "--model", s(&model), "--seed", "3", "--count", "2", "-o", s(&out)])
        .assert()
        .success();
    let first = t.path("faces/face_0.png");
    assert_eq!(image_size(&first), (128, 128));
    assert_ne!(pixels(&first), pixels(&t.path("faces/face_1.png")));
    let rendered = t.path("rendered.png");
    pulse()
        .args(["render", s(&t.path("faces/face_0.latent.safetensors"))])
        .args(["--model", s(&model), "-o", s(&rendered)])
        .assert()
        .success();
    assert_eq!(pixels(&first), pixels(&rendered));
    // The same seed gives the same faces.
    let again = t.path("again.png");
    pulse()
        .args(["generate", "--model", s(&model), "--seed", "3", "-o", s(&again)])
        .assert()
        .success();
    assert_eq!(pixels(&first), pixels(&again));
}

/// Truncation where it is exact: the saved W+ is `w_avg + psi * (w - w_avg)` on layers 0-7 and
/// `w` on the others, with `w` from psi = 1 and `w_avg` from psi = 0, on a mapping network whose
/// outputs really spread (so the check does not hang on rounding).
#[test]
fn truncation_is_w_avg_plus_psi_times_the_offset_on_layers_0_to_7() {
    let t = TestDir::new();
    let model = t.model("m", "synthesis_128_c32.pt", true);
    let rows = |psi: &str| -> tch::Tensor {
        let out = t.path(&format!("psi{psi}.png"));
        pulse()
            .args(["generate", "--model", s(&model), "--seed", "1", "--truncation", psi])
            .args(["-o", s(&out)])
            .assert()
            .success();
        let latent = out.with_extension("latent.safetensors");
        pulse::latent::LatentFile::read(&latent).unwrap().w_plus
    };
    let (w, w_avg, half) = (rows("1"), rows("0"), rows("0.7"));
    let layers = w.size()[0];
    let (head, tail) =
        (|t: &tch::Tensor| t.narrow(0, 0, 8), |t: &tch::Tensor| t.narrow(0, 8, layers - 8));
    let offset = (head(&w) - head(&w_avg)).abs().max().double_value(&[]);
    assert!(offset > 0.05, "the mapping outputs should spread: |w - w_avg| = {offset}");
    let want = head(&w_avg) + (head(&w) - head(&w_avg)) * 0.7;
    let d = (head(&half) - want).abs().max().double_value(&[]);
    eprintln!(
        "truncation: max |w_plus - (w_avg + 0.7 (w - w_avg))| = {d:.1e} (offset {offset:.2})"
    );
    assert!(d < 1e-5 * offset.max(1.0), "layers 0-7 off by {d}");
    assert!(tail(&half).equal(&tail(&w)) && tail(&w_avg).equal(&tail(&w)), "layers 8+ are w");
    // Every layer 0-7 holds the same truncated w.
    assert!(head(&w_avg).equal(&w_avg.narrow(0, 0, 1).expand([8, 512], false)));
}

#[test]
fn generate_without_mapping_says_so() {
    let t = TestDir::new();
    pulse()
        .args(["generate", "--model", s(&t.model_128()), "-o", s(&t.path("x.png"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("mapping network"));
}

#[test]
fn render_warns_about_another_model_and_refuses_another_resolution() {
    let t = TestDir::new();
    let m128 = t.model("m", "synthesis_128_c32.pt", true);
    pulse().args(["generate", "--model", s(&m128), "-o", s(&t.path("f.png"))]).assert().success();
    let latent = t.path("f.latent.safetensors");
    // Same architecture, other file: a warning, still rendered.
    let other = t.model_converted("other");
    pulse()
        .args(["render", s(&latent), "--model", s(&other), "-o", s(&t.path("r.png"))])
        .assert()
        .success()
        .stderr(predicate::str::contains("warning").and(predicate::str::contains("another model")));
    // A 1024 network has 18 layers: refused with the reason.
    let m1024 = t.model("big", "synthesis_1024_c16.pt", false);
    pulse()
        .args(["render", s(&latent), "--model", s(&m1024), "-o", s(&t.path("r2.png"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("12 layers").and(predicate::str::contains("18")));
    assert!(!t.path("r2.png").exists());
}

#[test]
fn corrupted_latent_is_refused_with_the_reason() {
    let t = TestDir::new();
    let bad = t.path("bad.latent.safetensors");
    std::fs::write(&bad, b"not a latent").unwrap();
    pulse()
        .args(["render", s(&bad), "--model", s(&t.model_128()), "-o", s(&t.path("x.png"))])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("bad.latent.safetensors")
                .and(predicate::str::contains("not a latent file")),
        );
}

#[test]
fn converted_safetensors_renders_like_the_pickle() {
    let t = TestDir::new();
    let pt = t.model("pt", "synthesis_128_c32.pt", true);
    let st = t.path("st");
    std::fs::create_dir_all(&st).unwrap();
    for (name, out) in [
        ("synthesis", "synthesis.safetensors"),
        ("mapping", "mapping.safetensors"),
        ("gaussian_fit", "gaussian_fit.safetensors"),
    ] {
        let source = pulse::model::find_file(&pt, name).unwrap();
        pulse().args(["convert", s(&source), "-o", s(&st.join(out))]).assert().success();
    }
    for (dir, png) in [(&pt, "a.png"), (&st, "b.png")] {
        pulse()
            .args(["generate", "--model", s(dir), "--seed", "8", "-o", s(&t.path(png))])
            .assert()
            .success();
    }
    assert_eq!(pixels(&t.path("a.png")), pixels(&t.path("b.png")));
}

#[test]
fn convert_refuses_a_non_weight_file_with_one_line() {
    let t = TestDir::new();
    let bad = t.path("notes.pt");
    std::fs::write(&bad, b"hello").unwrap();
    let out = t.path("o.safetensors");
    let assert = pulse().args(["convert", s(&bad), "-o", s(&out)]).assert().code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("notes.pt"));
    assert!(!out.exists());
}

#[test]
fn missing_model_folder_is_a_clear_error() {
    let t = TestDir::new();
    pulse()
        .args(["upsample", &face("astronaut32.png"), "--model", s(&t.path("nowhere"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("model folder").and(predicate::str::contains("nowhere")));
}

#[test]
fn fit_gaussian_writes_a_reusable_fit() {
    let t = TestDir::new();
    let model = t.path("m");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::copy(fixture("synthesis_128_c32.pt"), model.join("synthesis.pt")).unwrap();
    std::fs::copy(fixture("mapping.pt"), model.join("mapping.pt")).unwrap();
    pulse()
        .args(["fit-gaussian", "--model", s(&model), "--samples", "20000", "--seed", "1"])
        .assert()
        .success();
    let fit = pulse::weights::load(&model.join("gaussian_fit.safetensors")).unwrap();
    let (mean, std) = (fit.get("mean").unwrap(), fit.get("std").unwrap());
    assert_eq!((mean.size(), std.size()), (vec![512], vec![512]));
    // The fixture's random mapping network is nearly constant: its mean is far from zero and
    // its spread tiny, but never negative or NaN.
    assert!(mean.abs().max().double_value(&[]) > 1e-4);
    assert!(std.min().double_value(&[]) >= 0.0 && std.max().double_value(&[]) < 1e-3);
    // The same seed gives the same fit.
    let first = mean.copy();
    pulse()
        .args(["fit-gaussian", "--model", s(&model), "--samples", "20000", "--seed", "1"])
        .assert()
        .success();
    let again = pulse::weights::load(&model.join("gaussian_fit.safetensors")).unwrap();
    assert!(again.get("mean").unwrap().equal(&first));
    // upsample now uses it without recomputing.
    pulse()
        .args(["upsample", &face("astronaut32.png"), "--steps", "1", "--eps", "1", "-q"])
        .args(["--model", s(&model), "-o", s(&t.path("out"))])
        .assert()
        .success();
}
