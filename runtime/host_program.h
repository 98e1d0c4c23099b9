// runtime/host_program.h — the host backend's loaded part, in the runtime's
// one shape: a prepared Graph (or a plan's host ops) is lowered to kernel
// steps, its memory planned once, its weights packed once; a HostExecutor
// then runs the steps over an arena of its own. The program is immutable
// once built, so all the executors of a model (one per pipeline slot) share
// it: weights are repacked and held once however many runs are in flight.
//
// Lowering, in order:
//   1. fusions: a Conv → residual Add pair becomes one kernel; Concat
//      inputs are written straight into the concatenated buffer where the
//      slice is contiguous;
//   2. layout: the values that pass between mobile layers (pointwise and
//      depthwise convolutions, squeeze-and-excitation gates, the global
//      pool) are held in blocked channels (NCHW16c, hk::Blocked), with a
//      planar copy for any other reader; the rest stay planar (NCHW)
//      (1 and 2 are the planner's rule, planner/host_layout.h, which the
//      cost model prices);
//   3. memory: liveness-based offsets for every activation (and per-step
//      scratch) in one arena;
//   4. kernels: every op gets a step. A dense convolution takes the first
//      kernel of kDenseConvKernels (host_program.cpp) whose rule holds —
//      pointwise_blocked (blocked output), pointwise_tiled, Winograd
//      F(4x4, 3x3), conv_channel_vector, else conv_tiled — the rules
//      measured on this project's machines and written down there; a
//      depthwise one likewise takes the first of kDepthwiseKernels
//      (depthwise_blocked, depthwise_flat for stride 1 "same" on small
//      maps, depthwise_channel_vector on other small maps, else the planar
//      depthwise), other grouped ones the first of kGroupedConvKernels
//      (conv_channel_vector16, conv_channel_vector or conv_tiled over all
//      groups at once, in calls of fewer groups on large inputs). Ops
//      without a Halide kernel (Gather, batched MatMul, non-2-D Conv and
//      pooling, ...) run their reference kernel (graph/ops.h) and are listed
//      in fallback_ops().
// A step reads and writes through a HostFrame (the run's arena and non-float
// values), never through pointers of its own into per-run memory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "graph/ir.h"

namespace vkfuse::runtime {

// One run's storage, as the steps of a HostProgram see it.
struct HostFrame {
  float* arena = nullptr;                                      // HostProgram::arena_floats() floats
  std::vector<std::optional<graph::Tensor>>* side = nullptr;  // per value: non-float runtime values
  int threads = 1;
};

class HostProgram {
 public:
  // `graph` must outlive the program. `segment_of`, when given, has one entry
  // per node: the host segments of a plan, numbered 0.. in execution order,
  // each segment's nodes contiguous in the graph (extract_subgraph keeps the
  // plan's order). All segments share one arena (liveness across them); ops
  // fuse only within a segment. Empty: one segment. Weights are packed on
  // up to `threads` threads (0: one per core).
  explicit HostProgram(const graph::Graph& graph, std::span<const int> segment_of = {}, int threads = 0);
  // Lowering and memory plan only: no weights packed, no steps.
  static HostProgram plan_only(const graph::Graph& graph);
  // Steps point into the program (the reference fallback reads its memory plan): it stays put.
  HostProgram(const HostProgram&) = delete;
  HostProgram& operator=(const HostProgram&) = delete;

  struct Step {
    std::string name;    // what it computes, e.g. "Conv_7 3x3/1 64->64 56x56 [wino_f4x3]"
    std::string kernel;  // the kernel it runs, e.g. "wino_f4x3", "max_pool2d", "reference"
    std::int32_t node;   // the node it computes (the first, when fused)
    std::function<void(const HostFrame&)> run;
  };

  const graph::Graph& graph() const { return *graph_; }
  const std::vector<Step>& steps() const { return steps_; }
  int segment_count() const { return static_cast<int>(segment_steps_.size()) - 1; }
  // Segment k's steps are [first, last).
  std::pair<std::size_t, std::size_t> segment_steps(int k) const {
    return {segment_steps_[static_cast<std::size_t>(k)], segment_steps_[static_cast<std::size_t>(k) + 1]};
  }
  // The graph inputs segment k copies in (it reads them first) and the graph
  // outputs it copies out (it produces them): indices into graph().inputs/outputs.
  const std::vector<std::size_t>& segment_inputs(int k) const { return segment_inputs_[static_cast<std::size_t>(k)]; }
  const std::vector<std::size_t>& segment_outputs(int k) const { return segment_outputs_[static_cast<std::size_t>(k)]; }
  // Where value v's floats are in a run: in `arena`, or a constant; null for
  // values kept elsewhere (non-float, or folded into a fused kernel).
  float* value_data(graph::ValueId v, float* arena) const;

  std::int64_t arena_floats() const { return arena_floats_; }
  std::int64_t arena_bytes() const { return arena_floats_ * 4; }
  // What one buffer per activation would take.
  std::int64_t unplanned_bytes() const { return unplanned_bytes_; }
  // Packed weights held by the steps.
  std::int64_t weight_bytes() const { return weight_bytes_; }
  // Op types that run on the reference fallback (sorted, unique).
  const std::vector<std::string>& fallback_ops() const { return fallback_ops_; }
  // Nodes folded into their producer's kernel (residual Adds), and those
  // that run kernels of their own (the plan's host_kernels).
  int fused_nodes() const { return fused_nodes_; }
  int kernel_nodes() const { return static_cast<int>(graph_->nodes.size()) - fused_nodes_; }
  // Steps that copy a value from blocked channels to planar (layout, above).
  int copy_steps() const { return copy_steps_; }

 private:
  struct PlanOnly {};
  HostProgram(PlanOnly, const graph::Graph& graph);
  void build(std::span<const int> segment_of, bool plan_only, int threads);
  template <class T>
  const T* keep(std::shared_ptr<T> packed);

  const graph::Graph* graph_;
  std::vector<Step> steps_;
  std::vector<std::int64_t> offset_;  // per value: floats into the arena, or -1
  std::int64_t arena_floats_ = 0;
  std::int64_t unplanned_bytes_ = 0;
  std::int64_t weight_bytes_ = 0;
  std::vector<std::shared_ptr<const void>> packed_;  // what the steps read: repacked weights
  std::vector<std::string> fallback_ops_;
  int fused_nodes_ = 0;
  int copy_steps_ = 0;
  std::vector<std::size_t> segment_steps_;  // per segment its first step; one more entry: the end
  std::vector<std::vector<std::size_t>> segment_inputs_, segment_outputs_;
};

}  // namespace vkfuse::runtime
