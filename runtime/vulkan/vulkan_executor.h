// runtime/vulkan/vulkan_executor.h — the `gpu` strategy: a whole prepared
// Graph on one Vulkan device.
//
// Load: lower the graph to fused kernels (codegen/spirv), compile each
// distinct shader once, plan the activation arena (liveness-based offsets;
// concat inputs and reshapes alias into it), upload the packed weights once,
// record each dispatch unit's command buffers once — its input copies
// (staging → arena) on the transfer queue, its dispatches with barriers on
// the compute queue, its output copies on the transfer queue, chained by
// semaphores; with mapped I/O only the dispatches — and run them once to
// warm up (lavapipe compiles at first dispatch).
// Run: copy inputs into staging (or the mapped arena), submit, wait on the
// unit's fence, copy outputs out.
//
// Environment: VKFUSE_VALIDATION=1 (Khronos validation layer, errors
// counted; =sync adds synchronization validation), VKFUSE_DEVICE_LIMITS
// (a discrete GPU's limits on any device: runtime/vulkan/context.h),
// VKFUSE_CACHE_DIR (SPIR-V and pipeline caches), and for
// experiments VKFUSE_TEXEL_LOADS=0 (storage-buffer loads only),
// VKFUSE_CONV_BLOCK=8x4 (register block), VKFUSE_CONV_KSPLIT=N (lanes per
// output tile) and VKFUSE_CONV_FILL=N (invocations a layer should fill; a
// GPU's convolutions split their input channels until they do),
// VKFUSE_WORKGROUP=N (workgroup size), VKFUSE_SPIRV_OPT=1 (run
// spirv-opt's performance passes), VKFUSE_DUMP_SHADERS=DIR (write each
// generated GLSL source).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "graph/ir.h"
#include "runtime/executor.h"

namespace vkfuse::runtime::vulkan {

struct KernelInfo {
  std::string variant;  // e.g. "conv3x3_s1_ob8_px4_Relu"
  std::string nodes;    // graph node(s) it runs
  std::int64_t flops = 0;
  double ms = 0;        // from profile(), else 0
};

struct LoadInfo {
  double lower_ms = 0, compile_ms = 0, pipelines_ms = 0, upload_ms = 0, warmup_ms = 0;
  std::int64_t shaders = 0;          // distinct shaders (pipelines)
  std::int64_t subgroup_folds = 0;   // kernels whose rows fold with subgroup arithmetic
  std::string tuned_kernels;         // the kernel shape calibration tuned, where applied ("": the defaults)
  // Each distinct shader's kernel variant and the time its pipeline took to
  // create (where drivers like NVIDIA's compile), slowest first.
  std::vector<std::pair<std::string, double>> pipeline_ms;
  std::int64_t arena_bytes = 0;      // activation arena
  // Each kernel operand bound as a window of the arena holding it (an arena
  // larger than one storage buffer can address, maxStorageBufferRange, or
  // VKFUSE_DEVICE_LIMITS' arena_windows=1); else every operand the whole arena.
  bool arena_windows = false;
  std::int64_t weight_bytes = 0;     // packed weights on the device
  std::int64_t staging_bytes = 0;    // host-visible staging buffers for inputs and outputs
  std::int64_t fused_adds = 0;       // Adds run as a Conv's or a Resize's epilogue
  std::int64_t aliased_concat_inputs = 0;
  std::int64_t barriers = 0;  // between dispatches: only where one reads or overwrites what an earlier one wrote
  bool mapped_inputs = false;   // inputs copied straight into mapped device memory (else staged)
  bool mapped_outputs = false;  // outputs read straight from it: only where the host reads it cached
  // Kernels read activations / weights through texel views (else
  // storage-buffer loads): DeviceCaps::texel_arena, texel_weights.
  bool texel_arena = false;
  bool texel_weights = false;
  // The kernel regime: a GPU's kernel shapes (on a GPU, or where
  // VKFUSE_DEVICE_LIMITS imposes them), else a CPU device's (lavapipe).
  bool gpu_kernels = false;
};

// The loaded part of a graph on the device (kernels, memory plan, weights on
// the device, pipelines): what the executors of a model's pipeline slots
// share. Defined in vulkan_executor.cpp.
struct DeviceProgram;

class VulkanExecutor : public Executor {
 public:
  // Lowers `graph`, plans its memory, uploads its weights and creates its
  // pipelines (see the constructor below for unit_of).
  static std::shared_ptr<const DeviceProgram> load(const graph::Graph& graph, const ExecutorOptions& options,
                                                   std::span<const int> unit_of = {});
  // Runs `program` (which it keeps alive) with an arena, staging buffers and
  // command buffers of its own; warms up the kernels. `options.device` is
  // the program's.
  VulkanExecutor(std::shared_ptr<const DeviceProgram> program, const ExecutorOptions& options);
  // `unit_of`, when given, has one entry per node: the dispatch units of a
  // plan, numbered 0.. in execution order, each unit's nodes contiguous in
  // the graph (extract_subgraph keeps the plan's order). Each unit is one
  // command buffer, recorded once; all share one arena, weights and
  // pipelines, so a value passed between units stays in device memory.
  // Each graph input is uploaded by the first unit that reads it, each graph
  // output downloaded by the unit that produces it. Empty: one unit.
  // Loads a program of its own.
  VulkanExecutor(const graph::Graph& graph, const ExecutorOptions& options, std::span<const int> unit_of = {});
  ~VulkanExecutor() override;

  // All units, in order.
  void run(std::span<const float* const> inputs, std::span<float* const> outputs) override;
  // Copies the inputs in and submits every unit; finish() waits and copies out.
  void start(std::span<const float* const> inputs, std::span<float* const> outputs) override;
  void finish() override;

  // One unit at a time, for a plan that runs host work between them. Spans
  // are indexed like graph.inputs / graph.outputs; only the unit's own
  // entries are read (upload_unit copies them before it returns) or written
  // (finish_unit: after waiting for the unit). Units are submitted in order;
  // a unit reading another's output needs no wait between them. Uploads of
  // one unit may go on while an earlier one runs; each copy is reported to
  // ExecutorOptions::on_transfer on its own. upload/submit/finish of one
  // unit may come from different threads, one call at a time per unit.
  int unit_count() const;
  void upload_unit(int unit, std::span<const float* const> inputs);
  void submit_unit(int unit);
  void finish_unit(int unit, std::span<float* const> outputs);

  ExecutorStats stats() const override { return stats_; }
  MemoryUse memory() const override {
    MemoryUse m;
    m.device_weight_bytes = load_.weight_bytes;
    m.device_activation_bytes = load_.arena_bytes;
    m.device_staging_bytes = load_.staging_bytes;
    return m;
  }
  std::string description() const override;

  const LoadInfo& load_info() const { return load_; }
  const DeviceProgram& program() const;
  // Whether the program's device context is still the one for its device
  // (not retired after a fault): only then may another executor share it.
  static bool usable(const DeviceProgram& program);
  // Per-kernel GPU times (timestamp queries), median of `iterations` runs on
  // the current contents of the inputs. Empty if the device has no timestamps.
  // repeats > 1: each kernel runs that many times in a row (a barrier
  // between), timed together and divided: a kernel of microseconds measured
  // with its launch amortized and the device busy, as in a network.
  std::vector<KernelInfo> profile(int iterations, int repeats = 1);
  std::vector<KernelInfo> kernels() const;

 private:
  void check_unit(int unit) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ExecutorStats stats_;
  LoadInfo load_;
};

}  // namespace vkfuse::runtime::vulkan
