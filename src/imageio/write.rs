//! Writing outputs atomically: everything goes to a temporary file in the destination folder,
//! is fsynced, then renamed over the final name. A reader (or a crash) never sees half a file,
//! and a failed write leaves whatever was there before untouched.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::png::PngEncoder;
use image::{Delay, ExtendedColorType, Frame, ImageEncoder, RgbaImage};
use tch::{Device, Kind, Tensor};

use super::error::{one_line, ImageError, ImageErrorKind};

/// Writes a `[3,H,W]` (or `[1,3,H,W]`) tensor of values in [0,1] as an 8-bit RGB PNG.
/// Values are rounded: `(x*255).round().clamp(0,255)`; NaN is written as 0.
pub fn write_png(t: &Tensor, path: &Path) -> Result<(), ImageError> {
    write_png_channels(t, path, 3, ExtendedColorType::Rgb8)
}

/// Same as [`write_png`] for a `[4,H,W]` RGBA tensor (hair-colour targets keep their alpha).
pub fn write_png_rgba(t: &Tensor, path: &Path) -> Result<(), ImageError> {
    write_png_channels(t, path, 4, ExtendedColorType::Rgba8)
}

fn write_png_channels(
    t: &Tensor,
    path: &Path,
    channels: i64,
    colour: ExtendedColorType,
) -> Result<(), ImageError> {
    let (data, w, h) = to_hwc_u8(t, channels).map_err(|m| write_err(path, m))?;
    write_atomic(path, |file| {
        let mut out = BufWriter::new(file);
        PngEncoder::new(&mut out)
            .write_image(&data, w, h, colour)
            .map_err(std::io::Error::other)?;
        out.flush()
    })
}

/// Writes whatever `f` writes into a file, atomically: a temporary file next to `path`, fsync,
/// then rename. On any error the temporary file is removed and `path` is left as it was.
/// The parent folder must exist. Used for every output (PNGs, JSON reports, latents).
pub fn write_atomic(
    path: &Path,
    f: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), ImageError> {
    let fail = |m: String| write_err(path, m);
    let name = path
        .file_name()
        .ok_or_else(|| fail("the path has no file name".into()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // tempfile defaults to 0600; ask for the usual 0666 and let the umask narrow it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| fail(e.to_string()))?;
    f(tmp.as_file_mut()).map_err(|e| fail(e.to_string()))?;
    tmp.as_file().sync_all().map_err(|e| fail(e.to_string()))?;
    tmp.persist(path).map_err(|e| fail(e.error.to_string()))?;
    // Make the rename itself durable; not every filesystem supports syncing a folder.
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
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
            enc.set_repeat(Repeat::Infinite)
                .map_err(std::io::Error::other)?;
            for img in rgba {
                enc.encode_frame(Frame::from_parts(img, 0, 0, delay))
                    .map_err(std::io::Error::other)?;
            }
            // Dropping the encoder writes the GIF trailer.
        }
        out.flush()
    })
}

/// `[C,H,W]` or `[1,C,H,W]` float in [0,1] to interleaved 8-bit `H*W*C` bytes.
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
    let bytes = t
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .nan_to_num(0.0, None, None)
        .multiply_scalar(255.0)
        .round()
        .clamp(0.0, 255.0)
        .to_kind(Kind::Uint8)
        .permute([1, 2, 0])
        .contiguous()
        .view([-1]);
    let data = Vec::<u8>::try_from(&bytes).map_err(|e| one_line(&e.to_string()))?;
    Ok((data, w32, h32))
}

fn write_err(path: &Path, msg: String) -> ImageError {
    ImageError::new(path, ImageErrorKind::Write(one_line(&msg)))
}
