//! `eval.json` and `eval.csv`: one row per image, method and sample, the settings, and the
//! summary (mean and 95% interval per method and metric).
use super::{EvalOptions, Item};
use crate::model::Model;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The report's `kind`.
pub const KIND: &str = "eval";

/// The metrics summarised, in the order of the table, the CSV and the plot.
pub const METRICS: [&str; 8] =
    ["converged", "steps", "seconds", "lr_l2", "psnr", "ssim", "lpips", "diversity"];

/// One result: an image, a method, a sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// The truth's stem (`truth/<image>.png`).
    pub image: String,
    pub method: String,
    pub sample: usize,
    /// The seed of the search that made it (the same for every method).
    pub seed: u64,
    /// Whether the low-resolution L2 reached `--eps` (PULSE's criterion).
    pub converged: bool,
    /// Steps run (a converged search stops at eps).
    pub steps: usize,
    /// Search seconds (a batch's time shared equally among its images).
    pub seconds: f64,
    /// Mean squared difference of the result downscaled by PULSE's downscaler and the input,
    /// on [0,1].
    pub lr_l2: f64,
    /// Against the truth at full resolution, RGB, dB.
    pub psnr: f64,
    /// Against the truth at full resolution, BT.601 luma, Gaussian window (metrics::ssim).
    pub ssim: f64,
    /// Against the truth, both at 256x256; without VGG16 weights, absent.
    pub lpips: Option<f64>,
    /// Mean pairwise LPIPS of this image's samples for this method (pixel RMS distance
    /// without VGG16 weights, see `diversity_metric`); absent with one sample.
    pub diversity: Option<f64>,
    /// The result file.
    pub output: String,
}

impl EvalRow {
    /// A metric's value by its name in [`METRICS`].
    pub fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "converged" => Some(if self.converged { 1.0 } else { 0.0 }),
            "steps" => Some(self.steps as f64),
            "seconds" => Some(self.seconds),
            "lr_l2" => Some(self.lr_l2),
            "psnr" => Some(self.psnr),
            "ssim" => Some(self.ssim),
            "lpips" => self.lpips,
            "diversity" => self.diversity,
            _ => None,
        }
        .filter(|v| v.is_finite())
    }
}

/// Mean and 95% interval of one metric for one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    pub method: String,
    pub metric: String,
    /// Values summarised (diversity: one per image, not per sample).
    pub n: usize,
    pub mean: f64,
    /// Half width of the 95% confidence interval of the mean (Student's t, n - 1 degrees of
    /// freedom); absent for n < 2.
    pub ci95: Option<f64>,
    pub min: f64,
    pub max: f64,
}

/// Shard `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalShard {
    pub index: usize,
    pub count: usize,
}

/// `eval.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    pub kind: String,
    pub pulse_version: String,
    pub libtorch: String,
    /// The shard this report covers (`null` for a whole run or a merge).
    pub shard: Option<EvalShard>,
    pub model_dir: String,
    pub model_sha256: String,
    pub resolution: i64,
    pub device: String,
    /// Everything that decides the numbers: scale, methods and their search settings, seed,
    /// samples, truths, LPIPS.
    pub settings: serde_json::Value,
    /// `lpips` or `rms` (pixel distance, when no VGG16 weights were found).
    pub diversity_metric: String,
    pub rows: Vec<EvalRow>,
    pub summary: Vec<MetricSummary>,
    pub interrupted: bool,
}

impl EvalReport {
    pub(super) fn new(model: &Model, opts: &EvalOptions, layout: &crate::stylegan::Layout) -> Self {
        let methods: Vec<serde_json::Value> = opts
            .methods
            .iter()
            .map(|s| {
                let u = crate::pipelines::upsample::UpsampleSettings::new(
                    s,
                    layout,
                    &opts.run,
                    model.device,
                );
                let mut v = serde_json::to_value(u).unwrap_or_default();
                v["method"] = s.method.name().into();
                if s.method == crate::pulse::Method::Ilo {
                    v["ilo_steps"] = serde_json::to_value(&s.ilo.steps).unwrap_or_default();
                }
                v
            })
            .collect();
        let truths = match &opts.truths {
            super::Truths::Generated { count, psi } => {
                serde_json::json!({ "generated": count, "truncation": psi })
            }
            super::Truths::Files(paths) => serde_json::json!({
                "files": paths.iter().map(|p| crate::files::escaped(p)).collect::<Vec<_>>()
            }),
        };
        let settings = serde_json::json!({
            "scale": opts.scale,
            "seed": opts.run.seed,
            "samples": opts.run.samples,
            "truths": truths,
            "methods": methods,
            "lpips": opts.vgg16.as_ref().map(|p| crate::files::escaped(p)),
            "lpips_side": crate::metrics::lpips::EVAL_SIDE,
            "ssim": "BT.601 luma, Gaussian window sigma 1.5 (11x11), K1 0.01, K2 0.03, data range 1: scikit-image structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)",
            "psnr": "RGB, data range 1: scikit-image peak_signal_noise_ratio(data_range=1)",
        });
        Self {
            kind: KIND.into(),
            pulse_version: env!("CARGO_PKG_VERSION").into(),
            libtorch: option_env!("PULSE_LIBTORCH_VERSION").unwrap_or("unknown").into(),
            shard: opts.shard.as_ref().map(|s| EvalShard { index: s.index, count: s.count }),
            model_dir: crate::files::escaped(&model.dir),
            model_sha256: model.sha256.clone(),
            resolution: layout.resolution,
            device: crate::device::device_name(model.device),
            settings,
            diversity_metric: if opts.vgg16.is_some() { "lpips" } else { "rms" }.into(),
            rows: vec![],
            summary: vec![],
            interrupted: false,
        }
    }

    /// Computes the summary from the rows.
    pub fn finish(&mut self) {
        self.summary = summarize(&self.rows, &self.methods());
    }

    /// The methods, in the order of the settings.
    pub fn methods(&self) -> Vec<String> {
        let mut m: Vec<String> = self.settings["methods"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v["method"].as_str().map(String::from)).collect())
            .unwrap_or_default();
        for r in &self.rows {
            if !m.contains(&r.method) {
                m.push(r.method.clone());
            }
        }
        m
    }

    /// The images, in row order, with their files in `out`.
    pub(super) fn items(&self, out: &Path) -> Vec<Item> {
        let mut stems: Vec<&String> = vec![];
        for r in &self.rows {
            if !stems.contains(&&r.image) {
                stems.push(&r.image);
            }
        }
        stems
            .into_iter()
            .map(|s| Item {
                stem: s.clone(),
                truth: out.join("truth").join(format!("{s}.png")),
                input: out.join("input").join(format!("{s}.png")),
            })
            .collect()
    }

    /// `eval.csv`: a header and one line per row; empty cells where a value was not computed.
    pub fn csv(&self) -> String {
        let mut s = String::from(
            "image,method,sample,seed,converged,steps,seconds,lr_l2,psnr,ssim,lpips,diversity,output\n",
        );
        let opt = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
        for r in &self.rows {
            s.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                csv_field(&r.image),
                csv_field(&r.method),
                r.sample,
                r.seed,
                r.converged,
                r.steps,
                r.seconds,
                r.lr_l2,
                r.psnr,
                r.ssim,
                opt(r.lpips),
                opt(r.diversity),
                csv_field(&r.output),
            ));
        }
        s
    }

    /// The summary as a text table: one line per method and metric.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<8} {:<10} {:>4} {:>12} {:>12} {:>12} {:>12}\n",
            "method", "metric", "n", "mean", "±95%", "min", "max"
        );
        for m in &self.summary {
            let ci = m.ci95.map(sig).unwrap_or_else(|| "-".into());
            s.push_str(&format!(
                "{:<8} {:<10} {:>4} {:>12} {:>12} {:>12} {:>12}\n",
                m.method,
                m.metric,
                m.n,
                sig(m.mean),
                ci,
                sig(m.min),
                sig(m.max)
            ));
        }
        s
    }
}

/// Four significant digits, in a form a table can align.
fn sig(v: f64) -> String {
    if v == 0.0 || (1e-3..1e5).contains(&v.abs()) {
        let digits = (3 - v.abs().max(1e-300).log10().floor() as i64).clamp(0, 6) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.3e}")
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Mean and 95% interval per method and metric. Diversity is one value per image (every
/// sample row carries it), so it is counted once per image.
pub fn summarize(rows: &[EvalRow], methods: &[String]) -> Vec<MetricSummary> {
    let mut out = vec![];
    for method in methods {
        let mine: Vec<&EvalRow> = rows.iter().filter(|r| &r.method == method).collect();
        for metric in METRICS {
            let values: Vec<f64> = if metric == "diversity" {
                let mut seen = std::collections::HashSet::new();
                mine.iter()
                    .filter(|r| seen.insert(r.image.clone()))
                    .filter_map(|r| r.metric(metric))
                    .collect()
            } else {
                mine.iter().filter_map(|r| r.metric(metric)).collect()
            };
            if values.is_empty() {
                continue;
            }
            let (mean, ci95) = mean_ci(&values);
            out.push(MetricSummary {
                method: method.clone(),
                metric: metric.into(),
                n: values.len(),
                mean,
                ci95,
                min: values.iter().cloned().fold(f64::INFINITY, f64::min),
                max: values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            });
        }
    }
    out
}

/// The mean and the half width of its 95% interval, `t(0.975, n-1) * s / sqrt(n)` with the
/// sample standard deviation s (`None` for one value).
pub fn mean_ci(values: &[f64]) -> (f64, Option<f64>) {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, None);
    }
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    (mean, Some(t975(n - 1) * (var / n as f64).sqrt()))
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (tables to 30, then the
/// normal's 1.96 with a 1/df correction, within 0.2% of the exact value).
fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        _ => 1.96 + 2.4 / df as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_use_students_t() {
        let (m, ci) = mean_ci(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        // s = 1.2910, t(3) = 3.182: 3.182 * 1.2910 / 2
        assert!((ci.unwrap() - 3.182 * (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(mean_ci(&[7.0]), (7.0, None));
        assert!((t975(1000) - 1.9624).abs() < 2e-3);
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("x\"y"), "\"x\"\"y\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
