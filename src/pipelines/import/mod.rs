//! `pulse import`: weight files of any supported format (NVIDIA's TensorFlow pickles and
//! stylegan2-ada-pytorch pickles, lernapparat's `for_g_all.pt`, rosinality's StyleGAN2
//! checkpoints, PULSE's `.pt` files, safetensors) -> a model folder that `--model DIR` loads:
//! `synthesis.safetensors`, `mapping.safetensors` when a mapping network is given, a Gaussian
//! fit, `w_avg.safetensors` when a StyleGAN (v1) source has NVIDIA's `dlatent_avg` (a
//! StyleGAN2 mapping file holds its own `mapping.w_avg`), and `model.json`
//! ([`crate::model_info`]) recording the family and where it all came from.
//!
//! Nothing is trusted before it is checked: every tensor must be finite, the networks must
//! pass their family's checks ([`Architecture::check_import`]: what their constructors will ask
//! of the files), and the parameter counts are compared with the family's FFHQ totals. Since a
//! forgotten transpose keeps a square matrix's shape, a StyleGAN mapping network is also checked
//! by its output statistics against PULSE's published Gaussian fit of the real FFHQ mapping
//! (docs/design.md, "The latent space").
//!
//! The jobs: this file orchestrates, [`checks`] vets the sources, [`folder`] writes and
//! installs the folder so that an interrupted or failed import leaves no half model and
//! deletes nothing pulse did not write.
mod checks;
mod folder;

use crate::model;
use crate::model_info::{self, FitRecord, ModelInfo, Parameters};
pub use crate::model_info::{Count, FitAgreement, SourceRecord};
use crate::pulse::GaussianFit;
use crate::stylegan::family::ImportFit;
use crate::stylegan::{Architecture, MappingNetwork};
use crate::weights::{self, Source, SourceFormat};
use checks::Gathered;
use folder::OutputFile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{Device, Kind, Tensor};

/// PULSE's `gaussian_fit.pt`: mean and std of `leaky_relu(mapping(z), 5)` over 1,000,000 z of
/// the real FFHQ mapping network (adamian98/pulse, shipped with the repository; also
/// models/test-1024/gaussian_fit.pt). It is the fit for NVIDIA's FFHQ generator whichever file
/// its synthesis network comes from.
pub const PULSE_FFHQ_FIT: &[u8] = include_bytes!("../../../models/test-1024/gaussian_fit.pt");

/// Samples of z for the agreement check: the standard error of a mean is then std/64, so the
/// largest of 512 offsets stays near 0.05 std for the right network, while a transposed or
/// missing layer moves whole distributions by far more.
pub const AGREEMENT_SAMPLES: i64 = 4096;
/// Largest mean offset (in units of the published std) and largest |ln(std ratio)| that still
/// count as agreeing: about five times the sampling spread at [`AGREEMENT_SAMPLES`].
pub const AGREEMENT_TOL: f64 = 0.25;

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
    let mut prepared = prepare(opts, &sources, g, progress, stop)?;
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

/// Checks the networks as their family says, then finds their Gaussian fit: the sources',
/// else as the family's [`ImportFit`] says.
fn prepare(
    opts: &ImportOptions,
    sources: &[Source],
    g: Gathered,
    progress: &mut dyn FnMut(ImportEvent),
    stop: &AtomicBool,
) -> Result<Prepared, ImportError> {
    let family = g.architecture;
    let synth_path = sources[g.synthesis.1].path.clone();
    let mapping_sd = g.mapping.as_ref().map(|(sd, _)| sd);
    let checked = family.check_import(&g.synthesis.0, mapping_sd).map_err(|e| {
        let path = match (&g.mapping, e.in_mapping) {
            (Some((_, i)), true) => &sources[*i].path,
            _ => &synth_path,
        };
        refused(path, e.message)
    })?;
    let mapping_net = checked.mapping_network.as_ref().map(|(m, _)| m.as_ref());
    let from_source = source_fit(sources, &g)?;
    if let Some(w) = &g.w_avg {
        checks::check_latent_vector(&synth_path, "dlatent_avg", Some(w))?;
    }
    let ffhq = checked.ffhq;
    let policy = family.import_fit();
    let (shipped, agreement) = match (policy, mapping_net) {
        (ImportFit::PulseOrComputed, m) => {
            let shipped = shipped_fit()?;
            let agreement = m
                .map(|m| fit_agreement(m, &shipped, AGREEMENT_SAMPLES, model::FIT_SEED))
                .transpose()
                .map_err(ImportError::Other)?;
            (Some(shipped), agreement)
        }
        (ImportFit::FirstUse, _) => (None, None),
    };
    // The fit: the sources' own, else as the family says.
    let (fit, fit_origin) = if let Some((fit, path)) = from_source {
        (Some(fit), FitOrigin::Source(path))
    } else if let (Some(shipped), true) = (shipped, ffhq) {
        (Some(shipped), FitOrigin::PulseFfhq)
    } else if let (ImportFit::PulseOrComputed, Some(m)) = (policy, mapping_net) {
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
    } else if g.mapping.is_some() {
        (None, FitOrigin::FirstUse)
    } else {
        (None, FitOrigin::None)
    };

    let counts = family.ffhq_counts();
    let expected = |n: i64| ffhq.then_some(n);
    let nvidia = sources.iter().any(|s| {
        matches!(
            s.format,
            SourceFormat::NvidiaPickle
                | SourceFormat::AdaPickle
                | SourceFormat::Rosinality
                | SourceFormat::Lernapparat
        )
    });
    let report = ImportReport {
        out: opts.out.clone(),
        architecture: family,
        resolution: checked.resolution,
        ffhq_architecture: ffhq,
        synthesis: Count { found: checked.synthesis_params, expected: expected(counts.synthesis) },
        mapping: checked
            .mapping_params
            .map(|found| Count { found, expected: expected(counts.mapping) }),
        tf_trainables: g
            .tf_trainables
            .zip(counts.tf_trainables)
            .map(|(found, ffhq_count)| Count { found, expected: expected(ffhq_count) }),
        fit: fit_origin,
        agreement,
        w_avg: g.w_avg.is_some() || checked.stored_w_avg,
        licence: licence(nvidia || ffhq, family.nvidia_licence()),
        sources: Vec::new(),
        files: Vec::new(),
        unchanged: false,
        replaced: false,
        replaced_files: Vec::new(),
        superseded: Vec::new(),
    };
    // A named model must be the FFHQ network, complete enough to search with.
    if opts.require_ffhq
        && !(ffhq && report.counts_match() == Some(true) && report.fit != FitOrigin::None)
    {
        return Err(refused(
            &synth_path,
            format!(
                "not NVIDIA's FFHQ-1024 {} generator (FFHQ has {} synthesis and {} mapping parameters; this one: {}x{}, {} synthesis parameters{})",
                family.title(),
                counts.synthesis,
                counts.mapping,
                report.resolution,
                report.resolution,
                report.synthesis.found,
                if report.mapping.is_none() { ", no mapping network" } else { "" },
            ),
        ));
    }
    Ok(Prepared {
        report,
        synthesis: checked.synthesis,
        mapping: checked.mapping,
        fit,
        w_avg: g.w_avg,
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
    mapping: &dyn MappingNetwork,
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
