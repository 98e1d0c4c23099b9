// The cost model: roofline per op class, transfers over the link, fused clusters.
#include "planner/cost_model.h"

#include <algorithm>
#include <string>

#include "graph/ops.h"
#include "vkfuse/error.h"

namespace vkfuse::planner {

using graph::kNoValue;
using graph::ValueId;

OpClass classify(const graph::Graph& g, const graph::Node& n) {
  const std::string& op = n.op_type;
  if (op == "Conv") {
    const std::int64_t group = n.attrs.get_int("group", 1);
    if (n.inputs.size() > 1 && n.inputs[1] != kNoValue) {
      const graph::Shape& w = g.value(n.inputs[1]).shape;  // [M, C/group, k...]
      bool one_by_one = w.size() >= 3;
      for (std::size_t i = 2; i < w.size(); ++i) one_by_one = one_by_one && w[i] == 1;
      if (group == 1 && one_by_one) return OpClass::conv1x1_gemm;
    }
    if (group > 1 && !n.inputs.empty() && n.inputs[0] != kNoValue) {
      const graph::Shape& x = g.value(n.inputs[0]).shape;
      if (x.size() >= 2 && x[1] == group) return OpClass::depthwise;
    }
    return OpClass::direct_conv;
  }
  if (op == "Gemm" || op == "MatMul") return OpClass::gemm;
  if (op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool" || op == "GlobalMaxPool")
    return OpClass::pooling;
  return OpClass::elementwise;
}

bool is_view_op(const graph::Node& n) {
  const std::string& op = n.op_type;
  return op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze" || op == "Identity" ||
         op == "Dropout";
}

namespace {

double roofline_us(const DeviceProfile& d, OpClass c, double flops, double bytes, const OpGeometry& shape = {}) {
  const double compute = flops / (d.throughput_gflops(c, flops, shape) * 1e3);  // GFLOP/s → FLOP/µs
  const double memory = bytes / (d.bandwidth_gbs(c) * 1e3);              // GB/s → B/µs
  return std::max(compute, memory);
}

}  // namespace

OpGeometry op_geometry(const graph::Graph& g, const graph::Node& n) {
  OpGeometry s;
  const OpClass c = classify(g, n);
  if (c != OpClass::direct_conv && c != OpClass::conv1x1_gemm && c != OpClass::depthwise && c != OpClass::pooling)
    return s;
  if (n.inputs.empty() || n.inputs[0] == kNoValue || n.outputs.empty() || n.outputs[0] == kNoValue) return s;
  const graph::Shape& x = g.value(n.inputs[0]).shape;
  const graph::Shape& y = g.value(n.outputs[0]).shape;
  if (x.size() < 3 || y.size() < 3) return s;
  s.pixels = 1;
  for (std::size_t i = 2; i < y.size(); ++i) s.pixels *= static_cast<double>(y[i]);
  s.kernel = 1;
  if (n.op_type == "GlobalAveragePool" || n.op_type == "GlobalMaxPool") {
    for (std::size_t i = 2; i < x.size(); ++i) s.kernel *= static_cast<double>(x[i]);
  } else if (n.op_type == "Conv" && n.inputs.size() > 1 && n.inputs[1] != kNoValue) {
    const graph::Shape& w = g.value(n.inputs[1]).shape;
    for (std::size_t i = 2; i < w.size(); ++i) s.kernel *= static_cast<double>(w[i]);
  } else {
    for (auto k : n.attrs.get_ints("kernel_shape", {})) s.kernel *= static_cast<double>(k);
  }
  s.stride = 1;
  for (auto st : n.attrs.get_ints("strides", {})) s.stride = std::max(s.stride, static_cast<double>(st));
  const double group = n.op_type == "Conv" ? static_cast<double>(std::max<std::int64_t>(1, n.attrs.get_int("group", 1))) : 1;
  s.channels = static_cast<double>(x[1]) / group;
  return s;
}

CostModel::CostModel(const graph::Graph& g, DeviceProfile host, DeviceProfile accel, LinkProfile link)
    : g_(&g),
      host_(std::move(host)),
      accel_(std::move(accel)),
      link_(std::move(link)),
      fusion_(g),
      host_layout_rule_(g) {
  validate(host_);
  validate(accel_);
  if (!(link_.h2d_mbps > 0) || !(link_.d2h_mbps > 0))
    throw Error(ErrorKind::InvalidArgument, "link '" + link_.name + "': bandwidth must be positive");
  const std::size_t nv = g.values.size(), nn = g.nodes.size();
  producer_.assign(nv, -1);
  consumers_.assign(nv, {});
  is_output_.assign(nv, 0);
  use_counts_ = g.use_counts();
  for (ValueId v : g.outputs) is_output_[static_cast<std::size_t>(v)] = 1;
  costs_.resize(nn);
  host_blocked_us_.assign(nn, 0.0);
  act_inputs_.resize(nn);
  outputs_.resize(nn);
  for (std::size_t i = 0; i < nn; ++i) {
    const graph::Node& n = g.nodes[i];
    for (ValueId v : n.outputs)
      if (v != kNoValue) {
        producer_[static_cast<std::size_t>(v)] = static_cast<std::int32_t>(i);
        outputs_[i].push_back(v);
      }
  }
  for (std::size_t i = 0; i < nn; ++i) {
    const graph::Node& n = g.nodes[i];
    std::vector<graph::InputInfo> ins;
    std::vector<graph::OutputInfo> outs;
    double bytes = 0;
    for (ValueId v : n.inputs) {
      graph::InputInfo info;
      if (v == kNoValue) {
        info.present = false;
        ins.push_back(info);
        continue;
      }
      const graph::Value& val = g.value(v);
      if (!val.shape_known)
        throw Error(ErrorKind::InvalidArgument, "planner: value '" + val.name +
                                                    "' has no known shape; "
                                                    "plan a prepared graph (graph::prepare_graph)");
      const std::int32_t p = producer_[static_cast<std::size_t>(v)];
      if (p >= static_cast<std::int32_t>(i))
        throw Error(ErrorKind::InvalidArgument,
                    "planner: graph is not in topological order at node '" + n.name + "'; sort it first");
      info.dtype = val.dtype;
      info.shape = val.shape;
      info.constant = val.constant ? &*val.constant : nullptr;
      ins.push_back(info);
      bytes += value_bytes(v);
      if (!val.constant) {
        auto& ai = act_inputs_[i];
        if (std::find(ai.begin(), ai.end(), v) == ai.end()) {
          ai.push_back(v);
          consumers_[static_cast<std::size_t>(v)].push_back(static_cast<int>(i));
        }
      }
    }
    for (ValueId v : outputs_[i]) {
      outs.push_back({g.value(v).dtype, g.value(v).shape});
      bytes += value_bytes(v);
    }
    NodeCost& c = costs_[i];
    c.op_class = classify(g, n);
    c.view = is_view_op(n);
    c.flops = static_cast<double>(graph::node_flops(n, ins, outs));
    c.bytes = c.view ? 0 : bytes;
    if (!c.view) {
      const OpGeometry shape = op_geometry(g, n);
      c.host_us = host_.sequence_factor * (roofline_us(host_, c.op_class, c.flops, c.bytes, shape) + host_.dispatch_us);
      OpGeometry blocked = shape;
      blocked.blocked = true;
      host_blocked_us_[i] =
          host_.sequence_factor * (roofline_us(host_, c.op_class, c.flops, c.bytes, blocked) + host_.dispatch_us);
      c.accel_us =
          accel_.sequence_factor * (roofline_us(accel_, c.op_class, c.flops, c.bytes, shape) + accel_.dispatch_us);
    }
  }
  // A copy from blocked channels to planar reads and writes the value once,
  // as a step of its own.
  to_planar_us_.assign(nv, 0.0);
  for (std::size_t v = 0; v < nv; ++v)
    if (!g.values[v].constant && g.values[v].shape_known)
      to_planar_us_[v] = host_.sequence_factor *
                         (roofline_us(host_, OpClass::elementwise, 0, 2 * value_bytes(static_cast<ValueId>(v))) +
                          host_.dispatch_us);
  // An Add as a host Conv's or Resize's epilogue reads its other operand (the
  // same shape as its output) and adds it in the producer's pass over the output.
  host_epilogue_us_.assign(nn, 0.0);
  for (std::size_t i = 0; i < nn; ++i) {
    const graph::Node& n = g.nodes[i];
    if (n.op_type == "Add" && n.inputs.size() == 2 && n.inputs[0] != kNoValue)
      host_epilogue_us_[i] =
          host_.sequence_factor * roofline_us(host_, OpClass::elementwise, costs_[i].flops, value_bytes(n.inputs[0]));
  }
  // A channel gate folded into a 1x1 Conv's filters scales each of them once.
  host_gate_us_.assign(nn, 0.0);
  const HostFusion& host_fusion = host_layout_rule_.fusion();
  for (std::size_t i = 0; i < nn; ++i) {
    const graph::Node& n = g.nodes[i];
    if (n.op_type != "Conv" || n.inputs.size() < 2 || n.inputs[0] == kNoValue || n.inputs[1] == kNoValue) continue;
    const std::int32_t m = producer_[static_cast<std::size_t>(n.inputs[0])];
    if (m < 0 || host_fusion.gated_input(m) == kNoValue) continue;
    const double filters = value_bytes(n.inputs[1]);
    host_gate_us_[static_cast<std::size_t>(m)] =
        host_.sequence_factor * roofline_us(host_, OpClass::elementwise, filters / 4, 2 * filters);
  }
}

double CostModel::host_op_us(int i, const HostLayout& layout) const {
  const auto n = static_cast<std::size_t>(i);
  double t = layout.epilogue_of[n] >= 0    ? host_epilogue_us_[n]
             : layout.gated_conv[n] >= 0   ? host_gate_us_[n]
             : layout.blocked_kernel[n] ? host_blocked_us_[n]
                                        : host_us(i);
  const graph::Node& node = g_->nodes[n];
  if (node.op_type == "Concat") {
    // Inputs their producers wrote in place are not copied.
    double all = 0, copied = 0;
    for (ValueId v : node.inputs) {
      if (v == kNoValue) continue;
      all += value_bytes(v);
      if (layout.concat_parent[static_cast<std::size_t>(v)] != node.outputs[0]) copied += value_bytes(v);
    }
    const double dispatch = host_.sequence_factor * host_.dispatch_us;
    if (all > 0) t = dispatch + (t - dispatch) * copied / all;
  }
  for (ValueId v : outputs_[n])
    if (layout.planar_copy[static_cast<std::size_t>(v)]) t += to_planar_us_[static_cast<std::size_t>(v)];
  return t;
}

double CostModel::value_bytes(ValueId v) const {
  const graph::Value& val = g_->value(v);
  return static_cast<double>(graph::element_count(val.shape)) * static_cast<double>(graph::dtype_size(val.dtype));
}

double CostModel::fused_epilogue_us(int i, ValueId fused_input) const {
  const graph::Node& n = g_->nodes[static_cast<std::size_t>(i)];
  double other = 0;
  for (ValueId v : n.inputs)
    if (v != kNoValue && v != fused_input) other += value_bytes(v);
  return accel_.sequence_factor * roofline_us(accel_, OpClass::elementwise, node(i).flops, other);
}

std::vector<int> CostModel::kernel_roots(std::span<const int> members, std::span<const int> unit) const {
  std::vector<int> root(members.size());
  for (std::size_t k = 0; k < members.size(); ++k) {
    int c = fusion_.epilogue_of(members[k], unit);
    if (c < 0) c = fusion_.gated_conv(members[k], unit);
    root[k] = c >= 0 ? c : members[k];
  }
  return root;
}

int CostModel::kernel_count(std::span<const int> members, std::span<const int> unit, bool shared_memory) const {
  int n = 0;
  for (int i : members) n += fusion_.kernels(i, unit, shared_memory);
  return n;
}

double CostModel::unit_compute_us(std::span<const int> members, std::span<const int> unit, bool shared_memory) const {
  double t = accel_.submit_us;
  for (int i : members) {
    if (node(i).view) continue;
    if (const int c = fusion_.epilogue_of(i, unit); c >= 0) {
      t += fused_epilogue_us(i, g_->nodes[static_cast<std::size_t>(c)].outputs[0]);
      continue;
    }
    if (fusion_.gated_conv(i, unit) >= 0) {  // the Conv reads the gate as it loads its input
      t += fused_epilogue_us(i, fusion_.gated_input(i));
      continue;
    }
    const int kernels = fusion_.kernels(i, unit, shared_memory);
    if (kernels == 0) continue;
    if (g_->nodes[static_cast<std::size_t>(i)].op_type == "Concat") {
      // Only the inputs not written in place are copied, one kernel each.
      t += node(i).accel_us * fusion_.copied_fraction(i, unit, shared_memory) +
           (kernels - 1) * accel_.sequence_factor * accel_.dispatch_us;
      continue;
    }
    t += node(i).accel_us;
  }
  return t;
}

}  // namespace vkfuse::planner
