//! One job over many machines (README, "Large folders on a cluster"): shards started together
//! into one output folder give exactly the files and the merged report of one unsharded run;
//! `--shard auto` under Slurm, Kubernetes and AWS Batch variables; the example job files.

use crate::common::*;
use predicates::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The job-array variables `--shard auto` reads; cleared so that a test run inside a real job
/// array sees only its own.
const ARRAY_VARS: [&str; 10] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
    "SLURM_ARRAY_TASK_COUNT",
    "JOB_COMPLETION_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
    "AWS_BATCH_JOB_ARRAY_SIZE",
    "PULSE_SHARDS",
    "PULSE_MODEL",
];

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("pulse")
}

fn clean(cmd: &mut Command) -> &mut Command {
    for v in ARRAY_VARS {
        cmd.env_remove(v);
    }
    cmd.env("PULSE_MTCNN", root().join("models/mtcnn"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Six inputs (two faces, three patterns, one empty file that is refused), sorted a..f.
fn inputs(t: &TestDir) -> PathBuf {
    let dir = t.path("in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(face("astronaut32.png"), dir.join("a.png")).unwrap();
    std::fs::copy(face("cameraman32.png"), dir.join("b.png")).unwrap();
    std::fs::write(dir.join("c.png"), b"").unwrap();
    for (name, k) in [("d.png", 3u32), ("e.png", 5), ("f.png", 7)] {
        image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * k) as u8, (y * 9) as u8, 40]))
            .save(dir.join(name))
            .unwrap();
    }
    dir
}

fn upsample(inputs: &Path, model: &Path, out: &Path, report: &Path) -> Command {
    let mut cmd = Command::new(bin());
    clean(&mut cmd)
        .args(["upsample", s(inputs), "--steps", "2", "--seed", "21", "--eps", "1", "-q"])
        .args(["--model", s(model), "-o", s(out), "--report", s(report)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Every file under `dir` (relative path -> bytes), reports and locks left out.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_file() && !name.starts_with(".pulse.lock") && !name.ends_with(".json") {
            out.insert(name, std::fs::read(&path).unwrap());
        }
    }
    out
}

/// A merged report's entries, comparable between folders: outputs by file name, no timings.
fn entries(report: &Value) -> Value {
    let mut r = report.clone();
    for image in r["images"].as_array_mut().unwrap() {
        image.as_object_mut().unwrap().remove("seconds");
        let names: Vec<Value> = image["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| Path::new(o.as_str().unwrap()).file_name().unwrap().to_str().unwrap().into())
            .collect();
        image["outputs"] = Value::Array(names);
    }
    // `skipped_inputs` differs when the second copy of a shard ran after the first finished.
    let keep = ["images", "refused", "assigned", "model"];
    Value::Object(
        r.as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| keep.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// Three shards and a second copy of one of them, started together into one output folder: the
/// second copy is refused while the first holds its shard's lock (or, started after it
/// finished, skips everything); the folder then holds byte for byte the files of one unsharded
/// run, and the merged shard reports equal its report.
#[test]
fn concurrent_shards_in_one_folder_equal_an_unsharded_run() {
    let t = TestDir::new();
    let model = t.model_128();
    let inputs = inputs(&t);
    let (whole, shared) = (t.path("whole"), t.path("shared"));
    let whole_report = whole.join("report.json");
    let run = upsample(&inputs, &model, &whole, &whole_report).output().unwrap();
    assert_eq!(run.status.code(), Some(2), "{}", String::from_utf8_lossy(&run.stderr));

    let reports = shared.join("reports/");
    let mut children: Vec<(String, std::process::Child)> = ["0/3", "1/3", "2/3", "1/3"]
        .iter()
        .map(|shard| {
            let mut cmd = upsample(&inputs, &model, &shared, &reports);
            (shard.to_string(), cmd.args(["--shard", shard]).spawn().unwrap())
        })
        .collect();
    let mut codes = vec![];
    for (shard, child) in children.drain(..) {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        codes.push((shard, out.status.code(), stderr));
    }
    // Shard 2/3 holds c.png (sorted position 2): refused. The others converge.
    let code = |i: usize| codes[i].1;
    assert_eq!((code(0), code(2)), (Some(0), Some(2)), "{codes:?}");
    let (first, again) = (&codes[1], &codes[3]);
    let refused_busy = |c: &(String, Option<i32>, String)| {
        c.1 == Some(2) && c.2.contains("another pulse run of shard 1/3")
    };
    assert!(
        (first.1 == Some(0) && (again.1 == Some(0) || refused_busy(again)))
            || (refused_busy(first) && again.1 == Some(0)),
        "one copy of shard 1/3 runs, the other is refused or finds it done: {codes:?}"
    );

    assert_eq!(files(&shared), files(&whole), "the shards' union differs from the whole run");
    assert!(!files(&whole).is_empty());
    let mut names: Vec<String> = std::fs::read_dir(&reports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["report.0-of-3.json", "report.1-of-3.json", "report.2-of-3.json"]);
    assert!(
        !std::fs::read_dir(&shared)
            .unwrap()
            .any(|e| { e.unwrap().file_name().to_string_lossy().starts_with(".pulse.lock") }),
        "every lock is released"
    );

    let merged = t.path("merged.json");
    let shard_reports: Vec<PathBuf> = names.iter().map(|n| reports.join(n)).collect();
    let mut cmd = pulse();
    cmd.args(["report", "merge"]).args(&shard_reports).args(["-o", s(&merged)]);
    cmd.assert().code(2).stdout(predicate::str::contains(
        "upsample: 3 of 3 shards, 6 inputs: 5 done (5 converged), 1 refused, 0 missing inputs",
    ));
    let single = t.path("single.json");
    pulse().args(["report", "merge", s(&whole_report), "-o", s(&single)]).assert().code(2);
    let (m, w) = (read_json(&merged), read_json(&single));
    assert_eq!(entries(&m), entries(&w));
    assert_eq!(m["shards"].as_array().unwrap().len(), 3);
    assert_eq!(m["shards"][1]["source"], "command line");

    pulse()
        .args(["report", "summary", s(&reports)])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("3 of 3 shards"));
    // A shard whose report is missing makes the job incomplete: exit 1, naming the shard.
    std::fs::remove_file(&shard_reports[1]).unwrap();
    pulse()
        .args(["report", "summary", s(&reports)])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("missing shards 1"));
}

/// While a run of shard 1/2 holds its lock, a second run of it is refused (exit 2, naming the
/// holder), and shard 0/2 works in the same folder meanwhile; once the lock is released the
/// second run goes ahead.
#[test]
fn two_runs_of_one_shard_refuse_each_other_other_shards_do_not() {
    let t = TestDir::new();
    let model = t.model_128();
    let inputs = t.path("in");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::copy(face("astronaut32.png"), inputs.join("a.png")).unwrap();
    std::fs::copy(face("cameraman32.png"), inputs.join("b.png")).unwrap();
    let out = t.path("out");
    std::fs::create_dir_all(&out).unwrap();
    let lock = pulse::files::DirLock::acquire(&out, ".pulse.lock.1-of-2").unwrap().unwrap();
    let run = |shard: &str| {
        let mut cmd = upsample(&inputs, &model, &out, &out.join("{shard}.json"));
        cmd.args(["--shard", shard]).output().unwrap()
    };
    let busy = run("1/2");
    let stderr = String::from_utf8_lossy(&busy.stderr);
    assert_eq!(busy.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("another pulse run of shard 1/2"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", std::process::id())), "names the holder: {stderr}");
    assert!(!out.join("b.png").exists());
    assert_eq!(run("0/2").status.code(), Some(0));
    assert!(out.join("a.png").is_file() && out.join("0-of-2.json").is_file());
    drop(lock);
    assert_eq!(run("1/2").status.code(), Some(0));
    assert!(out.join("b.png").is_file() && out.join("1-of-2.json").is_file());
}

/// `--shard auto` under each job array's variables: the shard it found is said on stderr and
/// recorded in the report; what it cannot use is a clear usage error (exit 2) before any work.
#[test]
fn shard_auto_reads_slurm_kubernetes_and_aws_batch() {
    let t = TestDir::new();
    let photos = t.path("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in ["astronaut.jpg", "palette.png", "no_face.jpg"] {
        std::fs::copy(fixture("align").join(name), photos.join(name)).unwrap();
    }
    let align = |vars: &[(&str, &str)], extra: &[&str]| {
        let mut cmd = Command::new(bin());
        clean(&mut cmd).envs(vars.iter().copied());
        cmd.args(["align", s(&photos), "--device", "cpu", "-q", "--shard", "auto"])
            .args(["-o", s(&t.path("aligned")), "--report", s(&t.path("reports/"))])
            .args(extra);
        let out = cmd.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // Slurm, --array=1-5:2 (tasks 1, 3, 5): task 5 is shard 2 of 3, the third photo (palette).
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "5"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_STEP", "2"),
        ("SLURM_ARRAY_TASK_MAX", "5"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
    ];
    let (code, stderr) = align(&slurm, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("shard 2/3 (slurm: SLURM_ARRAY_TASK_ID=5"), "{stderr}");
    let r = read_json(&t.path("reports/align.2-of-3.json"));
    assert_eq!(r["shard"]["source"], "slurm");
    assert_eq!(r["shard"]["index"], 2);
    assert_eq!(r["inputs"].as_array().unwrap().len(), 1);
    assert!(r["inputs"][0]["input"].as_str().unwrap().ends_with("palette.png"));

    // Kubernetes: the index, and the total from PULSE_SHARDS or --shards.
    let (code, stderr) = align(&[("JOB_COMPLETION_INDEX", "0"), ("PULSE_SHARDS", "3")], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("shard 0/3 (kubernetes: JOB_COMPLETION_INDEX=0"), "{stderr}");
    assert_eq!(read_json(&t.path("reports/align.0-of-3.json"))["shard"]["source"], "kubernetes");
    // AWS Batch: shard 1 of 3 is no_face.jpg, refused (exit 2) and reported.
    let aws = [("AWS_BATCH_JOB_ARRAY_INDEX", "1"), ("AWS_BATCH_JOB_ARRAY_SIZE", "3")];
    let (code, stderr) = align(&aws, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("shard 1/3 (aws-batch: AWS_BATCH_JOB_ARRAY_INDEX=1"), "{stderr}");
    assert_eq!(read_json(&t.path("reports/align.1-of-3.json"))["shard"]["source"], "aws-batch");
    pulse().args(["report", "summary", s(&t.path("reports"))]).assert().code(2).stdout(
        predicate::str::contains(
            "align: 3 of 3 shards, 3 inputs: 2 done, 1 refused, 0 missing inputs",
        ),
    );

    for (vars, extra, what) in [
        (&[][..], &[][..], "no job array found"),
        (&[("JOB_COMPLETION_INDEX", "1")][..], &[][..], "--shards N"),
        (&[("JOB_COMPLETION_INDEX", "3")][..], &["--shards", "3"][..], "not below"),
        (
            &[
                ("SLURM_ARRAY_TASK_ID", "5"),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_MAX", "5"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ][..],
            &[][..],
            "evenly spaced",
        ),
    ] {
        let (code, stderr) = align(vars, extra);
        assert_eq!(code, Some(2), "{vars:?}: {stderr}");
        assert!(stderr.contains(what), "{vars:?}: expected '{what}' in {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }

    // upsample reads the same variables.
    let model = t.model_128();
    let faces = t.path("faces");
    std::fs::create_dir_all(&faces).unwrap();
    std::fs::copy(face("astronaut32.png"), faces.join("a.png")).unwrap();
    std::fs::copy(face("cameraman32.png"), faces.join("b.png")).unwrap();
    let mut cmd = upsample(&faces, &model, &t.path("up"), &t.path("up/"));
    cmd.envs([("JOB_COMPLETION_INDEX", "1")]).args(["--shard", "auto", "--shards", "2"]);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("shard 1/2 (kubernetes"), "{stderr}");
    let r = read_json(&t.path("up/report.1-of-2.json"));
    assert_eq!(r["shard"]["source"], "kubernetes");
    assert!(t.path("up/b.png").is_file() && !t.path("up/a.png").exists());
}

/// `align` shards started together into one folder equal one unsharded run, files and report.
#[test]
fn align_shards_in_one_folder_equal_an_unsharded_run() {
    let t = TestDir::new();
    let photos = t.path("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for name in ["astronaut.jpg", "camera_grey.png", "group.jpg", "no_face.jpg", "palette.png"] {
        std::fs::copy(fixture("align").join(name), photos.join(name)).unwrap();
    }
    let align = |out: &Path, report: &Path, shard: Option<&str>| {
        let mut cmd = Command::new(bin());
        clean(&mut cmd)
            .args(["align", s(&photos), "--device", "cpu", "-q", "--all-faces"])
            .args(["-o", s(out), "--report", s(report)])
            .stderr(Stdio::null());
        if let Some(shard) = shard {
            cmd.args(["--shard", shard]);
        }
        cmd
    };
    let (whole, shared) = (t.path("whole"), t.path("shared"));
    assert_eq!(align(&whole, &t.path("whole.json"), None).status().unwrap().code(), Some(2));
    let children: Vec<_> = ["0/2", "1/2"]
        .iter()
        .map(|s| align(&shared, &t.path("r-{shard}.json"), Some(s)).spawn().unwrap())
        .collect();
    let codes: Vec<Option<i32>> =
        children.into_iter().map(|mut c| c.wait().unwrap().code()).collect();
    assert!(codes.contains(&Some(2)) && codes.iter().all(|c| matches!(c, Some(0 | 2))));
    assert_eq!(files(&shared), files(&whole));
    let merge = |reports: &[PathBuf], out: &Path| {
        pulse().args(["report", "merge"]).args(reports).args(["-o", s(out)]).assert().code(2);
        let mut r = read_json(out);
        for rec in r["inputs"].as_array_mut().unwrap() {
            rec.as_object_mut().unwrap().remove("seconds");
            for o in rec["outputs"].as_array_mut().unwrap() {
                *o = Path::new(o.as_str().unwrap()).file_name().unwrap().to_str().unwrap().into();
            }
            for f in rec["faces"].as_array_mut().unwrap() {
                let name = f["output"]
                    .as_str()
                    .map(|o| Path::new(o).file_name().unwrap().to_str().unwrap().to_string());
                f["output"] = name.into();
            }
        }
        (r["inputs"].clone(), r["assigned"].clone())
    };
    let sharded = merge(&[t.path("r-0-of-2.json"), t.path("r-1-of-2.json")], &t.path("m.json"));
    let single = merge(&[t.path("whole.json")], &t.path("w.json"));
    assert_eq!(sharded, single);
}

/// The example job files: the Slurm script parses (`bash -n`) and uses `--shard auto` in a job
/// array; the Kubernetes manifest is an Indexed Job whose pods share a ReadWriteMany volume that
/// holds the output folder, with PULSE_SHARDS equal to its completions.
#[test]
fn cluster_examples_are_valid() {
    let dir = root().join("examples/cluster");
    let slurm = dir.join("slurm-upsample.sh");
    let status = Command::new("bash").arg("-n").arg(&slurm).status().unwrap();
    assert!(status.success(), "bash -n {}", slurm.display());
    let script = std::fs::read_to_string(&slurm).unwrap();
    assert!(script.contains("#SBATCH --array=0-15"));
    assert!(script.contains("--shard auto"));
    assert!(script.contains("--report \"$OUT/reports/\""));

    let text = std::fs::read_to_string(dir.join("kubernetes-upsample.yaml")).unwrap();
    let docs: Vec<serde_norway::Value> = serde_norway::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let of_kind = |kind: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(kind))
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let job = of_kind("Job");
    let pvc = of_kind("PersistentVolumeClaim");
    assert_eq!(job["apiVersion"].as_str(), Some("batch/v1"));
    assert_eq!(job["spec"]["completionMode"].as_str(), Some("Indexed"));
    let completions = job["spec"]["completions"].as_u64().unwrap();
    let pod = &job["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let command: Vec<&str> =
        container["command"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(&command[..2], ["pulse", "upsample"]);
    let flag = |name: &str| command[command.iter().position(|c| *c == name).unwrap() + 1];
    assert_eq!(flag("--shard"), "auto");
    let env: BTreeMap<&str, &str> = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["value"].as_str().unwrap()))
        .collect();
    assert_eq!(env["PULSE_SHARDS"], completions.to_string());
    // The output folder and the reports are on the shared volume.
    let mount = &container["volumeMounts"][0];
    let mount_path = mount["mountPath"].as_str().unwrap();
    assert!(flag("-o").starts_with(mount_path) && flag("--report").starts_with(mount_path));
    let volume =
        pod["volumes"].as_sequence().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
    assert_eq!(volume["persistentVolumeClaim"]["claimName"], pvc["metadata"]["name"]);
    let modes: Vec<&str> = pvc["spec"]["accessModes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(modes.contains(&"ReadWriteMany"), "pods on several nodes share the volume: {modes:?}");
}

/// A shard report of a two-way `upsample` job, written as the command writes it: `images` of
/// the given inputs (each converged or not), assigned `assigned`.
fn shard_report(index: u64, seed: u64, assigned: &[&Path], images: &[(&Path, bool)]) -> Value {
    let images: Vec<Value> = images
        .iter()
        .map(|(input, converged)| {
            serde_json::json!({
                "input": s(input), "sample": 0, "converged": converged,
                "outputs": [s(&input.with_extension("out.png"))],
            })
        })
        .collect();
    serde_json::json!({
        "kind": "upsample",
        "shard": {"index": index, "count": 2, "source": "command line", "detail": ""},
        "assigned": assigned.iter().map(|p| s(p)).collect::<Vec<_>>(),
        "settings": {"seed": seed, "samples": 1, "device": "cpu"},
        "model": {"sha256": "ab"},
        "images": images, "refused": [], "skipped_inputs": [], "interrupted": false,
    })
}

fn write_json(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

/// `report merge -o` writes a new file, or over a merged report of the same job; never over an
/// input or output the reports name, a user's file, or another job's report (exit 2, the file
/// untouched). A folder is a usage error (exit 2).
#[test]
fn report_merge_writes_over_nothing_but_its_own_merged_report() {
    let t = TestDir::new();
    let (a, b) = (t.path("in/a.png"), t.path("in/b.png"));
    std::fs::create_dir_all(t.path("in")).unwrap();
    std::fs::write(&a, b"photo a").unwrap();
    std::fs::write(&b, b"photo b").unwrap();
    let output = a.with_extension("out.png");
    std::fs::write(&output, b"an output").unwrap();
    let (r0, r1) = (t.path("r/0.json"), t.path("r/1.json"));
    write_json(&r0, &shard_report(0, 1, &[&a], &[(&a, true)]));
    write_json(&r1, &shard_report(1, 1, &[&b], &[(&b, true)]));
    let other = t.path("other.json");
    write_json(&other, &shard_report(0, 2, &[&a], &[(&a, true)]));
    let user = t.path("mine.json");
    std::fs::write(&user, b"{\"mine\": 1}").unwrap();
    let merge = |out: &Path| {
        let o = pulse().args(["report", "merge", s(&r0), s(&r1), "-o", s(out)]).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    for target in [&a, &output, &user, &other, &r0] {
        let before = std::fs::read(target).unwrap();
        let (code, stderr) = merge(target);
        assert_eq!(code, Some(2), "{}: {stderr}", target.display());
        assert!(stderr.contains(s(target)), "names the file: {stderr}");
        assert_eq!(std::fs::read(target).unwrap(), before, "{} untouched", target.display());
    }
    let (code, stderr) = merge(&t.path("in"));
    assert_eq!(code, Some(2), "a folder: {stderr}");
    assert!(stderr.contains("folder"), "{stderr}");
    let merged = t.path("merged.json");
    assert_eq!(merge(&merged).0, Some(0));
    // Merged again (a requeued shard reported anew): its own merged report is rewritten.
    assert_eq!(merge(&merged).0, Some(0));
    assert_eq!(read_json(&merged)["shards"].as_array().unwrap().len(), 2);
}

/// `report summary` names a shard report it cannot read, and counts each shard's entries only
/// for the inputs that shard was assigned (a report that absorbed another shard's entries
/// does not change the verdict).
#[test]
fn report_summary_names_unreadable_reports_and_counts_only_assigned_entries() {
    let t = TestDir::new();
    let (a, b) = (t.path("a.png"), t.path("b.png"));
    let reports = t.path("reports");
    write_json(&reports.join("report.0-of-2.json"), &shard_report(0, 1, &[&a], &[(&a, true)]));
    // Shard 1's report also holds an old, unconverged entry of shard 0's input.
    let absorbed = shard_report(1, 1, &[&b], &[(&a, false), (&b, true)]);
    write_json(&reports.join("report.1-of-2.json"), &absorbed);
    let summary = || pulse().args(["report", "summary", s(&reports)]).output().unwrap();
    let out = summary();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("2 inputs: 2 done (2 converged)"), "{stdout}");
    std::fs::write(reports.join("report.1-of-2.json"), b"{\"kind\": \"upsample\", \"sha").unwrap();
    let out = summary();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("missing shards 1"), "{stdout}");
    assert!(stderr.contains("report.1-of-2.json") && stderr.contains("not JSON"), "{stderr}");
}

/// Shards given one plain `--report` file would absorb each other's entries: the second is
/// refused (exit 2, suggesting a folder), and the first's report stays as it wrote it.
#[test]
fn shards_sharing_one_plain_report_file_are_refused() {
    let t = TestDir::new();
    let model = t.model_128();
    let inputs = t.path("in");
    std::fs::create_dir_all(&inputs).unwrap();
    std::fs::copy(face("astronaut32.png"), inputs.join("a.png")).unwrap();
    std::fs::copy(face("cameraman32.png"), inputs.join("b.png")).unwrap();
    let (out, report) = (t.path("out"), t.path("report.json"));
    let run = |shard: &str| {
        let o = upsample(&inputs, &model, &out, &report).args(["--shard", shard]).output().unwrap();
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    assert_eq!(run("0/2").0, Some(0));
    let before = std::fs::read(&report).unwrap();
    let (code, stderr) = run("1/2");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("report.json") && stderr.contains("shard 0/2"), "{stderr}");
    assert!(stderr.contains("--report DIR/") || stderr.contains("{shard}"), "{stderr}");
    assert!(!out.join("b.png").exists(), "refused before any work");
    assert_eq!(std::fs::read(&report).unwrap(), before);
    // Rerunning shard 0 with its own report is a resume, as before.
    assert_eq!(run("0/2").0, Some(0));
}
