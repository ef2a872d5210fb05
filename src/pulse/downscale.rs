//! PULSE's bicubic downscaler D (docs/pulse-spec.md section 4, "Downscaler"): a separable
//! Keys-cubic (a = -0.5) filter of length 4f with reflect padding, applied at stride f.
use tch::{Device, Tensor};

/// Keys' cubic convolution kernel with a = -0.5.
fn cubic(x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    if x <= 1.0 {
        (a + 2.0) * x.powi(3) - (a + 3.0) * x.powi(2) + 1.0
    } else if x < 2.0 {
        a * x.powi(3) - 5.0 * a * x.powi(2) + 8.0 * a * x - 4.0 * a
    } else {
        0.0
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
    pub fn new(factor: i64, device: Device) -> Self {
        assert!(factor >= 1, "downscale factor must be positive");
        let k = 4 * factor;
        let f = factor as f64;
        let raw: Vec<f64> = (0..k).map(|i| cubic((i as f64 - (k / 2) as f64 + 0.5) / f)).collect();
        let sum: f64 = raw.iter().sum();
        let taps: Vec<f32> = raw.iter().map(|t| (t / sum) as f32).collect();
        Self { factor, taps: Tensor::from_slice(&taps).to_device(device) }
    }

    pub fn factor(&self) -> i64 {
        self.factor
    }

    /// x [B,C,H,W] -> [B,C,H/f,W/f]: rows first, then columns.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let size = x.size();
        let (b, c) = (size[0], size[1]);
        let k = self.taps.size()[0];
        let taps = self.taps.to_kind(x.kind());
        let (before, after) = ((k - self.factor) / 2, k - self.factor - (k - self.factor) / 2);
        // Each channel is filtered on its own: fold channels into the batch.
        let x = x.reshape([b * c, 1, size[2], size[3]]);
        let x = x.reflection_pad2d([0, 0, before, after]).conv2d(
            &taps.view([1, 1, k, 1]),
            None::<Tensor>,
            [self.factor, 1],
            [0, 0],
            [1, 1],
            1,
        );
        let x = x.reflection_pad2d([before, after, 0, 0]).conv2d(
            &taps.view([1, 1, 1, k]),
            None::<Tensor>,
            [1, self.factor],
            [0, 0],
            [1, 1],
            1,
        );
        let out = x.size();
        x.reshape([b, c, out[2], out[3]])
    }
}

/// The factor that maps a `resolution` image to a `side` one, if `side` is `resolution / 2^k`.
pub fn factor_for(resolution: i64, side: i64) -> Option<i64> {
    (side > 0 && resolution % side == 0 && (resolution / side).count_ones() == 1).then(|| resolution / side)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn taps_sum_to_one_and_are_symmetric() {
        for f in [1, 2, 8, 32] {
            let d = Downscaler::new(f, Device::Cpu);
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
        let d = Downscaler::new(4, Device::Cpu);
        let x = Tensor::full([1, 3, 64, 64], 0.25, (Kind::Float, Device::Cpu));
        let y = d.forward(&x);
        assert_eq!(y.size(), [1, 3, 16, 16]);
        assert!((y - 0.25).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn factor_for_accepts_powers_of_two_only() {
        assert_eq!(factor_for(1024, 32), Some(32));
        assert_eq!(factor_for(1024, 1024), Some(1));
        assert_eq!(factor_for(1024, 48), None);
        assert_eq!(factor_for(1024, 2048), None);
    }
}
