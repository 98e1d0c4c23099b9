// The host lowering's layout rule: Concat inputs in place, blocked channels
// between mobile layers (see planner/host_layout.h).
#include "planner/host_layout.h"

#include <cstdlib>
#include <string>

namespace vkfuse::planner {

using graph::kNoValue;
using graph::Node;
using graph::Shape;
using graph::ValueId;

namespace {

std::size_t at(std::int64_t i) { return static_cast<std::size_t>(i); }

// 1x1, stride 1, no padding: a GEMM over the plane as it is.
bool unit_window(const Node& n, const Shape& w) {
  if (w[2] != 1 || w[3] != 1) return false;
  for (auto s : n.attrs.get_ints("strides", {1, 1}))
    if (s != 1) return false;
  // "SAME" and "VALID" pad a 1x1 stride-1 window by nothing.
  if (n.attrs.get_string("auto_pad", "NOTSET") != "NOTSET") return true;
  for (auto p : n.attrs.get_ints("pads", {}))
    if (p != 0) return false;
  return true;
}

}  // namespace

HostLayoutRule::HostLayoutRule(const graph::Graph& g) : g_(&g), fusion_(g) {
  static const bool enabled = [] {
    const char* e = std::getenv("VKFUSE_HOST_BLOCKED");
    return !(e && std::string(e) == "0");
  }();
  enabled_ = enabled;
  const std::size_t nv = g.values.size(), nn = g.nodes.size();
  producer_ = g.producers();
  uses_ = g.use_counts();
  is_output_.assign(nv, 0);
  for (ValueId v : g.outputs) is_output_[at(v)] = 1;
  runtime_f32_.assign(nv, 0);
  for (std::size_t v = 0; v < nv; ++v)
    runtime_f32_[v] = !g.is_constant(static_cast<ValueId>(v)) && g.values[v].dtype == graph::DType::f32;
  readers_.assign(nv, {});
  kind_.assign(nn, kNone);
  channel_input_.assign(nn, kNoValue);
  concat_.assign(nn, 0);
  for (std::size_t ni = 0; ni < nn; ++ni) {
    const Node& n = g.nodes[ni];
    for (ValueId v : n.inputs)
      if (v != kNoValue) readers_[at(v)].push_back(static_cast<int>(ni));
    if (n.op_type == "Add") adds_.push_back(static_cast<int>(ni));
    if (fusion_.gated_input(static_cast<int>(ni)) != kNoValue) gates_.push_back(static_cast<int>(ni));
    const bool f32_out = !n.outputs.empty() && n.outputs[0] != kNoValue && runtime_f32_[at(n.outputs[0])];
    if (n.op_type == "Concat" && f32_out) {
      const Shape& os = g.value(n.outputs[0]).shape;
      std::int64_t axis = n.attrs.get_int("axis", 1);
      if (axis < 0) axis += static_cast<std::int64_t>(os.size());
      std::int64_t outer = 1;
      for (std::int64_t i = 0; i < axis; ++i) outer *= os[at(i)];
      concat_[ni] = outer == 1;
      continue;
    }
    // A squeeze-and-excitation gate, x * gate[n, c] (no activation after it).
    if (n.op_type == "Mul" && n.inputs.size() == 2 && f32_out &&
        n.activation.kind == graph::Activation::Kind::None && n.inputs[0] != kNoValue && n.inputs[1] != kNoValue &&
        g.value(n.inputs[0]).dtype == graph::DType::f32 && g.value(n.inputs[1]).dtype == graph::DType::f32) {
      if (const int k = channel_gate_operand(g, n); k >= 0) {
        kind_[ni] = kGate;
        channel_input_[ni] = n.inputs[at(1 - k)];
      }
      continue;
    }
    if (!host_conv_kernel(g, n)) continue;
    const Shape& xs = g.value(n.inputs[0]).shape;
    const Shape& ws = g.value(n.inputs[1]).shape;
    const Shape& ys = g.value(n.outputs[0]).shape;
    if (xs.size() != 4 || ws.size() != 4 || ys.size() != 4) continue;
    const std::int64_t group = n.attrs.get_int("group", 1);
    if (group == 1 && unit_window(n, ws) && ys[2] * ys[3] >= kHostBlockedTile) kind_[ni] = kPointwise;
    else if (group > 1 && group == xs[1] && ws[0] == group && ws[1] == 1 && ys[3] >= kHostBlockedTile)
      kind_[ni] = kDepthwise;
    if (kind_[ni] != kNone) channel_input_[ni] = n.inputs[0];
  }
}

void HostLayoutRule::decide(std::span<const int> segment, HostLayout& out) const {
  const graph::Graph& g = *g_;
  const std::size_t nv = g.values.size(), nn = g.nodes.size();
  auto on_host = [&](std::int64_t ni) { return ni >= 0 && segment[at(ni)] >= 0; };

  out.fused_add.assign(nn, -1);
  out.epilogue_of.assign(nn, -1);
  for (int a : adds_)
    if (const int c = fusion_.epilogue_of(a, segment); c >= 0) {
      out.fused_add[at(c)] = a;
      out.epilogue_of[at(a)] = c;
    }
  out.input_gate.assign(nn, -1);
  out.gated_conv.assign(nn, -1);
  for (int m : gates_)
    if (const int c = fusion_.gated_conv(m, segment); c >= 0) {
      out.input_gate[at(c)] = m;
      out.gated_conv[at(m)] = c;
    }
  // Concat inputs in place.
  out.concat_parent.assign(nv, kNoValue);
  out.concat_offset.assign(nv, 0);
  for (std::size_t ni = 0; ni < nn; ++ni) {
    if (!concat_[ni] || !on_host(static_cast<std::int64_t>(ni))) continue;
    const Node& n = g.nodes[ni];
    std::int64_t offset = 0;
    for (ValueId v : n.inputs) {
      if (v == kNoValue) continue;
      int occurrences = 0;
      for (ValueId u : n.inputs) occurrences += u == v ? 1 : 0;
      const std::int32_t p = producer_[at(v)];
      if (runtime_f32_[at(v)] && !is_output_[at(v)] && uses_[at(v)] == 1 && occurrences == 1 &&
          out.concat_parent[at(v)] == kNoValue && on_host(p) && out.fused_add[at(p)] < 0) {
        out.concat_parent[at(v)] = n.outputs[0];
        out.concat_offset[at(v)] = offset;
      }
      offset += graph::element_count(g.value(v).shape);
    }
  }

  // Blocked channels. blocked_kernel holds the candidates' kinds while they
  // are pruned.
  out.blocked.assign(nv, 0);
  out.planar_copy.assign(nv, 0);
  std::vector<char>& cand = out.blocked_kernel;
  cand.assign(nn, kNone);
  if (!enabled_) return;
  for (std::size_t ni = 0; ni < nn; ++ni)
    if (on_host(static_cast<std::int64_t>(ni)) && out.gated_conv[ni] < 0) cand[ni] = kind_[ni];
  // The value a candidate reads in channels: a gated Conv reads the tensor
  // its gate scales.
  auto channel_input = [&](std::size_t ni) {
    const int m = out.input_gate[ni];
    return m >= 0 ? fusion_.gated_input(m) : channel_input_[ni];
  };
  auto reads_blocked = [&](int ri, ValueId v) {
    if (!on_host(ri)) return false;  // an accelerator op reads what the host sends: planar
    if (const int c = out.epilogue_of[at(ri)]; c >= 0) return cand[at(c)] != kNone;  // a residual
    if (const int c = out.gated_conv[at(ri)]; c >= 0) return cand[at(c)] != kNone && fusion_.gated_input(ri) == v;
    if (cand[at(ri)] != kNone) return channel_input(at(ri)) == v;
    return g.nodes[at(ri)].op_type == "GlobalAveragePool" && g.value(v).shape.size() == 4;
  };
  for (bool pruned = true; pruned;) {
    std::fill(out.blocked.begin(), out.blocked.end(), 0);
    std::fill(out.planar_copy.begin(), out.planar_copy.end(), 0);
    for (std::size_t ni = 0; ni < nn; ++ni) {
      if (cand[ni] == kNone) continue;
      const ValueId v = out.written_by(g, ni);
      if (!runtime_f32_[at(v)] || out.concat_parent[at(v)] != kNoValue) continue;
      bool any_blocked = false, any_planar = is_output_[at(v)] != 0;
      for (int ri : readers_[at(v)]) (reads_blocked(ri, v) ? any_blocked : any_planar) = true;
      // The end of a chain (its input blocked; nodes are in order, so the
      // input's layout is known) writes blocked and copies; a pointwise
      // layer between planar ones would only add the copy.
      out.blocked[at(v)] = any_blocked || out.blocked[at(channel_input(ni))];
      out.planar_copy[at(v)] = out.blocked[at(v)] && any_planar;
    }
    pruned = false;
    for (std::size_t ni = 0; ni < nn; ++ni) {
      if (cand[ni] == kNone) continue;
      bool keep = out.blocked[at(out.written_by(g, ni))];
      // The depthwise kernel and the gate read blocked channels only, the
      // pointwise one's residual form too; a residual is read in the
      // output's layout.
      const int a = out.fused_add[ni];
      if (cand[ni] != kPointwise || a >= 0) keep = keep && out.blocked[at(channel_input(ni))];
      if (a >= 0) keep = keep && out.blocked[at(g.nodes[at(a)].other_input(g.nodes[ni].outputs[0]))];
      if (!keep) {
        cand[ni] = kNone;
        pruned = true;
      }
    }
  }
  for (std::size_t ni = 0; ni < nn; ++ni) {
    const Node& n = g.nodes[ni];
    cand[ni] = cand[ni] != kNone || (n.op_type == "GlobalAveragePool" && on_host(static_cast<std::int64_t>(ni)) &&
                                     !n.inputs.empty() && n.inputs[0] != kNoValue && out.blocked[at(n.inputs[0])]);
  }
}

}  // namespace vkfuse::planner
