//! The VGG16 features of Image2StyleGAN's perceptual loss (Abdal et al., ICCV 2019): the
//! activations after conv1_1, conv1_2, conv3_2 and conv4_2 of torchvision's `vgg16`, on images
//! resized to 256x256 and normalised with the ImageNet mean and std.
//!
//! Weights come from a torchvision `vgg16` state dict (`features.N.weight` / `features.N.bias`;
//! the classifier is ignored), in any format [`crate::weights::load`] reads. Channel widths are
//! read off the shapes, so a narrower network of the same layout loads too (the tests use one).
use crate::weights::{self, StateDict};
use anyhow::{bail, Context};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// torchvision indices of the convolutions up to conv4_2, in order.
const CONVS: [usize; 9] = [0, 2, 5, 7, 10, 12, 14, 17, 19];
/// Positions (in `CONVS`) followed by 2x2 max pooling.
const POOL_AFTER: [usize; 3] = [1, 3, 6];
/// Positions whose (ReLU'd) outputs are the features: conv1_1, conv1_2, conv3_2, conv4_2.
const FEATURES: [usize; 4] = [0, 1, 5, 8];
/// Side the images are resized to.
pub const SIDE: i64 = 256;
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The 3x3 convolutions `features.{index}` of a torchvision `vgg16` state dict, in the order of
/// `indices` (each must take the previous one's channels; the first takes RGB), as float32 on
/// `device`. Shared by the perceptual loss here and LPIPS ([`crate::metrics::lpips`]).
pub fn load_convs(
    sd: &StateDict,
    indices: &[usize],
    device: Device,
) -> anyhow::Result<Vec<(Tensor, Tensor)>> {
    let mut convs = vec![];
    let mut channels = 3;
    for &index in indices {
        let get = |what: &str| -> anyhow::Result<Tensor> {
            let key = format!("features.{index}.{what}");
            let t = sd.get(&key).with_context(|| format!("missing key '{key}'"))?;
            Ok(t.to_kind(Kind::Float).to_device(device))
        };
        let (weight, bias) = (get("weight")?, get("bias")?);
        let ws = weight.size();
        if ws.len() != 4 || ws[1] != channels || ws[2..] != [3, 3] {
            bail!("'features.{index}.weight' has shape {ws:?}, expected [C, {channels}, 3, 3]");
        }
        if bias.size() != [ws[0]] {
            bail!("'features.{index}.bias' has shape {:?}, expected [{}]", bias.size(), ws[0]);
        }
        channels = ws[0];
        convs.push((weight, bias));
    }
    Ok(convs)
}

/// The frozen convolutions of VGG16 up to conv4_2.
#[derive(Debug)]
pub struct Vgg16Features {
    convs: Vec<(Tensor, Tensor)>,
    mean: Tensor,
    std: Tensor,
}

impl Vgg16Features {
    pub fn load(path: &Path, device: Device) -> anyhow::Result<Self> {
        let sd = weights::load(path)?;
        Self::from_state_dict(&sd, device)
            .with_context(|| format!("{}: not a torchvision vgg16 state dict", path.display()))
    }

    pub fn from_state_dict(sd: &StateDict, device: Device) -> anyhow::Result<Self> {
        let convs = load_convs(sd, &CONVS, device)?;
        let mean = Tensor::from_slice(&MEAN).view([1, 3, 1, 1]).to_device(device);
        let std = Tensor::from_slice(&STD).view([1, 3, 1, 1]).to_device(device);
        Ok(Self { convs, mean, std })
    }

    /// The four feature maps of `images` [B,3,H,W] in [0,1] (resized to 256x256: area
    /// averaging when larger, bilinear when smaller).
    pub fn features(&self, images: &Tensor) -> Vec<Tensor> {
        let x = crate::imageio::resize_square(images, SIDE);
        let mut x = (x - &self.mean) / &self.std;
        let mut out = vec![];
        for (i, (w, b)) in self.convs.iter().enumerate() {
            x = x.conv2d(w, Some(b), [1, 1], [1, 1], [1, 1], 1).relu();
            if FEATURES.contains(&i) {
                out.push(x.shallow_clone());
            }
            if POOL_AFTER.contains(&i) {
                x = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
        }
        out
    }

    /// Sum over the four feature maps of the mean squared difference (scalar).
    pub fn distance(a: &[Tensor], b: &[Tensor]) -> Tensor {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).square().mean(Kind::Float))
            .reduce(|p, q| p + q)
            .expect("four features")
    }
}
