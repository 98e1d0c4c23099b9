// runtime/host_executor.h — the `cpu` strategy, and the host segments of a
// plan: one run's state (an activation arena, non-float values) over a
// HostProgram, the loaded part (kernel steps, memory plan, packed weights;
// runtime/host_program.h) that every executor of a model shares.
//
// run() is not reentrant (one arena per executor); several executors on one
// program run at once. Halide's thread pool is process-wide: each run() sets
// it to this executor's thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "codegen/halide/host_kernels.h"
#include "graph/ir.h"
#include "runtime/executor.h"
#include "runtime/host_program.h"

namespace vkfuse::runtime {

class HostExecutor final : public Executor {
 public:
  // Runs `program`, which it keeps alive.
  HostExecutor(std::shared_ptr<const HostProgram> program, const ExecutorOptions& options);
  // Runs a program of its own over `graph` (see HostProgram for segment_of).
  HostExecutor(const graph::Graph& graph, const ExecutorOptions& options, std::span<const int> segment_of = {});
  ~HostExecutor() override;

  // Every segment, in order.
  void run(std::span<const float* const> inputs, std::span<float* const> outputs) override;
  // One segment: spans are indexed like graph.inputs / graph.outputs; it
  // copies in the inputs it reads first and copies out the outputs it
  // produces, and touches no other entry.
  int segment_count() const { return program_->segment_count(); }
  void run_segment(int segment, std::span<const float* const> inputs, std::span<float* const> outputs);
  std::string description() const override;
  // Its arena, and the program's weights (which other executors may share).
  MemoryUse memory() const override {
    MemoryUse m;
    m.host_weight_bytes = program_->weight_bytes();
    m.host_activation_bytes = program_->arena_bytes();
    return m;
  }

  const HostProgram& program() const { return *program_; }
  // Activation memory: the arena's size, and what one buffer per tensor would take.
  std::int64_t arena_bytes() const { return program_->arena_bytes(); }
  std::int64_t unplanned_bytes() const { return program_->unplanned_bytes(); }
  // The same two figures for `graph` (prepared) without building the steps:
  // the liveness plan only, no weights repacked, no arena allocated.
  static std::pair<std::int64_t, std::int64_t> activation_memory(const graph::Graph& graph);
  // The instruction set of the host kernels in this process (see
  // codegen/halide/host_kernels.h), e.g. "x86-64-avx512 (multi-target: ...)".
  static std::string kernel_target();
  const std::vector<std::string>& fallback_ops() const { return program_->fallback_ops(); }
  int fused_nodes() const { return program_->fused_nodes(); }

  // Runs once step by step, timing each: (step name, milliseconds).
  std::vector<std::pair<std::string, double>> profile(std::span<const float* const> inputs,
                                                      std::span<float* const> outputs);

 private:
  std::shared_ptr<const HostProgram> program_;
  int threads_;
  codegen::halide::LargeFloats arena_storage_;  // 64-byte aligned, huge pages when large
  std::vector<std::optional<graph::Tensor>> side_;  // per value: non-float runtime values
  HostFrame frame() { return {arena_storage_.data(), &side_, threads_}; }
};

}  // namespace vkfuse::runtime
