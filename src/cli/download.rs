//! `pulse download`: a real model (downloaded, verified, imported) or torchvision's VGG16.
use super::exit::Exit;
use super::import::{print_report, thousands, Bar};
use super::setup::interrupt_flag;
use super::shared_args::InstallArgs;
use clap::{Args, ValueEnum};
use pulse::pipelines::download::{
    self, Candidate, DownloadError, DownloadObserver, DownloadOptions,
};
use pulse::pipelines::import::ImportEvent;
use std::path::PathBuf;

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
        _ => pulse::invalid!(
            "vgg16 has one built-in source (download.pytorch.org); --source takes one http(s) URL of a copy"
        ),
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
        Err(e) => return Err(e.into()),
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

/// A download's error as `main` reports it: when every source failed, what to do by hand.
fn download_error(
    e: DownloadError,
    model: download::Model,
    out: &std::path::Path,
) -> anyhow::Error {
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
        e => e.into(),
    }
}
