//! `examples/hair_colour.rs` run end to end on the bundled test model (`models/test-1024`, random
//! weights, 1024x1024) with a few steps: the example's own `run` is compiled into this test, so CI
//! runs exactly what users read, at the size real FFHQ weights have.

#[allow(dead_code)]
#[path = "../../examples/hair_colour.rs"]
mod hair_colour;

use crate::common::*;
use pulse::imageio::Sheet;
use tch::{Device, Kind, Tensor};

#[test]
fn hair_colour_example_writes_targets_latents_direction_and_sheet() {
    let t = TestDir::new();
    let opts = hair_colour::Options {
        model: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/test-1024"),
        device: "cpu".into(),
        steps: 2,
        embed_steps: 2,
        out: t.path("hair"),
        ..hair_colour::Options::default()
    };
    let mut lines = vec![];
    let out = hair_colour::run(&opts, &mut |l| lines.push(l.to_string())).unwrap();

    for target in &out.targets {
        assert_eq!(image_size(target), (32, 32));
        assert!(
            image::open(target).unwrap().color().has_alpha(),
            "{} must be RGBA",
            target.display()
        );
    }
    for hair in hair_colour::HAIR {
        assert_eq!(image_size(&t.path(&format!("hair/results/{hair}.png"))), (1024, 1024));
    }
    // 3 targets + 2 faces + 1 embedded photo, all renderable latents of this model.
    assert_eq!(out.latents.len(), 6);
    for latent in &out.latents {
        pulse::latent::LatentFile::read(latent).unwrap();
    }
    let direction = pulse::editing::Direction::read(&out.direction).unwrap();
    assert_eq!(direction.pairs(), 1);
    assert!(direction.metadata["sources"].contains("black.latent.safetensors"));

    // Targets row, results row, and one row per edited face (blue, astronaut, cameraman, photo).
    assert_eq!((out.tile, out.columns, out.rows), (256, 4, 6));
    assert_eq!(out.sheet.file_name().unwrap(), "hair_colour_sheet.png");
    let mut expected = Sheet::new(out.tile, out.columns);
    for _ in 0..out.rows * out.columns {
        expected.push(&Tensor::zeros([3, 4, 4], (Kind::Float, Device::Cpu)), "x");
    }
    let size = expected.render().size();
    assert_eq!(image_size(&out.sheet), (size[2] as u32, size[1] as u32));
    assert!(lines.iter().any(|l| l.contains("embedded")), "{lines:?}");
}
