// Small libtorch entry points that tch 0.24 does not expose, compiled by build.rs and linked
// statically into the crate. Each returns 0 on success and writes an owned error message (free
// it with pulse_free_error) on failure, like tch's own C wrappers. The CUDA graph entry points
// are in pulse_graph.cpp (they need the CUDA headers, which a build may not have).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include "pulse_common.h"

extern "C" {

void pulse_free_error(char* err) { std::free(err); }

// at::leaky_relu with any slope (tch only has the default 0.01); autograd-aware.
int pulse_leaky_relu(at::Tensor* x, double slope, at::Tensor** out, char** err) {
  PULSE_PROTECT(*out = new at::Tensor(at::leaky_relu(*x, slope)))
}

// TF32 for cuDNN convolutions and cuBLAS matmuls (PyTorch's
// torch.backends.cudnn.allow_tf32 / torch.backends.cuda.matmul.allow_tf32).
int pulse_set_allow_tf32(int allow, char** err) {
  PULSE_PROTECT({
    at::globalContext().setAllowTF32CuDNN(allow != 0);
    at::globalContext().setAllowTF32CuBLAS(allow != 0);
  })
}

int pulse_allow_tf32(int* cudnn, int* cublas, char** err) {
  PULSE_PROTECT({
    *cudnn = at::globalContext().allowTF32CuDNN() ? 1 : 0;
    *cublas = at::globalContext().allowTF32CuBLAS() ? 1 : 0;
  })
}

// Deterministic algorithms (PyTorch's torch.use_deterministic_algorithms, an error for an op
// without a deterministic implementation), cuDNN's deterministic flag and its autotuning
// ("benchmark") switch. Process-wide.
int pulse_set_deterministic(int algorithms, int cudnn_deterministic, int cudnn_benchmark,
                            char** err) {
  PULSE_PROTECT({
    at::globalContext().setDeterministicAlgorithms(algorithms != 0, false);
    at::globalContext().setDeterministicCuDNN(cudnn_deterministic != 0);
    at::globalContext().setBenchmarkCuDNN(cudnn_benchmark != 0);
  })
}

int pulse_deterministic(int* algorithms, int* cudnn_deterministic, int* cudnn_benchmark,
                        char** err) {
  PULSE_PROTECT({
    *algorithms = at::globalContext().deterministicAlgorithms() ? 1 : 0;
    *cudnn_deterministic = at::globalContext().deterministicCuDNN() ? 1 : 0;
    *cudnn_benchmark = at::globalContext().benchmarkCuDNN() ? 1 : 0;
  })
}

// Autocast on `device` (0 = CPU, 1 = CUDA) to `dtype` (0 = float16, 1 = bfloat16), or off.
int pulse_set_autocast(int device, int enabled, int dtype, char** err) {
  PULSE_PROTECT({
    auto dev = device == 1 ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_dtype(dev, dtype == 1 ? at::kBFloat16 : at::kHalf);
    at::autocast::set_autocast_enabled(dev, enabled != 0);
    if (!enabled) at::autocast::clear_cache();
  })
}
}
