//! A model is a folder: `synthesis.{pt,safetensors}` (required), `mapping.{pt,safetensors}` and
//! `gaussian_fit.{pt,safetensors}` (each optional), and `model.json`, whose `architecture` names
//! the generator family (without it, the synthesis file's keys tell). See models/README.md.
use crate::pulse::GaussianFit;
use crate::stylegan::{Architecture, Layout, MappingNetwork, SynthesisNetwork, LATENT_DIM};
use crate::weights::{self, StateDict};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// The model folder used when none is named: where `pulse download ffhq` puts the real model.
pub const DEFAULT_DIR: &str = "models/ffhq";

/// Samples and seed of the Gaussian fit when it has to be computed (docs/design.md, "The latent
/// space").
pub const FIT_SAMPLES: i64 = 1_000_000;
pub const FIT_SEED: i64 = 0;

/// The file `<dir>/<stem>.pt` or `<dir>/<stem>.safetensors`, whichever exists (safetensors first).
pub fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    ["safetensors", "pt"].iter().map(|ext| dir.join(format!("{stem}.{ext}"))).find(|p| p.is_file())
}

/// Frozen networks of one model folder, on one device. The weights live in their own VarStores,
/// kept here so the tensors the networks hold stay alive.
pub struct Model {
    pub dir: PathBuf,
    pub device: Device,
    pub synthesis: Box<dyn SynthesisNetwork>,
    pub mapping: Option<Box<dyn MappingNetwork>>,
    pub fit: Option<GaussianFit>,
    /// sha256 of the synthesis file: latents made with this model carry it.
    pub sha256: String,
    /// The weight files loaded (never to be written over by an output).
    pub files: Vec<PathBuf>,
    _stores: Vec<nn::VarStore>,
}

impl Model {
    /// Loads every network the folder has. The Gaussian fit is not computed here; see
    /// [`Model::ensure_fit`].
    ///
    /// Whatever stops the folder from loading is refused (an [`crate::Invalid`] error with the
    /// whole message): a missing or unreadable file, a network file that no longer holds what
    /// `model.json` recorded (damaged or replaced), non-finite weights, and a file that
    /// `pulse import --force` found there from the previous network and could not remove
    /// ([`crate::model_info::ModelInfo::superseded`]): another network's fit is never used for
    /// this one.
    pub fn load(dir: &Path, device: Device) -> anyhow::Result<Self> {
        Self::load_inner(dir, device, true).map_err(unusable)
    }

    /// [`Model::load`] without the Gaussian fit (`fit` is `None`): for `pulse fit-gaussian`,
    /// which computes the folder's fit anew whatever file is there.
    pub fn load_without_fit(dir: &Path, device: Device) -> anyhow::Result<Self> {
        Self::load_inner(dir, device, false).map_err(unusable)
    }

    fn load_inner(dir: &Path, device: Device, with_fit: bool) -> anyhow::Result<Self> {
        if !dir.exists() {
            bail!("model folder {} not found", dir.display());
        }
        if !dir.is_dir() {
            bail!("{}: not a folder (a model is a folder holding synthesis.pt or synthesis.safetensors)", dir.display());
        }
        let synth_path = find_file(dir, "synthesis").with_context(|| {
            format!(
                "{}: no synthesis.pt or synthesis.safetensors in the model folder",
                dir.display()
            )
        })?;
        let sha256 = weights::sha256_file(&synth_path)
            .with_context(|| format!("reading {}", synth_path.display()))?;
        let info = crate::model_info::ModelInfo::read(dir);
        if let Some(info) = &info {
            info.check_file(&synth_path, &sha256)?;
        }
        let sd = weights::load(&synth_path)?;
        let architecture = architecture(dir, &sd)?;
        let (synthesis, synth_vs) = architecture.build_synthesis(&sd, &synth_path, device)?;
        let mut stores = vec![synth_vs];
        let mut files = vec![synth_path];
        let mapping = match find_file(dir, "mapping") {
            Some(path) => {
                if let Some(info) = &info {
                    let sha = weights::sha256_file(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    info.check_file(&path, &sha)?;
                }
                let (mapping, vs) =
                    architecture.build_mapping(&weights::load(&path)?, &path, device)?;
                stores.push(vs);
                files.push(path);
                Some(mapping)
            }
            None => None,
        };
        let fit = match find_file(dir, "gaussian_fit").filter(|_| with_fit) {
            Some(path) => {
                if let Some(info) = &info {
                    let sha = weights::sha256_file(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    info.check_file(&path, &sha)?;
                }
                let fit = read_fit(&path, device)?;
                files.push(path);
                Some(fit)
            }
            None => None,
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            device,
            synthesis,
            mapping,
            fit,
            sha256,
            files,
            _stores: stores,
        })
    }

    /// What the generator consumes and makes (W+ rows, noise maps, resolution, family).
    pub fn layout(&self) -> &Layout {
        self.synthesis.layout()
    }

    pub fn architecture(&self) -> Architecture {
        self.layout().architecture
    }

    /// Synthesis of a batch of one: W+ [1,L,512] and noise (any device) -> the [3,R,R] image in
    /// [0,1] on the CPU, without gradients.
    pub fn synthesize(&self, w_plus: &Tensor, noise: &[Tensor]) -> anyhow::Result<Tensor> {
        let noise: Vec<Tensor> = noise.iter().map(|n| n.to_device(self.device)).collect();
        let raw = tch::no_grad(|| self.synthesis.forward(&w_plus.to_device(self.device), &noise))?;
        Ok(((raw + 1.0) / 2.0).clamp(0.0, 1.0).squeeze_dim(0).to_device(Device::Cpu))
    }

    /// The mapping network, or an [`crate::Invalid`] error saying the folder has none.
    pub fn mapping(&self) -> anyhow::Result<&dyn MappingNetwork> {
        self.mapping.as_deref().ok_or_else(|| {
            crate::Invalid(format!("{}: this needs the mapping network (mapping.pt or mapping.safetensors), which the model folder does not have", crate::files::escaped(&self.dir))).into()
        })
    }

    /// The Gaussian fit: loaded from the folder, or computed from the mapping network (with
    /// `progress(done, total)`), saved as `gaussian_fit.safetensors` beside it and reused.
    pub fn ensure_fit(
        &mut self,
        progress: &mut dyn FnMut(i64, i64),
    ) -> anyhow::Result<&GaussianFit> {
        if self.fit.is_none() {
            save_fit(self, FIT_SAMPLES, FIT_SEED, progress)?;
            self.fit = Some(read_fit(&self.dir.join(FIT_FILE), self.device)?);
        }
        Ok(self.fit.as_ref().expect("fit set above"))
    }
}

/// A model folder that cannot be loaded cannot be used: the error, whatever made it, becomes a
/// refusal with the same message.
fn unusable(e: anyhow::Error) -> anyhow::Error {
    if e.is::<crate::Invalid>() {
        e
    } else {
        crate::Invalid(format!("{e:#}")).into()
    }
}

/// Where a computed Gaussian fit is saved in the model folder.
pub const FIT_FILE: &str = "gaussian_fit.safetensors";

/// Computes the Gaussian fit from the folder's mapping network (`samples` draws seeded with
/// `seed`) and saves it as `gaussian_fit.safetensors` in the folder; returns that path.
pub fn save_fit(
    model: &Model,
    samples: i64,
    seed: i64,
    progress: &mut dyn FnMut(i64, i64),
) -> anyhow::Result<PathBuf> {
    let mapping = model
        .mapping()
        .context("no gaussian_fit file and no mapping network to compute one from")?;
    if samples < 2 {
        bail!("the Gaussian fit needs at least 2 samples");
    }
    let fit = GaussianFit::compute(mapping, samples, 10_000, seed, model.device, &mut |done| {
        progress(done, samples)
    })?;
    let path = model.dir.join(FIT_FILE);
    let sd = StateDict::from_pairs(vec![
        ("mean".to_string(), fit.mean.to_device(Device::Cpu)),
        ("std".to_string(), fit.std.to_device(Device::Cpu)),
    ]);
    let meta =
        [("samples".to_string(), samples.to_string()), ("seed".to_string(), seed.to_string())]
            .into();
    weights::save_safetensors(&sd, &path, Some(&meta))?;
    // Recorded as pulse's own file, so that `pulse import --force` of another network removes
    // it, and `pulse info` says where it came from.
    crate::model_info::record_fit(
        &model.dir,
        &path,
        &format!("computed from the mapping network ({samples} samples, seed {seed})"),
    )?;
    Ok(path)
}

/// The family of a model folder's generator: what `model.json` records, else what the keys of
/// its synthesis weights `synthesis` say.
pub fn architecture(dir: &Path, synthesis: &StateDict) -> anyhow::Result<Architecture> {
    Ok(match crate::model_info::read_architecture(dir)? {
        Some(a) => a,
        None => Architecture::of_synthesis(synthesis),
    })
}

/// Reads `{mean, std}` [512] (PULSE's `gaussian_fit.pt` or our safetensors).
pub fn read_fit(path: &Path, device: Device) -> anyhow::Result<GaussianFit> {
    let sd = weights::load(path)?;
    let get = |key: &str| -> anyhow::Result<tch::Tensor> {
        let t = sd.get(key).with_context(|| {
            format!("{}: missing key '{key}' (a Gaussian fit has 'mean' and 'std')", path.display())
        })?;
        if t.size() != [LATENT_DIM] {
            bail!("{}: '{key}' has shape {:?}, expected [{LATENT_DIM}]", path.display(), t.size());
        }
        if !bool::try_from(t.isfinite().all()).unwrap_or(false) {
            return Err(crate::Invalid(format!(
                "{}: '{key}' holds NaN or infinite values; remove the file, or compute a new fit with `pulse fit-gaussian`",
                crate::files::escaped(path)
            ))
            .into());
        }
        Ok(t.to_kind(Kind::Float).to_device(device))
    };
    Ok(GaussianFit { mean: get("mean")?, std: get("std")? })
}
