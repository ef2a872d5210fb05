//! Pasting aligned faces back into their photo, enlarged (docs/design.md, *Restoring photos*):
//! the inverse of FFHQ's quad transform ([`super::ffhq`]), as facexlib's `FaceRestoreHelper`
//! does with the inverse of its similarity, through a feathered mask.
//!
//! Everything is computed per output pixel from where it lands in the face's unit square
//! `(u, v)` (0 to 1 across the aligned face): the face is sampled there (bicubic, after an
//! antialiased shrink to about its size in the output), and so is its mask, analytically:
//! 0 at the crop's border, rising over `[EDGE_START, EDGE_END]` of the face's side (facexlib
//! erodes its warped square by a twentieth of its side and blurs as much: the same ramp,
//! without warping a mask image). Overlapping faces are blended by weights that favour, at each
//! pixel, the face whose centre is nearer (in units of its own size).
use super::ffhq::Quad;
use tch::{Device, Kind, Tensor};

/// Where the mask starts rising, as a fraction of the face's side from its crop's border.
pub const EDGE_START: f64 = 0.02;
/// Where the mask reaches 1.
pub const EDGE_END: f64 = 0.08;
/// Spread of the overlap weight around the face's centre, as a fraction of its side.
const CENTRE_SPREAD: f64 = 0.2;
/// Faces are not shrunk below this before sampling (tiny footprints sample a small image).
const MIN_SHRUNK: i64 = 8;

/// The PULSE input side for a face whose FFHQ crop spans `quad_size` photo pixels, for a
/// generator of `resolution`: the largest `resolution / 2^k` (down to 2) not above
/// `quad_size`, and at most the 1024 of the aligned crop. A smaller side would throw away detail
/// the photo has; a larger one would ask PULSE to match detail the photo never had.
pub fn input_side(quad_size: f64, resolution: i64) -> i64 {
    let mut side = resolution.min(super::ffhq::OUTPUT_SIZE);
    while side > crate::pulse::downscale::MIN_SIDE && side as f64 > quad_size {
        side /= 2;
    }
    side
}

/// A face's place in the photo enlarged `scale` times: the affine map from output pixel
/// centres (integers) to the face's unit square.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// `u = a[0] X + a[1] Y + a[2]`, `v = a[3] X + a[4] Y + a[5]`.
    pub to_face: [f64; 6],
    /// The face's footprint in the output, `[x0, y0, x1, y1]` (exclusive ends), clipped to it.
    pub bounds: [i64; 4],
    /// The footprint's side in output pixels.
    pub side: f64,
}

impl Placement {
    /// The placement of the face cropped by `quad` (photo pixels) in the photo of
    /// `width` x `height` enlarged `scale` times.
    pub fn new(quad: &Quad, scale: i64, width: i64, height: i64) -> Self {
        let [q0, q1, _, q3] = quad.corners;
        let (u, v) = ([q3[0] - q0[0], q3[1] - q0[1]], [q1[0] - q0[0], q1[1] - q0[1]]);
        let det = u[0] * v[1] - u[1] * v[0];
        let s = scale as f64;
        // Photo point x = (X + 0.5) / s - 0.5 (pixel centres at integers in both).
        let px = |out: f64| (out + 0.5) / s - 0.5;
        // u = ((x - q0x) v1 - (y - q0y) v0) / det, v = ((y - q0y) u0 - (x - q0x) u1) / det.
        let off = [px(0.0) - q0[0], px(0.0) - q0[1]];
        let to_face = [
            v[1] / det / s,
            -v[0] / det / s,
            (off[0] * v[1] - off[1] * v[0]) / det,
            -u[1] / det / s,
            u[0] / det / s,
            (off[1] * u[0] - off[0] * u[1]) / det,
        ];
        let out = |p: [f64; 2]| [(p[0] + 0.5) * s - 0.5, (p[1] + 0.5) * s - 0.5];
        let corners = quad.corners.map(out);
        let lo = |i: usize| corners.iter().map(|c| c[i]).fold(f64::INFINITY, f64::min);
        let hi = |i: usize| corners.iter().map(|c| c[i]).fold(f64::NEG_INFINITY, f64::max);
        let bounds = [
            (lo(0).floor() as i64).clamp(0, width * scale),
            (lo(1).floor() as i64).clamp(0, height * scale),
            (hi(0).ceil() as i64 + 1).clamp(0, width * scale),
            (hi(1).ceil() as i64 + 1).clamp(0, height * scale),
        ];
        Self { to_face, bounds, side: quad.size * s }
    }

    /// Whether any of the face lands in the photo.
    pub fn is_empty(&self) -> bool {
        self.bounds[2] <= self.bounds[0] || self.bounds[3] <= self.bounds[1]
    }

    /// `(u, v)` of every output pixel of the footprint: `[h, w]` each.
    fn face_coordinates(&self, device: Device) -> (Tensor, Tensor) {
        let [x0, y0, x1, y1] = self.bounds;
        let opts = (Kind::Float, device);
        let xs = Tensor::arange_start(x0, x1, (Kind::Double, device)).view([1, -1]);
        let ys = Tensor::arange_start(y0, y1, (Kind::Double, device)).view([-1, 1]);
        let a = self.to_face;
        let u = (&xs * a[0] + &ys * a[1] + a[2]).to_kind(opts.0);
        let v = (&xs * a[3] + &ys * a[4] + a[5]).to_kind(opts.0);
        (u, v)
    }
}

/// The feathered mask at unit-square coordinates: 0 outside the face's crop, a smooth ramp
/// (smoothstep) over `[EDGE_START, EDGE_END]` of the side from its border, 1 inside.
pub fn mask(u: &Tensor, v: &Tensor) -> Tensor {
    let border = u.minimum(&(-u + 1.0)).minimum(&v.minimum(&(-v + 1.0)));
    let t = ((border - EDGE_START) / (EDGE_END - EDGE_START)).clamp(0.0, 1.0);
    &t * &t * (-&t * 2.0 + 3.0)
}

/// The overlap weight: a Gaussian around the crop's centre.
fn centrality(u: &Tensor, v: &Tensor) -> Tensor {
    let d2 = (u - 0.5).square() + (v - 0.5).square();
    (d2 / (-2.0 * CENTRE_SPREAD * CENTRE_SPREAD)).exp()
}

/// A face image `[3,R,R]` shrunk (antialiased bicubic) to about its footprint's side, so the
/// sampling that follows does not alias; faces larger in the output than `R` are kept.
pub fn shrink_to_footprint(face: &Tensor, side: f64) -> Tensor {
    let r = face.size()[1];
    let target = (side.ceil() as i64).max(MIN_SHRUNK);
    if target >= r {
        return face.shallow_clone();
    }
    face.unsqueeze(0)
        .internal_upsample_bicubic2d_aa([target, target], false, None, None)
        .squeeze_dim(0)
        .clamp(0.0, 1.0)
}

/// Faces pasted into one enlarged photo: running sums of the weighted faces, their weights,
/// and the product of `1 - mask` (what the background keeps).
pub struct Canvas {
    num: Tensor,
    den: Tensor,
    keep: Tensor,
}

impl Canvas {
    /// An empty canvas of `height` x `width` output pixels.
    pub fn new(height: i64, width: i64, device: Device) -> Self {
        let opts = (Kind::Float, device);
        Self {
            num: Tensor::zeros([3, height, width], opts),
            den: Tensor::zeros([1, height, width], opts),
            keep: Tensor::ones([1, height, width], opts),
        }
    }

    /// Adds `face` (`[3,S,S]` in [0,1], the aligned face or its shrunk copy) at `placement`.
    pub fn add(&mut self, face: &Tensor, placement: &Placement) {
        if placement.is_empty() {
            return;
        }
        tch::no_grad(|| {
            let device = self.num.device();
            let (u, v) = placement.face_coordinates(device);
            let grid = Tensor::stack(&[&u * 2.0 - 1.0, &v * 2.0 - 1.0], 2).unsqueeze(0);
            // Modes: 2 = bicubic; padding 1 = border; align_corners false (pixel edges at -1, 1).
            let face = face.to_device(device).to_kind(Kind::Float).unsqueeze(0);
            let sampled = face.grid_sampler_2d(&grid, 2, 1, false).squeeze_dim(0).clamp(0.0, 1.0);
            let m = mask(&u, &v).unsqueeze(0);
            let w = &m * centrality(&u, &v).unsqueeze(0);
            let [x0, y0, x1, y1] = placement.bounds;
            let region = |t: &Tensor| t.narrow(1, y0, y1 - y0).narrow(2, x0, x1 - x0);
            let _ = region(&self.num).g_add_(&(sampled * &w));
            let _ = region(&self.den).g_add_(&w);
            let _ = region(&self.keep).g_mul_(&(-m + 1.0));
        })
    }

    /// Where the faces cover the photo: `1 - prod(1 - mask)`, `[1,H,W]`.
    pub fn coverage(&self) -> Tensor {
        -&self.keep + 1.0
    }

    /// The faces over `background` (`[3,H,W]`): `coverage * faces + (1 - coverage) * background`,
    /// the faces averaged by their overlap weights where several cover a pixel.
    pub fn composite(&self, background: &Tensor) -> Tensor {
        let faces = &self.num / self.den.clamp_min(1e-12);
        &faces * self.coverage() + background * &self.keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::ffhq::quad;

    #[test]
    fn input_side_is_the_largest_power_the_crop_resolves() {
        assert_eq!(input_side(90.0, 1024), 64);
        assert_eq!(input_side(64.0, 1024), 64);
        assert_eq!(input_side(63.9, 1024), 32);
        assert_eq!(input_side(5000.0, 1024), 1024);
        assert_eq!(input_side(5000.0, 256), 256);
        assert_eq!(input_side(1.0, 1024), 2);
    }

    /// The placement maps the quad's corners to the unit square's corners (in pixel-centre
    /// terms) and agrees with `Quad::to_aligned`.
    #[test]
    fn placement_inverts_the_quad() {
        let lm = [[100.0, 100.0], [200.0, 110.0], [150.0, 150.0], [120.0, 200.0], [180.0, 205.0]];
        let q = quad(&lm).unwrap();
        for scale in [1, 2, 4] {
            let p = Placement::new(&q, scale, 400, 400);
            let s = scale as f64;
            for point in [[150.0, 120.0], [30.0, 250.0], [0.0, 0.0]] {
                let aligned = q.to_aligned(point, 1024);
                let (xo, yo) = ((point[0] + 0.5) * s - 0.5, (point[1] + 0.5) * s - 0.5);
                let a = p.to_face;
                let u = a[0] * xo + a[1] * yo + a[2];
                let v = a[3] * xo + a[4] * yo + a[5];
                assert!((u * 1024.0 - 0.5 - aligned[0]).abs() < 1e-6, "{scale} {point:?}");
                assert!((v * 1024.0 - 0.5 - aligned[1]).abs() < 1e-6, "{scale} {point:?}");
            }
            assert!((p.side - q.size * s).abs() < 1e-9);
        }
    }

    #[test]
    fn mask_is_zero_at_the_border_and_one_inside() {
        let u = Tensor::from_slice(&[0.0f32, 0.01, 0.05, 0.08, 0.5, 0.99, 1.2]);
        let v = Tensor::full([7], 0.5, (Kind::Float, Device::Cpu));
        let m: Vec<f32> = Vec::try_from(mask(&u, &v)).unwrap();
        assert_eq!(m[0], 0.0);
        assert_eq!(m[1], 0.0);
        assert!(m[2] > 0.3 && m[2] < 0.7, "{}", m[2]);
        assert_eq!(m[3], 1.0);
        assert_eq!(m[4], 1.0);
        assert_eq!(m[5], 0.0);
        assert_eq!(m[6], 0.0);
    }

    /// A face of one colour pasted over a background: that colour inside, the background
    /// outside its footprint, nothing outside [0,1].
    #[test]
    fn canvas_blends_a_face_over_the_background() {
        let lm = [[40.0, 40.0], [60.0, 40.0], [50.0, 50.0], [42.0, 60.0], [58.0, 60.0]];
        let q = quad(&lm).unwrap();
        let p = Placement::new(&q, 2, 100, 100);
        let mut canvas = Canvas::new(200, 200, Device::Cpu);
        canvas.add(&Tensor::ones([3, 64, 64], (Kind::Float, Device::Cpu)), &p);
        let bg = Tensor::zeros([3, 200, 200], (Kind::Float, Device::Cpu));
        let out = canvas.composite(&bg);
        // The eyes' midpoint (50, 42) in the photo is (100.5, 84.5) in the output.
        assert!((out.double_value(&[0, 84, 100]) - 1.0).abs() < 1e-5);
        assert_eq!(out.double_value(&[0, 2, 2]), 0.0);
        assert!(out.max().double_value(&[]) <= 1.0 + 1e-6);
    }
}
