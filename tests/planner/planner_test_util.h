// tests/planner/planner_test_util.h — small hand-built graphs and synthetic
// profiles for the planner tests.
//
// Graphs are built node by node and shaped by graph::infer_shapes only (no
// canonicalization), so a test sees exactly the ops it wrote. Profiles are
// flat: the same throughput for every op class and size, so the expected
// numbers can be worked out by hand.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "graph/ops.h"
#include "graph/passes.h"
#include "planner/planner.h"

namespace vkfuse::planner::testing {

class GraphBuilder {
 public:
  explicit GraphBuilder(std::string name = "test") { g_.name = std::move(name); }

  graph::ValueId input(const std::string& name, graph::Shape shape) {
    graph::ValueId v = g_.add_value(name, graph::DType::f32, std::move(shape), true);
    g_.inputs.push_back(v);
    return v;
  }

  // Conv with a k×k kernel, "same" padding, given stride and group.
  graph::ValueId conv(const std::string& name, graph::ValueId x, std::int64_t out_channels, std::int64_t k = 3,
                      std::int64_t stride = 1, std::int64_t group = 1) {
    const std::int64_t cin = g_.value(x).shape.at(1);
    graph::ValueId w =
        g_.add_constant(name + ".w", graph::Tensor(graph::DType::f32, {out_channels, cin / group, k, k}));
    graph::Node n = node(name, "Conv", {x, w});
    n.attrs.set("kernel_shape", std::vector<std::int64_t>{k, k});
    n.attrs.set("strides", std::vector<std::int64_t>{stride, stride});
    n.attrs.set("pads", std::vector<std::int64_t>{k / 2, k / 2, k / 2, k / 2});
    if (group != 1) n.attrs.set("group", group);
    return emit(std::move(n));
  }

  graph::ValueId unary(const std::string& name, const std::string& op, graph::ValueId x) {
    return emit(node(name, op, {x}));
  }
  graph::ValueId relu(const std::string& name, graph::ValueId x) { return unary(name, "Relu", x); }
  graph::ValueId add(const std::string& name, graph::ValueId a, graph::ValueId b) {
    return emit(node(name, "Add", {a, b}));
  }
  graph::ValueId mul(const std::string& name, graph::ValueId a, graph::ValueId b) {
    return emit(node(name, "Mul", {a, b}));
  }
  graph::ValueId constant(const std::string& name, graph::Tensor t) { return g_.add_constant(name, std::move(t)); }
  // Resize (nearest) by constant scales, with an empty roi.
  graph::ValueId resize(const std::string& name, graph::ValueId x, graph::ValueId scales) {
    const graph::ValueId roi = g_.add_constant(name + ".roi", graph::Tensor::from_f32({0}, {}));
    return emit(node(name, "Resize", {x, roi, scales}));
  }
  graph::ValueId maxpool(const std::string& name, graph::ValueId x, std::int64_t k, std::int64_t stride,
                         std::int64_t pad = 0) {
    graph::Node n = node(name, "MaxPool", {x});
    n.attrs.set("kernel_shape", std::vector<std::int64_t>{k, k});
    n.attrs.set("strides", std::vector<std::int64_t>{stride, stride});
    n.attrs.set("pads", std::vector<std::int64_t>{pad, pad, pad, pad});
    return emit(std::move(n));
  }
  graph::ValueId concat(const std::string& name, std::vector<graph::ValueId> parts) {
    graph::Node n = node(name, "Concat", std::move(parts));
    n.attrs.set("axis", std::int64_t{1});
    return emit(std::move(n));
  }
  graph::ValueId global_avgpool(const std::string& name, graph::ValueId x) {
    return emit(node(name, "GlobalAveragePool", {x}));
  }
  graph::ValueId flatten(const std::string& name, graph::ValueId x) {
    graph::Node n = node(name, "Flatten", {x});
    n.attrs.set("axis", std::int64_t{1});
    return emit(std::move(n));
  }
  graph::ValueId gemm(const std::string& name, graph::ValueId x, std::int64_t out) {
    const std::int64_t in = g_.value(x).shape.at(1);
    graph::ValueId w = g_.add_constant(name + ".w", graph::Tensor(graph::DType::f32, {out, in}));
    graph::Node n = node(name, "Gemm", {x, w});
    n.attrs.set("transB", std::int64_t{1});
    return emit(std::move(n));
  }

  const graph::Shape& shape(graph::ValueId v) const { return g_.value(v).shape; }

  // Marks outputs, sorts and shapes the graph.
  graph::Graph finish(std::vector<graph::ValueId> outputs) {
    g_.outputs = std::move(outputs);
    g_.sort();
    graph::infer_shapes(g_);
    return std::move(g_);
  }

 private:
  graph::Node node(const std::string& name, const std::string& op, std::vector<graph::ValueId> inputs) {
    graph::Node n;
    n.name = name;
    n.op_type = op;
    n.inputs = std::move(inputs);
    return n;
  }
  graph::ValueId emit(graph::Node n) {
    graph::ValueId y = g_.add_value(n.name);
    n.outputs = {y};
    g_.nodes.push_back(std::move(n));
    // Shape it now, so later builder calls can read the shape.
    graph::Graph& g = g_;
    std::vector<graph::InputInfo> infos;
    for (graph::ValueId v : g.nodes.back().inputs) {
      graph::InputInfo info;
      info.dtype = g.value(v).dtype;
      info.shape = g.value(v).shape;
      info.constant = g.value(v).constant ? &*g.value(v).constant : nullptr;
      infos.push_back(info);
    }
    auto outs = graph::infer_node(graph::OpContext{g.nodes.back(), 13, 1}, infos);
    g.value(y).shape = outs.at(0).shape;
    g.value(y).shape_known = true;
    return y;
  }

  graph::Graph g_;
};

// A device with the same throughput and bandwidth for every op class and size.
inline DeviceProfile flat_profile(const std::string& name, const std::string& kind, double gflops, double gbs,
                                  double dispatch_us, double submit_us, bool shares_host_cores = false) {
  DeviceProfile p;
  p.name = name;
  p.kind = kind;
  p.measured = true;
  p.dispatch_us = dispatch_us;
  p.submit_us = submit_us;
  p.shares_host_cores = shares_host_cores;
  for (OpClass c : kAllOpClasses) p.op_class(c) = OpClassProfile{{{0, gflops}}, gbs};
  return p;
}

// The synthetic devices of the spec cases.
inline DeviceProfile test_host() { return flat_profile("test-host", "host", 100, 20, 0, 0); }
inline DeviceProfile fast_accel() { return flat_profile("fast-accel", "vulkan", 1000, 200, 5, 20); }
inline DeviceProfile lavapipe_like() { return flat_profile("lavapipe-like", "vulkan", 5, 4, 10, 50, true); }
inline LinkProfile fast_link() { return link_from_spec("bw=10000,lat=10"); }
inline LinkProfile slow_link() { return link_from_spec("bw=10,lat=1000"); }

inline int node_index(const graph::Graph& g, const std::string& name) {
  for (std::size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].name == name) return static_cast<int>(i);
  return -1;
}

// Names of a unit's nodes, in order.
inline std::vector<std::string> unit_names(const Plan& plan, int unit) {
  std::vector<std::string> out;
  for (int i : plan.units.at(static_cast<std::size_t>(unit)).nodes)
    out.push_back(plan.nodes[static_cast<std::size_t>(i)].name);
  return out;
}

inline std::vector<std::string> transfer_names(const std::vector<Transfer>& ts) {
  std::vector<std::string> out;
  for (const Transfer& t : ts) out.push_back(t.name);
  return out;
}

}  // namespace vkfuse::planner::testing
