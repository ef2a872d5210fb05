//! The demo (scripts/demo.sh) run through the built binary into a temporary folder: its main
//! search converges at an eps of at most 0.01, and every picture it names exists. Also
//! `pulse downscale`, the demo's second step: PULSE's downscaler exactly, and its refusals.
use crate::common::{pulse, s, TestDir};
use pulse::pulse::downscale::Downscaler;
use std::path::Path;
use tch::{Device, Kind, Tensor};

#[test]
fn demo_converges_at_eps_at_most_0_01_and_names_its_pictures() {
    let dir = TestDir::new();
    let out_dir = dir.path("demo out");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .env("PULSE_DEMO_OUT", &out_dir)
        .env("PULSE_DEMO_BIN", env!("CARGO_BIN_EXE_pulse"))
        .env_remove("PULSE_MODEL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("pulse/report.json")).unwrap()).unwrap();
    let eps = report["settings"]["eps"].as_f64().unwrap();
    assert!(eps <= 0.01, "the demo's eps is {eps}");
    let image = &report["images"][0];
    assert_eq!(image["converged"], true, "{}", image["best"]);
    let l2 = image["best"]["L2"].as_f64().unwrap();
    assert!(l2 <= eps * (1.0 + 1e-6), "best L2 {l2} above eps {eps}");

    // Every picture the closing lines name exists, and the sheet has its three columns.
    let named: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("demo: done"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.ends_with(".png") || w.ends_with(".json"))
        .collect();
    assert!(named.len() >= 6, "{stdout}");
    for name in named {
        assert!(out_dir.join(name).is_file(), "{name} named but not written");
    }
    let sheet = image::image_dimensions(out_dir.join("pulse/generated32.compare.png")).unwrap();
    assert!(sheet.0 >= 3 * sheet.1 / 2, "compare sheet {sheet:?} is not a row of three");
    assert!(stdout.contains("converged at eps"), "{stdout}");
    assert!(stdout.contains("pulse download ffhq"), "{stdout}");

    // Again: everything is reused (no search runs), and the report still says converged.
    let again = std::process::Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .env("PULSE_DEMO_OUT", &out_dir)
        .env("PULSE_DEMO_BIN", env!("CARGO_BIN_EXE_pulse"))
        .env_remove("PULSE_MODEL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&again.stdout).contains(": converged at eps"));
    assert!(stderr.contains("1 skipped"), "{stderr}");
}

/// A random `[3,side,side]` image written as an 8-bit PNG, and the tensor of what was written.
fn random_png(path: &Path, side: i64) -> Tensor {
    let _seed = pulse::rng::seed(5);
    let t = Tensor::rand([3, side, side], (Kind::Float, Device::Cpu));
    pulse::imageio::write_png(&t, path).unwrap();
    pulse::imageio::read_rgb(path).unwrap()
}

/// Every accepted size, the full side included (the loss applies D at factor 1 too).
#[test]
fn downscale_is_pulses_downscaler_rounded_to_8_bits() {
    let dir = TestDir::new();
    let input = dir.path("in.png");
    let image = random_png(&input, 64);
    for size in [64, 16, 2] {
        let output = dir.path(&format!("small{size}.png"));
        let size_arg = size.to_string();
        pulse()
            .args(["downscale", s(&input), "--size", &size_arg, "-o", s(&output)])
            .assert()
            .success();
        let got = pulse::imageio::read_rgb(&output).unwrap();
        let d = Downscaler::new(64 / size, Device::Cpu).unwrap();
        let want = d.forward(&image.unsqueeze(0)).unwrap().squeeze_dim(0).clamp(0.0, 1.0);
        let want = (want * 255.0).round() / 255.0;
        assert_eq!(got.size(), [3, size, size]);
        let diff = (got - want).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "size {size}: differs from the downscaler by {diff}");
    }
}

#[test]
fn downscale_refuses_sizes_that_are_not_the_side_over_a_power_of_two() {
    let dir = TestDir::new();
    let input = dir.path("in.png");
    let _ = random_png(&input, 64);
    let output = dir.path("small.png");
    for size in ["48", "128", "1", "3"] {
        let out = pulse().args(["downscale", s(&input), "--size", size, "-o", s(&output)]).output();
        let out = out.unwrap();
        assert_eq!(out.status.code(), Some(2), "--size {size}");
        let err = String::from_utf8_lossy(&out.stderr);
        if size != "1" {
            assert!(err.contains("sizes accepted: 64, 32, 16, 8, 4, 2"), "{err}");
            assert!(err.contains("in.png") && err.lines().count() == 1, "{err}");
        }
        assert!(!output.exists());
    }
    // Not square.
    let wide = dir.path("wide.png");
    pulse::imageio::write_png(&Tensor::zeros([3, 32, 64], (Kind::Float, Device::Cpu)), &wide)
        .unwrap();
    let out = pulse().args(["downscale", s(&wide), "--size", "16", "-o", s(&output)]).output();
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not square"));
    // Never over its input.
    let before = std::fs::read(&input).unwrap();
    pulse().args(["downscale", s(&input), "--size", "32", "-o", s(&input)]).assert().code(2);
    assert_eq!(std::fs::read(&input).unwrap(), before);
}
