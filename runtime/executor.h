// runtime/executor.h — what every way of running a prepared Graph offers.
//
// An executor is built once per run slot of a loaded model and then run many
// times on caller-owned buffers; what does not change between runs (weights
// repacked or uploaded, kernels compiled) is in a program the model's
// executors share (runtime/host_program.h, DeviceProgram in
// runtime/vulkan/vulkan_executor.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "planner/profile.h"
#include "vkfuse/vkfuse.h"

namespace vkfuse::runtime {

enum class TransferDirection : std::uint8_t { upload, download };

class Trace;

struct ExecutorOptions {
  int threads = 1;
  std::string device;  // Vulkan device: "" (the best one), an index, or part of its name
  bool fp16 = false;   // 16-bit storage on the device where supported
  // Vulkan kernel parameters tuned by calibration (the accelerator profile's
  // kernel_shape); the defaults leave the device type's own.
  planner::KernelShape kernel_shape;
  // The most a run waits for the device to finish a unit (0: the context's default).
  std::uint64_t device_timeout_ms = 0;
  // Device executors call this after each host↔device copy with its size and
  // measured duration (HeteroExecutor books it on the plan's link there, and
  // calibration measures the link with it). May be empty.
  std::function<void(TransferDirection, std::int64_t bytes, double measured_us)> on_transfer;
  Trace* trace = nullptr;  // where to record events, when tracing
  // Progress lines of long load steps (a slow GPU warm-up); may be empty.
  std::function<void(const std::string&)> progress;
};

// Counters of the last run, for reports and benchmarks.
struct ExecutorStats {
  std::int64_t dispatches = 0;        // GPU dispatches
  std::int64_t host_kernels = 0;      // host ops that ran a kernel of their own (Halide steps or the reference)
  std::int64_t host_copies = 0;       // copies from blocked channels to planar (planner/host_layout.h)
  std::int64_t bytes_uploaded = 0;    // host → device
  std::int64_t bytes_downloaded = 0;  // device → host
};

// Memory an executor holds after loading (the API's MemoryReport, without
// the process-wide peak): weights as its kernels read them (repacked),
// activations (the arena), and staging buffers for transfers.
using MemoryUse = MemoryReport;
inline MemoryUse& operator+=(MemoryUse& a, const MemoryUse& b) {
  a.host_weight_bytes += b.host_weight_bytes;
  a.host_activation_bytes += b.host_activation_bytes;
  a.device_weight_bytes += b.device_weight_bytes;
  a.device_activation_bytes += b.device_activation_bytes;
  a.device_staging_bytes += b.device_staging_bytes;
  return a;
}

class Executor {
 public:
  virtual ~Executor() = default;
  // inputs[i] holds graph.inputs[i] (float32, its inferred shape); outputs[i]
  // receives graph.outputs[i]. Both are caller-owned and sized correctly.
  virtual void run(std::span<const float* const> inputs, std::span<float* const> outputs) = 0;
  // run() in two halves, for executors whose work runs on a device: start()
  // reads the inputs (the caller may reuse them once it returns) and begins
  // the work; finish() waits for it and writes the outputs given to start(),
  // which nobody may read before. One start() at a time, each followed by
  // finish(). The default does all the work in start().
  virtual void start(std::span<const float* const> inputs, std::span<float* const> outputs) { run(inputs, outputs); }
  virtual void finish() {}
  virtual ExecutorStats stats() const { return {}; }
  virtual MemoryUse memory() const { return {}; }
  // One line for reports, e.g. "host: Halide, 2 threads" or the device name.
  virtual std::string description() const = 0;
};

// The units (or segments) of a plan that one executor runs: `group_of` has
// one entry per node of its graph (empty: every node in group 0), numbered
// 0.. in execution order with each group's nodes contiguous. Returns one
// entry per node and sets `count`; throws Error(Internal) naming `who`
// otherwise.
std::vector<int> contiguous_groups(std::span<const int> group_of, std::size_t nodes, const std::string& who,
                                   int& count);

// Whether this build has the host (Halide) and accelerator (Vulkan) backends.
bool host_backend_available();
bool vulkan_backend_available();
// Why no Vulkan device can be used, with what to install ("" when one can):
// the loader (libvulkan.so.1, opened at run time) is missing, or no device.
std::string no_vulkan_device_reason();

std::unique_ptr<Executor> make_reference_executor(const graph::Graph& graph, const ExecutorOptions& options);
std::unique_ptr<Executor> make_host_executor(const graph::Graph& graph, const ExecutorOptions& options);
std::unique_ptr<Executor> make_vulkan_executor(const graph::Graph& graph, const ExecutorOptions& options);

}  // namespace vkfuse::runtime
