//! Sets of square tiles of a photo: where the projection measures its residual and where it
//! corrects next, so that rounds after the first work near what is left only.
use super::planes::Rect;

/// A set of `side`-sided tiles of an `h` x `w` photo.
#[derive(Debug, Clone)]
pub struct Tiles {
    side: usize,
    h: usize,
    w: usize,
    tw: usize,
    on: Vec<bool>,
}

impl Tiles {
    pub fn new(side: usize, h: usize, w: usize) -> Self {
        let tw = w.div_ceil(side);
        Self { side, h, w, tw, on: vec![false; h.div_ceil(side) * tw] }
    }

    /// Adds every tile `rect` (pixels) touches.
    pub fn add_rect(&mut self, rect: Rect) {
        for ty in rect.y0 / self.side..rect.y1.div_ceil(self.side) {
            for tx in rect.x0 / self.side..rect.x1.div_ceil(self.side) {
                self.on[ty * self.tw + tx] = true;
            }
        }
    }

    /// The number of the tile holding pixel `(y, x)`, row by row.
    pub fn index(&self, y: usize, x: usize) -> usize {
        (y / self.side) * self.tw + x / self.side
    }

    /// Adds the tile holding pixel `(y, x)`.
    pub fn add_pixel(&mut self, y: usize, x: usize) {
        let i = self.index(y, x);
        self.on[i] = true;
    }

    /// Keeps only the tiles `other` (of the same photo and side) also holds.
    pub fn keep_within(&mut self, other: &Tiles) {
        self.on.iter_mut().zip(&other.on).for_each(|(a, b)| *a &= *b);
    }

    pub fn is_empty(&self) -> bool {
        !self.on.contains(&true)
    }

    /// Disjoint rectangles (pixels, clipped to the photo) covering exactly the tiles of the
    /// set: a run of tiles along a row, extended down while the rows below hold the same run.
    pub fn cover(&self) -> Vec<Rect> {
        let (tw, th) = (self.tw, self.on.len() / self.tw.max(1));
        let mut free: Vec<bool> = self.on.clone();
        let mut rects = vec![];
        for ty in 0..th {
            let mut tx = 0;
            while tx < tw {
                if !free[ty * tw + tx] {
                    tx += 1;
                    continue;
                }
                let x1 = (tx..tw).find(|&x| !free[ty * tw + x]).unwrap_or(tw);
                let y1 = (ty + 1..th).find(|&y| !(tx..x1).all(|x| free[y * tw + x])).unwrap_or(th);
                for y in ty..y1 {
                    free[y * tw + tx..y * tw + x1].fill(false);
                }
                let s = self.side;
                rects.push(Rect {
                    y0: ty * s,
                    x0: tx * s,
                    y1: (y1 * s).min(self.h),
                    x1: (x1 * s).min(self.w),
                });
                tx = x1;
            }
        }
        rects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_is_disjoint_and_exact() {
        // 10x9 pixels in tiles of 4: 3 rows of 3 tiles, the last ones clipped.
        let mut t = Tiles::new(4, 10, 9);
        assert!(t.is_empty() && t.cover().is_empty());
        t.add_pixel(0, 0);
        t.add_pixel(1, 5);
        t.add_rect(Rect { y0: 5, x0: 0, y1: 10, x1: 6 });
        t.add_pixel(9, 8);
        let mut within = t.clone();
        within.keep_within(&Tiles::new(4, 10, 9));
        assert!(within.is_empty());
        assert_eq!(
            t.cover(),
            [Rect { y0: 0, x0: 0, y1: 10, x1: 8 }, Rect { y0: 8, x0: 8, y1: 10, x1: 9 },]
        );
    }
}
