//! Contact sheets: a grid of equally sized tiles with short labels, for comparing results at a
//! glance (input, candidates, scores) in one PNG.
use tch::{Device, Kind, Tensor};

use super::font;

/// Background of the sheet and of the label bands (dark, so white text and faces stand out).
const BACKGROUND: f64 = 0.12;
const BAND: f64 = 0.0;

/// A grid of `tile`x`tile` images, `columns` per row, each with an optional label under it.
///
/// ```no_run
/// # use pulse::imageio::Sheet;
/// # let (input, output) = (tch::Tensor::zeros([3, 32, 32], tch::kind::FLOAT_CPU), tch::Tensor::zeros([3, 1024, 1024], tch::kind::FLOAT_CPU));
/// let mut sheet = Sheet::new(256, 4);
/// sheet.push(&input, "input 32x32");
/// sheet.push(&output, "seed 7 loss 0.012");
/// let image = sheet.render(); // [3,H,W]
/// ```
pub struct Sheet {
    tile: i64,
    columns: usize,
    tiles: Vec<(Tensor, String)>,
}

impl Sheet {
    /// `tile`: side of each tile in pixels; `columns`: tiles per row (fewer if fewer are pushed).
    pub fn new(tile: i64, columns: usize) -> Self {
        assert!(
            tile > 0 && columns > 0,
            "a sheet needs a positive tile size and column count"
        );
        Sheet {
            tile,
            columns,
            tiles: Vec::new(),
        }
    }

    /// Adds an image (`[3,H,W]`, `[1,H,W]` grey, or either with a leading batch of 1), resized
    /// to the tile: blown up with nearest neighbour (pixels stay visible, as for tiny inputs)
    /// or shrunk by area averaging. `label` may be empty.
    pub fn push(&mut self, img: &Tensor, label: &str) {
        self.tiles
            .push((fit_tile(img, self.tile), label.to_string()));
    }

    /// Number of tiles pushed so far.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    /// Draws the sheet: `[3,H,W]` CPU float in [0,1]. An empty sheet is a small blank image.
    pub fn render(&self) -> Tensor {
        let l = self.layout();
        let canvas = Tensor::full(
            [3, l.height, l.width],
            BACKGROUND,
            (Kind::Float, Device::Cpu),
        );
        for (i, (img, label)) in self.tiles.iter().enumerate() {
            let (row, col) = ((i / l.columns) as i64, (i % l.columns) as i64);
            let x = l.gap + col * (self.tile + l.gap);
            let y = l.gap + row * (self.tile + l.band + l.gap);
            canvas
                .narrow(1, y, self.tile)
                .narrow(2, x, self.tile)
                .copy_(img);
            if l.band > 0 {
                let mut band = canvas
                    .narrow(1, y + self.tile, l.band)
                    .narrow(2, x, self.tile);
                let _ = band.fill_(BAND);
                self.draw_label(&band, label, l.scale);
            }
        }
        canvas
    }

    /// White text, left-aligned and vertically centred in the band, cut to fit the tile width.
    fn draw_label(&self, band: &Tensor, label: &str, scale: usize) {
        let pad = 2 * scale as i64;
        let fits =
            ((self.tile - 2 * pad + scale as i64) / ((font::WIDTH + 1) * scale) as i64).max(0);
        let text: String = label.chars().take(fits as usize).collect();
        let (mask, w, h) = font::render(&text, scale);
        if w == 0 {
            return;
        }
        let mask = Tensor::from_slice(&mask).view([1, h as i64, w as i64]);
        let mut spot = band.narrow(1, pad, h as i64).narrow(2, pad, w as i64);
        spot.copy_(&spot.maximum(&mask));
    }

    fn layout(&self) -> Layout {
        let n = self.tiles.len().max(1);
        let columns = self.columns.min(n);
        let rows = n.div_ceil(columns) as i64;
        let gap = (self.tile / 32).clamp(2, 16);
        // Glyphs grow with the tile: 1x up to 255 px, 2x up to 511 px, and so on.
        let scale = (self.tile / 128).max(1) as usize;
        let labelled = self.tiles.iter().any(|(_, l)| !l.is_empty());
        let band = if labelled {
            (font::HEIGHT + 4) as i64 * scale as i64
        } else {
            0
        };
        let cols = columns as i64;
        Layout {
            columns,
            gap,
            band,
            scale,
            width: cols * self.tile + (cols + 1) * gap,
            height: rows * (self.tile + band) + (rows + 1) * gap,
        }
    }
}

struct Layout {
    columns: usize,
    gap: i64,
    band: i64,
    scale: usize,
    width: i64,
    height: i64,
}

/// Any accepted tile tensor as `[3,tile,tile]` CPU float.
fn fit_tile(img: &Tensor, tile: i64) -> Tensor {
    let img = img.to_device(Device::Cpu).to_kind(Kind::Float);
    let img = if img.dim() == 4 {
        img.squeeze_dim(0)
    } else {
        img
    };
    let size = img.size();
    assert!(
        size.len() == 3 && (size[0] == 1 || size[0] == 3),
        "a sheet tile must be [3,H,W] or [1,H,W], got {size:?}"
    );
    let img = img.expand([3, size[1], size[2]], false);
    let (h, w) = (size[1], size[2]);
    if h >= tile && w >= tile {
        img.unsqueeze(0)
            .adaptive_avg_pool2d([tile, tile])
            .squeeze_dim(0)
    } else {
        super::upscale_nearest(&img, tile)
    }
}
