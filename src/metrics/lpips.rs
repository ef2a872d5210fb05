//! LPIPS, the learned perceptual image patch similarity of Zhang et al. (CVPR 2018), VGG variant,
//! version 0.1, as the `lpips` package (0.1.4) computes it: both images scaled from [-1,1] by
//! `(x - shift) / scale`, through torchvision's `vgg16` features, tapped after relu1_2, relu2_2,
//! relu3_3, relu4_3 and relu5_3; each tap unit-normalised over channels (`f / (|f| + 1e-10)`),
//! squared difference, the learned 1x1 linear layer (non-negative channel weights), the spatial
//! mean; the five summed.
//!
//! The VGG16 trunk is torchvision's ImageNet `vgg16-397923af.pth` (`pulse download vgg16`; where
//! it is looked for: [`find_vgg16`]). The linear layers are the package's `weights/v0.1/vgg.pth`
//! (BSD-2-Clause, models/lpips/), built into the binary.
use crate::editing::vgg::load_convs;
use crate::weights::{self, StateDict};
use anyhow::{bail, Context};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tch::{Device, Kind, Tensor};

/// torchvision's file name of the ImageNet VGG16 (its first 8 hex digits are of its SHA-256).
pub const VGG16_FILE: &str = "vgg16-397923af.pth";
/// The start of the SHA-256 of [`VGG16_FILE`], as torchvision names it.
pub const VGG16_SHA256_PREFIX: &str = "397923af";
/// Where `pulse download vgg16` puts the file by default, and the first place looked in.
pub const DEFAULT_DIR: &str = "models/vgg16";
/// Environment variable naming the VGG16 file; set but empty: no VGG16 (LPIPS off).
pub const VGG16_VAR: &str = "PULSE_VGG16";
/// Images are compared at this side in `pulse eval` (area-averaged down from the full
/// resolution): the size LPIPS was calibrated at (its 64x64 patches come from 256-ish images)
/// and one sixteenth of the work of 1024.
pub const EVAL_SIDE: i64 = 256;
/// Targets smaller than this are refused by the LPIPS loss term: VGG's deepest taps would be
/// a few pixels wide.
pub const MIN_LOSS_SIDE: i64 = 256;

/// The linear layers of `lpips` 0.1.4 (`lpips/weights/v0.1/vgg.pth`, BSD-2-Clause).
const LINEAR_LAYERS: &[u8] = include_bytes!("../../models/lpips/vgg.pth");

/// torchvision indices of VGG16's 13 convolutions.
const CONVS: [usize; 13] = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28];
/// Positions (in `CONVS`) whose ReLU outputs are tapped: relu1_2 .. relu5_3. The 2x2 max
/// pooling follows each of them but the last.
const TAPS: [usize; 5] = [1, 3, 6, 9, 12];
/// `lpips.ScalingLayer`.
const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
const SCALE: [f32; 3] = [0.458, 0.448, 0.450];

/// The frozen LPIPS network.
#[derive(Debug)]
pub struct Lpips {
    convs: Vec<(Tensor, Tensor)>,
    /// [1,C,1,1] per tap.
    lins: Vec<Tensor>,
    shift: Tensor,
    scale: Tensor,
    pub device: Device,
}

impl Lpips {
    /// Loads the VGG16 trunk from a torchvision `vgg16` state dict file, with the built-in
    /// linear layers.
    pub fn load(vgg16: &Path, device: Device) -> anyhow::Result<Self> {
        let sd = weights::load(vgg16)?;
        Self::from_vgg16(&sd, device)
            .with_context(|| format!("{}: not a torchvision vgg16 state dict", vgg16.display()))
    }

    /// The network from a torchvision `vgg16` state dict, with the built-in linear layers.
    pub fn from_vgg16(vgg16: &StateDict, device: Device) -> anyhow::Result<Self> {
        let lins = weights::load_bytes(LINEAR_LAYERS, Path::new("models/lpips/vgg.pth"))?;
        Self::from_state_dicts(vgg16, &lins, device)
    }

    /// The network from a `vgg16` state dict (`features.N.*`) and the linear layers'
    /// (`linK.model.1.weight`, [1,C,1,1]).
    pub fn from_state_dicts(
        vgg16: &StateDict,
        linear: &StateDict,
        device: Device,
    ) -> anyhow::Result<Self> {
        let convs = load_convs(vgg16, &CONVS, device)?;
        let mut lins = vec![];
        for (k, &tap) in TAPS.iter().enumerate() {
            let key = format!("lin{k}.model.1.weight");
            let w = linear.get(&key).with_context(|| format!("LPIPS: missing key '{key}'"))?;
            let channels = convs[tap].0.size()[0];
            if w.size() != [1, channels, 1, 1] {
                bail!("LPIPS: '{key}' has shape {:?}, expected [1, {channels}, 1, 1]", w.size());
            }
            lins.push(w.to_kind(Kind::Float).to_device(device));
        }
        let shift = Tensor::from_slice(&SHIFT).view([1, 3, 1, 1]).to_device(device);
        let scale = Tensor::from_slice(&SCALE).view([1, 3, 1, 1]).to_device(device);
        Ok(Self { convs, lins, shift, scale, device })
    }

    /// The five channel-normalised taps of images [B,3,H,W] in [0,1].
    pub fn features(&self, images: &Tensor) -> Vec<Tensor> {
        let x = images.to_kind(Kind::Float) * 2.0 - 1.0;
        let mut x = (x - &self.shift) / &self.scale;
        let mut out = vec![];
        for (i, (w, b)) in self.convs.iter().enumerate() {
            x = x.conv2d(w, Some(b), [1, 1], [1, 1], [1, 1], 1).relu();
            if TAPS.contains(&i) {
                let norm = x.square().sum_dim_intlist(1, true, Kind::Float).sqrt();
                out.push(&x / (norm + 1e-10));
                if i != TAPS[TAPS.len() - 1] {
                    x = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
                }
            }
        }
        out
    }

    /// LPIPS [B] between the taps of two batches ([`features`](Self::features)).
    pub fn distance_features(&self, a: &[Tensor], b: &[Tensor]) -> Tensor {
        a.iter()
            .zip(b)
            .zip(&self.lins)
            .map(|((x, y), lin)| {
                (x - y).square().conv2d(lin, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1).mean_dim(
                    [1i64, 2, 3].as_slice(),
                    false,
                    Kind::Float,
                )
            })
            .reduce(|p, q| p + q)
            .expect("five taps")
    }

    /// LPIPS [B] between images [B,3,H,W] in [0,1] (the `lpips` package's `LPIPS(net='vgg')`
    /// of the same images in [-1,1]).
    pub fn distance(&self, a: &Tensor, b: &Tensor) -> Tensor {
        self.distance_features(&self.features(a), &self.features(b))
    }
}

/// The VGG16 file LPIPS uses, looked for in this order: `explicit` (`--vgg FILE`), then
/// `$PULSE_VGG16` (set but empty: none, LPIPS off), then `models/vgg16/vgg16-397923af.pth`
/// (where `pulse download vgg16` puts it), then torchvision's own cache
/// (`$TORCH_HOME/hub/checkpoints/`, by default `~/.cache/torch/hub/checkpoints/`), where any
/// program that used torchvision's pretrained VGG16 left it. `Ok(None)` when none is found; an
/// error when a file named explicitly or by `$PULSE_VGG16` does not exist.
pub fn find_vgg16(explicit: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    let named = |p: &Path, by: &str| -> anyhow::Result<Option<PathBuf>> {
        if p.is_file() {
            Ok(Some(p.to_path_buf()))
        } else {
            Err(crate::Invalid(format!(
                "{}: no such VGG16 weight file ({by}); `pulse download vgg16` fetches it",
                crate::files::escaped(p)
            ))
            .into())
        }
    };
    if let Some(p) = explicit {
        return named(p, "--vgg");
    }
    if let Some(v) = std::env::var_os(VGG16_VAR) {
        if v.is_empty() {
            return Ok(None);
        }
        return named(Path::new(&v), &format!("${VGG16_VAR}"));
    }
    Ok(default_places().into_iter().find(|p| p.is_file()))
}

/// The places [`find_vgg16`] looks in when no file is named.
pub fn default_places() -> Vec<PathBuf> {
    let mut places = vec![Path::new(DEFAULT_DIR).join(VGG16_FILE)];
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let torch_home = env("TORCH_HOME")
        .or_else(|| env("XDG_CACHE_HOME").map(|c| c.join("torch")))
        .or_else(|| env("HOME").map(|h| h.join(".cache").join("torch")));
    if let Some(t) = torch_home {
        places.push(t.join("hub").join("checkpoints").join(VGG16_FILE));
    }
    places
}

/// What to tell a user who has no VGG16 weights.
pub fn missing_vgg16_help() -> String {
    let places: Vec<String> =
        default_places().iter().map(|p| crate::files::escaped(p).to_string()).collect();
    format!(
        "no VGG16 weights for LPIPS: run `pulse download vgg16`, or name torchvision's {VGG16_FILE} with --vgg FILE or ${VGG16_VAR} (looked in {})",
        places.join(", ")
    )
}

thread_local! {
    /// The LPIPS networks the loss term uses, one per device, loaded by [`prepare_loss`] or
    /// given by [`use_for_loss`]. The loss is evaluated deep inside the step, which has no place
    /// for a network: this keeps the frozen weights out of every search signature.
    static LOSS_NETS: RefCell<Vec<Rc<Lpips>>> = const { RefCell::new(Vec::new()) };
}

/// Makes `net` the network of the LPIPS loss term on its device (e.g. `pulse eval --vgg`).
pub fn use_for_loss(net: Rc<Lpips>) {
    LOSS_NETS.with(|n| {
        let mut n = n.borrow_mut();
        n.retain(|m| m.device != net.device);
        n.push(net);
    })
}

/// Checks that a search whose loss has an LPIPS term can run on targets of `side` px, and
/// loads the network (from [`find_vgg16`]) unless one is already there for `device`.
pub fn prepare_loss(side: i64, device: Device) -> anyhow::Result<()> {
    if side < MIN_LOSS_SIDE {
        return Err(crate::Invalid(format!(
            "the LPIPS loss term needs targets of at least {MIN_LOSS_SIDE}x{MIN_LOSS_SIDE} (VGG16's deepest features of a {side}x{side} image are too small); use L2 or L1"
        ))
        .into());
    }
    if LOSS_NETS.with(|n| n.borrow().iter().any(|m| m.device == device)) {
        return Ok(());
    }
    let Some(path) = find_vgg16(None)? else {
        return Err(crate::Invalid(missing_vgg16_help()).into());
    };
    use_for_loss(Rc::new(Lpips::load(&path, device)?));
    Ok(())
}

/// The LPIPS loss term [B] between `low_res` and `target` (both [B,3,s,s] in [0,1], at the
/// target's size). Panics unless [`prepare_loss`] succeeded first for this device (the search
/// calls it before its first step).
pub fn loss_term(low_res: &Tensor, target: &Tensor) -> Tensor {
    let device = low_res.device();
    let net = LOSS_NETS
        .with(|n| n.borrow().iter().find(|m| m.device == device).cloned())
        .expect("the LPIPS loss term is evaluated only after metrics::lpips::prepare_loss");
    let target_features = tch::no_grad(|| net.features(target));
    net.distance_features(&net.features(&low_res.to_kind(Kind::Float)), &target_features)
        .to_kind(low_res.kind())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_linear_layers_load_and_are_non_negative() {
        let sd = weights::load_bytes(LINEAR_LAYERS, Path::new("vgg.pth")).unwrap();
        for (k, c) in [64, 128, 256, 512, 512].into_iter().enumerate() {
            let w = sd.get(&format!("lin{k}.model.1.weight")).unwrap();
            assert_eq!(w.size(), [1, c, 1, 1]);
            assert!(w.min().double_value(&[]) >= 0.0);
        }
    }
}
