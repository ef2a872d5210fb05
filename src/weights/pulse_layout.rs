//! What PULSE's StyleGAN (v1) layout needs beyond a converted file's tensors, shared by the
//! converters of NVIDIA's and lernapparat's files.
use tch::Tensor;

/// PULSE's `BlurLayer` buffers, `[[1,2,1],[2,4,2],[1,2,1]] / 16` under every upsampling conv
/// (they are constants in TF): PULSE loads its synthesis strictly, so its files have them.
pub(crate) fn blur_kernels(synthesis: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    let kernel =
        Tensor::from_slice(&[1f32, 2., 1., 2., 4., 2., 1., 2., 1.]).reshape([1, 1, 3, 3]) / 16.0;
    let mut out = Vec::new();
    for (key, _) in synthesis {
        if let Some(block) = key.strip_suffix(".conv0_up.weight") {
            let name = format!("{block}.conv0_up.intermediate.kernel");
            if !synthesis.iter().any(|(k, _)| *k == name) {
                out.push((name, kernel.copy()));
            }
        }
    }
    out
}
