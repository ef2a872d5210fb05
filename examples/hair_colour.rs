//! The seed article's hair-colour experiment, end to end (docs/editing.md; docs/design.md, "Editing"):
//!
//! 1. build black-, blond- and blue-hair 32x32 RGBA targets from one region map
//!    (examples/hair/regions32.png), skin and background coloured like a reference face;
//! 2. run PULSE on each with one fixed seed: the same start gives "the same person" three times;
//! 3. take the direction `v = w_plus(blond) - w_plus(black)` in W+;
//! 4. apply it, at several scales, to other faces: the blue-hair result, PULSE results of the
//!    example faces, and a photo embedded into W+ (Image2StyleGAN);
//! 5. write everything plus one contact sheet, `hair_colour_sheet.png`.
//!
//! ```text
//! cargo run --release --example hair_colour -- --model models/ffhq --steps 100 --embed-steps 1000 --out out/hair
//! ```
//!
//! The defaults suit the random-weight test model (`models/test-1024`, a few steps): the pictures
//! are noise, but every file is made. It only uses the library API; change it freely.
use anyhow::{bail, Context};
use pulse::editing::edit::scale_label;
use pulse::editing::target::{self, Region, RegionMap, TargetColours};
use pulse::editing::{self, Direction, EmbedNoise, EmbedOptions, LayerMask};
use pulse::imageio::{self, Sheet};
use pulse::latent::LatentFile;
use pulse::model::Model;
use pulse::pulse::SearchConfig;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Settings; `--flag value` on the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--model DIR`
    pub model: PathBuf,
    /// `--device auto|cpu|cuda|cuda:N`
    pub device: String,
    /// `--steps N`: PULSE steps per search (PULSE's default is 100).
    pub steps: usize,
    /// `--embed-steps N`: Adam steps of the photo embedding (Image2StyleGAN used 5000).
    pub embed_steps: usize,
    /// `--seed N`: the one seed every search starts from.
    pub seed: u64,
    /// `--scales 0,0.5,1,1.5`
    pub scales: Vec<f64>,
    /// `--regions FILE`: the region map (red hair, green skin, blue background).
    pub regions: PathBuf,
    /// `--reference FILE`: the face whose skin and background colours the targets use.
    pub reference: PathBuf,
    /// `--faces A,B`: low-resolution faces upsampled with PULSE, then edited.
    pub faces: Vec<PathBuf>,
    /// `--photo FILE` (or `none`): a photo embedded into W+, then edited.
    pub photo: Option<PathBuf>,
    /// `--out DIR`
    pub out: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        Self {
            model: root.join("models/test-1024"),
            device: "auto".into(),
            steps: 5,
            embed_steps: 20,
            seed: 7,
            scales: vec![0.0, 0.5, 1.0, 1.5],
            regions: root.join("examples/hair/regions32.png"),
            reference: root.join("examples/faces/astronaut32.png"),
            faces: vec![
                root.join("examples/faces/astronaut32.png"),
                root.join("examples/faces/cameraman32.png"),
            ],
            photo: Some(root.join("examples/faces/astronaut128.png")),
            out: PathBuf::from("out/hair_colour"),
        }
    }
}

/// The hair colours of the three targets (names from the palette of `pulse target`).
pub const HAIR: [&str; 3] = ["black", "blond", "blue"];

/// What `run` wrote, and the sheet's grid.
#[derive(Debug)]
pub struct Outputs {
    pub sheet: PathBuf,
    pub tile: i64,
    pub columns: usize,
    pub rows: usize,
    pub targets: Vec<PathBuf>,
    pub latents: Vec<PathBuf>,
    pub direction: PathBuf,
}

fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "face".into())
}

/// Runs the whole experiment; `log` receives one line per stage.
pub fn run(opts: &Options, log: &mut dyn FnMut(&str)) -> anyhow::Result<Outputs> {
    let device = pulse::device::parse_device(&opts.device)?;
    let mut model = Model::load(&opts.model, device)?;
    let resolution = model.layout().resolution;
    for dir in ["targets", "results"] {
        std::fs::create_dir_all(opts.out.join(dir))
            .with_context(|| format!("{}: cannot create", opts.out.display()))?;
    }
    let search = SearchConfig { steps: opts.steps, ..SearchConfig::default() };

    // 1. Targets: hair in each colour; skin and background sampled from the reference face.
    let regions = imageio::read_target(&opts.regions, imageio::MAX_SIDE)?;
    let map = RegionMap::from_image(&regions.rgb, regions.alpha.as_ref());
    let reference = imageio::read_photo(&opts.reference, map.side)?.0;
    let mut targets = vec![];
    let mut target_paths = vec![];
    for hair in HAIR {
        let colours = TargetColours {
            hair: target::parse_colour(hair)?.map(target::unit_rgb),
            skin: map.mean_colour(&reference, Region::Skin),
            background: map.mean_colour(&reference, Region::Background),
        };
        let rgba = target::build_target(&map, &colours)?;
        let path = opts.out.join(format!("targets/{hair}.png"));
        imageio::write_image_rgba(&rgba, &path)?;
        log(&format!("target {}", path.display()));
        target_paths.push(path);
        targets.push(rgba);
    }

    // 2. PULSE on each target from the same seed.
    let mut latents = vec![];
    let mut latent_paths = vec![];
    let mut results = vec![];
    for (hair, rgba) in HAIR.iter().zip(&targets) {
        let (rgb, alpha) = (rgba.narrow(0, 0, 3), rgba.narrow(0, 3, 1));
        let (image, mut latent) = editing::search_target(
            &mut model,
            &rgb,
            Some(&alpha),
            opts.seed,
            &search,
            &mut |_, _| true,
        )?
        .completed()
        .context("never stopped")?;
        latent.metadata.insert("source".into(), format!("targets/{hair}.png"));
        let path = opts.out.join(format!("results/{hair}.latent.safetensors"));
        latent.write(&path)?;
        imageio::write_png(&image, &opts.out.join(format!("results/{hair}.png")))?;
        log(&format!("PULSE {hair} hair -> {}", path.display()));
        latent_paths.push(path);
        latents.push(latent);
        results.push(image);
    }

    // 3. The direction blond minus black.
    let direction = Direction::from_latents(
        &[(&latents[0], &latents[1])],
        &[(latent_paths[0].display().to_string(), latent_paths[1].display().to_string())],
    )?;
    let direction_path = opts.out.join("blond_minus_black.direction.safetensors");
    direction.write(&direction_path)?;
    log(&format!(
        "direction {} (norm {:.3})",
        direction_path.display(),
        direction.vector.norm().double_value(&[])
    ));

    // 4. Other faces: the blue-hair result, PULSE results of low-resolution faces, an embedded photo.
    let mut faces: Vec<(String, LatentFile, PathBuf)> =
        vec![("blue".into(), latents.pop().expect("three latents"), latent_paths[2].clone())];
    for face in &opts.faces {
        let t = imageio::read_target(face, resolution)?;
        let (image, latent) =
            editing::search_target(&mut model, &t.rgb, None, opts.seed, &search, &mut |_, _| true)?
                .completed()
                .context("never stopped")?;
        let name = stem(face);
        let path = opts.out.join(format!("results/{name}.latent.safetensors"));
        latent.write(&path)?;
        imageio::write_png(&image, &opts.out.join(format!("results/{name}.png")))?;
        log(&format!("PULSE {} -> {}", face.display(), path.display()));
        faces.push((name, latent, path));
    }
    if let Some(photo) = &opts.photo {
        let (pixels, resized) = imageio::read_photo(photo, resolution)?;
        let eopts = EmbedOptions {
            steps: opts.embed_steps,
            noise: EmbedNoise::Random { seed: opts.seed },
            ..EmbedOptions::default()
        };
        let embedded = editing::embed(&model, &pixels, &eopts, &mut |_| true)?
            .completed()
            .context("never stopped")?;
        let name = format!("{}_embedded", stem(photo));
        let path = opts.out.join(format!("results/{name}.latent.safetensors"));
        embedded.latent.write(&path)?;
        imageio::write_png(&embedded.image, &opts.out.join(format!("results/{name}.png")))?;
        log(&format!(
            "embedded {}{} -> {} (PSNR {:.2} dB)",
            photo.display(),
            if resized { " (resized)" } else { "" },
            path.display(),
            embedded.psnr
        ));
        faces.push(("photo".into(), embedded.latent, path));
    }

    // 5. The sheet: targets, results, then one row of edits per face.
    if opts.scales.is_empty() {
        bail!("--scales: give at least one scale");
    }
    let tile = resolution.min(256);
    let columns = opts.scales.len().max(4);
    let mut sheet = Sheet::new(tile, columns);
    let pad = |sheet: &mut Sheet| {
        while !sheet.len().is_multiple_of(columns) {
            sheet.push(&Tensor::full([3, 1, 1], 0.12, (Kind::Float, Device::Cpu)), "");
        }
    };
    sheet.push(&regions.rgb, "regions");
    for (hair, rgba) in HAIR.iter().zip(&targets) {
        sheet.push(&target::preview(rgba), &format!("target {hair}"));
    }
    pad(&mut sheet);
    sheet.push(&reference, "colours from");
    for (hair, image) in HAIR.iter().zip(&results) {
        sheet.push(image, &format!("PULSE {hair}"));
    }
    pad(&mut sheet);
    let mask = LayerMask::all(model.layout().w_rows);
    for (name, latent, path) in &faces {
        let edits = editing::edit::edit(
            &model,
            latent,
            path,
            &direction,
            &direction_path,
            &opts.scales,
            &mask,
        )?;
        for e in &edits {
            sheet.push(&e.image, &format!("{name} {}", scale_label(e.scale)));
        }
        pad(&mut sheet);
    }
    let rows = sheet.len() / columns;
    let sheet_path = opts.out.join("hair_colour_sheet.png");
    imageio::write_png(&sheet.render(), &sheet_path)?;
    log(&format!("sheet {} ({rows} rows of {columns})", sheet_path.display()));
    let mut all_latents = latent_paths;
    all_latents.extend(faces.iter().skip(1).map(|f| f.2.clone()));
    Ok(Outputs {
        sheet: sheet_path,
        tile,
        columns,
        rows,
        targets: target_paths,
        latents: all_latents,
        direction: direction_path,
    })
}

fn parse_args() -> anyhow::Result<Options> {
    let mut o = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("usage: hair_colour [--model DIR] [--device D] [--steps N] [--embed-steps N] [--seed N] [--scales LIST] [--regions FILE] [--reference FILE] [--faces A,B] [--photo FILE|none] [--out DIR]");
            std::process::exit(0);
        }
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        let number =
            |v: &str| v.parse::<u64>().with_context(|| format!("{flag}: '{v}' is not a number"));
        match flag.as_str() {
            "--model" => o.model = value.into(),
            "--device" => o.device = value,
            "--steps" => o.steps = number(&value)? as usize,
            "--embed-steps" => o.embed_steps = number(&value)? as usize,
            "--seed" => o.seed = number(&value)?,
            "--scales" => o.scales = editing::edit::parse_scales(&value)?,
            "--regions" => o.regions = value.into(),
            "--reference" => o.reference = value.into(),
            "--faces" => {
                o.faces = value.split(',').filter(|s| !s.is_empty()).map(PathBuf::from).collect()
            }
            "--photo" => o.photo = (value != "none").then(|| value.into()),
            "--out" => o.out = value.into(),
            _ => bail!("unknown flag {flag} (see --help)"),
        }
    }
    Ok(o)
}

fn main() -> anyhow::Result<()> {
    let opts = parse_args()?;
    let out = run(&opts, &mut |line| eprintln!("hair_colour: {line}"))?;
    eprintln!("hair_colour: done; open {}", out.sheet.display());
    Ok(())
}
