//! `pulse import` and `pulse download`: arguments and commands.
use super::commands::interrupt_flag;
use super::exit::{Exit, Refusal};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pulse::pipelines::download::{
    self, Candidate, DownloadError, DownloadObserver, DownloadOptions,
};
use pulse::pipelines::import::{
    self, FitOrigin, ImportError, ImportEvent, ImportOptions, ImportReport,
};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Where an imported model goes, shared by `import` and `download`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The model folder to write.
    #[arg(short = 'o', long = "output", default_value = pulse::model::DEFAULT_DIR, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a folder that holds another model.
    #[arg(long)]
    pub force: bool,
    /// Samples of z when the Gaussian fit must be computed from the mapping network (at
    /// least 2).
    #[arg(long, default_value_t = pulse::model::FIT_SAMPLES, value_name = "N",
          value_parser = clap::value_parser!(i64).range(import::MIN_FIT_SAMPLES..))]
    pub fit_samples: i64,
    /// No progress display.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Weight files: NVIDIA's TensorFlow .pkl (StyleGAN, StyleGAN2), stylegan2-ada-pytorch's
    /// .pkl, lernapparat's for_g_all.pt, rosinality's StyleGAN2 .pt, PULSE's synthesis.pt /
    /// mapping.pt / gaussian_fit.pt, or safetensors (the format is read from the content).
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<PathBuf>,
    #[command(flatten)]
    pub install: InstallArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelName {
    /// NVIDIA's StyleGAN (v1) trained on FFHQ at 1024x1024, the network PULSE uses (licence
    /// CC BY-NC 4.0).
    Ffhq,
    /// NVIDIA's StyleGAN2 config-f trained on FFHQ at 1024x1024 (licence NVIDIA Source Code
    /// License-NC).
    #[value(name = "ffhq-stylegan2")]
    FfhqStylegan2,
    /// torchvision's ImageNet VGG16 (vgg16-397923af.pth, 528 MB), for LPIPS (`pulse eval`, the
    /// LPIPS loss term) and `embed --perceptual`; written to models/vgg16/ unless -o names a
    /// folder.
    Vgg16,
}

impl ModelName {
    fn model(self) -> download::Model {
        match self {
            ModelName::Ffhq => download::Model::Ffhq,
            ModelName::FfhqStylegan2 => download::Model::FfhqStylegan2,
            ModelName::Vgg16 => unreachable!("vgg16 is a file, not a model"),
        }
    }
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// The model to download.
    #[arg(value_enum)]
    pub model: ModelName,
    /// Where from: for ffhq pulse, nvidia or lernapparat, for ffhq-stylegan2 nvidia,
    /// nvidia-ada or ngc, or an http(s) URL (repeat to try several in order); default: each
    /// built-in source in that order.
    #[arg(long = "source", value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// Expected SHA-256 of a file given by URL (64 hexadecimal digits).
    #[arg(long, value_name = "HEX", value_parser = sha256_arg)]
    pub sha256: Option<String>,
    #[command(flatten)]
    pub install: InstallArgs,
}

/// `--sha256`: 64 hexadecimal digits, checked before anything is downloaded.
fn sha256_arg(s: &str) -> Result<String, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("'{s}' is not a SHA-256 (64 hexadecimal digits)"))
    }
}

pub fn import(a: ImportArgs) -> anyhow::Result<Exit> {
    let ImportArgs { sources, install: a } = a;
    let stop = interrupt_flag();
    let mut opts = ImportOptions::new(sources, a.out);
    opts.force = a.force;
    opts.fit_samples = a.fit_samples;
    let bar = Bar::new(a.quiet);
    let result = import::run(&opts, &mut |e| bar.import_event(&e), &stop);
    bar.clear();
    match result {
        Ok(report) => {
            print_report(&report, a.quiet);
            Ok(Exit::Success)
        }
        Err(ImportError::Interrupted) => {
            eprintln!("pulse: interrupted; nothing was written");
            Ok(Exit::Interrupted)
        }
        Err(e) => Err(import_error(e)),
    }
}

/// An import's error as `main` reports it: refusals of the request or of an input exit 2.
fn import_error(e: ImportError) -> anyhow::Error {
    let refusal = |m: String| Refusal(anyhow::anyhow!(m)).into();
    match e {
        ImportError::Refused(m) | ImportError::Usage(m) => refusal(m),
        ImportError::OtherModel(dir) => refusal(format!(
            "{} already holds a model with other weights; --force replaces it (only the files pulse writes; nothing else is deleted)",
            pulse::files::escaped(&dir)
        )),
        ImportError::NotAModelFolder(dir) => refusal(format!(
            "{} is not empty and holds no model: give a new or empty folder (--force writes the model's files beside the others)",
            pulse::files::escaped(&dir)
        )),
        e @ ImportError::Interrupted => anyhow::anyhow!(e),
        ImportError::Other(e) => e,
    }
}

fn thousands(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn count_text(what: &str, c: &import::Count) -> String {
    match c.expected {
        Some(e) if e == c.found => format!("{what} {} (FFHQ: matches)", thousands(c.found)),
        Some(e) => format!("{what} {} (FFHQ has {}: DIFFERENT)", thousands(c.found), thousands(e)),
        None => format!("{what} {}", thousands(c.found)),
    }
}

fn print_report(r: &ImportReport, quiet: bool) {
    for s in &r.sources {
        if !quiet {
            eprintln!("pulse: read {} ({}, sha256 {})", s.file, s.format, &s.sha256[..12]);
        }
    }
    let mut counts = vec![count_text("synthesis", &r.synthesis)];
    if let Some(m) = &r.mapping {
        counts.push(count_text("mapping", m));
    }
    if let Some(t) = &r.tf_trainables {
        counts.push(count_text("TensorFlow Gs trainables", t));
    }
    let arch = if r.ffhq_architecture { "FFHQ architecture" } else { "not FFHQ's architecture" };
    let family = r.architecture.title();
    eprintln!(
        "pulse: {family} {}x{} network ({arch}); parameters: {}",
        r.resolution,
        r.resolution,
        counts.join(", ")
    );
    if r.counts_match() == Some(false) {
        eprintln!("pulse: WARNING: the parameter counts differ from NVIDIA's FFHQ generator");
    }
    if let Some(a) = &r.agreement {
        let stat = |v: Option<f64>| v.map_or("not finite".to_string(), |v| format!("{v:.3}"));
        let line = format!(
            "Gaussian fit check ({} samples) against PULSE's FFHQ fit: max mean offset {} std, max |ln std ratio| {} (tolerance {})",
            a.samples,
            stat(a.max_mean_offset),
            stat(a.max_log_std_ratio),
            import::AGREEMENT_TOL
        );
        if a.agrees {
            eprintln!("pulse: {line}: agrees");
        } else {
            eprintln!(
                "pulse: WARNING: {line}: DOES NOT AGREE: this mapping network is not FFHQ's, or a layer was converted wrongly (transposed?)"
            );
        }
    }
    match &r.fit {
        FitOrigin::PulseFfhq => eprintln!("pulse: Gaussian fit: PULSE's published FFHQ fit"),
        FitOrigin::Source(p) => eprintln!("pulse: Gaussian fit: from {}", p.display()),
        FitOrigin::Computed { samples } => {
            eprintln!("pulse: Gaussian fit: computed from the mapping network ({samples} samples)")
        }
        FitOrigin::FirstUse => eprintln!(
            "pulse: Gaussian fit: computed from the mapping network when a command first needs it"
        ),
        FitOrigin::None => {}
    }
    if let Some(need) = r.fit_needed() {
        eprintln!("pulse: note: {need}");
    }
    if r.unchanged {
        eprintln!(
            "pulse: {} already holds exactly these weights; nothing rewritten",
            r.out.display()
        );
    } else if r.replaced {
        eprintln!(
            "pulse: wrote {}: {}; replaced the previous model's {}",
            r.out.display(),
            r.files.join(", "),
            if r.replaced_files.is_empty() { "(none)".into() } else { r.replaced_files.join(", ") }
        );
    } else {
        eprintln!("pulse: wrote {}: {}", r.out.display(), r.files.join(", "));
    }
    for name in &r.superseded {
        eprintln!(
            "pulse: warning: kept {} (pulse did not write it): the previous network's, so every command refuses it while it is there; remove it{}",
            pulse::files::escaped(&r.out.join(name)),
            if name.starts_with("gaussian_fit.") {
                format!(", or run `pulse fit-gaussian --model {}`", pulse::files::escaped(&r.out))
            } else {
                String::new()
            }
        );
    }
    eprintln!("pulse: licence: {}", r.licence);
}

/// An indicatif bar on stderr, hidden when stderr is no terminal or with `-q`.
struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new(quiet: bool) -> Self {
        let visible = !quiet && std::io::stderr().is_terminal();
        let bar = ProgressBar::with_draw_target(
            None,
            if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
        );
        Self { bar }
    }

    fn bytes(&self, from: u64, total: Option<u64>) {
        let template = match total {
            Some(_) => "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            None => "{prefix} {spinner} {bytes} {bytes_per_sec}",
        };
        self.bar.set_style(
            ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "),
        );
        self.bar.set_prefix("download");
        self.bar.set_length(total.unwrap_or(0));
        self.bar.set_position(from);
        self.bar.reset_eta();
    }

    fn import_event(&self, e: &ImportEvent) {
        match e {
            ImportEvent::Fitting { done, total } => {
                if self.bar.length() != Some(*total as u64) {
                    self.bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix} [{bar:30}] {pos}/{len} samples ETA {eta}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    self.bar.set_prefix("Gaussian fit");
                    self.bar.set_length(*total as u64);
                }
                self.bar.set_position(*done as u64);
            }
            ImportEvent::Reading(p) => self.message(&format!("reading {}", p.display())),
            ImportEvent::Checking => self.message("checking the networks"),
            ImportEvent::Writing(p) => self.message(&format!("writing {}", p.display())),
        }
    }

    fn message(&self, m: &str) {
        self.bar
            .set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        self.bar.set_message(m.to_string());
        self.bar.tick();
    }

    fn println(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

struct DownloadProgress {
    bar: Bar,
    quiet: bool,
}

impl DownloadObserver for DownloadProgress {
    fn trying(&mut self, index: usize, count: usize, c: &Candidate) {
        if !self.quiet {
            self.bar.println(&format!("pulse: [{}/{count}] {} ({})", index + 1, c.url, c.source));
        }
    }
    fn started(&mut self, from: u64, total: Option<u64>) {
        if from > 0 && !self.quiet {
            self.bar.println(&format!("pulse: resuming after {} bytes", thousands(from as i64)));
        }
        self.bar.bytes(from, total);
    }
    fn progress(&mut self, done: u64) {
        self.bar.bar.set_position(done);
    }
    fn resuming(&mut self, done: u64, error: &str) {
        if !self.quiet {
            self.bar.println(&format!("pulse: {error}; resuming at byte {done}"));
        }
    }
    fn failed(&mut self, c: &Candidate, reason: &str) {
        self.bar.bar.finish_and_clear();
        self.bar.println(&format!("pulse: {} failed: {reason}", c.url));
    }
    fn verifying(&mut self, c: &Candidate) {
        self.bar.bar.finish_and_clear();
        if !self.quiet {
            let how = match &c.verify {
                download::Verify::GitBlob(_) => "git blob SHA-1",
                download::Verify::Sha256(_) => "SHA-256 and structure",
                download::Verify::Sha256Prefix(_) => "SHA-256 prefix and structure",
                download::Verify::Ffhq => "structure and FFHQ parameter counts",
                download::Verify::Importable => "structure",
            };
            let size = if c.expected.is_some() { "size, sha256, " } else { "" };
            self.bar.println(&format!("pulse: verifying {} ({size}{how})", c.file));
        }
    }
    fn import_event(&mut self, e: &ImportEvent) {
        self.bar.import_event(e)
    }
}

pub fn download(a: DownloadArgs) -> anyhow::Result<Exit> {
    if a.model == ModelName::Vgg16 {
        return download_vgg16(a);
    }
    let DownloadArgs { model, sources, sha256, install: a } = a;
    let model = model.model();
    let stop = interrupt_flag();
    let mut opts = DownloadOptions::new(a.out.clone());
    opts.model = model;
    opts.sources = sources;
    opts.force = a.force;
    opts.sha256 = sha256;
    opts.fit_samples = a.fit_samples;
    if let Some(m) = &opts.mirror {
        eprintln!("pulse: using the mirror {m} (${})", download::MIRROR_VAR);
    }
    let mut progress = DownloadProgress { bar: Bar::new(a.quiet), quiet: a.quiet };
    let result = download::run(&opts, &mut progress, &stop);
    progress.bar.clear();
    let out = pulse::files::escaped(&a.out);
    let what = |is_model: bool| if is_model { model.title() } else { "a model" };
    let r = match result {
        Ok(r) => r,
        Err(DownloadError::Interrupted { partial }) => {
            match partial {
                Some(p) => eprintln!(
                    "pulse: interrupted; the partial download is kept in {}: run the same command again to resume",
                    pulse::files::escaped(&p)
                ),
                None => eprintln!("pulse: interrupted; no model was written"),
            }
            return Ok(Exit::Interrupted);
        }
        Err(e) => return Err(download_error(e, model, &a.out)),
    };
    if r.already_installed {
        eprintln!(
            "pulse: {out} already holds {} from {} (--force downloads it again)",
            what(r.is_model),
            r.candidate.url
        );
        return Ok(Exit::Success);
    }
    eprintln!("pulse: downloaded {} from {}", r.candidate.file, r.candidate.url);
    for w in &r.warnings {
        eprintln!("pulse: warning: {w}");
    }
    if let Some(report) = &r.import {
        print_report(report, a.quiet);
    }
    if !r.is_model {
        eprintln!(
            "pulse: WARNING: {} is not {} (another network or architecture); it was installed as given, and model.json does not name it {}",
            r.candidate.url,
            model.title(),
            model.name()
        );
    }
    let needs_fit = r.import.as_ref().is_some_and(|i| i.fit_needed().is_some());
    if needs_fit {
        // print_report said what is missing.
    } else if a.out == std::path::Path::new(pulse::model::DEFAULT_DIR) {
        eprintln!("pulse: ready: `pulse upsample FACE.png` uses {out} by default");
    } else {
        eprintln!("pulse: ready: `pulse upsample --model {out} FACE.png`");
    }
    Ok(Exit::Success)
}

/// `pulse download vgg16`: torchvision's VGG16 into `-o DIR` (default models/vgg16).
fn download_vgg16(a: DownloadArgs) -> anyhow::Result<Exit> {
    let DownloadArgs { sources, sha256, install: a, .. } = a;
    let dir = if a.out == std::path::Path::new(pulse::model::DEFAULT_DIR) {
        PathBuf::from(pulse::metrics::lpips::DEFAULT_DIR)
    } else {
        a.out.clone()
    };
    let mut opts = download::Vgg16Options::new(dir.join(download::VGG16_FILE_NAME));
    opts.force = a.force;
    opts.sha256 = sha256;
    match sources.as_slice() {
        [] => {}
        [url] if url.starts_with("http://") || url.starts_with("https://") => {
            opts.url = Some(url.clone())
        }
        _ => {
            return Err(Refusal(anyhow::anyhow!(
                "vgg16 has one built-in source (download.pytorch.org); --source takes one http(s) URL of a copy"
            ))
            .into())
        }
    }
    if opts.url.is_none() {
        if let Some(m) = &opts.mirror {
            eprintln!("pulse: using the mirror {m} (${})", download::MIRROR_VAR);
        }
    }
    let stop = interrupt_flag();
    let mut progress = DownloadProgress { bar: Bar::new(a.quiet), quiet: a.quiet };
    let result = download::run_vgg16(&opts, &mut progress, &stop);
    progress.bar.clear();
    let out = pulse::files::escaped(&opts.out).to_string();
    let r = match result {
        Ok(r) => r,
        Err(DownloadError::Interrupted { partial }) => {
            if let Some(p) = partial {
                eprintln!(
                    "pulse: interrupted; the partial download is kept in {}: run the same command again to resume",
                    pulse::files::escaped(&p)
                );
            }
            return Ok(Exit::Interrupted);
        }
        Err(DownloadError::AllFailed { tried }) => {
            let mut msg = String::from("could not download torchvision's VGG16; tried:\n");
            for (url, reason) in &tried {
                msg.push_str(&format!("  {url}\n    {reason}\n"));
            }
            msg.push_str(&format!(
                "Download {} by hand (a browser, another machine) and put it at {out}, or name it with --vgg FILE or ${}",
                download::VGG16_URL,
                pulse::metrics::lpips::VGG16_VAR
            ));
            return Err(anyhow::anyhow!(msg));
        }
        Err(DownloadError::OtherModel(file)) => {
            return Err(Refusal(anyhow::anyhow!(
                "{} exists and is not torchvision's VGG16; --force replaces it",
                pulse::files::escaped(&file)
            ))
            .into())
        }
        Err(e @ (DownloadError::Usage(_) | DownloadError::Busy(_))) => {
            return Err(Refusal(anyhow::anyhow!(e.to_string())).into())
        }
        Err(e) => return Err(anyhow::anyhow!(e)),
    };
    if r.already_installed {
        eprintln!("pulse: {out} already holds torchvision's VGG16 (--force downloads it again)");
    } else {
        eprintln!("pulse: downloaded {out} from {}", r.url);
    }
    if opts.out
        != std::path::Path::new(pulse::metrics::lpips::DEFAULT_DIR).join(download::VGG16_FILE_NAME)
    {
        eprintln!(
            "pulse: name it with --vgg {out} or ${}={out} (only models/vgg16/ and torchvision's cache are looked in by default)",
            pulse::metrics::lpips::VGG16_VAR
        );
    }
    Ok(Exit::Success)
}

/// A download's error as `main` reports it: refusals of the request exit 2.
fn download_error(
    e: DownloadError,
    model: download::Model,
    out: &std::path::Path,
) -> anyhow::Error {
    let refusal = |m: String| Refusal(anyhow::anyhow!(m)).into();
    match e {
        DownloadError::AllFailed { tried } => {
            let mut msg = format!("could not download {}; tried:\n", model.title());
            for (url, reason) in &tried {
                msg.push_str(&format!("  {url}\n    {reason}\n"));
            }
            let files = match model {
                download::Model::Ffhq => format!(
                    "PULSE's synthesis.pt, NVIDIA's {}, or lernapparat's {}",
                    download::NVIDIA_FILE,
                    download::LERNAPPARAT_FILE
                ),
                download::Model::FfhqStylegan2 => format!(
                    "NVIDIA's {} or stylegan2-ada-pytorch's {}",
                    download::NVIDIA_SG2_FILE,
                    download::NVIDIA_ADA_FILE
                ),
            };
            msg.push_str(&format!(
                "Download one of these files by hand (a browser, another machine), then run:\n  pulse import FILE -o {}\n({files}; see README.md, \"Get the real model\")",
                pulse::files::escaped(out)
            ));
            anyhow::anyhow!(msg)
        }
        DownloadError::OtherModel(dir) => refusal(format!(
            "{} already holds another model; --force replaces it (or choose another folder with -o)",
            pulse::files::escaped(&dir)
        )),
        e @ (DownloadError::Usage(_) | DownloadError::Busy(_)) => refusal(e.to_string()),
        e @ DownloadError::Interrupted { .. } => anyhow::anyhow!(e),
        DownloadError::Other(e) => e,
    }
}
