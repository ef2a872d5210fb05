//! Fuzzes the weight-file readers (format detection, restricted unpickler with its torch and
//! dnnlib allow-lists, legacy and zip `.pt` containers, safetensors, and the `pulse import`
//! formats: NVIDIA's TensorFlow pickle, lernapparat's and PULSE's files) on arbitrary bytes: they
//! must return an error, never panic, hang or allocate beyond the input's size. Run with
//! scripts/fuzz.sh (seeded with tests/fixtures/*.pt, *.pkl and *.safetensors).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pulse::weights::fuzz_load_bytes(data);
});
