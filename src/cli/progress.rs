//! Progress bars (indicatif) on stderr: an overall bar over images and one for the current
//! batch's steps. Hidden when stderr is not a terminal or with `-q`; messages are printed through
//! `suspend` so they never tear the bars.
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pulse::files::escaped;
use pulse::pipelines::upsample::{ImageRecord, UpsampleObserver};
use std::io::IsTerminal;
use std::path::Path;

pub struct UpsampleProgress {
    multi: MultiProgress,
    overall: ProgressBar,
    batch: ProgressBar,
    eps: f64,
    visible: bool,
    quiet: bool,
}

impl UpsampleProgress {
    pub fn new(quiet: bool, eps: f64) -> Self {
        let visible = !quiet && std::io::stderr().is_terminal();
        let target =
            if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} images, ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        overall.set_prefix("images");
        let batch = multi.add(ProgressBar::new(0));
        batch.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] step {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        batch.set_prefix("batch");
        Self { multi, overall, batch, eps, visible, quiet }
    }

    /// Prints a line above the bars (or plainly when they are hidden).
    pub fn println(&self, line: &str) {
        self.multi.suspend(|| eprintln!("{line}"));
    }

    pub fn finish(&self) {
        self.batch.finish_and_clear();
        self.overall.finish_and_clear();
    }

    pub fn quiet(&self) -> bool {
        self.quiet
    }
}

impl UpsampleObserver for UpsampleProgress {
    fn started(&mut self, _images: usize, jobs: usize) {
        self.overall.set_length(jobs as u64);
    }

    fn refused(&mut self, _input: &Path, error: &anyhow::Error) {
        // Refusals are errors: always shown, even with -q.
        self.println(&format!("pulse: refused: {error:#}"));
    }

    fn skipped(&mut self, input: &Path, output: &Path) {
        if !self.quiet {
            self.println(&format!(
                "pulse: skipping {} ({} exists; --overwrite redoes it)",
                escaped(input),
                escaped(output)
            ));
        }
    }

    fn batch_started(&mut self, names: &[String], steps: usize) {
        self.batch.set_length(steps as u64);
        self.batch.set_position(0);
        self.batch.set_message(names.join(", "));
    }

    fn step(&mut self, step: usize, _steps: usize, l2: &dyn Fn() -> Vec<f64>) {
        self.batch.set_position(step as u64 + 1);
        if self.visible {
            let values: Vec<String> = l2().iter().map(|v| format!("{v:.4}")).collect();
            self.batch.set_message(format!("L2 {} (eps {})", values.join(" "), self.eps));
        }
    }

    fn finished(&mut self, record: &ImageRecord) {
        self.overall.inc(1);
        if !self.visible && !self.quiet {
            let l2 = match record.best.get("L2").and_then(|v| v.as_f64()) {
                Some(l2) => format!("{l2:.3e}"),
                None => "-".to_string(),
            };
            let status = if record.converged { "converged" } else { "not converged" };
            self.println(&format!(
                "pulse: {} -> {} ({status}, best L2 {l2})",
                escaped(&record.input),
                record.outputs.first().map(|o| escaped(o)).unwrap_or_default()
            ));
        }
    }
}

/// A plain bar for long single jobs (Gaussian fit, embedding).
pub fn bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    bar
}
