//! Helpers shared by the command-line tests.
#![allow(dead_code)]
pub mod pickle;
use std::path::{Path, PathBuf};

pub fn pulse() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("pulse").unwrap();
    cmd.env_remove("PULSE_MODEL");
    cmd
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A test fixture by its reference name. Three reference files are also the bundled test model
/// and are kept once, in `models/test-1024/` (tests/fixtures/README.md lists them).
pub fn fixture(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match name {
        "synthesis_1024_c16.pt" => root.join("models/test-1024/synthesis.pt"),
        "mapping.pt" => root.join("models/test-1024/mapping.pt"),
        "gaussian_fit_ffhq.pt" => root.join("models/test-1024/gaussian_fit.pt"),
        _ => root.join("tests/fixtures").join(name),
    }
}

/// A bundled example face, as a string path.
pub fn face(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/faces")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A temporary folder, removed when dropped.
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// A model folder with the 128x128 fixture network and the FFHQ Gaussian fit.
    pub fn model_128(&self) -> PathBuf {
        self.model("m128", "synthesis_128_c32.pt", false)
    }

    /// The 128x128 network converted to safetensors, with the Gaussian fit: the same
    /// architecture and weights as `model_128`, but another synthesis file (another sha256).
    pub fn model_converted(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        let sd = pulse::weights::load(&fixture("synthesis_128_c32.pt")).unwrap();
        pulse::weights::save_safetensors(&sd, &dir.join("synthesis.safetensors"), None).unwrap();
        std::fs::copy(fixture("gaussian_fit_ffhq.pt"), dir.join("gaussian_fit.pt")).unwrap();
        dir
    }

    /// A model folder from fixture files; `mapping` adds a mapping network whose outputs spread
    /// (see [`write_spread_mapping`]).
    pub fn model(&self, name: &str, synthesis: &str, mapping: bool) -> PathBuf {
        let dir = self.path(name);
        if !dir.exists() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(fixture(synthesis), dir.join("synthesis.pt")).unwrap();
            std::fs::copy(fixture("gaussian_fit_ffhq.pt"), dir.join("gaussian_fit.pt")).unwrap();
            if mapping {
                write_spread_mapping(&dir.join("mapping.safetensors"));
            }
        }
        dir
    }
}

/// The reference mapping network with its dense weights times 100, written as safetensors.
/// The reference's random weights, scaled at run time by the mapping's learning-rate
/// multiplier 0.01, make outputs that differ by about 1e-9 whatever z is: truncation, directions
/// between generated faces and anything else that compares faces would hang on rounding. Times
/// 100 the effective weights have He scale (`sqrt(2/512)`), so different z give different w.
pub fn write_spread_mapping(path: &Path) {
    let sd = pulse::weights::load(&fixture("mapping.pt")).unwrap();
    let scaled: Vec<(String, tch::Tensor)> = sd
        .iter()
        .map(|(k, t)| (k.to_string(), if k.ends_with("weight") { t * 100.0 } else { t.copy() }))
        .collect();
    let sd = pulse::weights::StateDict::from_pairs(scaled);
    pulse::weights::save_safetensors(&sd, path, None).unwrap();
}

pub fn image_size(path: &Path) -> (u32, u32) {
    image::image_dimensions(path).unwrap()
}

pub fn pixels(path: &Path) -> Vec<u8> {
    image::open(path).unwrap().to_rgb8().into_raw()
}

pub fn pixels_of(png: &[u8]) -> Vec<u8> {
    image::load_from_memory(png).unwrap().to_rgb8().into_raw()
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A latent file's `w_plus`, flattened.
pub fn latent_w_plus(path: &Path) -> Vec<f32> {
    let latent = pulse::latent::LatentFile::read(path).unwrap();
    Vec::try_from(latent.w_plus.flatten(0, -1)).unwrap()
}

/// Largest difference between the `w_plus` of `<name>.latent.safetensors` in two output folders.
pub fn w_plus_diff(a: &Path, b: &Path, name: &str) -> f32 {
    let file = format!("{name}.latent.safetensors");
    let (x, y) = (latent_w_plus(&a.join(&file)), latent_w_plus(&b.join(&file)));
    x.iter().zip(&y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max)
}

pub fn write_rgb_png(path: &Path, w: u32, h: u32) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 128]))
        .save(path)
        .unwrap();
}

pub fn write_rgba_png(path: &Path, side: u32, f: impl Fn(u32, u32) -> [u8; 4]) {
    image::RgbaImage::from_fn(side, side, |x, y| image::Rgba(f(x, y))).save(path).unwrap();
}

/// A PNG header declaring 100000x100000 pixels, and nothing else.
pub fn png_bomb() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend_from_slice(&100_000u32.to_be_bytes());
    b.extend_from_slice(&100_000u32.to_be_bytes());
    b.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    b
}
