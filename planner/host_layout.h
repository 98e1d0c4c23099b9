// planner/host_layout.h — how the host lowering holds its activations: the
// one rule that runtime/host_program lowers and the cost model prices, so
// that the host kernels a plan predicts (and their layouts' copies) are the
// ones that run.
//   - Concat in place: a Concat whose dimensions before the axis are all 1
//     takes an input straight from its producer's step (no copy) when the
//     producer is a host op, the input is read once, by this Concat only,
//     not a graph output, not made by a Conv whose residual Add runs in it
//     (HostFusion), and no earlier Concat took it.
//   - Blocked channels (NCHW16c): a value passes from one mobile layer to
//     the next in blocks of 16 channels when a layer that can write them
//     produces it — a pointwise convolution (1x1, stride 1, unpadded, a map
//     of at least kHostBlockedTile pixels) from a blocked or planar input; a
//     depthwise one (output rows of at least kHostBlockedTile) or a
//     squeeze-and-excitation gate (x * gate[n, c], no activation) from a
//     blocked input — and a layer that reads them reads it (such a layer,
//     the residual Add fused into a blocked pointwise one, a gate folded
//     into a blocked pointwise one's filters, which reads the gated tensor,
//     a GlobalAveragePool), or its producer reads blocked channels itself
//     (the end of a chain). Any other reader (a Concat, a view, the caller, an
//     accelerator op) gets a planar copy made right after the producer
//     (to_planar). A Concat input written in place is never blocked (a copy
//     where planar costs nothing). Pruned to a fixed point, since dropping
//     one layer can strand its neighbours. VKFUSE_HOST_BLOCKED=0 turns
//     blocked channels off (to measure them against the planar kernels).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "graph/ir.h"
#include "planner/kernel_fusion.h"

namespace vkfuse::planner {

// The narrowest output a blocked kernel takes: its register tile, in pixels
// (codegen/halide/host_kernels.h kBlockedTile; host_program checks they agree).
inline constexpr std::int64_t kHostBlockedTile = 7;

struct HostLayout {
  // Per value: the Concat output it is written into (kNoValue: none), and at
  // which element of it.
  std::vector<graph::ValueId> concat_parent;
  std::vector<std::int64_t> concat_offset;
  // Per value: held in blocked channels; and, of those, copied to planar
  // right after its producer for planar readers.
  std::vector<char> blocked, planar_copy;
  // Per node: its step runs a blocked-channel kernel (a pointwise or
  // depthwise convolution writing blocked channels, a gate, a global pool
  // reading them).
  std::vector<char> blocked_kernel;
  // Per node: of a Conv, the Add its kernel runs as the residual epilogue;
  // of that Add, the Conv (HostFusion); else -1.
  std::vector<int> fused_add, epilogue_of;
  // Per node: of a 1x1 Conv, the channel gate (a Mul) its step folds into
  // its filters; of that Mul, the Conv (HostFusion::gated_conv); else -1.
  std::vector<int> input_gate, gated_conv;

  // The value node `node`'s step writes: its output, or for a Conv with a
  // fused residual Add, the Add's.
  graph::ValueId written_by(const graph::Graph& g, std::size_t node) const {
    const int a = fused_add[node];
    return g.nodes[a >= 0 ? static_cast<std::size_t>(a) : node].outputs[0];
  }
};

class HostLayoutRule {
 public:
  explicit HostLayoutRule(const graph::Graph& g);
  // `segment`: per node its host segment, -1 off the host (planner::
  // host_segments); the values that cross to or from the host are the host
  // part's inputs and outputs. Fills `out`, reusing its storage (search
  // loops decide once per candidate plan).
  void decide(std::span<const int> segment, HostLayout& out) const;
  const HostFusion& fusion() const { return fusion_; }

 private:
  enum : char { kNone = 0, kPointwise = 1, kDepthwise = 2, kGate = 3 };
  const graph::Graph* g_;
  HostFusion fusion_;
  bool enabled_;
  std::vector<std::int32_t> producer_, uses_;
  std::vector<char> is_output_, runtime_f32_, concat_;
  std::vector<char> kind_;                      // per node: what it could run blocked
  std::vector<graph::ValueId> channel_input_;   // per candidate: the value it reads in channels
  std::vector<int> adds_;                       // Add nodes
  std::vector<int> gates_;                      // Muls whose gate a Conv's filters can take (HostFusion)
  std::vector<std::vector<int>> readers_;       // per value: nodes reading it
};

}  // namespace vkfuse::planner
