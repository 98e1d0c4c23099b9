// codegen/halide/host_kernels.h — the host kernels, behind plain C++.
//
// Each function runs one ahead-of-time compiled Halide pipeline (see
// generators.cpp) over caller-owned memory; no Halide type appears here.
// Tensors are passed as Views: rank <= 4, extents and strides innermost
// first (Halide's order), so NCHW is (w, h, c, n). Strides are in elements
// and may be 0 to broadcast. Weights are repacked once (Packed* classes) into
// the layout the kernels want.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vkfuse::codegen::halide {

// Memory for large arrays the kernels stream (packed filters, the activation
// arena): blocks of kLargePageMin bytes and more are 2 MiB-aligned and
// advised as transparent huge pages. A layer streams megabytes of filters
// that are cold in every inference; with 4 KiB pages it took a TLB miss and
// a restart of the hardware prefetcher every 4 KiB (ResNet-18's 7x7 512->512
// conv with cold filters: ~8% slower). Smaller blocks are 64-byte aligned.
inline constexpr std::size_t kLargePageMin = std::size_t{1} << 20;
void* allocate_large(std::size_t bytes);  // never null: throws on failure
void free_large(void* p) noexcept;
template <class T>
struct LargePageAllocator {
  using value_type = T;
  LargePageAllocator() = default;
  template <class U>
  LargePageAllocator(const LargePageAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(allocate_large(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { free_large(p); }
  friend bool operator==(const LargePageAllocator&, const LargePageAllocator&) { return true; }
};
using LargeFloats = std::vector<float, LargePageAllocator<float>>;

struct View {
  float* data = nullptr;
  int rank = 0;
  std::int64_t extent[4] = {1, 1, 1, 1};
  std::int64_t stride[4] = {0, 0, 0, 0};

  // A dense row-major tensor of `shape` (outermost first, as the graph writes
  // shapes), padded on the outside with unit axes to `rank` (>= shape.size()).
  static View dense(float* data, const std::vector<std::int64_t>& shape, int rank = 4);
};

// The fused epilogue: graph::Activation's kind (as an int), alpha, beta.
struct Epilogue {
  int act = 0;
  float alpha = 0.f, beta = 0.f;
};

struct Window2D {
  int kernel_x = 1, kernel_y = 1;
  int stride_x = 1, stride_y = 1;
  int pad_x = 0, pad_y = 0, pad_x_end = 0, pad_y_end = 0;
  int dil_x = 1, dil_y = 1;
};

// The channel tile of the dense convolution: packed filters are padded to a
// multiple of it.
inline constexpr int kConvTileM = 8;

// Convolution filters repacked into blocks of tile_m output channels,
// (mi, c, kx, ky, mo) innermost first, m padded to a multiple of tile_m.
// A block holds the filters of `c` input channels: all of them for a dense
// convolution; for a grouped one the channels of the groups its output
// channels belong to, from block_channel(mo) on, with zeros where an output
// channel's group does not read the channel. One call runs all the groups,
// at up to tile_m / (m / groups) times the arithmetic where a group has
// fewer output channels than a block.
struct PackedConv {
  int m = 0, c = 0, kh = 0, kw = 0, m_padded = 0;
  LargeFloats weights;
  std::vector<float> bias;
  int tile_m = kConvTileM;
  int in_channels = 0;               // the convolution's input channels (c for a dense one)
  int group_out = 1, group_in = 0;  // channels per group, out and in; group_in 0: dense
  // w: [m, in_channels / groups, kh, kw] row-major (ONNX); bias: m values or
  // nullptr. tile_m: kConvTileM for conv2d, kConvChannelVectorTileM for
  // conv2d_channel_vector and conv2d_channel_chunks (dense only).
  static PackedConv pack(const float* w, const float* bias, int m, int in_channels, int kh, int kw,
                         int tile_m = kConvTileM, int groups = 1);
  // The first input channel of block mo (the kernels' block_channels).
  int block_channel(int mo) const;
  // The input channels each block of tile_m output channels holds filters
  // for (the packed `c`).
  static int block_input_channels(int m, int in_channels, int groups, int tile_m);
};
// w's filters with every tap of input channel ci scaled by scale[ci], in w's
// layout (w.weights.size() floats at `out`): a channel gate on the
// convolution's input folded into its filters (planner::HostFusion). The
// convolutions below take them as `filters`, in place of w.weights.
void scale_filter_inputs(const PackedConv& w, const float* scale, float* out);

// conv_channel_vector: vectorized over output channels, tiles of
// kConvChannelVectorTileP consecutive output pixels (spanning rows); for small
// maps. Filters packed with tile_m = kConvChannelVectorTileM, or (grouped
// convolutions without a residual) kConvNarrowVectorTileM: one vector of 16
// channels over tiles of kConvNarrowVectorTileP pixels; the output plane
// must be dense and hold at least kConvChannelVectorTileP pixels.
inline constexpr int kConvChannelVectorTileM = 32;
inline constexpr int kConvChannelVectorTileP = 8;
inline constexpr int kConvNarrowVectorTileM = 16;
inline constexpr int kConvNarrowVectorTileP = 7;
// The fraction of the work that is useful when n items are computed in whole
// tiles of `tile` (the last one shifted inwards or rounded up).
inline double tile_used(std::int64_t n, std::int64_t tile) {
  return static_cast<double>(n) / static_cast<double>((n + tile - 1) / tile * tile);
}
// Pixels per tile for a plane of p pixels: 8, or 7 where 8-pixel tiles would
// waste over a tenth of the work (7x7 maps: 49 pixels are 7 tiles of 7, and
// 8-pixel tiles compute 56).
inline int channel_vector_tile(std::int64_t p) {
  return tile_used(p, 8) < 0.9 && tile_used(p, 7) > tile_used(p, 8) ? 7 : 8;
}
// The fraction of the computed pixels that are output pixels.
inline double channel_vector_used(std::int64_t p) { return tile_used(p, channel_vector_tile(p)); }
void conv2d_channel_vector(const View& in, const PackedConv& w, const Window2D& g, const View* residual, Epilogue e,
                           const View& out, const float* filters = nullptr);
// conv_channel_chunks: conv_channel_vector's algorithm and filters, with a
// task per block of 32 output channels over a run of 7-pixel tiles and the
// reduction in chunks of kConvChunkC input channels, each over every tile of
// the run before the next, so that the filters stream from memory once at
// the rate the arithmetic uses them (generators.cpp, Conv2DChannelChunks).
// The input channels must be a multiple of kConvChunkC and the plane hold at
// least kConvChunkTileP pixels; planes of a multiple of 7 pixels waste
// nothing (the last tile is rounded up).
inline constexpr int kConvChunkC = 16;
inline constexpr int kConvChunkTileP = 7;
void conv2d_channel_chunks(const View& in, const PackedConv& w, const Window2D& g, const View* residual, Epilogue e,
                           const View& out, const float* filters = nullptr);

// out = act(conv(in, w) + bias [+ residual]); in and out are (w, h, c, n).
void conv2d(const View& in, const PackedConv& w, const Window2D& g, const View* residual, Epilogue e,
            const View& out, const float* filters = nullptr);

// pointwise_tiled: a 1x1, stride-1, unpadded convolution as a GEMM over the
// flattened image plane (filters packed with tile_m = kPointwiseTileM), in
// tiles of tile_p pixels: kPointwiseTileP, or kPointwiseSmallTileP, which
// wastes less of the last tile on 7x7 and 8x8 planes. The plane (w * h) must
// hold at least tile_p pixels and be dense.
inline constexpr int kPointwiseTileM = 8;
inline constexpr int kPointwiseTileP = 48;
inline constexpr int kPointwiseSmallTileP = 32;
void pointwise_conv2d(const View& in, const PackedConv& w, const View* residual, Epilogue e, const View& out,
                      int tile_p = kPointwiseTileP, const float* filters = nullptr);

// Winograd F(4x4, 3x3) filters of a dense 3x3 stride-1 convolution:
// U = G g G^T (computed in double), as (mi, c, p, mo) with p = i + 6 j and
// blocks of kWinogradTileM output channels, m padded to a multiple of it.
inline constexpr int kWinogradTileM = 32;
struct PackedWinograd {
  int m = 0, c = 0, m_padded = 0;
  LargeFloats weights;
  std::vector<float> bias;
  static PackedWinograd pack(const float* w, const float* bias, int m, int c);
};

// The two schedules of the Winograd kernel: one task per row of output tiles
// (maps of 24x24 and more), or the input transformed once per layer and one
// task per block of output channels (maps below 32x32 with many channels;
// the host's winograd_schedule() picks).
enum class WinogradSchedule { TileRows, Staged };

// The same contract as conv2d for a 3x3, stride-1, undilated window (g's pads).
void winograd_conv2d(const View& in, const PackedWinograd& w, const Window2D& g, const View* residual, Epilogue e,
                     const View& out, WinogradSchedule schedule = WinogradSchedule::TileRows);

// out(x, y, c, n) = in(x * stride_x, y * stride_y, c, n): the pixels a 1x1
// strided convolution reads, packed densely for the pointwise kernels. In
// parallel over (c, n) planes on the kernels' thread pool.
void subsample(const View& in, int stride_x, int stride_y, const View& out);

// Depthwise: w [c, kh, kw] row-major, bias c values (never null).
void depthwise_conv2d(const View& in, const float* w, const float* bias, int kh, int kw, const Window2D& g,
                      Epilogue e, const View& out);

// depthwise_flat: stride 1, the output plane the input's size, planes of at
// least 16 pixels, dense input and output planes; w and bias as above.
inline constexpr int kDepthwiseFlatMinPixels = 16;
void depthwise_conv2d_flat(const View& in, const float* w, const float* bias, int kh, int kw, const Window2D& g,
                           Epilogue e, const View& out);

// depthwise_channel_vector: vectorized over blocks of kDepthwiseChannelBlock
// channels, tiles of kDepthwiseChannelVectorTileP consecutive output pixels;
// for small maps. The output plane must be dense and hold at least a tile.
inline constexpr int kDepthwiseChannelBlock = 16;
inline constexpr int kDepthwiseChannelVectorTileP = 8;
// Depthwise filters as (ci, kx, ky, cb), blocks of kDepthwiseChannelBlock
// channels, zero beyond c; bias padded likewise.
struct PackedDepthwise {
  int c = 0, kh = 0, kw = 0, c_padded = 0;
  std::vector<float> weights, bias;
  // w: [c, kh, kw] row-major (ONNX, one input channel per group); bias: c values or nullptr.
  static PackedDepthwise pack(const float* w, const float* bias, int c, int kh, int kw);
};
void depthwise_conv2d_channel_vector(const View& in, const PackedDepthwise& w, const Window2D& g, Epilogue e,
                                     const View& out);

// Blocked channels (NCHW16c): between mobile layers (depthwise and pointwise
// convolutions, their residual Adds, the global pool after them) the host
// holds [N, C, H, W] as (ci, x, y, cb, n) innermost first, channel
// c = kChannelBlock * cb + ci, in ceil(C / kChannelBlock) blocks. The lanes
// past C are written with whatever falls out and never read as channels
// (only the pointwise kernel mixes channels, and it reads c < C); see
// runtime/host_program.cpp (step 2c) for which values are held so.
inline constexpr int kChannelBlock = kDepthwiseChannelBlock;
// Pixels per register tile of the blocked kernels: the pointwise kernel's
// tile of the flattened plane, the depthwise kernel's along a row. 7 divides
// every map size of the mobile networks (112 ... 7), and tiles of 14 spill.
inline constexpr int kBlockedTile = 7;
struct Blocked {
  float* data = nullptr;
  std::int64_t n = 1, c = 0, h = 0, w = 0;
  std::int64_t blocks() const { return (c + kChannelBlock - 1) / kChannelBlock; }
  std::int64_t floats() const { return n * blocks() * kChannelBlock * h * w; }
};
// pointwise_blocked: a 1x1, stride-1, unpadded convolution writing blocked
// channels, from blocked channels (with an optional blocked residual) or from
// a dense planar (w, h, c, n) view. Filters packed with tile_m =
// kConvChannelVectorTileM; the plane holds at least kBlockedTile pixels.
void pointwise_conv2d_blocked(const Blocked& in, const PackedConv& w, const Blocked* residual, Epilogue e,
                              const Blocked& out, const float* filters = nullptr);
void pointwise_conv2d_blocked(const View& in, const PackedConv& w, Epilogue e, const Blocked& out,
                              const float* filters = nullptr);
// depthwise_blocked: any window, stride, padding and dilation; rows of the
// output at least kBlockedTile wide.
void depthwise_conv2d_blocked(const Blocked& in, const PackedDepthwise& w, const Window2D& g, Epilogue e,
                              const Blocked& out);
// out (c, n) = the mean of each channel's plane.
void global_avg_pool_blocked(const Blocked& in, const View& out);
// out (w, h, c, n), dense planes: the same tensor in planar channels.
void blocked_to_planar(const Blocked& in, const View& out);
// out = in * scale[n * image_stride + c] (a squeeze-and-excitation gate).
void channel_scale_blocked(const Blocked& in, const float* scale, std::int64_t image_stride, const Blocked& out);

void max_pool2d(const View& in, const Window2D& g, Epilogue e, const View& out);
void avg_pool2d(const View& in, const Window2D& g, bool count_include_pad, Epilogue e, const View& out);
// in (p, c, n) → out (c, n): the mean over p.
void global_avg_pool(const View& in, const View& out);

// out[N, M] = act(a[N, K] * B + bias), B and bias packed once.
struct PackedGemm {
  int k = 0, m = 0, n = 0, m_padded = 0;
  LargeFloats b;            // [m_padded / 32][k][32] panels of 32 columns, alpha folded in
  std::vector<float> bias;  // [bias_rows, m_padded], beta * C broadcast, or zeros
  int bias_rows = 1;        // n where C varies by row, else 1 (one row read for every row)
  // b: [k, m] row-major, or [m, k] with trans_b. c: nullptr, or a tensor of
  // c_shape broadcastable to [n, m].
  static PackedGemm pack(const float* b, bool trans_b, int k, int m, int n, float alpha, const float* c,
                         const std::vector<std::int64_t>& c_shape, float beta);
};
// a: (k, n) view; out: (m, n) view. From kGemmTallRows rows on, tasks of 12
// rows x 32 columns (linear layers over tokens), else of 4 rows.
inline constexpr std::int64_t kGemmTallRows = 24;
void gemm(const View& a, const PackedGemm& b, Epilogue e, const View& out);

// out = act(a * b) for two run-time matrices (attention's Q·K^T and
// weights·V): b is packed into the GEMM's panels on the calling thread, then
// multiplied by the GEMM kernel. a: (k, n) view; b: (m, k) view; out: (m, n).
void matmul(const View& a, const View& b, Epilogue e, const View& out);

enum class BinaryOp { Add = 0, Sub = 1, Mul = 2, Div = 3 };
// Rank-4 views of equal extents (broadcast operands carry zero strides).
void binary(BinaryOp op, const View& a, const View& b, Epilogue e, const View& out);

// out = act(in * scale[c] + shift[c]); in and out are (w, h, c, n).
void channel_affine(const View& in, const float* scale, const float* shift, Epilogue e, const View& out);

// Resize of the last two axes of dense planes, separably: out[p][oy][ox] =
// sum over the row taps of oy (iy, wy) of wy * sum over the column taps of ox
// (ix, wx) of wx * in[p][iy][ix] (graph::resize_taps' taps; a position
// without taps takes `extrapolation`), plus residual[p][oy][ox] where one is
// given (a fused Add), then the epilogue. Plain C++ on the kernels' pool.
struct ResizeAxis {
  std::vector<std::int64_t> start;  // output position i's taps are [start[i], start[i + 1])
  std::vector<std::int64_t> index;
  std::vector<float> weight;
  bool nearest = false;             // each position one tap of weight 1
};
struct Resize2D {
  std::int64_t planes = 1, ih = 1, iw = 1, oh = 1, ow = 1;
  ResizeAxis rows, cols;
  float extrapolation = 0.f;
};
void resize(const Resize2D& r, const float* in, const float* residual, Epilogue e, float* out);

// Batched 2-D transpose of dense matrices: out[b][i][j] = in[b][j][i], i <
// rows, j < cols (NCHW <-> NHWC: ConvNeXt's channels-last LayerNorms). In
// tiles, on the kernels' pool.
void transpose(std::int64_t batch, std::int64_t rows, std::int64_t cols, const float* in, float* out);

// Softmax along the middle axis of (inner, axis, outer) views.
void softmax(const View& in, const View& out);

// LayerNormalization of `rows` dense rows of `len` floats; scale and bias
// hold `len` floats each.
void layer_norm(const float* in, const float* scale, const float* bias, std::int64_t rows, std::int64_t len,
                float eps, float* out);

// LayerNorm over the channels at every pixel of dense [images, channels,
// plane] (graph's ChannelLayerNorm): y = (x - mean) / sqrt(var + eps) *
// scale[c] + bias[c], then the epilogue. Plain C++ (blocks of pixels as
// vectors) on the kernels' pool.
void channel_layer_norm(const float* in, const float* scale, const float* bias, std::int64_t images,
                        std::int64_t channels, std::int64_t plane, float eps, Epilogue e, float* out);

// Pad of rank-4 views: out[i] = in[i - begin] extended by mode (0 constant
// `value`, 1 reflect, 2 edge); begin innermost first like the views.
void pad(const View& in, const std::int64_t begin[4], int mode, float value, const View& out);

// Threads for the parallel loops of the kernels the calling thread runs from
// now on (vkfuse's pool is shared by every model; its loops run one at a time).
void set_num_threads(int threads);

// While one lives, the calling thread's floating point flushes denormal
// results and operands to zero (x86 MXCSR FTZ and DAZ; AArch64 FPCR FZ);
// the caller's own mode is restored after. The host kernels run under it, as
// vkfuse's pool threads always do: an operand below 1.2e-38 (a sigmoid's tail
// through SiLU, say) otherwise costs a microcode assist per multiply: one
// EfficientNet-B0 1x1 convolution took 1.2 ms instead of 0.02. Results
// differ only where a value is below 1.2e-38. No-op on other architectures.
class DenormalsAreZero {
 public:
  DenormalsAreZero();
  ~DenormalsAreZero();
  DenormalsAreZero(const DenormalsAreZero&) = delete;
  DenormalsAreZero& operator=(const DenormalsAreZero&) = delete;

 private:
  std::uint64_t saved_ = 0;
};

// The instruction set the kernels run with in this process, e.g.
// "x86-64-avx512 (multi-target: avx512, avx2, sse41)": in a multi-target
// build (VKFUSE_HALIDE_MULTITARGET) Halide picks, per call, the first target
// whose features the CPU has. The environment variable VKFUSE_HOST_TARGET
// (avx512, avx2 or sse41; read once, at start-up) caps that choice, to test
// the fallbacks on a machine that has more; it cannot raise it.
std::string target_description();
// The feature level in use ("avx512", "avx2", "sse41"), or "" in a
// single-target build, where nothing is chosen at run time.
std::string selected_target_level();
// Whether the kernels in use keep AVX-512's register tiles (generators.cpp,
// wide_registers): an AVX-512 level chosen, or a single-target build for a
// machine with AVX-512. Some tile shapes the host plans around depend on it.
bool wide_register_kernels();

}  // namespace vkfuse::codegen::halide
