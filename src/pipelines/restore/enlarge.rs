//! Enlarging a photo by a power of two `s` so that PULSE's bicubic downscaler `D` (by `s`) gives
//! the photo back exactly (docs/design.md, *Restoring photos*).
//!
//! `U` is libtorch's bicubic interpolation (Keys' cubic, a = -0.75; pixel centres at
//! `(i + 0.5) s - 0.5`; edges repeated), separable like `D`. Along one axis `A = D U` is a small
//! banded matrix (half-band 3 to 4, condition number about 2), so `E = U A^-1` per axis is an
//! enlargement with `D(E(y)) = y` for every `y`, to float rounding. The restored photo is then
//! the composite corrected by `E` of what it misses: `R = C + E(x - D(C))`, so `D(R) = x`.
use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// Half-band of `A = D U`: `D`'s 4s taps and `U`'s 4 taps reach 3 low-resolution pixels (4
/// where the reflected and the repeated edges meet).
const BAND: usize = 4;

/// At most this many clamp-and-correct rounds (alternating projections onto `[0,1]` and onto
/// `D(R) = x`): a pixel pushed past black or white by the correction is clamped, which the next
/// round spreads to its neighbours. Each round takes about 0.57 of what is left (measured on a
/// composite that is another picture altogether: 7.3 levels after one round, 0.09 after eight).
pub const MAX_ROUNDS: usize = 8;

/// The rounds stop once `D(R)` is within this of the photo everywhere (a tenth of an 8-bit
/// level; writing the result in 8 bits moves it by up to half a level anyway).
pub const STOP: f64 = 0.1 / 255.0;

/// The downscaler's cubic (`crate::pulse::downscale`, Keys' a = -0.5).
const DOWN_A: f64 = -0.5;
/// libtorch's bicubic interpolation (`upsample_bicubic2d`), which is `U`: a = -0.75.
const UP_A: f64 = -0.75;

/// Keys' cubic convolution kernel with parameter `a`.
fn cubic(x: f64, a: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        (a + 2.0) * x.powi(3) - (a + 3.0) * x.powi(2) + 1.0
    } else if x < 2.0 {
        a * x.powi(3) - 5.0 * a * x.powi(2) + 8.0 * a * x - 4.0 * a
    } else {
        0.0
    }
}

/// The downscaler's normalised taps for `factor` (as `Downscaler::new` makes them).
fn down_taps(factor: i64) -> Vec<f64> {
    let k = 4 * factor;
    let f = factor as f64;
    let raw: Vec<f64> =
        (0..k).map(|i| cubic((i as f64 - (k / 2) as f64 + 0.5) / f, DOWN_A)).collect();
    let sum: f64 = raw.iter().sum();
    raw.iter().map(|t| t / sum).collect()
}

/// Output pixel `s j + q` of `U` reads input pixels `j - 2 ..= j + 2` (indices clamped to the
/// photo) with these weights, as `upsample_bicubic2d` does without `align_corners`: source
/// position `(s j + q + 0.5) / s - 0.5` (the fifth weight is zero for half the phases; Keys'
/// kernel sums to one, so constants stay).
fn up_taps(factor: i64) -> Vec<[f64; 5]> {
    (0..factor)
        .map(|q| {
            let delta = (q as f64 + 0.5) / factor as f64 - 0.5;
            std::array::from_fn(|t| cubic(delta - (t as f64 - 2.0), UP_A))
        })
        .collect()
}

/// numpy's `reflect` index (the edge pixel is not repeated), as the downscaler pads.
fn reflect(i: i64, n: i64) -> i64 {
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    if m >= n {
        period - m
    } else {
        m
    }
}

/// `A = D U` along an axis of `n` low-resolution pixels, LU-factorised in band storage (no
/// pivoting: A is well conditioned and diagonally heavy).
#[derive(Debug, Clone)]
struct BandLu {
    n: usize,
    /// Row `i`, column `j` at `i * W + (j + BAND - i)`, `W = 2 BAND + 1`; L's unit diagonal is
    /// implied, its other entries below the diagonal, U's on and above.
    lu: Vec<f64>,
}

const W: usize = 2 * BAND + 1;

impl BandLu {
    fn new(n: usize, factor: i64) -> Result<Self> {
        ensure!(n >= 2, "cannot enlarge a side of {n} pixel(s): at least 2 are needed");
        let big = n as i64 * factor;
        let down = down_taps(factor);
        let up = up_taps(factor);
        let before = 3 * factor / 2;
        let mut lu = vec![0.0; n * W];
        for (j, row) in lu.chunks_mut(W).enumerate() {
            for (i, t) in down.iter().enumerate() {
                let p = reflect(j as i64 * factor - before + i as i64, big);
                let (src, q) = (p / factor, (p % factor) as usize);
                for (k, u) in up[q].iter().enumerate().filter(|(_, u)| **u != 0.0) {
                    let col = (src + k as i64 - 2).clamp(0, n as i64 - 1);
                    let offset = col - j as i64 + BAND as i64;
                    ensure!((0..W as i64).contains(&offset), "D U is wider than its band");
                    row[offset as usize] += t * u;
                }
            }
        }
        for i in 0..n {
            let pivot = lu[i * W + BAND];
            ensure!(pivot.abs() > 1e-6, "D U is singular");
            for r in i + 1..n.min(i + BAND + 1) {
                let l = lu[r * W + (i + BAND - r)] / pivot;
                lu[r * W + (i + BAND - r)] = l;
                for c in i + 1..n.min(i + BAND + 1) {
                    lu[r * W + (c + BAND - r)] -= l * lu[i * W + (c + BAND - i)];
                }
            }
        }
        Ok(Self { n, lu })
    }

    /// Solves `A y = b` for every column of `data`, `planes` blocks of `n` rows by `m` columns
    /// (row-major), in place; each step is one row of all columns at once.
    fn solve_rows(&self, data: &mut [f32], planes: usize, m: usize) {
        let n = self.n;
        let at = |i: usize, j: usize| self.lu[i * W + (j + BAND - i)] as f32;
        for plane in data.chunks_mut(n * m).take(planes) {
            for i in 1..n {
                let (done, rest) = plane.split_at_mut(i * m);
                let row = &mut rest[..m];
                for k in i.saturating_sub(BAND)..i {
                    let l = at(i, k);
                    for (y, x) in row.iter_mut().zip(&done[k * m..(k + 1) * m]) {
                        *y -= l * x;
                    }
                }
            }
            for i in (0..n).rev() {
                let (head, tail) = plane.split_at_mut((i + 1) * m);
                let row = &mut head[i * m..];
                for k in i + 1..n.min(i + BAND + 1) {
                    let u = at(i, k);
                    let base = (k - i - 1) * m;
                    for (y, x) in row.iter_mut().zip(&tail[base..base + m]) {
                        *y -= u * x;
                    }
                }
                let pivot = at(i, i);
                row.iter_mut().for_each(|y| *y /= pivot);
            }
        }
    }
}

/// The enlargement by one factor for photos of one size.
#[derive(Debug)]
pub struct Enlarger {
    factor: i64,
    rows: BandLu,
    cols: BandLu,
}

impl Enlarger {
    /// An enlargement by `factor` (a power of two, at least 2) of `height` x `width` photos.
    pub fn new(factor: i64, height: i64, width: i64) -> Result<Self> {
        ensure!(
            factor >= 2 && factor.count_ones() == 1,
            "the enlargement factor {factor} is not a power of two of at least 2"
        );
        Ok(Self {
            factor,
            rows: BandLu::new(height as usize, factor)?,
            cols: BandLu::new(width as usize, factor)?,
        })
    }

    pub fn factor(&self) -> i64 {
        self.factor
    }

    /// PULSE's downscaler `D`: `[C,sH,sW]` -> `[C,H,W]`, the values of
    /// [`crate::pulse::Downscaler::forward`]. Its taps are those of an antialiased bicubic
    /// reduction (Pillow's and libtorch's, a = -0.5, the kernel stretched by the factor), which
    /// differs only in cutting the kernel at the edges where PULSE reflects: so the image is
    /// reflect-padded by two output pixels first and they are cut off after. On large photos this
    /// is many times faster than the downscaler's convolutions with one input channel.
    pub fn downscale(&self, x: &Tensor) -> Result<Tensor> {
        let size = x.size();
        let f = self.factor;
        ensure!(
            size.len() == 3 && size[1..].iter().all(|&n| n % f == 0 && n / f >= 2),
            "cannot downscale {size:?} by {f}"
        );
        let pad = |t: &Tensor, dim: i64| {
            let n = t.size()[dim as usize];
            let idx: Vec<i64> = (-2 * f..n + 2 * f).map(|i| reflect(i, n)).collect();
            t.index_select(dim, &Tensor::from_slice(&idx).to_device(t.device()))
        };
        let (h, w) = (size[1] / f, size[2] / f);
        let padded = pad(&pad(x, 1), 2).unsqueeze(0);
        let down = padded.internal_upsample_bicubic2d_aa([h + 4, w + 4], false, None, None);
        Ok(down.squeeze_dim(0).narrow(1, 2, h).narrow(2, 2, w))
    }

    /// `U`: libtorch's bicubic interpolation, `[C,H,W]` -> `[C,sH,sW]`.
    pub fn interpolate(&self, y: &Tensor) -> Tensor {
        let (h, w) = (y.size()[1], y.size()[2]);
        y.unsqueeze(0)
            .upsample_bicubic2d([h * self.factor, w * self.factor], false, None, None)
            .squeeze_dim(0)
    }

    /// `A^-1` along both axes of `[C,H,W]` (on the CPU: a few multiply-adds per pixel).
    fn solve(&self, y: &Tensor) -> Result<Tensor> {
        let (c, h, w) = (y.size()[0], y.size()[1], y.size()[2]);
        ensure!(
            h as usize == self.rows.n && w as usize == self.cols.n,
            "this enlargement is for {}x{} photos, not {w}x{h}",
            self.cols.n,
            self.rows.n
        );
        let device = y.device();
        let mut data: Vec<f32> =
            Vec::try_from(y.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view(-1))?;
        self.rows.solve_rows(&mut data, c as usize, w as usize);
        let t = Tensor::from_slice(&data).view([c, h, w]).transpose(1, 2).contiguous();
        let mut data: Vec<f32> = Vec::try_from(t.view(-1))?;
        self.cols.solve_rows(&mut data, c as usize, h as usize);
        Ok(Tensor::from_slice(&data).view([c, w, h]).transpose(1, 2).contiguous().to_device(device))
    }

    /// `E = U A^-1`: an enlargement of `[C,H,W]` whose downscale is `y` again.
    pub fn enlarge(&self, y: &Tensor) -> Result<Tensor> {
        Ok(self.interpolate(&self.solve(y)?))
    }

    /// The image near `composite` (`[3,sH,sW]`) whose downscale is `photo` and whose values
    /// are in [0,1]: `R <- clamp(R + E(photo - D(R)))`, once, then again while `D(R)` is off by
    /// [`STOP`] or more somewhere (at most [`MAX_ROUNDS`] in all). Without clamping one round
    /// is exact; it is the clamp that leaves something for the next.
    pub fn project(&self, composite: &Tensor, photo: &Tensor) -> Result<Tensor> {
        let mut r = composite.shallow_clone();
        let mut residual = photo - self.downscale(&r)?;
        for _ in 0..MAX_ROUNDS {
            r = (r + self.enlarge(&residual)?).clamp(0.0, 1.0);
            residual = photo - self.downscale(&r)?;
            if residual.abs().max().double_value(&[]) < STOP {
                break;
            }
        }
        Ok(r)
    }

    /// The plain enlargement of `photo`: `E(photo)`, projected as a restored photo is.
    pub fn plain(&self, photo: &Tensor) -> Result<Tensor> {
        self.project(&self.enlarge(photo)?, photo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A photo-like image: smooth, with some fine detail, from 0.05 to 0.95.
    fn photo(h: i64, w: i64, seed: i64) -> Tensor {
        tch::manual_seed(seed);
        let smooth = Tensor::rand([1, 3, h / 4 + 1, w / 4 + 1], (Kind::Float, Device::Cpu))
            .upsample_bilinear2d([h, w], false, None, None)
            .squeeze_dim(0);
        let detail = Tensor::rand([3, h, w], (Kind::Float, Device::Cpu)) * 0.1;
        smooth * 0.8 + 0.05 + detail
    }

    /// `D(E(y)) = y` for any `y`, every factor, odd and tiny sizes included.
    #[test]
    fn enlargement_downscales_back_exactly() {
        for (factor, h, w) in [(2, 17, 23), (4, 40, 33), (8, 12, 9), (4, 2, 3)] {
            let e = Enlarger::new(factor, h, w).unwrap();
            let y = Tensor::randn([3, h, w], (Kind::Float, Device::Cpu));
            let big = e.enlarge(&y).unwrap();
            assert_eq!(big.size(), [3, h * factor, w * factor]);
            let err = (e.downscale(&big).unwrap() - &y).abs().max().double_value(&[]);
            assert!(err < 1e-4, "factor {factor}, {w}x{h}: D(E(y)) - y = {err}");
        }
    }

    /// The banded matrix is the composition of the two filters as the code runs them.
    #[test]
    fn band_matrix_is_d_after_u() {
        let (factor, n) = (4, 11);
        let e = Enlarger::new(factor, n, 2).unwrap();
        // A y computed with the tensors: D(U(y)) on a column image [1, n, 2].
        let y = Tensor::randn([1, n, 2], (Kind::Float, Device::Cpu));
        let want = e.downscale(&e.interpolate(&y)).unwrap();
        let solved = e.solve(&want).unwrap();
        let err = (solved - y).abs().max().double_value(&[]);
        assert!(err < 1e-4, "A^-1 (D U y) - y = {err}");
    }

    /// `D` computed by the antialiased reduction is PULSE's downscaler.
    #[test]
    fn sliced_downscale_equals_the_downscaler() {
        for (factor, h, w) in [(2, 6, 10), (4, 17, 9), (8, 4, 5)] {
            let x = Tensor::rand([3, h * factor, w * factor], (Kind::Float, Device::Cpu));
            let e = Enlarger::new(factor, h, w).unwrap();
            let want = crate::pulse::Downscaler::new(factor, Device::Cpu)
                .unwrap()
                .forward(&x.unsqueeze(0))
                .unwrap()
                .squeeze_dim(0);
            let err = (e.downscale(&x).unwrap() - want).abs().max().double_value(&[]);
            assert!(err < 1e-6, "factor {factor}: {err}");
        }
    }

    #[test]
    fn constants_stay_constant() {
        let e = Enlarger::new(4, 10, 14).unwrap();
        let y = Tensor::full([3, 10, 14], 0.3, (Kind::Float, Device::Cpu));
        for big in [e.interpolate(&y), e.enlarge(&y).unwrap()] {
            assert!((big - 0.3).abs().max().double_value(&[]) < 1e-5);
        }
    }

    /// After the clamp rounds, a photo in [0,1] still downscales back within a level of 8 bits,
    /// and a composite that is another picture altogether is pulled onto it.
    #[test]
    fn projection_is_consistent_within_a_level() {
        let x = photo(48, 40, 5);
        let e = Enlarger::new(4, 48, 40).unwrap();
        let plain = e.plain(&x).unwrap();
        let err = (e.downscale(&plain).unwrap() - &x).abs().max().double_value(&[]);
        println!("plain enlargement: max |D(R) - x| = {:.3} levels", err * 255.0);
        assert!(err < 1.0 / 255.0, "{err}");
        let composite = photo(192, 160, 6);
        let r = e.project(&composite, &x).unwrap();
        let err = (e.downscale(&r).unwrap() - &x).abs().max().double_value(&[]);
        println!("another picture: max |D(R) - x| = {:.3} levels", err * 255.0);
        assert!(err < 1.0 / 255.0, "{err}");
        assert!(r.min().double_value(&[]) >= 0.0 && r.max().double_value(&[]) <= 1.0);
    }
}
