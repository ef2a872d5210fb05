//! The exit code of every class, on every command (README, "Exit codes"): 0 success, 1 a failure
//! while working, 2 refused (bad command line, a setting or an input that cannot be used),
//! 3 not converged (`upsample`), 130 interrupted. Scripts depend on these.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A shell command line that runs `pulse ARGS` with writes of even one byte failing (EFBIG, as
/// on a full disk); empty files can still be created.
fn no_space(args: &[&str]) -> Command {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 0; exec '{}' {}",
            assert_cmd::cargo::cargo_bin("pulse").display(),
            quoted.join(" ")
        ))
        .env_remove("PULSE_MODEL");
    cmd
}

fn code_of(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_code(args: &[&str], code: i32) -> String {
    let out = pulse().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "pulse {}: {stderr}", args.join(" "));
    stderr
}

/// Everything the commands below read: the 128 network with a mapping, a latent, a direction,
/// a region map and a 32x32 face.
struct Setup {
    t: TestDir,
    model: PathBuf,
    latent: PathBuf,
    other_latent: PathBuf,
    direction: PathBuf,
}

fn setup() -> Setup {
    let t = TestDir::new();
    let model = t.model("m", "synthesis_128_c32.pt", true);
    let faces = t.path("faces/f.png");
    assert_code(&["generate", "--model", s(&model), "--count", "2", "-o", s(&faces)], 0);
    let latent = t.path("faces/f_0.latent.safetensors");
    let other_latent = t.path("faces/f_1.latent.safetensors");
    let direction = t.path("d.safetensors");
    assert_code(&["direction", s(&latent), s(&other_latent), "-o", s(&direction)], 0);
    Setup { t, model, latent, other_latent, direction }
}

fn regions() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/hair/regions32.png").display().to_string()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|a| a.to_string()).collect()
}

const COMMANDS: [&str; 9] = [
    "upsample",
    "generate",
    "render",
    "convert",
    "fit-gaussian",
    "direction",
    "edit",
    "embed",
    "target",
];

impl Setup {
    /// `command` run as it works, its outputs named after `tag`.
    fn working(&self, command: &str, tag: &str) -> Vec<String> {
        let out = |name: &str| self.t.path(&format!("{tag}_{name}")).display().to_string();
        let (m, face) = (s(&self.model), face("astronaut32.png"));
        let (latent, other) = (s(&self.latent), s(&self.other_latent));
        match command {
            "upsample" => strings(&[
                "upsample",
                &face,
                "--steps",
                "1",
                "--eps",
                "1",
                "-q",
                "--model",
                m,
                "-o",
                &out("up"),
            ]),
            "generate" => strings(&["generate", "--model", m, "-o", &out("g.png")]),
            "render" => strings(&["render", latent, "--model", m, "-o", &out("r.png")]),
            "convert" => strings(&[
                "convert",
                s(&self.model.join("synthesis.pt")),
                "-o",
                &out("c.safetensors"),
            ]),
            // It writes into the model folder: each run gets its own copy.
            "fit-gaussian" => {
                let copy = self.t.path(&format!("{tag}_model"));
                std::fs::create_dir_all(&copy).unwrap();
                for f in std::fs::read_dir(&self.model).unwrap() {
                    let f = f.unwrap().path();
                    std::fs::copy(&f, copy.join(f.file_name().unwrap())).unwrap();
                }
                strings(&["fit-gaussian", "--model", s(&copy), "--samples", "100"])
            }
            "direction" => strings(&["direction", latent, other, "-o", &out("d.safetensors")]),
            "edit" => strings(&[
                "edit",
                latent,
                "--direction",
                s(&self.direction),
                "--scale",
                "0,1",
                "--model",
                m,
                "-o",
                &out("e.png"),
            ]),
            "embed" => strings(&[
                "embed",
                &face,
                "--steps",
                "1",
                "-q",
                "--model",
                m,
                "-o",
                &out("em.latent.safetensors"),
            ]),
            "target" => strings(&["target", &regions(), "--hair", "blond", "-o", &out("t.png")]),
            _ => unreachable!("{command}"),
        }
    }

    /// `command` given an input it cannot use.
    fn refused(&self, command: &str) -> Vec<String> {
        let garbage = self.t.path("garbage.bin");
        std::fs::write(&garbage, b"not anything").unwrap();
        let garbage = s(&garbage).to_string();
        let mut args = self.working(command, "refused");
        match command {
            // No mapping network in the folder.
            "generate" | "fit-gaussian" => {
                args = strings(&[command, "--model", s(&self.t.model_128())]);
                args.extend(strings(if command == "generate" {
                    &["-o", "unused.png"]
                } else {
                    &["--samples", "100"]
                }));
            }
            "convert" | "render" | "upsample" | "embed" | "target" => args[1] = garbage,
            "direction" => args[2] = garbage,
            "edit" => args[3] = garbage,
            _ => unreachable!("{command}"),
        }
        args
    }
}

#[test]
fn every_command_exits_0_1_and_2_by_class() {
    let st = setup();
    for command in COMMANDS {
        let ok = st.working(command, "ok");
        assert_code(&ok.iter().map(String::as_str).collect::<Vec<_>>(), 0);
        let refused = st.refused(command);
        let stderr = assert_code(&refused.iter().map(String::as_str).collect::<Vec<_>>(), 2);
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
        // A bad flag is clap's usage error.
        assert_code(&[command, "--no-such-flag"], 2);
        // The working command with no space to write: a failure while working.
        let full = st.working(command, "full");
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let (code, stderr) = code_of(&mut no_space(&full));
        assert_eq!(code, Some(1), "pulse {} with no space: {stderr}", full.join(" "));
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
    }
    let m = s(&st.model);
    assert_code(&["info"], 0);
    assert_code(&["info", "--no-such-flag"], 2);
    assert_code(&["bench", "--model", m, "--steps", "1", "--warmup", "0", "--json"], 0);
    assert_code(&["bench", "--model", s(&st.t.path("nowhere")), "--steps", "1"], 2);
}

/// A panic (libtorch out of memory, a bug) is one line on stderr and exit code 1, not Rust's
/// report and 101 (README, "Exit codes"); `PULSE_TEST_PANIC` makes `pulse` panic with a
/// libtorch-like two-part message.
#[test]
fn a_panic_is_one_line_and_exits_1() {
    let out = pulse().env("PULSE_TEST_PANIC", "1").arg("info").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("pulse: error: internal error: PULSE_TEST_PANIC is set"),
        "{stderr}"
    );
    assert!(!stderr.contains("Exception raised") && !stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn upsample_exits_3_when_an_image_does_not_converge() {
    let t = TestDir::new();
    assert_code(
        &[
            "upsample",
            &face("astronaut32.png"),
            "--steps",
            "1",
            "-q",
            "--model",
            s(&t.model_128()),
            "-o",
            s(&t.path("o")),
        ],
        3,
    );
}

/// Waits until `stderr` of the child has printed a line containing `what`.
fn wait_for_line(child: &mut std::process::Child, what: &str) {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let start = Instant::now();
    for line in lines.by_ref() {
        if line.unwrap().contains(what) {
            // Keep draining so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "'{what}' never printed");
    }
    panic!("stderr closed before '{what}'");
}

fn interrupt(child: &mut std::process::Child) -> Option<i32> {
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    child.wait().unwrap().code()
}

fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(assert_cmd::cargo::cargo_bin("pulse"))
        .args(args)
        .env_remove("PULSE_MODEL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Ctrl-C exits 130 from the commands that run long loops (upsample: tests/it/robustness.rs).
#[test]
fn embed_and_generate_exit_130_on_ctrl_c() {
    let t = TestDir::new();
    let model = t.model("m", "synthesis_128_c32.pt", true);
    // A 32x32 photo is resized, and the note says so once the Ctrl-C handler is in place.
    let mut embed = spawn(&[
        "embed",
        &face("astronaut32.png"),
        "--steps",
        "1000000",
        "-q",
        "--model",
        s(&model),
        "-o",
        s(&t.path("e.latent.safetensors")),
    ]);
    wait_for_line(&mut embed, "centre-cropped");
    assert_eq!(interrupt(&mut embed), Some(130));
    assert!(!t.path("e.latent.safetensors").exists());

    let out = t.path("gen");
    let mut generate =
        spawn(&["generate", "--model", s(&model), "--count", "100000", "-q", "-o", s(&out)]);
    let first = out.join("seed0_0.latent.safetensors");
    let start = Instant::now();
    while !first.exists() {
        assert!(start.elapsed() < Duration::from_secs(300), "no face was written");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(interrupt(&mut generate), Some(130));
    assert!(out.join("seed0_0.png").is_file());
    // Resumable: a rerun skips what is there and writes the rest.
    let rerun = pulse()
        .args(["generate", "--model", s(&model), "--count", "3", "-o", s(&out)])
        .output()
        .unwrap();
    assert_eq!(rerun.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&rerun.stderr).contains("already there"));
    assert!(out.join("seed0_2.png").is_file());
}
