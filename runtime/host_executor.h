// runtime/host_executor.h — the `cpu` strategy: every op of a prepared Graph
// on the host, through the ahead-of-time Halide kernels of codegen/halide.
//
// At load: weights are repacked for their kernels, conv → Add (residual) pairs
// become one fused pipeline, an average pool feeding a 1x1 conv with fewer
// output channels runs after the conv (on fewer channels), Concat inputs are
// written straight into the concatenated buffer where the slice is
// contiguous, and a liveness-based
// planner gives every activation an offset in one arena. A run is then a list
// of prebuilt steps over that arena. Convolutions pick a kernel by shape:
// Winograd F(4x4, 3x3) (3x3 stride 1, maps >= 24x24, >= 48 input channels),
// conv_channel_vector (narrow maps such as 7x7 and 17x17), depthwise, or
// conv_tiled; pointwise ones run over their flattened plane. Ops without a
// Halide kernel (Transpose, Gather, batched MatMul, non-2-D Conv and pooling,
// ...) run their reference kernel (graph/ops.h) and are listed in
// description().
//
// run() is not reentrant (one arena per executor). Halide's thread pool is
// process-wide: each run() sets it to this executor's thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "codegen/halide/host_kernels.h"
#include "graph/ir.h"
#include "runtime/executor.h"

namespace vkfuse::runtime {

class HostExecutor final : public Executor {
 public:
  // `segment_of`, when given, has one entry per node: the host segments of a
  // plan, numbered 0.. in execution order, each segment's nodes contiguous
  // in the graph (extract_subgraph keeps the plan's order). All segments
  // share one arena (liveness across them); ops fuse only within a segment.
  // Empty: one segment.
  HostExecutor(const graph::Graph& graph, const ExecutorOptions& options, std::span<const int> segment_of = {});
  ~HostExecutor() override;

  // Every segment, in order.
  void run(std::span<const float* const> inputs, std::span<float* const> outputs) override;
  // One segment: spans are indexed like graph.inputs / graph.outputs; it
  // copies in the inputs it reads first and copies out the outputs it
  // produces, and touches no other entry.
  int segment_count() const { return static_cast<int>(segment_steps_.size()) - 1; }
  void run_segment(int segment, std::span<const float* const> inputs, std::span<float* const> outputs);
  std::string description() const override;
  MemoryUse memory() const override {
    MemoryUse m;
    m.host_weight_bytes = weight_bytes_;
    m.host_activation_bytes = arena_bytes_;
    return m;
  }

  // Activation memory: the arena's size, and what one buffer per tensor would take.
  std::int64_t arena_bytes() const { return arena_bytes_; }
  std::int64_t unplanned_bytes() const { return unplanned_bytes_; }
  // The same two figures for `graph` (prepared) without building the steps:
  // the liveness plan only, no weights repacked, no arena allocated.
  static std::pair<std::int64_t, std::int64_t> activation_memory(const graph::Graph& graph);
  // The instruction set of the host kernels in this process (see
  // codegen/halide/host_kernels.h), e.g. "x86-64-avx512 (multi-target: ...)".
  static std::string kernel_target();
  // Op types that run on the reference fallback in this graph (sorted, unique).
  const std::vector<std::string>& fallback_ops() const { return fallback_ops_; }
  // Nodes folded into their producer's kernel (residual Adds).
  int fused_nodes() const { return fused_nodes_; }

  // Runs once step by step, timing each: (step name, milliseconds).
  std::vector<std::pair<std::string, double>> profile(std::span<const float* const> inputs,
                                                      std::span<float* const> outputs);

  struct Step {
    std::string name;  // node name, for traces
    std::function<void()> run;
  };

 private:
  struct Plan;
  struct PlanOnly {};
  HostExecutor(PlanOnly, const graph::Graph& graph);
  void build(const graph::Graph& graph, std::span<const int> segment_of, bool plan_only = false);

  const graph::Graph& graph_;
  int threads_;
  std::vector<Step> steps_;
  std::vector<std::string> fallback_ops_;
  int fused_nodes_ = 0;
  std::int64_t arena_bytes_ = 0;
  std::int64_t unplanned_bytes_ = 0;
  // Per segment: its first step (one more entry: the end), the graph inputs
  // it copies in and the graph outputs it copies out (indices).
  std::vector<std::size_t> segment_steps_;
  std::vector<std::vector<std::size_t>> segment_inputs_, segment_outputs_;
  codegen::halide::LargeFloats arena_storage_;  // 64-byte aligned, huge pages when large
  float* arena_ = nullptr;
  std::vector<float*> value_ptr_;                     // per value: its f32 storage, or nullptr
  std::vector<std::optional<graph::Tensor>> side_;    // per value: non-f32 runtime values
  std::vector<std::shared_ptr<void>> keep_;           // packed weights the steps point into
  std::int64_t weight_bytes_ = 0;                      // their size
  template <class T>
  void keep(std::shared_ptr<T> packed);
};

}  // namespace vkfuse::runtime
