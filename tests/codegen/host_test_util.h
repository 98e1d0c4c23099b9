// tests/codegen/host_test_util.h — single-op graphs and the comparison of the
// host executor against the reference executor.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "graph/passes.h"
#include "runtime/host_executor.h"
#include "runtime/reference_executor.h"

namespace vkfuse::testing {

namespace g = vkfuse::graph;

inline std::vector<float> random_floats(std::mt19937& rng, std::int64_t n, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

inline g::Tensor random_tensor(std::mt19937& rng, g::Shape shape, float lo = -1.f, float hi = 1.f) {
  const auto n = g::element_count(shape);
  return g::Tensor::from_f32(std::move(shape), random_floats(rng, n, lo, hi));
}

// Relative L2 error in double precision.
inline double rel_l2(const std::vector<float>& out, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(out[i]) - static_cast<double>(ref[i]);
    num += d * d;
    den += static_cast<double>(ref[i]) * static_cast<double>(ref[i]);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// The outputs of the host and the reference executors on given inputs.
struct HostAndReference {
  std::vector<std::vector<float>> host, reference;
};
// Runs `graph` (prepared) through both executors on `inputs`, the host twice:
// steps must not depend on state left by a previous run.
inline HostAndReference run_host_and_reference(const g::Graph& graph, const std::vector<std::vector<float>>& inputs,
                                               int threads = 2, std::string* description = nullptr) {
  std::vector<const float*> in_ptrs;
  for (auto& i : inputs) in_ptrs.push_back(i.data());
  HostAndReference r;
  for (auto v : graph.outputs) {
    r.host.emplace_back(static_cast<std::size_t>(g::element_count(graph.value(v).shape)), -12345.f);
    r.reference.emplace_back(r.host.back().size(), 0.f);
  }
  std::vector<float*> host_ptrs, ref_ptrs;
  for (auto& o : r.host) host_ptrs.push_back(o.data());
  for (auto& o : r.reference) ref_ptrs.push_back(o.data());

  runtime::ExecutorOptions opts;
  opts.threads = threads;
  runtime::HostExecutor host(graph, opts);
  if (description) *description = host.description();
  host.run(in_ptrs, host_ptrs);
  host.run(in_ptrs, host_ptrs);
  runtime::ReferenceExecutor(graph, threads).run(in_ptrs, ref_ptrs);
  return r;
}

// Runs `graph` (prepared) through the host and the reference executors on
// random inputs; returns the worst relative error over the outputs.
inline double compare_host_to_reference(const g::Graph& graph, std::uint32_t seed, int threads = 2,
                                        std::string* description = nullptr) {
  std::mt19937 rng(seed);
  std::vector<std::vector<float>> inputs;
  for (auto v : graph.inputs) inputs.push_back(random_floats(rng, g::element_count(graph.value(v).shape)));
  const HostAndReference r = run_host_and_reference(graph, inputs, threads, description);
  double worst = 0;
  for (std::size_t i = 0; i < r.host.size(); ++i) worst = std::max(worst, rel_l2(r.host[i], r.reference[i]));
  return worst;
}

// Builder of small graphs: graph inputs, constants and nodes by name.
class GraphBuilder {
 public:
  g::ValueId input(const std::string& name, g::Shape shape) {
    auto id = g_.add_value(name, g::DType::f32, std::move(shape), true);
    g_.inputs.push_back(id);
    return id;
  }
  g::ValueId constant(const std::string& name, g::Tensor t) { return g_.add_constant(name, std::move(t)); }
  g::ValueId node(const std::string& op, std::vector<g::ValueId> inputs, g::Attributes attrs = {}) {
    g::Node n;
    n.name = op + "_" + std::to_string(g_.nodes.size());
    n.op_type = op;
    n.inputs = std::move(inputs);
    n.attrs = std::move(attrs);
    auto out = g_.add_value(n.name + "_out");
    n.outputs = {out};
    g_.nodes.push_back(std::move(n));
    return out;
  }
  g::Graph finish(std::vector<g::ValueId> outputs) {
    g_.outputs = std::move(outputs);
    g::prepare_graph(g_);
    return std::move(g_);
  }

 private:
  g::Graph g_;
};

}  // namespace vkfuse::testing
