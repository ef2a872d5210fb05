//! Image quality metrics for `pulse eval` (docs/design.md, "Metrics"): PSNR and SSIM against the
//! ground truth, computed in float64 on the CPU exactly as scikit-image computes them, and LPIPS
//! ([`lpips`], Zhang et al. CVPR 2018), which is also a loss term.
pub mod lpips;

use tch::{Kind, Tensor};

/// ITU-R BT.601 luma weights (Y' = 0.299 R' + 0.587 G' + 0.114 B'), the luminance of the SSIM
/// most super-resolution papers report.
pub const LUMA: [f64; 3] = [0.299, 0.587, 0.114];

/// An image [3,H,W] (or [1,3,H,W]) in [0,1] as float64 planes, channel-major.
fn planes(image: &Tensor) -> (Vec<f64>, usize, usize) {
    let image = if image.dim() == 4 { image.squeeze_dim(0) } else { image.shallow_clone() };
    let size = image.size();
    assert!(size.len() == 3 && size[0] == 3, "expected an RGB image [3,H,W], got {size:?}");
    let v = Vec::<f64>::try_from(
        image.to_device(tch::Device::Cpu).to_kind(Kind::Double).flatten(0, -1),
    )
    .expect("float tensor");
    (v, size[1] as usize, size[2] as usize)
}

/// PSNR in dB of `test` against `truth`, both RGB [3,H,W] in [0,1], over all three channels:
/// `10 log10(1 / MSE)`, scikit-image's `peak_signal_noise_ratio(truth, test, data_range=1)`.
/// Infinite for identical images.
pub fn psnr(truth: &Tensor, test: &Tensor) -> f64 {
    let (a, h, w) = planes(truth);
    let (b, h2, w2) = planes(test);
    assert_eq!((h, w), (h2, w2), "PSNR of images of different sizes");
    let mse = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>() / a.len() as f64;
    10.0 * (1.0 / mse).log10()
}

/// The luma plane (BT.601, [`LUMA`]) of an RGB [3,H,W] image in [0,1].
pub fn luma(image: &Tensor) -> (Vec<f64>, usize, usize) {
    let (v, h, w) = planes(image);
    let n = h * w;
    let y = (0..n).map(|i| LUMA[0] * v[i] + LUMA[1] * v[n + i] + LUMA[2] * v[2 * n + i]).collect();
    (y, h, w)
}

/// SSIM (Wang et al., IEEE TIP 2004) of the luma planes of `test` and `truth` (RGB [3,H,W] in
/// [0,1]), with the settings of Wang et al. as scikit-image documents them:
/// `structural_similarity(y_truth, y_test, gaussian_weights=True, sigma=1.5,
/// use_sample_covariance=False, data_range=1)`: an 11x11 Gaussian window (sigma 1.5, truncated
/// at 3.5 sigma), K1 = 0.01, K2 = 0.03, and the mean of the SSIM map over the pixels whose window
/// lies inside the image (scikit-image crops the 5-pixel border its padding would affect).
pub fn ssim(truth: &Tensor, test: &Tensor) -> f64 {
    let (x, h, w) = luma(truth);
    let (y, h2, w2) = luma(test);
    assert_eq!((h, w), (h2, w2), "SSIM of images of different sizes");
    ssim_plane(&x, &y, h, w)
}

/// [`ssim`] of two single planes [h*w] with data range 1.
pub fn ssim_plane(x: &[f64], y: &[f64], h: usize, w: usize) -> f64 {
    const SIGMA: f64 = 1.5;
    let radius = (3.5 * SIGMA + 0.5) as usize; // scipy's gaussian_filter: int(truncate*sigma+0.5)
    assert!(h > 2 * radius && w > 2 * radius, "SSIM needs images larger than 11x11");
    let mut k: Vec<f64> = (0..=2 * radius)
        .map(|i| {
            let d = i as f64 - radius as f64;
            (-0.5 * d * d / (SIGMA * SIGMA)).exp()
        })
        .collect();
    let total: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= total);
    // Only the pixels at least `radius` from every edge are averaged, and their windows lie
    // inside the image: a "valid" separable filter gives exactly their values.
    let (oh, ow) = (h - 2 * radius, w - 2 * radius);
    let filter = |f: &dyn Fn(usize) -> f64| -> Vec<f64> {
        let mut rows = vec![0.0; h * ow];
        for r in 0..h {
            for c in 0..ow {
                rows[r * ow + c] = k.iter().enumerate().map(|(j, kj)| kj * f(r * w + c + j)).sum();
            }
        }
        let mut out = vec![0.0; oh * ow];
        for r in 0..oh {
            for c in 0..ow {
                out[r * ow + c] =
                    k.iter().enumerate().map(|(j, kj)| kj * rows[(r + j) * ow + c]).sum();
            }
        }
        out
    };
    let ux = filter(&|i| x[i]);
    let uy = filter(&|i| y[i]);
    let uxx = filter(&|i| x[i] * x[i]);
    let uyy = filter(&|i| y[i] * y[i]);
    let uxy = filter(&|i| x[i] * y[i]);
    let (c1, c2) = ((0.01f64).powi(2), (0.03f64).powi(2));
    let n = oh * ow;
    let sum: f64 = (0..n)
        .map(|i| {
            let (vx, vy, vxy) =
                (uxx[i] - ux[i] * ux[i], uyy[i] - uy[i] * uy[i], uxy[i] - ux[i] * uy[i]);
            ((2.0 * ux[i] * uy[i] + c1) * (2.0 * vxy + c2))
                / ((ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2))
        })
        .sum();
    sum / n as f64
}

/// Mean pairwise root-mean-square pixel distance between images [N,3,H,W] in [0,1] (each
/// unordered pair once): the diversity of samples when no VGG weights are at hand. `None` for
/// fewer than two images.
pub fn mean_pairwise_rms(images: &Tensor) -> Option<f64> {
    let n = images.size()[0];
    if n < 2 {
        return None;
    }
    let images = images.to_kind(Kind::Double);
    let mut sum = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            sum += (images.get(i) - images.get(j))
                .square()
                .mean(Kind::Double)
                .sqrt()
                .double_value(&[]);
        }
    }
    Some(sum / (n * (n - 1) / 2) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_images_have_ssim_one_and_infinite_psnr() {
        let _seed = crate::rng::seed(0);
        let a = Tensor::rand([3, 20, 24], tch::kind::FLOAT_CPU);
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-12);
        assert!(psnr(&a, &a).is_infinite());
        let b = (&a + 0.1).clamp(0.0, 1.0);
        assert!(ssim(&a, &b) < 1.0);
        let (a64, b64) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
        let mse = (&a64 - &b64).square().mean(Kind::Double).double_value(&[]);
        assert!((psnr(&a, &b) - 10.0 * (1.0 / mse).log10()).abs() < 1e-9);
    }

    #[test]
    fn pairwise_distance_of_two_images() {
        let a = Tensor::zeros([2, 3, 4, 4], tch::kind::FLOAT_CPU);
        let _ = a.get(1).fill_(0.5);
        assert!((mean_pairwise_rms(&a).unwrap() - 0.5).abs() < 1e-12);
        assert!(mean_pairwise_rms(&a.narrow(0, 0, 1)).is_none());
    }
}
