//! Fuzzes the weight-file readers (format detection, restricted unpickler with its torch and
//! dnnlib and stylegan2-ada-pytorch allow-lists, legacy and zip `.pt` containers, safetensors,
//! and the `pulse import` formats: NVIDIA's TensorFlow StyleGAN and StyleGAN2 pickles,
//! stylegan2-ada-pytorch's pickles with their nested `torch.save` storages, lernapparat's,
//! rosinality's and PULSE's files) on arbitrary bytes: they
//! must return an error, never panic, hang or allocate beyond the input's size. Run with
//! scripts/fuzz.sh (seeded with tests/fixtures/*.pt, *.pkl and *.safetensors).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pulse::weights::fuzz_load_bytes(data);
});
