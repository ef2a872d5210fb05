//! `pulse import`: weight files of any supported format (NVIDIA's TensorFlow pickle,
//! lernapparat's `for_g_all.pt`, PULSE's `.pt` files, safetensors) -> a model folder that
//! `--model DIR` loads: `synthesis.safetensors`, `mapping.safetensors` when a mapping network is
//! given, a Gaussian fit, `w_avg.safetensors` when the source has NVIDIA's `dlatent_avg`, and
//! `model.json` recording where it all came from.
//!
//! Nothing is trusted before it is checked: every tensor must be finite, the networks must
//! build from the shapes (the same checks `Model::load` makes), and the parameter counts are
//! compared with the known FFHQ totals. Since a forgotten transpose keeps a square matrix's
//! shape, the mapping network is also checked by its output statistics against PULSE's
//! published Gaussian fit of the real FFHQ mapping (docs/design.md, "The latent space").
//!
//! The folder is written to a temporary folder beside it and renamed into place once complete,
//! so an interrupted or failed import leaves no half model.
use crate::model;
use crate::pulse::GaussianFit;
use crate::stylegan::{Mapping, SynthesisConfig, LATENT_DIM};
use crate::weights::{self, Source, SourceFormat, StateDict};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{nn, Device, Kind, Tensor};

/// PULSE's `gaussian_fit.pt`: mean and std of `leaky_relu(mapping(z), 5)` over 1,000,000 z of
/// the real FFHQ mapping network (adamian98/pulse, shipped with the repository; also
/// models/test-1024/gaussian_fit.pt). It is the fit for NVIDIA's FFHQ generator whichever file
/// its synthesis network comes from.
pub const PULSE_FFHQ_FIT: &[u8] = include_bytes!("../../models/test-1024/gaussian_fit.pt");

/// Parameters of the FFHQ-1024 networks, blur buffers excluded. Gs has 26,219,627 trainables
/// (NVlabs/stylegan README); mapping is 8 x (512 x 512 + 512); the synthesis is the rest less
/// the eight low-resolution ToRGB layers PULSE drops (7,608 parameters).
pub const FFHQ_SYNTHESIS_PARAMS: i64 = 24_110_771;
pub const FFHQ_MAPPING_PARAMS: i64 = 2_101_248;
pub use crate::weights::nvidia::FFHQ_TF_TRAINABLES;

/// Samples of z for the agreement check: the standard error of a mean is then std/64, so the
/// largest of 512 offsets stays near 0.05 std for the right network, while a transposed or
/// missing layer moves whole distributions by far more.
pub const AGREEMENT_SAMPLES: i64 = 4096;
/// Largest mean offset (in units of the published std) and largest |ln(std ratio)| that still
/// count as agreeing: about five times the sampling spread at [`AGREEMENT_SAMPLES`].
pub const AGREEMENT_TOL: f64 = 0.25;

/// The licence of NVIDIA's StyleGAN weights and everything converted from them.
pub const NVIDIA_LICENCE: &str = "CC BY-NC 4.0 (NVIDIA's StyleGAN FFHQ weights, NVlabs/stylegan): non-commercial use only, with attribution";

pub struct ImportOptions {
    /// Weight files, any supported format, holding together at least a synthesis network.
    pub sources: Vec<PathBuf>,
    /// The model folder to create.
    pub out: PathBuf,
    /// Replace an existing model folder holding other weights.
    pub force: bool,
    /// Samples of z when the Gaussian fit has to be computed from the mapping network.
    pub fit_samples: i64,
    /// Where each source came from (a URL), recorded in `model.json`.
    pub origins: HashMap<PathBuf, String>,
    /// Refuse (as a bad file) anything but FFHQ-1024 with the known parameter counts: how
    /// `pulse download` verifies files that come without a checksum.
    pub require_ffhq: bool,
}

impl ImportOptions {
    pub fn new(sources: Vec<PathBuf>, out: PathBuf) -> Self {
        Self {
            sources,
            out,
            force: false,
            fit_samples: model::FIT_SAMPLES,
            origins: HashMap::new(),
            require_ffhq: false,
        }
    }
}

/// Why an import failed: the exit code depends on it.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A source file was refused (unknown format, hostile, damaged, wrong shapes, NaNs): one
    /// line naming the file.
    #[error("{0}")]
    Refused(String),
    /// The request cannot be done as asked (two synthesis networks, ...).
    #[error("{0}")]
    Usage(String),
    /// The folder holds a model with other weights, and replacing it was not asked for.
    #[error("{} already holds a model with other weights", .0.display())]
    OtherModel(PathBuf),
    #[error("interrupted")]
    Interrupted,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Progress of an import, for a progress display.
#[derive(Debug)]
pub enum ImportEvent<'a> {
    Reading(&'a Path),
    Checking,
    /// Samples of the Gaussian fit done, of `total`.
    Fitting {
        done: i64,
        total: i64,
    },
    Writing(&'a Path),
}

/// Where the Gaussian fit of the new folder comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum FitOrigin {
    /// PULSE's published fit of the FFHQ mapping network ([`PULSE_FFHQ_FIT`]).
    PulseFfhq,
    /// A `gaussian_fit` file among the sources.
    Source(PathBuf),
    /// Computed from the imported mapping network.
    Computed { samples: i64 },
    /// None: `upsample` needs one (see [`ImportReport::fit_needed`]).
    None,
}

/// How the imported mapping network's output statistics compare with PULSE's published fit.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FitAgreement {
    pub samples: i64,
    /// Largest |mean - published mean| / published std over the 512 dimensions.
    pub max_mean_offset: f64,
    /// Largest |ln(std / published std)| over the 512 dimensions.
    pub max_log_std_ratio: f64,
    pub agrees: bool,
}

/// A parameter count against the known FFHQ total, when the network has FFHQ's architecture.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Count {
    pub found: i64,
    pub expected: Option<i64>,
}

impl Count {
    pub fn matches(&self) -> Option<bool> {
        self.expected.map(|e| e == self.found)
    }
}

#[derive(Debug, serde::Serialize, Clone)]
pub struct SourceRecord {
    pub file: String,
    pub sha256: String,
    pub format: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What an import did and found.
#[derive(Debug)]
pub struct ImportReport {
    pub out: PathBuf,
    pub resolution: i64,
    pub ffhq_architecture: bool,
    pub synthesis: Count,
    pub mapping: Option<Count>,
    /// Gs's trainable parameters as TensorFlow counts them (NVIDIA's pickle only).
    pub tf_trainables: Option<Count>,
    pub fit: FitOrigin,
    pub agreement: Option<FitAgreement>,
    pub w_avg: bool,
    pub licence: String,
    pub sources: Vec<SourceRecord>,
    /// Files written into the folder.
    pub files: Vec<String>,
    /// The folder already held exactly these weights: nothing was rewritten.
    pub unchanged: bool,
    /// A folder with other weights was replaced (`--force`).
    pub replaced: bool,
}

impl ImportReport {
    /// Every parameter count matches its known total (`None` when none is known).
    pub fn counts_match(&self) -> Option<bool> {
        let checks: Vec<bool> =
            [Some(&self.synthesis), self.mapping.as_ref(), self.tf_trainables.as_ref()]
                .into_iter()
                .flatten()
                .filter_map(Count::matches)
                .collect();
        (!checks.is_empty()).then(|| checks.iter().all(|&c| c))
    }

    /// What `upsample` still needs when the folder got no Gaussian fit.
    pub fn fit_needed(&self) -> Option<String> {
        (self.fit == FitOrigin::None).then(|| {
            format!(
                "no Gaussian fit: `pulse upsample` needs one; import a mapping network with this synthesis (the fit is then computed from it), or PULSE's gaussian_fit.pt if this is the FFHQ network (`pulse import SYNTHESIS gaussian_fit.pt -o {}`); {} has the synthesis only",
                self.out.display(),
                self.out.display()
            )
        })
    }
}

/// The networks taken from the sources.
struct Gathered {
    synthesis: (StateDict, usize),
    mapping: Option<(StateDict, usize)>,
    fit: Option<(StateDict, usize)>,
    w_avg: Option<Tensor>,
    tf_trainables: Option<i64>,
}

fn refused(path: &Path, what: impl std::fmt::Display) -> ImportError {
    ImportError::Refused(format!("{}: {what}", path.display()))
}

/// Runs an import; `stop` is checked between steps (an interrupted import writes nothing).
pub fn run(
    opts: &ImportOptions,
    progress: &mut dyn FnMut(ImportEvent),
    stop: &AtomicBool,
) -> Result<ImportReport, ImportError> {
    if opts.sources.is_empty() {
        return Err(ImportError::Usage("no source file given".into()));
    }
    let interrupted = || stop.load(Ordering::SeqCst);
    let mut sources = Vec::new();
    for path in &opts.sources {
        progress(ImportEvent::Reading(path));
        let source = weights::load_source(path).map_err(|e| ImportError::Refused(e.to_string()))?;
        check_finite(&source)?;
        sources.push(source);
        if interrupted() {
            return Err(ImportError::Interrupted);
        }
    }
    progress(ImportEvent::Checking);
    let g = gather(&sources)?;
    let synth_path = sources[g.synthesis.1].path.clone();

    let synth_sd = &g.synthesis.0;
    let (synthesis, synth_vs) = model::build_synthesis(synth_sd, &synth_path, Device::Cpu)
        .map_err(|e| ImportError::Refused(format!("{e:#}")))?;
    let config = synthesis.config().clone();
    let ffhq = config == SynthesisConfig::ffhq();
    let synth_out = canonical(synth_sd, &synth_vs, true);
    let synth_params = count(&synth_out);

    let mut mapping_net = None;
    let mut mapping_out = None;
    if let Some((sd, i)) = &g.mapping {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let mut mapping = Mapping::new(vs.root());
        weights::load_into(&mut vs, sd).map_err(|e| refused(&sources[*i].path, &e.kind))?;
        mapping.prepare();
        mapping_out = Some(canonical(sd, &vs, false));
        mapping_net = Some((mapping, vs));
    }
    let fit_from_source = match &g.fit {
        Some((sd, i)) => {
            let path = &sources[*i].path;
            for key in ["mean", "std"] {
                match sd.get(key) {
                    Some(t) if t.size() == [LATENT_DIM] => {}
                    Some(t) => {
                        return Err(refused(
                            path,
                            format!("'{key}' has shape {:?}, expected [{LATENT_DIM}]", t.size()),
                        ))
                    }
                    None => return Err(refused(path, format!("a Gaussian fit without '{key}'"))),
                }
            }
            Some(path.clone())
        }
        None => None,
    };
    if let Some(w) = &g.w_avg {
        if w.size() != [LATENT_DIM] {
            return Err(refused(
                &synth_path,
                format!("dlatent_avg has shape {:?}, expected [{LATENT_DIM}]", w.size()),
            ));
        }
    }
    if interrupted() {
        return Err(ImportError::Interrupted);
    }

    let shipped = shipped_fit()?;
    let agreement = mapping_net
        .as_ref()
        .map(|(m, _)| fit_agreement(m, &shipped, AGREEMENT_SAMPLES, model::FIT_SEED))
        .transpose()
        .map_err(ImportError::Other)?;

    // The fit: the sources' own, else PULSE's for the FFHQ network, else computed.
    let (fit, fit_origin) = if let (Some(path), Some((sd, _))) = (&fit_from_source, &g.fit) {
        let get = |k: &str| sd.get(k).expect("checked above").to_kind(Kind::Float);
        (Some(GaussianFit { mean: get("mean"), std: get("std") }), FitOrigin::Source(path.clone()))
    } else if ffhq {
        (Some(shipped), FitOrigin::PulseFfhq)
    } else if let Some((m, _)) = &mapping_net {
        let total = opts.fit_samples.max(2);
        let fit =
            GaussianFit::compute(m, total, 10_000, model::FIT_SEED, Device::Cpu, &mut |done| {
                progress(ImportEvent::Fitting { done, total })
            })
            .map_err(ImportError::Other)?;
        (Some(fit), FitOrigin::Computed { samples: total })
    } else {
        (None, FitOrigin::None)
    };
    if interrupted() {
        return Err(ImportError::Interrupted);
    }

    let expected = |n: i64| ffhq.then_some(n);
    let licence = if ffhq
        || sources
            .iter()
            .any(|s| matches!(s.format, SourceFormat::NvidiaPickle | SourceFormat::Lernapparat))
    {
        NVIDIA_LICENCE.to_string()
    } else {
        "unknown: the licence of the source files applies".to_string()
    };
    let mut records = Vec::new();
    for s in &sources {
        let sha256 = weights::sha256_file(&s.path)
            .map_err(|e| ImportError::Other(anyhow::anyhow!("{}: {e}", s.path.display())))?;
        records.push(SourceRecord {
            file: s.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            sha256,
            format: s.format.name().to_string(),
            url: opts.origins.get(&s.path).cloned(),
        });
    }
    let mut report = ImportReport {
        out: opts.out.clone(),
        resolution: config.resolution,
        ffhq_architecture: ffhq,
        synthesis: Count { found: synth_params, expected: expected(FFHQ_SYNTHESIS_PARAMS) },
        mapping: mapping_out
            .as_ref()
            .map(|m| Count { found: count(m), expected: expected(FFHQ_MAPPING_PARAMS) }),
        tf_trainables: g
            .tf_trainables
            .map(|n| Count { found: n, expected: expected(FFHQ_TF_TRAINABLES) }),
        fit: fit_origin,
        agreement,
        w_avg: g.w_avg.is_some(),
        licence,
        sources: records,
        files: Vec::new(),
        unchanged: false,
        replaced: false,
    };
    if opts.require_ffhq && report.counts_match() != Some(true) {
        return Err(refused(
            &synth_path,
            format!(
                "not NVIDIA's FFHQ-1024 generator (resolution {}, {} synthesis parameters; FFHQ has {FFHQ_SYNTHESIS_PARAMS} and {FFHQ_TF_TRAINABLES} in TensorFlow's Gs)",
                report.resolution, report.synthesis.found
            ),
        ));
    }
    write_folder(
        opts,
        &mut report,
        &synth_out,
        mapping_out.as_ref(),
        fit.as_ref(),
        g.w_avg.as_ref(),
        progress,
        stop,
    )?;
    Ok(report)
}

/// Every tensor of a source must be finite: a NaN weight renders black faces far away from
/// the file that caused them.
fn check_finite(source: &Source) -> Result<(), ImportError> {
    let dicts = [&source.synthesis, &source.mapping, &source.fit];
    for sd in dicts.into_iter().flatten() {
        for (key, t) in sd.iter() {
            if t.is_floating_point() && !bool::try_from(t.isfinite().all()).unwrap_or(false) {
                return Err(refused(&source.path, format!("'{key}' holds NaN or infinite values")));
            }
        }
    }
    if let Some(w) = &source.w_avg {
        if !bool::try_from(w.isfinite().all()).unwrap_or(false) {
            return Err(refused(&source.path, "dlatent_avg holds NaN or infinite values"));
        }
    }
    Ok(())
}

/// Takes each network from exactly one source.
fn gather(sources: &[Source]) -> Result<Gathered, ImportError> {
    fn one<'a>(
        sources: &'a [Source],
        what: &str,
        get: impl Fn(&'a Source) -> Option<&'a StateDict>,
    ) -> Result<Option<(StateDict, usize)>, ImportError> {
        let found: Vec<usize> =
            (0..sources.len()).filter(|&i| get(&sources[i]).is_some()).collect();
        match found[..] {
            [] => Ok(None),
            [i] => {
                let sd = get(&sources[i]).expect("found");
                let pairs = sd.iter().map(|(k, t)| (k.to_string(), t.shallow_clone())).collect();
                Ok(Some((StateDict::from_pairs(pairs).with_path(sd.path()), i)))
            }
            [a, b, ..] => Err(ImportError::Usage(format!(
                "both {} and {} hold a {what}: give one",
                sources[a].path.display(),
                sources[b].path.display()
            ))),
        }
    }
    let synthesis = one(sources, "synthesis network", |s| s.synthesis.as_ref())?.ok_or_else(|| {
        let names: Vec<String> = sources.iter().map(|s| s.path.display().to_string()).collect();
        ImportError::Refused(format!(
            "{}: no synthesis network (a model needs one: NVIDIA's pickle, lernapparat's for_g_all.pt or PULSE's synthesis.pt)",
            names.join(", ")
        ))
    })?;
    let w_avgs: Vec<&Tensor> = sources.iter().filter_map(|s| s.w_avg.as_ref()).collect();
    Ok(Gathered {
        synthesis,
        mapping: one(sources, "mapping network", |s| s.mapping.as_ref())?,
        fit: one(sources, "Gaussian fit", |s| s.fit.as_ref())?,
        w_avg: w_avgs.first().map(|t| t.shallow_clone()),
        tf_trainables: sources.iter().find_map(|s| s.tf_trainables),
    })
}

/// The tensors a network really uses, as float32 in the file's key order (plus PULSE's blur
/// buffers for a synthesis network): extra keys of the source are left out.
fn canonical(sd: &StateDict, vs: &nn::VarStore, synthesis: bool) -> Vec<(String, Tensor)> {
    let names: std::collections::HashSet<String> = vs.variables().into_keys().collect();
    sd.iter()
        .filter(|(k, _)| names.contains(*k) || (synthesis && k.ends_with(".intermediate.kernel")))
        .map(|(k, t)| (k.to_string(), t.to_kind(Kind::Float).contiguous()))
        .collect()
}

/// Parameters, PULSE's constant blur buffers excluded.
fn count(tensors: &[(String, Tensor)]) -> i64 {
    tensors
        .iter()
        .filter(|(k, _)| !k.ends_with(".intermediate.kernel"))
        .map(|(_, t)| t.numel() as i64)
        .sum()
}

/// PULSE's published FFHQ fit.
pub fn shipped_fit() -> Result<GaussianFit, ImportError> {
    let sd = weights::load_bytes(PULSE_FFHQ_FIT, Path::new("gaussian_fit.pt"))
        .map_err(|e| ImportError::Other(e.into()))?;
    let get = |k: &str| -> Result<Tensor, ImportError> {
        sd.get(k).map(|t| t.to_kind(Kind::Float)).ok_or_else(|| {
            ImportError::Other(anyhow::anyhow!("the bundled Gaussian fit has no '{k}'"))
        })
    };
    Ok(GaussianFit { mean: get("mean")?, std: get("std")? })
}

/// Compares the output statistics of `mapping` (`samples` draws) with a published fit.
pub fn fit_agreement(
    mapping: &Mapping,
    published: &GaussianFit,
    samples: i64,
    seed: i64,
) -> anyhow::Result<FitAgreement> {
    let fit = GaussianFit::compute(mapping, samples, 4096, seed, Device::Cpu, &mut |_| {})?;
    let std = published.std.to_kind(Kind::Double);
    let mean_offset =
        ((&fit.mean.to_kind(Kind::Double) - published.mean.to_kind(Kind::Double)).abs() / &std)
            .max()
            .double_value(&[]);
    let log_ratio = (fit.std.to_kind(Kind::Double) / &std).log().abs().max().double_value(&[]);
    let agrees = mean_offset.is_finite()
        && log_ratio.is_finite()
        && mean_offset < AGREEMENT_TOL
        && log_ratio < AGREEMENT_TOL;
    Ok(FitAgreement { samples, max_mean_offset: mean_offset, max_log_std_ratio: log_ratio, agrees })
}

/// What `model.json` says about a folder's synthesis file, to tell the same weights from others.
fn existing_synthesis_sha(dir: &Path) -> Option<String> {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("model.json")).ok()?).ok()?;
    json["files"]["synthesis.safetensors"].as_str().map(str::to_string)
}

/// Whether `dir` is missing or an empty folder.
fn is_absent_or_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => !dir.exists(),
    }
}

#[allow(clippy::too_many_arguments)]
fn write_folder(
    opts: &ImportOptions,
    report: &mut ImportReport,
    synthesis: &[(String, Tensor)],
    mapping: Option<&Vec<(String, Tensor)>>,
    fit: Option<&GaussianFit>,
    w_avg: Option<&Tensor>,
    progress: &mut dyn FnMut(ImportEvent),
    stop: &AtomicBool,
) -> Result<(), ImportError> {
    let out = &opts.out;
    if out.exists() && !out.is_dir() {
        return Err(ImportError::Usage(format!("{}: exists and is not a folder", out.display())));
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .ok_or_else(|| ImportError::Usage(format!("{}: not a folder name", out.display())))?
        .to_string_lossy()
        .into_owned();
    std::fs::create_dir_all(&parent).map_err(|e| {
        ImportError::Other(anyhow::anyhow!("{}: cannot create folder: {e}", parent.display()))
    })?;
    let io = |what: &Path, e: &dyn std::fmt::Display| {
        ImportError::Other(anyhow::anyhow!("{}: {e}", what.display()))
    };
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.import-"))
        .tempdir_in(&parent)
        .map_err(|e| io(&parent, &e))?;
    progress(ImportEvent::Writing(out));

    let mut files: Vec<(String, String)> = Vec::new();
    let mut save = |file: &str,
                    tensors: Vec<(String, Tensor)>,
                    meta: Vec<(&str, String)>|
     -> Result<(), ImportError> {
        let path = tmp.path().join(file);
        let sd = StateDict::from_pairs(tensors);
        let meta: HashMap<String, String> =
            meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        weights::save_safetensors(&sd, &path, Some(&meta))
            .map_err(|e| ImportError::Other(e.into()))?;
        let sha = weights::sha256_file(&path).map_err(|e| io(&path, &e))?;
        files.push((file.to_string(), sha));
        Ok(())
    };
    // One metadata entry per file: the crate writes a map's entries in no fixed order, and the
    // same import should give the same bytes (latents are tagged with the synthesis file's hash).
    let source_names = report.sources.iter().map(|s| s.file.clone()).collect::<Vec<_>>().join(", ");
    let meta = || vec![("source", source_names.clone())];
    save("synthesis.safetensors", clone_all(synthesis), meta())?;
    if let Some(m) = mapping {
        save("mapping.safetensors", clone_all(m), meta())?;
    }
    if let Some(fit) = fit {
        save(
            "gaussian_fit.safetensors",
            vec![
                ("mean".into(), fit.mean.to_kind(Kind::Float)),
                ("std".into(), fit.std.to_kind(Kind::Float)),
            ],
            vec![("origin", fit_origin_name(&report.fit))],
        )?;
    }
    if let Some(w) = w_avg {
        save("w_avg.safetensors", vec![("w_avg".into(), w.to_kind(Kind::Float))], meta())?;
    }
    let new_sha = files[0].1.clone();
    let json = model_json(report, &files);
    let json_path = tmp.path().join("model.json");
    std::fs::write(&json_path, serde_json::to_vec_pretty(&json).expect("serialisable"))
        .map_err(|e| io(&json_path, &e))?;
    report.files = files.iter().map(|(f, _)| f.clone()).chain(["model.json".to_string()]).collect();

    if stop.load(Ordering::SeqCst) {
        return Err(ImportError::Interrupted);
    }
    if !is_absent_or_empty(out) {
        let same = existing_synthesis_sha(out).is_some_and(|s| s == new_sha);
        if same && !opts.force {
            report.unchanged = true;
            return Ok(());
        }
        if !same && !opts.force {
            return Err(ImportError::OtherModel(out.to_path_buf()));
        }
        // Move the old folder aside, move the new one in, then delete the old one.
        let old = tempfile::Builder::new()
            .prefix(&format!(".{name}.old-"))
            .tempdir_in(&parent)
            .map_err(|e| io(&parent, &e))?;
        let aside = old.path().join(&name);
        std::fs::rename(out, &aside).map_err(|e| io(out, &e))?;
        if let Err(e) = std::fs::rename(tmp.path(), out) {
            let _ = std::fs::rename(&aside, out);
            return Err(io(out, &e));
        }
        let _ = tmp.keep();
        report.replaced = true;
        return Ok(());
    }
    if out.exists() {
        std::fs::remove_dir(out).map_err(|e| io(out, &e))?;
    }
    std::fs::rename(tmp.path(), out).map_err(|e| io(out, &e))?;
    let _ = tmp.keep();
    Ok(())
}

fn clone_all(v: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    v.iter().map(|(k, t)| (k.clone(), t.shallow_clone())).collect()
}

fn fit_origin_name(f: &FitOrigin) -> String {
    match f {
        FitOrigin::PulseFfhq => "pulse-ffhq (PULSE's published gaussian_fit.pt)".into(),
        FitOrigin::Source(p) => {
            format!("source {}", p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
        }
        FitOrigin::Computed { samples } => format!(
            "computed from the mapping network ({samples} samples, seed {})",
            model::FIT_SEED
        ),
        FitOrigin::None => "none".into(),
    }
}

fn model_json(r: &ImportReport, files: &[(String, String)]) -> serde_json::Value {
    let files: serde_json::Map<String, serde_json::Value> =
        files.iter().map(|(f, s)| (f.clone(), serde_json::Value::String(s.clone()))).collect();
    serde_json::json!({
        "format": "pulse-model/1",
        "sources": r.sources,
        "licence": r.licence,
        "resolution": r.resolution,
        "ffhq_architecture": r.ffhq_architecture,
        "parameters": {
            "synthesis": r.synthesis,
            "mapping": r.mapping,
            "tf_gs_trainables": r.tf_trainables,
        },
        "gaussian_fit": {
            "origin": fit_origin_name(&r.fit),
            "agreement_with_pulse_ffhq": r.agreement,
        },
        "w_avg": r.w_avg,
        "files": files,
        "date": utc_now(),
        "pulse_version": env!("CARGO_PKG_VERSION"),
    })
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ` (days to civil date after Howard Hinnant's
/// `civil_from_days`).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format_utc(secs)
}

fn format_utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_709_251_199), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn ffhq_totals_add_up_to_nvidia_count() {
        // The eight dropped ToRGB_lod layers: 4 at 512 channels, then 256, 128, 64, 32.
        let torgb: i64 = [512, 512, 512, 512, 256, 128, 64, 32].iter().map(|c| c * 3 + 3).sum();
        assert_eq!(FFHQ_SYNTHESIS_PARAMS + FFHQ_MAPPING_PARAMS + torgb, FFHQ_TF_TRAINABLES);
        assert_eq!(FFHQ_MAPPING_PARAMS, 8 * (512 * 512 + 512));
    }
}
