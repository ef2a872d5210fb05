//! `pulse target`, `direction`, `edit` and `embed` driven as users run them (docs/editing.md), on
//! the 128x128 fixture network.

use crate::common::*;
use predicates::prelude::*;
use pulse::imageio::Sheet;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

fn regions() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/hair/regions32.png")
        .to_string_lossy()
        .into_owned()
}

/// Runs `pulse ARGS`, which must fail with `message` in its error.
fn fails_with(args: &[&str], message: &str) {
    pulse().args(args).assert().failure().stderr(predicate::str::contains(message));
}

fn rgba(path: &Path) -> image::RgbaImage {
    image::open(path).unwrap().to_rgba8()
}

/// The size a sheet of `n` labelled `tile` tiles in one row has.
fn sheet_size(tile: i64, n: usize) -> (u32, u32) {
    let mut sheet = Sheet::new(tile, n);
    for _ in 0..n {
        sheet.push(&Tensor::zeros([3, 2, 2], (Kind::Float, Device::Cpu)), "x");
    }
    let size = sheet.render().size();
    (size[2] as u32, size[1] as u32)
}

/// Two faces of the model with a mapping network, as latent files; returns their paths.
fn two_latents(t: &TestDir, model: &Path) -> (PathBuf, PathBuf) {
    pulse()
        .args([
            "generate",
            "--model",
            s(model),
            "--seed",
            "1",
            "--count",
            "2",
            "-o",
            s(&t.path("g/face.png")),
        ])
        .assert()
        .success();
    (t.path("g/face_0.latent.safetensors"), t.path("g/face_1.latent.safetensors"))
}

#[test]
fn target_colours_regions_from_names_hex_and_a_face() {
    let t = TestDir::new();
    let out = t.path("blond/face.png");
    pulse()
        .args([
            "target",
            &regions(),
            "--hair",
            "blond",
            "--face",
            &face("astronaut32.png"),
            "-o",
            s(&out),
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("hair").and(predicate::str::contains("#debe80")));
    assert_eq!(image_size(&out), (32, 32));
    let (img, map) = (rgba(&out), image::open(regions()).unwrap().to_rgb8());
    let mut seen = [0; 3];
    for (x, y, m) in map.enumerate_pixels() {
        let p = img.get_pixel(x, y).0;
        match m.0 {
            [255, 0, 0] => {
                assert_eq!(p, [222, 190, 128, 255], "hair at ({x},{y})");
                seen[0] += 1;
            }
            [0, 255, 0] | [0, 0, 255] => {
                assert_eq!(p[3], 255);
                seen[1] += 1;
            }
            _ => {
                assert_eq!(p[3], 0, "unconstrained pixel ({x},{y}) must be transparent");
                seen[2] += 1;
            }
        }
    }
    assert!(seen.iter().all(|&n| n > 0));

    // Hex colours, and `none` leaves a region free.
    let out2 = t.path("t2.png");
    pulse()
        .args([
            "target",
            &regions(),
            "--hair",
            "#102030",
            "--skin",
            "none",
            "--background",
            "white",
            "-o",
            s(&out2),
        ])
        .assert()
        .success();
    let img2 = rgba(&out2);
    for (x, y, m) in map.enumerate_pixels() {
        let p = img2.get_pixel(x, y).0;
        match m.0 {
            [255, 0, 0] => assert_eq!(p, [16, 32, 48, 255]),
            [0, 255, 0] => assert_eq!(p[3], 0),
            [0, 0, 255] => assert_eq!(p, [240, 240, 240, 255]),
            _ => assert_eq!(p[3], 0),
        }
    }
    fails_with(
        &["target", &regions(), "--hair", "teal-ish", "-o", s(&t.path("bad.png"))],
        "unknown colour 'teal-ish'",
    );
    assert!(!t.path("bad.png").exists());
}

/// The article's workflow through the command line: two targets that differ only in hair colour,
/// PULSE with one seed (same file name in two folders, so the same start), the direction, edits.
#[test]
fn hair_workflow_target_upsample_direction_edit_render() {
    let t = TestDir::new();
    let model = t.model_128();
    for hair in ["black", "blond"] {
        let target = t.path(&format!("targets/{hair}/face.png"));
        pulse()
            .args([
                "target",
                &regions(),
                "--hair",
                hair,
                "--face",
                &face("astronaut32.png"),
                "-o",
                s(&target),
            ])
            .assert()
            .success();
        pulse()
            .args(["upsample", s(&target), "--steps", "3", "--seed", "7", "-q"])
            .args(["--model", s(&model), "-o", s(&t.path(&format!("out/{hair}")))])
            .assert()
            .code(predicate::in_iter([0, 3])); // 3: not converged, as expected of the random network
    }
    let (black, blond) =
        (t.path("out/black/face.latent.safetensors"), t.path("out/blond/face.latent.safetensors"));
    let dir = t.path("blond_minus_black.safetensors");
    pulse()
        .args(["direction", s(&black), s(&blond), "-o", s(&dir)])
        .assert()
        .success()
        .stderr(predicate::str::contains("1 pair"));
    let d = pulse::editing::Direction::read(&dir).unwrap();
    assert!(d.vector.abs().max().double_value(&[]) > 0.0, "the two searches should end apart");

    let sheet = t.path("edit/black.png");
    pulse()
        .args([
            "edit",
            s(&black),
            "--direction",
            s(&dir),
            "--scale",
            "0,1",
            "--layers",
            "0-11",
            "--separate",
            "--save-latent",
        ])
        .args(["--model", s(&model), "-o", s(&sheet)])
        .assert()
        .success()
        .stderr(predicate::str::contains("warning").not());
    assert_eq!(image_size(&sheet), sheet_size(128, 2));
    // Scale 0 is the face itself, exactly as `render` draws it.
    let rendered = t.path("rendered.png");
    pulse()
        .args(["render", s(&black), "--model", s(&model), "-o", s(&rendered)])
        .assert()
        .success();
    assert_eq!(pixels(&t.path("edit/black_scale0.png")), pixels(&rendered));
    // The saved edit at scale 1 renders as shown, and carries blond's W+ (black's noise).
    let edited = t.path("edit/black_scale1.latent.safetensors");
    let rendered1 = t.path("rendered1.png");
    pulse()
        .args(["render", s(&edited), "--model", s(&model), "-o", s(&rendered1)])
        .assert()
        .success();
    assert_eq!(pixels(&t.path("edit/black_scale1.png")), pixels(&rendered1));
    let (w_edit, w_blond) = (latent_w_plus(&edited), latent_w_plus(&blond));
    assert!(w_edit.iter().zip(&w_blond).all(|(a, b)| (a - b).abs() < 1e-4));
    assert_ne!(pixels(&t.path("edit/black_scale0.png")), pixels(&t.path("edit/black_scale1.png")));

    // Only the chosen layers move; negative scales need `=` or a leading scale.
    let partial = t.path("partial.png");
    pulse()
        .args([
            "edit",
            s(&black),
            "--direction",
            s(&dir),
            "--scale=-1,0.5",
            "--layers",
            "0-3",
            "--save-latent",
        ])
        .args(["--model", s(&model), "-o", s(&partial)])
        .assert()
        .success();
    let moved = latent_w_plus(&t.path("partial_scale0.5.latent.safetensors"));
    let base = latent_w_plus(&black);
    assert!(moved[..4 * 512] != base[..4 * 512]);
    assert_eq!(moved[4 * 512..], base[4 * 512..]);
    assert!(t.path("partial_scale-1.latent.safetensors").is_file());
    fails_with(
        &[
            "edit",
            s(&black),
            "--direction",
            s(&dir),
            "--layers",
            "0-12",
            "--model",
            s(&model),
            "-o",
            s(&t.path("x.png")),
        ],
        "layer 12 does not exist",
    );
}

#[test]
fn direction_averages_pairs_and_refuses_other_models() {
    let t = TestDir::new();
    let model = t.model("m", "synthesis_128_c32.pt", true);
    let (a, b) = two_latents(&t, &model);
    let pairs = t.path("pairs.txt");
    std::fs::write(&pairs, "# from to\ng/face_0.latent.safetensors g/face_1.latent.safetensors\n\ng/face_1.latent.safetensors\tg/face_0.latent.safetensors # reversed\n").unwrap();
    let dir = t.path("d.safetensors");
    pulse()
        .args(["direction", "--pairs", s(&pairs), s(&a), s(&b), "-o", s(&dir)])
        .assert()
        .success()
        .stderr(predicate::str::contains("3 pairs"));
    let d = pulse::editing::Direction::read(&dir).unwrap();
    assert_eq!(d.pairs(), 3);
    // (b - a) + (b - a) + (a - b), over 3.
    let expected = (pulse::latent::LatentFile::read(&b).unwrap().w_plus
        - pulse::latent::LatentFile::read(&a).unwrap().w_plus)
        / 3.0;
    assert!((d.vector - expected).abs().max().double_value(&[]) < 1e-5);

    fails_with(&["direction", s(&a), "-o", s(&t.path("odd.safetensors"))], "pairs");
    // A latent of another model (its synthesis file's sha256 differs) is refused.
    let mut foreign = pulse::latent::LatentFile::read(&b).unwrap();
    foreign.metadata.insert("model_sha256".into(), "0".repeat(64));
    let foreign_path = t.path("foreign.latent.safetensors");
    foreign.write(&foreign_path).unwrap();
    fails_with(
        &["direction", s(&a), s(&foreign_path), "-o", s(&t.path("mixed.safetensors"))],
        "another model",
    );
    assert!(!t.path("mixed.safetensors").exists());
    // FROM and TO the same file would be a zero direction: refused, nothing written.
    let same = t.path("same.safetensors");
    pulse()
        .args(["direction", s(&foreign_path), s(&foreign_path), "-o", s(&same)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("same latent file"));
    assert!(!same.exists());
    // A direction of another model is refused by edit; a latent is not a direction.
    let mut foreign_a = pulse::latent::LatentFile::read(&a).unwrap();
    foreign_a.metadata.insert("model_sha256".into(), "0".repeat(64));
    let foreign_a_path = t.path("foreign_a.latent.safetensors");
    foreign_a.write(&foreign_a_path).unwrap();
    let foreign_dir = t.path("foreign_dir.safetensors");
    pulse()
        .args(["direction", s(&foreign_a_path), s(&foreign_path), "-o", s(&foreign_dir)])
        .assert()
        .success();
    fails_with(
        &[
            "edit",
            s(&a),
            "--direction",
            s(&foreign_dir),
            "--model",
            s(&model),
            "-o",
            s(&t.path("e.png")),
        ],
        "another model",
    );
    fails_with(
        &["edit", s(&a), "--direction", s(&b), "--model", s(&model), "-o", s(&t.path("e.png"))],
        "pulse-direction/1",
    );
    assert!(!t.path("e.png").exists());
}

#[test]
fn embed_writes_a_latent_that_renders_its_image_and_reports_psnr() {
    let _seed = pulse::rng::seed(0);
    let t = TestDir::new();
    let model = t.model("m", "synthesis_128_c32.pt", true);
    let (a, _) = two_latents(&t, &model);
    let photo = t.path("g/face_0.png");
    let (latent, image) = (t.path("emb/face.latent.safetensors"), t.path("emb/face.png"));
    pulse()
        .args([
            "embed",
            s(&photo),
            "-o",
            s(&latent),
            "--image",
            s(&image),
            "--steps",
            "3",
            "--lr",
            "0.002",
            "--model",
            s(&model),
        ])
        .assert()
        .success()
        .stderr(
            predicate::str::contains("PSNR")
                .and(predicate::str::contains(" dB"))
                .and(predicate::str::contains("MSE")),
        );
    let rendered = t.path("rendered.png");
    pulse()
        .args(["render", s(&latent), "--model", s(&model), "-o", s(&rendered)])
        .assert()
        .success()
        .stderr(predicate::str::contains("warning").not());
    assert_eq!(pixels(&rendered), pixels(&image));
    let file = pulse::latent::LatentFile::read(&latent).unwrap();
    assert_eq!(file.metadata["source"], "embed");
    assert_eq!(file.metadata["embed_start"], "mapping");
    // The embedded latent works with `direction` and `edit` like any other.
    let dir = t.path("d.safetensors");
    pulse().args(["direction", s(&a), s(&latent), "-o", s(&dir)]).assert().success();
    pulse()
        .args([
            "edit",
            s(&latent),
            "--direction",
            s(&dir),
            "--model",
            s(&model),
            "-o",
            s(&t.path("e.png")),
        ])
        .assert()
        .success();
    assert_eq!(image_size(&t.path("e.png")), sheet_size(128, 4));

    // Another size is resized, saying so; the perceptual term takes a vgg16 state dict.
    let small = t.path("small.png");
    write_rgb_png(&small, 96, 64);
    let vgg = t.path("vgg16.safetensors");
    let widths = [
        (0, 3, 4),
        (2, 4, 4),
        (5, 4, 4),
        (7, 4, 4),
        (10, 4, 4),
        (12, 4, 4),
        (14, 4, 4),
        (17, 4, 4),
        (19, 4, 4),
    ];
    let mut pairs = vec![];
    for (i, cin, cout) in widths {
        pairs.push((
            format!("features.{i}.weight"),
            Tensor::randn([cout, cin, 3, 3], (Kind::Float, Device::Cpu)),
        ));
        pairs.push((
            format!("features.{i}.bias"),
            Tensor::zeros([cout], (Kind::Float, Device::Cpu)),
        ));
    }
    pulse::weights::save_safetensors(&pulse::weights::StateDict::from_pairs(pairs), &vgg, None)
        .unwrap();
    pulse()
        .args([
            "embed",
            s(&small),
            "-o",
            s(&t.path("small.latent.safetensors")),
            "--steps",
            "2",
            "--noise",
            "zero",
        ])
        .args(["--perceptual", s(&vgg), "--model", s(&model)])
        .assert()
        .success()
        .stderr(predicate::str::contains("resized"));
    pulse()
        .args([
            "embed",
            s(&small),
            "-o",
            s(&t.path("x.latent.safetensors")),
            "--perceptual",
            s(&fixture("mapping.pt")),
        ])
        .args(["--model", s(&model)])
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("not a torchvision vgg16 state dict")
                .and(predicate::str::contains("features.0.weight")),
        );
    assert!(!t.path("x.latent.safetensors").exists());
}
