//! Criterion benchmarks of `pulse restore`'s work besides the search, on a 1024x1024 photo (the
//! astronaut fixture enlarged) on the CPU: MTCNN detection and FFHQ alignment of its face, and
//! the paste-back into the photo enlarged 4x (shrink, warp, mask, the enlargement `E` and the
//! consistency projection). The target is well under a second for all of it (figures in
//! docs/performance.md).
use criterion::{criterion_group, Criterion};
use pulse::align::{downscale, ffhq, find_faces, DetectConfig, Mtcnn};
use pulse::pipelines::restore::{enlarge::Enlargement, paste_faces, paste_into_owned};
use std::path::Path;
use std::time::Duration;
use tch::Device;

fn photo_1024() -> tch::Tensor {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let photo = pulse::imageio::read_rgb(&root.join("tests/fixtures/align/astronaut.jpg"))
        .expect("fixture photo");
    photo
        .unsqueeze(0)
        .upsample_bicubic2d([1024, 1024], false, None, None)
        .squeeze_dim(0)
        .clamp(0.0, 1.0)
}

fn restore(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mtcnn = Mtcnn::load(&root.join("models/mtcnn"), Device::Cpu).expect("vendored weights");
    let photo = photo_1024();
    let config = DetectConfig::default();
    let faces = find_faces(&mtcnn, &photo, &config);
    assert!(!faces.is_empty(), "the enlarged astronaut has a face");
    let landmarks = faces[0].landmarks;
    // The aligned face stands in for PULSE's result: pasting costs the same.
    let restored = ffhq::align(&photo, &landmarks).unwrap();

    let mut g = c.benchmark_group("restore");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    g.bench_function("enlarge_1024_x4", |b| {
        b.iter(|| Enlargement::new(&photo, 4).unwrap().plain())
    });
    g.bench_function("paste_1024_x4", |b| {
        b.iter(|| paste_faces(&photo, 4, &[(landmarks, restored.shallow_clone())]).unwrap())
    });
    // The largest output (8192x8192): enlargement, paste-back into it and the 8-bit rows a PNG
    // is written from, as restore does it (peak memory: README, *Restoring photos*).
    g.bench_function("enlarge_paste_1024_x8_rows", |b| {
        b.iter(|| {
            let e = Enlargement::new(&photo, 8).unwrap();
            let rows = paste_into_owned(e, &[(landmarks, restored.shallow_clone())]).unwrap();
            let mut buf = vec![0u8; 3 * rows.width()];
            (0..rows.height()).for_each(|y| rows.rgb8(y, &mut buf));
            buf[0]
        })
    });
    g.bench_function("photo_1024_x4_without_search", |b| {
        b.iter(|| {
            let faces = find_faces(&mtcnn, &photo, &config);
            let aligned = ffhq::align(&photo, &faces[0].landmarks).unwrap();
            let _target = downscale(&aligned, 128).unwrap();
            paste_faces(&photo, 4, &[(faces[0].landmarks, aligned)]).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, restore);

fn main() {
    pulse::system::tune_allocator();
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
}
