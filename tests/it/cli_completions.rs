//! `pulse completions SHELL` and `pulse man`: generated from the parser, so each must know every
//! command the binary has (the list is read from `pulse --help`, not written here).
use crate::common::{pulse, TestDir};

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
    // Every page a page points to (`pulse-report(1)` lists `pulse-report-merge(1)`) is there.
    let mut pointed = 0;
    for entry in std::fs::read_dir(&out_dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (i, _) in text.match_indices("pulse\\-") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '\\' || *c == '-')
                .collect();
            if text[i + name.len()..].starts_with("(1)") {
                let file = format!("{}.1", name.replace("\\-", "-"));
                assert!(out_dir.join(&file).is_file(), "a page points to {file}, not written");
                pointed += 1;
            }
        }
    }
    assert!(pointed > 10, "only {pointed} references found");
    assert!(out_dir.join("pulse-report-merge.1").is_file());
    // `-o` naming a file is refused in words, not as an OS error.
    let file = dir.path("file");
    std::fs::write(&file, b"x").unwrap();
    let out = pulse().args(["man", "-o"]).arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a folder") && !err.contains("os error"), "{err}");
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

/// The completion scripts offer the values `--upscale` and `--shard` take, not file names.
#[test]
fn completions_offer_the_values_of_upscale_and_shard() {
    let out = pulse().args(["completions", "bash"]).output().unwrap();
    let bash = String::from_utf8(out.stdout).unwrap();
    assert!(bash.contains("compgen -W \"2 4 8\""), "--upscale values missing");
    assert!(bash.contains("compgen -W \"auto\""), "--shard auto missing");
    let out = pulse().args(["completions", "zsh"]).output().unwrap();
    let zsh = String::from_utf8(out.stdout).unwrap();
    let line = |flag: &str| {
        zsh.lines().find(|l| l.contains(&format!("'--{flag}=["))).unwrap_or_default().to_string()
    };
    assert!(line("upscale").contains("(2 4 8)"), "{}", line("upscale"));
    assert!(line("shard").contains("(auto)"), "{}", line("shard"));
}

/// A number that is not one is said in words, not in Rust's ("invalid digit found in string").
#[test]
fn bad_numbers_are_said_in_plain_words() {
    let out = pulse().args(["upsample", "x.png", "--seed", "abc"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--seed") && !err.contains("invalid digit"), "{err}");
}
