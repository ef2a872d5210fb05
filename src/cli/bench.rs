//! `pulse bench`: time PULSE steps and print the figures (text or one JSON object).
use super::args::BenchArgs;
use super::exit::Exit;
use pulse::device::parse_device;
use pulse::pipelines::bench::{self, BenchOptions};
use std::io::Write;

pub fn bench(a: BenchArgs) -> anyhow::Result<Exit> {
    let device = parse_device(&a.device)?;
    super::commands::configure_device(device, a.nondeterministic)?;
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
    let batch_size = super::commands::batch_size(a.batch_size, &ffhq, device, a.precision);
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
