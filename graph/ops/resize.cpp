// graph/ops/resize.cpp — Resize and Upsample: shape inference and naive reference kernels.
//
// Resize (opsets 10–17) and Upsample (opsets 7–9) share one coordinate mapping
// and one interpolation: Upsample is Resize with asymmetric coordinates and
// floor rounding. The output shape depends on the scales or sizes input, which
// must therefore be constant at shape inference; roi only affects values and
// may be a runtime input. Semantics follow the ONNX reference implementation
// (onnx/backend/test/case/node/resize.py): interpolation is separable over
// every axis, the input is edge-padded, and "length_resized" in the coordinate
// formulas is input length * scale before flooring.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "graph/ops.h"

namespace vkfuse::graph {

namespace {

using Interp = ResizePlan::Interp;
using CoordMode = ResizePlan::Coord;
using Rounding = ResizePlan::Rounding;
using ResizeConfig = ResizePlan;

// An input that ONNX counts as "not given": omitted, or an empty tensor.
const InputInfo* given(std::span<const InputInfo> inputs, std::size_t i) {
  const InputInfo* in = opt_info(inputs, i);
  return in && element_count(in->shape) > 0 ? in : nullptr;
}

Interp interp_of(const Node& node, bool upsample) {
  const std::string mode = node.attrs.get_string("mode", "nearest");
  if (mode == "nearest") return Interp::Nearest;
  if (mode == "linear") return Interp::Linear;
  if (mode == "cubic" && !upsample) return Interp::Cubic;
  unsupported_node(node, "mode '" + mode + (upsample ? "' (supported: nearest, linear)"
                                                     : "' (supported: nearest, linear, cubic)"));
}

CoordMode coord_mode_of(const Node& node) {
  const std::string m = node.attrs.get_string("coordinate_transformation_mode", "half_pixel");
  if (m == "half_pixel") return CoordMode::HalfPixel;
  if (m == "pytorch_half_pixel") return CoordMode::PytorchHalfPixel;
  if (m == "align_corners") return CoordMode::AlignCorners;
  if (m == "asymmetric") return CoordMode::Asymmetric;
  if (m == "tf_half_pixel_for_nn") return CoordMode::TfHalfPixelForNn;
  if (m == "tf_crop_and_resize") return CoordMode::TfCropAndResize;
  unsupported_node(node, "coordinate_transformation_mode '" + m + "'");
}

Rounding rounding_of(const Node& node) {
  const std::string m = node.attrs.get_string("nearest_mode", "round_prefer_floor");
  if (m == "round_prefer_floor") return Rounding::RoundPreferFloor;
  if (m == "round_prefer_ceil") return Rounding::RoundPreferCeil;
  if (m == "floor") return Rounding::Floor;
  if (m == "ceil") return Rounding::Ceil;
  unsupported_node(node, "nearest_mode '" + m + "'");
}

// Scales from a constant float input, one per axis.
std::vector<double> scales_from(const Node& node, const InputInfo& s, std::size_t index, std::size_t rank) {
  const std::string label = "the scales (input " + std::to_string(index) + ")";
  if (s.dtype != DType::f32) fail_node(node, label + " have type " + dtype_name(s.dtype) + ", expected float");
  if (!s.constant) unsupported_node(node, label + " are not a constant; vkfuse needs static shapes");
  if (static_cast<std::size_t>(s.constant->numel()) != rank)
    fail_node(node, label + " have " + std::to_string(s.constant->numel()) + " entries for an input of rank " +
                        std::to_string(rank));
  std::vector<double> v;
  for (std::int64_t i = 0; i < s.constant->numel(); ++i) v.push_back(s.constant->as_double(i));
  return v;
}

// Mode, scales and output shape of a Resize (upsample = false) or Upsample node.
ResizeConfig resize_config(const OpContext& ctx, std::span<const InputInfo> inputs, bool upsample) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "X");
  const std::size_t rank = x.shape.size();
  ResizeConfig c;
  c.interp = interp_of(node, upsample);
  if (x.dtype != DType::f32 && c.interp != Interp::Nearest)
    unsupported_node(node, std::string(c.interp == Interp::Linear ? "linear" : "cubic") + " interpolation of " +
                               dtype_name(x.dtype) + " data (float32 only)");
  // Upsample and Resize-10 predate the attributes: asymmetric coordinates,
  // nearest rounds down.
  const bool legacy = upsample || ctx.opset < 11;
  if (legacy) {
    c.coord = CoordMode::Asymmetric;
    c.rounding = Rounding::Floor;
  } else {
    c.coord = coord_mode_of(node);
    c.rounding = rounding_of(node);
    c.cubic_a = node.attrs.get_float("cubic_coeff_a", -0.75f);
    c.exclude_outside = node.attrs.get_int("exclude_outside", 0) != 0;
    c.extrapolation = node.attrs.get_float("extrapolation_value", 0.f);
    if (node.attrs.has("antialias") || node.attrs.has("axes") || node.attrs.has("keep_aspect_ratio_policy"))
      unsupported_node(node, "the opset 18 attributes antialias, axes and keep_aspect_ratio_policy");
  }

  const InputInfo* sizes = nullptr;
  if (upsample && node.attrs.has("scales")) {  // Upsample-7
    const auto s = node.attrs.get_floats("scales");
    if (s.size() != rank)
      fail_node(node, "scales has " + std::to_string(s.size()) + " entries for an input of rank " +
                          std::to_string(rank));
    c.scales.assign(s.begin(), s.end());
  } else if (legacy) {  // Upsample-9, Resize-10: X, scales
    c.scales = scales_from(node, required_info(node, inputs, 1, "scales"), 1, rank);
  } else {  // Resize-11+: X, roi, scales, sizes
    const InputInfo* scales = given(inputs, 2);
    sizes = given(inputs, 3);
    if (scales && sizes) fail_node(node, "both scales and sizes are given; ONNX allows only one");
    if (!scales && !sizes) fail_node(node, "neither scales (input 2) nor sizes (input 3) is given");
    if (scales) c.scales = scales_from(node, *scales, 2, rank);
    if (c.coord == CoordMode::TfCropAndResize) {
      const InputInfo* roi = given(inputs, 1);
      if (!roi) fail_node(node, "tf_crop_and_resize needs the roi (input 1)");
      if (element_count(roi->shape) != static_cast<std::int64_t>(2 * rank))
        fail_node(node, "roi has shape " + shape_string(roi->shape) + "; an input of rank " + std::to_string(rank) +
                            " needs " + std::to_string(2 * rank) + " entries");
      if (roi->dtype != DType::f32) fail_node(node, std::string("roi has type ") + dtype_name(roi->dtype));
    }
  }

  c.out.resize(rank);
  if (sizes) {
    if (sizes->dtype != DType::i64)
      fail_node(node, std::string("the sizes (input 3) have type ") + dtype_name(sizes->dtype) + ", expected int64");
    if (!sizes->constant) unsupported_node(node, "the sizes (input 3) are not a constant; vkfuse needs static shapes");
    const auto sz = sizes->constant->to_ints();
    if (sz.size() != rank)
      fail_node(node, "sizes " + ints_string(sz) + " has " + std::to_string(sz.size()) +
                          " entries for an input of rank " + std::to_string(rank));
    for (std::size_t k = 0; k < rank; ++k) {
      if (sz[k] < 0) fail_node(node, "sizes " + ints_string(sz) + " has a negative entry");
      c.out[k] = sz[k];
      c.scales.push_back(x.shape[k] > 0 ? static_cast<double>(sz[k]) / static_cast<double>(x.shape[k]) : 1.0);
    }
  } else {
    for (std::size_t k = 0; k < rank; ++k) {
      if (!(c.scales[k] > 0) || !std::isfinite(c.scales[k]))
        fail_node(node, "scale " + std::to_string(c.scales[k]) + " of axis " + std::to_string(k) +
                            " must be positive and finite");
      c.out[k] = static_cast<std::int64_t>(std::floor(static_cast<double>(x.shape[k]) * c.scales[k]));
    }
  }
  for (std::size_t k = 0; k < rank; ++k)
    if (x.shape[k] == 0 && c.out[k] > 0)
      fail_node(node, "cannot resize the empty axis " + std::to_string(k) + " to length " + std::to_string(c.out[k]));
  return c;
}

// The input coordinate that output coordinate x maps to along one axis, per
// coordinate_transformation_mode. `resized` is input length * scale, unfloored.
double source_coordinate(CoordMode mode, double x, double scale, std::int64_t in_len, double resized,
                         double roi_start, double roi_end) {
  const auto last = static_cast<double>(in_len - 1);
  switch (mode) {
    case CoordMode::HalfPixel: return (x + 0.5) / scale - 0.5;
    case CoordMode::PytorchHalfPixel: return resized > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    case CoordMode::AlignCorners: return resized > 1 ? x * last / (resized - 1) : 0.0;
    case CoordMode::Asymmetric: return x / scale;
    case CoordMode::TfHalfPixelForNn: return (x + 0.5) / scale;
    case CoordMode::TfCropAndResize:
      return resized > 1 ? roi_start * last + x * (roi_end - roi_start) * last / (resized - 1)
                         : 0.5 * (roi_start + roi_end) * last;
  }
  return 0.0;
}

// One input element's contribution to an output coordinate.
using Tap = ResizeTap;

// For each output coordinate along an axis: its taps, indices clamped to the
// input (edge padding); empty for a coordinate outside a tf_crop_and_resize
// crop, which takes the extrapolation value.
std::vector<std::vector<Tap>> axis_taps(const ResizeConfig& c, std::size_t axis, std::int64_t in_len,
                                        double roi_start, double roi_end) {
  const std::int64_t out_len = c.out[axis];
  const double scale = c.scales[axis];
  const double resized = static_cast<double>(in_len) * scale;
  auto clamp = [in_len](std::int64_t i) { return std::clamp<std::int64_t>(i, 0, in_len - 1); };
  std::vector<std::vector<Tap>> taps(static_cast<std::size_t>(out_len));
  for (std::int64_t o = 0; o < out_len; ++o) {
    const double x = source_coordinate(c.coord, static_cast<double>(o), scale, in_len, resized, roi_start, roi_end);
    if (c.coord == CoordMode::TfCropAndResize && (x < 0 || x > static_cast<double>(in_len - 1))) continue;
    const double fl = std::floor(x);
    const auto x0 = static_cast<std::int64_t>(fl);
    const double r = x - fl;
    auto& t = taps[static_cast<std::size_t>(o)];
    switch (c.interp) {
      case Interp::Nearest: {
        bool up = false;
        if (r > 0) switch (c.rounding) {
            case Rounding::RoundPreferFloor: up = r > 0.5; break;
            case Rounding::RoundPreferCeil: up = r >= 0.5; break;
            case Rounding::Floor: up = false; break;
            case Rounding::Ceil: up = true; break;
          }
        t.push_back({clamp(up ? x0 + 1 : x0), 1.0});
        break;
      }
      case Interp::Linear:
        t.push_back({clamp(x0), 1.0 - r});
        t.push_back({clamp(x0 + 1), r});
        break;
      case Interp::Cubic: {
        // Keys' cubic convolution kernel at distances 1+r, r, 1-r, 2-r.
        const double a = c.cubic_a, s = 1.0 - r;
        const double w[4] = {((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                             ((a + 2) * r - (a + 3)) * r * r + 1,
                             ((a + 2) * s - (a + 3)) * s * s + 1,
                             ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a};
        double sum = 0;
        for (int j = 0; j < 4; ++j) {
          const std::int64_t i = x0 - 1 + j;
          const bool outside = i < 0 || i >= in_len;
          if (c.exclude_outside && outside) continue;
          t.push_back({clamp(i), w[j]});
          sum += w[j];
        }
        if (c.exclude_outside)  // the remaining weights are renormalized to sum to 1
          for (auto& tap : t) tap.weight /= sum;
        break;
      }
    }
    std::erase_if(t, [](const Tap& tap) { return tap.weight == 0.0; });
    if (t.empty()) t.push_back({clamp(x0), 0.0});  // all-zero weights: still inside, value 0
  }
  return taps;
}

// Per axis: roi start and end (in normalized input coordinates), or 0 and 1.
std::vector<double> roi_of(const ResizeConfig& c, std::span<const InputInfo> inputs, std::size_t rank) {
  std::vector<double> roi(2 * rank, 0.0);
  for (std::size_t k = 0; k < rank; ++k) roi[rank + k] = 1.0;
  const InputInfo* r = c.coord == CoordMode::TfCropAndResize ? opt_info(inputs, 1) : nullptr;
  const Tensor* t = r ? r->constant : nullptr;
  if (t && t->numel() == static_cast<std::int64_t>(2 * rank))
    for (std::size_t i = 0; i < 2 * rank; ++i) roi[i] = t->as_double(static_cast<std::int64_t>(i));
  return roi;
}

std::vector<std::vector<std::vector<Tap>>> taps_of(const ResizeConfig& c, std::span<const InputInfo> inputs) {
  const Shape& x = inputs[0].shape;
  const auto roi = roi_of(c, inputs, x.size());
  std::vector<std::vector<std::vector<Tap>>> taps(x.size());
  for (std::size_t k = 0; k < x.size(); ++k) taps[k] = axis_taps(c, k, x[k], roi[k], roi[x.size() + k]);
  return taps;
}

// Nearest: a gather that copies elements by size, so int64 works too.
void eval_nearest(const ResizeConfig& c, const std::vector<std::vector<std::vector<Tap>>>& taps, const Tensor& x,
                  Tensor& y) {
  const std::size_t rank = x.shape().size(), esize = dtype_size(x.dtype());
  std::vector<std::int64_t> strides(rank, 1);
  for (std::size_t k = rank; k-- > 1;) strides[k - 1] = strides[k] * x.shape()[k];
  std::byte fill[8] = {};
  if (x.dtype() == DType::f32) {
    const auto v = static_cast<float>(c.extrapolation);
    std::memcpy(fill, &v, sizeof v);
  } else {
    const auto v = static_cast<std::int64_t>(c.extrapolation);
    std::memcpy(fill, &v, sizeof v);
  }
  const std::int64_t n = y.numel();
  std::vector<std::int64_t> idx(rank, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t off = 0;
    bool inside = true;
    for (std::size_t k = 0; k < rank && inside; ++k) {
      const auto& t = taps[k][static_cast<std::size_t>(idx[k])];
      if (t.empty()) inside = false;
      else off += t[0].index * strides[k];
    }
    std::memcpy(y.bytes() + static_cast<std::size_t>(i) * esize,
                inside ? x.bytes() + static_cast<std::size_t>(off) * esize : fill, esize);
    for (std::size_t k = rank; k-- > 0;) {
      if (++idx[k] < y.shape()[k]) break;
      idx[k] = 0;
    }
  }
}

// Linear and cubic: one 1-D interpolation pass per axis, in double.
void eval_interpolate(const ResizeConfig& c, const std::vector<std::vector<std::vector<Tap>>>& taps, const Tensor& x,
                      Tensor& y) {
  Shape shape = x.shape();
  std::vector<double> cur(x.f32_span().begin(), x.f32_span().end());
  for (std::size_t k = 0; k < shape.size(); ++k) {
    std::int64_t outer = 1, inner = 1;
    for (std::size_t j = 0; j < k; ++j) outer *= shape[j];
    for (std::size_t j = k + 1; j < shape.size(); ++j) inner *= shape[j];
    const std::int64_t in_len = shape[k], out_len = c.out[k];
    std::vector<double> next(static_cast<std::size_t>(outer * out_len * inner));
    for (std::int64_t o = 0; o < outer; ++o)
      for (std::int64_t p = 0; p < out_len; ++p) {
        const auto& t = taps[k][static_cast<std::size_t>(p)];
        for (std::int64_t i = 0; i < inner; ++i) {
          double acc = t.empty() ? c.extrapolation : 0.0;
          for (const Tap& tap : t) acc += tap.weight * cur[static_cast<std::size_t>((o * in_len + tap.index) * inner + i)];
          next[static_cast<std::size_t>((o * out_len + p) * inner + i)] = acc;
        }
      }
    cur = std::move(next);
    shape[k] = out_len;
  }
  float* dst = y.f32();
  for (std::size_t i = 0; i < cur.size(); ++i) dst[i] = static_cast<float>(cur[i]);
}

void eval_resize_common(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs,
                        bool upsample) {
  const Tensor& x = *inputs[0];
  Tensor& y = outputs[0];
  const ResizeConfig c = resize_config(ctx, input_infos(inputs), upsample);
  const auto taps = taps_of(c, input_infos(inputs));
  if (y.numel() > 0) {
    if (c.interp == Interp::Nearest) eval_nearest(c, taps, x, y);
    else eval_interpolate(c, taps, x, y);
  }
  if (y.dtype() == DType::f32) apply_activation(ctx.node, y);
  else if (ctx.node.activation.kind != Activation::Kind::None)
    unsupported_node(ctx.node, std::string("fused ") + ctx.node.activation.name() + " on an int64 result");
}

}  // namespace

ResizePlan resize_plan(const OpContext& ctx, std::span<const InputInfo> inputs) {
  return resize_config(ctx, inputs, ctx.node.op_type == "Upsample");
}

ResizeTaps resize_taps(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const ResizeConfig c = resize_config(ctx, inputs, ctx.node.op_type == "Upsample");
  return ResizeTaps{taps_of(c, inputs), c.extrapolation};
}

namespace {

std::vector<OutputInfo> infer_resize(const OpContext& ctx, std::span<const InputInfo> inputs) {
  ResizeConfig c = resize_config(ctx, inputs, false);
  return {OutputInfo{inputs[0].dtype, std::move(c.out)}};
}

void eval_resize(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  eval_resize_common(ctx, inputs, outputs, false);
}

std::vector<OutputInfo> infer_upsample(const OpContext& ctx, std::span<const InputInfo> inputs) {
  ResizeConfig c = resize_config(ctx, inputs, true);
  return {OutputInfo{inputs[0].dtype, std::move(c.out)}};
}

void eval_upsample(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  eval_resize_common(ctx, inputs, outputs, true);
}

}  // namespace

void register_resize_ops(std::vector<OpDef>& table) {
  table.push_back(OpDef{"Resize", infer_resize, eval_resize});
  table.push_back(OpDef{"Upsample", infer_upsample, eval_upsample});
}

}  // namespace vkfuse::graph
