//! Enlarging a photo by a power of two `s` so that PULSE's bicubic downscaler `D` (by `s`) gives
//! the photo back exactly (docs/design.md, *Restoring photos*).
//!
//! `U` is libtorch's bicubic interpolation (Keys' cubic, a = -0.75; pixel centres at
//! `(i + 0.5) s - 0.5`; edges repeated), separable like `D`. Along one axis `A = D U` is a small
//! banded matrix (half-band 3 to 4, condition number about 2), so `E = U A^-1` per axis is an
//! enlargement with `D(E(y)) = y` for every `y`, to float rounding. The restored photo is the
//! composite corrected by `E` of what it misses, `R = C + E(x - D(C))`, so `D(R) = x`; clamping
//! to [0,1] breaks that where a correction overshoots, so correcting and clamping alternate.
//!
//! `A^-1` falls about 64-fold every 4 pixels, so a residual's correction is computed over the
//! residual's rectangle grown by a few pixels only ([`margin`]), and after the first round only
//! the tiles where something is left are corrected again: the whole enlarged image is passed
//! over a few times (`E(x)`, a scan for clamped values, its rows made again for each output),
//! not once per round. The filters are plain loops over `f32` slices ([`filters`]) on the CPU,
//! whatever device searched.
mod filters;
mod planes;
mod tiles;

use crate::parallel::parallel_map;
use anyhow::{ensure, Result};
use filters::{Filters, Widened};
use planes::{Planes, Rect};
use std::borrow::Cow;
use tch::Tensor;
use tiles::Tiles;

/// At most this many clamp-and-correct rounds (alternating projections onto `[0,1]` and onto
/// `D(R) = x`): a pixel pushed past black or white by the correction is clamped, which the next
/// round spreads to its neighbours. Each round takes about 0.57 of what is left (measured on a
/// composite that is another picture altogether: 7.3 levels after one round, 0.09 after eight).
pub const MAX_ROUNDS: usize = 8;

/// Corrections stop where `D(R)` is within this of the photo: a quarter of an 8-bit level, half
/// of what writing the result in 8 bits moves it by anyway (a tenth instead would double the
/// rounds' work on the bench's photo and leave its largest difference where it is, 0.25 level).
pub const STOP: f64 = 0.25 / 255.0;

/// Output rows of a patch drawn at once ([`Enlargement::with_patches_by`]): 256 rows of an
/// 8192-pixel photo are 25 MB as floats, where a whole face's canvas and its copies were several
/// GB.
pub const PATCH_ROWS: usize = 256;

/// Side, in photo pixels, of the tiles whose residual decides what the next round corrects.
const TILE: usize = 8;

/// Photo pixels around a rectangle of residual (largest value `largest`) over which its
/// correction is computed: `A^-1` falls about 64-fold every 4 pixels (its entries are 1.3 on the
/// diagonal, 1.3e-2 at 4, 2.0e-4 at 8, 3.1e-6 at 12; summed along a row, twice the entry at the
/// edge bounds what is cut off), so the margin grows by 4 until what it cuts off is under half
/// of [`STOP`]; the next round corrects what is left, if anything.
fn margin(largest: f64) -> usize {
    let mut m = 4;
    while m < 32 && 2.0 * 1.3 * largest * 64f64.powf(-(m as f64) / 4.0) >= STOP / 2.0 {
        m += 4;
    }
    m
}

/// Enlarged rows a round's corrections are widened for at a time ([`Enlargement::add_round`]):
/// widening them all at once took several times the photo's size in the output's width.
const CHUNK_ROWS: usize = 256;

/// The corrections of one projection round: each window (photo pixels) with `A^-1` of the
/// residual it corrects (before `U`).
type Round = Vec<(Rect, Planes)>;

/// One photo and its plain enlargement `E(x)` (projected onto [0,1] like every result), from
/// which restored photos are made by pasting faces over it ([`Enlargement::with_patches`]).
#[derive(Debug)]
pub struct Enlargement {
    filters: Filters,
    factor: usize,
    photo: Planes,
    plain: Planes,
}

impl Enlargement {
    /// The enlargement of `photo` (`[3,H,W]` in [0,1], any device) by `factor`, a power of two
    /// of at least 2. The work is done on the CPU.
    pub fn new(photo: &Tensor, factor: i64) -> Result<Self> {
        ensure!(
            factor >= 2 && factor.count_ones() == 1,
            "the enlargement factor {factor} is not a power of two of at least 2"
        );
        let photo = Planes::from_tensor(photo)?;
        ensure!(
            photo.h >= 2 && photo.w >= 2,
            "cannot enlarge a {}x{} photo: at least 2 pixels a side are needed",
            photo.w,
            photo.h
        );
        let factor = factor as usize;
        let filters = Filters::new(factor);
        let all = Rect::all(photo.h, photo.w);
        let mut plain = Planes::zeros(photo.c, photo.h * factor, photo.w * factor);
        let mut this = Self { filters, factor, photo, plain: Planes::zeros(0, 0, 0) };
        let y = this.filters.solve(&this.photo)?;
        this.add_round(&mut plain, &[(all, y)]);
        // `E(x)` downscales to `x` but where the clamp cut it: the rounds start there.
        let mut everywhere = Tiles::new(TILE, this.photo.h, this.photo.w);
        everywhere.add_rect(all);
        let todo = this.clamped(&plain);
        this.project(&mut plain, &everywhere, todo)?;
        this.plain = plain;
        Ok(this)
    }

    pub fn factor(&self) -> i64 {
        self.factor as i64
    }

    /// The plain enlargement, `[3,sH,sW]` on the CPU: what a photo without faces becomes.
    pub fn plain(&self) -> Tensor {
        self.plain.to_tensor()
    }

    /// The plain enlargement, read row by row (no copy).
    pub fn plain_rows(&self) -> Rows<'_> {
        Rows { base: Base::Float(Cow::Borrowed(&self.plain)), bands: vec![] }
    }

    /// The plain enlargement in 8 bits, as [`Rows::rgb8`] gives it (a quarter of its size as
    /// floats): what a compare sheet shows beside the photo pasted into the enlargement itself
    /// ([`Enlargement::into_patched_by`]).
    pub fn plain_rgb8(&self) -> Rows<'static> {
        let (w, h) = (self.plain.w, self.plain.h);
        let mut data = vec![0u8; 3 * w * h];
        let plain = self.plain_rows();
        for (y, row) in data.chunks_mut(3 * w).enumerate() {
            plain.rgb8(y, row);
        }
        Rows { base: Base::Bytes { w, h, data }, bands: vec![] }
    }

    /// `x <- clamp(x + U(values))` for every `(window, values)` of `round`, [`CHUNK_ROWS`] rows
    /// of `x` at a time, so that what `U` widens stays small (a row's sums and clamps are its
    /// own: the result is the same).
    fn add_round(&self, x: &mut Planes, round: &[(Rect, Planes)]) {
        for a in (0..x.h).step_by(CHUNK_ROWS) {
            let rows = a..(a + CHUNK_ROWS).min(x.h);
            let work = rows.len() * x.w * x.c * 4;
            let widened: Vec<Widened> = parallel_map(round, work, |(win, values)| {
                self.filters.widened(*win, values, rows.clone())
            })
            .into_iter()
            .flatten()
            .collect();
            if !widened.is_empty() {
                self.filters.add_columns(x, 0, &widened, true);
            }
        }
    }

    /// The plain enlargement with each patch (`[3,h,w]`, values in [0,1]) in place of its
    /// pixels at its bounds, then corrected so that it downscales to the photo again.
    pub fn with_patches(&self, patches: &[(Tensor, [i64; 4])]) -> Result<Rows<'_>> {
        let bounds: Vec<[i64; 4]> = patches.iter().map(|(_, b)| *b).collect();
        self.with_patches_by(&bounds, |k, band, _| {
            let [_, y0, _, y1] = patches[k].1;
            debug_assert!(band[1] >= y0 && band[3] <= y1);
            Ok(patches[k].0.narrow(1, band[1] - y0, band[3] - band[1]))
        })
    }

    /// [`Enlargement::with_patches`] with each patch drawn in bands of at most [`PATCH_ROWS`]
    /// rows: `draw(k, band, background)` gives patch `k`'s pixels over `band` (`[x0, y0, x1,
    /// y1]`, the patch's columns, some of its rows) from the plain enlargement's pixels there
    /// (`[3,h,w]`), so a face as large as an 8192-pixel photo is never held whole in any form
    /// besides the result. Bounds must not overlap. The rows changed are copies, in bands
    /// around the patches: the enlargement stays as it is, for the next sample.
    pub fn with_patches_by(
        &self,
        bounds: &[[i64; 4]],
        mut draw: impl FnMut(usize, [i64; 4], &Tensor) -> Result<Tensor>,
    ) -> Result<Rows<'_>> {
        let (rects, regions) = self.regions(bounds)?;
        let mut bands = vec![];
        for (y0, y1) in bands_of(&regions, self.photo.h) {
            let s = self.factor;
            let mut r = self.plain.crop(Rect { y0: s * y0, x0: 0, y1: s * y1, x1: self.plain.w });
            self.patch_band(&mut r, (y0, y1), &rects, &regions, bounds, &mut draw)?;
            bands.push((s * y0, r));
        }
        Ok(Rows { base: Base::Float(Cow::Borrowed(&self.plain)), bands })
    }

    /// [`Enlargement::with_patches_by`] into the enlargement itself, which it consumes: no
    /// copy of any rows (an 8192-pixel photo whose face fills it needed a second 0.8 GB). It
    /// projects the whole photo at once, which gives the bands' pixels to the bit: tiles outside
    /// every patch's reach are never measured or corrected, and the bands hold everything that
    /// their rounds measure or correct.
    pub fn into_patched_by(
        self,
        bounds: &[[i64; 4]],
        mut draw: impl FnMut(usize, [i64; 4], &Tensor) -> Result<Tensor>,
    ) -> Result<Rows<'static>> {
        let (rects, regions) = self.regions(bounds)?;
        let Self { filters, factor, photo, mut plain } = self;
        let this = Self { filters, factor, photo, plain: Planes::zeros(0, 0, 0) };
        let rows = (0, this.photo.h);
        this.patch_band(&mut plain, rows, &rects, &regions, bounds, &mut draw)?;
        Ok(Rows { base: Base::Float(Cow::Owned(plain)), bands: vec![] })
    }

    /// The bounds as rectangles of the enlarged photo, and the photo pixels whose `D` reads
    /// each (it reaches 2 pixels; reflection at the edges reads no further than that).
    fn regions(&self, bounds: &[[i64; 4]]) -> Result<(Vec<Rect>, Vec<Rect>)> {
        let (s, h, w) = (self.factor, self.photo.h, self.photo.w);
        let rects = bounds.iter().map(|b| self.output_rect(*b)).collect::<Result<Vec<_>>>()?;
        let regions: Vec<Rect> = rects
            .iter()
            .map(|r| {
                let low =
                    Rect { y0: r.y0 / s, x0: r.x0 / s, y1: r.y1.div_ceil(s), x1: r.x1.div_ceil(s) };
                low.grow(3, h, w)
            })
            .collect();
        Ok((rects, regions))
    }

    /// Draws the patches whose regions lie in photo rows `[y0, y1)` into `r` (those rows of
    /// the plain enlargement) and projects it. The band is a photo of its own: its top and
    /// bottom are at least [`BAND_MARGIN`] photo rows from anything measured or corrected (or
    /// are the photo's own edges), and start on a tile, so its rounds are the whole photo's
    /// rounds there.
    fn patch_band(
        &self,
        r: &mut Planes,
        (y0, y1): (usize, usize),
        rects: &[Rect],
        regions: &[Rect],
        bounds: &[[i64; 4]],
        draw: &mut impl FnMut(usize, [i64; 4], &Tensor) -> Result<Tensor>,
    ) -> Result<()> {
        let (s, w) = (self.factor, self.photo.w);
        let mut reach = Tiles::new(TILE, y1 - y0, w);
        for (k, (rect, region)) in rects.iter().zip(regions).enumerate() {
            if region.y0 < y0 || region.y1 > y1 {
                continue;
            }
            for y in (rect.y0..rect.y1).step_by(PATCH_ROWS) {
                let part = Rect { y0: y, y1: (y + PATCH_ROWS).min(rect.y1), ..*rect };
                let local = Rect { y0: part.y0 - s * y0, y1: part.y1 - s * y0, ..part };
                // Not pasted over yet: the bounds do not overlap.
                let background = r.crop(local).to_tensor();
                let [a, b, c, d] = [part.x0, part.y0, part.x1, part.y1].map(|v| v as i64);
                let patch = Planes::from_tensor(&draw(k, [a, b, c, d], &background)?)?;
                ensure!(
                    (patch.c, patch.h, patch.w) == (r.c, part.height(), part.width()),
                    "a {}x{} patch does not fit its bounds {:?}",
                    patch.w,
                    patch.h,
                    bounds[k]
                );
                r.paste(&patch, local.y0, part.x0);
            }
            reach.add_rect(Rect { y0: region.y0 - y0, y1: region.y1 - y0, ..*region });
        }
        if (y0, y1) == (0, self.photo.h) {
            return self.project(r, &reach, reach.clone());
        }
        let sub = Self {
            filters: self.filters.clone(),
            factor: s,
            photo: self.photo.crop(Rect { y0, x0: 0, y1, x1: w }),
            plain: Planes::zeros(0, 0, 0),
        };
        sub.project(r, &reach, reach.clone())
    }

    /// `bounds` as a rectangle of the enlarged photo, checked.
    fn output_rect(&self, [x0, y0, x1, y1]: [i64; 4]) -> Result<Rect> {
        let (h, w) = ((self.factor * self.photo.h) as i64, (self.factor * self.photo.w) as i64);
        ensure!(
            0 <= x0 && x0 < x1 && x1 <= w && 0 <= y0 && y0 < y1 && y1 <= h,
            "the bounds {:?} are not inside the {w}x{h} enlargement",
            [x0, y0, x1, y1]
        );
        Ok(Rect { y0: y0 as usize, x0: x0 as usize, y1: y1 as usize, x1: x1 as usize })
    }

    /// `x - D(r)` over the photo's `rect`.
    fn residual(&self, r: &Planes, rect: Rect) -> Planes {
        let mut res = self.filters.downscale(r, rect);
        let want = self.photo.crop(rect);
        for (v, x) in res.data.iter_mut().zip(&want.data) {
            *v = x - *v;
        }
        res
    }

    /// `r <- clamp(r + E(x - D(r)))` until `D(r)` is within [`STOP`] of the photo (at most
    /// [`MAX_ROUNDS`] times), where `todo` holds every tile it may be off at. Each round
    /// measures the residual on the tiles the last one changed and corrects the tiles where it
    /// is [`STOP`] or more. Tiles outside `reach` are left as they are, though a correction's
    /// window may reach them: where the photo cannot be matched exactly (black or white beside a
    /// sharp edge) more rounds would only move what is left around, so pasting faces leaves the
    /// plain enlargement as it is beyond their reach.
    fn project(&self, r: &mut Planes, reach: &Tiles, mut todo: Tiles) -> Result<()> {
        let (h, w) = (self.photo.h, self.photo.w);
        let mut residual = Planes::zeros(r.c, h, w);
        for _ in 0..MAX_ROUNDS {
            let off = self.measure(r, &todo, &mut residual);
            if off.is_empty() {
                break;
            }
            let round = self.corrections(&residual, &off)?;
            self.add_round(r, &round);
            todo = Tiles::new(TILE, h, w);
            for (win, _) in &round {
                // `D` reaches 2 pixels past what changed.
                todo.add_rect(win.grow(2, h, w));
            }
            todo.keep_within(reach);
        }
        Ok(())
    }

    /// The tiles whose `D` reads a value of the enlarged `r` at 0 or 1, which the clamp may
    /// have cut (a value exactly 0 or 1 that was not cut costs only a measurement).
    fn clamped(&self, r: &Planes) -> Tiles {
        let (s, h, w) = (self.factor, self.photo.h, self.photo.w);
        let rows: Vec<usize> = (0..r.c * r.h).collect();
        let chunk = s * TILE;
        let hits: Vec<Vec<usize>> = parallel_map(&rows, r.data.len(), |&n| {
            let row = &r.data[n * r.w..(n + 1) * r.w];
            let saturated = |c: &[f32]| c.iter().any(|&v| v <= 0.0 || v >= 1.0);
            row.chunks(chunk).enumerate().filter(|(_, c)| saturated(c)).map(|(k, _)| k).collect()
        });
        let mut tiles = Tiles::new(TILE, h, w);
        for (n, chunks) in hits.iter().enumerate() {
            let y = (n % r.h) / s;
            for &k in chunks {
                // `D` reaches 2 photo pixels.
                let rect = Rect { y0: y, x0: k * TILE, y1: y + 1, x1: ((k + 1) * TILE).min(w) };
                tiles.add_rect(rect.grow(2, h, w));
            }
        }
        tiles
    }

    /// `x - D(r)` on the tiles of `todo`, written into `residual`; the tiles where it is
    /// [`STOP`] or more somewhere.
    fn measure(&self, r: &Planes, todo: &Tiles, residual: &mut Planes) -> Tiles {
        let rects = todo.cover();
        let measured = parallel_map(&rects, work(&rects, r.c), |rect| self.residual(r, *rect));
        let mut off = Tiles::new(TILE, self.photo.h, self.photo.w);
        for (rect, res) in rects.iter().zip(&measured) {
            for (n, row) in res.data.chunks(res.w).enumerate() {
                let y = rect.y0 + n % res.h;
                for (x, v) in row.iter().enumerate() {
                    if v.abs() as f64 >= STOP {
                        off.add_pixel(y, rect.x0 + x);
                    }
                }
            }
            residual.paste(res, rect.y0, rect.x0);
        }
        off
    }

    /// The correction of the residual on the tiles of `off`: for each of the disjoint
    /// rectangles covering them, its window and `A^-1` of its residual (so the sum of their
    /// `U` is the correction of the whole residual there).
    fn corrections(&self, residual: &Planes, off: &Tiles) -> Result<Round> {
        let (h, w) = (self.photo.h, self.photo.w);
        let rects = off.cover();
        parallel_map(&rects, work(&rects, residual.c), |rect| {
            let res = residual.crop(*rect);
            let largest = res.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let win = rect.grow(margin(largest as f64), h, w);
            let mut padded = Planes::zeros(res.c, win.height(), win.width());
            padded.paste(&res, rect.y0 - win.y0, rect.x0 - win.x0);
            Ok((win, self.filters.solve(&padded)?))
        })
        .into_iter()
        .collect()
    }
}

/// An enlarged photo read row by row: the plain enlargement (or the photo pasted into it), but
/// for the bands of rows a paste-back changed (`(first row, rows)`, disjoint), so a restored
/// photo never needs a second whole copy of the enlargement.
#[derive(Debug)]
pub struct Rows<'a> {
    base: Base<'a>,
    bands: Vec<(usize, Planes)>,
}

/// What [`Rows`] reads outside its bands.
#[derive(Debug)]
enum Base<'a> {
    Float(Cow<'a, Planes>),
    /// RGB, interleaved, row by row.
    Bytes {
        w: usize,
        h: usize,
        data: Vec<u8>,
    },
}

impl Rows<'_> {
    pub fn width(&self) -> usize {
        match &self.base {
            Base::Float(p) => p.w,
            Base::Bytes { w, .. } => *w,
        }
    }

    pub fn height(&self) -> usize {
        match &self.base {
            Base::Float(p) => p.h,
            Base::Bytes { h, .. } => *h,
        }
    }

    /// Row `y` in 8 bits, RGB interleaved, into `out` (`3 * width` bytes), rounded as
    /// [`crate::imageio::write_png`] rounds a tensor (ties to even; NaN as 0).
    pub fn rgb8(&self, y: usize, out: &mut [u8]) {
        let write = |planes: &Planes, row: usize, out: &mut [u8]| {
            for ch in 0..planes.c.min(3) {
                for (o, v) in out.iter_mut().skip(ch).step_by(3).zip(planes.row(ch, row)) {
                    let v = if v.is_nan() { 0.0 } else { (v * 255.0).round_ties_even() };
                    *o = v.clamp(0.0, 255.0) as u8;
                }
            }
        };
        if let Some((y0, band)) = self.bands.iter().find(|(y0, b)| (*y0..y0 + b.h).contains(&y)) {
            return write(band, y - y0, out);
        }
        match &self.base {
            Base::Float(plain) => write(plain, y, out),
            Base::Bytes { w, data, .. } => out.copy_from_slice(&data[3 * w * y..3 * w * (y + 1)]),
        }
    }

    /// The image as a `[C,H,W]` tensor on the CPU (a whole copy: for tests and small images).
    pub fn to_tensor(&self) -> Tensor {
        let mut whole = match &self.base {
            Base::Float(p) => p.clone().into_owned(),
            Base::Bytes { w, h, data } => {
                let t = Tensor::from_slice(data).view([*h as i64, *w as i64, 3]);
                Planes::from_tensor(&(t.permute([2, 0, 1]).to_kind(tch::Kind::Float) / 255.0))
                    .expect("a [3,H,W] tensor")
            }
        };
        for (y0, band) in &self.bands {
            whole.paste(band, *y0, 0);
        }
        whole.to_tensor()
    }
}

/// Photo rows kept around what a paste-back measures or corrects when it works on a band of
/// rows: [`margin`]'s largest window (32) and `D`'s reach (2), rounded up to a tile.
const BAND_MARGIN: usize = 40;

/// The bands of photo rows (`[y0, y1)`, disjoint, starting on tiles) that hold each region
/// grown by [`BAND_MARGIN`]: regions nearer than that share a band.
fn bands_of(regions: &[Rect], h: usize) -> Vec<(usize, usize)> {
    let mut spans: Vec<(usize, usize)> = regions
        .iter()
        .map(|r| {
            let y0 = r.y0.saturating_sub(BAND_MARGIN) / TILE * TILE;
            (y0, (r.y1 + BAND_MARGIN).min(h))
        })
        .collect();
    spans.sort();
    let mut bands: Vec<(usize, usize)> = vec![];
    for (y0, y1) in spans {
        match bands.last_mut() {
            Some(last) if y0 <= last.1 => last.1 = last.1.max(y1),
            _ => bands.push((y0, y1)),
        }
    }
    bands
}

/// About how many multiply-adds `D`, or a solve and `U`, take over `rects` of `c` channels (a
/// few dozen per value): what [`parallel_map`] weighs against starting threads.
fn work(rects: &[Rect], c: usize) -> usize {
    rects.iter().map(|b| b.height() * b.width()).sum::<usize>() * c * 64
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// A photo-like image: smooth, with some fine detail, from 0.05 to 0.95.
    fn photo(h: i64, w: i64, seed: i64) -> Tensor {
        let _seed = crate::rng::seed(seed);
        let smooth = Tensor::rand([1, 3, h / 4 + 1, w / 4 + 1], (Kind::Float, Device::Cpu))
            .upsample_bilinear2d([h, w], false, None, None)
            .squeeze_dim(0);
        let detail = Tensor::rand([3, h, w], (Kind::Float, Device::Cpu)) * 0.1;
        smooth * 0.8 + 0.05 + detail
    }

    /// `max |D(r) - x|` in 8-bit levels, with PULSE's own downscaler.
    fn levels_off(r: &Tensor, x: &Tensor, factor: i64) -> f64 {
        let down = crate::pulse::Downscaler::new(factor, Device::Cpu).unwrap();
        let d = down.forward(&r.unsqueeze(0)).unwrap().squeeze_dim(0);
        (d - x).abs().max().double_value(&[]) * 255.0
    }

    /// The plain enlargement of a photo in [0,1] downscales back within [`STOP`],
    /// at every factor and at odd and tiny sizes, and stays in [0,1].
    #[test]
    fn plain_enlargement_downscales_back() {
        for (factor, h, w) in [(2, 17, 23), (4, 48, 40), (8, 12, 9), (4, 2, 3)] {
            let x = photo(h, w, 5);
            let plain = Enlargement::new(&x, factor).unwrap().plain();
            assert_eq!(plain.size(), [3, h * factor, w * factor]);
            let off = levels_off(&plain, &x, factor);
            assert!(off < STOP * 255.0 + 0.01, "factor {factor}, {w}x{h}: {off} levels");
            assert!(plain.min().double_value(&[]) >= 0.0 && plain.max().double_value(&[]) <= 1.0);
        }
    }

    /// A patch that is another picture altogether is pulled onto the photo, and beyond the
    /// patch's reach the result is the plain enlargement.
    #[test]
    fn patches_are_projected_onto_the_photo() {
        let x = photo(96, 80, 5);
        let e = Enlargement::new(&x, 4).unwrap();
        let patch = photo(64, 48, 6);
        let bounds = [100, 120, 148, 184];
        let r = e.with_patches(&[(patch, bounds)]).unwrap().to_tensor();
        let off = levels_off(&r, &x, 4);
        println!("another picture: max |D(R) - x| = {off:.3} levels");
        assert!(off < STOP * 255.0 + 0.01, "{off}");
        assert!(r.min().double_value(&[]) >= 0.0 && r.max().double_value(&[]) <= 1.0);
        // Outside the patch grown by 12 photo pixels, the plain enlargement to float rounding.
        let far = (&r - e.plain()).abs();
        let _ =
            far.narrow(1, 120 - 48, 184 - 120 + 96).narrow(2, 100 - 48, 148 - 100 + 96).fill_(0.0);
        assert!(far.max().double_value(&[]) < 1e-5, "{}", far.max().double_value(&[]));
        let near = (&r - e.plain()).narrow(1, 120, 64).narrow(2, 100, 48).abs().mean(Kind::Float);
        assert!(near.double_value(&[]) > 0.05);
    }

    /// Patches far apart are projected in bands of rows of their own; the result is the
    /// projection over the whole photo at once, to float rounding.
    #[test]
    fn bands_are_the_whole_photo_projected() {
        let x = photo(240, 48, 8);
        let e = Enlargement::new(&x, 2).unwrap();
        let (a, b) = (photo(24, 40, 9), photo(30, 36, 10));
        let patches = [(a, [10, 20, 50, 44]), (b, [40, 400, 76, 430])];
        let banded = e.with_patches(&patches).unwrap();
        assert_eq!(
            banded.bands.len(),
            2,
            "two bands: {:?}",
            banded.bands.iter().map(|b| (b.0, b.1.h)).collect::<Vec<_>>()
        );
        let banded = banded.to_tensor();
        // The same patches and rounds over the whole photo.
        let mut whole = Planes::from_tensor(&e.plain()).unwrap();
        let mut reach = Tiles::new(TILE, 240, 48);
        for (patch, [x0, y0, x1, y1]) in &patches {
            whole.paste(&Planes::from_tensor(patch).unwrap(), *y0 as usize, *x0 as usize);
            let low = Rect {
                y0: *y0 as usize / 2,
                x0: *x0 as usize / 2,
                y1: (*y1 as usize).div_ceil(2),
                x1: (*x1 as usize).div_ceil(2),
            };
            reach.add_rect(low.grow(3, 240, 48));
        }
        e.project(&mut whole, &reach, reach.clone()).unwrap();
        let diff = (banded - whole.to_tensor()).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{diff}");
    }

    /// Patches pasted into the enlargement itself, projected over the whole photo at once, give
    /// the banded copies' pixels to the bit, with one band or several, and with a patch at the
    /// photo's edge.
    #[test]
    fn patched_in_place_is_patched_in_bands() {
        let x = photo(240, 48, 8);
        let _ = x.narrow(1, 100, 10).narrow(2, 5, 30).fill_(0.0);
        let (a, b, c) = (photo(24, 40, 9), photo(30, 36, 10), photo(20, 16, 11));
        let far = vec![(a.shallow_clone(), [10, 20, 50, 44]), (b, [40, 400, 76, 430])];
        let near = vec![(a, [10, 180, 50, 204]), (c, [80, 460, 96, 480])];
        for patches in [far, near] {
            let e = Enlargement::new(&x, 2).unwrap();
            let banded = e.with_patches(&patches).unwrap();
            assert!(!banded.bands.is_empty());
            let banded = banded.to_tensor();
            let bounds: Vec<[i64; 4]> = patches.iter().map(|(_, b)| *b).collect();
            let in_place = e
                .into_patched_by(&bounds, |k, band, _| {
                    let [_, y0, _, _] = patches[k].1;
                    Ok(patches[k].0.narrow(1, band[1] - y0, band[3] - band[1]))
                })
                .unwrap()
                .to_tensor();
            assert!(in_place.equal(&banded), "{}", (in_place - banded).abs().max());
        }
    }

    /// A photo with hard black and white edges, where the clamp matters: the rounds on the
    /// tiles left unfinished give what rounds over the whole image give, within a level.
    #[test]
    fn clamped_edges_are_corrected_locally() {
        let x = photo(64, 64, 7);
        let _ = x.narrow(1, 20, 10).narrow(2, 10, 40).fill_(0.0);
        let _ = x.narrow(1, 40, 3).narrow(2, 5, 50).fill_(1.0);
        let local = Enlargement::new(&x, 4).unwrap().plain();
        // The same rounds, each over the whole image.
        let (f, all, p) = (Filters::new(4), Rect::all(64, 64), Planes::from_tensor(&x).unwrap());
        let mut whole = Planes::zeros(3, 256, 256);
        f.add_enlarged(&mut whole, &f.solve(&p).unwrap(), all, true);
        for _ in 0..MAX_ROUNDS {
            let mut res = f.downscale(&whole, all);
            res.data.iter_mut().zip(&p.data).for_each(|(v, x)| *v = x - *v);
            f.add_enlarged(&mut whole, &f.solve(&res).unwrap(), all, true);
        }
        let whole = whole.to_tensor();
        let (a, b) = (levels_off(&local, &x, 4), levels_off(&whole, &x, 4));
        println!("hard edges: max |D(R) - x| = {a:.3} levels (whole-image rounds: {b:.3})");
        assert!(a > 1.0, "the edges should be beyond any image in [0,1]: {a}");
        assert!((a - b).abs() < 1.0, "{a} against {b}");
        let diff = (local - whole).abs().max().double_value(&[]) * 255.0;
        assert!(diff < 1.0, "{diff} levels apart");
    }
}
