// graph/ops/pool.cpp — MaxPool, AveragePool, GlobalAveragePool: shape
// inference and naive reference kernels.
//
// 1-D, 2-D and 3-D pooling; lower ranks run through the 3-D loops with unit
// leading spatial dims. Output sizes follow ONNX (and PyTorch for ceil_mode):
//   out = floor_or_ceil((in + pad_begin + pad_end - ((k-1)*dil+1)) / stride) + 1
// and, with ceil_mode, a last window that would start past the input and the
// left padding is dropped. Padding never contributes to MaxPool; AveragePool
// divides by the number of input elements in the window (count_include_pad=0)
// or by the number of window taps inside input+pads (count_include_pad=1), so
// the part of a ceil_mode window past the end padding is never counted.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "graph/ops.h"

namespace vkfuse::graph {

namespace {



struct PoolGeometry {
  std::vector<std::int64_t> kernel, strides, dilations;
  std::vector<std::int64_t> pad_begin, pad_end;
  std::vector<std::int64_t> out;
};

PoolGeometry pool_geometry(const Node& node, const Shape& x) {
  const std::size_t nsp = x.size() - 2;
  const Attributes& a = node.attrs;
  PoolGeometry g;
  if (!a.has("kernel_shape")) fail_node(node, "the kernel_shape attribute is required");
  g.kernel = a.get_ints("kernel_shape");
  if (g.kernel.size() != nsp)
    fail_node(node, "kernel_shape " + ints_string(g.kernel) + " must have " + std::to_string(nsp) +
                        " entries for input " + shape_string(x));
  g.strides = a.get_ints("strides", std::vector<std::int64_t>(nsp, 1));
  g.dilations = a.get_ints("dilations", std::vector<std::int64_t>(nsp, 1));
  auto pads = a.get_ints("pads", std::vector<std::int64_t>(2 * nsp, 0));
  if (g.strides.size() != nsp)
    fail_node(node, "strides " + ints_string(g.strides) + " must have " + std::to_string(nsp) + " entries");
  if (g.dilations.size() != nsp)
    fail_node(node, "dilations " + ints_string(g.dilations) + " must have " + std::to_string(nsp) + " entries");
  if (pads.size() != 2 * nsp)
    fail_node(node, "pads " + ints_string(pads) + " must have " + std::to_string(2 * nsp) + " entries");
  for (std::size_t i = 0; i < nsp; ++i) {
    if (g.kernel[i] < 1) fail_node(node, "kernel_shape must be positive, got " + ints_string(g.kernel));
    if (g.strides[i] < 1) fail_node(node, "strides must be positive, got " + ints_string(g.strides));
    if (g.dilations[i] < 1) fail_node(node, "dilations must be positive, got " + ints_string(g.dilations));
    if (pads[i] < 0 || pads[i + nsp] < 0) fail_node(node, "pads must be non-negative, got " + ints_string(pads));
  }
  const std::int64_t ceil_mode = a.get_int("ceil_mode", 0);
  if (ceil_mode != 0 && ceil_mode != 1) fail_node(node, "ceil_mode must be 0 or 1, got " + std::to_string(ceil_mode));
  const std::string auto_pad = a.get_string("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    unsupported_node(node, "auto_pad '" + auto_pad + "' (expected NOTSET, VALID, SAME_UPPER or SAME_LOWER)");
  g.pad_begin.resize(nsp);
  g.pad_end.resize(nsp);
  g.out.resize(nsp);
  for (std::size_t i = 0; i < nsp; ++i) {
    const std::int64_t in = x[i + 2];
    const std::int64_t ek = (g.kernel[i] - 1) * g.dilations[i] + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      // ONNX: out = ceil(in / stride) regardless of ceil_mode; the extra pad
      // element goes at the end (UPPER) or the beginning (LOWER).
      const std::int64_t out = ceil_div(in, g.strides[i]);
      const std::int64_t total = std::max<std::int64_t>(0, (out - 1) * g.strides[i] + ek - in);
      const std::int64_t small = total / 2, big = total - small;
      g.pad_begin[i] = auto_pad == "SAME_UPPER" ? small : big;
      g.pad_end[i] = auto_pad == "SAME_UPPER" ? big : small;
      g.out[i] = out;
      continue;
    }
    if (auto_pad == "VALID") {
      g.pad_begin[i] = g.pad_end[i] = 0;
    } else {
      g.pad_begin[i] = pads[i];
      g.pad_end[i] = pads[i + nsp];
    }
    const std::int64_t span = in + g.pad_begin[i] + g.pad_end[i] - ek;
    if (span < 0)
      fail_node(node, "input " + shape_string(x) + " is smaller than the (dilated, padded) window along spatial axis " +
                          std::to_string(i));
    std::int64_t out = (ceil_mode ? ceil_div(span, g.strides[i]) : span / g.strides[i]) + 1;
    // The last window must start inside the input or the left padding.
    if (ceil_mode && (out - 1) * g.strides[i] >= in + g.pad_begin[i]) --out;
    g.out[i] = out;
  }
  return g;
}

void check_pool_input(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  if (in.size() != 1 || !in[0].present)
    fail_node(node, node.op_type + " takes exactly one input, got " + std::to_string(in.size()));
  if (in[0].dtype != DType::f32)
    unsupported_node(node, std::string("input has dtype ") + dtype_name(in[0].dtype) +
                               "; only float32 pooling is supported");
  const Shape& x = in[0].shape;
  if (x.size() < 3 || x.size() > 5)
    unsupported_node(node, "input of shape " + shape_string(x) +
                               ": only 1-D, 2-D and 3-D pooling (rank 3 to 5) is supported");
  for (std::size_t i = 1; i < node.outputs.size(); ++i)
    if (node.outputs[i] != kNoValue)
      unsupported_node(node, "only output 0 is supported (output " + std::to_string(i) +
                                 (node.op_type == "MaxPool" ? ", Indices," : "") + " is requested)");
}

std::vector<OutputInfo> infer_pool(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  check_pool_input(ctx, in);
  if (node.op_type == "AveragePool") {
    const std::int64_t cip = node.attrs.get_int("count_include_pad", 0);
    if (cip != 0 && cip != 1) fail_node(node, "count_include_pad must be 0 or 1, got " + std::to_string(cip));
  }
  const Shape& x = in[0].shape;
  PoolGeometry g = pool_geometry(node, x);
  Shape out{x[0], x[1]};
  out.insert(out.end(), g.out.begin(), g.out.end());
  return {OutputInfo{DType::f32, out}};
}

void eval_pool(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  const Node& node = ctx.node;
  const Tensor& X = *in[0];
  Tensor& Y = out[0];
  const PoolGeometry g = pool_geometry(node, X.shape());
  const bool is_max = node.op_type == "MaxPool";
  const bool count_pad = node.attrs.get_int("count_include_pad", 0) == 1;

  std::vector<std::int64_t> in_sp(X.shape().begin() + 2, X.shape().end());
  const auto isz = to3(in_sp, 1), osz = to3(g.out, 1), k = to3(g.kernel, 1), s = to3(g.strides, 1),
             d = to3(g.dilations, 1), pb = to3(g.pad_begin, 0), pe = to3(g.pad_end, 0);
  const std::int64_t in_plane = isz[0] * isz[1] * isz[2];
  const std::int64_t out_plane = osz[0] * osz[1] * osz[2];
  const std::int64_t planes = X.shape()[0] * X.shape()[1];
  const float* x = X.f32();
  float* y = Y.f32();

  // Number of taps of a window starting at `start` along axis a whose position
  // lies in [lo, hi).
  auto taps_in = [&](int axis, std::int64_t start, std::int64_t lo, std::int64_t hi) {
    std::int64_t n = 0;
    for (std::int64_t t = 0; t < k[axis]; ++t) {
      const std::int64_t pos = start + t * d[axis];
      if (pos >= lo && pos < hi) ++n;
    }
    return n;
  };

  parallel_for(ctx.threads, planes, [&](std::int64_t plane) {
    const float* xp = x + plane * in_plane;
    float* yp = y + plane * out_plane;
    for (std::int64_t od = 0; od < osz[0]; ++od)
      for (std::int64_t oh = 0; oh < osz[1]; ++oh)
        for (std::int64_t ow = 0; ow < osz[2]; ++ow) {
          const std::int64_t sd = od * s[0] - pb[0], sh = oh * s[1] - pb[1], sw = ow * s[2] - pb[2];
          double best = -std::numeric_limits<double>::infinity();
          double sum = 0.0;
          std::int64_t count = 0;
          for (std::int64_t kd = 0; kd < k[0]; ++kd) {
            const std::int64_t id = sd + kd * d[0];
            if (id < 0 || id >= isz[0]) continue;
            for (std::int64_t kh = 0; kh < k[1]; ++kh) {
              const std::int64_t ih = sh + kh * d[1];
              if (ih < 0 || ih >= isz[1]) continue;
              for (std::int64_t kw = 0; kw < k[2]; ++kw) {
                const std::int64_t iw = sw + kw * d[2];
                if (iw < 0 || iw >= isz[2]) continue;
                const double v = xp[(id * isz[1] + ih) * isz[2] + iw];
                best = std::max(best, v);
                sum += v;
                ++count;
              }
            }
          }
          float result;
          if (is_max) {
            // A window that sees only padding (pads >= window) yields the
            // lowest float, as ONNX Runtime does.
            result = count ? static_cast<float>(best) : std::numeric_limits<float>::lowest();
          } else {
            std::int64_t divisor = count;
            if (count_pad)
              divisor = taps_in(0, sd, -pb[0], isz[0] + pe[0]) * taps_in(1, sh, -pb[1], isz[1] + pe[1]) *
                        taps_in(2, sw, -pb[2], isz[2] + pe[2]);
            result = divisor ? static_cast<float>(sum / static_cast<double>(divisor)) : 0.f;
          }
          yp[(od * osz[1] + oh) * osz[2] + ow] = result;
        }
  });
  apply_activation(node, Y);
}

std::vector<OutputInfo> infer_global_avg(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  if (in.size() != 1 || !in[0].present)
    fail_node(node, "GlobalAveragePool takes exactly one input, got " + std::to_string(in.size()));
  if (in[0].dtype != DType::f32)
    unsupported_node(node, std::string("input has dtype ") + dtype_name(in[0].dtype) +
                               "; only float32 pooling is supported");
  const Shape& x = in[0].shape;
  if (x.size() < 3)
    fail_node(node, "input of shape " + shape_string(x) + " must have rank >= 3 (N, C, spatial...)");
  Shape out(x.size(), 1);
  out[0] = x[0];
  out[1] = x[1];
  return {OutputInfo{DType::f32, out}};
}

void eval_global_avg(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  const Tensor& X = *in[0];
  Tensor& Y = out[0];
  const std::int64_t planes = X.shape()[0] * X.shape()[1];
  const std::int64_t plane_size = planes ? X.numel() / planes : 0;
  const float* x = X.f32();
  float* y = Y.f32();
  parallel_for(ctx.threads, planes, [&](std::int64_t p) {
    double sum = 0.0;
    const float* xp = x + p * plane_size;
    for (std::int64_t i = 0; i < plane_size; ++i) sum += xp[i];
    y[p] = plane_size ? static_cast<float>(sum / static_cast<double>(plane_size)) : 0.f;
  });
  apply_activation(ctx.node, Y);
}

}  // namespace

void register_pool_ops(std::vector<OpDef>& table) {
  table.push_back(OpDef{"MaxPool", infer_pool, eval_pool});
  table.push_back(OpDef{"AveragePool", infer_pool, eval_pool});
  table.push_back(OpDef{"GlobalAveragePool", infer_global_avg, eval_global_avg});
}

}  // namespace vkfuse::graph
