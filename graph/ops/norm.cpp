// graph/ops/norm.cpp — BatchNormalization (inference) and Softmax: shape
// inference and naive reference kernels.
//
// Softmax follows the opset the model declares: before opset 13 the input is
// coerced to 2-D [prod(dims[:axis]), prod(dims[axis:])] (axis default 1) and
// each row is normalised; from opset 13 it normalises along the one `axis`
// (default -1).
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

}  // namespace

void register_norm_ops(std::vector<OpDef>& table) {
  table.push_back(OpDef{"BatchNormalization", infer_batchnorm, eval_batchnorm});
  table.push_back(OpDef{"Softmax", infer_softmax, eval_softmax});
}

}  // namespace vkfuse::graph
