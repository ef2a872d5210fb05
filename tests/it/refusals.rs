//! What a hostile or careless user can hand the tool, class by class (README, "Security and
//! robustness"): each is refused with one line and exit code 2 before any work, nothing is
//! overwritten, no panic ever reaches stderr, and one bad input never stops the rest.

use crate::common::*;
use predicates::prelude::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Runs pulse and checks the refusal: exit 2, no panic, the message contains `what`.
fn refused(args: &[&str], what: &str) -> String {
    let out = pulse().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "pulse {}: {stderr}", args.join(" "));
    assert!(!stderr.contains("panicked"), "pulse {}: {stderr}", args.join(" "));
    assert!(stderr.contains(what), "pulse {}: expected '{what}' in: {stderr}", args.join(" "));
    stderr
}

/// Files in `dir` (names only), sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// The 128 network with a mapping, a latent and a direction of it.
fn latents(t: &TestDir) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let model = t.model("m", "synthesis_128_c32.pt", true);
    pulse()
        .args(["generate", "--model", s(&model), "--count", "2", "-o", s(&t.path("g.png"))])
        .assert()
        .success();
    let (a, b) = (t.path("g_0.latent.safetensors"), t.path("g_1.latent.safetensors"));
    let d = t.path("d.safetensors");
    pulse().args(["direction", s(&a), s(&b), "-o", s(&d)]).assert().success();
    (model, a, b, d)
}

#[test]
fn a_1x1_input_is_refused_and_the_rest_go_on() {
    let t = TestDir::new();
    let dir = t.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    write_rgb_png(&dir.join("dot.png"), 1, 1);
    std::fs::copy(face("astronaut32.png"), dir.join("face.png")).unwrap();
    let out = t.path("out");
    let stderr = refused(
        &["upsample", s(&dir), "--steps", "1", "--eps", "1", "-q"]
            .into_iter()
            .chain(["--model", s(&t.model_128()), "-o", s(&out)])
            .collect::<Vec<_>>(),
        "dot.png: 1x1 is not accepted",
    );
    assert!(stderr.contains("(128, 64, 32, 16, 8, 4, 2)"), "the smallest side is 2: {stderr}");
    assert!(out.join("face.png").is_file(), "the good input was processed");
}

/// A GPU the machine does not have is one line, before anything is loaded, on every command that
/// takes --device.
#[test]
fn a_missing_gpu_is_one_line_on_every_command() {
    let t = TestDir::new();
    let (model, latent, _, _) = latents(&t);
    let gpu = if tch::Cuda::is_available() {
        format!("cuda:{}", tch::Cuda::device_count())
    } else {
        "cuda".to_string()
    };
    let what = if tch::Cuda::is_available() { "GPU(s)" } else { "CUDA is not available" };
    let m = s(&model);
    let face = face("astronaut32.png");
    for args in [
        vec!["upsample", &face, "--model", m, "-o", s(&t.path("u"))],
        vec!["render", s(&latent), "--model", m, "-o", s(&t.path("r.png"))],
        vec!["generate", "--model", m, "-o", s(&t.path("x.png"))],
        vec!["embed", &face, "--model", m, "-o", s(&t.path("e.latent.safetensors"))],
        vec!["bench", "--steps", "1"],
    ] {
        let args: Vec<&str> = args.into_iter().chain(["--device", &gpu]).collect();
        let stderr = refused(&args, what);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

/// No command writes over one of its inputs, whatever name or link it is given by.
#[test]
fn no_output_overwrites_an_input() {
    let t = TestDir::new();
    let (model, latent, other, direction) = latents(&t);
    let m = s(&model);
    let photo = t.path("photo.png");
    std::fs::copy(face("astronaut32.png"), &photo).unwrap();
    let regions = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hair/regions32.png");
    let regions_copy = t.path("regions.png");
    std::fs::copy(&regions, &regions_copy).unwrap();
    let link = t.path("link.latent.safetensors");
    std::fs::hard_link(&latent, &link).unwrap();
    let inputs = [&latent, &other, &direction, &photo, &regions_copy];
    let (u, e) = (t.path("u"), t.path("e.l"));
    let before: Vec<Vec<u8>> = inputs.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let cases: Vec<Vec<&str>> = vec![
        vec!["upsample", s(&photo), "--model", m, "-o", s(&u), "--report", s(&photo)],
        vec!["render", s(&latent), "--model", m, "-o", s(&latent)],
        vec!["render", s(&latent), "--model", m, "-o", s(&link)],
        vec!["edit", s(&latent), "--direction", s(&direction), "--model", m, "-o", s(&latent)],
        vec!["edit", s(&latent), "--direction", s(&direction), "--model", m, "-o", s(&direction)],
        vec!["direction", s(&latent), s(&other), "-o", s(&latent)],
        vec!["direction", s(&latent), s(&other), "-o", s(&other)],
        vec!["embed", s(&photo), "--model", m, "-o", s(&photo)],
        vec!["embed", s(&photo), "--model", m, "-o", s(&e), "--image", s(&photo)],
        vec!["target", s(&regions_copy), "--hair", "blond", "-o", s(&regions_copy)],
        vec!["convert", s(&direction), "-o", s(&direction)],
    ];
    for args in cases {
        refused(&args, "is the input");
    }
    for (p, b) in inputs.iter().zip(before) {
        assert_eq!(std::fs::read(p).unwrap(), b, "{} changed", p.display());
    }
}

/// Two outputs of one run never share a name: `--report` onto a result is refused before any
/// search; an input whose outputs are another input's (a.png and a.compare.png with --compare)
/// is refused, naming both, and the other is processed.
#[test]
fn outputs_of_one_run_never_clobber_each_other() {
    let t = TestDir::new();
    let model = t.model_128();
    let dir = t.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(face("astronaut32.png"), dir.join("a.png")).unwrap();
    std::fs::copy(face("cameraman32.png"), dir.join("a.compare.png")).unwrap();
    let out = t.path("out");
    let common = ["--steps", "1", "--eps", "1", "-q", "--model", s(&model), "-o", s(&out)];
    // The report would be a's result.
    let report = out.join("a.png");
    let args: Vec<&str> = [&["upsample", s(&dir)][..], &common, &["--report", s(&report)]].concat();
    refused(&args, "the report file is also the output");
    assert!(!out.join("a.png").exists() && !out.join("a.compare.png").exists());
    // a.compare.png (first in sorted order) writes a.compare.png; a.png's sheet would replace it.
    let args: Vec<&str> = [&["upsample", s(&dir)][..], &common, &["--compare"]].concat();
    let stderr = refused(&args, "is also an output of");
    assert!(stderr.contains("a.png") && stderr.contains("a.compare.png"), "{stderr}");
    assert!(
        out.join("a.compare.png").is_file() && out.join("a.compare.latent.safetensors").is_file()
    );
    assert!(!out.join("a.png").exists());
    // A rerun never takes the clobber-to-be for a result: still refused, nothing overwritten.
    let sheet = std::fs::read(out.join("a.compare.compare.png")).unwrap();
    refused(&args, "is also an output of");
    assert_eq!(std::fs::read(out.join("a.compare.compare.png")).unwrap(), sheet);
}

/// A run that was killed left its image and latent but not the sheet it was asked for, and a
/// temporary file: the rerun redoes that image, writes the sheet and removes the temporary file.
#[test]
fn resume_completes_missing_outputs_and_cleans_stale_temporaries() {
    let t = TestDir::new();
    let model = t.model_128();
    let (out, report, face) = (t.path("out"), t.path("r.json"), face("astronaut32.png"));
    let run = |extra: &[&str]| {
        let args: Vec<&str> = [
            &["upsample", &face, "--steps", "2", "--seed", "4", "--eps", "1"][..],
            &["-q", "--model", s(&model), "-o", s(&out), "--report", s(&report)],
            extra,
        ]
        .concat();
        pulse().args(&args).assert().success();
    };
    run(&[]);
    assert_eq!(listing(&out), ["astronaut32.latent.safetensors", "astronaut32.png"]);
    let stale = out.join(".astronaut32.compare.png.Ab3xYz.tmp");
    std::fs::write(&stale, b"half a sheet").unwrap();
    let foreign_tmp = out.join(".notes.txt.Ab3xYz.tmp");
    std::fs::write(&foreign_tmp, b"not ours").unwrap();
    run(&["--compare"]);
    assert!(out.join("astronaut32.compare.png").is_file());
    assert!(!stale.exists(), "the stale temporary file of a planned output is removed");
    assert!(foreign_tmp.exists(), "other files are left alone");
    let report = read_json(&t.path("r.json"));
    assert_eq!(report["images"].as_array().unwrap().len(), 1);
    assert_eq!(report["skipped"].as_array().unwrap().len(), 0, "the image was redone");
    // Now everything asked for exists: skipped.
    run(&["--compare"]);
    assert_eq!(read_json(&t.path("r.json"))["skipped"].as_array().unwrap().len(), 1);
}

/// The report describes the whole folder: a rerun that adds an input keeps the earlier entries,
/// and the exit code counts them (an earlier image that did not converge still gives 3).
#[test]
fn a_resumed_report_keeps_earlier_entries_and_their_verdict() {
    let t = TestDir::new();
    let model = t.model_128();
    let dir = t.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(face("astronaut32.png"), dir.join("a.png")).unwrap();
    let report = t.path("report.json");
    let args = |eps: &str| -> Vec<String> {
        [
            "upsample",
            s(&dir),
            "--steps",
            "1",
            "--seed",
            "2",
            "--eps",
            eps,
            "-q",
            "--model",
            s(&model),
            "-o",
            s(&t.path("out")),
            "--report",
            s(&report),
        ]
        .map(String::from)
        .to_vec()
    };
    // a does not converge at the default eps.
    pulse().args(args("0.002")).assert().code(3);
    std::fs::copy(face("cameraman32.png"), dir.join("b.png")).unwrap();
    // b converges at eps 1; a is skipped, its earlier entry kept: not every image converged.
    pulse().args(args("1")).assert().code(3);
    let r = read_json(&report);
    let images = r["images"].as_array().unwrap();
    let inputs: Vec<&str> = images.iter().map(|i| i["input"].as_str().unwrap()).collect();
    assert_eq!(images.len(), 2, "{inputs:?}");
    assert!(inputs[0].ends_with("a.png") && inputs[1].ends_with("b.png"), "{inputs:?}");
    assert_eq!(images[0]["converged"], false);
    assert_eq!(images[1]["converged"], true);
    // Redone with --overwrite at eps 1, a's entry is replaced: all converged.
    let mut again = args("1");
    again.push("--overwrite".into());
    pulse().args(again).assert().code(0);
    assert_eq!(read_json(&report)["images"].as_array().unwrap().len(), 2);
    // A file at the report path that is not a report is not overwritten.
    let notes = t.path("notes.json");
    std::fs::write(&notes, b"my notes").unwrap();
    let mut foreign = args("1");
    *foreign.last_mut().unwrap() = s(&notes).to_string();
    let foreign: Vec<&str> = foreign.iter().map(String::as_str).collect();
    refused(&foreign, "not a pulse report");
    assert_eq!(std::fs::read(&notes).unwrap(), b"my notes");
}

/// A file name that is not UTF-8 is kept byte for byte in the output names, escaped in the report
/// and in messages, and never stops the run.
#[test]
fn names_that_are_not_utf8_are_kept_losslessly() {
    let t = TestDir::new();
    let dir = t.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    let name = OsStr::from_bytes(b"caf\xe9.png");
    std::fs::copy(face("astronaut32.png"), dir.join(name)).unwrap();
    std::fs::copy(face("cameraman32.png"), dir.join("plain.png")).unwrap();
    let (out, report) = (t.path("out"), t.path("r.json"));
    pulse()
        .args(["upsample", s(&dir), "--steps", "1", "--eps", "1", "-q", "--compare"])
        .args(["--model", s(&t.model_128()), "-o", s(&out), "--report", s(&report)])
        .assert()
        .success();
    assert!(out.join(OsStr::from_bytes(b"caf\xe9.png")).is_file());
    assert!(out.join(OsStr::from_bytes(b"caf\xe9.latent.safetensors")).is_file());
    assert!(out.join(OsStr::from_bytes(b"caf\xe9.compare.png")).is_file());
    let r = read_json(&report);
    let inputs: Vec<&str> =
        r["images"].as_array().unwrap().iter().map(|i| i["input"].as_str().unwrap()).collect();
    assert!(inputs.iter().any(|i| i.ends_with("caf\\xE9.png")), "{inputs:?}");
    // A rerun finds both finished.
    pulse()
        .args(["upsample", s(&dir), "--steps", "1", "--eps", "1", "-q", "--compare"])
        .args(["--model", s(&t.model_128()), "-o", s(&out), "--report", s(&report)])
        .assert()
        .success();
    assert_eq!(read_json(&report)["skipped"].as_array().unwrap().len(), 2);
}

/// A folder's entries are treated like inputs given directly: a broken link or a folder named
/// like an image is refused by name; a GIF is taken; an empty folder is "nothing to do".
#[test]
fn folder_entries_are_inputs_like_any_other() {
    let t = TestDir::new();
    let dir = t.path("in");
    std::fs::create_dir_all(dir.join("folder.png")).unwrap();
    std::os::unix::fs::symlink(dir.join("missing.png"), dir.join("dangling.png")).unwrap();
    std::os::unix::fs::symlink(dir.join("loop.png"), dir.join("loop.png")).unwrap();
    image::open(face("astronaut32.png")).unwrap().save(dir.join("face.gif")).unwrap();
    std::fs::write(dir.join("notes.txt"), b"not an image, not an input").unwrap();
    let (out, model) = (t.path("out"), t.model_128());
    let args = ["upsample", s(&dir), "--steps", "1", "--eps", "1", "-q"];
    let all: Vec<&str> = args.into_iter().chain(["--model", s(&model), "-o", s(&out)]).collect();
    let stderr = refused(&all, "dangling.png");
    for name in ["loop.png", "folder.png"] {
        assert!(stderr.contains(name), "{name} not named: {stderr}");
    }
    assert!(!stderr.contains("notes.txt"));
    assert!(out.join("face.png").is_file(), "the GIF was processed");

    let empty = t.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for input in [&empty, &dir.join("folder.png")] {
        refused(
            &["upsample", s(input), "--model", s(&t.model_128()), "-o", s(&t.path("o2"))],
            "nothing to do",
        );
    }
}

/// Numbers are checked where they enter: finite, in range, layers the model has.
#[test]
fn numbers_out_of_range_are_refused() {
    let t = TestDir::new();
    let m128 = t.model_128();
    let face = face("astronaut32.png");
    let o = t.path("o");
    let base = ["upsample", &face, "--model", s(&m128), "-o", s(&o)];
    for (flag, value, what) in [
        ("--lr", "nan", "positive finite"),
        ("--lr", "-1", "positive finite"),
        ("--eps", "inf", "positive finite"),
        ("--loss", "1e400*L2", "positive finite"),
        ("--loss", "-100*L2", "positive finite"),
        ("--loss", "0*L2", "positive finite"),
        ("--loss", "nan*L2", "positive finite"),
        ("--trainable-noise", "99", "the network has 12"),
        ("--bad-noise-layers", "99", "noise layer 99 does not exist"),
        ("--samples", "0", "at least 1"),
    ] {
        let args: Vec<&str> = base.into_iter().chain([flag, value]).collect();
        refused(&args, what);
    }
    assert!(!t.path("o").exists() || listing(&t.path("o")).is_empty());
    let (model, ..) = latents(&t);
    refused(&["generate", "--model", s(&model), "--truncation", "nan", "-o", "x.png"], "finite");
    refused(&["edit", "l", "--direction", "d", "--scale", "1,nan", "-o", "x.png"], "not a number");
    refused(&["edit", "l", "--direction", "d", "--tile", "4", "-o", "x.png"], "4");
}

/// An output place that cannot be written is found before any search, not after the first.
#[test]
fn unwritable_outputs_are_found_before_any_work() {
    let t = TestDir::new();
    let file = t.path("file");
    std::fs::write(&file, b"x").unwrap();
    let face = face("astronaut32.png");
    let model = t.model_128();
    let start = std::time::Instant::now();
    refused(
        &["upsample", &face, "--steps", "50", "--model", s(&model), "-o", s(&file.join("out"))],
        "cannot write in the output folder",
    );
    refused(
        &["upsample", &face, "--steps", "50", "--model", s(&model), "-o", s(&t.path("o"))]
            .into_iter()
            .chain(["--report", s(&file.join("r.json"))])
            .collect::<Vec<_>>(),
        "cannot write the report there",
    );
    // (50 steps would take several seconds: the refusals came first.)
    eprintln!("refusals took {:?}", start.elapsed());
    assert!(!t.path("o").join("astronaut32.png").exists());
}

/// An output is written in the format its name says, or refused before any work.
#[test]
fn outputs_have_the_format_their_name_says() {
    let t = TestDir::new();
    let (model, latent, ..) = latents(&t);
    let jpg = t.path("r.jpg");
    pulse().args(["render", s(&latent), "--model", s(&model), "-o", s(&jpg)]).assert().success();
    assert_eq!(
        image::guess_format(&std::fs::read(&jpg).unwrap()).unwrap(),
        image::ImageFormat::Jpeg
    );
    refused(
        &["render", s(&latent), "--model", s(&model), "-o", s(&t.path("r.tiff"))],
        ".png, .jpg",
    );
    assert!(!t.path("r.tiff").exists());
    let g = t.path("g.jpg");
    pulse().args(["generate", "--model", s(&model), "-o", s(&g)]).assert().success();
    assert!(g.is_file(), "an image name is a file, not a folder");
    assert_eq!(image::guess_format(&std::fs::read(&g).unwrap()).unwrap(), image::ImageFormat::Jpeg);
    refused(
        &["target", "examples/hair/regions32.png", "--hair", "blond", "-o", s(&t.path("t.jpg"))],
        "alpha",
    );
    // A model given as a file says so.
    refused(
        &[
            "render",
            s(&latent),
            "--model",
            s(&model.join("synthesis.pt")),
            "-o",
            s(&t.path("x.png")),
        ],
        "not a folder",
    );
}

/// The same content gives the same bytes: metadata is written in a fixed order.
#[test]
fn identical_runs_write_identical_files() {
    let t = TestDir::new();
    let model = t.model("m", "synthesis_128_c32.pt", true);
    for out in ["a", "b"] {
        pulse()
            .args(["generate", "--model", s(&model), "--seed", "5", "-o", s(&t.path(out))])
            .assert()
            .success();
    }
    let name = "seed5_0.latent.safetensors";
    assert_eq!(
        std::fs::read(t.path("a").join(name)).unwrap(),
        std::fs::read(t.path("b").join(name)).unwrap()
    );
    let (a, b) = (t.path("a").join(name), t.path("a").join("x.latent.safetensors"));
    let mut other = pulse::latent::LatentFile::read(&a).unwrap();
    other.w_plus = &other.w_plus + 0.5;
    other.write(&b).unwrap();
    for d in ["d1.safetensors", "d2.safetensors"] {
        pulse().args(["direction", s(&a), s(&b), "-o", s(&t.path(d))]).assert().success();
    }
    assert_eq!(
        std::fs::read(t.path("d1.safetensors")).unwrap(),
        std::fs::read(t.path("d2.safetensors")).unwrap()
    );
    pulse()
        .args(["direction", s(&a), s(&a), "-o", s(&t.path("zero.safetensors"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("same latent file"));
}

/// Each command fed its worst inputs gets the exit code stated beside it (2: refused; 3: the search
/// ran and did not converge; 0: done, with a warning) and no panic reaches stderr.
#[test]
fn worst_inputs_get_their_stated_exit_codes() {
    let t = TestDir::new();
    let (model, latent, other, direction) = latents(&t);
    let m = s(&model);
    let file = |name: &str, bytes: &[u8]| {
        let p = t.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let empty = file("empty.png", b"");
    let bomb = file("bomb.png", &png_bomb());
    let (tiny, wide) = (t.path("tiny.png"), t.path("wide.png"));
    write_rgb_png(&tiny, 2, 2);
    write_rgb_png(&wide, 64, 2);
    // A latent of the 1024 network (18 layers) for the 128 one (12), and one with NaN.
    let big_model = t.model("big", "synthesis_1024_c16.pt", false);
    let big_latent = t.path("big.latent.safetensors");
    pulse()
        .args(["upsample", &face("astronaut32.png"), "--steps", "1", "--eps", "1", "-q"])
        .args(["--model", s(&big_model), "-o", s(&t.path("big"))])
        .assert()
        .success();
    std::fs::rename(t.path("big/astronaut32.latent.safetensors"), &big_latent).unwrap();
    let nan_latent = t.path("nan.latent.safetensors");
    let mut l = pulse::latent::LatentFile::read(&latent).unwrap();
    l.w_plus = l.w_plus.fill_(f64::NAN);
    l.write(&nan_latent).unwrap();
    let out = |n: &str| t.path(n).display().to_string();
    let cases: Vec<(i32, Vec<String>)> = [
        (2, vec!["upsample", s(&empty), s(&bomb), s(&tiny), s(&wide), "--steps", "1", "-q"]),
        (3, vec!["upsample", s(&tiny), "--steps", "1", "--tile-latent", "--noise", "zero", "-q"]),
        (2, vec!["upsample", s(&tiny), "--steps", "1", "--init", s(&big_latent), "-q"]),
        (2, vec!["upsample", s(&tiny), "--steps", "1", "--loss", "GEOCROSS", "-q"]),
        (2, vec!["upsample", s(&tiny), "--steps", "1", "--mask", s(&wide), "-q"]),
        (2, vec!["render", s(&big_latent)]),
        (2, vec!["render", s(&nan_latent)]),
        (2, vec!["render", s(&empty)]),
        (2, vec!["edit", s(&big_latent), "--direction", s(&direction)]),
        (2, vec!["edit", s(&latent), "--direction", s(&direction), "--scale", "1e300"]),
        (2, vec!["edit", s(&latent), "--direction", s(&direction), "--layers", "11-0"]),
        (2, vec!["edit", s(&latent), "--direction", s(&direction), "--layers", "40"]),
        (2, vec!["edit", s(&latent), "--direction", s(&latent)]),
        (2, vec!["direction", s(&latent), s(&big_latent)]),
        (2, vec!["direction", s(&latent), s(&other), s(&latent)]),
        // A photo of another size is centre-cropped and resized, with a warning.
        (0, vec!["embed", s(&tiny), "--steps", "1"]),
        (2, vec!["embed", s(&bomb), "--steps", "1"]),
        (2, vec!["embed", s(&tiny), "--steps", "1", "--perceptual", s(&latent)]),
        (2, vec!["target", s(&tiny), "--hair", "#zzzzzz"]),
        (2, vec!["target", s(&wide), "--hair", "blond"]),
        (2, vec!["target", s(&empty), "--hair", "blond"]),
        (2, vec!["convert", s(&empty)]),
        (2, vec!["generate", "--count", "2", "--truncation", "1e300"]),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (code, mut args))| {
        let o = out(&format!("o{i}.png"));
        let needs_model = !matches!(args[0], "direction" | "target" | "convert");
        let mut v: Vec<String> = args.drain(..).map(String::from).collect();
        if needs_model {
            v.extend(["--model".to_string(), m.to_string()]);
        }
        if v[0] == "upsample" {
            v.extend(["-o".to_string(), out(&format!("o{i}"))]);
        } else if v[0] == "convert" || v[0] == "direction" {
            v.extend(["-o".to_string(), out(&format!("o{i}.safetensors"))]);
        } else if v[0] == "embed" {
            v.extend(["-o".to_string(), out(&format!("o{i}.latent.safetensors"))]);
        } else {
            v.extend(["-o".to_string(), o]);
        }
        (code, v)
    })
    .collect();
    let mut wrong = Vec::new();
    for (want, args) in cases {
        let output = pulse().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();
        assert!(!stderr.contains("panicked"), "pulse {}: {stderr}", args.join(" "));
        if code != Some(want) {
            wrong.push(format!(
                "pulse {}: exit {code:?}, expected {want}: {stderr}",
                args.join(" ")
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A latent file holding NaN or infinity (in W+ or in a noise map) is refused by every command
/// that reads one, in one line naming the file and the problem.
#[test]
fn a_latent_holding_nan_is_refused() {
    let t = TestDir::new();
    let (model, latent, other, direction) = latents(&t);
    let tiny = t.path("tiny.png");
    write_rgb_png(&tiny, 2, 2);
    for (name, tensor) in [("w_plus", "'w_plus'"), ("noise", "'noise.0'")] {
        let mut l = pulse::latent::LatentFile::read(&latent).unwrap();
        if name == "w_plus" {
            l.w_plus = l.w_plus.fill_(f64::NAN);
        } else {
            l.noise[0] = l.noise[0].fill_(f64::INFINITY);
        }
        let bad = t.path(&format!("{name}-bad.latent.safetensors"));
        l.write(&bad).unwrap();
        let b = s(&bad).to_string();
        let o = |e: &str| t.path(&format!("{name}-out.{e}")).display().to_string();
        let (png, edited, dir, d) = (o("png"), o("e.png"), o("safetensors"), o("d"));
        let runs: [Vec<&str>; 4] = [
            vec!["render", &b, "--model", s(&model), "-o", &png],
            vec!["edit", &b, "--direction", s(&direction), "--model", s(&model), "-o", &edited],
            vec!["direction", &b, s(&other), "-o", &dir],
            vec!["upsample", s(&tiny), "--init", &b, "--steps", "1", "-q", "--model", s(&model)]
                .into_iter()
                .chain(["-o", d.as_str()])
                .collect(),
        ];
        for args in runs {
            let out = pulse().args(&args).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "pulse {}: {stderr}", args.join(" "));
            let line = stderr.lines().find(|l| l.contains("bad.latent")).unwrap_or_default();
            assert!(
                line.contains(&format!("{name}-bad.latent.safetensors"))
                    && line.contains(tensor)
                    && line.contains("NaN or infinite"),
                "pulse {}: {stderr}",
                args.join(" ")
            );
        }
    }
}
