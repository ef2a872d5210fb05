//! `pulse downscale`: shrinks an image exactly as PULSE's loss shrinks the generator's output
//! (the bicubic downscaler D, docs/design.md "The downscaler"), so that a target made from an
//! image the generator can draw is one the search can meet to within rounding.
use crate::files::escaped;
use crate::pulse::downscale::{accepted_sides, factor_for, Downscaler};
use std::path::Path;
use tch::{Device, Tensor};

/// Reads `path` (a square image of any side up to the readers' limit; alpha dropped) and
/// returns it as `[3,size,size]` in [0,1], downscaled by D. `size` must be the image's side
/// divided by a power of two (at least 2): any other size is refused as [`crate::Invalid`],
/// naming the sizes this image accepts.
pub fn downscale_file(path: &Path, size: i64) -> anyhow::Result<Tensor> {
    let image = crate::imageio::read_rgb(path)?;
    let (h, w) = (image.size()[1], image.size()[2]);
    if h != w {
        crate::invalid!("{}: {w}x{h} is not square; PULSE's targets are square", escaped(path));
    }
    let Some(factor) = factor_for(w, size) else {
        let sides: Vec<String> = accepted_sides(w).iter().map(i64::to_string).collect();
        crate::invalid!(
            "{}: a {w}x{w} image cannot be shrunk to {size}x{size}; sizes accepted: {}",
            escaped(path),
            sides.join(", ")
        );
    };
    let small = Downscaler::new(factor, Device::Cpu)?.forward(&image.unsqueeze(0))?;
    Ok(small.squeeze_dim(0).clamp(0.0, 1.0))
}
