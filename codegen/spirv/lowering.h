// codegen/spirv/lowering.h — a prepared Graph → the GPU kernels that run it.
//
// Every op of graph/ops runs on the GPU; each kernel is one GLSL compute
// shader specialised for its shapes (strides, pads, window, activation baked
// in as constants; a convolution's map and channel sizes and every kernel's
// invocation count pushed as constants, so that layers of one kind share a
// shader), plus its weights repacked for the shader's layout. Fusions,
// as planner/kernel_fusion.h decides them (the cost model prices the same):
//   Conv [+ bias, folded BN, activation] [+ residual Add + its activation]
//     → one dispatch (the Add is absorbed when it is the Conv's only reader)
//   Concat → each producer writes straight into its channel range of the
//     output (when everything before the axis has size 1), else a copy kernel
//   Reshape / Flatten / Squeeze / Unsqueeze / Identity / Dropout → no kernel:
//     the output aliases the input's storage
// Every activation lives in one float arena; a kernel finds its operands
// through push constants (element offsets into the arena and the weight
// buffer), so kernels of equal shape share one shader; its pushed sizes
// (Kernel::dims) let convolutions of one kind over different maps and
// channel counts share one too: a driver that compiles each pipeline at its
// first dispatch (lavapipe) spent most of a cold load doing so (ResNet-18:
// 18 shaders, 12 s; now 8, 6 s).
//
// Convolutions are register blocked (16 output channels x 8 output columns
// per invocation where the layer allows; DeviceCaps::conv_ocb/conv_opx), on
// a GPU split over input channels where a layer is too small to fill it
// (DeviceCaps::conv_fill_invocations), and, where the device can
// (DeviceCaps::texel_arena, texel_weights), read activations and weights through
// uniform texel buffers: on lavapipe that is 2.5-3x faster than storage-buffer loads.
// With DeviceCaps::fp16 their weights are stored as fp16 (RGBA16F texels).
// Tuning knobs for experiments: VKFUSE_CONV_BLOCK=OCBxOPX (e.g. 8x4),
// VKFUSE_CONV_KSPLIT=N (lanes per output tile, a power of two; 1: no split).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace vkfuse::codegen::spirv {

struct DeviceCaps {
  std::uint32_t workgroup_size = 64;  // invocations per (1-D) workgroup
  std::uint32_t max_groups_x = 65535;
  std::uint32_t subgroup_size = 8;
  bool fp16 = false;  // 16-bit storage for weights (fp32 accumulation)
  // The convolutions' (and pooling's) loads through uniform texel buffers:
  // of activations through binding 2 (the arena as R32F; not where the
  // arena is bound in windows or beyond the texel limit), of weights through
  // bindings 3/4 (a weight block as RGBA32F/RGBA16F), each where it can.
  bool texel_arena = false;
  bool texel_weights = false;
  // One workgroup per row of a reduction (global pooling, Softmax,
  // Layer/InstanceNormalization, Reduce*), its lanes combining partial
  // results in shared memory: what fills a GPU. A CPU device (lavapipe) runs
  // one invocation per row, which spreads rows over its cores instead.
  // Needs a power-of-two workgroup_size.
  bool row_groups = false;
  // Those rows folded with subgroup arithmetic (subgroupAdd, ...), then
  // across subgroups through shared memory: two barriers where the
  // shared-memory tree takes log2(workgroup_size).
  bool subgroup_fold = false;
  // Convolutions as a GPU wants them (set with row_groups on GPU devices):
  // the largest register block (output channels x output columns per
  // invocation; 16x8 on lavapipe; on a GPU 8x4, and 4x4 for kernels of more
  // than 9 taps: measured on an H200, whose driver compiles a 7x7 stem's
  // 16x8 block for a minute, its 8x4 for 2 s, its 4x4 in 0.5 s), and the
  // invocations a layer should launch to fill the device: a layer with
  // fewer output tiles splits its input channels over up to workgroup_size
  // lanes (a power of two) that add their partial sums in shared memory (0:
  // never split; lavapipe fills its cores without).
  std::uint32_t conv_ocb = 16, conv_ocb_wide = 16, conv_opx = 8;
  // 1x1 convolutions' block (0: conv_ocb x conv_opx), tuned apart by
  // calibration: a GEMM over the plane reuses its loads differently.
  std::uint32_t pointwise_ocb = 0, pointwise_opx = 0;
  // 1x1 convolutions (one group) as GEMMs tiled through shared memory
  // (shaders/pointwise_tiled.glsl), where the workgroup is 64 or 256
  // invocations; calibration turns it on where it measures faster.
  bool pointwise_tiled = false;
  std::int64_t conv_fill_invocations = 0;
  std::uint32_t shared_memory_bytes = 16384;  // maxComputeSharedMemorySize
};

// One push-constant word of a kernel.
struct Slot {
  enum class Kind : std::uint8_t {
    Output,   // element offset in the arena of the value the kernel writes
    Input,    // element offset in the arena of a value the kernel reads
    Weights,  // element offset (floats) of the kernel's packed weights in the weight buffer
  };
  Kind kind = Kind::Input;
  graph::ValueId value = graph::kNoValue;  // Output/Input only
};

// Push-constant words of sizes (Kernel::dims) after the operand offsets.
inline constexpr std::size_t kDimWords = 16;

struct Kernel {
  std::string variant;  // what the shader is, e.g. "conv3x3_s1_ob8_px4"
  std::string nodes;    // the graph node(s) it runs, e.g. "conv2+add1"
  std::int32_t node = -1;  // index in the lowered graph of the node it was emitted for (the last it runs)
  std::string source;   // complete GLSL 450
  bool subgroup_fold = false;  // its rows fold with subgroup arithmetic (DeviceCaps::subgroup_fold)
  std::vector<Slot> slots;      // push constants o0, o1, ... in order
  std::vector<std::uint32_t> dims;  // push constants d[0] (TOTAL), d[1], ...: the sizes not baked into `source`
  std::vector<float> weights;   // packed parameters (may be empty)
  bool fp16_weights = false;    // weights are stored as packed halves (2 per float slot)
  std::uint32_t groups_x = 1, groups_y = 1;
  std::int64_t invocations = 0;
  std::int64_t flops = 0;
};

struct Program {
  std::vector<Kernel> kernels;  // in execution order
  // Storage of each graph value (indexed by ValueId): the value whose arena
  // allocation holds it, and the element offset inside that allocation.
  // root[v] == v for a value with its own allocation.
  std::vector<graph::ValueId> root;
  std::vector<std::int64_t> root_offset;
  // Constants that kernels read as activations (Add's constant operand, ...):
  // they get arena space and are uploaded once.
  std::vector<graph::ValueId> arena_constants;
  std::int64_t fused_adds = 0;     // Adds run as a Conv's or a Resize's epilogue
  std::int64_t aliased_concat_inputs = 0;
  std::int64_t alias_nodes = 0;    // reshape-like nodes that cost nothing
};

// Why the GPU backend cannot run node `n` of `g` (non-float runtime tensors,
// a Conv with non-constant weights, an op without a kernel, a runtime tensor
// larger than `max_tensor_bytes` where that is not 0, ...); "" when it can.
// The planner keeps such ops on the host; lower_graph throws for them.
std::string unsupported_reason(const graph::Graph& g, const graph::Node& n, std::uint64_t max_tensor_bytes = 0);

// Throws Error(Unsupported) naming the node for what the GPU cannot run
// (non-float runtime tensors, a Conv with non-constant weights, ...).
// `unit`, when given, has one entry per node: ops fuse into one kernel only
// within one unit (one submission of a plan), so every kernel belongs to
// exactly one unit.
Program lower_graph(const graph::Graph& g, const DeviceCaps& caps, std::span<const int> unit = {});

}  // namespace vkfuse::codegen::spirv
