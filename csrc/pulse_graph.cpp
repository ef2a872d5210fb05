// CUDA graphs of a PULSE step (docs/design.md, "CUDA graphs"): a side stream to capture on, and
// libtorch's at::cuda::CUDAGraph to capture, instantiate and replay. The step itself is issued
// by the Rust code between capture_begin and capture_end, like any other libtorch calls.
//
// Built with PULSE_CUDA_GRAPHS defined when build.rs finds libtorch_cuda and the CUDA runtime
// headers; otherwise every entry point reports that this build has no CUDA graphs. Only
// functions exported by libtorch_cuda and libc10_cuda are called (none of the CUDA runtime's
// own), so the binary needs no libcudart of its own and still starts on a machine without a GPU.
#include "pulse_common.h"

#ifdef PULSE_CUDA_GRAPHS
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <memory>

namespace {
// The stream a search ran on before, and the side stream it runs on now.
struct StreamScope {
  c10::DeviceIndex previous_device;
  c10::cuda::CUDAStream previous;
  c10::cuda::CUDAStream side;
};

struct Graph {
  at::cuda::CUDAGraph graph;
  bool autocast_cache = true;
};
}  // namespace
#else
namespace {
int unavailable(char** err) {
  *err = pulse_shim::copy_message(
      "CUDA graphs unavailable in this build (pulse was compiled without libtorch_cuda or the "
      "CUDA runtime headers)");
  return 1;
}
}  // namespace
#endif

extern "C" {

int pulse_cuda_graphs_built() {
#ifdef PULSE_CUDA_GRAPHS
  return 1;
#else
  return 0;
#endif
}

#ifdef PULSE_CUDA_GRAPHS

// Makes a side stream of GPU `device` the current one (CUDA graphs cannot be captured on the
// default stream), after waiting for the work already queued (the inputs' copies).
int pulse_stream_enter(int device, void** scope, char** err) {
  PULSE_PROTECT({
    auto dev = static_cast<c10::DeviceIndex>(device);
    auto previous_device = c10::cuda::current_device();
    c10::cuda::set_device(dev);
    c10::cuda::device_synchronize();
    auto previous = c10::cuda::getCurrentCUDAStream(dev);
    auto side = c10::cuda::getStreamFromPool(false, dev);
    c10::cuda::setCurrentCUDAStream(side);
    *scope = new StreamScope{previous_device, previous, side};
  })
}

// Waits for the side stream's work, then makes the earlier stream and device current again.
int pulse_stream_exit(void* scope, char** err) {
  PULSE_PROTECT({
    std::unique_ptr<StreamScope> s(static_cast<StreamScope*>(scope));
    c10::cuda::device_synchronize();
    c10::cuda::setCurrentCUDAStream(s->previous);
    c10::cuda::set_device(s->previous_device);
  })
}

int pulse_graph_new(void** graph, char** err) { PULSE_PROTECT(*graph = new Graph()) }

void pulse_graph_free(void* graph) { delete static_cast<Graph*>(graph); }

// Starts capturing the current stream's work into `graph`. mode: 0 global, 1 thread-local,
// 2 relaxed (cudaStreamCaptureMode). The blocks the warm-up steps left in libtorch's cache are
// returned first: the graph gets a memory pool of its own, and without this the GPU would hold
// a step's activations twice. Autocast's cast cache is off while capturing: a cached cast made
// during capture would live in the graph's pool.
int pulse_graph_capture_begin(void* graph, int mode, char** err) {
  PULSE_PROTECT({
    auto* g = static_cast<Graph*>(graph);
    c10::cuda::CUDACachingAllocator::emptyCache();
    auto m = mode == 2   ? cudaStreamCaptureModeRelaxed
             : mode == 1 ? cudaStreamCaptureModeThreadLocal
                         : cudaStreamCaptureModeGlobal;
    g->autocast_cache = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);
    try {
      g->graph.capture_begin({0, 0}, m);
    } catch (...) {
      at::autocast::set_autocast_cache_enabled(g->autocast_cache);
      throw;
    }
  })
}

// Ends the capture and instantiates the graph (nothing captured has run yet).
int pulse_graph_capture_end(void* graph, char** err) {
  PULSE_PROTECT({
    auto* g = static_cast<Graph*>(graph);
    at::autocast::set_autocast_cache_enabled(g->autocast_cache);
    g->graph.capture_end();
  })
}

// Launches the captured work on the current stream; returns without waiting for it.
int pulse_graph_replay(void* graph, char** err) {
  PULSE_PROTECT(static_cast<Graph*>(graph)->graph.replay())
}

#else

int pulse_stream_enter(int, void**, char** err) { return unavailable(err); }
int pulse_stream_exit(void*, char** err) { return unavailable(err); }
int pulse_graph_new(void**, char** err) { return unavailable(err); }
void pulse_graph_free(void*) {}
int pulse_graph_capture_begin(void*, int, char** err) { return unavailable(err); }
int pulse_graph_capture_end(void*, char** err) { return unavailable(err); }
int pulse_graph_replay(void*, char** err) { return unavailable(err); }

#endif
}
