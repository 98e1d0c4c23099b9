// graph/ops.h — what vkfuse knows about each ONNX op: shape inference and a
// naive reference evaluation.
//
// The reference kernels are the oracle every backend is tested against: plain
// loops, double accumulation, no tricks. They also fold constant subgraphs at
// load time. One family of ops per file in graph/ops/.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "graph/ir.h"

namespace vkfuse::graph {

// What shape inference sees of one input: its type and shape, and its value
// when it is a constant (Reshape's target shape, Clip's bounds, ...).
struct InputInfo {
  DType dtype = DType::f32;
  Shape shape;
  const Tensor* constant = nullptr;  // nullptr unless the input is constant
  bool present = true;               // false for an omitted optional input
};

struct OutputInfo {
  DType dtype = DType::f32;
  Shape shape;
};

struct OpContext {
  const Node& node;
  std::int64_t opset;
  int threads = 1;  // reference kernels may split work across this many threads
};

// Infers output types and shapes; throws vkfuse::Error (InvalidModel or
// Unsupported) naming the node on inconsistent input or unsupported attributes.
using InferFn = std::function<std::vector<OutputInfo>(const OpContext&, std::span<const InputInfo>)>;

// Computes outputs from inputs. `outputs` arrive allocated with the inferred
// dtypes and shapes. Absent optional inputs are nullptr. The node's fused
// Activation (if any) must be applied to output 0.
using EvalFn = std::function<void(const OpContext&, std::span<const Tensor* const> inputs,
                                  std::span<Tensor> outputs)>;

struct OpDef {
  std::string op_type;
  InferFn infer;
  EvalFn eval;
  // vkfuse's own op, made only by graph/canonicalize (never imported, not
  // listed as supported).
  bool internal = false;
};

// ChannelLayerNorm(X, Scale, B) (internal): LayerNorm over axis 1 at every
// other position of X [N, C, ...] — y = (x - mean_c) / sqrt(var_c +
// epsilon) * Scale[c] + B[c], Scale and B of C values. Canonicalize makes it
// of Transpose(NCHW -> NHWC), a last-axis LayerNormalization and the
// Transpose back (ConvNeXt's channels-first norms), so that no backend moves
// the tensor twice to normalise it.
inline constexpr const char* kChannelLayerNorm = "ChannelLayerNorm";

// The op, or nullptr if vkfuse does not support it.
const OpDef* find_op(std::string_view op_type);
std::vector<std::string> supported_ops();

// Shape inference for one node, with a clear error for unknown ops.
std::vector<OutputInfo> infer_node(const OpContext& ctx, std::span<const InputInfo> inputs);
// Reference evaluation for one node; allocates outputs.
std::vector<Tensor> evaluate_node(const OpContext& ctx, std::span<const Tensor* const> inputs);

// Multiply-accumulate-free FLOP count of one node (2 per multiply-add), for
// `vkfuse info` and the planner's cost model.
std::int64_t node_flops(const Node& node, std::span<const InputInfo> inputs,
                        std::span<const OutputInfo> outputs);

// The same for a node of a shaped graph, and the sum over the graph.
std::int64_t node_flops(const Graph& g, const Node& node);
std::int64_t graph_flops(const Graph& g);

// Per-family registration, one per file in graph/ops/.
void register_conv_ops(std::vector<OpDef>& table);         // Conv, ConvTranspose
void register_pool_ops(std::vector<OpDef>& table);         // MaxPool, AveragePool, GlobalAveragePool
void register_norm_ops(std::vector<OpDef>& table);         // BatchNormalization, Softmax, LRN,
                                                           // InstanceNormalization, LayerNormalization
void register_gemm_ops(std::vector<OpDef>& table);         // Gemm, MatMul, Einsum
void register_elementwise_ops(std::vector<OpDef>& table);  // Add, Mul, Sub, Div, Pow, PRelu, Min, Max,
                                                           // Mean, Sum, activations, unary math, Clip,
                                                           // comparisons, logic, Where
void register_shape_ops(std::vector<OpDef>& table);        // Concat, Flatten, Reshape, Transpose, Pad,
                                                           // Shape, Gather, Unsqueeze, Squeeze,
                                                           // Identity, Dropout, Constant
void register_reduce_ops(std::vector<OpDef>& table);       // ReduceMean, ReduceSum, ReduceMax, ReduceMin,
                                                           // ReduceProd, ReduceL1, ReduceL2, ReduceSumSquare,
                                                           // ReduceLogSum, ReduceLogSumExp
void register_layout_ops(std::vector<OpDef>& table);       // Slice, Split, Expand, Tile, DepthToSpace,
                                                           // SpaceToDepth, ConstantOfShape, Range, Cast
void register_resize_ops(std::vector<OpDef>& table);       // Resize, Upsample

// What a Reduce* node reduces (validated as shape inference does): nothing
// (`identity`: no axes and noop_with_empty_axes), or the flagged input dims.
// The GPU lowering and the canonicalizer read axes through this too.
struct ReducePlan {
  bool identity = false;
  std::vector<bool> reduced;  // one per input dim
  bool keepdims = true;
};
ReducePlan reduce_plan(const OpContext& ctx, std::span<const InputInfo> inputs);

// A reduction whose reduced axes are contiguous (ignoring axes of size 1):
// OUTER x INNER groups of LEN elements spaced INNER apart. False when the
// reduced axes are not contiguous. Backends' reduction kernels use this.
struct ContiguousReduction {
  std::int64_t outer = 1, len = 1, inner = 1;
};
bool contiguous_reduction(const ReducePlan& plan, const Shape& x, ContiguousReduction& out);

// Per input axis of a Slice: the first source index, the step, and the
// output length (ONNX's clamping applied), as shape inference computes them.
struct SlicePlan {
  std::vector<std::int64_t> start, step;
  Shape out;
};
SlicePlan slice_plan(const OpContext& ctx, std::span<const InputInfo> inputs);

// Pure data movement as a strided read: output element i (row-major over the
// output's dims) reads input element offset + sum_k idx_k(i) * stride[k]
// (strides may be negative). The reference, the GPU remaps and the host
// copies read Transpose, Slice and each output of Split through these.
struct StridedRead {
  std::vector<std::int64_t> stride;
  std::int64_t offset = 0;
};
StridedRead transpose_read(const Node& node, const Shape& x);
StridedRead slice_read(const SlicePlan& plan, const Shape& x);
// One per output of a Split of x, given the outputs' shapes.
std::vector<StridedRead> split_reads(const Node& node, const Shape& x, const std::vector<Shape>& outputs);

// LayerNormalization of x as `rows` groups of `len` contiguous elements (the
// axes from `axis` on); fails naming the node when the axis is out of range.
struct NormRows {
  std::int64_t rows = 0, len = 0;
};
NormRows layer_norm_rows(const Node& node, const Shape& x);

// The resolved geometry of one convolution, spatial dims only.
struct ConvGeometry {
  std::vector<std::int64_t> kernel, strides, dilations;
  std::vector<std::int64_t> pad_begin, pad_end;
  std::vector<std::int64_t> out;
};
// ConvTranspose's attributes validated against X [N, C, spatial...] and
// W [C, M/group, k...]: pads (negative where output_shape asks for more than
// the full scatter) and the output's spatial shape. Fails naming the node.
ConvGeometry conv_transpose_geometry(const Node& node, const Shape& x, const Shape& w);

// A Resize's (or Upsample's) mode, coordinate transformation, rounding,
// per-axis scales and output shape, as shape inference reads them (Upsample
// and Resize-10: asymmetric coordinates, floor rounding).
struct ResizePlan {
  enum class Interp { Nearest, Linear, Cubic };
  enum class Coord { HalfPixel, PytorchHalfPixel, AlignCorners, Asymmetric, TfHalfPixelForNn, TfCropAndResize };
  enum class Rounding { RoundPreferFloor, RoundPreferCeil, Floor, Ceil };
  Interp interp = Interp::Nearest;
  Coord coord = Coord::HalfPixel;
  Rounding rounding = Rounding::RoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0.0;
  std::vector<double> scales;  // per axis, as stated by the model (or sizes / input length)
  Shape out;
};
ResizePlan resize_plan(const OpContext& ctx, std::span<const InputInfo> inputs);

// Per axis of a Resize/Upsample output, each output coordinate's source taps
// (input index, weight); an empty list takes `extrapolation`
// (tf_crop_and_resize). What the reference interpolates with; the host
// kernel uses the same taps.
struct ResizeTap {
  std::int64_t index;
  double weight;
};
struct ResizeTaps {
  std::vector<std::vector<std::vector<ResizeTap>>> axes;
  double extrapolation = 0;
};
ResizeTaps resize_taps(const OpContext& ctx, std::span<const InputInfo> inputs);

// The InputInfo of each input of node n of a shaped graph; of tensors (all
// constant, nullptr absent), as eval sees them, so that eval derives its
// parameters through the same code as infer.
std::vector<InputInfo> input_infos(const Graph& g, const Node& n);
std::vector<InputInfo> input_infos(std::span<const Tensor* const> inputs);

// Helpers shared by the op families.
[[noreturn]] void fail_node(const Node& node, const std::string& what);  // InvalidModel
[[noreturn]] void unsupported_node(const Node& node, const std::string& what);
// Numpy-style broadcast of two shapes; throws naming the node if incompatible.
Shape broadcast_shapes(const Node& node, const Shape& a, const Shape& b);
// Applies the node's fused activation to every element of t (f32 only).
void apply_activation(const Node& node, Tensor& t);
// The same for a data-movement op's output, which may be int64 (a fused
// activation on an int64 result is unsupported).
void finish_data_movement(const OpContext& ctx, Tensor& out);
// Maps axis in [-rank, rank-1] to [0, rank-1]; fails naming the node otherwise.
std::int64_t normalize_axis(const Node& node, std::int64_t axis, std::int64_t rank, const char* what = "axis");
std::vector<std::int64_t> row_major_strides(const Shape& s);
// The input at i, or nullptr when it is absent (past the end or omitted).
const InputInfo* opt_info(std::span<const InputInfo> inputs, std::size_t i);
const Tensor* opt_tensor(std::span<const Tensor* const> inputs, std::size_t i);
// The input at i; fails naming the node and `what` when it is absent.
const InputInfo& required_info(const Node& node, std::span<const InputInfo> inputs, std::size_t i, const char* what);
// floor(a / b) and ceil(a / b) for b > 0 and a of either sign.
std::int64_t floor_div(std::int64_t a, std::int64_t b);
std::int64_t ceil_div(std::int64_t a, std::int64_t b);
// Pads a spatial vector (1-D to 3-D) to 3 entries by prepending `fill`.
std::vector<std::int64_t> to3(const std::vector<std::int64_t>& v, std::int64_t fill);
// "[1, 2, 3]", for messages.
std::string ints_string(const std::vector<std::int64_t>& v);
// Softmax's layout: `outer` independent groups, each of `len` elements spaced
// `inner` apart (inner = 1 for the 2-D coercion of opsets < 13). Fails naming
// the node when the axis is out of range.
struct SoftmaxLayout {
  std::int64_t outer = 1, len = 1, inner = 1;
};
SoftmaxLayout softmax_layout(const Node& node, std::int64_t opset, const Shape& x);
// Runs body(i) for i in [0, n) over up to `threads` threads (the caller's
// among them), each taking the next i; rethrows the first exception a body
// threw, once all have stopped.
void parallel_for(int threads, std::int64_t n, const std::function<void(std::int64_t)>& body);

}  // namespace vkfuse::graph
