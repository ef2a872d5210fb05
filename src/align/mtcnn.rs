//! The three networks of MTCNN (Zhang et al., "Joint Face Detection and Alignment using
//! Multi-task Cascaded Convolutional Networks", IEEE SPL 2016) in the layout of facenet-pytorch's
//! `PNet`, `RNet` and `ONet`, so that its state dicts (`models/mtcnn/*.pt`) load by key:
//! convolutions, per-channel PReLU, max-pooling with `ceil_mode`, linear layers.
//!
//! Every network takes images normalised as `(x - 127.5) / 128` (x in 0..255) and returns
//! box-regression offsets and face probabilities (softmax over {not face, face}); O-Net also
//! returns the five landmarks as fractions of its input box.
use crate::weights;
use anyhow::Context;
use std::path::{Path, PathBuf};
use tch::nn::{self, Module};
use tch::{Device, Tensor};

/// A per-channel PReLU whose slopes are the variable `<path>.weight` (PyTorch's `nn.PReLU(C)`).
#[derive(Debug)]
struct PRelu {
    weight: Tensor,
}

impl PRelu {
    fn new(p: nn::Path, channels: i64) -> Self {
        Self { weight: p.var("weight", &[channels], nn::Init::Const(0.25)) }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.prelu(&self.weight)
    }
}

fn conv(p: nn::Path, cin: i64, cout: i64, k: i64) -> nn::Conv2D {
    nn::conv2d(p, cin, cout, k, Default::default())
}

fn pool(x: &Tensor, k: i64, stride: i64) -> Tensor {
    x.max_pool2d([k, k], [stride, stride], [0, 0], [1, 1], true)
}

/// 2x2 max-pooling at stride 2 with `ceil_mode` (a last odd row or column pooled alone), as
/// the maximum of strided slices: the same values as `max_pool2d`, about 4x faster on P-Net's
/// large maps on the CPU.
fn pool2_ceil(x: &Tensor) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    let x = x.pad([0, w % 2, 0, h % 2], "constant", f64::NEG_INFINITY);
    let rows = x.slice(2, 0, None, 2).maximum(&x.slice(2, 1, None, 2));
    rows.slice(3, 0, None, 2).maximum(&rows.slice(3, 1, None, 2))
}

/// R-Net and O-Net flatten their last feature map as `[N, W, H, C]` (facenet-pytorch permutes
/// `(0, 3, 2, 1)` to match the weights converted from the original Caffe/TensorFlow models).
fn flatten_whc(x: &Tensor) -> Tensor {
    x.permute([0, 3, 2, 1]).contiguous().flatten(1, -1)
}

/// The proposal network: fully convolutional, one 12x12 window per output cell at stride 2.
#[derive(Debug)]
pub struct PNet {
    conv1: nn::Conv2D,
    prelu1: PRelu,
    conv2: nn::Conv2D,
    prelu2: PRelu,
    conv3: nn::Conv2D,
    prelu3: PRelu,
    conv4_1: nn::Conv2D,
    conv4_2: nn::Conv2D,
}

impl PNet {
    pub fn new(p: &nn::Path) -> Self {
        Self {
            conv1: conv(p / "conv1", 3, 10, 3),
            prelu1: PRelu::new(p / "prelu1", 10),
            conv2: conv(p / "conv2", 10, 16, 3),
            prelu2: PRelu::new(p / "prelu2", 16),
            conv3: conv(p / "conv3", 16, 32, 3),
            prelu3: PRelu::new(p / "prelu3", 32),
            conv4_1: conv(p / "conv4_1", 32, 2, 1),
            conv4_2: conv(p / "conv4_2", 32, 4, 1),
        }
    }

    /// `[N,3,H,W]` -> (regression `[N,4,h,w]`, probabilities `[N,2,h,w]`), with
    /// `h = ceil((H-2)/2) - 4` (likewise `w`).
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let x = pool2_ceil(&self.prelu1.forward(&x.apply(&self.conv1)));
        let x = self.prelu2.forward(&x.apply(&self.conv2));
        let x = self.prelu3.forward(&x.apply(&self.conv3));
        let prob = x.apply(&self.conv4_1).softmax(1, x.kind());
        (x.apply(&self.conv4_2), prob)
    }
}

/// The refinement network, on 24x24 crops.
#[derive(Debug)]
pub struct RNet {
    conv1: nn::Conv2D,
    prelu1: PRelu,
    conv2: nn::Conv2D,
    prelu2: PRelu,
    conv3: nn::Conv2D,
    prelu3: PRelu,
    dense4: nn::Linear,
    prelu4: PRelu,
    dense5_1: nn::Linear,
    dense5_2: nn::Linear,
}

impl RNet {
    pub fn new(p: &nn::Path) -> Self {
        Self {
            conv1: conv(p / "conv1", 3, 28, 3),
            prelu1: PRelu::new(p / "prelu1", 28),
            conv2: conv(p / "conv2", 28, 48, 3),
            prelu2: PRelu::new(p / "prelu2", 48),
            conv3: conv(p / "conv3", 48, 64, 2),
            prelu3: PRelu::new(p / "prelu3", 64),
            dense4: nn::linear(p / "dense4", 576, 128, Default::default()),
            prelu4: PRelu::new(p / "prelu4", 128),
            dense5_1: nn::linear(p / "dense5_1", 128, 2, Default::default()),
            dense5_2: nn::linear(p / "dense5_2", 128, 4, Default::default()),
        }
    }

    /// `[N,3,24,24]` -> (regression `[N,4]`, probabilities `[N,2]`).
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let x = pool(&self.prelu1.forward(&x.apply(&self.conv1)), 3, 2);
        let x = pool(&self.prelu2.forward(&x.apply(&self.conv2)), 3, 2);
        let x = self.prelu3.forward(&x.apply(&self.conv3));
        let x = self.prelu4.forward(&self.dense4.forward(&flatten_whc(&x)));
        let prob = self.dense5_1.forward(&x).softmax(1, x.kind());
        (self.dense5_2.forward(&x), prob)
    }
}

/// The output network, on 48x48 crops: boxes, probabilities and the five landmarks.
#[derive(Debug)]
pub struct ONet {
    conv1: nn::Conv2D,
    prelu1: PRelu,
    conv2: nn::Conv2D,
    prelu2: PRelu,
    conv3: nn::Conv2D,
    prelu3: PRelu,
    conv4: nn::Conv2D,
    prelu4: PRelu,
    dense5: nn::Linear,
    prelu5: PRelu,
    dense6_1: nn::Linear,
    dense6_2: nn::Linear,
    dense6_3: nn::Linear,
}

impl ONet {
    pub fn new(p: &nn::Path) -> Self {
        Self {
            conv1: conv(p / "conv1", 3, 32, 3),
            prelu1: PRelu::new(p / "prelu1", 32),
            conv2: conv(p / "conv2", 32, 64, 3),
            prelu2: PRelu::new(p / "prelu2", 64),
            conv3: conv(p / "conv3", 64, 64, 3),
            prelu3: PRelu::new(p / "prelu3", 64),
            conv4: conv(p / "conv4", 64, 128, 2),
            prelu4: PRelu::new(p / "prelu4", 128),
            dense5: nn::linear(p / "dense5", 1152, 256, Default::default()),
            prelu5: PRelu::new(p / "prelu5", 256),
            dense6_1: nn::linear(p / "dense6_1", 256, 2, Default::default()),
            dense6_2: nn::linear(p / "dense6_2", 256, 4, Default::default()),
            dense6_3: nn::linear(p / "dense6_3", 256, 10, Default::default()),
        }
    }

    /// `[N,3,48,48]` -> (regression `[N,4]`, landmarks `[N,10]` (five x then five y, as
    /// fractions of the box), probabilities `[N,2]`).
    pub fn forward(&self, x: &Tensor) -> (Tensor, Tensor, Tensor) {
        let x = pool(&self.prelu1.forward(&x.apply(&self.conv1)), 3, 2);
        let x = pool(&self.prelu2.forward(&x.apply(&self.conv2)), 3, 2);
        let x = pool(&self.prelu3.forward(&x.apply(&self.conv3)), 2, 2);
        let x = self.prelu4.forward(&x.apply(&self.conv4));
        let x = self.prelu5.forward(&self.dense5.forward(&flatten_whc(&x)));
        let prob = self.dense6_1.forward(&x).softmax(1, x.kind());
        (self.dense6_2.forward(&x), self.dense6_3.forward(&x), prob)
    }
}

/// The three frozen networks on one device. Each has its own VarStore because the three files
/// use the same key names (`conv1.weight`, ...).
pub struct Mtcnn {
    pub pnet: PNet,
    pub rnet: RNet,
    pub onet: ONet,
    pub device: Device,
    _stores: Vec<nn::VarStore>,
}

impl std::fmt::Debug for Mtcnn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mtcnn").field("device", &self.device).finish_non_exhaustive()
    }
}

/// The folder of the vendored weights: `$PULSE_MTCNN`, else `models/mtcnn` under the current
/// folder, else the `models/mtcnn` of the source tree this binary was built from (so a clone's
/// own build finds them from anywhere).
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PULSE_MTCNN") {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("models/mtcnn");
    if local.is_dir() {
        return local;
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mtcnn");
    if built.is_dir() {
        built
    } else {
        local
    }
}

impl Mtcnn {
    /// Loads `pnet.pt`, `rnet.pt` and `onet.pt` (or `.safetensors`) from `dir`. A folder or
    /// file that cannot be used is refused ([`crate::Invalid`], a [`weights::WeightError`]).
    pub fn load(dir: &Path, device: Device) -> anyhow::Result<Self> {
        if !dir.is_dir() {
            crate::invalid!(
                "MTCNN weights folder {} not found (set $PULSE_MTCNN; see models/mtcnn/README.md)",
                dir.display()
            );
        }
        let (mut pvs, mut rvs, mut ovs) =
            (nn::VarStore::new(device), nn::VarStore::new(device), nn::VarStore::new(device));
        let pnet = PNet::new(&pvs.root());
        let rnet = RNet::new(&rvs.root());
        let onet = ONet::new(&ovs.root());
        for (vs, stem) in [(&mut pvs, "pnet"), (&mut rvs, "rnet"), (&mut ovs, "onet")] {
            let path = crate::model::find_file(dir, stem).ok_or_else(|| {
                crate::Invalid(format!(
                    "{}: no {stem}.pt or {stem}.safetensors in the MTCNN folder",
                    dir.display()
                ))
            })?;
            let sd = weights::load(&path)
                .with_context(|| format!("{}: cannot load the MTCNN weights", path.display()))?;
            weights::load_into(vs, &sd)
                .with_context(|| format!("{}: not facenet-pytorch's {stem}", path.display()))?;
            vs.freeze();
        }
        Ok(Self { pnet, rnet, onet, device, _stores: vec![pvs, rvs, ovs] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn pool2_ceil_is_max_pool2d_with_ceil_mode() {
        let _seed = crate::rng::seed(0);
        for (h, w) in [(7, 9), (8, 8), (13, 6), (1, 1)] {
            let x = Tensor::randn([2, 3, h, w], (Kind::Float, Device::Cpu));
            let want = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], true);
            assert!(pool2_ceil(&x).equal(&want), "{h}x{w}");
        }
    }
}
