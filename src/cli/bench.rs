//! `pulse bench`: time PULSE steps and print the figures (text or one JSON object).
use super::exit::Exit;
use super::setup::{batch_size, configure_device};
use super::shared_args::{at_least_one, device, one_of, BatchSize};
use clap::Args;
use pulse::device::parse_device;
use pulse::pipelines::bench::{self, BenchOptions};
use pulse::precision::Precision;
use pulse::pulse::Method;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A model folder to time instead of the FFHQ-size network with random weights.
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// The family of the random FFHQ-size network: stylegan1 or stylegan2 (without --model).
    #[arg(long, default_value = "stylegan1", value_parser = architecture, conflicts_with = "model")]
    pub architecture: pulse::stylegan::Architecture,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = device)]
    pub device: String,
    /// Searches run together, or "auto" (from free GPU memory; 1 on the CPU).
    #[arg(long, default_value = "1", value_parser = clap::value_parser!(BatchSize))]
    pub batch_size: BatchSize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value = "3", value_parser = at_least_one)]
    pub steps: usize,
    /// Untimed steps before them.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// fp32, tf32 (CUDA), bf16 or fp16 (autocast; loss and optimizer stay float32).
    #[arg(long, default_value = "fp32", value_parser = one_of::<Precision>(&Precision::NAMES))]
    pub precision: Precision,
    /// CPU threads (0 = libtorch's default).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
    pub threads: i32,
    /// CUDA: allow nondeterministic kernels and cuDNN autotuning (measures the speed that
    /// reproducibility costs). No effect on the CPU.
    #[arg(long)]
    pub nondeterministic: bool,
    /// CUDA: capture one step in a CUDA graph and replay it. No effect on the CPU.
    #[arg(long)]
    pub cuda_graph: bool,
    /// Speed rewrites of the synthesis to switch off, to measure each: epilogue, leaky, convt,
    /// blurbias (comma-separated) or all.
    #[arg(long, value_name = "LIST", default_value = "", hide_default_value = true, value_parser = |s: &str| pulse::stylegan::Tuning::without(s))]
    pub untuned: pulse::stylegan::Tuning,
    /// The search step timed: pulse, or ilo (its rounds of equal length, each from its own
    /// synthesis block).
    #[arg(long, default_value = "pulse", value_parser = one_of::<Method>(Method::NAMES))]
    pub method: Method,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A generator family by name.
fn architecture(s: &str) -> Result<pulse::stylegan::Architecture, String> {
    pulse::stylegan::Architecture::from_name(s)
        .ok_or_else(|| format!("unknown architecture '{s}' (expected stylegan1 or stylegan2)"))
}

pub fn bench(a: BenchArgs) -> anyhow::Result<Exit> {
    let device = parse_device(&a.device)?;
    configure_device(device, a.nondeterministic)?;
    if let Some(dir) = &a.model {
        if pulse::model::find_file(dir, "synthesis").is_none() {
            return Err(pulse::Invalid(format!(
                "{}: not a model folder (no synthesis.pt or synthesis.safetensors)",
                pulse::files::escaped(dir)
            ))
            .into());
        }
    }
    if a.threads > 0 {
        tch::set_num_threads(a.threads);
    }
    // `auto` sizes from the FFHQ estimate even with --model: conservative for smaller networks.
    let ffhq = a.architecture.ffhq_layout();
    let batch_size = batch_size(a.batch_size, &ffhq, device, a.precision);
    let opts = BenchOptions {
        device,
        batch_size,
        steps: a.steps,
        warmup: a.warmup,
        precision: a.precision,
        model: a.model,
        architecture: a.architecture,
        tuning: a.untuned,
        determinism: pulse::device::Determinism::from_nondeterministic_flag(a.nondeterministic),
        cuda_graph: a.cuda_graph,
        method: a.method,
        ..BenchOptions::default()
    };
    let quiet = a.json;
    let r = bench::run(&opts, &mut |step, total| {
        if !quiet {
            eprint!("\rstep {step}/{total}");
            let _ = std::io::stderr().flush();
        }
    })?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(Exit::Success);
    }
    eprintln!();
    println!("network:      {} ({}, {}x{})", r.network, r.architecture, r.resolution, r.resolution);
    println!("method:       {}", r.method);
    println!("device:       {} ({} threads)", r.device, r.threads);
    println!("precision:    {}", r.precision);
    println!(
        "kernels:      {}{}",
        if r.deterministic { "deterministic" } else { "nondeterministic (fastest)" },
        if r.cuda_graph { ", steps replayed from a CUDA graph" } else { "" }
    );
    println!("batch size:   {}", r.batch_size);
    let steps: Vec<String> = r.step_ms.iter().map(|m| format!("{m:.0}")).collect();
    println!(
        "ms per step:  {:.1} (median of {}: {} ms)",
        r.ms_per_step,
        r.step_ms.len(),
        steps.join(", ")
    );
    println!(
        "faces:        {:.1} per hour, {:.2} per minute ({} steps each)",
        r.faces_per_hour, r.faces_per_minute, r.steps_per_face
    );
    println!(
        "peak RSS:     {:.0} MiB ({:.0} MiB per image added by the search)",
        r.peak_rss_mb, r.rss_mb_per_image
    );
    if let (Some(g), Some(per)) = (r.gpu_mb, r.gpu_mb_per_image) {
        println!("GPU memory:   {g:.0} MiB held ({per:.0} MiB per image)");
    }
    if let (Some(d), Some(rel)) = (r.parity_max_abs, r.parity_rel) {
        println!(
            "parity:       max |image - fp32 image| = {d:.2e} ({rel:.2e} of the image's range)"
        );
    }
    if !r.untuned.is_empty() {
        println!("untuned:      {} (reference forms, for measuring)", r.untuned.join(", "));
    }
    for n in &r.notes {
        println!("note:         {n}");
    }
    Ok(Exit::Success)
}
