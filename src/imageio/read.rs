//! Reading images into CHW float tensors.
//!
//! Every reader goes the same way: refuse empty files, sniff the format from the content,
//! read the declared size from the header and check it (so a decompression bomb or a wrong
//! size is refused without allocating the pixels), then decode with `image::Limits` set,
//! apply the EXIF orientation and convert to `[C,H,W]` values in [0,1].
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use tch::Tensor;

use super::error::{from_image, ImageError, ImageErrorKind};
use super::{MAX_FILE_BYTES, MAX_SIDE};
use crate::pulse::downscale::accepted_sides;

/// A low-resolution target: RGB plus the alpha channel when the file has one.
#[derive(Debug)]
pub struct Target {
    /// `[3,S,S]`, values in [0,1].
    pub rgb: Tensor,
    /// `[1,S,S]`, values in [0,1]; `None` when the image has no alpha channel.
    pub alpha: Option<Tensor>,
}

/// Reads a low-res target for a generator of `resolution` (a power of two, e.g. 1024).
///
/// Accepted: square, side `resolution / 2^k`. PNG, JPEG, WebP, BMP, GIF (first frame), sniffed
/// from the content. Grey, palette, 16-bit and CMYK inputs are converted; EXIF orientation is
/// applied. Sizes are checked from the header, before the pixels are decoded.
pub fn read_target(path: &Path, resolution: i64) -> Result<Target, ImageError> {
    let accepted = accepted_sides(resolution);
    let img = decode(path, |w, h| {
        let ok = w == h && accepted.contains(&i64::from(w));
        ok.then_some(()).ok_or_else(|| ImageErrorKind::UnsupportedSize {
            width: w,
            height: h,
            accepted: accepted.clone(),
        })
    })?;
    let rgb = to_chw(&img, Channels::Rgb);
    let alpha = img.color().has_alpha().then(|| to_chw(&img, Channels::Alpha));
    Ok(Target { rgb, alpha })
}

/// Reads a mask (weights in [0,1]) for a target of side `side`: it must be `side`x`side`.
/// Colour images are converted to luma; an alpha channel is ignored.
pub fn read_mask(path: &Path, side: i64) -> Result<Tensor, ImageError> {
    let img = decode(path, |w, h| {
        let ok = i64::from(w) == side && i64::from(h) == side;
        ok.then_some(()).ok_or_else(|| ImageErrorKind::UnsupportedSize {
            width: w,
            height: h,
            accepted: vec![side],
        })
    })?;
    Ok(to_chw(&img, Channels::Luma))
}

/// Reads a photo to embed: any size up to [`MAX_SIDE`]. When it is not `resolution`x`resolution`
/// it is centre-cropped to a square and resized with Lanczos3, and `true` is returned so the
/// caller can tell the user. An alpha channel is dropped.
pub fn read_photo(path: &Path, resolution: i64) -> Result<(Tensor, bool), ImageError> {
    let r = u32::try_from(resolution)
        .ok()
        .filter(|&r| r > 0 && i64::from(r) <= MAX_SIDE)
        .ok_or_else(|| {
            let msg = format!("cannot resize a photo to {resolution}x{resolution}");
            ImageError::new(path, ImageErrorKind::Unsupported(msg))
        })?;
    let img = decode(path, |_, _| Ok(()))?;
    let (w, h) = (img.width(), img.height());
    if (w, h) == (r, r) {
        return Ok((to_chw(&img, Channels::Rgb), false));
    }
    let side = w.min(h);
    let square = img.crop_imm((w - side) / 2, (h - side) / 2, side, side);
    let resized =
        image::imageops::resize(&square.to_rgb32f(), r, r, image::imageops::FilterType::Lanczos3);
    let t = hwc_to_chw(resized.into_raw(), r, r, 3).clamp(0.0, 1.0);
    Ok((t, true))
}

/// Reads a photo of any size up to [`MAX_SIDE`] as RGB `[3,H,W]` in [0,1], as it is displayed
/// (EXIF orientation applied); grey, palette, 16-bit and CMYK are converted, alpha is dropped.
pub fn read_rgb(path: &Path) -> Result<Tensor, ImageError> {
    let img = decode(path, |_, _| Ok(()))?;
    Ok(to_chw(&img, Channels::Rgb))
}

/// Decodes `path` after `check(width, height)` approved the size declared in its header.
fn decode(
    path: &Path,
    check: impl Fn(u32, u32) -> Result<(), ImageErrorKind>,
) -> Result<DynamicImage, ImageError> {
    let err = |kind| ImageError::new(path, kind);
    let mut file = File::open(path).map_err(|e| err(ImageErrorKind::Io(e)))?;
    let len = file.metadata().map_err(|e| err(ImageErrorKind::Io(e)))?.len();
    if len == 0 {
        return Err(err(ImageErrorKind::Empty));
    }
    if len > MAX_FILE_BYTES {
        return Err(err(ImageErrorKind::FileTooLarge { bytes: len }));
    }

    // PNG decoders read up to the first IDAT chunk before reporting a size, so the size is taken
    // straight from IHDR: a bomb's header is refused before anything else is read.
    if let Some((w, h)) = png_declared_size(&mut file).map_err(|e| err(ImageErrorKind::Io(e)))? {
        check_size(w, h, &check).map_err(err)?;
    }

    let reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| err(ImageErrorKind::Io(e)))?;
    match reader.format() {
        None => Err(err(ImageErrorKind::UnknownFormat)),
        // The JPEG decoder reads the whole file anyway; we keep the bytes to look for the end
        // marker, because it decodes a truncated file "successfully" (grey where data is missing).
        Some(ImageFormat::Jpeg) => {
            let mut bytes = Vec::new();
            let mut file = reader.into_inner();
            file.read_to_end(&mut bytes).map_err(|e| err(ImageErrorKind::Io(e)))?;
            let complete = jpeg_has_end(&bytes);
            let reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::Jpeg);
            decode_checked(path, reader, &check, Some(complete))
        }
        Some(_) => decode_checked(path, reader, &check, None),
    }
}

/// Builds the decoder (which reads only headers), checks the declared size, then decodes.
/// `jpeg_complete`: for a JPEG, whether its data reaches the end-of-image marker; a JPEG that
/// does is whole, so what its decoder calls an early end is corrupt data, not truncation.
fn decode_checked<R: BufRead + Seek>(
    path: &Path,
    mut reader: ImageReader<R>,
    check: &impl Fn(u32, u32) -> Result<(), ImageErrorKind>,
    jpeg_complete: Option<bool>,
) -> Result<DynamicImage, ImageError> {
    let from_image = |path: &Path, e: image::ImageError| {
        let mut err = from_image(path, e);
        if let (Some(true), ImageErrorKind::Truncated(text)) = (jpeg_complete, &err.kind) {
            err.kind = ImageErrorKind::Corrupt(text.clone());
        }
        err
    };
    // Dimension limits are set after our own check so that a refusal names the size.
    reader.limits(alloc_only_limits());
    let mut decoder = reader.into_decoder().map_err(|e| from_image(path, e))?;
    let (w, h) = decoder.dimensions();
    check_size(w, h, check).map_err(|k| ImageError::new(path, k))?;
    if jpeg_complete == Some(false) {
        let kind =
            ImageErrorKind::Truncated("the JPEG data ends before its end-of-image marker".into());
        return Err(ImageError::new(path, kind));
    }
    decoder.set_limits(full_limits()).map_err(|e| from_image(path, e))?;

    // A broken EXIF block is not worth refusing the image for: it is shown as stored.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| from_image(path, e))?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// Whether a JPEG reaches its end-of-image marker (FFD9). Walks the marker segments by their
/// lengths (so an EXIF thumbnail's own markers are skipped) and scans entropy-coded data byte by
/// byte, where FF is always followed by 00 (a stuffed byte) or a marker. Once the image data has
/// begun (after SOS), a file that ends with FFD9 is whole even when the walk is thrown off by
/// damaged data (a byte pair that reads as a marker with a length past the end): such a file is
/// corrupt, not truncated.
fn jpeg_has_end(b: &[u8]) -> bool {
    let mut i = 2; // after SOI
    let mut in_scan = false;
    while i + 1 < b.len() {
        if b[i] != 0xFF {
            i += 1; // entropy-coded data
            continue;
        }
        match b[i + 1] {
            0xD9 => return true,
            0xFF => i += 1,                      // fill byte before a marker
            0x00 | 0x01 | 0xD0..=0xD7 => i += 2, // stuffed byte, TEM, restart markers
            marker if i + 3 < b.len() => {
                in_scan |= marker == 0xDA;
                let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
                i += 2 + len;
            }
            _ => break,
        }
    }
    in_scan && b.ends_with(&[0xFF, 0xD9])
}

/// The size check every reader shares: too large first, then the reader's own rule.
fn check_size(
    w: u32,
    h: u32,
    check: &impl Fn(u32, u32) -> Result<(), ImageErrorKind>,
) -> Result<(), ImageErrorKind> {
    if i64::from(w) > MAX_SIDE || i64::from(h) > MAX_SIDE {
        return Err(ImageErrorKind::TooLarge { width: w, height: h });
    }
    check(w, h)
}

/// Width and height from a PNG's IHDR, or `None` when the file is not a PNG (or too short to
/// say; the decoder then reports it). Leaves the file at its start.
fn png_declared_size(file: &mut File) -> std::io::Result<Option<(u32, u32)>> {
    let mut head = Vec::with_capacity(24);
    file.by_ref().take(24).read_to_end(&mut head)?;
    file.seek(SeekFrom::Start(0))?;
    let is_png = head.len() == 24 && head[..8] == *b"\x89PNG\r\n\x1a\n" && head[12..16] == *b"IHDR";
    Ok(is_png.then(|| {
        let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        (be(&head[16..20]), be(&head[20..24]))
    }))
}

/// Enough for the largest accepted image at 16 bits per channel with alpha, plus headroom.
const MAX_ALLOC: u64 = 1 << 30;

fn alloc_only_limits() -> Limits {
    let mut l = Limits::default();
    l.max_alloc = Some(MAX_ALLOC);
    l
}

fn full_limits() -> Limits {
    let mut l = alloc_only_limits();
    l.max_image_width = Some(MAX_SIDE as u32);
    l.max_image_height = Some(MAX_SIDE as u32);
    l
}

#[derive(Clone, Copy)]
enum Channels {
    Rgb,
    Alpha,
    Luma,
}

/// Converts to `[C,H,W]` float: 8-bit values / 255, 16-bit values / 65535, float as is.
fn to_chw(img: &DynamicImage, which: Channels) -> Tensor {
    use image::ColorType::*;
    let (w, h) = (img.width(), img.height());
    let wide = matches!(img.color(), L16 | La16 | Rgb16 | Rgba16);
    let float = matches!(img.color(), Rgb32F | Rgba32F);
    let scale = |v: Vec<f32>, max: f32| v.into_iter().map(|x| x / max).collect::<Vec<_>>();
    let u8s = |v: Vec<u8>| scale(v.into_iter().map(f32::from).collect(), 255.0);
    let u16s = |v: Vec<u16>| scale(v.into_iter().map(f32::from).collect(), 65535.0);
    match which {
        Channels::Rgb => {
            let data = match (wide, float) {
                (true, _) => u16s(img.to_rgb16().into_raw()),
                (_, true) => img.to_rgb32f().into_raw(),
                _ => u8s(img.to_rgb8().into_raw()),
            };
            hwc_to_chw(data, w, h, 3)
        }
        Channels::Luma => {
            let data = match (wide, float) {
                (true, _) => u16s(img.to_luma16().into_raw()),
                (_, true) => img.to_luma32f().into_raw(),
                _ => u8s(img.to_luma8().into_raw()),
            };
            hwc_to_chw(data, w, h, 1)
        }
        Channels::Alpha => {
            let data = match (wide, float) {
                (true, _) => u16s(img.to_rgba16().into_raw()),
                (_, true) => img.to_rgba32f().into_raw(),
                _ => u8s(img.to_rgba8().into_raw()),
            };
            hwc_to_chw(data, w, h, 4).narrow(0, 3, 1).contiguous()
        }
    }
}

/// Interleaved `H*W*C` values to a contiguous `[C,H,W]` tensor.
fn hwc_to_chw(data: Vec<f32>, w: u32, h: u32, c: i64) -> Tensor {
    Tensor::from_slice(&data).view([i64::from(h), i64::from(w), c]).permute([2, 0, 1]).contiguous()
}

#[cfg(test)]
mod tests {
    use super::jpeg_has_end;

    #[test]
    fn jpeg_end_marker_is_found_past_segments_and_data() {
        // SOI, an APP1 whose payload holds a fake FFD9, SOS header, data with a stuffed FF00.
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0x00, 0x00];
        j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
        assert!(!jpeg_has_end(&j), "no end marker yet: the one inside APP1 does not count");
        j.extend_from_slice(&[0xFF, 0xD9]);
        assert!(jpeg_has_end(&j));
        assert!(!jpeg_has_end(&j[..8]), "a segment running past the end is truncation");
        // Damaged image data that reads as a marker with a length past the end: the file still
        // ends with its end marker, so it is whole (and corrupt), not truncated.
        let mut damaged = j[..j.len() - 2].to_vec();
        damaged.extend_from_slice(&[0xFF, 0xC4, 0xFF, 0xF0, 0x77, 0xFF, 0xD9]);
        assert!(jpeg_has_end(&damaged));
        // Before the image data, the same is a header cut short.
        let mut header = vec![0xFF, 0xD8, 0xFF, 0xDB, 0xFF, 0xF0, 0x01, 0xFF, 0xD9];
        assert!(!jpeg_has_end(&header));
        header.truncate(4);
        assert!(!jpeg_has_end(&header));
    }
}
