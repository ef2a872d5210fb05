//! Writing images: PNG, JPEG, BMP or WebP chosen by the file's extension (RGB, or RGBA where the
//! format keeps alpha) and animated GIF, each through [`crate::files::write_atomic`], so no
//! half-written image ever appears under an output name.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use image::codecs::bmp::BmpEncoder;
use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{Delay, ExtendedColorType, Frame, ImageEncoder, RgbaImage};
use tch::{Device, Kind, Tensor};

use super::error::{one_line, ImageError, ImageErrorKind};

/// The extensions an image output may have, each written in the format it names.
pub const OUTPUT_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "bmp", "webp"];

/// An image file format outputs are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Png,
    /// Quality 95.
    Jpeg,
    Bmp,
    /// Lossless.
    WebP,
}

impl OutputFormat {
    /// The format a path's extension names (case-insensitive); any other extension, or none,
    /// is refused, so a file is never written in a format its name does not say.
    pub fn from_path(path: &Path) -> Result<Self, ImageError> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Self::Png),
            Some("jpg" | "jpeg") => Ok(Self::Jpeg),
            Some("bmp") => Ok(Self::Bmp),
            Some("webp") => Ok(Self::WebP),
            _ => Err(ImageError::new(
                path,
                ImageErrorKind::Unsupported(format!(
                    "cannot write an image with this name: the extension must be one of {}",
                    OUTPUT_EXTENSIONS.map(|e| format!(".{e}")).join(", ")
                )),
            )),
        }
    }

    /// Whether the format keeps an alpha channel.
    pub fn has_alpha(self) -> bool {
        matches!(self, Self::Png | Self::WebP)
    }
}

/// Writes a `[3,H,W]` (or `[1,3,H,W]`) tensor of values in [0,1] as an 8-bit RGB PNG, whatever
/// the name (outputs whose names the program makes).
/// Values are rounded: `(x*255).round().clamp(0,255)`; NaN is written as 0.
pub fn write_png(t: &Tensor, path: &Path) -> Result<(), ImageError> {
    write_as(t, path, OutputFormat::Png, 3)
}

/// Writes a `[3,H,W]` image in the format its file name's extension names (outputs whose names
/// the user gives).
pub fn write_image(t: &Tensor, path: &Path) -> Result<(), ImageError> {
    write_as(t, path, OutputFormat::from_path(path)?, 3)
}

/// [`write_image`] for a `[4,H,W]` RGBA tensor (hair-colour targets keep their alpha); the
/// extension must name a format with alpha (PNG or WebP).
pub fn write_image_rgba(t: &Tensor, path: &Path) -> Result<(), ImageError> {
    let format = OutputFormat::from_path(path)?;
    if !format.has_alpha() {
        let msg = "this target has an alpha channel: write it as .png or .webp".to_string();
        return Err(ImageError::new(path, ImageErrorKind::Unsupported(msg)));
    }
    write_as(t, path, format, 4)
}

fn write_as(
    t: &Tensor,
    path: &Path,
    format: OutputFormat,
    channels: i64,
) -> Result<(), ImageError> {
    let (data, w, h) = to_hwc_u8(t, channels).map_err(|m| write_err(path, m))?;
    let colour = if channels == 4 { ExtendedColorType::Rgba8 } else { ExtendedColorType::Rgb8 };
    write_atomic(path, |file| {
        let mut out = BufWriter::new(file);
        let written = match format {
            OutputFormat::Png => PngEncoder::new(&mut out).write_image(&data, w, h, colour),
            OutputFormat::Jpeg => {
                JpegEncoder::new_with_quality(&mut out, 95).write_image(&data, w, h, colour)
            }
            OutputFormat::Bmp => BmpEncoder::new(&mut out).write_image(&data, w, h, colour),
            OutputFormat::WebP => {
                WebPEncoder::new_lossless(&mut out).write_image(&data, w, h, colour)
            }
        };
        written.map_err(std::io::Error::other)?;
        out.flush()
    })
}

/// Writes an 8-bit RGB PNG of `width` x `height` one row at a time: `row(y, buf)` fills row `y`
/// (`3 * width` bytes, RGB interleaved), so an image is never held whole in 8 bits nor as a
/// tensor (restore's largest outputs are 8192 px a side). `text` is written as uncompressed
/// iTXt chunks (keyword, UTF-8 text) before the pixels, where [`png_text`] reads them back.
pub fn write_png_rows(
    path: &Path,
    width: usize,
    height: usize,
    text: &[(&str, &str)],
    mut row: impl FnMut(usize, &mut [u8]),
) -> Result<(), ImageError> {
    let (Ok(w), Ok(h)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(write_err(path, format!("bad size {width}x{height}")));
    };
    if w == 0 || h == 0 {
        return Err(write_err(path, format!("empty image {width}x{height}")));
    }
    write_atomic(path, |file| {
        let mut enc = png::Encoder::new(BufWriter::new(file), w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        for (key, value) in text {
            enc.add_itxt_chunk(key.to_string(), value.to_string())
                .map_err(std::io::Error::other)?;
        }
        let mut header = enc.write_header().map_err(std::io::Error::other)?;
        let mut stream = header.stream_writer().map_err(std::io::Error::other)?;
        let mut buf = vec![0u8; 3 * width];
        for y in 0..height {
            row(y, &mut buf);
            stream.write_all(&buf)?;
        }
        stream.finish().map_err(std::io::Error::other)?;
        header.finish().map_err(std::io::Error::other)
    })
}

/// The text of the first iTXt or tEXt chunk named `key` of the PNG at `path`; `None` when the
/// file is not a PNG or has no such chunk. Only the chunks before the pixels are read.
pub fn png_text(path: &Path, key: &str) -> Option<String> {
    let file = File::open(path).ok()?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_ignore_text_chunk(false);
    let reader = decoder.read_info().ok()?;
    let info = reader.info();
    if let Some(chunk) = info.utf8_text.iter().find(|c| c.keyword == key) {
        return chunk.get_text().ok();
    }
    info.uncompressed_latin1_text.iter().find(|c| c.keyword == key).map(|c| c.text.clone())
}

/// [`crate::files::write_atomic`] with its error named as an image write failure.
fn write_atomic(
    path: &Path,
    f: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), ImageError> {
    crate::files::write_atomic(path, f).map_err(|e| write_err(path, e.to_string()))
}

/// Writes an endlessly looping animated GIF of `[3,H,W]` frames (all the same size), atomically.
/// GIF has 256 colours per frame, so callers usually downscale frames first to keep it small.
pub fn write_animation(frames: &[Tensor], path: &Path, delay_ms: u32) -> Result<(), ImageError> {
    let mut rgba = Vec::with_capacity(frames.len());
    for (i, t) in frames.iter().enumerate() {
        let (data, w, h) =
            to_hwc_u8(t, 3).map_err(|m| write_err(path, format!("frame {i}: {m}")))?;
        let mut px = Vec::with_capacity(data.len() / 3 * 4);
        for c in data.chunks_exact(3) {
            px.extend_from_slice(&[c[0], c[1], c[2], 255]);
        }
        rgba.push(RgbaImage::from_raw(w, h, px).expect("buffer matches its size"));
    }
    let Some(first) = rgba.first() else {
        return Err(write_err(path, "no frames to write".into()));
    };
    if rgba.iter().any(|f| f.dimensions() != first.dimensions()) {
        return Err(write_err(path, "frames differ in size".into()));
    }
    let delay = Delay::from_numer_denom_ms(delay_ms, 1);
    write_atomic(path, |file| {
        let mut out = BufWriter::new(file);
        {
            // Speed 10 of 1..30: good colours at a fraction of the default (1) quantiser's time.
            let mut enc = GifEncoder::new_with_speed(&mut out, 10);
            enc.set_repeat(Repeat::Infinite).map_err(std::io::Error::other)?;
            for img in rgba {
                enc.encode_frame(Frame::from_parts(img, 0, 0, delay))
                    .map_err(std::io::Error::other)?;
            }
            // Dropping the encoder writes the GIF trailer.
        }
        out.flush()
    })
}

/// `[C,H,W]` or `[1,C,H,W]` float in [0,1] (or already 8-bit) to interleaved 8-bit `H*W*C`
/// bytes.
fn to_hwc_u8(t: &Tensor, channels: i64) -> Result<(Vec<u8>, u32, u32), String> {
    let size = t.size();
    let t = match size.as_slice() {
        [1, c, _, _] if *c == channels => t.squeeze_dim(0),
        [c, _, _] if *c == channels => t.shallow_clone(),
        _ => return Err(format!("expected a [{channels},H,W] tensor, got {size:?}")),
    };
    let (h, w) = (t.size()[1], t.size()[2]);
    let (Ok(w32), Ok(h32)) = (u32::try_from(w), u32::try_from(h)) else {
        return Err(format!("bad size {size:?}"));
    };
    if w == 0 || h == 0 {
        return Err(format!("empty image {size:?}"));
    }
    let t = t.to_device(Device::Cpu);
    let bytes = match t.kind() {
        Kind::Uint8 => t,
        _ => t
            .to_kind(Kind::Float)
            .nan_to_num(0.0, None, None)
            .multiply_scalar(255.0)
            .round()
            .clamp(0.0, 255.0)
            .to_kind(Kind::Uint8),
    };
    let bytes = bytes.permute([1, 2, 0]).contiguous().view([-1]);
    let data = Vec::<u8>::try_from(&bytes).map_err(|e| one_line(&e.to_string()))?;
    Ok((data, w32, h32))
}

fn write_err(path: &Path, msg: String) -> ImageError {
    ImageError::new(path, ImageErrorKind::Write(one_line(&msg)))
}
