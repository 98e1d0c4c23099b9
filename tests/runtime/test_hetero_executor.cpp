// The heterogeneous executor runs any plan — all host, all device, naive,
// fused, mixed — and gives the whole graph's answer. Here both sides run the
// reference kernels (stand-ins), so what is tested is the plan's execution:
// segmenting, buffer routing across the link, outputs, stats and the trace.
// Real backends join through tests/runtime/test_backend_ops.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "graph/passes.h"
#include "planner/planner.h"
#include "runtime/hetero_executor.h"
#include "runtime/reference_executor.h"
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

rt::SegmentExecutorFactory reference_both_sides(int* accel_segments) {
  return [accel_segments](const g::Graph& sub, bool on_accel, const rt::ExecutorOptions& o) {
    if (on_accel) ++*accel_segments;
    return rt::make_reference_executor(sub, o);
  };
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

class HeteroStrategies : public ::testing::TestWithParam<std::string> {};

TEST_P(HeteroStrategies, RunsThePlanLikeTheWholeGraph) {
  const g::Graph graph = small_cnn();
  rt::ReferenceExecutor whole(graph, 1);
  const Outputs expected = run(whole);

  p::PlanOptions po;
  po.strategy = GetParam();
  // MaxPool stays on the host, so device-wide strategies must split around it.
  po.accel_supports = [](const g::Graph&, const g::Node& n) { return n.op_type != "MaxPool"; };
  p::Plan plan = p::make_plan(graph, p::default_host_profile(), fast_accelerator(), p::local_link(), po);
  int accel_segments = 0;
  rt::Trace trace;
  rt::ExecutorOptions eo;
  eo.trace = &trace;
  rt::HeteroExecutor ex(graph, plan, eo, reference_both_sides(&accel_segments));
  EXPECT_EQ(accel_segments, static_cast<int>(plan.units.size()));

  for (int repeat = 0; repeat < 2; ++repeat) {
    const Outputs got = run(ex);
    EXPECT_EQ(got.y, expected.y) << plan.strategy;
    EXPECT_EQ(got.side, expected.side) << plan.strategy;
  }
  // One trace event per segment per run.
  EXPECT_EQ(trace.events().size(), 2u * static_cast<std::size_t>(ex.segment_count()));
  auto j = nlohmann::json::parse(trace.to_json());
  EXPECT_TRUE(j.contains("traceEvents"));

  if (GetParam() == "cpu") {
    EXPECT_EQ(plan.units.size(), 0u);
  }
  if (GetParam() == "naive") {
    EXPECT_EQ(static_cast<int>(plan.units.size()), plan.accel_node_count());
  }
  if (GetParam() == "gpu" || GetParam() == "fuse-all") {
    EXPECT_GE(plan.units.size(), 1u);
    EXPECT_GE(ex.segment_count(), 2) << "the host MaxPool splits the device work";
  }
}

INSTANTIATE_TEST_SUITE_P(AllPlans, HeteroStrategies,
                         ::testing::Values("cpu", "gpu", "naive", "fused", "fuse-all", "per-op"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace

namespace {

// A stand-in for a device executor that really runs asynchronously in the
// sense that matters here: start() only takes a copy of the inputs, and the
// outputs are written in finish(). Every call goes to a shared log.
class DeferredExecutor final : public rt::Executor {
 public:
  DeferredExecutor(const g::Graph& sub, std::vector<std::string>* log, int id)
      : inner_(sub, 1), log_(log), id_(id) {
    for (auto v : sub.inputs) sizes_.push_back(static_cast<std::size_t>(g::element_count(sub.value(v).shape)));
  }
  void run(std::span<const float* const> in, std::span<float* const> out) override {
    start(in, out);
    finish();
  }
  void start(std::span<const float* const> in, std::span<float* const> out) override {
    ASSERT_FALSE(started_);
    copies_.clear();
    for (std::size_t i = 0; i < in.size(); ++i) copies_.emplace_back(in[i], in[i] + sizes_[i]);
    outs_.assign(out.begin(), out.end());
    started_ = true;
    log_->push_back("start " + std::to_string(id_));
  }
  void finish() override {
    if (!started_) return;
    std::vector<const float*> in;
    for (auto& c : copies_) in.push_back(c.data());
    inner_.run(in, outs_);
    started_ = false;
    log_->push_back("finish " + std::to_string(id_));
  }
  std::string description() const override { return "deferred"; }

 private:
  rt::ReferenceExecutor inner_;
  std::vector<std::string>* log_;
  int id_;
  std::vector<std::size_t> sizes_;
  std::vector<std::vector<float>> copies_;
  std::vector<float*> outs_;
  bool started_ = false;
};

class LoggedHost final : public rt::Executor {
 public:
  LoggedHost(const g::Graph& sub, std::vector<std::string>* log) : inner_(sub, 1), log_(log) {}
  void run(std::span<const float* const> in, std::span<float* const> out) override {
    log_->push_back("host");
    inner_.run(in, out);
  }
  std::string description() const override { return "host"; }

 private:
  rt::ReferenceExecutor inner_;
  std::vector<std::string>* log_;
};

}  // namespace

// Overlap: units are submitted and waited for only when a consumer needs
// their outputs; every plan still gives the whole graph's answer, and where a
// plan has host work independent of a unit, that work runs while it is in flight.
TEST(HeteroOverlap, AsynchronousUnitsGiveTheSameAnswerAndOverlapHostWork) {
  const g::Graph graph = small_cnn();
  rt::ReferenceExecutor whole(graph, 1);
  const Outputs expected = run(whole);
  int plans_with_overlap = 0;
  for (const std::string strategy : {"cpu", "gpu", "naive", "fused", "fuse-all", "per-op"}) {
    p::PlanOptions po;
    po.strategy = strategy;
    po.accel_supports = [](const g::Graph&, const g::Node& n) { return n.op_type != "MaxPool"; };
    auto accel = fast_accelerator();
    accel.shares_host_cores = false;
    p::Plan plan = p::make_plan(graph, p::default_host_profile(), accel, p::local_link(), po);
    std::vector<std::string> log;
    int units = 0;
    rt::SegmentExecutorFactory factory = [&](const g::Graph& sub, bool on_accel,
                                             const rt::ExecutorOptions&) -> std::unique_ptr<rt::Executor> {
      if (on_accel) return std::make_unique<DeferredExecutor>(sub, &log, units++);
      return std::make_unique<LoggedHost>(sub, &log);
    };
    rt::HeteroExecutor ex(graph, plan, {}, factory);
    EXPECT_TRUE(ex.overlap()) << "on by default for an accelerator with its own cores";
    for (int repeat = 0; repeat < 2; ++repeat) {
      log.clear();
      const Outputs got = run(ex);
      EXPECT_EQ(got.y, expected.y) << strategy;
      EXPECT_EQ(got.side, expected.side) << strategy;
      // Every unit started once and finished once, after its start.
      for (int u = 0; u < units; ++u) {
        auto s = std::find(log.begin(), log.end(), "start " + std::to_string(u));
        auto f = std::find(log.begin(), log.end(), "finish " + std::to_string(u));
        ASSERT_NE(s, log.end()) << strategy;
        ASSERT_NE(f, log.end()) << strategy;
        EXPECT_LT(s, f) << strategy;
        EXPECT_EQ(std::count(log.begin(), log.end(), *s), 1) << strategy;
      }
    }
    // Host work while some unit was in flight?
    int in_flight = 0;
    bool overlapped = false;
    for (const auto& e : log) {
      if (e.rfind("start", 0) == 0) ++in_flight;
      if (e.rfind("finish", 0) == 0) --in_flight;
      if (e == "host" && in_flight > 0) overlapped = true;
    }
    plans_with_overlap += overlapped ? 1 : 0;
    // The per-step report still has every step.
    EXPECT_FALSE(ex.step_times().empty());

    // The same plan without overlap: run() only, same answer.
    ex.set_overlap(false);
    log.clear();
    const Outputs sync = run(ex);
    EXPECT_EQ(sync.y, expected.y) << strategy;
    for (std::size_t i = 0; i + 1 < log.size(); ++i) {
      if (log[i].rfind("start", 0) == 0) {
        EXPECT_EQ(log[i + 1].rfind("finish", 0), 0u) << strategy;
      }
    }
  }
  EXPECT_GE(plans_with_overlap, 1) << "some plan has host work independent of a unit";
}

// Where the accelerator shares the host's cores (lavapipe) the executor does
// not overlap, as the cost model assumes.
TEST(HeteroOverlap, OffWhenTheAcceleratorSharesTheHostCores) {
  const g::Graph graph = small_cnn();
  p::PlanOptions po;
  po.strategy = "naive";
  auto accel = fast_accelerator();
  accel.shares_host_cores = true;
  p::Plan plan = p::make_plan(graph, p::default_host_profile(), accel, p::local_link(), po);
  int accel_segments = 0;
  rt::HeteroExecutor ex(graph, plan, {}, reference_both_sides(&accel_segments));
  if (!std::getenv("VKFUSE_OVERLAP")) {
    EXPECT_FALSE(ex.overlap());
  }
}
