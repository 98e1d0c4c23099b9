// Shape inference with constant folding: one walk in topological order gives
// every value a dtype and a concrete shape, and evaluates (with the reference
// kernels) every node whose inputs are all known, so that shape arithmetic
// (Shape → Gather → Unsqueeze → Concat → Reshape) becomes a constant before
// the Reshape that needs it is inferred.
#include <algorithm>

#include "graph/ops.h"
#include "graph/passes.h"

namespace vkfuse::graph {

namespace {

// Folding a node whose output is huge would bloat the model; the constants
// CNN exports compute are shapes and small weight transforms.
constexpr std::int64_t kMaxFoldedElements = std::int64_t{1} << 26;

bool foldable(const Graph& g, const Node& n, const std::vector<OutputInfo>& outs) {
  std::int64_t total = 0;
  for (const auto& o : outs) total += element_count(o.shape);
  if (total > kMaxFoldedElements) return false;
  if (n.op_type == "Shape") return true;  // needs only the input's shape
  bool any_input = false;
  for (auto in : n.inputs) {
    if (in == kNoValue) continue;
    any_input = true;
    if (!g.is_constant(in)) return false;
  }
  return any_input || n.op_type == "Constant";
}

}  // namespace

void infer_shapes(Graph& g, int threads) {
  std::vector<bool> folded(g.nodes.size(), false);
  for (std::size_t ni = 0; ni < g.nodes.size(); ++ni) {
    Node& n = g.nodes[ni];
    std::vector<InputInfo> infos(n.inputs.size());
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      if (n.inputs[i] == kNoValue) {
        infos[i].present = false;
        continue;
      }
      const Value& v = g.value(n.inputs[i]);
      if (!v.shape_known)
        throw Error(ErrorKind::Internal, "node '" + n.name + "': input '" + v.name + "' has no inferred shape");
      infos[i].dtype = v.dtype;
      infos[i].shape = v.shape;
      infos[i].constant = v.constant ? &*v.constant : nullptr;
    }
    OpContext ctx{n, g.opset, threads};
    std::vector<OutputInfo> outs = infer_node(ctx, infos);
    if (outs.size() < n.outputs.size()) {
      for (std::size_t i = outs.size(); i < n.outputs.size(); ++i)
        if (n.outputs[i] != kNoValue) unsupported_node(n, "output " + std::to_string(i) + " is not supported");
    }
    for (std::size_t i = 0; i < n.outputs.size(); ++i) {
      if (n.outputs[i] == kNoValue) continue;
      Value& v = g.value(n.outputs[i]);
      v.dtype = outs[i].dtype;
      v.shape = outs[i].shape;
      v.shape_known = true;
    }

    if (!foldable(g, n, outs)) continue;
    std::vector<Tensor> results;
    if (n.op_type == "Shape") {
      // Shape needs only the input's (known) shape, never its runtime data:
      // its output is the slice [start, end) of the input's dims.
      const std::vector<std::int64_t>& dims = g.value(n.inputs[0]).shape;
      std::int64_t rank = static_cast<std::int64_t>(dims.size());
      std::int64_t start = n.attrs.get_int("start", 0), end = n.attrs.get_int("end", rank);
      if (start < 0) start += rank;
      if (end < 0) end += rank;
      start = std::clamp<std::int64_t>(start, 0, rank);
      end = std::clamp<std::int64_t>(end, start, rank);
      results.push_back(Tensor::from_i64({end - start}, std::vector<std::int64_t>(dims.begin() + start, dims.begin() + end)));
    } else {
      std::vector<const Tensor*> inputs;
      for (auto in : n.inputs) inputs.push_back(in == kNoValue ? nullptr : &*g.value(in).constant);
      results = evaluate_node(ctx, inputs);
    }
    for (std::size_t i = 0; i < n.outputs.size() && i < results.size(); ++i)
      if (n.outputs[i] != kNoValue) g.value(n.outputs[i]).constant = std::move(results[i]);
    folded[ni] = true;
  }

  // Folded nodes are gone; their outputs are constants now.
  std::vector<Node> kept;
  for (std::size_t ni = 0; ni < g.nodes.size(); ++ni)
    if (!folded[ni]) kept.push_back(std::move(g.nodes[ni]));
  g.nodes = std::move(kept);
}

}  // namespace vkfuse::graph
