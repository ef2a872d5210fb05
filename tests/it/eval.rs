//! `pulse eval` end to end on the bundled random model (`models/test-1024`), with tiny settings:
//! every file it writes, the same seeds for every method, a resumed run, shards merged, and the
//! LPIPS loss term's refusals. No VGG16 weights here (`PULSE_VGG16` set empty): LPIPS itself is
//! tested against the lpips package in tests/it/metrics.rs.

use crate::common::{face, image_size, pixels, pulse, read_json, s, TestDir};
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/test-1024")
}

fn eval_cmd(out: &Path) -> assert_cmd::Command {
    let mut cmd = pulse();
    cmd.env("PULSE_VGG16", "");
    cmd.args(["eval", "--model", s(&model()), "--scale", "32", "--seed", "5", "-o", s(out)]);
    cmd
}

fn rows(out: &Path) -> Vec<serde_json::Value> {
    read_json(&out.join("eval.json"))["rows"].as_array().unwrap().clone()
}

#[test]
fn generated_faces_give_every_file_and_resume() {
    let t = TestDir::new();
    let out = t.path("ev");
    let run = || {
        eval_cmd(&out)
            .args(["--generated", "1", "--method", "pulse,ilo", "--samples", "2"])
            .args(["--steps", "2", "--ilo-steps", "1,1"])
            .assert()
            .success()
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.get_output().stdout).into_owned();
    for word in ["method", "psnr", "ssim", "lr_l2", "diversity", "pulse", "ilo", "±95%"] {
        assert!(stdout.contains(word), "the summary lacks {word}:\n{stdout}");
    }
    assert_eq!(image_size(&out.join("truth/gen0000.png")), (1024, 1024));
    assert_eq!(image_size(&out.join("input/gen0000.png")), (32, 32));
    for m in ["pulse", "ilo"] {
        for k in 0..2 {
            assert_eq!(image_size(&out.join(format!("{m}/gen0000_{k}.png"))), (1024, 1024));
            assert!(out.join(format!("{m}/gen0000_{k}.latent.safetensors")).is_file());
        }
    }
    let (pw, ph) = image_size(&out.join("eval.png"));
    assert!(pw >= 800 && ph >= 300, "plot {pw}x{ph}");
    let (sw, sh) = image_size(&out.join("sheet.png"));
    assert!(sw > 4 * 192 && sh > 192, "sheet {sw}x{sh}: input | pulse | ilo | truth");

    let csv = std::fs::read_to_string(out.join("eval.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with(
        "image,method,sample,seed,converged,steps,seconds,lr_l2,psnr,ssim,lpips,diversity"
    ));
    assert_eq!(lines.count(), 4, "{csv}");
    let json = read_json(&out.join("eval.json"));
    assert_eq!(json["diversity_metric"], "rms");
    assert_eq!(json["settings"]["methods"][1]["method"], "ilo");
    assert_eq!(json["settings"]["methods"][0]["lr"], 0.4);
    assert_eq!(json["settings"]["methods"][1]["lr"], 0.1);
    let rows = rows(&out);
    assert_eq!(rows.len(), 4);
    for r in &rows {
        let psnr = r["psnr"].as_f64().unwrap();
        let ssim = r["ssim"].as_f64().unwrap();
        let l2 = r["lr_l2"].as_f64().unwrap();
        assert!(psnr.is_finite() && psnr > 0.0 && (-1.0..=1.0).contains(&ssim) && l2 > 0.0, "{r}");
        assert!(r["lpips"].is_null(), "no VGG16: no LPIPS");
        assert!(r["diversity"].as_f64().unwrap() > 0.0, "two samples differ");
        if r["method"] == "pulse" {
            assert_eq!(r["steps"], 2, "{r}");
        }
    }
    // The same seeds for both methods.
    let seed = |m: &str, k: u64| {
        rows.iter().find(|r| r["method"] == m && r["sample"] == k).unwrap()["seed"].clone()
    };
    assert_eq!(seed("pulse", 0), seed("ilo", 0));
    assert_eq!(seed("pulse", 1), seed("ilo", 1));
    assert_ne!(seed("pulse", 0), seed("pulse", 1));

    // As if interrupted during ilo's second sample: that search is redone, nothing else.
    let kept = std::fs::metadata(out.join("pulse/gen0000_0.png")).unwrap().modified().unwrap();
    let redo = out.join("ilo/gen0000_1.png");
    let before = pixels(&redo);
    std::fs::remove_file(&redo).unwrap();
    std::fs::remove_file(out.join("eval.json")).unwrap();
    run().stderr(predicate::str::contains("skipping"));
    assert_eq!(
        std::fs::metadata(out.join("pulse/gen0000_0.png")).unwrap().modified().unwrap(),
        kept
    );
    assert_eq!(pixels(&redo), before, "the redone search gives the same image");
    let again = self::rows(&out);
    assert_eq!(again.len(), 4);
    for (a, b) in rows.iter().zip(&again) {
        for key in
            ["image", "method", "sample", "seed", "converged", "steps", "psnr", "ssim", "lr_l2"]
        {
            assert_eq!(a[key], b[key], "{key} after the resume");
        }
    }
}

#[test]
fn shards_of_face_files_merge_into_the_whole() {
    let t = TestDir::new();
    let out = t.path("ev");
    let faces = t.path("faces");
    std::fs::create_dir_all(&faces).unwrap();
    // 128x128 faces: resized to the model's 1024 as the truth.
    std::fs::copy(face("astronaut128.png"), faces.join("a.png")).unwrap();
    std::fs::copy(face("astronaut128.png"), faces.join("b.png")).unwrap();
    for shard in ["0/2", "1/2"] {
        eval_cmd(&out)
            .arg(s(&faces))
            .args(["--method", "pulse", "--steps", "1", "--shard", shard, "-q"])
            .assert()
            .success()
            .stderr(predicate::str::contains("pulse eval merge"));
    }
    assert!(out.join("eval.0-of-2.json").is_file() && out.join("eval.1-of-2.json").is_file());
    assert!(!out.join("eval.json").exists());
    pulse()
        .args(["eval", "merge", s(&out)])
        .assert()
        .success()
        .stdout(predicate::str::contains("psnr"));
    let rows = rows(&out);
    let images: Vec<&str> = rows.iter().map(|r| r["image"].as_str().unwrap()).collect();
    assert_eq!(images, ["a", "b"]);
    assert!(out.join("eval.png").is_file() && out.join("sheet.png").is_file());
    assert_eq!(image_size(&out.join("truth/a.png")), (1024, 1024));
    // The same truth and seed-independent input: both faces' inputs are equal.
    assert_eq!(pixels(&out.join("input/a.png")), pixels(&out.join("input/b.png")));
    // The folder's searches were made with --steps 1: a run asking for others is refused
    // before any work, rather than mixing old results into new figures.
    eval_cmd(&out)
        .arg(s(&faces))
        .args(["--method", "pulse", "--steps", "2", "--shard", "0/2", "-q"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("other settings"));
}

#[test]
fn the_lpips_loss_is_refused_below_256_and_without_vgg16() {
    let t = TestDir::new();
    let run = |input: &str| {
        pulse()
            .env("PULSE_VGG16", "")
            .args(["upsample", input, "--model", s(&model()), "--steps", "1", "-q"])
            .args(["--loss", "100*L2+0.1*LPIPS", "-o", s(&t.path("out"))])
            .assert()
    };
    run(&face("astronaut32.png")).code(2).stderr(predicate::str::contains("at least 256x256"));
    // A 256x256 target: the term would run, but there are no VGG16 weights.
    let big = t.path("big.png");
    crate::common::write_rgb_png(&big, 256, 256);
    run(s(&big)).code(2).stderr(predicate::str::contains("pulse download vgg16"));
    // $PULSE_VGG16 naming a missing file is refused by eval too, before any work.
    eval_cmd(&t.path("ev"))
        .env("PULSE_VGG16", s(&t.path("nope.pth")))
        .args(["--generated", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("nope.pth"));
}
