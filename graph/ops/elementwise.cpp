// graph/ops/elementwise.cpp — Add, Mul, Sub, Div (numpy broadcasting, float32
// and int64), the unary activations and Clip.
//
// Reference semantics follow ONNX opsets 11–17:
//   * binary ops broadcast multidirectionally; both operands must share a dtype;
//   * int64 Div truncates toward zero (C++ and ONNX Runtime semantics; numpy's
//     floor division differs only for operands of mixed sign) and rejects a
//     zero divisor with a clear error instead of undefined behaviour;
//   * int64 Add/Sub/Mul wrap around on overflow (two's complement);
//   * Clip takes its bounds from inputs 1 and 2 (opset >= 11) or from the
//     min/max attributes (opset < 11, and whatever opset after the
//     canonicalizer has rewritten constant bounds into attributes); a missing
//     bound is +-infinity (int64: the type's limits).
// Every float kernel applies the node's fused activation to its output.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>

#include "graph/ops.h"

namespace vkfuse::graph {

namespace {


// Splits [0, n) into chunks for parallel_for; each chunk gets a contiguous range.
constexpr std::int64_t kChunk = 1 << 14;

// ---------------------------------------------------------------------------
// Binary broadcasting ops.

enum class BinOp { Add, Sub, Mul, Div };

const char* binop_name(BinOp op) {
  switch (op) {
    case BinOp::Add: return "Add";
    case BinOp::Sub: return "Sub";
    case BinOp::Mul: return "Mul";
    case BinOp::Div: return "Div";
  }
  return "?";
}

std::vector<OutputInfo> infer_binary(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  if (inputs.size() > 2 && opt_info(inputs, 2))
    fail_node(node, "takes 2 inputs, got " + std::to_string(inputs.size()));
  const InputInfo& a = required_info(node, inputs, 0, "A");
  const InputInfo& b = required_info(node, inputs, 1, "B");
  if (a.dtype != b.dtype)
    fail_node(node, std::string("operand types differ: ") + dtype_name(a.dtype) + " and " + dtype_name(b.dtype));
  return {OutputInfo{a.dtype, broadcast_shapes(node, a.shape, b.shape)}};
}

// Strides of `in` (row-major) laid against the output shape: 0 on broadcast
// and on leading (missing) dims.
std::vector<std::int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  const std::size_t rank = out.size();
  std::vector<std::int64_t> strides(rank, 0);
  std::int64_t s = 1;
  for (std::size_t k = 0; k < in.size(); ++k) {
    const std::size_t di = in.size() - 1 - k;
    const std::size_t dout = rank - 1 - k;
    strides[dout] = in[di] == 1 ? 0 : s;
    s *= in[di];
  }
  return strides;
}

template <class T, class F>
void broadcast_apply(int threads, const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const Shape& oshape = out.shape();
  const std::size_t rank = oshape.size();
  const auto sa = broadcast_strides(a.shape(), oshape);
  const auto sb = broadcast_strides(b.shape(), oshape);
  const T* pa = reinterpret_cast<const T*>(a.bytes());
  const T* pb = reinterpret_cast<const T*>(b.bytes());
  T* po = reinterpret_cast<T*>(out.bytes());
  const std::int64_t n = out.numel();
  if (n == 0) return;
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(threads, chunks, [&](std::int64_t c) {
    const std::int64_t begin = c * kChunk;
    const std::int64_t end = std::min(n, begin + kChunk);
    // Decompose `begin` into a multi-index, then walk it like an odometer.
    std::vector<std::int64_t> idx(rank, 0);
    std::int64_t rem = begin, oa = 0, ob = 0;
    for (std::size_t k = rank; k-- > 0;) {
      idx[k] = rem % oshape[k];
      rem /= oshape[k];
      oa += idx[k] * sa[k];
      ob += idx[k] * sb[k];
    }
    for (std::int64_t i = begin; i < end; ++i) {
      po[i] = f(pa[oa], pb[ob]);
      for (std::size_t k = rank; k-- > 0;) {
        ++idx[k];
        oa += sa[k];
        ob += sb[k];
        if (idx[k] < oshape[k]) break;
        oa -= sa[k] * idx[k];
        ob -= sb[k] * idx[k];
        idx[k] = 0;
      }
    }
  });
}

void eval_binary(BinOp op, const OpContext& ctx, std::span<const Tensor* const> inputs,
                 std::span<Tensor> outputs) {
  const Tensor& a = *inputs[0];
  const Tensor& b = *inputs[1];
  Tensor& out = outputs[0];
  if (a.dtype() == DType::f32) {
    switch (op) {
      case BinOp::Add: broadcast_apply<float>(ctx.threads, a, b, out, [](float x, float y) { return x + y; }); break;
      case BinOp::Sub: broadcast_apply<float>(ctx.threads, a, b, out, [](float x, float y) { return x - y; }); break;
      case BinOp::Mul: broadcast_apply<float>(ctx.threads, a, b, out, [](float x, float y) { return x * y; }); break;
      case BinOp::Div: broadcast_apply<float>(ctx.threads, a, b, out, [](float x, float y) { return x / y; }); break;
    }
    apply_activation(ctx.node, out);
    return;
  }
  if (ctx.node.activation.kind != Activation::Kind::None)
    unsupported_node(ctx.node, std::string("fused ") + ctx.node.activation.name() + " on an int64 " +
                                   binop_name(op));
  using U = std::uint64_t;
  auto wrap = [](U v) { return static_cast<std::int64_t>(v); };
  switch (op) {
    case BinOp::Add:
      broadcast_apply<std::int64_t>(ctx.threads, a, b, out,
                                    [&](std::int64_t x, std::int64_t y) { return wrap(U(x) + U(y)); });
      break;
    case BinOp::Sub:
      broadcast_apply<std::int64_t>(ctx.threads, a, b, out,
                                    [&](std::int64_t x, std::int64_t y) { return wrap(U(x) - U(y)); });
      break;
    case BinOp::Mul:
      broadcast_apply<std::int64_t>(ctx.threads, a, b, out,
                                    [&](std::int64_t x, std::int64_t y) { return wrap(U(x) * U(y)); });
      break;
    case BinOp::Div: {
      for (std::int64_t v : b.i64_span())
        if (v == 0) fail_node(ctx.node, "int64 division by zero");
      broadcast_apply<std::int64_t>(ctx.threads, a, b, out, [](std::int64_t x, std::int64_t y) {
        // INT64_MIN / -1 overflows; wrap like two's complement negation.
        if (y == -1) return static_cast<std::int64_t>(U(0) - U(x));
        return x / y;  // truncates toward zero
      });
      break;
    }
  }
}

OpDef binary_op(BinOp op) {
  return OpDef{binop_name(op), infer_binary,
               [op](const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
                 eval_binary(op, ctx, in, out);
               }};
}

// ---------------------------------------------------------------------------
// Unary activations (float32; Relu also int64).

std::vector<OutputInfo> infer_unary_float(const OpContext& ctx, std::span<const InputInfo> inputs,
                                          bool allow_int64) {
  const InputInfo& x = required_info(ctx.node, inputs, 0, "X");
  if (x.dtype != DType::f32 && !allow_int64)
    unsupported_node(ctx.node, std::string("input of type ") + dtype_name(x.dtype) + "; only float32 is supported");
  return {OutputInfo{x.dtype, x.shape}};
}

template <class F>
void unary_apply(const OpContext& ctx, const Tensor& x, Tensor& out, F f) {
  const float* px = x.f32();
  float* po = out.f32();
  const std::int64_t n = x.numel();
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(ctx.threads, chunks, [&](std::int64_t c) {
    const std::int64_t end = std::min(n, (c + 1) * kChunk);
    for (std::int64_t i = c * kChunk; i < end; ++i) po[i] = f(px[i]);
  });
  apply_activation(ctx.node, out);
}

template <class F>
OpDef unary_op(const char* name, F f) {
  return OpDef{name,
               [](const OpContext& ctx, std::span<const InputInfo> in) { return infer_unary_float(ctx, in, false); },
               [f](const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
                 unary_apply(ctx, *in[0], out[0], f(ctx.node));
               }};
}

// ---------------------------------------------------------------------------
// Clip.

// A scalar bound from input i (must be a single element), or nullopt.
std::optional<double> clip_bound_input(const Node& node, std::span<const Tensor* const> inputs, std::size_t i,
                                       const char* which) {
  const Tensor* t = opt_tensor(inputs, i);
  if (!t) return std::nullopt;
  if (t->numel() != 1)
    fail_node(node, std::string("Clip ") + which + " must be a scalar, got shape " + shape_string(t->shape()));
  return t->as_double(0);
}

std::vector<OutputInfo> infer_clip(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "input");
  for (std::size_t i = 1; i < 3; ++i) {
    const InputInfo* b = opt_info(inputs, i);
    if (!b) continue;
    const char* which = i == 1 ? "min" : "max";
    if (b->dtype != x.dtype)
      fail_node(node, std::string("Clip ") + which + " has type " + dtype_name(b->dtype) + ", input has " +
                          dtype_name(x.dtype));
    if (element_count(b->shape) != 1)
      fail_node(node, std::string("Clip ") + which + " must be a scalar, got shape " + shape_string(b->shape));
  }
  if (inputs.size() > 3 && opt_info(inputs, 3)) fail_node(node, "Clip takes at most 3 inputs");
  return {OutputInfo{x.dtype, x.shape}};
}

void eval_clip(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Node& node = ctx.node;
  const Tensor& x = *inputs[0];
  Tensor& out = outputs[0];
  std::optional<double> lo = clip_bound_input(node, inputs, 1, "min");
  std::optional<double> hi = clip_bound_input(node, inputs, 2, "max");
  if (!lo && node.attrs.has("min")) lo = node.attrs.get_float("min", 0.f);
  if (!hi && node.attrs.has("max")) hi = node.attrs.get_float("max", 0.f);

  if (x.dtype() == DType::f32) {
    const float fmin = lo ? static_cast<float>(*lo) : -std::numeric_limits<float>::infinity();
    const float fmax = hi ? static_cast<float>(*hi) : std::numeric_limits<float>::infinity();
    // numpy.clip order: min first, then max (so min > max yields max everywhere).
    unary_apply(ctx, x, out, [=](float v) { return std::min(std::max(v, fmin), fmax); });
    return;
  }
  if (node.activation.kind != Activation::Kind::None)
    unsupported_node(node, std::string("fused ") + node.activation.name() + " on an int64 Clip");
  // int64 bounds: read exactly from the int tensors when present.
  std::int64_t imin = std::numeric_limits<std::int64_t>::min();
  std::int64_t imax = std::numeric_limits<std::int64_t>::max();
  if (const Tensor* t = opt_tensor(inputs, 1)) imin = t->as_int(0);
  else if (lo) imin = static_cast<std::int64_t>(*lo);
  if (const Tensor* t = opt_tensor(inputs, 2)) imax = t->as_int(0);
  else if (hi) imax = static_cast<std::int64_t>(*hi);
  const std::int64_t* px = x.i64();
  std::int64_t* po = out.i64();
  for (std::int64_t i = 0; i < x.numel(); ++i) po[i] = std::min(std::max(px[i], imin), imax);
}

// ---------------------------------------------------------------------------
// Relu also runs on int64 (opset 14 allows it; shape arithmetic rarely needs it).

void eval_relu(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Tensor& x = *inputs[0];
  if (x.dtype() == DType::f32) {
    unary_apply(ctx, x, outputs[0], [](float v) { return v < 0.f ? 0.f : v; });  // NaN passes through
    return;
  }
  if (ctx.node.activation.kind != Activation::Kind::None)
    unsupported_node(ctx.node, std::string("fused ") + ctx.node.activation.name() + " on an int64 Relu");
  const std::int64_t* px = x.i64();
  std::int64_t* po = outputs[0].i64();
  for (std::int64_t i = 0; i < x.numel(); ++i) po[i] = px[i] > 0 ? px[i] : 0;
}

}  // namespace

void register_elementwise_ops(std::vector<OpDef>& table) {
  table.push_back(binary_op(BinOp::Add));
  table.push_back(binary_op(BinOp::Sub));
  table.push_back(binary_op(BinOp::Mul));
  table.push_back(binary_op(BinOp::Div));

  table.push_back(OpDef{"Relu",
                        [](const OpContext& ctx, std::span<const InputInfo> in) {
                          return infer_unary_float(ctx, in, true);
                        },
                        eval_relu});
  table.push_back(unary_op("LeakyRelu", [](const Node& n) {
    const float alpha = n.attrs.get_float("alpha", 0.01f);
    return [alpha](float v) { return v >= 0.f ? v : alpha * v; };
  }));
  table.push_back(unary_op("Sigmoid", [](const Node&) {
    return [](float v) { return static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(v)))); };
  }));
  table.push_back(unary_op("HardSigmoid", [](const Node& n) {
    const double alpha = n.attrs.get_float("alpha", 0.2f);
    const double beta = n.attrs.get_float("beta", 0.5f);
    return [alpha, beta](float v) {
      return static_cast<float>(std::max(0.0, std::min(1.0, alpha * static_cast<double>(v) + beta)));
    };
  }));
  table.push_back(unary_op("HardSwish", [](const Node&) {
    return [](float v) {
      const double x = v;
      return static_cast<float>(x * std::max(0.0, std::min(1.0, x / 6.0 + 0.5)));
    };
  }));
  table.push_back(OpDef{"Clip", infer_clip, eval_clip});
}

}  // namespace vkfuse::graph
