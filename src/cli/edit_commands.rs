//! `pulse direction`, `edit`, `embed` and `target`: the hair-colour workflow and photo embedding
//! (docs/editing.md). Thin: parse, call `pulse::editing`, write files, report.
use super::args::{DirectionArgs, EditArgs, EmbedArgs, TargetArgs};
use super::commands::{create_parent, interrupt_flag, load_model, warn_if_other_model};
use super::progress;
use anyhow::{bail, ensure, Context};
use pulse::editing::edit::{parse_scales, scale_label};
use pulse::editing::embed::EmbedStep;
use pulse::editing::target::{
    self, unit_rgb, Region, TargetColours, DEFAULT_BACKGROUND, DEFAULT_SKIN,
};
use pulse::editing::{self, Direction, EmbedNoise, EmbedOptions, LayerMask, RegionMap};
use pulse::imageio::{self, Sheet};
use pulse::latent::short_sha;
use pulse::latent::LatentFile;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

/// `FROM TO` pairs from the arguments and the `--pairs` file.
fn direction_pairs(a: &DirectionArgs) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    ensure!(
        a.latents.len().is_multiple_of(2),
        "give latents in pairs (FROM TO ...); got {} files",
        a.latents.len()
    );
    let mut pairs: Vec<(PathBuf, PathBuf)> =
        a.latents.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    if let Some(file) = &a.pairs {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("{}: cannot read", file.display()))?;
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
                bail!(
                    "{}:{}: expected two latent files FROM TO, got {} fields",
                    file.display(),
                    n + 1,
                    fields.len()
                );
            }
            pairs.push((base.join(fields[0]), base.join(fields[1])));
        }
    }
    ensure!(!pairs.is_empty(), "no pairs: give FROM TO latents or --pairs FILE");
    Ok(pairs)
}

pub fn direction(a: DirectionArgs) -> anyhow::Result<ExitCode> {
    let pairs = direction_pairs(&a)?;
    let direction = Direction::between(&pairs)?;
    create_parent(&a.out)?;
    direction.write(&a.out)?;
    let norm = direction.vector.norm().double_value(&[]);
    eprintln!(
        "pulse: wrote {} (mean of {} pair{}, {} layers, norm {norm:.3}, model {})",
        a.out.display(),
        direction.pairs(),
        if direction.pairs() == 1 { "" } else { "s" },
        direction.layers(),
        short_sha(direction.model_sha256())
    );
    Ok(ExitCode::SUCCESS)
}

/// `OUT_scale<S>.<ext>` beside `OUT.png`.
fn scale_path(out: &Path, scale: f64, ext: &str) -> PathBuf {
    let stem =
        out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "edit".into());
    out.with_file_name(format!("{stem}_scale{scale}.{ext}"))
}

pub fn edit(a: EditArgs) -> anyhow::Result<ExitCode> {
    let model = load_model(&a.model)?;
    let latent = LatentFile::read(&a.latent)?;
    let direction = Direction::read(&a.direction)?;
    let layers = model.config().num_layers();
    let mask = LayerMask::parse(&a.layers, layers)?;
    let scales = parse_scales(&a.scale)?;
    warn_if_other_model(&a.latent, &latent, &model);
    let edits =
        editing::edit::edit(&model, &latent, &a.latent, &direction, &a.direction, &scales, &mask)?;
    let resolution = model.config().resolution;
    let tile = a.tile.unwrap_or(resolution.min(512));
    ensure!((8..=4096).contains(&tile), "--tile: expected 8 to 4096 pixels, got {tile}");
    create_parent(&a.out)?;
    let mut sheet = Sheet::new(tile, edits.len());
    for e in &edits {
        sheet.push(&e.image, &format!("scale {}", scale_label(e.scale)));
    }
    imageio::write_png(&sheet.render(), &a.out)?;
    eprintln!("pulse: wrote {} ({} scales, layers {mask})", a.out.display(), edits.len());
    for e in &edits {
        if a.separate {
            let path = scale_path(&a.out, e.scale, "png");
            imageio::write_png(&e.image, &path)?;
            eprintln!("pulse: wrote {}", path.display());
        }
        if a.save_latent {
            let path = scale_path(&a.out, e.scale, "latent.safetensors");
            e.latent.write(&path)?;
            eprintln!("pulse: wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn embed(a: EmbedArgs) -> anyhow::Result<ExitCode> {
    let noise = match a.noise.as_str() {
        "random" => EmbedNoise::Random { seed: a.seed },
        "zero" => EmbedNoise::Zero,
        other => bail!("--noise: expected random or zero, got '{other}'"),
    };
    ensure!(a.steps > 0, "--steps must be at least 1");
    ensure!(a.lr > 0.0 && a.lr.is_finite(), "--lr must be positive");
    let model = load_model(&a.model)?;
    let resolution = model.config().resolution;
    let (photo, resized) = imageio::read_photo(&a.photo, resolution)?;
    if resized {
        eprintln!(
            "pulse: {} is not {resolution}x{resolution}: centre-cropped to a square and resized (align faces like FFHQ for good results)",
            a.photo.display()
        );
    }
    create_parent(&a.out)?;
    let opts = EmbedOptions {
        steps: a.steps,
        lr: a.lr,
        perceptual: a.perceptual.clone(),
        perceptual_weight: a.perceptual_weight,
        noise,
        ..EmbedOptions::default()
    };
    let stop = interrupt_flag();
    let bar = progress::bar(a.steps as u64, "embed", a.quiet);
    let outcome = editing::embed(&model, &photo, &opts, &mut |v: &EmbedStep| {
        bar.set_position(v.step as u64 + 1);
        bar.set_message(format!("MSE {:.5} ({:.2} dB)", v.mse, editing::embed::psnr(v.mse)));
        !stop.load(Ordering::SeqCst)
    });
    bar.finish_and_clear();
    let outcome = match outcome {
        Err(e) if e.is::<pulse::pulse::search::Interrupted>() => {
            eprintln!("pulse: interrupted; nothing written");
            return Ok(ExitCode::from(130));
        }
        other => other?,
    };
    outcome.latent.write(&a.out)?;
    if let Some(path) = &a.image {
        create_parent(path)?;
        imageio::write_png(&outcome.image, path)?;
    }
    eprintln!(
        "pulse: embedded {} in {} steps: final MSE {:.6} PSNR {:.2} dB (start: MSE {:.6} PSNR {:.2} dB); wrote {}{}",
        a.photo.display(),
        a.steps,
        outcome.mse,
        outcome.psnr,
        outcome.initial_mse,
        outcome.initial_psnr,
        a.out.display(),
        a.image.as_ref().map(|p| format!(" and {}", p.display())).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
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
        (Some(s), _) => {
            target::parse_colour(s).with_context(|| format!("--{}", region.name()))?.map(unit_rgb)
        }
        (None, Some(face)) => map.mean_colour(face, region).or(Some(unit_rgb(default))),
        (None, None) => Some(unit_rgb(default)),
    })
}

pub fn target(a: TargetArgs) -> anyhow::Result<ExitCode> {
    let map = RegionMap::read(&a.regions)?;
    let face = match &a.face {
        Some(path) => Some(imageio::read_photo(path, map.side)?.0),
        None => None,
    };
    let hair = target::parse_colour(&a.hair).context("--hair")?.map(unit_rgb);
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
    create_parent(&a.out)?;
    imageio::write_png_rgba(&rgba, &a.out)?;
    let describe = |r: Region| {
        let c = colours.of(r).map(|c| {
            let b = c.map(|v| (v * 255.0).round() as u8);
            format!("#{:02x}{:02x}{:02x}", b[0], b[1], b[2])
        });
        format!("{} {} px {}", r.name(), map.count(r), c.unwrap_or_else(|| "unconstrained".into()))
    };
    eprintln!(
        "pulse: wrote {} ({}x{}: {}; {}; {})",
        a.out.display(),
        map.side,
        map.side,
        describe(Region::Hair),
        describe(Region::Skin),
        describe(Region::Background)
    );
    Ok(ExitCode::SUCCESS)
}
