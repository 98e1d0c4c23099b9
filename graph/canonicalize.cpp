// Canonicalization: the rewrites every backend wants, done once on the IR.
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>
#include <limits>
#include <numbers>

#include "graph/ops.h"
#include "graph/passes.h"

namespace vkfuse::graph {

namespace {

bool is_graph_output(const Graph& g, ValueId v) {
  for (auto o : g.outputs)
    if (o == v) return true;
  return false;
}
bool is_graph_input(const Graph& g, ValueId v) {
  for (auto i : g.inputs)
    if (i == v) return true;
  return false;
}

// Makes every reader of `from` read `to` instead, so that the node producing
// `from` becomes dead. Returns false (and changes nothing) where `from` is a
// graph output that `to` cannot stand in for, since outputs keep their names.
bool forward_value(Graph& g, ValueId from, ValueId to) {
  if (is_graph_output(g, from)) {
    if (is_graph_output(g, to) || is_graph_input(g, to) || g.is_constant(to)) return false;
    g.value(to).name = g.value(from).name;
    for (auto& o : g.outputs)
      if (o == from) o = to;
  }
  for (auto& n : g.nodes)
    for (auto& in : n.inputs)
      if (in == from) in = to;
  return true;
}

void drop_identities(Graph& g) {
  auto uses = g.use_counts();
  for (auto& n : g.nodes) {
    const bool dropout = n.op_type == "Dropout";
    if (n.op_type != "Identity" && !dropout) continue;
    if (n.inputs.empty() || n.outputs.empty() || n.outputs[0] == kNoValue) continue;
    if (dropout) {
      // Inference-mode Dropout is the identity; its mask output must be unused.
      if (n.outputs.size() > 1 && n.outputs[1] != kNoValue && uses[static_cast<std::size_t>(n.outputs[1])] > 0)
        continue;
      if (n.inputs.size() > 2 && n.inputs[2] != kNoValue) {
        // Training mode with a zero ratio (Swin's attention dropout) is the identity too.
        const Tensor* training = g.constant_input(n, 2);
        const Tensor* ratio = n.inputs.size() > 1 && n.inputs[1] != kNoValue ? g.constant_input(n, 1) : nullptr;
        const bool zero_ratio = ratio && ratio->numel() == 1 && ratio->as_double(0) == 0.0;
        if (!training || (training->as_int(0) != 0 && !zero_ratio)) continue;
      }
    }
    forward_value(g, n.outputs[0], n.inputs[0]);
  }
  g.remove_dead();
}

void clip_bounds_to_attributes(Graph& g) {
  for (auto& n : g.nodes) {
    if (n.op_type != "Clip" || n.inputs.size() <= 1) continue;
    const bool has_min = n.inputs.size() > 1 && n.inputs[1] != kNoValue;
    const bool has_max = n.inputs.size() > 2 && n.inputs[2] != kNoValue;
    const Tensor* lo = has_min ? g.constant_input(n, 1) : nullptr;
    const Tensor* hi = has_max ? g.constant_input(n, 2) : nullptr;
    if ((has_min && !lo) || (has_max && !hi)) continue;  // runtime bounds stay inputs
    if ((lo && lo->numel() != 1) || (hi && hi->numel() != 1)) continue;
    n.attrs.set("min", lo ? static_cast<float>(lo->as_double(0)) : -std::numeric_limits<float>::infinity());
    n.attrs.set("max", hi ? static_cast<float>(hi->as_double(0)) : std::numeric_limits<float>::infinity());
    n.inputs.resize(1);
  }
  g.remove_dead();
}

// Conv(x, W, b) → BatchNormalization(scale, B, mean, var) becomes
// Conv(x, W * s, (b - mean) * s + B) with s = scale / sqrt(var + eps).
void fold_batchnorm(Graph& g) {
  auto prod = g.producers();
  auto uses = g.use_counts();
  for (auto& bn : g.nodes) {
    if (bn.op_type != "BatchNormalization" || bn.inputs.size() < 5) continue;
    if (bn.outputs.size() > 1) {
      bool extra = false;
      for (std::size_t i = 1; i < bn.outputs.size(); ++i) extra |= bn.outputs[i] != kNoValue;
      if (extra) continue;
    }
    if (bn.attrs.get_int("training_mode", 0) != 0) continue;
    const ValueId x = bn.inputs[0];
    const auto p = prod[static_cast<std::size_t>(x)];
    if (p < 0 || uses[static_cast<std::size_t>(x)] != 1 || is_graph_output(g, x)) continue;
    Node& conv = g.nodes[static_cast<std::size_t>(p)];
    if (conv.op_type != "Conv" || conv.activation.kind != Activation::Kind::None) continue;
    const Tensor* w = g.constant_input(conv, 1);
    if (!w || w->dtype() != DType::f32 || w->shape().size() < 3) continue;
    const bool has_bias = conv.inputs.size() > 2 && conv.inputs[2] != kNoValue;
    const Tensor* b = has_bias ? g.constant_input(conv, 2) : nullptr;
    if (has_bias && !b) continue;
    const Tensor* scale = g.constant_input(bn, 1);
    const Tensor* beta = g.constant_input(bn, 2);
    const Tensor* mean = g.constant_input(bn, 3);
    const Tensor* var = g.constant_input(bn, 4);
    const std::int64_t m = w->shape()[0];
    if (!scale || !beta || !mean || !var) continue;
    if (scale->numel() != m || beta->numel() != m || mean->numel() != m || var->numel() != m) continue;
    if (scale->dtype() != DType::f32 || beta->dtype() != DType::f32 || mean->dtype() != DType::f32 ||
        var->dtype() != DType::f32)
      continue;

    const double eps = bn.attrs.get_float("epsilon", 1e-5f);
    Tensor new_w = *w;
    Tensor new_b(DType::f32, {m});
    const std::int64_t per_oc = w->numel() / m;
    for (std::int64_t oc = 0; oc < m; ++oc) {
      const double s = scale->f32()[oc] / std::sqrt(static_cast<double>(var->f32()[oc]) + eps);
      for (std::int64_t i = 0; i < per_oc; ++i)
        new_w.f32()[oc * per_oc + i] = static_cast<float>(w->f32()[oc * per_oc + i] * s);
      const double bias = b ? b->f32()[oc] : 0.0;
      new_b.f32()[oc] = static_cast<float>((bias - mean->f32()[oc]) * s + beta->f32()[oc]);
    }
    // New constants (the originals may be shared with other nodes).
    const std::string base = conv.name;
    const ValueId w_id = g.add_constant(base + ".weight_bn", std::move(new_w));
    const ValueId b_id = g.add_constant(base + ".bias_bn", std::move(new_b));
    // g.nodes is not resized by add_constant, so `conv` and `bn` stay valid.
    conv.inputs.resize(3);
    conv.inputs[1] = w_id;
    conv.inputs[2] = b_id;
    // The Conv now produces what the BatchNormalization did.
    const ValueId y = bn.outputs[0];
    g.value(x).name = g.value(y).name;
    for (auto& o : g.outputs)
      if (o == y) o = x;
    for (auto& n : g.nodes)
      for (auto& in : n.inputs)
        if (in == y) in = x;
    bn.outputs.assign(1, kNoValue);
    bn.inputs.clear();
  }
  g.remove_dead();
}

// Pad(x, spatial pads, constant 0) → AveragePool(no pads) becomes
// AveragePool(x, pads, count_include_pad = 1): the padded zeros count in the
// divisor either way. torchvision exports avg_pool2d(..., padding=1) this
// way (Inception), and the separate Pad costs a copy of the activation.
void fold_pad_into_avgpool(Graph& g) {
  auto prod = g.producers();
  auto uses = g.use_counts();
  for (auto& pool : g.nodes) {
    if (pool.op_type != "AveragePool" || pool.inputs.empty()) continue;
    if (pool.attrs.get_string("auto_pad", "NOTSET") != "NOTSET" || pool.attrs.get_int("ceil_mode", 0) != 0) continue;
    const ValueId x = pool.inputs[0];
    const Shape& xs = g.value(x).shape;
    if (xs.size() < 3) continue;
    const std::size_t nsp = xs.size() - 2;
    bool pool_pads = false;
    for (auto v : pool.attrs.get_ints("pads", {})) pool_pads |= v != 0;
    if (pool_pads) continue;
    const auto p = prod[static_cast<std::size_t>(x)];
    if (p < 0 || uses[static_cast<std::size_t>(x)] != 1 || is_graph_output(g, x)) continue;
    Node& pad = g.nodes[static_cast<std::size_t>(p)];
    if (pad.op_type != "Pad" || pad.inputs.empty() || pad.attrs.get_string("mode", "constant") != "constant") continue;
    if (pad.activation.kind != Activation::Kind::None) continue;
    std::vector<std::int64_t> pads;
    double value = pad.attrs.get_float("value", 0.f);
    if (pad.inputs.size() > 1 && pad.inputs[1] != kNoValue) {
      const Tensor* t = g.constant_input(pad, 1);
      if (!t) continue;
      for (std::int64_t i = 0; i < t->numel(); ++i) pads.push_back(t->as_int(i));
      if (pad.inputs.size() > 2 && pad.inputs[2] != kNoValue) {
        const Tensor* v = g.constant_input(pad, 2);
        if (!v || v->numel() != 1) continue;
        value = v->as_double(0);
      }
      if (pad.inputs.size() > 3 && pad.inputs[3] != kNoValue) continue;  // axes
    } else {
      pads = pad.attrs.get_ints("pads", {});
    }
    const ValueId in = pad.inputs[0];
    const std::size_t rank = g.value(in).shape.size();
    if (value != 0.0 || rank != xs.size() || pads.size() != 2 * rank) continue;
    // Nothing on the batch and channel axes, nothing negative (cropping).
    bool ok = pads[0] == 0 && pads[1] == 0 && pads[rank] == 0 && pads[rank + 1] == 0;
    for (auto v : pads) ok &= v >= 0;
    if (!ok) continue;
    std::vector<std::int64_t> pool_pads_new(2 * nsp);
    for (std::size_t i = 0; i < nsp; ++i) {
      pool_pads_new[i] = pads[2 + i];
      pool_pads_new[nsp + i] = pads[rank + 2 + i];
    }
    pool.attrs.set("pads", pool_pads_new);
    pool.attrs.set("count_include_pad", std::int64_t{1});
    pool.inputs[0] = in;
  }
  g.remove_dead();
}

// ReduceMean over every spatial axis with keepdims (a squeeze-and-excitation
// block's squeeze, as timm and torchvision export it) is GlobalAveragePool,
// which both backends run as a tuned kernel.
void reduce_mean_to_global_pool(Graph& g) {
  for (auto& n : g.nodes) {
    if (n.op_type != "ReduceMean" || n.inputs.empty() || n.inputs[0] == kNoValue || n.outputs.size() != 1) continue;
    const Value& x = g.value(n.inputs[0]);
    const auto rank = static_cast<std::int64_t>(x.shape.size());
    if (x.dtype != DType::f32 || rank < 3 || n.attrs.get_int("keepdims", 1) != 1) continue;
    const ReducePlan p = reduce_plan(OpContext{n, g.opset}, input_infos(g, n));
    bool spatial = !p.identity && !p.reduced[0] && !p.reduced[1];
    for (std::int64_t k = 2; k < rank; ++k) spatial = spatial && p.reduced[static_cast<std::size_t>(k)];
    if (!spatial) continue;
    n.op_type = "GlobalAveragePool";
    n.attrs = {};
    n.inputs.resize(1);
  }
}

// What pattern matchers ask of the graph: who made a value, and whether the
// pattern is its only reader. Stale once the graph changes.
struct Uses {
  explicit Uses(Graph& graph) : g(graph), prod(graph.producers()), count(graph.use_counts()) {}
  // The node of type `op` that produces v, or nullptr.
  Node* made_by(ValueId v, const char* op) const {
    const auto p = v == kNoValue ? -1 : prod[static_cast<std::size_t>(v)];
    if (p < 0 || g.nodes[static_cast<std::size_t>(p)].op_type != op) return nullptr;
    return &g.nodes[static_cast<std::size_t>(p)];
  }
  bool single_use(ValueId v) const { return count[static_cast<std::size_t>(v)] == 1 && !is_graph_output(g, v); }
  Graph& g;
  std::vector<std::int32_t> prod, count;
};

// Marks n dead (removed by the next remove_dead).
void drop(Node& n) {
  n.inputs.clear();
  n.outputs.assign(1, kNoValue);
}

// The scalar value of a constant input, if it is one.
std::optional<double> scalar_input(const Graph& g, const Node& n, std::size_t i) {
  const Tensor* t = g.constant_input(n, i);
  if (!t || t->numel() != 1 || t->dtype() != DType::f32) return std::nullopt;
  return t->as_double(0);
}

// C floats as a [C] tensor: t's values (t holds C), or `fill` where t is
// null (a norm's missing scale or bias). Make every such tensor before adding
// any of them to the graph: add_constant may move the values t points into.
Tensor channel_tensor(const Tensor* t, std::int64_t c, float fill) {
  std::vector<float> v(static_cast<std::size_t>(c), fill);
  if (t) std::copy(t->f32(), t->f32() + c, v.begin());
  return Tensor::from_f32({c}, std::move(v));
}

// LayerNorm over the last axis as exporters decompose it (ConvNeXt's
// channels-last norms; opset < 17 has no LayerNormalization):
//   m = ReduceMean(x, [-1]); d = Sub(x, m); v = ReduceMean(Mul(d, d), [-1])
//   y = Div(d, Sqrt(Add(v, eps))) [* gamma] [+ beta]
// (or d * Reciprocal(Sqrt(..)), as converters from TensorFlow's rsqrt write it)
// becomes one LayerNormalization(x, gamma or ones, beta) node (axis -1),
// which each backend runs as one kernel. The same over the channels of an
// NCHW tensor (both means over axis 1, gamma and beta [C, 1, 1]: the
// official ConvNeXt's channels-first LayerNorm) becomes one ChannelLayerNorm
// (see fuse_channel_layer_norm). Runs after simplify_pow (so the square is
// Mul(d, d)) and before activations are fused.
void fuse_layer_norm(Graph& g) {
  const Uses u(g);
  auto made_by = [&](ValueId v, const char* op) { return u.made_by(v, op); };
  auto single_use = [&](ValueId v) { return u.single_use(v); };
  // The axis a ReduceMean averages, keeping it: exactly the last axis, or
  // exactly axis 1 of a rank-4 tensor (channels first); -1 for any other.
  auto norm_axis = [&](const Node* n) -> std::int64_t {
    if (!n || n->outputs.size() != 1 || n->activation.kind != Activation::Kind::None) return -1;
    const Shape& x = g.value(n->inputs[0]).shape;
    if (x.empty() || g.value(n->inputs[0]).dtype != DType::f32) return -1;
    const ReducePlan p = reduce_plan(OpContext{*n, g.opset}, input_infos(g, *n));
    if (p.identity || !p.keepdims) return -1;
    const std::size_t last = x.size() - 1;
    for (std::size_t axis : {last, x.size() == 4 ? std::size_t{1} : last}) {
      bool exactly = true;
      for (std::size_t k = 0; k < x.size(); ++k) exactly = exactly && p.reduced[k] == (k == axis);
      if (exactly) return static_cast<std::int64_t>(axis);
    }
    return -1;
  };
  for (auto& div : g.nodes) {
    // d / Sqrt(..), or d * Reciprocal(Sqrt(..)) in either order.
    if ((div.op_type != "Div" && div.op_type != "Mul") || div.inputs.size() != 2 ||
        div.activation.kind != Activation::Kind::None)
      continue;
    std::size_t di = 0;
    Node* recip = nullptr;
    if (div.op_type == "Mul") {
      for (std::size_t k = 0; k < 2 && !recip; ++k)
        if (made_by(div.inputs[k], "Sub") && (recip = made_by(div.inputs[1 - k], "Reciprocal"))) di = k;
      if (!recip || !single_use(div.inputs[1 - di]) || recip->activation.kind != Activation::Kind::None) continue;
    }
    const ValueId d = div.inputs[di], root = recip ? recip->inputs[0] : div.inputs[1];
    Node* sqrt = made_by(root, "Sqrt");
    Node* sub = made_by(d, "Sub");
    if (!sqrt || !sub || !single_use(root) || u.count[static_cast<std::size_t>(d)] != 3) continue;
    Node* add_eps = made_by(sqrt->inputs[0], "Add");
    if (!add_eps || !single_use(sqrt->inputs[0]) || add_eps->activation.kind != Activation::Kind::None) continue;
    const auto eps = scalar_input(g, *add_eps, 1);
    Node* var = made_by(add_eps->inputs[0], "ReduceMean");
    const std::int64_t axis = norm_axis(var);
    if (!eps || !var || !single_use(add_eps->inputs[0]) || axis < 0) continue;
    Node* sq = made_by(var->inputs[0], "Mul");
    if (!sq || !single_use(var->inputs[0]) || sq->inputs[0] != d || sq->inputs[1] != d) continue;
    const ValueId x = sub->inputs[0];
    Node* mean = made_by(sub->inputs[1], "ReduceMean");
    if (!mean || !single_use(sub->inputs[1]) || mean->inputs[0] != x || norm_axis(mean) != axis) continue;
    if (sub->activation.kind != Activation::Kind::None || sq->activation.kind != Activation::Kind::None) continue;
    const Shape& xs = g.value(x).shape;
    const bool channels = axis == 1 && xs.size() == 4;  // not the last axis: a ChannelLayerNorm
    const std::int64_t c = xs[static_cast<std::size_t>(axis)];
    // Input i of n if it is a constant that equals its own broadcast along
    // the normalized axis of x: C values, every other dimension 1 (a [C] or
    // [1.., C] vector for the last axis, [C, 1, 1] or [1, C, 1, 1] for channels).
    auto channel_vector = [&](const Node& n, std::size_t i) -> const Tensor* {
      const Tensor* t = g.constant_input(n, i);
      if (!t || t->dtype() != DType::f32 || t->numel() != c || t->shape().size() > xs.size()) return nullptr;
      const std::size_t from_end = xs.size() - static_cast<std::size_t>(axis);  // the axis, counted from the end
      const Shape& ts = t->shape();
      return ts.size() >= from_end && ts[ts.size() - from_end] == c ? t : nullptr;
    };
    // The optional affine tail: Mul by gamma, then Add of beta.
    ValueId y = div.outputs[0];
    std::vector<Node*> tail;
    const Tensor* gamma = nullptr;
    const Tensor* beta = nullptr;
    // The one node reading v, if it is a two-input `op` without an
    // activation; `other` is the index of its other operand (either order:
    // `gamma * x` as PyTorch's channels-first norms write it, or `x * gamma`).
    std::size_t other = 0;
    auto sole_reader = [&](ValueId v, const char* op) -> Node* {
      if (!single_use(v)) return nullptr;
      for (auto& n : g.nodes)
        for (std::size_t i = 0; i < n.inputs.size(); ++i)
          if (n.inputs[i] == v) {
            if (n.op_type != op || n.inputs.size() != 2 || n.activation.kind != Activation::Kind::None) return nullptr;
            other = 1 - i;
            return &n;
          }
      return nullptr;
    };
    if (Node* mul = sole_reader(y, "Mul"); mul && (gamma = channel_vector(*mul, other))) {
      tail.push_back(mul);
      y = mul->outputs[0];
    }
    if (Node* add = sole_reader(y, "Add"); add && (beta = channel_vector(*add, other))) {
      tail.push_back(add);
      y = add->outputs[0];
    }
    // Rewrite the last node of the pattern into the LayerNormalization (or
    // ChannelLayerNorm), gamma and beta as [C] vectors.
    Node& ln = tail.empty() ? div : *tail.back();
    Tensor scale = channel_tensor(gamma, c, 1.f), bias = channel_tensor(beta, c, 0.f);
    std::vector<ValueId> inputs{x, g.add_constant(ln.name + "_scale", std::move(scale))};
    if (beta || channels) inputs.push_back(g.add_constant(ln.name + "_bias", std::move(bias)));
    for (Node* n : {mean, sub, sq, var, add_eps, sqrt, recip, &div})
      if (n && n != &ln) drop(*n);
    for (Node* n : tail)
      if (n != &ln) drop(*n);
    ln.op_type = channels ? kChannelLayerNorm : "LayerNormalization";
    ln.inputs = inputs;
    ln.attrs = {};
    if (!channels) ln.attrs.set("axis", std::int64_t{-1});
    ln.attrs.set("epsilon", static_cast<float>(*eps));
    ln.outputs.assign(1, y);
    // Producers and uses are stale now; the next call finds the next norm.
    g.remove_dead();
    fuse_layer_norm(g);
    return;
  }
}

// A channels-first LayerNorm as PyTorch writes it for NCHW tensors (timm's
// LayerNorm2d: ConvNeXt's stem, downsampling and block norms):
//   Transpose(x, [0, 2, 3, 1]) -> LayerNormalization(axis -1) -> Transpose([0, 3, 1, 2])
// becomes one ChannelLayerNorm(x, scale, bias) (graph/ops.h): no backend
// transposes the tensor twice to normalise it. Runs after fuse_layer_norm.
void fuse_channel_layer_norm(Graph& g) {
  const Uses u(g);
  auto perm_is = [&](const Node& n, const std::vector<std::int64_t>& perm) {
    return n.activation.kind == Activation::Kind::None && n.attrs.get_ints("perm", {}) == perm;
  };
  bool changed = false;
  for (auto& back : g.nodes) {
    if (back.op_type != "Transpose" || back.inputs.size() != 1 || !perm_is(back, {0, 3, 1, 2})) continue;
    Node* ln = u.made_by(back.inputs[0], "LayerNormalization");
    if (!ln || !u.single_use(back.inputs[0]) || ln->activation.kind != Activation::Kind::None) continue;
    if (std::any_of(ln->outputs.begin() + 1, ln->outputs.end(), [](ValueId v) { return v != kNoValue; })) continue;
    Node* there = u.made_by(ln->inputs[0], "Transpose");
    if (!there || !u.single_use(ln->inputs[0]) || !perm_is(*there, {0, 2, 3, 1})) continue;
    const ValueId x = there->inputs[0];
    const Shape& xs = g.value(x).shape;
    const std::int64_t axis = ln->attrs.get_int("axis", -1);
    if (xs.size() != 4 || g.value(x).dtype != DType::f32 || (axis != -1 && axis != 3)) continue;
    const std::int64_t c = xs[1];
    // Scale and the optional B: constant float32 vectors of C values.
    auto channel_vector = [&](const Tensor* t) { return t && t->dtype() == DType::f32 && t->numel() == c; };
    const Tensor* scale = g.constant_input(*ln, 1);
    const bool has_bias = ln->inputs.size() > 2 && ln->inputs[2] != kNoValue;
    const Tensor* bias = has_bias ? g.constant_input(*ln, 2) : nullptr;
    if (!channel_vector(scale) || (has_bias && !channel_vector(bias))) continue;
    Tensor st = channel_tensor(scale, c, 0.f), bt = channel_tensor(bias, c, 0.f);
    const ValueId sv = g.add_constant(back.name + "_scale", std::move(st));
    const ValueId bv = g.add_constant(back.name + "_bias", std::move(bt));
    const float eps = ln->attrs.get_float("epsilon", 1e-5f);
    drop(*there);
    drop(*ln);
    back.op_type = kChannelLayerNorm;
    back.inputs = {x, sv, bv};
    back.attrs = {};
    back.attrs.set("epsilon", eps);
    changed = true;
  }
  if (changed) g.remove_dead();
}

// Pow by a constant 2 (the variance in an exported LayerNorm) is Mul(x, x),
// by 0.5 Sqrt(x): kernels every backend has, where a general pow is slow.
void simplify_pow(Graph& g) {
  for (auto& n : g.nodes) {
    if (n.op_type != "Pow" || n.inputs.size() != 2 || n.inputs[0] == kNoValue) continue;
    if (g.value(n.inputs[0]).dtype != DType::f32) continue;
    const Tensor* e = g.constant_input(n, 1);
    if (!e || e->numel() != 1) continue;
    const Shape& x = g.value(n.inputs[0]).shape;
    if (n.outputs.empty() || n.outputs[0] == kNoValue || g.value(n.outputs[0]).shape != x) continue;
    const double v = e->as_double(0);
    if (v == 2.0) {
      n.op_type = "Mul";
      n.inputs[1] = n.inputs[0];
    } else if (v == 0.5) {
      n.op_type = "Sqrt";
      n.inputs.resize(1);
    }
  }
}

std::optional<Activation> activation_of(const Graph& g, const Node& n) {
  Activation a;
  if (n.op_type == "Relu") a.kind = Activation::Kind::Relu;
  else if (n.op_type == "LeakyRelu") { a.kind = Activation::Kind::LeakyRelu; a.alpha = n.attrs.get_float("alpha", 0.01f); }
  else if (n.op_type == "Sigmoid") a.kind = Activation::Kind::Sigmoid;
  else if (n.op_type == "HardSigmoid") {
    a.kind = Activation::Kind::HardSigmoid;
    a.alpha = n.attrs.get_float("alpha", 0.2f);
    a.beta = n.attrs.get_float("beta", 0.5f);
  } else if (n.op_type == "HardSwish") a.kind = Activation::Kind::HardSwish;
  else if (n.op_type == "Clip" && n.inputs.size() == 1) {
    a.kind = Activation::Kind::Clip;
    a.alpha = n.attrs.get_float("min", -std::numeric_limits<float>::infinity());
    a.beta = n.attrs.get_float("max", std::numeric_limits<float>::infinity());
  } else return std::nullopt;
  if (n.inputs.empty() || n.inputs[0] == kNoValue || g.value(n.inputs[0]).dtype != DType::f32) return std::nullopt;
  return a;
}

bool takes_activation(const std::string& op);

// Activations that exporters spell as a product with the input itself,
// folded into x's producer when it takes an epilogue and nothing else reads
// the intermediate values:
//   Mul(x, Sigmoid(x))                                   → Silu
//   Mul(x, HardSigmoid(x; 1/6, 1/2))                     → HardSwish (opset < 14)
//   Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)            → Gelu (torch's erf form)
//   Mul(0.5, Mul(x, Add(1, Tanh(Mul(√(2/π), Add(x, Mul(0.044715, Mul(x, Mul(x, x)))))))))
//                                                        → GeluTanh (torch's tanh form)
// (operands of Mul and Add in either order).
void fuse_gated_activations(Graph& g) {
  bool changed = true;
  while (changed) {
    changed = false;
    const Uses u(g);
    auto made_by = [&](ValueId v, const char* op) { return u.made_by(v, op); };
    auto single_use = [&](ValueId v) { return u.single_use(v); };
    for (auto& mul : g.nodes) {
      if (mul.op_type != "Mul" || mul.inputs.size() != 2 || mul.activation.kind != Activation::Kind::None) continue;
      Activation act;
      ValueId x = kNoValue;
      std::vector<Node*> chain;  // nodes the activation replaces, besides `mul`
      for (int side = 0; side < 2 && x == kNoValue; ++side) {
        const ValueId a = mul.inputs[static_cast<std::size_t>(side)], b = mul.inputs[static_cast<std::size_t>(1 - side)];
        if (Node* s = made_by(b, "Sigmoid"); s && s->inputs[0] == a && single_use(b)) {
          act.kind = Activation::Kind::Silu;
          x = a, chain = {s};
        } else if (Node* h = made_by(b, "HardSigmoid"); h && h->inputs[0] == a && single_use(b) &&
                   std::abs(h->attrs.get_float("alpha", 0.2f) - 1.f / 6.f) < 1e-6f &&
                   h->attrs.get_float("beta", 0.5f) == 0.5f) {
          act.kind = Activation::Kind::HardSwish;
          x = a, chain = {h};
        }
      }
      if (x == kNoValue) {  // Gelu: mul is the final * 0.5
        const auto half = scalar_input(g, mul, 1);
        Node* inner = made_by(mul.inputs[0], "Mul");
        const bool erf_form = half && *half == 0.5 && inner && single_use(mul.inputs[0]) && inner->inputs.size() == 2;
        for (int side = 0; erf_form && side < 2 && x == kNoValue; ++side) {
          const ValueId a = inner->inputs[static_cast<std::size_t>(side)];
          const ValueId b = inner->inputs[static_cast<std::size_t>(1 - side)];
          Node* add = made_by(b, "Add");
          if (!add || !single_use(b) || scalar_input(g, *add, 1) != 1.0) continue;
          Node* erf = made_by(add->inputs[0], "Erf");
          if (!erf || !single_use(add->inputs[0])) continue;
          Node* div = made_by(erf->inputs[0], "Div");
          if (!div || !single_use(erf->inputs[0]) || div->inputs[0] != a) continue;
          const auto r2 = scalar_input(g, *div, 1);
          if (!r2 || std::abs(*r2 - std::sqrt(2.0)) > 1e-5) continue;
          act.kind = Activation::Kind::Gelu;
          x = a, chain = {inner, add, erf, div};
        }
      }
      int reads_of_x = 2;
      if (x == kNoValue) {  // GeluTanh: mul is the final * 0.5
        // Of a two-input `op` node: the operand beside v (kNoValue if v is not one).
        auto beside = [](const Node* n, ValueId v) {
          return !n || n->inputs.size() != 2 ? kNoValue : n->inputs[0] == v ? n->inputs[1] : n->inputs[1] == v ? n->inputs[0] : kNoValue;
        };
        // Of a two-input node with a scalar constant operand close to c: the other operand.
        auto by_scalar = [&](const Node* n, double c) {
          if (!n || n->inputs.size() != 2 || n->activation.kind != Activation::Kind::None) return kNoValue;
          for (std::size_t i = 0; i < 2; ++i)
            if (const auto k = scalar_input(g, *n, i); k && std::abs(*k - c) <= 1e-6 * std::max(1.0, std::abs(c)))
              return n->inputs[1 - i];
          return kNoValue;
        };
        auto single = [&](ValueId v, const char* op) { return v != kNoValue && single_use(v) ? made_by(v, op) : nullptr; };
        Node* m = single(by_scalar(&mul, 0.5), "Mul");
        for (int side = 0; m && side < 2 && x == kNoValue; ++side) {
          const ValueId a = m->inputs[static_cast<std::size_t>(side)];
          Node* add1 = single(m->inputs[static_cast<std::size_t>(1 - side)], "Add");
          Node* th = single(by_scalar(add1, 1.0), "Tanh");
          Node* inner = th ? single(th->inputs[0], "Mul") : nullptr;
          Node* sum = single(by_scalar(inner, std::sqrt(2.0 / std::numbers::pi)), "Add");
          Node* kc = single(beside(sum, a), "Mul");
          Node* cube = single(by_scalar(kc, 0.044715), "Mul");
          Node* sq = single(beside(cube, a), "Mul");
          if (!sq || sq->inputs[0] != a || sq->inputs[1] != a || m->activation.kind != Activation::Kind::None) continue;
          if (add1->activation.kind != Activation::Kind::None || sum->activation.kind != Activation::Kind::None ||
              cube->activation.kind != Activation::Kind::None || sq->activation.kind != Activation::Kind::None)
            continue;
          act.kind = Activation::Kind::GeluTanh;
          x = a, chain = {m, add1, th, inner, sum, kc, cube, sq}, reads_of_x = 5;
        }
      }
      if (x == kNoValue || g.value(x).dtype != DType::f32 || is_graph_output(g, x)) continue;
      // Only the pattern reads x, so its producer can apply the activation in
      // place.
      const auto p = u.prod[static_cast<std::size_t>(x)];
      if (p < 0 || u.count[static_cast<std::size_t>(x)] != reads_of_x) continue;
      Node& producer = g.nodes[static_cast<std::size_t>(p)];
      if (!takes_activation(producer.op_type) || producer.activation.kind != Activation::Kind::None) continue;
      if (producer.outputs.size() != 1) continue;
      if (!forward_value(g, mul.outputs[0], x)) continue;
      producer.activation = act;
      for (Node* n : chain) drop(*n);
      drop(mul);
      changed = true;
      break;  // indices moved: recompute producers and uses
    }
    if (changed) g.remove_dead();
  }
}

// Producers whose kernels carry an activation epilogue.
bool takes_activation(const std::string& op) {
  return op == "Conv" || op == "Gemm" || op == "MatMul" || op == "Add" || op == "BatchNormalization" ||
         op == "LayerNormalization";
}

void fuse_activations(Graph& g) {
  auto prod = g.producers();
  auto uses = g.use_counts();
  for (auto& n : g.nodes) {
    auto act = activation_of(g, n);
    if (!act) continue;
    const ValueId x = n.inputs[0];
    const auto p = prod[static_cast<std::size_t>(x)];
    if (p < 0 || uses[static_cast<std::size_t>(x)] != 1 || is_graph_output(g, x)) continue;
    Node& producer = g.nodes[static_cast<std::size_t>(p)];
    if (!takes_activation(producer.op_type) || producer.activation.kind != Activation::Kind::None) continue;
    if (producer.outputs.size() != 1 && !(producer.outputs.size() > 1 && producer.outputs[1] == kNoValue)) continue;
    const ValueId y = n.outputs[0];
    if (!forward_value(g, y, x)) continue;
    producer.activation = *act;
    n.inputs.clear();
    n.outputs.assign(1, kNoValue);
  }
  g.remove_dead();
}

// The M values of a float constant that is a scalar or varies along its
// last axis only (M elements, the last axis M long), as a bias or scale of a
// GEMM's M columns; nullopt for any other constant.
std::optional<std::vector<float>> column_values(const Tensor& t, std::int64_t M) {
  const std::int64_t count = t.numel();
  if (t.dtype() != DType::f32 || (count != 1 && (count != M || t.shape().back() != M))) return std::nullopt;
  std::vector<float> v(static_cast<std::size_t>(M));
  for (std::int64_t j = 0; j < M; ++j) v[static_cast<std::size_t>(j)] = t.f32()[count == 1 ? 0 : j];
  return v;
}

// A MatMul of [..., K] by a constant [K, M] whose only reader adds a
// constant bias along the last axis (a linear layer as torch exports it:
// ConvNeXt's and the transformers' MLPs and projections) becomes a Gemm with
// that bias as C, over the rows of all leading axes:
//   Add(MatMul(x, W), b) [act]  ->  Reshape(Gemm(Reshape(x, [rows, K]), W, b) [act], shape)
// so that the bias and the activation already folded into the Add (GELU) run
// in the Gemm's epilogue instead of as a pass of their own over the tokens.
// (The reshapes are views.) Runs after the activations are folded.
void matmul_bias_to_gemm(Graph& g) {
  const Uses u(g);
  const std::size_t count = g.nodes.size();
  for (std::size_t ai = 0; ai < count; ++ai) {
    const Node& add = g.nodes[ai];
    if (add.op_type != "Add" || add.inputs.size() != 2 || add.outputs.size() != 1) continue;
    std::int32_t mi = -1;
    ValueId bias = kNoValue;
    for (std::size_t side = 0; side < 2 && mi < 0; ++side) {
      const ValueId v = add.inputs[side];
      const Node* mm = u.made_by(v, "MatMul");
      if (!mm || !u.single_use(v) || mm->activation.kind != Activation::Kind::None) continue;
      mi = u.prod[static_cast<std::size_t>(v)];
      bias = add.inputs[1 - side];
    }
    if (mi < 0) continue;
    const Node& mm = g.nodes[static_cast<std::size_t>(mi)];
    if (!g.is_constant(mm.inputs[1]) || !g.is_constant(bias)) continue;
    const Value &x = g.value(mm.inputs[0]), &w = g.value(mm.inputs[1]), &b = g.value(bias);
    const Shape y_shape = g.value(add.outputs[0]).shape;
    if (x.dtype != DType::f32 || w.dtype != DType::f32 || b.dtype != DType::f32 || x.shape.size() < 2 ||
        w.shape.size() != 2 || b.shape.size() > x.shape.size() || y_shape != g.value(mm.outputs[0]).shape)
      continue;
    // The bias varies along the last axis at most.
    const std::int64_t K = w.shape[0], M = w.shape[1], rows = element_count(x.shape) / std::max<std::int64_t>(1, K);
    std::optional<std::vector<float>> c = column_values(*b.constant, M);
    // (A 0 in the Reshapes' shapes would mean "copy the input's dimension".)
    if (!c || element_count(y_shape) == 0 || rows == 0) continue;

    const std::string name = mm.name;
    const ValueId a = mm.inputs[0], w_id = mm.inputs[1], out = add.outputs[0];
    const bool flatten = x.shape.size() > 2;
    Node gemm{name, "Gemm", {a, w_id, g.add_constant(name + ".bias", Tensor::from_f32({M}, std::move(*c)))},
              {out}, {}, g.nodes[ai].activation};
    drop(g.nodes[ai]);
    if (flatten) {
      // [..., K] -> [rows, K] -> Gemm -> [rows, M] -> [..., M]
      const ValueId a2 = g.add_value(name + ".rows", DType::f32, {rows, K}, true);
      const ValueId y2 = g.add_value(name + ".gemm", DType::f32, {rows, M}, true);
      const ValueId s_in = g.add_constant(name + ".rows_shape", Tensor::from_i64({2}, {rows, K}));
      const ValueId s_out = g.add_constant(
          name + ".out_shape", Tensor::from_i64({static_cast<std::int64_t>(y_shape.size())}, y_shape));
      gemm.inputs[0] = a2;
      gemm.outputs = {y2};
      g.nodes.push_back(Node{name + ".to_rows", "Reshape", {a, s_in}, {a2}, {}, Activation::none()});
      g.nodes.push_back(Node{name + ".from_rows", "Reshape", {y2, s_out}, {out}, {}, Activation::none()});
    }
    g.nodes[static_cast<std::size_t>(mi)] = std::move(gemm);
  }
  g.remove_dead();
}

// A Mul by a constant that varies along one axis, where that axis is a
// Gemm's columns seen through views and transposes, folds into the Gemm's B
// and C (ConvNeXt's layer scale: Linear -> permute -> Mul(gamma [C, 1, 1]);
// a pass over the whole activation per block otherwise):
//   Mul(Transpose(Reshape(Gemm(a, B, c))), gamma) -> Transpose(Reshape(Gemm(a, B diag(gamma), c gamma)))
// Only where every value on the way has no other reader and the Gemm no
// activation. Runs after matmul_bias_to_gemm.
void fold_column_scale_into_gemm(Graph& g) {
  bool changed = true;
  while (changed) {
    changed = false;
    const Uses u(g);
    for (std::size_t mi = 0; mi < g.nodes.size() && !changed; ++mi) {
      const Node& mul = g.nodes[mi];
      if (mul.op_type != "Mul" || mul.inputs.size() != 2 || mul.activation.kind != Activation::Kind::None) continue;
      for (std::size_t side = 0; side < 2 && !changed; ++side) {
        const ValueId v = mul.inputs[side], s = mul.inputs[1 - side];
        if (!g.is_constant(s) || g.is_constant(v) || g.value(s).dtype != DType::f32) continue;
        const Shape &ss = g.value(s).shape, &vs = g.value(v).shape;
        if (ss.size() > vs.size() || g.value(mul.outputs[0]).shape != vs) continue;
        // The one axis of v along which the constant varies.
        std::int64_t axis = -1;
        bool one_axis = true;
        for (std::size_t d = 0; d < ss.size(); ++d) {
          if (ss[d] == 1) continue;
          one_axis = one_axis && axis < 0;
          axis = static_cast<std::int64_t>(d + vs.size() - ss.size());
        }
        if (!one_axis || axis < 0) continue;
        // Back through single-reader views and transposes to a Gemm's columns.
        ValueId cur = v;
        std::int64_t a = axis;
        Node* gemm = nullptr;
        while (u.single_use(cur)) {
          const auto p = u.prod[static_cast<std::size_t>(cur)];
          if (p < 0) break;
          Node& n = g.nodes[static_cast<std::size_t>(p)];
          const Shape& out = g.value(cur).shape;
          if (n.op_type == "Transpose") {
            // perm's default reverses the axes; negative entries count from the end.
            const auto rank = static_cast<std::int64_t>(out.size());
            const auto perm = n.attrs.get_ints("perm", {});
            if (!perm.empty() && perm.size() != out.size()) break;
            a = perm.empty() ? rank - 1 - a : perm[static_cast<std::size_t>(a)];
            if (a < 0) a += rank;
            if (a < 0 || a >= rank) break;
          } else if (n.op_type == "Reshape") {
            const Shape& in = g.value(n.inputs[0]).shape;
            if (a + 1 != static_cast<std::int64_t>(out.size()) || in.empty() || in.back() != out.back()) break;
            a = static_cast<std::int64_t>(in.size()) - 1;
          } else {
            if (n.op_type == "Gemm" && a == 1 && n.activation.kind == Activation::Kind::None) gemm = &n;
            break;
          }
          cur = n.inputs[0];
        }
        if (!gemm || gemm->attrs.get_int("transA", 0) != 0 || !g.is_constant(gemm->inputs[1])) continue;
        const bool has_c = gemm->inputs.size() > 2 && gemm->inputs[2] != kNoValue;
        if (has_c && !g.is_constant(gemm->inputs[2])) continue;
        const Tensor& B = *g.value(gemm->inputs[1]).constant;
        const bool tb = gemm->attrs.get_int("transB", 0) != 0;
        if (B.dtype() != DType::f32 || B.shape().size() != 2) continue;
        const std::int64_t K = tb ? B.shape()[1] : B.shape()[0], M = tb ? B.shape()[0] : B.shape()[1];
        const Tensor& gamma = *g.value(s).constant;
        if (gamma.numel() != M) continue;
        std::optional<std::vector<float>> c;
        if (has_c && !(c = column_values(*g.value(gemm->inputs[2]).constant, M))) continue;
        // Everything read from the graph's values first: add_constant may move them.
        Tensor scaled = B;
        const std::span<const float> gm = gamma.f32_span();
        for (std::int64_t k = 0; k < K; ++k)
          for (std::int64_t j = 0; j < M; ++j)
            scaled.f32()[tb ? j * K + k : k * M + j] *= gm[static_cast<std::size_t>(j)];
        for (std::int64_t j = 0; c && j < M; ++j) (*c)[static_cast<std::size_t>(j)] *= gm[static_cast<std::size_t>(j)];
        if (!forward_value(g, g.nodes[mi].outputs[0], v)) continue;
        drop(g.nodes[mi]);
        // New constants: the originals may have other readers.
        const std::string name = gemm->name;
        gemm->inputs[1] = g.add_constant(name + ".weight_scaled", std::move(scaled));
        if (c) gemm->inputs[2] = g.add_constant(name + ".bias_scaled", Tensor::from_f32({M}, std::move(*c)));
        changed = true;
      }
    }
    if (changed) g.remove_dead();
  }
}

// An average pool read only by a 1x1 convolution (stride 1, unpadded, one
// group) with fewer output channels M than input channels C runs after the
// convolution's channel mixing instead of before it: both are linear and the
// pool's window is the same for every channel, so pool(W x) = W pool(x). Where
// the pool keeps the map's size (stride 1, "same" padding: Inception's
// branch_pool, 768 -> 192 channels) the convolution costs the same either
// way and the pool runs on M channels instead of C. The bias and the
// activation follow the pool:
//   Conv(AveragePool(x), W, b) [act]  ->  Add(AveragePool(Conv(x, W)), b) [act]
// (no Add without a bias and an activation).
void pool_after_pointwise_conv(Graph& g) {
  const auto prod = g.producers();
  const auto uses = g.use_counts();
  std::vector<std::pair<std::size_t, std::size_t>> swaps;  // (pool, conv) node indices
  for (std::size_t ci = 0; ci < g.nodes.size(); ++ci) {
    const Node& conv = g.nodes[ci];
    if (conv.op_type != "Conv" || conv.inputs.size() < 2 || conv.outputs.size() != 1 || conv.inputs[0] == kNoValue)
      continue;
    const Tensor* w = g.constant_input(conv, 1);
    if (!w || w->dtype() != DType::f32 || w->shape().size() != 4 || w->shape()[2] != 1 || w->shape()[3] != 1) continue;
    const std::int64_t m = w->shape()[0], c = w->shape()[1];
    if (conv.inputs.size() > 2 && conv.inputs[2] != kNoValue) {
      const Tensor* b = g.constant_input(conv, 2);
      if (!b || b->dtype() != DType::f32 || b->numel() != m) continue;
    }
    bool unit = conv.attrs.get_int("group", 1) == 1 &&
                conv.attrs.get_string("auto_pad", "NOTSET") != "SAME_UPPER" &&
                conv.attrs.get_string("auto_pad", "NOTSET") != "SAME_LOWER";
    for (auto v : conv.attrs.get_ints("strides", {})) unit = unit && v == 1;
    for (auto v : conv.attrs.get_ints("pads", {})) unit = unit && v == 0;
    if (!unit || m >= c) continue;
    const ValueId p = conv.inputs[0];
    const auto pi = prod[static_cast<std::size_t>(p)];
    if (pi < 0 || uses[static_cast<std::size_t>(p)] != 1 || is_graph_output(g, p)) continue;
    const Node& pool = g.nodes[static_cast<std::size_t>(pi)];
    if (pool.op_type != "AveragePool" || pool.outputs.size() != 1 || pool.activation.kind != Activation::Kind::None ||
        pool.inputs.empty() || pool.inputs[0] == kNoValue)
      continue;
    const Value& x = g.value(pool.inputs[0]);
    const Shape& ps = g.value(p).shape;
    bool same_size = x.dtype == DType::f32 && x.shape.size() == 4 && ps.size() == 4 && x.shape[1] == c &&
                     ps[2] == x.shape[2] && ps[3] == x.shape[3];
    for (auto v : pool.attrs.get_ints("strides", {})) same_size = same_size && v == 1;
    if (same_size) swaps.emplace_back(static_cast<std::size_t>(pi), ci);
  }
  for (const auto& [pi, ci] : swaps) {
    // Indices, not references: new nodes go to the end of g.nodes.
    const ValueId x = g.nodes[pi].inputs[0];
    const ValueId y = g.nodes[ci].outputs[0];
    const Shape xs = g.value(x).shape;
    const Shape ys = g.value(y).shape;
    const std::int64_t m = ys[1];
    const Activation act = g.nodes[ci].activation;
    const Tensor* b = g.nodes[ci].inputs.size() > 2 && g.nodes[ci].inputs[2] != kNoValue
                          ? g.constant_input(g.nodes[ci], 2)
                          : nullptr;
    const bool add = b || act.kind != Activation::Kind::None;
    Tensor bias(DType::f32, {1, m, 1, 1});
    for (std::int64_t k = 0; k < m; ++k) bias.f32()[k] = b ? b->f32()[k] : 0.f;
    const std::string conv_name = g.nodes[ci].name, pool_name = g.nodes[pi].name;
    const ValueId mixed = g.add_value(conv_name + ".before_pool", DType::f32, {xs[0], m, xs[2], xs[3]}, true);
    const ValueId pooled = add ? g.add_value(pool_name + ".after_conv", DType::f32, ys, true) : y;
    const ValueId bias_id = add ? g.add_constant(conv_name + ".bias_after_pool", std::move(bias)) : kNoValue;
    Node& conv = g.nodes[ci];
    conv.inputs = {x, conv.inputs[1]};
    conv.outputs = {mixed};
    conv.activation = Activation::none();
    Node& pool = g.nodes[pi];
    pool.inputs = {mixed};
    pool.outputs = {pooled};
    if (add) g.nodes.push_back(Node{conv_name + ".bias", "Add", {pooled, bias_id}, {y}, {}, act});
  }
}

// A two-operand Einsum that is a batched matrix product (MaxViT's attention:
// "B G H I D, B G H J D -> B G H I J" and "B G H I J, B G H J D -> B G H I D")
// becomes a MatMul, after a Transpose of B's last two axes where it contracts
// B's last axis: both backends run MatMul as GEMMs, Einsum only on the
// reference kernel.
void einsum_to_matmul(Graph& g) {
  const std::size_t count = g.nodes.size();
  for (std::size_t ni = 0; ni < count; ++ni) {
    const Node& n = g.nodes[ni];
    if (n.op_type != "Einsum" || n.inputs.size() != 2 || n.outputs.size() != 1 || n.inputs[0] == kNoValue ||
        n.inputs[1] == kNoValue)
      continue;
    std::string eq;
    for (char c : n.attrs.get_string("equation", ""))
      if (c != ' ') eq += c;
    const auto arrow = eq.find("->"), comma = eq.find(',');
    if (arrow == std::string::npos || comma == std::string::npos || comma > arrow ||
        eq.find('.') != std::string::npos)
      continue;
    const std::string a = eq.substr(0, comma), b = eq.substr(comma + 1, arrow - comma - 1), y = eq.substr(arrow + 2);
    const std::size_t r = a.size();
    auto distinct = [](std::string t) {
      std::sort(t.begin(), t.end());
      return std::adjacent_find(t.begin(), t.end()) == t.end();
    };
    if (r < 2 || b.size() != r || y.size() != r || !distinct(a) || !distinct(b) || !distinct(y)) continue;
    const std::string batch = a.substr(0, r - 2);
    if (b.compare(0, r - 2, batch) != 0 || y.compare(0, r - 2, batch) != 0) continue;
    const char i = a[r - 2], k = a[r - 1];
    if (y[r - 2] != i) continue;
    // B is [..., k, j] (a plain product) or [..., j, k] (B transposed).
    const bool plain = b[r - 2] == k && y[r - 1] == b[r - 1] && b[r - 1] != i;
    const bool transpose_b = b[r - 1] == k && y[r - 1] == b[r - 2] && b[r - 2] != i;
    if (!plain && !transpose_b) continue;
    const Value &va = g.value(n.inputs[0]), &vb = g.value(n.inputs[1]);
    if (va.dtype != DType::f32 || vb.dtype != DType::f32 || va.shape.size() != r || vb.shape.size() != r ||
        !std::equal(va.shape.begin(), va.shape.end() - 2, vb.shape.begin()))
      continue;
    ValueId rhs = n.inputs[1];
    if (transpose_b) {
      Shape ts = vb.shape;
      std::swap(ts[r - 2], ts[r - 1]);
      std::vector<std::int64_t> perm(r);
      for (std::size_t d = 0; d < r; ++d) perm[d] = static_cast<std::int64_t>(d);
      std::swap(perm[r - 2], perm[r - 1]);
      const std::string tname = n.name + ".transpose_b";
      rhs = g.add_value(tname, DType::f32, ts, true);
      Attributes at;
      at.set("perm", perm);
      g.nodes.push_back(Node{tname, "Transpose", {g.nodes[ni].inputs[1]}, {rhs}, at, Activation::none()});
    }
    Node& mm = g.nodes[ni];  // after the push_back
    mm.op_type = "MatMul";
    mm.attrs = {};
    mm.inputs = {mm.inputs[0], rhs};
  }
}

}  // namespace

void canonicalize(Graph& g, const CanonicalizeOptions& options, int /*threads*/) {
  drop_identities(g);
  clip_bounds_to_attributes(g);
  fold_pad_into_avgpool(g);
  simplify_pow(g);
  einsum_to_matmul(g);
  // Before the spatial means become pools: on a rank-3 [N, tokens, C] tensor
  // (ViT) a LayerNorm's last-axis ReduceMean is also a "spatial" one.
  fuse_layer_norm(g);
  fuse_channel_layer_norm(g);
  reduce_mean_to_global_pool(g);
  if (options.fold_batchnorm) fold_batchnorm(g);
  if (options.fuse_activations) {
    fuse_gated_activations(g);
    fuse_activations(g);
  }
  matmul_bias_to_gemm(g);
  fold_column_scale_into_gemm(g);
  pool_after_pointwise_conv(g);
  g.sort();
}

void prepare_graph(Graph& g, int threads) {
  g.sort();
  infer_shapes(g, threads);
  g.remove_dead();
  canonicalize(g, {}, threads);
  for (auto o : g.outputs)
    if (g.value(o).dtype != DType::f32)
      throw Error(ErrorKind::Unsupported, "output '" + g.value(o).name + "' is " + dtype_name(g.value(o).dtype) +
                                              "; vkfuse returns float32 outputs");
}

}  // namespace vkfuse::graph
