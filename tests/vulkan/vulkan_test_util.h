// tests/vulkan/vulkan_test_util.h — building small graphs in the IR, running
// them through the reference executor and the Vulkan executor, comparing.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "graph/passes.h"
#include "runtime/executor.h"
#include "runtime/reference_executor.h"
#include "runtime/vulkan/context.h"
#include "runtime/vulkan/vulkan_executor.h"
#include "vkfuse/vkfuse.h"

namespace vkfuse::testing {

namespace g = vkfuse::graph;

inline bool have_vulkan_device() {
  static const bool have = [] {
    try {
      return !vkfuse::list_devices().empty();
    } catch (const vkfuse::Error&) {
      return false;
    }
  }();
  return have;
}

// Sets VKFUSE_DEVICE_LIMITS for one scope (contexts are keyed by it, so the
// executors made inside get a context with these limits).
class ScopedLimits {
 public:
  explicit ScopedLimits(const char* spec) {
    if (const char* old = std::getenv("VKFUSE_DEVICE_LIMITS")) old_ = old;
    setenv("VKFUSE_DEVICE_LIMITS", spec, 1);
  }
  ~ScopedLimits() {
    if (old_) setenv("VKFUSE_DEVICE_LIMITS", old_->c_str(), 1);
    else unsetenv("VKFUSE_DEVICE_LIMITS");
  }
  ScopedLimits(const ScopedLimits&) = delete;
  ScopedLimits& operator=(const ScopedLimits&) = delete;

 private:
  std::optional<std::string> old_;
};

#define VKFUSE_REQUIRE_VULKAN()                                                  \
  do {                                                                           \
    if (!::vkfuse::testing::have_vulkan_device()) GTEST_SKIP() << "no Vulkan device"; \
  } while (0)

// Fails the test if the validation layer (VKFUSE_VALIDATION=1) reported any
// error during it.
class VulkanTest : public ::testing::Test {
 protected:
  void SetUp() override { errors_before_ = runtime::vulkan::validation_error_count(); }
  void TearDown() override {
    EXPECT_EQ(runtime::vulkan::validation_error_count(), errors_before_) << "Vulkan validation errors were reported";
  }

 private:
  std::int64_t errors_before_ = 0;
};

// A tiny graph builder over the IR.
class GraphBuilder {
 public:
  explicit GraphBuilder(unsigned seed = 1) : rng_(seed) {}

  g::ValueId input(const std::string& name, g::Shape s) {
    const g::ValueId v = graph.add_value(name, g::DType::f32, std::move(s), true);
    graph.inputs.push_back(v);
    return v;
  }
  g::ValueId random_constant(const std::string& name, g::Shape s, float scale = 1.f) {
    std::normal_distribution<float> d(0.f, scale);
    std::vector<float> v(static_cast<std::size_t>(g::element_count(s)));
    for (auto& x : v) x = d(rng_);
    return graph.add_constant(name, g::Tensor::from_f32(std::move(s), std::move(v)));
  }
  g::ValueId positive_constant(const std::string& name, g::Shape s) {
    std::uniform_real_distribution<float> d(0.5f, 1.5f);
    std::vector<float> v(static_cast<std::size_t>(g::element_count(s)));
    for (auto& x : v) x = d(rng_);
    return graph.add_constant(name, g::Tensor::from_f32(std::move(s), std::move(v)));
  }
  g::ValueId ints(const std::string& name, std::vector<std::int64_t> v) {
    const auto n = static_cast<std::int64_t>(v.size());
    return graph.add_constant(name, g::Tensor::from_i64({n}, std::move(v)));
  }
  // Adds a node with one output; `attrs` fills its attributes.
  g::ValueId node(const std::string& op, std::vector<g::ValueId> inputs,
                  const std::function<void(g::Attributes&)>& attrs = {}) {
    g::Node n;
    n.op_type = op;
    n.name = op + "_" + std::to_string(graph.nodes.size());
    n.inputs = std::move(inputs);
    const g::ValueId out = graph.add_value(n.name + "_out");
    n.outputs = {out};
    if (attrs) attrs(n.attrs);
    graph.nodes.push_back(std::move(n));
    return out;
  }
  void output(g::ValueId v) { graph.outputs.push_back(v); }
  std::mt19937& rng() { return rng_; }

  g::Graph graph;

 private:
  std::mt19937 rng_;
};

inline double rel_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  if (den == 0) return std::sqrt(num);
  return std::sqrt(num / den);
}

struct CompareResult {
  std::vector<double> errors;  // per output
  runtime::ExecutorStats stats;
  std::vector<runtime::vulkan::KernelInfo> kernels;
  runtime::vulkan::LoadInfo load;
};

// Prepares the graph, runs it on random inputs through the reference and the
// Vulkan executor, and expects every output within `tol` (relative L2).
inline CompareResult compare_with_reference(g::Graph graph, double tol, bool fp16 = false, unsigned seed = 7,
                                            bool prepare = true, const planner::KernelShape& shape = {}) {
  if (prepare) g::prepare_graph(graph);
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<std::vector<float>> inputs;
  for (g::ValueId v : graph.inputs) {
    std::vector<float> x(static_cast<std::size_t>(g::element_count(graph.value(v).shape)));
    for (auto& e : x) e = d(rng);
    inputs.push_back(std::move(x));
  }
  std::vector<const float*> in_ptrs;
  for (auto& x : inputs) in_ptrs.push_back(x.data());
  std::vector<std::vector<float>> want, got;
  std::vector<float*> want_ptrs, got_ptrs;
  for (g::ValueId v : graph.outputs) {
    const auto n = static_cast<std::size_t>(g::element_count(graph.value(v).shape));
    want.emplace_back(n, 0.f);
    got.emplace_back(n, std::nanf(""));
  }
  for (std::size_t i = 0; i < want.size(); ++i) {
    want_ptrs.push_back(want[i].data());
    got_ptrs.push_back(got[i].data());
  }
  runtime::ReferenceExecutor ref(graph, 2);
  ref.run(in_ptrs, want_ptrs);
  runtime::ExecutorOptions options;
  options.fp16 = fp16;
  options.kernel_shape = shape;
  runtime::vulkan::VulkanExecutor gpu(graph, options);
  gpu.run(in_ptrs, got_ptrs);
  gpu.run(in_ptrs, got_ptrs);  // replaying the recorded command buffer gives the same
  CompareResult r;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double e = rel_l2(got[i], want[i]);
    r.errors.push_back(e);
    EXPECT_LE(e, tol) << "output " << i << " (" << graph.value(graph.outputs[i]).name << ")";
  }
  r.stats = gpu.stats();
  r.kernels = gpu.kernels();
  r.load = gpu.load_info();
  return r;
}

}  // namespace vkfuse::testing
