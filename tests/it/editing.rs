//! The editing library (docs/editing.md): direction arithmetic, layer masks, the direction file's
//! metadata checks, photo embedding and RGBA target building, on the 128x128 fixture network.

use crate::common::*;
use pulse::editing::direction::Direction;
use pulse::editing::edit::{self, apply, parse_scales, scale_label, LayerMask};
use pulse::editing::embed::{self, EmbedNoise, EmbedOptions, MeanSource};
use pulse::editing::target::{self, Region, RegionMap, TargetColours};
use pulse::editing::vgg::Vgg16Features;
use pulse::latent::LatentFile;
use pulse::model::Model;
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn model_128(t: &TestDir) -> Model {
    Model::load(&t.model_128(), Device::Cpu).unwrap()
}

/// A latent of `model` drawn like a PULSE start: w = leaky_relu(z * std + mean, 0.2), N(0,1) noise.
fn random_latent(model: &Model, seed: i64) -> LatentFile {
    let _seed = pulse::rng::seed(seed);
    let layers = model.layout().w_rows;
    let fit = model.fit.as_ref().unwrap();
    let z = Tensor::randn([1, layers as i64, 512], (Kind::Float, Device::Cpu));
    let w = pulse::pulse::search::to_w_plus(&z, fit, layers).unwrap().squeeze_dim(0);
    let noise = model.layout().random_noise();
    LatentFile::new(w, None, noise, &model.sha256)
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn direction_between(a: &LatentFile, b: &LatentFile) -> Direction {
    Direction::from_latents(&[(a, b)], &[("a".into(), "b".into())]).unwrap()
}

#[test]
fn scale_zero_renders_the_latent_exactly() {
    let t = TestDir::new();
    let model = model_128(&t);
    let (a, b) = (random_latent(&model, 1), random_latent(&model, 2));
    let direction = direction_between(&a, &b);
    let mask = LayerMask::all(model.layout().w_rows);
    let edits =
        edit::edit(&model, &a, Path::new("a"), &direction, Path::new("d"), &[0.0, 1.0], &mask)
            .unwrap();
    let (w, noise) = a.batch_of_one(Device::Cpu);
    let plain = model.synthesize(&w, &noise).unwrap();
    assert!(edits[0].image.equal(&plain), "render(w + 0 v) must equal render(w)");
    assert!(edits[0].latent.w_plus.equal(&a.w_plus));
    // Scale 1 of b - a lands on b's W+ (rendered with a's noise).
    assert!(max_abs(&edits[1].latent.w_plus, &b.w_plus) < 1e-4);
    assert!(!edits[1].image.equal(&plain));
    // The edited latent keeps the noise and names the edit.
    for (n, m) in edits[1].latent.noise.iter().zip(&a.noise) {
        assert!(n.equal(m));
    }
    assert_eq!(edits[1].latent.metadata["edit_scale"], "1");
    assert_eq!(edits[1].latent.metadata["edit_layers"], format!("0-{}", model.layout().w_rows - 1));
    assert!(edits[1].latent.latent.is_none());
}

#[test]
fn edits_are_linear_in_w_plus() {
    let _seed = pulse::rng::seed(0);
    let w = Tensor::randn([18, 512], (Kind::Float, Device::Cpu));
    let v = Tensor::randn([18, 512], (Kind::Float, Device::Cpu));
    let all = LayerMask::all(18);
    let twice = apply(&apply(&w, &v, 0.5, &all), &v, 1.0, &all);
    assert!(max_abs(&twice, &apply(&w, &v, 1.5, &all)) < 1e-5);
    assert!(max_abs(&apply(&w, &(&v * 2.0), 0.75, &all), &apply(&w, &v, 1.5, &all)) < 1e-5);
    assert!(max_abs(&(apply(&w, &v, -1.0, &all) - &w), &(-&v)) < 1e-5);
    assert!(apply(&w, &v, 0.0, &all).equal(&w));
    // Batched W+ [B,L,512] moves every item by the same amount.
    let batch = Tensor::stack(&[w.shallow_clone(), &w * 2.0], 0);
    let moved = apply(&batch, &v, 1.0, &all) - &batch;
    assert!(max_abs(&moved.get(0), &v) < 1e-5 && max_abs(&moved.get(1), &v) < 1e-5);
}

#[test]
fn layer_masks_select_only_their_layers() {
    let _seed = pulse::rng::seed(0);
    let w = Tensor::randn([18, 512], (Kind::Float, Device::Cpu));
    let v = Tensor::randn([18, 512], (Kind::Float, Device::Cpu));
    let mask = LayerMask::parse("0-3, 8", 18).unwrap();
    let out = apply(&w, &v, 2.0, &mask);
    for l in 0..18 {
        let (o, wl) = (out.get(l), w.get(l));
        if l <= 3 || l == 8 {
            assert!(mask.contains(l as usize));
            assert!(max_abs(&(o - &wl), &(v.get(l) * 2.0)) < 1e-5, "layer {l} should move");
        } else {
            assert!(!mask.contains(l as usize));
            assert!(o.equal(&wl), "layer {l} should not move");
        }
    }
    assert_eq!(mask.to_string(), "0-3,8");
    assert_eq!(LayerMask::parse("0-17", 18).unwrap(), LayerMask::all(18));
    assert_eq!(LayerMask::parse("all", 12).unwrap(), LayerMask::all(12));
    assert_eq!(LayerMask::parse("5", 12).unwrap().to_string(), "5");
    for bad in ["0-18", "3-1", "x", "", "1-", ","] {
        assert!(LayerMask::parse(bad, 18).is_err(), "'{bad}' should be refused");
    }
    assert!(LayerMask::parse("0-17", 12).unwrap_err().to_string().contains("does not exist"));
    assert_eq!(parse_scales("0,0.5, 1,-1.5").unwrap(), vec![0.0, 0.5, 1.0, -1.5]);
    assert!(
        parse_scales("1,x").is_err() && parse_scales("").is_err() && parse_scales("nan").is_err()
    );
    assert_eq!([scale_label(0.0), scale_label(0.5), scale_label(-1.0)], ["0", "+0.5", "-1"]);
}

#[test]
fn direction_is_the_mean_difference_and_round_trips_with_metadata() {
    let t = TestDir::new();
    let model = model_128(&t);
    let l: Vec<LatentFile> = (0..4).map(|s| random_latent(&model, s)).collect();
    let d = Direction::from_latents(
        &[(&l[0], &l[1]), (&l[2], &l[3])],
        &[("a".into(), "b".into()), ("c".into(), "d".into())],
    )
    .unwrap();
    let expected = ((&l[1].w_plus - &l[0].w_plus) + (&l[3].w_plus - &l[2].w_plus)) / 2.0;
    assert!(max_abs(&d.vector, &expected) < 1e-5);
    let path = t.path("d.safetensors");
    d.write(&path).unwrap();
    let back = Direction::read(&path).unwrap();
    assert!(back.vector.equal(&d.vector));
    assert_eq!(back.metadata["format"], "pulse-direction/1");
    assert_eq!(back.model_sha256(), model.sha256);
    assert_eq!(back.pairs(), 2);
    assert_eq!(back.layers(), model.layout().w_rows);
    let sources: serde_json::Value = serde_json::from_str(&back.metadata["sources"]).unwrap();
    assert_eq!(sources, serde_json::json!([{"from": "a", "to": "b"}, {"from": "c", "to": "d"}]));
    // A latent file is not a direction file, and the reverse.
    let latent_path = t.path("a.latent.safetensors");
    l[0].write(&latent_path).unwrap();
    assert!(Direction::read(&latent_path).unwrap_err().to_string().contains("pulse-direction/1"));
    assert!(LatentFile::read(&path).is_err());
}

#[test]
fn directions_refuse_latents_of_another_model() {
    let t = TestDir::new();
    let model = model_128(&t);
    let a = random_latent(&model, 1);
    let mut other = random_latent(&model, 2);
    other.metadata.insert("model_sha256".into(), "f".repeat(64));
    let err =
        Direction::from_latents(&[(&a, &other)], &[("a".into(), "other".into())]).unwrap_err();
    assert!(err.to_string().contains("another model"), "{err}");
    // A direction made with another model is refused by edit.
    let mut other2 = random_latent(&model, 3);
    other2.metadata.insert("model_sha256".into(), "f".repeat(64));
    let foreign = direction_between(&other, &other2);
    let mask = LayerMask::all(model.layout().w_rows);
    let err = edit::edit(&model, &a, Path::new("a"), &foreign, Path::new("d"), &[1.0], &mask)
        .unwrap_err();
    assert!(err.to_string().contains("another model"), "{err}");
}

/// Renders a known W+ near the start of the embedding (zero noise) and embeds it back. The
/// random-weight network is far less smooth than a trained one, so the known latent is close to
/// the start and the learning rate small; the same code reaches it from far away on FFHQ.
#[test]
fn embedding_recovers_a_rendered_latent_to_high_psnr() {
    let t = TestDir::new();
    let model = model_128(&t);
    let layers = model.layout().w_rows;
    let (mean, source) = embed::mean_w(&model, 100, 0).unwrap();
    assert_eq!(source, MeanSource::GaussianFit, "the fixture folder has no mapping network");
    let fit = model.fit.as_ref().unwrap();
    assert!(mean.equal(&pulse::stylegan::leaky_relu(&fit.mean, 0.2).unwrap()));
    let _seed = pulse::rng::seed(7);
    let known = mean.view([1, 1, 512]).expand([1, layers as i64, 512], false)
        + Tensor::randn([1, layers as i64, 512], (Kind::Float, Device::Cpu)) * &fit.std * 0.02;
    let noise = embed::fixed_noise(model.layout(), EmbedNoise::Zero);
    let photo = model.synthesize(&known, &noise).unwrap();
    let steps = 20;
    let opts =
        EmbedOptions { steps, lr: 0.002, noise: EmbedNoise::Zero, ..EmbedOptions::default() };
    let mut seen = 0;
    let out = embed::embed(&model, &photo, &opts, &mut |s| {
        assert_eq!((s.step, s.steps), (seen, steps));
        seen += 1;
        true
    })
    .unwrap()
    .completed()
    .expect("never stopped");
    assert_eq!(seen, steps);
    assert_eq!(out.history.len(), steps);
    assert!(out.mse < out.initial_mse / 5.0, "MSE {} from {}", out.mse, out.initial_mse);
    assert!(out.psnr > 35.0, "PSNR {:.2} dB (start {:.2} dB)", out.psnr, out.initial_psnr);
    assert!((out.psnr - embed::psnr(out.mse)).abs() < 1e-9);
    // The latent renders the reported image exactly, with its own (zero) noise.
    assert_eq!(out.latent.metadata["source"], "embed");
    assert_eq!(out.latent.model_sha256(), model.sha256);
    assert!(out.latent.noise.iter().all(|n| n.abs().max().double_value(&[]) == 0.0));
    let (w, n) = out.latent.batch_of_one(Device::Cpu);
    assert!(model.synthesize(&w, &n).unwrap().equal(&out.image));
}

#[test]
fn embedding_stops_when_asked_and_refuses_a_wrong_size() {
    let t = TestDir::new();
    let model = model_128(&t);
    let photo = Tensor::full([3, 128, 128], 0.5, (Kind::Float, Device::Cpu));
    let opts = EmbedOptions { steps: 5, noise: EmbedNoise::Zero, ..EmbedOptions::default() };
    let out = embed::embed(&model, &photo, &opts, &mut |s| s.step < 1).unwrap();
    assert!(matches!(out, pulse::pulse::Outcome::Interrupted));
    let small = Tensor::full([3, 64, 64], 0.5, (Kind::Float, Device::Cpu));
    assert!(embed::embed(&model, &small, &opts, &mut |_| true).is_err());
    // Seeded random noise is reproducible and differs between seeds.
    let a = embed::fixed_noise(model.layout(), EmbedNoise::Random { seed: 1 });
    let b = embed::fixed_noise(model.layout(), EmbedNoise::Random { seed: 1 });
    let c = embed::fixed_noise(model.layout(), EmbedNoise::Random { seed: 2 });
    assert!(a[3].equal(&b[3]) && !a[3].equal(&c[3]));
    assert_eq!(a[3].size(), [1, 1, 8, 8]);
}

/// A torchvision-vgg16-shaped state dict (same keys and layout, narrow channels), random.
pub fn write_tiny_vgg(path: &Path) {
    let widths = [
        (0, 3, 4),
        (2, 4, 4),
        (5, 4, 6),
        (7, 6, 6),
        (10, 6, 8),
        (12, 8, 8),
        (14, 8, 8),
        (17, 8, 8),
        (19, 8, 8),
        (21, 8, 8),
    ];
    let _seed = pulse::rng::seed(3);
    let mut pairs = vec![];
    for (i, cin, cout) in widths {
        pairs.push((
            format!("features.{i}.weight"),
            Tensor::randn([cout, cin, 3, 3], (Kind::Float, Device::Cpu)) * 0.3,
        ));
        pairs.push((
            format!("features.{i}.bias"),
            Tensor::randn([cout], (Kind::Float, Device::Cpu)) * 0.1,
        ));
    }
    pairs.push(("classifier.0.weight".into(), Tensor::zeros([4, 4], (Kind::Float, Device::Cpu))));
    pulse::weights::save_safetensors(&pulse::weights::StateDict::from_pairs(pairs), path, None)
        .unwrap();
}

#[test]
fn perceptual_term_uses_four_vgg_feature_maps() {
    let t = TestDir::new();
    let path = t.path("vgg.safetensors");
    write_tiny_vgg(&path);
    let vgg = Vgg16Features::load(&path, Device::Cpu).unwrap();
    let _seed = pulse::rng::seed(0);
    let a = Tensor::rand([1, 3, 128, 128], (Kind::Float, Device::Cpu));
    let b = Tensor::rand([1, 3, 128, 128], (Kind::Float, Device::Cpu));
    let fa = vgg.features(&a);
    let sizes: Vec<Vec<i64>> = fa.iter().map(|f| f.size()).collect();
    // conv1_1, conv1_2 at 256, conv3_2 at 64, conv4_2 at 32 (inputs resized to 256).
    assert_eq!(
        sizes,
        [vec![1, 4, 256, 256], vec![1, 4, 256, 256], vec![1, 8, 64, 64], vec![1, 8, 32, 32]]
    );
    assert_eq!(Vgg16Features::distance(&fa, &vgg.features(&a)).double_value(&[]), 0.0);
    assert!(Vgg16Features::distance(&fa, &vgg.features(&b)).double_value(&[]) > 0.0);
    // The embedding adds it to the MSE.
    let model = model_128(&t);
    let opts = EmbedOptions {
        steps: 2,
        noise: EmbedNoise::Zero,
        perceptual: Some(path.clone()),
        perceptual_weight: 1.0,
        ..EmbedOptions::default()
    };
    let out = embed::embed(&model, &a.squeeze_dim(0), &opts, &mut |_| true)
        .unwrap()
        .completed()
        .expect("never stopped");
    assert!(out.history.iter().all(|h| h.total > h.mse && h.total.is_finite()));
    assert!(out.latent.metadata["embed_perceptual"].contains("vgg.safetensors"));
    // A state dict that is not VGG16 is refused, naming the key.
    let bad = t.path("bad.safetensors");
    pulse::weights::save_safetensors(
        &pulse::weights::StateDict::from_pairs(vec![(
            "features.0.weight".into(),
            Tensor::zeros([4, 3, 3, 3], (Kind::Float, Device::Cpu)),
        )]),
        &bad,
        None,
    )
    .unwrap();
    let err = format!("{:#}", Vgg16Features::load(&bad, Device::Cpu).unwrap_err());
    assert!(err.contains("features.0.bias"), "{err}");
}

#[test]
fn targets_colour_the_regions_and_leave_the_rest_free() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = RegionMap::read(&root.join("examples/hair/regions32.png")).unwrap();
    assert_eq!(map.side, 32);
    let (hair, skin, bg, free) = (
        map.count(Region::Hair),
        map.count(Region::Skin),
        map.count(Region::Background),
        map.count(Region::Free),
    );
    assert!(hair > 100 && skin > 50 && bg > 50 && free > 50, "{hair} {skin} {bg} {free}");
    assert_eq!(hair + skin + bg + free, 32 * 32);

    let black = target::parse_colour("black").unwrap().unwrap();
    let colours =
        TargetColours::from_u8(Some(black), target::parse_colour("#E0AC8A").unwrap(), None);
    let rgba = target::build_target(&map, &colours).unwrap();
    assert_eq!(rgba.size(), [4, 32, 32]);
    let alpha = rgba.get(3);
    assert_eq!(
        alpha.sum(Kind::Double).double_value(&[]) as usize,
        hair + skin,
        "background left free"
    );
    for (i, region) in map.regions.iter().enumerate() {
        let (y, x) = ((i / 32) as i64, (i % 32) as i64);
        let px: Vec<f64> = (0..4).map(|c| rgba.double_value(&[c, y, x])).collect();
        let expect = match region {
            Region::Hair => [black[0], black[1], black[2]].map(|v| f64::from(v) / 255.0),
            Region::Skin => [224.0 / 255.0, 172.0 / 255.0, 138.0 / 255.0],
            _ => {
                assert_eq!(px[3], 0.0, "free pixel ({x},{y}) must be transparent");
                continue;
            }
        };
        assert_eq!(px[3], 1.0);
        for c in 0..3 {
            assert!((px[c] - expect[c]).abs() < 1e-6);
        }
    }
    // Colours: names, hex, none; unknown names are refused with the palette.
    assert_eq!(target::parse_colour("#ff0080").unwrap(), Some([255, 0, 128]));
    assert_eq!(target::parse_colour("ff0080").unwrap(), Some([255, 0, 128]));
    assert_eq!(target::parse_colour("Blonde").unwrap(), target::parse_colour("blond").unwrap());
    assert_eq!(target::parse_colour("none").unwrap(), None);
    let err = target::parse_colour("teal-ish").unwrap_err().to_string();
    assert!(err.contains("blond") && err.contains("#rrggbb"), "{err}");
    // Sampling a face: the mean colour of each region's pixels.
    let face = Tensor::stack(
        &[
            Tensor::full([32, 32], 0.2, (Kind::Float, Device::Cpu)),
            Tensor::full([32, 32], 0.4, (Kind::Float, Device::Cpu)),
            Tensor::full([32, 32], 0.6, (Kind::Float, Device::Cpu)),
        ],
        0,
    );
    let sampled = map.mean_colour(&face, Region::Skin).unwrap();
    assert!((sampled[0] - 0.2).abs() < 1e-6 && (sampled[2] - 0.6).abs() < 1e-6);
    // A map without any coloured region cannot make a target.
    let empty = RegionMap::from_image(&Tensor::zeros([3, 8, 8], (Kind::Float, Device::Cpu)), None);
    assert!(target::build_target(&empty, &colours).is_err());
    // The legend: one strong channel picks the region.
    assert_eq!(Region::of_pixel(1.0, 0.0, 0.0), Region::Hair);
    assert_eq!(Region::of_pixel(0.0, 0.9, 0.1), Region::Skin);
    assert_eq!(Region::of_pixel(0.0, 0.0, 1.0), Region::Background);
    assert_eq!(Region::of_pixel(1.0, 1.0, 1.0), Region::Free);
    assert_eq!(Region::of_pixel(0.0, 0.0, 0.0), Region::Free);
}
