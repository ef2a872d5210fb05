//! libtorch entry points that tch 0.24 does not expose, from `csrc/` (compiled and linked
//! statically by build.rs): leaky ReLU at any slope, the TF32 and determinism switches, autocast
//! with a chosen dtype on the CPU or CUDA, and CUDA graphs (`csrc/pulse_graph.cpp`; a stub that
//! reports them unavailable when the build had no CUDA headers).
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
    fn pulse_set_deterministic(
        algorithms: c_int,
        cudnn_deterministic: c_int,
        cudnn_benchmark: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn pulse_deterministic(
        algorithms: *mut c_int,
        cudnn_deterministic: *mut c_int,
        cudnn_benchmark: *mut c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn pulse_cuda_graphs_built() -> c_int;
    fn pulse_stream_enter(device: c_int, scope: *mut *mut c_void, err: *mut *mut c_char) -> c_int;
    fn pulse_stream_exit(scope: *mut c_void, err: *mut *mut c_char) -> c_int;
    fn pulse_graph_new(graph: *mut *mut c_void, err: *mut *mut c_char) -> c_int;
    fn pulse_graph_free(graph: *mut c_void);
    fn pulse_graph_capture_begin(graph: *mut c_void, mode: c_int, err: *mut *mut c_char) -> c_int;
    fn pulse_graph_capture_end(graph: *mut c_void, err: *mut *mut c_char) -> c_int;
    fn pulse_graph_replay(graph: *mut c_void, err: *mut *mut c_char) -> c_int;
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

/// libtorch's determinism switches, process-wide (see [`crate::device::configure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeterminismFlags {
    /// `at::Context::setDeterministicAlgorithms`: deterministic kernels where libtorch has two,
    /// an error for an op that has only a nondeterministic one.
    pub algorithms: bool,
    /// cuDNN's deterministic flag.
    pub cudnn_deterministic: bool,
    /// cuDNN autotuning (`torch.backends.cudnn.benchmark`): times algorithms per shape and may
    /// pick differently from run to run.
    pub cudnn_benchmark: bool,
}

/// Sets libtorch's determinism switches.
pub fn set_determinism(flags: DeterminismFlags) -> anyhow::Result<()> {
    let mut err = std::ptr::null_mut();
    let (a, d, b) = (flags.algorithms, flags.cudnn_deterministic, flags.cudnn_benchmark);
    // SAFETY: the shim only writes `err` (on failure) and catches every C++ exception.
    let rc = unsafe {
        pulse_set_deterministic(c_int::from(a), c_int::from(d), c_int::from(b), &mut err)
    };
    check(rc, err)
}

/// libtorch's determinism switches as they are now.
pub fn determinism() -> anyhow::Result<DeterminismFlags> {
    let (mut a, mut d, mut b, mut err) = (0, 0, 0, std::ptr::null_mut());
    // SAFETY: the four pointers are to live locals; the shim writes through them only.
    check(unsafe { pulse_deterministic(&mut a, &mut d, &mut b, &mut err) }, err)?;
    Ok(DeterminismFlags {
        algorithms: a != 0,
        cudnn_deterministic: d != 0,
        cudnn_benchmark: b != 0,
    })
}

/// Whether this build can capture CUDA graphs (build.rs found libtorch_cuda and the CUDA
/// runtime headers); says nothing about whether this machine has a GPU.
pub fn cuda_graphs_built() -> bool {
    // SAFETY: takes nothing, returns a constant.
    unsafe { pulse_cuda_graphs_built() != 0 }
}

/// While alive, a side stream of one GPU is the current stream (CUDA graphs cannot be captured
/// on the default stream). Entering and leaving wait for the GPU, once each.
#[derive(Debug)]
pub struct SideStream {
    scope: *mut c_void,
}

impl SideStream {
    pub fn enter(device: Device) -> anyhow::Result<Self> {
        let Device::Cuda(index) = device else {
            anyhow::bail!("a CUDA stream needs a CUDA device, not {device:?}");
        };
        let (mut scope, mut err) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: the shim writes `scope` (on success) or `err`, and catches every C++ exception.
        check(unsafe { pulse_stream_enter(index as c_int, &mut scope, &mut err) }, err)?;
        Ok(Self { scope })
    }

    /// Waits for the side stream's work and makes the earlier stream current again.
    pub fn exit(mut self) -> anyhow::Result<()> {
        let scope = std::mem::replace(&mut self.scope, std::ptr::null_mut());
        let mut err = std::ptr::null_mut();
        // SAFETY: `scope` came from pulse_stream_enter and is released exactly once (the shim
        // frees it whatever happens); Drop sees null afterwards.
        check(unsafe { pulse_stream_exit(scope, &mut err) }, err)
    }
}

impl Drop for SideStream {
    fn drop(&mut self) {
        if !self.scope.is_null() {
            let mut err = std::ptr::null_mut();
            // SAFETY: as in `exit`; an error here (a failed GPU) is only logged by dropping it.
            let rc = unsafe { pulse_stream_exit(self.scope, &mut err) };
            let _ = check(rc, err);
        }
    }
}

/// How strictly CUDA guards against unsafe API calls while a graph is captured
/// (`cudaStreamCaptureMode`); PyTorch's default is `Global`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureMode {
    Global = 0,
    ThreadLocal = 1,
    Relaxed = 2,
}

/// A CUDA graph (libtorch's `at::cuda::CUDAGraph`): the GPU work issued between
/// [`CudaGraph::capture_begin`] and [`CudaGraph::capture_end`] on the current (side) stream is
/// recorded, not run, and [`CudaGraph::replay`] launches all of it at once, on the same memory.
#[derive(Debug)]
pub struct CudaGraph {
    graph: *mut c_void,
}

impl CudaGraph {
    pub fn new() -> anyhow::Result<Self> {
        let (mut graph, mut err) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: the shim writes `graph` (on success) or `err`, and catches every C++ exception.
        check(unsafe { pulse_graph_new(&mut graph, &mut err) }, err)?;
        Ok(Self { graph })
    }

    pub fn capture_begin(&mut self, mode: CaptureMode) -> anyhow::Result<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: `graph` is live (owned by self); the shim catches every C++ exception.
        check(unsafe { pulse_graph_capture_begin(self.graph, mode as c_int, &mut err) }, err)
    }

    pub fn capture_end(&mut self) -> anyhow::Result<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: as above.
        check(unsafe { pulse_graph_capture_end(self.graph, &mut err) }, err)
    }

    /// Launches the captured work on the current stream; does not wait for it.
    pub fn replay(&mut self) -> anyhow::Result<()> {
        let mut err = std::ptr::null_mut();
        // SAFETY: as above.
        check(unsafe { pulse_graph_replay(self.graph, &mut err) }, err)
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: `graph` came from pulse_graph_new and is freed exactly once.
        unsafe { pulse_graph_free(self.graph) }
    }
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

    #[test]
    fn determinism_switches_round_trip() {
        let before = determinism().unwrap();
        let on = DeterminismFlags {
            algorithms: true,
            cudnn_deterministic: true,
            cudnn_benchmark: false,
        };
        set_determinism(on).unwrap();
        assert_eq!(determinism().unwrap(), on);
        set_determinism(before).unwrap();
        assert_eq!(determinism().unwrap(), before);
    }

    /// Without a GPU (or without CUDA graphs in the build) the graph and stream calls are
    /// errors that say why, never crashes.
    #[test]
    fn graphs_and_streams_fail_cleanly_without_a_gpu() {
        if tch::Cuda::is_available() {
            return;
        }
        assert!(SideStream::enter(Device::Cpu).is_err());
        let e = CudaGraph::new().unwrap_err().to_string();
        eprintln!("CUDA graphs built: {}; without a GPU: {e}", cuda_graphs_built());
        if !cuda_graphs_built() {
            assert!(e.contains("CUDA graphs unavailable in this build"), "{e}");
        }
    }
}
