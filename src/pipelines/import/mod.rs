//! `pulse import`: weight files of any supported format (NVIDIA's TensorFlow pickles and
//! stylegan2-ada-pytorch pickles, lernapparat's `for_g_all.pt`, rosinality's StyleGAN2
//! checkpoints, PULSE's `.pt` files, safetensors) -> a model folder that `--model DIR` loads:
//! `synthesis.safetensors`, `mapping.safetensors` when a mapping network is given, a Gaussian
//! fit, `w_avg.safetensors` when a StyleGAN (v1) source has NVIDIA's `dlatent_avg` (a
//! StyleGAN2 mapping file holds its own `mapping.w_avg`), and `model.json`
//! ([`crate::model_info`]) recording the family and where it all came from.
//!
//! Nothing is trusted before it is checked: every tensor must be finite, the networks must
//! build from the shapes (StyleGAN: the same checks `Model::load` makes; StyleGAN2: the layout
//! check of [`stylegan2`]), and the parameter counts are compared with the known FFHQ totals.
//! Since a forgotten transpose keeps a square matrix's shape, a StyleGAN mapping network is
//! also checked by its output statistics against PULSE's published Gaussian fit of the real
//! FFHQ mapping (docs/design.md, "The latent space").
//!
//! The jobs: this file orchestrates, [`checks`] vets the sources, [`stylegan2`] the StyleGAN2
//! layout, [`folder`] writes and installs the folder so that an interrupted or failed import
//! leaves no half model and deletes nothing pulse did not write.
mod checks;
mod folder;
pub mod stylegan2;

use crate::model;
use crate::model_info::{self, FitRecord, ModelInfo, Parameters};
pub use crate::model_info::{Count, FitAgreement, SourceRecord};
use crate::pulse::GaussianFit;
use crate::stylegan::{Mapping, SynthesisConfig};
use crate::weights::{self, Architecture, Source, SourceFormat, StateDict};
use checks::Gathered;
use folder::OutputFile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{nn, Device, Kind, Tensor};

/// PULSE's `gaussian_fit.pt`: mean and std of `leaky_relu(mapping(z), 5)` over 1,000,000 z of
/// the real FFHQ mapping network (adamian98/pulse, shipped with the repository; also
/// models/test-1024/gaussian_fit.pt). It is the fit for NVIDIA's FFHQ generator whichever file
/// its synthesis network comes from.
pub const PULSE_FFHQ_FIT: &[u8] = include_bytes!("../../../models/test-1024/gaussian_fit.pt");

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
/// The licence of NVIDIA's StyleGAN2 weights (NVlabs/stylegan2 and stylegan2-ada-pytorch
/// LICENSE.txt, section 3.3) and of what is converted from them (rosinality's checkpoints).
pub const NVIDIA_SG2_LICENCE: &str = "NVIDIA Source Code License-NC (NVIDIA's StyleGAN2 weights, NVlabs/stylegan2, NVlabs/stylegan2-ada-pytorch): non-commercial use only (research or evaluation)";
/// The smallest `--fit-samples`: a standard deviation needs two samples.
pub const MIN_FIT_SAMPLES: i64 = 2;

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
    /// The named model being installed (`pulse download`) and its family: recorded in
    /// `model.json` when the network is that family with FFHQ's architecture.
    pub model_name: Option<(String, Architecture)>,
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
            model_name: None,
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
    #[error("{} already holds a model with other weights; --force replaces it (only the files pulse writes; nothing else is deleted)", crate::files::escaped(.0))]
    OtherModel(PathBuf),
    /// The folder holds files but no model, and writing among them was not asked for.
    #[error("{} is not empty and holds no model: give a new or empty folder (--force writes the model's files beside the others)", crate::files::escaped(.0))]
    NotAModelFolder(PathBuf),
    #[error("interrupted; nothing was written")]
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
    /// None yet: a StyleGAN2 folder with a mapping network gets it computed on first use.
    FirstUse,
}

/// What an import did and found.
#[derive(Debug)]
pub struct ImportReport {
    pub out: PathBuf,
    pub architecture: Architecture,
    pub resolution: i64,
    pub ffhq_architecture: bool,
    pub synthesis: Count,
    pub mapping: Option<Count>,
    /// Gs's trainable parameters as TensorFlow counts them (NVIDIA's StyleGAN pickle only).
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
    /// Files of an existing model folder that were replaced or removed (`--force`).
    pub replaced: bool,
    pub replaced_files: Vec<String>,
    /// Network files of the previous model that pulse did not write, so kept (`--force`):
    /// recorded in `model.json` and refused by every command while they are there.
    pub superseded: Vec<String>,
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

    /// Whether the imported network is the named model of the options.
    pub fn is_named_model(&self, opts: &ImportOptions) -> bool {
        opts.model_name.as_ref().is_some_and(|(_, a)| *a == self.architecture)
            && self.ffhq_architecture
    }

    /// What `upsample` still needs when the folder got no Gaussian fit.
    pub fn fit_needed(&self) -> Option<String> {
        let out = crate::files::escaped(&self.out);
        (self.fit == FitOrigin::None).then(|| {
            format!(
                "no Gaussian fit: `pulse upsample` needs one; import a mapping network with this synthesis (the fit is then computed from it), or PULSE's gaussian_fit.pt if this is the FFHQ network (`pulse import SYNTHESIS gaussian_fit.pt -o {out}`); {out} has the synthesis only"
            )
        })
    }
}

fn refused(path: &Path, what: impl std::fmt::Display) -> ImportError {
    ImportError::Refused(format!("{}: {what}", crate::files::escaped(path)))
}

/// The networks as they will be written, and what was found about them.
struct Prepared {
    report: ImportReport,
    synthesis: Vec<(String, Tensor)>,
    mapping: Option<Vec<(String, Tensor)>>,
    fit: Option<GaussianFit>,
    w_avg: Option<Tensor>,
}

/// Runs an import; `stop` is checked between steps and during the Gaussian fit (an
/// interrupted import writes nothing).
pub fn run(
    opts: &ImportOptions,
    progress: &mut dyn FnMut(ImportEvent),
    stop: &AtomicBool,
) -> Result<ImportReport, ImportError> {
    if opts.sources.is_empty() {
        return Err(ImportError::Usage("no source file given".into()));
    }
    if opts.fit_samples < MIN_FIT_SAMPLES {
        return Err(ImportError::Usage(format!(
            "the Gaussian fit needs at least {MIN_FIT_SAMPLES} samples, got {}",
            opts.fit_samples
        )));
    }
    folder::check_target(&opts.out)?;
    let interrupted = || stop.load(Ordering::SeqCst);
    let mut sources = Vec::new();
    for path in &opts.sources {
        progress(ImportEvent::Reading(path));
        let source = weights::load_source(path).map_err(|e| ImportError::Refused(e.to_string()))?;
        checks::check_finite(&source)?;
        sources.push(source);
        if interrupted() {
            return Err(ImportError::Interrupted);
        }
    }
    progress(ImportEvent::Checking);
    let g = checks::gather(&sources)?;
    let records = source_records(opts, &sources)?;
    let mut prepared = match g.architecture {
        Architecture::StyleGan1 => prepare_stylegan1(opts, &sources, g, progress, stop)?,
        Architecture::StyleGan2 => prepare_stylegan2(opts, &sources, g)?,
    };
    prepared.report.sources = records;
    if interrupted() {
        return Err(ImportError::Interrupted);
    }
    write(opts, prepared, progress, stop)
}

/// The source files as `model.json` lists them.
fn source_records(
    opts: &ImportOptions,
    sources: &[Source],
) -> Result<Vec<SourceRecord>, ImportError> {
    sources
        .iter()
        .map(|s| {
            let sha256 = weights::sha256_file(&s.path).map_err(|e| {
                ImportError::Other(anyhow::anyhow!("{}: {e}", crate::files::escaped(&s.path)))
            })?;
            Ok(SourceRecord {
                file: s
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256,
                format: s.format.name().to_string(),
                url: opts.origins.get(&s.path).cloned(),
            })
        })
        .collect()
}

/// The fit a source gives, checked.
fn source_fit(
    sources: &[Source],
    g: &Gathered,
) -> Result<Option<(GaussianFit, PathBuf)>, ImportError> {
    let Some((sd, i)) = &g.fit else { return Ok(None) };
    let path = &sources[*i].path;
    for key in ["mean", "std"] {
        checks::check_latent_vector(path, key, sd.get(key))?;
    }
    let get = |k: &str| sd.get(k).expect("checked above").to_kind(Kind::Float);
    Ok(Some((GaussianFit { mean: get("mean"), std: get("std") }, path.clone())))
}

fn prepare_stylegan1(
    opts: &ImportOptions,
    sources: &[Source],
    g: Gathered,
    progress: &mut dyn FnMut(ImportEvent),
    stop: &AtomicBool,
) -> Result<Prepared, ImportError> {
    let synth_path = sources[g.synthesis.1].path.clone();
    let synth_sd = &g.synthesis.0;
    let (synthesis, synth_vs) = model::build_synthesis(synth_sd, &synth_path, Device::Cpu)
        .map_err(|e| ImportError::Refused(format!("{e:#}")))?;
    let config = synthesis.config().clone();
    let ffhq = config == SynthesisConfig::ffhq();
    let synth_out = canonical(synth_sd, &synth_vs, true);

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
    let from_source = source_fit(sources, &g)?;
    if let Some(w) = &g.w_avg {
        checks::check_latent_vector(&synth_path, "dlatent_avg", Some(w))?;
    }
    let shipped = shipped_fit()?;
    let agreement = mapping_net
        .as_ref()
        .map(|(m, _)| fit_agreement(m, &shipped, AGREEMENT_SAMPLES, model::FIT_SEED))
        .transpose()
        .map_err(ImportError::Other)?;

    // The fit: the sources' own, else PULSE's for the FFHQ network, else computed.
    let (fit, fit_origin) = if let Some((fit, path)) = from_source {
        (Some(fit), FitOrigin::Source(path))
    } else if ffhq {
        (Some(shipped), FitOrigin::PulseFfhq)
    } else if let Some((m, _)) = &mapping_net {
        let total = opts.fit_samples;
        let fit = GaussianFit::compute_until(
            m,
            total,
            10_000,
            model::FIT_SEED,
            Device::Cpu,
            &mut |done| progress(ImportEvent::Fitting { done, total }),
            stop,
        )
        .map_err(ImportError::Other)?
        .ok_or(ImportError::Interrupted)?;
        (Some(fit), FitOrigin::Computed { samples: total })
    } else {
        (None, FitOrigin::None)
    };

    let expected = |n: i64| ffhq.then_some(n);
    let nvidia = sources
        .iter()
        .any(|s| matches!(s.format, SourceFormat::NvidiaPickle | SourceFormat::Lernapparat));
    let report = ImportReport {
        out: opts.out.clone(),
        architecture: Architecture::StyleGan1,
        resolution: config.resolution,
        ffhq_architecture: ffhq,
        synthesis: Count { found: count(&synth_out), expected: expected(FFHQ_SYNTHESIS_PARAMS) },
        mapping: mapping_out
            .as_ref()
            .map(|m| Count { found: count(m), expected: expected(FFHQ_MAPPING_PARAMS) }),
        tf_trainables: g
            .tf_trainables
            .map(|n| Count { found: n, expected: expected(FFHQ_TF_TRAINABLES) }),
        fit: fit_origin,
        agreement,
        w_avg: g.w_avg.is_some(),
        licence: licence(ffhq || nvidia, NVIDIA_LICENCE),
        sources: Vec::new(),
        files: Vec::new(),
        unchanged: false,
        replaced: false,
        replaced_files: Vec::new(),
        superseded: Vec::new(),
    };
    if opts.require_ffhq && report.counts_match() != Some(true) {
        return Err(refused(
            &synth_path,
            format!(
                "not NVIDIA's FFHQ-1024 StyleGAN generator (resolution {}, {} synthesis parameters; FFHQ has {FFHQ_SYNTHESIS_PARAMS} and {FFHQ_TF_TRAINABLES} in TensorFlow's Gs)",
                report.resolution, report.synthesis.found
            ),
        ));
    }
    Ok(Prepared { report, synthesis: synth_out, mapping: mapping_out, fit, w_avg: g.w_avg })
}

/// StyleGAN2: the layout is checked from the tensors; the Gaussian fit is a source's, or is
/// left to the first command that needs it.
fn prepare_stylegan2(
    opts: &ImportOptions,
    sources: &[Source],
    g: Gathered,
) -> Result<Prepared, ImportError> {
    let synth_path = sources[g.synthesis.1].path.clone();
    let mapping_sd = g.mapping.as_ref().map(|(sd, _)| sd);
    let layout = stylegan2::check(&g.synthesis.0, mapping_sd).map_err(|e| {
        let path = match (&g.mapping, e.contains("mapping")) {
            (Some((_, i)), true) => &sources[*i].path,
            _ => &synth_path,
        };
        refused(path, format!("not a StyleGAN2 generator: {e}"))
    })?;
    // The search, the Gaussian fit and latent files are 512 wide (PULSE's space, as NVIDIA's
    // generators): a network of another latent size would import, then fail in every command.
    let latent = crate::stylegan::LATENT_DIM;
    if layout.w_dim != latent {
        return Err(refused(
            &synth_path,
            format!(
                "its styles take w of {} values; pulse works with a latent size of {latent} (NVIDIA's generators), so this network cannot be used",
                layout.w_dim
            ),
        ));
    }
    if let (Some((_, i)), true) = (&g.mapping, layout.z_dim != latent) {
        return Err(refused(
            &sources[*i].path,
            format!(
                "its mapping network takes z of {} values; pulse works with a latent size of {latent} (NVIDIA's generators), so this network cannot be used",
                layout.z_dim
            ),
        ));
    }
    let ffhq = layout.is_ffhq();
    let (ffhq_synthesis, ffhq_mapping) = stylegan2::ffhq_params();
    let expected = |n: i64| ffhq.then_some(n);
    let from_source = source_fit(sources, &g)?;
    let as_float = |sd: &StateDict| -> Vec<(String, Tensor)> {
        sd.iter().map(|(k, t)| (k.to_string(), t.to_kind(Kind::Float).contiguous())).collect()
    };
    let nvidia = sources.iter().any(|s| {
        matches!(
            s.format,
            SourceFormat::NvidiaPickle | SourceFormat::AdaPickle | SourceFormat::Rosinality
        )
    });
    let fit_origin = match (&from_source, &g.mapping) {
        (Some((_, path)), _) => FitOrigin::Source(path.clone()),
        (None, Some(_)) => FitOrigin::FirstUse,
        (None, None) => FitOrigin::None,
    };
    let report = ImportReport {
        out: opts.out.clone(),
        architecture: Architecture::StyleGan2,
        resolution: layout.resolution,
        ffhq_architecture: ffhq,
        synthesis: Count { found: layout.synthesis_params, expected: expected(ffhq_synthesis) },
        mapping: g
            .mapping
            .as_ref()
            .map(|_| Count { found: layout.mapping_params, expected: expected(ffhq_mapping) }),
        tf_trainables: None,
        fit: fit_origin,
        agreement: None,
        w_avg: g.mapping.is_some(),
        licence: licence(nvidia || ffhq, NVIDIA_SG2_LICENCE),
        sources: Vec::new(),
        files: Vec::new(),
        unchanged: false,
        replaced: false,
        replaced_files: Vec::new(),
        superseded: Vec::new(),
    };
    if opts.require_ffhq && !(ffhq && g.mapping.is_some() && report.counts_match() == Some(true)) {
        return Err(refused(
            &synth_path,
            format!(
                "not NVIDIA's FFHQ-1024 StyleGAN2 generator (config-f: {ffhq_synthesis} synthesis and {ffhq_mapping} mapping parameters; this one: {}x{}, {} synthesis parameters)",
                layout.resolution, layout.resolution, layout.synthesis_params
            ),
        ));
    }
    Ok(Prepared {
        report,
        synthesis: as_float(&g.synthesis.0),
        mapping: g.mapping.as_ref().map(|(sd, _)| as_float(sd)),
        fit: from_source.map(|(f, _)| f),
        w_avg: None,
    })
}

fn licence(nvidia: bool, which: &str) -> String {
    if nvidia {
        which.to_string()
    } else {
        "unknown: the licence of the source files applies".to_string()
    }
}

/// Stages the files, then installs them ([`folder`]).
fn write(
    opts: &ImportOptions,
    p: Prepared,
    progress: &mut dyn FnMut(ImportEvent),
    stop: &AtomicBool,
) -> Result<ImportReport, ImportError> {
    let Prepared { mut report, synthesis, mapping, fit, w_avg } = p;
    progress(ImportEvent::Writing(&opts.out));
    // One metadata entry per file: the crate writes a map's entries in no fixed order, and the
    // same import should give the same bytes (latents are tagged with the synthesis file's hash).
    let source_names = report.sources.iter().map(|s| s.file.clone()).collect::<Vec<_>>().join(", ");
    let meta = || vec![("source", source_names.clone())];
    let mut files =
        vec![OutputFile { name: "synthesis.safetensors", tensors: synthesis, meta: meta() }];
    if let Some(m) = mapping {
        files.push(OutputFile { name: "mapping.safetensors", tensors: m, meta: meta() });
    }
    if let Some(fit) = &fit {
        files.push(OutputFile {
            name: "gaussian_fit.safetensors",
            tensors: vec![
                ("mean".into(), fit.mean.to_kind(Kind::Float)),
                ("std".into(), fit.std.to_kind(Kind::Float)),
            ],
            meta: vec![("origin", fit_origin_name(&report.fit))],
        });
    }
    if let Some(w) = w_avg {
        files.push(OutputFile {
            name: "w_avg.safetensors",
            tensors: vec![("w_avg".into(), w.to_kind(Kind::Float))],
            meta: meta(),
        });
    }
    let staged = folder::stage(&opts.out, files)?;
    let info = model_info(opts, &report, &staged.files);
    if stop.load(Ordering::SeqCst) {
        return Err(ImportError::Interrupted);
    }
    folder::install(opts, &mut report, staged, &info)?;
    Ok(report)
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

/// Compares the output statistics of `mapping` (`samples` draws) with a published fit. A
/// statistic that is not finite (a mapping that overflows) is `None` and never agrees.
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
    let finite = |v: f64| v.is_finite().then_some(v);
    let agrees = mean_offset < AGREEMENT_TOL && log_ratio < AGREEMENT_TOL;
    Ok(FitAgreement {
        samples,
        max_mean_offset: finite(mean_offset),
        max_log_std_ratio: finite(log_ratio),
        agrees: agrees && mean_offset.is_finite() && log_ratio.is_finite(),
    })
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
        FitOrigin::FirstUse => "none yet: computed from the mapping network on first use".into(),
    }
}

fn model_info(opts: &ImportOptions, r: &ImportReport, files: &[(String, String)]) -> ModelInfo {
    ModelInfo {
        format: model_info::FORMAT.into(),
        architecture: Some(r.architecture.name().into()),
        model: opts
            .model_name
            .as_ref()
            .filter(|_| r.is_named_model(opts))
            .map(|(name, _)| name.clone()),
        sources: r.sources.clone(),
        licence: r.licence.clone(),
        resolution: r.resolution,
        ffhq_architecture: r.ffhq_architecture,
        parameters: Parameters {
            synthesis: Some(r.synthesis.clone()),
            mapping: r.mapping.clone(),
            tf_gs_trainables: r.tf_trainables.clone(),
        },
        gaussian_fit: FitRecord {
            origin: fit_origin_name(&r.fit),
            agreement_with_pulse_ffhq: r.agreement.clone(),
        },
        files: files.iter().cloned().collect(),
        superseded: Default::default(),
        date: model_info::utc_now(),
        pulse_version: env!("CARGO_PKG_VERSION").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ffhq_totals_add_up_to_nvidia_count() {
        // The eight dropped ToRGB_lod layers: 4 at 512 channels, then 256, 128, 64, 32.
        let torgb: i64 = [512, 512, 512, 512, 256, 128, 64, 32].iter().map(|c| c * 3 + 3).sum();
        assert_eq!(FFHQ_SYNTHESIS_PARAMS + FFHQ_MAPPING_PARAMS + torgb, FFHQ_TF_TRAINABLES);
        assert_eq!(FFHQ_MAPPING_PARAMS, 8 * (512 * 512 + 512));
    }
}
