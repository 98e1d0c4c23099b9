// planner/kernel_fusion.h — which accelerator ops share a kernel and which
// need none: the one rule that the Vulkan lowering (codegen/spirv) executes
// and the cost model prices, so that the kernels a plan predicts are the
// kernels that run.
//   - A Conv or a Resize (Upsample) whose output only one Add reads (the
//     Add's other operand a float32 tensor of that output's shape) runs that
//     Add as its epilogue when both are in the same unit (a residual; a
//     feature pyramid's upsampled branch); of two such producers, the first.
//   - A Mul of a tensor x and a channel gate g (x's rank, g's dimension 0
//     and 1 equal x's, every other 1: a squeeze-and-excitation block's
//     excitation) without an activation, whose output only a Conv reads (as
//     its input, not a graph output), runs in that Conv as a prologue (it
//     scales each input channel as the Conv loads it) when both are in the
//     same unit: the gated tensor is never written.
//   - A view op (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout)
//     without an activation, between non-constant tensors, aliases its
//     input: no kernel.
//   - A Concat whose dimensions before the axis are all 1 (no activation)
//     has an input written in place by its producer when the producer is a
//     non-view accelerator op whose results are in the same device memory
//     (any unit; the same unit when units are isolated), the input occurs
//     once, and no earlier such Concat takes it; every other input is one
//     copy kernel.
// Activations were already folded into their producers (graph/canonicalize).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "graph/ir.h"

namespace vkfuse::planner {

class KernelFusion {
 public:
  explicit KernelFusion(const graph::Graph& g);

  // `unit` has one entry per node: the unit it runs in, -1 on the host.
  // shared_memory: units share one device memory (every plan but `naive`'s).
  // The Conv or Resize whose kernel runs Add node `add` as its epilogue, or -1.
  int epilogue_of(int add, std::span<const int> unit) const;
  // The Conv that runs Mul node `mul` as its prologue (a channel gate), or -1.
  int gated_conv(int mul, std::span<const int> unit) const;
  // Of a Mul that gated_conv can place: the gated tensor (the other operand
  // is the gate). kNoValue for any other node.
  graph::ValueId gated_input(int mul) const { return gated_x_[static_cast<std::size_t>(mul)]; }
  // Whether `concat`'s input `v` is written in place by its producer.
  bool in_place(int concat, graph::ValueId v, std::span<const int> unit, bool shared_memory) const;
  // A view op that aliases its input.
  bool is_alias(int node) const { return alias_[static_cast<std::size_t>(node)] != 0; }
  // Dispatches node i needs: 0 for an alias, an Add or a Mul run in another
  // op's kernel, a node folded to constants, or a Concat written wholly in
  // place; a Concat's copy kernels; a Split's outputs; a split Conv's or
  // Gemm's ranges (weight_split); otherwise 1.
  int kernels(int i, std::span<const int> unit, bool shared_memory) const;
  // Of Concat i: the fraction of its output that copy kernels write.
  double copied_fraction(int i, std::span<const int> unit, bool shared_memory) const;

 private:
  const graph::Graph* g_;
  std::vector<std::int32_t> producer_;
  std::vector<char> alias_, folded_, view_type_;
  std::vector<std::vector<int>> add_producers_;  // per Add: Convs/Resizes whose epilogue it can be, ascending
  std::vector<int> mul_conv_;                   // per node: a gating Mul's Conv (-1: none)
  std::vector<graph::ValueId> gated_x_;         // per node: a gating Mul's gated tensor
  std::vector<int> weight_ranges_;              // per node: kernels of a Conv/Gemm (weight_split), else 1
  std::vector<char> concat_in_place_;           // per node: a Concat that writes inputs in place
  std::vector<std::vector<int>> value_concats_;  // per value: such Concats reading it once, ascending
};

// A kernel's packed weights live in one storage buffer, of which every
// Vulkan device addresses 128 MiB (maxStorageBufferRange's minimum). A Conv
// of one group, or a Gemm with a constant B, that has more is split into
// kernels over ranges of its output channels (Conv) or columns (Gemm), each
// within the bound (a VGG's fully connected layers). weight_split gives the
// size of one range: the whole count when one kernel holds them all (or
// there are no packed weights), 0 when not even the smallest range fits or
// the op cannot be split (a grouped Conv), which keeps the op on the host.
constexpr std::int64_t kKernelWeightBytes = std::int64_t{1} << 27;
std::int64_t weight_split(const graph::Graph& g, const graph::Node& n);
// Conv output channels of one range are a multiple of this, so that every
// register block (4, 8, 12 or 16 channels) tiles a range exactly.
constexpr std::int64_t kConvSplitQuantum = 48;

// A 2-D Conv that the host's convolution kernels take (runtime/host_program):
// a float32 activation of rank 4 with constant float32 weights (and bias).
bool host_conv_kernel(const graph::Graph& g, const graph::Node& n);

// A Resize (Upsample) that the host's resize kernel takes: float32 in and
// out, of rank 2 or more, resizing only the last two axes.
bool host_resize_kernel(const graph::Graph& g, const graph::Node& n);

// Of a Mul that scales x's channels by a gate (x * g with g [N or 1, C, 1, 1],
// x of rank 4 and more than one pixel per plane: a squeeze-and-excitation
// block's excitation), the operand that is the gate (0 or 1); else -1.
int channel_gate_operand(const graph::Graph& g, const graph::Node& n);

// The host's rules, which runtime/host_program lowers and the plan lists
// (PlanNode::kernel_of):
//   - A host_conv_kernel Conv of one group, or a host_resize_kernel Resize (a
//     feature pyramid's upsampled branch), without an activation, whose
//     output only one Add reads, runs that Add as its epilogue when both are
//     in the same host segment (see host_segments) and the Add's other
//     operand is a float32 tensor of the same shape that exists when the
//     producer runs (an input, or made by a host op in an earlier segment or
//     earlier in the producer's: a segment's ops run in node order); of an
//     Add's two operands, the first that qualifies.
//   - A channel gate x * g (channel_gate_operand, float32, no activation; one
//     gate for every image: the batch or the gate's is 1) whose output only a
//     1x1 host_conv_kernel Conv of one group reads, as its input, runs in
//     that Conv's step when both are in the same host segment and x has at
//     least kGateFoldPixelsPerFilter pixels per plane for each of the Conv's
//     output channels: the step scales the Conv's packed filters by the gate
//     (M x C products, where the Mul is C x H x W) and the gated tensor is
//     never written. The GPU scales the input channels as it loads them
//     instead (KernelFusion::gated_conv).
// Scaling a filter costs about what scaling 4 pixels of x does (x is in
// cache after the squeeze read it): MobileNetV3's and EfficientNet-B0's
// gates before 14x14 projections with 80 to 112 output channels ran 0 to 8
// us slower folded, those on 28x28 and larger maps 4 to 45 us faster.
constexpr std::int64_t kGateFoldPixelsPerFilter = 4;
class HostFusion {
 public:
  explicit HostFusion(const graph::Graph& g);
  // `segment` has one entry per node: its host segment, -1 off the host. The
  // Conv or Resize whose kernel runs Add node `add`, or -1.
  int epilogue_of(int add, std::span<const int> segment) const;
  // The Conv whose filters take Mul node `mul`'s gate, or -1.
  int gated_conv(int mul, std::span<const int> segment) const;
  // Of a Mul that gated_conv can place: the gated tensor x. kNoValue for any
  // other node.
  graph::ValueId gated_input(int mul) const { return gated_x_[static_cast<std::size_t>(mul)]; }

 private:
  std::vector<std::array<int, 2>> convs_;      // per Add: the producer of each operand that qualifies, else -1
  std::vector<std::array<int, 2>> residuals_;  // per Add and operand: the other operand's producer (-1: none)
  std::vector<int> gate_conv_;                 // per Mul: the Conv its gate can fold into, else -1
  std::vector<graph::ValueId> gated_x_;        // per such Mul: its gated tensor
};

}  // namespace vkfuse::planner
