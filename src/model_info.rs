//! `model.json`, the record `pulse import` and `pulse download` write into a model folder: what
//! the weights are (family, resolution, parameter counts), where they came from, under which
//! licence, and the sha256 of every file pulse wrote there. Read and written only here
//! (models/README.md describes the fields).
use crate::stylegan::Architecture;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The file name inside a model folder.
pub const FILE: &str = "model.json";
/// The `format` field.
pub const FORMAT: &str = "pulse-model/1";

/// A parameter count against the known total of the reference network, when it has that
/// network's architecture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub found: i64,
    pub expected: Option<i64>,
}

impl Count {
    pub fn matches(&self) -> Option<bool> {
        self.expected.map(|e| e == self.found)
    }
}

/// One source file of an import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub file: String,
    pub sha256: String,
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Parameter counts of the networks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameters {
    pub synthesis: Option<Count>,
    pub mapping: Option<Count>,
    /// Gs's trainable parameters as TensorFlow counts them (NVIDIA's TensorFlow pickles).
    pub tf_gs_trainables: Option<Count>,
}

/// How the imported mapping network's output statistics compare with PULSE's published fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FitAgreement {
    pub samples: i64,
    /// Largest |mean - published mean| / published std over the 512 dimensions.
    pub max_mean_offset: Option<f64>,
    /// Largest |ln(std / published std)| over the 512 dimensions.
    pub max_log_std_ratio: Option<f64>,
    pub agrees: bool,
}

/// Where the folder's Gaussian fit came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FitRecord {
    pub origin: String,
    #[serde(default)]
    pub agreement_with_pulse_ffhq: Option<FitAgreement>,
}

/// The contents of `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub format: String,
    /// `stylegan1` or `stylegan2`; folders written before StyleGAN2 have none and are v1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The named model `pulse download` installed (`ffhq`, `ffhq-stylegan2`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub sources: Vec<SourceRecord>,
    pub licence: String,
    pub resolution: i64,
    /// The synthesis network has the reference FFHQ network's architecture.
    pub ffhq_architecture: bool,
    #[serde(default)]
    pub parameters: Parameters,
    #[serde(default)]
    pub gaussian_fit: FitRecord,
    /// File name -> sha256 of every file pulse wrote into the folder.
    pub files: BTreeMap<String, String>,
    /// File name -> sha256 of the network files (`synthesis.*`, `mapping.*`, `gaussian_fit.*`,
    /// `w_avg.*`) that were in the folder when `pulse import --force` installed this network and
    /// that pulse did not write, so did not remove: the previous network's. While a file still
    /// holds these bytes it is refused rather than used with this network.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub superseded: BTreeMap<String, String>,
    pub date: String,
    pub pulse_version: String,
}

impl ModelInfo {
    /// Reads `<dir>/model.json`; `None` when there is none or it is not pulse's.
    pub fn read(dir: &Path) -> Option<ModelInfo> {
        let bytes = std::fs::read(dir.join(FILE)).ok()?;
        serde_json::from_slice::<ModelInfo>(&bytes).ok().filter(|m| m.format == FORMAT)
    }

    /// The JSON text, pretty-printed.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("model.json is always serialisable")
    }

    /// The sha256 `model.json` records for a file of the folder.
    pub fn file_sha(&self, name: &str) -> Option<&str> {
        self.files.get(name).map(String::as_str)
    }

    /// Checks a network file of the folder against what this record says of it (`sha256` is
    /// the file's): refused when it is a file left from the previous network
    /// ([`ModelInfo::superseded`]), or a network file pulse wrote that no longer holds what it
    /// wrote. A Gaussian fit that differs from the one pulse wrote is a fit the user put there:
    /// used as given.
    pub fn check_file(&self, path: &Path, sha256: &str) -> Result<(), crate::Invalid> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let shown = crate::files::escaped(path);
        let dir = crate::files::escaped(crate::files::parent_dir(path));
        let is_fit = name.starts_with("gaussian_fit.");
        if self.superseded.get(&name).is_some_and(|s| s == sha256) {
            let what = if is_fit {
                format!("it is not this network's Gaussian fit: remove it, or compute this network's fit with `pulse fit-gaussian --model {dir}`")
            } else {
                "it is not part of this network: remove it".to_string()
            };
            return Err(crate::Invalid(format!(
                "{shown}: left from the network this folder held before `pulse import --force` (pulse did not write it, so did not remove it); {what}"
            )));
        }
        match self.file_sha(&name) {
            Some(recorded) if recorded != sha256 && !is_fit => Err(crate::Invalid(format!(
                "{shown}: does not hold what pulse wrote there (sha256 {sha256}, model.json recorded {recorded}): damaged or replaced; import the model again (`pulse import FILE -o {dir} --force`)"
            ))),
            _ => Ok(()),
        }
    }

    /// Where the folder's Gaussian fit file `path` (with `sha256`) came from, in words: what
    /// pulse recorded when it wrote it, or that the user put it there.
    pub fn fit_origin(&self, path: &Path, sha256: &str) -> String {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if self.superseded.get(&name).is_some_and(|s| s == sha256) {
            return "left from the previous network (refused: remove it, or run `pulse fit-gaussian`)"
                .into();
        }
        match self.file_sha(&name) {
            Some(s) if s == sha256 => self.gaussian_fit.origin.clone(),
            _ => "added to the folder by hand (not written by pulse), used as given".into(),
        }
    }

    /// The URL the first source was downloaded from.
    pub fn source_url(&self) -> Option<&str> {
        self.sources.first().and_then(|s| s.url.as_deref())
    }
}

/// The `architecture` field of the folder's `model.json`, when it has one.
///
/// Read on its own (not through [`ModelInfo`]) because a folder made by hand or by an older
/// version may hold a `model.json` with this field and few others.
pub fn read_architecture(dir: &Path) -> anyhow::Result<Option<Architecture>> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("{}: cannot read: {e}", crate::files::escaped(&path)),
    };
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", crate::files::escaped(&path)))?;
    match json.get("architecture") {
        None => Ok(None),
        Some(serde_json::Value::String(name)) => match Architecture::from_name(name) {
            Some(a) => Ok(Some(a)),
            None => anyhow::bail!(
                "{}: unknown architecture '{name}' (expected stylegan1 or stylegan2)",
                crate::files::escaped(&path)
            ),
        },
        Some(v) => anyhow::bail!(
            "{}: 'architecture' is {v}, expected a string (stylegan1 or stylegan2)",
            crate::files::escaped(&path)
        ),
    }
}

/// Records a Gaussian fit pulse has just written into a model folder (`path`, computed on first
/// use or by `pulse fit-gaussian`) in the folder's `model.json`, when it has one of pulse's:
/// its sha256 among the files pulse wrote, and `origin`. The file is rewritten atomically.
pub fn record_fit(dir: &Path, path: &Path, origin: &str) -> anyhow::Result<()> {
    let Some(mut info) = ModelInfo::read(dir) else { return Ok(()) };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let sha = crate::weights::sha256_file(path)
        .with_context(|| format!("reading {}", crate::files::escaped(path)))?;
    info.files.insert(name.clone(), sha);
    info.superseded.remove(&name);
    info.gaussian_fit = FitRecord { origin: origin.to_string(), agreement_with_pulse_ffhq: None };
    let json = dir.join(FILE);
    crate::files::write_bytes_atomic(&json, &info.to_json()).with_context(|| {
        format!("{}: cannot record the Gaussian fit", crate::files::escaped(&json))
    })
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, whole seconds).
pub fn utc_now() -> String {
    format_utc(time::OffsetDateTime::now_utc())
}

fn format_utc(t: time::OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        let at = |s: i64| format_utc(time::OffsetDateTime::from_unix_timestamp(s).unwrap());
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn folders_without_architecture_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"format":"pulse-model/1","sources":[],"licence":"x","resolution":1024,
            "ffhq_architecture":true,"parameters":{"synthesis":{"found":1,"expected":null},
            "mapping":null,"tf_gs_trainables":null},"gaussian_fit":{"origin":"none",
            "agreement_with_pulse_ffhq":null},"w_avg":false,"files":{"synthesis.safetensors":"ab"},
            "date":"d","pulse_version":"0"}"#;
        std::fs::write(dir.path().join(FILE), old).unwrap();
        let info = ModelInfo::read(dir.path()).unwrap();
        assert_eq!(info.architecture, None);
        assert_eq!(info.file_sha("synthesis.safetensors"), Some("ab"));
    }
}
