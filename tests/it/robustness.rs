//! Interrupted batches, full disks, concurrent runs and foreign latents: nothing partial is ever
//! left under an output name, and a rerun finishes the job exactly.

use crate::common::*;
use predicates::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("pulse")
}

/// A folder of three 32x32 faces.
fn three_inputs(t: &TestDir) -> PathBuf {
    let dir = t.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(face("astronaut32.png"), dir.join("a.png")).unwrap();
    std::fs::copy(face("cameraman32.png"), dir.join("b.png")).unwrap();
    write_rgb_png(&dir.join("c.png"), 32, 32);
    dir
}

/// Every output in `dir` is complete: PNGs decode, latents validate. Temporary files are refused
/// unless `tmp_allowed` (a SIGKILL may land mid-write, which cuts short only the temporary file).
fn assert_only_complete_outputs(dir: &Path, tmp_allowed: bool) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(tmp_allowed || !name.ends_with(".tmp"), "temporary file left behind: {name}");
        if name.ends_with(".latent.safetensors") {
            pulse::latent::LatentFile::read(&path).unwrap();
        } else if name.ends_with(".png") {
            image::open(&path).unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
        }
    }
}

fn upsample_cmd(inputs: &Path, model: &Path, out: &Path, steps: &str) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(["upsample", s(inputs), "--steps", steps, "--seed", "11", "--eps", "1", "-q"])
        .args(["--model", s(model), "-o", s(out)])
        .env_remove("PULSE_MODEL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Waits until `path` exists, up to five minutes (a loaded 2-core machine is slow).
fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < Duration::from_secs(300), "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

fn compare_latents(a: &Path, b: &Path) {
    for name in ["a", "b", "c"] {
        let d = w_plus_diff(a, b, name);
        assert!(d < 1e-5, "{name}: resumed result differs from the uninterrupted one by {d}");
    }
}

#[test]
fn ctrl_c_stops_cleanly_and_a_rerun_matches_an_uninterrupted_run() {
    let t = TestDir::new();
    let model = t.model_128();
    let inputs = three_inputs(&t);
    let out = t.path("out");
    let mut child = upsample_cmd(&inputs, &model, &out, "30").spawn().unwrap();
    wait_for(&out.join("a.latent.safetensors"));
    signal(child.id(), "-INT");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "interrupted run should exit 130");
    assert!(!out.join("c.png").exists(), "the run went on after Ctrl-C");
    assert_only_complete_outputs(&out, false);

    let rerun = upsample_cmd(&inputs, &model, &out, "30").output().unwrap();
    assert_eq!(rerun.status.code(), Some(0), "{}", String::from_utf8_lossy(&rerun.stderr));
    let whole = t.path("whole");
    assert_eq!(upsample_cmd(&inputs, &model, &whole, "30").status().unwrap().code(), Some(0));
    compare_latents(&out, &whole);
}

#[test]
fn killed_run_leaves_nothing_partial_and_resumes() {
    let t = TestDir::new();
    let model = t.model_128();
    let inputs = three_inputs(&t);
    let out = t.path("out");
    let mut child = upsample_cmd(&inputs, &model, &out, "30").spawn().unwrap();
    wait_for(&out.join("a.png"));
    signal(child.id(), "-KILL");
    child.wait().unwrap();
    assert_only_complete_outputs(&out, true);
    assert_eq!(upsample_cmd(&inputs, &model, &out, "30").status().unwrap().code(), Some(0));
    let whole = t.path("whole");
    assert_eq!(upsample_cmd(&inputs, &model, &whole, "30").status().unwrap().code(), Some(0));
    compare_latents(&out, &whole);
}

#[test]
fn full_disk_is_a_clear_error_without_partial_outputs() {
    let t = TestDir::new();
    let model = t.model_128();
    let inputs = three_inputs(&t);
    let out = t.path("out");
    std::fs::create_dir_all(&out).unwrap();
    // A file size limit of 8 KiB stands in for a full disk: the first 128x128 PNG does not fit.
    // SIGXFSZ is ignored so that the write fails with EFBIG instead of killing the process.
    let cmd = format!(
        "trap '' XFSZ; ulimit -f 8; exec '{}' upsample '{}' --steps 1 --seed 1 --eps 1 -q --model '{}' -o '{}'",
        bin().display(),
        inputs.display(),
        model.display(),
        out.display()
    );
    let output =
        Command::new("bash").args(["-c", &cmd]).env_remove("PULSE_MODEL").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("a.png"), "the error names the file: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(!out.join("a.png").exists());
    assert_only_complete_outputs(&out, false);
}

/// Two runs on one output folder would mix results drawn from different seeds: while one holds
/// the folder's lock the other is refused (exit 2, saying why), and the folder holds only the
/// first run's complete outputs.
#[test]
fn a_second_run_on_a_busy_folder_is_refused() {
    let t = TestDir::new();
    let model = t.model_128();
    let inputs = three_inputs(&t);
    let out = t.path("out");
    let mut a = upsample_cmd(&inputs, &model, &out, "40").spawn().unwrap();
    wait_for(&out.join(pulse::files::LOCK_FILE));
    let b = upsample_cmd(&inputs, &model, &out, "3").output().unwrap();
    let a_ok = a.wait().unwrap().success();
    let b_stderr = String::from_utf8_lossy(&b.stderr);
    assert!(a_ok, "the first run should finish");
    assert_eq!(b.status.code(), Some(2), "{b_stderr}");
    assert!(b_stderr.contains("another pulse run is writing to this folder"), "{b_stderr}");
    assert_only_complete_outputs(&out, false);
    for name in ["a", "b", "c"] {
        assert!(out.join(format!("{name}.png")).is_file());
    }
    // Once the folder is free, a rerun finds everything done.
    upsample_cmd(&inputs, &model, &out, "40").status().unwrap().success().then_some(()).unwrap();
}

#[test]
fn output_folder_that_is_a_file_is_refused() {
    let t = TestDir::new();
    let not_a_dir = t.path("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    pulse()
        .args(["upsample", &face("astronaut32.png"), "--steps", "1", "-q"])
        .args(["--model", s(&t.model_128()), "-o", s(&not_a_dir)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot write in the output folder"));
    assert_eq!(std::fs::read(&not_a_dir).unwrap(), b"x");
}

#[test]
fn init_from_another_model_is_refused() {
    let t = TestDir::new();
    let m = t.model("gen", "synthesis_128_c32.pt", true);
    pulse().args(["generate", "--model", s(&m), "-o", s(&t.path("f.png"))]).assert().success();
    // A model folder with the same architecture but another synthesis file.
    let other = t.model_converted("other");
    pulse()
        .args(["upsample", &face("astronaut32.png"), "--steps", "1", "-q"])
        .args(["--init", s(&t.path("f.latent.safetensors"))])
        .args(["--model", s(&other), "-o", s(&t.path("out"))])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("another model"));
}

/// `align` and `upsample --align` fed their worst inputs and flags: the exit code stated beside
/// each (2: some photo or the request was refused), no panic on stderr, and no photo changed.
#[test]
fn worst_photos_get_their_stated_exit_codes_from_align_and_upsample_align() {
    let t = TestDir::new();
    let dir = t.path("photos");
    std::fs::create_dir_all(&dir).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixture_photo =
        |name: &str| std::fs::read(root.join("tests/fixtures/align").join(name)).unwrap();
    let jpeg = fixture_photo("astronaut.jpg");
    let bomb = png_bomb();
    let mut corrupt = jpeg[..jpeg.len() / 2].to_vec();
    corrupt.extend_from_slice(b"\xFF\xD9");
    let mut flipped = jpeg.clone();
    for b in flipped.iter_mut().skip(jpeg.len() / 3).step_by(97) {
        *b ^= 0x5A;
    }
    for (name, bytes) in [
        ("empty.jpg", Vec::new()),
        ("bomb.png", bomb),
        ("cut.jpg", jpeg[..jpeg.len() / 2].to_vec()),
        ("corrupt.jpg", corrupt),
        ("flipped.jpg", flipped),
        ("text.png", b"not an image at all".to_vec()),
        ("face.jpg", jpeg.clone()),
        ("same.png", fixture_photo("palette.png")),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    image::RgbImage::new(1, 1).save(dir.join("one.png")).unwrap();
    image::RgbImage::new(3, 5000).save(dir.join("thin.png")).unwrap();
    std::fs::create_dir_all(dir.join("folder.png")).unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere.png"), dir.join("dangling.png")).unwrap();
    let before: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    let out = |n: &str| t.path(n).display().to_string();
    let d = s(&dir);
    let model = root.join("models/test-1024").display().to_string();
    let cases: Vec<(i32, Vec<String>)> = [
        (2, vec!["align", d, "-o", &out("a1")]),
        (2, vec!["align", d, "-o", d]),
        (2, vec!["align", d, "-o", &out("a2"), "--all-faces", "--save-aligned", "--size", "1024"]),
        (2, vec!["align", d, "-o", &out("a3"), "--min-face", "4"]),
        (2, vec!["align", d, "-o", &out("a4"), "--min-face", "1e30"]),
        (2, vec!["align", d, "-o", &out("a5"), "--report", d]),
        (2, vec!["align", d, "-o", &out("a6"), "--shard", "auto"]),
        (
            2,
            vec![
                "upsample", d, "--align", "-o", d, "--steps", "1", "--eps", "1", "--model", &model,
            ],
        ),
        (
            2,
            vec![
                "upsample",
                d,
                "--align",
                "-o",
                &out("u1"),
                "--steps",
                "1",
                "--eps",
                "1",
                "--model",
                &model,
                "--samples",
                "2",
                "--compare",
            ],
        ),
        (
            2,
            vec![
                "upsample",
                d,
                "--align",
                "-o",
                &out("u2"),
                "--steps",
                "1",
                "--model",
                &model,
                "--report",
                &format!("{d}/face.jpg"),
            ],
        ),
    ]
    .into_iter()
    .map(|(code, v)| (code, v.into_iter().map(String::from).collect()))
    .collect();
    let mut wrong = Vec::new();
    for (want, args) in cases {
        let output = Command::new(bin())
            .args(&args)
            .args(["--device", "cpu", "-q"])
            .env("PULSE_MTCNN", root.join("models/mtcnn"))
            .env_remove("PULSE_MODEL")
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("AWS_BATCH_JOB_ARRAY_INDEX")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();
        assert!(!stderr.contains("panicked"), "pulse {}: {stderr}", args.join(" "));
        if code != Some(want) {
            wrong.push(format!(
                "pulse {}: exit {code:?}, expected {want}: {stderr}",
                args.join(" ")
            ));
        }
        for (path, bytes) in &before {
            assert_eq!(
                &std::fs::read(path).unwrap(),
                bytes,
                "pulse {}: {} changed",
                args.join(" "),
                path.display()
            );
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The hostile sweep of issue 32: runs meeting each other and the files already there. While a
/// shard holds its lock, only shards of the same split write beside it (an unsharded run, a
/// shard of another split and an `align` are refused, nothing written); a requeued shard keeps
/// what its report said; `report merge -o` never writes over an input; a forced import never
/// leaves the previous network's fit in use. Every input stays as it was.
#[test]
fn reruns_requeues_forced_imports_and_shared_folders_lose_nothing() {
    let t = TestDir::new();
    let model = t.model_128();
    let inputs = three_inputs(&t);
    let snapshot = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let inputs_before = snapshot(&inputs);
    let out = t.path("out");
    let reports = t.path("reports/");
    std::fs::create_dir_all(&out).unwrap();
    let run = |extra: &[&str]| {
        let mut cmd = upsample_cmd(&inputs, &model, &out, "2");
        let o = cmd.args(["--report", s(&reports)]).args(extra).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };

    // Shared folder: a live shard 0/2 lock.
    let lock = pulse::files::DirLock::acquire(&out, ".pulse.lock.0-of-2").unwrap().unwrap();
    for extra in [&[][..], &["--shard", "0/3"][..]] {
        let (code, stderr) = run(extra);
        assert_eq!(code, Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains("shard 0/2"), "{extra:?}: {stderr}");
    }
    let align = Command::new(bin())
        .args(["align", s(&inputs), "--device", "cpu", "-q", "-o", s(&out)])
        .env("PULSE_MTCNN", Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mtcnn"))
        .output()
        .unwrap();
    assert_eq!(align.status.code(), Some(2), "{}", String::from_utf8_lossy(&align.stderr));
    assert!(snapshot(&out).iter().all(|(n, _)| n.starts_with(".pulse.lock")), "nothing written");
    // Shard 1/2 of the same split works beside it.
    let (code, stderr) = run(&["--shard", "1/2"]);
    assert!(matches!(code, Some(0 | 3)), "{stderr}");
    drop(lock);

    // Requeue: shard 0/2 runs, then runs again; the summary and the report stay the same.
    let (first, stderr) = run(&["--shard", "0/2"]);
    assert!(matches!(first, Some(0 | 3)), "{stderr}");
    let summary = || {
        let o = pulse().args(["report", "summary", s(&reports)]).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let before = summary();
    let report0 = reports.join("report.0-of-2.json");
    let images = |r: &Path| read_json(r)["images"].as_array().unwrap().len();
    let n0 = images(&report0);
    let (again, stderr) = run(&["--shard", "0/2"]);
    assert_eq!(again, first, "{stderr}");
    assert_eq!(summary(), before);
    assert_eq!(images(&report0), n0, "the requeued shard's report lost entries");
    assert!(before.1.contains("2 of 2 shards, 3 inputs: 3 done"), "{}", before.1);

    // report merge -o onto an input: refused, the input untouched.
    let target = inputs.join("a.png");
    pulse()
        .args(["report", "merge", s(&report0), s(&reports.join("report.1-of-2.json"))])
        .args(["-o", s(&target)])
        .assert()
        .code(2);

    // A forced import over a hand-made folder: its fit is not used for the new network.
    let hand = t.path("hand");
    std::fs::create_dir_all(&hand).unwrap();
    std::fs::copy(fixture("synthesis_128_c32.pt"), hand.join("synthesis.pt")).unwrap();
    std::fs::copy(fixture("gaussian_fit_ffhq.pt"), hand.join("gaussian_fit.pt")).unwrap();
    pulse()
        .args(["import", s(&fixture("sg2_tiny_ada.pkl")), "-o", s(&hand), "--force", "-q"])
        .assert()
        .success();
    let up = upsample_cmd(&inputs, &hand, &t.path("out2"), "2").output().unwrap();
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert_eq!(up.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("gaussian_fit.pt"), "{stderr}");
    assert!(hand.join("gaussian_fit.pt").is_file(), "the user's file stays");

    assert_eq!(snapshot(&inputs), inputs_before, "an input was changed");
}
