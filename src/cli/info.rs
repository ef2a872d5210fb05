//! `pulse info`: versions and devices, then a check of every model folder it can find (the
//! default `models/ffhq`, `$PULSE_MODEL`, each `--model`, and the folders in `models/` that hold
//! a network), with the next command to run when something is missing. A folder is "ready" only
//! when it loads as every command loads it (weights, `model.json`, the recorded checksums), so
//! this reads the weights of each folder it lists (about a second for the real model).
use super::exit::Exit;
use clap::Args;
use pulse::files::escaped;
use pulse::model::{self, find_file, Model};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Also check this model folder (repeatable).
    #[arg(long = "model", value_name = "DIR")]
    pub models: Vec<PathBuf>,
}

pub fn info(a: InfoArgs) -> anyhow::Result<Exit> {
    println!("pulse {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch: {}", option_env!("PULSE_LIBTORCH_VERSION").unwrap_or("unknown"));
    let cuda = tch::Cuda::is_available();
    println!("cuda: {}", if cuda { "available" } else { "not available" });
    println!("gpus: {}", tch::Cuda::device_count());
    for (i, name) in pulse::system::gpu_names().iter().enumerate() {
        println!("  cuda:{i}: {name}");
    }
    println!(
        "cuda graphs: {}",
        if pulse::ops::cuda_graphs_built() { "built in" } else { "not in this build" }
    );
    println!("cpu threads: {}", tch::get_num_threads());
    let env_model = std::env::var_os("PULSE_MODEL").filter(|v| !v.is_empty()).map(PathBuf::from);
    let folders = model_folders(&a.models, env_model.as_deref());
    println!("models:");
    let mut usable = false;
    let mut named_unusable = false;
    for (dir, found_as) in &folders {
        let check = FolderCheck::of(dir);
        // Loaded as every command loads it: "ready" is said only of a folder that loads.
        let loaded = check.synthesis.as_ref().map(|_| Model::load(dir, tch::Device::Cpu));
        usable |= matches!(loaded, Some(Ok(_)));
        if a.models.contains(dir) && !matches!(loaded, Some(Ok(_))) {
            named_unusable = true;
        }
        print!("{}", check.describe(dir, &found_as.join(", "), loaded.as_ref()));
        if let (true, Some(Ok(model))) = (a.models.contains(dir), &loaded) {
            print!("{}", describe_layout(model));
        }
    }
    if !usable {
        // The bundled test model is a path in pulse's checkout: offered only where it is.
        let test_model = Path::new("models/test-1024");
        if model::find_file(test_model, "synthesis").is_some() {
            println!(
                "next: `pulse download ffhq` installs the real model in {}; to try everything first, use the bundled test model: `pulse upsample examples/faces/astronaut32.png --model models/test-1024` (random weights: textures, not faces)",
                model::DEFAULT_DIR
            );
        } else {
            println!(
                "next: `pulse download ffhq` installs the real model in {} (below this folder), or name a model folder with --model DIR",
                model::DEFAULT_DIR
            );
        }
    }
    Ok(if named_unusable { Exit::Refused } else { Exit::Success })
}

/// The generator a folder named with `--model` holds, as the search sees it.
fn describe_layout(model: &Model) -> String {
    let l = model.layout();
    let mut out = format!("    architecture: {}\n", l.architecture);
    out += &format!("    resolution: {}x{}\n", l.resolution, l.resolution);
    out += &format!("    w+ rows: {}\n", l.w_rows);
    out += &format!("    noise maps: {} (sides {:?})\n", l.noise_maps(), l.noise_sides);
    out += &format!("    default bad noise maps: {:?}\n", l.default_bad_noise);
    out += &format!("    truncation rows: {}\n", l.truncation_cutoff);
    out += &format!("    synthesis sha256: {}\n", model.sha256);
    out
}

/// How a folder found by looking through `models/` is labelled.
const SCANNED: &str = "in models/";

/// The folders to check, each with how it was found, in this order: the default, `$PULSE_MODEL`
/// (the folder commands use when no `--model` is given, if set), each `--model`, then every
/// folder of `models/` holding a synthesis network. A folder found several ways is listed once,
/// with each way it was named.
fn model_folders(named: &[PathBuf], env_model: Option<&Path>) -> Vec<(PathBuf, Vec<String>)> {
    let mut found: Vec<(PathBuf, &str)> = vec![(PathBuf::from(model::DEFAULT_DIR), "default")];
    if let Some(dir) = env_model {
        found.push((dir.to_path_buf(), "$PULSE_MODEL"));
    }
    found.extend(named.iter().map(|d| (d.clone(), "--model")));
    let parent = Path::new(model::DEFAULT_DIR).parent().unwrap_or(Path::new("."));
    let mut in_models: Vec<PathBuf> = std::fs::read_dir(parent)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    in_models.retain(|d| find_file(d, "synthesis").is_some());
    in_models.sort();
    found.extend(in_models.into_iter().map(|d| (d, SCANNED)));
    let mut folders: Vec<(PathBuf, Vec<String>)> = vec![];
    for (dir, how) in found {
        let same = |d: &PathBuf| {
            d == &dir
                || matches!((pulse::files::canonical(d), pulse::files::canonical(&dir)), (Some(a), Some(b)) if a == b)
        };
        match folders.iter_mut().find(|(d, _)| same(d)) {
            // The scan of models/ only adds folders not found otherwise.
            Some((_, hows)) if how != SCANNED && !hows.iter().any(|h| h.as_str() == how) => {
                hows.push(how.to_string())
            }
            Some(_) => {}
            None => folders.push((dir, vec![how.to_string()])),
        }
    }
    folders
}

/// What a model folder holds, from its file names and `model.json`.
#[derive(Debug, Default)]
struct FolderCheck {
    exists: bool,
    is_dir: bool,
    synthesis: Option<PathBuf>,
    mapping: Option<PathBuf>,
    fit: Option<PathBuf>,
    /// `model.json`, when present and readable as JSON.
    meta: Option<serde_json::Value>,
    /// Why `model.json` could not be read, when it exists.
    meta_error: Option<String>,
}

impl FolderCheck {
    fn of(dir: &Path) -> Self {
        if !dir.is_dir() {
            return Self { exists: dir.exists(), ..Self::default() };
        }
        let json = dir.join("model.json");
        let (meta, meta_error) = match std::fs::read(&json) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
            Err(e) => (None, Some(e.to_string())),
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(format!("not JSON: {e}"))),
            },
        };
        Self {
            exists: true,
            is_dir: true,
            synthesis: find_file(dir, "synthesis"),
            mapping: find_file(dir, "mapping"),
            fit: find_file(dir, "gaussian_fit"),
            meta,
            meta_error,
        }
    }

    /// The generator's family as commands see it: the loaded model's, else `model.json`'s
    /// record, else what the synthesis file's keys say.
    fn architecture(&self, loaded: Option<&anyhow::Result<Model>>) -> String {
        if let Some(Ok(model)) = loaded {
            return model.architecture().to_string();
        }
        if let Some(recorded) = self.meta_str("architecture") {
            return recorded;
        }
        let sd = self.synthesis.as_deref().map(pulse::weights::load);
        match sd {
            Some(Ok(sd)) => pulse::stylegan::Architecture::of_synthesis(&sd).to_string(),
            _ => "family unknown".into(),
        }
    }

    fn meta_str(&self, field: &str) -> Option<String> {
        let v = self.meta.as_ref()?.get(field)?;
        Some(v.as_str().map_or_else(|| v.to_string(), str::to_string))
    }

    /// Where the folder's fit came from: what `model.json` recorded when pulse wrote it, or
    /// that the user put it there.
    fn fit_origin(&self, dir: &Path) -> String {
        let Some(path) = &self.fit else { return String::new() };
        let Some(info) = pulse::model_info::ModelInfo::read(dir) else {
            return "origin not recorded (no model.json of pulse's)".into();
        };
        match pulse::weights::sha256_file(path) {
            Ok(sha) => info.fit_origin(path, &sha),
            Err(e) => format!("cannot read: {e}"),
        }
    }

    /// The lines `pulse info` prints for this folder: what is there, then `next:` lines.
    /// `loaded` is the result of loading it (`None`: it has no synthesis network).
    fn describe(
        &self,
        dir: &Path,
        found_as: &str,
        loaded: Option<&anyhow::Result<Model>>,
    ) -> String {
        let shown = escaped(dir);
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        let is_default = dir == Path::new(model::DEFAULT_DIR);
        if !self.exists {
            line(format!("  {shown} ({found_as}): not found"));
            line(format!(
                "    next: {}",
                if is_default {
                    "`pulse download ffhq` (the real model, CC BY-NC 4.0), or `pulse import FILE -o models/ffhq` with a file you have".to_string()
                } else {
                    format!("check the path, or `pulse import FILE -o {shown}`")
                }
            ));
            return out;
        }
        if !self.is_dir {
            line(format!("  {shown} ({found_as}): not a folder (a model is a folder holding synthesis.pt or synthesis.safetensors)"));
            return out;
        }
        let resolution =
            self.meta_str("resolution").map(|r| format!(", {r}x{r}")).unwrap_or_default();
        line(format!("  {shown} ({found_as}): {}{resolution}", self.architecture(loaded)));
        let licence = match (&self.meta, &self.meta_error) {
            (Some(_), _) => {
                self.meta_str("licence").unwrap_or_else(|| "not recorded in model.json".into())
            }
            (None, Some(e)) => format!("unknown (model.json: {e})"),
            (None, None) => "unknown (no model.json; see models/README.md)".into(),
        };
        line(format!("    licence: {licence}"));
        let file = |f: &Option<PathBuf>| {
            f.as_ref()
                .and_then(|p| p.file_name())
                .map_or_else(|| "missing".to_string(), |n| escaped(Path::new(n)))
        };
        line(format!("    synthesis: {}", file(&self.synthesis)));
        line(format!(
            "    mapping: {}",
            if self.mapping.is_some() {
                file(&self.mapping)
            } else {
                "missing (needed by generate, embed, and to compute a Gaussian fit)".into()
            }
        ));
        line(format!(
            "    gaussian fit: {}",
            if self.fit.is_some() {
                format!("{} ({})", file(&self.fit), self.fit_origin(dir))
            } else {
                "missing (upsample needs it)".into()
            }
        ));
        let model_flag = if is_default { String::new() } else { format!(" --model {shown}") };
        if let Some(Err(e)) = loaded {
            let why = format!("{e:#}").replace('\n', " ");
            line(format!("    cannot load: {why}"));
            line(format!(
                "    next: what the line above says, or import the model again: `pulse import FILE -o {shown} --force`"
            ));
        } else if self.synthesis.is_none() {
            line(format!(
                "    next: {}",
                if is_default {
                    "`pulse download ffhq --force`, or `pulse import FILE -o models/ffhq --force`"
                        .to_string()
                } else {
                    format!("`pulse import FILE -o {shown} --force` with a StyleGAN weight file")
                }
            ));
        } else if self.fit.is_none() && self.mapping.is_some() {
            line(format!(
                "    next: `pulse fit-gaussian{model_flag}` (or let the first upsample compute it)"
            ));
        } else if self.fit.is_none() {
            line(format!(
                "    next: add a gaussian_fit.pt or a mapping network to compute one from: `pulse import FILE... -o {shown} --force`"
            ));
        } else {
            line(format!("    ready: `pulse upsample IMAGE{model_flag}`"));
        }
        out
    }
}
