// The kernel fusion rule shared by the Vulkan lowering and the cost model.
#include "planner/kernel_fusion.h"

#include <algorithm>
#include <string>

#include "graph/ops.h"
#include "planner/cost_model.h"

namespace vkfuse::planner {

using graph::kNoValue;
using graph::ValueId;

namespace {

// Ops whose kernel can run an Add as its epilogue (shaders/conv.glsl, resize.glsl).
bool can_run_add(const std::string& op) { return op == "Conv" || op == "Resize" || op == "Upsample"; }

// Per value, the first node that reads it (-1: none).
std::vector<std::int32_t> first_readers(const graph::Graph& g) {
  std::vector<std::int32_t> reader(g.values.size(), -1);
  for (std::size_t i = g.nodes.size(); i-- > 0;)
    for (ValueId v : g.nodes[i].inputs)
      if (v != kNoValue) reader[static_cast<std::size_t>(v)] = static_cast<std::int32_t>(i);
  return reader;
}

// The Conv that reads value v as its input (index 0) and is v's only reader,
// or -1. reader: per value, the first node that reads it (first_readers).
std::int32_t consumer_conv(const graph::Graph& g, ValueId v, const std::vector<std::int32_t>& reader,
                           const std::vector<std::int32_t>& uses, const std::vector<char>& is_output) {
  const auto k = static_cast<std::size_t>(v);
  if (uses[k] != 1 || is_output[k] || reader[k] < 0) return -1;
  const graph::Node& n = g.nodes[static_cast<std::size_t>(reader[k])];
  return n.op_type == "Conv" && n.inputs[0] == v && g.constant_input(n, 1) ? reader[k] : -1;
}

}  // namespace

std::int64_t weight_split(const graph::Graph& g, const graph::Node& n) {
  constexpr std::int64_t kFloats = kKernelWeightBytes / 4;
  const graph::Tensor* w = g.constant_input(n, 1);
  if (n.op_type == "Conv" && w && w->shape().size() >= 3) {
    // Packed as [channel][ci][taps] padded to 16 channels, then one bias each.
    const std::int64_t groups = std::max<std::int64_t>(1, n.attrs.get_int("group", 1));
    const std::int64_t m = w->shape()[0], mg = m / groups, per_channel = w->numel() / std::max<std::int64_t>(1, m) + 1;
    if (groups * ((mg + 15) / 16 * 16) * per_channel <= kFloats) return m;
    if (groups > 1) return 0;
    return kFloats / per_channel / kConvSplitQuantum * kConvSplitQuantum;
  }
  if (n.op_type == "Gemm" && w && w->shape().size() == 2) {
    const bool tb = n.attrs.get_int("transB", 0) != 0;
    const std::int64_t k = tb ? w->shape()[1] : w->shape()[0], cols = tb ? w->shape()[0] : w->shape()[1];
    if (k * cols <= kFloats) return cols;
    return kFloats / std::max<std::int64_t>(1, k);
  }
  // No packed weights (a Gemm's B read from the arena): nothing to split.
  const graph::Shape& y = g.value(n.outputs[0]).shape;
  return y.size() >= 2 ? y[1] : 1;
}

KernelFusion::KernelFusion(const graph::Graph& g) : g_(&g), producer_(g.producers()) {
  const std::size_t n = g.nodes.size();
  // Worked out once: the cost model asks for kernels() in the planner's search.
  weight_ranges_.assign(n, 1);
  for (std::size_t i = 0; i < n; ++i) {
    const graph::Node& node = g.nodes[i];
    if (node.op_type != "Conv" && node.op_type != "Gemm") continue;
    const std::int64_t split = weight_split(g, node);
    const graph::Shape& y = g.value(node.outputs[0]).shape;  // channels (Conv) or columns (Gemm) at 1
    if (split > 0 && y.size() >= 2) weight_ranges_[i] = static_cast<int>((y[1] + split - 1) / split);
  }
  alias_.assign(n, 0);
  folded_.assign(n, 0);
  view_type_.assign(n, 0);
  add_producers_.resize(n);
  mul_conv_.assign(n, -1);
  gated_x_.assign(n, kNoValue);
  concat_in_place_.assign(n, 0);
  value_concats_.resize(g.values.size());
  const auto uses = g.use_counts();
  std::vector<char> is_output(g.values.size(), 0);
  for (ValueId v : g.outputs) is_output[static_cast<std::size_t>(v)] = 1;
  const std::vector<std::int32_t> reader = first_readers(g);
  for (std::size_t i = 0; i < n; ++i) {
    const graph::Node& node = g.nodes[i];
    bool all_constant = true;
    for (ValueId o : node.outputs)
      if (o != kNoValue && !g.is_constant(o)) all_constant = false;
    folded_[i] = all_constant;
    view_type_[i] = is_view_op(node);
    alias_[i] = view_type_[i] && !node.inputs.empty() && !node.outputs.empty() && node.inputs[0] != kNoValue &&
                !g.is_constant(node.inputs[0]) && !g.is_constant(node.outputs[0]) &&
                node.activation.kind == graph::Activation::Kind::None;
    // Adds as epilogues: their operands that a Conv or a Resize writes for
    // them alone (not a folded constant: that kernel never runs).
    if (node.op_type == "Add" && node.inputs.size() == 2 && !node.outputs.empty() && node.outputs[0] != kNoValue) {
      for (int side = 0; side < 2; ++side) {
        const ValueId t = node.inputs[static_cast<std::size_t>(side)], r = node.inputs[static_cast<std::size_t>(1 - side)];
        if (t == kNoValue || r == kNoValue || t == r || g.is_constant(t)) continue;
        const std::int32_t c = producer_[static_cast<std::size_t>(t)];
        if (c < 0 || !can_run_add(g.nodes[static_cast<std::size_t>(c)].op_type) ||
            g.nodes[static_cast<std::size_t>(c)].outputs.empty() || g.nodes[static_cast<std::size_t>(c)].outputs[0] != t)
          continue;
        if (uses[static_cast<std::size_t>(t)] != 1 || is_output[static_cast<std::size_t>(t)]) continue;
        if (g.value(r).shape != g.value(t).shape || g.value(node.outputs[0]).shape != g.value(t).shape ||
            g.value(r).dtype != graph::DType::f32)
          continue;
        add_producers_[i].push_back(c);
      }
      std::sort(add_producers_[i].begin(), add_producers_[i].end());
    }
    // Channel gates (squeeze-and-excitation) that the consuming Conv applies.
    if (node.op_type == "Mul" && node.inputs.size() == 2 && node.outputs.size() == 1 &&
        node.activation.kind == graph::Activation::Kind::None) {
      const ValueId out = node.outputs[0];
      const std::int32_t c = out == kNoValue ? -1 : consumer_conv(g, out, reader, uses, is_output);
      for (int side = 0; c >= 0 && side < 2; ++side) {
        const ValueId x = node.inputs[static_cast<std::size_t>(side)], gate = node.inputs[static_cast<std::size_t>(1 - side)];
        if (x == kNoValue || gate == kNoValue || g.is_constant(x) || g.is_constant(gate) ||
            g.value(x).dtype != graph::DType::f32 || g.value(gate).dtype != graph::DType::f32)
          continue;
        const graph::Shape &xs = g.value(x).shape, &gs = g.value(gate).shape;
        if (xs.size() < 3 || gs.size() != xs.size() || xs != g.value(out).shape || gs[0] != xs[0] || gs[1] != xs[1] ||
            !std::all_of(gs.begin() + 2, gs.end(), [](std::int64_t d) { return d == 1; }))
          continue;
        mul_conv_[i] = c;
        gated_x_[i] = x;
        break;
      }
    }
    // Concats whose inputs can be written in place.
    if (node.op_type == "Concat" && !node.outputs.empty() && !g.is_constant(node.outputs[0]) &&
        node.activation.kind == graph::Activation::Kind::None) {
      const graph::Shape& out = g.value(node.outputs[0]).shape;
      std::int64_t axis = node.attrs.get_int("axis", 0);
      if (axis < 0) axis += static_cast<std::int64_t>(out.size());
      std::int64_t outer = 1;
      for (std::int64_t k = 0; k < axis; ++k) outer *= out[static_cast<std::size_t>(k)];
      if (outer == 1) {
        concat_in_place_[i] = 1;
        for (ValueId v : node.inputs)
          if (v != kNoValue && std::count(node.inputs.begin(), node.inputs.end(), v) == 1 && !g.is_constant(v))
            value_concats_[static_cast<std::size_t>(v)].push_back(static_cast<int>(i));
      }
    }
  }
}

int KernelFusion::epilogue_of(int add, std::span<const int> unit) const {
  const int u = unit[static_cast<std::size_t>(add)];
  if (u < 0) return -1;
  for (int c : add_producers_[static_cast<std::size_t>(add)])
    if (unit[static_cast<std::size_t>(c)] == u) return c;
  return -1;
}

int KernelFusion::gated_conv(int mul, std::span<const int> unit) const {
  const int c = mul_conv_[static_cast<std::size_t>(mul)];
  const int u = unit[static_cast<std::size_t>(mul)];
  return c >= 0 && u >= 0 && unit[static_cast<std::size_t>(c)] == u ? c : -1;
}

bool KernelFusion::in_place(int concat, ValueId v, std::span<const int> unit, bool shared_memory) const {
  const std::int32_t p = producer_[static_cast<std::size_t>(v)];
  if (p < 0 || unit[static_cast<std::size_t>(p)] < 0 || view_type_[static_cast<std::size_t>(p)]) return false;
  // The first Concat on the device that can take v in place takes it.
  for (int c : value_concats_[static_cast<std::size_t>(v)]) {
    const int u = unit[static_cast<std::size_t>(c)];
    if (u < 0 || (!shared_memory && u != unit[static_cast<std::size_t>(p)])) continue;
    return c == concat;
  }
  return false;
}

int KernelFusion::kernels(int i, std::span<const int> unit, bool shared_memory) const {
  const auto k = static_cast<std::size_t>(i);
  if (folded_[k] || alias_[k] || epilogue_of(i, unit) >= 0 || gated_conv(i, unit) >= 0) return 0;
  const graph::Node& n = g_->nodes[k];
  auto nonempty = [&](ValueId v) { return v != kNoValue && graph::element_count(g_->value(v).shape) > 0; };
  int copies = 0;
  if (n.op_type == "Split") {  // one copy kernel per output
    for (ValueId v : n.outputs) copies += nonempty(v) ? 1 : 0;
    return copies;
  }
  if (n.op_type != "Concat") return weight_ranges_[k];
  for (ValueId v : n.inputs)
    if (nonempty(v) && !(concat_in_place_[k] && in_place(i, v, unit, shared_memory))) ++copies;
  return copies;
}

double KernelFusion::copied_fraction(int i, std::span<const int> unit, bool shared_memory) const {
  const auto k = static_cast<std::size_t>(i);
  if (!concat_in_place_[k]) return 1;
  double copied = 0, total = 0;
  for (ValueId v : g_->nodes[k].inputs) {
    if (v == kNoValue) continue;
    const auto n = static_cast<double>(graph::element_count(g_->value(v).shape));
    total += n;
    if (!in_place(i, v, unit, shared_memory)) copied += n;
  }
  return total > 0 ? copied / total : 0;
}

namespace {

// A float32 value computed at run time (not a constant).
bool runtime_f32(const graph::Graph& g, ValueId v) {
  return v != kNoValue && !g.is_constant(v) && g.value(v).dtype == graph::DType::f32;
}

}  // namespace

bool host_conv_kernel(const graph::Graph& g, const graph::Node& n) {
  if (n.op_type != "Conv" || n.inputs.size() < 2 || n.outputs.empty() || !runtime_f32(g, n.outputs[0]) ||
      !runtime_f32(g, n.inputs[0]) || g.value(n.inputs[0]).shape.size() != 4 || n.inputs[1] == kNoValue)
    return false;
  for (std::size_t i = 1; i < n.inputs.size(); ++i) {
    const ValueId v = n.inputs[i];
    if (v != kNoValue && (!g.is_constant(v) || g.value(v).dtype != graph::DType::f32)) return false;
  }
  return true;
}

bool host_resize_kernel(const graph::Graph& g, const graph::Node& n) {
  if ((n.op_type != "Resize" && n.op_type != "Upsample") || n.inputs.empty() || n.outputs.empty() ||
      !runtime_f32(g, n.inputs[0]) || !runtime_f32(g, n.outputs[0]))
    return false;
  const graph::Value &x = g.value(n.inputs[0]), &y = g.value(n.outputs[0]);
  if (!x.shape_known || !y.shape_known || x.shape.size() < 2 || x.shape.size() != y.shape.size()) return false;
  // Leading axes must map each index to itself.
  const graph::ResizeTaps taps = graph::resize_taps(graph::OpContext{n, g.opset}, graph::input_infos(g, n));
  for (std::size_t k = 0; k + 2 < x.shape.size(); ++k) {
    if (y.shape[k] != x.shape[k]) return false;
    for (std::int64_t i = 0; i < x.shape[k]; ++i) {
      const auto& t = taps.axes[k][static_cast<std::size_t>(i)];
      if (t.size() != 1 || t[0].index != i || t[0].weight != 1.0) return false;
    }
  }
  return true;
}

int channel_gate_operand(const graph::Graph& g, const graph::Node& n) {
  const graph::Shape& ys = g.value(n.outputs[0]).shape;
  if (ys.size() != 4) return -1;
  for (int k = 0; k < 2; ++k) {
    const graph::Shape& gs = g.value(n.inputs[static_cast<std::size_t>(k)]).shape;
    const graph::Shape& xs = g.value(n.inputs[static_cast<std::size_t>(1 - k)]).shape;
    if (xs == ys && gs.size() == 4 && (gs[0] == ys[0] || gs[0] == 1) && gs[1] == ys[1] && gs[2] == 1 && gs[3] == 1 &&
        ys[2] * ys[3] > 1)
      return k;
  }
  return -1;
}

HostFusion::HostFusion(const graph::Graph& g)
    : convs_(g.nodes.size(), {-1, -1}),
      residuals_(g.nodes.size(), {-1, -1}),
      gate_conv_(g.nodes.size(), -1),
      gated_x_(g.nodes.size(), kNoValue) {
  const auto producer = g.producers();
  const auto uses = g.use_counts();
  std::vector<char> is_output(g.values.size(), 0);
  for (ValueId v : g.outputs) is_output[static_cast<std::size_t>(v)] = 1;
  auto takes_add = [&](const graph::Node& n) {
    return n.activation.kind == graph::Activation::Kind::None &&
           ((host_conv_kernel(g, n) && n.attrs.get_int("group", 1) == 1) || host_resize_kernel(g, n));
  };
  for (std::size_t a = 0; a < g.nodes.size(); ++a) {
    const graph::Node& add = g.nodes[a];
    if (add.op_type != "Add" || add.inputs.size() != 2 || add.outputs.empty() || add.outputs[0] == kNoValue) continue;
    const graph::Shape& out = g.value(add.outputs[0]).shape;
    for (int side = 0; side < 2; ++side) {
      const ValueId p = add.inputs[static_cast<std::size_t>(side)], q = add.inputs[static_cast<std::size_t>(1 - side)];
      if (!runtime_f32(g, p) || !runtime_f32(g, q) || p == q || g.value(p).shape != out || g.value(q).shape != out) continue;
      const std::int32_t c = producer[static_cast<std::size_t>(p)];
      if (c < 0 || !takes_add(g.nodes[static_cast<std::size_t>(c)])) continue;
      if (uses[static_cast<std::size_t>(p)] != 1 || is_output[static_cast<std::size_t>(p)]) continue;
      convs_[a][static_cast<std::size_t>(side)] = c;
      residuals_[a][static_cast<std::size_t>(side)] = producer[static_cast<std::size_t>(q)];
    }
  }
  // Channel gates read only by a 1x1 Conv that folds them into its filters.
  const std::vector<std::int32_t> reader = first_readers(g);
  for (std::size_t m = 0; m < g.nodes.size(); ++m) {
    const graph::Node& mul = g.nodes[m];
    if (mul.op_type != "Mul" || mul.inputs.size() != 2 || mul.outputs.size() != 1 || !runtime_f32(g, mul.outputs[0]) ||
        mul.activation.kind != graph::Activation::Kind::None || mul.inputs[0] == kNoValue ||
        mul.inputs[1] == kNoValue || g.value(mul.inputs[0]).dtype != graph::DType::f32 ||
        g.value(mul.inputs[1]).dtype != graph::DType::f32)
      continue;
    const int k = channel_gate_operand(g, mul);
    if (k < 0) continue;
    const ValueId y = mul.outputs[0], x = mul.inputs[static_cast<std::size_t>(1 - k)];
    const graph::Shape& ys = g.value(y).shape;
    if (!runtime_f32(g, x) || (ys[0] != 1 && g.value(mul.inputs[static_cast<std::size_t>(k)]).shape[0] != 1)) continue;
    const std::int32_t c = consumer_conv(g, y, reader, uses, is_output);
    if (c < 0) continue;
    const graph::Node& conv = g.nodes[static_cast<std::size_t>(c)];
    if (!host_conv_kernel(g, conv) || conv.attrs.get_int("group", 1) != 1) continue;
    const graph::Shape& ws = g.value(conv.inputs[1]).shape;
    if (ws.size() != 4 || ws[2] != 1 || ws[3] != 1 || kGateFoldPixelsPerFilter * ws[0] > ys[2] * ys[3]) continue;
    gate_conv_[m] = c;
    gated_x_[m] = x;
  }
}

int HostFusion::gated_conv(int mul, std::span<const int> segment) const {
  const int c = gate_conv_[static_cast<std::size_t>(mul)];
  const int s = segment[static_cast<std::size_t>(mul)];
  return c >= 0 && s >= 0 && segment[static_cast<std::size_t>(c)] == s ? c : -1;
}

int HostFusion::epilogue_of(int add, std::span<const int> segment) const {
  const int s = segment[static_cast<std::size_t>(add)];
  if (s < 0) return -1;
  for (std::size_t side = 0; side < 2; ++side) {
    const int c = convs_[static_cast<std::size_t>(add)][side];
    if (c < 0 || segment[static_cast<std::size_t>(c)] != s) continue;
    // The residual must exist when the producer runs. (Made on the accelerator,
    // it is a download: the Add then begins a segment of its own.)
    const int r = residuals_[static_cast<std::size_t>(add)][side];
    const int rs = r < 0 ? -1 : segment[static_cast<std::size_t>(r)];
    if (r < 0 || (rs >= 0 && (rs < s || (rs == s && r < c)))) return c;
  }
  return -1;
}

}  // namespace vkfuse::planner
