#[test]
fn make() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let x = pulse::imageio::read_rgb(&root.join("tests/fixtures/align/astronaut.jpg")).unwrap();
    let crop = x.narrow(1, 20, 192).narrow(2, 128, 192).unsqueeze(0);
    let small = pulse::imageio::resize_square(&crop, 128).squeeze_dim(0);
    pulse::imageio::write_png(&small, &root.join("docs/restore-example-input.png")).unwrap();
}
