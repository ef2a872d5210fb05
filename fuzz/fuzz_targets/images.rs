//! Fuzzes the image readers (content sniffing, header size checks before decoding, the decoders
//! with their limits, EXIF orientation, the JPEG end-marker scan) on arbitrary bytes: every reader
//! must return an error or an image, never panic, hang or allocate beyond its limits. The bytes go
//! through a file because that is what the readers take (they check the file size and read the
//! PNG header before decoding). Run with scripts/fuzz.sh.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("pulse-fuzz-image-{}", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let _ = pulse::imageio::read_target(&path, 1024);
    let _ = pulse::imageio::read_mask(&path, 32);
    let _ = pulse::imageio::read_photo(&path, 64);
});
