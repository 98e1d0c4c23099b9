// tests/planner/test_planner_passes.cpp — the planner's passes and strategies
// as a spec: small hand-written graphs, synthetic devices, the expected plan
// written beside each case.
//
// Run: ctest -R test_planner_passes   (or build-*/tests/planner/test_planner_passes)
//
// Devices (planner_test_util.h), flat over op classes and sizes:
//   test-host      100 GFLOP/s, 20 GB/s, no overheads
//   fast-accel    1000 GFLOP/s, 200 GB/s, 5 us per dispatch, 20 us per submit
//   lavapipe-like    5 GFLOP/s, 4 GB/s, 10 us / 50 us, shares the host's cores
// Links: fast = 10 GB/s, 10 us; slow = 10 MB/s, 1 ms.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "planner_test_util.h"

namespace vkfuse::planner {
namespace {

using testing::GraphBuilder;
using testing::node_index;
using testing::transfer_names;
using testing::unit_names;
using Names = std::vector<std::string>;

Plan plan_for(const graph::Graph& g, const DeviceProfile& accel, const LinkProfile& link,
              const std::string& strategy = "fused", double k = 1.0, AccelSupports supports = {}) {
  PlanOptions o;
  o.strategy = strategy;
  o.k = k;
  o.accel_supports = std::move(supports);
  Plan p = make_plan(g, testing::test_host(), accel, link, o);
  check_plan(p, g);
  return p;
}

// input 1x32x56x56 → conv1 (32→64, 3x3) → relu → conv2 (64→64, 3x3) → output
graph::Graph conv_relu_conv() {
  GraphBuilder b("conv_relu_conv");
  auto x = b.input("input", {1, 32, 56, 56});
  auto c1 = b.conv("conv1", x, 64);
  auto r = b.relu("relu", c1);
  auto c2 = b.conv("conv2", r, 64);
  return b.finish({c2});
}

// ---- pass 1: anchors ---------------------------------------------------------

TEST(Anchors, ConvsAreStrongAnchorsOnFastAccelFastLink) {
  // conv1: 115.6 MFLOP: host 1156 us, accel 20 + 115.6 + 5 us, own transfers 50 + 90 us.
  // conv2: 231.2 MFLOP: the largest benefit, so first.
  // relu: 80 us on the host (1.6 MB at 20 GB/s), 20 + 8 + 5 on the accelerator: a gain,
  //       but its own 0.8 MB up + 0.8 MB down cost more: a weak anchor.
  graph::Graph g = conv_relu_conv();
  CostModel cm(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  auto anchors = find_anchors(cm, supported_mask(cm, {}), 1.0);
  ASSERT_EQ(anchors.size(), 3u);
  EXPECT_EQ(g.nodes[static_cast<std::size_t>(anchors[0].node)].name, "conv2");
  EXPECT_EQ(g.nodes[static_cast<std::size_t>(anchors[1].node)].name, "conv1");
  EXPECT_EQ(g.nodes[static_cast<std::size_t>(anchors[2].node)].name, "relu");
  EXPECT_TRUE(anchors[0].strong);
  EXPECT_TRUE(anchors[1].strong);
  EXPECT_FALSE(anchors[2].strong);
  EXPECT_NEAR(anchors[1].transfer_us, (10 + 401408 / 1e4) + (10 + 802816 / 1e4), 1e-6);
}

TEST(Anchors, NoneWhenTheAcceleratorIsSlower) {
  // lavapipe-like: every op computes slower on the accelerator ⇒ no anchor at all.
  graph::Graph g = conv_relu_conv();
  CostModel cm(g, testing::test_host(), testing::lavapipe_like(), testing::fast_link());
  EXPECT_TRUE(find_anchors(cm, supported_mask(cm, {}), 1.0).empty());
}

TEST(Anchors, UnsupportedOpsAreNeverAnchors) {
  graph::Graph g = conv_relu_conv();
  CostModel cm(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  auto supports = [](const graph::Graph&, const graph::Node& n) { return n.name != "conv2"; };
  auto anchors = find_anchors(cm, supported_mask(cm, supports), 1.0);
  for (const Anchor& a : anchors) EXPECT_NE(g.nodes[static_cast<std::size_t>(a.node)].name, "conv2");
}

// ---- fused: the whole pipeline -------------------------------------------------

TEST(Fused, ConvReluConvFastAccelFastLinkIsOneUnit) {
  // Expected: U0 = conv1, relu, conv2, 3 kernels (a Relu that canonicalization
  //           did not fold into its producer is a kernel of its own on the GPU);
  //           up: input; down: conv2.
  graph::Graph g = conv_relu_conv();
  Plan p = plan_for(g, testing::fast_accel(), testing::fast_link());
  ASSERT_EQ(p.units.size(), 1u) << plan_to_text(p);
  EXPECT_EQ(unit_names(p, 0), (Names{"conv1", "relu", "conv2"}));
  EXPECT_EQ(p.units[0].kernels, 3);
  EXPECT_EQ(transfer_names(p.units[0].uploads), (Names{"input"}));
  EXPECT_EQ(transfer_names(p.units[0].downloads), (Names{"conv2"}));
  EXPECT_EQ(p.bytes_uploaded, 401408);
  EXPECT_EQ(p.bytes_downloaded, 802816);
  EXPECT_EQ(p.steps.size(), 1u);
}

TEST(Fused, SlowLinkIsAllHost) {
  // 10 MB/s: uploading the 401 KB input alone (41 ms) costs ten times the
  // whole graph on the host (3.5 ms). Expected: no unit.
  graph::Graph g = conv_relu_conv();
  Plan p = plan_for(g, testing::fast_accel(), testing::slow_link());
  EXPECT_TRUE(p.units.empty()) << plan_to_text(p);
  EXPECT_EQ(p.steps.size(), 3u);
}

TEST(Fused, SlowerAcceleratorIsAllHost) {
  // lavapipe-like accelerator (slower, shares the cores), fast link. Expected: no unit,
  // and the same prediction as cpu.
  graph::Graph g = conv_relu_conv();
  Plan fused = plan_for(g, testing::lavapipe_like(), testing::fast_link());
  Plan cpu = plan_for(g, testing::lavapipe_like(), testing::fast_link(), "cpu");
  EXPECT_TRUE(fused.units.empty()) << plan_to_text(fused);
  EXPECT_DOUBLE_EQ(fused.predicted_ms, cpu.predicted_ms);
}

TEST(Fused, DiamondWithUnsupportedBranchHasNoCycle) {
  // input → conv0 ─→ conv1 ─────→ add → output
  //                └→ maxpool ───┘        maxpool: not supported on the accelerator
  // {conv0, conv1, add} in one unit would leave the unit through maxpool (host)
  // and re-enter it: a cycle. Expected: conv0 and add never share a unit.
  GraphBuilder b("diamond");
  auto x = b.input("input", {1, 16, 32, 32});
  auto c0 = b.conv("conv0", x, 16);
  auto c1 = b.conv("conv1", c0, 16);
  auto mp = b.maxpool("maxpool", c0, 3, 1, 1);
  auto y = b.add("add", c1, mp);
  graph::Graph g = b.finish({y});
  auto no_pool = [](const graph::Graph&, const graph::Node& n) { return n.op_type != "MaxPool"; };
  for (const std::string& s : strategy_names()) {
    Plan p = plan_for(g, testing::fast_accel(), testing::fast_link(), s, 1.0, no_pool);
    const PlanNode& conv0 = p.nodes[static_cast<std::size_t>(node_index(g, "conv0"))];
    const PlanNode& add = p.nodes[static_cast<std::size_t>(node_index(g, "add"))];
    EXPECT_FALSE(conv0.unit >= 0 && conv0.unit == add.unit) << s << "\n" << plan_to_text(p);
    EXPECT_EQ(p.nodes[static_cast<std::size_t>(node_index(g, "maxpool"))].placement, Placement::host) << s;
  }
  // gpu: maximal acyclic clusters: U0 = conv0, conv1; maxpool on the host; U1 = add.
  Plan all = plan_for(g, testing::fast_accel(), testing::fast_link(), "gpu", 1.0, no_pool);
  ASSERT_EQ(all.units.size(), 2u) << plan_to_text(all);
  EXPECT_EQ(unit_names(all, 0), (Names{"conv0", "conv1"}));
  EXPECT_EQ(unit_names(all, 1), (Names{"add"}));
  // conv1 passes from U0 to U1 in device memory; only the host's maxpool reads go down and up.
  EXPECT_EQ(transfer_names(all.units[0].downloads), (Names{"conv0"}));
  EXPECT_EQ(transfer_names(all.units[1].uploads), (Names{"maxpool"}));
}

// The ablation's strategies differ where the thesis says they should:
// gpu offloads every supported op; fuse-all every cluster that holds an
// anchor, whole, without cost selection; passes (and fused) only what pays.
TEST(Strategies, FuseAllOffloadsClustersWithAnAnchorOnly) {
  // input → conv0 → maxpool (host only) → relu → output
  GraphBuilder b("two_regions");
  auto x = b.input("input", {1, 16, 32, 32});
  auto c0 = b.conv("conv0", x, 16);
  auto mp = b.maxpool("maxpool", c0, 8, 8, 0);
  auto y = b.relu("relu", mp);
  graph::Graph g = b.finish({y});
  auto no_pool = [](const graph::Graph&, const graph::Node& n) { return n.op_type != "MaxPool"; };
  const auto at = [&](const Plan& p, const char* name) {
    return p.nodes[static_cast<std::size_t>(node_index(g, name))].placement;
  };
  // A relu of 256 elements gains nothing on the accelerator (its launch
  // alone costs more): no anchor; conv0 is one.
  const Plan gpu = plan_for(g, testing::fast_accel(), testing::fast_link(), "gpu", 1.0, no_pool);
  EXPECT_EQ(at(gpu, "conv0"), Placement::accel);
  EXPECT_EQ(at(gpu, "relu"), Placement::accel);
  const Plan all = plan_for(g, testing::fast_accel(), testing::fast_link(), "fuse-all", 1.0, no_pool);
  EXPECT_EQ(at(all, "conv0"), Placement::accel) << plan_to_text(all);
  EXPECT_EQ(at(all, "relu"), Placement::host) << plan_to_text(all);
  EXPECT_EQ(all.candidate, "fuse-all");
  // Behind a slow link conv0 no longer pays for its transfers: the passes
  // keep it on the host, fuse-all still offloads its cluster.
  const Plan passes = plan_for(g, testing::fast_accel(), testing::slow_link(), "passes", 1.0, no_pool);
  EXPECT_EQ(passes.accel_node_count(), 0) << plan_to_text(passes);
  EXPECT_EQ(passes.candidate, "passes");
  const Plan all_slow = plan_for(g, testing::fast_accel(), testing::slow_link(), "fuse-all", 1.0, no_pool);
  EXPECT_EQ(at(all_slow, "conv0"), Placement::accel) << plan_to_text(all_slow);
  const Plan fused = plan_for(g, testing::fast_accel(), testing::slow_link(), "fused", 1.0, no_pool);
  EXPECT_FALSE(fused.candidate.empty());
  EXPECT_NE(fused.note.find("chose " + fused.candidate.substr(0, fused.candidate.find(','))), std::string::npos)
      << fused.note << " / " << fused.candidate;
}

TEST(Clusters, IsAcyclicRejectsAPathThroughAHostOp) {
  GraphBuilder b("diamond");
  auto x = b.input("input", {1, 8, 8, 8});
  auto c0 = b.conv("conv0", x, 8);
  auto c1 = b.conv("conv1", c0, 8);
  auto mp = b.maxpool("maxpool", c0, 3, 1, 1);
  auto y = b.add("add", c1, mp);
  graph::Graph g = b.finish({y});
  CostModel cm(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  Partition p(g.nodes.size(), -1);
  p[static_cast<std::size_t>(node_index(g, "conv0"))] = 0;
  p[static_cast<std::size_t>(node_index(g, "add"))] = 0;
  EXPECT_FALSE(is_acyclic(cm, p));  // conv0 → maxpool (host) → add
  EXPECT_TRUE(std::isinf(predict_us(cm, p)));
  EXPECT_THROW(encapsulate(cm, p, "test", 1.0, false), Error);
  p[static_cast<std::size_t>(node_index(g, "maxpool"))] = 0;
  EXPECT_FALSE(is_acyclic(cm, p));                          // still conv0 → conv1 (host) → add
  p[static_cast<std::size_t>(node_index(g, "conv1"))] = 0;  // the whole diamond: convex
  EXPECT_TRUE(is_acyclic(cm, p));
}

TEST(Fused, FanOutStaysOnTheDevice) {
  // input → conv0 ─→ conv1 ─→ concat → output
  //                └→ conv2 ─┘
  // Expected: one unit; conv0's output is read by two ops, both inside, so it is
  // never downloaded. up: input; down: concat.
  GraphBuilder b("fanout");
  auto x = b.input("input", {1, 32, 28, 28});
  auto c0 = b.conv("conv0", x, 32);
  auto c1 = b.conv("conv1", c0, 32);
  auto c2 = b.conv("conv2", c0, 32, 1);
  auto y = b.concat("concat", {c1, c2});
  graph::Graph g = b.finish({y});
  Plan p = plan_for(g, testing::fast_accel(), testing::fast_link());
  ASSERT_EQ(p.units.size(), 1u) << plan_to_text(p);
  EXPECT_EQ(p.units[0].nodes.size(), 4u);
  EXPECT_EQ(transfer_names(p.units[0].uploads), (Names{"input"}));
  EXPECT_EQ(transfer_names(p.units[0].downloads), (Names{"concat"}));
}

TEST(DispatchUnits, ResidualEpiloguesFuseIntoTheirProducers) {
  // x → conv1 → relu1 → conv2 → add(·, x) → relu2 → output
  // Expected: one unit, 4 kernels: conv1, relu1, conv2 running the residual
  // add (kernel_fusion.h), relu2 (standalone Relus are kernels of their own).
  // x is read twice inside the unit but uploaded once.
  GraphBuilder b("residual");
  auto x = b.input("x", {1, 16, 32, 32});
  auto c1 = b.conv("conv1", x, 16);
  auto r1 = b.relu("relu1", c1);
  auto c2 = b.conv("conv2", r1, 16);
  auto a = b.add("add", c2, x);
  auto r2 = b.relu("relu2", a);
  graph::Graph g = b.finish({r2});
  Plan p = plan_for(g, testing::fast_accel(), testing::fast_link(), "gpu");
  ASSERT_EQ(p.units.size(), 1u);
  const DispatchUnit& u = p.units[0];
  EXPECT_EQ(u.kernels, 4);
  Names kernel_of;
  for (int k : u.kernel_of) kernel_of.push_back(p.nodes[static_cast<std::size_t>(k)].name);
  EXPECT_EQ(kernel_of, (Names{"conv1", "relu1", "conv2", "conv2", "relu2"}));
  EXPECT_EQ(transfer_names(u.uploads), (Names{"x"}));
  EXPECT_EQ(transfer_names(u.downloads), (Names{"relu2"}));
  // Fused epilogues cost no dispatch: the unit is cheaper than its ops one by one.
  CostModel cm(g, testing::test_host(), testing::fast_accel(), testing::fast_link());
  double separate = cm.accel().submit_us;
  for (int i = 0; i < cm.node_count(); ++i) separate += cm.accel_us(i);
  EXPECT_LT(u.compute_us, separate - cm.accel().dispatch_us + 1e-9);
}

// ---- the other strategies --------------------------------------------------------

TEST(Strategies, NaiveOffloadsEveryOpWithItsOwnTransfers) {
  // Expected: U0 = conv1 (up input, down conv1), U1 = relu (up conv1, down relu),
  //           U2 = conv2 (up relu, down conv2): 6 transfers.
  graph::Graph g = conv_relu_conv();
  Plan p = plan_for(g, testing::fast_accel(), testing::fast_link(), "naive");
  ASSERT_EQ(p.units.size(), 3u);
  EXPECT_EQ(unit_names(p, 1), (Names{"relu"}));
  EXPECT_EQ(transfer_names(p.units[1].uploads), (Names{"conv1"}));
  EXPECT_EQ(transfer_names(p.units[1].downloads), (Names{"relu"}));
  EXPECT_EQ(p.transfers, 6);
}

TEST(Strategies, CpuAndGpu) {
  graph::Graph g = conv_relu_conv();
  Plan cpu = plan_for(g, testing::fast_accel(), testing::fast_link(), "cpu");
  EXPECT_TRUE(cpu.units.empty());
  EXPECT_EQ(cpu.transfers, 0);
  Plan gpu = plan_for(g, testing::lavapipe_like(), testing::slow_link(), "gpu");  // gpu ignores cost
  ASSERT_EQ(gpu.units.size(), 1u);
  EXPECT_EQ(gpu.units[0].nodes.size(), 3u);
}

TEST(Strategies, PerOpPlacesEachOpByItsOwnCost) {
  // Fast link: each conv pays for its own transfers, relu does not (0.8 MB each
  // way for 47 us of gain). Expected: conv1 and conv2 each alone in a unit, relu on the host.
  graph::Graph g = conv_relu_conv();
  Plan p = plan_for(g, testing::fast_accel(), testing::fast_link(), "per-op");
  ASSERT_EQ(p.units.size(), 2u) << plan_to_text(p);
  EXPECT_EQ(unit_names(p, 0), (Names{"conv1"}));
  EXPECT_EQ(unit_names(p, 1), (Names{"conv2"}));
  EXPECT_EQ(p.nodes[static_cast<std::size_t>(node_index(g, "relu"))].placement, Placement::host);
  // Slow link: nothing pays.
  EXPECT_TRUE(plan_for(g, testing::fast_accel(), testing::slow_link(), "per-op").units.empty());
}

TEST(Strategies, OffloadingRatioK) {
  // Link 1 GB/s, 10 us: the one-unit plan moves 0.4 MB up and 0.8 MB down
  // (1.2 ms) to save ≈3.2 ms of compute. k = 1 and k = 0 offload; k = 3 demands
  // 3 × 1.2 ms > 3.2 ms: all host.
  graph::Graph g = conv_relu_conv();
  LinkProfile link = link_from_spec("bw=1000,lat=10");
  EXPECT_EQ(plan_for(g, testing::fast_accel(), link, "fused", 1.0).units.size(), 1u);
  EXPECT_EQ(plan_for(g, testing::fast_accel(), link, "fused", 0.0).units.size(), 1u);
  EXPECT_TRUE(plan_for(g, testing::fast_accel(), link, "fused", 3.0).units.empty());
  EXPECT_THROW(plan_for(g, testing::fast_accel(), link, "fused", -1.0), Error);
}

TEST(Strategies, UnknownStrategyIsAnError) {
  graph::Graph g = conv_relu_conv();
  try {
    plan_for(g, testing::fast_accel(), testing::fast_link(), "fastest");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("per-op"), std::string::npos) << e.what();
  }
}

TEST(Fused, ParallelBranchesSplitAcrossDevicesUnlessTheyShareCores) {
  // input → convA ─→ add → output      an accelerator exactly as fast as the host
  //       → convB ─┘                   (100 GFLOP/s), fast link
  // Separate cores: one branch runs on the accelerator while the host runs the
  // other (Inception's parallel branches): expected one unit with one conv,
  // predicted ≈ 0.22 ms against cpu's 0.30 ms.
  // Shared cores (lavapipe): nothing can overlap, offloading only adds
  // overheads: expected all host.
  GraphBuilder b("branches");
  auto x = b.input("input", {1, 32, 28, 28});
  auto a = b.conv("convA", x, 32);
  auto c = b.conv("convB", x, 32);
  auto y = b.add("add", a, c);
  graph::Graph g = b.finish({y});
  Plan split = plan_for(g, testing::flat_profile("same-speed", "vulkan", 100, 20, 5, 20, false), testing::fast_link());
  ASSERT_EQ(split.units.size(), 1u) << plan_to_text(split);
  ASSERT_EQ(split.units[0].nodes.size(), 1u);
  EXPECT_EQ(split.nodes[static_cast<std::size_t>(split.units[0].nodes[0])].op_type, "Conv");
  Plan cpu =
      plan_for(g, testing::flat_profile("same-speed", "vulkan", 100, 20, 5, 20, false), testing::fast_link(), "cpu");
  EXPECT_LT(split.predicted_ms, 0.8 * cpu.predicted_ms);
  Plan shared = plan_for(g, testing::flat_profile("same-speed", "vulkan", 100, 20, 5, 20, true), testing::fast_link());
  EXPECT_TRUE(shared.units.empty()) << plan_to_text(shared);
}

// ---- the schedule simulation -------------------------------------------------------

TEST(Schedule, HostWorkOverlapsAcceleratorWorkUnlessTheyShareCores) {
  // input → convA (host) ─→ add → output
  //       → convB (accel) ─┘
  // Same partition, two accelerators that differ only in shares_host_cores.
  // Separate cores: convA runs while convB's unit runs ⇒ total < the sum.
  // Shared cores (lavapipe): host and accelerator compute take turns ⇒ total
  // >= their sum, but the link still carries convB's transfers while the
  // host computes ⇒ total < the sum of every step.
  GraphBuilder b("branches");
  auto x = b.input("input", {1, 32, 28, 28});
  auto a = b.conv("convA", x, 32);
  auto c = b.conv("convB", x, 32);
  auto y = b.add("add", a, c);
  graph::Graph g = b.finish({y});
  Partition part(g.nodes.size(), -1);
  part[static_cast<std::size_t>(node_index(g, "convB"))] = 0;
  for (bool shared : {false, true}) {
    DeviceProfile accel = testing::flat_profile("accel", "vulkan", 200, 50, 5, 20, shared);
    CostModel cm(g, testing::test_host(), accel, testing::fast_link());
    Plan p = encapsulate(cm, part, "test", 1.0, false);
    check_plan(p, g);
    const double sum = p.host_ms + p.accel_ms + p.transfer_ms;
    if (shared) {
      EXPECT_GE(p.predicted_ms, p.host_ms + p.accel_ms - 1e-9);
      EXPECT_LT(p.predicted_ms, sum - 1e-6);
    } else {
      EXPECT_LT(p.predicted_ms, sum - 0.1);
    }
  }
}

TEST(Schedule, LabelsPredictedOnlyUnlessDevicesArePresentAndMeasured) {
  graph::Graph g = conv_relu_conv();
  PlanOptions o;
  Plan p = make_plan(g, testing::test_host(), testing::fast_accel(), testing::fast_link(), o);
  EXPECT_TRUE(p.predicted_only);  // what-if: devices not present
  o.devices_present = true;
  p = make_plan(g, testing::test_host(), testing::fast_accel(), testing::fast_link(), o);
  EXPECT_FALSE(p.predicted_only);
  p = make_plan(g, default_host_profile(), default_lavapipe_profile(), local_link(), o);
  EXPECT_TRUE(p.predicted_only);  // present but not calibrated
  // An all-host plan is predicted from the host's profile alone.
  o.strategy = "cpu";
  p = make_plan(g, testing::test_host(), default_lavapipe_profile(), local_link(), o);
  EXPECT_FALSE(p.predicted_only);
  p = make_plan(g, default_host_profile(), testing::fast_accel(), testing::fast_link(), o);
  EXPECT_TRUE(p.predicted_only);
}

}  // namespace
}  // namespace vkfuse::planner
