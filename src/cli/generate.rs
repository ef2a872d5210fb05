//! `pulse generate`: random faces, each with its latent file, written one by one.
use super::exit::Exit;
use super::progress;
use super::setup::{interrupt_flag, load_model};
use super::shared_args::{at_least_one, finite, ModelArgs};
use clap::Args;
use pulse::files::escaped;
use pulse::pipelines::generate::Generator;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Seed of the faces (face k draws from the seed and k).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Truncation psi (1 = none): w pulled towards the mean w on StyleGAN v1's layers 0-7, on
    /// every layer of a StyleGAN2.
    #[arg(long, default_value = "0.7", value_parser = finite, allow_negative_numbers = true)]
    pub truncation: f64,
    /// Number of faces.
    #[arg(long, default_value = "1", value_parser = at_least_one)]
    pub count: usize,
    /// Output image file (.png, .jpg, .bmp, .webp; with --count > 1, <stem>_<k> beside it) or
    /// folder (seed<S>_<k>.png).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub out: PathBuf,
    /// Redo faces whose files already exist.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Faces are written one by one as they are made (memory stays flat for any `--count`), each
/// with its latent; faces whose two files exist from the same seed and model are skipped, so an
/// interrupted run resumes.
pub fn generate(a: GenerateArgs) -> anyhow::Result<Exit> {
    let outputs = output_paths(&a.out, a.count, a.seed)?;
    let model = load_model(&a.model)?;
    let stop = interrupt_flag();
    let generator = Generator::new(&model, a.seed, a.truncation)?;
    let bar = progress::bar(a.count as u64, "faces", a.quiet);
    let (mut written, mut skipped) = (0, 0);
    for (k, path) in outputs.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            bar.finish_and_clear();
            eprintln!("pulse: interrupted after {written} faces; rerun to resume");
            return Ok(Exit::Interrupted);
        }
        let latent_path = path.with_extension("latent.safetensors");
        if !a.overwrite && path.is_file() && latent_path.is_file() {
            let meta = pulse::latent::read_metadata(&latent_path)?;
            let same = meta.get("model_sha256") == Some(&model.sha256)
                && meta.get("truncation") == Some(&a.truncation.to_string())
                && meta.get("seed") == Some(&generator.face_seed(k).to_string());
            if !same {
                return Err(pulse::Invalid(format!(
                    "{}: exists from another run (other seed, truncation or model); use --overwrite or another -o",
                    escaped(path)
                ))
                .into());
            }
            skipped += 1;
            bar.inc(1);
            continue;
        }
        let (image, latent) = generator.face(k)?;
        pulse::imageio::write_image(&image, path)?;
        latent.write(&latent_path)?;
        written += 1;
        bar.inc(1);
        if !a.quiet && a.count <= 10 {
            bar.suspend(|| eprintln!("pulse: wrote {}", escaped(path)));
        }
    }
    bar.finish_and_clear();
    if !a.quiet {
        eprintln!("pulse: {written} faces written, {skipped} already there");
    }
    Ok(Exit::Success)
}

/// `OUT.png` (one face, or `OUT_<k>.png` for several; any image extension) or a folder of
/// `seed<S>_<k>.png`. Checked before any work.
fn output_paths(out: &Path, count: usize, seed: u64) -> anyhow::Result<Vec<PathBuf>> {
    let image_name = pulse::imageio::OutputFormat::from_path(out).is_ok();
    if !image_name && out.is_file() {
        return Err(pulse::Invalid(format!(
            "{}: is a file; give an image name (.png, .jpg, .bmp, .webp) or a folder",
            escaped(out)
        ))
        .into());
    }
    let dir = if image_name { pulse::files::parent_dir(out) } else { out };
    pulse::files::check_writable_dir(dir).map_err(|e| {
        pulse::Invalid(format!("{}: cannot write in this folder: {e}", escaped(dir)))
    })?;
    if !image_name {
        return Ok((0..count).map(|k| out.join(format!("seed{seed}_{k}.png"))).collect());
    }
    if count == 1 {
        return Ok(vec![out.to_path_buf()]);
    }
    let stem = out.file_stem().unwrap_or_default();
    let ext = out.extension().unwrap_or_default().to_string_lossy().into_owned();
    Ok((0..count)
        .map(|k| {
            let mut name = stem.to_os_string();
            name.push(format!("_{k}.{ext}"));
            out.with_file_name(name)
        })
        .collect())
}
