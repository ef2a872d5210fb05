//! What made a restored photo, recorded in its PNG (an iTXt chunk, [`KEY`]): a rerun skips an
//! output only when the same photo, model, enlargement and settings made it, and a folder's own
//! outputs are not taken for photos when `-o` is the photos' folder (issue 32).
use super::RestoreOptions;
use crate::files::escaped;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;

/// The PNG text chunk's keyword.
pub const KEY: &str = "pulse-restore";

/// Settings that may differ between the runs of one job without changing a result: where it
/// ran and how it batched (each face's seed does not depend on its batch).
const PER_MACHINE: [&str; 4] = ["device", "batch_size", "deterministic", "cuda_graph"];

/// How an output was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Made {
    /// The photo's file name (escaped).
    pub source: String,
    pub model_sha256: String,
    pub upscale: i64,
    /// Faces restored in it: with none, the output is the plain enlargement, which neither the
    /// model nor the search settings change.
    pub faces: usize,
    /// The report's settings, less [`PER_MACHINE`].
    pub settings: Map<String, Value>,
}

impl Made {
    pub fn new(opts: &RestoreOptions, model: &crate::model::Model, photo: &Path) -> Self {
        let settings = super::report::settings(opts, model.layout(), model.device);
        let mut settings = match serde_json::to_value(settings) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        PER_MACHINE.iter().for_each(|k| drop(settings.remove(*k)));
        Self {
            source: photo.file_name().map(crate::files::escaped_name).unwrap_or_default(),
            model_sha256: model.sha256.clone(),
            upscale: opts.upscale,
            faces: 0,
            settings,
        }
    }

    pub fn text(&self) -> String {
        serde_json::to_string(self).expect("plain JSON")
    }

    /// The record in the PNG at `path`: `None` when pulse restore did not write it.
    pub fn read(path: &Path) -> Option<Self> {
        serde_json::from_str(&crate::imageio::png_text(path, KEY)?).ok()
    }

    /// Why an output made as `self` says is not what `wanted` would make (`None`: it is).
    pub fn differs(&self, wanted: &Made) -> Option<String> {
        if self.source != wanted.source {
            return Some(format!("from another photo ({})", self.source));
        }
        if self.upscale != wanted.upscale {
            return Some(format!("with --upscale {}", self.upscale));
        }
        // Without a face only the detection decides the output.
        let only_detection = ["min_face"];
        let keys: Vec<&String> = wanted
            .settings
            .keys()
            .chain(self.settings.keys().filter(|k| !wanted.settings.contains_key(*k)))
            .filter(|k| self.faces > 0 || only_detection.contains(&k.as_str()))
            .collect();
        if self.faces > 0 && self.model_sha256 != wanted.model_sha256 {
            return Some("by another model".into());
        }
        let changed: Vec<String> = keys
            .into_iter()
            .filter(|k| self.settings.get(*k) != wanted.settings.get(*k))
            .map(|k| {
                let show = |v: Option<&Value>| v.map_or("none".to_string(), Value::to_string);
                format!(
                    "{k} {} instead of {}",
                    show(self.settings.get(k)),
                    show(wanted.settings.get(k))
                )
            })
            .collect();
        (!changed.is_empty()).then(|| format!("with other settings ({})", changed.join(", ")))
    }
}

/// The refusal of `photo` when an existing output of it was not made as `wanted`.
pub fn check(photo: &Path, output: &Path, wanted: &Made) -> anyhow::Result<()> {
    let Some(made) = Made::read(output) else {
        anyhow::bail!(
            "{}: {} exists and was not made by pulse restore; remove it, write to another folder, or --overwrite replaces it",
            escaped(photo),
            escaped(output)
        );
    };
    if let Some(why) = made.differs(wanted) {
        anyhow::bail!(
            "{}: {} exists but was made {why}; --overwrite redoes it, or write to another folder",
            escaped(photo),
            escaped(output)
        );
    }
    Ok(())
}
