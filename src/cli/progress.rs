//! Progress bars (indicatif) on stderr: an overall bar (over images, or faces) and one for the
//! current batch's steps. Hidden when stderr is not a terminal or with `-q`; messages are printed through
//! `suspend` so they never tear the bars.
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pulse::files::escaped;
use pulse::pipelines::engine::SearchObserver;
use pulse::pipelines::restore::{self, PhotoRecord, Status};
use pulse::pipelines::upsample::{ImageRecord, UpsampleObserver};
use std::io::IsTerminal;
use std::path::Path;

/// The bars every search command draws: an overall bar and the current batch's steps, with
/// notes printed above them; the observer of both `upsample` and `restore`, which differ in what
/// the overall bar counts.
pub struct SearchBars {
    multi: MultiProgress,
    overall: ProgressBar,
    batch: ProgressBar,
    eps: f64,
    visible: bool,
    quiet: bool,
}

impl SearchBars {
    /// The overall bar drawn with `template` (indicatif's) and prefixed `prefix`.
    pub fn new(quiet: bool, eps: f64, prefix: &str, template: &str) -> Self {
        let visible = !quiet && std::io::stderr().is_terminal();
        let target =
            if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let bar = |prefix: &str, template: &str| {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_prefix(prefix.to_string());
            b
        };
        let overall = bar(prefix, template);
        let batch = bar("batch", "{prefix:>8} [{bar:30}] step {pos}/{len} {msg}");
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

    /// `restore`'s bars: the overall one counts photos read, then face searches.
    pub fn restore(quiet: bool, eps: f64) -> Self {
        let template = "{prefix:>8} [{bar:30}] {pos}/{len} {msg} ETA {eta}";
        Self::new(quiet, eps, "photos", template)
    }

    /// `upsample`'s bars: the overall one counts searches.
    pub fn upsample(quiet: bool, eps: f64) -> Self {
        let template = "{prefix:>8} [{bar:30}] {pos}/{len} images, ETA {eta}";
        Self::new(quiet, eps, "images", template)
    }
}

impl SearchObserver for SearchBars {
    /// Refusals are errors: always shown, even with -q.
    fn refused(&mut self, _input: &Path, error: &anyhow::Error) {
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

    /// The batch bar moves on and shows each item's L2 against eps.
    fn step(&mut self, step: usize, _steps: usize, l2: &dyn Fn() -> Vec<f64>) {
        self.batch.set_position(step as u64 + 1);
        if self.visible {
            let values: Vec<String> = l2().iter().map(|v| format!("{v:.4}")).collect();
            self.batch.set_message(format!("L2 {} (eps {})", values.join(" "), self.eps));
        }
    }
}

impl UpsampleObserver for SearchBars {
    fn started(&mut self, _images: usize, jobs: usize) {
        self.overall.set_length(jobs as u64);
    }

    fn finished(&mut self, record: &ImageRecord) {
        self.overall.inc(1);
        if !self.visible && !self.quiet {
            // ILO's loss has MSE on [-1, 1], 4x the L2 on [0, 1] that eps is compared with.
            let best = |term: &str| record.best.get(term).and_then(|v| v.as_f64());
            let l2 = match best("L2").or_else(|| best("MSE").map(|mse| mse / 4.0)) {
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

impl restore::Observer for SearchBars {
    fn started(&mut self, photos: usize) {
        self.overall.set_length(photos as u64);
        self.overall.set_message("photos read");
    }

    fn searching(&mut self, faces: usize) {
        let overall = &self.overall;
        overall.set_prefix("faces");
        overall.set_position(0);
        overall.set_length(faces as u64);
        overall.set_message("faces");
    }

    fn face_done(&mut self) {
        self.overall.inc(1);
    }

    fn finished(&mut self, record: &PhotoRecord) {
        if self.overall.prefix() == "photos" {
            self.overall.inc(1);
        }
        if self.quiet {
            return;
        }
        let outputs: Vec<String> = record.outputs.iter().map(|p| escaped(p)).collect();
        match record.status {
            Status::NoFace => self.println(&format!(
                "pulse: {}: no face found; wrote the enlarged photo {}",
                escaped(&record.input),
                outputs.join(", ")
            )),
            Status::Restored if !self.visible => {
                let converged = record.faces.iter().filter(|f| f.converged).count();
                self.println(&format!(
                    "pulse: {} -> {} ({} face(s), {converged} converged)",
                    escaped(&record.input),
                    outputs.join(", "),
                    record.faces.len()
                ))
            }
            _ => {}
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
