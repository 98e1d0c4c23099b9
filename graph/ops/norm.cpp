// graph/ops/norm.cpp — BatchNormalization (inference), Softmax,
// InstanceNormalization, LayerNormalization and LRN: shape inference and
// naive reference kernels.
//
// Softmax follows the opset the model declares: before opset 13 the input is
// coerced to 2-D [prod(dims[:axis]), prod(dims[axis:])] (axis default 1) and
// each row is normalised; from opset 13 it normalises along the one `axis`
// (default -1).
//
// InstanceNormalization normalises each (n, c) over the spatial dims, then
// applies scale[c] and B[c]. LayerNormalization (ONNX opset 17, accepted at
// any opset) normalises each row of the 2-D view [prod(dims[:axis]),
// prod(dims[axis:])] (axis default -1) and applies Scale and the optional B,
// both broadcast to dims[axis:]; its optional outputs Mean and InvStdDev are
// float32 of shape dims[:axis] followed by ones. LRN divides each element by
// (bias + alpha / size * the sum of squares over the channel window
// [c - floor((size-1)/2), c + ceil((size-1)/2)]) ^ beta.
//
// Statistics are computed in double, in two passes (mean, then variance).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "graph/ops.h"

namespace vkfuse::graph {

namespace {

std::vector<OutputInfo> infer_batchnorm(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  if (in.size() != 5)
    fail_node(node, "BatchNormalization needs 5 inputs (X, scale, B, mean, var), got " + std::to_string(in.size()));
  static const char* names[] = {"X", "scale", "B", "mean", "var"};
  for (std::size_t i = 0; i < 5; ++i) {
    if (!in[i].present) fail_node(node, std::string("input ") + names[i] + " is missing");
    if (in[i].dtype != DType::f32)
      unsupported_node(node, std::string("input ") + names[i] + " has dtype " + dtype_name(in[i].dtype) +
                                 "; only float32 is supported");
  }
  if (node.attrs.get_int("training_mode", 0) != 0)
    unsupported_node(node, "training_mode=1 (only inference-mode BatchNormalization is supported)");
  if (node.attrs.get_int("spatial", 1) != 1)
    unsupported_node(node, "spatial=0 (per-activation normalisation) is not supported");
  for (std::size_t i = 1; i < node.outputs.size(); ++i)
    if (node.outputs[i] != kNoValue)
      unsupported_node(node, "only output 0 (Y) is supported; output " + std::to_string(i) +
                                 " (running/saved statistics) is requested");
  const Shape& x = in[0].shape;
  if (x.size() < 2) fail_node(node, "input X of shape " + shape_string(x) + " must have rank >= 2 (N, C, ...)");
  const std::int64_t c = x[1];
  for (std::size_t i = 1; i < 5; ++i)
    if (in[i].shape != Shape{c})
      fail_node(node, std::string("input ") + names[i] + " of shape " + shape_string(in[i].shape) +
                          " must have shape " + std::to_string(c) + " (the channels of X " + shape_string(x) + ")");
  return {OutputInfo{DType::f32, x}};
}

void eval_batchnorm(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  const Tensor& X = *in[0];
  Tensor& Y = out[0];
  const double eps = ctx.node.attrs.get_float("epsilon", 1e-5f);
  const std::int64_t N = X.shape()[0], C = X.shape()[1];
  const std::int64_t plane = N * C > 0 ? X.numel() / (N * C) : 0;
  const float *x = X.f32(), *scale = in[1]->f32(), *bias = in[2]->f32(), *mean = in[3]->f32(),
              *var = in[4]->f32();
  float* y = Y.f32();
  parallel_for(ctx.threads, N * C, [&](std::int64_t nc) {
    const std::int64_t c = nc % C;
    const double a = static_cast<double>(scale[c]) / std::sqrt(static_cast<double>(var[c]) + eps);
    const double m = mean[c], b = bias[c];
    const float* xp = x + nc * plane;
    float* yp = y + nc * plane;
    for (std::int64_t i = 0; i < plane; ++i) yp[i] = static_cast<float>((xp[i] - m) * a + b);
  });
  apply_activation(ctx.node, Y);
}

std::vector<OutputInfo> infer_softmax(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  if (in.size() != 1 || !in[0].present)
    fail_node(node, "Softmax takes exactly one input, got " + std::to_string(in.size()));
  if (in[0].dtype != DType::f32)
    unsupported_node(node, std::string("input has dtype ") + dtype_name(in[0].dtype) + "; only float32 is supported");
  softmax_layout(ctx.node, ctx.opset, in[0].shape);  // validates axis
  return {OutputInfo{DType::f32, in[0].shape}};
}

void eval_softmax(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  const Tensor& X = *in[0];
  Tensor& Y = out[0];
  const SoftmaxLayout l = softmax_layout(ctx.node, ctx.opset, X.shape());
  const float* x = X.f32();
  float* y = Y.f32();
  parallel_for(ctx.threads, l.outer * l.inner, [&](std::int64_t g) {
    const std::int64_t o = g / l.inner, i = g % l.inner;
    const std::int64_t base = o * l.len * l.inner + i;
    double mx = -std::numeric_limits<double>::infinity();
    for (std::int64_t j = 0; j < l.len; ++j) mx = std::max(mx, static_cast<double>(x[base + j * l.inner]));
    double sum = 0.0;
    for (std::int64_t j = 0; j < l.len; ++j) sum += std::exp(static_cast<double>(x[base + j * l.inner]) - mx);
    for (std::int64_t j = 0; j < l.len; ++j)
      y[base + j * l.inner] = static_cast<float>(std::exp(static_cast<double>(x[base + j * l.inner]) - mx) / sum);
  });
  apply_activation(ctx.node, Y);
}

// Fails unless input i is present and float32.
const InputInfo& f32_input(const Node& node, std::span<const InputInfo> in, std::size_t i, const char* what) {
  const InputInfo& info = required_info(node, in, i, what);
  if (info.dtype != DType::f32)
    unsupported_node(node, std::string("input ") + what + " has dtype " + dtype_name(info.dtype) +
                               "; only float32 is supported");
  return info;
}

// Fails when the node requests more than `n` outputs.
void check_outputs(const Node& node, std::size_t n, const char* which) {
  for (std::size_t i = n; i < node.outputs.size(); ++i)
    if (node.outputs[i] != kNoValue)
      fail_node(node, "has " + std::to_string(node.outputs.size()) + " outputs; it defines " + which);
}

// ---- InstanceNormalization --------------------------------------------------

std::vector<OutputInfo> infer_instancenorm(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  if (in.size() != 3)
    fail_node(node, "InstanceNormalization needs 3 inputs (X, scale, B), got " + std::to_string(in.size()));
  const Shape& x = f32_input(node, in, 0, "X").shape;
  const InputInfo& scale = f32_input(node, in, 1, "scale");
  const InputInfo& b = f32_input(node, in, 2, "B");
  check_outputs(node, 1, "one (Y)");
  if (x.size() < 2) fail_node(node, "input X of shape " + shape_string(x) + " must have rank >= 2 (N, C, ...)");
  for (const InputInfo* p : {&scale, &b})
    if (p->shape != Shape{x[1]})
      fail_node(node, std::string("input ") + (p == &scale ? "scale" : "B") + " of shape " + shape_string(p->shape) +
                          " must have shape " + std::to_string(x[1]) + " (the channels of X " + shape_string(x) + ")");
  return {OutputInfo{DType::f32, x}};
}

void eval_instancenorm(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  const Tensor& X = *in[0];
  Tensor& Y = out[0];
  const double eps = ctx.node.attrs.get_float("epsilon", 1e-5f);
  const std::int64_t N = X.shape()[0], C = X.shape()[1];
  const std::int64_t plane = N * C > 0 ? X.numel() / (N * C) : 0;
  const float *x = X.f32(), *scale = in[1]->f32(), *bias = in[2]->f32();
  float* y = Y.f32();
  parallel_for(ctx.threads, plane > 0 ? N * C : 0, [&](std::int64_t nc) {
    const float* xp = x + nc * plane;
    float* yp = y + nc * plane;
    double sum = 0.0;
    for (std::int64_t i = 0; i < plane; ++i) sum += xp[i];
    const double mean = sum / static_cast<double>(plane);
    double sq = 0.0;
    for (std::int64_t i = 0; i < plane; ++i) sq += (xp[i] - mean) * (xp[i] - mean);
    const std::int64_t c = nc % C;
    const double a = static_cast<double>(scale[c]) / std::sqrt(sq / static_cast<double>(plane) + eps);
    const double b = bias[c];
    for (std::int64_t i = 0; i < plane; ++i) yp[i] = static_cast<float>((xp[i] - mean) * a + b);
  });
  apply_activation(ctx.node, Y);
}

// ---- LayerNormalization -----------------------------------------------------

// The normalised axis in [0, rank); fails naming the node when out of range.
std::size_t layernorm_axis(const Node& node, const Shape& x) {
  const auto rank = static_cast<std::int64_t>(x.size());
  const std::int64_t axis = node.attrs.get_int("axis", -1);
  if (rank == 0) fail_node(node, "input X must have rank >= 1, got a scalar");
  if (axis < -rank || axis >= rank)
    fail_node(node, "axis " + std::to_string(axis) + " is out of range for input X " + shape_string(x));
  return static_cast<std::size_t>(axis < 0 ? axis + rank : axis);
}

std::vector<OutputInfo> infer_layernorm(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  if (in.size() < 2 || in.size() > 3)
    fail_node(node, "LayerNormalization needs 2 or 3 inputs (X, Scale, optional B), got " + std::to_string(in.size()));
  const Shape& x = f32_input(node, in, 0, "X").shape;
  f32_input(node, in, 1, "Scale");
  if (opt_info(in, 2)) f32_input(node, in, 2, "B");
  check_outputs(node, 3, "three (Y, Mean, InvStdDev)");
  const std::size_t axis = layernorm_axis(node, x);
  const Shape norm(x.begin() + static_cast<std::ptrdiff_t>(axis), x.end());
  for (std::size_t i = 1; i < in.size(); ++i) {
    if (!in[i].present) continue;
    const Shape& s = in[i].shape;
    bool ok = s.size() <= norm.size();
    for (std::size_t k = 0; ok && k < s.size(); ++k) {
      const std::int64_t d = norm[norm.size() - s.size() + k];
      ok = s[k] == d || s[k] == 1;
    }
    if (!ok)
      fail_node(node, std::string("input ") + (i == 1 ? "Scale" : "B") + " of shape " + shape_string(s) +
                          " does not broadcast to the normalised shape " + shape_string(norm) + " of X " +
                          shape_string(x) + " (axis " + std::to_string(axis) + ")");
  }
  bool stats = false;  // Mean or InvStdDev requested
  for (std::size_t i = 1; i < node.outputs.size(); ++i) stats = stats || node.outputs[i] != kNoValue;
  if (stats && node.attrs.get_int("stash_type", 1) != 1)
    unsupported_node(node, "stash_type " + std::to_string(node.attrs.get_int("stash_type", 1)) +
                               " with the Mean/InvStdDev outputs; only 1 (float32) is supported");
  std::vector<OutputInfo> outs{OutputInfo{DType::f32, x}};
  if (stats) {
    Shape s(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(axis));
    s.resize(x.size(), 1);
    outs.push_back({DType::f32, s});
    outs.push_back({DType::f32, s});
  }
  return outs;
}

// The `len` values of t broadcast (numpy-style, unidirectionally) to `norm`.
std::vector<double> broadcast_to(const Tensor& t, const Shape& norm, std::int64_t len) {
  std::vector<double> v(static_cast<std::size_t>(len));
  const float* p = t.f32();
  if (t.numel() == len) {
    std::copy(p, p + len, v.begin());
    return v;
  }
  const Shape& s = t.shape();
  const std::size_t lead = norm.size() - s.size();
  std::vector<std::int64_t> stride(norm.size(), 0);  // t's stride for each dim of norm (0: broadcast)
  std::int64_t st = 1;
  for (std::size_t k = s.size(); k-- > 0;) {
    if (s[k] != 1) stride[lead + k] = st;
    st *= s[k];
  }
  for (std::int64_t i = 0; i < len; ++i) {
    std::int64_t rem = i, off = 0;
    for (std::size_t k = norm.size(); k-- > 0;) {
      off += (rem % norm[k]) * stride[k];
      rem /= norm[k];
    }
    v[static_cast<std::size_t>(i)] = p[off];
  }
  return v;
}

void eval_layernorm(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  const Node& node = ctx.node;
  const Tensor& X = *in[0];
  const Shape& xs = X.shape();
  const std::size_t axis = layernorm_axis(node, xs);
  const Shape norm(xs.begin() + static_cast<std::ptrdiff_t>(axis), xs.end());
  const NormRows shape = layer_norm_rows(node, xs);
  const std::int64_t rows = shape.rows, len = shape.len;
  const double eps = node.attrs.get_float("epsilon", 1e-5f);
  const std::vector<double> scale = broadcast_to(*in[1], norm, len);
  const Tensor* B = opt_tensor(in, 2);
  const std::vector<double> bias =
      B ? broadcast_to(*B, norm, len) : std::vector<double>(static_cast<std::size_t>(len), 0.0);
  const float* x = X.f32();
  float* y = out[0].f32();
  float* mean_out = out.size() > 1 ? out[1].f32() : nullptr;
  float* inv_out = out.size() > 2 ? out[2].f32() : nullptr;
  parallel_for(ctx.threads, rows, [&](std::int64_t r) {
    const float* xp = x + r * len;
    float* yp = y + r * len;
    double sum = 0.0;
    for (std::int64_t i = 0; i < len; ++i) sum += xp[i];
    const double mean = sum / static_cast<double>(len);
    double sq = 0.0;
    for (std::int64_t i = 0; i < len; ++i) sq += (xp[i] - mean) * (xp[i] - mean);
    const double inv = 1.0 / std::sqrt(sq / static_cast<double>(len) + eps);
    for (std::int64_t i = 0; i < len; ++i) {
      const auto k = static_cast<std::size_t>(i);
      yp[i] = static_cast<float>((xp[i] - mean) * inv * scale[k] + bias[k]);
    }
    if (mean_out) mean_out[r] = static_cast<float>(mean);
    if (inv_out) inv_out[r] = static_cast<float>(inv);
  });
  apply_activation(node, out[0]);
}

// ---- ChannelLayerNorm (internal; see graph/ops.h) ---------------------------

std::vector<OutputInfo> infer_channel_layernorm(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  if (in.size() != 3) fail_node(node, "ChannelLayerNorm needs 3 inputs (X, Scale, B), got " + std::to_string(in.size()));
  const Shape& x = f32_input(node, in, 0, "X").shape;
  check_outputs(node, 1, "one (Y)");
  if (x.size() < 2) fail_node(node, "input X of shape " + shape_string(x) + " must have rank >= 2 (N, C, ...)");
  for (std::size_t i = 1; i < 3; ++i)
    if (f32_input(node, in, i, i == 1 ? "Scale" : "B").shape != Shape{x[1]})
      fail_node(node, std::string(i == 1 ? "Scale" : "B") + " must hold one value per channel of X " + shape_string(x));
  return {OutputInfo{DType::f32, x}};
}

void eval_channel_layernorm(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  const Node& node = ctx.node;
  const Shape& xs = in[0]->shape();
  const std::int64_t C = xs[1], plane = xs[0] * C > 0 ? element_count(xs) / (xs[0] * C) : 0;
  const double eps = node.attrs.get_float("epsilon", 1e-5f);
  const float *x = in[0]->f32(), *scale = in[1]->f32(), *bias = in[2]->f32();
  float* y = out[0].f32();
  parallel_for(ctx.threads, xs[0] * plane, [&](std::int64_t r) {
    const std::int64_t base = r / plane * C * plane + r % plane;
    double sum = 0.0;
    for (std::int64_t c = 0; c < C; ++c) sum += x[base + c * plane];
    const double mean = sum / static_cast<double>(C);
    double sq = 0.0;
    for (std::int64_t c = 0; c < C; ++c) sq += (x[base + c * plane] - mean) * (x[base + c * plane] - mean);
    const double inv = 1.0 / std::sqrt(sq / static_cast<double>(C) + eps);
    for (std::int64_t c = 0; c < C; ++c)
      y[base + c * plane] = static_cast<float>((x[base + c * plane] - mean) * inv * scale[c] + bias[c]);
  });
  apply_activation(node, out[0]);
}

// ---- LRN --------------------------------------------------------------------

std::vector<OutputInfo> infer_lrn(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  if (in.size() != 1) fail_node(node, "LRN takes exactly one input, got " + std::to_string(in.size()));
  const Shape& x = f32_input(node, in, 0, "X").shape;
  check_outputs(node, 1, "one (Y)");
  if (x.size() < 2) fail_node(node, "input X of shape " + shape_string(x) + " must have rank >= 2 (N, C, ...)");
  if (!node.attrs.has("size")) fail_node(node, "missing the required attribute 'size'");
  if (node.attrs.get_int("size", 0) < 1)
    fail_node(node, "size " + std::to_string(node.attrs.get_int("size", 0)) + " must be >= 1");
  return {OutputInfo{DType::f32, x}};
}

void eval_lrn(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  const Node& node = ctx.node;
  const Tensor& X = *in[0];
  Tensor& Y = out[0];
  const std::int64_t size = node.attrs.get_int("size", 1);
  const double alpha = node.attrs.get_float("alpha", 1e-4f), beta = node.attrs.get_float("beta", 0.75f),
               bias = node.attrs.get_float("bias", 1.0f);
  const double a = alpha / static_cast<double>(size);
  const std::int64_t before = (size - 1) / 2, after = size - 1 - before;  // floor and ceil of (size-1)/2
  const std::int64_t N = X.shape()[0], C = X.shape()[1];
  const std::int64_t plane = N * C > 0 ? X.numel() / (N * C) : 0;
  const float* x = X.f32();
  float* y = Y.f32();
  parallel_for(ctx.threads, plane > 0 ? N * C : 0, [&](std::int64_t nc) {
    const std::int64_t n = nc / C, c = nc % C;
    std::vector<double> sq(static_cast<std::size_t>(plane), 0.0);
    for (std::int64_t k = std::max<std::int64_t>(0, c - before); k <= std::min(C - 1, c + after); ++k) {
      const float* xk = x + (n * C + k) * plane;
      for (std::int64_t i = 0; i < plane; ++i) sq[static_cast<std::size_t>(i)] += static_cast<double>(xk[i]) * xk[i];
    }
    const float* xp = x + nc * plane;
    float* yp = y + nc * plane;
    for (std::int64_t i = 0; i < plane; ++i)
      yp[i] = static_cast<float>(xp[i] / std::pow(bias + a * sq[static_cast<std::size_t>(i)], beta));
  });
  apply_activation(node, Y);
}

}  // namespace

NormRows layer_norm_rows(const Node& node, const Shape& x) {
  const std::size_t axis = layernorm_axis(node, x);
  NormRows r;
  r.len = element_count(Shape(x.begin() + static_cast<std::ptrdiff_t>(axis), x.end()));
  r.rows = element_count(Shape(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(axis)));
  return r;
}

void register_norm_ops(std::vector<OpDef>& table) {
  table.push_back(OpDef{"BatchNormalization", infer_batchnorm, eval_batchnorm});
  table.push_back(OpDef{"Softmax", infer_softmax, eval_softmax});
  table.push_back(OpDef{"InstanceNormalization", infer_instancenorm, eval_instancenorm});
  table.push_back(OpDef{"LayerNormalization", infer_layernorm, eval_layernorm});
  table.push_back(OpDef{"LRN", infer_lrn, eval_lrn});
  table.push_back(OpDef{kChannelLayerNorm, infer_channel_layernorm, eval_channel_layernorm, true});
}

}  // namespace vkfuse::graph
