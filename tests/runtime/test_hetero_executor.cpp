// The heterogeneous executor runs any plan — all host, all device, naive,
// fused, mixed — on the real backends (Halide on the host, Vulkan on the
// accelerator: lavapipe here) and gives the reference's answer, moving
// exactly the bytes the plan lists: values passed from unit to unit stay in
// device memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "graph/passes.h"
#include "planner/planner.h"
#include "runtime/hetero_executor.h"
#include "runtime/host_executor.h"
#include "runtime/reference_executor.h"
#include "runtime/vulkan/vulkan_executor.h"
#include "tests/onnx_builder.h"

namespace g = vkfuse::graph;
namespace p = vkfuse::planner;
namespace rt = vkfuse::runtime;
using vkfuse::testing::OnnxBuilder;

namespace {

std::vector<float> ramp(std::size_t n, float scale) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = scale * std::sin(0.7f * static_cast<float>(i) + 0.3f);
  return v;
}

// x → conv3x3+relu → { conv1x1 ; maxpool → conv3x3 } → add+relu → concat(with the first conv) → GAP → Gemm
g::Graph small_cnn() {
  OnnxBuilder b;
  b.input("x", {1, 4, 12, 12}).output("y").output("side");
  b.initializer("w0", {8, 4, 3, 3}, ramp(8 * 4 * 9, 0.2f));
  b.initializer("w1", {8, 8, 1, 1}, ramp(64, 0.3f));
  b.initializer("w2", {8, 8, 3, 3}, ramp(8 * 8 * 9, 0.1f));
  b.initializer("fc", {5, 16}, ramp(80, 0.25f));
  auto pads = [](onnx::NodeProto& n) { OnnxBuilder::attr_ints(n, "pads", {1, 1, 1, 1}); };
  pads(b.node("Conv", {"x", "w0"}, {"c0"}, "conv0"));
  b.node("Relu", {"c0"}, {"r0"}, "relu0");
  b.node("Conv", {"r0", "w1"}, {"c1"}, "conv1");
  auto& mp = b.node("MaxPool", {"r0"}, {"m"}, "pool");
  OnnxBuilder::attr_ints(mp, "kernel_shape", {3, 3});
  pads(mp);
  pads(b.node("Conv", {"m", "w2"}, {"c2"}, "conv2"));
  b.node("Add", {"c1", "c2"}, {"s"}, "add");
  b.node("Relu", {"s"}, {"side"}, "relu1");
  auto& cat = b.node("Concat", {"side", "r0"}, {"cat"}, "concat");
  OnnxBuilder::attr_int(cat, "axis", 1);
  b.node("GlobalAveragePool", {"cat"}, {"gap"}, "gap");
  b.node("Flatten", {"gap"}, {"f"}, "flatten");
  auto& fc = b.node("Gemm", {"f", "fc"}, {"y"}, "fc");
  OnnxBuilder::attr_int(fc, "transB", 1);
  auto bytes = b.byte_vector();
  g::Graph graph = g::import_onnx(bytes);
  g::prepare_graph(graph);
  return graph;
}

// An accelerator ten times the default host, so that plans offload.
p::DeviceProfile fast_accelerator() {
  auto d = p::default_host_profile();
  d.name = "fast";
  d.kind = "vulkan";
  for (auto& c : d.classes) {
    for (auto& t : c.throughput) t.gflops *= 10;
    c.bandwidth_gbs *= 10;
  }
  return d;
}

struct Outputs {
  std::vector<float> y, side;
};

Outputs run(rt::Executor& ex) {
  auto x = ramp(4 * 12 * 12, 1.f);
  Outputs o{std::vector<float>(5), std::vector<float>(8 * 12 * 12)};
  const float* in[] = {x.data()};
  float* out[] = {o.y.data(), o.side.data()};
  ex.run(in, out);
  return o;
}

double rel_l2(const std::vector<float>& got, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    num += (static_cast<double>(got[i]) - ref[i]) * (static_cast<double>(got[i]) - ref[i]);
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

void expect_close(const Outputs& got, const Outputs& ref, const std::string& what) {
  EXPECT_LT(rel_l2(got.y, ref.y), 1e-4) << what;
  EXPECT_LT(rel_l2(got.side, ref.side), 1e-4) << what;
}

p::Plan plan_for(const g::Graph& graph, const std::string& strategy, bool shares_host_cores,
                 const p::LinkProfile& link = p::local_link()) {
  p::PlanOptions po;
  po.strategy = strategy;
  // MaxPool stays on the host, so device-wide strategies must split around it.
  po.accel_supports = [](const g::Graph&, const g::Node& n) { return n.op_type != "MaxPool"; };
  auto accel = fast_accelerator();
  accel.shares_host_cores = shares_host_cores;
  return p::make_plan(graph, p::default_host_profile(), accel, link, po);
}

// Values some unit produces: by value id.
std::vector<char> produced_on_device(const g::Graph& graph, const p::Plan& plan) {
  std::vector<char> out(graph.values.size(), 0);
  for (const auto& u : plan.units)
    for (int n : u.nodes)
      for (auto v : graph.nodes[static_cast<std::size_t>(n)].outputs)
        if (v != g::kNoValue) out[static_cast<std::size_t>(v)] = 1;
  return out;
}

class HeteroStrategies : public ::testing::TestWithParam<std::string> {};

TEST_P(HeteroStrategies, RunsThePlanOnTheRealBackendsMovingThePlannedBytes) {
  const g::Graph graph = small_cnn();
  rt::ReferenceExecutor whole(graph, 1);
  const Outputs expected = run(whole);

  const p::Plan plan = plan_for(graph, GetParam(), true);
  rt::Trace trace;
  rt::ExecutorOptions eo;
  eo.trace = &trace;
  rt::HeteroExecutor ex(graph, plan, eo);
  EXPECT_EQ(ex.device() ? ex.device()->unit_count() : 0, static_cast<int>(plan.units.size()));
  // One host executor (one arena) runs every host segment.
  EXPECT_EQ(ex.host() ? ex.host()->segment_count() : 0, ex.segment_count() - static_cast<int>(plan.units.size()));

  for (int repeat = 0; repeat < 2; ++repeat) expect_close(run(ex), expected, plan.strategy);
  // The bytes the plan lists, no more: nothing passed between units comes down.
  EXPECT_EQ(ex.stats().bytes_uploaded, plan.bytes_uploaded) << plan.strategy;
  EXPECT_EQ(ex.stats().bytes_downloaded, plan.bytes_downloaded) << plan.strategy;
  // Only `naive` (the baseline) sends values between units through the host.
  EXPECT_EQ(plan.isolated_units, GetParam() == "naive");
  const auto on_device = produced_on_device(graph, plan);
  if (!plan.isolated_units) {
    for (const auto& u : plan.units)
      for (const auto& t : u.uploads)
        EXPECT_FALSE(on_device[static_cast<std::size_t>(t.value)]) << "unit " << u.id << " uploads " << t.name;
  }
  // One trace event per segment per run, and one per transfer.
  std::size_t segment_events = 0;
  for (const auto& e : trace.events())
    if (e.category == "host" || (e.category == "dispatch-unit" && e.name.rfind("unit ", 0) == 0)) ++segment_events;
  EXPECT_EQ(segment_events, 2u * static_cast<std::size_t>(ex.segment_count()));
  auto j = nlohmann::json::parse(trace.to_json());
  EXPECT_TRUE(j.contains("traceEvents"));

  if (GetParam() == "cpu") {
    EXPECT_EQ(plan.units.size(), 0u);
  }
  if (GetParam() == "naive") {
    EXPECT_EQ(static_cast<int>(plan.units.size()), plan.accel_node_count());
    EXPECT_GE(plan.units.size(), 3u);
  }
  if (GetParam() == "gpu" || GetParam() == "fuse-all") {
    EXPECT_GE(plan.units.size(), 1u);
    EXPECT_GE(ex.segment_count(), 2) << "the host MaxPool splits the device work";
  }
}

INSTANTIATE_TEST_SUITE_P(AllPlans, HeteroStrategies,
                         ::testing::Values("cpu", "gpu", "naive", "fused", "passes", "fuse-all", "per-op"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

// Every op its own unit: neighbouring units hand their values over in device
// memory, so only the graph's input goes up and only what the host reads
// (the MaxPool's input, the graph outputs) comes down.
TEST(HeteroExecutor, ValuesPassedBetweenUnitsStayOnTheDevice) {
  const g::Graph graph = small_cnn();
  const p::Plan naive = plan_for(graph, "naive", true);
  auto accel = fast_accelerator();
  accel.shares_host_cores = true;
  const p::CostModel cm(graph, p::default_host_profile(), accel, p::local_link());
  p::Partition units(graph.nodes.size(), -1);
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) units[i] = naive.nodes[i].unit;
  const p::Plan plan = p::encapsulate(cm, units, "one unit per op", 1.0, false);
  p::check_plan(plan, graph);
  ASSERT_EQ(plan.units.size(), naive.units.size());
  EXPECT_LT(plan.bytes_uploaded, naive.bytes_uploaded);
  EXPECT_LT(plan.bytes_downloaded, naive.bytes_downloaded);
  EXPECT_LT(plan.predicted_ms, naive.predicted_ms);
  EXPECT_EQ(plan.bytes_uploaded, (4 * 12 * 12 + 8 * 12 * 12) * 4) << "x and the host MaxPool's output, once each";
  std::int64_t host_read = 0;  // bytes of unit-produced values that host ops or the caller read
  const auto on_device = produced_on_device(graph, plan);
  std::vector<char> host_reads(graph.values.size(), 0);
  for (std::size_t i = 0; i < graph.nodes.size(); ++i)
    if (plan.nodes[i].placement == p::Placement::host)
      for (auto v : graph.nodes[i].inputs)
        if (v != g::kNoValue) host_reads[static_cast<std::size_t>(v)] = 1;
  for (auto v : graph.outputs) host_reads[static_cast<std::size_t>(v)] = 1;
  for (std::size_t v = 0; v < graph.values.size(); ++v)
    if (on_device[v] && host_reads[v]) host_read += g::element_count(graph.values[v].shape) * 4;
  EXPECT_EQ(plan.bytes_downloaded, host_read);
  int calls = 0;
  rt::ExecutorOptions eo;
  eo.on_transfer = [&](rt::TransferDirection, std::int64_t, double) { ++calls; };
  rt::HeteroExecutor ex(graph, plan, eo);
  rt::ReferenceExecutor whole(graph, 1);
  expect_close(run(ex), run(whole), "one unit per op");
  EXPECT_EQ(ex.stats().bytes_uploaded, plan.bytes_uploaded);
  EXPECT_EQ(ex.stats().bytes_downloaded, plan.bytes_downloaded);
  // The link is charged per value, as the cost model charges it.
  EXPECT_EQ(calls, plan.transfers);
}

// Overlap: units are handed to the device thread and waited for only when a
// host op needs their downloads; every plan gives the same answer with and
// without it.
TEST(HeteroOverlap, AsynchronousUnitsGiveTheSameAnswer) {
  const g::Graph graph = small_cnn();
  rt::ReferenceExecutor whole(graph, 1);
  const Outputs expected = run(whole);
  for (const std::string strategy : {"cpu", "gpu", "naive", "fused", "passes", "fuse-all", "per-op"}) {
    for (bool shared : {false, true}) {
      const p::Plan plan = plan_for(graph, strategy, shared);
      rt::HeteroExecutor ex(graph, plan, {});
      if (!std::getenv("VKFUSE_OVERLAP")) {
        EXPECT_TRUE(ex.overlap()) << "on by default";
      }
      ex.set_overlap(true);
      for (int repeat = 0; repeat < 2; ++repeat) expect_close(run(ex), expected, strategy);
      EXPECT_FALSE(ex.step_times().empty());
      ex.set_overlap(false);
      expect_close(run(ex), expected, strategy + " without overlap");
    }
  }
}

// conv1 alone on the device: the host's MaxPool branch does not need its
// result and runs while the unit is in flight, between its upload's start
// and its download's end.
TEST(HeteroOverlap, HostWorkRunsWhileAUnitIsInFlight) {
  const g::Graph graph = small_cnn();
  const p::CostModel cm(graph, p::default_host_profile(), fast_accelerator(), p::link_from_spec("bw=1000,lat=500"));
  p::Partition part(graph.nodes.size(), -1);
  for (std::size_t i = 0; i < graph.nodes.size(); ++i)
    if (graph.nodes[i].name == "conv1") part[i] = 0;
  const p::Plan plan = p::encapsulate(cm, part, "conv1 alone", 1.0, false);
  rt::Trace trace;
  rt::ExecutorOptions eo;
  eo.trace = &trace;
  rt::HeteroExecutor ex(graph, plan, eo);
  rt::ReferenceExecutor whole(graph, 1);
  expect_close(run(ex), run(whole), "conv1 alone");
  double first = 1e300, last = 0;
  for (const auto& e : trace.events())
    if (e.name.rfind("unit 0", 0) == 0) {
      first = std::min(first, e.start_us);
      last = std::max(last, e.start_us + e.duration_us);
    }
  int inside = 0;
  for (const auto& e : trace.events())
    if (e.category == "host" && e.start_us > first && e.start_us < last) ++inside;
  EXPECT_GE(inside, 1) << "a host segment starts while unit 0 is in flight";
}

// Where the accelerator shares the host's cores (lavapipe), unit compute and
// host segments take turns, but time on an emulated link still overlaps host
// work: here conv1 runs on the device behind a slow link while the host runs
// the MaxPool branch, which does not need conv1's result.
TEST(HeteroOverlap, SharedCoresTakeTurnsButTheLinkOverlapsHostWork) {
  const g::Graph graph = small_cnn();
  auto accel = fast_accelerator();
  accel.shares_host_cores = true;
  const p::LinkProfile slow = p::link_from_spec("bw=100,lat=3000");
  const p::CostModel cm(graph, p::default_host_profile(), accel, slow);
  p::Partition part(graph.nodes.size(), -1);
  for (std::size_t i = 0; i < graph.nodes.size(); ++i)
    if (graph.nodes[i].name == "conv1") part[i] = 0;
  const p::Plan plan = p::encapsulate(cm, part, "conv1 alone", 1.0, false);
  ASSERT_EQ(plan.units.size(), 1u);
  rt::Trace trace;
  rt::ExecutorOptions eo;
  eo.trace = &trace;
  rt::HeteroExecutor ex(graph, plan, eo);
  rt::ReferenceExecutor whole(graph, 1);
  const Outputs expected = run(whole);
  expect_close(run(ex), expected, "conv1 alone");
  const auto events = trace.events();
  bool link_overlaps_host = false;
  for (const auto& l : events) {
    if (l.category != "transfer") continue;
    EXPECT_GE(l.duration_us, 3000 * 0.95) << l.name << ": held for the emulated link's latency at least";
    for (const auto& h : events)
      if (h.category == "host" && h.start_us < l.start_us + l.duration_us && l.start_us < h.start_us + h.duration_us)
        link_overlaps_host = true;
  }
  std::string listing;
  for (const auto& e : events)
    listing += e.category + " " + e.name + " " + std::to_string(e.start_us) + " +" + std::to_string(e.duration_us) + "\n";
  EXPECT_TRUE(link_overlaps_host) << "host work runs while the link carries the unit's transfers\n" << listing << plan_to_text(plan);
  for (const auto& u : events) {
    if (u.category != "dispatch-unit") continue;
    for (const auto& h : events) {
      if (h.category != "host") continue;
      EXPECT_FALSE(h.start_us + 1 < u.start_us + u.duration_us && u.start_us + 1 < h.start_us + h.duration_us)
          << "unit compute and host work overlap on shared cores";
    }
  }
  // The plan predicts the same: the link's time is hidden behind host work.
  double sum_us = 0;
  for (const auto& st : ex.step_times()) sum_us += st.predicted_us;
  EXPECT_LT(plan.predicted_ms * 1e3, sum_us);
}

}  // namespace
