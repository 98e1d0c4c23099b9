#include "runtime/reference_executor.h"

#include <algorithm>
#include <optional>

#include "graph/ops.h"

namespace vkfuse::runtime {

using graph::Tensor;
using graph::ValueId;

ReferenceExecutor::ReferenceExecutor(const graph::Graph& graph, int threads)
    : graph_(graph), threads_(threads), last_use_(graph.values.size(), -1) {
  for (std::size_t i = 0; i < graph.nodes.size(); ++i)
    for (auto in : graph.nodes[i].inputs)
      if (in != graph::kNoValue) last_use_[static_cast<std::size_t>(in)] = static_cast<std::int32_t>(i);
  // Graph outputs live to the end.
  for (auto o : graph.outputs) last_use_[static_cast<std::size_t>(o)] = static_cast<std::int32_t>(graph.nodes.size());
}

std::vector<Tensor> ReferenceExecutor::run_tensors(std::span<const Tensor* const> inputs) const {
  std::vector<std::optional<Tensor>> live(graph_.values.size());
  std::vector<const Tensor*> view(graph_.values.size(), nullptr);
  for (std::size_t i = 0; i < graph_.values.size(); ++i)
    if (graph_.values[i].constant) view[i] = &*graph_.values[i].constant;
  for (std::size_t i = 0; i < graph_.inputs.size(); ++i) view[static_cast<std::size_t>(graph_.inputs[i])] = inputs[i];

  for (std::size_t ni = 0; ni < graph_.nodes.size(); ++ni) {
    const auto& node = graph_.nodes[ni];
    std::vector<const Tensor*> args;
    args.reserve(node.inputs.size());
    for (auto in : node.inputs) args.push_back(in == graph::kNoValue ? nullptr : view[static_cast<std::size_t>(in)]);
    auto results = graph::evaluate_node(graph::OpContext{node, graph_.opset, threads_}, args);
    for (std::size_t o = 0; o < node.outputs.size() && o < results.size(); ++o) {
      const ValueId id = node.outputs[o];
      if (id == graph::kNoValue) continue;
      live[static_cast<std::size_t>(id)] = std::move(results[o]);
      view[static_cast<std::size_t>(id)] = &*live[static_cast<std::size_t>(id)];
    }
    // Free what no later node reads, to keep peak memory near the working set.
    for (auto in : node.inputs)
      if (in != graph::kNoValue && last_use_[static_cast<std::size_t>(in)] == static_cast<std::int32_t>(ni) &&
          live[static_cast<std::size_t>(in)]) {
        live[static_cast<std::size_t>(in)].reset();
        view[static_cast<std::size_t>(in)] = nullptr;
      }
  }
  std::vector<Tensor> outputs;
  for (auto o : graph_.outputs) {
    const Tensor* t = view[static_cast<std::size_t>(o)];
    if (!t) throw Error(ErrorKind::Internal, "output '" + graph_.value(o).name + "' was not computed");
    outputs.push_back(*t);
  }
  return outputs;
}

void ReferenceExecutor::run(std::span<const float* const> inputs, std::span<float* const> outputs) {
  std::vector<Tensor> tensors;
  tensors.reserve(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto& v = graph_.value(graph_.inputs[i]);
    Tensor t(graph::DType::f32, v.shape);
    std::copy(inputs[i], inputs[i] + t.numel(), t.f32());
    tensors.push_back(std::move(t));
  }
  std::vector<const Tensor*> ptrs;
  for (auto& t : tensors) ptrs.push_back(&t);
  auto results = run_tensors(ptrs);
  for (std::size_t i = 0; i < results.size(); ++i)
    std::copy(results[i].f32(), results[i].f32() + results[i].numel(), outputs[i]);
}

std::string ReferenceExecutor::description() const {
  return "host: naive reference kernels, " + std::to_string(threads_) + " thread" + (threads_ == 1 ? "" : "s");
}

std::unique_ptr<Executor> make_reference_executor(const graph::Graph& graph, const ExecutorOptions& options) {
  return std::make_unique<ReferenceExecutor>(graph, options.threads);
}

}  // namespace vkfuse::runtime
