//! FFHQ's alignment (NVlabs/ffhq-dataset, `download_ffhq.py`, `recreate_aligned_images`, with
//! `output_size=1024, transform_size=4096, enable_padding=True`), from MTCNN's five landmarks
//! instead of dlib's 68 (the eye centres and the mouth corners are what the recipe uses).
//!
//! 1. An oriented square ("quad") from the eyes and the mouth ([`quad`]).
//! 2. Shrink: when the quad is over 2x the output, the photo is first reduced by an integer
//!    factor (antialiased Lanczos).
//! 3. Crop to the quad plus a border of 10% of its size.
//! 4. Pad: when the quad runs off the photo, reflect-pad, blur the padding progressively and fade
//!    it towards the median colour, so the face sits on a plausible background.
//! 5. Sample the quad into the square output (bilinear), then reduce (Lanczos).
//!
//! All resampling is done here with tch tensor operations, on the image's device; Pillow's
//! filters are reproduced in their geometry (pixel-centre conventions, Lanczos-3 kernel with
//! Pillow's support scaling and edge renormalisation), not bit for bit. Two changes keep the
//! CPU cost small (0.03 s for the face of a 1024x1024 photo on one core): FFHQ samples bilinearly at 4096x4096 and then reduces 4x;
//! here the sampling grid is `1024 * k` with `k = ceil(qsize / 1024)` clamped to 1..=4 (the same
//! result when the quad is 3072 px or more, and no skipped source pixels otherwise), and scipy's
//! Gaussian blur of the padding (sigma 2% of the quad) runs on a grid reduced by up to sigma/2.
use super::Landmarks;
use crate::pulse::downscale::reflect_index;
use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

/// FFHQ's output side; the shrink and supersampling rules are relative to it.
pub const OUTPUT_SIZE: i64 = 1024;
/// FFHQ's intermediate side: at most 4x supersampling.
const MAX_SUPERSAMPLE: i64 = 4;

/// The oriented square FFHQ crops: corners top-left, bottom-left, bottom-right, top-right (in
/// the aligned face) as `[x, y]` in input pixels, and its side (`qsize`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quad {
    pub corners: [[f64; 2]; 4],
    pub size: f64,
}

type V = [f64; 2];
fn add(a: V, b: V) -> V {
    [a[0] + b[0], a[1] + b[1]]
}
fn sub(a: V, b: V) -> V {
    [a[0] - b[0], a[1] - b[1]]
}
fn mul(a: V, s: f64) -> V {
    [a[0] * s, a[1] * s]
}
fn norm(a: V) -> f64 {
    a[0].hypot(a[1])
}

/// The quad of NVlabs/ffhq-dataset: `x = eye_to_eye - flipud(eye_to_mouth) * [-1, 1]`,
/// normalised and scaled by `max(|eye_to_eye| * 2.0, |eye_to_mouth| * 1.8)`,
/// `y = flipud(x) * [-1, 1]`, centre `c = eye_avg + eye_to_mouth * 0.1`, corners
/// `[c - x - y, c - x + y, c + x + y, c + x - y]`, side `2|x|`.
pub fn quad(landmarks: &Landmarks) -> Result<Quad> {
    let p = |i: usize| [f64::from(landmarks[i][0]), f64::from(landmarks[i][1])];
    let (eye_left, eye_right, mouth_left, mouth_right) = (p(0), p(1), p(3), p(4));
    let eye_avg = mul(add(eye_left, eye_right), 0.5);
    let eye_to_eye = sub(eye_right, eye_left);
    let mouth_avg = mul(add(mouth_left, mouth_right), 0.5);
    let eye_to_mouth = sub(mouth_avg, eye_avg);
    let x = [eye_to_eye[0] + eye_to_mouth[1], eye_to_eye[1] - eye_to_mouth[0]];
    let scale = (norm(eye_to_eye) * 2.0).max(norm(eye_to_mouth) * 1.8);
    if !(norm(x) > 1e-6 && scale.is_finite() && scale >= 2.0) {
        bail!("the landmarks are degenerate (eyes and mouth less than a pixel apart)");
    }
    let x = mul(x, scale / norm(x));
    let y = [-x[1], x[0]];
    let c = add(eye_avg, mul(eye_to_mouth, 0.1));
    let corners = [sub(sub(c, x), y), add(sub(c, x), y), add(add(c, x), y), sub(add(c, x), y)];
    Ok(Quad { corners, size: norm(x) * 2.0 })
}

impl Quad {
    fn bounds(&self) -> (f64, f64, f64, f64) {
        let xs = self.corners.map(|c| c[0]);
        let ys = self.corners.map(|c| c[1]);
        let min = |v: [f64; 4]| v.into_iter().fold(f64::INFINITY, f64::min);
        let max = |v: [f64; 4]| v.into_iter().fold(f64::NEG_INFINITY, f64::max);
        (min(xs), min(ys), max(xs), max(ys))
    }

    fn shifted(&self, dx: f64, dy: f64) -> Quad {
        Quad { corners: self.corners.map(|c| [c[0] + dx, c[1] + dy]), size: self.size }
    }

    fn scaled(&self, s: f64) -> Quad {
        Quad { corners: self.corners.map(|c| [c[0] * s, c[1] * s]), size: self.size * s }
    }

    /// Where input point `p` lands in the `side` x `side` aligned face (pixel centres at
    /// integers): the inverse of the quad's affine map.
    pub fn to_aligned(&self, p: [f64; 2], side: i64) -> [f64; 2] {
        let [q0, q1, _, q3] = self.corners;
        let (u, v) = (sub(q3, q0), sub(q1, q0)); // along the output's x and y
        let d = sub(p, q0);
        let det = u[0] * v[1] - u[1] * v[0];
        let s = (d[0] * v[1] - d[1] * v[0]) / det;
        let t = (u[0] * d[1] - u[1] * d[0]) / det;
        let n = side as f64;
        [s * n - 0.5, t * n - 0.5]
    }
}

/// numpy's rounding (`np.rint`: halves to even) to an integer.
fn rint(x: f64) -> i64 {
    x.round_ties_even() as i64
}

/// Aligns the face with these landmarks in `image` (`[3,H,W]`, values in [0,1], any device) to
/// a `[3,1024,1024]` image in [0,1].
pub fn align(image: &Tensor, landmarks: &Landmarks) -> Result<Tensor> {
    let quad = quad(landmarks)?;
    Ok(tch::no_grad(|| align_quad(image, quad)))
}

fn align_quad(image: &Tensor, mut quad: Quad) -> Tensor {
    let mut img = image.to_kind(Kind::Float) * 255.0;
    let size = |t: &Tensor| (t.size()[2], t.size()[1]); // (w, h)

    // Shrink by an integer factor when the quad is over twice the output.
    let shrink = (quad.size / OUTPUT_SIZE as f64 * 0.5).floor() as i64;
    if shrink > 1 {
        let (w, h) = size(&img);
        let (rw, rh) = (rint(w as f64 / shrink as f64), rint(h as f64 / shrink as f64));
        img = resize_axis(&resize_axis(&img, 2, rw.max(1)), 1, rh.max(1));
        quad = quad.scaled(1.0 / shrink as f64);
    }

    // Crop to the quad and a border, clipped to the photo.
    let border = rint(quad.size * 0.1).max(3);
    let (w, h) = size(&img);
    let (x0, y0, x1, y1) = quad.bounds();
    let crop = (
        (x0.floor() as i64 - border).max(0),
        (y0.floor() as i64 - border).max(0),
        (x1.ceil() as i64 + border).min(w),
        (y1.ceil() as i64 + border).min(h),
    );
    if (crop.2 - crop.0 < w || crop.3 - crop.1 < h) && crop.2 > crop.0 && crop.3 > crop.1 {
        img = img.narrow(2, crop.0, crop.2 - crop.0).narrow(1, crop.1, crop.3 - crop.1);
        quad = quad.shifted(-crop.0 as f64, -crop.1 as f64);
    }

    // Pad when the quad (plus border) runs off the photo.
    let (w, h) = size(&img);
    let (x0, y0, x1, y1) = quad.bounds();
    let mut pad = [
        (border - x0.floor() as i64).max(0),
        (border - y0.floor() as i64).max(0),
        (x1.ceil() as i64 - w + border).max(0),
        (y1.ceil() as i64 - h + border).max(0),
    ];
    if pad.iter().copied().max().unwrap_or(0) > border - 4 {
        let least = rint(quad.size * 0.3).max(1);
        pad = pad.map(|p| p.max(least));
        img = pad_blend(&img, pad, quad.size);
        quad = quad.shifted(pad[0] as f64, pad[1] as f64);
    }

    // Sample the quad: bilinear on a grid k times finer than the output, then Lanczos down.
    let k = ((quad.size / OUTPUT_SIZE as f64).ceil() as i64).clamp(1, MAX_SUPERSAMPLE);
    let mut out = sample_quad(&img, &quad, OUTPUT_SIZE * k);
    if k > 1 {
        out = resize_axis(&resize_axis(&out, 2, OUTPUT_SIZE), 1, OUTPUT_SIZE);
    }
    (out / 255.0).clamp(0.0, 1.0)
}

/// Reflect-pads `img` (`[3,h,w]`, 0..255) by `[left, top, right, bottom]` (numpy's `reflect`),
/// then blends the padding: a Gaussian blur (sigma `0.02 * qsize`) weighted by
/// `clip(3 * mask + 1, 0, 1)` and the per-channel median weighted by `clip(mask, 0, 1)`, where
/// `mask` rises from 0 at the photo's edge to 1 at the padded edge; rounds to 8-bit values.
fn pad_blend(img: &Tensor, pad: [i64; 4], qsize: f64) -> Tensor {
    let (h, w) = (img.size()[1], img.size()[2]);
    let dev = img.device();
    let rows = index_tensor((-pad[1]..h + pad[3]).map(|i| reflect_index(i, h)), dev);
    let cols = index_tensor((-pad[0]..w + pad[2]).map(|i| reflect_index(i, w)), dev);
    let img = img.index_select(1, &rows).index_select(2, &cols);
    let (h, w) = (img.size()[1], img.size()[2]);

    let ramp = |n: i64, before: i64, after: i64| {
        let i = Tensor::arange(n, (Kind::Float, dev));
        let from_start = &i / before as f64;
        let from_end = (-&i + (n - 1) as f64) / after as f64;
        -from_start.minimum(&from_end) + 1.0
    };
    let mask = ramp(h, pad[1], pad[3]).view([h, 1]).maximum(&ramp(w, pad[0], pad[2]).view([1, w]));
    let blurred = gaussian_blur(&img, qsize * 0.02);
    let img = &img + (blurred - &img) * (&mask * 3.0 + 1.0).clamp(0.0, 1.0);
    let median = channel_median(&img).view([3, 1, 1]);
    let img = &img + (median - &img) * mask.clamp(0.0, 1.0);
    img.round().clamp(0.0, 255.0)
}

/// scipy.ndimage's `reflect` boundary index (mirror including the edge pixels).
fn symmetric(i: i64, n: i64) -> i64 {
    let m = i.rem_euclid(2 * n);
    if m >= n {
        2 * n - 1 - m
    } else {
        m
    }
}

fn index_tensor(v: impl Iterator<Item = i64>, device: Device) -> Tensor {
    Tensor::from_slice(&v.collect::<Vec<_>>()).to_device(device)
}

/// Per-channel median of `[3,h,w]`, the mean of the two middle values for an even count (as
/// `np.median`).
fn channel_median(img: &Tensor) -> Tensor {
    let flat = img.reshape([3, -1]);
    let n = flat.size()[1];
    let (lo, _) = flat.kthvalue((n + 1) / 2, 1, false);
    if n % 2 == 1 {
        lo
    } else {
        let (hi, _) = flat.kthvalue(n / 2 + 1, 1, false);
        (lo + hi) * 0.5
    }
}

/// A Gaussian blur of `[3,h,w]` like `scipy.ndimage.gaussian_filter(img, [sigma, sigma, 0])`
/// (kernel radius `4 sigma`, mirrored edges). For sigma >= 4 it runs on a grid reduced by
/// `d = floor(sigma / 2)` (area average), with sigma reduced so that the average and the
/// bilinear enlargement back (variances `(d^2 - 1) / 12` and `d^2 / 6`) add up to the same
/// spread: the result is smooth at that scale, and the cost stays small for large faces.
fn gaussian_blur(img: &Tensor, sigma: f64) -> Tensor {
    if sigma < 4.0 {
        return separable_gaussian(img, sigma);
    }
    let d = (sigma / 2.0).floor() as i64;
    let (h, w) = (img.size()[1], img.size()[2]);
    let (hd, wd) = ((h + d - 1) / d, (w + d - 1) / d);
    let dev = img.device();
    let rows = index_tensor((0..hd * d).map(|i| symmetric(i, h)), dev);
    let cols = index_tensor((0..wd * d).map(|i| symmetric(i, w)), dev);
    let small = img.index_select(1, &rows).index_select(2, &cols).unsqueeze(0).avg_pool2d(
        [d, d],
        [d, d],
        [0, 0],
        false,
        true,
        None,
    );
    let dd = (d * d) as f64;
    let residual = (sigma * sigma - (dd - 1.0) / 12.0 - dd / 6.0).max(0.25);
    let small = separable_gaussian(&small.squeeze_dim(0), residual.sqrt() / d as f64);
    small
        .unsqueeze(0)
        .upsample_bilinear2d([hd * d, wd * d], false, None, None)
        .squeeze_dim(0)
        .narrow(1, 0, h)
        .narrow(2, 0, w)
}

/// Exact separable Gaussian, radius `int(4 sigma + 0.5)`, mirrored edges (scipy's defaults).
fn separable_gaussian(img: &Tensor, sigma: f64) -> Tensor {
    let radius = (4.0 * sigma + 0.5) as i64;
    if radius < 1 {
        return img.shallow_clone();
    }
    let taps: Vec<f64> =
        (-radius..=radius).map(|i| (-0.5 * (i * i) as f64 / (sigma * sigma)).exp()).collect();
    let sum: f64 = taps.iter().sum();
    let taps: Vec<f32> = taps.iter().map(|t| (t / sum) as f32).collect();
    let dev = img.device();
    let kernel = Tensor::from_slice(&taps).to_device(dev);
    let k = 2 * radius + 1;
    let (h, w) = (img.size()[1], img.size()[2]);
    let rows = index_tensor((-radius..h + radius).map(|i| symmetric(i, h)), dev);
    let cols = index_tensor((-radius..w + radius).map(|i| symmetric(i, w)), dev);
    let x = img.index_select(1, &rows).unsqueeze(1); // [3,1,h+2r,w]
    let x = x.conv2d(&kernel.view([1, 1, k, 1]), None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
    let x = x.index_select(3, &cols);
    let x = x.conv2d(&kernel.view([1, 1, 1, k]), None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
    x.squeeze_dim(1)
}

/// Samples `quad` of `img` (`[3,h,w]`) into a `side` x `side` image, bilinearly, as Pillow's
/// `Image.transform(QUAD, (quad + 0.5).flatten(), BILINEAR)`: output pixel centre
/// `((j + 0.5) / side, (i + 0.5) / side)` of the unit square maps onto the quad (an affine map,
/// since the quad is a square), in input pixel-centre coordinates. Sampling past the photo's
/// edge repeats the edge (padding has made that rare).
fn sample_quad(img: &Tensor, quad: &Quad, side: i64) -> Tensor {
    let (h, w) = (img.size()[1] as f64, img.size()[2] as f64);
    let [q0, q1, q2, q3] = quad.corners;
    let centre = mul(add(q0, q2), 0.5);
    let (u, v) = (sub(q3, q0), sub(q1, q0));
    // grid_sample's normalised coordinates (align_corners=false): g = (2 (p + 0.5)) / n - 1,
    // and the output's: s = (a + 1) / 2 for a in [-1, 1]; so g = (u a + v b + 2 c + 1) / n - 1.
    let theta = [
        u[0] / w,
        v[0] / w,
        (2.0 * centre[0] + 1.0) / w - 1.0,
        u[1] / h,
        v[1] / h,
        (2.0 * centre[1] + 1.0) / h - 1.0,
    ];
    let theta = Tensor::from_slice(&theta).view([1, 2, 3]).to_device(img.device());
    let grid =
        Tensor::affine_grid_generator(&theta, [1, 3, side, side], false).to_kind(Kind::Float);
    // Modes: 0 = bilinear; padding 1 = border.
    img.unsqueeze(0).grid_sampler_2d(&grid, 0, 1, false).squeeze_dim(0)
}

/// Pillow's Lanczos filter (`sinc(x) sinc(x / 3)` on |x| < 3).
fn lanczos3(x: f64) -> f64 {
    let sinc = |x: f64| {
        if x == 0.0 {
            1.0
        } else {
            let px = std::f64::consts::PI * x;
            px.sin() / px
        }
    };
    if x.abs() < 3.0 {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// Resizes dimension `dim` of `img` to `out` samples with an antialiased Lanczos-3 filter,
/// Pillow's `resize(..., LANCZOS)` (which `ANTIALIAS` names): output `i` is centred at input
/// `(i + 0.5) * in / out` (pixel edges at integers), the kernel stretched by the reduction
/// factor, cut at the image's edge and renormalised. Done tap by tap (a gather and a
/// multiply-add each), which keeps memory at two copies of the output.
fn resize_axis(img: &Tensor, dim: i64, out: i64) -> Tensor {
    let n = img.size()[dim as usize];
    if n == out {
        return img.shallow_clone();
    }
    let scale = n as f64 / out as f64;
    let stretch = scale.max(1.0);
    let support = 3.0 * stretch;
    let taps = (2.0 * support).ceil() as usize + 1;
    let mut index = vec![vec![0i64; out as usize]; taps];
    let mut weight = vec![vec![0f32; out as usize]; taps];
    for i in 0..out as usize {
        let centre = (i as f64 + 0.5) * scale;
        let lo = ((centre - support + 0.5) as i64).max(0);
        let hi = ((centre + support + 0.5) as i64).min(n);
        let ws: Vec<f64> =
            (lo..hi).map(|j| lanczos3((j as f64 - centre + 0.5) / stretch)).collect();
        let total: f64 = ws.iter().sum();
        for (t, (j, wt)) in (lo..hi).zip(ws).enumerate().take(taps) {
            index[t][i] = j;
            weight[t][i] = (wt / total) as f32;
        }
    }
    let dev = img.device();
    let mut shape = vec![1i64; img.dim()];
    shape[dim as usize] = out;
    let mut acc: Option<Tensor> = None;
    for (idx, wts) in index.iter().zip(&weight) {
        if wts.iter().all(|&w| w == 0.0) {
            continue;
        }
        let term = img.index_select(dim, &Tensor::from_slice(idx).to_device(dev))
            * Tensor::from_slice(wts).to_device(dev).view(shape.as_slice());
        acc = Some(match acc {
            None => term,
            Some(a) => a + term,
        });
    }
    acc.expect("at least one tap")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_and_symmetric_indices_follow_numpy_and_scipy() {
        // numpy reflect of [a b c d] by 5 on each side: c d c b | a b c d | c b a b c.
        let r: Vec<i64> = (-5..9).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(r, [1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]);
        // scipy reflect: b a | a b c d | d c.
        let s: Vec<i64> = (-2..6).map(|i| symmetric(i, 4)).collect();
        assert_eq!(s, [1, 0, 0, 1, 2, 3, 3, 2]);
        assert_eq!(reflect_index(-3, 1), 0);
    }

    #[test]
    fn quad_of_an_upright_face_is_axis_aligned() {
        // Eyes 100 px apart at y = 100, mouth 100 px below: x = (100, 0) scaled to
        // max(200, 180) = 200; c = (150, 110).
        let lm: Landmarks =
            [[100.0, 100.0], [200.0, 100.0], [150.0, 150.0], [120.0, 200.0], [180.0, 200.0]];
        let q = quad(&lm).unwrap();
        assert_eq!(q.size, 400.0);
        assert_eq!(q.corners, [[-50.0, -90.0], [-50.0, 310.0], [350.0, 310.0], [350.0, -90.0]]);
        let a = q.to_aligned([150.0, 110.0], 1024);
        assert!((a[0] - 511.5).abs() < 1e-9 && (a[1] - 511.5).abs() < 1e-9, "{a:?}");
        assert!(quad(&[[5.0, 5.0]; 5]).is_err());
    }

    #[test]
    fn lanczos_resize_keeps_constants_and_halves() {
        let x = Tensor::full([3, 10, 40], 7.0, (Kind::Float, Device::Cpu));
        let y = resize_axis(&resize_axis(&x, 2, 13), 1, 4);
        assert_eq!(y.size(), [3, 4, 13]);
        assert!((y - 7.0).abs().max().double_value(&[]) < 1e-4);
        // A linear ramp stays a ramp (sampled at the new centres), away from the edges.
        let ramp = Tensor::arange(64, (Kind::Float, Device::Cpu)).view([1, 1, 64]);
        let half: Vec<f32> = Vec::try_from(resize_axis(&ramp, 2, 32).view([-1])).unwrap();
        for (i, v) in half.iter().enumerate().skip(3).take(26) {
            assert!((v - (2 * i) as f32 - 0.5).abs() < 1e-3, "{i}: {v}");
        }
    }

    #[test]
    fn blur_is_normalised_and_the_reduced_grid_matches_the_exact_one() {
        let x = Tensor::full([3, 50, 60], 5.0, (Kind::Float, Device::Cpu));
        assert!((gaussian_blur(&x, 6.0) - 5.0).abs().max().double_value(&[]) < 1e-3);
        // A smooth image (a bright square blurred) through both paths.
        let img = Tensor::zeros([3, 120, 120], (Kind::Float, Device::Cpu));
        let _ = img.narrow(1, 40, 40).narrow(2, 40, 40).fill_(255.0);
        let exact = separable_gaussian(&img, 8.0);
        let fast = gaussian_blur(&img, 8.0);
        let diff = (exact - fast).abs().max().double_value(&[]);
        println!("reduced-grid blur, sigma 8: max difference {diff:.3} of 255");
        assert!(diff < 4.0, "max difference {diff}");
    }

    #[test]
    fn median_averages_the_middle_pair() {
        let t =
            Tensor::from_slice(&[1f32, 5., 3., 9., 2., 2., 2., 2., 0., 0., 0., 4.]).view([3, 2, 2]);
        let m: Vec<f32> = Vec::try_from(channel_median(&t)).unwrap();
        assert_eq!(m, [4.0, 2.0, 0.0]);
    }
}
