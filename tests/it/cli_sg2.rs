//! Every command on a StyleGAN2 model folder (the bundled `models/test-sg2-1024`, random
//! weights): info, generate, render, upsample (with `--align`), target, direction, edit, embed,
//! bench; latent files record the family and one family's latent is refused by the other.

use crate::common::*;
use predicates::prelude::*;
use pulse::latent::LatentFile;
use std::path::{Path, PathBuf};

fn sg2_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/test-sg2-1024")
}

fn v1_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/test-1024")
}

#[test]
fn info_describes_the_stylegan2_folder() {
    pulse()
        .args(["info", "--model", s(&sg2_model())])
        .assert()
        .success()
        .stdout(predicate::str::contains("architecture: stylegan2"))
        .stdout(predicate::str::contains("resolution: 1024x1024"))
        .stdout(predicate::str::contains("w+ rows: 18"))
        .stdout(predicate::str::contains("noise maps: 17"))
        .stdout(predicate::str::contains("default bad noise maps: [16]"));
}

/// A StyleGAN2 folder without `model.json` (made by hand, not by `pulse import`) is labelled by
/// what its synthesis file's keys say, as `Model::load` finds it: loaded or not.
#[test]
fn info_labels_a_stylegan2_folder_without_model_json_by_its_weights() {
    let t = TestDir::new();
    let dir = t.path("hand-made");
    std::fs::create_dir(&dir).unwrap();
    for f in ["synthesis.safetensors", "mapping.safetensors", "gaussian_fit.safetensors"] {
        std::fs::copy(sg2_model().join(f), dir.join(f)).unwrap();
    }
    let info = |dir: &Path| {
        let out = pulse().current_dir(t.path("")).args(["info", "--model", s(dir)]).output();
        String::from_utf8_lossy(&out.unwrap().stdout).into_owned()
    };
    let stdout = info(&dir);
    assert!(stdout.contains("(--model): stylegan2"), "{stdout}");
    assert!(stdout.contains("architecture: stylegan2"), "{stdout}");
    assert!(!stdout.contains("stylegan1"), "{stdout}");
    // A mapping file that cannot be read: the folder does not load, its label still comes from
    // the synthesis weights.
    std::fs::write(dir.join("mapping.safetensors"), b"not weights").unwrap();
    let stdout = info(&dir);
    assert!(stdout.contains("cannot load"), "{stdout}");
    assert!(stdout.contains("(--model): stylegan2"), "{stdout}");
    assert!(!stdout.contains("stylegan1"), "{stdout}");
}

/// generate then render give the same image; the latent is `pulse-latent/1` with 18 W+ rows,
/// 17 noise maps and `architecture` stylegan2; truncation moves every row (NVIDIA's cutoff).
#[test]
fn generate_render_and_truncation_on_stylegan2() {
    let t = TestDir::new();
    let out = t.path("face.png");
    pulse()
        .args(["generate", "--model", s(&sg2_model()), "--seed", "3", "-o", s(&out)])
        .args(["--device", "cpu"])
        .assert()
        .success();
    assert_eq!(image_size(&out), (1024, 1024));
    let latent_path = out.with_extension("latent.safetensors");
    let latent = LatentFile::read(&latent_path).unwrap();
    assert_eq!(latent.metadata["format"], "pulse-latent/1");
    assert_eq!(latent.metadata["architecture"], "stylegan2");
    assert_eq!(latent.w_plus.size(), [18, 512]);
    let sides: Vec<i64> = latent.noise.iter().map(|n| n.size()[2]).collect();
    assert_eq!(sides.len(), 17);
    assert_eq!((sides[0], sides[1], sides[2], sides[16]), (4, 8, 8, 1024));
    let rendered = t.path("rendered.png");
    pulse()
        .args(["render", s(&latent_path), "--model", s(&sg2_model()), "-o", s(&rendered)])
        .assert()
        .success();
    assert_eq!(pixels(&out), pixels(&rendered));

    // psi 0 puts every row at w_avg: all rows equal, unlike v1's layers 0-7 only.
    let zero = t.path("psi0.png");
    pulse()
        .args(["generate", "--model", s(&sg2_model()), "--seed", "3", "--truncation", "0"])
        .args(["-o", s(&zero)])
        .assert()
        .success();
    let w = LatentFile::read(&zero.with_extension("latent.safetensors")).unwrap().w_plus;
    assert!(w.equal(&w.narrow(0, 0, 1).expand([18, 512], false)), "every row truncated");
}

/// A latent of one family is refused by a model of the other, naming both.
#[test]
fn a_latent_of_one_family_is_refused_by_the_other() {
    let t = TestDir::new();
    let out = t.path("face.png");
    pulse()
        .args(["generate", "--model", s(&sg2_model()), "--seed", "1", "-o", s(&out)])
        .assert()
        .success();
    let latent = out.with_extension("latent.safetensors");
    pulse()
        .args(["render", s(&latent), "--model", s(&v1_model()), "-o", s(&t.path("x.png"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "latent made by a stylegan2 model, this model is stylegan1",
        ))
        // Refused before anything is said about rendering it.
        .stderr(predicate::str::contains("rendering with").not());
    assert!(!t.path("x.png").exists());
    let other = t.path("face2.png");
    pulse()
        .args(["generate", "--model", s(&sg2_model()), "--seed", "2", "-o", s(&other)])
        .assert()
        .success();
    let direction = t.path("d.safetensors");
    let other = other.with_extension("latent.safetensors");
    pulse().args(["direction", s(&latent), s(&other), "-o", s(&direction)]).assert().success();
    pulse()
        .args(["edit", s(&latent), "--direction", s(&direction), "--model", s(&v1_model())])
        .args(["-o", s(&t.path("e.png"))])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("stylegan2")
                .and(predicate::str::contains("rendering with").not()),
        );
    assert!(!t.path("e.png").exists());
}

/// upsample with the default noise settings (5 trainable maps, the last map zero), then
/// target, direction, edit and `--init` from a result.
#[test]
fn upsample_direction_edit_and_init_on_stylegan2() {
    let t = TestDir::new();
    let model = sg2_model();
    let out = t.path("out");
    let common = ["--steps", "2", "--eps", "1", "--device", "cpu", "-q"];
    pulse()
        .args(["upsample", s(&fixture("ref32.png")), "--seed", "7", "--model", s(&model)])
        .args(common)
        .args(["-o", s(&out)])
        .assert()
        .success();
    let a = out.join("ref32.latent.safetensors");
    assert_eq!(image_size(&out.join("ref32.png")), (1024, 1024));
    let la = LatentFile::read(&a).unwrap();
    assert_eq!(la.metadata["architecture"], "stylegan2");
    assert_eq!(la.noise.len(), 17);
    assert_eq!(la.noise[16].abs().max().double_value(&[]), 0.0, "map 16 is PULSE's bad map");
    assert_eq!(la.latent.as_ref().unwrap().size(), [18, 512]);

    // A target from a region map, searched with the same seed.
    let target = t.path("target/ref32.png");
    pulse()
        .args(["target", &face("../hair/regions32.png"), "--hair", "blond"])
        .args(["--face", &face("astronaut32.png"), "-o", s(&target)])
        .assert()
        .success();
    let out2 = t.path("out2");
    pulse()
        .args(["upsample", s(&target), "--seed", "7", "--model", s(&model)])
        .args(common)
        .args(["-o", s(&out2)])
        .assert()
        .success();
    let b = out2.join("ref32.latent.safetensors");
    let direction = t.path("dir.safetensors");
    pulse().args(["direction", s(&a), s(&b), "-o", s(&direction)]).assert().success();
    let edits = t.path("edits/e.png");
    pulse()
        .args(["edit", s(&a), "--direction", s(&direction), "--scale", "0,1"])
        .args(["--layers", "0-17", "--model", s(&model), "--save-latent", "-o", s(&edits)])
        .assert()
        .success();
    assert!(edits.is_file());

    // --init from a result, and --trainable-noise / --bad-noise-layers checked against 17 maps.
    let out3 = t.path("out3");
    pulse()
        .args(["upsample", s(&fixture("ref32.png")), "--init", s(&a), "--model", s(&model)])
        .args(["--trainable-noise", "17", "--bad-noise-layers", "0"])
        .args(common)
        .args(["-o", s(&out3)])
        .assert()
        .success();
    pulse()
        .args(["upsample", s(&fixture("ref32.png")), "--model", s(&model)])
        .args(["--bad-noise-layers", "17"])
        .args(common)
        .args(["-o", s(&t.path("out4"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("noise layer 17 does not exist"));
}

#[test]
fn upsample_align_on_stylegan2() {
    let t = TestDir::new();
    let out = t.path("out");
    let photo =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/align/astronaut_turned.jpg");
    pulse()
        .env("PULSE_MTCNN", Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mtcnn"))
        .args(["upsample", s(&photo), "--align", "--steps", "1", "--eps", "1", "--seed", "3"])
        .args(["--device", "cpu", "--model", s(&sg2_model()), "-o", s(&out)])
        .assert()
        .success();
    assert_eq!(image_size(&out.join("astronaut_turned.png")), (1024, 1024));
    let latent = LatentFile::read(&out.join("astronaut_turned.latent.safetensors")).unwrap();
    assert_eq!(latent.metadata["architecture"], "stylegan2");
}

#[test]
fn embed_a_photo_into_stylegan2() {
    let t = TestDir::new();
    let out = t.path("photo.latent.safetensors");
    let image = t.path("photo.png");
    pulse()
        .args(["embed", &face("astronaut128.png"), "--model", s(&sg2_model())])
        .args(["--steps", "2", "--device", "cpu", "-o", s(&out), "--image", s(&image)])
        .assert()
        .success();
    let latent = LatentFile::read(&out).unwrap();
    assert_eq!(latent.metadata["architecture"], "stylegan2");
    assert_eq!(latent.w_plus.size(), [18, 512]);
    assert_eq!(latent.noise.len(), 17);
    assert_eq!(image_size(&image), (1024, 1024));
}

#[test]
fn bench_a_stylegan2_folder() {
    pulse()
        .args(["bench", "--model", s(&sg2_model()), "--steps", "1", "--warmup", "0"])
        .args(["--device", "cpu", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"architecture\":\"stylegan2\""))
        .stdout(predicate::str::contains("\"resolution\":1024"));
}
