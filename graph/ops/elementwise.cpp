// graph/ops/elementwise.cpp — Add, Mul, Sub, Div, Mod, Pow (numpy broadcasting),
// PRelu, the variadic Min, Max, Mean, Sum, the unary activations and math
// (Relu, LeakyRelu, Sigmoid, HardSigmoid, HardSwish, Elu, Selu, Softplus,
// Softsign, Tanh, Sqrt, Exp, Log, Erf, Reciprocal, Ceil, Floor, Neg, Abs),
// Clip, the comparisons (Equal, Less, Greater, LessOrEqual, GreaterOrEqual),
// the logic ops (And, Or, Xor, Not) and Where.
//
// Reference semantics follow ONNX opsets 11–17:
//   * binary ops broadcast multidirectionally; both operands must share a dtype,
//     except Pow, whose float32 base may take an int64 exponent;
//   * int64 Div truncates toward zero (C++ and ONNX Runtime semantics; numpy's
//     floor division differs only for operands of mixed sign) and rejects a
//     zero divisor with a clear error instead of undefined behaviour;
//   * int64 Add/Sub/Mul/Sum/Pow/Neg/Abs wrap around on overflow (two's
//     complement); int64 Pow to a negative exponent truncates toward zero like
//     Div (1, -1 or 0) and rejects a zero base;
//   * PRelu's slope broadcasts unidirectionally to X;
//   * Min, Max, Mean, Sum take 1..N inputs and broadcast them all together;
//     float Min/Max propagate NaN (numpy.minimum/maximum);
//   * float math is computed in double and rounded once to float32;
//   * Clip takes its bounds from inputs 1 and 2 (opset >= 11) or from the
//     min/max attributes (opset < 11, and whatever opset after the
//     canonicalizer has rewritten constant bounds into attributes); a missing
//     bound is +-infinity (int64: the type's limits).
// Every float kernel applies the node's fused activation to its output.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>

#include "graph/ops.h"

namespace vkfuse::graph {

namespace {

// Splits [0, n) into chunks for parallel_for; each chunk gets a contiguous range.
constexpr std::int64_t kChunk = 1 << 14;

// The canonicalizer only fuses float activations; an int64 node carrying one
// is a plan vkfuse cannot run.
void reject_int64_activation(const Node& node) {
  if (node.activation.kind != Activation::Kind::None)
    unsupported_node(node, std::string("fused ") + node.activation.name() + " on an int64 " + node.op_type);
}

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

// out[i] = f(a[..], b[..]) over out's shape, which a and b broadcast to. `out`
// may alias `a` when both have out's shape (the variadic ops fold in place).
template <class T, class TA = T, class TB = TA, class F>
void broadcast_apply(int threads, const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const Shape& oshape = out.shape();
  const std::size_t rank = oshape.size();
  const auto sa = broadcast_strides(a.shape(), oshape);
  const auto sb = broadcast_strides(b.shape(), oshape);
  const TA* pa = reinterpret_cast<const TA*>(a.bytes());
  const TB* pb = reinterpret_cast<const TB*>(b.bytes());
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
  reject_int64_activation(ctx.node);
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

// Mod: fmod=0 (integers only) takes the divisor's sign, like Python's %;
// fmod=1 the dividend's, like C's fmod. Swin's shifted-window padding
// exports it (shape arithmetic, folded at load).
void eval_mod(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Tensor& a = *inputs[0];
  const Tensor& b = *inputs[1];
  Tensor& out = outputs[0];
  const bool fmod = ctx.node.attrs.get_int("fmod", 0) != 0;
  if (a.dtype() == DType::f32) {
    if (!fmod) unsupported_node(ctx.node, "Mod of float32 operands needs fmod=1 (the ONNX specification)");
    broadcast_apply<float>(ctx.threads, a, b, out, [](float x, float y) {
      return static_cast<float>(std::fmod(static_cast<double>(x), static_cast<double>(y)));
    });
    apply_activation(ctx.node, out);
    return;
  }
  reject_int64_activation(ctx.node);
  for (std::int64_t v : b.i64_span())
    if (v == 0) fail_node(ctx.node, "int64 modulo by zero");
  broadcast_apply<std::int64_t>(ctx.threads, a, b, out, [fmod](std::int64_t x, std::int64_t y) {
    if (y == -1) return std::int64_t{0};  // INT64_MIN % -1 overflows
    const std::int64_t r = x % y;         // the dividend's sign
    return !fmod && r != 0 && ((r < 0) != (y < 0)) ? r + y : r;
  });
}

OpDef binary_op(BinOp op) {
  return OpDef{binop_name(op), infer_binary,
               [op](const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
                 eval_binary(op, ctx, in, out);
               }};
}

// ---------------------------------------------------------------------------
// Unary activations and math (float32; Relu, Neg and Abs also int64).

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
  reject_int64_activation(node);
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
// Unary ops that also run on int64 (Relu since opset 14; Neg and Abs for shape
// arithmetic). `fi` must wrap rather than overflow.

template <class FF, class FI>
OpDef signed_unary_op(const char* name, FF ff, FI fi) {
  return OpDef{name,
               [](const OpContext& ctx, std::span<const InputInfo> in) { return infer_unary_float(ctx, in, true); },
               [ff, fi](const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
                 const Tensor& x = *in[0];
                 if (x.dtype() == DType::f32) {
                   unary_apply(ctx, x, out[0], ff);
                   return;
                 }
                 reject_int64_activation(ctx.node);
                 const std::int64_t* px = x.i64();
                 std::int64_t* po = out[0].i64();
                 for (std::int64_t i = 0; i < x.numel(); ++i) po[i] = fi(px[i]);
               }};
}

// A float32 unary op without attributes, g computed in double and rounded once.
template <class G>
OpDef math_op(const char* name, G g) {
  return unary_op(name, [g](const Node&) {
    return [g](float v) { return static_cast<float>(g(static_cast<double>(v))); };
  });
}

// log(1 + e^x) without overflow for large x.
double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

// ---------------------------------------------------------------------------
// Pow: float32 ^ float32, float32 ^ int64 (opset >= 12 allows mixed types),
// int64 ^ int64.

std::vector<OutputInfo> infer_pow(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  if (inputs.size() > 2 && opt_info(inputs, 2)) fail_node(node, "takes 2 inputs, got " + std::to_string(inputs.size()));
  const InputInfo& x = required_info(node, inputs, 0, "X");
  const InputInfo& y = required_info(node, inputs, 1, "Y");
  if (!(x.dtype == DType::f32 || (x.dtype == DType::i64 && y.dtype == DType::i64)))
    unsupported_node(node, std::string("Pow of a ") + dtype_name(x.dtype) + " base to a " + dtype_name(y.dtype) +
                               " exponent; supported: float32 ^ float32, float32 ^ int64, int64 ^ int64");
  return {OutputInfo{x.dtype, broadcast_shapes(node, x.shape, y.shape)}};
}

// x^y in int64 with wrap-around; false for 0 to a negative power.
bool int_pow(std::int64_t x, std::int64_t y, std::int64_t& result) {
  using U = std::uint64_t;
  if (y < 0) {
    // 1 / x^|y| truncated toward zero, as int64 Div would.
    if (x == 0) return false;
    result = x == 1 ? 1 : x == -1 ? ((y & 1) ? -1 : 1) : 0;
    return true;
  }
  U r = 1, b = static_cast<U>(x);
  for (U e = static_cast<U>(y); e; e >>= 1, b *= b)
    if (e & 1) r *= b;
  result = static_cast<std::int64_t>(r);
  return true;
}

void eval_pow(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Tensor& x = *inputs[0];
  const Tensor& y = *inputs[1];
  Tensor& out = outputs[0];
  if (x.dtype() == DType::f32) {
    if (y.dtype() == DType::f32)
      broadcast_apply<float>(ctx.threads, x, y, out, [](float b, float e) {
        return static_cast<float>(std::pow(static_cast<double>(b), static_cast<double>(e)));
      });
    else
      broadcast_apply<float, float, std::int64_t>(ctx.threads, x, y, out, [](float b, std::int64_t e) {
        return static_cast<float>(std::pow(static_cast<double>(b), static_cast<double>(e)));
      });
    apply_activation(ctx.node, out);
    return;
  }
  reject_int64_activation(ctx.node);
  // Kernels may run on worker threads, which must not throw: flag and fail after.
  std::atomic<bool> zero_to_negative{false};
  broadcast_apply<std::int64_t>(ctx.threads, x, y, out, [&](std::int64_t b, std::int64_t e) {
    std::int64_t r = 0;
    if (!int_pow(b, e, r)) zero_to_negative = true;
    return r;
  });
  if (zero_to_negative) fail_node(ctx.node, "int64 zero raised to a negative power");
}

// ---------------------------------------------------------------------------
// PRelu: slope broadcasts unidirectionally to X.

std::vector<OutputInfo> infer_prelu(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "X");
  const InputInfo& slope = required_info(node, inputs, 1, "slope");
  if (x.dtype != slope.dtype)
    fail_node(node, std::string("X is ") + dtype_name(x.dtype) + ", slope is " + dtype_name(slope.dtype));
  if (x.dtype != DType::f32)
    unsupported_node(node, std::string("input of type ") + dtype_name(x.dtype) + "; only float32 is supported");
  if (broadcast_shapes(node, x.shape, slope.shape) != x.shape)
    fail_node(node, "slope of shape " + shape_string(slope.shape) + " does not broadcast to X's shape " +
                        shape_string(x.shape));
  return {OutputInfo{x.dtype, x.shape}};
}

void eval_prelu(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  broadcast_apply<float>(ctx.threads, *inputs[0], *inputs[1], outputs[0],
                         [](float x, float s) { return x < 0.f ? s * x : x; });
  apply_activation(ctx.node, outputs[0]);
}

// ---------------------------------------------------------------------------
// Variadic Min, Max, Mean, Sum: all inputs broadcast together.

enum class FoldOp { Min, Max, Mean, Sum };

std::vector<OutputInfo> infer_variadic(FoldOp op, const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  if (inputs.empty()) fail_node(node, "needs at least one input");
  const InputInfo& first = required_info(node, inputs, 0, "data_0");
  if (first.dtype != DType::f32 && op == FoldOp::Mean)
    unsupported_node(node, std::string("input of type ") + dtype_name(first.dtype) + "; only float32 is supported");
  Shape shape = first.shape;
  for (std::size_t i = 1; i < inputs.size(); ++i) {
    const InputInfo& in = required_info(node, inputs, i, "data input");
    if (in.dtype != first.dtype)
      fail_node(node, std::string("input types differ: ") + dtype_name(first.dtype) + " and " + dtype_name(in.dtype));
    shape = broadcast_shapes(node, shape, in.shape);
  }
  return {OutputInfo{first.dtype, shape}};
}

// Seeds `out` with input 0 broadcast to out's shape, then folds each further
// input into it in place.
template <class T, class F>
void fold_inputs(int threads, std::span<const Tensor* const> inputs, Tensor& out, F f) {
  broadcast_apply<T>(threads, *inputs[0], *inputs[0], out, [](T v, T) { return v; });
  for (std::size_t i = 1; i < inputs.size(); ++i) broadcast_apply<T>(threads, out, *inputs[i], out, f);
}

void eval_variadic(FoldOp op, const OpContext& ctx, std::span<const Tensor* const> inputs,
                   std::span<Tensor> outputs) {
  Tensor& out = outputs[0];
  const int th = ctx.threads;
  if (out.dtype() == DType::f32) {
    // NaN wins, as in numpy.minimum / numpy.maximum.
    auto fmin = [](float a, float b) { return std::isnan(a) || a < b ? a : b; };
    auto fmax = [](float a, float b) { return std::isnan(a) || a > b ? a : b; };
    auto add = [](float a, float b) { return a + b; };
    switch (op) {
      case FoldOp::Min: fold_inputs<float>(th, inputs, out, fmin); break;
      case FoldOp::Max: fold_inputs<float>(th, inputs, out, fmax); break;
      case FoldOp::Sum: fold_inputs<float>(th, inputs, out, add); break;
      case FoldOp::Mean: {
        fold_inputs<float>(th, inputs, out, add);
        const float n = static_cast<float>(inputs.size());
        unary_apply(ctx, out, out, [n](float v) { return v / n; });  // applies the activation
        return;
      }
    }
    apply_activation(ctx.node, out);
    return;
  }
  reject_int64_activation(ctx.node);
  using I = std::int64_t;
  switch (op) {
    case FoldOp::Min: fold_inputs<I>(th, inputs, out, [](I a, I b) { return std::min(a, b); }); break;
    case FoldOp::Max: fold_inputs<I>(th, inputs, out, [](I a, I b) { return std::max(a, b); }); break;
    case FoldOp::Sum:
      fold_inputs<I>(th, inputs, out, [](I a, I b) {
        return static_cast<I>(static_cast<std::uint64_t>(a) + static_cast<std::uint64_t>(b));
      });
      break;
    case FoldOp::Mean: break;  // rejected by infer_variadic
  }
}

OpDef variadic_op(const char* name, FoldOp op) {
  return OpDef{name,
               [op](const OpContext& ctx, std::span<const InputInfo> in) { return infer_variadic(op, ctx, in); },
               [op](const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
                 eval_variadic(op, ctx, in, out);
               }};
}

// ---------------------------------------------------------------------------
// Comparisons, logic and Where. Booleans are held as int64 0/1 (as the
// importer holds bool constants); a logic op reads any non-zero as true.

enum class CmpOp { Equal, Less, Greater, LessOrEqual, GreaterOrEqual };

template <class T>
bool compare(CmpOp op, T x, T y) {
  switch (op) {
    case CmpOp::Equal: return x == y;
    case CmpOp::Less: return x < y;
    case CmpOp::Greater: return x > y;
    case CmpOp::LessOrEqual: return x <= y;
    case CmpOp::GreaterOrEqual: return x >= y;
  }
  return false;
}

OpDef compare_op(const char* name, CmpOp op) {
  auto infer = [](const OpContext& ctx, std::span<const InputInfo> inputs) {
    std::vector<OutputInfo> out = infer_binary(ctx, inputs);
    out[0].dtype = DType::i64;
    return out;
  };
  return OpDef{name, infer, [op](const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
                 reject_int64_activation(ctx.node);
                 if (in[0]->dtype() == DType::f32)
                   broadcast_apply<std::int64_t, float>(ctx.threads, *in[0], *in[1], out[0], [op](float x, float y) {
                     return std::int64_t{compare(op, x, y)};
                   });
                 else
                   broadcast_apply<std::int64_t>(ctx.threads, *in[0], *in[1], out[0],
                                                 [op](std::int64_t x, std::int64_t y) {
                                                   return std::int64_t{compare(op, x, y)};
                                                 });
               }};
}

void require_bool_operands(const OpContext& ctx, std::span<const InputInfo> inputs) {
  for (const InputInfo& in : inputs)
    if (in.present && in.dtype != DType::i64)
      fail_node(ctx.node, std::string("takes bool operands, got ") + dtype_name(in.dtype));
}

template <class F>
OpDef logic_op(const char* name, F f) {
  auto infer = [](const OpContext& ctx, std::span<const InputInfo> inputs) {
    require_bool_operands(ctx, inputs);
    return infer_binary(ctx, inputs);
  };
  return OpDef{name, infer, [f](const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
                 reject_int64_activation(ctx.node);
                 broadcast_apply<std::int64_t>(ctx.threads, *in[0], *in[1], out[0],
                                               [f](std::int64_t x, std::int64_t y) {
                                                 return std::int64_t{f(x != 0, y != 0)};
                                               });
               }};
}

std::vector<OutputInfo> infer_not(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const InputInfo& x = required_info(ctx.node, inputs, 0, "X");
  require_bool_operands(ctx, inputs);
  return {OutputInfo{DType::i64, x.shape}};
}

void eval_not(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  reject_int64_activation(ctx.node);
  const std::int64_t* x = inputs[0]->i64();
  std::int64_t* y = outputs[0].i64();
  for (std::int64_t i = 0; i < outputs[0].numel(); ++i) y[i] = x[i] == 0;
}

std::vector<OutputInfo> infer_where(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& c = required_info(node, inputs, 0, "condition");
  const InputInfo& x = required_info(node, inputs, 1, "X");
  const InputInfo& y = required_info(node, inputs, 2, "Y");
  if (c.dtype != DType::i64) fail_node(node, std::string("condition of type ") + dtype_name(c.dtype) + ", not bool");
  if (x.dtype != y.dtype)
    fail_node(node, std::string("X and Y types differ: ") + dtype_name(x.dtype) + " and " + dtype_name(y.dtype));
  return {OutputInfo{x.dtype, broadcast_shapes(node, broadcast_shapes(node, c.shape, x.shape), y.shape)}};
}

void eval_where(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Tensor &c = *inputs[0], &x = *inputs[1], &y = *inputs[2];
  Tensor& out = outputs[0];
  const Shape& shape = out.shape();
  const auto sc = broadcast_strides(c.shape(), shape), sx = broadcast_strides(x.shape(), shape),
             sy = broadcast_strides(y.shape(), shape);
  const std::size_t es = dtype_size(out.dtype());
  std::vector<std::int64_t> idx(shape.size(), 0);
  std::int64_t oc = 0, ox = 0, oy = 0;
  for (std::int64_t i = 0; i < out.numel(); ++i) {
    const bool pick_x = c.i64()[oc] != 0;
    std::memcpy(out.bytes() + static_cast<std::size_t>(i) * es,
                (pick_x ? x.bytes() + static_cast<std::size_t>(ox) * es : y.bytes() + static_cast<std::size_t>(oy) * es),
                es);
    for (std::size_t k = shape.size(); k-- > 0;) {  // odometer over the output's index
      ++idx[k];
      oc += sc[k];
      ox += sx[k];
      oy += sy[k];
      if (idx[k] < shape[k]) break;
      oc -= sc[k] * idx[k];
      ox -= sx[k] * idx[k];
      oy -= sy[k] * idx[k];
      idx[k] = 0;
    }
  }
  finish_data_movement(ctx, out);
}

}  // namespace

void register_elementwise_ops(std::vector<OpDef>& table) {
  table.push_back(binary_op(BinOp::Add));
  table.push_back(binary_op(BinOp::Sub));
  table.push_back(binary_op(BinOp::Mul));
  table.push_back(binary_op(BinOp::Div));
  table.push_back(OpDef{"Mod", infer_binary, eval_mod});

  table.push_back(OpDef{"Pow", infer_pow, eval_pow});
  table.push_back(OpDef{"PRelu", infer_prelu, eval_prelu});
  table.push_back(variadic_op("Min", FoldOp::Min));
  table.push_back(variadic_op("Max", FoldOp::Max));
  table.push_back(variadic_op("Mean", FoldOp::Mean));
  table.push_back(variadic_op("Sum", FoldOp::Sum));

  using U = std::uint64_t;  // int64 Neg and Abs wrap (INT64_MIN stays INT64_MIN, as in numpy)
  table.push_back(signed_unary_op(
      "Relu", [](float v) { return v < 0.f ? 0.f : v; },  // NaN passes through
      [](std::int64_t v) { return v > 0 ? v : std::int64_t{0}; }));
  table.push_back(signed_unary_op(
      "Neg", [](float v) { return -v; }, [](std::int64_t v) { return static_cast<std::int64_t>(U(0) - U(v)); }));
  table.push_back(signed_unary_op(
      "Abs", [](float v) { return std::fabs(v); },
      [](std::int64_t v) { return v < 0 ? static_cast<std::int64_t>(U(0) - U(v)) : v; }));
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
  table.push_back(unary_op("Elu", [](const Node& n) {
    const double alpha = n.attrs.get_float("alpha", 1.f);
    return [alpha](float v) {
      const double x = v;
      return static_cast<float>(x < 0 ? alpha * std::expm1(x) : x);
    };
  }));
  table.push_back(unary_op("Selu", [](const Node& n) {
    const double alpha = n.attrs.get_float("alpha", 1.67326319217681884765625f);
    const double gamma = n.attrs.get_float("gamma", 1.05070102214813232421875f);
    return [alpha, gamma](float v) {
      const double x = v;
      return static_cast<float>(x > 0 ? gamma * x : gamma * alpha * std::expm1(x));
    };
  }));
  table.push_back(math_op("Softplus", softplus));
  table.push_back(math_op("Softsign", [](double x) { return x / (1.0 + std::fabs(x)); }));
  table.push_back(math_op("Tanh", [](double x) { return std::tanh(x); }));
  table.push_back(math_op("Sqrt", [](double x) { return std::sqrt(x); }));
  table.push_back(math_op("Exp", [](double x) { return std::exp(x); }));
  table.push_back(math_op("Log", [](double x) { return std::log(x); }));
  table.push_back(math_op("Erf", [](double x) { return std::erf(x); }));
  table.push_back(math_op("Reciprocal", [](double x) { return 1.0 / x; }));
  table.push_back(math_op("Ceil", [](double x) { return std::ceil(x); }));
  table.push_back(math_op("Floor", [](double x) { return std::floor(x); }));
  table.push_back(OpDef{"Clip", infer_clip, eval_clip});

  table.push_back(compare_op("Equal", CmpOp::Equal));
  table.push_back(compare_op("Less", CmpOp::Less));
  table.push_back(compare_op("Greater", CmpOp::Greater));
  table.push_back(compare_op("LessOrEqual", CmpOp::LessOrEqual));
  table.push_back(compare_op("GreaterOrEqual", CmpOp::GreaterOrEqual));
  table.push_back(logic_op("And", [](bool a, bool b) { return a && b; }));
  table.push_back(logic_op("Or", [](bool a, bool b) { return a || b; }));
  table.push_back(logic_op("Xor", [](bool a, bool b) { return a != b; }));
  table.push_back(OpDef{"Not", infer_not, eval_not});
  table.push_back(OpDef{"Where", infer_where, eval_where});
}

}  // namespace vkfuse::graph
