//! RGBA targets for the hair-colour workflow (docs/design.md, "Editing"): a region map (red = hair,
//! green = skin, blue = background, anything else = unconstrained, see examples/hair/README.md)
//! and a base colour per region give a target whose alpha is 1 where a region is constrained
//! and 0 elsewhere, so PULSE is free to invent the rest of the face.
use crate::imageio;
use anyhow::bail;
use std::path::Path;
use tch::{Kind, Tensor};

/// The regions of a region map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    Hair,
    Skin,
    Background,
    /// Not constrained (black in the map, or any other colour).
    Free,
}

impl Region {
    pub const CONSTRAINED: [Region; 3] = [Region::Hair, Region::Skin, Region::Background];

    pub fn name(self) -> &'static str {
        match self {
            Region::Hair => "hair",
            Region::Skin => "skin",
            Region::Background => "background",
            Region::Free => "unconstrained",
        }
    }

    /// The legend: a pixel belongs to the region of its one strong channel (>= 128 while the
    /// other two are < 128): red hair, green skin, blue background; anything else is free.
    pub fn of_pixel(r: f32, g: f32, b: f32) -> Region {
        let strong = |v: f32| v >= 0.5;
        match (strong(r), strong(g), strong(b)) {
            (true, false, false) => Region::Hair,
            (false, true, false) => Region::Skin,
            (false, false, true) => Region::Background,
            _ => Region::Free,
        }
    }
}

/// Named colours for `--hair`, `--skin`, `--background` (hair and skin tones, not pure
/// primaries), as 8-bit RGB.
pub const PALETTE: [(&str, [u8; 3]); 16] = [
    ("black", [20, 17, 15]),
    ("dark-brown", [59, 36, 22]),
    ("brown", [106, 72, 44]),
    ("auburn", [128, 50, 30]),
    ("red", [165, 64, 35]),
    ("ginger", [200, 110, 55]),
    ("blond", [222, 190, 128]),
    ("platinum", [232, 224, 204]),
    ("grey", [150, 150, 150]),
    ("white", [240, 240, 240]),
    ("blue", [40, 80, 200]),
    ("green", [50, 150, 70]),
    ("pink", [235, 130, 170]),
    ("purple", [120, 60, 160]),
    ("skin", DEFAULT_SKIN),
    ("dark-skin", [120, 80, 55]),
];

/// Skin and background colours when neither a colour nor a reference face is given.
pub const DEFAULT_SKIN: [u8; 3] = [224, 172, 138];
pub const DEFAULT_BACKGROUND: [u8; 3] = [128, 128, 128];

/// An 8-bit colour as values in [0,1], the form targets are built from.
pub fn unit_rgb(c: [u8; 3]) -> [f32; 3] {
    c.map(|v| f32::from(v) / 255.0)
}

/// A colour argument: `#rrggbb`, `rrggbb` or a palette name (also `gray`, `blonde`).
/// `none` is `Ok(None)`: leave the region unconstrained.
pub fn parse_colour(s: &str) -> anyhow::Result<Option<[u8; 3]>> {
    let s = s.trim().to_ascii_lowercase();
    if s == "none" {
        return Ok(None);
    }
    let name = match s.as_str() {
        "gray" => "grey",
        "blonde" => "blond",
        other => other,
    };
    if let Some((_, rgb)) = PALETTE.iter().find(|(n, _)| *n == name) {
        return Ok(Some(*rgb));
    }
    let hex = s.strip_prefix('#').unwrap_or(&s);
    if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits");
        return Ok(Some([byte(0), byte(2), byte(4)]));
    }
    let names: Vec<&str> = PALETTE.iter().map(|(n, _)| *n).collect();
    bail!("unknown colour '{s}' (expected #rrggbb, none, or one of: {})", names.join(", "))
}

/// A region map: one region per pixel of a square image.
#[derive(Debug, Clone)]
pub struct RegionMap {
    pub side: i64,
    /// Row-major, `side * side` entries.
    pub regions: Vec<Region>,
}

impl RegionMap {
    /// Reads a region map PNG (square, power-of-two side, like a target). Transparent pixels
    /// (alpha < 0.5) are unconstrained.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let target = imageio::read_target(path, imageio::MAX_SIDE)?;
        Ok(Self::from_image(&target.rgb, target.alpha.as_ref()))
    }

    /// From `rgb` [3,S,S] in [0,1] and an optional alpha [1,S,S].
    pub fn from_image(rgb: &Tensor, alpha: Option<&Tensor>) -> Self {
        let side = rgb.size()[2];
        let values: Vec<f32> =
            Vec::try_from(rgb.to_kind(Kind::Float).contiguous().view([-1])).expect("float image");
        let alpha: Option<Vec<f32>> = alpha
            .map(|a| Vec::try_from(a.to_kind(Kind::Float).contiguous().view([-1])).expect("float"));
        let n = (side * side) as usize;
        let regions = (0..n)
            .map(|i| {
                if alpha.as_ref().is_some_and(|a| a[i] < 0.5) {
                    return Region::Free;
                }
                Region::of_pixel(values[i], values[n + i], values[2 * n + i])
            })
            .collect();
        Self { side, regions }
    }

    pub fn count(&self, region: Region) -> usize {
        self.regions.iter().filter(|&&r| r == region).count()
    }

    /// The mean colour [r,g,b] in [0,1] of `face` ([3,S,S], resized to the map's side if it is
    /// not) over `region`'s pixels; `None` if the map has none.
    pub fn mean_colour(&self, face: &Tensor, region: Region) -> Option<[f32; 3]> {
        let face = imageio::resize_square(&face.to_kind(Kind::Float).unsqueeze(0), self.side);
        let values: Vec<f32> = Vec::try_from(face.contiguous().view([-1])).expect("float image");
        let n = self.regions.len();
        let pixels: Vec<usize> = (0..n).filter(|&i| self.regions[i] == region).collect();
        if pixels.is_empty() {
            return None;
        }
        let mean =
            |c: usize| pixels.iter().map(|&i| values[c * n + i]).sum::<f32>() / pixels.len() as f32;
        Some([mean(0), mean(1), mean(2)])
    }
}

/// The colour of each constrained region, values in [0,1]; `None` leaves it unconstrained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetColours {
    pub hair: Option<[f32; 3]>,
    pub skin: Option<[f32; 3]>,
    pub background: Option<[f32; 3]>,
}

impl TargetColours {
    pub fn from_u8(
        hair: Option<[u8; 3]>,
        skin: Option<[u8; 3]>,
        background: Option<[u8; 3]>,
    ) -> Self {
        Self {
            hair: hair.map(unit_rgb),
            skin: skin.map(unit_rgb),
            background: background.map(unit_rgb),
        }
    }

    pub fn of(&self, region: Region) -> Option<[f32; 3]> {
        match region {
            Region::Hair => self.hair,
            Region::Skin => self.skin,
            Region::Background => self.background,
            Region::Free => None,
        }
    }
}

/// The RGBA target [4,S,S]: each constrained region filled with its colour and alpha 1; free
/// pixels (and regions without a colour) are black with alpha 0.
pub fn build_target(map: &RegionMap, colours: &TargetColours) -> anyhow::Result<Tensor> {
    if !Region::CONSTRAINED.iter().any(|&r| colours.of(r).is_some() && map.count(r) > 0) {
        crate::invalid!(
            "the target constrains no pixel (the region map has none of the coloured regions)"
        );
    }
    let n = map.regions.len();
    let mut data = vec![0f32; 4 * n];
    for (i, &region) in map.regions.iter().enumerate() {
        if let Some(c) = colours.of(region) {
            for ch in 0..3 {
                data[ch * n + i] = c[ch];
            }
            data[3 * n + i] = 1.0;
        }
    }
    Ok(Tensor::from_slice(&data).view([4, map.side, map.side]))
}

/// A target for display: its colours over mid-grey where it is transparent, [3,S,S].
pub fn preview(rgba: &Tensor) -> Tensor {
    let rgb = rgba.narrow(0, 0, 3);
    let alpha = rgba.narrow(0, 3, 1);
    &rgb * &alpha + (1.0 - &alpha) * 0.5
}
