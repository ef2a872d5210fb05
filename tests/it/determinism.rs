//! Reproducibility on the test device (`PULSE_TEST_DEVICE`, the CPU by default;
//! scripts/gpu-check.sh runs this on CUDA): a search, an embedding and a render repeat bit for
//! bit; the CUDA-graph path gives the eager path's results (on the CPU the switch falls back to
//! the eager path); and libtorch's deterministic mode refuses none of their ops on the device
//! (it raises an error for an op without a deterministic CUDA kernel).

use crate::common::{face, fixture, pulse, read_json, s, TestDir};
use pulse::device::{configure, Determinism};
use pulse::editing::embed::{embed, EmbedNoise, EmbedOptions};
use pulse::model::{read_fit, Model};
use pulse::pulse::search::{search, SearchOutcome, GRAPH_WARMUP_STEPS};
use pulse::pulse::{LossTarget, Outcome, SearchConfig, Start};
use pulse::stylegan::stylegan1::{build_synthesis, Synthesis};
use pulse::stylegan::Tuning;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// The device under test, set up as the command line sets it up (reproducible).
fn device() -> Device {
    let device = match std::env::var("PULSE_TEST_DEVICE").as_deref() {
        Ok(d) => pulse::device::parse_device(d).unwrap(),
        Err(_) => Device::Cpu,
    };
    configure(device, Determinism::Deterministic).unwrap();
    device
}

/// Prints a measured figure (`-- --nocapture` shows them).
fn measured(what: &str, value: f64) {
    eprintln!("determinism ({}): {what} {value:.2e}", pulse::device::device_name(device()));
}

fn network(device: Device) -> (Synthesis, nn::VarStore) {
    let path = fixture("synthesis_128_c32.pt");
    build_synthesis(&pulse::weights::load(&path).unwrap(), &path, device).unwrap()
}

/// Two 32x32 faces for the 128x128 network, stacked.
fn targets(device: Device) -> LossTarget {
    let read = |name: &str| {
        pulse::imageio::read_target(Path::new(&face(name)), 128).unwrap().rgb.unsqueeze(0)
    };
    LossTarget {
        image: Tensor::cat(&[read("astronaut32.png"), read("cameraman32.png")], 0)
            .to_device(device),
        weight: None,
    }
}

/// A batch of two searches of `steps` steps (enough for a capture and several replays), with
/// the animation frames and the final state kept so every output is compared.
fn run(
    synthesis: &Synthesis,
    optimizer: &str,
    cuda_graph: bool,
    steps: usize,
) -> Vec<SearchOutcome> {
    let dev = device();
    let fit = read_fit(&fixture("gaussian_fit_ffhq.pt"), dev).unwrap();
    let config = SearchConfig {
        steps,
        optimizer: optimizer.parse().unwrap(),
        keep_intermediate: true,
        keep_final: true,
        cuda_graph,
        bad_noise_layers: Some(vec![]),
        ..SearchConfig::default()
    };
    let starts: Vec<Start> =
        (0..2).map(|i| Start::random(40 + i, synthesis.layout(), false)).collect();
    search(synthesis, &fit, &config, &targets(dev), Start::batch(&starts), dev, &mut |_| true)
        .unwrap()
        .completed()
        .unwrap()
}

/// Largest relative difference of the history rows and largest absolute difference of the
/// images, latents, noise, final state and frames of two runs (0 when they agree bit for bit).
fn differences(a: &[SearchOutcome], b: &[SearchOutcome]) -> (f64, f64) {
    let max_abs = |x: &Tensor, y: &Tensor| {
        (x.to_kind(Kind::Double) - y.to_kind(Kind::Double)).abs().max().double_value(&[])
    };
    let (mut rel, mut abs) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.history.len(), y.history.len());
        for (h, g) in x.history.iter().zip(&y.history) {
            let row = std::iter::once((h.total, g.total))
                .chain(h.terms.iter().copied().zip(g.terms.iter().copied()));
            for (p, q) in row {
                rel = rel.max((p - q).abs() / (p.abs() + 1e-12));
            }
        }
        let mut pairs = vec![(&x.image, &y.image), (&x.latent, &y.latent), (&x.w_plus, &y.w_plus)];
        pairs.extend(x.noise.iter().zip(&y.noise));
        pairs.extend(x.intermediate.iter().zip(&y.intermediate));
        let (fx, fy) = (x.final_state.as_ref().unwrap(), y.final_state.as_ref().unwrap());
        pairs.push((&fx.0, &fy.0));
        pairs.extend(fx.1.iter().zip(&fy.1));
        assert_eq!(x.intermediate.len(), y.intermediate.len());
        for (p, q) in pairs {
            abs = abs.max(max_abs(p, q));
        }
        assert_eq!(x.best_step, y.best_step);
    }
    (rel, abs)
}

#[test]
fn the_same_search_twice_gives_the_same_bits() {
    let (synthesis, _vs) = network(device());
    for optimizer in ["adam", "sgdm"] {
        let (a, b) = (run(&synthesis, optimizer, false, 6), run(&synthesis, optimizer, false, 6));
        let (rel, abs) = differences(&a, &b);
        measured(&format!("{optimizer}: two runs, history / tensors"), rel.max(abs));
        assert_eq!((rel, abs), (0.0, 0.0), "{optimizer}: two identical searches differ");
    }
}

/// The graph path: the warm-up steps, the capture and the replays (on CUDA) compute what the
/// eager loop computes; on the CPU the switch falls back to the eager loop itself.
#[test]
fn cuda_graph_switch_gives_the_eager_results() {
    let dev = device();
    let (synthesis, _vs) = network(dev);
    let steps = GRAPH_WARMUP_STEPS + 4;
    for optimizer in ["adam", "sgd"] {
        let eager = run(&synthesis, optimizer, false, steps);
        let graph = run(&synthesis, optimizer, true, steps);
        let (rel, abs) = differences(&eager, &graph);
        measured(&format!("{optimizer}: graph vs eager, history relative"), rel);
        measured(&format!("{optimizer}: graph vs eager, tensors absolute"), abs);
        if dev.is_cuda() {
            // The replayed kernels are the captured eager ones on the same memory pool layout;
            // rounding could differ only if libtorch chose other kernels. Tolerances of the
            // batch comparisons (tests/it/cli_upsample.rs), to be confirmed by the first GPU run.
            assert!(
                rel < 1e-4 && abs < 2e-3,
                "{optimizer}: graph differs from eager: {rel} / {abs}"
            );
            let again = run(&synthesis, optimizer, true, steps);
            assert_eq!(differences(&graph, &again), (0.0, 0.0), "two graph runs differ");
        } else {
            assert_eq!((rel, abs), (0.0, 0.0), "{optimizer}: the CPU fallback differs from eager");
        }
    }
    // Stopping between two replayed steps ends the search as interrupted.
    let fit = read_fit(&fixture("gaussian_fit_ffhq.pt"), dev).unwrap();
    let config = SearchConfig { steps, cuda_graph: true, ..SearchConfig::default() };
    let start = Start::random(7, synthesis.layout(), false);
    let target = LossTarget { image: targets(dev).image.narrow(0, 0, 1), weight: None };
    let mut seen = 0;
    let outcome = search(&synthesis, &fit, &config, &target, start, dev, &mut |p| {
        seen = p.step + 1;
        p.step < GRAPH_WARMUP_STEPS + 1
    })
    .unwrap();
    assert!(matches!(outcome, Outcome::Interrupted));
    assert_eq!(seen, GRAPH_WARMUP_STEPS + 2);
}

/// Renders repeat exactly, and the untuned reference forms (nearest upsample, PReLU, instance
/// norm) differentiate under deterministic mode too (`pulse bench --untuned` runs them).
#[test]
fn renders_repeat_and_every_form_of_the_network_differentiates() {
    let dev = device();
    let (mut synthesis, _vs) = network(dev);
    let layers = synthesis.layout().w_rows as i64;
    let _seed = pulse::rng::seed(9);
    let w = Tensor::randn([1, layers, 512], (Kind::Float, Device::Cpu)).to_device(dev);
    let noise: Vec<Tensor> = Start::random(3, synthesis.layout(), false)
        .noise
        .iter()
        .map(|n| n.to_device(dev))
        .collect();
    let render =
        |s: &Synthesis| tch::no_grad(|| s.forward(&w, &noise).unwrap()).to_device(Device::Cpu);
    assert!(render(&synthesis).equal(&render(&synthesis)), "two renders differ");
    for tuning in [Tuning::ALL_ON, Tuning::ALL_OFF] {
        synthesis.set_tuning(tuning);
        let w = w.copy().set_requires_grad(true);
        let out = synthesis.forward(&w, &noise).unwrap();
        let grads = || {
            Tensor::run_backward(&[out.square().mean(Kind::Float)], &[&w], true, false)
                .remove(0)
                .to_device(Device::Cpu)
        };
        let (g1, g2) = (grads(), grads());
        assert!(g1.equal(&g2), "{tuning:?}: two backward passes differ");
        assert!(g1.abs().sum(Kind::Double).double_value(&[]) > 0.0);
    }
}

/// A torchvision-vgg16-shaped state dict with narrow random layers (the keys the perceptual
/// term reads).
fn tiny_vgg(t: &TestDir) -> PathBuf {
    let path = t.path("vgg.safetensors");
    let _seed = pulse::rng::seed(5);
    let mut pairs = vec![];
    let mut cin = 3;
    for index in [0, 2, 5, 7, 10, 12, 14, 17, 19] {
        let cout = 4;
        let w = Tensor::randn([cout, cin, 3, 3], (Kind::Float, Device::Cpu)) * 0.3;
        pairs.push((format!("features.{index}.weight"), w));
        pairs.push((
            format!("features.{index}.bias"),
            Tensor::zeros([cout], (Kind::Float, Device::Cpu)),
        ));
        cin = cout;
    }
    pulse::weights::save_safetensors(&pulse::weights::StateDict::from_pairs(pairs), &path, None)
        .unwrap();
    path
}

/// Embedding with the perceptual term differentiates through the VGG features and the resize to
/// 256 (an average pool from the 1024 network, an interpolation up from the 128 one): twice,
/// the same bits.
#[test]
fn embedding_with_the_perceptual_term_repeats() {
    let dev = device();
    let t = TestDir::new();
    let vgg = tiny_vgg(&t);
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/test-1024");
    for dir in [bundled, t.model_128()] {
        let model = Model::load(&dir, dev).unwrap();
        let side = model.layout().resolution;
        let _seed = pulse::rng::seed(1);
        let photo = Tensor::rand([3, side, side], (Kind::Float, Device::Cpu));
        let opts = EmbedOptions {
            steps: 2,
            perceptual: Some(vgg.clone()),
            noise: EmbedNoise::Random { seed: 2 },
            mean_samples: 64,
            ..EmbedOptions::default()
        };
        let once = || embed(&model, &photo, &opts, &mut |_| true).unwrap().completed().unwrap();
        let (a, b) = (once(), once());
        assert!(a.latent.w_plus.equal(&b.latent.w_plus), "{side}: two embeddings differ");
        assert!(a.history.iter().all(|h| h.total > h.mse));
    }
}

/// `--nondeterministic` and `--cuda-graph` say what they do and the report records what ran: on
/// the CPU neither changes anything (the command says so); on CUDA both are in effect.
#[test]
fn nondeterministic_and_cuda_graph_flags_are_reported() {
    let t = TestDir::new();
    let report = t.path("report.json");
    let device = std::env::var("PULSE_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
    let run = pulse()
        .args(["upsample", &face("astronaut32.png"), "--steps", "5", "--seed", "1", "-q"])
        .args(["--nondeterministic", "--cuda-graph", "--device", &device])
        .args(["--model", s(&t.model_128()), "-o", s(&t.path("out")), "--report", s(&report)])
        .assert()
        .code(predicates::prelude::predicate::in_iter([0, 3]));
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    let r = read_json(&report);
    let cuda = r["settings"]["device"].as_str().unwrap().starts_with("cuda");
    assert_eq!(r["settings"]["deterministic"], !cuda);
    assert_eq!(r["settings"]["cuda_graph"], cuda);
    let said = if cuda { "nondeterministic kernels on" } else { "no effect on the CPU" };
    assert!(stderr.contains(said), "{stderr}");
}
