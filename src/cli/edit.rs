//! `pulse edit`: a latent moved along a direction at several scales, side by side.
use super::exit::Exit;
use super::setup::{check_outputs, load_model, warn_if_other_model};
use super::shared_args::ModelArgs;
use clap::Args;
use pulse::editing::edit::scale_label;
use pulse::editing::{self, Direction, LayerMask};
use pulse::files::escaped;
use pulse::imageio::{self, Sheet};
use pulse::latent::LatentFile;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct EditArgs {
    /// A pulse-latent/1 file.
    pub latent: PathBuf,
    /// A direction file made by `pulse direction`.
    #[arg(long, value_name = "DIR.safetensors")]
    pub direction: PathBuf,
    /// Scales s of w_plus + s * v, comma-separated (negative ones too: --scale=-1,0,1).
    #[arg(long, default_value = "0,0.5,1,1.5", allow_hyphen_values = true, value_name = "LIST", value_parser = clap::value_parser!(Scales))]
    pub scale: Scales,
    /// Layers the edit touches: all, or a list of layers and ranges like 0-17, 0-7 or 0-3,8.
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub layers: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The side-by-side sheet (.png, .jpg, .bmp or .webp).
    #[arg(short = 'o', long = "output", value_name = "OUT.png")]
    pub out: PathBuf,
    /// Also write one image per scale: <OUT stem>_scale<S>.<OUT extension>.
    #[arg(long)]
    pub separate: bool,
    /// Also write each edited latent: <OUT stem>_scale<S>.latent.safetensors.
    #[arg(long)]
    pub save_latent: bool,
    /// Side of each face in the sheet (default: the model's resolution, at most 512).
    #[arg(long, value_name = "PIXELS", value_parser = clap::value_parser!(i64).range(8..=4096))]
    pub tile: Option<i64>,
}

/// A comma-separated list of edit scales (negative ones too: `--scale=-1,0,1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Scales(pub Vec<f64>);

impl std::str::FromStr for Scales {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        pulse::editing::edit::parse_scales(s).map(Self).map_err(|e| e.to_string())
    }
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
    let edits =
        editing::edit::edit(&model, &latent, &a.latent, &direction, &a.direction, scales, &mask)?;
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
