//! libtorch entry points that tch 0.24 does not expose, from `csrc/pulse_ops.cpp` (compiled and
//! linked statically by build.rs): leaky ReLU at any slope, the TF32 switches, and autocast with
//! a chosen dtype on the CPU or CUDA.
use std::ffi::{c_char, c_int, c_void, CStr};
use tch::{Device, Kind, Tensor};

extern "C" {
    fn pulse_free_error(err: *mut c_char);
    fn pulse_leaky_relu(
        x: *const c_void,
        slope: f64,
        out: *mut *mut c_void,
        err: *mut *mut c_char,
    ) -> c_int;
    fn pulse_set_allow_tf32(allow: c_int, err: *mut *mut c_char) -> c_int;
    fn pulse_allow_tf32(cudnn: *mut c_int, cublas: *mut c_int, err: *mut *mut c_char) -> c_int;
    fn pulse_set_autocast(
        device: c_int,
        enabled: c_int,
        dtype: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
}

/// Turns a C++ exception message into an error.
fn check(rc: c_int, err: *mut c_char) -> anyhow::Result<()> {
    if rc == 0 {
        return Ok(());
    }
    let msg = if err.is_null() {
        "unknown libtorch error".to_string()
    } else {
        // SAFETY: a NUL-terminated string malloc'ed by pulse_ops.cpp, freed right after.
        let s = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
        unsafe { pulse_free_error(err) };
        s
    };
    anyhow::bail!("libtorch: {msg}")
}

/// `leaky_relu(x, slope)` with its own (cheap) backward; tch only offers slope 0.01.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Tensor {
    let mut out: *mut c_void = std::ptr::null_mut();
    let mut err: *mut c_char = std::ptr::null_mut();
    // SAFETY: `x` is a live tensor; on success `out` is a new at::Tensor* that we own.
    let rc = unsafe { pulse_leaky_relu(x.as_ptr() as *const c_void, slope, &mut out, &mut err) };
    check(rc, err).expect("leaky_relu");
    unsafe { Tensor::from_ptr(out as *mut _) }
}

/// Allows (or forbids) TF32 in cuDNN convolutions and cuBLAS matmuls, process-wide.
pub fn set_allow_tf32(allow: bool) -> anyhow::Result<()> {
    let mut err = std::ptr::null_mut();
    check(unsafe { pulse_set_allow_tf32(c_int::from(allow), &mut err) }, err)
}

/// Whether TF32 is allowed in (cuDNN convolutions, cuBLAS matmuls).
pub fn allow_tf32() -> anyhow::Result<(bool, bool)> {
    let (mut a, mut b, mut err) = (0, 0, std::ptr::null_mut());
    check(unsafe { pulse_allow_tf32(&mut a, &mut b, &mut err) }, err)?;
    Ok((a != 0, b != 0))
}

/// Turns autocast on (to `dtype`, Half or BFloat16) or off for `device`'s type, process-wide.
pub fn set_autocast(device: Device, dtype: Option<Kind>) -> anyhow::Result<()> {
    let dev = if device.is_cuda() { 1 } else { 0 };
    let (enabled, code) = match dtype {
        None => (0, 0),
        Some(Kind::Half) => (1, 0),
        Some(Kind::BFloat16) => (1, 1),
        Some(k) => anyhow::bail!("autocast to {k:?} is not supported (Half or BFloat16)"),
    };
    let mut err = std::ptr::null_mut();
    check(unsafe { pulse_set_autocast(dev, enabled, code, &mut err) }, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaky_relu_has_the_slope_and_its_gradient() {
        let x = Tensor::from_slice(&[-2.0f32, -0.5, 0.0, 1.5]).set_requires_grad(true);
        let y = leaky_relu(&x, 0.2);
        assert_eq!(Vec::<f32>::try_from(&y.detach()).unwrap(), vec![-0.4, -0.1, 0.0, 1.5]);
        y.sum(Kind::Float).backward();
        assert_eq!(Vec::<f32>::try_from(&x.grad()).unwrap(), vec![0.2, 0.2, 0.2, 1.0]);
    }

    #[test]
    fn tf32_switch_round_trips() {
        let before = allow_tf32().unwrap();
        set_allow_tf32(true).unwrap();
        assert_eq!(allow_tf32().unwrap(), (true, true));
        set_allow_tf32(false).unwrap();
        assert_eq!(allow_tf32().unwrap(), (false, false));
        set_allow_tf32(before.0).unwrap();
    }
}
