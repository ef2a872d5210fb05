//! `pulse eval`: the fidelity protocol (docs/design.md, "Measuring"). High-resolution faces (the
//! user's, or `--generated N` the model draws itself) are shrunk with PULSE's downscaler to
//! `--scale`, upsampled by each method with the same seeds, and the results compared with the
//! truth: success, steps and seconds, the low-resolution L2, PSNR, SSIM, LPIPS and diversity.
//!
//! The searches are `upsample`'s own ([`super::upsample::run`], one output folder per method):
//! its planning, locks, shards, resumption and report. An interrupted eval run again skips the
//! searches already written; the metrics are computed afresh from the files every run, so a
//! resumed eval ends with the same numbers as an uninterrupted one.
mod plot;
mod report;

pub use report::{summarize, EvalReport, EvalRow, MetricSummary, METRICS};

use super::report::{Entries, ImageEntry};
use super::shard::ShardInfo;
use super::upsample::{self, UpsampleObserver, UpsampleOptions};
use super::RunConfig;
use crate::files::escaped;
use crate::metrics::{self, lpips::Lpips};
use crate::model::Model;
use crate::pulse::downscale::{accepted_sides, factor_for, Downscaler};
use crate::pulse::{Method, SearchConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use tch::{Device, Kind, Tensor};

/// The eval's own files in the output folder.
pub const JSON: &str = "eval.json";
pub const CSV: &str = "eval.csv";
pub const PLOT: &str = "eval.png";
pub const SHEET: &str = "sheet.png";
/// Rows of the contact sheet at most (the first inputs, in order).
pub const SHEET_ROWS: usize = 32;

/// Where the ground truth comes from.
#[derive(Debug, Clone)]
pub enum Truths {
    /// Face files (or folders of them), square; resized to the model's resolution when another
    /// size.
    Files(Vec<PathBuf>),
    /// `count` faces the model draws, from the run's seed, with truncation `psi`.
    Generated { count: usize, psi: f64 },
}

/// Everything `eval` needs besides the model.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub truths: Truths,
    /// Side of the low-resolution inputs.
    pub scale: i64,
    /// Each method with its search settings (in the order given).
    pub methods: Vec<SearchConfig>,
    pub run: RunConfig,
    pub out_dir: PathBuf,
    /// The VGG16 weights for LPIPS (`None`: no LPIPS; diversity by pixel distance).
    pub vgg16: Option<PathBuf>,
    pub shard: Option<ShardInfo>,
    pub overwrite: bool,
}

/// What an eval run reports as it goes.
pub trait EvalObserver: UpsampleObserver {
    /// The truths and inputs are being written (`count` of them).
    fn preparing(&mut self, _count: usize) {}
    /// The searches of `method` begin.
    fn method_started(&mut self, _method: Method) {}
    /// The metrics are being computed.
    fn measuring(&mut self, _rows: usize) {}
}

/// Runs the protocol. Returns the report (also written as `eval.json`, `eval.csv`, `eval.png`
/// and `sheet.png`, or for a shard as `eval.<I>-of-<N>.json`, which `pulse eval merge` joins).
pub fn run(
    model: &mut Model,
    opts: &EvalOptions,
    observer: &mut dyn EvalObserver,
    stop: &AtomicBool,
) -> anyhow::Result<EvalReport> {
    let layout = model.layout().clone();
    let resolution = layout.resolution;
    let Some(factor) = factor_for(resolution, opts.scale) else {
        let sides: Vec<String> = accepted_sides(resolution).iter().map(i64::to_string).collect();
        crate::invalid!(
            "--scale {}: the model draws {resolution}x{resolution}, which shrinks to {}",
            opts.scale,
            sides.join(", ")
        );
    };
    if opts.methods.is_empty() {
        crate::invalid!("no method to evaluate");
    }
    for (i, m) in opts.methods.iter().enumerate() {
        if opts.methods[..i].iter().any(|o| o.method == m.method) {
            crate::invalid!("method {} is given twice", m.method.name());
        }
        m.check(&layout)?;
    }
    opts.run.check(model.device)?;
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", escaped(&opts.out_dir)))?;
    let shard = opts.shard.as_ref().map(|s| s.shard());
    let _lock = super::shard::lock_output_dir(&opts.out_dir, shard)?;
    let mut report = EvalReport::new(model, opts, &layout);
    check_settings(&opts.out_dir, &report.settings, opts.overwrite)?;
    let lpips = match &opts.vgg16 {
        Some(p) => Some(std::rc::Rc::new(Lpips::load(p, model.device)?)),
        None => None,
    };
    if let Some(net) = &lpips {
        crate::metrics::lpips::use_for_loss(net.clone());
    }

    // 1. The truths and their low-resolution inputs, every one (each shard writes them all,
    //    identically, so that `upsample` plans the whole job's names and picks its shard).
    let items = prepare(model, opts, observer)?;
    // 2. Each method's searches, with `upsample`'s machinery.
    let inputs: Vec<PathBuf> = items.iter().map(|i| i.input.clone()).collect();
    let mut interrupted = false;
    for search in &opts.methods {
        observer.method_started(search.method);
        let uopts = UpsampleOptions {
            inputs: inputs.clone(),
            out_dir: opts.out_dir.join(search.method.name()),
            search: search.clone(),
            run: opts.run.clone(),
            init: None,
            save_intermediate: false,
            compare: false,
            report: Some(method_report(&opts.out_dir, search.method, opts.shard.as_ref())),
            shard: opts.shard.clone(),
            aligned: None,
            overwrite: opts.overwrite,
            mask: None,
            ignore_alpha: true,
        };
        let searched = upsample::run(model, &uopts, observer, stop)?;
        if searched.interrupted {
            interrupted = true;
            break;
        }
    }
    // 3. The metrics of this shard's images, from the files and the methods' reports.
    let mine: Vec<&Item> = match shard {
        Some(s) => {
            items.iter().enumerate().filter(|(p, _)| s.contains(*p)).map(|(_, i)| i).collect()
        }
        None => items.iter().collect(),
    };
    report.interrupted = interrupted;
    if !interrupted {
        let down = Downscaler::new(factor, model.device)?;
        observer.measuring(mine.len());
        for search in &opts.methods {
            let records =
                read_records(&method_report(&opts.out_dir, search.method, opts.shard.as_ref()))?;
            for item in &mine {
                report.rows.extend(measure(
                    item,
                    search,
                    &records,
                    &down,
                    lpips.as_deref(),
                    model.device,
                )?);
            }
        }
        report.finish();
    }
    write_outputs(&report, &opts.out_dir, opts.shard.as_ref(), &items)?;
    Ok(report)
}

/// The settings file of an eval folder: what its searches were run with.
pub const SETTINGS: &str = "eval.settings.json";

/// Settings that do not change the results (beyond rounding): left out of the comparison.
const RUN_ONLY: [&str; 4] = ["batch_size", "device", "deterministic", "cuda_graph"];

/// A resumed eval reuses the searches already in the folder, so it must ask for the same ones:
/// the first run writes its settings to `eval.settings.json`; a later run (or another shard)
/// with other settings is refused, unless `--overwrite` redoes everything.
fn check_settings(out: &Path, settings: &serde_json::Value, overwrite: bool) -> anyhow::Result<()> {
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        // Which VGG16 file measures LPIPS does not change the searches.
        if let Some(o) = v.as_object_mut() {
            o.remove("lpips");
        }
        for m in v["methods"].as_array_mut().into_iter().flatten() {
            if let Some(o) = m.as_object_mut() {
                for k in RUN_ONLY {
                    o.remove(k);
                }
            }
        }
        v
    };
    let path = out.join(SETTINGS);
    if !overwrite {
        if let Ok(bytes) = std::fs::read(&path) {
            let earlier: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| {
                crate::Invalid(format!("{}: not an eval settings file", escaped(&path)))
            })?;
            if strip(&earlier) != strip(settings) {
                crate::invalid!(
                    "{}: this folder holds an eval made with other settings ({}); use another -o, or --overwrite to redo it",
                    escaped(out),
                    escaped(&path)
                );
            }
            return Ok(());
        }
    }
    crate::files::write_bytes_atomic(&path, &serde_json::to_vec_pretty(settings)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", escaped(&path)))
}

/// One ground truth: its name, the files eval wrote for it.
#[derive(Debug, Clone)]
pub struct Item {
    pub stem: String,
    pub truth: PathBuf,
    pub input: PathBuf,
}

/// The report file of a method's searches: `<out>/<method>/report.json` (per shard
/// `report.<I>-of-<N>.json`).
fn method_report(out: &Path, method: Method, shard: Option<&ShardInfo>) -> PathBuf {
    let dir = out.join(method.name());
    match shard {
        Some(s) => dir.join(format!("report.{}.json", s.shard().tag())),
        None => dir.join("report.json"),
    }
}

/// Writes `truth/<stem>.png` and `input/<stem>.png` for every truth (those already there are
/// kept: a resumed run sees the same files).
fn prepare(
    model: &Model,
    opts: &EvalOptions,
    observer: &mut dyn EvalObserver,
) -> anyhow::Result<Vec<Item>> {
    let resolution = model.layout().resolution;
    let truth_dir = opts.out_dir.join("truth");
    let input_dir = opts.out_dir.join("input");
    for d in [&truth_dir, &input_dir] {
        std::fs::create_dir_all(d)
            .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", escaped(d)))?;
    }
    let mut items = vec![];
    let mut write_item =
        |stem: String, truth: &dyn Fn() -> anyhow::Result<Tensor>| -> anyhow::Result<()> {
            let item = Item {
                truth: truth_dir.join(format!("{stem}.png")),
                input: input_dir.join(format!("{stem}.png")),
                stem,
            };
            if opts.overwrite || !item.truth.is_file() {
                crate::imageio::write_png(&truth()?.to_device(Device::Cpu), &item.truth)?;
            }
            if opts.overwrite || !item.input.is_file() {
                // The input is shrunk from the truth PNG as written, as a user's own file would be.
                let small = super::downscale::downscale_file(&item.truth, opts.scale)?;
                crate::imageio::write_png(&small, &item.input)?;
            }
            items.push(item);
            Ok(())
        };
    match &opts.truths {
        Truths::Generated { count, psi } => {
            observer.preparing(*count);
            let generator = super::generate::Generator::new(model, opts.run.seed, *psi)?;
            for k in 0..*count {
                write_item(format!("gen{k:04}"), &|| {
                    let (image, _) = generator.face(k)?;
                    Ok(if image.dim() == 4 { image.squeeze_dim(0) } else { image })
                })?;
            }
        }
        Truths::Files(paths) => {
            let files = super::collect_inputs(paths)?;
            if files.is_empty() {
                crate::invalid!("no input images");
            }
            observer.preparing(files.len());
            let mut seen = std::collections::HashMap::new();
            for f in &files {
                let stem =
                    f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                if let Some(other) = seen.insert(stem.clone(), f.clone()) {
                    crate::invalid!(
                        "{} and {} have the same name; eval names its files after the inputs' stems",
                        escaped(&other),
                        escaped(f)
                    );
                }
                write_item(stem, &|| read_truth(f, resolution))?;
            }
        }
    }
    // `upsample` shards its inputs by their sorted paths: the same order here.
    items.sort_by(|a, b| a.input.cmp(&b.input));
    Ok(items)
}

/// A truth file as [3,R,R]: square, resized (area averaging or bilinear) when another size.
fn read_truth(path: &Path, resolution: i64) -> anyhow::Result<Tensor> {
    let t = crate::imageio::read_rgb(path)?;
    let (h, w) = (t.size()[1], t.size()[2]);
    if h != w {
        crate::invalid!("{}: {w}x{h} is not square; align photos first (--align)", escaped(path));
    }
    Ok(if w == resolution {
        t
    } else {
        crate::imageio::resize_square(&t.unsqueeze(0), resolution).squeeze_dim(0).clamp(0.0, 1.0)
    })
}

/// The image entries of a method's report (read as `pulse report` reads it), or none.
fn read_records(path: &Path) -> anyhow::Result<Vec<ImageEntry>> {
    if !path.exists() {
        return Ok(vec![]);
    }
    match super::report::ShardReport::read(path)?.report.entries {
        Entries::Upsample { images, .. } => Ok(images),
        _ => anyhow::bail!("{}: not a report of upsample", escaped(path)),
    }
}

/// The rows of one image and method: one per sample the report holds.
fn measure(
    item: &Item,
    search: &SearchConfig,
    records: &[ImageEntry],
    down: &Downscaler,
    lpips: Option<&Lpips>,
    device: Device,
) -> anyhow::Result<Vec<EvalRow>> {
    let input_key = escaped(&item.input);
    let mut mine: Vec<&ImageEntry> = records.iter().filter(|r| r.input == input_key).collect();
    mine.sort_by_key(|r| r.sample);
    if mine.is_empty() {
        return Ok(vec![]);
    }
    let truth = crate::imageio::read_rgb(&item.truth)?;
    let input = crate::imageio::read_rgb(&item.input)?;
    let lpips_side = |t: &Tensor| {
        crate::imageio::resize_square(&t.unsqueeze(0).to_device(device), metrics::lpips::EVAL_SIDE)
    };
    let truth_small = lpips.map(|_| lpips_side(&truth));
    let mut rows = vec![];
    let mut results = vec![];
    for r in mine {
        let field = |k: &str| r.rest.get(k).unwrap_or(&serde_json::Value::Null);
        let output = PathBuf::from(field("outputs")[0].as_str().unwrap_or_default());
        let result = crate::imageio::read_rgb(&output)?;
        let low = tch::no_grad(|| down.forward(&result.unsqueeze(0).to_device(device)))?
            .to_device(Device::Cpu)
            .squeeze_dim(0)
            .clamp(0.0, 1.0);
        let lr_l2 = (&low - &input).square().mean(Kind::Double).double_value(&[]);
        let lp = match (lpips, &truth_small) {
            (Some(net), Some(t)) => {
                Some(tch::no_grad(|| net.distance(&lpips_side(&result), t)).double_value(&[0]))
            }
            _ => None,
        };
        rows.push(EvalRow {
            image: item.stem.clone(),
            method: search.method.name().to_string(),
            sample: r.sample as usize,
            seed: field("seed").as_u64().unwrap_or(0),
            converged: r.converged,
            steps: field("history").as_array().map_or(0, |h| h.len()),
            seconds: field("seconds").as_f64().unwrap_or(f64::NAN),
            lr_l2,
            psnr: metrics::psnr(&truth, &result),
            ssim: metrics::ssim(&truth, &result),
            lpips: lp,
            diversity: None,
            output: escaped(&output),
        });
        results.push(result);
    }
    let diversity = if results.len() < 2 {
        None
    } else if let Some(net) = lpips {
        let small: Vec<Tensor> = results.iter().map(&lpips_side).collect();
        let mut sum = 0.0;
        let mut n = 0;
        for i in 0..small.len() {
            for j in i + 1..small.len() {
                sum += tch::no_grad(|| net.distance(&small[i], &small[j])).double_value(&[0]);
                n += 1;
            }
        }
        Some(sum / n as f64)
    } else {
        metrics::mean_pairwise_rms(&Tensor::stack(&results, 0))
    };
    for row in &mut rows {
        row.diversity = diversity;
    }
    Ok(rows)
}

/// Writes `eval.json`, `eval.csv`, `eval.png` and `sheet.png` (a shard: its JSON only).
pub fn write_outputs(
    report: &EvalReport,
    out: &Path,
    shard: Option<&ShardInfo>,
    items: &[Item],
) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(report)?;
    if let Some(s) = shard {
        let path = out.join(format!("eval.{}.json", s.shard().tag()));
        return crate::files::write_bytes_atomic(&path, &json)
            .map_err(|e| anyhow::anyhow!("{}: {e}", escaped(&path)));
    }
    let w = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        crate::files::write_bytes_atomic(&path, bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", escaped(&path)))
    };
    w(JSON, &json)?;
    w(CSV, report.csv().as_bytes())?;
    if report.rows.is_empty() {
        return Ok(());
    }
    crate::imageio::write_png(&plot::plot(report)?, &out.join(PLOT))?;
    crate::imageio::write_png(&plot::sheet(report, items)?, &out.join(SHEET))?;
    Ok(())
}

/// `pulse eval merge`: joins the shards' `eval.<I>-of-<N>.json` (given, or found in the folder)
/// into the whole job's `eval.json`, `eval.csv`, `eval.png` and `sheet.png` in `out`.
pub fn merge(out: &Path, files: &[PathBuf]) -> anyhow::Result<EvalReport> {
    let files: Vec<PathBuf> = if files.is_empty() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(out)
            .map_err(|e| anyhow::anyhow!("{}: {e}", escaped(out)))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                n.starts_with("eval.") && n.ends_with(".json") && n.contains("-of-")
            })
            .collect();
        found.sort();
        found
    } else {
        files.to_vec()
    };
    if files.is_empty() {
        crate::invalid!("{}: no shard results (eval.<I>-of-<N>.json) to merge", escaped(out));
    }
    let mut merged: Option<EvalReport> = None;
    let mut shards = std::collections::BTreeSet::new();
    let mut count = None;
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| anyhow::anyhow!("{}: {e}", escaped(f)))?;
        let r: EvalReport = serde_json::from_slice(&bytes)
            .map_err(|e| crate::Invalid(format!("{}: not an eval report: {e}", escaped(f))))?;
        if r.interrupted {
            crate::invalid!(
                "{}: this shard was interrupted; run it again to finish it",
                escaped(f)
            );
        }
        if let Some(s) = &r.shard {
            if count.is_some_and(|c| c != s.count) {
                crate::invalid!("{}: a shard of another split ({} shards)", escaped(f), s.count);
            }
            count = Some(s.count);
            shards.insert(s.index);
        }
        match &mut merged {
            None => merged = Some(r),
            Some(m) => {
                if m.model_sha256 != r.model_sha256 || m.settings != r.settings {
                    crate::invalid!("{}: made with another model or other settings", escaped(f));
                }
                m.rows.extend(r.rows);
            }
        }
    }
    let mut m = merged.expect("at least one file");
    if let Some(c) = count {
        let missing: Vec<String> =
            (0..c).filter(|i| !shards.contains(i)).map(|i| i.to_string()).collect();
        if !missing.is_empty() {
            crate::invalid!("shards {} of {c} are missing", missing.join(", "));
        }
    }
    m.shard = None;
    m.rows.sort_by(|a, b| (&a.image, &a.method, a.sample).cmp(&(&b.image, &b.method, b.sample)));
    m.finish();
    let items = m.items(out);
    write_outputs(&m, out, None, &items)?;
    Ok(m)
}
