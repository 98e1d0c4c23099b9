// graph/ops/layout_ops.cpp — Slice, Split, Expand, Tile, DepthToSpace, SpaceToDepth,
// ConstantOfShape, Range, Cast: shape inference and naive reference kernels.
//
// ONNX opsets 11–17 (and the attribute forms of Slice and Split that older
// exporters still emit). Data movement copies elements by their byte size, so
// it works for float32 and int64 alike. Where ONNX makes an output shape depend
// on an input's value (Slice's starts/ends/axes/steps, Split's sizes, Expand's
// shape, Tile's repeats, ConstantOfShape's shape, Range's bounds), that input
// must be constant at shape inference; otherwise the node is unsupported
// (vkfuse has no dynamic shapes).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "graph/ops.h"

namespace vkfuse::graph {

namespace {

// The values of an int64 input that must be constant because the output shape
// depends on them.
std::vector<std::int64_t> constant_ints(const Node& node, const InputInfo& in, std::size_t index, const char* what) {
  const std::string label = std::string("the ") + what + " (input " + std::to_string(index) + ")";
  if (in.dtype != DType::i64)
    fail_node(node, label + " has type " + dtype_name(in.dtype) + ", expected int64");
  if (in.shape.size() > 1) fail_node(node, label + " must be 1-D, got shape " + shape_string(in.shape));
  if (!in.constant) unsupported_node(node, label + " is not a constant; vkfuse needs static shapes");
  return in.constant->to_ints();
}

// Output element i (row-major over out_shape) = source element at
// sum_k offsets[k][idx[k]] (in elements), copied as `esize` bytes. Per-axis
// offset tables express slicing, broadcasting and tiling alike.
void gather_axes(std::size_t esize, const Shape& out_shape, const std::vector<std::vector<std::int64_t>>& offsets,
                 const std::byte* src, std::byte* dst) {
  const std::int64_t n = element_count(out_shape);
  if (n == 0) return;
  const std::size_t rank = out_shape.size();
  std::vector<std::int64_t> idx(rank, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t off = 0;
    for (std::size_t k = 0; k < rank; ++k) off += offsets[k][static_cast<std::size_t>(idx[k])];
    std::memcpy(dst + static_cast<std::size_t>(i) * esize, src + static_cast<std::size_t>(off) * esize, esize);
    for (std::size_t k = rank; k-- > 0;) {
      if (++idx[k] < out_shape[k]) break;
      idx[k] = 0;
    }
  }
}

// Output element i (row-major over out_shape) = source element at
// sum_k idx[k] * src_strides[k] (a transposed view).
void gather_strided(std::size_t esize, const Shape& out_shape, const std::vector<std::int64_t>& src_strides,
                    const std::byte* src, std::byte* dst) {
  std::vector<std::vector<std::int64_t>> offsets(out_shape.size());
  for (std::size_t k = 0; k < out_shape.size(); ++k) {
    offsets[k].resize(static_cast<std::size_t>(out_shape[k]));
    for (std::int64_t i = 0; i < out_shape[k]; ++i) offsets[k][static_cast<std::size_t>(i)] = i * src_strides[k];
  }
  gather_axes(esize, out_shape, offsets, src, dst);
}

// ---------------------------------------------------------------------------
// Slice

}  // namespace

SlicePlan slice_plan(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "data");
  const auto rank = static_cast<std::int64_t>(x.shape.size());
  std::vector<std::int64_t> starts, ends, axes, steps;
  if (const InputInfo* s = opt_info(inputs, 1)) {  // opset >= 10
    starts = constant_ints(node, *s, 1, "starts");
    ends = constant_ints(node, required_info(node, inputs, 2, "ends"), 2, "ends");
    if (const InputInfo* a = opt_info(inputs, 3)) axes = constant_ints(node, *a, 3, "axes");
    if (const InputInfo* st = opt_info(inputs, 4)) steps = constant_ints(node, *st, 4, "steps");
  } else if (node.attrs.has("starts")) {  // opset < 10
    starts = node.attrs.get_ints("starts");
    ends = node.attrs.get_ints("ends");
    axes = node.attrs.get_ints("axes");
  } else {
    fail_node(node, "missing the starts (input 1, or the 'starts' attribute before opset 10)");
  }
  if (ends.size() != starts.size())
    fail_node(node, "starts " + ints_string(starts) + " and ends " + ints_string(ends) + " differ in length");
  if (axes.empty())
    for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<std::int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (axes.size() != starts.size() || steps.size() != starts.size())
    fail_node(node, "starts " + ints_string(starts) + ", axes " + ints_string(axes) + " and steps " +
                        ints_string(steps) + " differ in length");

  SlicePlan p{std::vector<std::int64_t>(x.shape.size(), 0), std::vector<std::int64_t>(x.shape.size(), 1), x.shape};
  std::vector<bool> seen(x.shape.size(), false);
  for (std::size_t i = 0; i < starts.size(); ++i) {
    const auto k = static_cast<std::size_t>(normalize_axis(node, axes[i], rank, "axes entry"));
    if (seen[k]) fail_node(node, "axes " + ints_string(axes) + " name axis " + std::to_string(k) + " twice");
    seen[k] = true;
    const std::int64_t d = x.shape[k], step = steps[i];
    if (step == 0) fail_node(node, "steps " + ints_string(steps) + " contain 0");
    // ONNX: negative indices count from the end; then clamp to [0, d] for a
    // positive step and to [0, d-1] (start) / [-1, d-1] (end) for a negative one.
    std::int64_t start = starts[i], end = ends[i];
    if (start < 0) start += d;
    if (end < 0) end += d;
    std::int64_t len = 0;
    if (step > 0) {
      start = std::clamp<std::int64_t>(start, 0, d);
      end = std::clamp<std::int64_t>(end, 0, d);
      len = end > start ? ceil_div(end - start, step) : 0;
    } else {
      start = std::clamp<std::int64_t>(start, 0, std::max<std::int64_t>(d - 1, 0));
      end = std::clamp<std::int64_t>(end, -1, d - 1);
      len = d > 0 && start > end ? ceil_div(start - end, -step) : 0;
    }
    p.start[k] = start;
    p.step[k] = step;
    p.out[k] = len;
  }
  return p;
}

namespace {

std::vector<OutputInfo> infer_slice(const OpContext& ctx, std::span<const InputInfo> inputs) {
  SlicePlan p = slice_plan(ctx, inputs);
  return {OutputInfo{inputs[0].dtype, std::move(p.out)}};
}

void eval_slice(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Tensor& x = *inputs[0];
  Tensor& y = outputs[0];
  const SlicePlan p = slice_plan(ctx, input_infos(inputs));
  const auto strides = row_major_strides(x.shape());
  std::vector<std::vector<std::int64_t>> offsets(p.out.size());
  for (std::size_t k = 0; k < p.out.size(); ++k)
    for (std::int64_t i = 0; i < p.out[k]; ++i) offsets[k].push_back((p.start[k] + i * p.step[k]) * strides[k]);
  gather_axes(dtype_size(x.dtype()), y.shape(), offsets, x.bytes(), y.bytes());
  finish_data_movement(ctx, y);
}

// ---------------------------------------------------------------------------
// Split

struct SplitPlan {
  std::size_t axis = 0;
  std::vector<std::int64_t> sizes;
};

SplitPlan split_plan(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "input");
  const auto rank = static_cast<std::int64_t>(x.shape.size());
  if (rank == 0) fail_node(node, "cannot split a scalar");
  if (node.attrs.has("num_outputs")) unsupported_node(node, "the 'num_outputs' attribute (opset 18)");
  SplitPlan p;
  p.axis = static_cast<std::size_t>(normalize_axis(node, node.attrs.get_int("axis", 0), rank));
  const std::int64_t dim = x.shape[p.axis];
  const auto n_out = static_cast<std::int64_t>(node.outputs.size());
  if (n_out == 0) fail_node(node, "Split has no outputs");
  if (const InputInfo* s = opt_info(inputs, 1)) {  // opset >= 13
    p.sizes = constant_ints(node, *s, 1, "split");
  } else if (node.attrs.has("split")) {  // opset < 13
    p.sizes = node.attrs.get_ints("split");
  } else {
    if (dim % n_out != 0)
      fail_node(node, "axis " + std::to_string(p.axis) + " of size " + std::to_string(dim) +
                          " does not split into " + std::to_string(n_out) + " equal parts");
    p.sizes.assign(static_cast<std::size_t>(n_out), dim / n_out);
    return p;
  }
  if (static_cast<std::int64_t>(p.sizes.size()) != n_out)
    fail_node(node, "split " + ints_string(p.sizes) + " has " + std::to_string(p.sizes.size()) +
                        " entries for " + std::to_string(n_out) + " outputs");
  std::int64_t total = 0;
  for (std::int64_t s : p.sizes) {
    if (s < 0) fail_node(node, "split " + ints_string(p.sizes) + " has a negative size");
    total += s;
  }
  if (total != dim)
    fail_node(node, "split " + ints_string(p.sizes) + " sums to " + std::to_string(total) + ", but axis " +
                        std::to_string(p.axis) + " has size " + std::to_string(dim));
  return p;
}

std::vector<OutputInfo> infer_split(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const SplitPlan p = split_plan(ctx, inputs);
  std::vector<OutputInfo> out;
  for (std::int64_t s : p.sizes) {
    Shape shape = inputs[0].shape;
    shape[p.axis] = s;
    out.push_back(OutputInfo{inputs[0].dtype, shape});
  }
  return out;
}

void eval_split(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Tensor& x = *inputs[0];
  const SplitPlan p = split_plan(ctx, input_infos(inputs));
  const Shape& in = x.shape();
  const std::size_t esize = dtype_size(x.dtype());
  std::int64_t outer = 1, inner = 1;
  for (std::size_t k = 0; k < p.axis; ++k) outer *= in[k];
  for (std::size_t k = p.axis + 1; k < in.size(); ++k) inner *= in[k];
  const auto row = static_cast<std::size_t>(in[p.axis] * inner) * esize;  // one outer slab of x
  std::size_t begin = 0;                                                   // bytes into the slab
  for (std::size_t j = 0; j < outputs.size() && j < p.sizes.size(); ++j) {
    const auto chunk = static_cast<std::size_t>(p.sizes[j] * inner) * esize;
    for (std::int64_t o = 0; o < outer; ++o)
      if (chunk) std::memcpy(outputs[j].bytes() + static_cast<std::size_t>(o) * chunk,
                             x.bytes() + static_cast<std::size_t>(o) * row + begin, chunk);
    begin += chunk;
  }
  finish_data_movement(ctx, outputs[0]);
}

// ---------------------------------------------------------------------------
// Expand, Tile

std::vector<OutputInfo> infer_expand(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "input");
  const auto target = constant_ints(node, required_info(node, inputs, 1, "shape"), 1, "shape");
  for (std::int64_t d : target)
    if (d < 0) fail_node(node, "shape " + ints_string(target) + " has a negative dimension");
  return {OutputInfo{x.dtype, broadcast_shapes(node, x.shape, target)}};
}

void eval_expand(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Tensor& x = *inputs[0];
  Tensor& y = outputs[0];
  const Shape& in = x.shape();
  const Shape& out = y.shape();
  const auto strides = row_major_strides(in);
  const std::size_t lead = out.size() - in.size();  // broadcasting aligns trailing axes
  std::vector<std::vector<std::int64_t>> offsets(out.size());
  for (std::size_t k = 0; k < out.size(); ++k) {
    const bool repeated = k < lead || in[k - lead] == 1;
    for (std::int64_t i = 0; i < out[k]; ++i) offsets[k].push_back(repeated ? 0 : i * strides[k - lead]);
  }
  gather_axes(dtype_size(x.dtype()), out, offsets, x.bytes(), y.bytes());
  finish_data_movement(ctx, y);
}

std::vector<OutputInfo> infer_tile(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "input");
  const auto repeats = constant_ints(node, required_info(node, inputs, 1, "repeats"), 1, "repeats");
  if (repeats.size() != x.shape.size())
    fail_node(node, "repeats " + ints_string(repeats) + " has " + std::to_string(repeats.size()) +
                        " entries for an input of shape " + shape_string(x.shape));
  Shape out(x.shape.size());
  for (std::size_t k = 0; k < out.size(); ++k) {
    if (repeats[k] < 0) fail_node(node, "repeats " + ints_string(repeats) + " has a negative entry");
    out[k] = x.shape[k] * repeats[k];
  }
  return {OutputInfo{x.dtype, out}};
}

void eval_tile(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Tensor& x = *inputs[0];
  Tensor& y = outputs[0];
  const Shape& in = x.shape();
  const auto strides = row_major_strides(in);
  std::vector<std::vector<std::int64_t>> offsets(in.size());
  for (std::size_t k = 0; k < in.size(); ++k)
    for (std::int64_t i = 0; i < y.shape()[k]; ++i) offsets[k].push_back((i % in[k]) * strides[k]);
  gather_axes(dtype_size(x.dtype()), y.shape(), offsets, x.bytes(), y.bytes());
  finish_data_movement(ctx, y);
}

// ---------------------------------------------------------------------------
// DepthToSpace, SpaceToDepth: a reshape to 6-D, a transpose, a reshape back.

std::int64_t blocksize_of(const Node& node, const InputInfo& x) {
  if (!node.attrs.has("blocksize")) fail_node(node, "missing the 'blocksize' attribute");
  const std::int64_t b = node.attrs.get_int("blocksize", 1);
  if (b <= 0) fail_node(node, "blocksize " + std::to_string(b) + " must be positive");
  if (x.shape.size() != 4) fail_node(node, "input must be 4-D (NCHW), got " + shape_string(x.shape));
  return b;
}

bool depth_to_space_crd(const Node& node) {
  const std::string mode = node.attrs.get_string("mode", "DCR");
  if (mode == "DCR") return false;
  if (mode == "CRD") return true;
  fail_node(node, "DepthToSpace mode '" + mode + "' (expected DCR or CRD)");
}

std::vector<OutputInfo> infer_depth_to_space(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "input");
  const std::int64_t b = blocksize_of(node, x);
  depth_to_space_crd(node);
  if (x.shape[1] % (b * b) != 0)
    fail_node(node, "channels " + std::to_string(x.shape[1]) + " are not divisible by blocksize² " +
                        std::to_string(b * b));
  return {OutputInfo{x.dtype, {x.shape[0], x.shape[1] / (b * b), x.shape[2] * b, x.shape[3] * b}}};
}

// Permutes the 6-D view `view` of x by `perm` into y (whose bytes are the
// permuted view in row-major order).
void permute_view(const Tensor& x, Tensor& y, const Shape& view, const std::vector<std::size_t>& perm) {
  const auto st = row_major_strides(view);
  Shape out(perm.size());
  std::vector<std::int64_t> src_strides(perm.size());
  for (std::size_t j = 0; j < perm.size(); ++j) {
    out[j] = view[perm[j]];
    src_strides[j] = st[perm[j]];
  }
  gather_strided(dtype_size(x.dtype()), out, src_strides, x.bytes(), y.bytes());
}

void eval_depth_to_space(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Tensor& x = *inputs[0];
  const Shape& s = x.shape();
  const std::int64_t b = ctx.node.attrs.get_int("blocksize", 1);
  const std::int64_t n = s[0], c = s[1] / (b * b), h = s[2], w = s[3];
  if (depth_to_space_crd(ctx.node))  // channel index = (c, by, bx)
    permute_view(x, outputs[0], {n, c, b, b, h, w}, {0, 1, 4, 2, 5, 3});
  else  // channel index = (by, bx, c)
    permute_view(x, outputs[0], {n, b, b, c, h, w}, {0, 3, 4, 1, 5, 2});
  finish_data_movement(ctx, outputs[0]);
}

std::vector<OutputInfo> infer_space_to_depth(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "input");
  const std::int64_t b = blocksize_of(node, x);
  if (x.shape[2] % b != 0 || x.shape[3] % b != 0)
    fail_node(node, "spatial size " + std::to_string(x.shape[2]) + "x" + std::to_string(x.shape[3]) +
                        " is not divisible by blocksize " + std::to_string(b));
  return {OutputInfo{x.dtype, {x.shape[0], x.shape[1] * b * b, x.shape[2] / b, x.shape[3] / b}}};
}

void eval_space_to_depth(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Tensor& x = *inputs[0];
  const Shape& s = x.shape();
  const std::int64_t b = ctx.node.attrs.get_int("blocksize", 1);
  // Output channel index = (by, bx, c), the inverse of DCR.
  permute_view(x, outputs[0], {s[0], s[1], s[2] / b, b, s[3] / b, b}, {0, 3, 5, 1, 2, 4});
  finish_data_movement(ctx, outputs[0]);
}

// ---------------------------------------------------------------------------
// ConstantOfShape

Tensor constant_of_shape_value(const Node& node) {
  const Tensor* v = node.attrs.get_tensor("value");
  if (!v) {
    if (node.attrs.has("value")) fail_node(node, "the 'value' attribute must be a tensor");
    return Tensor::scalar_f32(0.f);
  }
  if (v->numel() != 1) fail_node(node, "value must hold one element, got shape " + shape_string(v->shape()));
  return *v;
}

std::vector<OutputInfo> infer_constant_of_shape(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const auto shape = constant_ints(node, required_info(node, inputs, 0, "input"), 0, "shape");
  for (std::int64_t d : shape)
    if (d < 0) fail_node(node, "shape " + ints_string(shape) + " has a negative dimension");
  return {OutputInfo{constant_of_shape_value(node).dtype(), shape}};
}

void eval_constant_of_shape(const OpContext& ctx, std::span<const Tensor* const>, std::span<Tensor> outputs) {
  const Tensor v = constant_of_shape_value(ctx.node);
  Tensor& y = outputs[0];
  const std::size_t esize = dtype_size(y.dtype());
  for (std::int64_t i = 0; i < y.numel(); ++i)
    std::memcpy(y.bytes() + static_cast<std::size_t>(i) * esize, v.bytes(), esize);
  finish_data_movement(ctx, y);
}

// ---------------------------------------------------------------------------
// Range

std::vector<OutputInfo> infer_range(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  static const char* const names[] = {"start", "limit", "delta"};
  const InputInfo& first = required_info(node, inputs, 0, names[0]);
  double v[3] = {};
  for (std::size_t i = 0; i < 3; ++i) {
    const InputInfo& in = required_info(node, inputs, i, names[i]);
    if (in.dtype != first.dtype)
      fail_node(node, std::string(names[i]) + " has type " + dtype_name(in.dtype) + ", start has " +
                          dtype_name(first.dtype));
    if (element_count(in.shape) != 1 || in.shape.size() > 1)
      fail_node(node, std::string(names[i]) + " must be a scalar, got shape " + shape_string(in.shape));
    // The output length depends on the values.
    if (!in.constant)
      unsupported_node(node, std::string("the ") + names[i] + " (input " + std::to_string(i) +
                                 ") is not a constant; vkfuse needs static shapes");
    v[i] = in.constant->as_double(0);
  }
  std::int64_t n = 0;
  if (first.dtype == DType::i64) {
    const std::int64_t start = inputs[0].constant->as_int(0), limit = inputs[1].constant->as_int(0),
                       delta = inputs[2].constant->as_int(0);
    if (delta == 0) fail_node(node, "delta is 0");
    n = delta > 0 ? ceil_div(limit - start, delta) : ceil_div(start - limit, -delta);
  } else {
    if (v[2] == 0.0 || !std::isfinite(v[0]) || !std::isfinite(v[1]) || !std::isfinite(v[2]))
      fail_node(node, "start, limit and delta must be finite and delta nonzero");
    // In double, from the f32 values, as numpy's arange (the ONNX reference) does.
    n = static_cast<std::int64_t>(std::ceil((v[1] - v[0]) / v[2]));
  }
  return {OutputInfo{first.dtype, {std::max<std::int64_t>(n, 0)}}};
}

void eval_range(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  Tensor& y = outputs[0];
  if (y.dtype() == DType::i64) {
    const std::int64_t start = inputs[0]->as_int(0), delta = inputs[2]->as_int(0);
    for (std::int64_t i = 0; i < y.numel(); ++i) y.i64()[i] = start + i * delta;
  } else {
    const double start = inputs[0]->as_double(0), delta = inputs[2]->as_double(0);
    for (std::int64_t i = 0; i < y.numel(); ++i)
      y.f32()[i] = static_cast<float>(start + static_cast<double>(i) * delta);
  }
  finish_data_movement(ctx, y);
}

// ---------------------------------------------------------------------------
// Cast

const char* onnx_type_name(std::int64_t t) {
  switch (t) {
    case 1: return "FLOAT";
    case 2: return "UINT8";
    case 3: return "INT8";
    case 4: return "UINT16";
    case 5: return "INT16";
    case 6: return "INT32";
    case 7: return "INT64";
    case 8: return "STRING";
    case 9: return "BOOL";
    case 10: return "FLOAT16";
    case 11: return "DOUBLE";
    case 12: return "UINT32";
    case 13: return "UINT64";
    case 14: return "COMPLEX64";
    case 15: return "COMPLEX128";
    case 16: return "BFLOAT16";
    default: return "an unknown type";
  }
}

// Integer types narrower than int64, and bool, are held as int64 (as the
// importer holds their constants), their values wrapped into the type's range
// by the cast (bool: 0 or 1).
// ONNX type codes: UINT8 2, INT8 3, UINT16 4, INT16 5, INT32 6, INT64 7, BOOL 9, UINT32 12.
bool narrow_integer(std::int64_t to) {
  return to == 2 || to == 3 || to == 4 || to == 5 || to == 6 || to == 9 || to == 12;
}

DType cast_target(const Node& node) {
  if (!node.attrs.has("to")) fail_node(node, "missing the 'to' attribute");
  const std::int64_t to = node.attrs.get_int("to", 0);
  if (to == 1) return DType::f32;
  if (to == 7 || narrow_integer(to)) return DType::i64;
  unsupported_node(node, std::string("cast to ") + onnx_type_name(to) + " (" + std::to_string(to) +
                             "); vkfuse has float32, integer (int64 and narrower, not uint64) and bool tensors");
}

std::int64_t wrap_to(std::int64_t to, std::int64_t v) {
  switch (to) {
    case 2: return static_cast<std::uint8_t>(v);
    case 3: return static_cast<std::int8_t>(v);
    case 4: return static_cast<std::uint16_t>(v);
    case 5: return static_cast<std::int16_t>(v);
    case 6: return static_cast<std::int32_t>(v);
    case 12: return static_cast<std::uint32_t>(v);
    case 9: return v != 0;
    default: return v;
  }
}

std::vector<OutputInfo> infer_cast(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const InputInfo& x = required_info(ctx.node, inputs, 0, "input");
  return {OutputInfo{cast_target(ctx.node), x.shape}};
}

// f32 -> i64 truncates toward zero. Out-of-range values are undefined in
// ONNX; saturate (and send NaN to 0) rather than invoke C++ undefined behavior.
std::int64_t float_to_int64(float f) {
  if (std::isnan(f)) return 0;
  constexpr double lim = 9223372036854775808.0;  // 2^63
  if (f >= lim) return std::numeric_limits<std::int64_t>::max();
  if (f < -lim) return std::numeric_limits<std::int64_t>::min();
  return static_cast<std::int64_t>(f);
}

void eval_cast(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Tensor& x = *inputs[0];
  Tensor& y = outputs[0];
  const std::int64_t n = x.numel();
  if (x.dtype() == y.dtype()) {
    if (n) std::memcpy(y.bytes(), x.bytes(), x.byte_size());
  } else if (ctx.node.attrs.get_int("to", 0) == 9) {  // float to bool: any non-zero (NaN too) is true
    for (std::int64_t i = 0; i < n; ++i) y.i64()[i] = x.f32()[i] != 0.0f;
  } else if (y.dtype() == DType::i64) {
    for (std::int64_t i = 0; i < n; ++i) y.i64()[i] = float_to_int64(x.f32()[i]);
  } else {
    for (std::int64_t i = 0; i < n; ++i) y.f32()[i] = static_cast<float>(x.i64()[i]);
  }
  if (const std::int64_t to = ctx.node.attrs.get_int("to", 0); narrow_integer(to))
    for (std::int64_t i = 0; i < n; ++i) y.i64()[i] = wrap_to(to, y.i64()[i]);
  finish_data_movement(ctx, y);
}

}  // namespace

StridedRead slice_read(const SlicePlan& plan, const Shape& x) {
  const auto in_strides = row_major_strides(x);
  StridedRead r;
  for (std::size_t k = 0; k < in_strides.size(); ++k) {
    r.offset += plan.start[k] * in_strides[k];
    r.stride.push_back(plan.step[k] * in_strides[k]);
  }
  return r;
}

std::vector<StridedRead> split_reads(const Node& node, const Shape& x, const std::vector<Shape>& outputs) {
  const auto axis = static_cast<std::size_t>(
      normalize_axis(node, node.attrs.get_int("axis", 0), static_cast<std::int64_t>(x.size())));
  const auto in_strides = row_major_strides(x);
  std::vector<StridedRead> reads;
  std::int64_t start = 0;
  for (const Shape& o : outputs) {
    reads.push_back({in_strides, start * in_strides[axis]});
    start += o[axis];
  }
  return reads;
}

void register_layout_ops(std::vector<OpDef>& table) {
  table.push_back(OpDef{"Slice", infer_slice, eval_slice});
  table.push_back(OpDef{"Split", infer_split, eval_split});
  table.push_back(OpDef{"Expand", infer_expand, eval_expand});
  table.push_back(OpDef{"Tile", infer_tile, eval_tile});
  table.push_back(OpDef{"DepthToSpace", infer_depth_to_space, eval_depth_to_space});
  table.push_back(OpDef{"SpaceToDepth", infer_space_to_depth, eval_space_to_depth});
  table.push_back(OpDef{"ConstantOfShape", infer_constant_of_shape, eval_constant_of_shape});
  table.push_back(OpDef{"Range", infer_range, eval_range});
  table.push_back(OpDef{"Cast", infer_cast, eval_cast});
}

}  // namespace vkfuse::graph
