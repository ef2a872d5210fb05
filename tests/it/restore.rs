//! `pulse restore` end to end on the CPU with the bundled test model (random weights: the faces
//! are textures, but every step of the pipeline runs): outputs, report, the guarantee (the
//! restored photo downscaled by PULSE's downscaler is the photo again; outside the faces it is
//! the plain enlargement), several faces overlapping and at the photo's edge, bad inputs.

use crate::common::*;
use predicates::prelude::*;
use pulse::align::ffhq::quad;
use pulse::align::paste::Placement;
use pulse::align::Landmarks;
use pulse::pipelines::restore::enlarge::Enlargement;
use pulse::pulse::Downscaler;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// `D(restored)` against the photo, in 8-bit levels (docs/design.md, *Restoring photos*). Where
/// no image with values in [0,1] downscales to the photo (a sharp edge at black or white: the
/// downscaler's kernel has negative lobes) the clamp leaves a difference; elsewhere what is left
/// is the 8-bit rounding of the written PNG (a mean of about 0.1 level). Measured on these photos
/// at `--upscale` 2 and 4: at most 12.2 levels, at most 0.72% of the values over one level (the
/// composed photo, whose pasted faces have hard square edges), a mean of at most 0.11.
const MAX_LEVELS: f64 = 16.0;
const SHARE_OVER_ONE_LEVEL: f64 = 0.015;
const MEAN_LEVELS: f64 = 0.15;

/// Outside the faces' footprints grown by this many photo pixels the restored photo is the
/// plain enlargement: the downscaler reaches 2 photo pixels, and the correction `E` of a
/// residual falls tenfold every 2 pixels (docs/design.md), below a rounding step by 12.
const MARGIN: i64 = 12;

fn fixture_photo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/align").join(name)
}

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/test-1024")
}

/// `pulse restore` with the test model, 2 steps and an eps every face reaches at once.
fn restore() -> assert_cmd::Command {
    restore_eps("1")
}

/// [`restore`] with another eps (`1e-9`: no face converges, exit code 3).
fn restore_eps(eps: &str) -> assert_cmd::Command {
    restore_with(&model(), eps)
}

/// [`restore`] with another model and eps.
fn restore_with(model: &Path, eps: &str) -> assert_cmd::Command {
    let mut cmd = pulse();
    cmd.env("OMP_NUM_THREADS", "1").args([
        "restore",
        "--model",
        s(model),
        "--steps",
        "2",
        "--seed",
        "7",
        "--eps",
        eps,
        "-q",
    ]);
    cmd.arg("--device").arg("cpu");
    cmd
}

fn read(path: &Path) -> Tensor {
    pulse::imageio::read_rgb(path).unwrap()
}

/// The photo with an astronaut face pasted at each of `at` (top-left corners, may be off the
/// photo) on mid grey: several faces, overlapping crops and faces at the edge.
fn compose(path: &Path, width: i64, height: i64, at: &[(i64, i64)]) {
    let face = read(Path::new(&face("astronaut128.png")));
    let canvas = Tensor::full([3, height, width], 0.5, (Kind::Float, Device::Cpu));
    for &(x, y) in at {
        let (x0, y0) = (x.max(0), y.max(0));
        let (x1, y1) = ((x + 128).min(width), (y + 128).min(height));
        let part = face.narrow(1, y0 - y, y1 - y0).narrow(2, x0 - x, x1 - x0);
        canvas.narrow(1, y0, y1 - y0).narrow(2, x0, x1 - x0).copy_(&part);
    }
    pulse::imageio::write_png(&canvas, path).unwrap();
}

/// `|D(restored) - photo|` in 8-bit levels: the largest, the share of values over one level,
/// the mean; checked against the stated tolerances.
fn consistency(photo: &Path, restored: &Path, upscale: i64) -> (f64, f64, f64) {
    let (x, r) = (read(photo), read(restored));
    assert_eq!(r.size(), [3, x.size()[1] * upscale, x.size()[2] * upscale]);
    let d = Downscaler::new(upscale, Device::Cpu).unwrap().forward(&r.unsqueeze(0)).unwrap();
    let levels = (d.squeeze_dim(0) - x).abs() * 255.0;
    let stats = (
        levels.max().double_value(&[]),
        levels.gt(1.0).to_kind(Kind::Double).mean(Kind::Double).double_value(&[]),
        levels.mean(Kind::Double).double_value(&[]),
    );
    println!(
        "{}: |D(restored) - photo|: max {:.3} levels, {:.3}% over one level, mean {:.4}",
        restored.display(),
        stats.0,
        stats.1 * 100.0,
        stats.2
    );
    assert!(stats.0 <= MAX_LEVELS, "{stats:?}");
    assert!(stats.1 <= SHARE_OVER_ONE_LEVEL, "{stats:?}");
    assert!(stats.2 <= MEAN_LEVELS, "{stats:?}");
    stats
}

fn landmarks(face: &serde_json::Value) -> Landmarks {
    let lm = face["landmarks"].as_array().unwrap();
    std::array::from_fn(|i| {
        let p = lm[i].as_array().unwrap();
        [p[0].as_f64().unwrap() as f32, p[1].as_f64().unwrap() as f32]
    })
}

/// 1 where some face's footprint (grown by [`MARGIN`] photo pixels) lies, `[1,H,W]` output.
fn footprints(faces: &[serde_json::Value], upscale: i64, w: i64, h: i64) -> Tensor {
    let m = Tensor::zeros([1, h * upscale, w * upscale], (Kind::Float, Device::Cpu));
    for f in faces {
        let p = Placement::new(&quad(&landmarks(f)).unwrap(), upscale, w, h);
        let g = MARGIN * upscale;
        let [x0, y0, x1, y1] = p.bounds;
        let (x0, y0) = ((x0 - g).max(0), (y0 - g).max(0));
        let (x1, y1) = ((x1 + g).min(w * upscale), (y1 + g).min(h * upscale));
        if x1 > x0 && y1 > y0 {
            let _ = m.narrow(1, y0, y1 - y0).narrow(2, x0, x1 - x0).fill_(1.0);
        }
    }
    m
}

/// Checks the guarantee of one restored photo against its report entry: `D(R)` is the photo,
/// and outside the faces `R` is the plain enlargement (in 8 bits), inside it is not.
fn check_photo(photo: &Path, restored: &Path, entry: &serde_json::Value, upscale: i64) {
    consistency(photo, restored, upscale);
    let x = read(photo);
    let (h, w) = (x.size()[1], x.size()[2]);
    let plain = Enlargement::new(&x, upscale).unwrap().plain();
    let plain = (plain * 255.0).round() / 255.0;
    let r = read(restored);
    let faces = entry["faces"].as_array().unwrap();
    let inside = footprints(faces, upscale, w, h);
    let diff = (&r - &plain).abs().max_dim(0, true).0;
    let outside = (&diff * (-&inside + 1.0)).max().double_value(&[]) * 255.0;
    println!("  outside the faces: max |restored - plain| = {outside:.3} levels");
    assert!(outside <= 1.0 + 1e-3, "{outside} levels off the plain enlargement");
    if !faces.is_empty() {
        let changed = (&diff * &inside).sum(Kind::Double).double_value(&[])
            / inside.sum(Kind::Double).double_value(&[]);
        assert!(changed > 0.01, "the faces changed nothing ({changed})");
    }
}

#[test]
fn restores_a_photo_with_every_output_and_the_guarantee() {
    let dir = TestDir::new();
    let (out, report) = (dir.path("out"), dir.path("report.json"));
    let photo = fixture_photo("astronaut.jpg");
    restore()
        .args([s(&photo), "-o", s(&out), "--compare", "--report", s(&report)])
        .assert()
        .code(0);
    assert_eq!(image_size(&out.join("astronaut.png")), (512 * 4, 352 * 4));
    assert_eq!(image_size(&out.join("astronaut.compare.png")), (512 * 8, 352 * 4));
    let r = read_json(&report);
    assert_eq!(r["settings"]["upscale"], 4);
    assert_eq!(r["settings"]["steps"], 2);
    assert_eq!(r["model"]["resolution"], 1024);
    let entry = &r["photos"][0];
    assert_eq!(entry["status"], "restored");
    assert_eq!((entry["width"].as_i64(), entry["height"].as_i64()), (Some(512), Some(352)));
    let faces = entry["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 1);
    let f = &faces[0];
    for key in ["box", "landmarks", "score", "seed", "converged", "loss", "best_step"] {
        assert!(!f[key].is_null(), "face entry without {key}: {f}");
    }
    assert!(f["loss"]["L2"].as_f64().unwrap() > 0.0);
    // The crop is about 200 photo pixels: the largest 1024/2^k it resolves is 128.
    let quad_size = f["quad_size"].as_f64().unwrap();
    let side = f["input_size"].as_i64().unwrap();
    assert!(side as f64 <= quad_size && 2.0 * side as f64 > quad_size, "{side} for {quad_size}");
    let faces_dir = out.join("astronaut.faces");
    assert_eq!(image_size(&faces_dir.join("face0_input.png")), (side as u32, side as u32));
    assert_eq!(image_size(&faces_dir.join("face0.png")), (1024, 1024));
    assert!(faces_dir.join("face0.latent.safetensors").is_file());
    check_photo(&photo, &out.join("astronaut.png"), entry, 4);

    // The compare sheet's left half is the plain enlargement.
    let sheet = read(&out.join("astronaut.compare.png"));
    let right = sheet.narrow(2, 2048, 2048);
    assert!(right.equal(&read(&out.join("astronaut.png"))));

    // A rerun skips the photo; --overwrite redoes it, with the same result (same seed).
    let before = std::fs::read(out.join("astronaut.png")).unwrap();
    restore()
        .args([s(&photo), "-o", s(&out), "--compare", "--report", s(&report)])
        .assert()
        .code(0);
    assert_eq!(read_json(&report)["photos"][0]["status"], "skipped");
    restore().args([s(&photo), "-o", s(&out), "--overwrite"]).assert().code(0);
    assert_eq!(std::fs::read(out.join("astronaut.png")).unwrap(), before);
}

/// Three faces in one photo, batched in one search: two whose crops overlap and one off the
/// photo's edge; then the face selection flags.
#[test]
fn several_overlapping_faces_and_a_face_at_the_edge() {
    let dir = TestDir::new();
    let photo = dir.path("group.png");
    compose(&photo, 330, 200, &[(-24, 40), (96, 10), (196, 60)]);
    let (out, report) = (dir.path("out"), dir.path("report.json"));
    restore()
        .args([s(&photo), "-o", s(&out), "--upscale", "2", "--batch-size", "4"])
        .args(["--report", s(&report)])
        .assert()
        .code(0);
    let r = read_json(&report);
    let entry = &r["photos"][0];
    let faces = entry["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 3, "{entry}");
    // The crops of neighbouring faces overlap, and the leftmost runs off the photo.
    let quads: Vec<_> = faces.iter().map(|f| quad(&landmarks(f)).unwrap()).collect();
    let xs = |q: &pulse::align::ffhq::Quad| {
        let x: Vec<f64> = q.corners.iter().map(|c| c[0]).collect();
        (
            x.iter().copied().fold(f64::INFINITY, f64::min),
            x.iter().copied().fold(f64::MIN, f64::max),
        )
    };
    let mut spans: Vec<(f64, f64)> = quads.iter().map(xs).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(spans[0].0 < 0.0, "the left face's crop runs off the photo: {spans:?}");
    assert!(spans[0].1 > spans[1].0 && spans[1].1 > spans[2].0, "crops overlap: {spans:?}");
    check_photo(&photo, &out.join("group.png"), entry, 2);
    for k in 0..3 {
        assert!(out.join(format!("group.faces/face{k}.png")).is_file());
    }

    // --max-faces 1 keeps the largest, --only-center-face the one nearest the centre.
    for (flag, out) in [("--max-faces", "one"), ("--only-center-face", "centre")] {
        let out = dir.path(out);
        let mut cmd = restore();
        cmd.args([s(&photo), "-o", s(&out), "--upscale", "2", "--report", s(&report), flag]);
        if flag == "--max-faces" {
            cmd.arg("1");
        }
        cmd.assert().code(0);
        let r = read_json(&report);
        let faces = r["photos"][0]["faces"].as_array().unwrap().clone();
        assert_eq!(faces.len(), 1, "{flag}");
        if flag == "--only-center-face" {
            let b = faces[0]["box"].as_array().unwrap();
            let cx = (b[0].as_f64().unwrap() + b[2].as_f64().unwrap()) / 2.0;
            assert!((cx - 165.0).abs() < 40.0, "centre face at x {cx}");
        }
        check_photo(&photo, &out.join("group.png"), &r["photos"][0], 2);
    }
}

/// Several samples: one restored photo per sample, each face searched from its own seed.
#[test]
fn samples_give_one_photo_each() {
    let dir = TestDir::new();
    let out = dir.path("out");
    let photo = fixture_photo("astronaut_small.jpg");
    restore().args([s(&photo), "-o", s(&out), "--samples", "2", "--upscale", "2"]).assert().code(0);
    let (a, b) = (out.join("astronaut_small_0.png"), out.join("astronaut_small_1.png"));
    assert_eq!(image_size(&a), (448, 448));
    assert_ne!(pixels(&a), pixels(&b), "two samples, two faces");
    for p in [&a, &b] {
        consistency(&photo, p, 2);
    }
    assert!(out.join("astronaut_small.faces/face0_1.png").is_file());
}

/// No face: the plain enlargement is written, the report says so, exit code 0; a CMYK JPEG is
/// converted like any photo; bad photos are refused (exit 2) without stopping the rest.
#[test]
fn no_face_cmyk_and_bad_photos() {
    let dir = TestDir::new();
    let photos = dir.path("photos");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::copy(fixture_photo("no_face.jpg"), photos.join("no_face.jpg")).unwrap();
    let (out, report) = (dir.path("out"), dir.path("report.json"));
    restore()
        .args([s(&photos), "-o", s(&out), "--report", s(&report), "--upscale", "2"])
        .assert()
        .code(0);
    let entry = &read_json(&report)["photos"][0];
    assert_eq!(entry["status"], "no_face");
    assert!(entry["error"].as_str().unwrap().contains("no face found"));
    check_photo(&photos.join("no_face.jpg"), &out.join("no_face.png"), entry, 2);

    let cmyk = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images/cmyk.jpg");
    restore().args([s(&cmyk), "-o", s(&out), "--upscale", "2"]).assert().code(0);
    let (w, h) = image_size(&cmyk);
    assert_eq!(image_size(&out.join("cmyk.png")), (w * 2, h * 2));

    // A 1x1 photo, one too large to enlarge, a broken file: each refused on one line, and the
    // face photo beside them restored.
    image::RgbImage::new(1, 1).save(photos.join("tiny.png")).unwrap();
    image::RgbImage::new(2100, 4).save(photos.join("wide.png")).unwrap();
    std::fs::write(photos.join("broken.jpg"), b"not a jpeg").unwrap();
    std::fs::copy(fixture_photo("astronaut_small.jpg"), photos.join("small.jpg")).unwrap();
    let assert = restore()
        .args([s(&photos), "-o", s(&out), "--report", s(&report)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("tiny.png: 1x1 is too small"))
        .stderr(predicate::str::contains("wide.png: 2100x4 enlarged 4x would be 8400x16"))
        .stderr(predicate::str::contains("broken.jpg"));
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    for line in stderr.lines().filter(|l| l.contains("refused")) {
        assert!(!line.contains('\n') && line.len() < 300, "{line}");
    }
    let r = read_json(&report);
    let status = |name: &str| {
        r["photos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["input"].as_str().unwrap().ends_with(name))
            .map(|p| p["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("tiny.png").as_deref(), Some("refused"));
    assert_eq!(status("wide.png").as_deref(), Some("refused"));
    assert_eq!(status("broken.jpg").as_deref(), Some("refused"));
    assert_eq!(status("small.jpg").as_deref(), Some("restored"));
    assert!(out.join("small.png").is_file());
    assert!(!out.join("tiny.png").exists() && !out.join("wide.png").exists());
}

/// An output that would replace the photo is refused (exit 2) and the photo is untouched.
#[test]
fn output_over_the_input_is_refused() {
    let dir = TestDir::new();
    let photos = dir.path("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let photo = photos.join("face.png");
    compose(&photo, 140, 140, &[(6, 6)]);
    let before = std::fs::read(&photo).unwrap();
    restore()
        .args([s(&photo), "-o", s(&photos)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("would overwrite the input"));
    assert_eq!(std::fs::read(&photo).unwrap(), before);
}

#[test]
fn usage_errors_exit_2() {
    let dir = TestDir::new();
    let photo = fixture_photo("astronaut.jpg");
    for args in [
        vec!["--upscale", "3"],
        vec!["--upscale", "1"],
        vec!["--max-faces", "0"],
        vec!["--min-face", "0"],
        vec!["--mask", "m.png"],
        vec!["--align"],
    ] {
        restore()
            .arg(s(&photo))
            .args(["-o", s(&dir.path("out"))])
            .args(&args)
            .assert()
            .code(2)
            .stdout(predicate::str::is_empty());
    }
    assert!(!dir.path("out").join("astronaut.png").exists());
}

/// MTCNN weights that cannot be used are refused (exit 2, naming the file) as `align` refuses
/// them: a missing folder, and a hostile pickle in place of pnet.pt.
#[test]
fn bad_mtcnn_weights_are_refused_as_in_align() {
    let dir = TestDir::new();
    let photo = fixture_photo("astronaut.jpg");
    let hostile = dir.path("mtcnn");
    std::fs::create_dir_all(&hostile).unwrap();
    let vendored = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mtcnn");
    for net in ["onet", "rnet"] {
        std::fs::copy(vendored.join(format!("{net}.pt")), hostile.join(format!("{net}.pt")))
            .unwrap();
    }
    // A pickle that would call os.system("true") if it were run.
    std::fs::write(
        hostile.join("pnet.pt"),
        b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.",
    )
    .unwrap();
    for (weights, named) in [(dir.path("nowhere"), "nowhere"), (hostile, "pnet.pt")] {
        restore()
            .env("PULSE_MTCNN", s(&weights))
            .args([s(&photo), "-o", s(&dir.path("out"))])
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains(named).and(predicate::str::contains("panicked").not()),
            );
    }
    assert!(!dir.path("out").join("astronaut.png").exists());
}

/// Two shards of one restore job into one folder (`--shard I/N`, reports in a folder): the
/// union of their photos equals an unsharded run's, byte for byte, and `pulse report summary`
/// accounts for every photo (the photo without a face counts as done: its enlargement is written).
#[test]
fn shards_share_one_folder_and_their_reports_merge() {
    let dir = TestDir::new();
    let photos = [fixture_photo("astronaut_small.jpg"), fixture_photo("no_face.jpg")];
    let whole = dir.path("whole");
    restore().args(photos.iter().map(|p| s(p))).args(["-o", s(&whole)]).assert().success();
    let sharded = dir.path("sharded");
    let reports = dir.path("reports");
    std::fs::create_dir(&reports).unwrap();
    for i in 0..2 {
        restore()
            .args(photos.iter().map(|p| s(p)))
            .args(["-o", s(&sharded), "--shard", &format!("{i}/2"), "--report"])
            .arg(format!("{}/", reports.display()))
            .assert()
            .success();
    }
    for name in ["astronaut_small.png", "no_face.png"] {
        let a = std::fs::read(whole.join(name)).unwrap();
        let b = std::fs::read(sharded.join(name)).unwrap();
        assert!(a == b, "{name} differs between the sharded and the whole run");
    }
    pulse()
        .args(["report", "summary", s(&reports)])
        .assert()
        .success()
        .stdout(predicate::str::contains("2 of 2 shards, 2 inputs: 2 done"))
        .stdout(predicate::str::contains("0 missing inputs"));
}

/// Issue 32, item 10: shards of restore sharing one plain `--report` file would absorb each
/// other's entries; the second is refused before any work, naming the first's report.
#[test]
fn shards_sharing_one_plain_report_file_are_refused() {
    let dir = TestDir::new();
    let photos = [fixture_photo("no_face.jpg"), fixture_photo("astronaut_small.jpg")];
    let (out, report) = (dir.path("out"), dir.path("report.json"));
    let run = |shard: &str| {
        restore()
            .args(photos.iter().map(|p| s(p)))
            .args(["-o", s(&out), "--shard", shard, "--report", s(&report)])
            .output()
            .unwrap()
    };
    assert!(run("0/2").status.success());
    let before = std::fs::read(&report).unwrap();
    let second = run("1/2");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("report.json") && stderr.contains("shard 0/2"), "{stderr}");
    assert!(!out.join("no_face.png").exists(), "refused before any work");
    assert_eq!(std::fs::read(&report).unwrap(), before);
}

/// The face entries of a report's photo whose input ends with `name`.
fn photo_entry(report: &serde_json::Value, name: &str) -> serde_json::Value {
    report["photos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["input"].as_str().unwrap().ends_with(name))
        .cloned()
        .unwrap_or_else(|| panic!("no entry for {name} in {report}"))
}

/// Issue 32, item 3: a rerun with the same `--report` (after Ctrl-C or a requeue) keeps the
/// entries of the photos it does not redo (boxes, seeds, convergence), so its exit code and
/// `pulse report summary` still say that a face did not converge.
#[test]
fn a_rerun_keeps_the_earlier_entries_of_its_report() {
    let dir = TestDir::new();
    let (out, report) = (dir.path("out"), dir.path("report.json"));
    let photo = fixture_photo("astronaut_small.jpg");
    let run = || {
        let mut cmd = restore_eps("1e-9");
        cmd.args([s(&photo), "-o", s(&out), "--upscale", "2", "--report", s(&report)]);
        cmd
    };
    run().assert().code(3);
    let first = photo_entry(&read_json(&report), "astronaut_small.jpg");
    assert_eq!(first["status"], "restored");
    assert_eq!(first["faces"][0]["converged"], false);
    run().assert().code(3);
    let again = photo_entry(&read_json(&report), "astronaut_small.jpg");
    assert_eq!(again["status"], "skipped", "{again}");
    assert_eq!(again["earlier_status"], "restored", "{again}");
    for key in ["faces", "width", "height", "outputs", "faces_dir"] {
        assert_eq!(again[key], first[key], "{key}");
    }

    // Shards requeued: the rerun of a shard keeps its report's entries, and the job's summary
    // still counts the face that did not converge (exit 3, not 0).
    let (sharded, reports) = (dir.path("sharded"), dir.path("reports"));
    std::fs::create_dir(&reports).unwrap();
    let shard = |i: usize| {
        let mut cmd = restore_eps("1e-9");
        cmd.args([s(&photo), s(&fixture_photo("no_face.jpg")), "-o", s(&sharded)])
            .args(["--upscale", "2", "--shard", &format!("{i}/2"), "--report"])
            .arg(format!("{}/", reports.display()));
        cmd
    };
    let code = |i| shard(i).output().unwrap().status.code();
    let codes = [code(0), code(1)];
    assert!(codes.contains(&Some(3)) && codes.contains(&Some(0)), "{codes:?}");
    let summary = || pulse().args(["report", "summary", s(&reports)]).assert();
    summary().code(3);
    // Both shards requeued and run again: everything is skipped, nothing is lost.
    assert_eq!([code(0), code(1)], codes);
    summary().code(3).stdout(predicate::str::contains("2 done (0 converged)"));
}

/// Issue 32, item 4: a photo is skipped only when its output was made by this model, at this
/// enlargement and with these settings; otherwise it is refused (exit 2), saying what differs,
/// and `--overwrite` redoes it. A `<stem>.png` pulse did not make is never taken for a result.
#[test]
fn resume_skips_only_outputs_of_this_model_upscale_and_settings() {
    let dir = TestDir::new();
    let out = dir.path("out");
    let photo = fixture_photo("astronaut_small.jpg");
    let output = out.join("astronaut_small.png");
    restore().args([s(&photo), "-o", s(&out), "--upscale", "2"]).assert().code(0);
    assert_eq!(image_size(&output), (448, 448));
    let before = std::fs::read(&output).unwrap();
    // The same command skips it.
    restore().args([s(&photo), "-o", s(&out), "--upscale", "2"]).assert().code(0);
    assert_eq!(std::fs::read(&output).unwrap(), before);
    // Another enlargement: refused, naming it; the output is untouched.
    restore()
        .args([s(&photo), "-o", s(&out), "--upscale", "4"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--upscale 2"))
        .stderr(predicate::str::contains("--overwrite"));
    assert_eq!(std::fs::read(&output).unwrap(), before);
    // Other settings: refused, naming the setting.
    restore()
        .args([s(&photo), "-o", s(&out), "--upscale", "2", "--seed", "8"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("seed"));
    // Another model (the other family's test network would do as well): refused.
    let other = dir.model_128();
    restore_with(&other, "1")
        .args([s(&photo), "-o", s(&out), "--upscale", "2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("another model"));
    assert_eq!(std::fs::read(&output).unwrap(), before);
    // --overwrite redoes it with what was asked.
    restore().args([s(&photo), "-o", s(&out), "--upscale", "4", "--overwrite"]).assert().code(0);
    assert_eq!(image_size(&output), (896, 896));

    // A file of that name that pulse did not write: refused, kept as it is.
    let mine = dir.path("mine");
    std::fs::create_dir(&mine).unwrap();
    image::RgbImage::new(3, 3).save(mine.join("astronaut_small.png")).unwrap();
    let theirs = std::fs::read(mine.join("astronaut_small.png")).unwrap();
    restore()
        .args([s(&photo), "-o", s(&mine), "--upscale", "2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not made by pulse restore"));
    assert_eq!(std::fs::read(mine.join("astronaut_small.png")).unwrap(), theirs);
}

/// Issue 32, item 6: `-o` naming the photos' own folder: the outputs written there (restored
/// photos, compare sheets, faces folders) are not taken for photos on a rerun, which resumes.
#[test]
fn output_folder_equal_to_the_input_folder_can_be_rerun() {
    let dir = TestDir::new();
    let photos = dir.path("photos");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::copy(fixture_photo("astronaut_small.jpg"), photos.join("small.jpg")).unwrap();
    std::fs::copy(fixture_photo("no_face.jpg"), photos.join("no_face.jpg")).unwrap();
    let report = dir.path("report.json");
    let run = || {
        let mut cmd = restore();
        cmd.args([s(&photos), "-o", s(&photos), "--upscale", "2", "--compare"])
            .args(["--report", s(&report)]);
        cmd
    };
    run().assert().code(0);
    for name in ["small.png", "small.compare.png", "no_face.png", "no_face.compare.png"] {
        assert!(photos.join(name).is_file(), "{name}");
    }
    let before = std::fs::read(photos.join("small.png")).unwrap();
    run().assert().code(0);
    let r = read_json(&report);
    let inputs: Vec<&str> =
        r["photos"].as_array().unwrap().iter().map(|p| p["input"].as_str().unwrap()).collect();
    assert_eq!(inputs.len(), 2, "{inputs:?}");
    assert!(r["photos"].as_array().unwrap().iter().all(|p| p["status"] == "skipped"), "{r}");
    assert_eq!(std::fs::read(photos.join("small.png")).unwrap(), before);
    // A photo added later is restored by the next run; the outputs are still left alone.
    std::fs::copy(fixture_photo("astronaut_small.jpg"), photos.join("later.jpg")).unwrap();
    run().assert().code(0);
    assert!(photos.join("later.png").is_file());
    assert_eq!(read_json(&report)["photos"].as_array().unwrap().len(), 3);
}

/// Issue 32, item 12: a `--min-face` too small for a photo is refused as `align` refuses it
/// (exit 2, naming the smallest that works), not silently skipped.
#[test]
fn a_min_face_too_small_for_the_photo_is_refused() {
    let dir = TestDir::new();
    let photo = dir.path("big.png");
    compose(&photo, 1000, 1000, &[(400, 400)]);
    let (out, report) = (dir.path("out"), dir.path("report.json"));
    restore()
        .args([s(&photo), "-o", s(&out), "--upscale", "2", "--min-face", "1"])
        .args(["--report", s(&report)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("use --min-face 3 or more"));
    assert_eq!(photo_entry(&read_json(&report), "big.png")["status"], "refused");
    assert!(!out.join("big.png").exists());
}

mod interrupts {
    use super::*;
    use pulse::align::{DetectConfig, Mtcnn};
    use pulse::model::Model;
    use pulse::pipelines::engine::SearchObserver;
    use pulse::pipelines::restore::{self, Observer, RestoreOptions};
    use pulse::pipelines::RunConfig;
    use pulse::pulse::SearchConfig;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Sets `stop` (as Ctrl-C does) at the first tick of face detection, or once the last face
    /// is found (before its photo is pasted together), and counts what comes after.
    struct CtrlC<'a> {
        stop: &'a AtomicBool,
        at_detection: bool,
        ticks_after: usize,
        faces: usize,
    }

    impl SearchObserver for CtrlC<'_> {}

    impl Observer for CtrlC<'_> {
        fn detecting(&mut self, _photo: &Path, _done: usize, _total: usize) {
            if self.stop.load(Ordering::SeqCst) {
                self.ticks_after += 1;
            }
            if self.at_detection {
                self.stop.store(true, Ordering::SeqCst);
            }
        }

        fn face_done(&mut self) {
            self.faces += 1;
            if !self.at_detection {
                self.stop.store(true, Ordering::SeqCst);
            }
        }
    }

    fn options(photo: &Path, out: &Path) -> RestoreOptions {
        RestoreOptions {
            inputs: vec![photo.to_path_buf()],
            out_dir: out.to_path_buf(),
            search: SearchConfig { steps: 2, eps: 1.0, ..SearchConfig::default() },
            run: RunConfig {
                seed: 7,
                samples: 1,
                batch_size: 1,
                restarts: 0,
                precision: Default::default(),
                deterministic: true,
            },
            upscale: 2,
            only_center_face: false,
            max_faces: None,
            detect: DetectConfig::default(),
            compare: false,
            report: None,
            shard: None,
            overwrite: false,
        }
    }

    fn run(photo: &Path, out: &Path, at_detection: bool) -> (restore::Report, CtrlC<'static>) {
        let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        let mut model = Model::load(&model(), Device::Cpu).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mtcnn = Mtcnn::load(&root.join("models/mtcnn"), Device::Cpu).unwrap();
        let mut observer = CtrlC { stop, at_detection, ticks_after: 0, faces: 0 };
        let opts = options(photo, out);
        let report = restore::run(&mut model, &mtcnn, &opts, &mut observer, stop).unwrap();
        (report, observer)
    }

    /// Issue 32, item 12: Ctrl-C during detection stops it at its next band (as `align`
    /// does), not after the whole pyramid; nothing of the photo is written.
    #[test]
    fn ctrl_c_during_detection_stops_it() {
        let dir = TestDir::new();
        let photo = dir.path("big.png");
        compose(&photo, 1200, 900, &[(500, 400)]);
        let out = dir.path("out");
        let (report, seen) = run(&photo, &out, true);
        assert!(report.interrupted, "Ctrl-C during detection is an interrupted run");
        assert_eq!(seen.ticks_after, 0, "detection went on after Ctrl-C");
        assert_eq!(seen.faces, 0);
        assert!(!out.join("big.png").exists() && !out.join("big.faces").exists());
    }

    /// Issue 32, item 12: Ctrl-C once the last face is found (during the paste-back): the photo
    /// is finished and written, and the run says it was interrupted (exit 130, not 0 or 3).
    #[test]
    fn ctrl_c_during_the_last_paste_back_is_an_interruption() {
        let dir = TestDir::new();
        let out = dir.path("out");
        let (report, seen) = run(&fixture_photo("astronaut_small.jpg"), &out, false);
        assert_eq!(seen.faces, 1);
        assert!(report.interrupted, "Ctrl-C during the paste-back was ignored");
        assert!(out.join("astronaut_small.png").is_file(), "the finished photo is kept");
    }
}
