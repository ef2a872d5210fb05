//! `pulse target`: an RGBA target from a region map and a colour per region.
use super::exit::Exit;
use super::setup::check_outputs;
use clap::Args;
use pulse::editing::target::{
    self, unit_rgb, Region, TargetColours, DEFAULT_BACKGROUND, DEFAULT_SKIN,
};
use pulse::editing::RegionMap;
use pulse::files::escaped;
use pulse::imageio;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Region map PNG: red = hair, green = skin, blue = background, black = unconstrained.
    pub regions: PathBuf,
    /// Hair colour: #rrggbb, a name (black, brown, blond, red, blue, ...; see docs/editing.md) or none.
    #[arg(long, value_name = "COLOR")]
    pub hair: String,
    /// Skin colour (default: sampled from --face, else #e0ac8a).
    #[arg(long, value_name = "COLOR")]
    pub skin: Option<String>,
    /// Background colour (default: sampled from --face, else #808080).
    #[arg(long, value_name = "COLOR")]
    pub background: Option<String>,
    /// Reference face whose skin and background colours are used where none is given.
    #[arg(long, value_name = "FILE")]
    pub face: Option<PathBuf>,
    /// The RGBA target to write (.png or .webp, which keep its alpha).
    #[arg(short = 'o', long = "output", value_name = "OUT.png")]
    pub out: PathBuf,
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
