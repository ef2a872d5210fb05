//! `pulse embed`: a photo embedded into W+ (Image2StyleGAN), written as a latent file.
use super::exit::Exit;
use super::progress;
use super::setup::{check_outputs, interrupt_flag, load_model};
use super::shared_args::{at_least_one, non_negative, positive, ModelArgs};
use clap::builder::PossibleValuesParser;
use clap::Args;
use pulse::editing::embed::EmbedStep;
use pulse::editing::{self, EmbedNoise, EmbedOptions};
use pulse::files::escaped;
use pulse::imageio;
use pulse::pulse::Outcome;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The photo: an aligned face, resolution x resolution (others are centre-cropped and resized).
    pub photo: PathBuf,
    /// The latent file to write.
    #[arg(short = 'o', long = "output", value_name = "LATENT")]
    pub out: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Adam steps.
    #[arg(long, default_value = "1000", value_parser = at_least_one)]
    pub steps: usize,
    /// Adam learning rate.
    #[arg(long, default_value = "0.01", value_parser = positive, allow_negative_numbers = true)]
    pub lr: f64,
    /// A torchvision vgg16 state dict: adds the perceptual term (conv1_1, conv1_2, conv3_2, conv4_2).
    #[arg(long, value_name = "VGG16_WEIGHTS")]
    pub perceptual: Option<PathBuf>,
    /// Weight of the perceptual term (the pixel MSE has weight 1).
    #[arg(long, default_value = "1", value_parser = non_negative, allow_negative_numbers = true)]
    pub perceptual_weight: f64,
    /// Fixed noise inputs: random (drawn from --seed) or zero.
    #[arg(long, default_value = "random", value_parser = PossibleValuesParser::new(["random", "zero"]))]
    pub noise: String,
    /// Seed of the random noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the embedded face as an image (.png, .jpg, .bmp or .webp).
    #[arg(long, value_name = "OUT.png")]
    pub image: Option<PathBuf>,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
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
