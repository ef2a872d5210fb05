//! `eval.png` (each metric's values per method, with mean and 95% interval, drawn with the
//! `plotters` crate) and `sheet.png` (rows: inputs; columns: the low-resolution input, each
//! method's first result, the truth).
use super::report::{EvalReport, METRICS};
use super::Item;
use crate::imageio::Sheet;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use tch::{Device, Kind, Tensor};

/// DejaVu Sans cut down to ASCII (assets/fonts/LICENSE-DejaVu.txt): plotters draws text with it
/// through ab_glyph, so no system font or font library is needed.
const FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-ascii.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() -> anyhow::Result<()> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    anyhow::ensure!(ok, "the built-in plot font cannot be read");
    Ok(())
}

/// How each metric is titled, and which way is better.
fn title(metric: &str) -> &'static str {
    match metric {
        "converged" => "success rate (L2 reached eps) - higher is better",
        "steps" => "steps run",
        "seconds" => "seconds per face",
        "lr_l2" => "low-res L2 vs input - lower is better",
        "psnr" => "PSNR vs truth, dB - higher is better",
        "ssim" => "SSIM vs truth (luma) - higher is better",
        "lpips" => "LPIPS vs truth - lower is better",
        "diversity" => "diversity between samples",
        _ => "",
    }
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("cannot draw the plot: {e:?}")
}

/// Draws `eval.png`: one panel per metric with values, each method a column of points (every
/// image and sample), its mean as a bar and its 95% interval as a black line. [3,H,W] in [0,1].
pub fn plot(report: &EvalReport) -> anyhow::Result<Tensor> {
    register_font()?;
    let methods = report.methods();
    let metrics: Vec<&str> = METRICS
        .iter()
        .copied()
        .filter(|m| *m != "steps" && report.summary.iter().any(|s| s.metric == *m))
        .collect();
    let cols = metrics.len().clamp(1, 3);
    let rows = metrics.len().div_ceil(cols).max(1);
    let (pw, ph, head) = (440u32, 320u32, 44u32);
    let (w, h) = (pw * cols as u32, ph * rows as u32 + head);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (top, body) = root.split_vertically(head);
        let n_images = report.items(std::path::Path::new("")).len();
        top.draw(&Text::new(
            format!(
                "pulse eval: {} faces x{} ({}x{} -> {}x{}), {} ; points: every image and sample, bar: mean, line: 95% interval",
                n_images,
                report.resolution / report.settings["scale"].as_i64().unwrap_or(1).max(1),
                report.settings["scale"],
                report.settings["scale"],
                report.resolution,
                report.resolution,
                methods.join(" vs "),
            ),
            (12, 14),
            (FAMILY, 16).into_font().color(&BLACK),
        ))
        .map_err(plot_error)?;
        let panels = body.split_evenly((rows, cols));
        for (panel, metric) in panels.iter().zip(&metrics) {
            // Diversity is one value per image (each sample's row repeats it).
            let per_method: Vec<Vec<f64>> = methods
                .iter()
                .map(|m| {
                    let mut seen = std::collections::HashSet::new();
                    report
                        .rows
                        .iter()
                        .filter(|r| &r.method == m)
                        .filter(|r| *metric != "diversity" || seen.insert(r.image.clone()))
                        .filter_map(|r| r.metric(metric))
                        .collect()
                })
                .collect();
            let all: Vec<f64> = per_method.iter().flatten().copied().collect();
            let summaries: Vec<_> = methods
                .iter()
                .map(|m| report.summary.iter().find(|s| &s.method == m && s.metric == *metric))
                .collect();
            let mut lo = all.iter().cloned().fold(f64::INFINITY, f64::min);
            let mut hi = all.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            for s in summaries.iter().flatten() {
                if let Some(ci) = s.ci95 {
                    lo = lo.min(s.mean - ci);
                    hi = hi.max(s.mean + ci);
                }
            }
            if !lo.is_finite() || !hi.is_finite() {
                continue;
            }
            let pad = if hi > lo { (hi - lo) * 0.1 } else { lo.abs().max(1e-3) * 0.1 };
            let (lo, hi) =
                if *metric == "converged" { (-0.05, 1.05) } else { (lo - pad, hi + pad) };
            let m = methods.len() as f64;
            let mut chart = ChartBuilder::on(panel)
                .caption(title(metric), (FAMILY, 15))
                .margin(8)
                .x_label_area_size(26)
                .y_label_area_size(64)
                .build_cartesian_2d(-0.5f64..(m - 0.5), lo..hi)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .y_labels(6)
                .y_label_formatter(&|v| short(*v))
                .label_style((FAMILY, 12))
                .draw()
                .map_err(plot_error)?;
            for (mi, values) in per_method.iter().enumerate() {
                let color = Palette99::pick(mi).to_rgba();
                let x = mi as f64;
                let n = values.len().max(1) as f64;
                chart
                    .draw_series(values.iter().enumerate().map(|(k, v)| {
                        // Spread the points across the column, in order, so equal values show.
                        let dx = if n > 1.0 { (k as f64 / (n - 1.0) - 0.5) * 0.5 } else { 0.0 };
                        Circle::new((x + dx, *v), 3, color.mix(0.55).filled())
                    }))
                    .map_err(plot_error)?;
                if let Some(s) = summaries[mi] {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(x - 0.32, s.mean), (x + 0.32, s.mean)],
                            color.stroke_width(3),
                        )))
                        .map_err(plot_error)?;
                    if let Some(ci) = s.ci95 {
                        chart
                            .draw_series(std::iter::once(PathElement::new(
                                vec![(x, s.mean - ci), (x, s.mean + ci)],
                                BLACK.stroke_width(2),
                            )))
                            .map_err(plot_error)?;
                    }
                }
                // The method's name under its column.
                let (px, py) = chart.backend_coord(&(x, lo));
                root.draw(&Text::new(
                    methods[mi].clone(),
                    (px, py + 6),
                    (FAMILY, 14).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(plot_error)?;
            }
        }
        root.present().map_err(plot_error)?;
    }
    Ok(Tensor::from_slice(&buf)
        .view([h as i64, w as i64, 3])
        .permute([2, 0, 1])
        .to_kind(Kind::Float)
        / 255.0)
}

/// A tick label of at most about six characters.
fn short(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// Draws `sheet.png`: one row per input (the first [`super::SHEET_ROWS`]), columns: the
/// low-resolution input, each method's sample 0 (labelled with its PSNR and LPIPS), the truth.
pub fn sheet(report: &EvalReport, items: &[Item]) -> anyhow::Result<Tensor> {
    let methods = report.methods();
    let mut sheet = Sheet::new(192, methods.len() + 2);
    for item in items.iter().take(super::SHEET_ROWS) {
        let Some(_) = report.rows.iter().find(|r| r.image == item.stem) else { continue };
        let input = crate::imageio::read_rgb(&item.input)?;
        let side = input.size()[2];
        sheet.push(&input, &format!("{} {side}x{side}", item.stem));
        for m in &methods {
            match report
                .rows
                .iter()
                .find(|r| r.image == item.stem && &r.method == m && r.sample == 0)
            {
                Some(r) => {
                    let img = crate::imageio::read_rgb(std::path::Path::new(&r.output))?;
                    let lpips = r.lpips.map(|l| format!(" LPIPS {l:.3}")).unwrap_or_default();
                    sheet.push(&img, &format!("{m} PSNR {:.1}{lpips}", r.psnr));
                }
                None => sheet.push(
                    &Tensor::zeros([3, 8, 8], (Kind::Float, Device::Cpu)),
                    &format!("{m}: no result"),
                ),
            }
        }
        sheet.push(&crate::imageio::read_rgb(&item.truth)?, "truth");
    }
    Ok(sheet.render())
}
