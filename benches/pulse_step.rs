//! Criterion benchmarks of the hot paths: synthesis forward, forward+backward, one full PULSE
//! step, the downscaler and the mapping network, on a small network (the 128x128 test fixture)
//! and on the FFHQ-size network with random weights. An FFHQ step takes about a second on two
//! CPU cores, so samples are few and short; `cargo bench --bench pulse_step -- small` runs only
//! the small ones. docs/performance.md records the figures.
use criterion::{criterion_group, BenchmarkId, Criterion};
use pulse::pulse::search::{search, SearchConfig, Start};
use pulse::pulse::{Downscaler, GaussianFit, LossTarget};
use pulse::stylegan::stylegan1::{Mapping, Synthesis, SynthesisConfig};
use pulse::stylegan::{stylegan2, Layout, SynthesisNetwork, LATENT_DIM};
use std::path::Path;
use std::time::Duration;
use tch::{nn, Device, Kind, Tensor};

type Net = Box<dyn SynthesisNetwork>;

fn networks() -> Vec<(&'static str, Net, Vec<nn::VarStore>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/synthesis_128_c32.pt");
    let mut nets = vec![];
    if let Ok(sd) = pulse::weights::load(&path) {
        let (s, vs) = pulse::stylegan::stylegan1::build_synthesis(&sd, &path, Device::Cpu)
            .expect("fixture network");
        nets.push(("small-128", Box::new(s) as Net, vec![vs]));
    }
    let (s, vs) = Synthesis::random(&SynthesisConfig::ffhq(), Device::Cpu, 0);
    nets.push(("ffhq-1024", Box::new(s), vec![vs]));
    let (s, vs) = stylegan2::Synthesis::random(&stylegan2::SynthesisConfig::ffhq(), Device::Cpu, 0);
    nets.push(("sg2-ffhq-1024", Box::new(s), vec![vs]));
    nets
}

fn inputs(layout: &Layout) -> (Tensor, Vec<Tensor>) {
    let _seed = pulse::rng::seed(3);
    let w_plus = Tensor::randn([1, layout.w_rows as i64, LATENT_DIM], (Kind::Float, Device::Cpu));
    (w_plus, Start::random(4, layout, false).noise)
}

fn synthesis(c: &mut Criterion) {
    let _seed = pulse::rng::seed(0);
    for (name, net, _vs) in networks() {
        let (w_plus, noise) = inputs(net.layout());
        let mut g = c.benchmark_group("synthesis");
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        g.bench_function(BenchmarkId::new("forward", name), |b| {
            b.iter(|| tch::no_grad(|| net.forward(&w_plus, &noise).unwrap()))
        });
        let w = w_plus.copy().set_requires_grad(true);
        g.bench_function(BenchmarkId::new("forward_backward", name), |b| {
            b.iter(|| {
                let out = net.forward(&w, &noise).unwrap();
                out.square().mean(Kind::Float).backward();
            })
        });
        let fit = GaussianFit::random(Device::Cpu);
        let target = LossTarget {
            image: Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu)),
            weight: None,
        };
        let config = SearchConfig { steps: 1, ..SearchConfig::default() };
        g.bench_function(BenchmarkId::new("pulse_step", name), |b| {
            b.iter(|| {
                let start = Start::random(5, net.layout(), false);
                search(net.as_ref(), &fit, &config, &target, start, Device::Cpu, &mut |_| true)
                    .unwrap()
            })
        });
        g.finish();
    }
}

fn downscaler_and_mapping(c: &mut Criterion) {
    let _seed = pulse::rng::seed(0);
    let mut g = c.benchmark_group("parts");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let x = Tensor::rand([1, 3, 1024, 1024], (Kind::Float, Device::Cpu));
    let down = Downscaler::new(32, Device::Cpu).expect("a power of two");
    g.bench_function("downscale_1024_to_32", |b| {
        b.iter(|| tch::no_grad(|| down.forward(&x).unwrap()))
    });
    let xg = x.copy().set_requires_grad(true);
    g.bench_function("downscale_1024_to_32_backward", |b| {
        b.iter(|| down.forward(&xg).unwrap().square().mean(Kind::Float).backward())
    });
    let mut vs = nn::VarStore::new(Device::Cpu);
    let mut mapping = Mapping::new(vs.root());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/test-1024/mapping.pt");
    if let Ok(sd) = pulse::weights::load(&path) {
        pulse::weights::load_into(&mut vs, &sd).expect("mapping fixture");
    }
    mapping.prepare();
    for batch in [1i64, 1000] {
        let z = Tensor::randn([batch, LATENT_DIM], (Kind::Float, Device::Cpu));
        g.bench_function(BenchmarkId::new("mapping", batch), |b| {
            b.iter(|| tch::no_grad(|| mapping.forward(&z).unwrap()))
        });
    }
    g.finish();
}

criterion_group!(benches, downscaler_and_mapping, synthesis);

fn main() {
    pulse::system::tune_allocator();
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
}
