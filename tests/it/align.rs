//! `pulse align`: MTCNN parity with facenet-pytorch (tests/fixtures/align, made by its
//! make_fixtures.py), FFHQ's alignment geometry on synthetic faces, and the command line (no
//! face, broken and odd photos, resume, --all-faces, --size, the report, `upsample --align`).

use crate::common::*;
use predicates::prelude::*;
use pulse::align::{ffhq, find_faces, DetectConfig, Landmarks, Mtcnn};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

fn align_fixture(name: &str) -> PathBuf {
    fixture("align").join(name)
}

fn mtcnn() -> Mtcnn {
    Mtcnn::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mtcnn"), Device::Cpu).unwrap()
}

fn mtcnn_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mtcnn")
}

fn align_cmd() -> assert_cmd::Command {
    let mut cmd = pulse();
    cmd.env("PULSE_MTCNN", mtcnn_dir()).args(["align", "--device", "cpu"]);
    cmd
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

// ---------------------------------------------------------------------------------------------
// Detection parity with facenet-pytorch 2.6.0

/// Every fixture photo (colour, grey PNG, palette PNG, EXIF-rotated JPEG, two faces, small
/// face, no face): same number of faces in the same order; landmarks within 1 px for faces
/// over 80 px (the bar set for `pulse align`) and 2 px for smaller ones; boxes within 2 px; scores within 1e-3.
/// The PNGs decode to the same pixels as in Pillow; the JPEGs differ by the decoders' rounding.
#[test]
fn landmarks_and_boxes_agree_with_facenet_pytorch() {
    let net = mtcnn();
    let expected = read_json(&align_fixture("expected.json"));
    let photos = expected["photos"].as_object().unwrap();
    assert!(photos.len() >= 8);
    let (mut worst_large, mut worst_small, mut worst_box, mut large_faces) = (0f64, 0f64, 0f64, 0);
    for (name, want) in photos {
        let image = pulse::imageio::read_rgb(&align_fixture(name)).unwrap();
        assert_eq!(image.size()[2], want["width"].as_i64().unwrap(), "{name}: width");
        assert_eq!(image.size()[1], want["height"].as_i64().unwrap(), "{name}: height");
        let faces = find_faces(&net, &image, &DetectConfig::default());
        let want_faces = want["faces"].as_array().unwrap();
        assert_eq!(faces.len(), want_faces.len(), "{name}: number of faces");
        for (k, (got, want)) in faces.iter().zip(want_faces).enumerate() {
            let wbox = floats(&want["box"]);
            let box_diff = got
                .bbox
                .iter()
                .zip(&wbox)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max);
            let lm_diff = got
                .landmarks
                .iter()
                .zip(want["landmarks"].as_array().unwrap())
                .flat_map(|(p, q)| {
                    let q = floats(q);
                    [(f64::from(p[0]) - q[0]).abs(), (f64::from(p[1]) - q[1]).abs()]
                })
                .fold(0.0, f64::max);
            let score_diff = (f64::from(got.score) - want["score"].as_f64().unwrap()).abs();
            let width = wbox[2] - wbox[0];
            println!(
                "{name} face {k} ({width:.0} px): landmarks max |diff| {lm_diff:.4} px, box \
                 {box_diff:.4} px, score {score_diff:.2e}"
            );
            if width > 80.0 {
                large_faces += 1;
                worst_large = worst_large.max(lm_diff);
                assert!(lm_diff <= 1.0, "{name} face {k}: landmarks off by {lm_diff} px");
            } else {
                worst_small = worst_small.max(lm_diff);
                assert!(lm_diff <= 2.0, "{name} face {k}: landmarks off by {lm_diff} px");
            }
            worst_box = worst_box.max(box_diff);
            assert!(box_diff <= 2.0, "{name} face {k}: box off by {box_diff} px");
            assert!(score_diff <= 1e-3, "{name} face {k}: score off by {score_diff}");
        }
    }
    assert!(large_faces >= 5, "the fixtures should hold faces over 80 px");
    println!(
        "max landmark difference: {worst_large:.4} px (faces > 80 px), {worst_small:.4} px \
         (smaller); max box difference {worst_box:.4} px"
    );
}

/// A photo smaller than MTCNN's 12-px window, a flat one and a 1x1 one have no face.
#[test]
fn tiny_and_flat_photos_have_no_face() {
    let net = mtcnn();
    for (h, w) in [(1, 1), (11, 40), (64, 64)] {
        let flat = Tensor::full([3, h, w], 0.5, (Kind::Float, Device::Cpu));
        assert!(find_faces(&net, &flat, &DetectConfig::default()).is_empty(), "{h}x{w}");
    }
}

/// A bigger --min-face starts the pyramid lower and so skips small faces (MTCNN still finds
/// faces down to about half of it: group.jpg's 63-px face goes at 150, not at 120); over the
/// photo's short side nothing is searched.
#[test]
fn min_face_bounds_the_faces_found() {
    let net = mtcnn();
    let image = pulse::imageio::read_rgb(&align_fixture("group.jpg")).unwrap();
    let with =
        |min_face: f64| find_faces(&net, &image, &DetectConfig { min_face, ..Default::default() });
    let all = with(20.0);
    assert_eq!(all.len(), 2);
    let big = with(150.0);
    assert_eq!(big.len(), 1, "only the ~100 px face is left");
    assert!((big[0].bbox[0] - all[0].bbox[0]).abs() < 10.0);
    assert!(with(300.0).is_empty());
}

// ---------------------------------------------------------------------------------------------
// FFHQ's alignment on synthetic faces with known landmarks

/// Where FFHQ's recipe (NVlabs/ffhq-dataset's `align_images.py`) puts input point `p` in
/// the 1024x1024 aligned face, written out here independently of the library: the quad from
/// the eyes and mouth corners, mapped to the output square the way Pillow's QUAD transform
/// maps it (output pixel centre (j + 0.5) / 1024 of the unit square onto the quad, in input
/// pixel-centre coordinates).
fn ffhq_position(lm: &Landmarks, p: [f64; 2]) -> [f64; 2] {
    let pt = |i: usize| [f64::from(lm[i][0]), f64::from(lm[i][1])];
    let eye_avg = [(pt(0)[0] + pt(1)[0]) / 2.0, (pt(0)[1] + pt(1)[1]) / 2.0];
    let eye_to_eye = [pt(1)[0] - pt(0)[0], pt(1)[1] - pt(0)[1]];
    let mouth_avg = [(pt(3)[0] + pt(4)[0]) / 2.0, (pt(3)[1] + pt(4)[1]) / 2.0];
    let eye_to_mouth = [mouth_avg[0] - eye_avg[0], mouth_avg[1] - eye_avg[1]];
    // x = eye_to_eye - flipud(eye_to_mouth) * [-1, 1]
    let mut x = [eye_to_eye[0] + eye_to_mouth[1], eye_to_eye[1] - eye_to_mouth[0]];
    let n = x[0].hypot(x[1]);
    let len = (eye_to_eye[0].hypot(eye_to_eye[1]) * 2.0)
        .max(eye_to_mouth[0].hypot(eye_to_mouth[1]) * 1.8);
    x = [x[0] / n * len, x[1] / n * len];
    let y = [-x[1], x[0]];
    let c = [eye_avg[0] + 0.1 * eye_to_mouth[0], eye_avg[1] + 0.1 * eye_to_mouth[1]];
    // Top-left corner c - x - y; the output's x runs along 2x, its y along 2y.
    let d = [p[0] - (c[0] - x[0] - y[0]), p[1] - (c[1] - x[1] - y[1])];
    let qsize2 = 4.0 * len * len; // |2x|^2 = |2y|^2, and x is orthogonal to y
    let s = (d[0] * 2.0 * x[0] + d[1] * 2.0 * x[1]) / qsize2;
    let t = (d[0] * 2.0 * y[0] + d[1] * 2.0 * y[1]) / qsize2;
    [s * 1024.0 - 0.5, t * 1024.0 - 0.5]
}

/// A synthetic face: five landmarks of a canonical face (eye distance `e`, mouth `e` below the
/// eyes) turned by `angle` degrees and moved so the eyes' midpoint is at `at`.
fn face_landmarks(e: f64, angle: f64, at: [f64; 2]) -> Landmarks {
    let canonical = [[-0.5, 0.0], [0.5, 0.0], [0.05, 0.55], [-0.4, 1.0], [0.38, 1.02]];
    let (sin, cos) = angle.to_radians().sin_cos();
    canonical.map(|[u, v]| {
        let (u, v) = (u * e, v * e);
        [(at[0] + u * cos - v * sin) as f32, (at[1] + u * sin + v * cos) as f32]
    })
}

/// A black `w` x `h` photo with a white Gaussian blob (sigma `sigma`) on each landmark.
fn blob_photo(w: i64, h: i64, lm: &Landmarks, sigma: f64) -> Tensor {
    let img = Tensor::zeros([3, h, w], (Kind::Float, Device::Cpu));
    let r = (4.0 * sigma).ceil() as i64;
    for p in lm {
        let (px, py) = (f64::from(p[0]), f64::from(p[1]));
        let (x0, y0) = ((px.round() as i64 - r).max(0), (py.round() as i64 - r).max(0));
        let (x1, y1) = ((px.round() as i64 + r + 1).min(w), (py.round() as i64 + r + 1).min(h));
        let xs = Tensor::arange_start(x0, x1, (Kind::Double, Device::Cpu)) - px;
        let ys = Tensor::arange_start(y0, y1, (Kind::Double, Device::Cpu)) - py;
        let d2 = xs.square().view([1, -1]) + ys.square().view([-1, 1]);
        let blob = (d2 / (-2.0 * sigma * sigma)).exp().to_kind(Kind::Float);
        let mut window = img.narrow(1, y0, y1 - y0).narrow(2, x0, x1 - x0);
        window += blob.unsqueeze(0);
    }
    img.clamp(0.0, 1.0)
}

/// Intensity-weighted centroid of the aligned face within `radius` of `near`.
fn centroid(img: &Tensor, near: [f64; 2], radius: i64) -> [f64; 2] {
    let grey = img.mean_dim(0, false, Kind::Float);
    let (cx, cy) = (near[0].round() as i64, near[1].round() as i64);
    let (x0, y0) = (cx - radius, cy - radius);
    let win =
        grey.narrow(0, y0, 2 * radius + 1).narrow(1, x0, 2 * radius + 1).to_kind(Kind::Double);
    let xs = Tensor::arange_start(x0, x0 + 2 * radius + 1, (Kind::Double, Device::Cpu));
    let ys = Tensor::arange_start(y0, y0 + 2 * radius + 1, (Kind::Double, Device::Cpu));
    let total = win.sum(Kind::Double).double_value(&[]);
    let mx = (&win * xs.view([1, -1])).sum(Kind::Double).double_value(&[]) / total;
    let my = (&win * ys.view([-1, 1])).sum(Kind::Double).double_value(&[]) / total;
    [mx, my]
}

/// Turned, scaled and moved synthetic faces (small and enlarged, near a corner so the photo is
/// padded, large enough to be supersampled, and over 4096 px so FFHQ's shrink step runs): each
/// of the eyes, the nose and the mouth corners lands where FFHQ's recipe puts it, within 1 px of
/// the 1024x1024 output.
#[test]
fn alignment_puts_eyes_and_mouth_where_ffhq_does() {
    let cases = [
        // (eye distance, degrees, eyes' midpoint, photo w, h)
        (60.0, 30.0, [150.0, 120.0], 300, 280),
        (80.0, -15.0, [110.0, 100.0], 400, 300),
        (140.0, 170.0, [260.0, 300.0], 520, 520),
        (300.0, 5.0, [900.0, 700.0], 1800, 1700),
        (1100.0, -8.0, [2300.0, 1900.0], 4600, 4400),
    ];
    let mut worst = 0f64;
    for (e, angle, at, w, h) in cases {
        let lm = face_landmarks(e, angle, at);
        let sigma = 0.06 * e;
        let photo = blob_photo(w, h, &lm, sigma);
        let aligned = ffhq::align(&photo, &lm).unwrap();
        assert_eq!(aligned.size(), [3, 1024, 1024]);
        // The blobs are 0.06 e wide in the photo; the quad is 4 e, the output 1024.
        let radius = (4.0 * sigma * 1024.0 / (4.0 * e)).ceil() as i64;
        for (i, p) in lm.iter().enumerate() {
            let want = ffhq_position(&lm, [f64::from(p[0]), f64::from(p[1])]);
            let got = centroid(&aligned, want, radius);
            let d = (got[0] - want[0]).hypot(got[1] - want[1]);
            worst = worst.max(d);
            println!(
                "e {e}, {angle} deg, {w}x{h}: landmark {i} at ({:.2}, {:.2}), FFHQ ({:.2}, {:.2}): {d:.3} px",
                got[0], got[1], want[0], want[1]
            );
            assert!(d < 1.0, "landmark {i} is {d} px from where FFHQ puts it");
        }
    }
    println!("worst landmark offset at 1024: {worst:.3} px");
}

/// The eyes of an upright face end up level and symmetric about the centre line, with the
/// values FFHQ's constants give: eye distance 1/4 of the output when it dominates the quad.
#[test]
fn ffhq_frame_of_an_upright_face() {
    let lm: Landmarks =
        [[100.0, 100.0], [200.0, 100.0], [150.0, 150.0], [120.0, 200.0], [180.0, 200.0]];
    let left = ffhq_position(&lm, [100.0, 100.0]);
    let right = ffhq_position(&lm, [200.0, 100.0]);
    assert!((left[1] - right[1]).abs() < 1e-9);
    assert!((right[0] - left[0] - 256.0).abs() < 1e-9);
    assert!((left[0] + right[0] - 1023.0).abs() < 1e-9);
    // The library's own inverse map agrees with the formula above.
    let q = ffhq::quad(&lm).unwrap();
    let lib = q.to_aligned([100.0, 100.0], 1024);
    assert!((lib[0] - left[0]).abs() < 1e-9 && (lib[1] - left[1]).abs() < 1e-9);
}

// ---------------------------------------------------------------------------------------------
// The command line

fn copy_fixtures(dir: &Path, names: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    for n in names {
        std::fs::copy(align_fixture(n), dir.join(n)).unwrap();
    }
}

/// A folder with a face, a photo without one and a broken file: the rest goes on, the refused
/// ones are named on stderr and get no output, exit 2; the report lists every face with its box,
/// score, landmarks and output; a rerun skips what exists, --overwrite redoes it.
#[test]
fn folder_with_no_face_and_broken_file() {
    let t = TestDir::new();
    let photos = t.path("photos");
    copy_fixtures(&photos, &["astronaut.jpg", "no_face.jpg", "camera_grey.png"]);
    let jpeg = std::fs::read(align_fixture("astronaut.jpg")).unwrap();
    std::fs::write(photos.join("broken.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    let out = t.path("out");
    let report = t.path("report.json");
    align_cmd()
        .args([s(&photos), "-o", s(&out), "--report", s(&report)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no_face.jpg: no face found"))
        .stderr(predicate::str::contains("broken.jpg: the image is truncated"));
    let mut written: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["astronaut.png", "camera_grey.png"]);
    assert_eq!(image_size(&out.join("astronaut.png")), (32, 32));

    let r = read_json(&report);
    assert_eq!(r["settings"]["size"], 32);
    assert_eq!(r["settings"]["min_face"], 20.0);
    let inputs = r["inputs"].as_array().unwrap();
    let by_name = |n: &str| {
        inputs.iter().find(|i| i["input"].as_str().unwrap().ends_with(n)).unwrap().clone()
    };
    assert_eq!(by_name("no_face.jpg")["status"], "no_face");
    assert_eq!(by_name("no_face.jpg")["faces"].as_array().unwrap().len(), 0);
    assert_eq!(by_name("broken.jpg")["status"], "refused");
    assert!(by_name("broken.jpg")["error"].as_str().unwrap().contains("truncated"));
    let astro = by_name("astronaut.jpg");
    assert_eq!(astro["status"], "aligned");
    assert_eq!((astro["width"].as_i64(), astro["height"].as_i64()), (Some(512), Some(352)));
    let face = &astro["faces"][0];
    assert_eq!(floats(&face["box"]).len(), 4);
    assert!(face["score"].as_f64().unwrap() > 0.99);
    let lm = face["landmarks"].as_array().unwrap();
    assert_eq!(lm.len(), 5);
    // The landmarks are in input pixels: the facenet-pytorch fixture's, within a pixel.
    let want = read_json(&align_fixture("expected.json"))["photos"]["astronaut.jpg"]["faces"][0]
        ["landmarks"]
        .clone();
    for (p, q) in lm.iter().zip(want.as_array().unwrap()) {
        let (p, q) = (floats(p), floats(q));
        assert!((p[0] - q[0]).abs() < 1.0 && (p[1] - q[1]).abs() < 1.0, "{p:?} vs {q:?}");
    }
    assert!(face["output"].as_str().unwrap().ends_with("astronaut.png"));

    // Resume: the outputs exist, nothing is rewritten.
    let before = std::fs::metadata(out.join("astronaut.png")).unwrap().modified().unwrap();
    align_cmd()
        .args([s(&photos), "-o", s(&out)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("skipping"));
    let after = std::fs::metadata(out.join("astronaut.png")).unwrap().modified().unwrap();
    assert_eq!(before, after);
    std::fs::remove_file(photos.join("broken.jpg")).unwrap();
    std::fs::remove_file(photos.join("no_face.jpg")).unwrap();
    align_cmd().args([s(&photos), "-o", s(&out), "--overwrite", "-q"]).assert().success();
    let redone = std::fs::metadata(out.join("astronaut.png")).unwrap().modified().unwrap();
    assert!(redone >= after);
}

/// One photo without a face: no output at all, exit 2.
#[test]
fn no_face_is_exit_2_and_no_output() {
    let t = TestDir::new();
    let out = t.path("out");
    align_cmd()
        .args([s(&align_fixture("no_face.jpg")), "-o", s(&out)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no face found"));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}

/// A photo whose name is not UTF-8 aligns like any other, its output named byte for byte, and the
/// report names it escaped as the other reports do (it used to fail to write the report).
#[test]
fn a_name_that_is_not_utf8_is_reported_escaped() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let t = TestDir::new();
    let photos = t.path("photos");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::copy(align_fixture("astronaut.jpg"), photos.join(OsStr::from_bytes(b"caf\xe9.jpg")))
        .unwrap();
    let (out, report) = (t.path("out"), t.path("report.json"));
    align_cmd().args([s(&photos), "-o", s(&out), "--report", s(&report), "-q"]).assert().success();
    assert!(out.join(OsStr::from_bytes(b"caf\xe9.png")).is_file());
    let r = read_json(&report);
    let entry = &r["inputs"][0];
    assert!(entry["input"].as_str().unwrap().ends_with("caf\\xE9.jpg"), "{entry}");
    assert!(entry["outputs"][0].as_str().unwrap().ends_with("caf\\xE9.png"), "{entry}");
    assert!(entry["faces"][0]["output"].as_str().unwrap().ends_with("caf\\xE9.png"), "{entry}");
    assert!(r["assigned"][0].as_str().unwrap().ends_with("caf\\xE9.jpg"), "{r}");
}

/// Tiny photos have no face; a header declaring more than the decoders accept is refused before
/// decoding; grey, palette and EXIF-rotated photos align like any other.
#[test]
fn tiny_huge_grey_palette_and_rotated_photos() {
    let t = TestDir::new();
    let photos = t.path("photos");
    copy_fixtures(&photos, &["camera_grey.png", "palette.png", "exif_rotated.jpg"]);
    image::RgbImage::new(1, 1).save(photos.join("tiny.png")).unwrap();
    image::RgbImage::new(9, 30).save(photos.join("narrow.png")).unwrap();
    // A PNG header declaring 9000x9000 (over the 8192 limit) and nothing else.
    let mut huge = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    huge.extend_from_slice(&9000u32.to_be_bytes());
    huge.extend_from_slice(&9000u32.to_be_bytes());
    huge.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    std::fs::write(photos.join("huge.png"), huge).unwrap();
    let out = t.path("out");
    align_cmd()
        .args([s(&photos), "-o", s(&out), "--size", "64"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("tiny.png: no face found"))
        .stderr(predicate::str::contains("narrow.png: no face found"))
        .stderr(predicate::str::contains("huge.png: 9000x9000 is too large"));
    for name in ["camera_grey", "palette", "exif_rotated"] {
        assert_eq!(image_size(&out.join(format!("{name}.png"))), (64, 64), "{name}");
    }
    for name in ["tiny", "narrow", "huge"] {
        assert!(!out.join(format!("{name}.png")).exists(), "{name}");
    }
    // The grey photo stays grey.
    let px = pixels(&out.join("camera_grey.png"));
    assert!(px.chunks(3).all(|c| c[0] == c[1] && c[1] == c[2]));
    // The EXIF-rotated face comes out upright: it aligns to nearly the same image as the
    // palette version of the same (unrotated) face.
    let (a, b) = (pixels(&out.join("exif_rotated.png")), pixels(&out.join("palette.png")));
    let mean_diff =
        a.iter().zip(&b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs()).sum::<f64>()
            / a.len() as f64;
    println!("exif-rotated vs palette face: mean |diff| {mean_diff:.2} of 255");
    assert!(mean_diff < 12.0, "mean difference {mean_diff}");
}

/// --all-faces writes every face, largest first, in the same order every run; --save-aligned
/// writes the 1024x1024 faces, from which the low-resolution ones are PULSE's bicubic
/// downscale.
#[test]
fn all_faces_in_a_stable_order_and_save_aligned() {
    let t = TestDir::new();
    let (out1, out2) = (t.path("out1"), t.path("out2"));
    let report = t.path("r.json");
    let group = align_fixture("group.jpg");
    align_cmd()
        .args([s(&group), "-o", s(&out1), "--all-faces", "--save-aligned", "--report", s(&report)])
        .assert()
        .success();
    align_cmd().args([s(&group), "-o", s(&out2), "--all-faces"]).assert().success();
    for k in 0..2 {
        let name = format!("group_{k}.png");
        assert_eq!(pixels(&out1.join(&name)), pixels(&out2.join(&name)), "{name}");
        assert_eq!(image_size(&out1.join(format!("group_{k}.aligned.png"))), (1024, 1024));
    }
    let faces = read_json(&report)["inputs"][0]["faces"].clone();
    let width = |k: usize| floats(&faces[k]["box"])[2] - floats(&faces[k]["box"])[0];
    assert!(width(0) > width(1), "largest first");
    // The larger face is the one on the right of group.jpg.
    assert!(floats(&faces[0]["box"])[0] > 200.0);

    let aligned = pulse::imageio::read_rgb(&out1.join("group_0.aligned.png")).unwrap();
    let down = pulse::pulse::Downscaler::new(32, Device::Cpu)
        .unwrap()
        .forward(&aligned.unsqueeze(0))
        .unwrap()
        .squeeze_dim(0)
        .clamp(0.0, 1.0);
    let low = pulse::imageio::read_rgb(&out1.join("group_0.png")).unwrap();
    let diff = (down - low).abs().max().double_value(&[]) * 255.0;
    println!("32x32 output vs PULSE's downscale of the saved aligned face: max {diff:.3} of 255");
    assert!(diff <= 0.51, "max difference {diff} of 255");
}

/// --size takes powers of two from 8 to 1024; others are a command-line error (exit 2).
#[test]
fn size_must_be_a_power_of_two_from_8_to_1024() {
    let t = TestDir::new();
    let photo = align_fixture("astronaut.jpg");
    for bad in ["48", "4", "2048", "x"] {
        align_cmd()
            .args([s(&photo), "-o", s(&t.path("bad")), "--size", bad])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--size"));
    }
    let out = t.path("out");
    for size in [8u32, 1024] {
        align_cmd()
            .args([s(&photo), "-o", s(&out), "--size", &size.to_string(), "--overwrite", "-q"])
            .assert()
            .success();
        assert_eq!(image_size(&out.join("astronaut.png")), (size, size));
    }
}

/// Outputs never replace inputs: aligning a folder into itself refuses the clashing photo.
#[test]
fn output_over_an_input_is_refused() {
    let t = TestDir::new();
    let dir = t.path("faces");
    copy_fixtures(&dir, &["palette.png"]);
    let before = std::fs::read(dir.join("palette.png")).unwrap();
    align_cmd()
        .args([s(&dir), "-o", s(&dir)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("would overwrite an input"));
    assert_eq!(std::fs::read(dir.join("palette.png")).unwrap(), before);
}

/// `upsample PHOTO --align` end to end on the bundled 1024 test model: the aligned 32x32 face is
/// kept in <OUT>/aligned/, the result is <OUT>/<stem>.png; a photo without a face is named and
/// makes the exit code 2 while the other is still upsampled.
#[test]
fn upsample_align_end_to_end() {
    let t = TestDir::new();
    let out = t.path("out");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/test-1024");
    pulse()
        .env("PULSE_MTCNN", mtcnn_dir())
        .args(["upsample", s(&align_fixture("astronaut_turned.jpg"))])
        .args(["--align", "--steps", "2", "--eps", "1", "--seed", "3", "--device", "cpu"])
        .args(["--model", s(&model), "-o", s(&out)])
        .assert()
        .success();
    assert_eq!(image_size(&out.join("aligned/astronaut_turned.png")), (32, 32));
    assert_eq!(image_size(&out.join("astronaut_turned.png")), (1024, 1024));
    assert!(out.join("astronaut_turned.latent.safetensors").is_file());

    pulse()
        .env("PULSE_MTCNN", mtcnn_dir())
        .args(["upsample", s(&align_fixture("astronaut_turned.jpg"))])
        .arg(s(&align_fixture("no_face.jpg")))
        .args(["--align", "--steps", "2", "--eps", "1", "--seed", "3", "--device", "cpu"])
        .args(["--model", s(&model), "-o", s(&out), "-q"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no_face.jpg: no face found"));
    assert!(!out.join("no_face.png").exists());
}
