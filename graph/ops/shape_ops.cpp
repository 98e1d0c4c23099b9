// graph/ops/shape_ops.cpp — data movement and shape ops: Concat, Flatten,
// Reshape, Transpose, Pad, Shape, Gather, ScatterND, Unsqueeze, Squeeze, Identity,
// Dropout, Constant.
//
// ONNX opsets 11–17. Every data-movement kernel copies elements by their byte
// size, so it works for float32 and int64 alike (int64 tensors carry the shape
// arithmetic that constant folding evaluates). Output shapes depend only on
// input shapes, except where ONNX makes them depend on a value: Reshape's
// target shape, Pad's pads, and the axes inputs of Unsqueeze/Squeeze (opset
// >= 13). Those values must be constant at shape-inference time; otherwise the
// node is reported as unsupported (vkfuse has no dynamic shapes).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

#include "graph/ops.h"

namespace vkfuse::graph {

namespace {

void copy_bytes(std::byte* dst, const std::byte* src, std::size_t n) {
  if (n) std::memcpy(dst, src, n);
}

// Output = input bytes, reinterpreted with the output's (already set) shape.
void eval_copy(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Tensor& x = *inputs[0];
  Tensor& y = outputs[0];
  if (x.byte_size() != y.byte_size() || x.dtype() != y.dtype())
    throw Error(ErrorKind::Internal, "node '" + ctx.node.name + "' (" + ctx.node.op_type +
                                         "): output buffer does not match its input");
  copy_bytes(y.bytes(), x.bytes(), x.byte_size());
  finish_data_movement(ctx, y);
}

// Output element i (row-major over out_shape) = source element at
// sum_k idx[k] * src_strides[k], copied as `esize` bytes.
void gather_strided(std::size_t esize, const Shape& out_shape, const std::vector<std::int64_t>& src_strides,
                    const std::byte* src, std::byte* dst) {
  const std::int64_t n = element_count(out_shape);
  if (n == 0) return;
  const std::size_t rank = out_shape.size();
  std::vector<std::int64_t> idx(rank, 0);
  std::int64_t off = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    std::memcpy(dst + static_cast<std::size_t>(i) * esize, src + static_cast<std::size_t>(off) * esize, esize);
    for (std::size_t k = rank; k-- > 0;) {
      ++idx[k];
      off += src_strides[k];
      if (idx[k] < out_shape[k]) break;
      off -= src_strides[k] * idx[k];
      idx[k] = 0;
    }
  }
}

// ---------------------------------------------------------------------------
// Concat

std::vector<OutputInfo> infer_concat(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  if (inputs.empty()) fail_node(node, "Concat needs at least one input");
  if (!node.attrs.has("axis")) fail_node(node, "Concat requires the 'axis' attribute");
  const InputInfo& first = required_info(node, inputs, 0, "inputs");
  const auto rank = static_cast<std::int64_t>(first.shape.size());
  if (rank == 0) fail_node(node, "cannot concatenate scalars");
  const std::int64_t axis = normalize_axis(node, node.attrs.get_int("axis", 0), rank);
  Shape out = first.shape;
  out[static_cast<std::size_t>(axis)] = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const InputInfo& in = required_info(node, inputs, i, "inputs");
    if (in.dtype != first.dtype)
      fail_node(node, "input " + std::to_string(i) + " has type " + dtype_name(in.dtype) + ", input 0 has " +
                          dtype_name(first.dtype));
    if (static_cast<std::int64_t>(in.shape.size()) != rank)
      fail_node(node, "input " + std::to_string(i) + " has shape " + shape_string(in.shape) +
                          ", of a different rank than input 0's " + shape_string(first.shape));
    for (std::int64_t k = 0; k < rank; ++k)
      if (k != axis && in.shape[static_cast<std::size_t>(k)] != first.shape[static_cast<std::size_t>(k)])
        fail_node(node, "input " + std::to_string(i) + " has shape " + shape_string(in.shape) +
                            ", which differs from input 0's " + shape_string(first.shape) +
                            " outside the concatenation axis " + std::to_string(axis));
    out[static_cast<std::size_t>(axis)] += in.shape[static_cast<std::size_t>(axis)];
  }
  return {OutputInfo{first.dtype, out}};
}

void eval_concat(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  Tensor& y = outputs[0];
  const auto rank = static_cast<std::int64_t>(y.shape().size());
  const auto axis = static_cast<std::size_t>(normalize_axis(ctx.node, ctx.node.attrs.get_int("axis", 0), rank));
  const std::size_t esize = dtype_size(y.dtype());
  std::int64_t outer = 1;
  for (std::size_t k = 0; k < axis; ++k) outer *= y.shape()[k];
  std::vector<std::size_t> chunk(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    std::int64_t inner = 1;
    for (std::size_t k = axis; k < inputs[i]->shape().size(); ++k) inner *= inputs[i]->shape()[k];
    chunk[i] = static_cast<std::size_t>(inner) * esize;
  }
  std::byte* dst = y.bytes();
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      copy_bytes(dst, inputs[i]->bytes() + static_cast<std::size_t>(o) * chunk[i], chunk[i]);
      dst += chunk[i];
    }
  finish_data_movement(ctx, y);
}

// ---------------------------------------------------------------------------
// Flatten

std::vector<OutputInfo> infer_flatten(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "input");
  const auto rank = static_cast<std::int64_t>(x.shape.size());
  std::int64_t axis = node.attrs.get_int("axis", 1);
  if (axis < -rank || axis > rank)
    fail_node(node, "axis " + std::to_string(axis) + " is out of range for an input of rank " +
                        std::to_string(rank) + " (allowed: [" + std::to_string(-rank) + ", " + std::to_string(rank) +
                        "])");
  if (axis < 0) axis += rank;
  std::int64_t outer = 1, inner = 1;
  for (std::int64_t k = 0; k < rank; ++k) (k < axis ? outer : inner) *= x.shape[static_cast<std::size_t>(k)];
  return {OutputInfo{x.dtype, {outer, inner}}};
}

// ---------------------------------------------------------------------------
// Reshape

Shape reshape_target(const Node& node, const Shape& in, const std::vector<std::int64_t>& target, bool allowzero) {
  Shape out(target.size());
  int infer_at = -1;
  bool has_zero = false;
  std::int64_t known = 1;
  for (std::size_t i = 0; i < target.size(); ++i) {
    const std::int64_t d = target[i];
    if (d == -1) {
      if (infer_at >= 0) fail_node(node, "target shape " + ints_string(target) + " has more than one -1");
      infer_at = static_cast<int>(i);
      continue;
    }
    if (d < -1) fail_node(node, "target shape " + ints_string(target) + " has an invalid dimension " + std::to_string(d));
    if (d == 0 && !allowzero) {
      if (i >= in.size())
        fail_node(node, "target shape " + ints_string(target) + " copies dimension " + std::to_string(i) +
                            " (0), but the input " + shape_string(in) + " has only " + std::to_string(in.size()) +
                            " dimensions");
      out[i] = in[i];
    } else {
      out[i] = d;
      if (d == 0) has_zero = true;
    }
    if (__builtin_mul_overflow(known, out[i], &known))
      fail_node(node, "target shape " + ints_string(target) + " has more elements than 64 bits count");
  }
  const std::int64_t total = element_count(in);
  if (infer_at >= 0) {
    if (has_zero)
      fail_node(node, "target shape " + ints_string(target) + " has both -1 and 0 with allowzero=1");
    if (known == 0 || total % known != 0)
      fail_node(node, "cannot reshape " + shape_string(in) + " to " + ints_string(target) +
                          ": the -1 dimension cannot be inferred");
    out[static_cast<std::size_t>(infer_at)] = total / known;
  } else if (known != total) {
    fail_node(node, "Reshape to " + shape_string(out) + " from " + shape_string(in) + ": element counts differ (" +
                        std::to_string(known) + " vs " + std::to_string(total) + ")");
  }
  return out;
}

std::vector<OutputInfo> infer_reshape(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "data");
  std::vector<std::int64_t> target;
  if (const InputInfo* s = opt_info(inputs, 1)) {
    if (s->dtype != DType::i64) fail_node(node, std::string("shape input has type ") + dtype_name(s->dtype) + ", expected int64");
    if (s->shape.size() != 1) fail_node(node, "shape input must be 1-D, got " + shape_string(s->shape));
    if (!s->constant)
      unsupported_node(node, "the target shape (input 1) is not a constant; vkfuse needs static shapes");
    target = s->constant->to_ints();
  } else if (node.attrs.has("shape")) {  // opset < 5
    target = node.attrs.get_ints("shape");
  } else {
    fail_node(node, "missing the target shape (input 1)");
  }
  const bool allowzero = node.attrs.get_int("allowzero", 0) != 0;
  return {OutputInfo{x.dtype, reshape_target(node, x.shape, target, allowzero)}};
}

// ---------------------------------------------------------------------------
// Transpose

std::vector<std::int64_t> transpose_perm(const Node& node, std::size_t rank) {
  std::vector<std::int64_t> perm;
  if (node.attrs.has("perm")) {
    perm = node.attrs.get_ints("perm");
  } else {
    for (std::size_t k = rank; k-- > 0;) perm.push_back(static_cast<std::int64_t>(k));
  }
  if (perm.size() != rank)
    fail_node(node, "perm " + ints_string(perm) + " has " + std::to_string(perm.size()) +
                        " entries for an input of rank " + std::to_string(rank));
  std::vector<bool> seen(rank, false);
  for (auto& p : perm) {
    if (p < 0) p += static_cast<std::int64_t>(rank);  // tolerate negative entries
    if (p < 0 || p >= static_cast<std::int64_t>(rank) || seen[static_cast<std::size_t>(p)])
      fail_node(node, "perm " + ints_string(node.attrs.get_ints("perm")) + " is not a permutation of 0.." +
                          std::to_string(rank == 0 ? 0 : rank - 1));
    seen[static_cast<std::size_t>(p)] = true;
  }
  return perm;
}

std::vector<OutputInfo> infer_transpose(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const InputInfo& x = required_info(ctx.node, inputs, 0, "data");
  const auto perm = transpose_perm(ctx.node, x.shape.size());
  Shape out(perm.size());
  for (std::size_t j = 0; j < perm.size(); ++j) out[j] = x.shape[static_cast<std::size_t>(perm[j])];
  return {OutputInfo{x.dtype, out}};
}

void eval_transpose(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Tensor& x = *inputs[0];
  Tensor& y = outputs[0];
  gather_strided(dtype_size(x.dtype()), y.shape(), transpose_read(ctx.node, x.shape()).stride, x.bytes(), y.bytes());
  finish_data_movement(ctx, y);
}

// ---------------------------------------------------------------------------
// Pad

enum class PadMode { Constant, Reflect, Edge };

PadMode pad_mode(const Node& node) {
  const std::string mode = node.attrs.get_string("mode", "constant");
  if (mode == "constant") return PadMode::Constant;
  if (mode == "reflect") return PadMode::Reflect;
  if (mode == "edge") return PadMode::Edge;
  unsupported_node(node, "Pad mode '" + mode + "' (supported: constant, reflect, edge)");
}

// Pads from input 1 (opset >= 11) or the 'pads' attribute (opset < 11).
// `pads_tensor` is the constant input 1 or nullptr.
std::vector<std::int64_t> pad_amounts(const Node& node, const Tensor* pads_tensor, bool input_present,
                                      const Shape& in) {
  std::vector<std::int64_t> pads;
  if (input_present) {
    if (!pads_tensor) unsupported_node(node, "the pads (input 1) are not a constant; vkfuse needs static shapes");
    pads = pads_tensor->to_ints();
  } else if (node.attrs.has("pads")) {
    pads = node.attrs.get_ints("pads");
  } else {
    fail_node(node, "missing the pads (input 1, or the 'pads' attribute before opset 11)");
  }
  if (pads.size() != 2 * in.size())
    fail_node(node, "pads " + ints_string(pads) + " has " + std::to_string(pads.size()) +
                        " entries; an input of shape " + shape_string(in) + " needs " + std::to_string(2 * in.size()));
  const PadMode mode = pad_mode(node);
  for (std::size_t k = 0; k < in.size(); ++k) {
    const std::int64_t b = pads[k], e = pads[k + in.size()];
    if (in[k] + b + e < 0)
      fail_node(node, "pads " + ints_string(pads) + " remove more than the " + std::to_string(in[k]) +
                          " elements of axis " + std::to_string(k));
    if (mode != PadMode::Constant && in[k] == 0 && (b > 0 || e > 0))
      fail_node(node, "cannot pad the empty axis " + std::to_string(k) + " in mode '" +
                          node.attrs.get_string("mode", "constant") + "'");
  }
  return pads;
}

std::vector<OutputInfo> infer_pad(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "data");
  const InputInfo* p = opt_info(inputs, 1);
  if (p && p->dtype != DType::i64) fail_node(node, std::string("pads have type ") + dtype_name(p->dtype) + ", expected int64");
  if (const InputInfo* v = opt_info(inputs, 2)) {
    if (v->dtype != x.dtype)
      fail_node(node, std::string("constant_value has type ") + dtype_name(v->dtype) + ", data has " +
                          dtype_name(x.dtype));
    if (element_count(v->shape) != 1)
      fail_node(node, "constant_value must be a scalar, got shape " + shape_string(v->shape));
  }
  if (opt_info(inputs, 3)) unsupported_node(node, "the axes input (opset 18)");
  const auto pads = pad_amounts(node, p ? p->constant : nullptr, p != nullptr, x.shape);
  Shape out(x.shape.size());
  for (std::size_t k = 0; k < out.size(); ++k) out[k] = x.shape[k] + pads[k] + pads[k + out.size()];
  return {OutputInfo{x.dtype, out}};
}

void eval_pad(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Node& node = ctx.node;
  const Tensor& x = *inputs[0];
  Tensor& y = outputs[0];
  const Tensor* pads_t = opt_tensor(inputs, 1);
  const Shape& in = x.shape();
  const auto pads = pad_amounts(node, pads_t, pads_t != nullptr, in);
  const PadMode mode = pad_mode(node);
  const std::size_t rank = in.size();
  const std::size_t esize = dtype_size(x.dtype());

  // The fill value, as bytes of the data's dtype.
  std::byte fill[8] = {};
  const Tensor* value_t = opt_tensor(inputs, 2);
  if (x.dtype() == DType::f32) {
    float v = value_t ? static_cast<float>(value_t->as_double(0)) : node.attrs.get_float("value", 0.f);
    std::memcpy(fill, &v, sizeof v);
  } else {
    std::int64_t v = value_t ? value_t->as_int(0) : static_cast<std::int64_t>(node.attrs.get_float("value", 0.f));
    std::memcpy(fill, &v, sizeof v);
  }

  // Per axis: output coordinate -> source coordinate, or -1 for the fill value.
  std::vector<std::vector<std::int64_t>> src(rank);
  for (std::size_t k = 0; k < rank; ++k) {
    const std::int64_t n = in[k], b = pads[k];
    auto& m = src[k];
    m.resize(static_cast<std::size_t>(y.shape()[k]));
    for (std::size_t o = 0; o < m.size(); ++o) {
      std::int64_t s = static_cast<std::int64_t>(o) - b;
      if (s < 0 || s >= n) {
        switch (mode) {
          case PadMode::Constant: s = -1; break;
          case PadMode::Edge: s = std::clamp<std::int64_t>(s, 0, n - 1); break;
          case PadMode::Reflect:
            if (n == 1) {
              s = 0;
            } else {  // numpy 'reflect': period 2(n-1), mirrored about the edges
              const std::int64_t period = 2 * (n - 1);
              s %= period;
              if (s < 0) s += period;
              if (s >= n) s = period - s;
            }
            break;
        }
      }
      m[o] = s;
    }
  }

  const std::int64_t total = y.numel();
  if (total == 0) return;
  const auto strides = row_major_strides(in);
  std::vector<std::int64_t> idx(rank, 0);
  std::byte* dst = y.bytes();
  for (std::int64_t i = 0; i < total; ++i) {
    std::int64_t off = 0;
    bool inside = true;
    for (std::size_t k = 0; k < rank; ++k) {
      const std::int64_t s = src[k][static_cast<std::size_t>(idx[k])];
      if (s < 0) {
        inside = false;
        break;
      }
      off += s * strides[k];
    }
    std::memcpy(dst + static_cast<std::size_t>(i) * esize,
                inside ? x.bytes() + static_cast<std::size_t>(off) * esize : fill, esize);
    for (std::size_t k = rank; k-- > 0;) {
      if (++idx[k] < y.shape()[k]) break;
      idx[k] = 0;
    }
  }
  finish_data_movement(ctx, y);
}

// ---------------------------------------------------------------------------
// Shape

std::pair<std::int64_t, std::int64_t> shape_range(const Node& node, std::int64_t rank) {
  auto clamp = [rank](std::int64_t v) {
    if (v < 0) v += rank;
    return std::clamp<std::int64_t>(v, 0, rank);
  };
  const std::int64_t start = clamp(node.attrs.get_int("start", 0));
  const std::int64_t end = node.attrs.has("end") ? clamp(node.attrs.get_int("end", rank)) : rank;
  return {start, std::max(start, end)};
}

std::vector<OutputInfo> infer_shape(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const InputInfo& x = required_info(ctx.node, inputs, 0, "data");
  auto [start, end] = shape_range(ctx.node, static_cast<std::int64_t>(x.shape.size()));
  return {OutputInfo{DType::i64, {end - start}}};
}

void eval_shape(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Shape& s = inputs[0]->shape();
  auto [start, end] = shape_range(ctx.node, static_cast<std::int64_t>(s.size()));
  std::int64_t* p = outputs[0].i64();
  for (std::int64_t k = start; k < end; ++k) p[k - start] = s[static_cast<std::size_t>(k)];
}

// An index into an axis of size `dim`, negative ones counted from its end.
std::int64_t index_in_axis(const Node& node, std::int64_t v, std::int64_t axis, std::int64_t dim) {
  if (v < -dim || v >= dim)
    fail_node(node, "index " + std::to_string(v) + " is out of range for axis " + std::to_string(axis) + " of size " +
                        std::to_string(dim));
  return v < 0 ? v + dim : v;
}

// ---------------------------------------------------------------------------
// Gather

std::vector<OutputInfo> infer_gather(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& data = required_info(node, inputs, 0, "data");
  const InputInfo& indices = required_info(node, inputs, 1, "indices");
  if (indices.dtype != DType::i64)
    fail_node(node, std::string("indices have type ") + dtype_name(indices.dtype) + ", expected an integer type");
  const auto rank = static_cast<std::int64_t>(data.shape.size());
  if (rank == 0) fail_node(node, "cannot gather from a scalar");
  const auto axis = static_cast<std::size_t>(normalize_axis(node, node.attrs.get_int("axis", 0), rank));
  Shape out(data.shape.begin(), data.shape.begin() + static_cast<std::ptrdiff_t>(axis));
  out.insert(out.end(), indices.shape.begin(), indices.shape.end());
  out.insert(out.end(), data.shape.begin() + static_cast<std::ptrdiff_t>(axis) + 1, data.shape.end());
  return {OutputInfo{data.dtype, out}};
}

void eval_gather(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Node& node = ctx.node;
  const Tensor& data = *inputs[0];
  const Tensor& indices = *inputs[1];
  Tensor& y = outputs[0];
  const Shape& ds = data.shape();
  const auto axis = static_cast<std::size_t>(
      normalize_axis(node, node.attrs.get_int("axis", 0), static_cast<std::int64_t>(ds.size())));
  std::int64_t outer = 1, inner = 1;
  for (std::size_t k = 0; k < axis; ++k) outer *= ds[k];
  for (std::size_t k = axis + 1; k < ds.size(); ++k) inner *= ds[k];
  const std::int64_t dim = ds[axis];
  const std::size_t block = static_cast<std::size_t>(inner) * dtype_size(data.dtype());
  const std::int64_t* idx = indices.i64();
  const std::int64_t n_idx = indices.numel();
  std::vector<std::int64_t> norm(static_cast<std::size_t>(n_idx));
  for (std::int64_t j = 0; j < n_idx; ++j) {
    norm[static_cast<std::size_t>(j)] = index_in_axis(node, idx[j], static_cast<std::int64_t>(axis), dim);
  }
  std::byte* dst = y.bytes();
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t j = 0; j < n_idx; ++j) {
      const auto src_block = static_cast<std::size_t>(o * dim + norm[static_cast<std::size_t>(j)]);
      copy_bytes(dst, data.bytes() + src_block * block, block);
      dst += block;
    }
  finish_data_movement(ctx, y);
}

// ---------------------------------------------------------------------------
// ScatterND (reduction "none", the only one exporters write for CNNs): a copy
// of data with the slices that indices name replaced by updates. Swin builds
// its shifted-window attention mask this way (constant, folded at load).

std::vector<OutputInfo> infer_scatter_nd(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& data = required_info(node, inputs, 0, "data");
  const InputInfo& indices = required_info(node, inputs, 1, "indices");
  const InputInfo& updates = required_info(node, inputs, 2, "updates");
  const std::string reduction = node.attrs.get_string("reduction", "none");
  if (reduction != "none") unsupported_node(node, "reduction '" + reduction + "' (only 'none' is supported)");
  if (indices.dtype != DType::i64)
    fail_node(node, std::string("indices have type ") + dtype_name(indices.dtype) + ", expected an integer type");
  if (updates.dtype != data.dtype) fail_node(node, "updates and data have different types");
  if (indices.shape.empty()) fail_node(node, "indices must have rank >= 1");
  const std::int64_t k = indices.shape.back();
  if (k < 1 || k > static_cast<std::int64_t>(data.shape.size()))
    fail_node(node, "indices' last dimension " + std::to_string(k) + " must be in [1, rank of data]");
  Shape expect(indices.shape.begin(), indices.shape.end() - 1);
  expect.insert(expect.end(), data.shape.begin() + k, data.shape.end());
  if (updates.shape != expect) fail_node(node, "updates' shape does not match indices and data");
  return {OutputInfo{data.dtype, data.shape}};
}

void eval_scatter_nd(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  const Node& node = ctx.node;
  const Tensor& data = *inputs[0];
  const Tensor& indices = *inputs[1];
  const Tensor& updates = *inputs[2];
  Tensor& y = outputs[0];
  copy_bytes(y.bytes(), data.bytes(), data.byte_size());
  const Shape& ds = data.shape();
  const auto k = static_cast<std::size_t>(indices.shape().back());
  std::int64_t slice = 1;
  for (std::size_t d = k; d < ds.size(); ++d) slice *= ds[d];
  const std::size_t block = static_cast<std::size_t>(slice) * dtype_size(data.dtype());
  const std::int64_t n = indices.numel() / static_cast<std::int64_t>(k);
  const std::int64_t* idx = indices.i64();
  for (std::int64_t j = 0; j < n; ++j) {
    std::int64_t at = 0;
    for (std::size_t d = 0; d < k; ++d) {
      at = at * ds[d] +
           index_in_axis(node, idx[static_cast<std::size_t>(j) * k + d], static_cast<std::int64_t>(d), ds[d]);
    }
    copy_bytes(y.bytes() + static_cast<std::size_t>(at) * block, updates.bytes() + static_cast<std::size_t>(j) * block,
               block);
  }
  finish_data_movement(ctx, y);
}

// ---------------------------------------------------------------------------
// Unsqueeze / Squeeze

// Axes from input 1 (opset >= 13) or the 'axes' attribute (opset < 13, or a
// canonicalized node). nullopt when neither is given.
std::optional<std::vector<std::int64_t>> axes_of(const Node& node, const InputInfo* axes_input) {
  if (axes_input) {
    if (axes_input->dtype != DType::i64)
      fail_node(node, std::string("axes have type ") + dtype_name(axes_input->dtype) + ", expected int64");
    if (!axes_input->constant)
      unsupported_node(node, "the axes (input 1) are not a constant; vkfuse needs static shapes");
    return axes_input->constant->to_ints();
  }
  if (node.attrs.has("axes")) return node.attrs.get_ints("axes");
  return std::nullopt;
}

std::vector<OutputInfo> infer_unsqueeze(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "data");
  const auto axes = axes_of(node, opt_info(inputs, 1));
  if (!axes) fail_node(node, "missing the axes (input 1 from opset 13, the 'axes' attribute before)");
  const auto out_rank = static_cast<std::int64_t>(x.shape.size() + axes->size());
  std::vector<bool> inserted(static_cast<std::size_t>(out_rank), false);
  for (std::int64_t a : *axes) {
    const auto k = static_cast<std::size_t>(normalize_axis(node, a, out_rank));
    if (inserted[k]) fail_node(node, "axes " + ints_string(*axes) + " name output axis " + std::to_string(k) + " twice");
    inserted[k] = true;
  }
  Shape out(static_cast<std::size_t>(out_rank));
  std::size_t src = 0;
  for (std::size_t k = 0; k < out.size(); ++k) out[k] = inserted[k] ? 1 : x.shape[src++];
  return {OutputInfo{x.dtype, out}};
}

std::vector<OutputInfo> infer_squeeze(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "data");
  const auto axes = axes_of(node, opt_info(inputs, 1));
  const auto rank = static_cast<std::int64_t>(x.shape.size());
  std::vector<bool> drop(x.shape.size(), false);
  if (axes) {
    for (std::int64_t a : *axes) {
      const auto k = static_cast<std::size_t>(normalize_axis(node, a, rank));
      if (x.shape[k] != 1)
        fail_node(node, "cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(x.shape[k]) +
                            " (input shape " + shape_string(x.shape) + ")");
      drop[k] = true;
    }
  } else {
    for (std::size_t k = 0; k < x.shape.size(); ++k) drop[k] = x.shape[k] == 1;
  }
  Shape out;
  for (std::size_t k = 0; k < x.shape.size(); ++k)
    if (!drop[k]) out.push_back(x.shape[k]);
  return {OutputInfo{x.dtype, out}};
}

// ---------------------------------------------------------------------------
// Identity, Dropout

std::vector<OutputInfo> infer_identity(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const InputInfo& x = required_info(ctx.node, inputs, 0, "input");
  return {OutputInfo{x.dtype, x.shape}};
}

std::vector<OutputInfo> infer_dropout(const OpContext& ctx, std::span<const InputInfo> inputs) {
  const Node& node = ctx.node;
  const InputInfo& x = required_info(node, inputs, 0, "data");
  if (const InputInfo* t = opt_info(inputs, 2)) {  // training_mode (opset >= 12)
    if (!t->constant) unsupported_node(node, "a non-constant training_mode input");
    if (t->constant->numel() != 1) fail_node(node, "training_mode must be a scalar");
    if (t->constant->as_int(0) != 0) {
      // Training-mode dropout with ratio 0 is still the identity.
      const InputInfo* r = opt_info(inputs, 1);
      const bool zero_ratio = r && r->constant && r->constant->numel() == 1 && r->constant->as_double(0) == 0.0;
      if (!zero_ratio) unsupported_node(node, "training_mode=true (only inference is supported)");
    }
  }
  // One entry per declared output; an omitted mask output gets a placeholder.
  // A declared mask (exporters write one even when nothing reads it: Swin's
  // attention) is held as int64 like every bool, all true: inference keeps
  // every element.
  std::vector<OutputInfo> out(std::max<std::size_t>(1, node.outputs.size()), OutputInfo{x.dtype, {0}});
  out[0] = OutputInfo{x.dtype, x.shape};
  if (node.outputs.size() > 1 && node.outputs[1] != kNoValue) out[1] = OutputInfo{DType::i64, x.shape};
  return out;
}

void eval_dropout(const OpContext& ctx, std::span<const Tensor* const> inputs, std::span<Tensor> outputs) {
  eval_copy(ctx, inputs, outputs);
  if (ctx.node.outputs.size() > 1 && ctx.node.outputs[1] != kNoValue)
    std::fill_n(outputs[1].i64(), outputs[1].numel(), std::int64_t{1});
}

// ---------------------------------------------------------------------------
// Constant

Tensor constant_value(const Node& node) {
  const auto& a = node.attrs;
  if (a.has("sparse_value")) unsupported_node(node, "sparse constant tensors");
  if (a.has("value_string") || a.has("value_strings")) unsupported_node(node, "string constants");
  if (const Tensor* t = a.get_tensor("value")) return *t;
  if (a.has("value_float")) return Tensor::scalar_f32(a.get_float("value_float", 0.f));
  if (a.has("value_floats")) {
    auto v = a.get_floats("value_floats");
    const auto n = static_cast<std::int64_t>(v.size());
    return Tensor::from_f32({n}, std::move(v));
  }
  if (a.has("value_int")) return Tensor::from_i64({}, {a.get_int("value_int", 0)});
  if (a.has("value_ints")) {
    auto v = a.get_ints("value_ints");
    const auto n = static_cast<std::int64_t>(v.size());
    return Tensor::from_i64({n}, std::move(v));
  }
  fail_node(node, "Constant has none of the attributes value, value_float(s), value_int(s)");
}

std::vector<OutputInfo> infer_constant(const OpContext& ctx, std::span<const InputInfo> inputs) {
  if (!inputs.empty() && opt_info(inputs, 0)) fail_node(ctx.node, "Constant takes no inputs");
  const Tensor t = constant_value(ctx.node);
  return {OutputInfo{t.dtype(), t.shape()}};
}

void eval_constant(const OpContext& ctx, std::span<const Tensor* const>, std::span<Tensor> outputs) {
  outputs[0] = constant_value(ctx.node);
}

}  // namespace

StridedRead transpose_read(const Node& node, const Shape& x) {
  const auto perm = transpose_perm(node, x.size());
  const auto in_strides = row_major_strides(x);
  StridedRead r;
  for (auto p : perm) r.stride.push_back(in_strides[static_cast<std::size_t>(p)]);
  return r;
}

void register_shape_ops(std::vector<OpDef>& table) {
  table.push_back(OpDef{"Concat", infer_concat, eval_concat});
  table.push_back(OpDef{"Flatten", infer_flatten, eval_copy});
  table.push_back(OpDef{"Reshape", infer_reshape, eval_copy});
  table.push_back(OpDef{"Transpose", infer_transpose, eval_transpose});
  table.push_back(OpDef{"Pad", infer_pad, eval_pad});
  table.push_back(OpDef{"Shape", infer_shape, eval_shape});
  table.push_back(OpDef{"Gather", infer_gather, eval_gather});
  table.push_back(OpDef{"ScatterND", infer_scatter_nd, eval_scatter_nd});
  table.push_back(OpDef{"Unsqueeze", infer_unsqueeze, eval_copy});
  table.push_back(OpDef{"Squeeze", infer_squeeze, eval_copy});
  table.push_back(OpDef{"Identity", infer_identity, eval_copy});
  table.push_back(OpDef{"Dropout", infer_dropout, eval_dropout});
  table.push_back(OpDef{"Constant", infer_constant, eval_constant});
}

}  // namespace vkfuse::graph
