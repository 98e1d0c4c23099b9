// tests/planner/test_planner_cost_model.cpp — op classes, the roofline per op,
// transfers and fused clusters, with the numbers worked out by hand.
//
// Run: ctest -R test_planner_cost_model
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "planner_test_util.h"

namespace vkfuse::planner {
namespace {

using testing::GraphBuilder;
using testing::node_index;

TEST(CostModel, OpClasses) {
  GraphBuilder b("classes");
  auto x = b.input("input", {1, 16, 8, 8});
  auto c3 = b.conv("conv3x3", x, 16);
  auto c1 = b.conv("conv1x1", c3, 32, 1);
  auto dw = b.conv("depthwise", c1, 32, 3, 1, 32);
  auto gc = b.conv("grouped", dw, 32, 3, 1, 4);
  auto mp = b.maxpool("maxpool", gc, 2, 2);
  auto r = b.relu("relu", mp);
  auto gap = b.global_avgpool("gap", r);
  auto fl = b.flatten("flatten", gap);
  auto fc = b.gemm("fc", fl, 10);
  graph::Graph g = b.finish({fc});
  auto cls = [&](const std::string& name) {
    return classify(g, g.nodes[static_cast<std::size_t>(node_index(g, name))]);
  };
  EXPECT_EQ(cls("conv3x3"), OpClass::direct_conv);
  EXPECT_EQ(cls("conv1x1"), OpClass::conv1x1_gemm);
  EXPECT_EQ(cls("depthwise"), OpClass::depthwise);
  EXPECT_EQ(cls("grouped"), OpClass::direct_conv);
  EXPECT_EQ(cls("maxpool"), OpClass::pooling);
  EXPECT_EQ(cls("gap"), OpClass::pooling);
  EXPECT_EQ(cls("relu"), OpClass::elementwise);
  EXPECT_EQ(cls("fc"), OpClass::gemm);
  EXPECT_TRUE(is_view_op(g.nodes[static_cast<std::size_t>(node_index(g, "flatten"))]));
  CostModel cm(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  const int flat = node_index(g, "flatten");
  EXPECT_EQ(cm.host_us(flat), 0);  // a view costs nothing anywhere
  EXPECT_EQ(cm.accel_us(flat), 0);
}

TEST(CostModel, RooflinePerOp) {
  // conv 32→64, 3x3, 56x56: 2 · 64·56·56 · 32·9 = 115,605,504 FLOP.
  // bytes: input 401,408 + weights 73,728 + output 802,816 = 1,277,952.
  // host (100 GFLOP/s, 20 GB/s): max(1156.06, 63.9) us; fast-accel (1000, 200): 115.6 + 5 dispatch.
  GraphBuilder b("conv");
  auto x = b.input("input", {1, 32, 56, 56});
  auto c = b.conv("conv", x, 64);
  auto r = b.relu("relu", c);
  graph::Graph g = b.finish({r});
  CostModel cm(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  const int conv = node_index(g, "conv"), relu = node_index(g, "relu");
  EXPECT_DOUBLE_EQ(cm.node(conv).flops, 115605504.0);
  EXPECT_DOUBLE_EQ(cm.node(conv).bytes, 1277952.0);
  EXPECT_NEAR(cm.host_us(conv), 1156.05504, 1e-6);
  EXPECT_NEAR(cm.accel_us(conv), 115.605504 + 5, 1e-6);
  EXPECT_NEAR(cm.accel_alone_us(conv), 115.605504 + 5 + 20, 1e-6);
  // relu: memory-bound: 2 × 802,816 B at 20 GB/s = 80.28 us on the host.
  EXPECT_NEAR(cm.host_us(relu), 80.2816, 1e-6);
  // Transfer of the input over the fast link: 10 us + 401,408 B / 10,000 MB/s.
  EXPECT_NEAR(cm.transfer_us(Direction::host_to_device, g.inputs[0]), 10 + 40.1408, 1e-6);
}

// The geometry the shape-aware lookup uses, and the sequence factor scaling
// every op's time (dispatch included) on its device.
TEST(CostModel, GeometryAndSequenceFactor) {
  GraphBuilder b("conv");
  auto x = b.input("input", {1, 32, 56, 56});
  auto c = b.conv("conv", x, 64, 3, 2);
  auto mp = b.maxpool("maxpool", c, 3, 2);
  auto r = b.relu("relu", mp);
  graph::Graph g = b.finish({r});
  const int conv = node_index(g, "conv"), pool = node_index(g, "maxpool"), relu = node_index(g, "relu");
  const OpGeometry gc = op_geometry(g, g.nodes[static_cast<std::size_t>(conv)]);
  const auto& ys = g.value(g.nodes[static_cast<std::size_t>(conv)].outputs[0]).shape;
  EXPECT_EQ(gc.pixels, static_cast<double>(ys[2] * ys[3]));
  EXPECT_EQ(gc.kernel, 9);
  EXPECT_EQ(gc.stride, 2);
  EXPECT_EQ(gc.channels, 32);
  const OpGeometry gp = op_geometry(g, g.nodes[static_cast<std::size_t>(pool)]);
  EXPECT_EQ(gp.kernel, 9);
  EXPECT_EQ(gp.channels, 64);
  EXPECT_FALSE(op_geometry(g, g.nodes[static_cast<std::size_t>(relu)]).known());

  CostModel plain(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  auto host = testing::test_host();
  auto accel = testing::fast_accel();
  host.sequence_factor = 1.5;
  accel.sequence_factor = 2;
  CostModel scaled(g, host, accel, testing::fast_link());
  for (int i : {conv, pool, relu}) {
    EXPECT_NEAR(scaled.host_us(i), 1.5 * plain.host_us(i), 1e-9);
    EXPECT_NEAR(scaled.accel_us(i), 2 * plain.accel_us(i), 1e-9);
  }
  // Round trip, and older profiles without the field read as 1.
  DeviceProfile back = device_profile_from_json(device_profile_to_json(host));
  EXPECT_EQ(back.sequence_factor, 1.5);
  auto j = nlohmann::json::parse(device_profile_to_json(host));
  j.erase("sequence_factor");
  j.erase("checksum");  // (profiles from before the field had no checksum either)
  EXPECT_EQ(device_profile_from_json(j.dump()).sequence_factor, 1);
}

// input [1, 32, 56, 56] -> conv (3x3, 32 channels) -> add(conv, input).
graph::Graph residual_block() {
  GraphBuilder b("residual");
  auto x = b.input("input", {1, 32, 56, 56});
  auto y = b.add("add", b.conv("conv", x, 32), x);
  return b.finish({y});
}

TEST(CostModel, FusedClusterCostsOneSubmitAndNoEpilogueTraffic) {
  // Unit {conv, add(conv, input)}: the residual Add runs in the Conv's kernel
  // (planner/kernel_fusion.h, as the Vulkan lowering runs it): one submit, one
  // kernel, and for the Add only the traffic of its other operand.
  const graph::Graph g = residual_block();
  CostModel cm(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  const std::vector<int> one_unit(g.nodes.size(), 0), members = {0, 1};
  EXPECT_EQ(cm.kernel_roots(members, one_unit), (std::vector<int>{0, 0}));
  EXPECT_EQ(cm.kernel_count(members, one_unit), 1);
  const double epilogue = cm.fused_epilogue_us(1, g.nodes[0].outputs[0]);
  EXPECT_LT(epilogue, cm.accel_us(1));
  EXPECT_NEAR(cm.unit_compute_us(members, one_unit), cm.accel().submit_us + cm.accel_us(0) + epilogue, 1e-9);
  // In two units the Add is a kernel of its own.
  const std::vector<int> two_units = {0, 1};
  EXPECT_EQ(cm.kernel_roots(members, two_units), (std::vector<int>{0, 1}));
  EXPECT_EQ(cm.kernel_count(members, two_units), 2);
  // Not fusible when the Conv's output is also a graph output (it must be written).
  GraphBuilder b2("conv2");
  auto x2 = b2.input("input", {1, 8, 8, 8});
  auto c2 = b2.conv("conv", x2, 8);
  auto y2 = b2.add("add", c2, x2);
  graph::Graph g2 = b2.finish({c2, y2});
  CostModel cm2(g2, testing::test_host(), testing::fast_accel(), testing::fast_link());
  EXPECT_EQ(cm2.kernel_count(members, one_unit), 2);
  // A standalone Relu is a kernel of its own: the lowering fuses activations
  // only where canonicalization folded them into their producer.
  GraphBuilder b3("relu");
  auto x3 = b3.input("input", {1, 8, 8, 8});
  auto r3 = b3.relu("relu", b3.conv("conv", x3, 8));
  graph::Graph g3 = b3.finish({r3});
  CostModel cm3(g3, testing::test_host(), testing::fast_accel(), testing::fast_link());
  EXPECT_EQ(cm3.kernel_count(members, one_unit), 2);
  // Benefit of the unit vs the host: host time − unit time − k × transfers.
  const double host = cm.host_us(0) + cm.host_us(1);
  const double xfer =
      cm.transfer_us(Direction::host_to_device, g.inputs[0]) + cm.transfer_us(Direction::device_to_host, g.outputs[0]);
  EXPECT_NEAR(cluster_benefit_us(cm, members, 1.0), host - cm.unit_compute_us(members, one_unit) - xfer, 1e-6);
  EXPECT_NEAR(cluster_benefit_us(cm, members, 2.0), host - cm.unit_compute_us(members, one_unit) - 2 * xfer, 1e-6);
}

// input -> dwconv -> pool -> conv -> conv -> Mul(x, gate) -> 1x1 conv: a
// squeeze-and-excitation block, whose Mul runs in the last Conv's kernel
// (it scales the channels as the Conv loads them) when both share a unit.
TEST(CostModel, AChannelGateRunsInTheConvThatReadsIt) {
  // gated_is_output: the gated tensor is also a graph output (then it must be written).
  auto se_block = [](bool gated_is_output) {
    GraphBuilder b("se");
    auto x = b.conv("dw", b.input("input", {1, 16, 14, 14}), 16, 3, 1, 16);
    auto gate = b.conv("expand", b.relu("act", b.conv("reduce", b.global_avgpool("pool", x), 4, 1)), 16, 1);
    auto gated = b.mul("gate", x, gate);
    auto y = b.conv("project", gated, 24, 1);
    return b.finish(gated_is_output ? std::vector<graph::ValueId>{y, gated} : std::vector<graph::ValueId>{y});
  };
  const graph::Graph g = se_block(false);
  const int mul = 5, project = 6;
  ASSERT_EQ(g.nodes[static_cast<std::size_t>(mul)].op_type, "Mul");
  ASSERT_EQ(g.nodes[static_cast<std::size_t>(project)].name, "project");
  CostModel cm(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  const KernelFusion& f = cm.fusion();
  const graph::ValueId x = g.nodes[0].outputs[0];
  EXPECT_EQ(f.gated_input(mul), x);
  const std::vector<int> one_unit(g.nodes.size(), 0), members = {0, 1, 2, 3, 4, 5, 6};
  EXPECT_EQ(f.gated_conv(mul, one_unit), project);
  EXPECT_EQ(cm.kernel_roots(members, one_unit)[5], project);
  EXPECT_EQ(cm.kernel_count(members, one_unit), 6) << "the Relu is a kernel of its own (not canonicalized here)";
  const double gate_read = cm.fused_epilogue_us(mul, x);
  EXPECT_LT(gate_read, cm.accel_us(mul));
  double sum = cm.accel().submit_us + gate_read;
  for (int i : members)
    if (i != mul) sum += cm.accel_us(i);
  EXPECT_NEAR(cm.unit_compute_us(members, one_unit), sum, 1e-9);
  // The Conv in another unit (or on the host): the Mul is a kernel of its own.
  std::vector<int> split = one_unit;
  split[static_cast<std::size_t>(project)] = 1;
  EXPECT_EQ(f.gated_conv(mul, split), -1);
  EXPECT_EQ(cm.kernel_count(members, split), 7);
  EXPECT_EQ(KernelFusion(se_block(true)).gated_input(mul), graph::kNoValue);
  // Not a channel gate: a spatial map.
  GraphBuilder b2("spatial");
  auto x2 = b2.input("input", {1, 8, 6, 6});
  auto s2 = b2.mul("scale", x2, b2.input("map", {1, 1, 6, 6}));
  const graph::Graph g2 = b2.finish({b2.conv("conv", s2, 8, 1)});
  EXPECT_EQ(KernelFusion(g2).gated_input(0), graph::kNoValue);
}

// The same block on the host: the gate folds into the projection's filters
// (HostFusion), costing their scaling (24 x 16 floats read and written at
// 20 GB/s) where the Mul would scale the 16 x 14 x 14 tensor; not across
// segments, nor where the map has fewer than 4 pixels per output channel
// of the projection (kGateFoldPixelsPerFilter).
TEST(CostModel, AChannelGateOnTheHostFoldsIntoTheFiltersOfTheConvThatReadsIt) {
  auto se_block = [](std::int64_t side) {
    GraphBuilder b("se");
    auto x = b.conv("dw", b.input("input", {1, 16, side, side}), 16, 3, 1, 16);
    auto gate = b.conv("expand", b.relu("act", b.conv("reduce", b.global_avgpool("pool", x), 4, 1)), 16, 1);
    return b.finish({b.conv("project", b.mul("gate", x, gate), 24, 1)});
  };
  const graph::Graph g = se_block(14);
  const int mul = node_index(g, "gate"), project = node_index(g, "project");
  CostModel cm(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  const std::vector<int> one_segment(g.nodes.size(), 0);
  EXPECT_EQ(cm.host_fusion().gated_input(mul), g.nodes[0].outputs[0]);
  EXPECT_EQ(cm.host_fusion().gated_conv(mul, one_segment), project);
  HostLayout layout;
  cm.host_layout(one_segment, layout);
  EXPECT_EQ(layout.input_gate[static_cast<std::size_t>(project)], mul);
  EXPECT_EQ(layout.gated_conv[static_cast<std::size_t>(mul)], project);
  EXPECT_NEAR(cm.host_op_us(mul, layout), 2 * 24 * 16 * 4 / 20e3, 1e-9);
  EXPECT_GT(cm.host_us(mul), 2 * 16 * 14 * 14 * 4 / 20e3);
  PlanOptions cpu;
  cpu.strategy = "cpu";
  const Plan plan = make_plan(cm, cpu);
  EXPECT_EQ(plan.nodes[static_cast<std::size_t>(mul)].kernel_of, project);
  std::vector<int> split = one_segment;
  split[static_cast<std::size_t>(project)] = 1;
  EXPECT_EQ(cm.host_fusion().gated_conv(mul, split), -1);
  const graph::Graph small = se_block(9);  // 81 pixels, 24 output channels
  EXPECT_EQ(HostFusion(small).gated_input(node_index(small, "gate")), graph::kNoValue);
}

// top -> Resize(x2) "up" -> Add(lateral, ·) "add".
graph::Graph upsampled_branch() {
  GraphBuilder b("fpn");
  auto top = b.input("top", {1, 8, 7, 7});
  auto lateral = b.relu("lateral", b.input("input", {1, 8, 14, 14}));
  graph::ValueId scales = b.constant("scales", graph::Tensor::from_f32({4}, {1, 1, 2, 2}));
  auto up = b.resize("up", top, scales);
  const graph::Graph g = b.finish({b.add("add", lateral, up)});
  return g;
}

// top -> Resize(x2) -> Add(lateral, ·): on the accelerator the Add runs in
// the Resize's kernel, in one unit; apart it is a kernel of its own.
TEST(CostModel, AnUpsampledBranchAddRunsInTheResizesKernel) {
  const graph::Graph g = upsampled_branch();
  const int resize = node_index(g, "up"), add = node_index(g, "add");
  CostModel cm(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  const std::vector<int> one_unit(g.nodes.size(), 0);
  EXPECT_EQ(cm.fusion().epilogue_of(add, one_unit), resize);
  const std::vector<int> members = {0, 1, 2};
  EXPECT_EQ(cm.kernel_count(members, one_unit), 2);
  std::vector<int> apart = one_unit;
  apart[static_cast<std::size_t>(add)] = 1;
  EXPECT_EQ(cm.fusion().epilogue_of(add, apart), -1);
  EXPECT_EQ(cm.kernel_count(members, apart), 3);
}

// On the host too the Add runs in the Resize's kernel (HostFusion), and
// costs reading the lateral tensor, in one segment only.
TEST(CostModel, AnUpsampledBranchAddOnTheHostRunsInTheResizesKernel) {
  const graph::Graph g = upsampled_branch();
  const int resize = node_index(g, "up"), add = node_index(g, "add");
  CostModel cm(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  const std::vector<int> one_segment(g.nodes.size(), 0);
  EXPECT_EQ(cm.host_fusion().epilogue_of(add, one_segment), resize);
  HostLayout layout;
  cm.host_layout(one_segment, layout);
  EXPECT_EQ(layout.fused_add[static_cast<std::size_t>(resize)], add);
  EXPECT_NEAR(cm.host_op_us(add, layout), 8 * 14 * 14 * 4 / 20e3, 1e-6);
  std::vector<int> apart = one_segment;
  apart[static_cast<std::size_t>(add)] = 1;
  EXPECT_EQ(cm.host_fusion().epilogue_of(add, apart), -1);
}

// A host Concat copies only the inputs that their producers did not write
// in place (planner/host_layout.h): here the Conv's output is written into
// it, the graph input is copied (2 x 4 x 36 floats at 20 GB/s).
TEST(CostModel, AHostConcatCostsTheCopiesItMakes) {
  GraphBuilder b("cat");
  auto x = b.input("input", {1, 4, 6, 6});
  const graph::Graph g = b.finish({b.concat("cat", {b.conv("conv", x, 8, 1), x})});
  CostModel cm(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  const int cat = node_index(g, "cat");
  HostLayout layout;
  cm.host_layout(std::vector<int>(g.nodes.size(), 0), layout);
  EXPECT_NEAR(cm.host_op_us(cat, layout), 2 * 4 * 36 * 4 / 20e3, 1e-9);
  EXPECT_NEAR(cm.host_us(cat), 2 * 12 * 36 * 4 / 20e3, 1e-9);  // nothing in place
}

TEST(CostModel, AResidualAddOnTheHostCostsItsReadInTheConvsKernel) {
  // input -> conv -> add(conv, input): on the host the Add is the Conv's
  // epilogue (HostFusion, as runtime/host_program runs it) and costs reading
  // the residual: 401,408 bytes at 20 GB/s = 20.07 us, against 60.2 us for
  // the Add on its own (three tensors of 401,408 bytes).
  const graph::Graph g = residual_block();
  CostModel cm(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  const int conv = node_index(g, "conv"), add = node_index(g, "add");
  const std::vector<int> one_segment(g.nodes.size(), 0), split = {0, 1};
  const auto op_us = [&](const std::vector<int>& segment) {
    HostLayout layout;
    cm.host_layout(segment, layout);
    return cm.host_op_us(add, layout);
  };
  EXPECT_EQ(cm.host_fusion().epilogue_of(add, one_segment), conv);
  EXPECT_NEAR(op_us(one_segment), 401408.0 / 20e3, 1e-6);
  EXPECT_NEAR(cm.host_us(add), 3 * 401408.0 / 20e3, 1e-6);
  // In two segments, or with the Conv on the accelerator, it is an op of its own.
  EXPECT_EQ(cm.host_fusion().epilogue_of(add, split), -1);
  EXPECT_EQ(op_us(split), cm.host_us(add));
  const std::vector<int> conv_on_accel = {-1, 0};
  EXPECT_EQ(op_us(conv_on_accel), cm.host_us(add));
  // The all-host plan lists it so and predicts with it.
  PlanOptions cpu;
  cpu.strategy = "cpu";
  const Plan plan = make_plan(cm, cpu);
  EXPECT_EQ(plan.nodes[static_cast<std::size_t>(add)].kernel_of, conv);
  EXPECT_EQ(plan.host_kernels, 1);
  EXPECT_NEAR(plan.host_ms * 1e3, cm.host_us(conv) + 401408.0 / 20e3, 1e-6);
}

// Mobile layers on the host (planner/host_layout.h): two inverted-residual
// blocks and a global pool run in blocked channels, the second block's
// residual Add in its projection; a planar reader of a blocked value (a Relu
// here) costs a copy to planar; an op on the accelerator breaks the chain,
// which starts again at the next pointwise layer. The cost model prices the
// blocked layers from the profile's blocked points (here 4x the planar
// rate), and a profile without any at the planar rate.
TEST(HostLayout, BlockedChainsArePricedAsTheyRun) {
  GraphBuilder b("mobile");
  auto x = b.input("input", {1, 16, 14, 14});
  auto e1 = b.conv("e1", x, 48, 1);
  auto d1 = b.conv("d1", e1, 48, 3, 1, 48);
  auto p1 = b.conv("p1", d1, 16, 1);
  auto e2 = b.conv("e2", p1, 48, 1);
  auto d2 = b.conv("d2", e2, 48, 3, 1, 48);
  auto p2 = b.conv("p2", d2, 16, 1);
  auto y = b.add("add", p2, p1);
  auto side = b.relu("side", d2);
  auto pool = b.global_avgpool("pool", y);
  const graph::Graph g = b.finish({pool, side});
  auto at = [&](const char* name) { return static_cast<std::size_t>(node_index(g, name)); };

  // Compute-bound ops (1 TB/s), 100 GFLOP/s planar, 400 in blocked channels.
  DeviceProfile host = testing::flat_profile("host", "host", 100, 1000, 0, 0);
  host.op_class(OpClass::depthwise).throughput.push_back({1e6, 400, OpGeometry{196, 9, 1, 1, true}});
  host.op_class(OpClass::conv1x1_gemm).throughput.push_back({1e6, 400, OpGeometry{196, 1, 1, 16, true}});
  const CostModel cm(g, host, testing::fast_accel(), testing::fast_link());
  HostLayout layout;
  cm.host_layout(std::vector<int>(g.nodes.size(), 0), layout);
  for (const char* name : {"e1", "d1", "p1", "e2", "d2", "p2", "pool"})
    EXPECT_TRUE(layout.blocked_kernel[at(name)]) << name;
  EXPECT_FALSE(layout.blocked_kernel[at("side")]);
  EXPECT_FALSE(layout.blocked_kernel[at("add")]) << "it runs in p2's kernel";
  EXPECT_EQ(layout.epilogue_of[at("add")], static_cast<int>(at("p2")));
  EXPECT_TRUE(layout.blocked[static_cast<std::size_t>(y)]);
  EXPECT_FALSE(layout.blocked[static_cast<std::size_t>(pool)]);
  for (std::size_t v = 0; v < g.values.size(); ++v)
    EXPECT_EQ(layout.planar_copy[v] != 0, static_cast<graph::ValueId>(v) == d2) << g.values[v].name;

  const auto blocked_us = [&](const char* name) {
    return cm.node(static_cast<int>(at(name))).flops / 400e3;
  };
  EXPECT_NEAR(cm.host_op_us(static_cast<int>(at("d1")), layout), blocked_us("d1"), 1e-9);
  EXPECT_NEAR(cm.host_us(static_cast<int>(at("d1"))), 4 * blocked_us("d1"), 1e-9);
  EXPECT_NEAR(cm.host_op_us(static_cast<int>(at("e2")), layout), blocked_us("e2"), 1e-9);
  // d2 pays its copy: its output read and written once at 1 TB/s.
  EXPECT_NEAR(cm.host_op_us(static_cast<int>(at("d2")), layout), blocked_us("d2") + 2 * 48 * 196 * 4 / 1e6, 1e-9);

  // d1 on the accelerator: e1 would only feed it (planar), p1 starts again.
  std::vector<int> segment(g.nodes.size(), 0);
  segment[at("d1")] = -1;
  for (std::size_t i = at("d1") + 1; i < g.nodes.size(); ++i) segment[i] = 1;
  cm.host_layout(segment, layout);
  EXPECT_FALSE(layout.blocked_kernel[at("e1")]);
  EXPECT_FALSE(layout.blocked_kernel[at("d1")]);
  EXPECT_TRUE(layout.blocked_kernel[at("p1")]);
  EXPECT_TRUE(layout.blocked_kernel[at("d2")]);
  EXPECT_EQ(cm.host_op_us(static_cast<int>(at("e1")), layout), cm.host_us(static_cast<int>(at("e1"))));

  // The all-host plan lists the layout and predicts with it.
  PlanOptions cpu;
  cpu.strategy = "cpu";
  const Plan plan = make_plan(cm, cpu);
  EXPECT_TRUE(plan.nodes[at("d1")].blocked);
  EXPECT_TRUE(plan.nodes[at("d2")].to_planar);
  EXPECT_EQ(plan.host_copies, 1);
  EXPECT_NEAR(plan.nodes[at("d1")].host_us, blocked_us("d1"), 1e-9);

  // A profile without blocked points prices the same layout at the planar rate.
  const CostModel planar(g, testing::flat_profile("host", "host", 100, 1000, 0, 0), testing::fast_accel(),
                         testing::fast_link());
  planar.host_layout(std::vector<int>(g.nodes.size(), 0), layout);
  EXPECT_TRUE(layout.blocked_kernel[at("d1")]);
  EXPECT_NEAR(planar.host_op_us(static_cast<int>(at("d1")), layout), 4 * blocked_us("d1"), 1e-9);
}

// The residual must exist when the Conv runs, in execution order: a plan
// may run a host op of a later index in an earlier segment (after a unit
// that the Conv waits for), and then the Add is fused although the residual's
// node index is after the Conv's.
TEST(HostFusion, TheResidualMustBeMadeBeforeTheConvInExecutionOrder) {
  GraphBuilder b("order");
  auto x = b.input("input", {1, 8, 8, 8});
  auto c = b.conv("conv", x, 8);  // node 0
  auto r = b.relu("relu", x);     // node 1: the residual
  auto y = b.add("add", c, r);    // node 2
  graph::Graph g = b.finish({y});
  const HostFusion hf(g);
  const int conv = node_index(g, "conv"), relu = node_index(g, "relu"), add = node_index(g, "add");
  ASSERT_LT(conv, relu);
  std::vector<int> segment(g.nodes.size(), 0);
  EXPECT_EQ(hf.epilogue_of(add, segment), -1) << "one segment runs in node order: the residual comes after the Conv";
  segment[static_cast<std::size_t>(relu)] = 0;
  segment[static_cast<std::size_t>(conv)] = segment[static_cast<std::size_t>(add)] = 1;
  EXPECT_EQ(hf.epilogue_of(add, segment), conv) << "the residual's segment runs first";
  segment[static_cast<std::size_t>(relu)] = -1;  // made on the accelerator
  EXPECT_EQ(hf.epilogue_of(add, segment), -1);
}

TEST(CostModel, RejectsUnpreparedGraphs) {
  graph::Graph g;
  auto x = g.add_value("x", graph::DType::f32, {1, 4}, true);
  g.inputs.push_back(x);
  auto y = g.add_value("y");  // no shape
  graph::Node n;
  n.name = "relu";
  n.op_type = "Relu";
  n.inputs = {x};
  n.outputs = {y};
  g.nodes.push_back(n);
  graph::Node m = n;
  m.name = "relu2";
  m.inputs = {y};
  m.outputs = {g.add_value("z", graph::DType::f32, {1, 4}, true)};
  g.nodes.push_back(m);
  g.outputs = {m.outputs[0]};
  EXPECT_THROW(CostModel(g, testing::test_host(), testing::fast_accel(), testing::fast_link()), Error);
}

}  // namespace
}  // namespace vkfuse::planner
