// planner/cost_model.h — predicted times from profiles: of an op on either
// device, of a transfer over the link, and of a fused cluster on the accelerator.
//
//   op time       = sequence factor × (max(flops / throughput(class, flops, shape),
//                   bytes / bandwidth(class)) + dispatch overhead)   (roofline)
//   transfer time = latency + bytes / bandwidth                      (per value)
//   cluster time  = submit overhead + Σ kernels (op time)
//                   + Σ fused epilogues (their extra inputs only: no dispatch,
//                     no extra traffic for the producer's output)
//                   (which ops share a kernel: planner/kernel_fusion.h, the
//                   rule the Vulkan lowering runs; Concats written in place
//                   cost only their copied inputs)
//   host op time  = op time under the host lowering's layout
//                   (planner/host_layout.h: residual epilogues, blocked
//                   channels, their copies to planar)
//
// Bytes of an op: every input it reads (weights included) plus its outputs.
// Views (Flatten, Reshape, Squeeze, Unsqueeze, Identity, Dropout) cost nothing.
// All times are in microseconds.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "graph/ir.h"
#include "planner/host_layout.h"
#include "planner/kernel_fusion.h"
#include "planner/profile.h"

namespace vkfuse::planner {

// The op class of a node: Conv 1x1 with group 1 → conv1x1_gemm; Conv with
// group == input channels (> 1) → depthwise; other Conv → direct_conv;
// Gemm/MatMul → gemm; pools → pooling; everything else → elementwise.
OpClass classify(const graph::Graph& g, const graph::Node& n);
// The geometry of a convolution or pooling node (output pixels, kernel area,
// stride, input channels per group); unknown (all zero) for other ops.
OpGeometry op_geometry(const graph::Graph& g, const graph::Node& n);
// Zero-cost reinterpretations of a buffer (Flatten, Reshape, ...).
bool is_view_op(const graph::Node& n);

struct NodeCost {
  OpClass op_class = OpClass::elementwise;
  bool view = false;
  double flops = 0;
  double bytes = 0;     // inputs read (weights included) + outputs written
  double host_us = 0;   // on the host, on its own
  double accel_us = 0;  // on the accelerator, as its own kernel (no submit)
};

class CostModel {
 public:
  // The graph must be sorted and fully shaped (graph::prepare_graph).
  CostModel(const graph::Graph& g, DeviceProfile host, DeviceProfile accel, LinkProfile link);

  const graph::Graph& graph() const { return *g_; }
  const DeviceProfile& host() const { return host_; }
  const DeviceProfile& accel() const { return accel_; }
  const LinkProfile& link() const { return link_; }
  int node_count() const { return static_cast<int>(costs_.size()); }

  const NodeCost& node(int i) const { return costs_[static_cast<std::size_t>(i)]; }
  double host_us(int i) const { return node(i).host_us; }
  double accel_us(int i) const { return node(i).accel_us; }
  // The node alone in its own dispatch unit: submit + kernel.
  double accel_alone_us(int i) const { return accel_.submit_us + node(i).accel_us; }

  double value_bytes(graph::ValueId v) const;
  double transfer_us(Direction d, graph::ValueId v) const { return link_.transfer_us(d, value_bytes(v)); }

  // Structure shared by the passes.
  const std::vector<std::int32_t>& producers() const { return producer_; }       // per value, -1 = none
  const std::vector<std::vector<int>>& consumers() const { return consumers_; }  // per value: node indices
  bool is_graph_output(graph::ValueId v) const { return is_output_[static_cast<std::size_t>(v)]; }
  // Non-constant, present inputs of node i (deduplicated) and its present outputs.
  const std::vector<graph::ValueId>& activation_inputs(int i) const { return act_inputs_[static_cast<std::size_t>(i)]; }
  const std::vector<graph::ValueId>& outputs(int i) const { return outputs_[static_cast<std::size_t>(i)]; }

  // A unit's members (ascending) under a placement (`unit`: per node the
  // unit it runs in, -1 on the host; shared_memory as for KernelFusion): the
  // kernel each member runs in (its own index, the Conv or Resize that runs
  // it as an epilogue, or the Conv that applies it as a gate), the
  // dispatches it makes, and its accelerator time (submit + kernels + fused
  // epilogues), all as the Vulkan lowering runs it.
  std::vector<int> kernel_roots(std::span<const int> members, std::span<const int> unit) const;
  int kernel_count(std::span<const int> members, std::span<const int> unit, bool shared_memory = true) const;
  double unit_compute_us(std::span<const int> members, std::span<const int> unit, bool shared_memory = true) const;
  // Extra cost of node i when fused into a Conv (an epilogue, a gate): its
  // other inputs' traffic.
  double fused_epilogue_us(int i, graph::ValueId fused_input) const;
  const KernelFusion& fusion() const { return fusion_; }
  // How the host lowering holds the host ops' values, given each node's host
  // segment (planner::host_segments; -1 off the host): fused residual Adds,
  // Concats in place, blocked channels (planner/host_layout.h). `out`'s
  // storage is reused.
  void host_layout(std::span<const int> segment, HostLayout& out) const { host_layout_rule_.decide(segment, out); }
  // Host op i's time as the host lowering runs it under that layout: an Add
  // that runs as its Conv's or Resize's epilogue costs reading its other
  // operand; a channel gate folded into a Conv's filters costs scaling them
  // (read and write M x C floats, in the Conv's step); a Concat copies only the inputs not written in place; a layer in
  // blocked channels is priced from the profile's blocked points; a value
  // copied to planar for its planar readers adds that copy to its producer.
  double host_op_us(int i, const HostLayout& layout) const;
  const HostFusion& host_fusion() const { return host_layout_rule_.fusion(); }

 private:
  const graph::Graph* g_;
  DeviceProfile host_, accel_;
  LinkProfile link_;
  std::vector<NodeCost> costs_;
  std::vector<std::int32_t> producer_;
  std::vector<std::vector<int>> consumers_;
  std::vector<char> is_output_;
  std::vector<std::int32_t> use_counts_;
  std::vector<std::vector<graph::ValueId>> act_inputs_, outputs_;
  KernelFusion fusion_;
  HostLayoutRule host_layout_rule_;
  std::vector<double> host_epilogue_us_;  // per node: its time as a host Conv's epilogue
  std::vector<double> host_gate_us_;      // per node: a gate's time folded into its Conv's filters
  std::vector<double> host_blocked_us_;   // per node: its time in blocked channels
  std::vector<double> to_planar_us_;      // per value: its copy from blocked channels to planar
};

}  // namespace vkfuse::planner
