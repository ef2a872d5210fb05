//! Face alignment for PULSE: find faces and their five landmarks with MTCNN ([`mtcnn`],
//! [`detect`]), crop and rotate each the way FFHQ was made ([`ffhq`]), then downscale with
//! PULSE's bicubic downscaler, as PULSE's own `align_face.py` does (there with dlib's landmarks).
//!
//! The generator only knows FFHQ-aligned faces, so this is what lets an ordinary photo in.
pub mod detect;
pub mod ffhq;
pub mod mtcnn;
pub mod paste;

pub use detect::{check_min_face, detect, detect_with, DetectConfig};
pub use mtcnn::Mtcnn;

use serde::Serialize;
use tch::Tensor;

/// MTCNN's five landmarks, `[x, y]` in input pixels (pixel centres at integers): the eye on the
/// image's left, the other eye, the nose tip, the mouth corner on the image's left, the other.
pub type Landmarks = [[f32; 2]; 5];

/// One detected face.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Face {
    /// `[x1, y1, x2, y2]` in input pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// O-Net's face probability.
    pub score: f32,
    pub landmarks: Landmarks,
}

impl Face {
    /// The box's width (MTCNN's boxes are nearly square).
    pub fn width(&self) -> f32 {
        self.bbox[2] - self.bbox[0]
    }
}

/// Detects the faces of an RGB image `[3,H,W]` with values in [0,1] (as `imageio` reads them),
/// largest first. The values are taken back to 0..255 and rounded, so 8-bit photos give MTCNN
/// exactly the pixel values facenet-pytorch sees.
pub fn find_faces(mtcnn: &Mtcnn, image: &Tensor, config: &DetectConfig) -> Vec<Face> {
    find_faces_with(mtcnn, image, config, &mut |_, _| true).unwrap_or_default()
}

/// [`find_faces`] with progress and a way to stop ([`detect_with`]): `None` when stopped.
pub fn find_faces_with(
    mtcnn: &Mtcnn,
    image: &Tensor,
    config: &DetectConfig,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Option<Vec<Face>> {
    let mut bytes = image.to_kind(tch::Kind::Float) * 255.0;
    let _ = bytes.round_();
    detect_with(mtcnn, &bytes, config, progress)
}

/// The low-resolution face PULSE takes: the 1024x1024 aligned face (quantised to 8 bits, as
/// PULSE's script reads it from an image) downscaled to `size` (a power of two up to 1024) with
/// PULSE's bicubic downscaler [`crate::pulse::Downscaler`]. At 1024 the aligned face is returned
/// as is. Returns `[3,size,size]` in [0,1].
pub fn downscale(aligned: &Tensor, size: i64) -> anyhow::Result<Tensor> {
    let side = aligned.size()[2];
    let aligned = (aligned * 255.0).round().clamp(0.0, 255.0) / 255.0;
    let factor = crate::pulse::downscale::factor_for(side, size).ok_or_else(|| {
        anyhow::anyhow!("{size} is not {side}/2^k: cannot downscale the aligned face to it")
    })?;
    if factor == 1 {
        return Ok(aligned);
    }
    let down = crate::pulse::Downscaler::new(factor, aligned.device())?;
    Ok(down.forward(&aligned.unsqueeze(0))?.squeeze_dim(0).clamp(0.0, 1.0))
}
