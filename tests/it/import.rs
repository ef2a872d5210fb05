//! `pulse import`: NVIDIA's TensorFlow pickle (protocols 4 and 2), lernapparat's for_g_all.pt,
//! PULSE's files and safetensors into model folders, and the refusal of hostile or damaged
//! files.
//!
//! A square matrix keeps its shape when a transpose is forgotten, so shapes prove nothing here:
//! imported networks are compared by their OUTPUTS with the reference implementation's
//! (tests/fixtures/forward.safetensors, tolerance of tests/it/parity.rs) and tensor by tensor with
//! the fixtures they were made from.
//!
//! Two kinds of NVIDIA-format files are used (tests/fixtures/README.md):
//! - small ones made by Python's own pickle and numpy (tests/fixtures/make_nvidia_pickles.py):
//!   the exact byte-level encoding real files have, compared with the script's own conversion;
//! - full-size ones built here at test time from synthesis_1024_c16.pt and mapping.pt by the
//!   inverse conversion (the same files the script writes with --full; 10-30 MB each, too big to
//!   commit), which must render the reference image and reproduce mapping.pt exactly.

use crate::common::pickle::{network, values, TfVar, Writer, MARKER};
use crate::common::{fixture, pulse, s, TestDir};
use pulse::stylegan::stylegan1::{build_synthesis, Mapping};
use pulse::weights::{self, SourceFormat, StateDict};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// tests/it/parity.rs's tolerance for network outputs.
const FORWARD_TOL: f64 = 1e-4;

/// PULSE synthesis keys -> TF variables (the inverse of the importer's table), with the decoys
/// a real G_synthesis has: lod, noise0..17 (kept small: dropped by name) and ToRGB_lod1..8.
fn tf_synthesis(sd: &StateDict) -> Vec<TfVar> {
    let mut by_block: Vec<(String, Vec<TfVar>)> = Vec::new();
    let mut torgb = Vec::new();
    for (key, t) in sd.iter() {
        if key.ends_with("intermediate.kernel") {
            continue;
        }
        let p: Vec<&str> = key.split('.').collect();
        let (name, tf) = if p[0] == "torgb" {
            (format!("ToRGB_lod0/{}", p[1]), t.shallow_clone())
        } else {
            let (res, part) = (p[1], p[2]);
            let first = res == "4x4";
            let name = match part {
                "const" | "bias" => format!("{res}/Const/{part}"),
                "conv" => format!("{res}/Conv/{}", p[3]),
                "conv0_up" => format!("{res}/Conv0_up/{}", p[3]),
                "conv1" => format!("{res}/Conv1/{}", p[3]),
                epi => {
                    let layer = match (first, epi) {
                        (true, "epi1") => "Const",
                        (true, _) => "Conv",
                        (false, "epi1") => "Conv0_up",
                        _ => "Conv1",
                    };
                    if p[3] == "noise" {
                        format!("{res}/{layer}/Noise/weight")
                    } else {
                        format!("{res}/{layer}/StyleMod/{}", p[5])
                    }
                }
            };
            (name, t.shallow_clone())
        };
        let tf = match tf.dim() {
            2 => tf.tr(),
            4 if !name.ends_with("const") => tf.permute([2, 3, 1, 0]),
            _ => tf,
        };
        let var = (name.clone(), tf.size(), values(&tf));
        if name.starts_with("ToRGB") {
            torgb.push(var);
            continue;
        }
        let block = name.split('/').next().unwrap().to_string();
        match by_block.iter_mut().find(|(b, _)| *b == block) {
            Some((_, v)) => v.push(var),
            None => by_block.push((block, vec![var])),
        }
    }
    let mut out: Vec<TfVar> = vec![("lod".into(), vec![], vec![0.0])];
    for i in 0..18 {
        out.push((format!("noise{i}"), vec![1, 1, 4, 4], vec![0.5; 16]));
    }
    let n = by_block.len();
    for (i, (_, vars)) in by_block.into_iter().enumerate() {
        let channels = vars.iter().find(|v| v.0.ends_with("/bias")).map(|v| v.1[0]).unwrap();
        out.extend(vars);
        let lod = n - 1 - i;
        if lod > 0 {
            out.push((
                format!("ToRGB_lod{lod}/weight"),
                vec![1, 1, channels, 3],
                vec![7.0; channels as usize * 3],
            ));
            out.push((format!("ToRGB_lod{lod}/bias"), vec![3], vec![7.0; 3]));
        }
    }
    out.extend(torgb);
    out
}

fn tf_mapping(sd: &StateDict) -> Vec<TfVar> {
    (0..8)
        .flat_map(|i| {
            let w = sd.get(&format!("dense{i}.weight")).unwrap().tr();
            let b = sd.get(&format!("dense{i}.bias")).unwrap();
            [
                (format!("Dense{i}/weight"), w.size(), values(&w)),
                (format!("Dense{i}/bias"), b.size(), values(b)),
            ]
        })
        .collect()
}

/// NVIDIA's `(G, D, Gs)` for the fixture networks; `edit` may change any TF variable first.
fn nvidia_pickle(proto: u8, edit: &dyn Fn(&mut Vec<TfVar>, &mut Vec<TfVar>)) -> Vec<u8> {
    let mut synthesis = tf_synthesis(&weights::load(&fixture("synthesis_1024_c16.pt")).unwrap());
    let mut mapping = tf_mapping(&weights::load(&fixture("mapping.pt")).unwrap());
    edit(&mut synthesis, &mut mapping);
    let own: Vec<TfVar> = vec![
        ("lod".into(), vec![], vec![0.0]),
        ("dlatent_avg".into(), vec![512], (0..512).map(|i| i as f32 / 512.0).collect()),
    ];
    let mut w = Writer::new(proto);
    w.mark();
    // G: a small stand-in (its variables are never read).
    network(&mut w, "G", "G_style", &own, &[]);
    // D: another network that must be skipped.
    network(&mut w, "D", "D_basic", &[("4x4/Dense0/weight".into(), vec![2, 2], vec![1.0; 4])], &[]);
    let syn = |w: &mut Writer| network(w, "G_synthesis", "G_synthesis", &synthesis, &[]);
    let map = |w: &mut Writer| network(w, "G_mapping", "G_mapping", &mapping, &[]);
    network(&mut w, "Gs", "G_style", &own, &[("synthesis", &syn), ("mapping", &map)]);
    w.tuple();
    w.stop()
}

/// lernapparat's for_g_all layout (`g_mapping.*`, `g_synthesis.*` with `top_epi.noise`) of the
/// fixture networks, as safetensors (the torch.save container is covered by
/// lernapparat_mini.pt).
fn lernapparat_file(path: &Path) {
    let mut pairs = Vec::new();
    for (k, t) in weights::load(&fixture("mapping.pt")).unwrap().iter() {
        pairs.push((format!("g_mapping.{k}"), t.shallow_clone()));
    }
    for (k, t) in weights::load(&fixture("synthesis_1024_c16.pt")).unwrap().iter() {
        if !k.ends_with("intermediate.kernel") {
            pairs.push((
                format!("g_synthesis.{}", k.replace(".noise.weight", ".top_epi.noise.weight")),
                t.shallow_clone(),
            ));
        }
    }
    weights::save_safetensors(&StateDict::from_pairs(pairs), path, None).unwrap();
}

// ---- checks of an imported folder ------------------------------------------------------------

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    let sd = weights::load(path).unwrap();
    sd.iter().map(|(k, t)| (k.to_string(), t.to_kind(Kind::Float))).collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

/// The imported synthesis renders forward.safetensors' 1024x1024 reference crop.
fn assert_renders_reference(dir: &Path, what: &str) {
    let fwd = tensors(&fixture("forward.safetensors"));
    let path = dir.join("synthesis.safetensors");
    let (synthesis, _vs) =
        build_synthesis(&weights::load(&path).unwrap(), &path, Device::Cpu).unwrap();
    let noise = tensors(&fixture("noise_1024.safetensors"));
    let noise: Vec<Tensor> =
        (0..18).map(|i| noise[&format!("noise.{i}")].shallow_clone()).collect();
    let out = tch::no_grad(|| synthesis.forward(&fwd["synthesis1024.w_plus"], &noise)).unwrap();
    let crop = out.narrow(2, 480, 64).narrow(3, 480, 64);
    let d = max_abs_diff(&crop, &fwd["synthesis1024.image_crop"]);
    eprintln!("import: {what}: synthesis 1024 crop max abs diff {d:.2e}");
    assert!(d < FORWARD_TOL, "{what}: imported synthesis renders {d} away from the reference");
}

/// The imported mapping holds mapping.pt's tensors exactly and maps z to the reference w.
fn assert_mapping_exact(dir: &Path, what: &str) {
    let got = weights::load(&dir.join("mapping.safetensors")).unwrap();
    let want = weights::load(&fixture("mapping.pt")).unwrap();
    assert_eq!(got.len(), want.len());
    for (k, t) in want.iter() {
        assert!(got.get(k).unwrap().equal(t), "{what}: {k} differs from mapping.pt");
    }
    let mut vs = nn::VarStore::new(Device::Cpu);
    let mut mapping = Mapping::new(vs.root());
    weights::load_into(&mut vs, &got).unwrap();
    mapping.prepare();
    let fwd = tensors(&fixture("forward.safetensors"));
    let w = tch::no_grad(|| mapping.forward(&fwd["mapping.z"])).unwrap();
    let d = max_abs_diff(&w, &fwd["mapping.w"]);
    eprintln!("import: {what}: mapping max abs diff {d:.2e}");
    assert!(d < FORWARD_TOL);
}

fn import_ok(dir: &TestDir, sources: &[&Path], out: &str) -> (PathBuf, String) {
    let out = dir.path(out);
    let mut cmd = pulse();
    cmd.current_dir(dir.path("")).arg("import");
    for s_ in sources {
        cmd.arg(s(s_));
    }
    let output = cmd.args(["-o", s(&out), "--fit-samples", "2000"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "import failed: {stderr}");
    assert!(!dir.path(MARKER).exists(), "build_module_src was executed");
    (out, stderr)
}

/// The command refuses: exit 2, one line on stderr naming the file, no output folder, nothing
/// executed.
fn assert_refused(dir: &TestDir, file: &Path, expect: &str) {
    let out = dir.path("refused-model");
    let output = pulse()
        .current_dir(dir.path(""))
        .args(["import", s(file), "-o", s(&out)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "not one line: {stderr}");
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(stderr.contains(name), "{stderr} does not name {name}");
    assert!(stderr.contains(expect), "{stderr} does not say '{expect}'");
    assert!(!out.exists(), "a model folder was written");
    assert!(!dir.path(MARKER).exists(), "build_module_src was executed");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path(""))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".import-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary folders left: {leftovers:?}");
}

// ---- the full-size files: outputs must match the reference ---------------------------------

#[test]
fn nvidia_pickle_protocol_4_imports_to_the_reference_networks() {
    let dir = TestDir::new();
    let pkl = dir.path("karras2019stylegan-ffhq-1024x1024.pkl");
    std::fs::write(&pkl, nvidia_pickle(4, &|_, _| {})).unwrap();
    let (out, stderr) = import_ok(&dir, &[&pkl], "m4");
    assert_renders_reference(&out, "protocol 4");
    assert_mapping_exact(&out, "protocol 4");
    let w_avg = tensors(&out.join("w_avg.safetensors"));
    assert_eq!(w_avg["w_avg"].double_value(&[256]), 0.5);
    let json = crate::common::read_json(&out.join("model.json"));
    assert_eq!(json["sources"][0]["format"], "nvidia-tf-pickle");
    assert_eq!(json["sources"][0]["file"], "karras2019stylegan-ffhq-1024x1024.pkl");
    assert_eq!(json["sources"][0]["sha256"].as_str().unwrap(), weights::sha256_file(&pkl).unwrap());
    assert_eq!(json["resolution"], 1024);
    assert_eq!(json["parameters"]["mapping"]["found"], 2_101_248);
    assert!(json["licence"].as_str().unwrap().contains("CC BY-NC 4.0"));
    assert!(json["date"].as_str().unwrap().ends_with('Z'));
    assert_eq!(json["pulse_version"], env!("CARGO_PKG_VERSION"));
    // The fixture mapping is random, not FFHQ's: the agreement check must say so, loudly.
    assert!(stderr.contains("WARNING: Gaussian fit check"), "{stderr}");
    assert!(out.join("gaussian_fit.safetensors").exists());
    // The folder loads as a model.
    pulse::model::Model::load(&out, Device::Cpu).unwrap();
}

#[test]
fn nvidia_pickle_protocol_2_imports_to_the_reference_networks() {
    let dir = TestDir::new();
    let pkl = dir.path("ffhq_p2.pkl");
    std::fs::write(&pkl, nvidia_pickle(2, &|_, _| {})).unwrap();
    let (out, _) = import_ok(&dir, &[&pkl], "m2");
    assert_renders_reference(&out, "protocol 2");
    assert_mapping_exact(&out, "protocol 2");
}

#[test]
fn lernapparat_layout_imports_to_the_reference_networks() {
    let dir = TestDir::new();
    let file = dir.path("for_g_all.bin");
    lernapparat_file(&file);
    let (out, _) = import_ok(&dir, &[&file], "ml");
    assert_renders_reference(&out, "lernapparat");
    assert_mapping_exact(&out, "lernapparat");
    let json = crate::common::read_json(&out.join("model.json"));
    assert_eq!(json["sources"][0]["format"], "lernapparat-pt");
    // PULSE's strict loader needs the blur buffers: the synthesis file has PULSE's 100 keys.
    assert_eq!(weights::load(&out.join("synthesis.safetensors")).unwrap().len(), 100);
}

#[test]
fn pulse_files_import_with_their_gaussian_fit_and_upsample_needs_no_flag() {
    let dir = TestDir::new();
    let (out, stderr) = import_ok(
        &dir,
        &[&fixture("synthesis_128_c32.pt"), &fixture("gaussian_fit_ffhq.pt")],
        "m128",
    );
    assert!(stderr.contains("Gaussian fit: from"), "{stderr}");
    assert!(!out.join("mapping.safetensors").exists());
    let fit = tensors(&out.join("gaussian_fit.safetensors"));
    let want = tensors(&fixture("gaussian_fit_ffhq.pt"));
    assert!(fit["mean"].equal(&want["mean"]) && fit["std"].equal(&want["std"]));
    // The synthesis is the fixture's, tensor for tensor.
    let got = weights::load(&out.join("synthesis.safetensors")).unwrap();
    for (k, t) in weights::load(&fixture("synthesis_128_c32.pt")).unwrap().iter() {
        assert!(got.get(k).unwrap().equal(&t.to_kind(Kind::Float)), "{k}");
    }
    // A folder named like the default model folder is used by upsample with no --model flag.
    let work = dir.path("work");
    std::fs::create_dir_all(work.join("models")).unwrap();
    std::fs::rename(&out, work.join("models/ffhq")).unwrap();
    crate::common::write_rgb_png(&work.join("face32.png"), 32, 32);
    pulse()
        .current_dir(&work)
        .args(["upsample", "face32.png", "--steps", "1", "--eps", "10", "-q", "--seed", "1"])
        .assert()
        .success();
    assert!(work.join("out/face32.png").exists());
}

#[test]
fn safetensors_synthesis_without_mapping_or_fit_says_what_upsample_needs() {
    let dir = TestDir::new();
    let st = dir.path("synthesis.safetensors");
    weights::save_safetensors(&weights::load(&fixture("synthesis_128_c32.pt")).unwrap(), &st, None)
        .unwrap();
    let (out, stderr) = import_ok(&dir, &[&st], "m");
    assert!(stderr.contains("no Gaussian fit"), "{stderr}");
    assert!(!out.join("gaussian_fit.safetensors").exists());
    assert_eq!(
        crate::common::read_json(&out.join("model.json"))["sources"][0]["format"],
        "safetensors"
    );
}

#[test]
fn an_existing_other_model_is_kept_unless_forced() {
    let dir = TestDir::new();
    let (out, _) =
        import_ok(&dir, &[&fixture("synthesis_128_c32.pt"), &fixture("gaussian_fit_ffhq.pt")], "m");
    let before = std::fs::read(out.join("synthesis.safetensors")).unwrap();
    // The same files again: nothing to do.
    let (_, stderr) =
        import_ok(&dir, &[&fixture("synthesis_128_c32.pt"), &fixture("gaussian_fit_ffhq.pt")], "m");
    assert!(stderr.contains("already holds exactly these weights"), "{stderr}");
    // Other weights: refused without --force, the old model untouched.
    let other = fixture("synthesis_1024_c16.pt");
    let output = pulse().args(["import", s(&other), "-o", s(&out)]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--force"));
    assert_eq!(std::fs::read(out.join("synthesis.safetensors")).unwrap(), before);
    pulse().args(["import", s(&other), "-o", s(&out), "--force", "-q"]).assert().success();
    assert_ne!(std::fs::read(out.join("synthesis.safetensors")).unwrap(), before);
    assert!(!out.join("gaussian_fit.safetensors").exists(), "the old model's files were kept");
}

// ---- the Python-made files: real pickle encodings, compared with Python's conversion --------

#[test]
fn python_made_pickles_convert_exactly_like_the_script() {
    let expected = weights::load(&fixture("nvidia_mini_expected.pt")).unwrap();
    for name in ["nvidia_mini_p4.pkl", "nvidia_mini_p2.pkl", "lernapparat_mini.pt"] {
        let src = weights::load_source(&fixture(name)).unwrap();
        let want_format = if name.starts_with("lern") {
            SourceFormat::Lernapparat
        } else {
            SourceFormat::NvidiaPickle
        };
        assert_eq!(src.format, want_format, "{name}");
        let mut compared = 0;
        for (prefix, sd) in [
            ("synthesis.", src.synthesis.as_ref().unwrap()),
            ("mapping.", src.mapping.as_ref().unwrap()),
        ] {
            for (k, t) in sd.iter() {
                if k.ends_with("intermediate.kernel") {
                    assert_eq!(t.size(), [1, 1, 3, 3]);
                    assert_eq!(t.sum(Kind::Double).double_value(&[]), 1.0);
                    continue;
                }
                let want = expected
                    .get(&format!("{prefix}{k}"))
                    .unwrap_or_else(|| panic!("{name}: unexpected {k}"));
                assert!(t.equal(want), "{name}: {k} differs from the script's conversion");
                compared += 1;
            }
        }
        let expected_count = expected.keys().filter(|k| *k != "w_avg").count();
        assert_eq!(compared, expected_count, "{name}: missing tensors");
        if name.ends_with(".pkl") {
            assert!(src.w_avg.as_ref().unwrap().equal(expected.get("w_avg").unwrap()));
            assert!(src.dropped >= 5, "{name}: lod, noise0..3 and ToRGB_lod1 are dropped");
        }
    }
}

#[test]
fn python_made_pickle_of_the_wrong_size_is_refused_and_runs_nothing() {
    // The mini generator's mapping is 8-wide: a real model folder needs 512.
    let dir = TestDir::new();
    let file = dir.path("nvidia_mini_p4.pkl");
    std::fs::copy(fixture("nvidia_mini_p4.pkl"), &file).unwrap();
    assert_refused(&dir, &file, "shape");
}

// ---- hostile and damaged files ------------------------------------------------------------

fn small_pickle(proto: u8, body: &dyn Fn(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new(proto);
    body(&mut w);
    w.stop()
}

#[test]
fn foreign_globals_anywhere_are_refused_by_name() {
    let dir = TestDir::new();
    for (module, name) in
        [("posix", "system"), ("builtins", "eval"), ("os", "system"), ("numpy", "load")]
    {
        for proto in [2, 4] {
            // A payload inside static_kwargs of an otherwise real-looking network.
            let bytes = small_pickle(proto, &|w| {
                w.global("dnnlib.tflib.network", "Network").op(b")").op(&[0x81]);
                w.op(b"}").mark().str("static_kwargs");
                w.global(module, name).str(&format!("touch {MARKER}")).op(&[0x85]).op(b"R");
                w.op(b"u").op(b"b");
            });
            let file = dir.path(&format!("evil_{module}_{proto}.pkl"));
            std::fs::write(&file, bytes).unwrap();
            assert_refused(&dir, &file, &format!("refused global '{module}.{name}'"));
        }
    }
    // A torch-file global is no more welcome in a dnnlib pickle.
    let file = dir.path("torch_in_dnnlib.pkl");
    std::fs::write(
        &file,
        small_pickle(4, &|w| {
            w.global("dnnlib.tflib.network", "Network")
                .op(b")")
                .op(&[0x81])
                .global("torch._utils", "_rebuild_tensor_v2");
        }),
    )
    .unwrap();
    assert_refused(&dir, &file, "refused global 'torch._utils._rebuild_tensor_v2'");
}

#[test]
fn a_network_with_a_reduce_payload_is_refused() {
    let dir = TestDir::new();
    // Network(*args) through REDUCE, as a class with a __reduce__ would pickle itself.
    let file = dir.path("reduce_network.pkl");
    std::fs::write(
        &file,
        small_pickle(2, &|w| {
            w.global("dnnlib.tflib.network", "Network")
                .str(&format!("touch {MARKER}"))
                .op(&[0x85])
                .op(b"R");
        }),
    )
    .unwrap();
    assert_refused(&dir, &file, "__reduce__");
    // NEWOBJ with arguments, and a state that is not a dict.
    let file = dir.path("newobj_args.pkl");
    std::fs::write(
        &file,
        small_pickle(4, &|w| {
            w.global("dnnlib.tflib.network", "Network").str("x").op(&[0x85]).op(&[0x81]);
        }),
    )
    .unwrap();
    assert_refused(&dir, &file, "arguments");
    let file = dir.path("tuple_state.pkl");
    std::fs::write(
        &file,
        small_pickle(4, &|w| {
            w.global("dnnlib.tflib.network", "Network")
                .op(b")")
                .op(&[0x81])
                .op(b"}")
                .none()
                .op(&[0x86])
                .op(b"b");
        }),
    )
    .unwrap();
    assert_refused(&dir, &file, "instead of a dict");
}

#[test]
fn truncated_pickles_are_refused() {
    let dir = TestDir::new();
    let bytes = std::fs::read(fixture("nvidia_mini_p4.pkl")).unwrap();
    // Every cut through the library (fast), a few through the command line.
    for cut in (0..bytes.len()).step_by(61) {
        let path = dir.path("cut.pkl");
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = weights::load_source(&path)
            .err()
            .unwrap_or_else(|| panic!("a file cut at {cut} loaded"));
        assert!(!err.to_string().contains('\n'));
    }
    for cut in [3, bytes.len() / 2, bytes.len() - 1] {
        let path = dir.path(&format!("cut_{cut}.pkl"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert_refused(&dir, &path, "truncated");
    }
}

#[test]
fn wrong_shapes_and_nans_are_refused() {
    let dir = TestDir::new();
    // A conv weight with one input channel too many (the bytes match the declared shape).
    let file = dir.path("wrong_shape.pkl");
    std::fs::write(
        &file,
        nvidia_pickle(4, &|s, _| {
            let v = s.iter_mut().find(|v| v.0 == "8x8/Conv1/weight").unwrap();
            v.1[2] += 1;
            v.2 = vec![0.0; v.1.iter().product::<i64>() as usize];
        }),
    )
    .unwrap();
    assert_refused(&dir, &file, "shape");
    // A square mapping matrix given as 2-D but a dense weight given as 4-D.
    let file = dir.path("wrong_rank.pkl");
    std::fs::write(
        &file,
        nvidia_pickle(4, &|_, m| {
            let v = m.iter_mut().find(|v| v.0 == "Dense3/weight").unwrap();
            v.1 = vec![1, 1, 512, 512];
        }),
    )
    .unwrap();
    assert_refused(&dir, &file, "Dense3/weight");
    // A NaN in one mapping weight.
    let file = dir.path("nan.pkl");
    std::fs::write(
        &file,
        nvidia_pickle(2, &|_, m| {
            m.iter_mut().find(|v| v.0 == "Dense5/weight").unwrap().2[1234] = f32::NAN;
        }),
    )
    .unwrap();
    assert_refused(&dir, &file, "dense5.weight");
    // Data bytes that do not match the declared shape.
    let file = dir.path("short_data.pkl");
    std::fs::write(
        &file,
        small_pickle(4, &|w| {
            w.array_raw(&[4, 4], &[0u8; 60]);
        }),
    )
    .unwrap();
    assert_refused(&dir, &file, "bytes of data");
}

#[test]
fn huge_declared_lengths_are_refused_without_allocating() {
    let dir = TestDir::new();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "binbytes8.pkl",
            [&b"\x80\x04\x8e"[..], &u64::MAX.to_le_bytes()[..]].concat(),
            "truncated",
        ),
        (
            "binunicode8.pkl",
            [&b"\x80\x04\x8d"[..], &(1u64 << 60).to_le_bytes()[..]].concat(),
            "truncated",
        ),
        ("binbytes.pkl", [&b"\x80\x03B"[..], &u32::MAX.to_le_bytes()[..]].concat(), "truncated"),
        (
            "huge_shape.pkl",
            small_pickle(4, &|w| {
                w.array_raw(&[1 << 30, 1 << 30, 1 << 30], &[0u8; 16]);
            }),
            "numpy array",
        ),
    ];
    for (name, bytes, expect) in cases {
        let file = dir.path(name);
        std::fs::write(&file, bytes).unwrap();
        assert_refused(&dir, &file, expect);
    }
}

#[test]
fn not_a_weight_file_and_stylegan2_are_explained() {
    let dir = TestDir::new();
    let png = dir.path("face.png");
    crate::common::write_rgb_png(&png, 4, 4);
    let disguised = dir.path("face.pkl");
    std::fs::rename(&png, &disguised).unwrap();
    assert_refused(&dir, &disguised, "not a weight file");
    let file = dir.path("stylegan2.pkl");
    let bytes = small_pickle(4, &|w| network(w, "Gs", "G_main", &[], &[]));
    std::fs::write(&file, bytes).unwrap();
    assert_refused(&dir, &file, "G_main");
}

#[test]
fn mutated_pickles_never_panic() {
    // The fuzz target's entry point on randomly damaged Python-made pickles (cargo fuzz explores
    // far more: scripts/fuzz.sh).
    for name in ["nvidia_mini_p4.pkl", "nvidia_mini_p2.pkl", "lernapparat_mini.pt"] {
        let original = std::fs::read(fixture(name)).unwrap();
        crate::common::pickle::mutations(&original, 300, 0x2545f4914f6cdd1d, |bytes| {
            weights::fuzz_load_bytes(bytes)
        });
    }
}

#[test]
fn loading_nvidia_pickle_as_a_state_dict_points_to_import() {
    let err = weights::load(&fixture("nvidia_mini_p2.pkl")).unwrap_err().to_string();
    assert!(err.contains("pulse import"), "{err}");
    assert!(err.contains("nvidia_mini_p2.pkl"), "{err}");
}

/// `pulse import --force` of another network: the previous model's files that pulse wrote
/// (a Gaussian fit computed on first use or by `fit-gaussian` included) are removed; files pulse
/// did not write stay, and a fit among them is refused by the next command (exit 2, naming it
/// and what to do) rather than used as the new network's prior; a fit added afterwards is used
/// as given; `pulse info` says where the folder's fit came from.
#[test]
fn a_forced_import_never_leaves_the_previous_networks_fit_in_use() {
    let dir = TestDir::new();
    let info = |model: &Path| {
        // In the test's folder: no models/ of the checkout listed beside it.
        let o =
            pulse().current_dir(dir.path("")).args(["info", "--model", s(model)]).output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        (o.status.code(), text)
    };
    let fit_line = |text: &str| -> String {
        text.lines().rfind(|l| l.contains("gaussian fit:")).unwrap_or("").to_string()
    };
    // Another StyleGAN2 network than the tiny test one: its tensors scaled.
    let sd = weights::load(&fixture("sg2_tiny_expected.pt")).unwrap();
    let pairs: Vec<(String, tch::Tensor)> =
        sd.iter().map(|(k, t)| (k.to_string(), t * 1.5)).collect();
    let other_sg2 = dir.path("other_sg2.safetensors");
    weights::save_safetensors(&weights::StateDict::from_pairs(pairs), &other_sg2, None).unwrap();

    // 1. A fit pulse computed (fit-gaussian) is pulse's: removed when another network comes.
    let (m, _) = import_ok(&dir, &[&fixture("sg2_tiny_ada.pkl")], "computed");
    pulse().args(["fit-gaussian", "--model", s(&m), "--samples", "64"]).assert().success();
    let (code, text) = info(&m);
    assert_eq!(code, Some(0), "{text}");
    assert!(fit_line(&text).contains("computed from the mapping network (64 samples"), "{text}");
    pulse().args(["import", s(&other_sg2), "-o", s(&m), "--force", "-q"]).assert().success();
    assert!(!m.join("gaussian_fit.safetensors").exists(), "the previous network's fit stayed");

    // 2. A folder made by hand (another family's synthesis.pt, mapping.pt and PULSE's fit):
    // nothing of the user's is deleted, and the fit is refused for the new network.
    let hand = dir.path("hand");
    std::fs::create_dir_all(&hand).unwrap();
    for (from, to) in [
        ("synthesis_128_c32.pt", "synthesis.pt"),
        ("mapping.pt", "mapping.pt"),
        ("gaussian_fit_ffhq.pt", "gaussian_fit.pt"),
    ] {
        std::fs::copy(fixture(from), hand.join(to)).unwrap();
    }
    let before: Vec<Vec<u8>> = ["synthesis.pt", "mapping.pt", "gaussian_fit.pt"]
        .iter()
        .map(|n| std::fs::read(hand.join(n)).unwrap())
        .collect();
    let out = pulse()
        .args(["import", s(&fixture("sg2_tiny_ada.pkl")), "-o", s(&hand), "--force"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("gaussian_fit.pt") && stderr.contains("fit-gaussian"), "{stderr}");
    for (n, bytes) in ["synthesis.pt", "mapping.pt", "gaussian_fit.pt"].iter().zip(&before) {
        assert_eq!(&std::fs::read(hand.join(n)).unwrap(), bytes, "{n} of the user's changed");
    }
    let (code, text) = info(&hand);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("gaussian_fit.pt") && text.contains("fit-gaussian"), "{text}");
    let gen = pulse()
        .args(["generate", "--model", s(&hand), "-o", s(&dir.path("g.png")), "-q"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&gen.stderr);
    assert_eq!(gen.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("gaussian_fit.pt") && stderr.contains("remove it"), "{stderr}");
    // `pulse fit-gaussian` gives the new network its own fit.
    pulse().args(["fit-gaussian", "--model", s(&hand), "--samples", "64"]).assert().success();
    let (code, text) = info(&hand);
    assert_eq!(code, Some(0), "{text}");
    assert!(fit_line(&text).contains("gaussian_fit.safetensors (computed"), "{text}");

    // 3. A fit the user adds after the import is used as given, and said to be theirs.
    let (fresh, _) = import_ok(&dir, &[&fixture("sg2_tiny_ada.pkl")], "fresh");
    std::fs::copy(fixture("gaussian_fit_ffhq.pt"), fresh.join("gaussian_fit.pt")).unwrap();
    let (code, text) = info(&fresh);
    assert_eq!(code, Some(0), "{text}");
    assert!(fit_line(&text).contains("gaussian_fit.pt (added to the folder by hand"), "{text}");
}
