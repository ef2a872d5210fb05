//! PULSE's bicubic downscaler D (docs/design.md, "The downscaler"): a separable Keys-cubic
//! (a = -0.5) filter of length 4f with reflect padding, applied at stride f.
use anyhow::ensure;
use tch::{Device, Tensor};

/// The smallest target side: the filter pads by ceil(1.5 f) pixels on each side, and reflect
/// padding must stay inside the image (`1.5 f < resolution`), so the factor is at most
/// resolution / 2.
pub const MIN_SIDE: i64 = 2;

/// PULSE's cubic: Keys' kernel with a = -0.5.
const KEYS_A: f64 = -0.5;

/// Keys' cubic convolution kernel with parameter `a` (PULSE's downscaler uses -0.5, libtorch's
/// bicubic interpolation -0.75).
pub fn keys_cubic(x: f64, a: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        (a + 2.0) * x.powi(3) - (a + 3.0) * x.powi(2) + 1.0
    } else if x < 2.0 {
        a * x.powi(3) - 5.0 * a * x.powi(2) + 8.0 * a * x - 4.0 * a
    } else {
        0.0
    }
}

/// The downscaler's 4 `factor` normalised taps: output pixel `j` reads input pixels
/// `factor j - 1.5 factor + i` (reflected at the edges) with weight `taps[i]`.
pub fn taps(factor: i64) -> Vec<f64> {
    let k = 4 * factor;
    let f = factor as f64;
    let raw: Vec<f64> =
        (0..k).map(|i| keys_cubic((i as f64 - (k / 2) as f64 + 0.5) / f, KEYS_A)).collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|t| t / sum).collect()
}

/// numpy's `reflect` padding index (mirror about the edge pixels, which are not repeated), as
/// the downscaler pads.
pub fn reflect_index(i: i64, n: i64) -> i64 {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    if m >= n {
        period - m
    } else {
        m
    }
}

/// Downscales NCHW images by an integer power-of-two factor.
#[derive(Debug)]
pub struct Downscaler {
    factor: i64,
    /// Normalised taps, [K] on the target device.
    taps: Tensor,
}

impl Downscaler {
    /// A downscaler by `factor`, a power of two.
    pub fn new(factor: i64, device: Device) -> anyhow::Result<Self> {
        ensure!(
            factor >= 1 && factor.count_ones() == 1,
            "downscale factor {factor} is not a power of two"
        );
        let taps: Vec<f32> = taps(factor).iter().map(|&t| t as f32).collect();
        Ok(Self { factor, taps: Tensor::from_slice(&taps).to_device(device) })
    }

    /// The downscaler from a `resolution` image to a target of side `side` (what a search's
    /// loss compares), refused unless `side` is `resolution / 2^k`.
    pub fn for_target(resolution: i64, side: i64, device: Device) -> anyhow::Result<Self> {
        let Some(factor) = factor_for(resolution, side) else {
            anyhow::bail!("target side {side} is not {resolution}/2^k");
        };
        Self::new(factor, device)
    }

    pub fn factor(&self) -> i64 {
        self.factor
    }

    /// x [B,C,H,W] -> [B,C,H/f,W/f]: rows first, then columns. H and W must be multiples of
    /// the factor and at least twice it.
    pub fn forward(&self, x: &Tensor) -> anyhow::Result<Tensor> {
        let size = x.size();
        ensure!(
            size.len() == 4
                && size[2..].iter().all(|&s| s % self.factor == 0 && s / self.factor >= MIN_SIDE),
            "cannot downscale {size:?} by {}: expected [B, C, H, W] with H and W multiples of it, at least {MIN_SIDE}x it",
            self.factor
        );
        let (b, c) = (size[0], size[1]);
        let k = self.taps.size()[0];
        let taps = self.taps.to_kind(x.kind());
        let (before, after) = padding(self.factor);
        // Each channel is filtered on its own: fold channels into the batch.
        let x = x.reshape([b * c, 1, size[2], size[3]]);
        let x = reflect_pad(&x, 2, before, after)?.f_conv2d(
            &taps.view([1, 1, k, 1]),
            None::<Tensor>,
            [self.factor, 1],
            [0, 0],
            [1, 1],
            1,
        )?;
        let x = reflect_pad(&x, 3, before, after)?.f_conv2d(
            &taps.view([1, 1, 1, k]),
            None::<Tensor>,
            [1, self.factor],
            [0, 0],
            [1, 1],
            1,
        )?;
        let out = x.size();
        Ok(x.reshape([b, c, out[2], out[3]]))
    }
}

/// Reflect padding of dimension `dim` (the edge pixel is not repeated: `x[p], ..., x[1], x[0],
/// ..., x[n-1], x[n-2], ..., x[n-1-q]`), the values `reflection_pad2d` gives, built from slices,
/// flips and a concatenation. Their gradients are plain copies and sums, which CUDA computes the
/// same way every time; the backward of `reflection_pad2d` on CUDA adds with atomics, which
/// libtorch's deterministic mode refuses (docs/design.md, "Determinism").
fn reflect_pad(x: &Tensor, dim: i64, before: i64, after: i64) -> anyhow::Result<Tensor> {
    let n = x.size()[dim as usize];
    ensure!(
        before < n && after < n,
        "reflect padding by {before} and {after} needs more than {n} pixels along dimension {dim}"
    );
    let left = x.f_narrow(dim, 1, before)?.f_flip([dim])?;
    let right = x.f_narrow(dim, n - 1 - after, after)?.f_flip([dim])?;
    Ok(Tensor::f_cat(&[left, x.shallow_clone(), right], dim)?)
}

/// Reflect padding before and after each row/column: the 4f-tap filter at stride f needs 3f
/// extra pixels, split as evenly as they go.
fn padding(factor: i64) -> (i64, i64) {
    let extra = 3 * factor;
    (extra / 2, extra - extra / 2)
}

/// The factor that maps a `resolution` image to a `side` one, if `side` is `resolution / 2^k`
/// and at least [`MIN_SIDE`].
pub fn factor_for(resolution: i64, side: i64) -> Option<i64> {
    (side >= MIN_SIDE && resolution % side == 0 && (resolution / side).count_ones() == 1)
        .then(|| resolution / side)
}

/// The target sides a generator of `resolution` accepts: `resolution / 2^k` down to
/// [`MIN_SIDE`], largest first (1024 gives 1024, 512, ..., 2).
pub fn accepted_sides(resolution: i64) -> Vec<i64> {
    let mut sides = Vec::new();
    let mut s = resolution;
    while s >= MIN_SIDE && factor_for(resolution, s).is_some() {
        sides.push(s);
        s /= 2;
    }
    sides
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn taps_sum_to_one_and_are_symmetric() {
        for f in [1, 2, 8, 32] {
            let d = Downscaler::new(f, Device::Cpu).unwrap();
            let t: Vec<f32> = Vec::try_from(&d.taps).unwrap();
            assert_eq!(t.len() as i64, 4 * f);
            assert!((t.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            for i in 0..t.len() {
                assert!((t[i] - t[t.len() - 1 - i]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let d = Downscaler::new(4, Device::Cpu).unwrap();
        let x = Tensor::full([1, 3, 64, 64], 0.25, (Kind::Float, Device::Cpu));
        let y = d.forward(&x).unwrap();
        assert_eq!(y.size(), [1, 3, 16, 16]);
        assert!((y - 0.25).abs().max().double_value(&[]) < 1e-6);
    }

    /// The sliced padding is `reflection_pad2d` exactly, forward and backward (float64, so any
    /// reordering of the gradient's sums would show).
    #[test]
    fn reflect_pad_equals_reflection_pad2d_forward_and_backward() {
        let _seed = crate::rng::seed(3);
        let x = Tensor::randn([2, 1, 9, 7], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        for (dim, before, after) in [(2, 4, 4), (3, 3, 2), (2, 8, 1), (3, 0, 6)] {
            let pads = if dim == 2 { [0, 0, before, after] } else { [before, after, 0, 0] };
            let want = x.reflection_pad2d(pads);
            let got = reflect_pad(&x, dim, before, after).unwrap();
            assert_eq!(got.size(), want.size());
            assert!(got.equal(&want), "dim {dim} pads {before},{after}: values differ");
            let probe = Tensor::randn(want.size(), (Kind::Double, Device::Cpu));
            let g_want =
                Tensor::run_backward(&[(&want * &probe).sum(Kind::Double)], &[&x], false, false);
            let g_got =
                Tensor::run_backward(&[(&got * &probe).sum(Kind::Double)], &[&x], false, false);
            let d = (&g_got[0] - &g_want[0]).abs().max().double_value(&[]);
            assert!(d < 1e-12, "dim {dim} pads {before},{after}: gradients differ by {d}");
        }
        assert!(reflect_pad(&x, 2, 9, 0).is_err() && reflect_pad(&x, 3, 0, 7).is_err());
    }

    #[test]
    fn factor_for_accepts_powers_of_two_only() {
        assert_eq!(factor_for(1024, 32), Some(32));
        assert_eq!(factor_for(1024, 1024), Some(1));
        assert_eq!(factor_for(1024, 48), None);
        assert_eq!(factor_for(1024, 2048), None);
        assert_eq!(factor_for(1024, 1), None, "1x1 is below the smallest side");
    }

    /// The smallest side works at every resolution and one less does not: the bound is the
    /// filter's, not a guess.
    #[test]
    fn smallest_side_is_the_filters_limit() {
        let _seed = crate::rng::seed(0);
        for resolution in [4, 16, 128, 1024] {
            let sides = accepted_sides(resolution);
            assert_eq!(*sides.last().unwrap(), MIN_SIDE);
            let x = Tensor::rand([1, 3, resolution, resolution], (Kind::Float, Device::Cpu));
            let f = resolution / MIN_SIDE;
            let y = Downscaler::new(f, Device::Cpu).unwrap().forward(&x).unwrap();
            assert_eq!(y.size(), [1, 3, MIN_SIDE, MIN_SIDE]);
            // Side 1 (factor = resolution): the reflect padding would leave the image.
            let (before, after) = padding(resolution);
            assert!(reflect_pad(&x, 2, before, after).is_err());
            let (before, after) = padding(f);
            assert!(reflect_pad(&x, 2, before, after).is_ok());
            assert!(Downscaler::new(2 * f, Device::Cpu).unwrap().forward(&x).is_err());
        }
        assert_eq!(accepted_sides(16), vec![16, 8, 4, 2]);
        assert_eq!(accepted_sides(1024).len(), 10);
        assert!(Downscaler::new(3, Device::Cpu).is_err());
    }
}
