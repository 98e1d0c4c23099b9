// The host backend's loaded part: lowering, memory plan, packed weights and
// steps (see runtime/host_program.h).
#include "runtime/host_program.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <thread>

#include "codegen/halide/host_kernels.h"
#include "graph/ops.h"
#include "planner/cost_model.h"
#include "planner/host_layout.h"
#include "planner/kernel_fusion.h"
#include "runtime/executor.h"

namespace vkfuse::runtime {

namespace hk = codegen::halide;
using graph::DType;
using graph::Node;
using graph::Shape;
using graph::Tensor;
using graph::ValueId;
using graph::kNoValue;

namespace {

std::size_t idx(ValueId v) { return static_cast<std::size_t>(v); }

hk::Epilogue epilogue(const graph::Activation& a) {
  return hk::Epilogue{static_cast<int>(a.kind), a.alpha, a.beta};
}

// Pads of one spatial axis as the reference kernels resolve them, given the
// (already inferred) output extent.
struct AxisPads {
  std::int64_t begin = 0, end = 0;
};

AxisPads resolve_pads(const Node& node, std::size_t axis, std::size_t nsp, std::int64_t in, std::int64_t out,
                      std::int64_t kernel, std::int64_t stride, std::int64_t dil) {
  const std::string auto_pad = node.attrs.get_string("auto_pad", "NOTSET");
  AxisPads p;
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    const std::int64_t ek = (kernel - 1) * dil + 1;
    const std::int64_t total = std::max<std::int64_t>(0, (out - 1) * stride + ek - in);
    const std::int64_t small = total / 2, big = total - small;
    p.begin = auto_pad == "SAME_UPPER" ? small : big;
    p.end = auto_pad == "SAME_UPPER" ? big : small;
  } else if (auto_pad == "NOTSET") {
    auto pads = node.attrs.get_ints("pads", std::vector<std::int64_t>(2 * nsp, 0));
    p.begin = pads[axis];
    p.end = pads[axis + nsp];
  }
  return p;
}

// The 2-D window of a Conv or pooling node over input x [N, C, H, W] with
// output y [N, M, OH, OW] and kernel (kh, kw).
hk::Window2D window_2d(const Node& node, const Shape& x, const Shape& y, std::int64_t kh, std::int64_t kw) {
  auto strides = node.attrs.get_ints("strides", {1, 1});
  auto dil = node.attrs.get_ints("dilations", {1, 1});
  hk::Window2D w;
  w.kernel_y = static_cast<int>(kh);
  w.kernel_x = static_cast<int>(kw);
  w.stride_y = static_cast<int>(strides[0]);
  w.stride_x = static_cast<int>(strides[1]);
  w.dil_y = static_cast<int>(dil[0]);
  w.dil_x = static_cast<int>(dil[1]);
  const AxisPads py = resolve_pads(node, 0, 2, x[2], y[2], kh, strides[0], dil[0]);
  const AxisPads px = resolve_pads(node, 1, 2, x[3], y[3], kw, strides[1], dil[1]);
  w.pad_y = static_cast<int>(py.begin);
  w.pad_y_end = static_cast<int>(py.end);
  w.pad_x = static_cast<int>(px.begin);
  w.pad_x_end = static_cast<int>(px.end);
  return w;
}

// View of rank 4 over a tensor of `shape` broadcast against `out` (both
// right-aligned, rank <= 4): zero strides on broadcast axes.
hk::View broadcast_view(float* data, const Shape& shape, const Shape& out) {
  hk::View v = hk::View::dense(data, out, 4);
  const int r = static_cast<int>(shape.size());
  std::int64_t stride = 1;
  for (int i = 0; i < 4; ++i) {
    const std::int64_t e = i < r ? shape[static_cast<std::size_t>(r - 1 - i)] : 1;
    v.stride[i] = e == 1 ? 0 : stride;
    stride *= e;
  }
  return v;
}

// Winograd F(4x4, 3x3) for 3x3 stride-1 undilated dense convolutions, by
// output size:
//  - 24x24 and more, with at least 48 input channels (fewer, and the
//    transforms cost more than the multiplications they save): one task per
//    row of tiles (wino_f4x3). Measured here, AVX-512, 2 threads: 56x56 and
//    28x28 layers 1.5-2x faster than direct.
//  - 12x12 to 31x31 with at least 128 input and output channels: the staged
//    schedule (wino_f4x3_staged), 14x14 256->256 0.35 ms against 0.56 ms
//    direct; on 28x28 128->128 it reads the 36 x C x M transformed filters
//    once instead of once per row of tiles (0.29-0.32 ms against 0.31-0.35
//    with tile rows, in ResNet-18). Below 12x12 partial tiles and the
//    transformed filters (9 MB for 512 channels, read once per 4 tiles) lose
//    to the direct kernel.
// Planes of whole 7-pixel tiles up to 14x14 with input channels in whole
// chunks take conv_channel_chunks before either (kDenseConvKernels, below).
// VKFUSE_HOST_WINOGRAD=0 turns it off.
std::optional<hk::WinogradSchedule> winograd_schedule(const Node& n, const Shape& x, const Shape& y, std::int64_t kh,
                                                      std::int64_t kw) {
  static const bool enabled = [] {
    const char* e = std::getenv("VKFUSE_HOST_WINOGRAD");
    return !(e && std::string(e) == "0");
  }();
  if (!enabled || kh != 3 || kw != 3 || n.attrs.get_int("group", 1) != 1) return std::nullopt;
  for (auto s : n.attrs.get_ints("strides", {1, 1}))
    if (s != 1) return std::nullopt;
  for (auto d : n.attrs.get_ints("dilations", {1, 1}))
    if (d != 1) return std::nullopt;
  const bool many_channels = x[1] >= 128 && y[1] >= 128;
  if (y[2] >= 12 && y[3] >= 12 && y[2] < 32 && y[3] < 32 && many_channels) return hk::WinogradSchedule::Staged;
  if (y[2] >= 24 && y[3] >= 24 && x[1] >= 48) return hk::WinogradSchedule::TileRows;
  return std::nullopt;
}

// A 1x1, stride-1, unpadded convolution is a GEMM over the image plane: seen
// as two rows of H*W/2 pixels (H*W even), its 16-pixel vectors never straddle
// a short row's end; an odd plane is one row, for conv_channel_vector.
bool pointwise(const hk::Window2D& w) {
  return w.kernel_x == 1 && w.kernel_y == 1 && w.stride_x == 1 && w.stride_y == 1 && w.pad_x == 0 && w.pad_y == 0 &&
         w.pad_x_end == 0 && w.pad_y_end == 0;
}

// A 1x1 unpadded convolution with a stride: a pointwise one on the pixels it
// reads (see the Conv step).
bool strided_pointwise(const hk::Window2D& w) {
  hk::Window2D unit = w;
  unit.stride_x = unit.stride_y = 1;
  return (w.stride_x > 1 || w.stride_y > 1) && pointwise(unit);
}

// conv_channel_vector (channels in the vector, 8-pixel tiles of the
// flattened output plane) against conv_tiled (16-pixel row vectors): the
// former wastes at most part of one tile per plane, the latter up to half of
// every row on small maps. Per useful FLOP the former runs at about
// channel_vector_rate() of the latter's rate (AMD EPYC Zen 5, vkfuse_bench
// --profile with each kernel forced, ResNet-18 and Inception v3): as fast
// from 48 input channels up, faster at stride 2 (conv_tiled's 2-strided
// vector loads are shuffles), and slower on few input channels, where its
// channels-innermost copy of a large input costs more than it saves
// (Inception's 147x147 32-channel layers: 0.72; the 3-channel stems: 0.69).
// Pointwise convolutions take it on planes below one 32-pixel
// pointwise_tiled tile, and on planes of at most 64 pixels (7x7, 8x8) whose
// filters exceed 4 MiB: they come from memory every inference, and its
// blocks read each filter once (ResNet-50's 1024->2048 shortcut on 7x7:
// 1.31-1.35 ms against 1.40-1.44 on pointwise_tiled32). With smaller
// filters pointwise_tiled32 won in the networks (Intel Xeon, 2 threads,
// vkfuse_bench --profile with each forced, two alternations, per-layer sums):
// RegNetX-400MF's 22 400->400 layers 3.57 -> 2.73-2.78 ms, RegNetY's 11
// 440->440 2.08-2.35 -> 1.59-1.62, ResNet-50's 2048->512 and 512->2048
// 3.47-3.53 -> 3.02-3.23, Inception v3's eight Mixed_7 1x1 layers 3-30%
// each. (On the AMD EPYC Zen 5 where the rule was first set, channel vectors
// had won from 256 channels up, ResNet-50's 512->2048 by 1.15x.)
constexpr std::int64_t kPointwiseStreamedFilterBytes = std::int64_t{4} << 20;
bool pointwise_channel_vector(const Shape& y, std::int64_t in_channels) {
  const std::int64_t P = y[2] * y[3];
  return P < hk::kPointwiseSmallTileP ||
         (P <= 64 && in_channels * y[1] * static_cast<std::int64_t>(sizeof(float)) > kPointwiseStreamedFilterBytes);
}
// On maps up to 56x56 the copy is small: 16 to 47 input channels into whole
// blocks of 32 output channels (HRNet's 32-channel branches) run faster on
// channel vectors (Intel Xeon, 2 threads, each kernel alone, hot caches:
// 32->32 on 28x28 0.103 -> 0.059 ms, on 56x56 0.289 -> 0.228, 16->32 at
// stride 2 to 28x28 0.095 -> 0.050); where the blocks are partly padding
// (16->16, 24->24, 40->40) conv_tiled stayed as fast or faster.
double channel_vector_rate(std::int64_t in_channels, std::int64_t stride, const Shape& y) {
  if (in_channels < 48) return in_channels >= 16 && y[1] % 32 == 0 && y[2] * y[3] <= 56 * 56 ? 1.25 : 0.72;
  return stride > 1 ? 1.2 : 1.0;
}
bool use_channel_vector(const hk::Window2D& w, const Shape& y, std::int64_t in_channels) {
  const std::int64_t P = y[2] * y[3];
  if (P < hk::kConvChannelVectorTileP) return false;
  if (pointwise(w)) return pointwise_channel_vector(y, in_channels);  // otherwise pointwise_tiled or conv_tiled, flattened
  const double eff16 = hk::tile_used(y[3], 16);
  const double eff_cv = hk::channel_vector_used(P);
  return channel_vector_rate(in_channels, std::max(w.stride_x, w.stride_y), y) * eff_cv > eff16;
}

// conv_channel_chunks (conv_channel_vector with the reduction in chunks of
// input channels, generators.cpp) for windows of at least 9 taps (3x3 and up)
// on planes of up to 14x14 that are whole 7-pixel tiles, with input channels
// in whole chunks.
// Measured on the 2 vCPU Intel Xeon, 2 threads, ResNet-18, alternated with
// the kernels before it: the 7x7 512->512 layers 1.50-1.58 -> 1.31-1.33 ms
// (conv_channel_vector), the 14x14 256->256 layers 1.2 -> 1.0 (the staged
// Winograd, whose transformed filters are 4x the direct ones: both come
// from memory every inference there); on 28x28 128->128 it lost to the
// Winograd (2.8 -> 3.6 ms for the layer2 3x3s). 1x1 layers keep their
// kernels (pointwise_channel_vector): a chunk of 16 channels x 1 tap is too
// short for the partial sums' round trip (ResNet-50's 512->2048 0.68 -> 0.80
// ms against conv_channel_vector).
constexpr std::int64_t kChannelChunksMaxP = 196;
bool use_channel_chunks(const hk::Window2D& w, const Shape& y, std::int64_t in_channels) {
  const std::int64_t P = y[2] * y[3];
  return w.kernel_x * w.kernel_y >= 9 && in_channels % hk::kConvChunkC == 0 && P % hk::kConvChunkTileP == 0 &&
         P <= kChannelChunksMaxP;
}

// The tile of pointwise_tiled (a GEMM over the whole flattened plane, the
// last pixel tile shifted inwards) for a 1x1 stride-1 convolution, or 0 for
// conv_tiled over the plane flattened into two rows (possible for even
// planes): whichever wastes least of its last tile, weighted by its rate per
// useful FLOP relative to conv_tiled's (AMD EPYC Zen 5, vkfuse_bench
// --profile on MobileNet v2, ResNet-50 and Inception v3): 48-pixel tiles
// kPointwiseRate (no padded copy of the input), 32-pixel tiles
// kPointwiseSmallRate. 7x7 planes take 32-pixel tiles (77% used against
// 51%), 8x8 conv_tiled or 32-pixel tiles (all used), 14x14 and larger
// 48-pixel tiles; where pointwise_channel_vector() holds, none of them.
constexpr double kPointwiseRate = 1.3;
constexpr double kPointwiseSmallRate = 1.0;
int pointwise_tile(const hk::Window2D& w, const Shape& y, std::int64_t in_channels) {
  const std::int64_t P = y[2] * y[3];
  if (!pointwise(w) || pointwise_channel_vector(y, in_channels)) return 0;
  const double pw48 = P >= hk::kPointwiseTileP ? kPointwiseRate * hk::tile_used(P, hk::kPointwiseTileP) : 0.0;
  const double pw32 = kPointwiseSmallRate * hk::tile_used(P, hk::kPointwiseSmallTileP);
  const double tiled = P % 2 == 0 ? hk::tile_used(P / 2, 16) : 0.0;
  if (tiled > std::max(pw48, pw32)) return 0;
  return pw48 >= pw32 ? hk::kPointwiseTileP : hk::kPointwiseSmallTileP;
}

hk::View flatten_plane(hk::View v) {
  const std::int64_t plane = v.extent[0] * v.extent[1];
  const std::int64_t rows = plane % 2 == 0 ? 2 : 1;
  v.extent[0] = plane / rows;
  v.extent[1] = rows;
  v.stride[1] = v.extent[0];
  return v;
}

const float kOne[1] = {1.f};
const float kZero[1] = {0.f};


// A float copy out[i] = in[offset + sum_k idx_k(i) * stride_k] over the
// output's dims: Transpose (permuted strides), Slice (stepped, maybe
// negative), Split (an offset). Dims of size 1 are dropped and adjacent dims
// that stay contiguous in the input merged, so that a transposition becomes
// a batch of 2-D transposes (ConvNeXt's NCHW <-> NHWC), run in 32x32 tiles;
// anything else is a gather with a tight inner loop.
struct StridedCopy {
  Shape dims;                        // output dims, merged
  std::vector<std::int64_t> stride;  // input stride of each (signed)
  std::int64_t offset = 0;
};

StridedCopy strided_copy(const Shape& dims, const graph::StridedRead& read) {
  StridedCopy c;
  c.offset = read.offset;
  for (std::size_t k = 0; k < dims.size(); ++k) {
    if (dims[k] == 1) continue;
    if (!c.dims.empty() && c.stride.back() == read.stride[k] * dims[k]) {
      c.dims.back() *= dims[k];
      c.stride.back() = read.stride[k];
      continue;
    }
    c.dims.push_back(dims[k]);
    c.stride.push_back(read.stride[k]);
  }
  if (c.dims.empty()) c.dims = {1}, c.stride = {1};
  return c;
}

void copy_strided(const StridedCopy& c, const float* src, float* dst) {
  src += c.offset;
  const std::size_t r = c.dims.size();
  if (r == 1 && c.stride[0] == 1) {
    std::memcpy(dst, src, static_cast<std::size_t>(c.dims[0]) * sizeof(float));
    return;
  }
  // Batched 2-D transpose: out[b][i][j] = in[b][j][i].
  if ((r == 2 || (r == 3 && c.stride[0] == c.dims[1] * c.dims[2])) && c.stride[r - 2] == 1 &&
      c.stride[r - 1] == c.dims[r - 2]) {
    hk::transpose(r == 3 ? c.dims[0] : 1, c.dims[r - 2], c.dims[r - 1], src, dst);
    return;
  }
  const std::int64_t inner = c.dims[r - 1], step = c.stride[r - 1];
  std::int64_t outer = 1;
  for (std::size_t k = 0; k + 1 < r; ++k) outer *= c.dims[k];
  for (std::int64_t o = 0; o < outer; ++o) {
    std::int64_t rem = o, off = 0;
    for (std::size_t k = r - 1; k-- > 0;) {
      off += (rem % c.dims[k]) * c.stride[k];
      rem /= c.dims[k];
    }
    float* out = dst + o * inner;
    if (step == 1) {
      std::memcpy(out, src + off, static_cast<std::size_t>(inner) * sizeof(float));
    } else {
      for (std::int64_t j = 0; j < inner; ++j) out[j] = src[off + j * step];
    }
  }
}

// One axis of graph::resize_taps as the host's resize kernel takes it.
hk::ResizeAxis resize_axis(const std::vector<std::vector<graph::ResizeTap>>& taps) {
  hk::ResizeAxis a;
  a.nearest = true;
  a.start.push_back(0);
  for (const auto& position : taps) {
    for (const graph::ResizeTap& t : position) {
      a.index.push_back(t.index);
      a.weight.push_back(static_cast<float>(t.weight));
    }
    a.nearest = a.nearest && position.size() == 1 && position[0].weight == 1.0;
    a.start.push_back(static_cast<std::int64_t>(a.index.size()));
  }
  return a;
}

// ReduceMean/Sum/Max/Min over contiguous axes (graph::contiguous_reduction).
enum class Fold { Sum, Mean, Max, Min };

void reduce_f32(Fold f, const graph::ContiguousReduction& l, const float* x, float* y) {
  for (std::int64_t o = 0; o < l.outer; ++o) {
    float* out = y + o * l.inner;
    const float* in = x + o * l.len * l.inner;
    const float init = f == Fold::Max   ? -std::numeric_limits<float>::infinity()
                       : f == Fold::Min ? std::numeric_limits<float>::infinity()
                                        : 0.f;
    if (l.inner == 1) {  // one contiguous run per output
      float acc = init;
      for (std::int64_t j = 0; j < l.len; ++j) {
        const float v = in[j];
        acc = f == Fold::Max ? std::max(acc, v) : f == Fold::Min ? std::min(acc, v) : acc + v;
      }
      out[0] = f == Fold::Mean ? acc / static_cast<float>(l.len) : acc;
      continue;
    }
    std::fill(out, out + l.inner, init);
    for (std::int64_t j = 0; j < l.len; ++j) {  // rows of `inner` outputs at once
      const float* row = in + j * l.inner;
      for (std::int64_t i = 0; i < l.inner; ++i)
        out[i] = f == Fold::Max ? std::max(out[i], row[i]) : f == Fold::Min ? std::min(out[i], row[i]) : out[i] + row[i];
    }
    if (f == Fold::Mean)
      for (std::int64_t i = 0; i < l.inner; ++i) out[i] /= static_cast<float>(l.len);
  }
}

std::int64_t bytes_of(const std::vector<float>& v) { return static_cast<std::int64_t>(v.size() * sizeof(float)); }
std::int64_t bytes_of(const hk::PackedConv& p) {
  return static_cast<std::int64_t>((p.weights.size() + p.bias.size()) * sizeof(float));
}
std::int64_t bytes_of(const hk::PackedWinograd& p) {
  return static_cast<std::int64_t>((p.weights.size() + p.bias.size()) * sizeof(float));
}
std::int64_t bytes_of(const hk::PackedDepthwise& p) {
  return static_cast<std::int64_t>((p.weights.size() + p.bias.size()) * sizeof(float));
}
// A MatMul operand's step between the output's batch indices, in matrices:
// 1 where its batch dimensions are the output's, 0 where they are all 1
// (broadcast); none for a partial broadcast.
std::optional<std::int64_t> batch_steps(const Shape& operand, const Shape& out) {
  const Shape batch(operand.begin(), operand.end() - 2), out_batch(out.begin(), out.end() - 2);
  if (graph::element_count(batch) == 1) return 0;
  if (batch.size() > out_batch.size() ||
      !std::equal(batch.begin(), batch.end(), out_batch.end() - static_cast<std::ptrdiff_t>(batch.size())) ||
      graph::element_count(batch) != graph::element_count(out_batch))
    return std::nullopt;
  return 1;
}
// Both operands' steps, when neither is a partial broadcast.
std::optional<std::pair<std::int64_t, std::int64_t>> matmul_batch_steps(const Shape& a, const Shape& b,
                                                                        const Shape& out) {
  const auto sa = batch_steps(a, out), sb = batch_steps(b, out);
  if (!sa || !sb) return std::nullopt;
  return std::pair{*sa, *sb};
}

// An op whose output is its input's elements as they are (a view; Dropout
// only without its mask output).
bool is_view_copy(const Node& n) {
  return planner::is_view_op(n) && (n.outputs.size() < 2 || n.outputs[1] == kNoValue);
}

std::int64_t bytes_of(const hk::PackedGemm& p) {
  return static_cast<std::int64_t>((p.b.size() + p.bias.size()) * sizeof(float));
}

// Where a step's buffer is in a run: at an offset in the run's arena, or at a
// fixed address (a constant of the graph). Steps hold these, never pointers
// into one run's memory, so that runs on different arenas share the steps.
struct Buf {
  std::int64_t offset = -1;  // floats into the arena; -1: `fixed`
  const float* fixed = nullptr;
  float* at(float* arena) const { return offset >= 0 ? arena + offset : const_cast<float*>(fixed); }
};

struct ViewRef {
  hk::View view;  // data unset
  Buf buf;
  hk::View at(float* arena) const {
    hk::View v = view;
    v.data = buf.at(arena);
    return v;
  }
  static ViewRef dense(Buf b, const Shape& shape, int rank = 4) { return {hk::View::dense(nullptr, shape, rank), b}; }
};

// A dense (group 1, 2-D), grouped or depthwise (group == C == M)
// convolution, as the kernel tables see it.
struct DenseConv {
  const Node* node;
  Shape xs, ys;  // the input its kernel reads (after any subsampling) and the output
  std::int64_t C, M, KH, KW;
  hk::Window2D win;
  const float* W;     // [M][C / groups][KH][KW]
  const float* bias;  // [M] or null
  std::int64_t groups = 1;
  bool residual = false;  // the step also adds a residual (a fused Add)
  // Blocked channels (hk::Blocked; HostProgram::build, step 2c): the output
  // (and the residual) blocked, the input blocked or planar.
  bool blocked_in = false, blocked_out = false;
};
// out = act(conv(in) + bias [+ res]), on one run's views; `filters`: null, or
// the kernel's packed filters with a channel gate folded in (see below).
using DenseBody = std::function<void(const hk::View& in, const hk::View* res, const hk::Epilogue& e,
                                     const hk::View& out, const float* filters)>;
struct DenseKernel {
  std::string kernel;  // its name in profiles
  std::shared_ptr<const void> packed;
  std::int64_t bytes = 0;
  DenseBody body;
  // The packed filters, for the kernels that take them scaled per run
  // (hk::scale_filter_inputs: a channel gate on the input, HostFusion).
  const hk::PackedConv* filters = nullptr;
};

DenseKernel pointwise_kernel(const DenseConv& c) {
  const int tile = pointwise_tile(c.win, c.ys, c.C);
  auto packed = std::make_shared<hk::PackedConv>(hk::PackedConv::pack(
      c.W, c.bias, static_cast<int>(c.M), static_cast<int>(c.C), 1, 1, hk::kPointwiseTileM));
  const hk::PackedConv* pc = packed.get();
  return {tile == hk::kPointwiseTileP ? "pointwise_tiled" : "pointwise_tiled32", packed, bytes_of(*packed),
          [pc, tile](const hk::View& in, const hk::View* res, const hk::Epilogue& e, const hk::View& out,
                     const float* filters) { hk::pointwise_conv2d(in, *pc, res, e, out, tile, filters); },
          pc};
}
DenseKernel winograd_kernel(const DenseConv& c) {
  const hk::WinogradSchedule sched = *winograd_schedule(*c.node, c.xs, c.ys, c.KH, c.KW);
  auto packed = std::make_shared<hk::PackedWinograd>(
      hk::PackedWinograd::pack(c.W, c.bias, static_cast<int>(c.M), static_cast<int>(c.C)));
  const hk::PackedWinograd* pw = packed.get();
  const hk::Window2D win = c.win;
  return {sched == hk::WinogradSchedule::Staged ? "wino_f4x3_staged" : "wino_f4x3", packed, bytes_of(*packed),
          [pw, win, sched](const hk::View& in, const hk::View* res, const hk::Epilogue& e, const hk::View& out,
                           const float*) {
            hk::winograd_conv2d(in, *pw, win, res, e, out, sched);
          }};
}
// conv_channel_vector and conv_channel_chunks: the same filters (blocks of
// 32 output channels), run by `run`.
using ChannelVectorRun = void (*)(const hk::View&, const hk::PackedConv&, const hk::Window2D&, const hk::View*,
                                  hk::Epilogue, const hk::View&, const float*);
DenseKernel channel_vector_family(const DenseConv& c, const char* name, ChannelVectorRun run,
                                  int tile_m = hk::kConvChannelVectorTileM) {
  auto packed = std::make_shared<hk::PackedConv>(
      hk::PackedConv::pack(c.W, c.bias, static_cast<int>(c.M), static_cast<int>(c.C), static_cast<int>(c.KH),
                           static_cast<int>(c.KW), tile_m, static_cast<int>(c.groups)));
  const hk::PackedConv* pc = packed.get();
  const hk::Window2D win = c.win;
  return {name, packed, bytes_of(*packed),
          [pc, win, run](const hk::View& in, const hk::View* res, const hk::Epilogue& e, const hk::View& out,
                         const float* filters) { run(in, *pc, win, res, e, out, filters); },
          pc};
}
DenseKernel channel_chunks_kernel(const DenseConv& c) {
  return channel_vector_family(c, "conv_channel_chunks", hk::conv2d_channel_chunks);
}
DenseKernel channel_vector_kernel(const DenseConv& c) {
  return channel_vector_family(c, "conv_channel_vector", hk::conv2d_channel_vector);
}
DenseKernel narrow_vector_kernel(const DenseConv& c) {
  return channel_vector_family(c, "conv_channel_vector16", hk::conv2d_channel_vector, hk::kConvNarrowVectorTileM);
}
// A 1x1 convolution on a 1x1 map (squeeze-and-excitation's reduce and
// expand convolutions): one GEMV per image, on the Gemm kernel. conv_tiled's
// row vectors are 16 pixels wide and ran these on one lane of 16
// (MobileNetV3-large's 960->240: 0.10 ms, ~5 GFLOP/s).
bool gemv_conv(const DenseConv& c) { return pointwise(c.win) && c.xs[2] * c.xs[3] == 1 && !c.residual; }
DenseKernel gemv_kernel(const DenseConv& c) {
  auto packed = std::make_shared<hk::PackedGemm>(hk::PackedGemm::pack(
      c.W, true, static_cast<int>(c.C), static_cast<int>(c.M), static_cast<int>(c.ys[0]), 1.f, c.bias,
      c.bias ? Shape{c.M} : Shape{}, 1.f));
  const hk::PackedGemm* pg = packed.get();
  // (1, 1, c, n) as the (k, n) and (m, n) matrices of the GEMM.
  auto matrix = [](const hk::View& v) {
    hk::View m;
    m.data = v.data;
    m.rank = 2;
    m.extent[0] = v.extent[2];
    m.stride[0] = v.stride[2];
    m.extent[1] = v.extent[3];
    m.stride[1] = v.stride[3];
    return m;
  };
  return {"conv_gemv", packed, bytes_of(*packed),
          [pg, matrix](const hk::View& in, const hk::View*, const hk::Epilogue& e, const hk::View& out, const float*) {
            hk::gemm(matrix(in), *pg, e, matrix(out));
          }};
}
DenseKernel tiled_kernel(const DenseConv& c) {
  auto packed = std::make_shared<hk::PackedConv>(
      hk::PackedConv::pack(c.W, c.bias, static_cast<int>(c.M), static_cast<int>(c.C), static_cast<int>(c.KH),
                           static_cast<int>(c.KW), hk::kConvTileM, static_cast<int>(c.groups)));
  const hk::PackedConv* pc = packed.get();
  const hk::Window2D win = c.win;
  const bool flat = pointwise(win);  // 1x1: row vectors over the flattened plane
  return {"conv_tiled", packed, bytes_of(*packed),
          [pc, win, flat](const hk::View& in, const hk::View* res, const hk::Epilogue& e, const hk::View& out,
                          const float* filters) {
            if (!flat) return hk::conv2d(in, *pc, win, res, e, out, filters);
            const hk::View fr = res ? flatten_plane(*res) : hk::View{};
            hk::conv2d(flatten_plane(in), *pc, win, res ? &fr : nullptr, e, flatten_plane(out), filters);
          },
          pc};
}

// The blocked-channel kernels, for the convolutions whose output the layout
// decision (HostProgram::build, step 2c) holds blocked.
hk::Blocked blocked_shape(const Shape& s) { return hk::Blocked{nullptr, s[0], s[1], s[2], s[3]}; }
DenseKernel pointwise_blocked_kernel(const DenseConv& c) {
  auto packed = std::make_shared<hk::PackedConv>(hk::PackedConv::pack(
      c.W, c.bias, static_cast<int>(c.M), static_cast<int>(c.C), 1, 1, hk::kConvChannelVectorTileM));
  const hk::PackedConv* pc = packed.get();
  const hk::Blocked xb = blocked_shape(c.xs), yb = blocked_shape(c.ys);
  const bool planar_in = !c.blocked_in;
  return {"pointwise_blocked", packed, bytes_of(*packed),
          [pc, xb, yb, planar_in](const hk::View& in, const hk::View* res, const hk::Epilogue& e, const hk::View& out,
                                  const float* filters) {
            hk::Blocked y = yb, x = xb, r = yb;
            y.data = out.data;
            if (planar_in) return hk::pointwise_conv2d_blocked(in, *pc, e, y, filters);
            x.data = in.data;
            if (res) r.data = res->data;
            hk::pointwise_conv2d_blocked(x, *pc, res ? &r : nullptr, e, y, filters);
          },
          pc};
}
DenseKernel depthwise_blocked_kernel(const DenseConv& c) {
  auto packed = std::make_shared<hk::PackedDepthwise>(hk::PackedDepthwise::pack(
      c.W, c.bias, static_cast<int>(c.C), static_cast<int>(c.KH), static_cast<int>(c.KW)));
  const hk::PackedDepthwise* pd = packed.get();
  const hk::Blocked xb = blocked_shape(c.xs), yb = blocked_shape(c.ys);
  const hk::Window2D win = c.win;
  return {"depthwise_blocked", packed, bytes_of(*packed),
          [pd, xb, yb, win](const hk::View& in, const hk::View*, const hk::Epilogue& e, const hk::View& out,
                            const float*) {
            hk::Blocked x = xb, y = yb;
            x.data = in.data;
            y.data = out.data;
            hk::depthwise_conv2d_blocked(x, *pd, win, e, y);
          }};
}

// The kernels of a dense convolution in order of preference: the first whose
// rule holds runs (the rules and their measurements are above).
struct DenseConvKernel {
  const char* name;
  bool (*applies)(const DenseConv&);
  DenseKernel (*make)(const DenseConv&);
};
const DenseConvKernel kDenseConvKernels[] = {
    {"pointwise_blocked", [](const DenseConv& c) { return c.blocked_out; }, pointwise_blocked_kernel},
    {"conv_gemv", gemv_conv, gemv_kernel},
    {"pointwise_tiled", [](const DenseConv& c) { return pointwise_tile(c.win, c.ys, c.C) != 0; }, pointwise_kernel},
    {"conv_channel_chunks", [](const DenseConv& c) { return use_channel_chunks(c.win, c.ys, c.C); },
     channel_chunks_kernel},
    {"winograd", [](const DenseConv& c) { return winograd_schedule(*c.node, c.xs, c.ys, c.KH, c.KW).has_value(); },
     winograd_kernel},
    {"conv_channel_vector", [](const DenseConv& c) { return use_channel_vector(c.win, c.ys, c.C); },
     channel_vector_kernel},
    {"conv_tiled", [](const DenseConv&) { return true; }, tiled_kernel},
};

// A grouped convolution (not depthwise) runs all its groups in one call of
// conv_channel_vector16, conv_channel_vector or conv_tiled, whose blocks of
// 16, 32 or 8 output channels read the input channels of the groups they
// span (hk::PackedConv): where a group has fewer output channels than a
// block, a block computes zeros for the other groups' channels. Whichever
// wastes least of its vector work runs, conv_tiled's 2-strided loads
// (shuffles) counted at 0.6 and conv_channel_vector's strided taps at 1.2
// (channel_vector_rate); conv_channel_vector16 (one vector of 16 channels
// over 7-pixel tiles) only where it wastes strictly less than the others.
// Measured on the 2 vCPU Intel Xeon, 2 threads, each kernel forced, sums of
// per-layer minima in ms (tiled / vector / vector16): RegNetX-400MF, 16
// channels per group: 7x7 400->400 (11 layers) 1.27 / 1.38 / 0.85, 14x14
// 160->160 (6) 0.49 / 0.66 / 0.50, 56x56 stride 2 0.37 / 0.38 / 0.30;
// RegNetY-400MF, 8 per group: 7x7 440->440 (5) 0.50 / 0.72 / 0.46, 14x14
// (5) 0.44 / 0.77 / 0.54, 28x28 stride 2 0.23 / 0.43 / 0.30; ResNeXt-50,
// 4 to 32 per group: 56x56 in groups of 4 1.42 / 5.07 / 2.92, 7x7
// 1024->1024 in groups of 32 1.10 / 0.55 / 0.56.
double grouped_tile_used(const DenseConv& c, int tile_m) {
  const double cb = hk::PackedConv::block_input_channels(static_cast<int>(c.M), static_cast<int>(c.C),
                                                         static_cast<int>(c.groups), tile_m);
  return static_cast<double>(c.C / c.groups) / cb;
}
enum class GroupedKernel { tiled, vector, narrow };
GroupedKernel grouped_kernel(const DenseConv& c) {
  const std::int64_t P = c.ys[2] * c.ys[3];
  if (P < hk::kConvChannelVectorTileP) return GroupedKernel::tiled;
  const bool strided = std::max(c.win.stride_x, c.win.stride_y) > 1;
  const bool flat = pointwise(c.win);  // conv_tiled runs a 1x1 one over the flattened plane
  const double tiled = hk::tile_used(flat ? (P % 2 == 0 ? P / 2 : P) : c.ys[3], 16) *
                       grouped_tile_used(c, hk::kConvTileM) * (strided ? 0.6 : 1.0);
  const double vector = hk::channel_vector_used(P) * grouped_tile_used(c, hk::kConvChannelVectorTileM) *
                        (strided ? 1.2 : 1.0);
  const double narrow = hk::tile_used(P, hk::kConvNarrowVectorTileP) * grouped_tile_used(c, hk::kConvNarrowVectorTileM);
  if (narrow > vector && narrow > tiled && !c.residual) return GroupedKernel::narrow;  // it has no residual variant
  return vector > tiled ? GroupedKernel::vector : GroupedKernel::tiled;
}
// A grouped convolution on a large input runs in calls of as many groups as
// keep a call's input within kGroupedCallInput: each call's padded copy then
// stays in L2 for the kernel that reads it (2 vCPU Intel Xeon, 2 threads:
// ResNeXt-50's 256-channel stride-2 layer in 32 groups 0.90 -> 0.56 ms as
// 7 calls, RegNetY's 48-channel 56x56 one 0.56 -> 0.35 as 6; one call per
// group, as before grouped filters, 0.74 and 0.38).
constexpr std::int64_t kGroupedCallInput = 512 << 10;
DenseKernel grouped_calls(const DenseConv& c, DenseKernel (*make)(const DenseConv&)) {
  const std::int64_t cg = c.C / c.groups, mg = c.M / c.groups;
  const std::int64_t group_bytes = c.xs[0] * cg * c.xs[2] * c.xs[3] * static_cast<std::int64_t>(sizeof(float));
  const std::int64_t per_call = std::clamp<std::int64_t>(kGroupedCallInput / group_bytes, 1, c.groups);
  if (per_call == c.groups) return make(c);
  struct Call {
    std::int64_t first;  // group
    DenseKernel kernel;
  };
  auto calls = std::make_shared<std::vector<Call>>();
  std::int64_t bytes = 0;
  for (std::int64_t first = 0; first < c.groups; first += per_call) {
    DenseConv part = c;
    part.groups = std::min(per_call, c.groups - first);
    part.C = part.groups * cg;
    part.M = part.groups * mg;
    part.xs[1] = part.C;
    part.ys[1] = part.M;
    part.W = c.W + first * mg * cg * c.KH * c.KW;
    part.bias = c.bias ? c.bias + first * mg : nullptr;
    calls->push_back({first, make(part)});
    bytes += calls->back().kernel.bytes;
  }
  const std::string name = calls->front().kernel.kernel;
  return {name, calls, bytes,
          [calls, cg, mg](const hk::View& in, const hk::View*, const hk::Epilogue& e, const hk::View& out,
                          const float*) {
            for (const Call& call : *calls) {
              const hk::PackedConv& w = *static_cast<const hk::PackedConv*>(call.kernel.packed.get());
              hk::View x = in, y = out;
              x.data += call.first * cg * in.stride[2];
              x.extent[2] = w.in_channels;
              y.data += call.first * mg * out.stride[2];
              y.extent[2] = w.m;
              call.kernel.body(x, nullptr, e, y, nullptr);
            }
          }};
}
const DenseConvKernel kGroupedConvKernels[] = {
    {"conv_channel_vector16", [](const DenseConv& c) { return grouped_kernel(c) == GroupedKernel::narrow; },
     [](const DenseConv& c) { return grouped_calls(c, narrow_vector_kernel); }},
    {"conv_channel_vector", [](const DenseConv& c) { return grouped_kernel(c) == GroupedKernel::vector; },
     [](const DenseConv& c) { return grouped_calls(c, channel_vector_kernel); }},
    {"conv_tiled", [](const DenseConv&) { return true; },
     [](const DenseConv& c) { return grouped_calls(c, tiled_kernel); }},
};

// A depthwise convolution's kernels (group == C == M), in the same form.
// depthwise_channel_vector computes 16 channels per vector and pays on maps
// up to 28 wide, where the planar kernel's row vectors are mostly overlap and
// tail (EfficientNet-B0, 2 threads: 7x7 5x5 with 1152 channels 0.35 -> 0.08
// ms, 14x14 0.45 -> 0.15, 28x28 0.38 -> 0.21); on 112-wide maps gathering
// the planes into channel blocks costs more than the planar rows save.
constexpr std::int64_t kDepthwiseChannelVectorMaxWidth = 28;
DenseKernel depthwise_channel_vector_kernel(const DenseConv& c) {
  auto packed = std::make_shared<hk::PackedDepthwise>(hk::PackedDepthwise::pack(
      c.W, c.bias, static_cast<int>(c.C), static_cast<int>(c.KH), static_cast<int>(c.KW)));
  const hk::PackedDepthwise* pd = packed.get();
  const hk::Window2D win = c.win;
  return {"depthwise_channel_vector", packed, bytes_of(*packed),
          [pd, win](const hk::View& in, const hk::View*, const hk::Epilogue& e, const hk::View& out, const float*) {
            hk::depthwise_conv2d_channel_vector(in, *pd, win, e, out);
          }};
}
// The planar kernels' filters: as ONNX stores them, then the bias (zeros if
// none); `run` is hk::depthwise_conv2d or hk::depthwise_conv2d_flat.
template <auto run>
DenseKernel depthwise_planar_filters(const char* kernel, const DenseConv& c) {
  const std::size_t taps = static_cast<std::size_t>(c.C * c.KH * c.KW);
  auto packed = std::make_shared<std::vector<float>>(c.W, c.W + taps);
  packed->resize(taps + static_cast<std::size_t>(c.C), 0.f);
  if (c.bias) std::copy(c.bias, c.bias + c.C, packed->begin() + static_cast<std::ptrdiff_t>(taps));
  const float* w = packed->data();
  const float* bias = w + taps;
  const int kh = static_cast<int>(c.KH), kw = static_cast<int>(c.KW);
  const hk::Window2D win = c.win;
  return {kernel, packed, bytes_of(*packed),
          [w, bias, kh, kw, win](const hk::View& in, const hk::View*, const hk::Epilogue& e, const hk::View& out,
                                 const float*) {
            run(in, w, bias, kh, kw, win, e, out);
          }};
}
// depthwise_flat treats a plane as one row of H*W pixels: whole vectors
// wherever rows end, dense loads for every tap (stride 1, "same" size only).
// MobileNet v2, 2 threads: 3x3 on 14x14 and 28x28 maps 1.7-1.9x faster than
// depthwise_channel_vector, 7x7 1.2x. Not on maps wider than 28 (56 even,
// 112 slower than the planar rows), nor for larger windows on maps under 14
// wide, where its kw shifted copies of a 7x7 plane cost more than the taps
// (MobileNetV3's 5x5 on 7x7: 1.5x slower).
constexpr std::int64_t kDepthwiseFlatMaxWidth = 28;
bool use_depthwise_flat(const DenseConv& c) {
  const bool same_size = c.xs[2] == c.ys[2] && c.xs[3] == c.ys[3];
  return c.win.stride_x == 1 && c.win.stride_y == 1 && same_size &&
         c.ys[2] * c.ys[3] >= hk::kDepthwiseFlatMinPixels && c.ys[3] <= kDepthwiseFlatMaxWidth &&
         (c.KH * c.KW <= 9 || c.ys[3] >= 14);
}
const DenseConvKernel kDepthwiseKernels[] = {
    {"depthwise_blocked", [](const DenseConv& c) { return c.blocked_out; }, depthwise_blocked_kernel},
    {"depthwise_flat", use_depthwise_flat,
     [](const DenseConv& c) { return depthwise_planar_filters<hk::depthwise_conv2d_flat>("depthwise_flat", c); }},
    {"depthwise_channel_vector",
     [](const DenseConv& c) {
       return c.ys[2] * c.ys[3] >= hk::kDepthwiseChannelVectorTileP && c.ys[3] <= kDepthwiseChannelVectorMaxWidth;
     },
     depthwise_channel_vector_kernel},
    {"depthwise", [](const DenseConv&) { return true; },
     [](const DenseConv& c) { return depthwise_planar_filters<hk::depthwise_conv2d>("depthwise", c); }},
};

// The fusions of one graph (see the header's step 1).
struct Fusions {
  std::vector<std::int32_t> producer;                    // per value
  std::vector<bool> elided;                              // conv outputs folded into a residual Add
  std::set<std::int32_t> skipped;                        // nodes whose work another step does
  std::vector<ValueId> alias_parent;                     // per value: concat output it lives in, or kNoValue
  std::vector<std::int64_t> alias_offset;                // element offset in the parent
  std::map<std::int32_t, std::int64_t> scratch;          // node → floats of per-run scratch its step needs
  std::map<std::int32_t, std::int64_t> gated_filters;    // gated Conv → floats of its per-run scaled filters
};

}  // namespace

template <class T>
const T* HostProgram::keep(std::shared_ptr<T> packed) {
  weight_bytes_ += bytes_of(*packed);
  const T* p = packed.get();
  packed_.push_back(std::move(packed));
  return p;
}

HostProgram::HostProgram(const graph::Graph& graph, std::span<const int> segment_of, int threads) : graph_(&graph) {
  build(segment_of, false, threads);
}

HostProgram::HostProgram(PlanOnly, const graph::Graph& graph) : graph_(&graph) { build({}, true, 1); }

HostProgram HostProgram::plan_only(const graph::Graph& graph) { return HostProgram(PlanOnly{}, graph); }

float* HostProgram::value_data(ValueId v, float* arena) const {
  const graph::Value& val = graph_->value(v);
  if (val.constant && val.dtype == DType::f32) return const_cast<float*>(val.constant->f32());
  const std::int64_t off = offset_[idx(v)];
  return off >= 0 ? arena + off : nullptr;
}

void HostProgram::build(std::span<const int> segment_of, bool plan_only, int threads) {
  const graph::Graph& g = *graph_;
  const std::size_t nv = g.values.size();
  const std::int32_t nn = static_cast<std::int32_t>(g.nodes.size());
  // Segments: consecutive runs of nodes; ops fuse only within one.
  int segments = 0;
  const std::vector<int> segment =
      contiguous_groups(segment_of, static_cast<std::size_t>(nn), "HostProgram segments", segments);
  auto same_segment = [&](std::int32_t a, std::int32_t b) {
    return segment[static_cast<std::size_t>(a)] == segment[static_cast<std::size_t>(b)];
  };
  Fusions plan;
  plan.producer = g.producers();
  plan.elided.assign(nv, false);
  plan.alias_parent.assign(nv, kNoValue);
  plan.alias_offset.assign(nv, 0);

  auto is_runtime_f32 = [&](ValueId v) {
    return v != kNoValue && !g.is_constant(v) && g.value(v).dtype == DType::f32;
  };
  // Every present input float32, constants included.
  auto all_f32_inputs = [&](const Node& n) {
    return std::all_of(n.inputs.begin(), n.inputs.end(),
                       [&](ValueId v) { return v == kNoValue || g.value(v).dtype == DType::f32; });
  };
  // The planner's test (planner/kernel_fusion.h): what the planner fuses is
  // what these kernels take.
  auto kernel_conv = [&](const Node& n) { return planner::host_conv_kernel(g, n); };
  auto dense_conv = [&](std::int32_t ni) {
    const Node& n = g.nodes[static_cast<std::size_t>(ni)];
    return kernel_conv(n) && n.attrs.get_int("group", 1) == 1;
  };

  // 1, 2, 2c. Conv → Add fusion, Concat inputs in place and blocked
  // channels: the planner's rule (planner/host_layout.h), so that what a
  // plan lists and prices (PlanNode::kernel_of, its layouts) is what runs.
  planner::HostLayout layout;
  const planner::HostLayoutRule layout_rule(g);
  layout_rule.decide(segment, layout);
  for (std::int32_t ai = 0; ai < nn; ++ai) {
    const int ci = layout.epilogue_of[idx(ai)];
    if (ci < 0) continue;
    plan.skipped.insert(ai);
    plan.elided[idx(g.nodes[static_cast<std::size_t>(ci)].outputs[0])] = true;
    ++fused_nodes_;
  }
  // 1a. A channel gate whose Conv folds it into its filters: the gated tensor
  // is never written; the Conv's step scales its filters (per run, in
  // scratch: as many floats as any of its kernels packs them in) and reads x.
  static_assert(hk::kConvChannelVectorTileM % hk::kConvTileM == 0 &&
                hk::kConvChannelVectorTileM % hk::kPointwiseTileM == 0);
  for (std::int32_t mi = 0; mi < nn; ++mi) {
    const int ci = layout.gated_conv[idx(mi)];
    if (ci < 0) continue;
    plan.skipped.insert(mi);
    plan.elided[idx(g.nodes[idx(mi)].outputs[0])] = true;
    const Shape& ws = g.value(g.nodes[idx(ci)].inputs[1]).shape;
    const std::int64_t tile = hk::kConvChannelVectorTileM;
    plan.gated_filters[ci] = (ws[0] + tile - 1) / tile * tile * ws[1];
    ++fused_nodes_;
  }

  // 1b. Scratch: a strided 1x1 dense convolution first gathers the pixels it
  // reads (see its step).
  for (std::int32_t ni = 0; ni < nn; ++ni) {
    const Node& n = g.nodes[static_cast<std::size_t>(ni)];
    if (!dense_conv(ni)) continue;
    const Shape& xs = g.value(n.inputs[0]).shape;
    const Shape& ws = g.value(n.inputs[1]).shape;
    const Shape& ys = g.value(n.outputs[0]).shape;
    if (ws.size() == 4 && strided_pointwise(window_2d(n, xs, ys, ws[2], ws[3])))
      plan.scratch[ni] = xs[0] * xs[1] * ys[2] * ys[3];
  }

  // 2. Concat inputs written in place (step 1's rule).
  for (std::size_t v = 0; v < nv; ++v) {
    plan.alias_parent[v] = layout.concat_parent[v];
    plan.alias_offset[v] = layout.concat_offset[v];
  }

  // 2b. A view (Reshape and the like) lives where its input does: values are
  // never written after their step, so both names can share the memory (its
  // step's copy becomes a no-op). One already written into a Concat keeps that.
  for (std::int32_t ni = 0; ni < nn; ++ni) {
    const Node& n = g.nodes[static_cast<std::size_t>(ni)];
    // (No view carries an activation today; one would be applied in place.)
    if (!is_view_copy(n) || n.inputs.empty() || n.outputs.empty() || n.activation.kind != graph::Activation::Kind::None)
      continue;
    const ValueId x = n.inputs[0], y = n.outputs[0];
    if (is_runtime_f32(x) && is_runtime_f32(y) && plan.alias_parent[idx(y)] == kNoValue && !plan.elided[idx(x)] &&
        graph::element_count(g.value(x).shape) == graph::element_count(g.value(y).shape))
      plan.alias_parent[idx(y)] = x;
  }

  // 2c. Blocked channels (hk::Blocked) for the values that pass from one
  // mobile layer to the next (step 1's rule), with a planar copy for any
  // other reader.
  static_assert(hk::kBlockedTile == planner::kHostBlockedTile);
  const std::vector<char>&blocked = layout.blocked, &planar_copy = layout.planar_copy;

  // 3. Memory: lifetimes, then offsets. A fused Add's output is defined by its conv.
  std::vector<std::int32_t> def(nv, std::numeric_limits<std::int32_t>::max()), last(nv, -1);
  for (auto v : g.inputs) def[idx(v)] = -1;
  for (std::int32_t ni = 0; ni < nn; ++ni) {
    const Node& n = g.nodes[static_cast<std::size_t>(ni)];
    for (auto v : n.outputs)
      if (v != kNoValue) def[idx(v)] = std::min(def[idx(v)], ni);
    for (auto v : n.inputs)
      if (v != kNoValue) last[idx(v)] = std::max(last[idx(v)], ni);
  }
  for (std::int32_t ci = 0; ci < nn; ++ci)
    if (const int ai = layout.fused_add[idx(ci)]; ai >= 0) {
      const ValueId out = g.nodes[static_cast<std::size_t>(ai)].outputs[0];
      def[idx(out)] = std::min(def[idx(out)], ci);
    }
  // A folded gate's inputs are read by its Conv's step.
  for (std::int32_t ci = 0; ci < nn; ++ci)
    if (const int mi = layout.input_gate[idx(ci)]; mi >= 0)
      for (ValueId v : g.nodes[idx(mi)].inputs) last[idx(v)] = std::max(last[idx(v)], ci);
  for (auto v : g.outputs) last[idx(v)] = nn;
  for (std::size_t v = 0; v < nv; ++v)
    if (def[v] != std::numeric_limits<std::int32_t>::max()) last[v] = std::max(last[v], def[v]);

  auto root_of = [&](ValueId v, std::int64_t* offset) {
    std::int64_t off = 0;
    while (plan.alias_parent[idx(v)] != kNoValue) {
      off += plan.alias_offset[idx(v)];
      v = plan.alias_parent[idx(v)];
    }
    if (offset) *offset = off;
    return v;
  };
  // Blocks: one per root value (keyed by its id), one per step scratch (keyed nv + node).
  struct Block {
    std::int64_t size = 0;  // floats, rounded to 16
    std::int32_t first = 0, last = 0;
    std::int64_t offset = 0;
  };
  std::map<std::size_t, Block> blocks;
  for (std::size_t v = 0; v < nv; ++v) {
    const ValueId id = static_cast<ValueId>(v);
    if (!is_runtime_f32(id) || plan.elided[v] || def[v] == std::numeric_limits<std::int32_t>::max()) continue;
    const ValueId root = root_of(id, nullptr);
    auto& b = blocks[idx(root)];
    if (b.size == 0) {
      const Shape& rs = g.value(root).shape;
      b.size = blocked[idx(root)] && !planar_copy[idx(root)] ? blocked_shape(rs).floats()
                                                              : (graph::element_count(rs) + 15) / 16 * 16;
      b.first = def[v];
      b.last = last[v];
    }
    b.first = std::min(b.first, def[v]);
    b.last = std::max(b.last, last[v]);
    unplanned_bytes_ += graph::element_count(g.value(id).shape) * 4;
  }
  for (auto& [ni, floats] : plan.scratch) {
    Block& b = blocks[nv + idx(ni)];
    b.size = (floats + 15) / 16 * 16;
    b.first = b.last = ni;
  }
  // A value with a planar copy: its blocked channels in a block of their own
  // (keyed after the scratch), the copy where the value lives; then the
  // gated Convs' filters.
  const std::size_t blocked_key = nv + static_cast<std::size_t>(nn), filters_key = blocked_key + nv;
  for (auto& [ni, floats] : plan.gated_filters) {
    Block& b = blocks[filters_key + idx(ni)];
    b.size = (floats + 15) / 16 * 16;
    b.first = b.last = ni;
  }
  for (std::size_t v = 0; v < nv; ++v) {
    if (!planar_copy[v]) continue;
    Block& b = blocks[blocked_key + v];
    b.size = blocked_shape(g.value(static_cast<ValueId>(v)).shape).floats();
    b.first = def[v];
    b.last = last[v];
  }
  // Greedy: largest blocks first, each at the lowest offset free over its lifetime.
  std::vector<Block*> order;
  for (auto& [_, b] : blocks) order.push_back(&b);
  std::stable_sort(order.begin(), order.end(), [](const Block* a, const Block* b) { return a->size > b->size; });
  std::vector<Block*> placed;
  for (Block* b : order) {
    std::vector<std::pair<std::int64_t, std::int64_t>> busy;
    for (Block* p : placed)
      if (p->first <= b->last && b->first <= p->last) busy.emplace_back(p->offset, p->offset + p->size);
    std::sort(busy.begin(), busy.end());
    std::int64_t off = 0;
    for (auto& [lo, hi] : busy) {
      if (off + b->size <= lo) break;
      off = std::max(off, hi);
    }
    b->offset = off;
    arena_floats_ = std::max(arena_floats_, off + b->size);
    placed.push_back(b);
  }
  offset_.assign(nv, -1);
  for (std::size_t v = 0; v < nv; ++v) {
    const ValueId id = static_cast<ValueId>(v);
    if (!is_runtime_f32(id) || plan.elided[v]) continue;
    std::int64_t off = 0;
    const ValueId root = root_of(id, &off);
    auto it = blocks.find(idx(root));
    if (it != blocks.end()) offset_[v] = it->second.offset + off;
  }
  std::vector<std::int64_t> blocked_offset(nv, -1);  // where a value's blocked channels are, if blocked
  for (std::size_t v = 0; v < nv; ++v)
    if (blocked[v]) blocked_offset[v] = planar_copy[v] ? blocks.at(blocked_key + v).offset : offset_[v];
  if (plan_only) return;

  // 4. Steps, segment after segment.
  auto buf = [&](ValueId v) {
    Buf b;
    if (v == kNoValue) return b;
    const graph::Value& val = g.value(v);
    if (val.constant && val.dtype == DType::f32) b.fixed = val.constant->f32();
    else b.offset = offset_[idx(v)];
    return b;
  };
  // A value's blocked channels (step 2c), for the steps that read or write them.
  auto blocked_buf = [&](ValueId v) { return blocked[idx(v)] ? Buf{blocked_offset[idx(v)], nullptr} : buf(v); };
  auto add = [&](std::string name, std::string kernel, std::int32_t node, std::function<void(const HostFrame&)> run) {
    steps_.push_back({std::move(name), std::move(kernel), node, std::move(run)});
  };
  // The planar copies of step 2c, each right after the step that writes the
  // value (a fused Add's output: after its convolution's step).
  std::vector<std::vector<ValueId>> copies_after(static_cast<std::size_t>(nn));
  for (std::size_t v = 0; v < nv; ++v)
    if (planar_copy[v]) copies_after[idx(def[v])].push_back(static_cast<ValueId>(v));
  auto add_planar_copies = [&](std::int32_t ni) {
    for (ValueId v : copies_after[idx(ni)]) {
      const Shape& vs = g.value(v).shape;
      const hk::Blocked xb = blocked_shape(vs);
      const Buf from = blocked_buf(v);
      const ViewRef to = ViewRef::dense(buf(v), vs);
      ++copy_steps_;
      add(g.value(v).name + " [to_planar]", "to_planar", ni, [=](const HostFrame& f) {
        hk::Blocked x = xb;
        x.data = from.at(f.arena);
        hk::blocked_to_planar(x, to.at(f.arena));
      });
    }
  };
  // A dense convolution's step, waiting for its packed filters.
  struct GateFold {
    Buf scale, filters;        // the gate; the scaled filters (scratch)
    std::int64_t floats = 0;   // the scratch's size
  };
  struct DenseJob {
    std::size_t step;
    const DenseConvKernel* kernel;
    DenseConv conv;
    std::string label;
    ViewRef x, y;
    std::optional<ViewRef> res;
    hk::Epilogue e;
    std::optional<GateFold> gate;  // a channel gate folded into the filters (step 1a)
  };
  std::vector<DenseJob> dense_jobs;
  std::set<std::string> fallback;
  // A shift of zeros for channel_affine (and a LayerNorm without bias),
  // shared by the steps that need one (at least c values).
  std::shared_ptr<std::vector<float>> zeros;
  auto zero_shift = [&](std::int64_t c) {
    if (!zeros || zeros->size() < static_cast<std::size_t>(c)) {
      zeros = std::make_shared<std::vector<float>>(static_cast<std::size_t>(c), 0.f);
      keep(zeros);
    }
    return static_cast<const float*>(zeros->data());
  };
  segment_steps_.assign(static_cast<std::size_t>(segments) + 1, 0);
  for (std::int32_t ni = 0; ni < nn; ++ni) {
    if (ni > 0) add_planar_copies(ni - 1);
    if (ni == 0 || !same_segment(ni, ni - 1)) segment_steps_[static_cast<std::size_t>(segment[idx(ni)])] = steps_.size();
    if (plan.skipped.count(ni)) continue;
    const Node& n = g.nodes[static_cast<std::size_t>(ni)];
    const std::string& op = n.op_type;
    auto in_shape = [&](std::size_t i) -> const Shape& { return g.value(n.inputs[i]).shape; };
    auto in = [&](std::size_t i) { return buf(n.inputs[i]); };
    const ValueId out_id = n.outputs.empty() ? kNoValue : n.outputs[0];
    const bool f32_out = out_id != kNoValue && is_runtime_f32(out_id);
    const Shape out_shape = out_id != kNoValue ? g.value(out_id).shape : Shape{};
    const Buf out = f32_out ? buf(out_id) : Buf{};
    const bool all_f32_in = all_f32_inputs(n);
    bool done = false;
    bool act_done = false;  // whether the step applies n.activation itself
    const std::string name = n.name;

    if (kernel_conv(n)) {
      const Shape& xs = in_shape(0);
      const Tensor& W = *g.value(n.inputs[1]).constant;
      const float* bias = n.inputs.size() > 2 && n.inputs[2] != kNoValue ? g.value(n.inputs[2]).constant->f32() : nullptr;
      const std::int64_t C = xs[1], M = W.shape()[0], KH = W.shape()[2], KW = W.shape()[3];
      const std::int64_t group = n.attrs.get_int("group", 1);
      const std::int64_t Cg = C / group, Mg = M / group;
      const hk::Window2D win = window_2d(n, xs, out_shape, KH, KW);
      // Blocked channels out (step 2c): the value this step writes is held so.
      const int conv_add = layout.fused_add[idx(ni)];
      const bool blocked_out = blocked[idx(layout.written_by(g, idx(ni)))];
      // A channel gate folded into the filters (step 1a): the step reads the
      // tensor the gate scales.
      const int gate_mul = layout.input_gate[idx(ni)];
      const ValueId x_id = gate_mul >= 0 ? layout_rule.fusion().gated_input(gate_mul) : n.inputs[0];
      const bool blocked_in = blocked_out && blocked[idx(x_id)];
      auto io = [&](ValueId v) { return blocked_out ? blocked_buf(v) : buf(v); };
      ViewRef x = ViewRef::dense(blocked_in ? blocked_buf(x_id) : buf(x_id), xs);
      std::optional<GateFold> gate;
      if (gate_mul >= 0) {
        const Node& mul = g.nodes[idx(gate_mul)];
        gate = GateFold{buf(mul.other_input(x_id)), Buf{blocks.at(filters_key + idx(ni)).offset, nullptr},
                        plan.gated_filters.at(ni)};
      }
      // e.g. "Conv_7 3x3/1 64->64 56x56": what the step computes, for profiles
      // (after the gate's name when one is folded in).
      const std::string name = (gate_mul >= 0 ? g.nodes[idx(gate_mul)].name + "+" : std::string()) + n.name + " " + std::to_string(KH) + "x" + std::to_string(KW) + "/" +
                               std::to_string(win.stride_x) + " " + std::to_string(C) + "->" + std::to_string(M) +
                               (group > 1 ? " g" + std::to_string(group) : std::string()) + " " +
                               std::to_string(out_shape[2]) + "x" + std::to_string(out_shape[3]);
      DenseConv dc{&n, xs, out_shape, C, M, KH, KW, win, W.f32(), bias};
      dc.blocked_in = blocked_in;
      dc.blocked_out = blocked_out;
      if (auto s = plan.scratch.find(ni); s != plan.scratch.end()) {
        // A 1x1 strided convolution (ResNet's downsampling shortcuts) reads
        // one pixel in stride_x * stride_y: gather those densely first (into
        // the step's scratch), then run it as a stride-1 pointwise
        // convolution on them. The direct kernels made a padded copy of the
        // whole input for it.
        dc.xs = {xs[0], C, out_shape[2], out_shape[3]};
        const ViewRef sub = ViewRef::dense(Buf{blocks.at(nv + idx(ni)).offset, nullptr}, dc.xs);
        const int sx = win.stride_x, sy = win.stride_y;
        add(name + " [subsample]", "subsample", ni,
            [=](const HostFrame& f) { hk::subsample(x.at(f.arena), sx, sy, sub.at(f.arena)); });
        x = sub;
        dc.win = hk::Window2D{};
      }
      // One step of a dense convolution: the first kernel of the table that
      // applies. out = act(conv(in) + bias [+ res]).
      // The filters are packed after the loop, all convolutions at once
      // (see below); the step is completed then.
      auto kernel_step = [&](std::span<const DenseConvKernel> table, const std::string& label, const ViewRef& yv,
                             std::optional<ViewRef> res, hk::Epilogue e) {
        DenseConv conv = dc;
        conv.residual = res.has_value();
        for (const DenseConvKernel& k : table) {
          if (!k.applies(conv)) continue;
          dense_jobs.push_back({steps_.size(), &k, conv, label, x, yv, res, e, gate});
          add(label, k.name, ni, nullptr);
          return;
        }
      };
      if (conv_add >= 0) {
        // Write the Add's output, with the residual and the Add's activation.
        const Node& sum = g.nodes[static_cast<std::size_t>(conv_add)];
        const ValueId res_id = sum.other_input(n.outputs[0]);
        const ValueId add_out = sum.outputs[0];
        kernel_step(kDenseConvKernels, name + "+" + sum.name,
                    ViewRef::dense(io(add_out), g.value(add_out).shape),
                    ViewRef::dense(io(res_id), g.value(res_id).shape), epilogue(sum.activation));
        continue;
      }
      const hk::Epilogue e = epilogue(n.activation);
      const ViewRef y = ViewRef::dense(io(out_id), out_shape);
      act_done = true;
      if (group == 1) {
        kernel_step(kDenseConvKernels, name, y, std::nullopt, e);
      } else if (Cg == 1 && Mg == 1) {
        kernel_step(kDepthwiseKernels, name, y, std::nullopt, e);
      } else {
        dc.groups = group;
        kernel_step(kGroupedConvKernels, name, y, std::nullopt, e);
      }
      done = true;
    } else if ((op == "MaxPool" || op == "AveragePool") && f32_out && is_runtime_f32(n.inputs[0]) &&
               in_shape(0).size() == 4 && (n.outputs.size() < 2 || n.outputs[1] == kNoValue)) {
      auto ks = n.attrs.get_ints("kernel_shape");
      const hk::Window2D win = window_2d(n, in_shape(0), out_shape, ks[0], ks[1]);
      const ViewRef x = ViewRef::dense(in(0), in_shape(0));
      const ViewRef y = ViewRef::dense(out, out_shape);
      const hk::Epilogue e = epilogue(n.activation);
      if (op == "MaxPool") {
        add(name, "max_pool2d", ni, [=](const HostFrame& f) { hk::max_pool2d(x.at(f.arena), win, e, y.at(f.arena)); });
      } else {
        const bool cip = n.attrs.get_int("count_include_pad", 0) == 1;
        add(name, "avg_pool2d", ni,
            [=](const HostFrame& f) { hk::avg_pool2d(x.at(f.arena), win, cip, e, y.at(f.arena)); });
      }
      done = act_done = true;
    } else if (op == "GlobalAveragePool" && f32_out && is_runtime_f32(n.inputs[0]) && in_shape(0).size() >= 3) {
      const Shape& xs = in_shape(0);
      const std::int64_t N = xs[0], C = xs[1], P = graph::element_count(xs) / std::max<std::int64_t>(1, N * C);
      const ViewRef y = ViewRef::dense(out, {N, C}, 2);
      if (blocked[idx(n.inputs[0])]) {
        const hk::Blocked xb = blocked_shape(xs);
        const Buf xbuf = blocked_buf(n.inputs[0]);
        add(name, "global_avg_pool_blocked", ni, [=](const HostFrame& f) {
          hk::Blocked x = xb;
          x.data = xbuf.at(f.arena);
          hk::global_avg_pool_blocked(x, y.at(f.arena));
        });
      } else {
        const ViewRef x = ViewRef::dense(in(0), {N, C, P}, 3);
        add(name, "global_avg_pool", ni,
            [=](const HostFrame& f) { hk::global_avg_pool(x.at(f.arena), y.at(f.arena)); });
      }
      done = true;
    } else if ((op == "Gemm" || op == "MatMul") && f32_out && all_f32_in && is_runtime_f32(n.inputs[0]) &&
               g.is_constant(n.inputs[1]) && in_shape(0).size() >= 2 && in_shape(1).size() == 2 &&
               n.attrs.get_int("transA", 0) == 0 &&
               (n.inputs.size() < 3 || n.inputs[2] == kNoValue || g.is_constant(n.inputs[2]))) {
      // A MatMul of [..., K] by a constant [K, M] (a transformer's or
      // ConvNeXt's linear layer on every token) is one GEMM over the rows of
      // all leading dimensions.
      const bool tb = op == "Gemm" && n.attrs.get_int("transB", 0) != 0;
      const Tensor& B = *g.value(n.inputs[1]).constant;
      const std::int64_t K = in_shape(0).back(), N = graph::element_count(in_shape(0)) / std::max<std::int64_t>(1, K),
                         M = tb ? B.shape()[0] : B.shape()[1];
      const Shape as{N, K};
      const float alpha = op == "Gemm" ? n.attrs.get_float("alpha", 1.f) : 1.f;
      const float beta = op == "Gemm" ? n.attrs.get_float("beta", 1.f) : 1.f;
      const Tensor* Cc = n.inputs.size() > 2 && n.inputs[2] != kNoValue ? &*g.value(n.inputs[2]).constant : nullptr;
      const hk::PackedGemm* pg = keep(std::make_shared<hk::PackedGemm>(
          hk::PackedGemm::pack(B.f32(), tb, static_cast<int>(K), static_cast<int>(M), static_cast<int>(N), alpha,
                               Cc ? Cc->f32() : nullptr, Cc ? Cc->shape() : Shape{}, beta)));
      const ViewRef a = ViewRef::dense(in(0), as, 2);
      const ViewRef y = ViewRef::dense(out, {N, M}, 2);
      const hk::Epilogue e = epilogue(n.activation);
      add(name, "gemm", ni, [=](const HostFrame& f) { hk::gemm(a.at(f.arena), *pg, e, y.at(f.arena)); });
      done = act_done = true;
    } else if (const auto steps = op == "MatMul" && f32_out && all_f32_in && is_runtime_f32(n.inputs[0]) &&
                                          is_runtime_f32(n.inputs[1]) && in_shape(0).size() >= 2 &&
                                          in_shape(1).size() >= 2
                                      ? matmul_batch_steps(in_shape(0), in_shape(1), out_shape)
                                      : std::nullopt;
               steps) {
      // Two run-time matrices (attention): one GEMM per batch index, each
      // operand's batch either the output's or broadcast (step 0). A
      // broadcast B makes one GEMM over all of A's rows.
      const Shape &as = in_shape(0), &bs = in_shape(1);
      const std::int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
      const std::int64_t batches = graph::element_count(out_shape) / (M * N);
      const std::int64_t a_step = steps->first * M * K, b_step = steps->second * K * N;
      const bool one_gemm = b_step == 0 && a_step != 0;
      const std::int64_t rows = one_gemm ? batches * M : M, gemms = one_gemm ? 1 : batches;
      const hk::View av = hk::View::dense(nullptr, {rows, K}, 2), bv = hk::View::dense(nullptr, {K, N}, 2),
                     yv = hk::View::dense(nullptr, {rows, N}, 2);
      const Buf ab = in(0), bb = in(1), yb = out;
      const hk::Epilogue e = epilogue(n.activation);
      add(name, "matmul", ni, [=](const HostFrame& f) {
        hk::View a = av, b = bv, y = yv;
        for (std::int64_t i = 0; i < gemms; ++i) {
          a.data = ab.at(f.arena) + i * a_step;
          b.data = bb.at(f.arena) + i * b_step;
          y.data = yb.at(f.arena) + i * rows * N;
          hk::matmul(a, b, e, y);
        }
      });
      done = act_done = true;
    } else if (const int gi = op == "Mul" && f32_out && all_f32_in && n.inputs.size() == 2 ? planner::channel_gate_operand(g, n) : -1;
               gi >= 0) {
      // A channel gate (squeeze-and-excitation): each plane scaled by its
      // (image, channel) factor, the plane as one dense row. (The broadcasting
      // binary kernel runs these planes scalar: 0.3 ms for EfficientNet-B0's
      // 1152 7x7 planes.)
      const Shape& xs = out_shape;
      const std::int64_t N = xs[0], C = xs[1], P = xs[2] * xs[3];
      const bool per_image = in_shape(gi)[0] == N;
      const ViewRef x = ViewRef::dense(in(1 - gi), {N, C, 1, P});
      const ViewRef y = ViewRef::dense(out, {N, C, 1, P});
      const Buf gate = in(gi);
      if (blocked[idx(out_id)]) {  // step 2c: x and the output blocked, no activation
        const hk::Blocked yb = blocked_shape(xs);
        const Buf xbuf = blocked_buf(n.inputs[static_cast<std::size_t>(1 - gi)]), ybuf = blocked_buf(out_id);
        add(name, "channel_scale_blocked", ni, [=](const HostFrame& f) {
          hk::Blocked xv = yb, yv = yb;
          xv.data = xbuf.at(f.arena);
          yv.data = ybuf.at(f.arena);
          hk::channel_scale_blocked(xv, gate.at(f.arena), per_image ? C : 0, yv);
        });
        done = act_done = true;
        continue;
      }
      const float* shift = zero_shift(C);
      const hk::Epilogue e = epilogue(n.activation);
      add(name, "channel_scale", ni, [=](const HostFrame& f) {
        const float* scale = gate.at(f.arena);
        for (std::int64_t i = 0; i < N; ++i) {
          hk::View xv = x.at(f.arena), yv = y.at(f.arena);
          xv.data += i * xv.stride[3];
          yv.data += i * yv.stride[3];
          xv.extent[3] = yv.extent[3] = 1;
          hk::channel_affine(xv, scale + (per_image ? i * C : 0), shift, e, yv);
        }
      });
      done = act_done = true;
    } else if ((op == "Add" || op == "Sub" || op == "Mul" || op == "Div") && f32_out && all_f32_in &&
               out_shape.size() <= 4 && n.inputs.size() == 2) {
      const hk::BinaryOp bop = op == "Add"   ? hk::BinaryOp::Add
                               : op == "Sub" ? hk::BinaryOp::Sub
                               : op == "Mul" ? hk::BinaryOp::Mul
                                             : hk::BinaryOp::Div;
      const ViewRef a{broadcast_view(nullptr, in_shape(0), out_shape), in(0)};
      const ViewRef b{broadcast_view(nullptr, in_shape(1), out_shape), in(1)};
      const ViewRef y = ViewRef::dense(out, out_shape);
      const hk::Epilogue e = epilogue(n.activation);
      add(name, "binary", ni,
          [=](const HostFrame& f) { hk::binary(bop, a.at(f.arena), b.at(f.arena), e, y.at(f.arena)); });
      done = act_done = true;
    } else if (op == "BatchNormalization" && f32_out && all_f32_in && n.inputs.size() >= 5 &&
               is_runtime_f32(n.inputs[0]) && in_shape(0).size() >= 2 && g.is_constant(n.inputs[1]) &&
               g.is_constant(n.inputs[2]) && g.is_constant(n.inputs[3]) && g.is_constant(n.inputs[4]) &&
               (n.outputs.size() < 2 || std::all_of(n.outputs.begin() + 1, n.outputs.end(),
                                                    [](ValueId v) { return v == kNoValue; }))) {
      const Shape& xs = in_shape(0);
      const std::int64_t N = xs[0], C = xs[1], P = graph::element_count(xs) / std::max<std::int64_t>(1, N * C);
      const double eps = n.attrs.get_float("epsilon", 1e-5f);
      auto ss = std::make_shared<std::vector<float>>(static_cast<std::size_t>(2 * C));
      const float *gam = in(1).fixed, *bet = in(2).fixed, *mean = in(3).fixed, *var = in(4).fixed;
      for (std::int64_t c = 0; c < C; ++c) {
        const double s = gam[c] / std::sqrt(static_cast<double>(var[c]) + eps);
        (*ss)[static_cast<std::size_t>(c)] = static_cast<float>(s);
        (*ss)[static_cast<std::size_t>(C + c)] = static_cast<float>(bet[c] - mean[c] * s);
      }
      const float* sp = keep(std::move(ss))->data();
      const ViewRef x = ViewRef::dense(in(0), {N, C, 1, P});
      const ViewRef y = ViewRef::dense(out, {N, C, 1, P});
      const hk::Epilogue e = epilogue(n.activation);
      add(name, "channel_affine", ni,
          [=](const HostFrame& f) { hk::channel_affine(x.at(f.arena), sp, sp + C, e, y.at(f.arena)); });
      done = act_done = true;
    } else if ((op == "Relu" || op == "LeakyRelu" || op == "Sigmoid" || op == "HardSigmoid" || op == "HardSwish" ||
                op == "Clip") &&
               f32_out && is_runtime_f32(n.inputs[0]) && n.activation.kind == graph::Activation::Kind::None) {
      using K = graph::Activation::Kind;
      graph::Activation a;
      bool ok = true;
      if (op == "Relu") {
        a.kind = K::Relu;
      } else if (op == "LeakyRelu") {
        a.kind = K::LeakyRelu;
        a.alpha = n.attrs.get_float("alpha", 0.01f);
      } else if (op == "Sigmoid") {
        a.kind = K::Sigmoid;
      } else if (op == "HardSigmoid") {
        a.kind = K::HardSigmoid;
        a.alpha = n.attrs.get_float("alpha", 0.2f);
        a.beta = n.attrs.get_float("beta", 0.5f);
      } else if (op == "HardSwish") {
        a.kind = K::HardSwish;
      } else {
        a.kind = K::Clip;
        a.alpha = n.attrs.get_float("min", std::numeric_limits<float>::lowest());
        a.beta = n.attrs.get_float("max", std::numeric_limits<float>::max());
        for (std::size_t i = 1; i < n.inputs.size() && i < 3; ++i) {
          if (n.inputs[i] == kNoValue) continue;
          const Tensor* t = g.value(n.inputs[i]).constant ? &*g.value(n.inputs[i]).constant : nullptr;
          if (!t || t->dtype() != DType::f32 || t->numel() != 1) {
            ok = false;
            break;
          }
          (i == 1 ? a.alpha : a.beta) = t->f32()[0];
        }
      }
      if (ok) {
        const std::int64_t count = graph::element_count(out_shape);
        const ViewRef x = ViewRef::dense(in(0), {count});
        const ViewRef y = ViewRef::dense(out, {count});
        const hk::Epilogue e = epilogue(a);
        add(name, "channel_affine", ni,
            [=](const HostFrame& f) { hk::channel_affine(x.at(f.arena), kOne, kZero, e, y.at(f.arena)); });
        done = act_done = true;
      }
    } else if (op == "Softmax" && f32_out && is_runtime_f32(n.inputs[0])) {
      const auto [outer, len, inner] = graph::softmax_layout(n, g.opset, in_shape(0));
      const ViewRef x = ViewRef::dense(in(0), {outer, len, inner}, 3);
      const ViewRef y = ViewRef::dense(out, {outer, len, inner}, 3);
      add(name, "softmax", ni, [=](const HostFrame& f) { hk::softmax(x.at(f.arena), y.at(f.arena)); });
      done = true;
    } else if (op == "Transpose" && f32_out && is_runtime_f32(n.inputs[0])) {
      const StridedCopy c = strided_copy(out_shape, graph::transpose_read(n, in_shape(0)));
      const Buf src = in(0);
      add(name, "strided_copy", ni, [=](const HostFrame& f) { copy_strided(c, src.at(f.arena), out.at(f.arena)); });
      done = true;
    } else if (op == graph::kChannelLayerNorm && f32_out && is_runtime_f32(n.inputs[0]) && g.constant_input(n, 1) &&
               g.constant_input(n, 2)) {
      const Shape& xs = in_shape(0);
      const std::int64_t plane = xs[0] * xs[1] > 0 ? graph::element_count(xs) / (xs[0] * xs[1]) : 0;
      const float *sp = g.constant_input(n, 1)->f32(), *bp = g.constant_input(n, 2)->f32();
      const float eps = n.attrs.get_float("epsilon", 1e-5f);
      const hk::Epilogue e = epilogue(n.activation);
      const Buf src = in(0);
      const std::int64_t images = xs[0], channels = xs[1];
      add(name, "channel_layer_norm", ni, [=](const HostFrame& f) {
        hk::channel_layer_norm(src.at(f.arena), sp, bp, images, channels, plane, eps, e, out.at(f.arena));
      });
      done = act_done = true;
    } else if (op == "LayerNormalization" && f32_out && is_runtime_f32(n.inputs[0]) &&
               (n.outputs.size() == 1 || std::all_of(n.outputs.begin() + 1, n.outputs.end(),
                                                     [](ValueId o) { return o == kNoValue; }))) {
      const graph::NormRows rows = graph::layer_norm_rows(n, in_shape(0));
      const Tensor* scale = g.constant_input(n, 1);
      const Tensor* bias = n.inputs.size() > 2 && n.inputs[2] != kNoValue ? g.constant_input(n, 2) : nullptr;
      const bool bias_ok = n.inputs.size() < 3 || n.inputs[2] == kNoValue || (bias && bias->numel() == rows.len);
      if (scale && scale->numel() == rows.len && bias_ok && rows.len > 0) {
        const Buf src = in(0);
        const float* sp = scale->f32();
        const float* bp = bias ? bias->f32() : zero_shift(rows.len);
        const float eps = n.attrs.get_float("epsilon", 1e-5f);
        add(name, "layer_norm", ni, [=](const HostFrame& f) {
          hk::layer_norm(src.at(f.arena), sp, bp, rows.rows, rows.len, eps, out.at(f.arena));
        });
        done = true;
      }
    } else if (planner::host_resize_kernel(g, n)) {
      const graph::ResizeTaps taps = graph::resize_taps(graph::OpContext{n, g.opset}, graph::input_infos(g, n));
      const Shape& xs = in_shape(0);
      const std::size_t r = xs.size();
      hk::Resize2D rs;
      rs.ih = xs[r - 2], rs.iw = xs[r - 1], rs.oh = out_shape[r - 2], rs.ow = out_shape[r - 1];
      rs.planes = graph::element_count(xs) / std::max<std::int64_t>(1, rs.ih * rs.iw);
      rs.rows = resize_axis(taps.axes[r - 2]);
      rs.cols = resize_axis(taps.axes[r - 1]);
      rs.extrapolation = static_cast<float>(taps.extrapolation);
      const Buf src = in(0);
      if (const int ai = layout.fused_add[idx(ni)]; ai >= 0) {
        // A feature pyramid's upsampled branch: write the Add's output, with
        // its other operand and the Add's activation (planner::HostFusion).
        const Node& sum = g.nodes[static_cast<std::size_t>(ai)];
        const Buf res = buf(sum.other_input(n.outputs[0])), y = buf(sum.outputs[0]);
        const hk::Epilogue e = epilogue(sum.activation);
        add(name + "+" + sum.name, "resize", ni, [=](const HostFrame& f) {
          hk::resize(rs, src.at(f.arena), res.at(f.arena), e, y.at(f.arena));
        });
      } else {
        add(name, "resize", ni, [=](const HostFrame& f) {
          hk::resize(rs, src.at(f.arena), nullptr, hk::Epilogue{}, out.at(f.arena));
        });
      }
      done = true;
    } else if (op == "Split" && is_runtime_f32(n.inputs[0]) && n.activation.kind == graph::Activation::Kind::None &&
               std::all_of(n.outputs.begin(), n.outputs.end(),
                           [&](ValueId o) { return o != kNoValue && is_runtime_f32(o) && offset_[idx(o)] >= 0; })) {
      // Each output a strided copy at its offset along the axis.
      std::vector<Shape> outs;
      for (ValueId o : n.outputs) outs.push_back(g.value(o).shape);
      const auto reads = graph::split_reads(n, in_shape(0), outs);
      std::vector<std::pair<StridedCopy, Buf>> parts;
      for (std::size_t j = 0; j < outs.size(); ++j) parts.push_back({strided_copy(outs[j], reads[j]), buf(n.outputs[j])});
      const Buf src = in(0);
      add(name, "strided_copy", ni, [=](const HostFrame& f) {
        for (const auto& [c, dst] : parts) copy_strided(c, src.at(f.arena), dst.at(f.arena));
      });
      done = true;
    } else if (op == "Slice" && f32_out && is_runtime_f32(n.inputs[0])) {
      const graph::SlicePlan p = graph::slice_plan(graph::OpContext{n, g.opset}, graph::input_infos(g, n));
      const StridedCopy c = strided_copy(out_shape, graph::slice_read(p, in_shape(0)));
      const Buf src = in(0);
      add(name, "strided_copy", ni, [=](const HostFrame& f) { copy_strided(c, src.at(f.arena), out.at(f.arena)); });
      done = true;
    } else if ((op == "ReduceMean" || op == "ReduceSum" || op == "ReduceMax" || op == "ReduceMin") && f32_out &&
               is_runtime_f32(n.inputs[0])) {
      const graph::ReducePlan p = graph::reduce_plan(graph::OpContext{n, g.opset}, graph::input_infos(g, n));
      graph::ContiguousReduction l;
      if (!p.identity && graph::contiguous_reduction(p, in_shape(0), l)) {
        const Fold fold = op == "ReduceMean"  ? Fold::Mean
                          : op == "ReduceSum" ? Fold::Sum
                          : op == "ReduceMax" ? Fold::Max
                                              : Fold::Min;
        const Buf src = in(0);
        add(name, "reduce", ni, [=](const HostFrame& f) { reduce_f32(fold, l, src.at(f.arena), out.at(f.arena)); });
        done = true;
      }
    } else if (op == "Pad" && f32_out && is_runtime_f32(n.inputs[0]) && out_shape.size() <= 4 &&
               (n.inputs.size() < 2 || n.inputs[1] == kNoValue || g.is_constant(n.inputs[1])) &&
               (n.inputs.size() < 3 || n.inputs[2] == kNoValue || g.is_constant(n.inputs[2])) &&
               (n.inputs.size() < 4 || n.inputs[3] == kNoValue)) {
      const Shape& xs = in_shape(0);
      const std::size_t rank = xs.size();
      std::vector<std::int64_t> pads = n.inputs.size() >= 2 && n.inputs[1] != kNoValue
                                           ? g.value(n.inputs[1]).constant->to_ints()
                                           : n.attrs.get_ints("pads");
      const std::string mode_name = n.attrs.get_string("mode", "constant");
      const int mode = mode_name == "reflect" ? 1 : mode_name == "edge" ? 2 : 0;
      float value = n.attrs.get_float("value", 0.f);
      if (n.inputs.size() >= 3 && n.inputs[2] != kNoValue) value = g.value(n.inputs[2]).constant->f32()[0];
      bool ok = pads.size() == 2 * rank && (mode_name == "constant" || mode_name == "reflect" || mode_name == "edge");
      std::array<std::int64_t, 4> begin{0, 0, 0, 0};
      for (std::size_t k = 0; ok && k < rank; ++k) {
        if (pads[k] < 0 || pads[k + rank] < 0) ok = false;  // crops: the reference kernel
        begin[rank - 1 - k] = pads[k];
      }
      if (ok) {
        const ViewRef x = ViewRef::dense(in(0), xs);
        const ViewRef y = ViewRef::dense(out, out_shape);
        add(name, "pad", ni, [=](const HostFrame& f) { hk::pad(x.at(f.arena), begin.data(), mode, value, y.at(f.arena)); });
        done = true;
      }
    } else if (op == "Concat" && f32_out && all_f32_in) {
      std::int64_t axis = n.attrs.get_int("axis", 1);
      if (axis < 0) axis += static_cast<std::int64_t>(out_shape.size());
      std::int64_t outer = 1;
      for (std::int64_t i = 0; i < axis; ++i) outer *= out_shape[static_cast<std::size_t>(i)];
      const std::int64_t out_chunk = graph::element_count(out_shape) / std::max<std::int64_t>(1, outer);
      struct Piece {
        Buf src;
        std::int64_t chunk, offset;
      };
      std::vector<Piece> pieces;
      std::int64_t offset = 0;
      for (auto v : n.inputs) {
        const std::int64_t chunk = graph::element_count(g.value(v).shape) / std::max<std::int64_t>(1, outer);
        if (plan.alias_parent[idx(v)] != out_id) pieces.push_back({buf(v), chunk, offset});
        offset += chunk;
      }
      add(name, "concat", ni, [=](const HostFrame& f) {
        float* y = out.at(f.arena);
        for (const Piece& p : pieces) {
          const float* src = p.src.at(f.arena);
          for (std::int64_t o = 0; o < outer; ++o)
            std::memcpy(y + o * out_chunk + p.offset, src + o * p.chunk, static_cast<std::size_t>(p.chunk) * sizeof(float));
        }
      });
      done = true;
    } else if (is_view_copy(n) && f32_out && is_runtime_f32(n.inputs[0])) {
      const Buf src = in(0);
      const std::size_t bytes = static_cast<std::size_t>(graph::element_count(out_shape)) * sizeof(float);
      add(name, "copy", ni, [=](const HostFrame& f) {
        const float* s = src.at(f.arena);
        float* d = out.at(f.arena);
        if (s != d) std::memmove(d, s, bytes);
      });
      done = true;
    }

    if (done) {
      if (!act_done && n.activation.kind != graph::Activation::Kind::None) {
        const std::int64_t count = graph::element_count(out_shape);
        const ViewRef io = ViewRef::dense(out, {count});
        const hk::Epilogue e = epilogue(n.activation);
        add(name + ":activation", "channel_affine", ni, [=](const HostFrame& f) {
          const hk::View v = io.at(f.arena);
          hk::channel_affine(v, kOne, kZero, e, v);
        });
      }
      continue;
    }

    // Reference fallback: the node's inputs copied into tensors, its results
    // copied back (float ones into the arena, others into the frame's side values).
    fallback.insert(op);
    const Node* np = &n;
    const HostProgram* self = this;
    add(name, "reference", ni, [self, np](const HostFrame& f) {
      const graph::Graph& graph = *self->graph_;
      const Node& node = *np;
      std::vector<Tensor> temps;
      temps.reserve(node.inputs.size());
      std::vector<const Tensor*> args;
      for (auto v : node.inputs) {
        if (v == kNoValue) {
          args.push_back(nullptr);
        } else if (graph.is_constant(v)) {
          args.push_back(&*graph.value(v).constant);
        } else if ((*f.side)[idx(v)]) {
          args.push_back(&*(*f.side)[idx(v)]);
        } else {
          const auto& val = graph.value(v);
          temps.emplace_back(DType::f32, val.shape);
          if (temps.back().numel() > 0)
            std::memcpy(temps.back().f32(), self->value_data(v, f.arena),
                        static_cast<std::size_t>(temps.back().numel()) * sizeof(float));
          args.push_back(&temps.back());
        }
      }
      auto results = graph::evaluate_node(graph::OpContext{node, graph.opset, f.threads}, args);
      for (std::size_t o = 0; o < node.outputs.size() && o < results.size(); ++o) {
        const ValueId v = node.outputs[o];
        if (v == kNoValue) continue;
        float* dst = self->value_data(v, f.arena);
        if (dst && results[o].dtype() == DType::f32) {
          if (results[o].numel() > 0)
            std::memcpy(dst, results[o].f32(), static_cast<std::size_t>(results[o].numel()) * sizeof(float));
        } else {
          (*f.side)[idx(v)] = std::move(results[o]);
        }
      }
    });
  }
  if (nn > 0) add_planar_copies(nn - 1);
  // Packing the filters (Winograd transforms, tile layouts) is most of a
  // load's time on the host: the convolutions are packed in parallel, the
  // largest first (so that no core is left with a large one at the end).
  std::vector<DenseKernel> made(dense_jobs.size());
  {
    std::vector<std::size_t> order(dense_jobs.size());
    for (std::size_t j = 0; j < order.size(); ++j) order[j] = j;
    const auto filter_size = [&](std::size_t j) {
      const DenseConv& c = dense_jobs[j].conv;
      return c.M * c.C * c.KH * c.KW;
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return filter_size(a) > filter_size(b); });
    const int cores = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
    graph::parallel_for(cores, static_cast<std::int64_t>(order.size()), [&](std::int64_t i) {
      const DenseJob& job = dense_jobs[order[static_cast<std::size_t>(i)]];
      made[order[static_cast<std::size_t>(i)]] = job.kernel->make(job.conv);
    });
  }
  for (std::size_t j = 0; j < dense_jobs.size(); ++j) {
    const DenseJob& job = dense_jobs[j];
    DenseKernel& dk = made[j];
    weight_bytes_ += dk.bytes;
    packed_.push_back(std::move(dk.packed));
    Step& step = steps_[job.step];
    step.name = job.label + " [" + dk.kernel + "]";
    step.kernel = dk.kernel;
    if (job.gate && (!dk.filters || static_cast<std::int64_t>(dk.filters->weights.size()) > job.gate->floats))
      throw Error(ErrorKind::Internal, "host program: kernel " + dk.kernel + " of '" + job.label +
                                           "' cannot take a channel gate in its filters");
    step.run = [x = job.x, y = job.y, res = job.res, e = job.e, gate = job.gate, filters = dk.filters,
                body = std::move(dk.body)](const HostFrame& f) {
      float* scaled = nullptr;
      if (gate) {
        scaled = gate->filters.at(f.arena);
        hk::scale_filter_inputs(*filters, gate->scale.at(f.arena), scaled);
      }
      if (!res) return body(x.at(f.arena), nullptr, e, y.at(f.arena), scaled);
      const hk::View r = res->at(f.arena);
      body(x.at(f.arena), &r, e, y.at(f.arena), scaled);
    };
  }
  fallback_ops_.assign(fallback.begin(), fallback.end());
  segment_steps_.back() = steps_.size();
  // Each graph input goes in with the segment that first reads it, each
  // output comes out with the segment that produces it (a fused step runs in
  // the segment of the nodes it fuses).
  segment_inputs_.assign(static_cast<std::size_t>(segments), {});
  segment_outputs_.assign(static_cast<std::size_t>(segments), {});
  for (std::size_t i = 0; i < g.inputs.size(); ++i) {
    int first = 0;  // an input nothing reads (an output, say) goes in with the first
    for (std::int32_t ni = nn - 1; ni >= 0; --ni) {
      const auto& ins = g.nodes[idx(ni)].inputs;
      if (std::find(ins.begin(), ins.end(), g.inputs[i]) != ins.end()) first = segment[idx(ni)];
    }
    segment_inputs_[static_cast<std::size_t>(first)].push_back(i);
  }
  for (std::size_t i = 0; i < g.outputs.size(); ++i) {
    const std::int32_t p = plan.producer[idx(g.outputs[i])];
    segment_outputs_[static_cast<std::size_t>(p >= 0 ? segment[idx(p)] : segments - 1)].push_back(i);
  }
}

}  // namespace vkfuse::runtime
