//! Tests of `pulse::weights` (docs/design.md, "Weight files"): parity with `torch.load` on the reference weight
//! files, safetensors round trips, `load_into`, and crafted hostile files.
//!
//! Hostile files are written byte by byte here (see `Pickle`), never committed: they include a
//! pickle whose REDUCE would run `touch <marker>` if it were ever executed.

use crate::common::fixture;
use crate::common::pickle::Pickle;
use pulse::weights::{self, ErrorKind, StateDict, WeightError};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn expected() -> Value {
    let text = std::fs::read_to_string(fixture("weights_expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn dtype_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Float => "float32",
        Kind::Double => "float64",
        Kind::Half => "float16",
        Kind::BFloat16 => "bfloat16",
        Kind::Int64 => "int64",
        Kind::Int => "int32",
        Kind::Int16 => "int16",
        Kind::Int8 => "int8",
        Kind::Uint8 => "uint8",
        Kind::Bool => "bool",
        _ => "other",
    }
}

/// Checks a loaded state dict against what `torch.load` gave (tests/fixtures/README.md): same
/// keys in the same order, same dtypes and shapes, elements equal, sums within rounding.
fn assert_matches_torch(sd: &StateDict, file: &str) {
    let all = expected();
    let entries = all[file].as_array().unwrap_or_else(|| panic!("no {file}"));
    let keys: Vec<&str> = sd.keys().collect();
    let want: Vec<&str> = entries.iter().map(|e| e[0].as_str().unwrap()).collect();
    assert_eq!(keys, want, "{file}: keys");
    for entry in entries {
        let key = entry[0].as_str().unwrap();
        let desc = &entry[1];
        let t = sd.get(key).unwrap();
        assert_eq!(t.device(), Device::Cpu, "{key}");
        assert_eq!(dtype_name(t.kind()), desc["dtype"], "{file} {key}: dtype");
        let shape: Vec<i64> =
            desc["shape"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert_eq!(t.size(), shape, "{file} {key}: shape");
        let flat = t.to_kind(Kind::Double).reshape([-1]);
        let abs_sum = desc["abs_sum"].as_f64().unwrap();
        let tol = 1e-9 * abs_sum.max(1.0);
        let sum = flat.sum(Kind::Double).double_value(&[]);
        assert!(
            (sum - desc["sum"].as_f64().unwrap()).abs() <= tol,
            "{file} {key}: sum {sum} vs {}",
            desc["sum"]
        );
        let got_abs = flat.abs().sum(Kind::Double).double_value(&[]);
        assert!((got_abs - abs_sum).abs() <= tol, "{file} {key}: abs sum");
        for pick in desc["elements"].as_array().unwrap() {
            let i = pick[0].as_i64().unwrap();
            let bits = u64::from_str_radix(pick[2].as_str().unwrap(), 16).unwrap();
            let got = flat.double_value(&[i]);
            assert_eq!(got.to_bits(), bits, "{file} {key}[{i}]: {got} vs {}", f64::from_bits(bits));
        }
    }
}

fn load_ok(name: &str) -> StateDict {
    weights::load(&fixture(name)).unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------- parity with torch.load

#[test]
fn legacy_synthesis_1024_matches_torch() {
    let sd = load_ok("synthesis_1024_c16.pt");
    assert_eq!(sd.len(), 100);
    assert_eq!(sd.path(), fixture("synthesis_1024_c16.pt"));
    assert_matches_torch(&sd, "synthesis_1024_c16.pt");
}

#[test]
fn zip_synthesis_128_matches_torch() {
    let sd = load_ok("synthesis_128_c32.pt");
    assert_eq!(sd.len(), 67);
    assert_matches_torch(&sd, "synthesis_128_c32.pt");
}

#[test]
fn legacy_mapping_matches_torch() {
    let sd = load_ok("mapping.pt");
    assert_eq!(sd.len(), 16);
    assert_eq!(sd.get("dense0.weight").unwrap().size(), [512, 512]);
    assert_matches_torch(&sd, "mapping.pt");
}

#[test]
fn gaussian_fit_tagged_cuda_loads_on_cpu() {
    let sd = load_ok("gaussian_fit_ffhq.pt");
    assert_eq!(sd.keys().collect::<Vec<_>>(), ["mean", "std"]);
    assert_matches_torch(&sd, "gaussian_fit_ffhq.pt");
}

#[test]
fn mixed_legacy_protocol4_matches_torch() {
    // every storage dtype, shared storages with offsets and strides, 0-dim and empty tensors,
    // an nn.Parameter, nested dicts; pickle protocol 4 (FRAME, MEMOIZE, STACK_GLOBAL)
    let sd = load_ok("weights_mixed_legacy.pt");
    assert_matches_torch(&sd, "weights_mixed_legacy.pt");
}

#[test]
fn mixed_zip_protocol5_matches_torch() {
    let sd = load_ok("weights_mixed_zip.pt");
    assert_matches_torch(&sd, "weights_mixed_zip.pt");
}

#[test]
fn deflated_zip_matches_torch() {
    let sd = load_ok("weights_mixed_deflated.pt");
    assert_matches_torch(&sd, "weights_mixed_deflated.pt");
}

#[test]
fn big_endian_zip_matches_torch() {
    let sd = load_ok("weights_mixed_bigendian.pt");
    assert_matches_torch(&sd, "weights_mixed_bigendian.pt");
}

#[test]
fn tensors_sharing_a_storage_are_views_of_it() {
    let sd = load_ok("weights_mixed_zip.pt");
    let base = sd.get("weights.shared.base").unwrap();
    let t = sd.get("weights.shared.transposed").unwrap();
    assert!(t.equal(&base.tr()));
    assert_eq!(t.stride(), [1, 6]);
    assert!(sd.get("weights.shared.col").unwrap().equal(&base.select(1, 3)));
    assert_eq!(sd.get("weights.shared.row").unwrap().data_ptr(), base.get(2).data_ptr());
}

#[test]
fn format_comes_from_bytes_not_extension() {
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("looks_like.safetensors");
    std::fs::copy(fixture("gaussian_fit_ffhq.pt"), &renamed).unwrap();
    let sd = weights::load(&renamed).unwrap();
    assert_eq!(sd.len(), 2);
    let zip_as_bin = dir.path().join("weights.bin");
    std::fs::copy(fixture("weights_mixed_zip.pt"), &zip_as_bin).unwrap();
    assert_matches_torch(&weights::load(&zip_as_bin).unwrap(), "weights_mixed_zip.pt");
}

// ---------------------------------------------------------------- safetensors

#[test]
fn safetensors_round_trip_keeps_keys_values_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let sd = load_ok("weights_mixed_legacy.pt");
    let out = dir.path().join("mixed.pt"); // extension deliberately misleading
    let meta = HashMap::from([("source".to_string(), "weights_mixed_legacy.pt".to_string())]);
    weights::save_safetensors(&sd, &out, Some(&meta)).unwrap();
    let back = weights::load(&out).unwrap();
    assert_eq!(back.metadata(), Some(&meta));
    assert_eq!(back.len(), sd.len());
    for (key, orig) in sd.iter() {
        let got = back.get(key).unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!(got.size(), orig.size(), "{key}");
        let want_kind = if orig.is_floating_point() { Kind::Float } else { orig.kind() };
        assert_eq!(got.kind(), want_kind, "{key}");
        assert!(got.equal(&orig.to_kind(want_kind)), "{key}");
    }
    // nothing else was left in the folder (no temporary file)
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "not the private mode of a temporary file");
    }
}

#[test]
fn safetensors_round_trip_of_reference_synthesis() {
    let dir = tempfile::tempdir().unwrap();
    let sd = load_ok("synthesis_128_c32.pt");
    let out = dir.path().join("synthesis.safetensors");
    weights::save_safetensors(&sd, &out, None).unwrap();
    let back = weights::load(&out).unwrap();
    assert_eq!(back.metadata(), None);
    let mut a: Vec<&str> = sd.keys().collect();
    let mut b: Vec<&str> = back.keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    for (key, t) in sd.iter() {
        assert!(back.get(key).unwrap().equal(t), "{key}");
    }
}

#[test]
fn save_failure_leaves_existing_file_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    std::fs::write(&out, b"previous contents").unwrap();
    let sd = StateDict::from_pairs(vec![(
        "complex".into(),
        Tensor::zeros([2], (Kind::ComplexFloat, Device::Cpu)),
    )]);
    let err = weights::save_safetensors(&sd, &out, None).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::UnsupportedDtype(_)), "{err}");
    assert_one_line_naming(&err, "model.safetensors");
    assert_eq!(std::fs::read(&out).unwrap(), b"previous contents");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn sha256_of_a_file_is_lowercase_hex() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("abc");
    std::fs::write(&p, b"abc").unwrap();
    assert_eq!(
        weights::sha256_file(&p).unwrap(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert!(weights::sha256_file(&dir.path().join("missing")).is_err());
}

// ---------------------------------------------------------------- load_into

fn mapping_store(shape0: &[i64]) -> tch::nn::VarStore {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let root = vs.root();
    for i in 0..8 {
        let layer = root.sub(format!("dense{i}"));
        let shape = if i == 0 { shape0 } else { &[512, 512] };
        let _ = layer.var("weight", shape, tch::nn::Init::Const(0.0));
        let _ = layer.var("bias", &[512], tch::nn::Init::Const(0.0));
    }
    vs
}

#[test]
fn load_into_fills_every_variable() {
    let sd = load_ok("mapping.pt");
    let mut vs = mapping_store(&[512, 512]);
    weights::load_into(&mut vs, &sd).unwrap();
    let vars = vs.variables();
    assert_eq!(vars.len(), 16);
    for (name, var) in &vars {
        assert!(var.equal(sd.get(name).unwrap()), "{name}");
        assert!(var.requires_grad(), "{name} stays trainable");
    }
}

#[test]
fn load_into_ignores_extra_keys_and_converts_dtype() {
    let sd = load_ok("weights_mixed_zip.pt");
    let mut vs = tch::nn::VarStore::new(Device::Cpu);
    let w = vs.root().sub("weights");
    let _ = w.var("f16", &[2, 3], tch::nn::Init::Const(0.0));
    weights::load_into(&mut vs, &sd).unwrap();
    let got = &vs.variables()["weights.f16"];
    assert_eq!(got.kind(), Kind::Float);
    assert!(got.equal(&sd.get("weights.f16").unwrap().to_kind(Kind::Float)));
}

#[test]
fn load_into_reports_missing_key() {
    let sd = load_ok("mapping.pt");
    let mut vs = mapping_store(&[512, 512]);
    let _ = vs.root().sub("truncation").var("avg", &[512], tch::nn::Init::Const(0.0));
    let err = weights::load_into(&mut vs, &sd).unwrap_err();
    assert!(matches!(&err.kind, ErrorKind::MissingKey { key } if key == "truncation.avg"), "{err}");
    assert_one_line_naming(&err, "mapping.pt");
}

#[test]
fn load_into_reports_shape_mismatch_and_changes_nothing() {
    let sd = load_ok("mapping.pt");
    let mut vs = mapping_store(&[256, 512]);
    let err = weights::load_into(&mut vs, &sd).unwrap_err();
    match &err.kind {
        ErrorKind::ShapeMismatch { key, expected, found } => {
            assert_eq!(key, "dense0.weight");
            assert_eq!(expected, &[256, 512]);
            assert_eq!(found, &[512, 512]);
        }
        other => panic!("{other}"),
    }
    assert_one_line_naming(&err, "mapping.pt");
    // checked before copying: even the well-shaped variables are still zero
    for (name, var) in vs.variables() {
        assert_eq!(var.abs().sum(Kind::Float).double_value(&[]), 0.0, "{name}");
    }
}

// ---------------------------------------------------------------- hostile files

/// Asserts the error names the file and prints on a single line.
fn assert_one_line_naming(err: &WeightError, file_name: &str) {
    let text = err.to_string();
    assert!(!text.contains('\n'), "multi-line error: {text:?}");
    assert!(text.contains(file_name), "{text} does not name {file_name}");
}

/// Writes `bytes` to a temporary file called `name` and loads it.
fn load_bytes(name: &str, bytes: &[u8]) -> (tempfile::TempDir, WeightError) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let err = match weights::load(&path) {
        Ok(sd) => panic!("{name} loaded: {sd:?}"),
        Err(e) => e,
    };
    assert_one_line_naming(&err, name);
    (dir, err)
}

/// A legacy torch.save file: magic, version, sys info, `object`, the storage keys, then each
/// storage as (u64 count, bytes).
fn legacy_file(object: &[u8], storages: &[(&str, u64, &[u8])]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
    f.extend(b"\x80\x02M\xe9\x03.");
    f.extend(b"\x80\x02}.");
    f.extend(object);
    let keys =
        storages.iter().fold(Pickle::new().op(b"]("), |p, (k, _, _)| p.str(k)).op(b"e").stop();
    f.extend(keys);
    for (_, count, bytes) in storages {
        f.extend(count.to_le_bytes());
        f.extend(*bytes);
    }
    f
}

/// A zip torch.save file with `archive/data.pkl` and `archive/data/<key>` records.
fn zip_file(data_pkl: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", opts).unwrap();
    zip.write_all(data_pkl).unwrap();
    zip.start_file("archive/byteorder", opts).unwrap();
    zip.write_all(b"little").unwrap();
    for (key, bytes) in storages {
        zip.start_file(format!("archive/data/{key}"), opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn crafted_legacy_file_with_storage_views_loads() {
    // old torch: "a" is a view (offset 2, 4 elements) of the root storage; "b" the whole root
    let object = Pickle::new()
        .op(b"}(")
        .str("a")
        .tensor("FloatStorage", "root", 8, Some(("v", 2, 4)), 1, &[3], &[1])
        .str("b")
        .tensor("FloatStorage", "root", 8, None, 0, &[2, 4], &[4, 1])
        .op(b"u")
        .stop();
    let data = f32_bytes(&[0., 1., 2., 3., 4., 5., 6., 7.]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("views.pt");
    std::fs::write(&path, legacy_file(&object, &[("root", 8, &data)])).unwrap();
    let sd = weights::load(&path).unwrap();
    assert_eq!(sd.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert!(sd.get("a").unwrap().equal(&Tensor::from_slice(&[3f32, 4., 5.])));
    assert_eq!(sd.get("b").unwrap().size(), [2, 4]);
    assert_eq!(sd.get("b").unwrap().double_value(&[1, 3]), 7.0);
}

#[test]
fn not_a_weight_file() {
    let mut seed = 0x2545f4914f6cdd1du64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect();
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x20\x00\x00\x00\x20\x08\x02";
    // a pickle that is not a torch file (its first value is not the magic number)
    let plain_pickle = Pickle::new().str("hello").stop();
    for (name, bytes) in [
        ("random.pt", &random[..]),
        ("face.png", &png[..]),
        ("empty.pt", &b""[..]),
        ("text.pt", &b"just some text\n"[..]),
        ("plain.pkl", &plain_pickle[..]),
    ] {
        let (_dir, err) = load_bytes(name, bytes);
        assert!(matches!(err.kind, ErrorKind::NotAWeightFile), "{err}");
    }
    let err = weights::load(Path::new("/definitely/not/here.pt")).unwrap_err();
    assert!(matches!(err.kind, ErrorKind::Io(_)), "{err}");
    assert_one_line_naming(&err, "here.pt");
}

/// `bytes` cut at each of `cuts` (and written as `name`) loads as `Truncated`.
fn assert_truncated_at(name: &str, bytes: &[u8], cuts: impl IntoIterator<Item = usize>) {
    for cut in cuts {
        let (_dir, err) = load_bytes(name, &bytes[..cut]);
        assert!(matches!(err.kind, ErrorKind::Truncated), "{name} cut at {cut}: {err}");
    }
}

#[test]
fn truncated_legacy_files_report_truncated_at_every_cut() {
    let full = std::fs::read(fixture("gaussian_fit_ffhq.pt")).unwrap();
    assert_truncated_at("gaussian_fit.pt", &full, 1..full.len());
    let big = std::fs::read(fixture("synthesis_1024_c16.pt")).unwrap();
    assert_truncated_at(
        "synthesis.pt",
        &big,
        [2, 14, 15, 200, 21_000, 23_504, 23_510, 100_000, big.len() - 1],
    );
}

#[test]
fn truncated_zip_files_report_truncated() {
    let full = std::fs::read(fixture("weights_mixed_zip.pt")).unwrap();
    assert_truncated_at("mixed.pt", &full, (1..full.len()).step_by(7));
    let big = std::fs::read(fixture("synthesis_128_c32.pt")).unwrap();
    assert_truncated_at(
        "synthesis_128.pt",
        &big,
        [4, 100, 13_000, 1_000_000, big.len() - 22, big.len() - 1],
    );
}

#[test]
fn truncated_safetensors_report_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    weights::save_safetensors(&load_ok("gaussian_fit_ffhq.pt"), &path, None).unwrap();
    let full = std::fs::read(&path).unwrap();
    // from the header's first byte on ('{' at offset 8 identifies the format)
    assert_truncated_at("m.safetensors", &full, (9..full.len()).step_by(13));
}

#[test]
fn unsupported_opcode_is_named_with_its_offset() {
    // INST ('i'), the protocol-0 way to instantiate a class, appears in the object pickle
    let object = Pickle::new().op(b"}(").str("w").op(b"ios\nsystem\n").stop();
    let file = legacy_file(&object, &[]);
    let offset = file.iter().position(|&b| b == b'i').unwrap() as u64;
    let (_dir, err) = load_bytes("inst.pt", &file);
    assert!(
        matches!(err.kind, ErrorKind::UnsupportedOpcode { opcode: b'i', offset: o } if o == offset),
        "{err}"
    );
}

/// A pickle calling `module.name("touch <marker>")`, as a legacy file, a zip and a bare pickle.
fn code_execution_payloads(module: &str, name: &str, marker: &Path) -> Vec<(String, Vec<u8>)> {
    let command = format!("touch {}", marker.display());
    let classic = Pickle::new().global(module, name).mark().str(&command).tuple().op(b"R");
    // protocol 4 spelling: STACK_GLOBAL with the names as strings
    let stack = Pickle::protocol(4).str(module).str(name).op(b"\x93").str(&command).op(b"\x85R");
    let dict_with = |call: &Pickle| Pickle::new().op(b"}(").str("w").then(call).op(b"u").stop();
    vec![
        ("bare.pt".into(), classic.clone().stop()),
        ("legacy.pt".into(), legacy_file(&dict_with(&classic), &[])),
        ("zip.pt".into(), zip_file(&dict_with(&classic), &[])),
        ("stack_global.pt".into(), legacy_file(&stack.stop(), &[])),
    ]
}

#[test]
fn refuses_code_execution_globals_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    for (module, name) in [("os", "system"), ("posix", "system"), ("builtins", "eval")] {
        for (file, bytes) in code_execution_payloads(module, name, &marker) {
            let (_d, err) = load_bytes(&file, &bytes);
            match &err.kind {
                ErrorKind::RefusedGlobal { module: m, name: n } => {
                    assert_eq!((m.as_str(), n.as_str()), (module, name), "{file}");
                }
                other => panic!("{file} {module}.{name}: {other}"),
            }
            let text = err.to_string();
            assert!(
                text.contains(&format!(
                    "refused global '{module}.{name}' (only tensor data may be loaded from a weight file)"
                )),
                "{text}"
            );
            assert!(!marker.exists(), "{file}: the payload ran");
        }
    }
}

#[test]
fn refuses_other_globals_even_next_to_real_tensors() {
    let object = Pickle::new()
        .op(b"}(")
        .str("w")
        .tensor("FloatStorage", "0", 2, None, 0, &[2], &[1])
        .str("x")
        .global("torch", "load")
        .op(b"u")
        .stop();
    let data = f32_bytes(&[1., 2.]);
    let (_d, err) = load_bytes("mixed.pt", &legacy_file(&object, &[("0", 2, &data)]));
    assert!(
        matches!(&err.kind, ErrorKind::RefusedGlobal { module, name } if module == "torch" && name == "load"),
        "{err}"
    );
}

#[test]
fn unsupported_storage_dtype_is_named() {
    let object = Pickle::new()
        .op(b"}(")
        .str("w")
        .tensor("ComplexFloatStorage", "0", 1, None, 0, &[1], &[1])
        .op(b"u")
        .stop();
    let (_d, err) = load_bytes("complex.pt", &legacy_file(&object, &[("0", 1, &[0; 8])]));
    assert!(
        matches!(&err.kind, ErrorKind::UnsupportedDtype(d) if d.contains("ComplexFloatStorage")),
        "{err}"
    );
}

#[test]
fn huge_declared_storage_is_refused_without_allocating() {
    // 2^40 floats (4 TiB) declared in a file of a few hundred bytes
    let object = Pickle::new()
        .op(b"}(")
        .str("w")
        .tensor("FloatStorage", "0", 1 << 40, None, 0, &[1 << 20], &[1])
        .op(b"u")
        .stop();
    // legacy: the storage would have to follow in the file, which ends first
    let (_d, err) = load_bytes("huge.pt", &legacy_file(&object, &[("0", 1 << 40, &[0; 16])]));
    assert!(matches!(err.kind, ErrorKind::Truncated), "{err}");
    // zip: no record of a few hundred bytes can expand to 4 TiB

    let (_d, err) = load_bytes("huge_zip.pt", &zip_file(&object, &[("0", &[0; 16])]));
    assert!(matches!(err.kind, ErrorKind::LimitExceeded(_)), "{err}");
    // a storage whose u64 count claims more than the file holds: truncated, not allocated
    let object = Pickle::new()
        .op(b"}(")
        .str("w")
        .tensor("FloatStorage", "0", 64, None, 0, &[64], &[1])
        .op(b"u")
        .stop();
    let (_d, err) = load_bytes("short.pt", &legacy_file(&object, &[("0", 64, &[0; 16])]));
    assert!(matches!(err.kind, ErrorKind::Truncated), "{err}");
}

#[test]
fn inconsistent_storages_and_views_are_malformed() {
    let tensor = |numel, offset, size: &[u32], stride: &[u32]| {
        Pickle::new()
            .op(b"}(")
            .str("w")
            .tensor("FloatStorage", "0", numel, None, offset, size, stride)
            .op(b"u")
            .stop()
    };
    let four = f32_bytes(&[1., 2., 3., 4.]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // the view reaches element 4 of a 4-element storage
        ("past_end.pt", legacy_file(&tensor(4, 1, &[4], &[1]), &[("0", 4, &four)])),
        ("stride.pt", legacy_file(&tensor(4, 0, &[2, 2], &[3, 1]), &[("0", 4, &four)])),
        // the data section's count disagrees with the declaration
        ("count.pt", legacy_file(&tensor(4, 0, &[4], &[1]), &[("0", 3, &four[..12])])),
        // a storage with a tensor but no data
        ("no_data.pt", legacy_file(&tensor(4, 0, &[4], &[1]), &[])),
        // data for a storage no tensor declared
        (
            "stray.pt",
            legacy_file(&tensor(4, 0, &[4], &[1]), &[("0", 4, &four), ("9", 1, &four[..4])]),
        ),
        // zip record of the wrong size, and a missing record
        ("zip_size.pt", zip_file(&tensor(4, 0, &[4], &[1]), &[("0", &four[..8])])),
        ("zip_missing.pt", zip_file(&tensor(4, 0, &[4], &[1]), &[])),
        // a lone tensor instead of a dict
        (
            "lone.pt",
            legacy_file(
                &Pickle::new().tensor("FloatStorage", "0", 4, None, 0, &[4], &[1]).stop(),
                &[("0", 4, &four)],
            ),
        ),
    ];
    for (name, bytes) in cases {
        let (_d, err) = load_bytes(name, &bytes);
        assert!(matches!(err.kind, ErrorKind::Malformed(_)), "{name}: {err}");
    }
}

#[test]
fn deep_nesting_and_huge_memo_indices_are_errors_not_crashes() {
    let wrap = |p: Vec<u8>| legacy_file(&p, &[]);
    // 100 000 nested MARKs
    let mut marks = vec![0x80, 2];
    marks.extend(std::iter::repeat_n(b'(', 100_000));
    let (_d, err) = load_bytes("marks.pt", &wrap(marks));
    assert!(matches!(err.kind, ErrorKind::LimitExceeded(_)), "{err}");

    // dicts nested 50 000 deep: {"k": {"k": {...}}}
    let mut deep = Pickle::new();
    for _ in 0..50_000 {
        deep = deep.op(b"}").str("k");
    }
    deep = deep.op(b"}");
    for _ in 0..50_000 {
        deep = deep.op(b"s");
    }
    let (_d, err) = load_bytes("deep.pt", &wrap(deep.stop()));
    assert!(matches!(err.kind, ErrorKind::LimitExceeded(_)), "{err}");

    // a dict that contains itself
    let cycle = Pickle::new().op(b"}q\x00").str("self").op(b"h\x00s").stop();
    let (_d, err) = load_bytes("cycle.pt", &wrap(cycle));
    assert!(matches!(err.kind, ErrorKind::Malformed(_)), "{err}");

    // memo indices near 2^32: storing is fine, fetching an unset one is an error
    let memo = Pickle::new().op(b"}r\xff\xff\xff\xffj\xfe\xff\xff\xff").stop();
    let (_d, err) = load_bytes("memo.pt", &wrap(memo));
    assert!(matches!(err.kind, ErrorKind::Malformed(_)), "{err}");

    // a million memo entries and more
    let mut many = Pickle::new().op(b"N");
    for i in 0..1_000_001u32 {
        let mut op = vec![b'r'];
        op.extend(i.to_le_bytes());
        many = many.op(&op);
    }
    let (_d, err) = load_bytes("memo_flood.pt", &wrap(many.stop()));
    assert!(matches!(err.kind, ErrorKind::LimitExceeded(_)), "{err}");
}

#[test]
fn work_is_bounded() {
    // millions of cheap opcodes
    let mut spin = vec![0x80, 2];
    for _ in 0..2_100_000 {
        spin.extend(b"N0");
    }
    spin.extend(b"}.");
    let (_d, err) = load_bytes("spin.pt", &legacy_file(&spin, &[]));
    assert!(matches!(err.kind, ErrorKind::LimitExceeded(_)), "{err}");

    // amplification: OrderedDict(list of 10 000 pairs) rebuilt 1 000 times from the memo
    let mut p = Pickle::new().op(b"](");
    for i in 0..10_000u32 {
        p = p.str(&i.to_string()).op(b"N\x86");
    }
    p = p.op(b"eq\x00");
    for _ in 0..1_000 {
        p = p.global("collections", "OrderedDict").op(b"h\x00\x85R0");
    }
    let (_d, err) = load_bytes("amplify.pt", &legacy_file(&p.op(b"}").stop(), &[]));
    assert!(matches!(err.kind, ErrorKind::LimitExceeded(_)), "{err}");
}

#[test]
fn one_tensor_named_a_million_times_is_refused() {
    // {"0": t, "1": t, ...} with t fetched from the memo: cheap to write, costly to build
    let mut p = Pickle::new().tensor("FloatStorage", "0", 1, None, 0, &[1], &[1]).op(b"q\x00}(");
    for i in 0..(1u32 << 20) + 1 {
        p = p.str(&i.to_string()).op(b"h\x00");
        if i % 1000 == 999 {
            p = p.op(b"u(");
        }
    }
    let object = p.op(b"u").stop();
    let (_d, err) = load_bytes("many.pt", &legacy_file(&object, &[("0", 1, &[0; 4])]));
    assert!(matches!(&err.kind, ErrorKind::LimitExceeded(m) if m.contains("tensors")), "{err}");
}

#[test]
fn whole_pickled_model_is_explained() {
    let object = Pickle::new().mark().str("module").op(b"NNN").tuple().op(b"Q").stop();
    let (_d, err) = load_bytes("model.pt", &legacy_file(&object, &[]));
    assert!(matches!(&err.kind, ErrorKind::Malformed(m) if m.contains("state_dict")), "{err}");
}

/// Random byte edits of real files: the loader must return (any result) without panicking.
#[test]
fn fuzz_smoke_mutated_fixtures_never_panic() {
    for name in [
        "weights_mixed_legacy.pt",
        "weights_mixed_zip.pt",
        "weights_mixed_deflated.pt",
        "gaussian_fit_ffhq.pt",
    ] {
        let original = std::fs::read(fixture(name)).unwrap();
        crate::common::pickle::mutations(&original, 400, 0x9e3779b97f4a7c15, |bytes| {
            weights::fuzz_load_bytes(bytes)
        });
    }
}
