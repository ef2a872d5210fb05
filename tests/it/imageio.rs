//! Tests for `pulse::imageio`: every input kind a user may hand us, read correctly or refused
//! with the right error, and every writer atomic.
//!
//! Inputs are encoded with the `image` crate into a temporary folder; the few it cannot make
//! (CMYK JPEG, EXIF orientation, palette PNG) are committed under `tests/fixtures/images/`.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};
use pulse::files::write_atomic;
use pulse::imageio::{
    read_mask, read_photo, read_target, upscale_nearest, write_animation, write_image,
    write_image_rgba, write_png, ImageError, ImageErrorKind, Sheet,
};
use tch::{Kind, Tensor};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Helpers

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images").join(name)
}

fn save(dir: &TempDir, name: &str, img: impl Into<DynamicImage>, format: ImageFormat) -> PathBuf {
    let path = dir.path().join(name);
    img.into().save_with_format(&path, format).unwrap();
    path
}

fn bytes_file(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Value at channel `c`, row `y`, column `x`.
fn px(t: &Tensor, c: i64, y: i64, x: i64) -> f64 {
    t.double_value(&[c, y, x])
}

fn rgb_at(t: &Tensor, y: i64, x: i64) -> [f64; 3] {
    [px(t, 0, y, x), px(t, 1, y, x), px(t, 2, y, x)]
}

fn assert_close(a: [f64; 3], b: [f64; 3], tol: f64) {
    for i in 0..3 {
        assert!((a[i] - b[i]).abs() <= tol, "{a:?} vs {b:?} (tolerance {tol})");
    }
}

/// The error must name the file and fit on one line.
fn assert_one_line(e: &ImageError, path: &Path) {
    let text = e.to_string();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(text.contains(name), "{text:?} does not name {name}");
    assert!(!text.contains('\n'), "{text:?} spans lines");
    assert_eq!(e.path, path);
}

/// A deterministic RGB test card: every pixel different.
fn card(w: u32, h: u32) -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([(x * 37 + y * 11) as u8, (y * 53 + 3) as u8, ((x ^ y) * 29) as u8])
    })
}

fn temp_files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// A minimal PNG: signature and IHDR declaring `w`x`h` 8-bit RGB, and no image data at all.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(b"IHDR");
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&[8, 2, 0, 0, 0]);
    v.extend_from_slice(&[0, 0, 0, 0]); // CRC (never checked: we refuse before)
    v
}

// ---------------------------------------------------------------------------------------------
// Formats and colour types that must be read

#[test]
fn rgb8_png_values_are_exact() {
    let dir = TempDir::new().unwrap();
    let img = card(8, 8);
    let path = save(&dir, "card.png", img.clone(), ImageFormat::Png);
    let t = read_target(&path, 1024).unwrap();
    assert_eq!(t.rgb.size(), [3, 8, 8]);
    assert_eq!(t.rgb.kind(), Kind::Float);
    assert!(t.alpha.is_none());
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            assert_eq!(px(&t.rgb, c, y as i64, x as i64) as f32, p[c as usize] as f32 / 255.0);
        }
    }
}

#[test]
fn rgba_png_returns_alpha() {
    let dir = TempDir::new().unwrap();
    let img = ImageBuffer::from_fn(2, 2, |x, y| {
        Rgba([10, 20, 30, [0u8, 128, 200, 255][(y * 2 + x) as usize]])
    });
    let path = save(&dir, "rgba.png", img, ImageFormat::Png);
    let t = read_target(&path, 1024).unwrap();
    let alpha = t.alpha.expect("alpha");
    assert_eq!(alpha.size(), [1, 2, 2]);
    assert_eq!(px(&alpha, 0, 0, 1) as f32, 128.0 / 255.0);
    assert_eq!(px(&alpha, 0, 0, 0), 0.0);
    assert_eq!(px(&alpha, 0, 1, 1), 1.0);
    assert_eq!(px(&t.rgb, 2, 0, 0) as f32, 30.0 / 255.0);
}

#[test]
fn grey_png_becomes_three_equal_channels() {
    let dir = TempDir::new().unwrap();
    let img = ImageBuffer::from_fn(4, 4, |x, _| Luma([(x * 60) as u8]));
    let path = save(&dir, "grey.png", img, ImageFormat::Png);
    let t = read_target(&path, 1024).unwrap();
    assert_eq!(t.rgb.size(), [3, 4, 4]);
    assert!(t.alpha.is_none());
    for c in 0..3 {
        assert_eq!(px(&t.rgb, c, 2, 3) as f32, 180.0 / 255.0);
    }
}

#[test]
fn grey_alpha_png_keeps_alpha() {
    let dir = TempDir::new().unwrap();
    let img = ImageBuffer::from_fn(2, 2, |x, _| LumaA([77u8, if x == 0 { 0 } else { 255 }]));
    let path = save(&dir, "grey_alpha.png", img, ImageFormat::Png);
    let t = read_target(&path, 1024).unwrap();
    assert_close(rgb_at(&t.rgb, 1, 1), [77.0 / 255.0; 3], 1e-7);
    let alpha = t.alpha.expect("alpha");
    assert_eq!(px(&alpha, 0, 0, 0), 0.0);
    assert_eq!(px(&alpha, 0, 0, 1), 1.0);
}

#[test]
fn palette_png_with_transparency() {
    // Fixture: index 0 = (10,20,30) opaque, index 1 = (200,100,50) transparent in column 0.
    let t = read_target(&fixture("palette.png"), 1024).unwrap();
    assert_eq!(t.rgb.size(), [3, 4, 4]);
    assert_close(rgb_at(&t.rgb, 2, 2), [10.0 / 255.0, 20.0 / 255.0, 30.0 / 255.0], 1e-7);
    assert_close(rgb_at(&t.rgb, 3, 0), [200.0 / 255.0, 100.0 / 255.0, 50.0 / 255.0], 1e-7);
    let alpha = t.alpha.expect("tRNS gives alpha");
    assert_eq!(px(&alpha, 0, 1, 0), 0.0);
    assert_eq!(px(&alpha, 0, 1, 1), 1.0);
}

#[test]
fn png_16bit_is_divided_by_65535() {
    let dir = TempDir::new().unwrap();
    let img: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_pixel(2, 2, Rgb([1000, 65535, 257]));
    let path = save(&dir, "deep.png", img, ImageFormat::Png);
    let t = read_target(&path, 1024).unwrap();
    assert_eq!(px(&t.rgb, 0, 1, 1) as f32, 1000.0 / 65535.0);
    assert_eq!(px(&t.rgb, 1, 1, 1), 1.0);
    assert_eq!(px(&t.rgb, 2, 0, 0) as f32, 257.0 / 65535.0);

    let grey: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::from_pixel(2, 2, Luma([12345]));
    let path = save(&dir, "deep_grey.png", grey, ImageFormat::Png);
    let t = read_target(&path, 1024).unwrap();
    assert_close(rgb_at(&t.rgb, 0, 0), [(12345.0f32 / 65535.0) as f64; 3], 0.0);
}

#[test]
fn jpeg_is_read_within_compression_error() {
    let dir = TempDir::new().unwrap();
    let img = ImageBuffer::from_pixel(16, 16, Rgb([200u8, 60, 30]));
    let path = save(&dir, "face.jpg", img, ImageFormat::Jpeg);
    let t = read_target(&path, 1024).unwrap();
    assert_eq!(t.rgb.size(), [3, 16, 16]);
    assert_close(rgb_at(&t.rgb, 5, 5), [200.0 / 255.0, 60.0 / 255.0, 30.0 / 255.0], 4.0 / 255.0);
}

#[test]
fn webp_lossless_is_exact() {
    let dir = TempDir::new().unwrap();
    let img = DynamicImage::from(card(8, 8)).to_rgba8();
    let path = dir.path().join("face.webp");
    let mut bytes = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut bytes)
        .encode(img.as_raw(), 8, 8, image::ExtendedColorType::Rgba8)
        .unwrap();
    std::fs::write(&path, bytes).unwrap();
    let t = read_target(&path, 1024).unwrap();
    let p = img.get_pixel(3, 5);
    assert_close(
        rgb_at(&t.rgb, 5, 3),
        [p[0] as f64 / 255.0, p[1] as f64 / 255.0, p[2] as f64 / 255.0],
        1e-7,
    );
}

#[test]
fn bmp_is_exact() {
    let dir = TempDir::new().unwrap();
    let img = card(4, 4);
    let path = save(&dir, "face.bmp", img.clone(), ImageFormat::Bmp);
    let t = read_target(&path, 1024).unwrap();
    let p = img.get_pixel(1, 2);
    assert_close(
        rgb_at(&t.rgb, 2, 1),
        [p[0] as f64 / 255.0, p[1] as f64 / 255.0, p[2] as f64 / 255.0],
        1e-7,
    );
}

#[test]
fn gif_reads_the_first_frame() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("anim.gif");
    let red = Tensor::from_slice(&[1f32, 0., 0.]).view([3, 1, 1]).expand([3, 4, 4], false);
    let blue = Tensor::from_slice(&[0f32, 0., 1.]).view([3, 1, 1]).expand([3, 4, 4], false);
    write_animation(&[red, blue], &path, 100).unwrap();
    let t = read_target(&path, 1024).unwrap();
    assert_close(rgb_at(&t.rgb, 1, 1), [1.0, 0.0, 0.0], 2.0 / 255.0);
}

#[test]
fn format_is_sniffed_not_taken_from_the_extension() {
    let dir = TempDir::new().unwrap();
    let png_as_jpg = save(&dir, "really_a_png.jpg", card(4, 4), ImageFormat::Png);
    let t = read_target(&png_as_jpg, 1024).unwrap();
    assert_eq!(px(&t.rgb, 1, 0, 0) as f32, 3.0 / 255.0);
    let jpg_as_png = save(&dir, "really_a_jpg.png", card(4, 4), ImageFormat::Jpeg);
    assert!(read_target(&jpg_as_png, 1024).is_ok());
}

#[test]
fn cmyk_jpeg_is_converted_to_rgb() {
    // Fixture: left half C=0 M=255 Y=255 K=0 (red), right half no ink (white).
    let t = read_target(&fixture("cmyk.jpg"), 1024).unwrap();
    assert_eq!(t.rgb.size(), [3, 16, 16]);
    assert_close(rgb_at(&t.rgb, 8, 2), [1.0, 0.0, 0.0], 0.05);
    assert_close(rgb_at(&t.rgb, 8, 13), [1.0, 1.0, 1.0], 0.05);
}

#[test]
fn exif_orientation_is_applied() {
    // Fixture: stored with a white block top-left, Orientation=6 (turn 90 degrees clockwise).
    let t = read_target(&fixture("exif_orientation6.jpg"), 1024).unwrap();
    assert!(px(&t.rgb, 0, 4, 12) > 0.9, "the block should now be top-right");
    assert!(px(&t.rgb, 0, 4, 4) < 0.1);
    assert!(px(&t.rgb, 0, 12, 12) < 0.1);
}

#[test]
fn exif_orientation_turns_a_wide_photo_tall() {
    // Fixture: 16x8 stored, left half white; displayed 8x16 with the white half on top. The
    // centre 8x8 crop then has white on top; without the rotation it would have white on the left.
    let (t, resized) = read_photo(&fixture("exif_orientation6_wide.jpg"), 8).unwrap();
    assert!(resized);
    assert!(px(&t, 0, 1, 4) > 0.9, "top should be white");
    assert!(px(&t, 0, 6, 4) < 0.1, "bottom should be black");
}

// ---------------------------------------------------------------------------------------------
// Inputs that must be refused, each with its own error and a one-line message naming the file

#[test]
fn truncated_png_is_refused() {
    let dir = TempDir::new().unwrap();
    let full = save(&dir, "full.png", card(32, 32), ImageFormat::Png);
    let bytes = std::fs::read(&full).unwrap();
    let path = bytes_file(&dir, "cut.png", &bytes[..bytes.len() / 2]);
    let e = read_target(&path, 1024).unwrap_err();
    assert!(matches!(e.kind, ImageErrorKind::Truncated(_)), "{e}");
    assert_one_line(&e, &path);
}

#[test]
fn truncated_jpeg_is_refused() {
    let dir = TempDir::new().unwrap();
    let full = save(&dir, "full.jpg", card(32, 32), ImageFormat::Jpeg);
    let bytes = std::fs::read(&full).unwrap();
    let path = bytes_file(&dir, "cut.jpg", &bytes[..bytes.len() * 2 / 3]);
    let e = read_target(&path, 1024).unwrap_err();
    assert!(matches!(e.kind, ImageErrorKind::Truncated(_)), "{e}");
    assert_one_line(&e, &path);
}

#[test]
fn zero_byte_file_is_empty() {
    let dir = TempDir::new().unwrap();
    let path = bytes_file(&dir, "empty.png", b"");
    let e = read_target(&path, 1024).unwrap_err();
    assert!(matches!(e.kind, ImageErrorKind::Empty));
    assert_one_line(&e, &path);
}

#[test]
fn text_file_is_not_an_image() {
    let dir = TempDir::new().unwrap();
    let path = bytes_file(&dir, "notes.png", b"these are not the pixels you are looking for\n");
    let e = read_target(&path, 1024).unwrap_err();
    assert!(matches!(e.kind, ImageErrorKind::UnknownFormat), "{e}");
    assert_one_line(&e, &path);
}

#[test]
fn missing_file_is_io() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("nowhere.png");
    let e = read_target(&path, 1024).unwrap_err();
    assert!(matches!(e.kind, ImageErrorKind::Io(_)));
    assert_one_line(&e, &path);
}

#[test]
fn non_square_is_refused_with_the_accepted_sides() {
    let dir = TempDir::new().unwrap();
    let path = save(&dir, "tall.png", card(32, 40), ImageFormat::Png);
    let e = read_target(&path, 1024).unwrap_err();
    match &e.kind {
        ImageErrorKind::UnsupportedSize { width: 32, height: 40, accepted } => {
            assert_eq!(accepted, &[1024, 512, 256, 128, 64, 32, 16, 8, 4, 2])
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().ends_with(
        "tall.png: 32x40 is not accepted: the input must be square with side 1024/2^k \
         (1024, 512, 256, 128, 64, 32, 16, 8, 4, 2)"
    ));
    assert_one_line(&e, &path);
}

#[test]
fn wrong_side_is_refused() {
    let dir = TempDir::new().unwrap();
    let path = save(&dir, "forty.jpg", card(40, 40), ImageFormat::Jpeg);
    let e = read_target(&path, 1024).unwrap_err();
    assert!(matches!(e.kind, ImageErrorKind::UnsupportedSize { width: 40, height: 40, .. }));
    assert_one_line(&e, &path);
    // Larger than the generator is refused too, and a 128 generator accepts only up to 128.
    let path = save(&dir, "big.png", card(256, 256), ImageFormat::Png);
    assert!(matches!(
        read_target(&path, 128).unwrap_err().kind,
        ImageErrorKind::UnsupportedSize { .. }
    ));
    assert!(read_target(&path, 256).is_ok());
}

#[test]
fn size_is_checked_from_the_header_before_decoding() {
    // A header that declares 48x48 and has no pixel data: the size error, not a decoding error,
    // proves the pixels were never looked at.
    let dir = TempDir::new().unwrap();
    let path = bytes_file(&dir, "header_only.png", &png_header_only(48, 48));
    let e = read_target(&path, 1024).unwrap_err();
    assert!(matches!(e.kind, ImageErrorKind::UnsupportedSize { width: 48, height: 48, .. }), "{e}");
}

#[test]
fn huge_declared_dimensions_are_refused_fast() {
    let dir = TempDir::new().unwrap();
    let mut bytes = png_header_only(100_000, 100_000);
    bytes.extend_from_slice(b"\0\0\0\x10IDAT some bytes"); // a few bytes of "data"
    let path = bytes_file(&dir, "bomb.png", &bytes);
    let start = Instant::now();
    for read in [
        |p: &Path| read_target(p, 1024).map(|_| ()),
        |p: &Path| read_photo(p, 1024).map(|_| ()),
        |p: &Path| read_mask(p, 32).map(|_| ()),
    ] {
        let e = read(&path).unwrap_err();
        assert!(
            matches!(e.kind, ImageErrorKind::TooLarge { width: 100_000, height: 100_000 }),
            "{e}"
        );
        assert_one_line(&e, &path);
    }
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn huge_jpeg_header_is_refused_before_decoding() {
    // A real 8x8 JPEG whose SOF0 height and width are patched to 60000x60000.
    let dir = TempDir::new().unwrap();
    let small = save(&dir, "small.jpg", card(8, 8), ImageFormat::Jpeg);
    let mut bytes = std::fs::read(small).unwrap();
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline SOF0");
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let path = bytes_file(&dir, "bomb.jpg", &bytes);
    let start = Instant::now();
    let e = read_photo(&path, 1024).unwrap_err();
    assert!(matches!(e.kind, ImageErrorKind::TooLarge { width: 60000, height: 60000 }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn huge_headers_of_other_formats_are_refused_fast() {
    let dir = TempDir::new().unwrap();
    // BMP: file header + BITMAPINFOHEADER declaring 60000x60000 at 24 bits, then 3 bytes.
    let mut bmp = b"BM".to_vec();
    for v in [57u32, 0, 54, 40, 60000, 60000] {
        bmp.extend_from_slice(&v.to_le_bytes());
    }
    bmp.extend_from_slice(&[1, 0, 24, 0]); // planes, bits per pixel
    bmp.extend_from_slice(&[0u8; 24]);
    bmp.extend_from_slice(&[1, 2, 3]);
    let path = bytes_file(&dir, "bomb.bmp", &bmp);
    let start = Instant::now();
    let e = read_photo(&path, 1024).unwrap_err();
    assert!(matches!(e.kind, ImageErrorKind::TooLarge { width: 60000, height: 60000 }), "{e}");
    // GIF and WebP headers alone: their decoders stop at the missing data, without allocating.
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&[0x60, 0xEA, 0x60, 0xEA, 0, 0, 0, 0x3B]);
    let mut webp = b"RIFF\x16\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
    webp.extend_from_slice(&[0x5F, 0xEA, 0x00, 0x5F, 0xEA, 0x00]); // canvas 60000x60000
    for (name, bytes) in [("bomb.gif", gif), ("bomb.webp", webp)] {
        let path = bytes_file(&dir, name, &bytes);
        let e = read_photo(&path, 1024).unwrap_err();
        assert_one_line(&e, &path);
    }
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn oversized_file_is_refused_before_reading() {
    // A sparse file: 1 GiB + 1 byte on paper, nothing on disk.
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("huge.jpg");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(pulse::imageio::MAX_FILE_BYTES + 1).unwrap();
    let e = read_photo(&path, 1024).unwrap_err();
    assert!(matches!(e.kind, ImageErrorKind::FileTooLarge { .. }), "{e}");
    assert_one_line(&e, &path);
}

#[test]
fn progressive_jpeg_is_complete() {
    // Fixture: ten scans; the end-marker check must walk all of them.
    let t = read_target(&fixture("progressive.jpg"), 1024).unwrap();
    assert_close(rgb_at(&t.rgb, 8, 8), [200.0 / 255.0, 60.0 / 255.0, 30.0 / 255.0], 4.0 / 255.0);
}

// ---------------------------------------------------------------------------------------------
// Masks and photos

#[test]
fn mask_is_luma_of_the_right_side() {
    let dir = TempDir::new().unwrap();
    let grey = ImageBuffer::from_fn(8, 8, |x, _| Luma([if x < 4 { 0u8 } else { 255 }]));
    let path = save(&dir, "mask.png", grey, ImageFormat::Png);
    let m = read_mask(&path, 8).unwrap();
    assert_eq!(m.size(), [1, 8, 8]);
    assert_eq!(px(&m, 0, 3, 2), 0.0);
    assert_eq!(px(&m, 0, 3, 6), 1.0);

    let colour = ImageBuffer::from_pixel(8, 8, Rgb([255u8, 255, 255]));
    let path = save(&dir, "mask_rgb.png", colour, ImageFormat::Png);
    assert_eq!(read_mask(&path, 8).unwrap().size(), [1, 8, 8]);
    assert_eq!(px(&read_mask(&path, 8).unwrap(), 0, 0, 0), 1.0);

    let e = read_mask(&path, 16).unwrap_err();
    assert!(
        e.to_string().ends_with("mask_rgb.png: 8x8 is not accepted: the image must be 16x16"),
        "{e}"
    );
}

#[test]
fn photo_of_the_right_size_is_not_resized() {
    let dir = TempDir::new().unwrap();
    let path = save(&dir, "photo.png", card(16, 16), ImageFormat::Png);
    let (t, resized) = read_photo(&path, 16).unwrap();
    assert!(!resized);
    assert_eq!(px(&t, 1, 0, 0) as f32, 3.0 / 255.0);
}

#[test]
fn other_photos_are_cropped_and_resized() {
    let dir = TempDir::new().unwrap();
    // 40x20: the centre 20x20 is uniform grey, the sides are red; the crop must drop the red.
    let img = ImageBuffer::from_fn(40, 20, |x, _| {
        if (10..30).contains(&x) {
            Rgb([90u8, 90, 90])
        } else {
            Rgb([255, 0, 0])
        }
    });
    let path = save(&dir, "wide.png", img, ImageFormat::Png);
    let (t, resized) = read_photo(&path, 16).unwrap();
    assert!(resized);
    assert_eq!(t.size(), [3, 16, 16]);
    assert_close(rgb_at(&t, 8, 0), [90.0 / 255.0; 3], 1e-3);
    assert_close(rgb_at(&t, 8, 15), [90.0 / 255.0; 3], 1e-3);
    // Upscaling a tiny photo works too, and stays within [0,1] despite Lanczos overshoot.
    let path = save(&dir, "tiny.png", card(4, 4), ImageFormat::Png);
    let (t, resized) = read_photo(&path, 32).unwrap();
    assert!(resized);
    assert!(t.min().double_value(&[]) >= 0.0 && t.max().double_value(&[]) <= 1.0);
}

// ---------------------------------------------------------------------------------------------
// Writing

#[test]
fn write_png_round_trips() {
    let _seed = pulse::rng::seed(0);
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("out.png");
    let t = Tensor::rand([3, 8, 8], (Kind::Float, tch::Device::Cpu));
    write_png(&t, &path).unwrap();
    let back = read_target(&path, 8).unwrap().rgb;
    let expected = (&t * 255.0).round() / 255.0;
    assert!(back.allclose(&expected, 0.0, 1e-6, false));
    // A batch of one is accepted; out-of-range values are clamped.
    let batch = (t.unsqueeze(0) * 3.0) - 1.0;
    write_png(&batch, &path).unwrap();
    let back = read_target(&path, 8).unwrap().rgb;
    assert!(back.min().double_value(&[]) >= 0.0 && back.max().double_value(&[]) <= 1.0);
    assert!(temp_files_in(dir.path()).is_empty());
}

#[test]
fn write_png_rounds_half_values() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("half.png");
    // 0.5 * 255 = 127.5 rounds to 128; 0.2 * 255 = 51.
    let t = Tensor::from_slice(&[0.5f32, 0.2, 1.0]).view([3, 1, 1]);
    write_png(&t, &path).unwrap();
    let img = image::open(&path).unwrap().to_rgb8();
    assert_eq!(img.get_pixel(0, 0).0, [128, 51, 255]);
}

#[test]
fn write_image_rgba_keeps_alpha() {
    let dir = TempDir::new().unwrap();
    let t = Tensor::from_slice(&[0.2f32, 0.4, 0.6, 0.0]).view([4, 1, 1]).expand([4, 2, 2], false);
    for name in ["hair.png", "hair.webp"] {
        let path = dir.path().join(name);
        write_image_rgba(&t, &path).unwrap();
        let back = read_target(&path, 2).unwrap();
        assert_eq!(px(&back.alpha.unwrap(), 0, 1, 1), 0.0, "{name}");
        assert_eq!(px(&back.rgb, 1, 0, 0) as f32, 102.0 / 255.0, "{name}");
    }
    let e = write_image_rgba(&t, &dir.path().join("hair.jpg")).unwrap_err();
    assert!(e.to_string().contains("alpha"), "{e}");
}

/// A user-named output is written in the format its extension names, and an extension with no
/// format is refused before anything is written.
#[test]
fn write_image_writes_the_format_its_name_says() {
    let _seed = pulse::rng::seed(0);
    let dir = TempDir::new().unwrap();
    let t = Tensor::rand([3, 8, 8], tch::kind::FLOAT_CPU);
    for (name, format) in [
        ("a.png", ImageFormat::Png),
        ("b.JPG", ImageFormat::Jpeg),
        ("c.jpeg", ImageFormat::Jpeg),
        ("d.bmp", ImageFormat::Bmp),
        ("e.webp", ImageFormat::WebP),
    ] {
        let path = dir.path().join(name);
        write_image(&t, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(image::guess_format(&bytes).unwrap(), format, "{name}");
    }
    for name in ["f.tiff", "g", "h.png.tmp"] {
        let path = dir.path().join(name);
        let e = write_image(&t, &path).unwrap_err();
        assert!(e.to_string().contains(".png, .jpg"), "{e}");
        assert!(!path.exists());
    }
}

#[test]
fn write_png_refuses_bad_shapes_without_leaving_a_file() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("bad.png");
    let e = write_png(&Tensor::zeros([4, 8, 8], tch::kind::FLOAT_CPU), &path).unwrap_err();
    assert!(matches!(e.kind, ImageErrorKind::Write(_)));
    assert_one_line(&e, &path);
    assert!(!path.exists());
}

/// A folder that cannot be written (here a path through a regular file, which fails for root
/// too, unlike folder permissions) is a one-line write error and leaves nothing.
#[test]
fn write_png_into_an_unwritable_place_leaves_nothing() {
    let dir = TempDir::new().unwrap();
    let not_a_folder = dir.path().join("file");
    std::fs::write(&not_a_folder, b"x").unwrap();
    let path = not_a_folder.join("out.png");
    let e = write_png(&Tensor::zeros([3, 4, 4], tch::kind::FLOAT_CPU), &path).unwrap_err();
    assert!(matches!(e.kind, ImageErrorKind::Write(_)), "{e}");
    assert_one_line(&e, &path);
    assert!(!path.exists());
    assert_eq!(std::fs::read(&not_a_folder).unwrap(), b"x");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn failed_write_keeps_the_old_file_and_no_temp_file() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("report.json");
    write_atomic(&path, |f| std::io::Write::write_all(f, b"old")).unwrap();
    let e = write_atomic(&path, |f| {
        std::io::Write::write_all(f, b"half a new rep")?;
        Err(std::io::Error::other("disk on fire"))
    })
    .unwrap_err();
    assert_eq!(e.to_string(), "disk on fire");
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert!(temp_files_in(dir.path()).is_empty());
}

#[test]
fn write_atomic_needs_an_existing_folder() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("missing/out.json");
    let e = write_atomic(&path, |_| Ok(())).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert!(!path.exists());
}

#[test]
fn write_atomic_makes_an_ordinary_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("latent.safetensors");
    write_atomic(&path, |f| std::io::Write::write_all(f, b"bytes")).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"bytes");
    // Not tempfile's private 0600: group and others may read, as with any new file.
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o600, 0o600);
    assert_ne!(mode, 0o600, "mode {mode:o}");
}

#[test]
fn animation_is_written_and_decodable() {
    use image::AnimationDecoder;
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("search.gif");
    let frames: Vec<Tensor> = [0.0f32, 0.5, 1.0]
        .iter()
        .map(|&v| Tensor::full([3, 8, 8], v as f64, tch::kind::FLOAT_CPU))
        .collect();
    write_animation(&frames, &path, 120).unwrap();
    let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let decoded =
        image::codecs::gif::GifDecoder::new(file).unwrap().into_frames().collect_frames().unwrap();
    assert_eq!(decoded.len(), 3);
    assert_eq!(decoded[0].buffer().dimensions(), (8, 8));
    assert_eq!(decoded[1].delay().numer_denom_ms(), (120, 1));
    let grey = decoded[1].buffer().get_pixel(4, 4)[0] as i32;
    assert!((grey - 128).abs() <= 3, "{grey}");
    assert!(temp_files_in(dir.path()).is_empty());

    let e = write_animation(&[], &path, 100).unwrap_err();
    assert!(matches!(e.kind, ImageErrorKind::Write(_)));
}

// ---------------------------------------------------------------------------------------------
// Comparisons and contact sheets

#[test]
fn upscale_nearest_blows_up_without_smoothing() {
    let t = Tensor::from_slice(&[0f32, 1.0]).view([1, 1, 2]).expand([3, 2, 2], false);
    let up = upscale_nearest(&t, 8);
    assert_eq!(up.size(), [3, 8, 8]);
    assert_eq!(px(&up, 0, 7, 3), 0.0);
    assert_eq!(px(&up, 2, 0, 4), 1.0);
    // Only the two input values appear: no blending.
    assert!(bool::try_from(up.eq(0.0).logical_or(&up.eq(1.0)).all()).unwrap());
}

#[test]
fn sheet_dimensions_follow_tiles_and_columns() {
    let _seed = pulse::rng::seed(0);
    let mut sheet = Sheet::new(64, 3);
    for i in 0..4 {
        sheet.push(&Tensor::rand([3, 32, 32], tch::kind::FLOAT_CPU), &format!("seed {i}"));
    }
    let img = sheet.render();
    // 3 columns, 2 rows; gaps of 2 px; a label band of 11 px under each tile.
    assert_eq!(img.size(), [3, 2 * (64 + 11) + 3 * 2, 3 * 64 + 4 * 2]);
    assert!(img.min().double_value(&[]) >= 0.0 && img.max().double_value(&[]) <= 1.0);

    // Fewer tiles than columns: the sheet is only as wide as needed; no labels, no band.
    let mut sheet = Sheet::new(64, 5);
    sheet.push(&Tensor::rand([1, 3, 1024, 1024], tch::kind::FLOAT_CPU), "");
    sheet.push(&Tensor::rand([1, 16, 16], tch::kind::FLOAT_CPU), "");
    assert_eq!(sheet.render().size(), [3, 64 + 2 * 2, 2 * 64 + 3 * 2]);
}

#[test]
fn sheet_labels_change_pixels_only_in_the_band() {
    let img = Tensor::full([3, 16, 16], 0.5, tch::kind::FLOAT_CPU);
    let render = |label: &str| {
        let mut sheet = Sheet::new(128, 1);
        sheet.push(&img, label);
        sheet.render()
    };
    let blank = render(" ");
    let labelled = render("PULSE 0.25 +-=:");
    assert_eq!(blank.size(), labelled.size());
    let changed = blank.ne_tensor(&labelled).any_dim(0, false).nonzero();
    assert!(changed.size()[0] > 20, "the label drew too few pixels");
    let first_row = changed.select(1, 0).min().int64_value(&[]);
    assert!(first_row >= 4 + 128, "label pixels above the band (row {first_row})");
    assert_eq!(labelled.max().double_value(&[]), 1.0, "text is white");
    // The tile itself is untouched and upscaled without smoothing.
    assert_eq!(px(&labelled, 1, 4 + 64, 4 + 64), 0.5);
}

#[test]
fn sheet_shrinks_large_tiles_by_area() {
    // A 2x2 checker blown up to 128 px, shrunk into a 64 px tile: area averaging keeps each block.
    let big = Tensor::from_slice(&[0f32, 1.0, 1.0, 0.0]).view([1, 2, 2]);
    let big = upscale_nearest(&big.expand([3, 2, 2], false), 128);
    let mut sheet = Sheet::new(64, 1);
    sheet.push(&big, "");
    let out = sheet.render();
    // Tile is at (2,2); each 64-px input block became a 32-px block of its own value.
    assert_eq!(px(&out, 0, 2 + 10, 2 + 10), 0.0);
    assert_eq!(px(&out, 0, 2 + 10, 2 + 40), 1.0);
}
