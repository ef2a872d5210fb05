//! `pulse import`: weight files into a model folder; its report and progress display, which
//! `download` shares.
use super::exit::Exit;
use super::setup::interrupt_flag;
use super::shared_args::InstallArgs;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pulse::pipelines::import::{
    self, FitOrigin, ImportError, ImportEvent, ImportOptions, ImportReport,
};
use std::io::IsTerminal;
use std::path::PathBuf;

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
        Err(e) => Err(e.into()),
    }
}

pub(super) fn thousands(n: i64) -> String {
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

pub(super) fn print_report(r: &ImportReport, quiet: bool) {
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
pub(super) struct Bar {
    pub(super) bar: ProgressBar,
}

impl Bar {
    pub(super) fn new(quiet: bool) -> Self {
        let visible = !quiet && std::io::stderr().is_terminal();
        let bar = ProgressBar::with_draw_target(
            None,
            if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
        );
        Self { bar }
    }

    pub(super) fn bytes(&self, from: u64, total: Option<u64>) {
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

    pub(super) fn import_event(&self, e: &ImportEvent) {
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

    pub(super) fn message(&self, m: &str) {
        self.bar
            .set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
        self.bar.set_message(m.to_string());
        self.bar.tick();
    }

    pub(super) fn println(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    pub(super) fn clear(&self) {
        self.bar.finish_and_clear();
    }
}
