#include "graph/ops.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

namespace vkfuse::graph {

namespace {
const std::vector<OpDef>& op_table() {
  static const std::vector<OpDef> table = [] {
    std::vector<OpDef> t;
    register_conv_ops(t);
    register_pool_ops(t);
    register_norm_ops(t);
    register_gemm_ops(t);
    register_elementwise_ops(t);
    register_shape_ops(t);
    register_reduce_ops(t);
    register_layout_ops(t);
    register_resize_ops(t);
    return t;
  }();
  return table;
}
}  // namespace

const OpDef* find_op(std::string_view op_type) {
  for (const auto& d : op_table())
    if (d.op_type == op_type) return &d;
  return nullptr;
}

std::vector<std::string> supported_ops() {
  std::vector<std::string> names;
  for (const auto& d : op_table())
    if (!d.internal) names.push_back(d.op_type);
  std::sort(names.begin(), names.end());
  return names;
}

static std::string node_label(const Node& node) {
  return "node '" + node.name + "' (" + node.op_type + ")";
}

void fail_node(const Node& node, const std::string& what) {
  throw Error(ErrorKind::InvalidModel, node_label(node) + ": " + what);
}

void unsupported_node(const Node& node, const std::string& what) {
  throw Error(ErrorKind::Unsupported, node_label(node) + ": " + what);
}

static const OpDef& require_op(const Node& node) {
  const OpDef* def = find_op(node.op_type);
  if (!def)
    throw Error(ErrorKind::Unsupported, "unsupported operator '" + node.op_type + "' at node '" + node.name +
                                            "'; vkfuse supports: " + [] {
                                              std::string s;
                                              for (auto& n : supported_ops()) s += (s.empty() ? "" : ", ") + n;
                                              return s;
                                            }());
  return *def;
}

std::vector<OutputInfo> infer_node(const OpContext& ctx, std::span<const InputInfo> inputs) {
  return require_op(ctx.node).infer(ctx, inputs);
}

std::vector<InputInfo> input_infos(std::span<const Tensor* const> inputs) {
  std::vector<InputInfo> infos(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i]) {
      infos[i].present = false;
      continue;
    }
    infos[i].dtype = inputs[i]->dtype();
    infos[i].shape = inputs[i]->shape();
    infos[i].constant = inputs[i];
  }
  return infos;
}

std::vector<Tensor> evaluate_node(const OpContext& ctx, std::span<const Tensor* const> inputs) {
  const OpDef& def = require_op(ctx.node);
  auto out_infos = def.infer(ctx, input_infos(inputs));
  std::vector<Tensor> outputs;
  outputs.reserve(out_infos.size());
  for (auto& o : out_infos) outputs.emplace_back(o.dtype, o.shape);
  def.eval(ctx, inputs, outputs);
  return outputs;
}

std::int64_t node_flops(const Node& node, std::span<const InputInfo> inputs,
                        std::span<const OutputInfo> outputs) {
  if (outputs.empty()) return 0;
  const std::int64_t out = element_count(outputs[0].shape);
  auto in_shape = [&](std::size_t i) -> const Shape& {
    static const Shape empty;
    return i < inputs.size() ? inputs[i].shape : empty;
  };
  const std::string& op = node.op_type;
  if (op == "Conv") {
    const Shape& w = in_shape(1);  // [M, C/group, kh, kw...]
    std::int64_t per_out = 1;
    for (std::size_t i = 1; i < w.size(); ++i) per_out *= w[i];
    return 2 * out * per_out;
  }
  if (op == "Gemm" || op == "MatMul") {
    const Shape& a = in_shape(0);
    std::int64_t k = 0;
    if (op == "Gemm") k = node.attrs.get_int("transA", 0) ? a.front() : a.back();
    else k = a.empty() ? 1 : a.back();
    return 2 * out * k;
  }
  if (op == "MaxPool" || op == "AveragePool") {
    std::int64_t window = 1;
    for (auto k : node.attrs.get_ints("kernel_shape")) window *= k;
    return out * window;
  }
  if (op == "ConvTranspose") {
    // Each input element meets M/group output channels over the kernel window.
    const Shape& w = in_shape(1);  // [C, M/group, kh, kw...]
    std::int64_t per_in = 1;
    for (std::size_t i = 1; i < w.size(); ++i) per_in *= w[i];
    return 2 * element_count(in_shape(0)) * per_in;
  }
  if (op == "GlobalAveragePool" || op.rfind("Reduce", 0) == 0) return element_count(in_shape(0));
  if (op == "InstanceNormalization" || op == "LayerNormalization" || op == kChannelLayerNorm)
    return 5 * element_count(in_shape(0));
  if (op == "Shape" || op == "Gather" || op == "Unsqueeze" || op == "Squeeze" || op == "Reshape" ||
      op == "Flatten" || op == "Identity" || op == "Dropout" || op == "Constant" || op == "Concat" ||
      op == "Transpose" || op == "Pad" || op == "Slice" || op == "Split" || op == "Expand" || op == "Tile" ||
      op == "DepthToSpace" || op == "SpaceToDepth" || op == "ConstantOfShape" || op == "Range" || op == "Cast")
    return 0;
  return out;  // elementwise-like
}

std::vector<InputInfo> input_infos(const Graph& g, const Node& n) {
  std::vector<InputInfo> ins;
  for (auto v : n.inputs) {
    InputInfo info;
    if (v == kNoValue) {
      info.present = false;
    } else {
      const Value& val = g.value(v);
      info.dtype = val.dtype;
      info.shape = val.shape;
      info.constant = val.constant ? &*val.constant : nullptr;
    }
    ins.push_back(info);
  }
  return ins;
}

std::int64_t node_flops(const Graph& g, const Node& node) {
  const std::vector<InputInfo> ins = input_infos(g, node);
  std::vector<OutputInfo> outs;
  for (auto v : node.outputs)
    if (v != kNoValue) outs.push_back({g.value(v).dtype, g.value(v).shape});
  return node_flops(node, ins, outs);
}

std::int64_t graph_flops(const Graph& g) {
  std::int64_t total = 0;
  for (const auto& n : g.nodes) total += node_flops(g, n);
  return total;
}

Shape broadcast_shapes(const Node& node, const Shape& a, const Shape& b) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank, 1);
  for (std::size_t i = 0; i < rank; ++i) {
    std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      fail_node(node, "shapes " + shape_string(a) + " and " + shape_string(b) + " cannot be broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

void apply_activation(const Node& node, Tensor& t) {
  if (node.activation.kind == Activation::Kind::None) return;
  float* p = t.f32();
  const std::int64_t n = t.numel();
  for (std::int64_t i = 0; i < n; ++i) p[i] = node.activation.apply(p[i]);
}

void finish_data_movement(const OpContext& ctx, Tensor& out) {
  if (ctx.node.activation.kind == Activation::Kind::None) return;
  if (out.dtype() != DType::f32)
    unsupported_node(ctx.node, std::string("fused ") + ctx.node.activation.name() + " on an int64 result");
  apply_activation(ctx.node, out);
}

std::int64_t normalize_axis(const Node& node, std::int64_t axis, std::int64_t rank, const char* what) {
  if (axis < -rank || axis >= rank)
    fail_node(node, std::string(what) + " " + std::to_string(axis) + " is out of range for rank " +
                        std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

std::vector<std::int64_t> row_major_strides(const Shape& s) {
  std::vector<std::int64_t> st(s.size(), 1);
  for (std::size_t k = s.size(); k-- > 1;) st[k - 1] = st[k] * s[k];
  return st;
}

const InputInfo* opt_info(std::span<const InputInfo> inputs, std::size_t i) {
  if (i >= inputs.size() || !inputs[i].present) return nullptr;
  return &inputs[i];
}

const Tensor* opt_tensor(std::span<const Tensor* const> inputs, std::size_t i) {
  return i < inputs.size() ? inputs[i] : nullptr;
}

const InputInfo& required_info(const Node& node, std::span<const InputInfo> inputs, std::size_t i, const char* what) {
  const InputInfo* in = opt_info(inputs, i);
  if (!in) fail_node(node, std::string("missing required input ") + std::to_string(i) + " (" + what + ")");
  return *in;
}

SoftmaxLayout softmax_layout(const Node& node, std::int64_t opset, const Shape& x) {
  const auto rank = static_cast<std::int64_t>(x.size());
  const bool legacy = opset < 13;
  std::int64_t axis = node.attrs.get_int("axis", legacy ? 1 : -1);
  if (rank == 0) fail_node(node, "input must have rank >= 1, got a scalar");
  if (axis < -rank || axis >= rank)
    fail_node(node, "axis " + std::to_string(axis) + " is out of range for input " + shape_string(x));
  if (axis < 0) axis += rank;
  SoftmaxLayout l;
  for (std::int64_t i = 0; i < axis; ++i) l.outer *= x[static_cast<std::size_t>(i)];
  if (legacy) {
    for (std::int64_t i = axis; i < rank; ++i) l.len *= x[static_cast<std::size_t>(i)];
  } else {
    l.len = x[static_cast<std::size_t>(axis)];
    for (std::int64_t i = axis + 1; i < rank; ++i) l.inner *= x[static_cast<std::size_t>(i)];
  }
  return l;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return -floor_div(-a, b); }

std::vector<std::int64_t> to3(const std::vector<std::int64_t>& v, std::int64_t fill) {
  std::vector<std::int64_t> r(3 - v.size(), fill);
  r.insert(r.end(), v.begin(), v.end());
  return r;
}

std::string ints_string(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

void parallel_for(int threads, std::int64_t n, const std::function<void(std::int64_t)>& body) {
  if (threads <= 1 || n <= 1) {
    for (std::int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  const auto workers = static_cast<std::int64_t>(std::min<std::int64_t>(threads, n));
  // Items are taken one at a time (their costs may differ widely); the first
  // exception stops the taking and is rethrown here.
  std::atomic<std::int64_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto work = [&] {
    for (std::int64_t i; (i = next.fetch_add(1)) < n;) {
      try {
        body(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        next = n;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(workers - 1));
  for (std::int64_t w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
  for (auto& th : pool) th.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace vkfuse::graph
