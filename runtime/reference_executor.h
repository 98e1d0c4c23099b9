// runtime/reference_executor.h — runs a prepared Graph with the naive
// reference kernels: the `reference` strategy, and the oracle other executors
// are tested against.
#pragma once

#include <span>
#include <vector>

#include "graph/ir.h"
#include "runtime/executor.h"

namespace vkfuse::runtime {

class ReferenceExecutor final : public Executor {
 public:
  ReferenceExecutor(const graph::Graph& graph, int threads);

  // inputs[i] is the tensor for graph.inputs[i]; returns one tensor per
  // graph.outputs entry.
  std::vector<graph::Tensor> run_tensors(std::span<const graph::Tensor* const> inputs) const;

  void run(std::span<const float* const> inputs, std::span<float* const> outputs) override;
  std::string description() const override;

 private:
  const graph::Graph& graph_;
  int threads_;
  std::vector<std::int32_t> last_use_;  // per value: index of the last node reading it
};

}  // namespace vkfuse::runtime
