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

    /// `(u, v)` of output pixel `(x, y)`.
    fn face_coordinates(&self, x: i64, y: i64) -> (f32, f32) {
        let (a, x, y) = (self.to_face, x as f64, y as f64);
        ((a[0] * x + a[1] * y + a[2]) as f32, (a[3] * x + a[4] * y + a[5]) as f32)
    }
}

/// The feathered mask at unit-square coordinates: 0 outside the face's crop, a smooth ramp
/// (smoothstep) over `[EDGE_START, EDGE_END]` of the side from its border, 1 inside.
pub fn mask(u: f32, v: f32) -> f32 {
    let border = u.min(1.0 - u).min(v.min(1.0 - v)) as f64;
    let t = ((border - EDGE_START) / (EDGE_END - EDGE_START)).clamp(0.0, 1.0) as f32;
    t * t * (3.0 - 2.0 * t)
}

/// The overlap weight: a Gaussian around the crop's centre.
fn centrality(u: f32, v: f32) -> f32 {
    let d2 = (u - 0.5).powi(2) + (v - 0.5).powi(2);
    (d2 / (-2.0 * CENTRE_SPREAD * CENTRE_SPREAD) as f32).exp()
}

/// Keys' cubic (a = -0.75) weights of the 4 taps around a point `t` past the second one, as
/// libtorch's bicubic sampling computes them.
fn cubic_weights(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// A face (`[S,S,3]`, channels last) sampled at unit-square `(u, v)` as libtorch's
/// `grid_sampler_2d` does (bicubic, border padding: each tap's index clamped to the face; pixel
/// edges at 0 and 1), clamped to [0,1].
fn sample(face: &[f32], side: usize, u: f32, v: f32) -> [f32; 3] {
    let (x, y) = (u * side as f32 - 0.5, v * side as f32 - 0.5);
    let (fx, fy) = (x.floor(), y.floor());
    let (wx, wy) = (cubic_weights(x - fx), cubic_weights(y - fy));
    let (ix, iy) = (fx as i64 - 1, fy as i64 - 1);
    let inside = ix >= 0 && iy >= 0 && ix + 4 <= side as i64 && iy + 4 <= side as i64;
    // Tap indices: the 4 from `ix` on, or clamped to the face near its border.
    let at = |base: i64, k: usize| (base + k as i64).clamp(0, side as i64 - 1) as usize;
    let mut out = [0.0f32; 3];
    for (j, wy) in wy.iter().enumerate() {
        let row = &face[at(iy, j) * side * 3..][..side * 3];
        let taps: [f32; 12] = if inside {
            let start = ix as usize * 3;
            row[start..start + 12].try_into().expect("12 values")
        } else {
            std::array::from_fn(|n| row[at(ix, n / 3) * 3 + n % 3])
        };
        for (i, wx) in wx.iter().enumerate() {
            let w = wy * wx;
            for (c, o) in out.iter_mut().enumerate() {
                *o += w * taps[i * 3 + c];
            }
        }
    }
    out.map(|o| o.clamp(0.0, 1.0))
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

/// Faces grouped so that no two groups' footprints overlap, with each group's bounds (the union
/// of its footprints): each group is pasted on one [`Canvas`], so overlapping faces blend.
pub fn overlap_groups(placements: &[Placement]) -> Vec<(Vec<usize>, [i64; 4])> {
    let overlap =
        |a: &[i64; 4], b: &[i64; 4]| a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
    let mut groups: Vec<(Vec<usize>, [i64; 4])> = placements
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.is_empty())
        .map(|(i, p)| (vec![i], p.bounds))
        .collect();
    // Merging two groups can make their union overlap a third: repeat until nothing merges.
    while let Some((i, j)) = (0..groups.len())
        .flat_map(|i| (i + 1..groups.len()).map(move |j| (i, j)))
        .find(|&(i, j)| overlap(&groups[i].1, &groups[j].1))
    {
        let (members, b) = groups.swap_remove(j);
        let a = &mut groups[i];
        a.0.extend(members);
        a.1 = [a.1[0].min(b[0]), a.1[1].min(b[1]), a.1[2].max(b[2]), a.1[3].max(b[3])];
    }
    groups
}

/// Faces pasted into a rectangle of one enlarged photo: running sums of the weighted faces
/// (channels last), their weights, and the product of `1 - mask` (what the background keeps).
/// Plain loops over the rectangle's rows, each pixel computed once from its `(u, v)`: libtorch's
/// bicubic `grid_sampler_2d` and a dozen whole-tensor passes cost several times as much.
pub struct Canvas {
    bounds: [i64; 4],
    w: usize,
    num: Vec<f32>,
    den: Vec<f32>,
    keep: Vec<f32>,
}

impl Canvas {
    /// An empty canvas over `bounds` (`[x0, y0, x1, y1]`, output pixels, exclusive ends).
    pub fn new(bounds: [i64; 4]) -> Self {
        let [x0, y0, x1, y1] = bounds;
        let (h, w) = ((y1 - y0).max(0) as usize, (x1 - x0).max(0) as usize);
        Self { bounds, w, num: vec![0.0; h * w * 3], den: vec![0.0; h * w], keep: vec![1.0; h * w] }
    }

    /// Adds `face` (`[3,S,S]` in [0,1], the aligned face or its shrunk copy) at `placement`;
    /// only the part of its footprint within the canvas is drawn (a canvas may be one band of
    /// rows of a large face, so the paste-back never holds a whole 8192-pixel canvas).
    pub fn add(&mut self, face: &Tensor, placement: &Placement) -> anyhow::Result<()> {
        let [ox, oy, ex, ey] = self.bounds;
        let [x0, y0, x1, y1] = placement.bounds;
        let [x0, y0, x1, y1] = [x0.max(ox), y0.max(oy), x1.min(ex), y1.min(ey)];
        if x1 <= x0 || y1 <= y0 {
            return Ok(());
        }
        let side = face.size()[1] as usize;
        let face = face.to_device(Device::Cpu).to_kind(Kind::Float).permute([1, 2, 0]);
        let face: Vec<f32> = Vec::try_from(face.contiguous().view(-1))?;
        let w = self.w;
        let (cols, first) = ((x0 - ox) as usize..(x1 - ox) as usize, (y0 - oy) as usize);
        let rows: Vec<_> = self
            .num
            .chunks_mut(w * 3)
            .zip(self.den.chunks_mut(w))
            .zip(self.keep.chunks_mut(w))
            .skip(first)
            .take((y1 - y0) as usize)
            .enumerate()
            .collect();
        let work = rows.len() * cols.len() * 64;
        crate::parallel::parallel(rows, work, |(n, ((num, den), keep))| {
            let y = y0 + n as i64;
            for x in cols.clone() {
                let (u, v) = placement.face_coordinates(ox + x as i64, y);
                let m = mask(u, v);
                if m == 0.0 {
                    continue;
                }
                let weight = m * centrality(u, v);
                for (acc, p) in num[x * 3..x * 3 + 3].iter_mut().zip(sample(&face, side, u, v)) {
                    *acc += p * weight;
                }
                den[x] += weight;
                keep[x] *= 1.0 - m;
            }
        });
        Ok(())
    }

    /// The faces over `background` (`[3,h,w]`, the canvas's rectangle of the enlarged photo):
    /// `coverage * faces + (1 - coverage) * background` with `coverage = 1 - prod(1 - mask)`,
    /// the faces averaged by their overlap weights where several cover a pixel.
    pub fn composite(&self, background: &Tensor) -> anyhow::Result<Tensor> {
        let size = background.size();
        let n = self.keep.len();
        anyhow::ensure!(size.len() == 3 && size[0] == 3 && (size[1] * size[2]) as usize == n);
        let mut out: Vec<f32> = Vec::try_from(
            background.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view(-1),
        )?;
        for (c, plane) in out.chunks_mut(n).enumerate() {
            for (p, o) in plane.iter_mut().enumerate() {
                let face = self.num[p * 3 + c] / self.den[p].max(1e-12);
                *o = face * (1.0 - self.keep[p]) + *o * self.keep[p];
            }
        }
        Ok(Tensor::from_slice(&out).view([3, size[1], size[2]]))
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
        let m = [0.0f32, 0.01, 0.05, 0.08, 0.5, 0.99, 1.2].map(|u| mask(u, 0.5));
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
        // A canvas over part of the output, the footprint inside it.
        let [x0, y0] = [p.bounds[0] - 2, p.bounds[1] - 2];
        assert!(x0 > 0 && y0 > 0);
        let mut canvas = Canvas::new([x0, y0, 200, 200]);
        canvas.add(&Tensor::ones([3, 64, 64], (Kind::Float, Device::Cpu)), &p).unwrap();
        let bg = Tensor::zeros([3, 200 - y0, 200 - x0], (Kind::Float, Device::Cpu));
        let out = canvas.composite(&bg).unwrap();
        // The eyes' midpoint (50, 42) in the photo is (100.5, 84.5) in the output.
        assert!((out.double_value(&[0, 84 - y0, 100 - x0]) - 1.0).abs() < 1e-5);
        assert_eq!(out.double_value(&[0, 2, 2]), 0.0);
        assert!(out.max().double_value(&[]) <= 1.0 + 1e-6);
    }

    /// Where the mask is 1, one face pasted is the face sampled by libtorch's bicubic
    /// `grid_sampler_2d` (border padding, align_corners false) at each pixel's `(u, v)`.
    #[test]
    fn canvas_samples_as_libtorch_grid_sampler() {
        let _seed = crate::rng::seed(0);
        let lm = [[40.0, 40.0], [61.0, 43.0], [50.0, 50.0], [42.0, 60.0], [58.0, 62.0]];
        let p = Placement::new(&quad(&lm).unwrap(), 4, 100, 100);
        let face = Tensor::rand([3, 48, 48], (Kind::Float, Device::Cpu));
        let mut canvas = Canvas::new(p.bounds);
        canvas.add(&face, &p).unwrap();
        let [x0, y0, x1, y1] = p.bounds;
        let bg = Tensor::zeros([3, y1 - y0, x1 - x0], (Kind::Float, Device::Cpu));
        let out = canvas.composite(&bg).unwrap();
        let coords: Vec<(f32, f32)> = (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .map(|(x, y)| p.face_coordinates(x, y))
            .collect();
        let grid: Vec<f32> =
            coords.iter().flat_map(|&(u, v)| [2.0 * u - 1.0, 2.0 * v - 1.0]).collect();
        let grid = Tensor::from_slice(&grid).view([1, y1 - y0, x1 - x0, 2]);
        let want =
            face.unsqueeze(0).grid_sampler_2d(&grid, 2, 1, false).squeeze_dim(0).clamp(0.0, 1.0);
        let inside: Vec<f32> = coords.iter().map(|&(u, v)| f32::from(mask(u, v) == 1.0)).collect();
        let inside = Tensor::from_slice(&inside).view([1, y1 - y0, x1 - x0]);
        assert!(inside.sum(Kind::Float).double_value(&[]) > 1000.0);
        let err = ((out - want) * inside).abs().max().double_value(&[]);
        assert!(err < 1e-5, "{err}");
    }

    /// A canvas drawn in bands of rows gives what one canvas over the whole footprint gives.
    #[test]
    fn canvas_in_bands_is_the_whole_canvas() {
        let _seed = crate::rng::seed(0);
        let lm = [[40.0, 40.0], [61.0, 43.0], [50.0, 50.0], [42.0, 60.0], [58.0, 62.0]];
        let p = Placement::new(&quad(&lm).unwrap(), 4, 100, 100);
        let face = Tensor::rand([3, 48, 48], (Kind::Float, Device::Cpu));
        let [x0, y0, x1, y1] = p.bounds;
        let bg = Tensor::rand([3, y1 - y0, x1 - x0], (Kind::Float, Device::Cpu));
        let mut whole = Canvas::new(p.bounds);
        whole.add(&face, &p).unwrap();
        let whole = whole.composite(&bg).unwrap();
        let bands: Vec<Tensor> = (y0..y1)
            .step_by(37)
            .map(|y| {
                let band = [x0, y, x1, (y + 37).min(y1)];
                let mut c = Canvas::new(band);
                c.add(&face, &p).unwrap();
                c.composite(&bg.narrow(1, y - y0, band[3] - y)).unwrap()
            })
            .collect();
        assert!(Tensor::cat(&bands, 1).equal(&whole));
    }

    #[test]
    fn overlapping_footprints_share_a_group() {
        let at = |x: i64| Placement { to_face: [0.0; 6], bounds: [x, 0, x + 10, 10], side: 10.0 };
        // 0, 2 and 1 overlap in a chain; 3 stands alone; 4 is empty.
        let mut empty = at(100);
        empty.bounds[2] = 100;
        let groups = overlap_groups(&[at(0), at(17), at(8), at(40), empty]);
        let mut got: Vec<_> = groups
            .into_iter()
            .map(|(mut members, bounds)| {
                members.sort();
                (members, bounds)
            })
            .collect();
        got.sort();
        assert_eq!(got, [(vec![0, 1, 2], [0, 0, 27, 10]), (vec![3], [40, 0, 50, 10])]);
    }
}
