//! The generator families, and everything in which they differ outside the networks themselves:
//! which family a file's keys belong to, building a family's networks from their weights, the
//! FFHQ-size network with random weights, what an import checks, names and titles
//! (docs/design.md, "The generator concept"). Everything outside `stylegan/` asks this module
//! and never branches on the family itself, so a new family is one module under `stylegan/` plus
//! a variant here (a test enforces it).
use super::{stylegan1, stylegan2, Layout, MappingNetwork, SynthesisNetwork, LATENT_DIM};
use crate::weights::nvidia::FFHQ_TF_TRAINABLES;
use crate::weights::StateDict;
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// The generator families `pulse` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Architecture {
    /// StyleGAN (v1), Karras et al., CVPR 2019, as PULSE's PyTorch port computes it. The
    /// default: the family of `pulse download ffhq`, and of every file that records no family
    /// (written before StyleGAN2 came).
    #[default]
    StyleGan1,
    /// StyleGAN2 (config-f, skip generator), Karras et al., CVPR 2020, as NVIDIA's
    /// stylegan2-ada-pytorch computes it.
    StyleGan2,
}

/// How an import gets a Gaussian fit when no source gives one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFit {
    /// PULSE's published fit for the FFHQ network, which the mapping network's output
    /// statistics are also checked against (it is the fit of v1's FFHQ mapping); for any other
    /// network, computed from the mapping network during the import.
    PulseOrComputed,
    /// Computed from the mapping network by the first command that needs it.
    FirstUse,
}

/// Parameters of NVIDIA's FFHQ-1024 generator of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FfhqCounts {
    pub synthesis: i64,
    pub mapping: i64,
    /// Gs's trainables as TensorFlow counts them, where a file of this family can state them.
    pub tf_trainables: Option<i64>,
}

/// What the family's checks found in the networks an import is given.
pub struct ImportCheck {
    pub resolution: i64,
    /// The shape of NVIDIA's FFHQ-1024 network of this family.
    pub ffhq: bool,
    /// Parameters found (constant buffers excluded).
    pub synthesis_params: i64,
    pub mapping_params: Option<i64>,
    /// The tensors to write, float32: those the networks use.
    pub synthesis: Vec<(String, Tensor)>,
    pub mapping: Option<Vec<(String, Tensor)>>,
    /// The mapping network, built, where the import uses it (v1: its fit and the check of its
    /// output statistics); its VarStore keeps the weights alive.
    pub mapping_network: Option<(Box<dyn MappingNetwork>, nn::VarStore)>,
    /// The mapping file holds the mean w truncation pulls towards (StyleGAN2's `w_avg`).
    pub stored_w_avg: bool,
}

/// Why the family refused an import's networks.
#[derive(Debug)]
pub struct ImportRefusal {
    /// The fault is in the mapping network's file (else the synthesis network's).
    pub in_mapping: bool,
    pub message: String,
}

impl Architecture {
    pub const ALL: [Architecture; 2] = [Architecture::StyleGan1, Architecture::StyleGan2];

    /// The name `model.json` and latent files record.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::StyleGan1 => "stylegan1",
            Architecture::StyleGan2 => "stylegan2",
        }
    }

    /// The family a recorded name stands for.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The name people know it by, for messages.
    pub fn title(self) -> &'static str {
        match self {
            Architecture::StyleGan1 => "StyleGAN",
            Architecture::StyleGan2 => "StyleGAN2",
        }
    }

    /// The family of a state dict's keys (after any conversion, every format uses one of the
    /// families' own names): StyleGAN2 where a key has NVIDIA's StyleGAN2 names
    /// (`synthesis.b*`, `mapping.fc*`, `mapping.w_avg`), else v1 where one has PULSE's
    /// (`blocks.*`, `torgb.*`, `dense<i>.*`); `None` when neither does (a Gaussian fit alone).
    pub fn detect<'a>(keys: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut found = None;
        for key in keys {
            if stylegan2::is_stylegan2_key(key) {
                return Some(Architecture::StyleGan2);
            }
            if stylegan1::is_synthesis_key(key) || stylegan1::is_mapping_key(key) {
                found = Some(Architecture::StyleGan1);
            }
        }
        found
    }

    /// The family of a synthesis network's weights; v1 when the keys tell nothing (building it
    /// then says what is missing).
    pub fn of_synthesis(sd: &StateDict) -> Self {
        Self::detect(sd.keys()).unwrap_or_default()
    }

    /// Whether `key` belongs to this family's synthesis network.
    pub fn is_synthesis_key(self, key: &str) -> bool {
        match self {
            Architecture::StyleGan1 => stylegan1::is_synthesis_key(key),
            Architecture::StyleGan2 => stylegan2::is_synthesis_key(key),
        }
    }

    /// Whether `key` belongs to this family's mapping network.
    pub fn is_mapping_key(self, key: &str) -> bool {
        match self {
            Architecture::StyleGan1 => stylegan1::is_mapping_key(key),
            Architecture::StyleGan2 => stylegan2::is_mapping_key(key),
        }
    }

    /// Builds the synthesis network whose shape the state dict (read from `path`) describes.
    pub fn build_synthesis(
        self,
        sd: &StateDict,
        path: &Path,
        device: Device,
    ) -> anyhow::Result<(Box<dyn SynthesisNetwork>, nn::VarStore)> {
        Ok(match self {
            Architecture::StyleGan1 => {
                let (s, vs) = stylegan1::build_synthesis(sd, path, device)?;
                (Box::new(s), vs)
            }
            Architecture::StyleGan2 => {
                let (s, vs) = stylegan2::build_synthesis(sd, path, device)?;
                (Box::new(s), vs)
            }
        })
    }

    /// Builds the mapping network from its state dict (read from `path`).
    pub fn build_mapping(
        self,
        sd: &StateDict,
        path: &Path,
        device: Device,
    ) -> anyhow::Result<(Box<dyn MappingNetwork>, nn::VarStore)> {
        Ok(match self {
            Architecture::StyleGan1 => {
                let (m, vs) = stylegan1::build_mapping(sd, device)?;
                (Box::new(m), vs)
            }
            Architecture::StyleGan2 => {
                let (m, vs) = stylegan2::build_mapping(sd, path, device)?;
                (Box::new(m), vs)
            }
        })
    }

    /// The layout of NVIDIA's FFHQ-1024 network of this family (what `--batch-size auto`
    /// sizes a benchmark from).
    pub fn ffhq_layout(self) -> Layout {
        match self {
            Architecture::StyleGan1 => stylegan1::SynthesisConfig::ffhq().layout(),
            Architecture::StyleGan2 => stylegan2::SynthesisConfig::ffhq().layout(),
        }
    }

    /// The FFHQ-1024 synthesis network of this family with random weights (drawn after seeding
    /// the global generator with `seed`), for benchmarks.
    pub fn random_ffhq(
        self,
        device: Device,
        seed: i64,
    ) -> (Box<dyn SynthesisNetwork>, nn::VarStore) {
        match self {
            Architecture::StyleGan1 => {
                let (s, vs) =
                    stylegan1::Synthesis::random(&stylegan1::SynthesisConfig::ffhq(), device, seed);
                (Box::new(s), vs)
            }
            Architecture::StyleGan2 => {
                let (s, vs) =
                    stylegan2::Synthesis::random(&stylegan2::SynthesisConfig::ffhq(), device, seed);
                (Box::new(s), vs)
            }
        }
    }

    /// Whether the synthesis carries an RGB image from block to block beside the features
    /// (StyleGAN2's skip generator), which a block's input then holds.
    pub fn has_skip(self) -> bool {
        match self {
            Architecture::StyleGan1 => false,
            Architecture::StyleGan2 => true,
        }
    }

    /// Parameters of NVIDIA's FFHQ-1024 generator of this family.
    pub fn ffhq_counts(self) -> FfhqCounts {
        match self {
            Architecture::StyleGan1 => FfhqCounts {
                synthesis: stylegan1::FFHQ_SYNTHESIS_PARAMS,
                mapping: stylegan1::FFHQ_MAPPING_PARAMS,
                tf_trainables: Some(FFHQ_TF_TRAINABLES),
            },
            Architecture::StyleGan2 => {
                let (synthesis, mapping) = stylegan2::schema::ffhq_params();
                FfhqCounts { synthesis, mapping, tf_trainables: None }
            }
        }
    }

    /// The licence of NVIDIA's weights of this family, and of what is converted from them.
    pub fn nvidia_licence(self) -> &'static str {
        match self {
            Architecture::StyleGan1 => "CC BY-NC 4.0 (NVIDIA's StyleGAN FFHQ weights, NVlabs/stylegan): non-commercial use only, with attribution",
            // NVlabs/stylegan2 and stylegan2-ada-pytorch LICENSE.txt, section 3.3; rosinality's
            // checkpoints are converted from them.
            Architecture::StyleGan2 => "NVIDIA Source Code License-NC (NVIDIA's StyleGAN2 weights, NVlabs/stylegan2, NVlabs/stylegan2-ada-pytorch): non-commercial use only (research or evaluation)",
        }
    }

    /// Where an import's Gaussian fit comes from when no source gives one.
    pub fn import_fit(self) -> ImportFit {
        match self {
            Architecture::StyleGan1 => ImportFit::PulseOrComputed,
            Architecture::StyleGan2 => ImportFit::FirstUse,
        }
    }

    /// Checks the networks an import is given, as their constructors will ask of the files
    /// (v1: by building them, as `Model::load` does; StyleGAN2: its [`stylegan2::schema`], and
    /// a latent size of 512), and says what they are.
    pub fn check_import(
        self,
        synthesis: &StateDict,
        mapping: Option<&StateDict>,
    ) -> Result<ImportCheck, ImportRefusal> {
        let refuse = |in_mapping: bool, message: String| ImportRefusal { in_mapping, message };
        match self {
            Architecture::StyleGan1 => {
                let config = stylegan1::SynthesisConfig::from_shapes(
                    synthesis.iter().map(|(k, t)| (k, t.size())),
                )
                .map_err(|e| refuse(false, format!("not a StyleGAN synthesis network: {e:#}")))?;
                let mut vs = nn::VarStore::new(Device::Cpu);
                let _net = stylegan1::Synthesis::new(vs.root(), &config);
                crate::weights::load_into(&mut vs, synthesis)
                    .map_err(|e| refuse(false, e.kind.to_string()))?;
                let synthesis_out = stylegan1::used_tensors(synthesis, &vs, true);
                let mut check = ImportCheck {
                    resolution: config.resolution,
                    ffhq: config == stylegan1::SynthesisConfig::ffhq(),
                    synthesis_params: stylegan1::count_params(&synthesis_out),
                    mapping_params: None,
                    synthesis: synthesis_out,
                    mapping: None,
                    mapping_network: None,
                    stored_w_avg: false,
                };
                if let Some(sd) = mapping {
                    let (m, vs) = stylegan1::build_mapping(sd, Device::Cpu)
                        .map_err(|e| refuse(true, e.kind.to_string()))?;
                    let out = stylegan1::used_tensors(sd, &vs, false);
                    check.mapping_params = Some(stylegan1::count_params(&out));
                    check.mapping = Some(out);
                    check.mapping_network = Some((Box::new(m), vs));
                }
                Ok(check)
            }
            Architecture::StyleGan2 => {
                let schema = stylegan2::schema::check(synthesis, mapping).map_err(|e| {
                    refuse(
                        mapping.is_some() && e.contains("mapping"),
                        format!("not a StyleGAN2 generator: {e}"),
                    )
                })?;
                // The search, the Gaussian fit and latent files are 512 wide (PULSE's space, as
                // NVIDIA's generators): a network of another latent size would import, then
                // fail in every command.
                if schema.w_dim != LATENT_DIM {
                    return Err(refuse(false, format!(
                        "its styles take w of {} values; pulse works with a latent size of {LATENT_DIM} (NVIDIA's generators), so this network cannot be used",
                        schema.w_dim
                    )));
                }
                if mapping.is_some() && schema.z_dim != LATENT_DIM {
                    return Err(refuse(true, format!(
                        "its mapping network takes z of {} values; pulse works with a latent size of {LATENT_DIM} (NVIDIA's generators), so this network cannot be used",
                        schema.z_dim
                    )));
                }
                let as_float = |sd: &StateDict| -> Vec<(String, Tensor)> {
                    sd.iter()
                        .map(|(k, t)| (k.to_string(), t.to_kind(Kind::Float).contiguous()))
                        .collect()
                };
                Ok(ImportCheck {
                    resolution: schema.resolution,
                    ffhq: schema.is_ffhq(),
                    synthesis_params: schema.synthesis_params,
                    mapping_params: mapping.map(|_| schema.mapping_params),
                    synthesis: as_float(synthesis),
                    mapping: mapping.map(as_float),
                    mapping_network: None,
                    stored_w_avg: mapping.is_some(),
                })
            }
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_keys_tell_the_family() {
        for a in Architecture::ALL {
            assert_eq!(Architecture::from_name(a.name()), Some(a));
        }
        assert_eq!(Architecture::from_name("stylegan3"), None);
        let v1 = ["blocks.4x4.conv.weight", "torgb.bias", "dense0.weight"];
        assert_eq!(Architecture::detect(v1), Some(Architecture::StyleGan1));
        let sg2 = ["synthesis.b4.const", "mapping.fc0.weight"];
        assert_eq!(Architecture::detect(sg2), Some(Architecture::StyleGan2));
        // A StyleGAN2 mapping file alone, and one beside stray v1-looking keys.
        assert_eq!(Architecture::detect(["mapping.w_avg"]), Some(Architecture::StyleGan2));
        assert_eq!(
            Architecture::detect(["dense_extra", "synthesis.b8.conv0.weight"]),
            Some(Architecture::StyleGan2)
        );
        assert_eq!(Architecture::detect(["mean", "std", "densely"]), None);
        for a in Architecture::ALL {
            assert_eq!(a.ffhq_layout().architecture, a);
            assert_eq!(a.ffhq_layout().resolution, 1024);
        }
    }

    /// The family module is the only place outside `src/stylegan/` that names a family: every
    /// other module asks it (docs/design.md, "The generator concept").
    #[test]
    fn only_the_family_module_names_a_family_outside_stylegan() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offending = vec![];
        let mut files = vec![src.clone()];
        let mut read = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                if path != src.join("stylegan") {
                    files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                }
                continue;
            }
            if path.extension() != Some("rs".as_ref()) {
                continue;
            }
            read += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, line) in text.lines().enumerate() {
                if line.contains("StyleGan1") || line.contains("StyleGan2") {
                    offending.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        }
        assert!(read > 20, "only {read} source files found under {}", src.display());
        assert!(
            offending.is_empty(),
            "a family is named outside src/stylegan (ask stylegan::Architecture instead):\n{}",
            offending.join("\n")
        );
    }
}
