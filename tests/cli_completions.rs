//! `pulse completions SHELL` and `pulse man`: generated from the parser, so each must know every
//! command the binary has (the list is read from `pulse --help`, not written here).
mod common;
use common::{pulse, TestDir};

/// The commands `pulse --help` lists (besides clap's `help`).
fn commands() -> Vec<String> {
    let out = pulse().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let section = help.split("Commands:").nth(1).expect("a Commands section");
    let names: Vec<String> = section
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect();
    for expected in ["upsample", "downscale", "info", "completions", "man"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from --help: {names:?}");
    }
    names
}

#[test]
fn every_shells_script_names_every_command() {
    let commands = commands();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = pulse().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.len() > 1000, "{shell}: only {} bytes", script.len());
        for c in &commands {
            assert!(script.contains(c.as_str()), "{shell} script does not mention `{c}`");
        }
        // Flags of a command come through too, not only the command names.
        let eps_flag = if shell == "fish" { "-l eps" } else { "--eps" };
        assert!(script.contains(eps_flag), "{shell}: no {eps_flag}");
    }
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let out = pulse().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bash") && err.contains("powershell"), "{err}");
}

#[test]
fn man_page_lists_every_command() {
    let out = pulse().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{}", &page[..80.min(page.len())]);
    assert!(page.contains(".TH pulse 1"), "no title");
    for c in commands() {
        // roff escapes every hyphen.
        let listed = format!("pulse\\-{}(1)", c.replace('-', "\\-"));
        assert!(page.contains(&listed), "man page does not list `{c}` as {listed}");
    }
}

#[test]
fn man_pages_into_a_folder_one_per_command() {
    let dir = TestDir::new();
    let out_dir = dir.path("man1");
    pulse().args(["man", "-o"]).arg(&out_dir).assert().success();
    let page = std::fs::read_to_string(out_dir.join("pulse.1")).unwrap();
    assert!(page.contains(".TH pulse 1"));
    for c in commands() {
        let sub = std::fs::read_to_string(out_dir.join(format!("pulse-{c}.1")))
            .unwrap_or_else(|e| panic!("pulse-{c}.1: {e}"));
        assert!(sub.contains(".SH OPTIONS") || c == "man", "pulse-{c}.1 has no options");
    }
    // The upsample page documents its flags with their help.
    let upsample = std::fs::read_to_string(out_dir.join("pulse-upsample.1")).unwrap();
    assert!(upsample.contains("\\-\\-eps") && upsample.contains("\\-\\-compare"));
}

/// A reader that goes away early (`pulse man | head -1`) ends `pulse` quietly, without a panic
/// message: the pipe is closed before `pulse` writes anything.
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("pulse"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.status.success() || stderr.is_empty(), "{:?}: {stderr}", out.status);
}
