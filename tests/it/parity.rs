//! Parity with the reference implementation (tests/fixtures/README.md): the networks, the
//! downscaler, GEOCROSS and whole PULSE runs, on random weights in the real file formats.
//! Tolerances are the ones tests/fixtures/README.md gives and docs/design.md explains.
//!
//! With `PULSE_TEST_DEVICE=cuda` the same tolerances apply: the device is set up as the command
//! line sets it up (`device::configure`: strict float32, deterministic kernels). On an H200 every
//! case passed them except the downscaler (7.0e-5 > 1e-5), which ran with cuDNN's default TF32
//! before `configure` switched TF32 off; the figures printed on CUDA are to be confirmed by the
//! first GPU run after that change.

use crate::common::fixture;
use pulse::model::read_fit;
use pulse::pulse::search::{search, SearchOutcome};
use pulse::pulse::{loss, Downscaler, LossTarget, OptimizerKind, SearchConfig, Start};
use pulse::stylegan::stylegan1::{build_synthesis, Mapping};
use pulse::weights;
use std::collections::HashMap;
use tch::{nn, Device, Kind, Tensor};

/// A reference safetensors file as float32 tensors by name.
fn tensors(name: &str) -> HashMap<String, Tensor> {
    let sd = weights::load(&fixture(name)).unwrap();
    sd.iter().map(|(k, t)| (k.to_string(), t.to_kind(Kind::Float))).collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

/// The device parity runs on: `PULSE_TEST_DEVICE=cuda` runs them on the GPU against the same
/// CPU fixtures (scripts/gpu-check.sh does), set up as the command line sets it up.
fn device() -> Device {
    let device = match std::env::var("PULSE_TEST_DEVICE").as_deref() {
        Ok(d) => pulse::device::parse_device(d).unwrap(),
        Err(_) => Device::Cpu,
    };
    pulse::device::configure(device, pulse::device::Determinism::Deterministic).unwrap();
    device
}

const FORWARD_TOL: f64 = 1e-4;

/// Prints a measured difference (`cargo test --test it parity:: -- --nocapture` shows them all).
fn measured(what: &str, value: f64) {
    eprintln!("parity ({}): {what} {value:.2e}", pulse::device::device_name(device()));
}

#[test]
fn mapping_matches_reference() {
    let fwd = tensors("forward.safetensors");
    let sd = weights::load(&fixture("mapping.pt")).unwrap();
    let mut vs = nn::VarStore::new(device());
    let mut mapping = Mapping::new(vs.root());
    weights::load_into(&mut vs, &sd).unwrap();
    mapping.prepare();
    let w = tch::no_grad(|| mapping.forward(&fwd["mapping.z"].to_device(device()))).unwrap();
    let d = max_abs_diff(&w.to_device(Device::Cpu), &fwd["mapping.w"]);
    measured("mapping max abs diff", d);
    assert!(d < FORWARD_TOL, "mapping differs by {d}");
}

#[test]
fn synthesis_128_matches_reference() {
    let fwd = tensors("forward.safetensors");
    let path = fixture("synthesis_128_c32.pt");
    let (synthesis, _vs) =
        build_synthesis(&weights::load(&path).unwrap(), &path, device()).unwrap();
    assert_eq!(synthesis.config().resolution, 128);
    assert_eq!(synthesis.config().num_layers(), 12);
    let noise: Vec<Tensor> =
        (0..12).map(|i| fwd[&format!("synthesis128.noise.{i}")].to_device(device())).collect();
    let out =
        tch::no_grad(|| synthesis.forward(&fwd["synthesis128.w_plus"].to_device(device()), &noise))
            .unwrap();
    let d = max_abs_diff(&out.to_device(Device::Cpu), &fwd["synthesis128.image"]);
    measured("synthesis 128 max abs diff", d);
    assert!(d < FORWARD_TOL, "128 network differs by {d}");
}

fn noise_1024() -> Vec<Tensor> {
    let noise = tensors("noise_1024.safetensors");
    (0..18).map(|i| noise[&format!("noise.{i}")].shallow_clone()).collect()
}

#[test]
fn synthesis_1024_matches_reference() {
    let fwd = tensors("forward.safetensors");
    let path = fixture("synthesis_1024_c16.pt");
    let (synthesis, _vs) =
        build_synthesis(&weights::load(&path).unwrap(), &path, device()).unwrap();
    assert_eq!(synthesis.config().resolution, 1024);
    assert_eq!(synthesis.config().channels, vec![16; 9]);
    let noise: Vec<Tensor> = noise_1024().iter().map(|n| n.to_device(device())).collect();
    let out = tch::no_grad(|| {
        synthesis.forward(&fwd["synthesis1024.w_plus"].to_device(device()), &noise)
    })
    .unwrap()
    .to_device(Device::Cpu);
    let crop = out.narrow(2, 480, 64).narrow(3, 480, 64);
    let d = max_abs_diff(&crop, &fwd["synthesis1024.image_crop"]);
    measured("synthesis 1024 crop max abs diff", d);
    assert!(d < FORWARD_TOL, "1024 crop differs by {d}");
    let d16 = Downscaler::new(16, Device::Cpu).unwrap().forward(&((&out + 1.0) / 2.0)).unwrap();
    let d = max_abs_diff(&d16, &fwd["synthesis1024.image_d16"]);
    measured("synthesis 1024 downscaled max abs diff", d);
    assert!(d < FORWARD_TOL, "1024 downscaled output differs by {d}");
    let mean = out.mean_dim([2i64, 3].as_slice(), false, Kind::Float);
    assert!(max_abs_diff(&mean, &fwd["synthesis1024.image_mean"]) < FORWARD_TOL);
    let std = out.std_dim([2i64, 3].as_slice(), true, false);
    assert!(max_abs_diff(&std, &fwd["synthesis1024.image_std"]) < FORWARD_TOL);
}

#[test]
fn bicubic_downscaler_matches_reference() {
    let fwd = tensors("forward.safetensors");
    let out = Downscaler::new(8, device())
        .unwrap()
        .forward(&fwd["bicubic.x256"].to_device(device()))
        .unwrap();
    let d = max_abs_diff(&out.to_device(Device::Cpu), &fwd["bicubic.x256_d8"]);
    measured("bicubic downscaler max abs diff", d);
    assert!(d < 1e-5, "downscaler differs by {d}");
}

#[test]
fn geocross_matches_reference() {
    let fwd = tensors("forward.safetensors");
    let got = loss::geocross(&fwd["geocross.latent"].to_device(device()))
        .sum(Kind::Float)
        .double_value(&[]);
    let want = fwd["geocross.loss"].double_value(&[0]);
    measured("GEOCROSS relative diff", (got - want).abs() / want.abs());
    assert!((got - want).abs() / want.abs() < 1e-5, "GEOCROSS {got} vs {want}");
}

/// One PULSE case of `pulse_cases.json`, run from its recorded starting point.
fn run_case(name: &str) -> (HashMap<String, Tensor>, SearchOutcome) {
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("pulse_cases.json")).unwrap()).unwrap();
    let case = &cases[name];
    let fx = tensors(&format!("pulse_{name}.safetensors"));
    let path = fixture("synthesis_1024_c16.pt");
    let dev = device();
    let (synthesis, _vs) = build_synthesis(&weights::load(&path).unwrap(), &path, dev).unwrap();
    let fit = read_fit(&fixture("gaussian_fit_ffhq.pt"), dev).unwrap();
    let config = SearchConfig {
        steps: case["steps"].as_u64().unwrap() as usize,
        lr: case["lr"].as_f64().unwrap(),
        optimizer: case["optimizer"].as_str().unwrap().parse::<OptimizerKind>().unwrap(),
        schedule: case["schedule"].as_str().unwrap().parse().unwrap(),
        loss: case["loss"].as_str().unwrap().parse().unwrap(),
        eps: case["eps"].as_f64().unwrap(),
        noise: case["noise_type"].as_str().unwrap().parse().unwrap(),
        trainable_noise: case["trainable_noise_layers"].as_u64().unwrap() as usize,
        bad_noise_layers: Some(
            case["bad_noise_layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect(),
        ),
        tile_latent: case["tile_latent"].as_bool().unwrap(),
        keep_intermediate: false,
        keep_final: true,
        cuda_graph: false,
        ..SearchConfig::default()
    };
    let target =
        pulse::imageio::read_target(&fixture(case["ref"].as_str().unwrap()), 1024).unwrap();
    let target = LossTarget {
        image: target.rgb.unsqueeze(0).to_device(dev),
        weight: target.alpha.map(|a| a.unsqueeze(0).to_device(dev)),
    };
    assert_eq!(target.weight.is_some(), name == "alpha");
    let start = Start { latent: fx["init.latent"].shallow_clone(), noise: noise_1024() };
    let mut outcomes = search(&synthesis, &fit, &config, &target, start, dev, &mut |_| true)
        .unwrap()
        .completed()
        .unwrap();

    // The final image, as the reference recorded it: the last latent's render, downscaled to 32.
    let out = outcomes.pop().unwrap();
    (fx, out)
}

/// `|got - ref| / (|ref| + 1e-4)`
fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / (want.abs() + 1e-4)
}

/// Checks the history rows (TOTAL, GEOCROSS, L2), the final latent's displacement (within
/// `displacement_tol`, the fixtures' bound) and the trainable noise maps' (within `noise_tol`).
fn check_case(name: &str, row_tol: &[f64], every_row: f64, displacement_tol: f64, noise_tol: f64) {
    let (fx, out) = run_case(name);
    let hist = &fx["history"];
    assert_eq!(out.history.len() as i64, hist.size()[0]);
    for (i, h) in out.history.iter().enumerate() {
        let want: Vec<f64> = Vec::try_from(hist.get(i as i64).to_kind(Kind::Double)).unwrap();
        // Our terms are in loss-string order (L2, GEOCROSS); the fixture's columns are TOTAL, GEOCROSS, L2.
        let got = [h.total, h.terms[1], h.terms[0]];
        let tol = row_tol.get(i).copied().unwrap_or(every_row);
        for c in 0..3 {
            let r = rel(got[c], want[c]);
            assert!(
                r <= tol,
                "{name}: history row {i} column {c}: got {} want {} (relative error {r} > {tol})",
                got[c],
                want[c]
            );
        }
    }
    let init = &fx["init.latent"];
    let want = &fx["final.latent"];
    let (final_latent, final_noise) = out.final_state.as_ref().expect("keep_final");
    let displacement =
        (final_latent - want).norm().double_value(&[]) / (want - init).norm().double_value(&[]);
    measured(&format!("{name}: final latent displacement"), displacement);
    assert!(
        displacement <= displacement_tol,
        "{name}: final latent displaced by {displacement} > {displacement_tol}"
    );
    // The trainable noise maps (layers 0..4) as one vector, by the same displacement measure
    // (a single 4x4 map has too few elements for Adam's sign-like first steps to average out).
    let flat = |maps: &[Tensor]| {
        Tensor::cat(&maps.iter().take(5).map(|m| m.flatten(0, -1)).collect::<Vec<_>>(), 0)
    };
    let init = flat(&noise_1024());
    let want =
        flat(&(0..5).map(|l| fx[&format!("final.noise.{l}")].shallow_clone()).collect::<Vec<_>>());
    let got = flat(final_noise);
    let d = (&got - &want).norm().double_value(&[]) / (&want - &init).norm().double_value(&[]);
    measured(&format!("{name}: trainable noise displacement"), d);
    assert!(d <= noise_tol, "{name}: trainable noise displaced by {d} > {noise_tol}");
}

/// The trainable noise maps are 416 numbers against the latent's 9,216, so Adam's sign-like
/// first steps, which turn a rounding difference in a near-zero gradient into a full-size step,
/// move their displacement far more from one machine to the next: measured 0.040 on one x86-64
/// machine and 0.148 on another for the `alpha` case (0.098 and 0.048 for `default`), against
/// the latent's 0.027-0.083. Twice the largest seen; SGD has no such amplification and keeps
/// the latent's bound.
const ADAM_NOISE_TOL: f64 = 0.3;

#[test]
fn pulse_default_case_matches_reference() {
    check_case("default", &[1e-4, 1e-3], 5e-2, 0.15, ADAM_NOISE_TOL);
}

#[test]
fn pulse_alpha_case_matches_reference() {
    check_case("alpha", &[1e-4, 1e-3], 5e-2, 0.15, ADAM_NOISE_TOL);
}

#[test]
fn pulse_sgd_case_matches_reference() {
    check_case("sgd", &[], 2e-3, 0.03, 0.03);
}
