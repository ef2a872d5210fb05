//! Image input and output.
//!
//! Images are CPU float32 tensors, `[C,H,W]`, values in [0,1] (8-bit value / 255, 16-bit value /
//! 65535). Readers check sizes from the file header before decoding, so a wrong-size or
//! decompression-bomb input is refused cheaply; every writer goes through [`crate::files::write_atomic`], so no
//! half-written file ever appears under an output name. Errors name the file on one line.
//! Nothing here prints.
mod error;
mod font;
mod read;
mod sheet;
mod write;

pub use error::{ImageError, ImageErrorKind};
pub use read::{read_mask, read_photo, read_rgb, read_target, Target};
pub use sheet::Sheet;
pub use write::{
    png_text, write_animation, write_image, write_image_rgba, write_png, write_png_rows,
    OutputFormat, OUTPUT_EXTENSIONS,
};

/// The extensions taken from a folder of inputs; the same formats are recognised from their
/// content when a file is named directly, whatever its name.
pub const INPUT_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "webp", "bmp", "gif"];

/// Whether `path` has one of the [`INPUT_EXTENSIONS`] (case-insensitive).
pub fn has_input_extension(path: &std::path::Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| INPUT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

use tch::{Kind, Tensor};

/// The largest side any reader accepts; larger headers are refused before decoding.
pub const MAX_SIDE: i64 = 8192;

/// The largest file any reader opens (1 GiB): JPEGs are read into memory whole before decoding.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Smooth resize of images `[B,C,H,W]` to `[B,C,side,side]`: area averaging when shrinking,
/// bilinear (PyTorch's `align_corners=False`) when enlarging, unchanged at the same size.
///
/// The embedding differentiates through this (its VGG term), so it avoids the ops whose CUDA
/// backward libtorch's deterministic mode refuses (`adaptive_avg_pool2d`,
/// `upsample_bilinear2d`): shrinking by a whole factor is an average pool, enlarging is two
/// small matrix products. Only a shrink by a fractional factor (photos, never differentiated)
/// uses the adaptive pool.
pub fn resize_square(images: &Tensor, side: i64) -> Tensor {
    match images.size()[2] {
        s if s > side && s % side == 0 => {
            let k = s / side;
            images.avg_pool2d([k, k], [k, k], [0, 0], false, true, None::<i64>)
        }
        s if s > side => images.adaptive_avg_pool2d([side, side]),
        s if s < side => {
            let rows = linear_weights(s, side, images.device());
            let cols = linear_weights(images.size()[3], side, images.device());
            rows.matmul(&images.to_kind(Kind::Float).matmul(&cols.tr())).to_kind(images.kind())
        }
        _ => images.shallow_clone(),
    }
}

/// `[n_out, n_in]` weights of 1-D linear interpolation as `upsample_bilinear2d` computes it
/// with `align_corners=False`: output i reads source position `(i + 0.5) n_in / n_out - 0.5`
/// (at least 0) from its two neighbours.
fn linear_weights(n_in: i64, n_out: i64, device: tch::Device) -> Tensor {
    let mut w = vec![0f32; (n_out * n_in) as usize];
    let scale = n_in as f32 / n_out as f32;
    for i in 0..n_out {
        let src = ((i as f32 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as i64).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        let l1 = src - i0 as f32;
        w[(i * n_in + i0) as usize] += 1.0 - l1;
        w[(i * n_in + i1) as usize] += l1;
    }
    Tensor::from_slice(&w).view([n_out, n_in]).to_device(device)
}

/// Nearest-neighbour upscale of `[C,h,w]` to `[C,size,size]`: the input "blown up without
/// smoothing", for side-by-side comparisons. Output pixel `i` copies input pixel `i*h/size`.
pub fn upscale_nearest(t: &Tensor, size: i64) -> Tensor {
    let s = t.size();
    assert!(s.len() == 3 && size > 0, "upscale_nearest wants [C,h,w], got {s:?}");
    let index = |n: i64| {
        let idx: Vec<i64> = (0..size).map(|i| i * n / size).collect();
        Tensor::from_slice(&idx).to_kind(Kind::Int64).to_device(t.device())
    };
    t.index_select(1, &index(s[1])).index_select(2, &index(s[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upscale_nearest_repeats_pixels() {
        let t = Tensor::from_slice(&[1f32, 2., 3., 4.]).view([1, 2, 2]);
        let up = upscale_nearest(&t, 4);
        let v = Vec::<f32>::try_from(up.view([-1])).unwrap();
        assert_eq!(v, [1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.]);
    }

    /// The deterministic forms give libtorch's `adaptive_avg_pool2d` and `upsample_bilinear2d`
    /// values (to float rounding) and their gradients.
    #[test]
    fn resize_square_matches_libtorchs_resamplers() {
        let _seed = crate::rng::seed(2);
        for (from, to) in [(64, 16), (16, 64), (8, 20), (12, 8), (32, 32)] {
            let x = Tensor::rand([2, 3, from, from], tch::kind::FLOAT_CPU).set_requires_grad(true);
            let want = match from {
                f if f > to => x.adaptive_avg_pool2d([to, to]),
                f if f < to => x.upsample_bilinear2d([to, to], false, None, None),
                _ => x.shallow_clone(),
            };
            let got = resize_square(&x, to);
            assert_eq!(got.size(), [2, 3, to, to]);
            let d = (&got - &want).abs().max().double_value(&[]);
            assert!(d < 1e-6, "{from} -> {to}: values differ by {d}");
            let probe = Tensor::rand([2, 3, to, to], tch::kind::FLOAT_CPU);
            let grad = |y: &Tensor| {
                Tensor::run_backward(&[(y * &probe).sum(Kind::Float)], &[&x], false, false)
                    .remove(0)
            };
            let d = (grad(&got) - grad(&want)).abs().max().double_value(&[]);
            assert!(d < 1e-5, "{from} -> {to}: gradients differ by {d}");
        }
    }

    #[test]
    fn unsupported_size_message_lists_sides() {
        let e = ImageError::new(
            std::path::Path::new("face.png"),
            ImageErrorKind::UnsupportedSize {
                width: 32,
                height: 40,
                accepted: crate::pulse::downscale::accepted_sides(1024),
            },
        );
        assert_eq!(
            e.to_string(),
            "face.png: 32x40 is not accepted: the input must be square with side 1024/2^k \
             (1024, 512, 256, 128, 64, 32, 16, 8, 4, 2)"
        );
    }
}
