//! ILO (`--method ilo`, issue 29) replayed against ILO's own code: the reference cases of
//! `reference-ilo` (tests/fixtures/ilo/README.md says how they were made). `v64` is committed in
//! tests/fixtures/ilo/v64 and always runs; `v256s` and `v256` are read from
//! `$PULSE_ILO_REFERENCE`, else `../shared/fixtures/reference-ilo` beside the repository, and
//! skip with a note when absent.
//!
//! `cargo test --test it ilo:: -- --nocapture` prints every measured difference.

use crate::common::{pulse, s, TestDir};
use pulse::latent::LatentFile;
use pulse::model::Model;
use pulse::pulse::search::{search, to_w_plus, StepValues};
use pulse::pulse::{LossTarget, Method, SearchConfig, Start};
use pulse::stylegan::Architecture;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

fn device() -> Device {
    let device = match std::env::var("PULSE_TEST_DEVICE").as_deref() {
        Ok(d) => pulse::device::parse_device(d).unwrap(),
        Err(_) => Device::Cpu,
    };
    pulse::device::configure(device, pulse::device::Determinism::Deterministic).unwrap();
    device
}

/// The folder of reference case `name`: `v64` is committed; the others are the shared fixtures
/// (`$PULSE_ILO_REFERENCE`, else `../shared/fixtures/reference-ilo`), read by `#[ignore]`d tests
/// that fail, not pass, when asked for without them.
fn case_dir(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = if name == "v64" {
        root.join("tests/fixtures/ilo/v64")
    } else {
        match std::env::var_os("PULSE_ILO_REFERENCE") {
            Some(p) => PathBuf::from(p).join(name),
            None => root.join("../shared/fixtures/reference-ilo").join(name),
        }
    };
    assert!(
        dir.join("reference.safetensors").is_file(),
        "needs the reference case {name}: {} has no reference.safetensors (set PULSE_ILO_REFERENCE)",
        dir.display()
    );
    dir
}

struct Case {
    name: String,
    model: Model,
    steps: Vec<usize>,
    target: PathBuf,
    start: Start,
    /// [steps, 3]: total, mse, geocross before each step's update.
    history: Tensor,
    _dir: TestDir,
}

fn tensors(path: &Path) -> std::collections::HashMap<String, Tensor> {
    let sd = pulse::weights::load(path).unwrap();
    sd.iter().map(|(k, t)| (k.to_string(), t.to_kind(Kind::Float))).collect()
}

/// Imports the case's rosinality generator with its Gaussian fit into a model folder (as a user
/// would: `pulse import generator.pt gaussian_fit.pt`) and reads its start and history.
fn load(name: &str, dir: &Path) -> Case {
    let tmp = TestDir::new();
    let model_dir = tmp.path("model");
    pulse()
        .args(["import", "-q", s(&dir.join("generator.pt")), s(&dir.join("gaussian_fit.pt"))])
        .args(["-o", s(&model_dir)])
        .assert()
        .success();
    let model = Model::load(&model_dir, device()).unwrap();
    assert_eq!(model.architecture(), Architecture::StyleGan2);
    let case: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("case.json")).unwrap()).unwrap();
    let steps: Vec<usize> =
        case["steps"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let init = tensors(&dir.join("init.safetensors"));
    let layout = model.layout().clone();
    let start = Start {
        latent: init["latent_z"].unsqueeze(0),
        noise: (0..layout.noise_maps())
            .map(|i| init[&format!("noise.{i}")].shallow_clone())
            .collect(),
    };
    let history = tensors(&dir.join("reference.safetensors"))["history"].to_kind(Kind::Double);
    Case {
        name: name.into(),
        model,
        steps,
        target: dir.join("target.png"),
        start,
        history,
        _dir: tmp,
    }
}

fn ilo_config(steps: &[usize]) -> SearchConfig {
    let mut config = SearchConfig {
        method: Method::Ilo,
        lr: 0.1,
        loss: "1*MSE+0.01*GEOCROSS".parse().unwrap(),
        eps: 1e-12,
        ..SearchConfig::default()
    };
    config.ilo.steps = steps.to_vec();
    config
}

/// What a replay measured against the reference: per round, the largest relative difference of
/// the per-step total (the README's measure of the rounding spread) and of any term (total, MSE,
/// GEOCROSS); and step 0's largest over the terms.
struct Measured {
    total: Vec<f64>,
    terms: Vec<f64>,
    step0: f64,
}

fn compare(case: &Case, history: &[(usize, f64, f64, f64)]) -> Measured {
    let reference: Vec<Vec<f64>> =
        (0..case.history.size()[0]).map(|i| Vec::try_from(case.history.get(i)).unwrap()).collect();
    assert_eq!(history.len(), reference.len(), "{}: steps", case.name);
    let rounds = case.steps.len();
    let mut m = Measured { total: vec![0.0; rounds], terms: vec![0.0; rounds], step0: 0.0 };
    for (i, ((round, total, mse, geo), r)) in history.iter().zip(&reference).enumerate() {
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-30);
        let d = rel(*total, r[0]).max(rel(*mse, r[1])).max(rel(*geo, r[2]));
        m.total[*round] = m.total[*round].max(rel(*total, r[0]));
        m.terms[*round] = m.terms[*round].max(d);
        if i == 0 {
            m.step0 = d;
        }
        if std::env::var_os("PULSE_ILO_VERBOSE").is_some() {
            eprintln!(
                "{} step {i} round {round}: total {total:.7} ({:.1e}) mse {mse:.7} ({:.1e}) geocross {geo:.5} ({:.1e})",
                case.name,
                rel(*total, r[0]),
                rel(*mse, r[1]),
                rel(*geo, r[2])
            );
        }
    }
    let list = |v: &[f64]| v.iter().map(|d| format!("{d:.1e}")).collect::<Vec<_>>().join(", ");
    eprintln!(
        "ilo ({}): {}: step 0 {:.1e}; largest relative difference per round: total {}; any term {}",
        pulse::device::device_name(device()),
        case.name,
        m.step0,
        list(&m.total),
        list(&m.terms)
    );
    m
}

fn rows(history: &[StepValues]) -> Vec<(usize, f64, f64, f64)> {
    history.iter().map(|v| (v.round.unwrap(), v.total, v.terms[0], v.terms[1])).collect()
}

fn run_library(case: &Case) -> Vec<(usize, f64, f64, f64)> {
    let dev = device();
    let resolution = case.model.layout().resolution;
    let target = pulse::imageio::read_target(&case.target, resolution).unwrap();
    let target = LossTarget { image: target.rgb.unsqueeze(0).to_device(dev), weight: None };
    let config = ilo_config(&case.steps);
    let start = Start {
        latent: case.start.latent.shallow_clone(),
        noise: case.start.noise.iter().map(|n| n.shallow_clone()).collect(),
    };
    let fit = case.model.fit.as_ref().unwrap();
    let outcome =
        search(case.model.synthesis.as_ref(), fit, &config, &target, start, dev, &mut |_| true)
            .unwrap()
            .completed()
            .unwrap();
    rows(&outcome[0].history)
}

/// `v64`, step by step: every step's losses within 1e-4 relative (an independent float32
/// implementation reaches 4e-7).
#[test]
fn v64_replays_step_by_step() {
    let dir = case_dir("v64");
    let case = load("v64", &dir);
    let m = compare(&case, &run_library(&case));
    assert!(m.step0 < 1e-4, "step 0 differs by {:e}", m.step0);
    for (k, d) in m.terms.iter().enumerate() {
        assert!(*d < 1e-4, "v64 round {k} differs by {d:e}");
    }
}

/// `v256s`: the per-step total of round 0 within 1e-3, of every step within 5e-2. Round 1 is
/// already sensitive to rounding: 2.8e-4 on one x86-64 CPU, 3.4e-3 on an AMD EPYC (the
/// fixtures' README measures 1e-2 for rounding alone in the last round).
#[test]
#[ignore = "needs ../shared/fixtures/reference-ilo"]
fn shared_v256s_replays_round_by_round() {
    let dir = case_dir("v256s");
    let case = load("v256s", &dir);
    let m = compare(&case, &run_library(&case));
    assert!(m.step0 < 1e-4, "step 0 differs by {:e}", m.step0);
    assert!(m.total[0] < 1e-3, "round 0: {:?}", m.total);
    assert!(m.total.iter().all(|d| *d < 5e-2), "{:?}", m.total);
}

/// `v256`, ILO's default rounds (chaotic from round 2): round 0's per-step total within 1e-3 and
/// the best MSE within a factor 2 of the reference's.
#[test]
#[ignore = "needs ../shared/fixtures/reference-ilo"]
fn shared_v256_round_0_and_final_quality() {
    let dir = case_dir("v256");
    let case = load("v256", &dir);
    let history = run_library(&case);
    let m = compare(&case, &history);
    assert!(m.step0 < 1e-4, "step 0 differs by {:e}", m.step0);
    assert!(m.total[0] < 1e-3, "round 0 differs by {:e}", m.total[0]);
    let best = history.iter().map(|r| r.2).fold(f64::INFINITY, f64::min);
    let last = case.steps.len() - 1;
    let first_of_last: usize = case.steps[..last].iter().sum();
    let reference: Vec<f64> = Vec::try_from(case.history.select(1, 1)).unwrap();
    let reference_best = reference[first_of_last..].iter().cloned().fold(f64::INFINITY, f64::min);
    eprintln!(
        "ilo: v256: best MSE {best:.5}, the reference's (its last round) {reference_best:.5}"
    );
    assert!(best < 2.0 * reference_best && best > reference_best / 2.0);
}

/// The replay through the command line, as a user would run it: the start state written as a
/// latent file, `pulse upsample --method ilo --init` with the case's rounds, the report's
/// history compared with the reference; the result renders bit for bit and `edit` refuses it.
#[test]
fn v64_replays_through_upsample_method_ilo_init() {
    let dir = case_dir("v64");
    let case = load("v64", &dir);
    let tmp = TestDir::new();
    let fit = case.model.fit.as_ref().unwrap().to_device(Device::Cpu);
    let layout = case.model.layout();
    let w_plus = tch::no_grad(|| to_w_plus(&case.start.latent, &fit, layout.w_rows)).unwrap();
    let mut latent = LatentFile::new(
        w_plus.squeeze_dim(0),
        Some(case.start.latent.squeeze_dim(0)),
        case.start.noise.iter().map(|n| n.shallow_clone()).collect(),
        &case.model.sha256,
    );
    latent.set_architecture(Architecture::StyleGan2);
    let init = tmp.path("start.latent.safetensors");
    latent.write(&init).unwrap();
    let (out, report) = (tmp.path("out"), tmp.path("report.json"));
    let steps: Vec<String> = case.steps.iter().map(|s| s.to_string()).collect();
    let model_dir = case._dir.path("model");
    let mut cmd = pulse();
    cmd.args(["upsample", s(&case.target), "--method", "ilo", "--init", s(&init)])
        .args(["--ilo-steps", &steps.join(","), "--eps", "1e-12", "--seed", "1", "-q"])
        .args(["--model", s(&model_dir), "-o", s(&out), "--report", s(&report)]);
    if let Ok(d) = std::env::var("PULSE_TEST_DEVICE") {
        cmd.args(["--device", &d]);
    }
    let output = cmd.output().unwrap();
    // Exit 3: not converged (eps is out of reach), as for PULSE.
    assert!(
        matches!(output.status.code(), Some(0) | Some(3)),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["settings"]["method"], "ilo");
    assert_eq!(json["settings"]["ilo_steps"], serde_json::json!(case.steps));
    let image = &json["images"][0];
    let history: Vec<(usize, f64, f64, f64)> = image["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let f = |k: &str| h[k].as_f64().unwrap_or_else(|| panic!("history has no {k}: {h}"));
            assert!(h["lr"].as_f64().is_some() && h["step"].as_u64().is_some());
            (h["round"].as_u64().unwrap() as usize, f("total"), f("MSE"), f("GEOCROSS"))
        })
        .collect();
    let m = compare(&case, &history);
    assert!(m.step0 < 1e-4, "step 0 differs by {:e}", m.step0);
    assert!(m.terms.iter().all(|d| *d < 1e-4), "{:?}", m.terms);
    // The first step of every round has lr 0.
    let mut first = 0;
    for &n in &case.steps {
        assert_eq!(image["history"][first]["lr"].as_f64(), Some(0.0));
        first += n;
    }

    // The result's latent file holds ILO's state and renders the result bit for bit.
    let stem = case.target.file_stem().unwrap().to_str().unwrap().to_string();
    let result_latent = out.join(format!("{stem}.latent.safetensors"));
    let result_png = out.join(format!("{stem}.png"));
    let read = LatentFile::read(&result_latent).unwrap();
    assert_eq!(read.metadata.get("method").map(String::as_str), Some("ilo"));
    let best_round = image["history"][image["best_step"].as_u64().unwrap() as usize]["round"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(read.block_input.as_ref().map(|b| b.block), (best_round > 0).then_some(best_round));
    let rendered = tmp.path("render.png");
    pulse()
        .args(["render", s(&result_latent), "--model", s(&model_dir), "-o", s(&rendered)])
        .assert()
        .success();
    let a = pulse::imageio::read_rgb(&rendered).unwrap();
    let b = pulse::imageio::read_rgb(&result_png).unwrap();
    assert!(a.equal(&b), "render differs from the upsampled result");
    if read.block_input.is_some() {
        let edited = pulse()
            .args(["edit", s(&result_latent), "--direction", s(&result_latent)])
            .args(["--model", s(&model_dir), "-o", s(&tmp.path("edit.png"))])
            .output()
            .unwrap();
        assert_eq!(edited.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&edited.stderr);
        assert!(stderr.contains("ILO's intermediate state"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

fn bundled(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name)
}

fn target32() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ref32.png")
}

/// `upsample --method ilo` on a bundled model of each family, as users run it: two samples in
/// one batch, compare sheet, animation, report with one history entry per step across rounds;
/// the result renders bit for bit; `edit` and `direction` refuse the ILO state in one line
/// (exit 2); `--init` starts from a result's latent and noise exactly; PULSE-only flags are
/// refused with ILO and ILO's without it.
fn upsample_ilo_on(model: &Path) {
    let t = TestDir::new();
    let out = t.path("out");
    let report = t.path("r.json");
    let common = ["--method", "ilo", "--ilo-steps", "2,2,1", "--device", "cpu", "-q"];
    pulse()
        .args(["upsample", s(&target32()), "--seed", "5", "--model", s(model)])
        .args(common)
        .args(["--samples", "2", "--batch-size", "2", "--compare", "--save-intermediate"])
        .args(["-o", s(&out), "--report", s(&report)])
        .assert()
        .code(3); // eps 2e-3 is out of reach in 5 steps
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["settings"]["method"], "ilo");
    assert_eq!(r["settings"]["ilo_steps"], serde_json::json!([2, 2, 1]));
    assert_eq!(r["settings"]["lr"], 0.1);
    assert_eq!(r["settings"]["loss"], "1*MSE+0.01*GEOCROSS");
    let images = r["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    for image in images {
        let h = image["history"].as_array().unwrap();
        let rounds: Vec<u64> = h.iter().map(|e| e["round"].as_u64().unwrap()).collect();
        assert_eq!(rounds, [0, 0, 1, 1, 2]);
        for e in h {
            let (total, mse, geo) = (
                e["total"].as_f64().unwrap(),
                e["MSE"].as_f64().unwrap(),
                e["GEOCROSS"].as_f64().unwrap(),
            );
            assert!((total - (mse + 0.01 * geo)).abs() <= 1e-6 * total, "{e}");
        }
        assert!(image["best"]["MSE"].as_f64().unwrap() > 0.0);
    }
    for sample in ["ref32_0", "ref32_1"] {
        let latent = out.join(format!("{sample}.latent.safetensors"));
        let file = LatentFile::read(&latent).unwrap();
        assert_eq!(file.metadata["method"], "ilo");
        let rendered = t.path(&format!("{sample}.render.png"));
        pulse()
            .args(["render", s(&latent), "--model", s(model), "-o", s(&rendered)])
            .assert()
            .success();
        // Batched with another sample, the search's convolutions may round differently from
        // the render's batch of one (as for PULSE: at most one level); at batch size 1 the
        // render is bit for bit (the v64 replay checks it).
        let a = pulse::imageio::read_rgb(&rendered).unwrap();
        let b = pulse::imageio::read_rgb(&out.join(format!("{sample}.png"))).unwrap();
        let levels = ((a - b).abs().max().double_value(&[]) * 255.0).round();
        assert!(levels <= 1.0, "{sample}: render differs from the result by {levels}/255");
    }
    assert!(out.join("ref32_0.compare.png").is_file() && out.join("ref32_0.steps.gif").is_file());

    // A result holding ILO's state: edit and direction refuse it in one line.
    let samples: Vec<PathBuf> = ["ref32_0", "ref32_1"]
        .iter()
        .map(|n| out.join(format!("{n}.latent.safetensors")))
        .collect();
    let with_state = samples.iter().find(|p| LatentFile::read(p).unwrap().block_input.is_some());
    let with_state = with_state.expect("a best iterate after round 0").clone();
    let other = samples.iter().find(|p| **p != with_state).unwrap();
    for args in [
        vec!["direction", s(&with_state), s(other), "-o", s(&t.path("d.safetensors"))],
        vec![
            "edit",
            s(&with_state),
            "--direction",
            s(&with_state),
            "--model",
            s(model),
            "-o",
            s(&t.path("e.png")),
        ],
    ] {
        let o = pulse().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains("ILO's intermediate state"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }

    // --init: ILO starts from the file's latent and noise exactly, so one round of one step
    // (lr 0) scores exactly that latent from block 0.
    let out2 = t.path("out2");
    let report2 = t.path("r2.json");
    pulse()
        .args(["upsample", s(&target32()), "--init", s(&with_state), "--model", s(model)])
        .args(["--method", "ilo", "--ilo-steps", "1", "--device", "cpu", "-q", "--eps", "1"])
        .args(["-o", s(&out2), "--report", s(&report2)])
        .assert()
        .success();
    let file = LatentFile::read(&out2.join("ref32.latent.safetensors")).unwrap();
    let start = LatentFile::read(&with_state).unwrap();
    assert!(file.latent.as_ref().unwrap().equal(start.latent.as_ref().unwrap()));
    for (a, b) in file.noise.iter().zip(&start.noise) {
        assert!(a.equal(b), "noise changed");
    }
    assert!(file.block_input.is_none());

    // Refusals: PULSE's own flags with ILO, ILO's without it, terms ILO does not take.
    for args in [
        vec!["--method", "ilo", "--steps", "5"],
        vec!["--method", "ilo", "--optimizer", "sgd"],
        vec!["--method", "ilo", "--bad-noise-layers", "3"],
        vec!["--method", "ilo", "--tile-latent"],
        vec!["--method", "ilo", "--loss", "100*L2+0.05*GEOCROSS"],
        vec!["--method", "ilo", "--ilo-steps", "1,1,1,1,1,1,1,1,1,1"],
        vec!["--ilo-steps", "2,2"],
        vec!["--ilo-radius", "latent=100"],
    ] {
        let o = pulse()
            .args(["upsample", s(&target32()), "--model", s(model), "-o", s(&t.path("bad"))])
            .args(["--device", "cpu", "-q"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(!t.path("bad").join("ref32.png").exists());
    }
    let o = pulse()
        .args(["upsample", s(&target32()), "--model", s(model), "-o", s(&t.path("bad"))])
        .args(["--device", "cpu", "-q", "--method", "ilo", "--steps", "5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("--steps does not apply to --method ilo"), "{stderr}");

    // The l1-ball projections run and are recorded.
    let report3 = t.path("r3.json");
    let o = pulse()
        .args(["upsample", s(&target32()), "--seed", "5", "--model", s(model)])
        .args(common)
        .args(["--ilo-radius", "latent=0.5,noise=0.5:1,feature=0.5"])
        .args(["-o", s(&t.path("radius")), "--report", s(&report3)])
        .output()
        .unwrap();
    assert!(matches!(o.status.code(), Some(0) | Some(3)), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report3).unwrap()).unwrap();
    assert_eq!(r["settings"]["ilo_radius"], "latent=0.5,noise=0.5:1,feature=0.5");
}

#[test]
fn upsample_ilo_on_stylegan1() {
    upsample_ilo_on(&bundled("test-1024"));
}

#[test]
fn upsample_ilo_on_stylegan2() {
    upsample_ilo_on(&bundled("test-sg2-1024"));
}

/// Without `-q`, each finished image's line gives ILO's best L2 (its MSE / 4), not "-".
#[test]
fn finished_lines_give_ilos_l2() {
    let t = TestDir::new();
    let report = t.path("r.json");
    let o = pulse()
        .args(["upsample", s(&target32()), "--seed", "5", "--model"])
        .arg(bundled("test-sg2-1024"))
        .args(["--method", "ilo", "--ilo-steps", "1,1", "--device", "cpu"])
        .args(["-o", s(&t.path("out")), "--report", s(&report)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let l2 = r["images"][0]["best"]["MSE"].as_f64().unwrap() / 4.0;
    assert!(stderr.contains(&format!("best L2 {l2:.3e})")), "{stderr}");
}

/// `restore --method ilo` on both families: the faces searched by ILO, the report's face entry
/// with its MSE; `--steps` refused with ILO.
#[test]
fn restore_ilo_on_both_families() {
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/align/astronaut.jpg");
    for model in ["test-1024", "test-sg2-1024"] {
        let t = TestDir::new();
        let (out, report) = (t.path("out"), t.path("r.json"));
        let o = pulse()
            .env("OMP_NUM_THREADS", "1")
            .args(["restore", s(&photo), "--model", s(&bundled(model)), "--seed", "7"])
            .args(["--method", "ilo", "--ilo-steps", "1,1", "-q", "--device", "cpu"])
            .args(["-o", s(&out), "--report", s(&report)])
            .output()
            .unwrap();
        // 0, or 3 where the random network's face does not reach eps in two steps.
        assert!(
            matches!(o.status.code(), Some(0) | Some(3)),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert_eq!(r["settings"]["method"], "ilo", "{model}");
        let face = &r["photos"][0]["faces"][0];
        assert!(face["loss"]["MSE"].as_f64().unwrap() > 0.0, "{model}: {face}");
        assert!(out.join("astronaut.png").is_file());
        pulse()
            .args(["restore", s(&photo), "--model", s(&bundled(model)), "--method", "ilo"])
            .args(["--steps", "3", "-q", "--device", "cpu", "-o", s(&t.path("bad"))])
            .assert()
            .code(2);
    }
}

/// `bench --method ilo` beside PULSE on a bundled model: both time their steps.
#[test]
fn bench_method_ilo() {
    let o = pulse()
        .args(["bench", "--model", s(&bundled("test-sg2-1024")), "--method", "ilo"])
        .args(["--steps", "4", "--warmup", "0", "--json", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["method"], "ilo");
    assert_eq!(r["step_ms"].as_array().unwrap().len(), 4);
}
