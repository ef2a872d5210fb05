//! The metrics of `pulse eval` against the packages users compare with: LPIPS against the `lpips`
//! package (tests/fixtures/make_lpips_fixtures.py: random full-size VGG16 weights rebuilt here
//! bit for bit, the real linear layers), PSNR and SSIM against scikit-image
//! (tests/fixtures/make_metric_fixtures.py).
use pulse::metrics::{self, lpips::Lpips};
use pulse::weights::{self, StateDict};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn tensors(path: &std::path::Path) -> HashMap<String, Tensor> {
    let sd = weights::load(path).unwrap();
    sd.iter().map(|(k, t)| (k.to_string(), t.to_kind(Kind::Float))).collect()
}

fn device() -> Device {
    match std::env::var("PULSE_TEST_DEVICE").as_deref() {
        Ok(d) => pulse::device::parse_device(d).unwrap(),
        Err(_) => Device::Cpu,
    }
}

/// Tests in this binary run on parallel threads and libtorch has one global generator: whoever
/// seeds it and draws holds this lock.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// torchvision's VGG16 features: (index, in, out) of each convolution.
const VGG16: [(usize, i64, i64); 13] = [
    (0, 3, 64),
    (2, 64, 64),
    (5, 64, 128),
    (7, 128, 128),
    (10, 128, 256),
    (12, 256, 256),
    (14, 256, 256),
    (17, 256, 512),
    (19, 512, 512),
    (21, 512, 512),
    (24, 512, 512),
    (26, 512, 512),
    (28, 512, 512),
];

/// The script's random VGG16: seed 7, per convolution in index order the weight
/// `(rand * 2 - 1) * sqrt(3) * sqrt(2 / fan_in)` then the bias `(rand * 2 - 1) * sqrt(3) * 0.1`.
/// Returns it and the float64 sum of every drawn tensor.
fn random_vgg16() -> (StateDict, f64) {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let _seed = pulse::rng::seed(7);
    let sq3 = 3f64.sqrt();
    let mut pairs = vec![];
    let mut total = 0.0;
    for (i, cin, cout) in VGG16 {
        let fan_in = (cin * 9) as f64;
        let w = (Tensor::rand([cout, cin, 3, 3], (Kind::Float, Device::Cpu)) * 2.0 - 1.0)
            * sq3
            * (2.0 / fan_in).sqrt();
        let b = (Tensor::rand([cout], (Kind::Float, Device::Cpu)) * 2.0 - 1.0) * sq3 * 0.1;
        total += w.to_kind(Kind::Double).sum(Kind::Double).double_value(&[])
            + b.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
        pairs.push((format!("features.{i}.weight"), w));
        pairs.push((format!("features.{i}.bias"), b));
    }
    (StateDict::from_pairs(pairs), total)
}

#[test]
fn lpips_matches_the_lpips_package() {
    let fx = tensors(&fixture("lpips/lpips.safetensors"));
    let (sd, total) = random_vgg16();
    let want_total =
        fx["weights.sum_hi"].double_value(&[0]) + fx["weights.sum_lo"].double_value(&[0]);
    assert!(
        (total - want_total).abs() < 1e-6 * want_total.abs().max(1.0),
        "the random VGG16 was not rebuilt: sum {total}, the script's {want_total}"
    );
    let dev = device();
    let net = Lpips::from_vgg16(&sd, dev).unwrap();
    for case in ["square", "odd"] {
        // The package takes [-1,1]; pulse's images are [0,1].
        let to01 = |t: &Tensor| ((t + 1.0) / 2.0).to_device(dev);
        let in0 = to01(&fx[&format!("{case}.in0")]).set_requires_grad(true);
        let in1 = to01(&fx[&format!("{case}.in1")]);
        let d = net.distance(&in0, &in1);
        let got = Vec::<f64>::try_from(d.to_device(Device::Cpu).to_kind(Kind::Double)).unwrap();
        let want =
            Vec::<f64>::try_from(fx[&format!("{case}.lpips")].to_kind(Kind::Double)).unwrap();
        println!("{case}: pulse {got:?}, lpips package {want:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{case}: LPIPS {g} vs the package's {w}");
        }
        // d/d(in0) in [0,1] is twice the package's d/d(in0) in [-1,1].
        let grad = Tensor::run_backward(&[d.sum(Kind::Float)], &[&in0], false, false)
            .remove(0)
            .to_device(Device::Cpu)
            / 2.0;
        let want_grad = &fx[&format!("{case}.grad")];
        let scale = want_grad.abs().max().double_value(&[]);
        let err = (&grad - want_grad).abs().max().double_value(&[]);
        println!("{case}: gradient max difference {err:.3e} (max |grad| {scale:.3e})");
        assert!(err < 1e-4 * scale, "{case}: gradient differs by {err} (scale {scale})");
    }
}

#[test]
fn lpips_of_an_image_with_itself_is_zero_and_it_grows_with_change() {
    let _seed = pulse::rng::seed(0);
    let (sd, _) = random_vgg16();
    let net = Lpips::from_vgg16(&sd, Device::Cpu).unwrap();
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let a = Tensor::rand([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    let near =
        (&a + Tensor::randn([1, 3, 32, 32], (Kind::Float, Device::Cpu)) * 0.02).clamp(0.0, 1.0);
    let far =
        (&a + Tensor::randn([1, 3, 32, 32], (Kind::Float, Device::Cpu)) * 0.2).clamp(0.0, 1.0);
    let d = |b: &Tensor| net.distance(&a, b).double_value(&[0]);
    assert!(d(&a).abs() < 1e-7);
    assert!(0.0 < d(&near) && d(&near) < d(&far), "{} {}", d(&near), d(&far));
}

#[test]
fn psnr_and_ssim_match_scikit_image() {
    let fx = tensors(&fixture("metrics/skimage.safetensors"));
    let mut cases: Vec<&String> = fx.keys().filter(|k| k.ends_with(".truth")).collect();
    cases.sort();
    assert!(cases.len() >= 3);
    for key in cases {
        let case = key.trim_end_matches(".truth");
        let truth = &fx[key];
        let test = &fx[&format!("{case}.test")];
        let (psnr, ssim) = (metrics::psnr(truth, test), metrics::ssim(truth, test));
        let want_psnr = fx[&format!("{case}.psnr")].double_value(&[0]);
        let want_ssim = fx[&format!("{case}.ssim")].double_value(&[0]);
        println!("{case}: PSNR {psnr:.6} (skimage {want_psnr:.6}), SSIM {ssim:.6} (skimage {want_ssim:.6})");
        assert!((psnr - want_psnr).abs() < 1e-4, "{case}: PSNR {psnr} vs {want_psnr}");
        assert!((ssim - want_ssim).abs() < 1e-4, "{case}: SSIM {ssim} vs {want_ssim}");
    }
}
