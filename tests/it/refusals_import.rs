//! What a careless or unlucky user can do to `pulse import` and `pulse download`, class by class
//! (like tests/it/refusals.rs): `--force` never destroys what pulse did not write, two downloads
//! never share a folder, Ctrl-C stops a long Gaussian fit, numbers and arguments are checked
//! before any work, exit codes follow the README table, and messages are words, not library
//! internals.

use crate::common::{fixture, pulse, s, TestDir};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `pulse ARGS` must exit `code` and say `what`, with no panic.
fn exits(args: &[&str], code: i32, what: &str) -> String {
    let o = pulse().args(args).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "pulse {}: {err}", args.join(" "));
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(what), "pulse {}: expected '{what}' in: {err}", args.join(" "));
    err
}

fn import_into(out: &Path, sources: &[&Path], extra: &[&str]) -> std::process::Output {
    let mut cmd = pulse();
    cmd.arg("import");
    for p in sources {
        cmd.arg(s(p));
    }
    cmd.args(["-o", s(out), "-q"]).args(extra).output().unwrap()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

// ---- --force replaces only what pulse wrote ---------------------------------------------------

#[test]
fn force_replaces_only_the_files_pulse_wrote() {
    let t = TestDir::new();
    let out = t.path("m");
    assert!(import_into(&out, &[&fixture("sg2_tiny_ada.pkl")], &[]).status.success());
    let old = std::fs::read(out.join("synthesis.safetensors")).unwrap();
    write(&out.join("notes.txt"), "mine");
    write(&out.join("sub/keep.txt"), "mine too");
    let source = out.join("weights.pt");
    std::fs::copy(fixture("synthesis_128_c32.pt"), &source).unwrap();
    let o = import_into(&out, &[&source], &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_ne!(std::fs::read(out.join("synthesis.safetensors")).unwrap(), old);
    for kept in ["notes.txt", "sub/keep.txt", "weights.pt"] {
        assert!(out.join(kept).exists(), "--force deleted {kept}");
    }
    // The old StyleGAN2 mapping file was pulse's and belongs to no model now: removed, and said.
    assert!(!out.join("mapping.safetensors").exists());
    let o = pulse()
        .args(["import", s(&fixture("sg2_tiny_rosinality.pt")), "-o", s(&out), "--force"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("replaced the previous model's synthesis.safetensors"), "{err}");
    assert!(out.join("weights.pt").exists() && out.join("notes.txt").exists());
}

#[test]
fn the_source_inside_the_folder_is_never_deleted() {
    let t = TestDir::new();
    let out = t.path("d");
    let source = out.join("synthesis.pt");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(fixture("synthesis_128_c32.pt"), &source).unwrap();
    write(&out.join("face.png"), "not a model file");
    let before = std::fs::read(&source).unwrap();
    // The folder already holds these very bytes as its synthesis file: nothing to do.
    let o = import_into(&out, &[&source], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!out.join("model.json").exists(), "an installed model was rewritten");
    // With --force the model files are written beside the source, which stays.
    let o = import_into(&out, &[&source], &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&source).unwrap(), before);
    assert!(out.join("face.png").exists() && out.join("synthesis.safetensors").exists());
}

#[test]
fn a_symlinked_output_is_refused_not_followed() {
    let t = TestDir::new();
    let real = t.path("real");
    assert!(import_into(&real, &[&fixture("sg2_tiny_ada.pkl")], &[]).status.success());
    write(&real.join("notes.txt"), "mine");
    let link = t.path("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let before: Vec<_> =
        std::fs::read_dir(&real).unwrap().flatten().map(|e| e.file_name()).collect();
    exits(
        &["import", s(&fixture("synthesis_128_c32.pt")), "-o", s(&link), "--force"],
        2,
        "symbolic link",
    );
    let after: Vec<_> =
        std::fs::read_dir(&real).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(before.len(), after.len());
}

#[test]
fn same_weights_under_another_name_are_already_installed() {
    let t = TestDir::new();
    let out = t.model("m", "synthesis_128_c32.pt", false);
    let o = import_into(&out, &[&fixture("synthesis_128_c32.pt")], &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(!out.join("synthesis.safetensors").exists(), "nothing is written");
    let o = pulse().args(["import", s(&fixture("synthesis_128_c32.pt")), "-o", s(&out)]).output();
    assert!(stderr(&o.unwrap()).contains("already holds exactly these weights"));
}

#[test]
fn a_folder_of_other_files_is_refused_with_that_reason() {
    let t = TestDir::new();
    let out = t.path("photos");
    write(&out.join("me.png"), "x");
    exits(&["import", s(&fixture("sg2_tiny_ada.pkl")), "-o", s(&out)], 2, "holds no model");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}

// ---- two downloads into one folder -------------------------------------------------------------

#[test]
fn a_second_download_into_the_same_folder_is_refused() {
    let t = TestDir::new();
    let out = t.path("m");
    let dl = pulse::pipelines::download::download_dir(&out);
    std::fs::create_dir_all(&dl).unwrap();
    let _held = pulse::files::DirLock::try_acquire(&dl).unwrap().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/x.pt", listener.local_addr().unwrap().port());
    exits(&["download", "ffhq", "-o", s(&out), "--source", &url], 2, "another pulse download");
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "it connected before refusing");
}

// ---- Ctrl-C during the Gaussian fit ------------------------------------------------------------

#[test]
fn ctrl_c_stops_a_huge_gaussian_fit_with_130_and_writes_nothing() {
    let t = TestDir::new();
    let out = t.path("m");
    let bin = assert_cmd::cargo::cargo_bin("pulse");
    let mut child = std::process::Command::new(bin)
        .args(["import", s(&fixture("synthesis_128_c32.pt")), s(&fixture("mapping.pt"))])
        .args(["-o", s(&out), "--fit-samples", "99999999999999999"])
        .current_dir(t.path(""))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let sent = Instant::now();
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(kill.unwrap().success());
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(sent.elapsed() < Duration::from_secs(20), "took {:?} to stop", sent.elapsed());
    assert!(err.contains("interrupted"), "{err}");
    assert!(!out.exists());
    let temps = std::fs::read_dir(t.path("")).unwrap().flatten();
    assert!(temps.filter(|e| e.file_name().to_string_lossy().starts_with('.')).count() == 0);
}

// ---- numbers and arguments checked before work -------------------------------------------------

#[test]
fn fit_samples_below_two_are_refused() {
    let t = TestDir::new();
    for n in ["0", "1", "-5"] {
        let o = pulse()
            .args(["import", s(&fixture("synthesis_128_c32.pt")), "-o", s(&t.path("m"))])
            .arg(format!("--fit-samples={n}"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "--fit-samples {n}: {}", stderr(&o));
        assert!(stderr(&o).contains("fit-samples"), "{}", stderr(&o));
        assert!(!t.path("m").exists());
    }
}

#[test]
fn a_malformed_checksum_or_url_is_refused_before_any_connection() {
    let t = TestDir::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://127.0.0.1:{}/x.pt", listener.local_addr().unwrap().port());
    let out = t.path("m");
    exits(&["download", "ffhq", "-o", s(&out), "--source", &url, "--sha256", "xyz"], 2, "SHA-256");
    assert!(listener.accept().is_err(), "it connected before checking --sha256");
    for bad in ["http:///x.pt", "http://exa mple.org/x.pt", "https://host:99999/x"] {
        exits(&["download", "ffhq", "-o", s(&out), "--source", bad], 2, "not a valid URL");
    }
    assert!(!out.exists());
}

#[test]
fn a_refused_connection_is_retried_with_backoff() {
    let t = TestDir::new();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/x.pt");
    let start = Instant::now();
    let o = pulse().args(["download", "ffhq", "-o", s(&t.path("m")), "--source", &url]).output();
    let o = o.unwrap();
    let took = start.elapsed();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // Four attempts with pauses of 0.5, 1 and 2 s between them.
    assert!(took >= Duration::from_millis(3400), "four attempts in {took:?}: no backoff");
}

// ---- exit codes and messages -------------------------------------------------------------------

#[test]
fn exit_codes_follow_the_table() {
    let t = TestDir::new();
    let file = t.path("file");
    write(&file, "x");
    exits(&["import", s(&fixture("synthesis_128_c32.pt")), "-o", s(&file)], 2, "not a folder");
    exits(&["import", s(&t.path("missing.pt")), "-o", s(&t.path("m"))], 2, "missing.pt");
    exits(&["import", s(&fixture("sg2_hostile_reduce.pkl")), "-o", s(&t.path("m"))], 2, "refused");
    exits(&["download", "ffhq", "--source", "gopher://x", "-o", s(&t.path("m"))], 2, "unknown");
}

/// A safetensors file whose header has the given tensor entry.
fn safetensors_with(path: &Path, entry: &str, data: usize) {
    let header = format!("{{\"w\":{entry}}}");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, data));
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn messages_name_no_library_internals() {
    let t = TestDir::new();
    let cases = [
        (r#"{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}"#, 8),
        (r#"{"dtype":"F32","shape":[2],"data_offsets":[4,12]}"#, 12),
        (r#"{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}"#, 8),
    ];
    for (i, (entry, data)) in cases.into_iter().enumerate() {
        let file = t.path(&format!("bad{i}.safetensors"));
        safetensors_with(&file, entry, data);
        let err = exits(&["import", s(&file), "-o", s(&t.path("m"))], 2, "bad");
        for internal in ["TensorInvalidInfo", "InvalidOffset", "ValidationOverflow", "Error {"] {
            assert!(!err.contains(internal), "{err}");
        }
    }
}

#[test]
fn the_fit_check_never_prints_inf() {
    let t = TestDir::new();
    // A mapping whose outputs overflow float32.
    let sd = pulse::weights::load(&fixture("mapping.pt")).unwrap();
    let huge: Vec<(String, tch::Tensor)> =
        sd.iter().map(|(k, v)| (k.to_string(), v * 1e30)).collect();
    let mapping = t.path("mapping.safetensors");
    pulse::weights::save_safetensors(&pulse::weights::StateDict::from_pairs(huge), &mapping, None)
        .unwrap();
    let o = pulse()
        .args(["import", s(&fixture("synthesis_128_c32.pt")), s(&mapping)])
        .args(["-o", s(&t.path("m")), "--fit-samples", "100"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!err.contains("inf") && !err.contains("NaN"), "{err}");
}
