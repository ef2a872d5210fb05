//! `pulse align` and `pulse upsample --align` as a careless or hostile user runs them, class by
//! class (README, "Security and robustness"): no photo is ever overwritten, no input makes the
//! program panic, Ctrl-C stops within a photo, exit codes and messages agree with the other
//! commands.

use crate::common::*;
use predicates::prelude::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn photo(name: &str) -> PathBuf {
    fixture("align").join(name)
}

fn align_cmd() -> assert_cmd::Command {
    let mut cmd = pulse();
    cmd.env("PULSE_MTCNN", root().join("models/mtcnn")).args(["align", "--device", "cpu"]);
    cmd
}

fn upsample_align(photos: &[&Path], out: &Path) -> assert_cmd::Command {
    let mut cmd = pulse();
    cmd.env("PULSE_MTCNN", root().join("models/mtcnn"))
        .arg("upsample")
        .args(photos.iter().map(|p| s(p)))
        .args(["--align", "--steps", "1", "--eps", "1", "--seed", "3", "--device", "cpu", "-q"])
        .args(["--model", s(&root().join("models/test-1024")), "-o", s(out)]);
    cmd
}

/// Exit 2, no panic, `what` in the message; returns stderr.
fn refused(cmd: &mut assert_cmd::Command, what: &str) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(what), "expected '{what}' in: {stderr}");
    stderr
}

// 1. No output of `upsample --align` overwrites a photo.

/// `upsample --align p/ -o p/`: the result `p/me.png` would replace the photo `p/me.png`. Every
/// output name is planned before any work: the photo is refused (not even aligned), named in
/// the report's `refused`, exit 2; another photo in the same run is still upsampled.
#[test]
fn upsample_align_never_overwrites_a_photo() {
    let t = TestDir::new();
    let p = t.path("p");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::copy(photo("palette.png"), p.join("me.png")).unwrap();
    let before = std::fs::read(p.join("me.png")).unwrap();
    let other = photo("astronaut_turned.jpg");
    let report = t.path("report.json");
    let stderr = refused(
        upsample_align(&[&p, &other], &p).args(["--report", s(&report)]),
        "would overwrite the input",
    );
    assert!(stderr.contains("me.png"), "{stderr}");
    assert_eq!(std::fs::read(p.join("me.png")).unwrap(), before, "the photo was overwritten");
    assert!(!p.join("aligned/me.png").exists(), "refused before any work");
    assert!(!p.join("me.latent.safetensors").exists());
    assert_eq!(image_size(&p.join("astronaut_turned.png")), (1024, 1024));
    let r = read_json(&report);
    let listed: Vec<&str> =
        r["refused"].as_array().unwrap().iter().map(|x| x["input"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].ends_with("p/me.png"), "{listed:?}");

    // The same for the aligned face's own name: photos inside <OUT>/aligned/ are never replaced.
    let out = t.path("o");
    std::fs::create_dir_all(out.join("aligned")).unwrap();
    std::fs::copy(photo("palette.png"), out.join("aligned/face.png")).unwrap();
    let before = std::fs::read(out.join("aligned/face.png")).unwrap();
    refused(&mut upsample_align(&[&out.join("aligned")], &out), "would overwrite the input");
    assert_eq!(std::fs::read(out.join("aligned/face.png")).unwrap(), before);
}

// 3. No panic on a smallest face the memory cannot take.

/// `--min-face 1` on a 1000x1000 photo would scale it to 12001x12001 for the detector's first
/// level: refused with the smallest value this photo takes; another photo still aligns.
#[test]
fn a_min_face_too_small_for_the_photo_is_refused_not_a_panic() {
    let t = TestDir::new();
    let photos = t.path("photos");
    std::fs::create_dir_all(&photos).unwrap();
    image::RgbImage::from_pixel(1000, 1000, image::Rgb([90, 120, 150]))
        .save(photos.join("big.png"))
        .unwrap();
    image::RgbImage::from_pixel(20, 20, image::Rgb([90, 120, 150]))
        .save(photos.join("small.png"))
        .unwrap();
    let out = t.path("out");
    let report = t.path("r.json");
    let stderr = refused(
        align_cmd().args([s(&photos), "-o", s(&out), "--min-face", "1", "--report", s(&report)]),
        "too small for this 1000x1000 photo",
    );
    assert!(stderr.contains("use --min-face 3 or more"), "{stderr}");
    let r = read_json(&report);
    let status: Vec<&str> =
        r["inputs"].as_array().unwrap().iter().map(|x| x["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["refused", "no_face"], "the small photo was still searched");
}

// 5. Ctrl-C stops within a photo.

/// Ctrl-C while the detector works on a large photo: the run stops between bands of rows (not
/// after the photo), exits 130 and writes nothing; progress was shown meanwhile.
#[test]
fn ctrl_c_during_a_large_photo_stops_and_writes_nothing() {
    let t = TestDir::new();
    let big = t.path("big.png");
    image::RgbImage::from_fn(4096, 4096, |x, y| image::Rgb([(x / 16) as u8, (y / 16) as u8, 99]))
        .save(&big)
        .unwrap();
    let out = t.path("out");
    let report = t.path("r.json");
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("pulse"))
        .env("PULSE_MTCNN", root().join("models/mtcnn"))
        .args(["align", s(&big), "--device", "cpu", "--min-face", "13", "-o", s(&out)])
        .args(["--report", s(&report)])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = vec![];
    loop {
        let line = lines.next().expect("stderr ended before any progress").unwrap();
        seen.push(line.clone());
        if line.contains("finding faces") {
            break;
        }
    }
    let signalled = Instant::now();
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen:?} {rest:?}");
    assert!(signalled.elapsed() < Duration::from_secs(60), "took {:?}", signalled.elapsed());
    assert!(rest.iter().any(|l| l.contains("interrupted")), "{rest:?}");
    let written: Vec<_> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(written.is_empty(), "nothing half-written: {written:?}");
    assert_eq!(read_json(&report)["interrupted"], true);
}

// 7. Exit codes agree with the README's table and with each other.

#[test]
fn exit_codes_agree_across_commands() {
    let t = TestDir::new();
    let empty = t.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    refused(align_cmd().args([s(&empty), "-o", s(&t.path("a"))]), "nothing to do");
    refused(
        pulse().args(["upsample", s(&empty), "--model", s(&t.model_128()), "-o", s(&t.path("u"))]),
        "nothing to do",
    );
    refused(&mut upsample_align(&[&empty], &t.path("ua")), "nothing to do");
    // An output folder that is a file.
    let file = t.path("file");
    std::fs::write(&file, b"x").unwrap();
    refused(align_cmd().args([s(&photo("palette.png")), "-o", s(&file)]), "cannot write");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    // Weights that are missing or hostile are refused like a model's.
    refused(
        align_cmd().args([
            s(&photo("palette.png")),
            "--mtcnn",
            "/nonexistent",
            "-o",
            s(&t.path("b")),
        ]),
        "/nonexistent",
    );
    refused(
        pulse().args(["upsample", s(&photo("palette.png")), "--model", "/nonexistent"]),
        "/nonexistent",
    );
    let hostile = t.path("hostile");
    std::fs::create_dir_all(&hostile).unwrap();
    for net in ["onet", "rnet"] {
        std::fs::copy(
            root().join(format!("models/mtcnn/{net}.pt")),
            hostile.join(format!("{net}.pt")),
        )
        .unwrap();
    }
    // A pickle that would call os.system("true") if it were run.
    std::fs::write(
        hostile.join("pnet.pt"),
        b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.",
    )
    .unwrap();
    refused(
        align_cmd().args([s(&photo("palette.png")), "--mtcnn", s(&hostile), "-o", s(&t.path("c"))]),
        "pnet.pt",
    );
    // A photo without a face in `upsample --align`: exit 2, and listed under `refused`.
    let report = t.path("r.json");
    refused(
        upsample_align(&[&photo("no_face.jpg"), &photo("palette.png")], &t.path("d"))
            .args(["--report", s(&report)]),
        "no face found",
    );
    let r = read_json(&report);
    assert_eq!(r["refused"].as_array().unwrap().len(), 1, "{r}");
    assert!(r["refused"][0]["input"].as_str().unwrap().ends_with("no_face.jpg"));
    assert!(r["refused"][0]["error"].as_str().unwrap().contains("no face found"));
    assert!(r["assigned"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a.as_str().unwrap().ends_with("no_face.jpg")));
}

// 8. Messages say what is wrong, in the tool's own words.

/// A JPEG whose image data is damaged but which ends with its end-of-image marker is corrupt,
/// not truncated (here the damage reads as a marker segment running past the end of the file);
/// one cut short is truncated.
#[test]
fn corrupt_and_truncated_jpegs_are_told_apart() {
    let t = TestDir::new();
    let jpeg = std::fs::read(photo("astronaut.jpg")).unwrap();
    // Where the image data starts: after the SOS segment.
    let mut i = 2;
    while jpeg[i + 1] != 0xDA {
        i += 2 + usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
    }
    let data = i + 2 + usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
    let mid = data + (jpeg.len() - data) / 2;
    let mut corrupt = jpeg[..mid].to_vec();
    corrupt.extend_from_slice(b"\xFF\xC4\xFF\xF0");
    corrupt.extend_from_slice(&jpeg[mid..]);
    assert!(corrupt.ends_with(b"\xFF\xD9"));
    let dir = t.path("photos");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cut.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    std::fs::write(dir.join("corrupt.jpg"), &corrupt).unwrap();
    let stderr = refused(
        align_cmd().args([s(&dir), "-o", s(&t.path("out"))]),
        "cut.jpg: the image is truncated",
    );
    let line = stderr.lines().find(|l| l.contains("corrupt.jpg")).unwrap_or_default();
    assert!(line.contains("corrupt.jpg: the image is corrupt"), "{stderr}");
}

#[test]
fn help_and_number_messages_state_the_rule() {
    pulse().args(["align", "--help"]).assert().success().stdout(predicate::str::contains("GIF"));
    for (flag, rule) in [("--min-face", "at least 1"), ("--size", "power of two")] {
        let stderr = refused(align_cmd().args([s(&photo("palette.png")), flag, "-1"]), rule);
        assert!(!stderr.contains("'-- -1'"), "{stderr}");
    }
}
