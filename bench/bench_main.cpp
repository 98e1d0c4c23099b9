// bench/bench_main.cpp — vkfuse's Google Benchmark suite.
//
//   Model/<name>/threads:T     median latency of one inference (cpu strategy)
//   Load/<name>                 graph preparation + executor construction
//   Conv/<layer>                one convolution layer of ResNet-18 or Inception
//                               v3 alone: its steps' time (warm caches, no
//                               input/output copies), GFLOP/s, and kernels
//   Strategy/<name>/<strategy>/<link>
//                               one inference through the public API with that
//                               strategy and link: latency, the plan's prediction,
//                               GPU dispatches and bytes up/down per inference
//   Eval/..., WhatIf/...        the evaluation (--eval=quick|full; see below and
//                               bench/evaluate.sh)
//
// Extra ONNX files: --model=FILE (repeatable). --profile=NAME prints a
// per-step breakdown of one model and exits (threads: $VKFUSE_BENCH_THREADS,
// default 2). --core-latency prints the round trip of a cache line between two threads
// (about 80 ns on the development VM, 170-450 ns when its two vCPUs sit far
// apart, when kernels that hand data between the cores run slower).
#include <benchmark/benchmark.h>

#include "vkfuse/vkfuse.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "graph/ops.h"
#include "graph/passes.h"
#include "planner/profile.h"
#include "runtime/host_executor.h"

namespace g = vkfuse::graph;
using vkfuse::runtime::ExecutorOptions;
using vkfuse::runtime::HostExecutor;

namespace {

g::Graph load_graph(const std::string& model) {
  g::Graph graph;
  if (model.size() > 5 && model.substr(model.size() - 5) == ".onnx") {
    graph = g::import_onnx(g::ModelFile(model).bytes());
  } else {
    graph = g::build_zoo_model(model);
  }
  g::prepare_graph(graph, 2);
  return graph;
}

// Inputs and outputs of a graph, owned.
struct Io {
  std::vector<std::vector<float>> in, out;
  std::vector<const float*> in_ptrs;
  std::vector<float*> out_ptrs;
  explicit Io(const g::Graph& graph) {
    std::mt19937 rng(1);
    std::normal_distribution<float> d;
    for (auto v : graph.inputs) {
      in.emplace_back(static_cast<std::size_t>(g::element_count(graph.value(v).shape)));
      for (auto& x : in.back()) x = d(rng);
    }
    for (auto v : graph.outputs) out.emplace_back(static_cast<std::size_t>(g::element_count(graph.value(v).shape)));
    for (auto& i : in) in_ptrs.push_back(i.data());
    for (auto& o : out) out_ptrs.push_back(o.data());
  }
};


void bm_model(benchmark::State& state, std::string model) {
  static std::map<std::string, g::Graph> cache;
  if (!cache.count(model)) cache.emplace(model, load_graph(model));
  const g::Graph& graph = cache.at(model);
  ExecutorOptions opts;
  opts.threads = static_cast<int>(state.range(0));
  HostExecutor exec(graph, opts);
  Io io(graph);
  for (int i = 0; i < 5; ++i) exec.run(io.in_ptrs, io.out_ptrs);  // warm-up, as for ONNX Runtime
  for (auto _ : state) {
    exec.run(io.in_ptrs, io.out_ptrs);
    benchmark::DoNotOptimize(io.out[0].data());
  }
  const double flops = static_cast<double>(g::graph_flops(graph));
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  state.counters["arena_MiB"] = static_cast<double>(exec.arena_bytes()) / (1024.0 * 1024.0);
  state.SetLabel(exec.description());
}

void bm_load(benchmark::State& state, std::string model) {
  for (auto _ : state) {
    g::Graph graph = load_graph(model);
    ExecutorOptions opts;
    opts.threads = 2;
    HostExecutor exec(graph, opts);
    benchmark::DoNotOptimize(&exec);
  }
}

struct StrategyCase {
  std::string model, strategy, link;
};

void bm_strategy(benchmark::State& state, StrategyCase c) {
  vkfuse::LoadOptions opts;
  opts.strategy = c.strategy;
  opts.link = c.link;
  opts.threads = 2;
  opts.host_while_building = false;  // the rows time the plan, not the host answering while it builds
  vkfuse::Model model = vkfuse::Model::builtin(c.model, opts);
  std::vector<float> x(static_cast<std::size_t>(model.inputs()[0].element_count()), 0.5f);
  std::vector<float> y(static_cast<std::size_t>(model.outputs()[0].element_count()));
  const vkfuse::InputBuffer in[] = {{model.inputs()[0].name, x}};
  const vkfuse::OutputBuffer out[] = {{model.outputs()[0].name, y}};
  vkfuse::RunTimings t = model.run(in, out);  // warm-up
  for (auto _ : state) {
    t = model.run(in, out);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["predicted_ms"] = model.predicted_ms();
  state.counters["dispatches"] = static_cast<double>(t.dispatches);
  state.counters["MB_up"] = static_cast<double>(t.bytes_uploaded) / 1e6;
  state.counters["MB_down"] = static_cast<double>(t.bytes_downloaded) / 1e6;
  state.SetLabel(model.backend_description());
}

// ---- the evaluation (bench/evaluate.sh): the thesis' experiments ------------
//
//   Eval/<experiment>/<model>/<strategy>/<link>/k:<k>
//       measured: one inference per iteration through the public API, the
//       link emulated (the real one for "measured"); counters say what moved
//       and what the plan predicted.
//   WhatIf/<profile>/<experiment>/<model>/<strategy>/<link>/k:<k>
//       PREDICTED ONLY: the plan made against a device profile that is not
//       present (tools/profiles); the row's time is the prediction.
// Experiments: bandwidth (the link swept from the measured one down past the
// edge link, latency with it), k (the offloading ratio at the edge link),
// ablation (every strategy on the measured and the edge link).

struct EvalCase {
  std::string experiment, model, strategy, link;
  double k = 1;
  std::string accel_profile;  // what-if rows only
};

std::string k_name(double k) {
  if (k >= 1e6) return "inf";
  char b[32];
  std::snprintf(b, sizeof b, "%g", k);
  return b;
}

// The link's upload bandwidth and latency as counters, as the planner reads
// the spec (the measured link: 0, 0).
void link_counters(benchmark::State& state, const std::string& link) {
  const bool measured = link == "measured";
  const vkfuse::planner::LinkProfile l = measured ? vkfuse::planner::LinkProfile{} : vkfuse::planner::link_from_spec(link);
  state.counters["link_MBps"] = measured ? 0 : l.h2d_mbps;
  state.counters["link_lat_us"] = measured ? 0 : l.h2d_latency_us;
}

void plan_counters(benchmark::State& state, const vkfuse::PlanReport& plan) {
  state.counters["predicted_ms"] = plan.predicted_ms;
  state.counters["units"] = plan.units;
  state.counters["kernels"] = plan.kernels;
  state.counters["host_ops"] = plan.host_ops;
  state.counters["accel_ops"] = plan.accel_ops;
  state.counters["transfers"] = plan.transfers;
  state.counters["plan_MB_up"] = static_cast<double>(plan.bytes_uploaded) / 1e6;
  state.counters["plan_MB_down"] = static_cast<double>(plan.bytes_downloaded) / 1e6;
}

vkfuse::Model eval_model(const EvalCase& c, const vkfuse::LoadOptions& opts) {
  if (c.model.size() > 5 && c.model.substr(c.model.size() - 5) == ".onnx") return vkfuse::Model::load(c.model, opts);
  return vkfuse::Model::builtin(c.model, opts);
}

vkfuse::PlanOptions plan_options(const EvalCase& c) {
  vkfuse::PlanOptions po;
  po.strategy = c.strategy;
  po.link = c.link;
  po.k = c.k;
  po.accel_profile = c.accel_profile;
  return po;
}

void bm_eval(benchmark::State& state, EvalCase c) {
  vkfuse::LoadOptions opts;
  opts.strategy = c.strategy;
  opts.link = c.link;
  opts.k = c.k;
  opts.threads = 2;
  opts.host_while_building = false;  // as in bm_strategy
  vkfuse::Model model = eval_model(c, opts);
  const vkfuse::PlanReport plan = model.plan(plan_options(c));
  std::vector<std::vector<float>> in, out;
  std::vector<vkfuse::InputBuffer> ins;
  std::vector<vkfuse::OutputBuffer> outs;
  for (const auto& t : model.inputs()) in.emplace_back(static_cast<std::size_t>(t.element_count()), 0.5f);
  for (const auto& t : model.outputs()) out.emplace_back(static_cast<std::size_t>(t.element_count()));
  for (std::size_t i = 0; i < in.size(); ++i) ins.push_back({model.inputs()[i].name, in[i]});
  for (std::size_t i = 0; i < out.size(); ++i) outs.push_back({model.outputs()[i].name, out[i]});
  vkfuse::RunTimings t;
  for (int i = 0; i < 2; ++i) t = model.run(ins, outs);  // warm-up
  for (auto _ : state) {
    t = model.run(ins, outs);
    benchmark::DoNotOptimize(out[0].data());
  }
  plan_counters(state, plan);
  link_counters(state, c.link);
  state.counters["k"] = c.k >= 1e6 ? -1 : c.k;  // -1: infinite
  state.counters["predicted_only"] = plan.predicted_only ? 1 : 0;
  state.counters["MB_up"] = static_cast<double>(t.bytes_uploaded) / 1e6;
  state.counters["MB_down"] = static_cast<double>(t.bytes_downloaded) / 1e6;
  state.counters["dispatches"] = static_cast<double>(t.dispatches);
  state.SetLabel("measured; chose " + plan.candidate + "; " + model.backend_description());
}

void bm_whatif(benchmark::State& state, EvalCase c) {
  vkfuse::LoadOptions opts;
  opts.strategy = "reference";  // nothing runs: the model is only planned
  opts.threads = 1;
  vkfuse::Model model = eval_model(c, opts);
  vkfuse::PlanReport plan;
  for (auto _ : state) {
    plan = model.plan(plan_options(c));
    state.SetIterationTime(plan.predicted_ms / 1e3);
  }
  plan_counters(state, plan);
  link_counters(state, c.link);
  state.counters["k"] = c.k >= 1e6 ? -1 : c.k;
  state.counters["predicted_only"] = 1;
  state.SetLabel("PREDICTED ONLY (" + c.accel_profile + "); chose " + plan.candidate);
}

// The grid of `mode` ("quick": ResNet-18, a few points; "full": every model
// present and the whole sweeps).
void register_evaluation(const std::string& mode, const std::vector<std::string>& extra_models) {
  const bool full = mode == "full";
  std::vector<std::string> models = {"resnet18"};
  if (full) models.push_back("inception_v3");
  for (const auto& m : extra_models) models.push_back(m);
  // From about the measured link (10 GB/s) down past the edge link (40 MB/s),
  // log-spaced, latency rising as bandwidth falls.
  const std::vector<std::pair<double, double>> sweep =
      full ? std::vector<std::pair<double, double>>{{10000, 10}, {4000, 20}, {1600, 50}, {640, 100}, {256, 200},
                                                    {100, 500}, {40, 1000}, {16, 2000}}
           : std::vector<std::pair<double, double>>{{4000, 20}, {256, 200}, {40, 1000}};
  auto bw_link = [](double bw, double lat) {
    char b[64];
    std::snprintf(b, sizeof b, "bw=%g,lat=%g", bw, lat);
    return std::string(b);
  };
  const std::vector<std::string> strategies = {"cpu", "gpu", "naive", "fuse-all", "passes", "fused", "per-op"};
  const std::vector<double> ks = full ? std::vector<double>{0, 0.25, 0.5, 1, 2, 4, 8, 1e9}
                                      : std::vector<double>{0, 1, 8, 1e9};
  const std::vector<std::string> whatifs = {"tools/profiles/whatif-2x-accelerator.json",
                                            "tools/profiles/whatif-10x-accelerator.json"};
  std::vector<EvalCase> cases;
  for (const auto& m : models) {
    for (const auto& s : strategies) {
      if (s == "per-op" && !full) continue;
      for (const std::string l : {"measured", "edge"}) cases.push_back({"ablation", m, s, l, 1, ""});
      if (s == "cpu" || s == "per-op") continue;  // cpu moves nothing; per-op is in the ablation only
      for (const auto& [bw, lat] : sweep) cases.push_back({"bandwidth", m, s, bw_link(bw, lat), 1, ""});
    }
    for (const std::string s : {"passes", "fused"})
      for (double k : ks) cases.push_back({"k", m, s, "edge", k, ""});
  }
  // Rows name a model file by its stem.
  auto model_name = [](const std::string& m) {
    if (m.size() <= 5 || m.substr(m.size() - 5) != ".onnx") return m;
    const std::size_t slash = m.find_last_of('/');
    return m.substr(slash == std::string::npos ? 0 : slash + 1, m.size() - 5 - (slash == std::string::npos ? 0 : slash + 1));
  };
  for (const EvalCase& c : cases) {
    const std::string name =
        "Eval/" + c.experiment + "/" + model_name(c.model) + "/" + c.strategy + "/" + c.link + "/k:" + k_name(c.k);
    // Slow plans (naive over an edge link) take seconds each: quick runs a
    // fixed 3, full for at least a second (a slow row runs once).
    auto* b = benchmark::RegisterBenchmark(name.c_str(), bm_eval, c)->Unit(benchmark::kMillisecond)->UseRealTime();
    if (full) b->MinTime(1.0);
    else b->Iterations(3);
  }
  for (const auto& profile : whatifs) {
    const std::string tag = profile.find("10x") != std::string::npos ? "10x" : "2x";
    for (EvalCase c : cases) {
      c.accel_profile = profile;
      const std::string name = "WhatIf/" + tag + "/" + c.experiment + "/" + model_name(c.model) + "/" + c.strategy +
                               "/" + c.link + "/k:" + k_name(c.k);
      benchmark::RegisterBenchmark(name.c_str(), bm_whatif, c)->Unit(benchmark::kMillisecond)->Iterations(1)->UseManualTime();
    }
  }
}

struct ConvLayer {
  const char* name;
  std::int64_t c, h, w, m, k, stride, pad;
  std::int64_t group = 1;
};

// The distinct convolutions of ResNet-18, a few of Inception v3, and the
// depthwise layers that lead mobile networks (MobileNet v2, MNASNet).
const ConvLayer kLayers[] = {
    {"resnet_stem_7x7s2_3to64_224", 3, 224, 224, 64, 7, 2, 3},
    {"resnet_3x3_64_56", 64, 56, 56, 64, 3, 1, 1},
    {"resnet_3x3s2_64to128_56", 64, 56, 56, 128, 3, 2, 1},
    {"resnet_3x3_128_28", 128, 28, 28, 128, 3, 1, 1},
    {"resnet_1x1s2_64to128_56", 64, 56, 56, 128, 1, 2, 0},
    {"resnet_3x3_256_14", 256, 14, 14, 256, 3, 1, 1},
    {"resnet_3x3_512_7", 512, 7, 7, 512, 3, 1, 1},
    {"inception_3x3_32to64_147", 32, 147, 147, 64, 3, 1, 1},
    {"inception_1x1_288to64_35", 288, 35, 35, 64, 1, 1, 0},
    {"inception_3x3_64to96_35", 64, 35, 35, 96, 3, 1, 1},
    {"inception_1x1_768to192_17", 768, 17, 17, 192, 1, 1, 0},
    {"mobile_dw_3x3_32_112", 32, 112, 112, 32, 3, 1, 1, 32},
};

void bm_conv(benchmark::State& state, ConvLayer l) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-1, 1);
  g::Graph graph;
  auto x = graph.add_value("x", g::DType::f32, {1, l.c, l.h, l.w}, true);
  graph.inputs = {x};
  std::vector<float> w(static_cast<std::size_t>(l.m * (l.c / l.group) * l.k * l.k)), b(static_cast<std::size_t>(l.m));
  for (auto& v : w) v = d(rng) * 0.1f;
  for (auto& v : b) v = d(rng);
  auto wid = graph.add_constant("w", g::Tensor::from_f32({l.m, l.c / l.group, l.k, l.k}, w));
  auto bid = graph.add_constant("b", g::Tensor::from_f32({l.m}, b));
  g::Node n;
  n.name = l.name;
  n.op_type = "Conv";
  n.inputs = {x, wid, bid};
  n.attrs.set("strides", std::vector<std::int64_t>{l.stride, l.stride});
  n.attrs.set("pads", std::vector<std::int64_t>{l.pad, l.pad, l.pad, l.pad});
  if (l.group != 1) n.attrs.set("group", l.group);
  n.activation.kind = g::Activation::Kind::Relu;
  auto y = graph.add_value("y");
  n.outputs = {y};
  graph.nodes.push_back(n);
  graph.outputs = {y};
  g::prepare_graph(graph);
  ExecutorOptions opts;
  opts.threads = static_cast<int>(state.range(0));
  HostExecutor exec(graph, opts);
  Io io(graph);
  // The kernel's time alone: run() also copies the graph input into the
  // arena and the output out of it, which on one layer cost as much as the
  // kernel (a 1x1 288->64 conv on 35x35 read as 194 GFLOP/s instead of ~440).
  std::string kernels;
  for (auto _ : state) {
    double ms = 0;
    kernels.clear();
    for (const auto& [step, t] : exec.profile(io.in_ptrs, io.out_ptrs)) {
      ms += t;
      kernels += (kernels.empty() ? "" : ", ") + step.substr(step.find(' ') + 1);
    }
    state.SetIterationTime(ms / 1e3);
  }
  state.SetLabel(kernels);
  const double flops = static_cast<double>(g::graph_flops(graph));
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void print_profile(const std::string& model, int threads) {
  g::Graph graph = load_graph(model);
  ExecutorOptions opts;
  opts.threads = threads;
  HostExecutor exec(graph, opts);
  Io io(graph);
  for (int i = 0; i < 3; ++i) exec.run(io.in_ptrs, io.out_ptrs);
  const int reps = 20;
  std::vector<std::string> names;
  std::vector<double> sums, whole;
  std::vector<std::vector<double>> per_step;  // [step][rep]
  for (int r = 0; r < reps; ++r) {
    auto t = exec.profile(io.in_ptrs, io.out_ptrs);
    names.resize(t.size());
    per_step.resize(t.size());
    double s = 0;
    for (std::size_t i = 0; i < t.size(); ++i) {
      names[i] = t[i].first;
      per_step[i].push_back(t[i].second);
      s += t[i].second;
    }
    sums.push_back(s);
    const auto t0 = std::chrono::steady_clock::now();
    exec.run(io.in_ptrs, io.out_ptrs);
    whole.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double total = 0;
  std::printf("  min ms  median\n");
  for (std::size_t i = 0; i < names.size(); ++i) {
    const double least = *std::min_element(per_step[i].begin(), per_step[i].end());
    std::printf("%8.3f %7.3f  %s\n", least, median(per_step[i]), names[i].c_str());
    total += least;
  }
  // The gap between the last two lines is what running the steps back to
  // back costs beyond the steps themselves (pool wake-ups, copies in and out).
  std::printf("%8.3f ms  total (sum of per-step minima)\n%8.3f ms  median of the runs' step sums\n"
              "%8.3f ms  median of whole runs (run())\n%s\n",
              total, median(sums), median(whole), exec.description().c_str());
}

// Two threads hand a flag back and forth; the mean round trip in ns.
double core_round_trip_ns() {
  struct alignas(64) Flag {
    std::atomic<int> v{0};
  } flag;
  constexpr int kRounds = 100000;
  std::thread other([&] {
    for (int i = 0; i < kRounds; ++i) {
      while (flag.v.load(std::memory_order_acquire) != 2 * i + 1) {
      }
      flag.v.store(2 * i + 2, std::memory_order_release);
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) {
    flag.v.store(2 * i + 1, std::memory_order_release);
    while (flag.v.load(std::memory_order_acquire) != 2 * i + 2) {
    }
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  other.join();
  return ns / kRounds;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> models = {"resnet18", "inception_v3"};
  std::vector<char*> rest;
  std::string eval_mode;
  std::vector<std::string> extra_models;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::printf(
          "vkfuse_bench: vkfuse's benchmark suite (Model/, Load/, Strategy/, Conv/ rows; see bench/bench_main.cpp)\n"
          "  --model=FILE.onnx      also time FILE (repeatable)\n"
          "  --profile=MODEL        per-step times of one model with their kernels, then exit\n"
          "                         (threads: $VKFUSE_BENCH_THREADS, default 2)\n"
          "  --core-latency         a cache line's round trip between two threads, then exit\n"
          "  --eval=quick|full      register the evaluation's Eval/ and WhatIf/ rows (bench/evaluate.sh runs them;\n"
          "                         --model=FILE adds models to it)\n"
          "MODEL is a zoo name (resnet18, inception_v3, ...) or an ONNX file. Google Benchmark's own flags:\n\n");
      rest.push_back(argv[i]);
      continue;
    }
    if (std::strcmp(argv[i], "--core-latency") == 0) {
      std::printf("{\"core_round_trip_ns\": %.0f}\n", core_round_trip_ns());
      return 0;
    }
    if (std::strncmp(argv[i], "--eval=", 7) == 0) {
      eval_mode = argv[i] + 7;
      if (eval_mode != "quick" && eval_mode != "full") {
        std::fprintf(stderr, "vkfuse_bench: --eval is quick or full, not '%s'\n", eval_mode.c_str());
        return 2;
      }
    } else if (std::strncmp(argv[i], "--model=", 8) == 0) {
      models.emplace_back(argv[i] + 8);
      extra_models.emplace_back(argv[i] + 8);
    } else if (std::strncmp(argv[i], "--profile=", 10) == 0) {
      const char* t = std::getenv("VKFUSE_BENCH_THREADS");
      try {
        print_profile(argv[i] + 10, t ? std::atoi(t) : 2);
      } catch (const vkfuse::Error& e) {
        std::fprintf(stderr, "vkfuse_bench: %s\n", e.what());
        return 1;
      }
      return 0;
    } else {
      rest.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());  // --help prints and exits here, before any model loads
  // Cold load: the first executor of the process (Halide runtime and thread
  // pool start-up included); warm load is the Load/ benchmark below.
  {
    const auto t0 = std::chrono::steady_clock::now();
    g::Graph graph = load_graph("resnet18");
    ExecutorOptions opts;
    opts.threads = 2;
    HostExecutor exec(graph, opts);
    Io io(graph);
    exec.run(io.in_ptrs, io.out_ptrs);
    const auto t1 = std::chrono::steady_clock::now();
    std::printf("cold load + first run, resnet18: %.1f ms\n", std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  for (const auto& m : models) {
    benchmark::RegisterBenchmark(("Model/" + m).c_str(), bm_model, m)
        ->Arg(2)
        ->Arg(1)
        ->ArgName("threads")
        ->Unit(benchmark::kMillisecond)
        ->MinTime(2.0)
        ->UseRealTime();
    benchmark::RegisterBenchmark(("Load/" + m).c_str(), bm_load, m)->Unit(benchmark::kMillisecond)->UseRealTime();
  }
  for (const char* m : {"resnet18", "inception_v3"})
    for (const char* strategy : {"cpu", "gpu", "naive", "fused"})
      for (const char* link : {"measured", "edge"}) {
        if (std::string(strategy) == "cpu" && std::string(link) == "edge") continue;  // no transfers to emulate
        benchmark::RegisterBenchmark(("Strategy/" + std::string(m) + "/" + strategy + "/" + link).c_str(), bm_strategy,
                                     StrategyCase{m, strategy, link})
            ->Unit(benchmark::kMillisecond)
            ->Iterations(3)
            ->UseRealTime();
      }
  if (!eval_mode.empty()) register_evaluation(eval_mode, extra_models);
  for (const auto& l : kLayers)
    benchmark::RegisterBenchmark((std::string("Conv/") + l.name).c_str(), bm_conv, l)
        ->Arg(2)
        ->ArgName("threads")
        ->Unit(benchmark::kMicrosecond)
        ->UseManualTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
