//! Reading the inputs of `upsample` (listed by [`crate::pipelines::collect_inputs`]): each one read
//! and checked before any search, so a bad one is refused with its reason and the rest go on.
use super::UpsampleOptions;
use crate::files::escaped;
use crate::imageio;
use crate::latent::LatentFile;
use crate::model::Model;
use anyhow::bail;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// One accepted input image.
pub(super) struct Input {
    pub path: PathBuf,
    /// The file name without its extension: the base of every output name (any bytes).
    pub stem: OsString,
    pub target: imageio::Target,
    /// Per-pixel weights (alpha or `--mask`), `None` for a plain L2.
    pub weight: Option<Tensor>,
    pub init: Option<LatentFile>,
}

impl Input {
    /// The stem as text for seeds and messages (lossless, see [`crate::files::escaped_name`]).
    pub fn name(&self) -> String {
        crate::files::escaped_name(&self.stem)
    }
}

/// Reads one input: the target image, its weighting (alpha, `--mask` or none) and its `--init`
/// latent.
pub(super) fn read(
    model: &Model,
    opts: &UpsampleOptions,
    path: &Path,
    init_dir: Option<&Path>,
) -> anyhow::Result<Input> {
    let resolution = model.layout().resolution;
    let stem = crate::files::output_stem(path);
    // A folder's entry is refused like a file given directly: a broken link or a folder named
    // like an image says so here.
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => bail!("{}: a folder, not an image", escaped(path)),
        Ok(_) => {}
        Err(e) => bail!("{}: cannot open: {e} (a missing file or a broken link?)", escaped(path)),
    }
    let mut target = imageio::read_target(path, resolution)?;
    let side = target.rgb.size()[2];
    let weight = if opts.ignore_alpha {
        None
    } else if let Some(mask) = &opts.mask {
        Some(imageio::read_mask(mask, side)?)
    } else {
        target.alpha.take()
    };
    if let Some(w) = &weight {
        // A target whose weights are zero everywhere constrains nothing: any face "matches" it.
        if w.max().double_value(&[]) <= 0.0 {
            let source = if opts.mask.is_some() { "the mask" } else { "its alpha channel" };
            bail!(
                "{}: nothing to match: {source} is zero everywhere (fully transparent), so every face would fit",
                escaped(path)
            );
        }
    }
    let init = match (&opts.init, init_dir) {
        (_, Some(dir)) => {
            let mut name = stem.clone();
            name.push(".latent.safetensors");
            let p = dir.join(name);
            if !p.is_file() {
                bail!("{}: no start latent {} in the init folder", escaped(path), escaped(&p));
            }
            Some(read_checked_latent(&p, model)?)
        }
        (Some(file), None) => Some(read_checked_latent(file, model)?),
        (None, None) => None,
    };
    Ok(Input { path: path.to_path_buf(), stem, target, weight, init })
}

fn read_checked_latent(path: &Path, model: &Model) -> anyhow::Result<LatentFile> {
    let latent = LatentFile::read(path)?;
    latent.check_layout(path, model.layout())?;
    if latent.model_sha256() != model.sha256 {
        bail!(
            "{}: made with another model (model_sha256 {}, this model {}); start from a latent of this model",
            escaped(path),
            latent.model_sha256(),
            model.sha256
        );
    }
    Ok(latent)
}
