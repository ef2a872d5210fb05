//! `pulse direction`, `edit`, `embed` and `target`: the hair-colour workflow and photo embedding
//! (docs/editing.md). Thin: parse, call `pulse::editing`, write files, report.
use super::args::{DirectionArgs, EditArgs, EmbedArgs, TargetArgs};
use super::commands::{check_outputs, interrupt_flag, load_model, warn_if_other_model};
use super::exit::Exit;
use super::progress;
use pulse::editing::edit::scale_label;
use pulse::editing::embed::EmbedStep;
use pulse::editing::target::{
    self, unit_rgb, Region, TargetColours, DEFAULT_BACKGROUND, DEFAULT_SKIN,
};
use pulse::editing::{self, Direction, EmbedNoise, EmbedOptions, LayerMask, RegionMap};
use pulse::files::escaped;
use pulse::imageio::{self, Sheet};
use pulse::latent::short_sha;
use pulse::latent::LatentFile;
use pulse::pulse::Outcome;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// `FROM TO` pairs from the arguments and the `--pairs` file.
fn direction_pairs(a: &DirectionArgs) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    if !a.latents.len().is_multiple_of(2) {
        pulse::invalid!("give latents in pairs (FROM TO ...); got {} files", a.latents.len());
    }
    let mut pairs: Vec<(PathBuf, PathBuf)> =
        a.latents.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    if let Some(file) = &a.pairs {
        let text = std::fs::read_to_string(file)
            .map_err(|e| pulse::Invalid(format!("{}: cannot read: {e}", escaped(file))))?;
        let base = file.parent().unwrap_or(Path::new(""));
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = if line.contains('\t') {
                line.split('\t').map(str::trim).filter(|f| !f.is_empty()).collect()
            } else {
                line.split_whitespace().collect()
            };
            if fields.len() != 2 {
                pulse::invalid!(
                    "{}:{}: expected two latent files FROM TO, got {} fields",
                    escaped(file),
                    n + 1,
                    fields.len()
                );
            }
            pairs.push((base.join(fields[0]), base.join(fields[1])));
        }
    }
    if pairs.is_empty() {
        pulse::invalid!("no pairs: give FROM TO latents or --pairs FILE");
    }
    Ok(pairs)
}

pub fn direction(a: DirectionArgs) -> anyhow::Result<Exit> {
    let pairs = direction_pairs(&a)?;
    let mut inputs: Vec<&Path> =
        pairs.iter().flat_map(|(f, t)| [f.as_path(), t.as_path()]).collect();
    inputs.extend(a.pairs.as_deref());
    check_outputs(&inputs, &[&a.out])?;
    let direction = Direction::between(&pairs)?;
    direction.write(&a.out)?;
    let norm = direction.vector.norm().double_value(&[]);
    eprintln!(
        "pulse: wrote {} (mean of {} pair{}, {} layers, norm {norm:.3}, model {})",
        escaped(&a.out),
        direction.pairs(),
        if direction.pairs() == 1 { "" } else { "s" },
        direction.layers(),
        short_sha(direction.model_sha256())
    );
    Ok(Exit::Success)
}

/// `OUT_scale<S>.<ext>` beside `OUT`.
fn scale_path(out: &Path, scale: f64, ext: &str) -> PathBuf {
    let mut name = out.file_stem().map(|s| s.to_os_string()).unwrap_or_else(|| "edit".into());
    name.push(format!("_scale{scale}.{ext}"));
    out.with_file_name(name)
}

pub fn edit(a: EditArgs) -> anyhow::Result<Exit> {
    let ext = a.out.extension().unwrap_or_default().to_string_lossy().into_owned();
    let scales = &a.scale.0;
    let mut outputs = vec![a.out.clone()];
    for &s in scales {
        outputs.extend(a.separate.then(|| scale_path(&a.out, s, &ext)));
        outputs.extend(a.save_latent.then(|| scale_path(&a.out, s, "latent.safetensors")));
    }
    check_outputs(
        &[&a.latent, &a.direction, &a.model.model],
        &outputs.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
    )?;
    imageio::OutputFormat::from_path(&a.out)?;
    let latent = LatentFile::read(&a.latent)?;
    latent.require_w_plus(&a.latent)?;
    let direction = Direction::read(&a.direction)?;
    let model = load_model(&a.model)?;
    let layers = model.layout().w_rows;
    let mask = LayerMask::parse(&a.layers, layers)
        .map_err(|e| pulse::Invalid(format!("--layers: {e}")))?;
    warn_if_other_model(&a.latent, &latent, &model)?;
    let edits = editing::edit::edit(
        &model,
        &latent,
        &a.latent,
        &direction,
        &a.direction,
        scales,
        &mask,
    )?;
    let resolution = model.layout().resolution;
    let tile = a.tile.unwrap_or(resolution.min(512));
    let mut sheet = Sheet::new(tile, edits.len());
    for e in &edits {
        sheet.push(&e.image, &format!("scale {}", scale_label(e.scale)));
    }
    imageio::write_image(&sheet.render(), &a.out)?;
    eprintln!("pulse: wrote {} ({} scales, layers {mask})", escaped(&a.out), edits.len());
    for e in &edits {
        if a.separate {
            let path = scale_path(&a.out, e.scale, &ext);
            imageio::write_image(&e.image, &path)?;
            eprintln!("pulse: wrote {}", escaped(&path));
        }
        if a.save_latent {
            let path = scale_path(&a.out, e.scale, "latent.safetensors");
            e.latent.write(&path)?;
            eprintln!("pulse: wrote {}", escaped(&path));
        }
    }
    Ok(Exit::Success)
}

pub fn embed(a: EmbedArgs) -> anyhow::Result<Exit> {
    let noise = match a.noise.as_str() {
        "zero" => EmbedNoise::Zero,
        _ => EmbedNoise::Random { seed: a.seed },
    };
    let mut inputs: Vec<&Path> = vec![&a.photo, &a.model.model];
    inputs.extend(a.perceptual.as_deref());
    let mut outputs: Vec<&Path> = vec![&a.out];
    outputs.extend(a.image.as_deref());
    check_outputs(&inputs, &outputs)?;
    if let Some(image) = &a.image {
        imageio::OutputFormat::from_path(image)?;
    }
    let model = load_model(&a.model)?;
    let resolution = model.layout().resolution;
    let stop = interrupt_flag();
    let (photo, resized) = imageio::read_photo(&a.photo, resolution)?;
    if resized {
        eprintln!(
            "pulse: {} is not {resolution}x{resolution}: centre-cropped to a square and resized (align faces like FFHQ for good results)",
            escaped(&a.photo)
        );
    }
    let opts = EmbedOptions {
        steps: a.steps,
        lr: a.lr,
        perceptual: a.perceptual.clone(),
        perceptual_weight: a.perceptual_weight,
        noise,
        ..EmbedOptions::default()
    };
    let bar = progress::bar(a.steps as u64, "embed", a.quiet);
    let outcome = editing::embed(&model, &photo, &opts, &mut |v: &EmbedStep| {
        bar.set_position(v.step as u64 + 1);
        bar.set_message(format!("MSE {:.5} ({:.2} dB)", v.mse, editing::embed::psnr(v.mse)));
        !stop.load(Ordering::SeqCst)
    });
    bar.finish_and_clear();
    let Outcome::Completed(outcome) = outcome? else {
        eprintln!("pulse: interrupted; nothing written");
        return Ok(Exit::Interrupted);
    };
    outcome.latent.write(&a.out)?;
    if let Some(path) = &a.image {
        imageio::write_image(&outcome.image, path)?;
    }
    eprintln!(
        "pulse: embedded {} in {} steps: final MSE {:.6} PSNR {:.2} dB (start: MSE {:.6} PSNR {:.2} dB); wrote {}{}",
        escaped(&a.photo),
        a.steps,
        outcome.mse,
        outcome.psnr,
        outcome.initial_mse,
        outcome.initial_psnr,
        escaped(&a.out),
        a.image.as_ref().map(|p| format!(" and {}", escaped(p))).unwrap_or_default()
    );
    Ok(Exit::Success)
}

/// A region's colour: the flag's value, else sampled from the face, else the default.
fn region_colour(
    flag: Option<&str>,
    region: Region,
    map: &RegionMap,
    face: Option<&tch::Tensor>,
    default: [u8; 3],
) -> anyhow::Result<Option<[f32; 3]>> {
    Ok(match (flag, face) {
        (Some(s), _) => target::parse_colour(s)
            .map_err(|e| pulse::Invalid(format!("--{}: {e}", region.name())))?
            .map(unit_rgb),
        (None, Some(face)) => map.mean_colour(face, region).or(Some(unit_rgb(default))),
        (None, None) => Some(unit_rgb(default)),
    })
}

pub fn target(a: TargetArgs) -> anyhow::Result<Exit> {
    let mut inputs: Vec<&Path> = vec![&a.regions];
    inputs.extend(a.face.as_deref());
    check_outputs(&inputs, &[&a.out])?;
    let format = imageio::OutputFormat::from_path(&a.out)?;
    if !format.has_alpha() {
        return Err(pulse::Invalid(format!(
            "{}: a target keeps its alpha channel: write it as .png or .webp",
            escaped(&a.out)
        ))
        .into());
    }
    let map = RegionMap::read(&a.regions)?;
    let face = match &a.face {
        Some(path) => Some(imageio::read_photo(path, map.side)?.0),
        None => None,
    };
    let hair = target::parse_colour(&a.hair)
        .map_err(|e| pulse::Invalid(format!("--hair: {e}")))?
        .map(unit_rgb);
    let colours = TargetColours {
        hair,
        skin: region_colour(a.skin.as_deref(), Region::Skin, &map, face.as_ref(), DEFAULT_SKIN)?,
        background: region_colour(
            a.background.as_deref(),
            Region::Background,
            &map,
            face.as_ref(),
            DEFAULT_BACKGROUND,
        )?,
    };
    let rgba = target::build_target(&map, &colours)?;
    imageio::write_image_rgba(&rgba, &a.out)?;
    let describe = |r: Region| {
        let c = colours.of(r).map(|c| {
            let b = c.map(|v| (v * 255.0).round() as u8);
            format!("#{:02x}{:02x}{:02x}", b[0], b[1], b[2])
        });
        format!("{} {} px {}", r.name(), map.count(r), c.unwrap_or_else(|| "unconstrained".into()))
    };
    eprintln!(
        "pulse: wrote {} ({}x{}: {}; {}; {})",
        escaped(&a.out),
        map.side,
        map.side,
        describe(Region::Hair),
        describe(Region::Skin),
        describe(Region::Background)
    );
    Ok(Exit::Success)
}
