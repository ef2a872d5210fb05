//! The enlargement's three separable filters on [`Planes`] (docs/design.md, *Restoring
//! photos*): PULSE's downscaler `D`, libtorch's bicubic interpolation `U`, and `A^-1` with
//! `A = D U` along each axis, each over a rectangle of the image so that corrections stay near
//! what they correct.
use super::planes::{Planes, Rect};
use crate::parallel::parallel;
use crate::pulse::downscale::{keys_cubic, reflect_index as reflect, taps as down_taps};
use anyhow::{ensure, Result};
use std::ops::Range;

/// Half-band of `A = D U`: `D`'s 4s taps and `U`'s 4 taps reach 3 low-resolution pixels (4
/// where the reflected and the repeated edges meet).
const BAND: usize = 4;
/// Row stride of [`BandLu`]'s storage.
const W: usize = 2 * BAND + 1;

/// libtorch's bicubic interpolation (`upsample_bicubic2d`), which is `U`: Keys' a = -0.75.
const UP_A: f64 = -0.75;

/// Output pixel `s j + q` of `U` reads input pixels `j - 2 ..= j + 2` (indices clamped to the
/// photo) with these weights, as `upsample_bicubic2d` does without `align_corners`: source
/// position `(s j + q + 0.5) / s - 0.5` (the fifth weight is zero for half the phases; Keys'
/// kernel sums to one, so constants stay).
fn up_taps(factor: usize) -> Vec<[f64; 5]> {
    (0..factor)
        .map(|q| {
            let delta = (q as f64 + 0.5) / factor as f64 - 0.5;
            std::array::from_fn(|t| keys_cubic(delta - (t as f64 - 2.0), UP_A))
        })
        .collect()
}

/// A window of low-resolution values widened by `U` along rows ([`Filters::widened`]), to be
/// added to the enlarged rows `out`: `wide` holds the window's rows from `first` on, those
/// rows read.
#[derive(Debug)]
pub struct Widened {
    win: Rect,
    out: Range<usize>,
    first: usize,
    wide: Planes,
}

/// `y += a x`.
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// The filters for one enlargement factor.
#[derive(Debug, Clone)]
pub struct Filters {
    factor: usize,
    /// `D`'s taps: low-resolution pixel `j` reads high-resolution `s j - before + i`.
    down: Vec<f32>,
    before: i64,
    /// `U`'s taps per phase, over low-resolution `j - 2 ..= j + 2`.
    up: Vec<[f32; 5]>,
}

impl Filters {
    pub fn new(factor: usize) -> Self {
        Self {
            factor,
            down: down_taps(factor as i64).iter().map(|&t| t as f32).collect(),
            before: 3 * factor as i64 / 2,
            up: up_taps(factor).iter().map(|t| t.map(|u| u as f32)).collect(),
        }
    }

    /// `D(x)` over the low-resolution `rect`, `x` being the whole enlarged image (its edges
    /// reflected as PULSE pads): rows first (a weighted sum of 4s whole rows, which vectorises),
    /// then columns.
    pub fn downscale(&self, x: &Planes, rect: Rect) -> Planes {
        let (s, k) = (self.factor as i64, 4 * self.factor);
        let (big_h, big_w) = (x.h as i64, x.w as i64);
        let start = |j: usize| j as i64 * s - self.before;
        // The high-resolution columns the rect reads: reflected ones fall inside too.
        let c0 = start(rect.x0).max(0) as usize;
        let c1 = (start(rect.x1 - 1) + k as i64).min(big_w) as usize;
        let cols: Vec<usize> = (rect.x0..rect.x1)
            .flat_map(|j| (0..k as i64).map(move |i| reflect(start(j) + i, big_w) as usize - c0))
            .collect();
        let mut out = Planes::zeros(x.c, rect.height(), rect.width());
        let work = out.data.len() * k * (s * s) as usize;
        parallel(out.rows_mut(), work, |(ch, y, row)| {
            let mut tmp = vec![0.0f32; c1 - c0];
            for (i, &t) in self.down.iter().enumerate() {
                let src = reflect(start(rect.y0 + y) + i as i64, big_h) as usize;
                axpy(&mut tmp, t, &x.row(ch, src)[c0..c1]);
            }
            for (o, idx) in row.iter_mut().zip(cols.chunks(k)) {
                *o = idx.iter().zip(&self.down).map(|(&j, &t)| t * tmp[j]).sum();
            }
        });
        out
    }

    /// `x <- x + U(y)` over the window `win` (low-resolution; `y` holds its values), then
    /// clamped to [0,1] if `clamp`.
    #[cfg(test)]
    pub fn add_enlarged(&self, x: &mut Planes, y: &Planes, win: Rect, clamp: bool) {
        let fix = self.widened(win, y, 0..x.h).expect("the window is in the image");
        self.add_columns(x, 0, &[fix], clamp);
    }

    /// `U` along rows, for `y`'s rows `rows` only: every row enlarged to `s` times its width,
    /// one phase at a time over the row padded by its edge values (two each side), then
    /// interleaved. `U` reads a window's values with its indices clamped to the window, which
    /// is `U` itself where the window's edges are the image's; elsewhere its values have
    /// decayed to nothing at the window's edge ([`super::margin`]).
    pub fn widen_rows(&self, y: &Planes, rows: Range<usize>) -> Planes {
        let (s, ww) = (self.factor, y.w);
        let first = rows.start;
        let mut wide = Planes::zeros(y.c, rows.len(), s * ww);
        let work = wide.data.len() * 4;
        parallel(wide.rows_mut(), work, |(ch, j, row)| {
            let src = y.row(ch, first + j);
            let mut padded = Vec::with_capacity(ww + 4);
            padded.extend([src[0]; 2]);
            padded.extend_from_slice(src);
            padded.extend([src[ww - 1]; 2]);
            let mut phase = vec![0.0f32; ww];
            for (q, taps) in self.up.iter().enumerate() {
                phase.fill(0.0);
                for (t, &u) in taps.iter().enumerate().filter(|(_, &u)| u != 0.0) {
                    axpy(&mut phase, u, &padded[t..t + ww]);
                }
                for (out, v) in row.iter_mut().skip(q).step_by(s).zip(&phase) {
                    *out = *v;
                }
            }
        });
        wide
    }

    /// Window `win`'s values `y` widened by `U` along rows, as much of them as the enlarged
    /// rows `rows` read; `None` when those rows are outside the window.
    pub fn widened(&self, win: Rect, y: &Planes, rows: Range<usize>) -> Option<Widened> {
        let s = self.factor;
        let out = rows.start.max(s * win.y0)..rows.end.min(s * win.y1);
        if out.is_empty() {
            return None;
        }
        // Row `s j + q` reads window rows `j - 2 ..= j + 2`, clamped to the window.
        let first = (out.start / s - win.y0).saturating_sub(2);
        let last = ((out.end - 1) / s - win.y0 + 2).min(win.height() - 1);
        Some(Widened { win, out, first, wide: self.widen_rows(y, first..last + 1) })
    }

    /// `U` along columns for every widened window, added into its rows of `x`, which holds the
    /// enlarged rows from `row0` on (each output row `s j + q` gets a weighted sum of 4 widened rows),
    /// then clamped to [0,1] if `clamp`: the windows may overlap, so `x`'s rows are what the
    /// threads share out. Each row's sums and clamps are its own, in the windows' order, so
    /// the rows of an image come out the same made all at once or a few at a time.
    pub fn add_columns(&self, x: &mut Planes, row0: usize, fixes: &[Widened], clamp: bool) {
        let s = self.factor;
        // The windows each row of `x` is in.
        let mut covering: Vec<Vec<usize>> = vec![vec![]; x.h];
        for (k, f) in fixes.iter().enumerate() {
            let (a, b) = (f.out.start.max(row0), f.out.end.min(row0 + x.h));
            if a < b {
                covering[a - row0..b - row0].iter_mut().for_each(|c| c.push(k));
            }
        }
        let rows: Vec<_> =
            x.rows_mut().into_iter().filter(|(_, r, _)| !covering[*r].is_empty()).collect();
        let work = fixes.iter().map(|f| f.wide.data.len() * s * 4).sum();
        parallel(rows, work, |(ch, n, row)| {
            let r = row0 + n;
            for f in covering[n].iter().map(|&k| &fixes[k]) {
                let (j, q) = (r / s - f.win.y0, r % s);
                let seg = &mut row[s * f.win.x0..s * f.win.x1];
                for (t, &u) in self.up[q].iter().enumerate().filter(|(_, &u)| u != 0.0) {
                    let src = (j + t).saturating_sub(2).min(f.win.height() - 1);
                    axpy(seg, u, f.wide.row(ch, src - f.first));
                }
            }
            if clamp {
                for f in covering[n].iter().map(|&k| &fixes[k]) {
                    row[s * f.win.x0..s * f.win.x1].iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
                }
            }
        });
    }

    /// `A^-1 b` along both axes of `b`, treating its edges as the image's (exact for the whole
    /// image; for a window whose `b` is zero near the edges, as close as `A^-1` has decayed).
    pub fn solve(&self, b: &Planes) -> Result<Planes> {
        let rows = BandLu::new(b.h, self.factor)?;
        let cols = BandLu::new(b.w, self.factor)?;
        let mut data = b.data.clone();
        rows.solve_rows(&mut data, b.c, b.w);
        let mut t = transpose(&data, b.c, b.h, b.w);
        cols.solve_rows(&mut t, b.c, b.h);
        Ok(Planes { c: b.c, h: b.h, w: b.w, data: transpose(&t, b.c, b.w, b.h) })
    }
}

/// `[c, h, w]` -> `[c, w, h]`.
fn transpose(data: &[f32], c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for ch in 0..c {
        let (src, dst) = (&data[ch * h * w..][..h * w], &mut out[ch * h * w..][..h * w]);
        for (y, row) in src.chunks(w).enumerate() {
            for (x, v) in row.iter().enumerate() {
                dst[x * h + y] = *v;
            }
        }
    }
    out
}

/// `A = D U` along an axis of `n` low-resolution pixels, LU-factorised in band storage (no
/// pivoting: A is well conditioned and diagonally heavy).
#[derive(Debug, Clone)]
struct BandLu {
    n: usize,
    /// Row `i`, column `j` at `i * W + (j + BAND - i)`; L's unit diagonal is implied, its other
    /// entries below the diagonal, U's on and above.
    lu: Vec<f64>,
}

impl BandLu {
    fn new(n: usize, factor: usize) -> Result<Self> {
        ensure!(n >= 2, "cannot enlarge a side of {n} pixel(s): at least 2 are needed");
        let (f, big) = (factor as i64, (n * factor) as i64);
        let down = down_taps(factor as i64);
        let up = up_taps(factor);
        let before = 3 * f / 2;
        let mut lu = vec![0.0; n * W];
        for (j, row) in lu.chunks_mut(W).enumerate() {
            for (i, t) in down.iter().enumerate() {
                let p = reflect(j as i64 * f - before + i as i64, big);
                let (src, q) = (p / f, (p % f) as usize);
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
        let work = data.len() * 2 * BAND;
        let blocks: Vec<&mut [f32]> = data.chunks_mut(n * m).take(planes).collect();
        parallel(blocks, work, |plane| {
            for i in 1..n {
                let (done, rest) = plane.split_at_mut(i * m);
                let row = &mut rest[..m];
                for k in i.saturating_sub(BAND)..i {
                    axpy(row, -at(i, k), &done[k * m..(k + 1) * m]);
                }
            }
            for i in (0..n).rev() {
                let (head, tail) = plane.split_at_mut((i + 1) * m);
                let row = &mut head[i * m..];
                for k in i + 1..n.min(i + BAND + 1) {
                    let base = (k - i - 1) * m;
                    axpy(row, -at(i, k), &tail[base..base + m]);
                }
                let pivot = at(i, i);
                row.iter_mut().for_each(|y| *y /= pivot);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    fn planes(t: &Tensor) -> Planes {
        Planes::from_tensor(t).unwrap()
    }

    /// `D` over the whole image and over a rectangle is PULSE's downscaler, edges included.
    #[test]
    fn downscale_is_the_downscaler() {
        let _seed = crate::rng::seed(0);
        for (factor, h, w) in [(2, 6, 10), (4, 17, 9), (8, 4, 5), (4, 2, 3)] {
            let x = Tensor::rand([3, h * factor, w * factor], (Kind::Float, Device::Cpu));
            let want = crate::pulse::Downscaler::new(factor, Device::Cpu)
                .unwrap()
                .forward(&x.unsqueeze(0))
                .unwrap()
                .squeeze_dim(0);
            let f = Filters::new(factor as usize);
            let all = Rect::all(h as usize, w as usize);
            let got = f.downscale(&planes(&x), all).to_tensor();
            let err = (got - &want).abs().max().double_value(&[]);
            assert!(err < 1e-6, "factor {factor}: {err}");
            let part = Rect { y0: 1, x0: 1, y1: h as usize, x1: w as usize - 1 };
            let got = f.downscale(&planes(&x), part).to_tensor();
            let want = want.narrow(1, 1, h - 1).narrow(2, 1, w - 2);
            assert!((got - want).abs().max().double_value(&[]) < 1e-6, "factor {factor} part");
        }
    }

    /// `U` over the whole image is libtorch's `upsample_bicubic2d`.
    #[test]
    fn enlarging_is_libtorch_bicubic() {
        let _seed = crate::rng::seed(0);
        for (factor, h, w) in [(2, 7, 5), (4, 3, 8), (8, 2, 2)] {
            let y = Tensor::randn([3, h, w], (Kind::Float, Device::Cpu));
            let want = y
                .unsqueeze(0)
                .upsample_bicubic2d([h * factor, w * factor], false, None, None)
                .squeeze_dim(0);
            let mut x = Planes::zeros(3, (h * factor) as usize, (w * factor) as usize);
            let all = Rect::all(h as usize, w as usize);
            Filters::new(factor as usize).add_enlarged(&mut x, &planes(&y), all, false);
            let err = (x.to_tensor() - want).abs().max().double_value(&[]);
            assert!(err < 1e-5, "factor {factor}: {err}");
        }
    }

    /// The banded matrix is the composition of the two filters: `A^-1 D U y = y`.
    #[test]
    fn solve_inverts_d_after_u() {
        let _seed = crate::rng::seed(0);
        for (factor, h, w) in [(2, 17, 23), (4, 40, 33), (8, 12, 9), (4, 2, 3)] {
            let f = Filters::new(factor);
            let y = planes(&Tensor::randn([3, h as i64, w as i64], (Kind::Float, Device::Cpu)));
            let mut big = Planes::zeros(3, h * factor, w * factor);
            f.add_enlarged(&mut big, &y, Rect::all(h, w), false);
            let back = f.solve(&f.downscale(&big, Rect::all(h, w))).unwrap();
            let err = back.data.iter().zip(&y.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err < 1e-4, "factor {factor}, {w}x{h}: {err}");
        }
    }
}
