//! `pulse direction`: a direction in W+ from pairs of latents (docs/editing.md).
use super::exit::Exit;
use super::setup::check_outputs;
use clap::Args;
use pulse::editing::Direction;
use pulse::files::escaped;
use pulse::latent::short_sha;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct DirectionArgs {
    /// Latent files in pairs: FROM TO [FROM TO ...]; the direction points from FROM to TO.
    #[arg(value_name = "LATENT")]
    pub latents: Vec<PathBuf>,
    /// Text file of pairs, one "FROM TO" per line (tab-separated if paths have spaces; # starts
    /// a comment); relative paths are relative to the file's folder.
    #[arg(long, value_name = "FILE")]
    pub pairs: Option<PathBuf>,
    /// The direction file to write.
    #[arg(short = 'o', long = "output", value_name = "DIR.safetensors")]
    pub out: PathBuf,
}

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
