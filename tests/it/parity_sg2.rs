//! StyleGAN2 parity with NVIDIA's stylegan2-ada-pytorch (`training/networks.py` with its
//! reference ops): mapping, truncation, synthesis forward and gradients, on weights rebuilt bit
//! for bit at test time (tests/fixtures/make_sg2_fixtures.py says how the outputs in
//! tests/fixtures/sg2/ were made); and, where the shared reference fixtures are present
//! (`$PULSE_SG2_REFERENCE`, else `../shared/fixtures/reference-sg2` beside the repository), the
//! three generators there and the two PULSE searches on `v1024`.
//!
//! `cargo test --test it parity_sg2:: -- --nocapture` prints every measured difference.

use crate::common::fixture;
use pulse::model::read_fit;
use pulse::pulse::search::{search, SearchOutcome};
use pulse::pulse::{Downscaler, LossTarget, OptimizerKind, SearchConfig, Start};
use pulse::stylegan::stylegan2::{Mapping, MappingConfig, Synthesis, SynthesisConfig};
use pulse::stylegan::{Architecture, SynthesisNetwork};
use pulse::weights;
use std::collections::HashMap;
use std::path::PathBuf;
use tch::{nn, Device, Kind, Tensor};

fn tensors(path: &std::path::Path) -> HashMap<String, Tensor> {
    let sd = weights::load(path).unwrap();
    sd.iter().map(|(k, t)| (k.to_string(), t.to_kind(Kind::Float))).collect()
}

fn device() -> Device {
    let device = match std::env::var("PULSE_TEST_DEVICE").as_deref() {
        Ok(d) => pulse::device::parse_device(d).unwrap(),
        Err(_) => Device::Cpu,
    };
    pulse::device::configure(device, pulse::device::Determinism::Deterministic).unwrap();
    device
}

fn measured(what: &str, value: f64) {
    eprintln!("parity_sg2 ({}): {what} {value:.2e}", pulse::device::device_name(device()));
}

/// `max |a - b| / max |b|`.
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shapes");
    let a = a.to_device(Device::Cpu).to_kind(Kind::Double);
    let b = b.to_kind(Kind::Double);
    (&a - &b).abs().max().double_value(&[]) / b.abs().max().double_value(&[]).max(1e-30)
}

/// Forward passes and mappings: relative to the output's largest magnitude.
const FORWARD_TOL: f64 = 1e-4;

/// The generated test generators of make_sg2_fixtures.py: (resolution, channel_base,
/// channel_max, mapping layers, seed).
fn case(name: &str) -> (i64, i64, i64, usize, i64) {
    match name {
        "r32" => (32, 256, 32, 2, 1),
        "r64m3" => (64, 512, 16, 3, 2),
        _ => unreachable!(),
    }
}

/// Tests in this binary run on parallel threads and libtorch has one global generator: whoever
/// seeds it and draws holds this lock.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// `(rand * 2 - 1) * sqrt(3)`: uniform, mean 0, variance 1; the same bits as the script's.
fn unit_uniform(shape: &[i64]) -> Tensor {
    (Tensor::rand(shape, (Kind::Float, Device::Cpu)) * 2.0 - 1.0) * 3f64.sqrt()
}

/// Rebuilds the script's generator: every variable in name order drawn from one seed.
fn generated(name: &str) -> (Mapping, Synthesis, nn::VarStore, f64) {
    let (res, base, cmax, layers, seed) = case(name);
    let vs = nn::VarStore::new(Device::Cpu);
    let mut mapping = Mapping::new(vs.root(), &MappingConfig::with_depth(layers));
    let mut synthesis = Synthesis::new(vs.root(), &SynthesisConfig::with_channels(res, base, cmax));
    let _rng = rng();
    let _seed = pulse::rng::seed(seed);
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut total = 0.0;
    tch::no_grad(|| {
        for (name, mut t) in vars {
            let u = unit_uniform(&t.size());
            let v = if name.starts_with("mapping.fc") && name.ends_with(".weight") {
                u * 100.0
            } else if name.ends_with("affine.bias") {
                u * 0.1 + 1.0
            } else if name.ends_with("noise_strength")
                || name.ends_with("bias")
                || name == "mapping.w_avg"
            {
                u * 0.1
            } else {
                u
            };
            total += v.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
            t.copy_(&v);
        }
    });
    mapping.prepare();
    synthesis.prepare();
    (mapping, synthesis, vs, total)
}

/// The script's inputs: z, W+, the noise maps and the gradient probe.
fn generated_inputs(
    layout: &pulse::stylegan::Layout,
    seed: i64,
) -> (Tensor, Tensor, Vec<Tensor>, Tensor) {
    let _rng = rng();
    let _seed = pulse::rng::seed(seed + 1000);
    let z = unit_uniform(&[3, 512]);
    let w_plus = unit_uniform(&[2, layout.w_rows as i64, 512]) * 0.5;
    let noise: Vec<Tensor> =
        layout.noise_sides.iter().map(|&s| unit_uniform(&[2, 1, s, s])).collect();
    let r = layout.resolution;
    let probe = unit_uniform(&[2, 3, r, r]);
    (z, w_plus, noise, probe)
}

fn check_generated(name: &str) {
    let fx = tensors(&fixture(&format!("sg2/sg2_{name}.safetensors")));
    let (mapping, mut synthesis, _vs, total) = generated(name);
    let sd = weights::load(&fixture(&format!("sg2/sg2_{name}.safetensors"))).unwrap();
    let want_total = sd.get("weights.sum").unwrap().double_value(&[0]);
    assert!(
        total == want_total,
        "{name}: the rebuilt weights differ from the script's (sum {total} vs {want_total})"
    );
    let (res, ..) = case(name);
    assert_eq!(synthesis.layout().resolution, res);
    assert_eq!(synthesis.layout().architecture, Architecture::StyleGan2);
    let (z, w_plus, noise, probe) = generated_inputs(synthesis.layout(), case(name).4);
    assert!(z.equal(&fx["z"]), "{name}: the rebuilt inputs differ from the script's");

    // Mapping and truncation (psi 0.7 towards w_avg, every row).
    let w = tch::no_grad(|| mapping.forward(&z)).unwrap();
    let d = rel_diff(&w, &fx["mapping.w"]);
    measured(&format!("{name}: mapping"), d);
    assert!(d < FORWARD_TOL, "{name}: mapping differs by {d:e}");
    let layout = synthesis.layout().clone();
    let t = pulse::pipelines::generate::truncate(
        &w,
        mapping.w_avg(),
        0.7,
        layout.w_rows as i64,
        layout.truncation_cutoff as i64,
    );
    for row in [0, layout.w_rows as i64 - 1] {
        let d = rel_diff(&t.select(1, row), &fx["mapping.w_psi07"]);
        measured(&format!("{name}: truncation row {row}"), d);
        assert!(d < FORWARD_TOL, "{name}: truncation row {row} differs by {d:e}");
    }

    // Forward and gradients, with every speed rewrite on and off.
    for tuning in [pulse::stylegan::Tuning::ALL_ON, pulse::stylegan::Tuning::ALL_OFF] {
        synthesis.set_tuning(tuning);
        let ws = w_plus.copy().set_requires_grad(true);
        let maps: Vec<Tensor> = noise.iter().map(|n| n.copy().set_requires_grad(true)).collect();
        let image = synthesis.forward(&ws, &maps).unwrap();
        let d = rel_diff(&image, &fx["synthesis.image"]);
        measured(&format!("{name} {tuning:?}: forward"), d);
        assert!(d < FORWARD_TOL, "{name}: forward differs by {d:e}");
        (&image * &probe).sum(Kind::Float).backward();
        let d = rel_diff(&ws.grad(), &fx["grad.w_plus"]);
        measured(&format!("{name}: W+ gradient"), d);
        assert!(d < FORWARD_TOL, "{name}: W+ gradient differs by {d:e}");
        for (i, m) in maps.iter().enumerate() {
            let d = rel_diff(&m.grad(), &fx[&format!("grad.noise.{i}")]);
            assert!(d < FORWARD_TOL, "{name}: noise {i} gradient differs by {d:e}");
        }
    }
}

#[test]
fn generated_32_matches_nvidia_forward_mapping_truncation_and_gradients() {
    check_generated("r32");
}

#[test]
fn generated_64_three_mapping_layers_matches_nvidia() {
    check_generated("r64m3");
}

/// The layout NVIDIA's generator has at 1024: 18 W+ rows, 17 noise maps, every row truncated,
/// the last map PULSE's bad one.
#[test]
fn ffhq_layout_is_nvidias() {
    let layout = SynthesisConfig::ffhq().layout();
    assert_eq!(layout.w_rows, 18);
    let mut sides = vec![4];
    for s in [8, 16, 32, 64, 128, 256, 512, 1024] {
        sides.extend([s, s]);
    }
    assert_eq!(layout.noise_sides, sides);
    assert_eq!(layout.truncation_cutoff, 18);
    assert_eq!(layout.default_bad_noise, [16]);
    assert_eq!(SynthesisConfig::ffhq().channels, [512, 512, 512, 512, 512, 256, 128, 64, 32]);
}

/// The shared reference fixtures (`$PULSE_SG2_REFERENCE`, else `../shared/fixtures/reference-sg2`);
/// the tests that read them are `#[ignore]`d, and fail, not pass, when asked for without them.
fn reference() -> PathBuf {
    let dir = match std::env::var_os("PULSE_SG2_REFERENCE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/reference-sg2"),
    };
    assert!(
        dir.join("sg2_cases.json").is_file(),
        "needs the shared reference fixtures: {} has no sg2_cases.json (set PULSE_SG2_REFERENCE)",
        dir.display()
    );
    dir
}

/// A generator of the shared fixtures, loaded from its weights file by the model loader's code.
fn shared_generator(
    dir: &std::path::Path,
    name: &str,
) -> (Box<dyn pulse::stylegan::MappingNetwork>, Box<dyn SynthesisNetwork>, Vec<nn::VarStore>) {
    let path = dir.join(format!("sg2_{name}_weights.safetensors"));
    let sd = weights::load(&path).unwrap();
    assert_eq!(Architecture::of_synthesis(&sd), Architecture::StyleGan2);
    let (s, vs1) = Architecture::StyleGan2.build_synthesis(&sd, &path, device()).unwrap();
    let (m, vs2) = Architecture::StyleGan2.build_mapping(&sd, &path, device()).unwrap();
    (m, s, vec![vs1, vs2])
}

#[test]
#[ignore = "needs ../shared/fixtures/reference-sg2"]
fn shared_generators_match_nvidia() {
    let dir = reference();
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sg2_cases.json")).unwrap()).unwrap();
    let dev = device();
    for name in ["v64m2", "v256", "v1024"] {
        let (mapping, synthesis, _vs) = shared_generator(&dir, name);
        let layout = synthesis.layout().clone();
        let sides: Vec<i64> = cases[name]["noise_sides"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(layout.noise_sides, sides, "{name}");
        assert_eq!(layout.w_rows as u64, cases[name]["num_ws"].as_u64().unwrap(), "{name}");
        let fx = tensors(&dir.join(format!("sg2_{name}_ref.safetensors")));
        let w = tch::no_grad(|| mapping.forward(&fx["z"].to_device(dev))).unwrap();
        let d = rel_diff(&w, &fx["mapping.w"]);
        measured(&format!("shared {name}: mapping"), d);
        assert!(d < FORWARD_TOL, "{name}: mapping differs by {d:e}");
        let w_avg = mapping.stored_w_avg().unwrap();
        assert!(w_avg.to_device(Device::Cpu).equal(&fx["w_avg"]), "{name}: w_avg");
        let t = pulse::pipelines::generate::truncate(
            &w,
            &w_avg,
            0.7,
            layout.w_rows as i64,
            layout.truncation_cutoff as i64,
        );
        // The fixture holds one row: NVIDIA truncates every row alike.
        let want = &fx["mapping.w_psi07"];
        let d = rel_diff(&t.select(1, 0), want).max(rel_diff(&t.select(1, -1), want));
        measured(&format!("shared {name}: truncation"), d);
        assert!(d < FORWARD_TOL, "{name}: truncation differs by {d:e}");

        let noise: Vec<Tensor> = (0..layout.noise_maps())
            .map(|i| fx[&format!("synthesis.noise.{i}")].to_device(dev))
            .collect();
        let image =
            tch::no_grad(|| synthesis.forward(&fx["synthesis.w_plus"].to_device(dev), &noise))
                .unwrap()
                .to_device(Device::Cpu);
        let (got, want) = match fx.get("synthesis.image") {
            Some(want) => (image.shallow_clone(), want.shallow_clone()),
            None => (
                image.narrow(2, 480, 64).narrow(3, 480, 64),
                fx["synthesis.image_crop"].shallow_clone(),
            ),
        };
        let d = rel_diff(&got, &want);
        measured(&format!("shared {name}: forward"), d);
        assert!(d < FORWARD_TOL, "{name}: forward differs by {d:e}");
        let factor = layout.resolution / 32;
        let key = format!("synthesis.image_d{factor}");
        if let Some(want) = fx.get(&key) {
            let down = Downscaler::new(factor, Device::Cpu).unwrap();
            let got = down.forward(&((&image + 1.0) / 2.0)).unwrap();
            let d = rel_diff(&got, want);
            measured(&format!("shared {name}: downscaled"), d);
            assert!(d < FORWARD_TOL, "{name}: downscaled image differs by {d:e}");
        }
    }
}

/// One PULSE case of the shared fixtures, from its recorded start.
fn run_shared_case(
    dir: &std::path::Path,
    name: &str,
) -> (HashMap<String, Tensor>, SearchOutcome, Vec<Tensor>) {
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sg2_cases.json")).unwrap()).unwrap();
    let case = &cases[format!("pulse_{name}")];
    let fx = tensors(&dir.join(format!("sg2_pulse_{name}.safetensors")));
    let dev = device();
    let (_m, synthesis, _vs) = shared_generator(dir, "v1024");
    let fit = read_fit(&dir.join("sg2_v1024_fit.pt"), dev).unwrap();
    let bad: Vec<usize> = case["bad_noise_layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(bad, synthesis.layout().default_bad_noise, "the model's default bad noise map");
    let config = SearchConfig {
        steps: case["steps"].as_u64().unwrap() as usize,
        lr: case["lr"].as_f64().unwrap(),
        optimizer: case["optimizer"].as_str().unwrap().parse::<OptimizerKind>().unwrap(),
        schedule: case["schedule"].as_str().unwrap().parse().unwrap(),
        loss: case["loss"].as_str().unwrap().parse().unwrap(),
        eps: case["eps"].as_f64().unwrap(),
        noise: case["noise_type"].as_str().unwrap().parse().unwrap(),
        trainable_noise: case["trainable_noise_layers"].as_u64().unwrap() as usize,
        bad_noise_layers: Some(bad),
        tile_latent: case["tile_latent"].as_bool().unwrap(),
        keep_intermediate: false,
        keep_final: true,
        cuda_graph: false,
        ..SearchConfig::default()
    };
    config.check(synthesis.layout()).unwrap();
    let target =
        pulse::imageio::read_target(&dir.join(case["ref"].as_str().unwrap()), 1024).unwrap();
    let target = LossTarget {
        image: target.rgb.unsqueeze(0).to_device(dev),
        weight: target.alpha.map(|a| a.unsqueeze(0).to_device(dev)),
    };
    let noise_fx = tensors(&dir.join("sg2_noise_v1024.safetensors"));
    let noise: Vec<Tensor> = (0..synthesis.layout().noise_maps())
        .map(|i| noise_fx[&format!("noise.{i}")].shallow_clone())
        .collect();
    let start = Start {
        latent: fx["init.latent"].shallow_clone(),
        noise: noise.iter().map(|n| n.shallow_clone()).collect(),
    };
    let mut outcomes =
        search(synthesis.as_ref(), &fit, &config, &target, start, dev, &mut |_| true)
            .unwrap()
            .completed()
            .unwrap();
    (fx, outcomes.pop().unwrap(), noise)
}

fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / (want.abs() + 1e-4)
}

/// History rows (TOTAL, GEOCROSS, L2) within `row_tol[i]` (else `every_row`), the final latent's
/// and the trainable noise maps' displacement within `displacement_tol`.
fn check_shared_case(name: &str, row_tol: &[f64], every_row: f64, displacement_tol: f64) {
    let dir = reference();
    let (fx, out, noise) = run_shared_case(&dir, name);
    let hist = &fx["history"];
    assert_eq!(out.history.len() as i64, hist.size()[0]);
    let mut worst = 0f64;
    for (i, h) in out.history.iter().enumerate() {
        let want: Vec<f64> = Vec::try_from(hist.get(i as i64).to_kind(Kind::Double)).unwrap();
        let got = [h.total, h.terms[1], h.terms[0]];
        let tol = row_tol.get(i).copied().unwrap_or(every_row);
        for c in 0..3 {
            let r = rel(got[c], want[c]);
            worst = worst.max(r);
            assert!(
                r <= tol,
                "{name}: history row {i} column {c}: got {} want {} ({r} > {tol})",
                got[c],
                want[c]
            );
        }
    }
    measured(&format!("shared pulse {name}: worst history relative error"), worst);
    let init = &fx["init.latent"];
    let (final_latent, final_noise) = out.final_state.as_ref().expect("keep_final");
    let want = &fx["final.latent"];
    let d = (final_latent - want).norm().double_value(&[]) / (want - init).norm().double_value(&[]);
    measured(&format!("shared pulse {name}: final latent displacement"), d);
    assert!(d <= displacement_tol, "{name}: final latent displaced by {d} > {displacement_tol}");
    let flat = |maps: &[Tensor]| {
        Tensor::cat(&maps.iter().take(5).map(|m| m.flatten(0, -1)).collect::<Vec<_>>(), 0)
    };
    let want =
        flat(&(0..5).map(|l| fx[&format!("final.noise.{l}")].shallow_clone()).collect::<Vec<_>>());
    let d = (flat(final_noise) - &want).norm().double_value(&[])
        / (&want - flat(&noise)).norm().double_value(&[]);
    measured(&format!("shared pulse {name}: trainable noise displacement"), d);
    assert!(d <= 0.3, "{name}: trainable noise displaced by {d}");
    // The bad map stays zero; the others are the start's.
    assert_eq!(final_noise[16].abs().max().double_value(&[]), 0.0);
    assert!(final_noise[10].equal(&noise[10]));
}

#[test]
#[ignore = "needs ../shared/fixtures/reference-sg2"]
fn shared_pulse_default_case_matches_reference() {
    check_shared_case("default", &[1e-4, 1e-3], 5e-2, 0.15);
}

#[test]
#[ignore = "needs ../shared/fixtures/reference-sg2"]
fn shared_pulse_alpha_sgd_case_matches_reference() {
    check_shared_case("alpha_sgd", &[], 2e-3, 0.03);
}

/// A trainable noise map is fed to the synthesis (changing it changes the image) and receives a
/// gradient through the search's loss: the defect of the public PULSE+StyleGAN2 ports, which
/// optimized noise the generator never saw.
#[test]
fn trainable_noise_changes_the_image_and_receives_a_gradient() {
    let _seed = pulse::rng::seed(0);
    let (_m, synthesis, _vs, _) = generated("r32");
    let layout = synthesis.layout().clone();
    let (_, w_plus, noise, _) = generated_inputs(&layout, 1);
    let w_plus = w_plus.narrow(0, 0, 1);
    let noise: Vec<Tensor> = noise.iter().map(|n| n.narrow(0, 0, 1)).collect();
    for i in 0..layout.noise_maps() {
        let mut other: Vec<Tensor> = noise.iter().map(|n| n.shallow_clone()).collect();
        other[i] = noise[i].zeros_like();
        let a = tch::no_grad(|| synthesis.forward(&w_plus, &noise)).unwrap();
        let b = tch::no_grad(|| synthesis.forward(&w_plus, &other)).unwrap();
        assert!(rel_diff(&a, &b) > 1e-4, "noise map {i} does not change the image");
    }
    // Through a real search step: the trainable maps move, the others do not.
    let _rng = rng();
    let fit = pulse::pulse::GaussianFit::random(Device::Cpu);
    let config = SearchConfig {
        steps: 2,
        trainable_noise: 3,
        bad_noise_layers: None,
        keep_final: true,
        ..SearchConfig::default()
    };
    let start = Start::random(3, &layout, false);
    let start_noise: Vec<Tensor> = start.noise.iter().map(|n| n.copy()).collect();
    let target =
        LossTarget { image: Tensor::rand([1, 3, 8, 8], (Kind::Float, Device::Cpu)), weight: None };
    let out = search(&synthesis, &fit, &config, &target, start, Device::Cpu, &mut |_| true)
        .unwrap()
        .completed()
        .unwrap()
        .pop()
        .unwrap();
    let (_, final_noise) = out.final_state.unwrap();
    for i in 0..layout.noise_maps() {
        let moved = !final_noise[i].equal(&start_noise[i]);
        let bad = layout.default_bad_noise.contains(&i);
        assert_eq!(moved, i < 3 || bad, "noise map {i}: moved {moved}");
    }
    assert_eq!(final_noise[layout.noise_maps() - 1].abs().max().double_value(&[]), 0.0);
}
