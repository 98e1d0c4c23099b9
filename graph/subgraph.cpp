#include <algorithm>
#include <map>

#include "graph/passes.h"

namespace vkfuse::graph {

Graph extract_subgraph(const Graph& g, const std::vector<std::int32_t>& nodes, std::vector<ValueId>* input_ids,
                       std::vector<ValueId>* output_ids) {
  const std::vector<std::int32_t>& order = nodes;
  std::vector<bool> inside(g.nodes.size(), false);
  for (auto n : order) {
    if (n < 0 || static_cast<std::size_t>(n) >= g.nodes.size()) throw Error(ErrorKind::Internal, "node index out of range");
    if (inside[static_cast<std::size_t>(n)]) throw Error(ErrorKind::Internal, "extract_subgraph: a node listed twice");
    inside[static_cast<std::size_t>(n)] = true;
  }
  std::vector<bool> produced(g.values.size(), false), read_outside(g.values.size(), false);
  {
    // The subgraph keeps the order given: it must be topological.
    const std::vector<std::int32_t> producer = g.producers();
    std::vector<bool> done(g.nodes.size(), false);
    for (auto n : order) {
      for (auto in : g.nodes[static_cast<std::size_t>(n)].inputs) {
        if (in == kNoValue) continue;
        const auto pr = producer[static_cast<std::size_t>(in)];
        if (pr >= 0 && inside[static_cast<std::size_t>(pr)] && !done[static_cast<std::size_t>(pr)])
          throw Error(ErrorKind::Internal, "extract_subgraph: node '" + g.nodes[static_cast<std::size_t>(n)].name +
                                               "' is listed before the producer of its input");
      }
      done[static_cast<std::size_t>(n)] = true;
    }
  }
  for (std::size_t i = 0; i < g.nodes.size(); ++i)
    for (auto in : g.nodes[i].inputs)
      if (in != kNoValue && !inside[i]) read_outside[static_cast<std::size_t>(in)] = true;
  for (auto o : g.outputs) read_outside[static_cast<std::size_t>(o)] = true;
  for (auto n : order)
    for (auto o : g.nodes[static_cast<std::size_t>(n)].outputs)
      if (o != kNoValue) produced[static_cast<std::size_t>(o)] = true;

  Graph sub;
  sub.name = g.name;
  sub.opset = g.opset;
  std::map<ValueId, ValueId> remap;
  auto map_value = [&](ValueId id) {
    auto it = remap.find(id);
    if (it != remap.end()) return it->second;
    const Value& v = g.value(id);
    ValueId nid = v.constant ? sub.add_constant(v.name, *v.constant) : sub.add_value(v.name, v.dtype, v.shape, v.shape_known);
    remap.emplace(id, nid);
    return nid;
  };
  std::vector<ValueId> ins, outs;
  for (auto n : order)
    for (auto in : g.nodes[static_cast<std::size_t>(n)].inputs)
      if (in != kNoValue && !produced[static_cast<std::size_t>(in)] && !g.is_constant(in)) ins.push_back(in);
  for (auto n : order)
    for (auto o : g.nodes[static_cast<std::size_t>(n)].outputs)
      if (o != kNoValue && read_outside[static_cast<std::size_t>(o)]) outs.push_back(o);
  std::sort(ins.begin(), ins.end());
  ins.erase(std::unique(ins.begin(), ins.end()), ins.end());
  std::sort(outs.begin(), outs.end());
  for (auto in : ins) sub.inputs.push_back(map_value(in));
  for (auto n : order) {
    Node copy = g.nodes[static_cast<std::size_t>(n)];
    for (auto& in : copy.inputs)
      if (in != kNoValue) in = map_value(in);
    for (auto& o : copy.outputs)
      if (o != kNoValue) o = map_value(o);
    sub.nodes.push_back(std::move(copy));
  }
  for (auto o : outs) sub.outputs.push_back(map_value(o));
  if (input_ids) *input_ids = ins;
  if (output_ids) *output_ids = outs;
  return sub;
}

}  // namespace vkfuse::graph
