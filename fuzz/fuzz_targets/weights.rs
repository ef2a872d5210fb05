//! Fuzzes the weight-file readers (format detection, restricted unpickler, legacy and zip `.pt`
//! containers, safetensors) on arbitrary bytes: they must return an error, never panic, hang or
//! allocate beyond the input's size. Run with scripts/fuzz.sh.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pulse::weights::fuzz_load_bytes(data);
});
