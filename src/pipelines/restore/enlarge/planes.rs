//! Images as plain `f32` planes on the CPU and rectangles of pixels: what the enlargement's
//! filters ([`super::filters`]) work on. The filters touch each value a few times with a handful
//! of multiply-adds, which plain loops over slices do at memory speed, where libtorch's general
//! resamplers and one-channel convolutions are several times slower.
use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

/// A `[c, h, w]` image, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Planes {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

impl Planes {
    pub fn zeros(c: usize, h: usize, w: usize) -> Self {
        Self { c, h, w, data: vec![0.0; c * h * w] }
    }

    /// A `[C,H,W]` tensor's values (any device, any float kind).
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let size = t.size();
        ensure!(size.len() == 3, "expected a [C,H,W] image, got {size:?}");
        let flat = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view(-1);
        let [c, h, w] = [size[0], size[1], size[2]].map(|n| n as usize);
        Ok(Self { c, h, w, data: Vec::try_from(flat)? })
    }

    /// The values as a `[C,H,W]` float tensor on the CPU.
    pub fn to_tensor(&self) -> Tensor {
        Tensor::from_slice(&self.data).view([self.c, self.h, self.w].map(|n| n as i64))
    }

    pub fn row(&self, ch: usize, y: usize) -> &[f32] {
        let start = (ch * self.h + y) * self.w;
        &self.data[start..start + self.w]
    }

    /// Every row, with its channel and row number, for [`parallel`].
    pub fn rows_mut(&mut self) -> Vec<(usize, usize, &mut [f32])> {
        let h = self.h;
        self.data
            .chunks_mut(self.w.max(1))
            .enumerate()
            .map(|(n, row)| (n / h, n % h, row))
            .collect()
    }

    /// The pixels of `rect`.
    pub fn crop(&self, rect: Rect) -> Planes {
        let mut out = Planes::zeros(self.c, rect.height(), rect.width());
        for (ch, y, row) in out.rows_mut() {
            row.copy_from_slice(&self.row(ch, rect.y0 + y)[rect.x0..rect.x1]);
        }
        out
    }

    /// Copies `patch` in with its top-left pixel at `(y0, x0)`.
    pub fn paste(&mut self, patch: &Planes, y0: usize, x0: usize) {
        let (h, w) = (self.h, self.w);
        for (ch, y, row) in patch
            .data
            .chunks(patch.w.max(1))
            .enumerate()
            .map(|(n, r)| (n / patch.h, n % patch.h, r))
        {
            let start = (ch * h + y0 + y) * w + x0;
            self.data[start..start + patch.w].copy_from_slice(row);
        }
    }
}

/// A rectangle of pixels, `[y0, y1) x [x0, x1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub y0: usize,
    pub x0: usize,
    pub y1: usize,
    pub x1: usize,
}

impl Rect {
    /// The whole of an `h` x `w` image.
    pub fn all(h: usize, w: usize) -> Self {
        Self { y0: 0, x0: 0, y1: h, x1: w }
    }

    pub fn height(&self) -> usize {
        self.y1 - self.y0
    }

    pub fn width(&self) -> usize {
        self.x1 - self.x0
    }

    /// Grown by `m` on every side, within an `h` x `w` image.
    pub fn grow(&self, m: usize, h: usize, w: usize) -> Self {
        Self {
            y0: self.y0.saturating_sub(m),
            x0: self.x0.saturating_sub(m),
            y1: (self.y1 + m).min(h),
            x1: (self.x1 + m).min(w),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_round_trip_and_crop() {
        let t = Tensor::arange(2 * 3 * 4, (Kind::Float, Device::Cpu)).view([2, 3, 4]);
        let p = Planes::from_tensor(&t).unwrap();
        assert!(p.to_tensor().equal(&t));
        let rect = Rect { y0: 1, x0: 1, y1: 3, x1: 3 };
        let crop = p.crop(rect);
        assert!(crop.to_tensor().equal(&t.narrow(1, 1, 2).narrow(2, 1, 2)));
        let mut q = Planes::zeros(2, 3, 4);
        q.paste(&crop, 1, 1);
        assert_eq!(q.crop(rect), crop);
        assert_eq!(q.data[0], 0.0);
    }

    #[test]
    fn rects_grow_within_the_image() {
        let r = Rect { y0: 2, x0: 5, y1: 4, x1: 9 };
        assert_eq!(r.grow(3, 6, 10), Rect { y0: 0, x0: 2, y1: 6, x1: 10 });
        assert_eq!(r.grow(1, 6, 10), Rect { y0: 1, x0: 4, y1: 5, x1: 10 });
    }
}
