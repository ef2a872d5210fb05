//! `pulse download ffhq` and `pulse download ffhq-stylegan2`: fetch NVIDIA's FFHQ StyleGAN or
//! StyleGAN2 from the first source that still has it, verify it, and import it into a model
//! folder ([`super::import`]).
//!
//! `ffhq-stylegan2`: NVIDIA's TensorFlow `stylegan2-ffhq-config-f.pkl` on NVIDIA's CDN, then
//! stylegan2-ada-pytorch's `ffhq.pkl` (the same network, trained with the original StyleGAN2
//! code), then the copy of it NVIDIA's NGC catalogue serves as `stylegan2-ffhq-1024x1024.pkl`.
//! NVIDIA publishes no checksums: each is verified by structure, config-f's exact layout and
//! its parameter counts (30,370,060 in G_ema), and `ffhq.pkl` also by its size and sha256
//! ([`Expected`]).
//!
//! Expected sizes and sha256 come from copies found independently of NVIDIA's servers. A size
//! that differs is an error (a cut or altered file); a sha256 that differs is an error only
//! where two independent copies agree on it, otherwise a warning naming both values (returned
//! in [`DownloadReport::warnings`]), since one copy may itself be another build of the file.
//!
//! `ffhq` sources, in order (models/README.md lists them with their URLs and sizes):
//! 1. PULSE's own converted `synthesis.pt`, still in the PULSE repository's git history
//!    (commit b4b7e3a1, later reverted), on both names of the repository. Its git blob id is
//!    known, so the download is verified exactly (SHA-1 of `"blob <len>\0"` + the bytes).
//! 2. NVIDIA's original `karras2019stylegan-ffhq-1024x1024.pkl`, on NVIDIA's CDN and Google
//!    Drive. No checksum is published: it is verified by structure and by Gs's published
//!    parameter count, 26,219,627 (NVlabs/stylegan README).
//! 3. lernapparat's converted `for_g_all.pt` (a GitHub release asset), verified by structure
//!    and the FFHQ parameter counts.
//!
//! The download goes to `<out>.download/<file>.partial` beside the model folder and is resumed
//! from there by a later run; the model folder appears only once a verified import is
//! complete. The download folder is locked while a download runs: a second download into it
//! is refused.
//!
//! `vgg16` ([`run_vgg16`]): torchvision's ImageNet VGG16 for LPIPS and `embed --perceptual`, one
//! file, resumed from `<file>.partial`, verified by the SHA-256 prefix in its name.
use super::import::{self, ImportError, ImportEvent, ImportOptions, ImportReport};
use crate::files::escaped;
use crate::http::{self, FetchError, FetchObserver, Timeouts};
use crate::model_info::ModelInfo;
use crate::stylegan::Architecture;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// The models `pulse download` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// NVIDIA's StyleGAN (v1), FFHQ 1024x1024.
    Ffhq,
    /// NVIDIA's StyleGAN2 config-f, FFHQ 1024x1024.
    FfhqStylegan2,
}

impl Model {
    /// The name on the command line and in `model.json`.
    pub fn name(self) -> &'static str {
        match self {
            Model::Ffhq => "ffhq",
            Model::FfhqStylegan2 => "ffhq-stylegan2",
        }
    }

    /// How users call it.
    pub fn title(self) -> &'static str {
        match self {
            Model::Ffhq => "the FFHQ StyleGAN model",
            Model::FfhqStylegan2 => "the FFHQ StyleGAN2 model",
        }
    }

    /// The generator family of the network, by the name `model.json` records (the family
    /// module says what that family is).
    pub fn architecture(self) -> Architecture {
        let name = match self {
            Model::Ffhq => "stylegan1",
            Model::FfhqStylegan2 => "stylegan2",
        };
        Architecture::from_name(name).expect("a family's recorded name")
    }

    /// The built-in source names, in the order they are tried.
    pub fn source_names(self) -> &'static [&'static str] {
        match self {
            Model::Ffhq => &["pulse", "nvidia", "lernapparat"],
            Model::FfhqStylegan2 => &["nvidia", "nvidia-ada", "ngc"],
        }
    }
}

/// The commit and path of PULSE's `synthesis.pt` in adamian98/pulse's history, and its git
/// blob id.
pub const PULSE_COMMIT: &str = "b4b7e3a1ad6857b4eae7220bf35e50e7879d0283";
pub const PULSE_PATH: &str = "cache/6b943ee69b8491ac40e8e9ced6175659_synthesis.pt";
pub const PULSE_BLOB_SHA1: &str = "b3cd79264e182bb13a33043698b0a3d65791f738";
pub const NVIDIA_FILE: &str = "karras2019stylegan-ffhq-1024x1024.pkl";
pub const NVIDIA_DRIVE_ID: &str = "1MEGjdvVpUsu1jB4zrXZN7Y4kBBOzizDQ";
pub const LERNAPPARAT_FILE: &str = "karras2019stylegan-ffhq-1024x1024.for_g_all.pt";
/// NVIDIA's TensorFlow StyleGAN2 FFHQ generator (NVlabs/stylegan2 `pretrained_networks.py`).
pub const NVIDIA_SG2_FILE: &str = "stylegan2-ffhq-config-f.pkl";
pub const NVIDIA_SG2_URL: &str =
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/stylegan2-ffhq-config-f.pkl";
/// stylegan2-ada-pytorch's FFHQ generator (its README: "FFHQ at 1024x1024, trained using
/// original StyleGAN2").
pub const NVIDIA_ADA_FILE: &str = "ffhq.pkl";
pub const NVIDIA_ADA_URL: &str =
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl";

/// The same network as NVIDIA's NGC catalogue serves it (an ada-style pickle).
pub const NGC_SG2_FILE: &str = "stylegan2-ffhq-1024x1024.pkl";
pub const NGC_SG2_URL: &str = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/stylegan2-ffhq-1024x1024.pkl";

/// `karras2019stylegan-ffhq-1024x1024.pkl`: its size and sha256 as one copy found apart from
/// NVIDIA's servers has them.
pub const NVIDIA_EXPECTED: Expected = Expected {
    size: 324_733_157,
    sha256: "f277a43711447812d809b2fdd7748b945cfd7bdcd391d66e557a68d590309aab",
    copies_agree: false,
};
/// stylegan2-ada-pytorch's `ffhq.pkl`: two independent copies agree on size and sha256.
pub const NVIDIA_ADA_EXPECTED: Expected = Expected {
    size: 381_624_121,
    sha256: "a205a346e86a9ddaae702e118097d014b7b8bd719491396a162cca438f2f524c",
    copies_agree: true,
};

/// The size and sha256 a built-in source's file is expected to have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    pub size: u64,
    pub sha256: &'static str,
    /// Two independent copies agree on `sha256`: a mismatch is then an error, not a warning.
    pub copies_agree: bool,
}

impl Expected {
    /// Checks a downloaded file: `Err` for a size that differs, or a sha256 that differs where
    /// copies agree; `Ok(Some(warning))` for a sha256 that differs from a single copy's.
    pub fn check(&self, file: &Path) -> Result<Option<String>, String> {
        let size = std::fs::metadata(file).map_err(|e| format!("{}: {e}", escaped(file)))?.len();
        if size != self.size {
            return Err(format!(
                "size mismatch: {size} bytes, expected {} (a cut or altered download)",
                self.size
            ));
        }
        let got =
            crate::weights::sha256_file(file).map_err(|e| format!("{}: {e}", escaped(file)))?;
        if got == self.sha256 {
            return Ok(None);
        }
        if self.copies_agree {
            return Err(format!(
                "checksum mismatch: sha256 {got}, expected {} (two independent copies agree on it)",
                self.sha256
            ));
        }
        Ok(Some(format!(
            "{}: sha256 {got} differs from {}, the sha256 of the one independent copy known; its size and structure match, so it was installed",
            escaped(file.file_name().map(Path::new).unwrap_or(file)),
            self.sha256
        )))
    }
}

/// Environment variable naming a mirror of the built-in sources, for mirrors and for tests:
/// `https://HOST/PATH` is fetched from `$PULSE_DOWNLOAD_MIRROR/HOST/PATH` instead, with the
/// same verification.
pub const MIRROR_VAR: &str = "PULSE_DOWNLOAD_MIRROR";

/// How a downloaded file is checked before it is imported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Git blob SHA-1 (lowercase hex).
    GitBlob(String),
    /// SHA-256 of the file (lowercase hex), plus a successful import.
    Sha256(String),
    /// The first hex digits of the file's SHA-256 (torchvision names its files by them).
    Sha256Prefix(String),
    /// The model's FFHQ-1024 architecture and parameter counts, plus a successful import.
    Ffhq,
    /// A successful import (any network the importer accepts).
    Importable,
}

/// One place to try.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// `pulse`, `nvidia`, `lernapparat`, `nvidia-ada` or `url`.
    pub source: &'static str,
    pub url: String,
    /// The name the file is saved under.
    pub file: String,
    pub verify: Verify,
    /// The size and sha256 the file is known to have, when they are known.
    pub expected: Option<Expected>,
}

/// The built-in candidates of a `--source` name for a model (`None` for a URL or an unknown
/// name).
pub fn builtin_for(model: Model, name: &str) -> Option<Vec<Candidate>> {
    match model {
        Model::Ffhq => builtin(name),
        Model::FfhqStylegan2 => {
            let (source, url, file, expected) = match name {
                "nvidia" => ("nvidia", NVIDIA_SG2_URL, NVIDIA_SG2_FILE, None),
                "nvidia-ada" => {
                    ("nvidia-ada", NVIDIA_ADA_URL, NVIDIA_ADA_FILE, Some(NVIDIA_ADA_EXPECTED))
                }
                "ngc" => ("ngc", NGC_SG2_URL, NGC_SG2_FILE, None),
                _ => return None,
            };
            Some(vec![Candidate {
                source,
                url: url.into(),
                file: file.into(),
                verify: Verify::Ffhq,
                expected,
            }])
        }
    }
}

/// The built-in candidates of a `--source` name for `ffhq` (`None` for a URL or an unknown
/// name).
pub fn builtin(name: &str) -> Option<Vec<Candidate>> {
    let c = |source, url: String, file: &str, verify| Candidate {
        source,
        url,
        file: file.to_string(),
        verify,
        expected: (file == NVIDIA_FILE).then_some(NVIDIA_EXPECTED),
    };
    let pulse = |owner: &str| {
        c(
            "pulse",
            format!("https://github.com/{owner}/pulse/raw/{PULSE_COMMIT}/{PULSE_PATH}"),
            "synthesis.pt",
            Verify::GitBlob(PULSE_BLOB_SHA1.into()),
        )
    };
    Some(match name {
        "pulse" => vec![pulse("adamian98"), pulse("alex-damian")],
        "nvidia" => vec![
            c(
                "nvidia",
                format!("https://nvlabs-fi-cdn.nvidia.com/stylegan/networks/{NVIDIA_FILE}"),
                NVIDIA_FILE,
                Verify::Ffhq,
            ),
            c(
                "nvidia",
                format!("https://drive.usercontent.google.com/download?id={NVIDIA_DRIVE_ID}&export=download&confirm=t"),
                NVIDIA_FILE,
                Verify::Ffhq,
            ),
        ],
        "lernapparat" => vec![c(
            "lernapparat",
            format!("https://github.com/lernapparat/lernapparat/releases/download/v2019-02-01/{LERNAPPARAT_FILE}"),
            LERNAPPARAT_FILE,
            Verify::Ffhq,
        )],
        _ => return None,
    })
}

/// Every built-in candidate, in the order they are tried.
pub fn default_candidates() -> Vec<Candidate> {
    ["pulse", "nvidia", "lernapparat"].iter().flat_map(|n| builtin(n).expect("built-in")).collect()
}

/// `https://HOST/PATH` as fetched from a mirror.
pub fn mirrored(url: &str, mirror: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    format!("{}/{rest}", mirror.trim_end_matches('/'))
}

pub struct DownloadOptions {
    pub model: Model,
    /// Built-in source names or URLs, tried in order; empty: every built-in source.
    pub sources: Vec<String>,
    pub out: PathBuf,
    pub force: bool,
    /// Expected SHA-256 of a file given by URL.
    pub sha256: Option<String>,
    /// A mirror of the built-in sources (see [`MIRROR_VAR`]).
    pub mirror: Option<String>,
    pub fit_samples: i64,
    pub timeouts: Timeouts,
}

impl DownloadOptions {
    pub fn new(out: PathBuf) -> Self {
        Self {
            model: Model::Ffhq,
            sources: Vec::new(),
            out,
            force: false,
            sha256: None,
            mirror: std::env::var(MIRROR_VAR).ok().filter(|m| !m.is_empty()),
            fit_samples: crate::model::FIT_SAMPLES,
            timeouts: Timeouts::default(),
        }
    }

    /// The candidates to try, in order.
    pub fn candidates(&self) -> Result<Vec<Candidate>, DownloadError> {
        let names: Vec<String> = if self.sources.is_empty() {
            self.model.source_names().iter().map(|s| s.to_string()).collect()
        } else {
            self.sources.clone()
        };
        if let Some(h) = &self.sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(DownloadError::Usage(format!(
                    "--sha256 '{h}' is not a SHA-256 (64 hexadecimal digits)"
                )));
            }
        }
        let mut out = Vec::new();
        for name in &names {
            if let Some(mut list) = builtin_for(self.model, name) {
                if let Some(m) = &self.mirror {
                    for c in &mut list {
                        c.url = mirrored(&c.url, m);
                    }
                }
                out.extend(list);
            } else if name.starts_with("http://") || name.starts_with("https://") {
                check_url(name).map_err(DownloadError::Usage)?;
                let file = url_file_name(name);
                let verify = match &self.sha256 {
                    Some(h) => Verify::Sha256(h.to_ascii_lowercase()),
                    None => Verify::Importable,
                };
                out.push(Candidate {
                    source: "url",
                    url: name.clone(),
                    file,
                    verify,
                    expected: None,
                });
            } else {
                return Err(DownloadError::Usage(format!(
                    "unknown source '{name}' for {} (expected {} or an http(s) URL)",
                    self.model.name(),
                    self.model.source_names().join(", ")
                )));
            }
        }
        Ok(out)
    }
}

/// An http(s) URL with a host, no spaces and no control characters: anything else is a usage
/// error before any connection is tried.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || host.starts_with('[') => {
            if !port.is_empty() && port.parse::<u16>().is_err() {
                return Err(format!("'{url}' is not a valid URL (bad port '{port}')"));
            }
            h
        }
        _ => host,
    };
    if host.is_empty() {
        return Err(format!("'{url}' is not a valid URL (no host)"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "'{}' is not a valid URL (spaces or control characters)",
            url.escape_default()
        ));
    }
    Ok(())
}

/// The last path segment of a URL (query and fragment dropped), or `download`.
fn url_file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let path = path.split_once("://").map_or(path, |(_, r)| r);
    let last = path.split_once('/').map(|(_, p)| p.rsplit('/').next().unwrap_or("")).unwrap_or("");
    let clean: String = last
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    if clean.is_empty() || clean.starts_with('.') {
        "download".into()
    } else {
        clean
    }
}

/// Why a download failed; the exit code depends on it.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// Every candidate failed: what each said.
    #[error("no source could be downloaded and verified")]
    AllFailed { tried: Vec<(String, String)> },
    /// The request cannot be done as asked (an unknown source).
    #[error("{0}")]
    Usage(String),
    /// The folder holds another model, and replacing it was not asked for.
    #[error("{} already holds another model; --force replaces it (or choose another folder with -o)", escaped(.0))]
    OtherModel(PathBuf),
    /// The file to download (VGG16) is there with other content, and replacing it was not
    /// asked for.
    #[error("{} exists and is not torchvision's VGG16; --force replaces it", escaped(.0))]
    OtherFile(PathBuf),
    /// Another `pulse download` is writing into the same download folder.
    #[error("{}: another pulse download into this folder is running; wait for it to finish", escaped(.0))]
    Busy(PathBuf),
    /// Stopped by the user; the partial file is kept for a resume.
    #[error("interrupted")]
    Interrupted { partial: Option<PathBuf> },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Events of a download, for the command line to show.
pub trait DownloadObserver {
    /// Candidate `index` of `count` is being tried.
    fn trying(&mut self, _index: usize, _count: usize, _candidate: &Candidate) {}
    fn started(&mut self, _from: u64, _total: Option<u64>) {}
    fn progress(&mut self, _done: u64) {}
    fn resuming(&mut self, _done: u64, _error: &str) {}
    fn failed(&mut self, _candidate: &Candidate, _reason: &str) {}
    fn verifying(&mut self, _candidate: &Candidate) {}
    fn import_event(&mut self, _event: &ImportEvent) {}
}

struct Relay<'a>(&'a mut dyn DownloadObserver);

impl FetchObserver for Relay<'_> {
    fn started(&mut self, _url: &str, from: u64, total: Option<u64>) {
        self.0.started(from, total)
    }
    fn progress(&mut self, done: u64) {
        self.0.progress(done)
    }
    fn resuming(&mut self, _url: &str, done: u64, error: &str) {
        self.0.resuming(done, error)
    }
}

pub struct DownloadReport {
    pub candidate: Candidate,
    pub import: Option<ImportReport>,
    /// The model folder already held the model from this source: nothing was downloaded.
    pub already_installed: bool,
    /// The installed network is the model asked for; `false` for a URL source whose network
    /// is something else (then `model.json` does not name the model).
    pub is_model: bool,
    /// What the command line should say aside (a sha256 that differs from a single known copy's).
    pub warnings: Vec<String>,
}

/// The folder beside `out` where downloads wait, partial or complete, until imported.
pub fn download_dir(out: &Path) -> PathBuf {
    let name =
        out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    out.with_file_name(format!("{name}.download"))
}

/// Where a candidate's download is kept until imported: `<out>.download/<key>.<file>.partial`
/// (the completed file drops `.partial`). The key is the source name, or for a URL a hash of
/// it, so that two sources never resume each other's bytes.
pub fn partial_file(out: &Path, candidate: &Candidate) -> PathBuf {
    use sha2::{Digest, Sha256};
    let key = if candidate.source == "url" {
        let h = Sha256::digest(candidate.url.as_bytes());
        format!("url-{:02x}{:02x}{:02x}{:02x}", h[0], h[1], h[2], h[3])
    } else {
        candidate.source.to_string()
    };
    download_dir(out).join(format!("{key}.{}.partial", candidate.file))
}

/// Which source URL a model folder was imported from, by its `model.json`.
fn installed_from(out: &Path) -> Option<String> {
    ModelInfo::read(out)?.source_url().map(str::to_string)
}

fn has_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false)
}

pub fn run(
    opts: &DownloadOptions,
    observer: &mut dyn DownloadObserver,
    stop: &AtomicBool,
) -> Result<DownloadReport, DownloadError> {
    let candidates = opts.candidates()?;
    if opts.out.exists() && !opts.out.is_dir() {
        return Err(DownloadError::Usage(format!(
            "{}: exists and is not a folder",
            opts.out.display()
        )));
    }
    if has_files(&opts.out) && !opts.force {
        if let Some(url) = installed_from(&opts.out) {
            if let Some(c) = candidates.iter().find(|c| c.url == url) {
                let is_model = ModelInfo::read(&opts.out)
                    .is_some_and(|m| m.model.as_deref() == Some(opts.model.name()));
                return Ok(DownloadReport {
                    candidate: c.clone(),
                    import: None,
                    already_installed: true,
                    is_model,
                    warnings: vec![],
                });
            }
        }
        return Err(DownloadError::OtherModel(opts.out.clone()));
    }
    let dir = download_dir(&opts.out);
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create folder: {e}", escaped(&dir)))?;
    // Two downloads writing one `.partial` would corrupt each other.
    let _lock = crate::files::DirLock::try_acquire(&dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot lock: {e}", escaped(&dir)))?
        .ok_or_else(|| DownloadError::Busy(dir.clone()))?;
    let mut tried = Vec::new();
    for (i, candidate) in candidates.iter().enumerate() {
        observer.trying(i, candidates.len(), candidate);
        let partial = partial_file(&opts.out, candidate);
        let file = partial.with_extension("");
        let mut fail = |observer: &mut dyn DownloadObserver, reason: String| {
            observer.failed(candidate, &reason);
            tried.push((candidate.url.clone(), reason));
        };
        // A file completed by an earlier run whose import was interrupted needs no new download.
        if !file.exists() {
            match http::fetch(&candidate.url, &partial, &mut Relay(observer), stop, opts.timeouts) {
                Ok(_) => {}
                Err(FetchError::Interrupted) => {
                    return Err(DownloadError::Interrupted { partial: Some(partial) })
                }
                Err(e) => {
                    fail(observer, e.to_string());
                    continue;
                }
            }
            std::fs::rename(&partial, &file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        }
        observer.verifying(candidate);
        let expected = candidate.expected.map_or(Ok(None), |e| e.check(&file));
        let warning =
            match expected.and_then(|w| verify_checksum(&file, &candidate.verify).map(|_| w)) {
                Ok(w) => w,
                Err(reason) => {
                    // A wrong file must not be resumed from: it goes.
                    let _ = std::fs::remove_file(&file);
                    fail(observer, reason);
                    continue;
                }
            };
        match import_download(opts, candidate, &file, observer, stop) {
            Ok((report, is_model)) => {
                let _ = std::fs::remove_file(&file);
                drop(_lock);
                let _ = std::fs::remove_file(dir.join(crate::files::LOCK_FILE));
                let _ = std::fs::remove_dir(&dir);
                return Ok(DownloadReport {
                    candidate: candidate.clone(),
                    import: Some(report),
                    already_installed: false,
                    is_model,
                    warnings: warning.into_iter().collect(),
                });
            }
            Err(ImportError::Refused(reason)) => {
                let _ = std::fs::remove_file(&file);
                fail(observer, format!("verification failed: {reason}"));
            }
            Err(ImportError::Usage(m)) => return Err(DownloadError::Usage(m)),
            Err(ImportError::OtherModel(dir) | ImportError::NotAModelFolder(dir)) => {
                return Err(DownloadError::OtherModel(dir))
            }
            Err(ImportError::Interrupted) => {
                return Err(DownloadError::Interrupted { partial: None })
            }
            Err(ImportError::Other(e)) => return Err(DownloadError::Other(e)),
        }
    }
    drop(_lock);
    let _ = std::fs::remove_file(dir.join(crate::files::LOCK_FILE));
    let _ = std::fs::remove_dir(&dir); // only if empty: partial files stay for a resume
    Err(DownloadError::AllFailed { tried })
}

/// Imports a downloaded file. A built-in source must be the model (its architecture and
/// parameter counts); a URL may be any network the importer takes, and `model.json` names the
/// model only when it is that network. Returns the report and whether it is the model.
fn import_download(
    opts: &DownloadOptions,
    candidate: &Candidate,
    file: &Path,
    observer: &mut dyn DownloadObserver,
    stop: &AtomicBool,
) -> Result<(ImportReport, bool), ImportError> {
    let mut import_opts = ImportOptions::new(vec![file.to_path_buf()], opts.out.clone());
    import_opts.force = opts.force;
    import_opts.fit_samples = opts.fit_samples;
    import_opts.require_ffhq = candidate.verify == Verify::Ffhq;
    import_opts.origins.insert(file.to_path_buf(), candidate.url.clone());
    import_opts.model_name = Some((opts.model.name().to_string(), opts.model.architecture()));
    let report = import::run(&import_opts, &mut |e| observer.import_event(&e), stop)?;
    let is_model = report.is_named_model(&import_opts);
    Ok((report, is_model))
}

/// torchvision's ImageNet VGG16 (`torchvision.models.VGG16_Weights.IMAGENET1K_V1`), the trunk of
/// LPIPS and of `embed --perceptual`.
pub const VGG16_URL: &str = "https://download.pytorch.org/models/vgg16-397923af.pth";

/// `pulse download vgg16`: one file, not a model folder.
pub struct Vgg16Options {
    /// The file to write (by default `models/vgg16/vgg16-397923af.pth`).
    pub out: PathBuf,
    /// Another URL to fetch it from (a copy of torchvision's file).
    pub url: Option<String>,
    /// The full SHA-256 expected; without it, the file's SHA-256 must start with torchvision's
    /// 8 digits (`397923af`, in the file's name).
    pub sha256: Option<String>,
    pub mirror: Option<String>,
    pub force: bool,
    pub timeouts: Timeouts,
}

impl Vgg16Options {
    pub fn new(out: PathBuf) -> Self {
        Self {
            out,
            url: None,
            sha256: None,
            mirror: std::env::var(MIRROR_VAR).ok().filter(|m| !m.is_empty()),
            force: false,
            timeouts: Timeouts::default(),
        }
    }

    /// The URL to fetch: `--source`, else torchvision's (through the mirror, if any).
    pub fn url(&self) -> String {
        match (&self.url, &self.mirror) {
            (Some(u), _) => u.clone(),
            (None, Some(m)) => mirrored(VGG16_URL, m),
            (None, None) => VGG16_URL.to_string(),
        }
    }

    fn verify(&self) -> Verify {
        match &self.sha256 {
            Some(h) => Verify::Sha256(h.to_ascii_lowercase()),
            None => Verify::Sha256Prefix(crate::metrics::lpips::VGG16_SHA256_PREFIX.into()),
        }
    }
}

/// What `pulse download vgg16` did.
pub struct Vgg16Report {
    pub url: String,
    pub file: PathBuf,
    /// The file was already there and verified: nothing was downloaded.
    pub already_installed: bool,
}

/// Downloads torchvision's VGG16 into `opts.out`: fetched (and resumed by a later run) as
/// `<out>.partial`, verified by its SHA-256 and by its layout (VGG16's 13 convolutions), then
/// renamed into place. A file already at `out` is kept when it verifies; otherwise `--force`
/// replaces it.
pub fn run_vgg16(
    opts: &Vgg16Options,
    observer: &mut dyn DownloadObserver,
    stop: &AtomicBool,
) -> Result<Vgg16Report, DownloadError> {
    let url = opts.url();
    check_url(&url).map_err(DownloadError::Usage)?;
    let verify = opts.verify();
    let candidate = Candidate {
        source: "vgg16",
        url: url.clone(),
        file: VGG16_FILE_NAME.into(),
        verify,
        // torchvision publishes only the 8 digits in the name, checked by `verify`.
        expected: None,
    };
    if opts.out.is_dir() {
        return Err(DownloadError::Usage(format!("{}: is a folder", escaped(&opts.out))));
    }
    if opts.out.exists() && !opts.force {
        observer.verifying(&candidate);
        return match verify_vgg16(&opts.out, &candidate.verify) {
            Ok(()) => Ok(Vgg16Report { url, file: opts.out.clone(), already_installed: true }),
            Err(_) => Err(DownloadError::OtherFile(opts.out.clone())),
        };
    }
    let dir = crate::files::parent_dir(&opts.out).to_path_buf();
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot create folder: {e}", escaped(&dir)))?;
    let _lock = crate::files::DirLock::try_acquire(&dir)
        .map_err(|e| anyhow::anyhow!("{}: cannot lock: {e}", escaped(&dir)))?
        .ok_or_else(|| DownloadError::Busy(dir.clone()))?;
    let unlock = |lock| {
        drop(lock);
        let _ = std::fs::remove_file(dir.join(crate::files::LOCK_FILE));
    };
    let mut partial = opts.out.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    observer.trying(0, 1, &candidate);
    match http::fetch(&url, &partial, &mut Relay(observer), stop, opts.timeouts) {
        Ok(_) => {}
        Err(FetchError::Interrupted) => {
            unlock(_lock);
            return Err(DownloadError::Interrupted { partial: Some(partial) });
        }
        Err(e) => {
            unlock(_lock);
            return Err(DownloadError::AllFailed { tried: vec![(url, e.to_string())] });
        }
    }
    observer.verifying(&candidate);
    if let Err(reason) = verify_vgg16(&partial, &candidate.verify) {
        // A wrong file must not be resumed from: it goes.
        let _ = std::fs::remove_file(&partial);
        unlock(_lock);
        return Err(DownloadError::AllFailed { tried: vec![(url, reason)] });
    }
    std::fs::rename(&partial, &opts.out)
        .map_err(|e| anyhow::anyhow!("{}: {e}", escaped(&opts.out)))?;
    unlock(_lock);
    Ok(Vgg16Report { url, file: opts.out.clone(), already_installed: false })
}

/// torchvision's name of the VGG16 file.
pub const VGG16_FILE_NAME: &str = crate::metrics::lpips::VGG16_FILE;

/// A VGG16 file's checksum, then its layout: a torchvision `vgg16` state dict with VGG16's 13
/// 3x3 convolutions (any widths, so a copy made for tests verifies by its `--sha256`).
fn verify_vgg16(file: &Path, verify: &Verify) -> Result<(), String> {
    verify_checksum(file, verify)?;
    let sd = crate::weights::load(file).map_err(|e| format!("not a weight file: {e}"))?;
    crate::editing::vgg::load_convs(
        &sd,
        &[0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
        tch::Device::Cpu,
    )
    .map_err(|e| format!("not torchvision's vgg16: {e}"))?;
    Ok(())
}

/// Checks a checksum, when the candidate has one.
fn verify_checksum(file: &Path, verify: &Verify) -> Result<(), String> {
    match verify {
        Verify::GitBlob(expected) => {
            let got = git_blob_sha1(file).map_err(|e| format!("{}: {e}", file.display()))?;
            if &got != expected {
                return Err(format!("checksum mismatch: git blob {got}, expected {expected}"));
            }
        }
        Verify::Sha256(expected) => {
            let got = crate::weights::sha256_file(file)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            if &got != expected {
                return Err(format!("checksum mismatch: sha256 {got}, expected {expected}"));
            }
        }
        Verify::Sha256Prefix(prefix) => {
            let got = crate::weights::sha256_file(file)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            if !got.starts_with(prefix.as_str()) {
                return Err(format!(
                    "checksum mismatch: sha256 {got}, expected one starting with {prefix}"
                ));
            }
        }
        Verify::Ffhq | Verify::Importable => {}
    }
    Ok(())
}

/// Git's object id of a file: SHA-1 of `"blob <length>\0"` followed by its bytes.
pub fn git_blob_sha1(path: &Path) -> std::io::Result<String> {
    let len = std::fs::metadata(path)?.len();
    crate::files::digest_file::<sha1::Sha1>(path, format!("blob {len}\0").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_id_matches_git_hash_object() {
        // `printf 'hello\n' | git hash-object --stdin`
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello\n").unwrap();
        assert_eq!(git_blob_sha1(&p).unwrap(), "ce013625030ba8dba906f756967f9e9ca394464a");
    }

    #[test]
    fn mirrors_and_url_names() {
        assert_eq!(
            mirrored("https://github.com/a/b?x=1", "http://127.0.0.1:9/"),
            "http://127.0.0.1:9/github.com/a/b?x=1"
        );
        assert_eq!(url_file_name("http://h:1/dir/file.pkl?x=y"), "file.pkl");
        assert_eq!(url_file_name("http://h:1/"), "download");
        assert_eq!(url_file_name("http://h:1"), "download");
        assert_eq!(url_file_name("http://h/../.hidden"), "download");
    }

    #[test]
    fn expected_sizes_are_errors_and_single_copy_checksums_warnings() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f.pkl");
        std::fs::write(&f, b"hello\n").unwrap();
        // sha256 of "hello\n".
        let sha = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        let other = "0".repeat(64);
        let other: &'static str = Box::leak(other.into_boxed_str());
        let e = |size, sha256, copies_agree| Expected { size, sha256, copies_agree };
        assert_eq!(e(6, sha, true).check(&f), Ok(None));
        let err = e(7, sha, false).check(&f).unwrap_err();
        assert!(err.contains("size mismatch: 6 bytes, expected 7"), "{err}");
        let warning = e(6, other, false).check(&f).unwrap().expect("a warning");
        assert!(warning.contains(sha) && warning.contains(other), "{warning}");
        let err = e(6, other, true).check(&f).unwrap_err();
        assert!(err.contains(sha) && err.contains(other), "{err}");
        // The built-in sources carry what is known of them.
        let ada = builtin_for(Model::FfhqStylegan2, "nvidia-ada").unwrap();
        assert_eq!(ada[0].expected, Some(NVIDIA_ADA_EXPECTED));
        const { assert!(NVIDIA_ADA_EXPECTED.copies_agree && !NVIDIA_EXPECTED.copies_agree) };
        assert!(builtin("nvidia").unwrap().iter().all(|c| c.expected == Some(NVIDIA_EXPECTED)));
        let ngc = builtin_for(Model::FfhqStylegan2, "ngc").unwrap();
        assert_eq!((ngc[0].url.as_str(), ngc[0].expected), (NGC_SG2_URL, None));
    }

    #[test]
    fn sources_expand_in_order() {
        let mut o = DownloadOptions::new("m".into());
        o.mirror = None;
        let all: Vec<&str> = o.candidates().unwrap().iter().map(|c| c.source).collect();
        assert_eq!(all, ["pulse", "pulse", "nvidia", "nvidia", "lernapparat"]);
        o.sources = vec!["lernapparat".into(), "http://x/y.pt".into()];
        let c = o.candidates().unwrap();
        assert_eq!(c[1].verify, Verify::Importable);
        o.sources = vec!["ftp://x".into()];
        assert!(matches!(o.candidates(), Err(DownloadError::Usage(_))));
    }
}
