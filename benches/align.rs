//! Criterion benchmarks of `pulse align` on a 1024x1024 photo (the astronaut fixture enlarged):
//! MTCNN detection, FFHQ alignment of the face found, and the whole per-photo job (detect,
//! align, downscale to 32x32), on the CPU. The target is under 1 s for the whole job.
use criterion::{criterion_group, Criterion};
use pulse::align::{downscale, ffhq, find_faces, DetectConfig, Mtcnn};
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

fn align(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mtcnn = Mtcnn::load(&root.join("models/mtcnn"), Device::Cpu).expect("vendored weights");
    let photo = photo_1024();
    let config = DetectConfig::default();
    let faces = find_faces(&mtcnn, &photo, &config);
    assert!(!faces.is_empty(), "the enlarged astronaut has a face");
    let landmarks = faces[0].landmarks;

    let mut g = c.benchmark_group("align");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("detect_1024", |b| b.iter(|| find_faces(&mtcnn, &photo, &config)));
    g.bench_function("ffhq_1024", |b| b.iter(|| ffhq::align(&photo, &landmarks).unwrap()));
    g.bench_function("photo_1024_to_32", |b| {
        b.iter(|| {
            let faces = find_faces(&mtcnn, &photo, &config);
            let aligned = ffhq::align(&photo, &faces[0].landmarks).unwrap();
            downscale(&aligned, 32).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, align);

fn main() {
    pulse::system::tune_allocator();
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
}
