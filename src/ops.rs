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
        // SAFETY: on failure pulse_ops.cpp sets `err` to a NUL-terminated string it malloc'ed;
        // it is read once here and not used after being freed.
        let s = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
        // SAFETY: `err` came from pulse_ops.cpp's malloc and is freed exactly once.
        unsafe { pulse_free_error(err) };
        s
    };
    anyhow::bail!("libtorch: {msg}")
}

/// `leaky_relu(x, slope)` with its own (cheap) backward; tch only offers slope 0.01. A libtorch
/// error (an unsupported dtype, say) is returned, not raised as a panic.
pub fn leaky_relu(x: &Tensor, slope: f64) -> anyhow::Result<Tensor> {
    let mut out: *mut c_void = std::ptr::null_mut();
    let mut err: *mut c_char = std::ptr::null_mut();
    // SAFETY: `x` is a live tensor for the whole call; the shim writes `out` or `err`, nothing
    // else, and catches every C++ exception.
    let rc = unsafe { pulse_leaky_relu(x.as_ptr() as *const c_void, slope, &mut out, &mut err) };
    check(rc, err)?;
    // SAFETY: on success `out` is a new heap-allocated at::Tensor that nothing else owns; the
    // returned Tensor takes ownership and frees it on drop.
    Ok(unsafe { Tensor::from_ptr(out as *mut _) })
}

/// Allows (or forbids) TF32 in cuDNN convolutions and cuBLAS matmuls, process-wide.
pub fn set_allow_tf32(allow: bool) -> anyhow::Result<()> {
    let mut err = std::ptr::null_mut();
    // SAFETY: the shim only writes `err` (on failure) and catches every C++ exception.
    check(unsafe { pulse_set_allow_tf32(c_int::from(allow), &mut err) }, err)
}

/// Whether TF32 is allowed in (cuDNN convolutions, cuBLAS matmuls).
pub fn allow_tf32() -> anyhow::Result<(bool, bool)> {
    let (mut a, mut b, mut err) = (0, 0, std::ptr::null_mut());
    // SAFETY: the three pointers are to live locals; the shim writes through them only.
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
    // SAFETY: the shim only writes `err` (on failure) and catches every C++ exception.
    check(unsafe { pulse_set_autocast(dev, enabled, code, &mut err) }, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaky_relu_has_the_slope_and_its_gradient() {
        let x = Tensor::from_slice(&[-2.0f32, -0.5, 0.0, 1.5]).set_requires_grad(true);
        let y = leaky_relu(&x, 0.2).unwrap();
        assert_eq!(Vec::<f32>::try_from(&y.detach()).unwrap(), vec![-0.4, -0.1, 0.0, 1.5]);
        y.sum(Kind::Float).backward();
        assert_eq!(Vec::<f32>::try_from(&x.grad()).unwrap(), vec![0.2, 0.2, 0.2, 1.0]);
    }

    #[test]
    fn leaky_relu_reports_libtorch_errors() {
        let x = Tensor::from_slice(&[1i64, -2]);
        let e = leaky_relu(&x, 0.2).unwrap_err();
        assert!(e.to_string().starts_with("libtorch: "), "{e}");
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
