//! `pulse convert`: any weight file read as safetensors.
use super::exit::Exit;
use super::setup::check_outputs;
use clap::Args;
use pulse::files::escaped;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// A .pt (legacy or zip) or .safetensors weight file.
    pub input: PathBuf,
    /// The safetensors file to write.
    #[arg(short = 'o', long = "output", value_name = "OUT.safetensors")]
    pub out: PathBuf,
}

pub fn convert(a: ConvertArgs) -> anyhow::Result<Exit> {
    check_outputs(&[&a.input], &[&a.out])?;
    let sd = pulse::weights::load(&a.input)?;
    let meta = [("source".to_string(), escaped(&a.input))].into();
    pulse::weights::save_safetensors(&sd, &a.out, Some(&meta))?;
    eprintln!("pulse: wrote {} ({} tensors)", escaped(&a.out), sd.len());
    Ok(Exit::Success)
}
