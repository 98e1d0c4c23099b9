// graph/ops/conv.cpp — Conv and ConvTranspose: shape inference and the naive
// reference kernels.
//
// 1-D, 2-D and 3-D convolutions (NCW, NCHW, NCDHW) with groups (depthwise
// included), strides, dilations, explicit (possibly asymmetric) pads, auto_pad
// NOTSET/VALID/SAME_UPPER/SAME_LOWER and an optional bias. ConvTranspose adds
// output_padding and output_shape. Lower-rank convolutions run through the 3-D
// loops with unit leading spatial dims.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "graph/ops.h"

namespace vkfuse::graph {

namespace {

// kernel_shape, strides, dilations, pads and auto_pad, validated; shared by
// Conv and ConvTranspose, which read them identically.
struct ConvAttrs {
  std::vector<std::int64_t> kernel, strides, dilations, pads;  // pads: nsp begins, then nsp ends
  std::string auto_pad;
};

// `kernel` is the weight's spatial shape; a kernel_shape attribute must match it.
ConvAttrs conv_attrs(const Node& node, std::size_t nsp, std::vector<std::int64_t> kernel) {
  const Attributes& a = node.attrs;
  ConvAttrs g;
  g.kernel = std::move(kernel);
  if (a.has("kernel_shape")) {
    auto ks = a.get_ints("kernel_shape");
    if (ks != g.kernel)
      fail_node(node, "kernel_shape " + ints_string(ks) + " does not match the weight's spatial shape " +
                          ints_string(g.kernel));
  }
  g.strides = a.get_ints("strides", std::vector<std::int64_t>(nsp, 1));
  g.dilations = a.get_ints("dilations", std::vector<std::int64_t>(nsp, 1));
  g.pads = a.get_ints("pads", std::vector<std::int64_t>(2 * nsp, 0));
  if (g.strides.size() != nsp) fail_node(node, "strides " + ints_string(g.strides) + " must have " +
                                                   std::to_string(nsp) + " entries");
  if (g.dilations.size() != nsp)
    fail_node(node, "dilations " + ints_string(g.dilations) + " must have " + std::to_string(nsp) + " entries");
  if (g.pads.size() != 2 * nsp)
    fail_node(node, "pads " + ints_string(g.pads) + " must have " + std::to_string(2 * nsp) + " entries");
  for (std::size_t i = 0; i < nsp; ++i) {
    if (g.kernel[i] < 1) fail_node(node, "kernel size must be positive, got " + ints_string(g.kernel));
    if (g.strides[i] < 1) fail_node(node, "strides must be positive, got " + ints_string(g.strides));
    if (g.dilations[i] < 1) fail_node(node, "dilations must be positive, got " + ints_string(g.dilations));
    if (g.pads[i] < 0 || g.pads[i + nsp] < 0)
      fail_node(node, "pads must be non-negative, got " + ints_string(g.pads));
  }
  g.auto_pad = a.get_string("auto_pad", "NOTSET");
  if (g.auto_pad != "NOTSET" && g.auto_pad != "VALID" && g.auto_pad != "SAME_UPPER" && g.auto_pad != "SAME_LOWER")
    unsupported_node(node, "auto_pad '" + g.auto_pad + "' (expected NOTSET, VALID, SAME_UPPER or SAME_LOWER)");
  return g;
}

// Validates the node's attributes against X [N, C, spatial...] and
// W [M, C/group, k...] and works out pads and the output spatial shape.
ConvGeometry conv_geometry(const Node& node, const Shape& x, const Shape& w) {
  const std::size_t nsp = x.size() - 2;
  ConvAttrs a = conv_attrs(node, nsp, std::vector<std::int64_t>(w.begin() + 2, w.end()));
  const std::vector<std::int64_t>& pads = a.pads;
  const std::string& auto_pad = a.auto_pad;
  ConvGeometry g;
  g.kernel = a.kernel;
  g.strides = a.strides;
  g.dilations = a.dilations;
  g.pad_begin.resize(nsp);
  g.pad_end.resize(nsp);
  g.out.resize(nsp);
  for (std::size_t i = 0; i < nsp; ++i) {
    const std::int64_t in = x[i + 2];
    const std::int64_t ek = (g.kernel[i] - 1) * g.dilations[i] + 1;  // effective kernel extent
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const std::int64_t out = ceil_div(in, g.strides[i]);
      const std::int64_t total = std::max<std::int64_t>(0, (out - 1) * g.strides[i] + ek - in);
      const std::int64_t small = total / 2, big = total - small;
      g.pad_begin[i] = auto_pad == "SAME_UPPER" ? small : big;
      g.pad_end[i] = auto_pad == "SAME_UPPER" ? big : small;
    } else if (auto_pad == "VALID") {
      g.pad_begin[i] = g.pad_end[i] = 0;
    } else {
      g.pad_begin[i] = pads[i];
      g.pad_end[i] = pads[i + nsp];
    }
    const std::int64_t span = in + g.pad_begin[i] + g.pad_end[i] - ek;
    if (span < 0)
      fail_node(node, "input " + shape_string(x) + " is smaller than the (dilated, padded) kernel along spatial axis " +
                          std::to_string(i));
    g.out[i] = span / g.strides[i] + 1;
  }
  return g;
}

void require_f32(const Node& node, std::span<const InputInfo> in, std::size_t i, const char* what) {
  if (in[i].dtype != DType::f32)
    unsupported_node(node, std::string(what) + " has dtype " + dtype_name(in[i].dtype) +
                               "; only float32 convolutions are supported");
}

std::vector<OutputInfo> infer_conv(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  if (in.size() < 2 || !in[0].present || !in[1].present)
    fail_node(node, "Conv needs inputs X and W, got " + std::to_string(in.size()) + " input(s)");
  if (in.size() > 3) fail_node(node, "Conv takes at most 3 inputs (X, W, B), got " + std::to_string(in.size()));
  require_f32(node, in, 0, "input X");
  require_f32(node, in, 1, "weight W");
  const Shape& x = in[0].shape;
  const Shape& w = in[1].shape;
  if (x.size() < 3 || x.size() > 5)
    unsupported_node(node, "input X of shape " + shape_string(x) +
                               ": only 1-D, 2-D and 3-D convolutions (rank 3 to 5) are supported");
  if (w.size() != x.size())
    fail_node(node, "weight W of shape " + shape_string(w) + " must have the rank of input X " + shape_string(x));
  const std::int64_t group = node.attrs.get_int("group", 1);
  if (group < 1) fail_node(node, "group must be positive, got " + std::to_string(group));
  const std::int64_t c = x[1], m = w[0];
  if (c != w[1] * group)
    fail_node(node, "input channels " + std::to_string(c) + " do not match weight channels W.shape[1]=" +
                        std::to_string(w[1]) + " times group=" + std::to_string(group));
  if (m % group != 0)
    fail_node(node, "output channels " + std::to_string(m) + " are not divisible by group=" + std::to_string(group));
  if (in.size() == 3 && in[2].present) {
    require_f32(node, in, 2, "bias B");
    if (in[2].shape != Shape{m})
      fail_node(node, "bias B of shape " + shape_string(in[2].shape) + " must have shape " + std::to_string(m));
  }
  ConvGeometry g = conv_geometry(node, x, w);
  Shape out{x[0], m};
  out.insert(out.end(), g.out.begin(), g.out.end());
  return {OutputInfo{DType::f32, out}};
}

void eval_conv(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  const Node& node = ctx.node;
  const Tensor& X = *in[0];
  const Tensor& W = *in[1];
  const Tensor* B = in.size() > 2 ? in[2] : nullptr;
  Tensor& Y = out[0];
  const ConvGeometry g = conv_geometry(node, X.shape(), W.shape());

  const std::int64_t N = X.shape()[0], C = X.shape()[1], M = W.shape()[0];
  const std::int64_t group = node.attrs.get_int("group", 1);
  const std::int64_t Cg = C / group, Mg = M / group;
  std::vector<std::int64_t> in_sp(X.shape().begin() + 2, X.shape().end());
  const auto isz = to3(in_sp, 1), osz = to3(g.out, 1), k = to3(g.kernel, 1), s = to3(g.strides, 1),
             d = to3(g.dilations, 1), p = to3(g.pad_begin, 0);
  const std::int64_t ID = isz[0], IH = isz[1], IW = isz[2];
  const std::int64_t OD = osz[0], OH = osz[1], OW = osz[2];
  const std::int64_t KD = k[0], KH = k[1], KW = k[2];
  const std::int64_t in_plane = ID * IH * IW, out_plane = OD * OH * OW, kvol = KD * KH * KW;

  const float* x = X.f32();
  const float* w = W.f32();
  const float* b = B ? B->f32() : nullptr;
  float* y = Y.f32();

  parallel_for(ctx.threads, N * M, [&](std::int64_t task) {
    const std::int64_t n = task / M, m = task % M, grp = m / Mg;
    std::vector<double> acc(static_cast<std::size_t>(out_plane), b ? static_cast<double>(b[m]) : 0.0);
    for (std::int64_t cg = 0; cg < Cg; ++cg) {
      const float* xc = x + (n * C + grp * Cg + cg) * in_plane;
      const float* wc = w + (m * Cg + cg) * kvol;
      for (std::int64_t kd = 0; kd < KD; ++kd)
        for (std::int64_t kh = 0; kh < KH; ++kh)
          for (std::int64_t kw = 0; kw < KW; ++kw) {
            const double wv = wc[(kd * KH + kh) * KW + kw];
            // Output columns whose input column iw = ow*s - p + kw*d lies in [0, IW).
            const std::int64_t off_w = kw * d[2] - p[2];
            const std::int64_t ow_lo = std::max<std::int64_t>(0, ceil_div(-off_w, s[2]));
            const std::int64_t ow_hi = std::min<std::int64_t>(OW, floor_div(IW - 1 - off_w, s[2]) + 1);
            if (ow_lo >= ow_hi) continue;
            for (std::int64_t od = 0; od < OD; ++od) {
              const std::int64_t id = od * s[0] - p[0] + kd * d[0];
              if (id < 0 || id >= ID) continue;
              for (std::int64_t oh = 0; oh < OH; ++oh) {
                const std::int64_t ih = oh * s[1] - p[1] + kh * d[1];
                if (ih < 0 || ih >= IH) continue;
                const float* xrow = xc + (id * IH + ih) * IW;
                double* arow = acc.data() + (od * OH + oh) * OW;
                const std::int64_t sw = s[2];
                for (std::int64_t ow = ow_lo; ow < ow_hi; ++ow)
                  arow[ow] += wv * static_cast<double>(xrow[ow * sw + off_w]);
              }
            }
          }
    }
    float* yp = y + (n * M + m) * out_plane;
    for (std::int64_t i = 0; i < out_plane; ++i) yp[i] = static_cast<float>(acc[static_cast<std::size_t>(i)]);
  });
  apply_activation(node, Y);
}

// ---- ConvTranspose -----------------------------------------------------------

}  // namespace

// A negative pad extends the output past the full scatter with zeros
// (test_convtranspose_output_shape).
ConvGeometry conv_transpose_geometry(const Node& node, const Shape& x, const Shape& w) {
  const std::size_t nsp = x.size() - 2;
  ConvAttrs a = conv_attrs(node, nsp, std::vector<std::int64_t>(w.begin() + 2, w.end()));
  auto output_padding = node.attrs.get_ints("output_padding", std::vector<std::int64_t>(nsp, 0));
  if (output_padding.size() != nsp)
    fail_node(node, "output_padding " + ints_string(output_padding) + " must have " + std::to_string(nsp) +
                        " entries");
  // output_shape is spatial, though some exporters write the full [N, M, spatial...].
  std::vector<std::int64_t> output_shape;
  if (node.attrs.has("output_shape")) {
    output_shape = node.attrs.get_ints("output_shape");
    if (output_shape.size() == nsp + 2) output_shape.erase(output_shape.begin(), output_shape.begin() + 2);
    if (output_shape.size() != nsp)
      fail_node(node, "output_shape " + ints_string(node.attrs.get_ints("output_shape")) + " must have " +
                          std::to_string(nsp) + " entries");
  }
  const bool same = a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER";
  ConvGeometry g;
  g.kernel = a.kernel;
  g.strides = a.strides;
  g.dilations = a.dilations;
  g.pad_begin.resize(nsp);
  g.pad_end.resize(nsp);
  g.out.resize(nsp);
  for (std::size_t i = 0; i < nsp; ++i) {
    const std::int64_t in = x[i + 2];
    const std::int64_t ek = (g.kernel[i] - 1) * g.dilations[i] + 1;  // effective kernel extent
    // Same rule as PyTorch: output_padding only selects among the output sizes
    // a stride (or dilation) makes ambiguous.
    if (output_padding[i] < 0 || (output_padding[i] >= g.strides[i] && output_padding[i] >= g.dilations[i]))
      fail_node(node, "output_padding " + ints_string(output_padding) +
                          " must be non-negative and smaller than the stride or the dilation");
    const std::int64_t full = g.strides[i] * (in - 1) + output_padding[i] + ek;  // size with no padding
    if (!output_shape.empty() || same) {
      // ONNX (opset 11+): total padding from the requested size; SAME_UPPER
      // puts the odd pixel at the end, SAME_LOWER and NOTSET at the beginning.
      // floor_div keeps that split right for a negative total.
      const std::int64_t target = !output_shape.empty() ? output_shape[i] : in * g.strides[i];
      if (target < 1) fail_node(node, "output_shape " + ints_string(output_shape) + " must be positive");
      const std::int64_t total = full - target;
      const std::int64_t half = floor_div(total, 2);
      g.pad_begin[i] = a.auto_pad == "SAME_UPPER" ? half : total - half;
      g.pad_end[i] = total - g.pad_begin[i];
    } else if (a.auto_pad == "VALID") {
      g.pad_begin[i] = g.pad_end[i] = 0;
    } else {
      g.pad_begin[i] = a.pads[i];
      g.pad_end[i] = a.pads[i + nsp];
    }
    g.out[i] = full - g.pad_begin[i] - g.pad_end[i];
    if (g.out[i] < 1)
      fail_node(node, "pads " + ints_string(a.pads) + " leave no output along spatial axis " + std::to_string(i) +
                          " (size " + std::to_string(g.out[i]) + ")");
  }
  return g;
}

namespace {

std::vector<OutputInfo> infer_conv_transpose(const OpContext& ctx, std::span<const InputInfo> in) {
  const Node& node = ctx.node;
  if (in.size() < 2 || !in[0].present || !in[1].present)
    fail_node(node, "ConvTranspose needs inputs X and W, got " + std::to_string(in.size()) + " input(s)");
  if (in.size() > 3)
    fail_node(node, "ConvTranspose takes at most 3 inputs (X, W, B), got " + std::to_string(in.size()));
  require_f32(node, in, 0, "input X");
  require_f32(node, in, 1, "weight W");
  const Shape& x = in[0].shape;
  const Shape& w = in[1].shape;
  if (x.size() < 3 || x.size() > 5)
    unsupported_node(node, "input X of shape " + shape_string(x) +
                               ": only 1-D, 2-D and 3-D transposed convolutions (rank 3 to 5) are supported");
  if (w.size() != x.size())
    fail_node(node, "weight W of shape " + shape_string(w) + " must have the rank of input X " + shape_string(x));
  const std::int64_t group = node.attrs.get_int("group", 1);
  if (group < 1) fail_node(node, "group must be positive, got " + std::to_string(group));
  const std::int64_t c = x[1];
  if (w[0] != c)
    fail_node(node, "weight W of shape " + shape_string(w) + " must have W.shape[0] equal to the input channels " +
                        std::to_string(c));
  if (c % group != 0)
    fail_node(node, "input channels " + std::to_string(c) + " are not divisible by group=" + std::to_string(group));
  const std::int64_t m = w[1] * group;
  if (in.size() == 3 && in[2].present) {
    require_f32(node, in, 2, "bias B");
    if (in[2].shape != Shape{m})
      fail_node(node, "bias B of shape " + shape_string(in[2].shape) + " must have shape " + std::to_string(m));
  }
  ConvGeometry g = conv_transpose_geometry(node, x, w);
  Shape out{x[0], m};
  out.insert(out.end(), g.out.begin(), g.out.end());
  return {OutputInfo{DType::f32, out}};
}

// Scatter form: input pixel i and kernel tap k add into output o = i*s - p + k*d.
// One task per (image, output channel), so tasks never write the same plane.
void eval_conv_transpose(const OpContext& ctx, std::span<const Tensor* const> in, std::span<Tensor> out) {
  const Node& node = ctx.node;
  const Tensor& X = *in[0];
  const Tensor& W = *in[1];
  const Tensor* B = in.size() > 2 ? in[2] : nullptr;
  Tensor& Y = out[0];
  const ConvGeometry g = conv_transpose_geometry(node, X.shape(), W.shape());

  const std::int64_t group = node.attrs.get_int("group", 1);
  const std::int64_t N = X.shape()[0], C = X.shape()[1], Mg = W.shape()[1];
  const std::int64_t M = Mg * group, Cg = C / group;
  std::vector<std::int64_t> in_sp(X.shape().begin() + 2, X.shape().end());
  const auto isz = to3(in_sp, 1), osz = to3(g.out, 1), k = to3(g.kernel, 1), s = to3(g.strides, 1),
             d = to3(g.dilations, 1), p = to3(g.pad_begin, 0);
  const std::int64_t ID = isz[0], IH = isz[1], IW = isz[2];
  const std::int64_t OD = osz[0], OH = osz[1], OW = osz[2];
  const std::int64_t KD = k[0], KH = k[1], KW = k[2];
  const std::int64_t in_plane = ID * IH * IW, out_plane = OD * OH * OW, kvol = KD * KH * KW;

  const float* x = X.f32();
  const float* w = W.f32();
  const float* b = B ? B->f32() : nullptr;
  float* y = Y.f32();

  parallel_for(ctx.threads, N * M, [&](std::int64_t task) {
    const std::int64_t n = task / M, m = task % M, grp = m / Mg, mg = m % Mg;
    std::vector<double> acc(static_cast<std::size_t>(out_plane), b ? static_cast<double>(b[m]) : 0.0);
    for (std::int64_t cg = 0; cg < Cg; ++cg) {
      const std::int64_t c = grp * Cg + cg;
      const float* xc = x + (n * C + c) * in_plane;
      const float* wc = w + (c * Mg + mg) * kvol;
      for (std::int64_t kd = 0; kd < KD; ++kd)
        for (std::int64_t kh = 0; kh < KH; ++kh)
          for (std::int64_t kw = 0; kw < KW; ++kw) {
            const double wv = wc[(kd * KH + kh) * KW + kw];
            // Input columns whose output column ow = iw*s + off_w lies in [0, OW).
            const std::int64_t off_w = kw * d[2] - p[2];
            const std::int64_t iw_lo = std::max<std::int64_t>(0, ceil_div(-off_w, s[2]));
            const std::int64_t iw_hi = std::min<std::int64_t>(IW, floor_div(OW - 1 - off_w, s[2]) + 1);
            if (iw_lo >= iw_hi) continue;
            for (std::int64_t id = 0; id < ID; ++id) {
              const std::int64_t od = id * s[0] - p[0] + kd * d[0];
              if (od < 0 || od >= OD) continue;
              for (std::int64_t ih = 0; ih < IH; ++ih) {
                const std::int64_t oh = ih * s[1] - p[1] + kh * d[1];
                if (oh < 0 || oh >= OH) continue;
                const float* xrow = xc + (id * IH + ih) * IW;
                double* arow = acc.data() + (od * OH + oh) * OW;
                const std::int64_t sw = s[2];
                for (std::int64_t iw = iw_lo; iw < iw_hi; ++iw)
                  arow[iw * sw + off_w] += wv * static_cast<double>(xrow[iw]);
              }
            }
          }
    }
    float* yp = y + (n * M + m) * out_plane;
    for (std::int64_t i = 0; i < out_plane; ++i) yp[i] = static_cast<float>(acc[static_cast<std::size_t>(i)]);
  });
  apply_activation(node, Y);
}

}  // namespace

void register_conv_ops(std::vector<OpDef>& table) {
  table.push_back(OpDef{"Conv", infer_conv, eval_conv});
  table.push_back(OpDef{"ConvTranspose", infer_conv_transpose, eval_conv_transpose});
}

}  // namespace vkfuse::graph
